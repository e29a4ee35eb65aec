// Byte-stream work of a pull that would otherwise keep the event loop busy: sha256/sha512 of a stream and gzip
// inflation (with the digest of the inflated bytes), each step run on the libuv thread pool.
//
// Inflation uses ISA-L (Intel's igzip, Debian's libisal2) when the addon was built with its header and the library
// loads at run time: about 2.5x faster than zlib on a Debian layer. Otherwise it uses the zlib Node.js itself links
// and exports to addons. Hashing uses the OpenSSL Node.js links (SHA-NI where the CPU has it).
//
// Policy stays in TypeScript (lib/image/layer.ts, lib/image/store.ts): these classes only transform bytes and
// report what went wrong.
#include "codec.h"

#include <dlfcn.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#ifdef BERTH_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace berth {
namespace {

// --- hashing ---------------------------------------------------------------------------------------------------

class Digest {
 public:
  explicit Digest(const std::string& algorithm) {
    const EVP_MD* md = algorithm == "sha256" ? EVP_sha256() : algorithm == "sha512" ? EVP_sha512() : nullptr;
    if (!md) return;
    ctx_ = EVP_MD_CTX_new();
    if (ctx_ && EVP_DigestInit_ex(ctx_, md, nullptr) != 1) {
      EVP_MD_CTX_free(ctx_);
      ctx_ = nullptr;
    }
  }
  ~Digest() {
    if (ctx_) EVP_MD_CTX_free(ctx_);
  }
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;

  bool ok() const { return ctx_ != nullptr; }
  void update(const uint8_t* data, size_t len) {
    if (len) EVP_DigestUpdate(ctx_, data, len);
  }
  // Lowercase hex; the context is spent afterwards.
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, md, &n);
    static const char* digits = "0123456789abcdef";
    std::string out(n * 2, '0');
    for (unsigned int i = 0; i < n; i++) {
      out[2 * i] = digits[md[i] >> 4];
      out[2 * i + 1] = digits[md[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_ = nullptr;
};

// Views of JS buffers that a pool thread reads; the array holding them is kept alive by the worker.
struct Views {
  Napi::ObjectReference keep;
  std::vector<std::pair<const uint8_t*, size_t>> parts;

  void take(Napi::Value v) {
    if (v.IsNull() || v.IsUndefined()) return;
    if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "expected an array of Uint8Array");
    Napi::Array a = v.As<Napi::Array>();
    keep = Napi::Persistent(a.As<Napi::Object>());
    for (uint32_t i = 0; i < a.Length(); i++) {
      Napi::Value e = a.Get(i);
      if (!e.IsTypedArray()) throw Napi::TypeError::New(v.Env(), "expected an array of Uint8Array");
      Napi::Uint8Array b = e.As<Napi::Uint8Array>();
      parts.emplace_back(b.Data(), b.ByteLength());
    }
  }
};

class Hasher : public Napi::ObjectWrap<Hasher> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Hasher",
                       {InstanceMethod("update", &Hasher::Update), InstanceMethod("digest", &Hasher::DigestHex)});
  }

  explicit Hasher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Hasher>(info) {
    std::string algorithm = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
    digest_ = std::make_unique<Digest>(algorithm);
    if (!digest_->ok()) throw Napi::TypeError::New(info.Env(), "unsupported digest algorithm \"" + algorithm + "\"");
  }

  Digest& digest() { return *digest_; }
  bool busy = false;

 private:
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value DigestHex(const Napi::CallbackInfo& info) {
    if (busy || done_) throw Napi::Error::New(info.Env(), busy ? "hash update still running" : "digest already taken");
    done_ = true;
    return Napi::String::New(info.Env(), digest_->hex());
  }

  std::unique_ptr<Digest> digest_;
  bool done_ = false;
};

class HashWorker : public Napi::AsyncWorker {
 public:
  HashWorker(Napi::Env env, Hasher* hasher, Napi::Value buffers)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), hasher_(hasher) {
    views_.take(buffers);
    hasherRef_ = Napi::Persistent(hasher->Value());
    hasher_->busy = true;
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    for (auto& [data, len] : views_.parts) hasher_->digest().update(data, len);
  }
  void OnOK() override {
    hasher_->busy = false;
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    hasher_->busy = false;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Hasher* hasher_;
  Napi::ObjectReference hasherRef_;
  Views views_;
};

