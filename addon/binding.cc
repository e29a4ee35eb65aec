// N-API surface of the executor: decode a plan (parent side, allocation allowed), clone3 into the child, and the
// few fd/pidfd primitives Node lacks. No defaults or policy live here: lib/container/plan.ts decides everything.
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <napi.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <sys/mman.h>


#include "clone.h"
#include "layer.h"
#include "netlink.h"
#include "codec.h"
#include "plan.h"
#include "rawsys.h"
#include "userns.h"
#include "seccomp.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace berth {

const char* stepName(uint32_t step) {
  static const char* names[] = {
#define BERTH_STEP_NAME(id, name) name,
      BERTH_STEPS(BERTH_STEP_NAME)
#undef BERTH_STEP_NAME
  };
  return step < STEP_COUNT ? names[step] : "unknown";
}

namespace {

Napi::Error errnoError(Napi::Env env, const char* syscallName, int err) {
  Napi::Error e = Napi::Error::New(env, std::string(syscallName) + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscallName));
  return e;
}

// --- plan decoding ------------------------------------------------------------------------------------------

struct Reader {
  Napi::Env env;
  Napi::Object obj;
  Napi::Value get(const char* key) const { return obj.Get(key); }
  bool has(const char* key) const {
    Napi::Value v = obj.Get(key);
    return !v.IsUndefined() && !v.IsNull();
  }
  std::string str(const char* key) const {
    Napi::Value v = get(key);
    if (v.IsUndefined() || v.IsNull()) return "";
    if (!v.IsString()) throw Napi::TypeError::New(env, std::string("plan.") + key + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  }
  double num(const char* key, double dflt = 0) const {
    Napi::Value v = get(key);
    if (v.IsUndefined() || v.IsNull()) return dflt;
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("plan.") + key + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  uint64_t u64(const char* key) const {
    Napi::Value v = get(key);
    if (v.IsUndefined() || v.IsNull()) return 0;
    if (v.IsBigInt()) {
      bool lossless;
      return v.As<Napi::BigInt>().Uint64Value(&lossless);
    }
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("plan.") + key + " must be a bigint");
    return (uint64_t)v.As<Napi::Number>().Int64Value();
  }
  bool flag(const char* key) const {
    Napi::Value v = get(key);
    return v.IsBoolean() && v.As<Napi::Boolean>().Value();
  }
  Napi::Array arr(const char* key) const {
    Napi::Value v = get(key);
    if (v.IsUndefined() || v.IsNull()) return Napi::Array::New(env, 0);
    if (!v.IsArray()) throw Napi::TypeError::New(env, std::string("plan.") + key + " must be an array");
    return v.As<Napi::Array>();
  }
  Reader at(const Napi::Array& a, uint32_t i) const { return Reader{env, a.Get(i).As<Napi::Object>()}; }
};

std::vector<std::string> strings(const Reader& r, const char* key) {
  std::vector<std::string> out;
  Napi::Array a = r.arr(key);
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).As<Napi::String>().Utf8Value());
  return out;
}

template <typename T>
std::vector<T> numbers(const Reader& r, const char* key) {
  std::vector<T> out;
  Napi::Array a = r.arr(key);
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back((T)a.Get(i).As<Napi::Number>().Int64Value());
  return out;
}

