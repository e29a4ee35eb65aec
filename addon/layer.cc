// Writes of one image layer into a snapshot directory. lib/image/layer.ts parses the tar stream and decides what
// each entry means; this file only performs the filesystem operations, and performs every one of them relative to
// the snapshot's directory fd:
//
//  - an entry's PARENT directory is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so symlinks
//    the layer created are followed the way the container will see them (as Docker and containerd do) but can
//    never lead out of the snapshot: "/" and ".." are clamped to the snapshot root by the kernel;
//  - the FINAL component is never followed: files are created O_EXCL|O_NOFOLLOW after removing what is there,
//    ownership and times use AT_SYMLINK_NOFOLLOW, modes and xattrs go through fds of objects we just created (or
//    fchmodat2 AT_SYMLINK_NOFOLLOW for device nodes and fifos, which we must not open). This is what containerd
//    CVE-2021-32760 and umoci CVE-2021-29136 got wrong.
//
// Operations arrive in batches (one N-API call per few thousand entries or several MiB of data) and run on the
// libuv thread pool, so the event loop keeps decompressing and parsing the next batch meanwhile.
#include "layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif

namespace berth {
namespace {

// Must match OpKind in lib/native.ts.
enum OpKind : uint32_t {
  OP_DIR = 1,
  OP_FILE = 2,       // create a regular file and write `data`; keep it open when !fin
  OP_FILE_DATA = 3,  // more data for the file left open by the previous OP_FILE; close (and finish) when fin
  OP_SYMLINK = 4,
  OP_HARDLINK = 5,
  OP_NODE = 6,      // char/block device or fifo; the type is in mode's S_IFMT bits
  OP_WHITEOUT = 7,  // overlay: a 0:0 char device at path; flat: remove path
  OP_OPAQUE = 8,    // overlay: trusted.overlay.opaque=y on dir; flat: empty the dir except `keep`
  OP_DIRTIMES = 9,  // set the mtime of a directory (done last, after its contents stopped changing)
};

struct Op {
  uint32_t kind = 0;
  std::string path;  // relative, lexically clean, no "..", "." is the root
  std::string link;  // symlink text or hardlink target (relative, clean)
  uint32_t mode = 0, uid = 0, gid = 0, major = 0, minor = 0;
  int64_t sec = 0;
  uint32_t nsec = 0;
  bool fin = true;
  std::vector<std::pair<std::string, std::string>> xattrs;
  std::vector<std::pair<const uint8_t*, size_t>> data;
  std::vector<std::string> keep;
};

// An error of one operation: which op, which syscall, which errno.
struct OpError {
  size_t index;
  std::string what;
  int err;
};

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

int openInRoot(int rootFd, const std::string& path, uint64_t flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = flags | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd;
  do fd = (int)syscall(SYS_openat2, rootFd, path.c_str(), &how, sizeof how);
  while (fd < 0 && errno == EAGAIN);  // EAGAIN: a concurrent rename raced the lookup; the kernel asks to retry
  return fd;
}

void splitPath(const std::string& path, std::string& parent, std::string& name) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    parent = ".";
    name = path;
  } else {
    parent = path.substr(0, slash);
    name = path.substr(slash + 1);
  }
}

