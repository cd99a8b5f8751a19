// Launcher of the RMSNorm kernels (rms_norm_launch.cu).
#pragma once

#include "plugkit/kernels.h"

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
    int64_t scaleCols; //!< scale's element count: cols, or fewer where it broadcasts
    float epsilon;
    Broadcast scaleBroadcast; //!< scale's offset for each normalized element (used where scaleCols != cols)
};

//! Workspace bytes a launch needs: room to expand a scale that broadcasts (scaleCols != cols).
size_t workspaceSize(int64_t cols, int64_t scaleCols);

//! Enqueue the kernels for `p` on `stream`; throws plugkit::Error on bad input or a failed launch.
void launch(Problem const& p, void* workspace, cudaStream_t stream);

} // namespace plugkit::rms_norm
