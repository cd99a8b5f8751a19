// RMSNorm's launcher: the problem's shape and the device's properties to a plan (rms_norm_rule.h),
// the plan to a kernel of one of the families (register_kernel.cuh, reread_kernel.cuh,
// pipeline_kernel.cuh, streaming_kernel.cuh), and a broadcast scale expanded first.
// Memory-bound: each element of X is read once from DRAM and each of Y written once.
#include "rms_norm_launch.h"
#include "rms_norm_rule.h"

#include "pipeline_kernel.cuh"
#include "register_kernel.cuh"
#include "reread_kernel.cuh"
#include "streaming_kernel.cuh"

#include "plugkit/bulk_copy.h"
#include "plugkit/cache_hints.h"
#include "plugkit/dispatch.h"
#include "plugkit/kernels.h"
#include "plugkit/launch.h"

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace plugkit::rms_norm
{
namespace
{

// A scale that broadcasts (one value, a suffix of the normalized axes, or 1s along inner ones)
// expanded to one value per normalized element, so the kernels above read it like a full one.
template <typename S>
__global__ void expandScaleKernel(S const* __restrict__ scale, S* __restrict__ full, int64_t cols, Broadcast b)
{
    waitForPrerequisites();
    allowDependents();
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < cols;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        full[i] = scale[b.offset(i)];
    }
}

// The device's properties the rule reads, once per device. The PTX version is that of one kernel:
// every kernel of the library is built for the same architectures.
DeviceProperties deviceProperties()
{
    static DeviceCache<int, DeviceProperties> cache;
    return cache.get(0, [](int) {
        return DeviceProperties{deviceAttribute(cudaDevAttrMultiProcessorCount),
            deviceAttribute(cudaDevAttrMaxBlocksPerMultiprocessor),
            deviceAttribute(cudaDevAttrMaxSharedMemoryPerBlockOptin),
            deviceAttribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor), kernelPtxVersion(expandScaleKernel<float>)};
    });
}

// registerKernel in blocks of plan.threads x plan.rowsPerBlock threads, each block.y x ROWS rows.
template <typename T, typename S, int VEC, int ITEMS, int ROWS, bool WARP, bool EXACT = false,
    int MAX_THREADS = kMaxThreadsPerRow>
void launchRegister(Plan const& plan, Problem const& p, S const* scale, cudaStream_t stream)
{
    int64_t const groupRows = plan.rowsPerBlock * ROWS;
    auto* kernel = registerKernel<T, S, VEC, ITEMS, ROWS, WARP, true, EXACT, MAX_THREADS>;
    // Plain loads and stores: instantiated only for few vectors a thread and 16-byte vectors
    // (the hints apply to those alone).
    constexpr int kPlainMaxItems = WARP ? PLUGKIT_RMS_NORM_WARP_PLAIN_MAX_ITEMS : PLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS;
    if constexpr (ITEMS * ROWS <= kPlainMaxItems && VEC * sizeof(T) == 16)
    {
        if (!plan.evictFirst)
        {
            kernel = registerKernel<T, S, VEC, ITEMS, ROWS, WARP, false, EXACT, MAX_THREADS>;
        }
    }
    // The kernel's offsets are 32-bit: a tensor of 2^31 elements or more goes in launches of
    // fewer rows (cols is at most kMaxThreadsPerRow * kMaxItems * VEC here, so a launch has rows).
    int64_t const launchRows = std::min<int64_t>(INT32_MAX / p.cols, int64_t{1} << 30) / groupRows * groupRows;
    PLUGKIT_CHECK(launchRows > 0, "internal: rows of " << p.cols << " elements take the streaming kernel");
    auto const* x = static_cast<T const*>(p.x);
    auto* y = static_cast<T*>(p.y);
    dim3 const block(static_cast<unsigned>(plan.threads), static_cast<unsigned>(plan.rowsPerBlock));
    for (int64_t first = 0; first < p.rows; first += launchRows)
    {
        int64_t rows = std::min(launchRows, p.rows - first);
        if (EXACT && rows < ROWS)
        {
            // EXACT launches read at least ROWS rows: the last one starts early and writes some
            // rows of the launch before again (the same values, after it).
            first = p.rows - ROWS;
            rows = ROWS;
        }
        launchKernel(kernel, dim3(static_cast<unsigned>(ceilDiv(rows, groupRows))), block, 0, stream, x + first * p.cols,
            scale, y + first * p.cols, static_cast<int>(rows), static_cast<int>(p.cols),
            1.0F / static_cast<float>(p.cols), p.epsilon);
    }
}

