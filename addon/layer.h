// Layer application primitives (addon/layer.cc): every write relative to a snapshot directory fd.
#pragma once
#include <napi.h>

namespace berth {

Napi::Value LayerOpenRoot(const Napi::CallbackInfo& info);
Napi::Value LayerApply(const Napi::CallbackInfo& info);
Napi::Value LayerGetXattr(const Napi::CallbackInfo& info);

}  // namespace berth
