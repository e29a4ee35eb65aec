// The executor's input: a flat plan computed entirely in the parent (TypeScript decides, C++ only copies).
// The addon encodes it into a memfd; berth-init (a static helper exec'd from a sealed memfd right after clone)
// decodes it and carries it out. visitPlan() lists every field once, for both directions.
#pragma once

#include <stdint.h>
#include <string>
#include <vector>

namespace berth {

// Every step the child can fail at. The order is part of the ABI with lib/native.ts, which receives the names
// from the addon (stepNames()) so the two never drift apart.
#define BERTH_STEPS(X)                                                                                           \
  X(SPAWN, "exec berth-init")                                                                                    \
  X(PLAN, "read plan")                                                                                           \
  X(SIGNALS, "reset signals")                                                                                    \
  X(USERNS, "enter user namespace")                                                                              \
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
  X(CONSOLE, "set up the console (pty)")                                                                          \
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
  int treeFd = -1;  // bind: a detached mount the parent made (user namespaces), attached as it is
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

// File descriptors reach berth-init at fixed numbers: the plan, the status pipe, the start pipe, then the fds the
// plan refers to (stdio sources, cgroup.procs, namespaces) in the order the plan lists them.
constexpr int kPlanFd = 3;
constexpr int kStatusFd = 4;
constexpr int kStartFd = 5;
constexpr int kFirstPassedFd = 6;

struct Plan {
  uint64_t cloneFlags = 0;  // CLONE_NEW* applied by clone3 (parent side)
  int cgroupDirFd = -1;     // v2: CLONE_INTO_CGROUP target (parent side only, never passed on)
  int pidnsFd = -1;         // a pid namespace to start in: joined by the parent around clone3 (parent side only)
  // With CLONE_NEWUSER: what spawn writes to /proc/<pid>/{uid_map,setgroups,gid_map} before releasing the child
  // (parent side only; the text is computed in TypeScript).
  std::string uidMap, gidMap, setgroups;

  // A new user namespace: berth-init waits for its id maps (one byte on the start pipe), then becomes its root.
  bool userns = false;
  // A detached mount prepared by the parent (an idmapped rootfs), attached on `rootfs` instead of building one.
  int rootfsTreeFd = -1;
  // CLONE_NEW* the init unshares itself once it is the user namespace's root (so that what the kernel creates
  // with a namespace, like the ipc namespace's mqueue root, is owned by that root rather than by nobody).
  uint64_t unshareFlags = 0;

  bool unshareCgroup = false;
  std::vector<int> cgroupProcsFds;  // v1: write "0" to each to join
  std::vector<int> setnsFds;        // namespaces to join (nstype 0: the fd says which)
  bool loopbackUp = false;          // bring "lo" up in a new network namespace
  int stdioFds[3] = {-1, -1, -1};
  // A terminal: berth-init opens a pty in the container's devpts, sends its master over this unix socket
  // (SCM_RIGHTS) and makes the slave its stdio and controlling terminal. -1: no terminal.
  int consoleSocketFd = -1;
  bool consoleMount = false;  // also bind the slave on /dev/console (the container's init, not exec)
  bool hasHostname = false;
  std::string hostname;
  bool hasDomainname = false;
  std::string domainname;

  bool mountNamespace = false;  // whether to do any filesystem work at all
  uint64_t rootPropagation = 0;   // applied recursively to "/" before anything else
  std::string rootfs;
  // When set, the rootfs is an overlay of these lower directories (top-most first) with upper/work dirs, mounted
  // on `rootfs` (an empty directory) instead of binding `rootfs` itself.
  std::vector<std::string> overlayLowers;
  std::string overlayUpper;
  std::string overlayWork;
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
  uint32_t umask = 022;
  std::string cwd;
  bool waitForStart = true;
  std::vector<uint8_t> seccomp;  // a BPF program (struct sock_filter[]), empty = none
  uint32_t seccompFlags = 0;

  std::vector<std::string> execCandidates;
  std::vector<std::string> argv;
  std::vector<std::string> env;

  // Pointer arrays for execve, built by finalize() after decoding.
  std::vector<char*> argvPtrs;
  std::vector<char*> envPtrs;
  void finalize();
};

// Lists every field berth-init needs, in one order, for the encoder and the decoder alike. `v` is called as
// v(field) for scalars, strings and vectors of them, and recurses through the nested structs.
template <typename V>
void visitPlan(V& v, Plan& p) {
  v(p.unshareCgroup); v(p.cgroupProcsFds); v(p.setnsFds); v(p.loopbackUp);
  v(p.stdioFds[0]); v(p.stdioFds[1]); v(p.stdioFds[2]);
  v(p.hasHostname); v(p.hostname); v(p.hasDomainname); v(p.domainname);
  v(p.mountNamespace); v(p.rootPropagation); v(p.rootfs);
  v(p.overlayLowers); v(p.overlayUpper); v(p.overlayWork);
  v.list(p.mounts, [&](Mount& m) {
    uint32_t kind = m.kind;
    v(kind);
    m.kind = (MountKind)kind;
    v(m.source); v(m.fstype); v(m.target); v(m.targetIsFile); v(m.recursive); v(m.refuseSymlink);
    v(m.attrSet); v(m.attrClear); v(m.propagation);
    v.list(m.options, [&](FsOption& o) { v(o.key); v(o.value); v(o.flag); });
    v(m.treeFd);
  });
  v.list(p.devices, [&](Device& d) { v(d.path); v(d.mode); v(d.major); v(d.minor); v(d.uid); v(d.gid); });
  v.list(p.symlinks, [&](Symlink& s) { v(s.target); v(s.path); });
  v(p.maskedPaths); v(p.readonlyPaths); v(p.readonlyRoot); v(p.createCwd);
  v.list(p.sysctls, [&](Sysctl& s) { v(s.path); v(s.value); });
  v.list(p.rlimits, [&](Rlimit& r) { v(r.resource); v(r.soft); v(r.hard); });
  v(p.setUser); v(p.uid); v(p.gid); v(p.groups);
  v(p.setCaps); v(p.lastCap); v(p.capBounding); v(p.capEffective); v(p.capPermitted); v(p.capInheritable);
  v(p.capAmbient);
  v(p.noNewPrivs); v(p.parentDeathSignal); v(p.umask); v(p.cwd); v(p.waitForStart); v(p.seccomp); v(p.seccompFlags);
  v(p.execCandidates); v(p.argv); v(p.env);
  v(p.userns); v(p.rootfsTreeFd); v(p.unshareFlags);
  v(p.consoleSocketFd); v(p.consoleMount);
}

// Encodes the plan (with its fd fields already renumbered to the fixed numbers above).
std::string encodePlan(Plan& plan);
// Decodes a plan; false when the bytes are not a complete plan of this version.
bool decodePlan(const char* data, size_t size, Plan& plan);

// Carries out the plan in berth-init. Never returns: it execs the program or exits after reporting.
[[noreturn]] void runChild(const Plan& plan, int statusFd, int startFd);

const char* stepName(uint32_t step);

}  // namespace berth