void planFromJs(const Reader& r, Plan& p) {
  p.cloneFlags = r.u64("cloneFlags");
  p.unshareCgroup = r.flag("unshareCgroup");
  p.cgroupDirFd = (int)r.num("cgroupDirFd", -1);
  p.cgroupProcsFds = numbers<int>(r, "cgroupProcsFds");
  p.setnsFds = numbers<int>(r, "setnsFds");
  p.pidnsFd = (int)r.num("pidnsFd", -1);
  p.loopbackUp = r.flag("loopbackUp");
  std::vector<int> stdio = numbers<int>(r, "stdioFds");
  for (size_t i = 0; i < 3 && i < stdio.size(); i++) p.stdioFds[i] = stdio[i];
  p.hasHostname = r.has("hostname");
  p.hostname = r.str("hostname");
  p.hasDomainname = r.has("domainname");
  p.domainname = r.str("domainname");
  p.mountNamespace = r.has("rootfs");
  p.rootfs = r.str("rootfs");
  p.rootPropagation = r.u64("rootPropagation");
  if (r.has("overlay")) {
    Reader o{r.env, r.get("overlay").As<Napi::Object>()};
    p.overlayLowers = strings(o, "lowers");
    p.overlayUpper = o.str("upper");
    p.overlayWork = o.str("work");
  }
  Napi::Array mounts = r.arr("mounts");
  for (uint32_t i = 0; i < mounts.Length(); i++) {
    Reader m = r.at(mounts, i);
    Mount mt;
    mt.kind = m.str("kind") == "bind" ? MOUNT_BIND : MOUNT_FS;
    mt.source = m.str("source");
    mt.fstype = m.str("fstype");
    mt.target = m.str("target");
    mt.targetIsFile = m.flag("targetIsFile");
    mt.recursive = m.flag("recursive");
    mt.refuseSymlink = m.flag("refuseSymlink");
    mt.treeFd = (int)m.num("treeFd", -1);
    mt.attrSet = m.u64("attrSet");
    mt.attrClear = m.u64("attrClear");
    mt.propagation = m.u64("propagation");
    Napi::Array opts = m.arr("options");
    for (uint32_t j = 0; j < opts.Length(); j++) {
      Reader o = m.at(opts, j);
      mt.options.push_back(FsOption{o.str("key"), o.str("value"), !o.has("value")});
    }
    p.mounts.push_back(std::move(mt));
  }
  Napi::Array devices = r.arr("devices");
  for (uint32_t i = 0; i < devices.Length(); i++) {
    Reader d = r.at(devices, i);
    p.devices.push_back(Device{d.str("path"), (uint32_t)d.num("mode"), (uint32_t)d.num("major"),
                               (uint32_t)d.num("minor"), (uint32_t)d.num("uid"), (uint32_t)d.num("gid")});
  }
  Napi::Array links = r.arr("symlinks");
  for (uint32_t i = 0; i < links.Length(); i++) {
    Reader l = r.at(links, i);
    p.symlinks.push_back(Symlink{l.str("target"), l.str("path")});
  }
  p.maskedPaths = strings(r, "maskedPaths");
  p.readonlyPaths = strings(r, "readonlyPaths");
  p.readonlyRoot = r.flag("readonlyRoot");
  p.createCwd = r.flag("createCwd");
  Napi::Array sysctls = r.arr("sysctls");
  for (uint32_t i = 0; i < sysctls.Length(); i++) {
    Reader s = r.at(sysctls, i);
    p.sysctls.push_back(Sysctl{s.str("path"), s.str("value")});
  }
  Napi::Array rlimits = r.arr("rlimits");
  for (uint32_t i = 0; i < rlimits.Length(); i++) {
    Reader l = r.at(rlimits, i);
    p.rlimits.push_back(Rlimit{(uint32_t)l.num("resource"), l.u64("soft"), l.u64("hard")});
  }
  p.setUser = r.has("uid");
  p.uid = (uint32_t)r.num("uid");
  p.gid = (uint32_t)r.num("gid");
  p.groups = numbers<uint32_t>(r, "groups");
  p.setCaps = r.has("capBounding");
  p.lastCap = (uint32_t)r.num("lastCap", 40);
  p.capBounding = r.u64("capBounding");
  p.capEffective = r.u64("capEffective");
  p.capPermitted = r.u64("capPermitted");
  p.capInheritable = r.u64("capInheritable");
  p.capAmbient = r.u64("capAmbient");
  p.noNewPrivs = r.flag("noNewPrivs");
  p.parentDeathSignal = (int)r.num("parentDeathSignal");
  p.umask = (uint32_t)r.num("umask", 022);
  p.cwd = r.str("cwd");
  p.waitForStart = r.flag("waitForStart");
  if (r.has("seccomp")) {
    Napi::Buffer<uint8_t> b = r.get("seccomp").As<Napi::Buffer<uint8_t>>();
    p.seccomp.assign(b.Data(), b.Data() + b.Length());
    p.seccompFlags = (uint32_t)r.num("seccompFlags");
  }
  p.execCandidates = strings(r, "execCandidates");
  p.argv = strings(r, "argv");
  p.env = strings(r, "env");
  if (r.has("userns")) {
    Reader u{r.env, r.get("userns").As<Napi::Object>()};
    p.userns = true;
    p.uidMap = u.str("uidMap");
    p.gidMap = u.str("gidMap");
    p.setgroups = u.str("setgroups");
  }
  p.rootfsTreeFd = (int)r.num("rootfsTreeFd", -1);
  p.consoleSocketFd = (int)r.num("consoleSocketFd", -1);
  p.consoleMount = r.flag("consoleMount");
  p.unshareFlags = r.u64("unshareFlags");
}

