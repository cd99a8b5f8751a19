// CTCGreedyDecoder kernels: three launches, no host synchronization.
//
//   1. frameKernel     one pass over the logits: per frame the argmax (lowest index on ties) and
//                      the softmax probability at it, 1 / sum(exp(x - max)), by an online softmax
//                      over 16-byte loads; a group of lanes per frame (8 for short rows, a warp
//                      for long ones). It also zeroes M.
//   2. collapseKernel  a block per sample: runs, blank, compaction by a block scan into the
//                      workspace (row stride T); the decoded length, and M by atomicMax.
//   3. compactKernel   copies the workspace rows into labels/scores [N, M], row stride M read
//                      from device memory: a data-dependent output is contiguous in its real shape.
#include "ctc_greedy_decoder_kernel.h"

#include "plugkit/dispatch.h"
#include "plugkit/kernels.h"
#include "plugkit/launch.h"

#include <cfloat>
#include <climits>

namespace plugkit::ctc_greedy_decoder
{
namespace
{

constexpr int kFrameThreads = 256;
constexpr int kUnroll = 4; // 16-byte loads a lane has in flight

//! Online softmax state of a part of a row: its maximum, the index of its first maximum and
//! the sum of exp(x - max) over it.
struct Best
{
    float max;
    int32_t index;
    float sum;
};

__device__ __forceinline__ void add(Best& b, float v, int32_t i)
{
    if (v > b.max) // elements come in increasing index order: an equal value keeps the earlier index
    {
        b.sum = b.sum * __expf(b.max - v) + 1.0F; // b.max = -inf at first: exp(-inf) = 0
        b.max = v;
        b.index = i;
    }
    else if (v > -INFINITY) // -inf adds nothing (and -inf - -inf would be NaN)
    {
        b.sum += __expf(v - b.max);
    }
}

//! The elements of one 16-byte load, `first` the index of v[0]: the maximum first (a tree, its
//! first index), then one rescale of the sum when the maximum grew, then independent exps.
//! Fewer dependent steps than element by element, so that a lane keeps its loads' latency hidden.
template <typename T, int kVec>
__device__ __forceinline__ void addVector(Best& b, Vec<T, kVec> const& vec, int32_t first)
{
    float v[kVec];
#pragma unroll
    for (int e = 0; e < kVec; ++e)
    {
        v[e] = toFloat(vec.v[e]);
    }
    float m = v[0];
#pragma unroll
    for (int e = 1; e < kVec; ++e)
    {
        m = fmaxf(m, v[e]);
    }
    int32_t at = kVec - 1;
#pragma unroll
    for (int e = kVec - 2; e >= 0; --e)
    {
        at = v[e] == m ? e : at; // the first index of the maximum
    }
    if (m > b.max) // an equal maximum keeps the earlier index
    {
        b.sum = b.max == -INFINITY ? 0.0F : b.sum * __expf(b.max - m);
        b.max = m;
        b.index = first + at;
    }
    if (b.max == -INFINITY)
    {
        return; // every element so far is -inf: nothing to add (and -inf - -inf would be NaN)
    }
    float sum = 0.0F;
#pragma unroll
    for (int e = 0; e < kVec; ++e)
    {
        sum += __expf(v[e] - b.max);
    }
    b.sum += sum;
}

__device__ __forceinline__ Best combine(Best a, Best b)
{
    float const m = fmaxf(a.max, b.max);
    Best r;
    r.max = m;
    r.index = a.max > b.max ? a.index : (b.max > a.max ? b.index : min(a.index, b.index));
    // a part with no elements (max = -inf, sum = 0) adds nothing: no exp(-inf - -inf) = NaN
    r.sum = (a.max == -INFINITY ? 0.0F : a.sum * __expf(a.max - m)) + (b.max == -INFINITY ? 0.0F : b.sum * __expf(b.max - m));
    return r;
}

template <int kGroup>
__device__ __forceinline__ Best groupReduce(Best b)
{
#pragma unroll
    for (int mask = kGroup / 2; mask > 0; mask >>= 1)
    {
        Best o;
        o.max = __shfl_xor_sync(0xffffffffU, b.max, mask);
        o.index = __shfl_xor_sync(0xffffffffU, b.index, mask);
        o.sum = __shfl_xor_sync(0xffffffffU, b.sum, mask);
        b = combine(b, o);
    }
    return b;
}

template <typename T, int kGroup>
__global__ void __launch_bounds__(kFrameThreads) frameKernel(T const* __restrict__ logits,
    int32_t const* __restrict__ lengths, int32_t* __restrict__ best, float* __restrict__ probability,
    int32_t* __restrict__ longest, int64_t frames, int64_t t, int64_t c)
{
    constexpr int kVec = 16 / sizeof(T);
    using V = Vec<T, kVec>;
    int const lane = static_cast<int>(threadIdx.x % kGroup);
    int64_t const frame = (static_cast<int64_t>(blockIdx.x) * kFrameThreads + threadIdx.x) / kGroup;
    waitForPrerequisites();
    allowDependents();
    if (blockIdx.x == 0 && threadIdx.x == 0)
    {
        *longest = 0; // collapseKernel takes the maximum into it
    }
    bool active = frame < frames;
    if (active && lengths != nullptr)
    {
        int64_t const valid = lengths[frame / t];
        active = frame % t < valid; // frames past a sample's length are never read
    }
    Best b{-INFINITY, INT_MAX, 0.0F};
    if (active)
    {
        T const* row = logits + frame * c;
        // Elements before the first 16-byte boundary of the row, then whole vectors, then the rest.
        int64_t const head
            = min(c, (kVec - static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) / sizeof(T) % kVec)) % kVec);
        int64_t const vectors = (c - head) / kVec;
        if (lane < head)
        {
            add(b, toFloat(row[lane]), lane);
        }
        V const* body = reinterpret_cast<V const*>(row + head);
        int64_t j = lane;
        for (; j + (kUnroll - 1) * kGroup < vectors; j += kUnroll * kGroup)
        {
            V v[kUnroll];
#pragma unroll
            for (int u = 0; u < kUnroll; ++u)
            {
                v[u] = body[j + u * kGroup];
            }
#pragma unroll
            for (int u = 0; u < kUnroll; ++u)
            {
                addVector(b, v[u], static_cast<int32_t>(head + (j + u * kGroup) * kVec));
            }
        }
        for (; j < vectors; j += kGroup)
        {
            addVector(b, body[j], static_cast<int32_t>(head + j * kVec));
        }
        for (int64_t i = head + vectors * kVec + lane; i < c; i += kGroup)
        {
            add(b, toFloat(row[i]), static_cast<int32_t>(i));
        }
    }
    b = groupReduce<kGroup>(b); // every lane of the warp takes part
    if (active && lane == 0)
    {
        best[frame] = b.index;
        probability[frame] = 1.0F / b.sum; // softmax at the maximum: exp(0) / sum
    }
}

