#include "plugkit/dispatch.h"

namespace
{
template <typename T>
__global__ void scaleKernel(T const* x, T* y, int64_t n, float factor)
{
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        y[i] = plugkit::fromFloat<T>(plugkit::toFloat(x[i]) * factor);
    }
}
} // namespace

void launchScale(nvinfer1::DataType type, void const* x, void* y, int64_t n, float factor, cudaStream_t stream)
{
    if (n == 0)
    {
        return;
    }
    plugkit::dispatchFloat(type, [&](auto tag) {
        using T = typename decltype(tag)::type;
        int const blocks = static_cast<int>(std::min<int64_t>((n + 255) / 256, 4096));
        scaleKernel<T><<<blocks, 256, 0, stream>>>(static_cast<T const*>(x), static_cast<T*>(y), n, factor);
    });
    PLUGKIT_CUDA_CHECK(cudaGetLastError());
}
