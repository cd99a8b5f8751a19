// The row pipeline (sm_90+): a persistent grid fed by the bulk copy engine through shared memory.
#pragma once

#include "rms_norm_device.cuh"

#include "plugkit/bulk_copy.h"

namespace plugkit::rms_norm
{
namespace
{

// The row pipeline: a persistent grid, each block rows blockIdx.x, + gridDim.x, ... Thread 0
// starts the bulk copies of a block's next `stages` rows into shared memory; every thread waits
// for its row's stage, takes its vectors into registers and adds their squares. The barrier of
// the block's sum orders every read of the stage before thread 0 refills it with the row
// `stages` rows on, so the copy engine keeps up to `stages` rows of a block in flight while the
// threads normalize and store. Y goes from registers straight to global memory. The scale is
// loaded once a block. Offsets of rows are 64-bit: any row count in one launch.
template <typename T, typename S, int VEC, int ITEMS>
__global__ void __launch_bounds__(kPipelineMaxThreads) pipelineKernel(T const* __restrict__ x,
    S const* __restrict__ scale, T* __restrict__ y, int64_t rows, int cols, float invCols, float epsilon, int stages,
    int stageBytes)
{
    using XVec = Vec<T, VEC>;
    using SVec = Vec<S, VEC>;
    extern __shared__ __align__(kPipelineStageAlign) unsigned char stage[];
    __shared__ StageBarrier full[kPipelineMaxStages];
    __shared__ float partial[2][32];
    bool const issuer = threadIdx.x == 0;
    if (issuer)
    {
        for (int s = 0; s < stages; ++s)
        {
            full[s].init();
        }
        StageBarrier::initFence();
    }
    __syncthreads();
    waitForPrerequisites();
    allowDependents();
    auto const rowBytes = static_cast<uint32_t>(cols * sizeof(T));
    int64_t const step = gridDim.x;
    auto fill = [&](int s, int64_t row) {
        full[s].expectBytes(rowBytes);
        bulkLoad<PLUGKIT_RMS_NORM_PIPELINE_LOAD_HINT != 0>(stage + s * stageBytes, x + row * cols, rowBytes, full[s]);
    };
    int64_t row = blockIdx.x;
    if (issuer)
    {
        for (int s = 0; s < stages && row + s * step < rows; ++s)
        {
            fill(s, row + s * step);
        }
    }
    auto column = [&](int i) { return (i * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x)) * VEC; };
    auto inRow = [&](int i) { return column(i) < cols; };
    SVec scaleItems[ITEMS];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        if (inRow(i))
        {
            scaleItems[i] = *reinterpret_cast<SVec const*>(scale + column(i));
        }
    }
    int s = 0;
    uint32_t parity = 0;
    int partialIndex = 0; // blockSum's arrays in turn
    for (; row < rows; row += step)
    {
        full[s].wait(parity);
        auto const* staged = reinterpret_cast<T const*>(stage + s * stageBytes);
        XVec items[ITEMS];
        float squares = -0.0F;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (inRow(i))
            {
                items[i] = *reinterpret_cast<XVec const*>(staged + column(i));
                Floats<VEC> v;
                toFloats(items[i], v);
                squares += sumOfSquares(v);
            }
        }
        float const inv = invRms(blockSum(squares, partial[partialIndex]), invCols, epsilon);
        partialIndex ^= 1;
        // Past the barrier in blockSum: every thread has read stage s.
        if (issuer && row + stages * step < rows)
        {
            fenceBeforeBulkWrite();
            fill(s, row + stages * step);
        }
        T* out = y + row * cols;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (inRow(i))
            {
                keepRaw(items[i]);
                keepRaw(scaleItems[i]); // converted here each row, not held as fp32 across the loop
                Floats<VEC> v;
                Floats<VEC> w;
                toFloats(items[i], v);
                toFloats(scaleItems[i], w);
                storeOnce<PLUGKIT_RMS_NORM_PIPELINE_STORE_HINT != 0>(
                    reinterpret_cast<XVec*>(out + column(i)), normalize<T>(v, w, inv));
            }
        }
        if (++s == stages)
        {
            s = 0;
            parity ^= 1;
        }
    }
}

} // namespace
} // namespace plugkit::rms_norm