//! Inclusive sum of `value` over the block (blockDim.x a multiple of 32); `total` gets the block's sum.
__device__ __forceinline__ int blockInclusiveSum(int value, int& total)
{
    __shared__ int warpSums[32];
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1)
    {
        int const o = __shfl_up_sync(0xffffffffU, value, d);
        value += lane >= d ? o : 0;
    }
    if (lane == 31)
    {
        warpSums[warp] = value;
    }
    __syncthreads();
    int before = 0;
    total = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w)
    {
        before += w < warp ? warpSums[w] : 0;
        total += warpSums[w];
    }
    __syncthreads(); // warpSums is written again by the next call
    return value + before;
}

__global__ void collapseKernel(int32_t const* __restrict__ lengths, int32_t const* __restrict__ best,
    float const* __restrict__ probability, int32_t* __restrict__ label, float* __restrict__ score,
    int32_t* __restrict__ decodedLengths, int32_t* __restrict__ longest, int64_t t, int32_t blank, bool mergeRepeated)
{
    int64_t const sample = blockIdx.x;
    waitForPrerequisites();
    allowDependents();
    int64_t const frames = lengths == nullptr ? t : min(t, static_cast<int64_t>(max(0, lengths[sample])));
    int32_t const* b = best + sample * t;
    float const* p = probability + sample * t;
    int kept = 0; // labels of the chunks before this one
    for (int64_t first = 0; first < frames; first += blockDim.x)
    {
        int64_t const f = first + threadIdx.x;
        int32_t const cls = f < frames ? b[f] : blank;
        bool const starts = !mergeRepeated || f == 0 || (f < frames && b[f - 1] != cls);
        bool const keep = f < frames && starts && cls != blank;
        int chunk = 0;
        int const position = kept + blockInclusiveSum(keep ? 1 : 0, chunk) - 1;
        if (keep)
        {
            // The label's score: the highest probability over the frames of its run.
            float s = p[f];
            if (mergeRepeated)
            {
                for (int64_t u = f + 1; u < frames && b[u] == cls; ++u)
                {
                    s = fmaxf(s, p[u]);
                }
            }
            label[sample * t + position] = cls;
            score[sample * t + position] = s;
        }
        kept += chunk;
    }
    if (threadIdx.x == 0)
    {
        decodedLengths[sample] = kept;
        atomicMax(longest, kept);
    }
}

