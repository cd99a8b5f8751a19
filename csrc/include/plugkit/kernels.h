// Building blocks of memory-bound kernels, shared by the plugins `plugkit new`
// generates (and free for hand-written ones):
//
//   host and device  broadcastsTo(in, out), broadcast(in, out) -> Broadcast::offset(index)
//   host             ceilDiv, isAligned, gridFor (blocks of a grid-stride loop)
//   device (.cu)     Vec<T, N> (16-byte loads), warpReduce, rowReduce (any trivially
//                    copyable state, merged by a `combine` function)
#pragma once

#include "plugkit/formats.h"
#include "plugkit/status.h"

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace plugkit
{

constexpr int32_t kMaxRank = nvinfer1::Dims::MAX_DIMS;

//! True when `in` broadcasts to `out` under numpy's rules: dims aligned from the right,
//! each of `in`'s either 1 or equal to `out`'s, and `in` no longer than `out`.
inline bool broadcastsTo(nvinfer1::Dims const& in, nvinfer1::Dims const& out) noexcept
{
    if (in.nbDims > out.nbDims)
    {
        return false;
    }
    for (int32_t i = 1; i <= in.nbDims; ++i)
    {
        int64_t const d = in.d[in.nbDims - i];
        if (d != 1 && d != out.d[out.nbDims - i])
        {
            return false;
        }
    }
    return true;
}

//! How an input is read at each element of an output it broadcasts to.
struct Broadcast
{
    int32_t rank;              //!< the output's rank
    bool identity;             //!< offset(i) == i: the input has the output's elements, in its order
    int64_t dims[kMaxRank];    //!< the output's dims
    int64_t strides[kMaxRank]; //!< the input's element stride along each output axis; 0 where it broadcasts

    //! The input's element offset for the output's (row-major) element `index`.
    __host__ __device__ int64_t offset(int64_t index) const
    {
        int64_t result = 0;
        for (int32_t axis = rank - 1; axis >= 0; --axis)
        {
            result += index % dims[axis] * strides[axis];
            index /= dims[axis];
        }
        return result;
    }
};

//! The Broadcast of a row-major `in` to `out`; throws plugkit::Error when `in` does not broadcast to `out`.
inline Broadcast broadcast(nvinfer1::Dims const& in, nvinfer1::Dims const& out)
{
    PLUGKIT_CHECK(broadcastsTo(in, out), toString(in) << " does not broadcast to " << toString(out));
    Broadcast b{out.nbDims, volume(in) == volume(out), {}, {}};
    int64_t stride = 1;
    for (int32_t axis = out.nbDims - 1; axis >= 0; --axis)
    {
        int32_t const inAxis = axis - (out.nbDims - in.nbDims);
        bool const broadcasts = inAxis < 0 || (in.d[inAxis] == 1 && out.d[axis] != 1);
        b.dims[axis] = out.d[axis];
        b.strides[axis] = broadcasts ? 0 : stride;
        stride *= inAxis < 0 ? 1 : in.d[inAxis];
    }
    return b;
}

constexpr int64_t ceilDiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

inline bool isAligned(void const* p, size_t bytes)
{
    return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

//! Blocks for a grid-stride loop over `items` with `threads` per block: one item per thread,
//! capped where more blocks would only queue behind those already resident.
inline unsigned gridFor(int64_t items, int threads)
{
    constexpr int64_t kMaxBlocks = 1 << 16;
    return static_cast<unsigned>(std::max<int64_t>(1, std::min(ceilDiv(items, threads), kMaxBlocks)));
}

#if defined(__CUDACC__)

//! N elements of T loaded or stored as one (up to 16-byte) memory access.
template <typename T, int N>
struct alignas(sizeof(T) * N) Vec
{
    T v[N];
};

//! `value` of lane (laneId ^ laneMask), for any trivially copyable value of whole 32-bit words.
template <typename S>
__device__ __forceinline__ S shuffleXor(S value, int laneMask)
{
    static_assert(sizeof(S) % sizeof(int) == 0, "a reduction state must consist of 32-bit words");
    int words[sizeof(S) / sizeof(int)];
    memcpy(words, &value, sizeof(S));
#pragma unroll
    for (auto& w : words)
    {
        w = __shfl_xor_sync(0xffffffffU, w, laneMask);
    }
    memcpy(&value, words, sizeof(S));
    return value;
}

//! `value` combined over the 32 lanes of a warp; every lane gets the result.
template <typename S, typename Combine>
__device__ __forceinline__ S warpReduce(S value, Combine combine)
{
#pragma unroll
    for (int laneMask = 16; laneMask > 0; laneMask >>= 1)
    {
        value = combine(value, shuffleXor(value, laneMask));
    }
    return value;
}

//! `value` combined over the threads of one row (threadIdx.x); every thread gets its row's
//! result. A block is either one row of blockDim.x threads (a multiple of 32, up to 1024) or
//! blockDim.y rows of one warp each. Every thread of the block must call it.
template <typename S, typename Combine>
__device__ __forceinline__ S rowReduce(S value, Combine combine)
{
    value = warpReduce(value, combine);
    if (blockDim.x == 32)
    {
        return value;
    }
    // Raw storage: a state type with default member initializers may not be declared __shared__.
    __shared__ alignas(S) unsigned char storage[32 * sizeof(S)];
    S* partial = reinterpret_cast<S*>(storage);
    int const warps = static_cast<int>(blockDim.x >> 5);
    if ((threadIdx.x & 31) == 0)
    {
        partial[threadIdx.x >> 5] = value;
    }
    __syncthreads();
    value = partial[0];
    for (int w = 1; w < warps; ++w)
    {
        value = combine(value, partial[w]);
    }
    __syncthreads(); // partial[] may be written again by a later call
    return value;
}

#endif // __CUDACC__

} // namespace plugkit