template <typename T, typename S, int VEC, int ITEMS>
void launchWarpRows(Plan const& plan, Problem const& p, S const* scale, cudaStream_t stream)
{
    constexpr int kRows = warpRowsPerThread(ITEMS, VEC);
    PLUGKIT_CHECK(plan.rowsPerThread == 1 || plan.rowsPerThread == kRows,
        "internal: " << plan.rowsPerThread << " rows a thread for rows of a warp");
    if (plan.exact)
    {
        if constexpr (VEC * sizeof(T) == 16)
        {
            if (plan.maxThreads == 32)
            {
                launchRegister<T, S, VEC, ITEMS, kRows, true, true, 32>(plan, p, scale, stream);
            }
            else
            {
                launchRegister<T, S, VEC, ITEMS, kRows, true, true, kManyRowsBlockThreads>(plan, p, scale, stream);
            }
            return;
        }
    }
    if (plan.rowsPerThread > 1)
    {
        launchRegister<T, S, VEC, ITEMS, kRows, true>(plan, p, scale, stream);
    }
    else
    {
        launchRegister<T, S, VEC, ITEMS, 1, true>(plan, p, scale, stream);
    }
}

template <typename T, typename S, int VEC, int ITEMS>
void launchPipeline(Plan const& plan, Problem const& p, S const* scale, cudaStream_t stream)
{
    auto* kernel = pipelineKernel<T, S, VEC, ITEMS>;
    int const sharedBytes = static_cast<int>(plan.stages * plan.stageBytes);
    allowDynamicSharedMemory(kernel, sharedBytes);
    launchKernel(kernel, dim3(static_cast<unsigned>(plan.grid)), dim3(static_cast<unsigned>(plan.threads)),
        static_cast<size_t>(sharedBytes), stream, static_cast<T const*>(p.x), scale, static_cast<T*>(p.y), p.rows,
        static_cast<int>(p.cols), 1.0F / static_cast<float>(p.cols), p.epsilon, plan.stages,
        static_cast<int>(plan.stageBytes));
}

// Blocks of the pipeline kernel of `items` a thread that a multiprocessor holds (the rule asks).
template <typename T, typename S, int VEC>
int pipelineResidentBlocks(int items, int threads, int sharedBytes)
{
    if constexpr (VEC * sizeof(T) == 16) // the pipeline takes 16-byte vectors only
    {
        auto resident = [&](auto* kernel) {
            allowDynamicSharedMemory(kernel, sharedBytes);
            return residentBlocks(kernel, threads, static_cast<size_t>(sharedBytes));
        };
        constexpr int kMax = pipelineMaxItems(sizeof(T), sizeof(S));
        switch (items)
        {
        case 1: return resident(pipelineKernel<T, S, VEC, 1>);
        case 2: return resident(pipelineKernel<T, S, VEC, 2>);
        case 4: return resident(pipelineKernel<T, S, VEC, 4>);
        default: return resident(pipelineKernel<T, S, VEC, kMax>);
        }
    }
    return 0;
}

template <typename T, typename S, int VEC, int ITEMS, int MAX_THREADS>
void launchReread(Plan const& plan, Problem const& p, S const* scale, cudaStream_t stream)
{
    // Rows of 16 KB or more: 2^31 of them would be 32 TB.
    PLUGKIT_CHECK(p.rows <= INT32_MAX, "too many rows (" << p.rows << ") for one launch");
    launchKernel(rereadKernel<T, S, VEC, ITEMS, MAX_THREADS>, dim3(static_cast<unsigned>(p.rows)),
        dim3(static_cast<unsigned>(plan.threads)), 0, stream, static_cast<T const*>(p.x), scale, static_cast<T*>(p.y),
        static_cast<int>(p.cols), 1.0F / static_cast<float>(p.cols), p.epsilon);
}

