// The container init's work between clone3() and execve(), run by berth-init (a fresh single-threaded process of
// its own). It still sticks to raw syscalls returning -errno and to data precomputed in the plan: that keeps every
// step explicit and auditable, and keeps the code usable from a freshly cloned child. Every failure is reported
// as {step, errno, index} on the status pipe.
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/keyctl.h>
#include <linux/magic.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <linux/prctl.h>
#include <linux/sched.h>
#include <linux/sockios.h>
#include <poll.h>
#include <net/if.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "plan.h"
#include "rawsys.h"

#ifndef MNT_DETACH
#define MNT_DETACH 2
#endif
#ifndef MS_REC
#define MS_REC 16384
#endif
#ifndef MS_SLAVE
#define MS_SLAVE (1 << 19)
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

namespace berth {
namespace {

template <typename... A>
long sysc(long n, A... args) {
  return sys(n, (long)args...);
}

struct Ctx {
  const Plan& plan;
  int statusFd;
  // In a user namespace the path to the rootfs may not be searchable by the container's root: both are opened
  // before the init becomes that root, and the rootfs is then attached by fd.
  int rootDirFd = -1;   // O_PATH of the directory the rootfs is mounted on
  int rootTreeFd = -1;  // a clone of the rootfs directory (when it is bound, not an overlay or a prepared tree)
};

[[noreturn]] void die(const Ctx& c, Step step, int err, int index) {
  Message m{MSG_ERROR, step, err, index};
  // A short write cannot be retried meaningfully; the parent treats a torn message as a protocol error.
  sysc(SYS_write, c.statusFd, &m, sizeof m);
  sysc(SYS_exit_group, 127);
  __builtin_unreachable();
}

#define CHECK(ctx, expr, step, index)                  \
  do {                                                 \
    long check_rc_ = (long)(expr);                     \
    if (check_rc_ < 0) die((ctx), (step), (int)-check_rc_, (index)); \
  } while (0)

long sysOpenat2(int dirfd, const char* path, uint64_t flags, uint64_t mode, uint64_t resolve) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = flags;
  how.mode = mode;
  how.resolve = resolve;
  return sysc(SYS_openat2, dirfd, path, &how, sizeof how);
}

// Opens a path inside the container root; symlinks are followed but can never leave the root.
int openInRoot(int rootFd, const char* path, uint64_t flags) {
  while (*path == '/') path++;
  if (*path == 0) path = ".";
  return (int)sysOpenat2(rootFd, path, flags | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

void closeFd(int fd) {
  if (fd >= 0) sysc(SYS_close, fd);
}

// Copies the directory part of `path` into `dir` and returns a pointer to the last component inside `path`, or
// nullptr when the directory part does not fit.
const char* splitPath(const char* path, char* dir, size_t dirSize) {
  const char* slash = strrchr(path, '/');
  if (!slash) {
    dir[0] = '/';
    dir[1] = 0;
    return path;
  }
  size_t n = (size_t)(slash - path);
  if (n == 0) n = 1;  // parent of "/x" is "/"
  if (n >= dirSize) return nullptr;
  memcpy(dir, path, n);
  dir[n] = 0;
  return slash + 1;
}

// mkdir -p inside the root: each missing component is created with mkdirat() relative to its already-resolved
// parent, so nothing is ever created outside the root. Returns an O_PATH fd of the directory or -errno.
int ensureDirInRoot(int rootFd, const char* path) {
  int fd = openInRoot(rootFd, path, O_PATH | O_DIRECTORY);
  if (fd != -ENOENT) return fd;
  char buf[4096];
  size_t len = strlen(path);
  if (len >= sizeof buf) return -ENAMETOOLONG;
  memcpy(buf, path, len + 1);
  int parent = (int)sysc(SYS_fcntl, rootFd, F_DUPFD_CLOEXEC, 3);
  if (parent < 0) return parent;
  size_t i = 0;
  while (i < len) {
    while (i < len && buf[i] == '/') i++;
    if (i >= len) break;
    size_t start = i;
    while (i < len && buf[i] != '/') i++;
    char saved = buf[i];
    buf[i] = 0;
    int next = openInRoot(rootFd, buf, O_PATH | O_DIRECTORY);
    if (next == -ENOENT) {
      int rc = (int)sysc(SYS_mkdirat, parent, buf + start, 0755);
      if (rc < 0 && rc != -EEXIST) {
        closeFd(parent);
        return rc;
      }
      next = openInRoot(rootFd, buf, O_PATH | O_DIRECTORY);
    }
    buf[i] = saved;
    if (next < 0) {
      closeFd(parent);
      return next;
    }
    closeFd(parent);
    parent = next;
  }
  return parent;
}

// Resolves (creating if needed) a mount target inside the root and returns an O_PATH fd to it.
int ensureTargetInRoot(int rootFd, const char* path, bool isFile, bool refuseSymlink) {
  if (!isFile) {
    if (refuseSymlink) {
      int fd = openInRoot(rootFd, path, O_PATH | O_NOFOLLOW);
      if (fd >= 0) {
        struct stat st;
        if (sysc(SYS_fstat, fd, &st) == 0 && S_ISLNK(st.st_mode)) {
          closeFd(fd);
          return -ELOOP;
        }
        closeFd(fd);
      }
    }
    return ensureDirInRoot(rootFd, path);
  }
  int fd = openInRoot(rootFd, path, O_PATH | (refuseSymlink ? O_NOFOLLOW : 0));
  if (fd >= 0) {
    struct stat st;
    if (refuseSymlink && sysc(SYS_fstat, fd, &st) == 0 && S_ISLNK(st.st_mode)) {
      closeFd(fd);
      return -ELOOP;
    }
    return fd;
  }
  if (fd != -ENOENT) return fd;
  char dir[4096];
  const char* name = splitPath(path, dir, sizeof dir);
  if (!name) return -ENAMETOOLONG;
  int parent = ensureDirInRoot(rootFd, dir);
  if (parent < 0) return parent;
  // O_PATH parents cannot be used for O_CREAT; reopen as a real directory fd.
  int dirFd = (int)sysOpenat2(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0);
  closeFd(parent);
  if (dirFd < 0) return dirFd;
  // O_EXCL: never open (and so never block on or touch) something another process put there meanwhile.
  int created = (int)sysc(SYS_openat, dirFd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (created < 0 && created != -EEXIST) {
    closeFd(dirFd);
    return created;
  }
  closeFd(created);
  closeFd(dirFd);
  return openInRoot(rootFd, path, O_PATH | (refuseSymlink ? O_NOFOLLOW : 0));
}

int attachMount(int mountFd, int targetFd) {
  return (int)sysc(SYS_move_mount, mountFd, "", targetFd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

int setMountAttrs(int fd, uint64_t set, uint64_t clear, uint64_t propagation, bool recursive) {
  if (!set && !clear && !propagation) return 0;
  struct mount_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.attr_set = set;
  attr.attr_clr = clear;
  attr.propagation = propagation;
  return (int)sysc(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr);
}

// Creates a detached mount for one plan entry (new filesystem through fsopen/fsconfig/fsmount, or a clone of a
// host tree for binds). The caller attaches it by fd, so no path is ever re-resolved.
int makeMount(const Mount& m) {
  // Made by the parent, which could reach a source the container's root cannot: already what it must be.
  if (m.kind == MOUNT_BIND && m.treeFd >= 0) return m.treeFd;
  if (m.kind == MOUNT_BIND) {
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (m.recursive ? AT_RECURSIVE : 0);
    int fd = (int)sysc(SYS_open_tree, AT_FDCWD, m.source.c_str(), flags);
    if (fd < 0) return fd;
    int rc = setMountAttrs(fd, m.attrSet, m.attrClear, m.propagation, m.recursive);
    if (rc < 0) {
      closeFd(fd);
      return rc;
    }
    return fd;
  }
  int fsfd = (int)sysc(SYS_fsopen, m.fstype.c_str(), FSOPEN_CLOEXEC);
  if (fsfd < 0) return fsfd;
  int rc = 0;
  if (!m.source.empty()) rc = (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "source", m.source.c_str(), 0);
  for (size_t i = 0; rc == 0 && i < m.options.size(); i++) {
    const FsOption& o = m.options[i];
    rc = o.flag ? (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, o.key.c_str(), nullptr, 0)
                : (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, o.key.c_str(), o.value.c_str(), 0);
  }
  if (rc == 0) rc = (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0);
  if (rc < 0) {
    closeFd(fsfd);
    return rc;
  }
  int fd = (int)sysc(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, (unsigned)m.attrSet);
  closeFd(fsfd);
  if (fd >= 0 && m.propagation) {
    rc = setMountAttrs(fd, 0, 0, m.propagation, false);
    if (rc < 0) {
      closeFd(fd);
      return rc;
    }
  }
  return fd;
}

int makeReadonlyTmpfs() {
  int fsfd = (int)sysc(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
  if (fsfd < 0) return fsfd;
  int fd = (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0);
  if (fd == 0) fd = (int)sysc(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
  closeFd(fsfd);
  return fd;
}

// Builds the overlay with one fsconfig call per lower layer ("lowerdir+", Linux 6.8): no option string to outgrow
// a page, however many layers the image has.
int makeOverlay(const Plan& p) {
  int fsfd = (int)sysc(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
  if (fsfd < 0) return fsfd;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < p.overlayLowers.size(); i++)
    rc = (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "lowerdir+", p.overlayLowers[i].c_str(), 0);
  if (rc == 0) rc = (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "upperdir", p.overlayUpper.c_str(), 0);
  if (rc == 0) rc = (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "workdir", p.overlayWork.c_str(), 0);
  if (rc == 0) rc = (int)sysc(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0);
  int fd = rc < 0 ? rc : (int)sysc(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, 0);
  closeFd(fsfd);
  return fd;
}

void resetSignals(const Ctx& c) {
  struct KernelSigaction {
    void* handler;
    unsigned long flags;
    void* restorer;
    uint64_t mask;
  } dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.handler = nullptr;  // SIG_DFL is 0
  for (int sig = 1; sig < 65; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    long rc = sysc(SYS_rt_sigaction, sig, &dfl, nullptr, 8);
    if (rc < 0 && rc != -EINVAL) die(c, STEP_SIGNALS, (int)-rc, sig);
  }
}

void setupMounts(const Ctx& c) {
  const Plan& p = c.plan;
  // Slave first, whatever was asked: nothing mounted below may propagate back into the host's namespace (on a
  // host whose / is shared, as on every systemd machine). The requested propagation applies after pivot_root.
  CHECK(c, sysc(SYS_mount, nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr), STEP_MOUNT_PROPAGATION, -1);
  if (p.rootfsTreeFd >= 0 || c.rootTreeFd >= 0) {
    // A tree prepared before (by the parent, or by this init before it became the namespace's root): attached
    // by fd on the directory, then held by fd.
    int tree = p.rootfsTreeFd >= 0 ? p.rootfsTreeFd : c.rootTreeFd;
    int dir = c.rootDirFd >= 0 ? c.rootDirFd : (int)sysOpenat2(AT_FDCWD, p.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
    CHECK(c, dir, STEP_ROOTFS, -1);
    CHECK(c, sysc(SYS_move_mount, tree, "", dir, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH), STEP_ROOTFS, -1);
    closeFd(dir);
  } else if (!p.overlayLowers.empty()) {
    // An image's rootfs: its snapshots as overlay lower layers under the container's own upper directory.
    int tree = makeOverlay(p);
    CHECK(c, tree, STEP_ROOTFS, -1);
    CHECK(c, sysc(SYS_move_mount, tree, "", AT_FDCWD, p.rootfs.c_str(), MOVE_MOUNT_F_EMPTY_PATH), STEP_ROOTFS, -1);
    closeFd(tree);
  } else {
    // Bind the rootfs onto itself so it is a mount point pivot_root accepts, then hold it by fd.
    int tree = (int)sysc(SYS_open_tree, AT_FDCWD, p.rootfs.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    CHECK(c, tree, STEP_ROOTFS, -1);
    CHECK(c, sysc(SYS_move_mount, tree, "", AT_FDCWD, p.rootfs.c_str(), MOVE_MOUNT_F_EMPTY_PATH), STEP_ROOTFS, -1);
    closeFd(tree);
  }
  int rootFd;
  if (p.rootfsTreeFd >= 0 || c.rootTreeFd >= 0) {
    int tree = p.rootfsTreeFd >= 0 ? p.rootfsTreeFd : c.rootTreeFd;
    rootFd = (int)sysOpenat2(tree, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
    closeFd(tree);
  } else {
    rootFd = (int)sysOpenat2(AT_FDCWD, p.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
  }
  CHECK(c, rootFd, STEP_ROOTFS, -1);

  for (size_t i = 0; i < p.mounts.size(); i++) {
    const Mount& m = p.mounts[i];
    int target = ensureTargetInRoot(rootFd, m.target.c_str(), m.targetIsFile, m.refuseSymlink);
    CHECK(c, target, STEP_MOUNT_TARGET, (int)i);
    int fd = makeMount(m);
    CHECK(c, fd, STEP_MOUNT, (int)i);
    CHECK(c, attachMount(fd, target), STEP_MOUNT, (int)i);
    closeFd(fd);
    closeFd(target);
  }

  for (size_t i = 0; i < p.devices.size(); i++) {
    const Device& d = p.devices[i];
    char dir[4096];
    const char* name = splitPath(d.path.c_str(), dir, sizeof dir);
    if (!name) die(c, STEP_DEVICE, ENAMETOOLONG, (int)i);
    int parent = ensureDirInRoot(rootFd, dir);
    CHECK(c, parent, STEP_DEVICE, (int)i);
    int dirFd = (int)sysOpenat2(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0);
    CHECK(c, dirFd, STEP_DEVICE, (int)i);
    closeFd(parent);
    dev_t dev = makedev(d.major, d.minor);
    long rc = sysc(SYS_mknodat, dirFd, name, d.mode, dev);
    if (rc < 0) {
      if (rc != -EEXIST) die(c, STEP_DEVICE, (int)-rc, (int)i);
      CHECK(c, sysc(SYS_unlinkat, dirFd, name, 0), STEP_DEVICE, (int)i);
      CHECK(c, sysc(SYS_mknodat, dirFd, name, d.mode, dev), STEP_DEVICE, (int)i);
    }
    CHECK(c, sysc(SYS_fchownat, dirFd, name, d.uid, d.gid, AT_SYMLINK_NOFOLLOW), STEP_DEVICE, (int)i);
    closeFd(dirFd);
  }

  for (size_t i = 0; i < p.symlinks.size(); i++) {
    const Symlink& s = p.symlinks[i];
    char dir[4096];
    const char* name = splitPath(s.path.c_str(), dir, sizeof dir);
    if (!name) die(c, STEP_SYMLINK, ENAMETOOLONG, (int)i);
    int parent = ensureDirInRoot(rootFd, dir);
    CHECK(c, parent, STEP_SYMLINK, (int)i);
    int dirFd = (int)sysOpenat2(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0);
    CHECK(c, dirFd, STEP_SYMLINK, (int)i);
    closeFd(parent);
    long rc = sysc(SYS_symlinkat, s.target.c_str(), dirFd, name);
    if (rc < 0 && rc != -EEXIST) die(c, STEP_SYMLINK, (int)-rc, (int)i);
    closeFd(dirFd);
  }

  if (p.createCwd && !p.cwd.empty()) {
    int fd = ensureDirInRoot(rootFd, p.cwd.c_str());
    CHECK(c, fd, STEP_CHDIR, -1);
    closeFd(fd);
  }

  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the container's tree.
  CHECK(c, sysc(SYS_fchdir, rootFd), STEP_PIVOT_ROOT, -1);
  CHECK(c, sysc(SYS_pivot_root, ".", "."), STEP_PIVOT_ROOT, -1);
  CHECK(c, sysc(SYS_umount2, ".", MNT_DETACH), STEP_PIVOT_ROOT, -1);
  CHECK(c, sysc(SYS_chdir, "/"), STEP_PIVOT_ROOT, -1);
  closeFd(rootFd);
  rootFd = (int)sysOpenat2(AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
  CHECK(c, rootFd, STEP_PIVOT_ROOT, -1);
  if (p.rootPropagation) CHECK(c, sysc(SYS_mount, nullptr, "/", nullptr, p.rootPropagation, nullptr), STEP_MOUNT_PROPAGATION, -1);

  if (!p.sysctls.empty()) {
    // Before masked and read-only paths cover /proc/sys (as runc orders it). Write through a procfs handle we
    // opened and verified ourselves, never through a path the image controls.
    int procFd = openInRoot(rootFd, "/proc", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    CHECK(c, procFd, STEP_SYSCTL, 0);
    struct statfs sfs;
    CHECK(c, sysc(SYS_fstatfs, procFd, &sfs), STEP_SYSCTL, 0);
    if (sfs.f_type != PROC_SUPER_MAGIC) die(c, STEP_SYSCTL, EXDEV, 0);
    for (size_t i = 0; i < p.sysctls.size(); i++) {
      char path[4096];
      const char* prefix = "sys/";
      size_t pl = strlen(prefix), sl = p.sysctls[i].path.size();
      if (pl + sl >= sizeof path) die(c, STEP_SYSCTL, ENAMETOOLONG, (int)i);
      memcpy(path, prefix, pl);
      memcpy(path + pl, p.sysctls[i].path.c_str(), sl + 1);
      int fd = (int)sysOpenat2(procFd, path, O_WRONLY | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_BENEATH);
      CHECK(c, fd, STEP_SYSCTL, (int)i);
      const std::string& v = p.sysctls[i].value;
      CHECK(c, sysc(SYS_write, fd, v.data(), v.size()), STEP_SYSCTL, (int)i);
      closeFd(fd);
    }
    closeFd(procFd);
  }

  if (!p.maskedPaths.empty()) {
    // Mask files with the container's own /dev/null, but only after proving it is the real null device.
    int nullFd = -1;
    for (size_t i = 0; i < p.maskedPaths.size(); i++) {
      int fd = openInRoot(rootFd, p.maskedPaths[i].c_str(), O_PATH | O_NOFOLLOW);
      if (fd < 0) {
        if (fd == -ENOENT || fd == -ENOTDIR) continue;
        die(c, STEP_MASK_PATH, -fd, (int)i);
      }
      struct stat st;
      CHECK(c, sysc(SYS_fstat, fd, &st), STEP_MASK_PATH, (int)i);
      int mnt;
      if (S_ISDIR(st.st_mode)) {
        mnt = makeReadonlyTmpfs();
      } else if (S_ISLNK(st.st_mode)) {
        closeFd(fd);
        continue;  // a symlink cannot be a mount point; what it points to is masked by its own entry
      } else {
        if (nullFd < 0) {
          nullFd = openInRoot(rootFd, "/dev/null", O_PATH | O_NOFOLLOW);
          struct stat ns;
          if (nullFd < 0) die(c, STEP_MASK_PATH, -nullFd, (int)i);
          if (sysc(SYS_fstat, nullFd, &ns) < 0 || !S_ISCHR(ns.st_mode) || major(ns.st_rdev) != 1 || minor(ns.st_rdev) != 3)
            die(c, STEP_MASK_PATH, ENODEV, (int)i);
        }
        mnt = (int)sysc(SYS_open_tree, nullFd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
      }
      CHECK(c, mnt, STEP_MASK_PATH, (int)i);
      CHECK(c, attachMount(mnt, fd), STEP_MASK_PATH, (int)i);
      closeFd(mnt);
      closeFd(fd);
    }
    closeFd(nullFd);
  }

  for (size_t i = 0; i < p.readonlyPaths.size(); i++) {
    int fd = openInRoot(rootFd, p.readonlyPaths[i].c_str(), O_PATH | O_NOFOLLOW);
    if (fd < 0) {
      if (fd == -ENOENT || fd == -ENOTDIR) continue;
      die(c, STEP_READONLY_PATH, -fd, (int)i);
    }
    int mnt = (int)sysc(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
    CHECK(c, mnt, STEP_READONLY_PATH, (int)i);
    CHECK(c, setMountAttrs(mnt, MOUNT_ATTR_RDONLY, 0, 0, true), STEP_READONLY_PATH, (int)i);
    CHECK(c, attachMount(mnt, fd), STEP_READONLY_PATH, (int)i);
    closeFd(mnt);
    closeFd(fd);
  }

  if (p.readonlyRoot) {
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_RDONLY;
    CHECK(c, sysc(SYS_mount_setattr, rootFd, "", AT_EMPTY_PATH, &attr, sizeof attr), STEP_READONLY_ROOT, -1);
  }
  closeFd(rootFd);
}

// Opens a pty in the devpts the process sees at /dev/pts (the container's own instance), hands the master to the
// parent and returns the slave. The slave is opened through the master (TIOCGPTPEER), never by path, so nothing
// in the container can swap another file in; it belongs to the container's user so that it may reopen it.
int setupConsole(const Ctx& c) {
  const Plan& p = c.plan;
  // An exec that joined a user namespace still has the host's uid, unmapped there: the terminal it opened would
  // belong to nobody the namespace knows, and could not be given to the container's user. Become the namespace's
  // root first (the user is set later, as for every process).
  if (sysc(SYS_geteuid) != 0) {
    CHECK(c, sysc(SYS_setresgid, 0, 0, 0), STEP_CONSOLE, 7);
    CHECK(c, sysc(SYS_setresuid, 0, 0, 0), STEP_CONSOLE, 7);
  }
  // The container's devpts's own ptmx, reached without following symlinks: /dev is writable by the container's
  // root, and an exec joins a running container, whose /dev/ptmx could by then point anywhere (a FIFO to hang
  // on, a device node). Whatever was opened must be a devpts.
  int master = (int)sysOpenat2(AT_FDCWD, "/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS);
  CHECK(c, master, STEP_CONSOLE, 0);
  struct statfs sfs;
  CHECK(c, sysc(SYS_fstatfs, master, &sfs), STEP_CONSOLE, 0);
  if (sfs.f_type != DEVPTS_SUPER_MAGIC) die(c, STEP_CONSOLE, EXDEV, 0);
  int unlock = 0;
  CHECK(c, sysc(SYS_ioctl, master, TIOCSPTLCK, &unlock), STEP_CONSOLE, 1);
  int slave = (int)sysc(SYS_ioctl, master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  CHECK(c, slave, STEP_CONSOLE, 2);
  if (p.setUser) CHECK(c, sysc(SYS_fchown, slave, p.uid, -1), STEP_CONSOLE, 3);
  if (p.consoleMount) {
    // /dev/console is the terminal too, as in Docker: a bind of the slave on a file made for it.
    int root = (int)sysc(SYS_openat, AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    CHECK(c, root, STEP_CONSOLE, 4);
    int target = ensureTargetInRoot(root, "/dev/console", true, true);
    CHECK(c, target, STEP_CONSOLE, 4);
    int tree = (int)sysc(SYS_open_tree, slave, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    CHECK(c, tree, STEP_CONSOLE, 4);
    CHECK(c, attachMount(tree, target), STEP_CONSOLE, 4);
    closeFd(tree);
    closeFd(target);
    closeFd(root);
  }
  char byte = 0;
  struct iovec iov = {&byte, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &master, sizeof(int));
  long n;
  do n = sysc(SYS_sendmsg, p.consoleSocketFd, &msg, MSG_NOSIGNAL);
  while (n == -EINTR);
  CHECK(c, n, STEP_CONSOLE, 5);
  closeFd(master);
  closeFd(p.consoleSocketFd);
  return slave;
}

// The terminal as stdin, stdout and stderr, and as the controlling terminal of the init's session.
void setupConsoleStdio(const Ctx& c, int slave) {
  for (int i = 0; i < 3; i++) CHECK(c, sysc(SYS_dup3, slave, i, 0), STEP_STDIO, i);
  closeFd(slave);
  CHECK(c, sysc(SYS_ioctl, 0, TIOCSCTTY, 0), STEP_CONSOLE, 6);
}

void setupStdio(const Ctx& c) {
  // Move sources out of the 0..2 range first so that e.g. {1, 0, 2} cannot clobber itself.
  int tmp[3];
  for (int i = 0; i < 3; i++) {
    tmp[i] = -1;
    int src = c.plan.stdioFds[i];
    if (src < 0) continue;
    tmp[i] = (int)sysc(SYS_fcntl, src, F_DUPFD_CLOEXEC, 3);
    CHECK(c, tmp[i], STEP_STDIO, i);
  }
  for (int i = 0; i < 3; i++) {
    if (tmp[i] < 0) continue;
    CHECK(c, sysc(SYS_dup3, tmp[i], i, 0), STEP_STDIO, i);
    closeFd(tmp[i]);
  }
  for (int i = 0; i < 3; i++)
    if (c.plan.stdioFds[i] > 2) closeFd(c.plan.stdioFds[i]);
}

void loadSeccomp(const Ctx& c) {
  const Plan& p = c.plan;
  struct sock_fprog prog;
  prog.len = (unsigned short)(p.seccomp.size() / sizeof(struct sock_filter));
  prog.filter = (struct sock_filter*)p.seccomp.data();
  CHECK(c, sysc(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p.seccompFlags, &prog), STEP_SECCOMP, -1);
}

void setCredentials(const Ctx& c) {
  const Plan& p = c.plan;
  if (p.setCaps) {
    for (uint32_t cap = 0; cap <= p.lastCap && cap < 64; cap++) {
      if (p.capBounding & (1ULL << cap)) continue;
      long rc = sysc(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
      if (rc < 0 && rc != -EINVAL) die(c, STEP_CAPS_BOUNDING, (int)-rc, (int)cap);
    }
  }
  if (p.setUser) {
    // Keep the permitted set across the uid change; the effective set is restored by capset below.
    CHECK(c, sysc(SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0), STEP_USER, -1);
    CHECK(c, sysc(SYS_setgroups, p.groups.size(), p.groups.data()), STEP_USER, 0);
    CHECK(c, sysc(SYS_setresgid, p.gid, p.gid, p.gid), STEP_USER, 1);
    CHECK(c, sysc(SYS_setresuid, p.uid, p.uid, p.uid), STEP_USER, 2);
    CHECK(c, sysc(SYS_prctl, PR_SET_KEEPCAPS, 0, 0, 0, 0), STEP_USER, -1);
  }
  if (p.setCaps) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    data[0].effective = (uint32_t)p.capEffective;
    data[1].effective = (uint32_t)(p.capEffective >> 32);
    data[0].permitted = (uint32_t)p.capPermitted;
    data[1].permitted = (uint32_t)(p.capPermitted >> 32);
    data[0].inheritable = (uint32_t)p.capInheritable;
    data[1].inheritable = (uint32_t)(p.capInheritable >> 32);
    CHECK(c, sysc(SYS_capset, &hdr, data), STEP_CAPS, -1);
    CHECK(c, sysc(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), STEP_CAPS, -1);
    for (uint32_t cap = 0; cap < 64; cap++) {
      if (!(p.capAmbient & (1ULL << cap))) continue;
      CHECK(c, sysc(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), STEP_CAPS, (int)cap);
    }
  }
}

// Formats "0" into the cgroup.procs files: writing 0 moves the writer itself, so no pid formatting is needed.
void joinCgroups(const Ctx& c) {
  for (size_t i = 0; i < c.plan.cgroupProcsFds.size(); i++) {
    CHECK(c, sysc(SYS_write, c.plan.cgroupProcsFds[i], "0", 1), STEP_CGROUP, (int)i);
    closeFd(c.plan.cgroupProcsFds[i]);
  }
}

// The owner may have died just before the parent death signal was (re)armed; the status pipe tells: its read end
// is gone.
void exitIfOwnerGone(const Ctx& c) {
  struct pollfd pfd = {c.statusFd, POLLOUT, 0};
  if (sysc(SYS_poll, &pfd, 1, 0) > 0 && (pfd.revents & (POLLERR | POLLHUP))) sysc(SYS_exit_group, 0);
}

// Runs first in a new user namespace, while the init still has the host's uid (unmapped here) and the
// capabilities it kept across execve as ambient ones: join the cgroup and open the rootfs (both as the host's
// root), wait until the parent has written the id maps, then become the namespace's root with no supplementary
// groups (the host's would otherwise stay) and nothing left in the inheritable and ambient sets.
void enterUserNamespace(Ctx& c, int startFd) {
  const Plan& p = c.plan;
  joinCgroups(c);
  if (p.mountNamespace) {
    c.rootDirFd = (int)sysOpenat2(AT_FDCWD, p.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, 0, 0);
    CHECK(c, c.rootDirFd, STEP_ROOTFS, -1);
    if (p.rootfsTreeFd < 0 && p.overlayLowers.empty()) {
      c.rootTreeFd = (int)sysc(SYS_open_tree, c.rootDirFd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
      CHECK(c, c.rootTreeFd, STEP_ROOTFS, -1);
    }
  }
  char b;
  long n;
  do n = sysc(SYS_read, startFd, &b, 1);
  while (n == -EINTR);
  if (n != 1) sysc(SYS_exit_group, 0);  // the owner went away before writing the maps
  CHECK(c, sysc(SYS_setgroups, 0, nullptr), STEP_USERNS, 0);
  CHECK(c, sysc(SYS_setresgid, 0, 0, 0), STEP_USERNS, 1);
  CHECK(c, sysc(SYS_setresuid, 0, 0, 0), STEP_USERNS, 2);
  CHECK(c, sysc(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), STEP_USERNS, 3);
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  CHECK(c, sysc(SYS_capget, &hdr, data), STEP_USERNS, 4);
  data[0].inheritable = data[1].inheritable = 0;
  CHECK(c, sysc(SYS_capset, &hdr, data), STEP_USERNS, 4);
}

void loopbackUp(const Ctx& c) {
  int s = (int)sysc(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  CHECK(c, s, STEP_LOOPBACK, -1);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, "lo", 3);
  CHECK(c, sysc(SYS_ioctl, s, SIOCGIFFLAGS, &ifr), STEP_LOOPBACK, -1);
  ifr.ifr_flags |= IFF_UP;
  CHECK(c, sysc(SYS_ioctl, s, SIOCSIFFLAGS, &ifr), STEP_LOOPBACK, -1);
  closeFd(s);
}

void verifyCwd(const Ctx& c) {
  // A cwd outside the root shows as "(unreachable)..." (CVE-2024-21626): refuse anything not absolute.
  char buf[4096];
  long n = sysc(SYS_getcwd, buf, sizeof buf);
  if (n < 0) die(c, STEP_CHDIR, (int)-n, -1);
  if (buf[0] != '/') die(c, STEP_CHDIR, ENOENT, -1);
}

}  // namespace

[[noreturn]] void runChild(const Plan& p, int statusFd, int startFd) {
  Ctx c{p, statusFd};
  // Non-dumpable until execve: no process that later joins the container may ptrace us or read our memory.
  sysc(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  resetSignals(c);
  if (p.userns) enterUserNamespace(c, startFd);
  if (p.unshareFlags) CHECK(c, sysc(SYS_unshare, p.unshareFlags), STEP_USERNS, -1);
  // A session of its own, as runc: no controlling terminal shared with the host (TIOCSTI, ^C).
  CHECK(c, sysc(SYS_setsid), STEP_SIGNALS, -1);
  // And a session keyring of its own: never the keys of the Node process that started it.
  CHECK(c, sysc(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, 0), STEP_SIGNALS, -1);
  if (p.parentDeathSignal) CHECK(c, sysc(SYS_prctl, PR_SET_PDEATHSIG, p.parentDeathSignal, 0, 0, 0), STEP_PDEATHSIG, -1);
  if (!p.userns) joinCgroups(c);
  for (size_t i = 0; i < p.setnsFds.size(); i++) {
    CHECK(c, sysc(SYS_setns, p.setnsFds[i], 0), STEP_SETNS, (int)i);
    closeFd(p.setnsFds[i]);
  }
  if (p.unshareCgroup) CHECK(c, sysc(SYS_unshare, CLONE_NEWCGROUP), STEP_UNSHARE_CGROUP, -1);
  if (p.loopbackUp) loopbackUp(c);
  if (p.hasHostname)
    CHECK(c, sysc(SYS_sethostname, p.hostname.data(), p.hostname.size()), STEP_HOSTNAME, -1);
  if (p.hasDomainname)
    CHECK(c, sysc(SYS_setdomainname, p.domainname.data(), p.domainname.size()), STEP_DOMAINNAME, -1);
  sysc(SYS_umask, 0);
  if (p.mountNamespace) setupMounts(c);
  if (p.consoleSocketFd >= 0) setupConsoleStdio(c, setupConsole(c));
  else setupStdio(c);
  // After stdio, when only a handful of fds are open: a low RLIMIT_NOFILE must not break the setup.
  for (size_t i = 0; i < p.rlimits.size(); i++) {
    struct rlimit64 {
      uint64_t cur, max;
    } lim{p.rlimits[i].soft, p.rlimits[i].hard};
    CHECK(c, sysc(SYS_prlimit64, 0, p.rlimits[i].resource, &lim, nullptr), STEP_RLIMIT, (int)i);
  }
  bool seccompEarly = !p.seccomp.empty() && !p.noNewPrivs;
  if (seccompEarly) loadSeccomp(c);  // needs CAP_SYS_ADMIN without no_new_privs, so before caps are dropped
  setCredentials(c);
  if (p.noNewPrivs) CHECK(c, sysc(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), STEP_NO_NEW_PRIVS, -1);
  // Changing credentials cleared the parent death signal; set it again, then make sure the owner did not die in
  // the window.
  if (p.parentDeathSignal) {
    CHECK(c, sysc(SYS_prctl, PR_SET_PDEATHSIG, p.parentDeathSignal, 0, 0, 0), STEP_PDEATHSIG, -1);
    exitIfOwnerGone(c);
  }
  if (!p.cwd.empty()) {
    CHECK(c, sysc(SYS_chdir, p.cwd.c_str()), STEP_CHDIR, -1);
    verifyCwd(c);
  }
  sysc(SYS_umask, p.umask);

  if (p.waitForStart) {
    Message ready{MSG_READY, 0, 0, -1};
    CHECK(c, sysc(SYS_write, statusFd, &ready, sizeof ready), STEP_SYNC, -1);
    char b;
    long n;
    do n = sysc(SYS_read, startFd, &b, 1);
    while (n == -EINTR);
    if (n != 1) sysc(SYS_exit_group, 0);  // the owner went away or removed us before start
  }
  closeFd(startFd);

  // Every inherited fd beyond stdio is closed by execve (CVE-2024-21626); the status pipe stays usable until then.
  CHECK(c, sysc(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC), STEP_EXEC, -1);
  if (!p.seccomp.empty() && !seccompEarly) loadSeccomp(c);
  uint64_t empty = 0;
  sysc(SYS_rt_sigprocmask, SIG_SETMASK, &empty, nullptr, 8);

  // PATH search over candidates computed in the parent; the files are looked up in the container's root.
  int denied = -1;
  for (size_t i = 0; i < p.execCandidates.size(); i++) {
    int e = (int)-sysc(SYS_execve, p.execCandidates[i].c_str(), p.argvPtrs.data(), p.envPtrs.data());
    if (e == ENOENT || e == ENOTDIR) continue;
    if (e == EACCES) {
      if (denied < 0) denied = (int)i;
      continue;
    }
    die(c, STEP_EXEC, e, (int)i);
  }
  if (denied >= 0) die(c, STEP_EXEC, EACCES, denied);
  die(c, STEP_EXEC, ENOENT, -1);
}

}  // namespace berth
