// RMSNorm kernels. Memory-bound: each element of X is read once and each of Y
// written once, so the row is kept in registers between the reduction and the
// normalization. Rows too long for registers take a two-pass streaming kernel.
#include "rms_norm_kernel.h"

#include "plugkit/dispatch.h"

#include <cstdint>

namespace plugkit::rms_norm
{
namespace
{

constexpr int kMaxThreadsPerRow = 1024;
constexpr int kMaxItems = 8;          // vectors each thread keeps in registers
constexpr int kWarpRowsPerBlock = 8;  // rows per block when a warp handles a row

template <typename T, int N>
struct alignas(sizeof(T) * N) Vec
{
    T v[N];
};

__device__ __forceinline__ float warpSum(float v)
{
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        v += __shfl_xor_sync(0xffffffffU, v, offset);
    }
    return v;
}

// Sum over the threads of one row (threadIdx.x). A block is either one row of
// blockDim.x >= 32 threads, or blockDim.y rows of one warp each.
__device__ __forceinline__ float rowSum(float v)
{
    v = warpSum(v);
    if (blockDim.x == 32)
    {
        return v;
    }
    __shared__ float partial[32];
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    if (lane == 0)
    {
        partial[warp] = v;
    }
    __syncthreads();
    // Every warp adds up all partials, so every thread gets the total after one barrier.
    v = lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : 0.0F;
    return warpSum(v);
}

// scale's value for element `col` of a row; scaleCols is cols, 1, or a divisor of cols.
template <typename S>
__device__ __forceinline__ float scaleAt(S const* scale, int64_t col, int64_t cols, int64_t scaleCols)
{
    if (scaleCols == cols)
    {
        return toFloat(scale[col]);
    }
    return toFloat(scale[scaleCols == 1 ? 0 : col % scaleCols]);
}

template <typename T, typename S, int VEC>
__device__ __forceinline__ void storeNormalized(Vec<T, VEC> const& in, S const* scale, T* y, int64_t col, int64_t cols,
    int64_t scaleCols, float inv)
{
    Vec<T, VEC> out;
    if (scaleCols == cols)
    {
        // Full scale: one vector load, aligned like X's (checked by the launcher).
        Vec<S, VEC> const s = *reinterpret_cast<Vec<S, VEC> const*>(scale + col);
#pragma unroll
        for (int k = 0; k < VEC; ++k)
        {
            out.v[k] = fromFloat<T>(toFloat(in.v[k]) * inv * toFloat(s.v[k]));
        }
    }
    else
    {
#pragma unroll
        for (int k = 0; k < VEC; ++k)
        {
            out.v[k] = fromFloat<T>(toFloat(in.v[k]) * inv * scaleAt(scale, col + k, cols, scaleCols));
        }
    }
    *reinterpret_cast<Vec<T, VEC>*>(y + col) = out;
}

// One pass: the row stays in registers (ITEMS vectors of VEC elements per thread).
template <typename T, typename S, int VEC, int ITEMS>
__global__ void __launch_bounds__(kMaxThreadsPerRow) registerKernel(T const* __restrict__ x,
    S const* __restrict__ scale, T* __restrict__ y, int64_t rows, int64_t cols, int64_t scaleCols, float epsilon)
{
    int64_t const row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
    bool const active = row < rows; // inactive threads still take part in the row reduction barrier
    T const* xRow = x + row * cols;
    T* yRow = y + row * cols;

    Vec<T, VEC> items[ITEMS];
    float sumSquares = 0.0F;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        int64_t const col = (static_cast<int64_t>(i) * blockDim.x + threadIdx.x) * VEC;
        if (active && col < cols)
        {
            items[i] = *reinterpret_cast<Vec<T, VEC> const*>(xRow + col);
#pragma unroll
            for (int k = 0; k < VEC; ++k)
            {
                float const v = toFloat(items[i].v[k]);
                sumSquares += v * v;
            }
        }
    }
    float const inv = rsqrtf(rowSum(sumSquares) / static_cast<float>(cols) + epsilon);
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        int64_t const col = (static_cast<int64_t>(i) * blockDim.x + threadIdx.x) * VEC;
        if (active && col < cols)
        {
            storeNormalized(items[i], scale, yRow, col, cols, scaleCols, inv);
        }
    }
}

