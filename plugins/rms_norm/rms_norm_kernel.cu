// RMSNorm kernels. Memory-bound: each element of X is read once and each of Y
// written once, so a row stays in registers between the sum of squares and the
// normalization. Rows of up to 32 16-byte vectors share a block (a warp or less a
// row, reduced with shuffles alone); wider rows get a block each; rows too long for
// registers take a two-pass kernel.
#include "rms_norm_kernel.h"

#include "plugkit/dispatch.h"
#include "plugkit/kernels.h"

#include <algorithm>
#include <cstdint>

namespace plugkit::rms_norm
{
namespace
{

// Tuning knobs, overridable at compile time for scripts/tune_rms_norm.sh (measurements in README.md).
// Threads a row gets before a thread takes more items: 128 threads with 8 x 16-byte loads each
// kept ~10 blocks an SM and the most bytes in flight (H100: 182 us at 16384x8192 fp16, against
// 188 us with 512 threads of 2 items plus prefetch).
#ifndef PLUGKIT_RMS_NORM_THREADS
#define PLUGKIT_RMS_NORM_THREADS 128
#endif
#ifndef PLUGKIT_RMS_NORM_MAX_THREADS
#define PLUGKIT_RMS_NORM_MAX_THREADS 512
#endif
// Resident grid only (PERSISTENT_VECTORS): the next row's loads are issued before this row's
// reduction when a thread's share of a row is at most this many bytes.
#ifndef PLUGKIT_RMS_NORM_PREFETCH_BYTES
#define PLUGKIT_RMS_NORM_PREFETCH_BYTES 64
#endif
// A thread's share of the scale is loaded into registers together with X when it is at most this
// many bytes, else read after the reduction. Early, it costs registers (fp16, 4 items a thread:
// 62 against 32); late, a latency in launches of few blocks (64x2048 fp32: 4.0 against 2.5 us).
#ifndef PLUGKIT_RMS_NORM_CACHE_SCALE_BYTES
#define PLUGKIT_RMS_NORM_CACHE_SCALE_BYTES 64
#endif
// Cache hints for X and Y (see loadOnce). The register kernel marks them evict-first
// when a thread holds more than PLAIN_MAX_ITEMS vectors of a row, or the grid is a single small
// wave (no more than two blocks a multiprocessor); threads of fewer items in a large grid load and
// store plainly. H100, against torch.compile: rows of 1024 16-bit values (1 item),
// 0.98x with hints, 1.01x without; rows of 4096 fp32 (8 items), 1.06x with, 1.03x without;
// 64 rows of 2048 16-bit values (64 blocks), 2.5 us with, 2.7 us without. PLAIN_MAX_ITEMS 0: hints
// always. The streaming kernel always uses them: its second read of X must find X in L2.
#ifndef PLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS
#define PLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS 2
#endif
// Rows of at least this many vectors get a grid of resident blocks that stride over rows (the
// next row's loads overlap this row's reduction); 0 turns that off, and every row group gets its
// own block. Off by default: on an H100 a block per row group was as fast or faster at every
// benchmarked shape (rows of 32768 fp16: 94.4 vs 104.3 us; 65536: 96.4 vs 106.0 us).
#ifndef PLUGKIT_RMS_NORM_PERSISTENT_VECTORS
#define PLUGKIT_RMS_NORM_PERSISTENT_VECTORS 0
#endif
// Rows of at most this many vectors get a warp or less each: their threads reduce with shuffles
// alone, and a block holds several rows. Wider rows get a block each (one barrier a row).
#ifndef PLUGKIT_RMS_NORM_WARP_ROW_VECTORS
#define PLUGKIT_RMS_NORM_WARP_ROW_VECTORS 32
#endif
// Fewest 16-byte vectors a thread of such a row loads (more bytes in flight a thread, fewer lanes a row).
#ifndef PLUGKIT_RMS_NORM_WARP_ROW_ITEMS
#define PLUGKIT_RMS_NORM_WARP_ROW_ITEMS 1
#endif
// Threads of a block of rows of a warp or less.
#ifndef PLUGKIT_RMS_NORM_WARP_ROW_BLOCK_THREADS
#define PLUGKIT_RMS_NORM_WARP_ROW_BLOCK_THREADS 256
#endif
constexpr int kThreadsPerRow = PLUGKIT_RMS_NORM_THREADS;
constexpr int kMaxThreadsPerRow = PLUGKIT_RMS_NORM_MAX_THREADS; // 512: 128 registers a thread for 16 items
constexpr int kMaxItems = 16;          // 16-byte vectors a thread keeps in registers
constexpr int kWarpRowBlockThreads = PLUGKIT_RMS_NORM_WARP_ROW_BLOCK_THREADS;
static_assert(PLUGKIT_RMS_NORM_WARP_ROW_VECTORS <= 32 * kMaxItems, "a warp holds at most 32 x kMaxItems vectors");
static_assert(kWarpRowBlockThreads % 32 == 0 && kWarpRowBlockThreads <= kMaxThreadsPerRow, "whole warps a block");
constexpr int kStreamingThreads = 1024;

// Loads of X and stores of Y, with EVICT_FIRST as ld/st.global.cs (first to leave L1 and L2).
template <bool EVICT_FIRST, typename V>
__device__ __forceinline__ V loadOnce(V const* p)
{
    if constexpr (sizeof(V) == 16 && EVICT_FIRST)
    {
        uint4 const raw = __ldcs(reinterpret_cast<uint4 const*>(p));
        return *reinterpret_cast<V const*>(&raw);
    }
    else
    {
        return *p;
    }
}

template <bool EVICT_FIRST, typename V>
__device__ __forceinline__ void storeOnce(V* p, V const& v)
{
    if constexpr (sizeof(V) == 16 && EVICT_FIRST)
    {
        __stcs(reinterpret_cast<uint4*>(p), *reinterpret_cast<uint4 const*>(&v));
    }
    else
    {
        *p = v;
    }
}

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

template <typename T, int VEC>
__device__ __forceinline__ float sumOfSquares(Vec<T, VEC> const& in)
{
    float s = 0.0F;
#pragma unroll
    for (int k = 0; k < VEC; ++k)
    {
        float const v = toFloat(in.v[k]);
        s += v * v;
    }
    return s;
}

template <typename T, typename S, int VEC>
__device__ __forceinline__ Vec<T, VEC> normalize(Vec<T, VEC> const& in, Vec<S, VEC> const& scale, float inv)
{
    Vec<T, VEC> out;
#pragma unroll
    for (int k = 0; k < VEC; ++k)
    {
        out.v[k] = fromFloat<T>(toFloat(in.v[k]) * inv * toFloat(scale.v[k]));
    }
    return out;
}

// Sum over groups of `width` consecutive lanes (a power of two up to 32).
__device__ __forceinline__ float groupSum(float v, int width)
{
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        if (offset < width)
        {
            v += __shfl_xor_sync(0xffffffffU, v, offset);
        }
    }
    return v;
}

// Sum over the threads of one row (threadIdx.x). A block is either one row of
// blockDim.x >= 64 threads, or blockDim.y rows of blockDim.x <= 32 threads each.
// `partial` alternates between two buffers from row to row (parity), so one
// barrier a row keeps the next row's writes away from this row's reads.
__device__ __forceinline__ float rowSum(float v, int parity)
{
    if (blockDim.x <= 32)
    {
        return groupSum(v, blockDim.x);
    }
    v = groupSum(v, 32);
    __shared__ float partial[2][32];
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    if (lane == 0)
    {
        partial[parity][warp] = v;
    }
    __syncthreads();
    // Every warp adds up all partials, so every thread has the total after one barrier.
    v = lane < static_cast<int>(blockDim.x >> 5) ? partial[parity][lane] : 0.0F;
    return groupSum(v, 32);
}

// One pass: the row stays in registers (ITEMS vectors of VEC elements a thread).
// Blocks stride over rows, blockDim.y rows at a time. The scale is loaded once into
// registers when it fits in a few. A RESIDENT grid (fewer blocks than row groups) has
// the next row's loads in flight while one row is reduced and written; a grid of a
// block a row group does not spend the registers on that (they cost occupancy).
template <typename T, typename S, int VEC, int ITEMS, bool RESIDENT, bool EVICT_FIRST>
__global__ void __launch_bounds__(kMaxThreadsPerRow) registerKernel(
    T const* __restrict__ x, S const* __restrict__ scale, T* __restrict__ y, int64_t rows, int cols, float epsilon)
{
    constexpr bool kCacheScale = ITEMS * VEC * sizeof(S) <= PLUGKIT_RMS_NORM_CACHE_SCALE_BYTES;
    constexpr bool kPrefetch = RESIDENT && ITEMS * VEC * sizeof(T) <= PLUGKIT_RMS_NORM_PREFETCH_BYTES;
    using XVec = Vec<T, VEC>;
    using SVec = Vec<S, VEC>;
    auto column = [&](int i) { return (i * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x)) * VEC; };
    auto loadRow = [&](int64_t row, XVec (&items)[ITEMS]) {
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (row < rows && column(i) < cols)
            {
                items[i] = loadOnce<EVICT_FIRST>(reinterpret_cast<XVec const*>(x + row * cols + column(i)));
            }
        }
    };

    SVec scaleItems[kCacheScale ? ITEMS : 1];
    if constexpr (kCacheScale)
    {
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (column(i) < cols)
            {
                scaleItems[i] = *reinterpret_cast<SVec const*>(scale + column(i));
            }
        }
    }
    int64_t const rowStride = static_cast<int64_t>(gridDim.x) * blockDim.y;
    int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
    XVec items[ITEMS];
    if constexpr (kPrefetch)
    {
        loadRow(row, items);
    }
    // All threads of a block run the same iterations: rowSum has a barrier.
    for (int64_t first = row - threadIdx.y, parity = 0; first < rows; first += rowStride, row += rowStride, parity ^= 1)
    {
        if constexpr (!kPrefetch)
        {
            loadRow(row, items);
        }
        float sumSquares = 0.0F;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (row < rows && column(i) < cols)
            {
                sumSquares += sumOfSquares(items[i]);
            }
        }
        XVec next[kPrefetch ? ITEMS : 1];
        if constexpr (kPrefetch)
        {
            loadRow(row + rowStride, next);
        }
        float const inv = rsqrtf(rowSum(sumSquares, static_cast<int>(parity)) / static_cast<float>(cols) + epsilon);
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            keepRaw(items[i]);
            if (row < rows && column(i) < cols)
            {
                SVec s;
                if constexpr (kCacheScale)
                {
                    s = scaleItems[i];
                    keepRaw(s); // converted here, not held as fp32 across the reduction
                }
                else
                {
                    s = *reinterpret_cast<SVec const*>(scale + column(i));
                }
                storeOnce<EVICT_FIRST>(reinterpret_cast<XVec*>(y + row * cols + column(i)), normalize(items[i], s, inv));
            }
        }
        if constexpr (kPrefetch)
        {
#pragma unroll
            for (int i = 0; i < ITEMS; ++i)
            {
                items[i] = next[i];
            }
        }
    }
}