// --- spawn --------------------------------------------------------------------------------------------------

// berth-init, copied once into a sealed memfd: what every container's init execs right after clone. Sealed, so
// that no container can ever write it back through /proc/self/exe.
int initFd = -1;
constexpr unsigned kMfdExec = 0x0010U;  // MFD_EXEC (Linux 6.3)

Napi::Value SetInitBinary(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (initFd >= 0) return env.Undefined();
  int src = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) throw errnoError(env, ("open " + path).c_str(), errno);
  // MFD_EXEC: hosts with vm.memfd_noexec=1 create non-executable memfds by default; kernels before 6.3 do not
  // know the flag (EINVAL) and make every memfd executable.
  int fd = (int)syscall(SYS_memfd_create, "berth-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | kMfdExec);
  if (fd < 0 && errno == EINVAL) fd = (int)syscall(SYS_memfd_create, "berth-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    int e = errno;
    close(src);
    throw errnoError(env, "memfd_create", e);
  }
  char buf[65536];
  for (;;) {
    ssize_t n = read(src, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(src);
      close(fd);
      throw errnoError(env, "read berth-init", e);
    }
    if (n == 0) break;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        int e = errno;
        close(src);
        close(fd);
        throw errnoError(env, "write berth-init", e);
      }
      off += w;
    }
  }
  close(src);
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    int e = errno;
    close(fd);
    throw errnoError(env, "seal berth-init", e);
  }
  initFd = fd;
  return env.Undefined();
}

constexpr int kMaxPassedFds = 200;

// What the cloned child needs to become berth-init: fds to put at 3, 4, 5, ... and the sealed binary.
struct PreExec {
  int fds[3 + kMaxPassedFds];
  int count;
  int initFd;
  bool userns;
  char* const* argv;
  char* const* envp;
};

