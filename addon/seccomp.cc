// Compiles a seccomp filter to a classic BPF program with libseccomp, the library runc, crun and systemd use.
// lib/container/seccomp/ decides everything (which rules, which actions, which errno, which architectures, when a
// rule is redundant); this file only feeds the rules to libseccomp and hands back the exported program, which the
// container's init later loads with seccomp(2). Runs in the parent, never after clone.
#include "seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace berth {
namespace {

Napi::Error failure(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  return e;
}

uint32_t archToken(Napi::Env env, const std::string& name) {
  uint32_t token = seccomp_arch_resolve_name(name.c_str());
  if (token == 0) throw Napi::Error::New(env, "libseccomp does not know the architecture \"" + name + "\"");
  return token;
}

bool compareOp(const std::string& op, enum scmp_compare* out) {
  static const struct {
    const char* name;
    enum scmp_compare op;
  } ops[] = {
      {"SCMP_CMP_NE", SCMP_CMP_NE}, {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
      {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE}, {"SCMP_CMP_GT", SCMP_CMP_GT},
      {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
  };
  for (const auto& o : ops) {
    if (op == o.name) {
      *out = o.op;
      return true;
    }
  }
  return false;
}

uint64_t toU64(Napi::Env env, Napi::Value v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t out = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, std::string(what) + " does not fit in 64 bits");
    return out;
  }
  if (v.IsNumber()) return (uint64_t)v.As<Napi::Number>().Int64Value();
  throw Napi::TypeError::New(env, std::string(what) + " must be a bigint");
}

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

// Reads everything libseccomp wrote into the memfd (2.5 has no export-to-memory API).
std::vector<uint8_t> exportProgram(Napi::Env env, scmp_filter_ctx ctx) {
  int fd = (int)syscall(SYS_memfd_create, "berth-seccomp", MFD_CLOEXEC);
  if (fd < 0) throw failure(env, "memfd_create", errno);
  std::vector<uint8_t> out;
  int rc = seccomp_export_bpf(ctx, fd);
  if (rc < 0) {
    close(fd);
    throw failure(env, "seccomp_export_bpf", -rc);
  }
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0 || lseek(fd, 0, SEEK_SET) < 0) {
    int e = errno;
    close(fd);
    throw failure(env, "lseek", e);
  }
  out.resize((size_t)size);
  for (size_t off = 0; off < out.size();) {
    ssize_t n = read(fd, out.data() + off, out.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(fd);
      throw failure(env, "read exported seccomp filter", e);
    }
    off += (size_t)n;
  }
  close(fd);
  return out;
}

}  // namespace

// compileSeccomp({ defaultAction, architectures, optimize, rules: [{ name, action, conditions: [{ index, op, value,
// valueTwo }] }] }) → Buffer (struct sock_filter[] in host byte order). `architectures` is the complete list (the
// native one only when listed). Rules whose syscall libseccomp does not know must already be left out; conditions
// in one rule are ANDed.
Napi::Value CompileSeccomp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "compileSeccomp(filter): filter must be an object");
  Napi::Object f = info[0].As<Napi::Object>();
  uint32_t defaultAction = f.Get("defaultAction").As<Napi::Number>().Uint32Value();

  std::unique_ptr<void, FilterDeleter> ctx(seccomp_init(defaultAction));
  if (!ctx) throw Napi::Error::New(env, "seccomp_init failed: invalid default action");
  // The init sets no_new_privs itself when asked; the filter must never do it behind the plan's back.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
  if (rc < 0) throw failure(env, "seccomp_attr_set(CTL_NNP)", -rc);
  if (f.Get("optimize").ToBoolean().Value()) {
    rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc < 0) throw failure(env, "seccomp_attr_set(CTL_OPTIMIZE)", -rc);
  }

  // Exactly the architectures listed: a filter for one non-native ABI leaves the native one out.
  Napi::Array arches = f.Get("architectures").As<Napi::Array>();
  bool withNative = false;
  for (uint32_t i = 0; i < arches.Length(); i++) {
    std::string name = arches.Get(i).As<Napi::String>().Utf8Value();
    uint32_t token = archToken(env, name);
    if (token == seccomp_arch_native()) withNative = true;
    rc = seccomp_arch_add(ctx.get(), token);
    if (rc < 0 && rc != -EEXIST) throw failure(env, "seccomp_arch_add(" + name + ")", -rc);
  }
  if (!withNative) {
    rc = seccomp_arch_remove(ctx.get(), SCMP_ARCH_NATIVE);
    if (rc < 0) throw failure(env, "seccomp_arch_remove(native)", -rc);
  }

  Napi::Array rules = f.Get("rules").As<Napi::Array>();
  for (uint32_t i = 0; i < rules.Length(); i++) {
    Napi::Object r = rules.Get(i).As<Napi::Object>();
    std::string name = r.Get("name").As<Napi::String>().Utf8Value();
    uint32_t action = r.Get("action").As<Napi::Number>().Uint32Value();
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) throw Napi::Error::New(env, "libseccomp does not know the syscall \"" + name + "\"");
    Napi::Array conds = r.Get("conditions").As<Napi::Array>();
    std::vector<struct scmp_arg_cmp> cmp;
    for (uint32_t j = 0; j < conds.Length(); j++) {
      Napi::Object c = conds.Get(j).As<Napi::Object>();
      struct scmp_arg_cmp a;
      memset(&a, 0, sizeof a);
      a.arg = c.Get("index").As<Napi::Number>().Uint32Value();
      std::string op = c.Get("op").As<Napi::String>().Utf8Value();
      if (!compareOp(op, &a.op)) throw Napi::Error::New(env, "unknown seccomp comparison " + op);
      a.datum_a = toU64(env, c.Get("value"), "seccomp condition value");
      a.datum_b = toU64(env, c.Get("valueTwo"), "seccomp condition valueTwo");
      cmp.push_back(a);
    }
    rc = seccomp_rule_add_array(ctx.get(), action, nr, (unsigned)cmp.size(), cmp.empty() ? nullptr : cmp.data());
    if (rc < 0) throw failure(env, "seccomp rule for " + name, -rc);
  }

  std::vector<uint8_t> program = exportProgram(env, ctx.get());
  return Napi::Buffer<uint8_t>::Copy(env, program.data(), program.size());
}

// seccompInfo(arch?, names?) → { version, api, numbers? }: libseccomp's version and API level, and, when asked, the
// number of each syscall name on `arch` (-1 when libseccomp does not know the name at all; another negative value
// when the syscall does not exist on that architecture).
Napi::Value SeccompInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  const struct scmp_version* v = seccomp_version();
  out.Set("version", Napi::String::New(env, std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                                std::to_string(v->micro)));
  out.Set("api", Napi::Number::New(env, seccomp_api_get()));
  if (info.Length() >= 2 && info[0].IsString() && info[1].IsArray()) {
    uint32_t token = archToken(env, info[0].As<Napi::String>().Utf8Value());
    Napi::Array names = info[1].As<Napi::Array>();
    Napi::Array numbers = Napi::Array::New(env, names.Length());
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      numbers.Set(i, Napi::Number::New(env, seccomp_syscall_resolve_name_arch(token, name.c_str())));
    }
    out.Set("numbers", numbers);
  }
  return out;
}

}  // namespace berth
