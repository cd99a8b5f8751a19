// The re-read kernel (sm_80+): a block a row of 16 KB or more that reads X twice, the second
// time from L1/L2.
#pragma once

#include "rms_norm_device.cuh"

#include "plugkit/cache_hints.h"

namespace plugkit::rms_norm
{
namespace
{

// Whether the re-read kernel also holds the scale's vectors, loading them with the second read of
// X before the first store, at up to 40 registers (1536 threads a multiprocessor): fp32 at the
// most vectors a thread in blocks of REREAD_THREADS (H200, 16384x8192 fp32: 250.8 against
// 254.1 us; fp16 130.4 against 126.4, so 16-bit rows do not).
template <typename T, int VEC, int ITEMS, int MAX_THREADS>
constexpr bool rereadHoldsScale = PLUGKIT_RMS_NORM_REREAD_HOLD_SCALE && sizeof(T) == 4
    && ITEMS * VEC == PLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS && MAX_THREADS == kRereadThreads;

// Two reads of X for wide rows (the structure of torch.compile's kernel for them): the first
// only sums squares, its lines kept in L1 and L2 (evict-last); the second, after the block's
// sum, takes X again from the caches (evict-first: those lines may go now) to normalize it. No
// vector is held across the reduction, so a thread needs few registers (at most 32: 2048 threads
// a multiprocessor on sm_80/sm_90; 40 and 1536 threads where it holds the scale), against 512-1024
// threads of the register kernel at 8-16 vectors a thread: more rows in flight, whose DRAM reads
// overlap the other rows' reductions. The registers are capped with __maxnreg__, not with
// launch bounds of 2048 threads a multiprocessor, which ptxas warns about for every
// architecture that holds fewer (sm_75, sm_86, sm_89).
// A block a row, ITEMS vectors a thread.
// __maxnreg__ came with CUDA 12.4; before it, launch bounds of that many registers' blocks.
#if __CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 4)
#define PLUGKIT_RMS_NORM_REREAD_BOUNDS(THREADS, REGISTERS) __launch_bounds__(THREADS) __maxnreg__(REGISTERS)
#else
#define PLUGKIT_RMS_NORM_REREAD_BOUNDS(THREADS, REGISTERS) __launch_bounds__(THREADS, 65536 / (THREADS * (REGISTERS)))
#endif
template <typename T, typename S, int VEC, int ITEMS, int MAX_THREADS>
__global__ void PLUGKIT_RMS_NORM_REREAD_BOUNDS(MAX_THREADS, (rereadHoldsScale<T, VEC, ITEMS, MAX_THREADS> ? 40 : 32))
    rereadKernel(T const* __restrict__ x, S const* __restrict__ scale, T* __restrict__ y, int cols, float invCols,
        float epsilon)
{
    waitForPrerequisites();
    allowDependents();
    using XVec = Vec<T, VEC>;
    using SVec = Vec<S, VEC>;
    T const* const xRow = x + static_cast<int64_t>(blockIdx.x) * cols;
    T* const yRow = y + static_cast<int64_t>(blockIdx.x) * cols;
    auto column = [&](int i) { return (i * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x)) * VEC; };
    auto inRow = [&](int i) { return column(i) < cols; };
    // Columns past the row's end read its first vector and count for nothing: loads and sums
    // without branches (branches around them cost a third more instructions, in 16-bit rows the
    // kernel's limit: vectors taken apart and put together again, addresses computed twice).
    auto loadColumn = [&](int i) { return inRow(i) ? column(i) : 0; };
    auto xAt = [&](int i) { return reinterpret_cast<XVec const*>(at(xRow, loadColumn(i))); };
    XVec items[ITEMS];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        items[i] = loadCached<Evict::Last>(xAt(i));
    }
    float squares = -0.0F;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        Floats<VEC> v;
        toFloats(items[i], v);
        float const s = sumOfSquares(v);
        squares += inRow(i) ? s : 0.0F;
    }
    float const inv = invRms(blockSum(squares), invCols, epsilon);
    // The second read of X before the first store (a load after a store it may alias cannot be
    // moved above it, so each vector's trip to L2 would wait for the store before). The scale
    // is read between the stores (its lines, read by every block, are in L1) unless the kernel
    // holds it: under the cap of 32 registers that spilled (fp32, bf16).
    constexpr bool kHoldScale = rereadHoldsScale<T, VEC, ITEMS, MAX_THREADS>;
    auto scaleAt = [&](int i) { return loadCached<Evict::Last>(reinterpret_cast<SVec const*>(at(scale, loadColumn(i)))); };
    SVec scaleItems[kHoldScale ? ITEMS : 1];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        items[i] = loadCached<Evict::First>(xAt(i));
        if constexpr (kHoldScale)
        {
            scaleItems[i] = scaleAt(i);
        }
    }
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        Floats<VEC> v;
        Floats<VEC> w;
        toFloats(items[i], v);
        if constexpr (kHoldScale)
        {
            toFloats(scaleItems[i], w);
        }
        else
        {
            toFloats(scaleAt(i), w);
        }
        XVec const out = normalize<T>(v, w, inv);
        if (inRow(i))
        {
            *reinterpret_cast<XVec*>(at(yRow, column(i))) = out;
        }
    }
}

} // namespace
} // namespace plugkit::rms_norm