// The plan's kernel: its runtime choices (items, rows, bounds) mapped to the instantiated templates.
template <typename T, typename S, int VEC>
void launchPlan(Plan const& plan, Problem const& p, S const* scale, cudaStream_t stream)
{
    switch (plan.family)
    {
    case Family::kStreaming:
        PLUGKIT_CHECK(p.rows <= INT32_MAX, "too many rows (" << p.rows << ") for one launch");
        launchKernel(streamingKernel<T, S, VEC>, dim3(static_cast<unsigned>(p.rows)), dim3(kStreamingThreads), 0, stream,
            static_cast<T const*>(p.x), scale, static_cast<T*>(p.y), p.cols, 1.0F / static_cast<float>(p.cols),
            p.epsilon);
        return;
    case Family::kPipeline:
        if constexpr (VEC * sizeof(T) == 16)
        {
            constexpr int kMax = pipelineMaxItems(sizeof(T), sizeof(S));
            switch (plan.items)
            {
            case 1: launchPipeline<T, S, VEC, 1>(plan, p, scale, stream); return;
            case 2: launchPipeline<T, S, VEC, 2>(plan, p, scale, stream); return;
            case 4: launchPipeline<T, S, VEC, 4>(plan, p, scale, stream); return;
            default: launchPipeline<T, S, VEC, kMax>(plan, p, scale, stream); return;
            }
        }
        break;
    case Family::kReread:
        if constexpr (VEC * sizeof(T) == 16)
        {
            constexpr int kMax = rereadMaxItems(VEC);
            if (plan.maxThreads == 2 * kRereadThreads)
            {
                launchReread<T, S, VEC, kMax, 2 * kRereadThreads>(plan, p, scale, stream);
                return;
            }
            switch (plan.items)
            {
            case 1: launchReread<T, S, VEC, 1, kRereadThreads>(plan, p, scale, stream); return;
            case 2: launchReread<T, S, VEC, std::min(2, kMax), kRereadThreads>(plan, p, scale, stream); return;
            default: launchReread<T, S, VEC, kMax, kRereadThreads>(plan, p, scale, stream); return;
            }
        }
        break;
    case Family::kWarpRows:
        // Only the item counts these rows can take are instantiated.
        PLUGKIT_CHECK(plan.items <= kWarpItems, "internal: " << plan.items << " items a thread for rows of a warp");
        switch (plan.items)
        {
        case 1: launchWarpRows<T, S, VEC, 1>(plan, p, scale, stream); break;
        case 2: if constexpr (kWarpItems >= 2) { launchWarpRows<T, S, VEC, 2>(plan, p, scale, stream); } break;
        case 4: if constexpr (kWarpItems >= 4) { launchWarpRows<T, S, VEC, 4>(plan, p, scale, stream); } break;
        case 8: if constexpr (kWarpItems >= 8) { launchWarpRows<T, S, VEC, 8>(plan, p, scale, stream); } break;
        default: if constexpr (kWarpItems >= 16) { launchWarpRows<T, S, VEC, 16>(plan, p, scale, stream); } break;
        }
        return;
    case Family::kBlockRows:
        switch (plan.items)
        {
        case 1: launchRegister<T, S, VEC, 1, 1, false>(plan, p, scale, stream); break;
        case 2: launchRegister<T, S, VEC, 2, 1, false>(plan, p, scale, stream); break;
        case 4: launchRegister<T, S, VEC, 4, 1, false>(plan, p, scale, stream); break;
        case 8: launchRegister<T, S, VEC, 8, 1, false>(plan, p, scale, stream); break;
        default: launchRegister<T, S, VEC, 16, 1, false>(plan, p, scale, stream); break;
        }
        return;
    }
    PLUGKIT_CHECK(false, "internal: no kernel for the plan of " << p.rows << " rows of " << p.cols);
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
        launchKernel(expandScaleKernel<S>, dim3(blocks), dim3(256), 0, stream, scale, full, p.cols, p.scaleBroadcast);
        scale = full;
    }
    // 16-byte vectors when every row start, and the scale, are aligned for them.
    constexpr int kVec = 16 / sizeof(T);
    bool const vectorized
        = p.cols % kVec == 0 && isAligned(p.x, 16) && isAligned(p.y, 16) && isAligned(scale, sizeof(S) * kVec);
    Shape const shape{p.rows, p.cols, static_cast<int>(sizeof(T)), static_cast<int>(sizeof(S)), vectorized};
    if (vectorized)
    {
        Plan const plan = choosePlan(shape, deviceProperties(), pipelineResidentBlocks<T, S, kVec>);
        launchPlan<T, S, kVec>(plan, p, scale, stream);
    }
    else
    {
        Plan const plan = choosePlan(shape, deviceProperties(), pipelineResidentBlocks<T, S, 1>);
        launchPlan<T, S, 1>(plan, p, scale, stream);
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