Napi::Value Hasher::Update(const Napi::CallbackInfo& info) {
  if (busy) throw Napi::Error::New(info.Env(), "hash update already running");
  if (done_) throw Napi::Error::New(info.Env(), "digest already taken");
  auto* w = new HashWorker(info.Env(), this, info.Length() > 0 ? info[0] : info.Env().Undefined());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// --- gzip inflation ---------------------------------------------------------------------------------------------

constexpr size_t kOutChunk = 1 << 20;      // size of each output buffer handed to JS
constexpr size_t kOutPerCall = 4 << 20;    // output produced per push() before returning (a bomb cannot balloon)

// One gzip decoder: feed() consumes input and produces output until one of them runs out or a member ends.
class Decoder {
 public:
  virtual ~Decoder() = default;
  enum Status { MORE, MEMBER_END, FAILED };
  // Consumes from *in/*inLen, produces into *out/*outLen (both advanced).
  virtual Status feed(const uint8_t** in, size_t* inLen, uint8_t** out, size_t* outLen) = 0;
  virtual void reset() = 0;
  virtual const char* name() const = 0;
  std::string error;
};

class ZlibDecoder : public Decoder {
 public:
  ZlibDecoder() {
    memset(&z_, 0, sizeof z_);
    ok_ = inflateInit2(&z_, 16 + 15) == Z_OK;  // 16: gzip wrapper only
    if (!ok_) error = "zlib could not be initialised";
  }
  ~ZlibDecoder() override {
    if (ok_) inflateEnd(&z_);
  }
  Status feed(const uint8_t** in, size_t* inLen, uint8_t** out, size_t* outLen) override {
    if (!ok_) return FAILED;
    // zlib counts in uInt: feed at most 1 GiB at a time.
    uInt inChunk = (uInt)(*inLen < (1u << 30) ? *inLen : (1u << 30));
    uInt outChunk = (uInt)(*outLen < (1u << 30) ? *outLen : (1u << 30));
    z_.next_in = const_cast<Bytef*>(*in);
    z_.avail_in = inChunk;
    z_.next_out = *out;
    z_.avail_out = outChunk;
    int r = inflate(&z_, Z_NO_FLUSH);
    size_t usedIn = inChunk - z_.avail_in, usedOut = outChunk - z_.avail_out;
    *in += usedIn;
    *inLen -= usedIn;
    *out += usedOut;
    *outLen -= usedOut;
    if (r == Z_STREAM_END) return MEMBER_END;
    if (r == Z_OK || r == Z_BUF_ERROR) return MORE;
    error = z_.msg ? z_.msg : "invalid gzip data";
    return FAILED;
  }
  void reset() override { inflateReset(&z_); }
  const char* name() const override { return "zlib"; }

 private:
  z_stream z_;
  bool ok_ = false;
};

#ifdef BERTH_HAVE_ISAL
// ISA-L is loaded with dlopen so that the addon still loads (and falls back to zlib) where libisal2 is missing.
struct IsalApi {
  void (*init)(struct inflate_state*) = nullptr;
  int (*inflate)(struct inflate_state*) = nullptr;
  void (*reset)(struct inflate_state*) = nullptr;
  bool ok = false;
};

const IsalApi& isal() {
  static IsalApi api;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    api.init = (void (*)(struct inflate_state*))dlsym(h, "isal_inflate_init");
    api.inflate = (int (*)(struct inflate_state*))dlsym(h, "isal_inflate");
    api.reset = (void (*)(struct inflate_state*))dlsym(h, "isal_inflate_reset");
    api.ok = api.init && api.inflate && api.reset;
  });
  return api;
}

