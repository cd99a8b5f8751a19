// Which RMSNorm kernel runs a problem, and how it is launched: a pure function of the problem's
// shape and the device's properties. No CUDA runtime call here (the launcher asks the device,
// once per device, and passes the answers in), so that a CPU test compiles this with g++ and
// checks the rule directly (tests/test_rms_norm.py, test_kernel_rule_*). The measurements behind
// each threshold are in TUNING.md; the numbers themselves in rms_norm_config.h.
#pragma once

#include "rms_norm_config.h"

#include <algorithm>
#include <cstdint>

namespace plugkit::rms_norm
{

//! What the rule needs to know of a launch.
struct Shape
{
    int64_t rows;
    int64_t cols;
    int xBytes;      //!< bytes of an element of X and Y: 4 or 2
    int scaleBytes;  //!< bytes of an element of the scale
    bool vectorized; //!< rows, Y and the scale aligned for 16-byte vectors (else one element a vector)
};

//! What the rule needs to know of the device (read once per device by the launcher).
struct DeviceProperties
{
    int64_t multiprocessors;
    int64_t maxBlocksPerMultiprocessor;     //!< 32 on sm_80 and sm_90, 16 on sm_86 and sm_89
    int64_t sharedMemoryPerBlockOptin;      //!< cudaDevAttrMaxSharedMemoryPerBlockOptin
    int64_t sharedMemoryPerMultiprocessor;  //!< cudaDevAttrMaxSharedMemoryPerMultiprocessor
    int ptxVersion; //!< of the library's kernels as the device runs them: bulk copies need 90, cache hints 80
};

enum class Family
{
    kStreaming, //!< two passes over rows too wide for registers
    kPipeline,  //!< the row pipeline (bulk copies into shared memory)
    kReread,    //!< a block a row that reads X twice
    kWarpRows,  //!< the register kernel, rows of a warp or less
    kBlockRows, //!< the register kernel, a block a row
};

//! A kernel and its launch. Fields a family does not use keep their defaults.
struct Plan
{
    Family family = Family::kStreaming;
    int vec = 1;              //!< elements of a vector: 16 / xBytes, or 1
    int items = 1;            //!< vectors a thread holds (the kernel's ITEMS)
    int64_t threads = 0;      //!< block.x: threads (lanes) a row
    int64_t rowsPerBlock = 1; //!< block.y (rows of a warp)
    int rowsPerThread = 1;    //!< the register kernel's ROWS
    bool exact = false;       //!< the register kernel with the row length a constant
    int maxThreads = 0;       //!< the kernel's launch bound (register and re-read kernels)
    bool evictFirst = true;   //!< the register kernel loads X and stores Y with ld/st.global.cs
    int stages = 0;           //!< pipeline: shared-memory stages a block
    int64_t stageBytes = 0;   //!< pipeline: bytes of a stage
    int64_t grid = 0;         //!< pipeline: blocks of its persistent grid
};

constexpr int64_t divUp(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

constexpr int64_t nextPowerOfTwo(int64_t n)
{
    int64_t p = 1;
    while (p < n)
    {
        p *= 2;
    }
    return p;
}

// The fewest items a thread, doubling from `items` up to `maxItems`, that keep a row of `vectors`
// within `threads` threads (or `maxItems`, where none does).
constexpr int itemsWithin(int64_t vectors, int64_t threads, int maxItems, int items = 1)
{
    while (items < maxItems && divUp(vectors, items) > threads)
    {
        items *= 2;
    }
    return items;
}

// Threads for a row of `vectors` at `items` a thread, in whole warps.
constexpr int64_t warpThreads(int64_t vectors, int64_t items)
{
    return divUp(divUp(vectors, items), 32) * 32;
}

// Rows a thread of rows of a warp holds when there are rows enough (the kernel's ROWS).
constexpr int warpRowsPerThread(int items, int vec)
{
    return std::clamp(PLUGKIT_RMS_NORM_WARP_ROW_ELEMENTS / (items * vec), 1, kMaxRowsPerThread);
}

// Item counts a thread of rows of a warp can take (those the launcher instantiates).
constexpr int kWarpItems
    = std::max<int>(PLUGKIT_RMS_NORM_WARP_ROW_ITEMS, nextPowerOfTwo(divUp(PLUGKIT_RMS_NORM_WARP_ROW_VECTORS, 32)));

// Most vectors a pipeline thread holds: a scale wider than X (16-bit X, fp32 scale) takes as many
// registers again, and 8 items spilled.
constexpr int pipelineMaxItems(int xBytes, int scaleBytes)
{
    return scaleBytes > xBytes ? kPipelineMaxItems / 2 : kPipelineMaxItems;
}

// Most vectors a re-read thread holds.
constexpr int rereadMaxItems(int vec)
{
    return std::max(PLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS / vec, 1);
}

// The register kernel's cache hints: X and Y evict-first unless a thread holds few vectors of
// 16 bytes and the grid is more than two blocks a multiprocessor.
inline bool registerEvictFirst(Shape const& s, Plan const& plan, bool warp, int64_t multiprocessors)
{
    int const plainMaxItems = warp ? PLUGKIT_RMS_NORM_WARP_PLAIN_MAX_ITEMS : PLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS;
    int64_t const blocks = divUp(s.rows, plan.rowsPerBlock * plan.rowsPerThread);
    bool const plain = plan.items * plan.rowsPerThread <= plainMaxItems && plan.vec * s.xBytes == 16
        && blocks > 2 * multiprocessors;
    return !plain;
}

// The row pipeline for the problems it takes (see PIPELINE_MIN_ROW_BYTES); false for the others.
// residentBlocks(items, threads, sharedBytes): blocks of that pipeline kernel a multiprocessor holds.
template <typename ResidentBlocks>
bool planPipeline(Shape const& s, DeviceProperties const& d, int64_t vectors, ResidentBlocks&& residentBlocks, Plan& plan)
{
    if (d.ptxVersion < 90 || s.cols * s.xBytes < PLUGKIT_RMS_NORM_PIPELINE_MIN_ROW_BYTES
        || s.rows < d.multiprocessors * PLUGKIT_RMS_NORM_PIPELINE_MIN_ROWS
        || s.rows > d.multiprocessors * PLUGKIT_RMS_NORM_PIPELINE_BLOCKS * PLUGKIT_RMS_NORM_PIPELINE_MAX_ROWS)
    {
        return false; // outside the rows it takes in the largest grid (checked again in the grid it gets)
    }
    int const items = itemsWithin(vectors, PLUGKIT_RMS_NORM_PIPELINE_THREADS, pipelineMaxItems(s.xBytes, s.scaleBytes));
    int64_t const threads = warpThreads(vectors, items);
    if (threads > kPipelineMaxThreads)
    {
        return false;
    }
    int64_t const stageBytes = divUp(s.cols * s.xBytes, kPipelineStageAlign) * kPipelineStageAlign;
    // Shared memory a block may have beyond its static arrays, and a multiprocessor for its blocks
    // (each block also costs the 1 KB the runtime reserves).
    int64_t const blockLimit = d.sharedMemoryPerBlockOptin - 1024;
    int64_t const multiprocessorBytes
        = std::min<int64_t>(PLUGKIT_RMS_NORM_PIPELINE_BYTES, d.sharedMemoryPerMultiprocessor);
    constexpr int kBlocks = PLUGKIT_RMS_NORM_PIPELINE_BLOCKS;
    int64_t const bytes = std::min(multiprocessorBytes / kBlocks - 2048, blockLimit);
    int const stages = static_cast<int>(std::min<int64_t>(bytes / stageBytes, kPipelineMaxStages));
    if (stages < 2)
    {
        return false; // one row a block at a time: nothing copied ahead (H200: slower)
    }
    // The grid is persistent: only as many blocks as are resident at once (registers may allow fewer).
    int const resident = residentBlocks(items, static_cast<int>(threads), static_cast<int>(stages * stageBytes));
    int64_t const grid = d.multiprocessors * std::min(kBlocks, resident);
    if (grid == 0 || s.rows < grid * PLUGKIT_RMS_NORM_PIPELINE_MIN_ROWS
        || s.rows > grid * PLUGKIT_RMS_NORM_PIPELINE_MAX_ROWS)
    {
        return false;
    }
    plan.family = Family::kPipeline;
    plan.items = items;
    plan.threads = threads;
    plan.stages = stages;
    plan.stageBytes = stageBytes;
    plan.grid = grid;
    return true;
}

// The re-read kernel for the problems it takes (see REREAD_MIN_ROW_BYTES); false for the others.
inline bool planReread(Shape const& s, DeviceProperties const& d, int64_t vectors, Plan& plan)
{
    int const maxItems = rereadMaxItems(plan.vec);
    if (s.cols * s.xBytes < PLUGKIT_RMS_NORM_REREAD_MIN_ROW_BYTES
        || s.rows < d.multiprocessors * PLUGKIT_RMS_NORM_REREAD_MIN_ROWS || vectors > 2 * int64_t{kRereadThreads} * maxItems
        || d.ptxVersion < 80) // before sm_80 both reads would come from DRAM
    {
        return false;
    }
    int const items = itemsWithin(vectors, kRereadThreads, maxItems);
    plan.family = Family::kReread;
    plan.maxThreads = kRereadThreads;
    if (divUp(vectors, items) > kRereadThreads)
    {
        plan.items = maxItems;
        plan.maxThreads = 2 * kRereadThreads;
    }
    else
    {
        plan.items = items == 1 ? 1 : items == 2 ? std::min(2, maxItems) : maxItems;
    }
    plan.threads = warpThreads(vectors, plan.items);
    return true;
}

// Rows of a warp or less: several rows a block, and several rows a thread while that leaves at
// least WARP_ROW_MIN_WARPS warps a multiprocessor.
inline void planWarpRows(Shape const& s, DeviceProperties const& d, int64_t vectors, Plan& plan)
{
    // Each thread at least WARP_ROW_ITEMS vectors (no more than the row has).
    int const items = itemsWithin(vectors, 32, kMaxItems,
        static_cast<int>(std::min<int64_t>(PLUGKIT_RMS_NORM_WARP_ROW_ITEMS, nextPowerOfTwo(vectors))));
    int64_t const lanes = nextPowerOfTwo(divUp(vectors, items));
    int64_t const multiprocessors = d.multiprocessors;
    int const rows = warpRowsPerThread(items, plan.vec);
    int64_t const rowsPerWarp = 32 / lanes;
    bool const manyRows
        = rows > 1 && divUp(s.rows, rowsPerWarp * rows) >= multiprocessors * PLUGKIT_RMS_NORM_WARP_ROW_MIN_WARPS;
    int64_t const rowsPerThread = manyRows ? rows : 1;
    // Several rows a thread: one-warp blocks while they fit in one wave, larger ones beyond.
    bool const oneWave = divUp(s.rows, rowsPerWarp * rowsPerThread) <= multiprocessors * d.maxBlocksPerMultiprocessor;
    int64_t rowsPerBlock = (manyRows ? (oneWave ? 32 : kManyRowsBlockThreads) : kWarpRowBlockThreads) / lanes;
    // Fewer rows a block when that would leave multiprocessors idle.
    while (rowsPerBlock > 1 && divUp(s.rows, rowsPerBlock * rowsPerThread) < multiprocessors)
    {
        rowsPerBlock /= 2;
    }
    plan.family = Family::kWarpRows;
    plan.items = items;
    plan.threads = lanes;
    plan.rowsPerBlock = rowsPerBlock;
    plan.rowsPerThread = static_cast<int>(rowsPerThread);
    // Rows that fill a warp's 16-byte vectors exactly take a kernel with the row length a constant,
    // whose launch bound is its block's size.
    plan.exact = manyRows && lanes == 32 && s.cols == 32 * items * plan.vec && plan.vec * s.xBytes == 16;
    plan.maxThreads = plan.exact ? (oneWave ? 32 : kManyRowsBlockThreads) : kMaxThreadsPerRow;
    plan.evictFirst = registerEvictFirst(s, plan, true, multiprocessors);
}

//! The kernel for `s` on a device `d`; residentBlocks(items, threads, sharedBytes) answers, for
//! the row pipeline only, how many of its blocks a multiprocessor holds.
template <typename ResidentBlocks>
Plan choosePlan(Shape const& s, DeviceProperties const& d, ResidentBlocks&& residentBlocks)
{
    Plan plan;
    plan.vec = s.vectorized ? 16 / s.xBytes : 1;
    int64_t const vectors = divUp(s.cols, plan.vec);
    if (vectors > PLUGKIT_RMS_NORM_STREAMING_VECTORS)
    {
        plan.family = Family::kStreaming;
        plan.threads = kStreamingThreads;
        return plan;
    }
    if (plan.vec * s.xBytes == 16
        && (planPipeline(s, d, vectors, residentBlocks, plan) || planReread(s, d, vectors, plan)))
    {
        return plan;
    }
    if (vectors <= PLUGKIT_RMS_NORM_WARP_ROW_VECTORS)
    {
        planWarpRows(s, d, vectors, plan);
        return plan;
    }
    // A block a row: the fewest items a thread (up to 16) that keep a row within kThreadsPerRow
    // threads (SMALL_GRID_THREADS when the rows are fewer than multiprocessors); rows wider than
    // that at 16 items get up to 512 threads.
    int64_t const threadsPerRow = s.rows < d.multiprocessors ? PLUGKIT_RMS_NORM_SMALL_GRID_THREADS : kThreadsPerRow;
    plan.family = Family::kBlockRows;
    plan.items = itemsWithin(vectors, threadsPerRow, kMaxItems);
    plan.threads = warpThreads(vectors, plan.items);
    plan.maxThreads = kMaxThreadsPerRow;
    plan.evictFirst = registerEvictFirst(s, plan, false, d.multiprocessors);
    return plan;
}

} // namespace plugkit::rms_norm
