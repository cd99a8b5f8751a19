#include "plugkit/dispatch.h"

#include <cuda_runtime_api.h>

namespace
{

template <typename T>
__global__ void scaleOnePerThread(T const* x, T* y, int64_t n, float factor)
{
    int64_t const i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n)
    {
        y[i] = plugkit::fromFloat<T>(plugkit::toFloat(x[i]) * factor);
    }
}

template <typename T>
__global__ void scaleGridStride(T const* x, T* y, int64_t n, float factor)
{
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        y[i] = plugkit::fromFloat<T>(plugkit::toFloat(x[i]) * factor);
    }
}

__global__ void writeTactic(int32_t* used, int32_t tactic)
{
    *used = tactic;
}

template <typename T>
__device__ bool isNonZero(T v)
{
    return v != T(0);
}
template <>
__device__ bool isNonZero(__half v)
{
    return __half2float(v) != 0.0F;
}
template <>
__device__ bool isNonZero(__nv_bfloat16 v)
{
    return __bfloat162float(v) != 0.0F;
}

// One thread, two passes: count K first, so that indices [2, K] is laid out with row stride K.
template <typename T, typename I>
__global__ void nonZero(T const* x, int64_t rows, int64_t cols, I* indices, int32_t* mask, int32_t* count)
{
    int64_t k = 0;
    for (int64_t i = 0; i < rows * cols; ++i)
    {
        bool const nz = isNonZero(x[i]);
        mask[i] = nz ? 1 : 0;
        k += nz;
    }
    int64_t j = 0;
    for (int64_t i = 0; i < rows * cols; ++i)
    {
        if (mask[i])
        {
            indices[j] = static_cast<I>(i / cols);
            indices[k + j] = static_cast<I>(i % cols);
            ++j;
        }
    }
    *count = static_cast<int32_t>(k);
}

template <typename F>
void dispatchInput(nvinfer1::DataType type, F&& f)
{
    switch (type)
    {
    case nvinfer1::DataType::kBOOL: f(plugkit::TypeTag<bool>{}); return;
    case nvinfer1::DataType::kUINT8: f(plugkit::TypeTag<uint8_t>{}); return;
    case nvinfer1::DataType::kINT32:
    case nvinfer1::DataType::kINT64: plugkit::dispatchIndex(type, f); return;
    default: plugkit::dispatchFloat(type, f);
    }
}

} // namespace

void launchTacticScale(int32_t tactic, nvinfer1::DataType type, void const* x, void* y, int32_t* used, int64_t n,
    float factor, cudaStream_t stream)
{
    plugkit::dispatchFloat(type, [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (n > 0 && tactic == 1)
        {
            scaleOnePerThread<T><<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(
                static_cast<T const*>(x), static_cast<T*>(y), n, factor);
        }
        else if (n > 0)
        {
            scaleGridStride<T><<<32 * (tactic > 0 ? tactic : 1), 128, 0, stream>>>(static_cast<T const*>(x), static_cast<T*>(y), n, factor);
        }
    });
    writeTactic<<<1, 1, 0, stream>>>(used, tactic);
    PLUGKIT_CUDA_CHECK(cudaGetLastError());
}

void launchNonZero(nvinfer1::DataType inType, nvinfer1::DataType indexType, void const* x, int64_t rows, int64_t cols,
    void* indices, int32_t* mask, int32_t* count, cudaStream_t stream)
{
    dispatchInput(inType, [&](auto inTag) {
        using T = typename decltype(inTag)::type;
        plugkit::dispatchIndex(indexType, [&](auto indexTag) {
            using I = typename decltype(indexTag)::type;
            nonZero<T, I><<<1, 1, 0, stream>>>(static_cast<T const*>(x), rows, cols, static_cast<I*>(indices), mask, count);
        });
    });
    PLUGKIT_CUDA_CHECK(cudaGetLastError());
}
