// Launcher of the RMSNorm kernels (rms_norm_kernel.cu).
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace plugkit::rms_norm
{

//! One RMSNorm launch: `rows` independent rows of `cols` contiguous elements.
struct Problem
{
    nvinfer1::DataType xType;     //!< X and Y
    nvinfer1::DataType scaleType; //!< scale
    void const* x;
    void const* scale;
    void* y;
    int64_t rows;
    int64_t cols;      //!< normalized size: product of X's dims from `axis` on
    int64_t scaleCols; //!< scale's element count: cols, 1 (one value for all), or a divisor of cols it repeats over
    float epsilon;
};

//! Enqueue the kernel for `p` on `stream`; throws plugkit::Error on bad input or a failed launch.
void launch(Problem const& p, cudaStream_t stream);

} // namespace plugkit::rms_norm