// Runs in the clone (CLONE_VM | CLONE_VFORK) on its own small stack while the calling thread waits: raw syscalls
// only, no libc, no errno, no lazy binding, and no writes outside this stack frame.
int preExec(void* arg) {
  const PreExec* x = static_cast<const PreExec*>(arg);
  int tmp[3 + kMaxPassedFds];
  int k = x->count;
  long base = kPlanFd + k + 1;  // above every final slot, so the moves below cannot clobber a source
  long rc = 0;
  // Where the status pipe is at each point, to report a failure of the moves themselves.
  long statusFd = x->fds[1];
  for (int i = 0; i < k && rc >= 0; i++) rc = tmp[i] = (int)sys(SYS_fcntl, x->fds[i], F_DUPFD_CLOEXEC, base);
  if (rc >= 0) statusFd = tmp[1];
  long init = rc >= 0 ? sys(SYS_fcntl, x->initFd, F_DUPFD_CLOEXEC, base) : rc;
  if (init < 0) rc = init;
  for (int i = 0; i < k && rc >= 0; i++) rc = sys(SYS_dup3, tmp[i], kPlanFd + i, 0);
  if (rc >= 0) rc = sys(SYS_dup3, init, kPlanFd + k, O_CLOEXEC);
  if (rc >= 0) statusFd = kStatusFd;
  // Everything else of Node's goes: from here on the process holds only stdio and what the plan needs.
  if (rc >= 0) rc = sys(SYS_close_range, kPlanFd + k + 1, ~0U, 0);
  if (rc >= 0 && x->userns) {
    // In the new user namespace this process holds every capability, but its uid is not mapped yet, so execve
    // would drop them all. Ambient capabilities survive an execve by a non-root uid: berth-init keeps what it
    // needs to become the namespace's root once the parent has written the maps, and then clears them.
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {{~0U, ~0U, ~0U}, {~0U, ~0U, ~0U}};
    rc = sys(SYS_capset, (long)&hdr, (long)data);
    for (long cap = 0; cap < 64 && rc >= 0; cap++) {
      long r = sys(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
      if (r < 0 && r != -EINVAL) rc = r;  // EINVAL: beyond the kernel's last capability
    }
  }
  if (rc >= 0) rc = sys(SYS_execveat, kPlanFd + k, (long)"", (long)x->argv, (long)x->envp, AT_EMPTY_PATH);
  Message m{MSG_ERROR, STEP_SPAWN, (int32_t)-rc, -1};
  sys(SYS_write, statusFd, (long)&m, sizeof m);
  sys(SYS_exit_group, 127);
  return 127;
}

constexpr size_t kChildStack = 64 * 1024;

// Renumbers the plan's fd fields to the fixed slots berth-init receives them at, collecting the originals.
void assignSlots(Plan& plan, std::vector<int>& passed) {
  auto slot = [&](int& fd) {
    if (fd < 0) return;
    passed.push_back(fd);
    fd = kFirstPassedFd + (int)passed.size() - 1;
  };
  for (int& fd : plan.stdioFds) slot(fd);
  for (int& fd : plan.cgroupProcsFds) slot(fd);
  for (int& fd : plan.setnsFds) slot(fd);
  slot(plan.rootfsTreeFd);
  slot(plan.consoleSocketFd);
  for (Mount& m : plan.mounts) slot(m.treeFd);
}

Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "spawn(plan): plan must be an object");
  if (initFd < 0) throw Napi::Error::New(env, "spawn: setInitBinary() was not called");
  Plan plan;
  planFromJs(Reader{env, info[0].As<Napi::Object>()}, plan);
  if (plan.execCandidates.empty()) throw Napi::TypeError::New(env, "spawn(plan): no executable candidates");
  std::vector<int> passed;
  assignSlots(plan, passed);
  if (passed.size() > (size_t)kMaxPassedFds) throw Napi::RangeError::New(env, "spawn(plan): too many fds");
  std::string encoded = encodePlan(plan);

  std::vector<int> toClose;
  auto closeAll = [&]() {
    for (int fd : toClose) close(fd);
  };
  int planFd = (int)syscall(SYS_memfd_create, "berth-plan", MFD_CLOEXEC);
  if (planFd < 0) throw errnoError(env, "memfd_create", errno);
  toClose.push_back(planFd);
  for (size_t off = 0; off < encoded.size();) {
    ssize_t w = write(planFd, encoded.data() + off, encoded.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      closeAll();
      throw errnoError(env, "write plan", e);
    }
    off += (size_t)w;
  }

  int status[2], start[2];
  if (pipe2(status, O_CLOEXEC) < 0) {
    int e = errno;
    closeAll();
    throw errnoError(env, "pipe2", e);
  }
  if (pipe2(start, O_CLOEXEC) < 0) {
    int e = errno;
    close(status[0]);
    close(status[1]);
    closeAll();
    throw errnoError(env, "pipe2", e);
  }
  toClose.push_back(status[1]);
  toClose.push_back(start[0]);

  PreExec x;
  x.fds[0] = planFd;
  x.fds[1] = status[1];
  x.fds[2] = start[0];
  for (size_t i = 0; i < passed.size(); i++) x.fds[3 + i] = passed[i];
  x.count = 3 + (int)passed.size();
  x.initFd = initFd;
  x.userns = plan.userns;
  char arg0[] = "berth-init";
  char* argv[] = {arg0, nullptr};
  char* envp[] = {nullptr};
  x.argv = argv;
  x.envp = envp;

  void* stack = mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int e = errno;
    close(status[0]);
    close(start[1]);
    closeAll();
    throw errnoError(env, "mmap", e);
  }

  int pidfd = -1;
  struct clone_args args;
  memset(&args, 0, sizeof args);
  // CLONE_VM | CLONE_VFORK: no copy of Node's page tables; this thread sleeps until the child has exec'd
  // berth-init (or died), so nothing of Node's runs concurrently with it on shared memory.
  args.flags = CLONE_PIDFD | CLONE_VM | CLONE_VFORK | plan.cloneFlags;
  args.pidfd = (uint64_t)(uintptr_t)&pidfd;
  args.exit_signal = SIGCHLD;
  args.stack = (uint64_t)(uintptr_t)stack;
  args.stack_size = kChildStack;
  if (plan.cgroupDirFd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t)plan.cgroupDirFd;
  }

  // A pid namespace applies to children only, so the parent enters it for the clone and returns right after.
  int ownPidns = -1;
  if (plan.pidnsFd >= 0) {
    ownPidns = open("/proc/thread-self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (ownPidns < 0 || setns(plan.pidnsFd, CLONE_NEWPID) < 0) {
      int e = errno;
      if (ownPidns >= 0) close(ownPidns);
      munmap(stack, kChildStack);
      close(status[0]);
      close(start[1]);
      closeAll();
      throw errnoError(env, "setns(pid)", e);
    }
  }

  // No signal handler of Node's may run in the child: everything is blocked across clone; berth-init resets
  // dispositions and unblocks just before the final execve.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = berth_clone3(&args, sizeof args, preExec, &x);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (ownPidns >= 0) {
    // Failing to return would put every later child of this process in the container's pid namespace.
    if (setns(ownPidns, CLONE_NEWPID) < 0) abort();
    close(ownPidns);
  }
  munmap(stack, kChildStack);
  closeAll();
  if (pid < 0) {
    close(status[0]);
    close(start[1]);
    throw errnoError(env, "clone3", (int)-pid);
  }
  if (plan.userns) {
    // berth-init waits for the maps before it needs any privilege; one byte on the start pipe releases it.
    const char* failed = "";
    int rc = writeIdMaps((pid_t)pid, plan.uidMap, plan.gidMap, plan.setgroups, &failed);
    if (rc == 0 && write(start[1], "u", 1) != 1) {
      rc = -errno;
      failed = "start pipe";
    }
    if (rc < 0) {
      syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
      siginfo_t si;
      while (syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED, nullptr) < 0 && errno == EINTR) {
      }
      close(pidfd);
      close(status[0]);
      close(start[1]);
      throw errnoError(env, (std::string("write ") + failed).c_str(), -rc);
    }
  }
  fcntl(status[0], F_SETFL, O_NONBLOCK);

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, (double)pid));
  out.Set("pidfd", Napi::Number::New(env, pidfd));
  out.Set("statusFd", Napi::Number::New(env, status[0]));
  out.Set("startFd", Napi::Number::New(env, start[1]));
  return out;
}