// Two passes over the row, for rows that do not fit in registers: the second
// read mostly hits L2, which holds the rows of all resident blocks.
template <typename T, typename S, int VEC>
__global__ void __launch_bounds__(kStreamingThreads) streamingKernel(
    T const* __restrict__ x, S const* __restrict__ scale, T* __restrict__ y, int64_t cols, float epsilon)
{
    T const* xRow = x + static_cast<int64_t>(blockIdx.x) * cols;
    T* yRow = y + static_cast<int64_t>(blockIdx.x) * cols;
    int64_t const step = static_cast<int64_t>(blockDim.x) * VEC;
    float sumSquares = 0.0F;
    for (int64_t col = static_cast<int64_t>(threadIdx.x) * VEC; col < cols; col += step)
    {
        sumSquares += sumOfSquares(*reinterpret_cast<Vec<T, VEC> const*>(xRow + col));
    }
    float const inv = rsqrtf(rowSum(sumSquares, 0) / static_cast<float>(cols) + epsilon);
    for (int64_t col = static_cast<int64_t>(threadIdx.x) * VEC; col < cols; col += step)
    {
        Vec<T, VEC> const in = loadOnce<true>(reinterpret_cast<Vec<T, VEC> const*>(xRow + col));
        storeOnce<true>(reinterpret_cast<Vec<T, VEC>*>(yRow + col),
            normalize(in, *reinterpret_cast<Vec<S, VEC> const*>(scale + col), inv));
    }
}

