// Binary encoding of the plan between the addon and berth-init: little-endian scalars, length-prefixed strings
// and vectors, a magic and version up front. Both sides are built from this one file.
#include <string.h>

#include "plan.h"

namespace berth {
namespace {

constexpr uint32_t kMagic = 0x68747262;  // "brth"
constexpr uint32_t kVersion = 4;

struct Writer {
  std::string out;
  void raw(const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
  void operator()(bool& b) { uint8_t v = b ? 1 : 0; raw(&v, 1); }
  void operator()(int& v) { int64_t x = v; raw(&x, 8); }
  void operator()(uint32_t& v) { raw(&v, 4); }
  void operator()(uint64_t& v) { raw(&v, 8); }
  void operator()(std::string& s) { uint32_t n = (uint32_t)s.size(); raw(&n, 4); raw(s.data(), n); }
  template <typename T>
  void operator()(std::vector<T>& xs) { list(xs, [&](T& x) { (*this)(x); }); }
  void operator()(std::vector<uint8_t>& xs) { uint32_t n = (uint32_t)xs.size(); raw(&n, 4); raw(xs.data(), n); }
  template <typename T, typename F>
  void list(std::vector<T>& xs, F each) {
    uint32_t n = (uint32_t)xs.size();
    raw(&n, 4);
    for (auto& x : xs) each(x);
  }
};

struct Reader {
  const char* p;
  const char* end;
  bool ok = true;
  bool raw(void* dst, size_t n) {
    if (!ok || (size_t)(end - p) < n) return ok = false;
    memcpy(dst, p, n);
    p += n;
    return true;
  }
  void operator()(bool& b) { uint8_t v = 0; raw(&v, 1); b = v != 0; }
  void operator()(int& v) { int64_t x = 0; raw(&x, 8); v = (int)x; }
  void operator()(uint32_t& v) { raw(&v, 4); }
  void operator()(uint64_t& v) { raw(&v, 8); }
  void operator()(std::string& s) {
    uint32_t n = 0;
    if (!raw(&n, 4) || (size_t)(end - p) < n) { ok = false; return; }
    s.assign(p, n);
    p += n;
  }
  template <typename T>
  void operator()(std::vector<T>& xs) { list(xs, [&](T& x) { (*this)(x); }); }
  void operator()(std::vector<uint8_t>& xs) {
    uint32_t n = 0;
    if (!raw(&n, 4) || (size_t)(end - p) < n) { ok = false; return; }
    xs.assign(p, p + n);
    p += n;
  }
  template <typename T, typename F>
  void list(std::vector<T>& xs, F each) {
    uint32_t n = 0;
    // Every element type in a plan encodes to at least 4 bytes: a count beyond that is corrupt, and refusing it
    // keeps a damaged plan from turning into a huge allocation.
    if (!raw(&n, 4) || (size_t)n > (size_t)(end - p) / 4) { ok = false; return; }
    xs.resize(n);
    for (auto& x : xs) {
      if (!ok) return;
      each(x);
    }
  }
};

}  // namespace

std::string encodePlan(Plan& plan) {
  Writer w;
  uint32_t magic = kMagic, version = kVersion;
  w(magic);
  w(version);
  visitPlan(w, plan);
  return std::move(w.out);
}

bool decodePlan(const char* data, size_t size, Plan& plan) {
  Reader r{data, data + size};
  uint32_t magic = 0, version = 0;
  r(magic);
  r(version);
  if (!r.ok || magic != kMagic || version != kVersion) return false;
  visitPlan(r, plan);
  if (!r.ok || r.p != r.end) return false;
  plan.finalize();
  return true;
}

void Plan::finalize() {
  argvPtrs.clear();
  for (auto& s : argv) argvPtrs.push_back(const_cast<char*>(s.c_str()));
  argvPtrs.push_back(nullptr);
  envPtrs.clear();
  for (auto& s : env) envPtrs.push_back(const_cast<char*>(s.c_str()));
  envPtrs.push_back(nullptr);
}

}  // namespace berth