// Reads one status message; returns null on EOF (execve succeeded or the child is gone), undefined when no data.
Napi::Value ReadStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Message m;
  ssize_t n;
  do n = read(fd, &m, sizeof m);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) return env.Undefined();
    throw errnoError(env, "read", errno);
  }
  if (n == 0) return env.Null();
  if (n != (ssize_t)sizeof m) throw Napi::Error::New(env, "torn status message from container init");
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", Napi::String::New(env, m.kind == MSG_READY ? "ready" : "error"));
  out.Set("step", Napi::String::New(env, stepName(m.step)));
  out.Set("errno", Napi::Number::New(env, m.err));
  out.Set("index", Napi::Number::New(env, m.index));
  return out;
}

Napi::Value Waitid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pidfd = info[0].As<Napi::Number>().Int32Value();
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int rc;
  do rc = (int)syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED | WNOHANG, nullptr);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) throw errnoError(env, "waitid", errno);
  if (si.si_pid == 0) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  if (si.si_code == CLD_EXITED) {
    out.Set("exitCode", Napi::Number::New(env, si.si_status));
    out.Set("signal", Napi::Number::New(env, 0));
  } else {
    out.Set("exitCode", Napi::Number::New(env, 128 + si.si_status));
    out.Set("signal", Napi::Number::New(env, si.si_status));
  }
  return out;
}

