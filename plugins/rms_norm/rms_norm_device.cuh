// Device helpers the RMSNorm kernels share: loads and stores of X and Y, conversions, sums.
// Included by rms_norm_launch.cu only (one translation unit; internal linkage).
#pragma once

#include "rms_norm_config.h"

#include "plugkit/cache_hints.h"
#include "plugkit/dispatch.h"
#include "plugkit/kernels.h"
#include "plugkit/launch.h"

#include <cstdint>
#include <type_traits>

namespace plugkit::rms_norm
{
namespace
{

// Hide a vector's value from the optimizer. Without this it keeps the fp32 copies made for
// the sum of squares alive across the reduction (twice the registers of 16-bit values, and
// spills at 16 items) instead of converting the raw values again.
template <typename V>
__device__ __forceinline__ void keepRaw(V& v)
{
    if constexpr (sizeof(V) % 4 == 0)
    {
        auto* words = reinterpret_cast<uint32_t*>(&v);
#pragma unroll
        for (size_t w = 0; w < sizeof(V) / 4; ++w)
        {
            asm volatile("" : "+r"(words[w]));
        }
    }
}

// base + offset for offsets known to be non-negative and 32-bit: the sum is taken in 32 bits
// and widened once (one IMAD.WIDE.U32). A signed int offset may not overflow, so the compiler
// widens each of its terms instead and adds in 64 bits (five instructions an address).
template <typename P>
__device__ __forceinline__ P* at(P* base, int offset)
{
    return base + static_cast<unsigned>(offset);
}

template <int VEC>
using Floats = float[VEC];

template <typename T, int VEC>
__device__ __forceinline__ void toFloats(Vec<T, VEC> const& in, Floats<VEC>& out)
{
#pragma unroll
    for (int k = 0; k < VEC; ++k)
    {
        out[k] = toFloat(in.v[k]);
    }
}

template <int VEC>
__device__ __forceinline__ float sumOfSquares(Floats<VEC> const& v)
{
    float s = 0.0F;
#pragma unroll
    for (int k = 0; k < VEC; ++k)
    {
        s += v[k] * v[k];
    }
    return s;
}

// x * inv * scale, rounded to T: two elements a conversion for 16-bit types.
template <typename T, int VEC>
__device__ __forceinline__ Vec<T, VEC> normalize(Floats<VEC> const& x, Floats<VEC> const& scale, float inv)
{
    Vec<T, VEC> out;
    constexpr bool kPairs = VEC % 2 == 0 && sizeof(T) == 2;
#pragma unroll
    for (int k = 0; k < VEC; k += kPairs ? 2 : 1)
    {
        float const a = x[k] * inv * scale[k];
        if constexpr (kPairs)
        {
            float const b = x[k + 1] * inv * scale[k + 1];
            if constexpr (std::is_same_v<T, __half>)
            {
                *reinterpret_cast<__half2*>(&out.v[k]) = __floats2half2_rn(a, b);
            }
            else
            {
                *reinterpret_cast<__nv_bfloat162*>(&out.v[k]) = __floats2bfloat162_rn(a, b);
            }
        }
        else
        {
            out.v[k] = fromFloat<T>(a);
        }
    }
    return out;
}

// Sums of N values, each over groups of `lanes` consecutive lanes (a power of two up to 32).
// Every shuffle is issued and the N chains interleave; a value from across groups is masked to
// +0 rather than branched around (branches here made the compiler duplicate the shuffles).
template <int N>
__device__ __forceinline__ void laneSums(float (&v)[N], int lanes)
{
    if (lanes == 32) // a row a warp: no masks
    {
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1)
        {
#pragma unroll
            for (int n = 0; n < N; ++n)
            {
                v[n] += __shfl_xor_sync(0xffffffffU, v[n], offset);
            }
        }
        return;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        unsigned keep = offset < lanes ? 0xffffffffU : 0U;
        asm("" : "+r"(keep)); // opaque, or the compiler branches on it after all
#pragma unroll
        for (int n = 0; n < N; ++n)
        {
            float const other = __shfl_xor_sync(0xffffffffU, v[n], offset);
            v[n] += __uint_as_float(__float_as_uint(other) & keep);
        }
    }
}

__device__ __forceinline__ float warpSum(float v)
{
    return warpReduce(v, [](float a, float b) { return a + b; });
}

// Sum over the threads of a block that holds one row (whole warps). rowReduce (plugkit/kernels.h)
// without its second barrier and with the partials added by a warp's shuffles rather than one
// after another. Without that barrier, `partial` may be written again only after a later barrier
// of every thread: a kernel that sums once, or one that alternates two arrays (a fast warp may
// be one sum ahead, never two).
__device__ __forceinline__ float blockSum(float v, float (&partial)[32])
{
    v = warpSum(v);
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    if (lane == 0)
    {
        partial[warp] = v;
    }
    __syncthreads();
    // Every warp adds up all partials, so every thread has the total after one barrier.
    return warpSum(lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : 0.0F);
}

__device__ __forceinline__ float blockSum(float v)
{
    __shared__ float partial[32];
    return blockSum(v, partial);
}

__device__ __forceinline__ float invRms(float sumOfSquares, float invCols, float epsilon)
{
    return rsqrtf(sumOfSquares * invCols + epsilon);
}

} // namespace
} // namespace plugkit::rms_norm
