// User namespaces, parent side (see userns.h).
#include "userns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "clone.h"
#include "rawsys.h"

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace berth {
namespace {

Napi::Error errnoError(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  return e;
}

int writeFileAt(int dirFd, const char* name, const std::string& text) {
  int fd = openat(dirFd, name, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  // The kernel takes a map in one write only.
  ssize_t n = write(fd, text.data(), text.size());
  int err = n < 0 ? errno : (n == (ssize_t)text.size() ? 0 : EIO);
  close(fd);
  return -err;
}

// The holder only has to exist while its maps are written and its namespace opened: it shares our memory
// (CLONE_VM) and touches nothing but its own stack.
int holdNamespace(void*) {
  for (;;) sys(SYS_pause);
  return 0;
}

}  // namespace

int writeIdMaps(pid_t pid, const std::string& uidMap, const std::string& gidMap, const std::string& setgroups,
                const char** failed) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d", (int)pid);
  int dir = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    *failed = "/proc/<pid>";
    return -errno;
  }
  int rc = writeFileAt(dir, "uid_map", uidMap);
  if (rc < 0) *failed = "uid_map";
  if (rc == 0 && !setgroups.empty()) {
    rc = writeFileAt(dir, "setgroups", setgroups);
    if (rc < 0) *failed = "setgroups";
  }
  if (rc == 0) {
    rc = writeFileAt(dir, "gid_map", gidMap);
    if (rc < 0) *failed = "gid_map";
  }
  close(dir);
  return rc;
}

Napi::Value UsernsFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string uidMap = info[0].As<Napi::String>().Utf8Value();
  std::string gidMap = info[1].As<Napi::String>().Utf8Value();
  constexpr size_t kStack = 16 * 1024;
  void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) throw errnoError(env, "mmap", errno);
  int pidfd = -1;
  struct clone_args args;
  memset(&args, 0, sizeof args);
  args.flags = CLONE_NEWUSER | CLONE_VM | CLONE_PIDFD;
  args.pidfd = (uint64_t)(uintptr_t)&pidfd;
  args.exit_signal = SIGCHLD;
  args.stack = (uint64_t)(uintptr_t)stack;
  args.stack_size = kStack;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = berth_clone3(&args, sizeof args, holdNamespace, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    munmap(stack, kStack);
    throw errnoError(env, "clone3(CLONE_NEWUSER)", (int)-pid);
  }
  const char* failed = "";
  int rc = writeIdMaps((pid_t)pid, uidMap, gidMap, "", &failed);
  int nsFd = -1;
  if (rc == 0) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/ns/user", pid);
    nsFd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsFd < 0) {
      rc = -errno;
      failed = "ns/user";
    }
  }
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  siginfo_t si;
  while (syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED, nullptr) < 0 && errno == EINTR) {
  }
  close(pidfd);
  munmap(stack, kStack);
  if (rc < 0) throw errnoError(env, std::string("write ") + failed, -rc);
  return Napi::Number::New(env, nsFd);
}

Napi::Value IdmapTree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int usernsFd = info[1].As<Napi::Number>().Int32Value();
  bool recursive = info[2].ToBoolean().Value();
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
  int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path.c_str(), flags);
  if (fd < 0) throw errnoError(env, "open_tree " + path, errno);
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = (uint64_t)usernsFd;
  if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr) < 0) {
    int e = errno;
    close(fd);
    throw errnoError(env, "mount_setattr(MOUNT_ATTR_IDMAP) " + path, e);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value ReadonlyTree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (fd < 0) throw errnoError(env, "open_tree " + path, errno);
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    int e = errno;
    close(fd);
    throw errnoError(env, "mount_setattr(MOUNT_ATTR_RDONLY) " + path, e);
  }
  return Napi::Number::New(env, fd);
}

Napi::Value OverlayTree(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array lowers = info[0].As<Napi::Array>();
  std::string upper = info[1].As<Napi::String>().Utf8Value();
  std::string work = info[2].As<Napi::String>().Utf8Value();
  int fsfd = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
  if (fsfd < 0) throw errnoError(env, "fsopen overlay", errno);
  const char* step = "fsconfig lowerdir+";
  long rc = 0;
  // Layers by fd (Linux 6.13) when they are detached idmapped mounts no path can name, else by path (6.8).
  for (uint32_t i = 0; rc == 0 && i < lowers.Length(); i++) {
    Napi::Value l = lowers.Get(i);
    if (l.IsNumber()) {
      rc = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FD, "lowerdir+", nullptr, l.As<Napi::Number>().Int32Value());
    } else {
      std::string path = l.As<Napi::String>().Utf8Value();
      rc = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "lowerdir+", path.c_str(), 0);
    }
  }
  if (rc == 0) {
    step = "fsconfig upperdir";
    rc = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "upperdir", upper.c_str(), 0);
  }
  if (rc == 0) {
    step = "fsconfig workdir";
    rc = syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "workdir", work.c_str(), 0);
  }
  if (rc == 0) {
    step = "fsconfig create";
    rc = syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0);
  }
  int fd = -1;
  if (rc == 0) {
    step = "fsmount";
    fd = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
    if (fd < 0) rc = -1;
  }
  int e = errno;
  close(fsfd);
  if (rc < 0) throw errnoError(env, step, e);
  return Napi::Number::New(env, fd);
}

}  // namespace berth