class IsalDecoder : public Decoder {
 public:
  IsalDecoder() : state_(new inflate_state()) {
    isal().init(state_.get());
    state_->crc_flag = ISAL_GZIP;  // parse the gzip header and verify the CRC32 and size trailer
  }
  Status feed(const uint8_t** in, size_t* inLen, uint8_t** out, size_t* outLen) override {
    uint32_t inChunk = (uint32_t)(*inLen < (1u << 30) ? *inLen : (1u << 30));
    uint32_t outChunk = (uint32_t)(*outLen < (1u << 30) ? *outLen : (1u << 30));
    state_->next_in = const_cast<uint8_t*>(*in);
    state_->avail_in = inChunk;
    state_->next_out = *out;
    state_->avail_out = outChunk;
    int r = isal().inflate(state_.get());
    size_t usedIn = inChunk - state_->avail_in, usedOut = outChunk - state_->avail_out;
    *in += usedIn;
    *inLen -= usedIn;
    *out += usedOut;
    *outLen -= usedOut;
    if (r < 0) {
      error = r == ISAL_INCORRECT_CHECKSUM ? "incorrect data check (CRC32 or size of a gzip member)"
              : r == ISAL_INVALID_WRAPPER  ? "incorrect gzip header"
                                           : "invalid deflate data";
      return FAILED;
    }
    // The trailer is verified before the state says finished.
    if (state_->block_state == ISAL_BLOCK_FINISH) return MEMBER_END;
    return MORE;
  }
  void reset() override {
    isal().reset(state_.get());
    state_->crc_flag = ISAL_GZIP;
  }
  const char* name() const override { return "isa-l"; }

 private:
  std::unique_ptr<inflate_state> state_;
};
#endif

bool isalAvailable() {
#ifdef BERTH_HAVE_ISAL
  return isal().ok;
#else
  return false;
#endif
}

// engine: "auto" (ISA-L when available), "zlib", or "isa-l" (nullptr when it is not available).
std::unique_ptr<Decoder> newDecoder(const std::string& engine) {
#ifdef BERTH_HAVE_ISAL
  if (engine != "zlib" && isal().ok) return std::make_unique<IsalDecoder>();
#endif
  if (engine == "isa-l") return nullptr;
  return std::make_unique<ZlibDecoder>();
}

class Inflater : public Napi::ObjectWrap<Inflater> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Inflater",
                       {InstanceMethod("push", &Inflater::Push), InstanceMethod("digest", &Inflater::DigestHex),
                        InstanceAccessor("engine", &Inflater::Engine, nullptr)});
  }

  explicit Inflater(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Inflater>(info) {
    std::string algorithm = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "sha256";
    std::string engine = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "auto";
    decoder_ = newDecoder(engine);
    if (!decoder_) throw Napi::Error::New(info.Env(), "ISA-L (libisal.so.2) is not available");
    digest_ = std::make_unique<Digest>(algorithm);
    if (!digest_->ok()) throw Napi::TypeError::New(info.Env(), "unsupported digest algorithm \"" + algorithm + "\"");
  }

  // Runs on a pool thread. Consumes `pending_` and then `input` until the input is gone or kOutPerCall bytes were
  // produced; keeps unconsumed input in `pending_`. Returns false (with error_) on corrupt data.
  bool run(const std::vector<std::pair<const uint8_t*, size_t>>& input, bool end,
           std::vector<std::pair<uint8_t*, size_t>>& outs) {
    for (auto& [data, len] : input) pending_.append((const char*)data, len);
    size_t produced = 0;
    size_t pos = 0;
    bool atCap = false;
    for (;;) {
      if (produced >= kOutPerCall) {
        atCap = true;  // the decoder may still hold output even with all input consumed: call again
        break;
      }
      if (betweenMembers_) {
        if (pos == pending_.size()) break;  // a clean end so far; more input may bring another member
        // Another member follows (multi-member gzip, as pigz writes): it must be gzip too.
        decoder_->reset();
        betweenMembers_ = false;
      }
      uint8_t* buf = (uint8_t*)malloc(kOutChunk);
      if (!buf) {
        error_ = "out of memory";
        return false;
      }
      const uint8_t* in = (const uint8_t*)pending_.data() + pos;
      size_t inLen = pending_.size() - pos;
      uint8_t* out = buf;
      size_t outLen = kOutChunk;
      Decoder::Status st = Decoder::MORE;
      // Also called with no input left: a decoder may still hold output to flush.
      while (outLen > 0) {
        size_t inBefore = inLen, outBefore = outLen;
        st = decoder_->feed(&in, &inLen, &out, &outLen);
        if (st != Decoder::MORE || (inLen == inBefore && outLen == outBefore)) break;
      }
      size_t consumed = pending_.size() - pos - inLen;
      pos += consumed;
      size_t n = kOutChunk - outLen;
      if (n > 0) {
        digest_->update(buf, n);
        total_ += n;
        produced += n;
        outs.emplace_back(buf, n);
      } else {
        free(buf);
      }
      if (st == Decoder::FAILED) {
        error_ = decoder_->error;
        return false;
      }
      if (st == Decoder::MEMBER_END) {
        betweenMembers_ = true;
        sawMember_ = true;
      } else if (n == 0 && consumed == 0) {
        break;  // needs more input
      }
    }
    pending_.erase(0, pos);
    drained_ = pending_.empty() && !atCap;
    if (end && drained_ && !betweenMembers_) {
      error_ = sawMember_ || total_ > 0 ? "unexpected end of the gzip stream (truncated)" : "empty gzip stream";
      return false;
    }
    return true;
  }

  bool drained() const { return drained_; }
  const std::string& error() const { return error_; }
  bool busy = false;

 private:
  Napi::Value Push(const Napi::CallbackInfo& info);
  Napi::Value DigestHex(const Napi::CallbackInfo& info) {
    if (busy || done_) throw Napi::Error::New(info.Env(), busy ? "inflate still running" : "digest already taken");
    done_ = true;
    return Napi::String::New(info.Env(), digest_->hex());
  }
  Napi::Value Engine(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), decoder_->name()); }

  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<Digest> digest_;
  std::string pending_;  // input received but not consumed yet (only when a call stopped at kOutPerCall)
  bool betweenMembers_ = false;
  bool sawMember_ = false;
  bool drained_ = true;
  bool done_ = false;
  uint64_t total_ = 0;
  std::string error_;
};

