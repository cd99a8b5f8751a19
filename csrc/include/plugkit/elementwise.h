// Elementwise kernels near the copy roofline: an output computed element by element from inputs
// of its shape or broadcasting to it, 16 bytes per access and several accesses in flight per thread.
//
//   host          ElementwiseInput in = elementwiseInput(data, inDims, outDims)
//                 int vec = elementwiseVector<T>(count, out, in...)   16 / sizeof(T) or 1
//                 dim3 grid = elementwiseGrid(count, vec)             with kElementwiseThreads per block
//   device (.cu)  mapElements<T, VEC>(count, out, f, in...)           out[i] = f(in[i]...) in fp32
//
// An input is read at output element i through its `period`: element i % period of its data,
// which covers the same shape (period = count), one value (period = 1) and a suffix of the
// output's dims (a bias [C] over [N, C]: period = C). Other broadcasts (a [N, 1] over [N, C]) are
// read through a Broadcast's per-axis offsets, one element at a time.
#pragma once

#include "plugkit/kernels.h"
#include "plugkit/launch.h"

#if defined(__CUDACC__)
#include "plugkit/dispatch.h"
#endif

#include <cstdint>
#include <utility>

namespace plugkit
{

constexpr int kElementwiseThreads = 256;
constexpr int kElementwiseUnroll = 4; //!< vectors of each tensor a thread has in flight

//! How an elementwise kernel reads one input.
struct ElementwiseInput
{
    void const* data;
    int64_t period;      //!< > 0: output element i reads element i % period; 0: read through `broadcast`
    Broadcast broadcast; //!< the general case (period 0)
};

//! How an input of dims `in` is read for an output of dims `out`; throws plugkit::Error when `in`
//! does not broadcast to `out`.
inline ElementwiseInput elementwiseInput(void const* data, nvinfer1::Dims const& in, nvinfer1::Dims const& out)
{
    ElementwiseInput input{data, 0, broadcast(in, out)};
    // Leading 1s of `in` broadcast trivially; what remains must equal out's trailing dims.
    int32_t lead = 0;
    while (lead < in.nbDims && in.d[lead] == 1)
    {
        ++lead;
    }
    bool suffix = true;
    for (int32_t i = lead; i < in.nbDims; ++i)
    {
        suffix = suffix && in.d[i] == out.d[out.nbDims - in.nbDims + i];
    }
    int64_t const elements = volume(in);
    input.period = suffix && elements > 0 ? elements : 0;
    return input;
}

//! An output-shaped input: elementwiseInput(data, dims, dims) without the checks.
inline ElementwiseInput elementwiseInput(void const* data, nvinfer1::Dims const& dims)
{
    return ElementwiseInput{data, std::max<int64_t>(volume(dims), 1), broadcast(dims, dims)};
}

//! The elements per access of a launch over `count` output elements of type T: 16 bytes when every
//! tensor is 16-byte aligned and every input has the output's shape, one value, or a period of whole
//! vectors; else 1.
template <typename T, typename... Inputs>
int elementwiseVector(int64_t count, void const* out, Inputs const&... inputs)
{
    constexpr int kVec = static_cast<int>(16 / sizeof(T));
    auto const fits = [count](ElementwiseInput const& in) {
        return in.period == 1 || (in.period > 0 && (in.period % kVec == 0 || in.period == count) && isAligned(in.data, 16));
    };
    return count >= kVec && isAligned(out, 16) && (fits(inputs) && ...) ? kVec : 1;
}

//! Blocks of kElementwiseThreads for `count` elements read `vec` at a time, kElementwiseUnroll accesses
//! a thread (larger tensors loop).
inline dim3 elementwiseGrid(int64_t count, int vec)
{
    constexpr int64_t kMaxBlocks = int64_t{1} << 20;
    int64_t const perBlock = int64_t{kElementwiseThreads} * kElementwiseUnroll * vec;
    return dim3(static_cast<unsigned>(std::max<int64_t>(1, std::min(ceilDiv(count, perBlock), kMaxBlocks))));
}

#if defined(__CUDACC__)

namespace detail
{

//! i % n, in 32 bits where both fit (a 64-bit remainder costs several times more).
__device__ __forceinline__ int64_t remainder(int64_t i, int64_t n)
{
    return (i | n) < (int64_t{1} << 32) ? static_cast<int64_t>(static_cast<uint32_t>(i) % static_cast<uint32_t>(n))
                                        : i % n;
}

template <typename T>
__device__ __forceinline__ float loadElement(ElementwiseInput const& in, int64_t i, int64_t count)
{
    auto const* data = static_cast<T const*>(in.data);
    int64_t const at = in.period == count ? i : in.period > 0 ? remainder(i, in.period) : in.broadcast.offset(i);
    return toFloat(data[at]);
}

//! Vector `v` (elements v*VEC...) of an input read by period.
template <typename T, int VEC>
__device__ __forceinline__ Vec<T, VEC> loadVector(ElementwiseInput const& in, int64_t v, int64_t vectors)
{
    using V = Vec<T, VEC>;
    if (in.period == 1)
    {
        V splat;
#pragma unroll
        for (int k = 0; k < VEC; ++k)
        {
            splat.v[k] = *static_cast<T const*>(in.data);
        }
        return splat;
    }
    int64_t const periodVectors = in.period / VEC;
    return static_cast<V const*>(in.data)[periodVectors == vectors ? v : remainder(v, periodVectors)];
}

template <typename T, int VEC, typename F, size_t... I, typename... Inputs>
__device__ __forceinline__ void mapVectors(
    int64_t vectors, T* out, F const& f, std::index_sequence<I...>, Inputs const&... inputs)
{
    using V = Vec<T, VEC>;
    constexpr int kUnroll = kElementwiseUnroll;
    constexpr int kInputs = sizeof...(Inputs);
    int64_t const perBlock = int64_t{blockDim.x} * kUnroll;
    for (int64_t first = int64_t{blockIdx.x} * perBlock + threadIdx.x; first < vectors;
         first += int64_t{gridDim.x} * perBlock)
    {
        // Every load of the step is issued before the first result is computed.
        V loaded[kInputs][kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
        {
            int64_t const v = first + int64_t{u} * blockDim.x;
            if (v < vectors)
            {
                ((loaded[I][u] = loadVector<T, VEC>(inputs, v, vectors)), ...);
            }
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
        {
            int64_t const v = first + int64_t{u} * blockDim.x;
            if (v < vectors)
            {
                V result;
#pragma unroll
                for (int k = 0; k < VEC; ++k)
                {
                    result.v[k] = fromFloat<T>(f(toFloat(loaded[I][u].v[k])...));
                }
                reinterpret_cast<V*>(out)[v] = result;
            }
        }
    }
}

} // namespace detail

//! out[i] = f(in[i]...) for the `count` elements of `out`, f taking and returning fp32. VEC is
//! elementwiseVector's choice; every thread of the grid must call it (see elementwiseGrid).
template <typename T, int VEC, typename F, typename... Inputs>
__device__ __forceinline__ void mapElements(int64_t count, void* out, F const& f, Inputs const&... inputs)
{
    auto* y = static_cast<T*>(out);
    int64_t const vectors = VEC > 1 ? count / VEC : 0;
    if constexpr (VEC > 1)
    {
        detail::mapVectors<T, VEC>(vectors, y, f, std::index_sequence_for<Inputs...>{}, inputs...);
    }
    // The elements after the last whole vector, or all of them when VEC is 1.
    int64_t const stride = int64_t{gridDim.x} * blockDim.x;
    for (int64_t i = vectors * VEC + int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < count; i += stride)
    {
        y[i] = fromFloat<T>(f(detail::loadElement<T>(inputs, i, count)...));
    }
}

#endif // __CUDACC__

} // namespace plugkit