// Removes `name` in `dirFd` (recursively for a directory) without ever following a symlink: descends with
// O_NOFOLLOW|O_DIRECTORY and unlinks relative to each directory fd.
int removeAt(int dirFd, const char* name) {
  if (unlinkat(dirFd, name, 0) == 0 || errno == ENOENT) return 0;
  if (errno != EISDIR && errno != EPERM) return -1;  // unlink(2) reports EISDIR (EPERM on some fs) for directories
  int fd = openat(dirFd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  DIR* d = fdopendir(fd);
  if (!d) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  int rc = 0;
  while (struct dirent* ent = readdir(d)) {
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    if (removeAt(dirfd(d), ent->d_name) < 0) {
      rc = -1;
      break;
    }
  }
  int e = errno;
  closedir(d);
  if (rc < 0) {
    errno = e;
    return -1;
  }
  return unlinkat(dirFd, name, AT_REMOVEDIR);
}

int chmodNoFollow(int dirFd, const char* name, mode_t mode) {
  if (syscall(SYS_fchmodat2, dirFd, name, mode, AT_SYMLINK_NOFOLLOW) == 0) return 0;
  if (errno != ENOSYS) return -1;
  // Kernels before 6.6: plain fchmodat follows symlinks, so check first. Nothing else writes into a snapshot
  // being applied, so the object we just created cannot be swapped for a symlink in between.
  struct stat st;
  if (fstatat(dirFd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return -1;
  if (S_ISLNK(st.st_mode)) {
    errno = ELOOP;
    return -1;
  }
  return fchmodat(dirFd, name, mode, 0);
}

class Applier {
 public:
  Applier(int rootFd, bool flat, int pendingFd) : rootFd_(rootFd), flat_(flat), pending_(pendingFd) {}
  ~Applier() {
    // Only reached with a file still open after an error: the caller discards the snapshot.
    if (pending_ >= 0) close(pending_);
  }

  // Runs `ops`; returns the fd of a file still being written (or -1). Throws OpError.
  int run(std::vector<Op>& ops) {
    for (index_ = 0; index_ < ops.size(); index_++) apply(ops[index_]);
    int fd = pending_;
    pending_ = -1;
    return fd;
  }

 private:
  [[noreturn]] void fail(const char* what, int err = errno) { throw OpError{index_, what, err}; }

  // The parent directory of `path`, created (0755, root-owned, like Docker) when the layer did not list it.
  int parentOf(const std::string& path, std::string& name) {
    std::string parent;
    splitPath(path, parent, name);
    if (parent == cachedPath_ && cached_.get() >= 0) return cached_.get();
    // A single slot keyed by the parent path is safe: consecutive entries with the same parent only touch that
    // directory's children, never the directory itself, so the fd cannot have been replaced in between.
    cached_.reset(openDir(parent, true));
    cachedPath_ = parent;
    return cached_.get();
  }

  int openDir(const std::string& path, bool create) {
    int fd = openInRoot(rootFd_, path, O_PATH | O_DIRECTORY);
    if (fd >= 0 || errno != ENOENT || !create) {
      if (fd < 0) fail("open parent directory");
      return fd;
    }
    // Walk from the root, creating missing components. Each step re-resolves the prefix in the root, so a
    // component that is a symlink is followed inside the root exactly as in the fast path above.
    Fd dir(openInRoot(rootFd_, ".", O_PATH | O_DIRECTORY));
    if (dir.get() < 0) fail("open root");
    size_t start = 0;
    while (start < path.size()) {
      size_t slash = path.find('/', start);
      if (slash == std::string::npos) slash = path.size();
      std::string prefix = path.substr(0, slash);
      std::string comp = path.substr(start, slash - start);
      int next = openInRoot(rootFd_, prefix, O_PATH | O_DIRECTORY);
      if (next < 0 && errno == ENOENT) {
        if (mkdirat(dir.get(), comp.c_str(), 0755) < 0 && errno != EEXIST) fail("mkdir parent directory");
        next = openInRoot(rootFd_, prefix, O_PATH | O_DIRECTORY);
      }
      if (next < 0) fail("open parent directory");
      dir.reset(next);
      start = slash + 1;
    }
    return dir.release();
  }

  // Ownership, then mode (chown clears setuid/setgid), then xattrs (chown clears security.capability), for an
  // object we hold an fd to.
  void metaFd(int fd, const Op& op) {
    if (fchown(fd, op.uid, op.gid) < 0) fail("fchown");
    if (fchmod(fd, op.mode & 07777) < 0) fail("fchmod");
    for (auto& x : op.xattrs) {
      // ENOTSUP: the snapshot's filesystem cannot store this namespace at all; like Docker, apply the rest.
      if (fsetxattr(fd, x.first.c_str(), x.second.data(), x.second.size(), 0) < 0 && errno != ENOTSUP)
        fail("fsetxattr");
    }
  }

  void xattrsAt(int dirFd, const char* name, const Op& op) {
    if (op.xattrs.empty()) return;
    struct {
      uint64_t value;
      uint32_t size;
      uint32_t flags;
    } args;
    for (auto& x : op.xattrs) {
      args.value = (uint64_t)(uintptr_t)x.second.data();
      args.size = (uint32_t)x.second.size();
      args.flags = 0;
      if (syscall(SYS_setxattrat, dirFd, name, AT_SYMLINK_NOFOLLOW, x.first.c_str(), &args, sizeof args) < 0 &&
          errno != ENOTSUP && errno != EPERM)  // EPERM: user.* is not allowed on symlinks and devices
        fail("setxattrat");
    }
  }

  void timesAt(int dirFd, const char* name, const Op& op) {
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = op.sec;
    ts[0].tv_nsec = ts[1].tv_nsec = op.nsec;
    if (utimensat(dirFd, name, ts, AT_SYMLINK_NOFOLLOW) < 0) fail("utimensat");
  }

  void writeAll(int fd, const Op& op) {
    for (auto& chunk : op.data) {
      const uint8_t* p = chunk.first;
      size_t left = chunk.second;
      while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
          if (errno == EINTR) continue;
          fail("write");
        }
        p += n;
        left -= (size_t)n;
      }
    }
  }

  void finishFile(int fd, const Op& op) {
    metaFd(fd, op);
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = op.sec;
    ts[0].tv_nsec = ts[1].tv_nsec = op.nsec;
    if (futimens(fd, ts) < 0) fail("futimens");
  }

  void apply(const Op& op) {
    std::string name;
    switch (op.kind) {
      case OP_DIR: {
        if (op.path == ".") {  // the layer's own "./" entry: metadata of the snapshot root itself
          Fd fd(openInRoot(rootFd_, ".", O_RDONLY | O_DIRECTORY));
          if (fd.get() < 0) fail("open root");
          metaFd(fd.get(), op);
          return;
        }
        int dir = parentOf(op.path, name);
        if (mkdirat(dir, name.c_str(), 0700) < 0) {
          if (errno != EEXIST) fail("mkdir");
          struct stat st;
          if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) fail("fstatat");
          if (!S_ISDIR(st.st_mode)) {  // a directory entry replaces a non-directory; an existing dir is kept
            if (removeAt(dir, name.c_str()) < 0) fail("remove existing");
            if (mkdirat(dir, name.c_str(), 0700) < 0) fail("mkdir");
          }
        }
        Fd fd(openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (fd.get() < 0) fail("open directory");
        metaFd(fd.get(), op);
        return;
      }
      case OP_FILE: {
        int dir = parentOf(op.path, name);
        const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
        int fd = openat(dir, name.c_str(), flags, 0600);
        if (fd < 0 && errno == EEXIST) {
          if (removeAt(dir, name.c_str()) < 0) fail("remove existing");
          fd = openat(dir, name.c_str(), flags, 0600);
        }
        if (fd < 0) fail("create file");
        pending_ = fd;
        writeAll(fd, op);
        if (op.fin) closePending(op);
        return;
      }
      case OP_FILE_DATA: {
        if (pending_ < 0) fail("write (no open file)", EBADF);
        writeAll(pending_, op);
        if (op.fin) closePending(op);
        return;
      }
      case OP_SYMLINK: {
        int dir = parentOf(op.path, name);
        if (symlinkat(op.link.c_str(), dir, name.c_str()) < 0) {
          if (errno != EEXIST) fail("symlink");
          if (removeAt(dir, name.c_str()) < 0) fail("remove existing");
          if (symlinkat(op.link.c_str(), dir, name.c_str()) < 0) fail("symlink");
        }
        if (fchownat(dir, name.c_str(), op.uid, op.gid, AT_SYMLINK_NOFOLLOW) < 0) fail("lchown");
        xattrsAt(dir, name.c_str(), op);
        timesAt(dir, name.c_str(), op);
        return;
      }
      case OP_HARDLINK: {
        // The target's parent resolves inside the root like any parent; the target itself is not followed
        // (linkat without AT_SYMLINK_FOLLOW links a symlink, not what it points to).
        std::string tparent, tname;
        splitPath(op.link, tparent, tname);
        Fd tdir(openDir(tparent, false));
        int dir = parentOf(op.path, name);
        if (linkat(tdir.get(), tname.c_str(), dir, name.c_str(), 0) < 0) {
          if (errno != EEXIST) fail("link");
          if (removeAt(dir, name.c_str()) < 0) fail("remove existing");
          if (linkat(tdir.get(), tname.c_str(), dir, name.c_str(), 0) < 0) fail("link");
        }
        return;
      }
      case OP_NODE:
      case OP_WHITEOUT: {
        int dir = parentOf(op.path, name);
        if (op.kind == OP_WHITEOUT && flat_) {
          if (removeAt(dir, name.c_str()) < 0) fail("remove whited-out path");
          return;
        }
        mode_t type = op.kind == OP_WHITEOUT ? S_IFCHR : (op.mode & S_IFMT);
        dev_t dev = op.kind == OP_WHITEOUT ? makedev(0, 0) : makedev(op.major, op.minor);
        if (mknodat(dir, name.c_str(), type | 0600, dev) < 0) {
          if (errno != EEXIST) fail("mknod");
          if (removeAt(dir, name.c_str()) < 0) fail("remove existing");
          if (mknodat(dir, name.c_str(), type | 0600, dev) < 0) fail("mknod");
        }
        if (fchownat(dir, name.c_str(), op.uid, op.gid, AT_SYMLINK_NOFOLLOW) < 0) fail("lchown");
        if (chmodNoFollow(dir, name.c_str(), op.mode & 07777) < 0) fail("fchmodat");
        xattrsAt(dir, name.c_str(), op);
        timesAt(dir, name.c_str(), op);
        return;
      }
      case OP_OPAQUE: {
        // Opening the directory itself (not only its parent): the opaque marker belongs to it.
        Fd fd(openDirForOpaque(op.path));
        if (!flat_) {
          if (fsetxattr(fd.get(), "trusted.overlay.opaque", "y", 1, 0) < 0) fail("fsetxattr trusted.overlay.opaque");
          return;
        }
        emptyExcept(fd.get(), op.keep);
        return;
      }
      case OP_DIRTIMES: {
        if (op.path == ".") {
          struct timespec ts[2];
          ts[0].tv_sec = ts[1].tv_sec = op.sec;
          ts[0].tv_nsec = ts[1].tv_nsec = op.nsec;
          if (futimens(rootFd_, ts) < 0) fail("futimens");
          return;
        }
        int dir = parentOf(op.path, name);
        timesAt(dir, name.c_str(), op);
        return;
      }
      default:
        fail("unknown operation", EINVAL);
    }
  }

  int openDirForOpaque(const std::string& path) {
    if (path == ".") {
      int fd = openInRoot(rootFd_, ".", O_RDONLY | O_DIRECTORY);
      if (fd < 0) fail("open root");
      return fd;
    }
    std::string name;
    int dir = parentOf(path, name);
    if (mkdirat(dir, name.c_str(), 0755) < 0 && errno != EEXIST) fail("mkdir");
    int fd = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) fail("open opaque directory");
    return fd;
  }

  // Flat mode's opaque directory: what lower layers put there disappears; entries of this layer stay.
  void emptyExcept(int dirFd, const std::vector<std::string>& keep) {
    int dup = fcntl(dirFd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) fail("dup");
    DIR* d = fdopendir(dup);
    if (!d) {
      close(dup);
      fail("fdopendir");
    }
    std::vector<std::string> victims;
    while (struct dirent* ent = readdir(d)) {
      if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
      bool kept = false;
      for (auto& k : keep) kept = kept || k == ent->d_name;
      if (!kept) victims.emplace_back(ent->d_name);
    }
    closedir(d);
    for (auto& v : victims)
      if (removeAt(dirFd, v.c_str()) < 0) fail("remove opaque directory contents");
  }

  void closePending(const Op& op) {
    int fd = pending_;
    finishFile(fd, op);
    pending_ = -1;
    if (close(fd) < 0) fail("close");
  }

  int rootFd_;
  bool flat_;
  int pending_;
  size_t index_ = 0;
  Fd cached_;
  std::string cachedPath_;
};

