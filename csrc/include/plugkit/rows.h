// Row kernels with the row held in registers: each row of `cols` contiguous elements is read once
// into fp32 registers spread over the threads of the row, transformed in place by the op (which
// reduces over the row as often as it needs), and written once. Memory traffic is that of a copy.
//
//   host (.cu)    dispatchRows<T>(cols, aligned, [&](auto config) {
//                     using C = decltype(config);
//                     launchRows(myKernel<T, C::kVec, C::kItems>, config, rows, stream, args...);
//                 });
//   device (.cu)  forEachRow<T, VEC, ITEMS>(in, out, rows, cols, padding, f)
//                     f(float (&x)[ITEMS * VEC], RowReducer const& row) for each row this thread helps with;
//                 RowReducer: row.sum(v), row.max(v), row.min(v), row.reduce(v, combine) over the row.
//
// A thread holds ITEMS vectors of VEC elements (16 bytes each when the rows start 16-byte aligned
// and `cols` is a multiple of VEC; 8 bytes for rows of at most 32 such vectors). Rows of up to 32 vectors a lane take one warp each, 8 rows a
// block, and a warp loads its next row while it works on this one when a row is small; longer rows
// take one block (up to 1024 threads, 32 elements each); rows beyond 32768 elements keep 128 elements
// a thread, most of them in local memory (slower, still one read). Slots past a row's end hold
// `padding`, which must not change the op's reductions (-inf for a maximum, 0 for a sum).
#pragma once

#include "plugkit/kernels.h"
#include "plugkit/launch.h"

#if defined(__CUDACC__)
#include "plugkit/dispatch.h"
#endif

#include <algorithm>
#include <cstdint>

