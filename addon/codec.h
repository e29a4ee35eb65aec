// Stream codecs on the thread pool (addon/codec.cc): a hasher and a gzip inflater that also digests its output.
#pragma once
#include <napi.h>

namespace berth {

// class Hasher(algorithm: 'sha256' | 'sha512'): update(buffers[]) → Promise<void>; digest() → hex.
Napi::Function HasherClass(Napi::Env env);
// class Inflater(algorithm = 'sha256'): push(buffers[] | null, end) → Promise<{ out: Buffer[], drained }>;
// digest() → hex of everything inflated; engine → 'isa-l' | 'zlib'.
Napi::Function InflaterClass(Napi::Env env);

}  // namespace berth