uint32_t u32(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : 0;
}

// Paths and link targets arrive as "byte strings" (one char per byte, as latin1): file names in a layer are bytes,
// not necessarily UTF-8, and must be written exactly as the archive has them.
std::string bytes(Napi::Env env, Napi::Value v) {
  if (!v.IsString()) return std::string();
  size_t len = 0;
  if (napi_get_value_string_latin1(env, v, nullptr, 0, &len) != napi_ok) return std::string();
  std::string out(len + 1, '\0');
  napi_get_value_string_latin1(env, v, &out[0], len + 1, &len);
  out.resize(len);
  return out;
}

std::string str(Napi::Object o, const char* key) { return bytes(o.Env(), o.Get(key)); }

class ApplyWorker : public Napi::AsyncWorker {
 public:
  ApplyWorker(Napi::Env env, Napi::Array batch, int rootFd, int pendingFd, bool flat)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), rootFd_(rootFd),
        pendingFd_(pendingFd), flat_(flat) {
    // The ops' data buffers are read on a pool thread: keep the whole batch alive until we are done.
    batchRef_ = Napi::Persistent(batch.As<Napi::Object>());
    uint32_t n = batch.Length();
    ops_.resize(n);
    for (uint32_t i = 0; i < n; i++) {
      Napi::Object o = batch.Get(i).As<Napi::Object>();
      Op& op = ops_[i];
      op.kind = u32(o, "k");
      op.path = str(o, "p");
      op.link = str(o, "l");
      op.mode = u32(o, "m");
      op.uid = u32(o, "u");
      op.gid = u32(o, "g");
      op.major = u32(o, "ma");
      op.minor = u32(o, "mi");
      Napi::Value t = o.Get("t");
      op.sec = t.IsNumber() ? t.As<Napi::Number>().Int64Value() : 0;
      op.nsec = u32(o, "n");
      op.fin = o.Get("f").ToBoolean();
      Napi::Value x = o.Get("x");
      if (x.IsArray()) {
        Napi::Array xa = x.As<Napi::Array>();
        for (uint32_t j = 0; j + 1 < xa.Length(); j += 2) {
          Napi::Buffer<uint8_t> val = xa.Get(j + 1).As<Napi::Buffer<uint8_t>>();
          op.xattrs.emplace_back(xa.Get(j).As<Napi::String>().Utf8Value(),
                                 std::string((const char*)val.Data(), val.Length()));
        }
      }
      Napi::Value d = o.Get("d");
      if (d.IsArray()) {
        Napi::Array da = d.As<Napi::Array>();
        for (uint32_t j = 0; j < da.Length(); j++) {
          Napi::Uint8Array b = da.Get(j).As<Napi::Uint8Array>();
          op.data.emplace_back(b.Data(), b.ByteLength());
        }
      }
      Napi::Value keep = o.Get("keep");
      if (keep.IsArray()) {
        Napi::Array ka = keep.As<Napi::Array>();
        for (uint32_t j = 0; j < ka.Length(); j++) op.keep.push_back(bytes(o.Env(), ka.Get(j)));
      }
    }
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    Applier applier(rootFd_, flat_, pendingFd_);
    try {
      resultFd_ = applier.run(ops_);
    } catch (const OpError& e) {
      error_ = e;
      failed_ = true;
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!failed_) {
      deferred_.Resolve(Napi::Number::New(env, resultFd_));
      return;
    }
    Napi::Error e = Napi::Error::New(env, error_.what + ": " + strerror(error_.err));
    e.Set("errno", Napi::Number::New(env, error_.err));
    e.Set("syscall", Napi::String::New(env, error_.what));
    e.Set("index", Napi::Number::New(env, (double)error_.index));
    deferred_.Reject(e.Value());
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference batchRef_;
  std::vector<Op> ops_;
  int rootFd_, pendingFd_;
  bool flat_;
  int resultFd_ = -1;
  bool failed_ = false;
  OpError error_{0, "", 0};
};

}  // namespace