// A scale that broadcasts (one value, or a suffix of the normalized axes) expanded to one
// value per normalized element, so the kernels above read it like a full one.
template <typename S>
__global__ void expandScaleKernel(S const* __restrict__ scale, S* __restrict__ full, int64_t cols, int64_t scaleCols)
{
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < cols;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        full[i] = scale[i % scaleCols];
    }
}

int multiprocessorCount()
{
    int device = 0;
    int multiprocessors = 0;
    PLUGKIT_CUDA_CHECK(cudaGetDevice(&device));
    PLUGKIT_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device));
    return multiprocessors;
}

// A block a row group, or (resident grid) as many blocks as are resident at once, striding over the rows.
template <typename T, typename S, int VEC, int ITEMS>
void launchRegister(
    Problem const& p, S const* scale, dim3 block, bool resident, int64_t multiprocessors, cudaStream_t stream)
{
    int64_t grid = ceilDiv(p.rows, block.y);
    auto* kernel = registerKernel<T, S, VEC, ITEMS, false, true>;
    // Plain loads and stores: instantiated only for few items a thread and 16-byte vectors (the
    // hints apply to those alone).
    if constexpr (ITEMS <= PLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS && VEC * sizeof(T) == 16)
    {
        if (grid > 2 * multiprocessors)
        {
            kernel = registerKernel<T, S, VEC, ITEMS, false, false>;
        }
    }
    // Instantiated only where a knob turns the resident grid on.
    if constexpr (PLUGKIT_RMS_NORM_PERSISTENT_VECTORS > 0)
    {
        if (resident)
        {
            kernel = registerKernel<T, S, VEC, ITEMS, true, true>;
            int blocksPerMultiprocessor = 0;
            PLUGKIT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                &blocksPerMultiprocessor, kernel, static_cast<int>(block.x * block.y), 0));
            grid = std::min(grid, multiprocessors * std::max(blocksPerMultiprocessor, 1));
        }
    }
    PLUGKIT_CHECK(grid <= INT32_MAX, "too many rows (" << p.rows << ") for one launch");
    kernel<<<static_cast<unsigned>(grid), block, 0, stream>>>(static_cast<T const*>(p.x), scale,
        static_cast<T*>(p.y), p.rows, static_cast<int>(p.cols), p.epsilon);
}

