// The streaming kernel: two passes over rows too wide for registers.
#pragma once

#include "rms_norm_device.cuh"

namespace plugkit::rms_norm
{
namespace
{

// Two passes over the row, for rows that do not fit in registers: the second
// read mostly hits L2, which holds the rows of all resident blocks.
template <typename T, typename S, int VEC>
__global__ void __launch_bounds__(kStreamingThreads) streamingKernel(
    T const* __restrict__ x, S const* __restrict__ scale, T* __restrict__ y, int64_t cols, float invCols, float epsilon)
{
    waitForPrerequisites();
    allowDependents();
    T const* xRow = x + static_cast<int64_t>(blockIdx.x) * cols;
    T* yRow = y + static_cast<int64_t>(blockIdx.x) * cols;
    int64_t const step = static_cast<int64_t>(blockDim.x) * VEC;
    float sumSquares = 0.0F;
    for (int64_t col = static_cast<int64_t>(threadIdx.x) * VEC; col < cols; col += step)
    {
        Floats<VEC> v;
        toFloats(*reinterpret_cast<Vec<T, VEC> const*>(xRow + col), v);
        sumSquares += sumOfSquares(v);
    }
    float const inv = invRms(blockSum(sumSquares), invCols, epsilon);
    for (int64_t col = static_cast<int64_t>(threadIdx.x) * VEC; col < cols; col += step)
    {
        Floats<VEC> v;
        Floats<VEC> w;
        toFloats(loadOnce<true>(reinterpret_cast<Vec<T, VEC> const*>(xRow + col)), v);
        toFloats(*reinterpret_cast<Vec<S, VEC> const*>(scale + col), w);
        storeOnce<true>(reinterpret_cast<Vec<T, VEC>*>(yRow + col), normalize<T>(v, w, inv));
    }
}

} // namespace
} // namespace plugkit::rms_norm