Napi::Value PidfdSendSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pidfd = info[0].As<Napi::Number>().Int32Value();
  int sig = info[1].As<Napi::Number>().Int32Value();
  if (syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) < 0) throw errnoError(env, "pidfd_send_signal", errno);
  return env.Undefined();
}

Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = info[0].As<Napi::Number>().Int32Value();
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) throw errnoError(env, "pidfd_open", errno);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return Napi::Number::New(env, fd);
}

// Two fds as a JS array (a pipe's ends, a socket pair, a pty's master and slave).
Napi::Array FdPair(Napi::Env env, int a, int b) {
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, a));
  out.Set(1u, Napi::Number::New(env, b));
  return out;
}

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw errnoError(env, "pipe2", errno);
  return FdPair(env, fds[0], fds[1]);
}

// A connected pair of unix stream sockets (close-on-exec): the console socket a container's init sends its pty
// master over.
Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) throw errnoError(env, "socketpair", errno);
  return FdPair(env, fds[0], fds[1]);
}

// recvFd(socket) → the fd passed with SCM_RIGHTS (made close-on-exec), or null when the peer closed without one.
// Never blocks: the caller waits until the sender is known to have sent (the init reports after sending).
Napi::Value RecvFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sock = info[0].As<Napi::Number>().Int32Value();
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw errnoError(env, "recvmsg", errno);
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  if (n == 0 || !cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) return env.Null();
  int fd;
  memcpy(&fd, CMSG_DATA(cm), sizeof fd);
  return Napi::Number::New(env, fd);
}

// dup(fd) → a close-on-exec copy (a second handle on the same open file: a pty master cannot be reopened by path).
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = fcntl(info[0].As<Napi::Number>().Int32Value(), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) throw errnoError(env, "dup", errno);
  return Napi::Number::New(env, fd);
}

// setWinsize(fd, rows, columns): a terminal's size; the kernel signals SIGWINCH to its foreground process group.
Napi::Value SetWinsize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct winsize ws;
  memset(&ws, 0, sizeof ws);
  ws.ws_row = (unsigned short)info[1].As<Napi::Number>().Uint32Value();
  ws.ws_col = (unsigned short)info[2].As<Napi::Number>().Uint32Value();
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) throw errnoError(env, "ioctl(TIOCSWINSZ)", errno);
  return env.Undefined();
}

// makeRaw(fd) → the terminal's settings before (a Buffer for restoreTermios), after switching it to raw mode as
// cfmakeraw does: no echo, no line editing, no signals from keys, and no output processing (OPOST off, so the
// container terminal's CR LF reaches the screen unchanged; libuv's raw mode keeps ONLCR and would double the CR).
Napi::Value MakeRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct termios saved;
  if (tcgetattr(fd, &saved) < 0) throw errnoError(env, "tcgetattr", errno);
  struct termios raw = saved;
  cfmakeraw(&raw);
  if (tcsetattr(fd, TCSADRAIN, &raw) < 0) throw errnoError(env, "tcsetattr", errno);
  return Napi::Buffer<char>::Copy(env, (const char*)&saved, sizeof saved);
}

// restoreTermios(fd, saved): puts back what makeRaw returned.
Napi::Value RestoreTermios(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<char> b = info[1].As<Napi::Buffer<char>>();
  if (b.Length() != sizeof(struct termios)) throw Napi::TypeError::New(env, "restoreTermios: not saved settings");
  struct termios saved;
  memcpy(&saved, b.Data(), sizeof saved);
  if (tcsetattr(fd, TCSADRAIN, &saved) < 0) throw errnoError(env, "tcsetattr", errno);
  return env.Undefined();
}

// openpty() → [master, slave] of a new pty in the host's devpts (close-on-exec): for driving berth's own CLI
// through a terminal (tests, tools).
Napi::Value OpenPty(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) throw errnoError(env, "posix_openpt", errno);
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) < 0) {
    int e = errno;
    close(master);
    throw errnoError(env, "ioctl(TIOCSPTLCK)", e);
  }
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    int e = errno;
    close(master);
    throw errnoError(env, "ioctl(TIOCGPTPEER)", e);
  }
  return FdPair(env, master, slave);
}