class InflateWorker : public Napi::AsyncWorker {
 public:
  InflateWorker(Napi::Env env, Inflater* inflater, Napi::Value input, bool end)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), inflater_(inflater), end_(end) {
    views_.take(input);
    ref_ = Napi::Persistent(inflater->Value());
    inflater_->busy = true;
  }
  ~InflateWorker() override {
    for (auto& [p, n] : outs_) free(p);  // not handed to JS (failure)
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { ok_ = inflater_->run(views_.parts, end_, outs_); }
  void OnOK() override {
    Napi::Env env = Env();
    inflater_->busy = false;
    if (!ok_) {
      deferred_.Reject(Napi::Error::New(env, inflater_->error()).Value());
      return;
    }
    Napi::Array out = Napi::Array::New(env, outs_.size());
    for (size_t i = 0; i < outs_.size(); i++) {
      // Handed over without a copy; freed when JS lets go of the buffer.
      out.Set((uint32_t)i, Napi::Buffer<uint8_t>::New(env, outs_[i].first, outs_[i].second,
                                                      [](Napi::Env, uint8_t* p) { free(p); }));
    }
    outs_.clear();
    Napi::Object result = Napi::Object::New(env);
    result.Set("out", out);
    result.Set("drained", Napi::Boolean::New(env, inflater_->drained()));
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override {
    inflater_->busy = false;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Inflater* inflater_;
  Napi::ObjectReference ref_;
  Views views_;
  bool end_;
  bool ok_ = false;
  std::vector<std::pair<uint8_t*, size_t>> outs_;
};

Napi::Value Inflater::Push(const Napi::CallbackInfo& info) {
  if (busy) throw Napi::Error::New(info.Env(), "inflate already running");
  if (done_) throw Napi::Error::New(info.Env(), "the stream is finished");
  auto* w = new InflateWorker(info.Env(), this, info.Length() > 0 ? info[0] : info.Env().Undefined(),
                              info.Length() > 1 && info[1].ToBoolean());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

Napi::Function HasherClass(Napi::Env env) { return Hasher::Init(env); }
Napi::Function InflaterClass(Napi::Env env) {
  Napi::Function cls = Inflater::Init(env);
  cls.Set("isalAvailable", Napi::Boolean::New(env, isalAvailable()));
  return cls;
}

}  // namespace berth