int64_t nextPowerOfTwo(int64_t n)
{
    int64_t p = 1;
    while (p < n)
    {
        p *= 2;
    }
    return p;
}

template <typename T, typename S, int VEC>
void launchWithVec(Problem const& p, S const* scale, cudaStream_t stream)
{
    int64_t const vectors = ceilDiv(p.cols, VEC);
    if (vectors > static_cast<int64_t>(kMaxThreadsPerRow) * kMaxItems)
    {
        PLUGKIT_CHECK(p.rows <= INT32_MAX, "too many rows (" << p.rows << ") for one launch");
        streamingKernel<T, S, VEC><<<static_cast<unsigned>(p.rows), kStreamingThreads, 0, stream>>>(
            static_cast<T const*>(p.x), scale, static_cast<T*>(p.y), p.cols, p.epsilon);
        return;
    }
    int64_t const multiprocessors = multiprocessorCount();
    int items = 1;
    int64_t threadsPerRow = 0;
    dim3 block;
    if (vectors <= PLUGKIT_RMS_NORM_WARP_ROW_VECTORS)
    {
        // A warp or less a row, each thread at least WARP_ROW_ITEMS vectors (no more than the row has).
        items = static_cast<int>(std::min<int64_t>(PLUGKIT_RMS_NORM_WARP_ROW_ITEMS, nextPowerOfTwo(vectors)));
        while (items < kMaxItems && ceilDiv(vectors, items) > 32)
        {
            items *= 2;
        }
        threadsPerRow = nextPowerOfTwo(ceilDiv(vectors, items));
        // Several rows a block, but no fewer blocks than multiprocessors while rows allow.
        int64_t rowsPerBlock = kWarpRowBlockThreads / threadsPerRow;
        while (rowsPerBlock > 1 && ceilDiv(p.rows, rowsPerBlock) < multiprocessors)
        {
            rowsPerBlock /= 2;
        }
        block = dim3(static_cast<unsigned>(threadsPerRow), static_cast<unsigned>(rowsPerBlock));
    }
    else
    {
        // Fewest items a thread (up to 16) that keep a row within kThreadsPerRow threads; rows
        // wider than that at 16 items get up to 512 threads.
        while (items < kMaxItems && ceilDiv(vectors, items) > kThreadsPerRow)
        {
            items *= 2;
        }
        threadsPerRow = ceilDiv(ceilDiv(vectors, items), 32) * 32;
        block = dim3(static_cast<unsigned>(threadsPerRow), 1U);
    }
    bool const resident = PLUGKIT_RMS_NORM_PERSISTENT_VECTORS > 0 && vectors >= PLUGKIT_RMS_NORM_PERSISTENT_VECTORS;
    switch (items)
    {
    case 1: launchRegister<T, S, VEC, 1>(p, scale, block, resident, multiprocessors, stream); break;
    case 2: launchRegister<T, S, VEC, 2>(p, scale, block, resident, multiprocessors, stream); break;
    case 4: launchRegister<T, S, VEC, 4>(p, scale, block, resident, multiprocessors, stream); break;
    case 8: launchRegister<T, S, VEC, 8>(p, scale, block, resident, multiprocessors, stream); break;
    default: launchRegister<T, S, VEC, 16>(p, scale, block, resident, multiprocessors, stream); break;
    }
}

