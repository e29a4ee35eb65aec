// N-API surface of the executor: decode a plan (parent side, allocation allowed), clone3 into the child, and the
// few fd/pidfd primitives Node lacks. No defaults or policy live here: lib/container/plan.ts decides everything.
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <napi.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <sys/mman.h>

#include <map>
#include <memory>

#include "clone.h"
#include "plan.h"

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

void Plan::finalize() {
  argvPtrs.clear();
  for (auto& s : argv) argvPtrs.push_back(const_cast<char*>(s.c_str()));
  argvPtrs.push_back(nullptr);
  envPtrs.clear();
  for (auto& s : env) envPtrs.push_back(const_cast<char*>(s.c_str()));
  envPtrs.push_back(nullptr);
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

void decodePlan(const Reader& r, Plan& p) {
  p.cloneFlags = r.u64("cloneFlags");
  p.unshareCgroup = r.flag("unshareCgroup");
  p.cgroupDirFd = (int)r.num("cgroupDirFd", -1);
  p.cgroupProcsFds = numbers<int>(r, "cgroupProcsFds");
  p.setnsFds = numbers<int>(r, "setnsFds");
  p.pidnsFd = (int)r.num("pidnsFd", -1);
  p.loopbackUp = r.flag("loopbackUp");
  p.sharedMemory = r.flag("sharedMemory");
  std::vector<int> stdio = numbers<int>(r, "stdioFds");
  for (size_t i = 0; i < 3 && i < stdio.size(); i++) p.stdioFds[i] = stdio[i];
  p.hasHostname = r.has("hostname");
  p.hostname = r.str("hostname");
  p.hasDomainname = r.has("domainname");
  p.domainname = r.str("domainname");
  p.mountNamespace = r.has("rootfs");
  p.rootfs = r.str("rootfs");
  p.rootPropagation = r.u64("rootPropagation");
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
  p.finalize();
}

// --- spawn --------------------------------------------------------------------------------------------------

// What a child reads until it execs or exits. With CLONE_VM it reads the parent's copy, so the plan and the
// child's stack must outlive that moment: they are freed by release(pid) once the status pipe reached EOF or the
// child was reaped.
struct Child {
  Plan plan;
  int statusFd = -1;
  int startFd = -1;
  void* stack = nullptr;
  size_t stackSize = 0;
  ~Child() {
    if (stack) munmap(stack, stackSize);
  }
};

std::map<long, std::unique_ptr<Child>> children;

int childMain(void* arg) {
  Child* c = static_cast<Child*>(arg);
  runChild(c->plan, c->statusFd, c->startFd);
}

constexpr size_t kChildStack = 256 * 1024;

Napi::Value Spawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "spawn(plan): plan must be an object");
  auto child = std::make_unique<Child>();
  Plan& plan = child->plan;
  decodePlan(Reader{env, info[0].As<Napi::Object>()}, plan);
  if (plan.execCandidates.empty()) throw Napi::TypeError::New(env, "spawn(plan): no executable candidates");

  int status[2], start[2];
  if (pipe2(status, O_CLOEXEC) < 0) throw errnoError(env, "pipe2", errno);
  if (pipe2(start, O_CLOEXEC) < 0) {
    int e = errno;
    close(status[0]);
    close(status[1]);
    throw errnoError(env, "pipe2", e);
  }
  auto closePipes = [&]() {
    for (int fd : {status[0], status[1], start[0], start[1]}) close(fd);
  };
  child->statusFd = status[1];
  child->startFd = start[0];

  int pidfd = -1;
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_PIDFD | plan.cloneFlags;
  args.pidfd = (uint64_t)(uintptr_t)&pidfd;
  args.exit_signal = SIGCHLD;
  if (plan.cgroupDirFd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = (uint64_t)plan.cgroupDirFd;
  }
  if (plan.sharedMemory) {
    // No page-table copy of the (large) Node process: the child runs on its own stack in our address space.
    void* stack = mmap(nullptr, kChildStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
      int e = errno;
      closePipes();
      throw errnoError(env, "mmap", e);
    }
    child->stack = stack;
    child->stackSize = kChildStack;
    args.flags |= CLONE_VM;
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = kChildStack;
  }

  // A pid namespace applies to children only, so the parent enters it for the clone and returns right after.
  int ownPidns = -1;
  if (plan.pidnsFd >= 0) {
    ownPidns = open("/proc/thread-self/ns/pid", O_RDONLY | O_CLOEXEC);
    if (ownPidns < 0 || setns(plan.pidnsFd, CLONE_NEWPID) < 0) {
      int e = errno;
      if (ownPidns >= 0) close(ownPidns);
      closePipes();
      throw errnoError(env, "setns(pid)", e);
    }
  }

  // The child must never run one of Node's signal handlers: block everything across clone, the child resets
  // dispositions and unblocks just before execve.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = berth_clone3(&args, sizeof args, childMain, child.get());
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (ownPidns >= 0) {
    // Failing to return would put every later child of this process in the container's pid namespace.
    if (setns(ownPidns, CLONE_NEWPID) < 0) abort();
    close(ownPidns);
  }
  close(status[1]);
  close(start[0]);
  if (pid < 0) {
    close(status[0]);
    close(start[1]);
    throw errnoError(env, "clone3", (int)-pid);
  }
  fcntl(status[0], F_SETFL, O_NONBLOCK);
  children[pid] = std::move(child);

  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, (double)pid));
  out.Set("pidfd", Napi::Number::New(env, pidfd));
  out.Set("statusFd", Napi::Number::New(env, status[0]));
  out.Set("startFd", Napi::Number::New(env, start[1]));
  return out;
}

// Frees what the child of `pid` was reading. Call only after its status pipe hit EOF or it was reaped.
Napi::Value Release(const Napi::CallbackInfo& info) {
  long pid = (long)info[0].As<Napi::Number>().Int64Value();
  children.erase(pid);
  return info.Env().Undefined();
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

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw errnoError(env, "pipe2", errno);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, fds[0]));
  out.Set(1u, Napi::Number::New(env, fds[1]));
  return out;
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
  exports.Set("release", Napi::Function::New(env, Release));
  exports.Set("readStatus", Napi::Function::New(env, ReadStatus));
  exports.Set("waitid", Napi::Function::New(env, Waitid));
  exports.Set("pidfdSendSignal", Napi::Function::New(env, PidfdSendSignal));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen));
  exports.Set("pipe", Napi::Function::New(env, Pipe));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("stepNames", Napi::Function::New(env, StepNames));
  exports.Set("Poller", Poller::Init(env));
  return exports;
}


}  // namespace berth

static Napi::Object InitBerth(Napi::Env env, Napi::Object exports) { return berth::Init(env, exports); }
NODE_API_MODULE(berth, InitBerth)
