// The executor's input: a flat plan computed entirely in the parent (TypeScript decides, C++ only copies).
// After clone() the child reads these structures and makes raw syscalls; it never allocates.
#pragma once

#include <stdint.h>
#include <string>
#include <vector>

namespace berth {

// Every step the child can fail at. The order is part of the ABI with lib/native.ts, which receives the names
// from the addon (stepNames()) so the two never drift apart.
#define BERTH_STEPS(X)                                                                                           \
  X(SIGNALS, "reset signals")                                                                                    \
  X(CGROUP, "join cgroup")                                                                                       \
  X(SETNS, "join namespace")                                                                                     \
  X(UNSHARE_CGROUP, "unshare cgroup namespace")                                                                  \
  X(LOOPBACK, "bring up loopback")                                                                             \
  X(HOSTNAME, "set hostname")                                                                                    \
  X(DOMAINNAME, "set domainname")                                                                                \
  X(MOUNT_PROPAGATION, "make mounts private")                                                                    \
  X(ROOTFS, "mount rootfs")                                                                                      \
  X(MOUNT_TARGET, "resolve mount target")                                                                        \
  X(MOUNT, "mount")                                                                                              \
  X(DEVICE, "create device")                                                                                     \
  X(SYMLINK, "create symlink")                                                                                   \
  X(PIVOT_ROOT, "pivot_root")                                                                                    \
  X(MASK_PATH, "mask path")                                                                                      \
  X(READONLY_PATH, "make path read-only")                                                                        \
  X(READONLY_ROOT, "make rootfs read-only")                                                                      \
  X(SYSCTL, "write sysctl")                                                                                      \
  X(RLIMIT, "set rlimit")                                                                                        \
  X(STDIO, "set up stdio")                                                                                       \
  X(CAPS_BOUNDING, "drop bounding capabilities")                                                                 \
  X(USER, "set user")                                                                                            \
  X(CAPS, "set capabilities")                                                                                    \
  X(NO_NEW_PRIVS, "set no_new_privs")                                                                            \
  X(PDEATHSIG, "set parent death signal")                                                                        \
  X(CHDIR, "chdir")                                                                                              \
  X(SYNC, "wait for start")                                                                                      \
  X(SECCOMP, "load seccomp filter")                                                                              \
  X(EXEC, "exec")

enum Step : uint32_t {
#define BERTH_STEP_ENUM(id, name) STEP_##id,
  BERTH_STEPS(BERTH_STEP_ENUM)
#undef BERTH_STEP_ENUM
      STEP_COUNT
};

// Messages on the status pipe, child → parent. EOF after READY means execve succeeded (the pipe is O_CLOEXEC).
enum MessageKind : uint32_t { MSG_READY = 1, MSG_ERROR = 2 };
struct Message {
  uint32_t kind;
  uint32_t step;
  int32_t err;    // errno
  int32_t index;  // which mount / device / path / candidate failed, -1 when not applicable
};

enum MountKind : uint32_t { MOUNT_BIND = 0, MOUNT_FS = 1 };

struct FsOption {
  std::string key;
  std::string value;
  bool flag;  // a bare option like "newinstance": FSCONFIG_SET_FLAG
};

struct Mount {
  MountKind kind;
  std::string source;  // bind: host path (or path inside the container when sourceInRoot); fs: source name
  std::string fstype;
  std::string target;  // absolute path inside the container's rootfs
  bool targetIsFile;   // create a file (not a directory) when the target is missing
  bool recursive;      // rbind
  bool refuseSymlink;  // fail with ELOOP when the target itself is a symlink (proc, sysfs)
  uint64_t attrSet;    // MOUNT_ATTR_* flags
  uint64_t attrClear;
  uint64_t propagation;  // MS_SHARED / MS_SLAVE / MS_PRIVATE / MS_UNBINDABLE, 0 = leave
  std::vector<FsOption> options;
};

struct Device {
  std::string path;  // absolute, inside the container
  uint32_t mode;     // includes S_IFCHR / S_IFBLK
  uint32_t major, minor;
  uint32_t uid, gid;
};

struct Symlink {
  std::string target;
  std::string path;
};

struct Rlimit {
  uint32_t resource;
  uint64_t soft, hard;
};

struct Sysctl {
  std::string path;  // under /proc/sys, e.g. "net/ipv4/ip_forward"
  std::string value;
};

struct Plan {
  uint64_t cloneFlags = 0;  // CLONE_NEW* applied by clone3
  bool unshareCgroup = false;
  int cgroupDirFd = -1;  // v2: CLONE_INTO_CGROUP target
  std::vector<int> cgroupProcsFds;  // v1: write "0" to each to join
  std::vector<int> setnsFds;        // namespaces to join (nstype 0: the fd says which)
  int pidnsFd = -1;                 // a pid namespace to start in: joined by the parent around clone3
  bool loopbackUp = false;          // bring "lo" up in a new network namespace
  bool sharedMemory = false;        // clone with CLONE_VM (no page-table copy); see executor.cc for when it is safe
  int stdioFds[3] = {-1, -1, -1};
  bool hasHostname = false;
  std::string hostname;
  bool hasDomainname = false;
  std::string domainname;

  bool mountNamespace = false;  // whether to do any filesystem work at all
  uint64_t rootPropagation = 0;   // applied recursively to "/" before anything else
  std::string rootfs;
  std::vector<Mount> mounts;
  std::vector<Device> devices;
  std::vector<Symlink> symlinks;
  std::vector<std::string> maskedPaths;
  std::vector<std::string> readonlyPaths;
  bool readonlyRoot = false;
  bool createCwd = false;  // mkdir -p the working directory inside the root before pivot_root
  std::vector<Sysctl> sysctls;

  std::vector<Rlimit> rlimits;
  bool setUser = false;
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
  bool setCaps = false;
  uint32_t lastCap = 40;
  uint64_t capBounding = 0, capEffective = 0, capPermitted = 0, capInheritable = 0, capAmbient = 0;
  bool noNewPrivs = false;
  int parentDeathSignal = 0;
  std::string cwd;
  bool waitForStart = true;
  std::vector<uint8_t> seccomp;  // a BPF program (struct sock_filter[]), empty = none
  uint32_t seccompFlags = 0;

  std::vector<std::string> execCandidates;
  std::vector<std::string> argv;
  std::vector<std::string> env;

  // Pointer arrays built once in the parent, read by the child.
  std::vector<char*> argvPtrs;
  std::vector<char*> envPtrs;
  void finalize();
};

// Runs in the child after clone3. Never returns.
[[noreturn]] void runChild(const Plan& plan, int statusFd, int startFd);

const char* stepName(uint32_t step);

}  // namespace berth