template <typename T, typename S>
void launchTyped(Problem const& p, void* workspace, cudaStream_t stream)
{
    auto const* scale = static_cast<S const*>(p.scale);
    if (p.scaleCols != p.cols)
    {
        PLUGKIT_CHECK(workspace != nullptr, "a broadcast scale needs the workspace getWorkspaceSize asked for");
        auto* full = static_cast<S*>(workspace);
        int const blocks = static_cast<int>(std::min<int64_t>(ceilDiv(p.cols, 256), 1024));
        expandScaleKernel<S><<<blocks, 256, 0, stream>>>(scale, full, p.cols, p.scaleCols);
        scale = full;
    }
    // 16-byte vectors when every row start, and the scale, are aligned for them.
    constexpr int kVec = 16 / sizeof(T);
    if (p.cols % kVec == 0 && isAligned(p.x, 16) && isAligned(p.y, 16) && isAligned(scale, sizeof(S) * kVec))
    {
        launchWithVec<T, S, kVec>(p, scale, stream);
    }
    else
    {
        launchWithVec<T, S, 1>(p, scale, stream);
    }
}

} // namespace

size_t workspaceSize(int64_t cols, int64_t scaleCols)
{
    // Room for the expanded scale in the widest scale dtype, 256-byte aligned.
    return scaleCols == cols ? 0 : static_cast<size_t>(ceilDiv(cols * static_cast<int64_t>(sizeof(float)), 256) * 256);
}

void launch(Problem const& p, void* workspace, cudaStream_t stream)
{
    PLUGKIT_CHECK(p.rows >= 0 && p.cols >= 0, "negative shape: rows " << p.rows << ", cols " << p.cols);
    if (p.rows == 0 || p.cols == 0)
    {
        return; // empty tensor: nothing to read or write
    }
    PLUGKIT_CHECK(p.scaleCols >= 1 && p.cols % p.scaleCols == 0,
        "scale has " << p.scaleCols << " elements, which do not tile the " << p.cols << " normalized elements");
    dispatchFloat(p.xType, [&](auto xTag) {
        dispatchFloat(p.scaleType, [&](auto scaleTag) {
            launchTyped<typename decltype(xTag)::type, typename decltype(scaleTag)::type>(p, workspace, stream);
        });
    });
    PLUGKIT_CUDA_CHECK(cudaGetLastError());
}

} // namespace plugkit::rms_norm