// flock(fd, exclusive, wait=false) → true when taken, false when held by someone else.
Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool exclusive = info[1].ToBoolean().Value();
  int op = (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
  int rc;
  do rc = flock(fd, op);
  while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
    throw errnoError(env, "flock", errno);
  }
  return Napi::Boolean::New(env, true);
}

// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program (generated in lib/container/cgroup/devices.ts) and attaches it to
// a cgroup v2 directory. The attachment lives as long as the cgroup: no fd to keep, nothing to clean up.
Napi::Value AttachDeviceFilter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int cgroupFd = info[0].As<Napi::Number>().Int32Value();
  Napi::Buffer<uint8_t> prog = info[1].As<Napi::Buffer<uint8_t>>();
  static char license[] = "Apache-2.0";
  static char log[16384];
  union bpf_attr load;
  memset(&load, 0, sizeof load);
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insn_cnt = (uint32_t)(prog.Length() / sizeof(struct bpf_insn));
  load.insns = (uint64_t)(uintptr_t)prog.Data();
  load.license = (uint64_t)(uintptr_t)license;
  load.log_level = 1;
  load.log_buf = (uint64_t)(uintptr_t)log;
  load.log_size = sizeof log;
  load.expected_attach_type = BPF_CGROUP_DEVICE;
  log[0] = 0;
  int progFd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
  if (progFd < 0) {
    Napi::Error e = errnoError(env, "bpf(BPF_PROG_LOAD)", errno);
    e.Set("verifierLog", Napi::String::New(env, log));
    throw e;
  }
  union bpf_attr attach;
  memset(&attach, 0, sizeof attach);
  attach.target_fd = (uint32_t)cgroupFd;
  attach.attach_bpf_fd = (uint32_t)progFd;
  attach.attach_type = BPF_CGROUP_DEVICE;
  attach.attach_flags = BPF_F_ALLOW_MULTI;
  int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach);
  int e = errno;
  close(progFd);
  if (rc < 0) throw errnoError(env, "bpf(BPF_PROG_ATTACH)", e);
  return env.Undefined();
}

// Opens the regular file `path` inside the directory `root` the way the container would see it: symlinks followed
// but never out of the root (openat2 RESOLVE_IN_ROOT), no magic links. Found first as O_PATH and checked, so a
// device or FIFO the image put there is never opened on the host; an overlay whiteout (char 0:0) is reported as
// such (error.whiteout) so layered lookups can stop at it. Read-only.
Napi::Value OpenInRoot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string root = info[0].As<Napi::String>().Utf8Value();
  std::string path = info[1].As<Napi::String>().Utf8Value();
  int rootFd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootFd < 0) throw errnoError(env, "open root", errno);
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const char* rel = path.c_str();
  while (*rel == '/') rel++;
  int pathFd = (int)syscall(SYS_openat2, rootFd, *rel ? rel : ".", &how, sizeof how);
  int e = errno;
  close(rootFd);
  if (pathFd < 0) throw errnoError(env, "openat2", e);
  struct stat st;
  if (fstat(pathFd, &st) < 0) {
    e = errno;
    close(pathFd);
    throw errnoError(env, "fstat", e);
  }
  if (!S_ISREG(st.st_mode)) {
    close(pathFd);
    bool whiteout = S_ISCHR(st.st_mode) && st.st_rdev == 0;
    Napi::Error err = errnoError(env, "open (not a regular file)", whiteout ? ENOENT : ENODEV);
    if (whiteout) err.Set("whiteout", Napi::Boolean::New(env, true));
    throw err;
  }
  // Reopen the very inode found (no second path walk) for reading.
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", pathFd);
  int fd = open(proc, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  e = errno;
  close(pathFd);
  if (fd < 0) throw errnoError(env, "reopen", e);
  return Napi::Number::New(env, fd);
}

