// dtype dispatch for kernel launchers (include from .cu files).
//
//     plugkit::dispatchFloat(desc.type, [&](auto tag) {
//         using T = typename decltype(tag)::type;   // float, __half or __nv_bfloat16
//         launchMyKernel<T>(...);
//     });
//     plugkit::dispatchIndex(desc.type, [&](auto tag) {
//         using I = typename decltype(tag)::type;   // int32_t or int64_t
//     });
#pragma once

#include "plugkit/formats.h"
#include "plugkit/status.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace plugkit
{

template <typename T>
struct TypeTag
{
    using type = T;
};

//! Call f(TypeTag<T>{}) with the C++ type of a float DataType; other dtypes are an error.
template <typename F>
decltype(auto) dispatchFloat(nvinfer1::DataType type, F&& f)
{
    switch (type)
    {
    case nvinfer1::DataType::kFLOAT: return f(TypeTag<float>{});
    case nvinfer1::DataType::kHALF: return f(TypeTag<__half>{});
    case nvinfer1::DataType::kBF16: return f(TypeTag<__nv_bfloat16>{});
    default: break;
    }
    throw Error(std::string("unsupported dtype ") + dataTypeName(type) + "; expected float32, float16 or bfloat16");
}

//! Call f(TypeTag<I>{}) with the C++ type of an index DataType (INT32, INT64); other dtypes are an error.
template <typename F>
decltype(auto) dispatchIndex(nvinfer1::DataType type, F&& f)
{
    switch (type)
    {
    case nvinfer1::DataType::kINT32: return f(TypeTag<int32_t>{});
    case nvinfer1::DataType::kINT64: return f(TypeTag<int64_t>{});
    default: break;
    }
    throw Error(std::string("unsupported dtype ") + dataTypeName(type) + "; expected int32 or int64");
}

//! Conversions to and from the fp32 that kernels accumulate in.
__host__ __device__ inline float toFloat(float v)
{
    return v;
}
__device__ inline float toFloat(__half v)
{
    return __half2float(v);
}
__device__ inline float toFloat(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

template <typename T>
__device__ inline T fromFloat(float v);
template <>
__device__ inline float fromFloat<float>(float v)
{
    return v;
}
template <>
__device__ inline __half fromFloat<__half>(float v)
{
    return __float2half_rn(v);
}
template <>
__device__ inline __nv_bfloat16 fromFloat<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

} // namespace plugkit