// Two passes over the row, for rows that do not fit in registers: the second
// read mostly hits L2, which holds the rows of all resident blocks.
template <typename T, typename S, int VEC>
__global__ void __launch_bounds__(kMaxThreadsPerRow) streamingKernel(T const* __restrict__ x,
    S const* __restrict__ scale, T* __restrict__ y, int64_t cols, int64_t scaleCols, float epsilon)
{
    int64_t const row = blockIdx.x;
    T const* xRow = x + row * cols;
    T* yRow = y + row * cols;
    float sumSquares = 0.0F;
    for (int64_t col = static_cast<int64_t>(threadIdx.x) * VEC; col < cols; col += static_cast<int64_t>(blockDim.x) * VEC)
    {
        Vec<T, VEC> const in = *reinterpret_cast<Vec<T, VEC> const*>(xRow + col);
#pragma unroll
        for (int k = 0; k < VEC; ++k)
        {
            float const v = toFloat(in.v[k]);
            sumSquares += v * v;
        }
    }
    float const inv = rsqrtf(rowSum(sumSquares) / static_cast<float>(cols) + epsilon);
    for (int64_t col = static_cast<int64_t>(threadIdx.x) * VEC; col < cols; col += static_cast<int64_t>(blockDim.x) * VEC)
    {
        storeNormalized(*reinterpret_cast<Vec<T, VEC> const*>(xRow + col), scale, yRow, col, cols, scaleCols, inv);
    }
}

int64_t ceilDiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

bool aligned(void const* p, size_t bytes)
{
    return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <typename T, typename S, int VEC>
void launchWithVec(Problem const& p, cudaStream_t stream)
{
    auto const* x = static_cast<T const*>(p.x);
    auto const* scale = static_cast<S const*>(p.scale);
    auto* y = static_cast<T*>(p.y);
    int64_t const vectors = ceilDiv(p.cols, VEC);

    if (vectors > static_cast<int64_t>(kMaxThreadsPerRow) * kMaxItems)
    {
        PLUGKIT_CHECK(p.rows <= INT32_MAX, "too many rows (" << p.rows << ") for one launch");
        streamingKernel<T, S, VEC><<<static_cast<unsigned>(p.rows), kMaxThreadsPerRow, 0, stream>>>(
            x, scale, y, p.cols, p.scaleCols, p.epsilon);
        return;
    }
    // Fewest items per thread that keep a row within 256 threads (within 1024 at 8 items):
    // several independent 16-byte loads in flight per thread, and enough blocks per SM.
    int items = 1;
    while (items < kMaxItems && ceilDiv(vectors, items) > 256)
    {
        items *= 2;
    }
    int64_t const threadsPerRow = ceilDiv(ceilDiv(vectors, items), 32) * 32;
    int const rowsPerBlock = threadsPerRow == 32 ? kWarpRowsPerBlock : 1;
    int64_t const blocks = ceilDiv(p.rows, rowsPerBlock);
    PLUGKIT_CHECK(blocks <= INT32_MAX, "too many rows (" << p.rows << ") for one launch");
    dim3 const block(static_cast<unsigned>(threadsPerRow), rowsPerBlock);
    auto const grid = static_cast<unsigned>(blocks);
    switch (items)
    {
    case 1: registerKernel<T, S, VEC, 1><<<grid, block, 0, stream>>>(x, scale, y, p.rows, p.cols, p.scaleCols, p.epsilon); break;
    case 2: registerKernel<T, S, VEC, 2><<<grid, block, 0, stream>>>(x, scale, y, p.rows, p.cols, p.scaleCols, p.epsilon); break;
    case 4: registerKernel<T, S, VEC, 4><<<grid, block, 0, stream>>>(x, scale, y, p.rows, p.cols, p.scaleCols, p.epsilon); break;
    default: registerKernel<T, S, VEC, 8><<<grid, block, 0, stream>>>(x, scale, y, p.rows, p.cols, p.scaleCols, p.epsilon); break;
    }
}

template <typename T, typename S>
void launchTyped(Problem const& p, cudaStream_t stream)
{
    // 16-byte vectors when every row start and the scale are aligned for them.
    constexpr int kVec = 16 / sizeof(T);
    bool const vectorizable = p.cols % kVec == 0 && aligned(p.x, 16) && aligned(p.y, 16)
        && (p.scaleCols != p.cols || aligned(p.scale, sizeof(S) * kVec));
    if (vectorizable)
    {
        launchWithVec<T, S, kVec>(p, stream);
    }
    else
    {
        launchWithVec<T, S, 1>(p, stream);
    }
}

} // namespace

void launch(Problem const& p, cudaStream_t stream)
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
            launchTyped<typename decltype(xTag)::type, typename decltype(scaleTag)::type>(p, stream);
        });
    });
    PLUGKIT_CUDA_CHECK(cudaGetLastError());
}

} // namespace plugkit::rms_norm