Napi::Value StepNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, STEP_COUNT);
  for (uint32_t i = 0; i < STEP_COUNT; i++) out.Set(i, Napi::String::New(env, stepName(i)));
  return out;
}

// --- Poller: a one-shot "fd is readable" notification on the libuv loop (pidfds, status pipes) ----------------

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("close", &Poller::Close), InstanceMethod("ref", &Poller::DoRef),
                        InstanceMethod("unref", &Poller::DoUnref)});
  }

  Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    int fd = info[0].As<Napi::Number>().Int32Value();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    uv_loop_t* loop;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    handle_->data = this;
    int rc = uv_poll_init(loop, handle_, fd);
    if (rc == 0) rc = uv_poll_start(handle_, UV_READABLE, &Poller::OnEvent);
    if (rc != 0) {
      delete handle_;
      handle_ = nullptr;
      throw Napi::Error::New(env, std::string("uv_poll: ") + uv_strerror(rc));
    }
    Ref();  // stay alive while the poll is active
  }

 private:
  static void OnEvent(uv_poll_t* h, int status, int events) {
    Poller* self = static_cast<Poller*>(h->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    Napi::FunctionReference cb = std::move(self->callback_);
    self->Stop();
    cb.MakeCallback(env.Global(), {Napi::Number::New(env, status)});
  }

  void Stop() {
    if (!handle_) return;
    uv_poll_stop(handle_);
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    handle_ = nullptr;
    Unref();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    callback_.Reset();
    return info.Env().Undefined();
  }
  Napi::Value DoRef(const Napi::CallbackInfo& info) {
    if (handle_) uv_ref(reinterpret_cast<uv_handle_t*>(handle_));
    return info.Env().Undefined();
  }
  Napi::Value DoUnref(const Napi::CallbackInfo& info) {
    if (handle_) uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
    return info.Env().Undefined();
  }

  uv_poll_t* handle_ = nullptr;
  Napi::FunctionReference callback_;
};

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("spawn", Napi::Function::New(env, Spawn));
  exports.Set("setInitBinary", Napi::Function::New(env, SetInitBinary));
  exports.Set("readStatus", Napi::Function::New(env, ReadStatus));
  exports.Set("waitid", Napi::Function::New(env, Waitid));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("socketpair", Napi::Function::New(env, Socketpair));
  exports.Set("recvFd", Napi::Function::New(env, RecvFd));
  exports.Set("setWinsize", Napi::Function::New(env, SetWinsize));
  exports.Set("dup", Napi::Function::New(env, Dup));
  exports.Set("makeRaw", Napi::Function::New(env, MakeRaw));
  exports.Set("restoreTermios", Napi::Function::New(env, RestoreTermios));
  exports.Set("openPty", Napi::Function::New(env, OpenPty));
  exports.Set("attachDeviceFilter", Napi::Function::New(env, AttachDeviceFilter));
  exports.Set("openInRoot", Napi::Function::New(env, OpenInRoot));
  exports.Set("stepNames", Napi::Function::New(env, StepNames));
  exports.Set("layerOpenRoot", Napi::Function::New(env, LayerOpenRoot));
  exports.Set("layerApply", Napi::Function::New(env, LayerApply));
  exports.Set("lgetxattr", Napi::Function::New(env, LayerGetXattr));
  exports.Set("usernsFd", Napi::Function::New(env, UsernsFd));
  exports.Set("idmapTree", Napi::Function::New(env, IdmapTree));
  exports.Set("overlayTree", Napi::Function::New(env, OverlayTree));
  exports.Set("readonlyTree", Napi::Function::New(env, ReadonlyTree));
  exports.Set("compileSeccomp", Napi::Function::New(env, CompileSeccomp));
  exports.Set("seccompInfo", Napi::Function::New(env, SeccompInfo));
  exports.Set("Poller", Poller::Init(env));
  exports.Set("Hasher", HasherClass(env));
  exports.Set("Inflater", InflaterClass(env));
  NetlinkExports(env, exports);
  return exports;
}


}  // namespace berth

static Napi::Object InitBerth(Napi::Env env, Napi::Object exports) { return berth::Init(env, exports); }
NODE_API_MODULE(berth, InitBerth)