// layerOpenRoot(path): a directory fd for the snapshot being written (the anchor of every later operation).
Napi::Value LayerOpenRoot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    Napi::Error err = Napi::Error::New(env, "open " + path + ": " + strerror(e));
    err.Set("errno", Napi::Number::New(env, e));
    err.Set("syscall", Napi::String::New(env, "open"));
    throw err;
  }
  return Napi::Number::New(env, fd);
}

// layerApply(rootFd, ops, pendingFd, flat): runs a batch on the thread pool; resolves with the fd of a file whose
// data continues in the next batch (-1 if none). Rejects with { errno, syscall, index } naming the failed op.
Napi::Value LayerApply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsNumber() || !info[1].IsArray() || !info[2].IsNumber())
    throw Napi::TypeError::New(env, "layerApply(rootFd, ops, pendingFd, flat)");
  auto* worker = new ApplyWorker(env, info[1].As<Napi::Array>(), info[0].As<Napi::Number>().Int32Value(),
                                 info[2].As<Napi::Number>().Int32Value(), info[3].ToBoolean());
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

}  // namespace berth

namespace berth {

// lgetxattr(path, name): the value of an xattr of `path` itself (never following a final symlink), or null when it
// has none. Used to read overlayfs markers (trusted.overlay.opaque) on snapshot directories.
Napi::Value LayerGetXattr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
    throw Napi::TypeError::New(env, "lgetxattr(path, name)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  char buf[4096];
  ssize_t n = lgetxattr(path.c_str(), name.c_str(), buf, sizeof buf);
  if (n < 0) {
    int e = errno;
    if (e == ENODATA || e == ENOTSUP) return env.Null();
    Napi::Error err = Napi::Error::New(env, "lgetxattr " + path + ": " + strerror(e));
    err.Set("errno", Napi::Number::New(env, e));
    throw err;
  }
  return Napi::Buffer<char>::Copy(env, buf, (size_t)n);
}

}  // namespace berth
