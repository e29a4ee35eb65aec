// Seccomp filter compilation with libseccomp (addon/seccomp.cc). TypeScript decides every rule; this only turns
// the rules into a BPF program, in the parent, before any container exists.
#pragma once
#include <napi.h>

namespace berth {

Napi::Value CompileSeccomp(const Napi::CallbackInfo& info);
Napi::Value SeccompInfo(const Napi::CallbackInfo& info);

}  // namespace berth
