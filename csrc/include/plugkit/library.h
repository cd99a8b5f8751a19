// What a plugin library exports besides its plugins. plugkit_add_plugin_library()
// generates the one translation unit that defines these entry points.
#pragma once

#include "plugkit/status.h"

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#define PLUGKIT_EXPORT extern "C" __attribute__((visibility("default")))

namespace plugkit
{
//! The TensorRT header version this library was compiled against, as major * 10000 + minor * 100 + patch.
constexpr int32_t kCompiledTensorRTVersion = NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;
} // namespace plugkit