__global__ void compactKernel(int32_t const* __restrict__ label, float const* __restrict__ score,
    int32_t const* __restrict__ decodedLengths, int32_t const* __restrict__ longest, int32_t* __restrict__ labels,
    float* __restrict__ scores, int64_t n, int64_t t)
{
    waitForPrerequisites();
    allowDependents();
    int64_t const m = *longest;
    int64_t const total = n * m;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        int64_t const row = i / m;
        int64_t const col = i - row * m;
        bool const decoded = col < decodedLengths[row];
        labels[i] = decoded ? label[row * t + col] : -1;
        scores[i] = decoded ? score[row * t + col] : 0.0F;
    }
}

constexpr size_t align256(size_t bytes)
{
    return (bytes + 255) / 256 * 256;
}

template <typename T, int kGroup>
void launchFrames(Problem const& p, int32_t* best, float* probability, cudaStream_t stream)
{
    int64_t const frames = p.n * p.t;
    int64_t const blocks = ceilDiv(frames * kGroup, kFrameThreads);
    launchKernel(frameKernel<T, kGroup>, dim3(static_cast<unsigned>(blocks)), dim3(kFrameThreads), 0, stream,
        static_cast<T const*>(p.logits), p.lengths, best, probability, p.longest, frames, p.t, p.c);
}

} // namespace

size_t workspaceSize(int64_t n, int64_t t)
{
    size_t const frames = static_cast<size_t>(n) * static_cast<size_t>(t);
    return 4 * align256(frames * 4);
}

void launch(Problem const& p, void* workspace, cudaStream_t stream)
{
    PLUGKIT_CHECK(p.c <= INT32_MAX, "C = " << p.c << " classes do not fit the int32 labels");
    if (p.n == 0)
    {
        // No sample: M = 0 and nothing else to write.
        PLUGKIT_CUDA_CHECK(cudaMemsetAsync(p.longest, 0, sizeof(int32_t), stream));
        return;
    }
    size_t const region = align256(static_cast<size_t>(p.n * p.t) * 4);
    auto* bytes = static_cast<char*>(workspace);
    auto* best = reinterpret_cast<int32_t*>(bytes);
    auto* probability = reinterpret_cast<float*>(bytes + region);
    auto* label = reinterpret_cast<int32_t*>(bytes + 2 * region);
    auto* score = reinterpret_cast<float*>(bytes + 3 * region);
    if (p.t == 0)
    {
        PLUGKIT_CUDA_CHECK(cudaMemsetAsync(p.longest, 0, sizeof(int32_t), stream));
        PLUGKIT_CUDA_CHECK(cudaMemsetAsync(p.decodedLengths, 0, p.n * sizeof(int32_t), stream));
        return;
    }
    PLUGKIT_CHECK(p.c > 0, "logits have C = 0 classes; a frame needs at least one");
    dispatchFloat(p.logitsType, [&](auto tag) {
        using T = typename decltype(tag)::type;
        // A group of 8 lanes for rows of up to 1 KB (C = 97: 194 bytes in fp16), a warp beyond.
        if (p.c * static_cast<int64_t>(sizeof(T)) <= 1024)
        {
            launchFrames<T, 8>(p, best, probability, stream);
        }
        else
        {
            launchFrames<T, 32>(p, best, probability, stream);
        }
    });
    int const threads = static_cast<int>(std::min<int64_t>(1024, ceilDiv(p.t, 32) * 32));
    launchKernel(collapseKernel, dim3(static_cast<unsigned>(p.n)), dim3(threads), 0, stream, p.lengths,
        static_cast<int32_t const*>(best), static_cast<float const*>(probability), label, score, p.decodedLengths,
        p.longest, p.t, p.blank, p.mergeRepeated);
    launchKernel(compactKernel, dim3(gridFor(p.n * p.t, 256)), dim3(256), 0, stream,
        static_cast<int32_t const*>(label), static_cast<float const*>(score),
        static_cast<int32_t const*>(p.decodedLengths), static_cast<int32_t const*>(p.longest), p.labels, p.scores,
        p.n, p.t);
}

} // namespace plugkit::ctc_greedy_decoder