namespace plugkit
{

constexpr int kRowRegisterElements = 32;  //!< elements a thread of a row holds in registers
constexpr int kRowLocalElements = 128;    //!< ...and in local memory, for the longest rows
constexpr int kRowMaxThreads = 1024;
constexpr int kWarpRowsPerBlock = 8;
constexpr int64_t kMaxRowElements = int64_t{kRowMaxThreads} * kRowLocalElements;

//! The compile-time shape of a row kernel (VEC elements per access, ITEMS accesses a thread) and
//! its block: `threads` per row, `rowsPerBlock` rows.
template <int VEC, int ITEMS>
struct RowConfig
{
    static constexpr int kVec = VEC;
    static constexpr int kItems = ITEMS;
    int threads;
    int rowsPerBlock;
};

namespace detail
{

template <int VEC, int ITEMS, typename F>
void dispatchRowItems(int64_t vectors, F& f)
{
    constexpr int kWarpItems = kRowRegisterElements / VEC;
    if constexpr (ITEMS <= kWarpItems)
    {
        if (vectors <= int64_t{32} * ITEMS)
        {
            f(RowConfig<VEC, ITEMS>{32, kWarpRowsPerBlock});
            return;
        }
        dispatchRowItems<VEC, ITEMS * 2>(vectors, f);
    }
    else
    {
        auto const threadsFor = [vectors](int items) { return static_cast<int>(ceilDiv(ceilDiv(vectors, items), 32) * 32); };
        if (vectors <= int64_t{kRowMaxThreads} * kWarpItems)
        {
            f(RowConfig<VEC, kWarpItems>{threadsFor(kWarpItems), 1});
            return;
        }
        constexpr int kLocalItems = kRowLocalElements / VEC;
        f(RowConfig<VEC, kLocalItems>{threadsFor(kLocalItems), 1});
    }
}

} // namespace detail

//! Call f(RowConfig<VEC, ITEMS>{...}) with the configuration for rows of `cols` elements of T;
//! `aligned`: both tensors start 16-byte aligned. Throws plugkit::Error for rows beyond kMaxRowElements.
template <typename T, typename F>
void dispatchRows(int64_t cols, bool aligned, F&& f)
{
    PLUGKIT_CHECK(cols <= kMaxRowElements,
        "rows of " << cols << " elements are longer than the row kernels take (" << kMaxRowElements << ")");
    constexpr int kVec = static_cast<int>(16 / sizeof(T));
    constexpr int kHalfVec = kVec / 2;
    if (aligned && cols % kHalfVec == 0 && cols <= 32 * kHalfVec)
    {
        // A short row (softmax over 128 halfs): 8-byte accesses spread it over the whole warp, which
        // then holds half the registers a lane and fits twice the warps, so twice the rows in flight.
        f(RowConfig<kHalfVec, 1>{32, kWarpRowsPerBlock});
    }
    else if (aligned && cols % kVec == 0)
    {
        detail::dispatchRowItems<kVec, 1>(ceilDiv(cols, kVec), f);
    }
    else
    {
        detail::dispatchRowItems<1, 1>(cols, f);
    }
}

#if defined(__CUDACC__)

//! Launch `kernel` (which calls forEachRow) for `rows` rows with `config`'s block: as many blocks as
//! the rows need, at most as many as are resident at once (forEachRow loops over the rest).
template <typename... Params, int VEC, int ITEMS, typename... Args>
void launchRows(void (*kernel)(Params...), RowConfig<VEC, ITEMS> config, int64_t rows, cudaStream_t stream, Args&&... args)
{
    dim3 const block(static_cast<unsigned>(config.threads), static_cast<unsigned>(config.rowsPerBlock));
    int const resident = residentBlocks(kernel, config.threads * config.rowsPerBlock, 0); // cached per device
    int64_t const most = int64_t{std::max(resident, 1)} * deviceAttribute(cudaDevAttrMultiProcessorCount);
    int64_t const blocks = std::min(ceilDiv(rows, config.rowsPerBlock), most);
    launchKernel(kernel, dim3(static_cast<unsigned>(blocks)), block, 0, stream, std::forward<Args>(args)...);
}

//! Combines a value over the threads of one row; every thread of the row gets the result. Every
//! thread of the row must call it the same number of times.
struct RowReducer
{
    template <typename S, typename Combine>
    __device__ __forceinline__ S reduce(S value, Combine combine) const
    {
        return rowReduce(value, combine);
    }
    __device__ __forceinline__ float sum(float value) const
    {
        return rowReduce(value, [](float a, float b) { return a + b; });
    }
    __device__ __forceinline__ float max(float value) const
    {
        return rowReduce(value, [](float a, float b) { return fmaxf(a, b); });
    }
    __device__ __forceinline__ float min(float value) const
    {
        return rowReduce(value, [](float a, float b) { return fminf(a, b); });
    }
};

namespace detail
{

template <typename T, int VEC, int ITEMS>
__device__ __forceinline__ void loadRow(float (&x)[ITEMS * VEC], T const* row, int64_t cols, float padding)
{
    using V = Vec<T, VEC>;
#pragma unroll
    for (int j = 0; j < ITEMS; ++j)
    {
        int64_t const col = (int64_t{j} * blockDim.x + threadIdx.x) * VEC;
        if (col < cols) // whole vectors: VEC > 1 only when cols % VEC == 0
        {
            V const v = *reinterpret_cast<V const*>(row + col);
#pragma unroll
            for (int k = 0; k < VEC; ++k)
            {
                x[j * VEC + k] = toFloat(v.v[k]);
            }
        }
        else
        {
#pragma unroll
            for (int k = 0; k < VEC; ++k)
            {
                x[j * VEC + k] = padding;
            }
        }
    }
}

template <typename T, int VEC, int ITEMS>
__device__ __forceinline__ void storeRow(float const (&x)[ITEMS * VEC], T* row, int64_t cols)
{
    using V = Vec<T, VEC>;
#pragma unroll
    for (int j = 0; j < ITEMS; ++j)
    {
        int64_t const col = (int64_t{j} * blockDim.x + threadIdx.x) * VEC;
        if (col < cols)
        {
            V v;
#pragma unroll
            for (int k = 0; k < VEC; ++k)
            {
                v.v[k] = fromFloat<T>(x[j * VEC + k]);
            }
            *reinterpret_cast<V*>(row + col) = v;
        }
    }
}

} // namespace detail

//! For each row of `in` this thread takes part in: its part of the row in fp32 registers, f(x, row)
//! to turn them into the output, which is written to the same place in `out`. Launch with
//! launchRows (blockDim.x threads a row, blockDim.y rows a block).
template <typename T, int VEC, int ITEMS, typename F>
__device__ __forceinline__ void forEachRow(void const* in, void* out, int64_t rows, int64_t cols, float padding, F&& f)
{
    constexpr int kElements = ITEMS * VEC;
    // Small rows: load the next row before working on this one, so that a warp keeps two in flight.
    constexpr bool kPrefetch = kElements <= 16;
    auto const* x = static_cast<T const*>(in);
    auto* y = static_cast<T*>(out);
    int64_t const step = int64_t{gridDim.x} * blockDim.y;
    int64_t row = int64_t{blockIdx.x} * blockDim.y + threadIdx.y;
    RowReducer const reducer;
    float values[kElements];
    if (row < rows)
    {
        detail::loadRow<T, VEC, ITEMS>(values, x + row * cols, cols, padding);
    }
    for (; row < rows; row += step)
    {
        float next[kPrefetch ? kElements : 1];
        if constexpr (kPrefetch)
        {
            if (row + step < rows)
            {
                detail::loadRow<T, VEC, ITEMS>(next, x + (row + step) * cols, cols, padding);
            }
        }
        f(values, reducer);
        detail::storeRow<T, VEC, ITEMS>(values, y + row * cols, cols);
        if (row + step < rows)
        {
            if constexpr (kPrefetch)
            {
#pragma unroll
                for (int i = 0; i < kElements; ++i)
                {
                    values[i] = next[i];
                }
            }
            else
            {
                detail::loadRow<T, VEC, ITEMS>(values, x + (row + step) * cols, cols, padding);
            }
        }
    }
}

#endif // __CUDACC__

} // namespace plugkit
