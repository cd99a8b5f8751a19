// RMSNorm kernels. Memory-bound: each element of X is read once from DRAM and each of Y
// written once. Rows of up to 128 16-byte vectors get a warp or less (reduced with
// shuffles alone), several rows a block, and several rows a thread when there are
// rows enough, the row kept in registers; wider rows get a block each; rows too long for
// registers take a two-pass kernel. Rows of 16 KB or more, 4 or more a multiprocessor, take
// either a row pipeline (sm_90+, 4 to 8 rows a block of its persistent grid, which the bulk
// copy engine feeds several rows ahead) or a kernel that reads the row twice, the second time
// from L2 (sm_80+), so that it needs few registers.
#include "rms_norm_kernel.h"

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
// The same for grids of fewer rows than multiprocessors (one partial wave: latency-bound, so
// fewer loads a thread). H100 against torch.compile, 256 (128): 64x4096 fp32 1.10x (0.76x),
// 64x2048 bf16 1.02x (0.97x), 5x2048 fp16 1.02x (0.96x).
#ifndef PLUGKIT_RMS_NORM_SMALL_GRID_THREADS
#define PLUGKIT_RMS_NORM_SMALL_GRID_THREADS 256
#endif
// A thread's share of the scale is loaded into registers together with X when it is at most this
// many bytes, else read after the reduction. Early, it costs registers (fp16, 4 items a thread:
// 62 against 32); late, a latency in launches of few blocks (64x2048 fp32: 4.0 against 2.5 us).
#ifndef PLUGKIT_RMS_NORM_CACHE_SCALE_BYTES
#define PLUGKIT_RMS_NORM_CACHE_SCALE_BYTES 64
#endif
// Cache hints for X and Y (see loadOnce). The register kernel marks them evict-first
// when a thread holds more than PLAIN_MAX_ITEMS vectors of a block-wide row, or the grid is a
// single small wave (no more than two blocks a multiprocessor); threads of fewer items in a large
// grid load and store plainly. H100, against torch.compile: rows of 1024 16-bit values (1 item),
// 0.98x with hints, 1.01x without; rows of 4096 fp32 (8 items), 1.06x with, 1.03x without;
// 64 rows of 2048 16-bit values (64 blocks), 2.5 us with, 2.7 us without. PLAIN_MAX_ITEMS 0: hints
// always. The streaming kernel always uses them: its second read of X must find X in L2.
#ifndef PLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS
#define PLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS 2
#endif
// The same for rows of a warp, counting the vectors of all of a thread's rows. H100, rows of
// 256 elements: plain up to 8 vectors (fp32: 4 rows of 2) 1.00-1.05x against torch.compile,
// hints on 0.95-1.04x.
#ifndef PLUGKIT_RMS_NORM_WARP_PLAIN_MAX_ITEMS
#define PLUGKIT_RMS_NORM_WARP_PLAIN_MAX_ITEMS 8
#endif
// Rows of at most this many vectors get a warp or less each: their threads reduce with shuffles
// alone, and a block holds several rows. Wider rows get a block each (one barrier a row).
// 64: fp32 rows of 256 take a warp with 2 vectors a lane (H100, 16384x256 fp32 alone under
// Nsight Compute: 11.5 us, against 13.0 us as 64-thread blocks). 128: rows of 1024 16-bit or
// 512 fp32 values take a warp with 4 vectors a lane, 8 rows a block. As a block each (128
// threads of one vector, 2 KB of X), they ran at the rate blocks start (see MANY_ROWS_BLOCK_THREADS):
// H200, 32768x1024 fp16 and 65536x512 fp32 at 78% of copy, 0.85x and 0.82x torch.compile;
// as warps 1.01x and 1.00x. 100x1024 (one partial wave): 1.30x fp16 and 1.43x fp32 as warps,
// 1.36x and 1.43x as blocks.
#ifndef PLUGKIT_RMS_NORM_WARP_ROW_VECTORS
#define PLUGKIT_RMS_NORM_WARP_ROW_VECTORS 128
#endif
// Fewest 16-byte vectors a thread of such a row loads (more bytes in flight a thread, fewer lanes a row).
#ifndef PLUGKIT_RMS_NORM_WARP_ROW_ITEMS
#define PLUGKIT_RMS_NORM_WARP_ROW_ITEMS 1
#endif
// Threads of a block of rows of a warp or less, one row a thread.
#ifndef PLUGKIT_RMS_NORM_WARP_ROW_BLOCK_THREADS
#define PLUGKIT_RMS_NORM_WARP_ROW_BLOCK_THREADS 256
#endif
// Elements of X a thread of such rows holds: ROWS = this / (its share of one row) rows a
// thread, at most kMaxRowsPerThread, their loads all in flight before the first reduction.
// 32 (1024 a warp) is what torch.compile's persistent reductions hold. H100, 16384x256 fp32
// against torch.compile: 32 elements (4 rows of 2 vectors) 1.01x, 16 (2 rows) 0.95x.
#ifndef PLUGKIT_RMS_NORM_WARP_ROW_ELEMENTS
#define PLUGKIT_RMS_NORM_WARP_ROW_ELEMENTS 32
#endif
// ... but one row a thread when several would leave fewer warps than this a multiprocessor
// (2048x256 fp16: 4 rows a thread in 512 warps, 0.90x; one row a thread, 1.01x).
#ifndef PLUGKIT_RMS_NORM_WARP_ROW_MIN_WARPS
#define PLUGKIT_RMS_NORM_WARP_ROW_MIN_WARPS 16
#endif
// Threads of a block whose threads hold several rows each, in grids of more than one wave.
// A multiprocessor starts blocks at a bounded rate (H200: about 0.8 blocks a nanosecond over the
// device), so short blocks cap the bandwidth: one-warp blocks of 4 rows of 128 fp32 values read
// 2 KB each and ran 262144x128 at 79% of copy (0.82x torch.compile), 4-warp blocks 1.00x.
// Grids that fit in one wave of one-warp blocks keep those, as torch.compile's kernel has them
// (16384x256 fp16: 4096 blocks, 31 a multiprocessor, spread more evenly than 1024).
#ifndef PLUGKIT_RMS_NORM_MANY_ROWS_BLOCK_THREADS
#define PLUGKIT_RMS_NORM_MANY_ROWS_BLOCK_THREADS 128
#endif
constexpr int kThreadsPerRow = PLUGKIT_RMS_NORM_THREADS;
constexpr int kMaxThreadsPerRow = PLUGKIT_RMS_NORM_MAX_THREADS; // 512: 128 registers a thread for 16 items
constexpr int kMaxItems = 16;          // 16-byte vectors a thread keeps in registers
constexpr int kMaxRowsPerThread = 4; // 8 rows of one fp32 vector spilled (262144x128)
constexpr int kWarpRowBlockThreads = PLUGKIT_RMS_NORM_WARP_ROW_BLOCK_THREADS;
constexpr int kManyRowsBlockThreads = PLUGKIT_RMS_NORM_MANY_ROWS_BLOCK_THREADS;
static_assert(PLUGKIT_RMS_NORM_WARP_ROW_ITEMS > 0 && (PLUGKIT_RMS_NORM_WARP_ROW_ITEMS & (PLUGKIT_RMS_NORM_WARP_ROW_ITEMS - 1)) == 0,
    "items a thread: a power of two");
static_assert(PLUGKIT_RMS_NORM_WARP_ROW_VECTORS <= 32 * kMaxItems, "a warp holds at most 32 x kMaxItems vectors");
static_assert(kWarpRowBlockThreads % 32 == 0 && kWarpRowBlockThreads <= kMaxThreadsPerRow, "whole warps a block");
static_assert(kManyRowsBlockThreads % 32 == 0 && kManyRowsBlockThreads <= kMaxThreadsPerRow, "whole warps a block");
// The two-pass kernel: rows of more than STREAMING_VECTORS 16-byte vectors (by default those that
// do not fit in registers), STREAMING_THREADS threads a row.
#ifndef PLUGKIT_RMS_NORM_STREAMING_THREADS
#define PLUGKIT_RMS_NORM_STREAMING_THREADS 1024
#endif
#ifndef PLUGKIT_RMS_NORM_STREAMING_VECTORS
#define PLUGKIT_RMS_NORM_STREAMING_VECTORS (kMaxThreadsPerRow * kMaxItems)
#endif
constexpr int kStreamingThreads = PLUGKIT_RMS_NORM_STREAMING_THREADS;
static_assert(kStreamingThreads % 32 == 0 && kStreamingThreads <= 1024, "whole warps a block");
// The row pipeline (compute capability 9.0+, see pipelineKernel): rows of at least
// PIPELINE_MIN_ROW_BYTES, PIPELINE_MIN_ROWS to PIPELINE_MAX_ROWS rows a block of a persistent grid
// of PIPELINE_BLOCKS blocks a multiprocessor, each with at least two rows in PIPELINE_BYTES of
// shared memory a multiprocessor (H200: rows of up to 46 KB); up to PIPELINE_THREADS threads a
// row, as many vectors a thread as that takes. H200: faster than the register kernel where that
// one runs about four waves (2048x16384 fp16 1.06x torch.compile against 0.96x), even at two
// (2048x8192 fp16), 1-7% slower in longer grids whatever its blocks, stages, threads or hints
// (16384x8192 fp16 by 7%); the measurements are in plugins/rms_norm/README.md.
#ifndef PLUGKIT_RMS_NORM_PIPELINE_MIN_ROW_BYTES
#define PLUGKIT_RMS_NORM_PIPELINE_MIN_ROW_BYTES 16384
#endif
#ifndef PLUGKIT_RMS_NORM_PIPELINE_MIN_ROWS
#define PLUGKIT_RMS_NORM_PIPELINE_MIN_ROWS 4
#endif
#ifndef PLUGKIT_RMS_NORM_PIPELINE_MAX_ROWS
#define PLUGKIT_RMS_NORM_PIPELINE_MAX_ROWS 8
#endif
#ifndef PLUGKIT_RMS_NORM_PIPELINE_THREADS
#define PLUGKIT_RMS_NORM_PIPELINE_THREADS 256
#endif
#ifndef PLUGKIT_RMS_NORM_PIPELINE_BLOCKS
#define PLUGKIT_RMS_NORM_PIPELINE_BLOCKS 2
#endif
#ifndef PLUGKIT_RMS_NORM_PIPELINE_BYTES
#define PLUGKIT_RMS_NORM_PIPELINE_BYTES (192 * 1024)
#endif
// Copies into the stages with an L2 evict-first hint (1: 2-3% slower), and Y stored with one
// (st.global.cs; plain stores no faster).
#ifndef PLUGKIT_RMS_NORM_PIPELINE_LOAD_HINT
#define PLUGKIT_RMS_NORM_PIPELINE_LOAD_HINT 0
#endif
#ifndef PLUGKIT_RMS_NORM_PIPELINE_STORE_HINT
#define PLUGKIT_RMS_NORM_PIPELINE_STORE_HINT 1
#endif
// The re-read kernel (wide rows the row pipeline does not take): rows of at least
// REREAD_MIN_ROW_BYTES, at least REREAD_MIN_ROWS rows a multiprocessor (H200: 4 rows ran
// 700x16384 fp16 at 1.11x torch.compile, the register kernel 0.87x), a block of up to
// REREAD_THREADS threads a row with up to REREAD_MAX_ELEMENTS elements each, in 16-byte vectors
// (twice the threads for rows wider than that). 16 elements: 4 bf16 vectors a thread spilled
// under the cap of 32 registers.
#ifndef PLUGKIT_RMS_NORM_REREAD_MIN_ROW_BYTES
#define PLUGKIT_RMS_NORM_REREAD_MIN_ROW_BYTES 16384
#endif
#ifndef PLUGKIT_RMS_NORM_REREAD_MIN_ROWS
#define PLUGKIT_RMS_NORM_REREAD_MIN_ROWS 4
#endif
#ifndef PLUGKIT_RMS_NORM_REREAD_THREADS
#define PLUGKIT_RMS_NORM_REREAD_THREADS 512
#endif
// 1: fp32 rows of the most vectors a thread in REREAD_THREADS-thread blocks hold the scale too
// (see rereadHoldsScale); 0: no kernel does.
#ifndef PLUGKIT_RMS_NORM_REREAD_HOLD_SCALE
#define PLUGKIT_RMS_NORM_REREAD_HOLD_SCALE 1
#endif
#ifndef PLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS
#define PLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS 16
#endif
constexpr int kRereadThreads = PLUGKIT_RMS_NORM_REREAD_THREADS;
static_assert(kRereadThreads % 32 == 0 && 2 * kRereadThreads <= 1024, "whole warps a block, twice as many allowed");
static_assert(PLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS == 8 || PLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS == 16,
    "one to four 16-byte vectors a thread");

constexpr int kPipelineMaxThreads = 512;
constexpr int kPipelineMaxItems = 8;
constexpr int kPipelineMaxStages = 8;
constexpr int kPipelineStageAlign = 128; // stage starts, in bytes (the engine needs 16)
static_assert(PLUGKIT_RMS_NORM_PIPELINE_THREADS % 32 == 0 && PLUGKIT_RMS_NORM_PIPELINE_THREADS <= kPipelineMaxThreads,
    "whole warps a block");
static_assert(PLUGKIT_RMS_NORM_STREAMING_VECTORS <= kMaxThreadsPerRow * kMaxItems, "rows the register kernel holds");

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

// base + offset for offsets known to be non-negative and 32-bit: the sum is taken in 32 bits
// and widened once (one IMAD.WIDE.U32). A signed int offset may not overflow, so the compiler
// widens each of its terms instead and adds in 64 bits (five instructions an address).
template <typename P>
__device__ __forceinline__ P* at(P* base, int offset)
{
    return base + static_cast<unsigned>(offset);
}

template <int VEC>
using Floats = float[VEC];

template <typename T, int VEC>
__device__ __forceinline__ void toFloats(Vec<T, VEC> const& in, Floats<VEC>& out)
{
#pragma unroll
    for (int k = 0; k < VEC; ++k)
    {
        out[k] = toFloat(in.v[k]);
    }
}

template <int VEC>
__device__ __forceinline__ float sumOfSquares(Floats<VEC> const& v)
{
    float s = 0.0F;
#pragma unroll
    for (int k = 0; k < VEC; ++k)
    {
        s += v[k] * v[k];
    }
    return s;
}

// x * inv * scale, rounded to T: two elements a conversion for 16-bit types.
template <typename T, int VEC>
__device__ __forceinline__ Vec<T, VEC> normalize(Floats<VEC> const& x, Floats<VEC> const& scale, float inv)
{
    Vec<T, VEC> out;
    constexpr bool kPairs = VEC % 2 == 0 && sizeof(T) == 2;
#pragma unroll
    for (int k = 0; k < VEC; k += kPairs ? 2 : 1)
    {
        float const a = x[k] * inv * scale[k];
        if constexpr (kPairs)
        {
            float const b = x[k + 1] * inv * scale[k + 1];
            if constexpr (std::is_same_v<T, __half>)
            {
                *reinterpret_cast<__half2*>(&out.v[k]) = __floats2half2_rn(a, b);
            }
            else
            {
                *reinterpret_cast<__nv_bfloat162*>(&out.v[k]) = __floats2bfloat162_rn(a, b);
            }
        }
        else
        {
            out.v[k] = fromFloat<T>(a);
        }
    }
    return out;
}

// Sums of N values, each over groups of `lanes` consecutive lanes (a power of two up to 32).
// Every shuffle is issued and the N chains interleave; a value from across groups is masked to
// +0 rather than branched around (branches here made the compiler duplicate the shuffles).
template <int N>
__device__ __forceinline__ void laneSums(float (&v)[N], int lanes)
{
    if (lanes == 32) // a row a warp: no masks
    {
#pragma unroll
        for (int offset = 16; offset > 0; offset >>= 1)
        {
#pragma unroll
            for (int n = 0; n < N; ++n)
            {
                v[n] += __shfl_xor_sync(0xffffffffU, v[n], offset);
            }
        }
        return;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        unsigned keep = offset < lanes ? 0xffffffffU : 0U;
        asm("" : "+r"(keep)); // opaque, or the compiler branches on it after all
#pragma unroll
        for (int n = 0; n < N; ++n)
        {
            float const other = __shfl_xor_sync(0xffffffffU, v[n], offset);
            v[n] += __uint_as_float(__float_as_uint(other) & keep);
        }
    }
}

__device__ __forceinline__ float warpSum(float v)
{
    return warpReduce(v, [](float a, float b) { return a + b; });
}

// Sum over the threads of a block that holds one row (whole warps). rowReduce (plugkit/kernels.h)
// without its second barrier and with the partials added by a warp's shuffles rather than one
// after another. Without that barrier, `partial` may be written again only after a later barrier
// of every thread: a kernel that sums once, or one that alternates two arrays (a fast warp may
// be one sum ahead, never two).
__device__ __forceinline__ float blockSum(float v, float (&partial)[32])
{
    v = warpSum(v);
    int const lane = threadIdx.x & 31;
    int const warp = threadIdx.x >> 5;
    if (lane == 0)
    {
        partial[warp] = v;
    }
    __syncthreads();
    // Every warp adds up all partials, so every thread has the total after one barrier.
    return warpSum(lane < static_cast<int>(blockDim.x >> 5) ? partial[lane] : 0.0F);
}

__device__ __forceinline__ float blockSum(float v)
{
    __shared__ float partial[32];
    return blockSum(v, partial);
}

__device__ __forceinline__ float invRms(float sumOfSquares, float invCols, float epsilon)
{
    return rsqrtf(sumOfSquares * invCols + epsilon);
}

// One pass: the row stays in registers (ITEMS vectors of VEC elements a thread).
// WARP: rows of a warp or less (blockDim.x <= 32 lanes a row, reduced with shuffles alone);
// a block holds blockDim.y x ROWS rows, thread (x, y) rows y * ROWS ... y * ROWS + ROWS - 1
// of its block's group, all their loads issued before the first reduction.
// Otherwise a block holds one row (ROWS 1) and reduces it with one barrier.
// A block a group, and rows x cols < 2^31: offsets are 32-bit (an address is one IMAD.WIDE),
// launchRegister splits larger tensors into launches of fewer rows. The scale is loaded once
// into registers when it fits in a few.
// EXACT: rows of exactly 32 x ITEMS x VEC elements, a warp each (blockDim.x 32), at least ROWS
// of them. The row length is then a constant: no masks, and a thread's rows are one address plus
// constant offsets (the instructions of torch.compile's kernel for the shape, the constant epsilon
// and ftz rsqrt aside). The last group is moved back to end at the last row, and stores only the
// rows the group before did not.
// MAX_THREADS, the launch bound, matters for EXACT kernels, which get that of their block: with
// 512 threads allowed, ptxas took a thread's rows one after another and loaded X again instead of
// keeping it (each row's loads issued only when its turn came); with 128 allowed, it gave 4 rows
// of one 16-byte vector 32 registers instead of 56 (16384x256 fp16 in one-warp blocks: 0.95x
// against 1.06x).
template <typename T, typename S, int VEC, int ITEMS, int ROWS, bool WARP, bool EVICT_FIRST, bool EXACT, int MAX_THREADS>
__global__ void __launch_bounds__(MAX_THREADS) registerKernel(T const* __restrict__ x,
    S const* __restrict__ scale, T* __restrict__ y, int rows, int colsArg, float invColsArg, float epsilon)
{
    static_assert(WARP || ROWS == 1, "a block-wide row is one row a thread");
    static_assert(WARP || !EXACT, "EXACT rows take a warp each");
    // Launched with PDL (plugkit/launch.h): X, the scale and Y are touched only after this.
    waitForPrerequisites();
    allowDependents();
    constexpr int kExactCols = 32 * ITEMS * VEC;
    int const cols = EXACT ? kExactCols : colsArg;
    // 1 / cols: as the launcher computes it (the same float division), folded when the length is constant.
    float const invCols = EXACT ? 1.0F / static_cast<float>(kExactCols) : invColsArg;
    int const lanes = EXACT ? 32 : static_cast<int>(blockDim.x);
    constexpr bool kCacheScale = ITEMS * VEC * sizeof(S) <= PLUGKIT_RMS_NORM_CACHE_SCALE_BYTES;
    // The scale in fp32 once for all of a thread's rows, when there are several.
    constexpr bool kScaleFloats = ROWS > 1;
    using XVec = Vec<T, VEC>;
    using SVec = Vec<S, VEC>;
    // Recomputed where used: arrays of them would cost registers (spills at 16 items).
    auto column = [&](int i) { return (i * lanes + static_cast<int>(threadIdx.x)) * VEC; };
    auto inRow = [&](int i) { return EXACT || column(i) < cols; };
    // Rows of a warp: columns past the row's end read its first vector and count for nothing, so
    // that loads and sums need no branches (stores are predicated). Block-wide rows of many
    // items a thread skip them instead: the branch-free form costs registers there (spills at 16).
    auto loadColumn = [&](int i) { return inRow(i) ? column(i) : 0; };
    SVec scaleItems[kCacheScale ? ITEMS : 1];
    if constexpr (kCacheScale)
    {
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (WARP || inRow(i))
            {
                scaleItems[i] = *reinterpret_cast<SVec const*>(at(scale, loadColumn(i)));
            }
        }
    }
    auto scaleAt = [&](int i, Floats<VEC>& w) {
        SVec raw;
        if constexpr (kCacheScale)
        {
            raw = scaleItems[i];
            keepRaw(raw); // converted here, not held as fp32 across the reduction
        }
        else
        {
            // loadColumn, not column: rows of a warp normalize (unstored) columns past the row's
            // end too, and their scale must be read inside it (X [33, 1000] fp16 with an fp32
            // scale read 16-byte vectors past its end).
            raw = *reinterpret_cast<SVec const*>(at(scale, loadColumn(i)));
        }
        toFloats(raw, w);
    };
    // A thread's rows are row0 ... row0 + ROWS - 1. Rows past the last (in the last group) read
    // the last row instead and store nothing (EXACT: the group reads rows - ROWS ... rows - 1):
    // loads and reductions need no bounds checks of their own.
    int const row0 = (static_cast<int>(blockIdx.x) * static_cast<int>(blockDim.y) + static_cast<int>(threadIdx.y)) * ROWS;
    int const first = EXACT ? min(row0, rows - ROWS) : min(row0, rows - 1); // the first row read
    int const start = first * cols;
    int const lastRow = max(min(rows - 1 - row0, ROWS - 1), 0);
    // Element c of the thread's row r.
    auto element = [&](auto* base, int r, int c) {
        return EXACT ? at(base, start + c) + r * cols : at(base, start + min(r, lastRow) * cols + c);
    };
    auto rowIn = [&](int r) { return EXACT ? first + r >= row0 : row0 + r < rows; };
    XVec items[ROWS][ITEMS];
    float sums[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
    {
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (WARP || inRow(i))
            {
                items[r][i] = loadOnce<EVICT_FIRST>(reinterpret_cast<XVec const*>(element(x, r, loadColumn(i))));
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
    {
        sums[r] = -0.0F; // -0 + x is x: the first add folds away
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (WARP || inRow(i))
            {
                Floats<VEC> v;
                toFloats(items[r][i], v);
                float const squares = sumOfSquares(v);
                sums[r] += inRow(i) ? squares : 0.0F;
            }
        }
    }
    if constexpr (WARP)
    {
        laneSums(sums, lanes);
    }
    else
    {
        sums[0] = blockSum(sums[0]);
    }
    Floats<VEC> scaleFloats[kScaleFloats ? ITEMS : 1];
    if constexpr (kScaleFloats)
    {
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            scaleAt(i, scaleFloats[i]);
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
    {
        float const inv = invRms(sums[r], invCols, epsilon);
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            keepRaw(items[r][i]);
            if (WARP || (rowIn(r) && inRow(i)))
            {
                // Rows of a warp: computed for every row and column, only the store predicated.
                Floats<VEC> v;
                toFloats(items[r][i], v);
                XVec out;
                if constexpr (kScaleFloats)
                {
                    out = normalize<T>(v, scaleFloats[i], inv);
                }
                else
                {
                    Floats<VEC> w;
                    scaleAt(i, w);
                    out = normalize<T>(v, w, inv);
                }
                if (rowIn(r) && inRow(i))
                {
                    storeOnce<EVICT_FIRST>(reinterpret_cast<XVec*>(element(y, r, column(i))), out);
                }
            }
        }
    }
}

// Two passes over the row, for rows that do not fit in registers: the second
// read mostly hits L2, which holds the rows of all resident blocks.
template <typename T, typename S, int VEC>
__global__ void __launch_bounds__(kStreamingThreads) streamingKernel(
    T const* __restrict__ x, S const* __restrict__ scale, T* __restrict__ y, int64_t cols, float invCols, float epsilon)
{
    waitForPrerequisites();
    allowDependents();
    T const* xRow = x + static_cast<int64_t>(blockIdx.x) * cols;
    T* yRow = y + static_cast<int64_t>(blockIdx.x) * cols;
    int64_t const step = static_cast<int64_t>(blockDim.x) * VEC;
    float sumSquares = 0.0F;
    for (int64_t col = static_cast<int64_t>(threadIdx.x) * VEC; col < cols; col += step)
    {
        Floats<VEC> v;
        toFloats(*reinterpret_cast<Vec<T, VEC> const*>(xRow + col), v);
        sumSquares += sumOfSquares(v);
    }
    float const inv = invRms(blockSum(sumSquares), invCols, epsilon);
    for (int64_t col = static_cast<int64_t>(threadIdx.x) * VEC; col < cols; col += step)
    {
        Floats<VEC> v;
        Floats<VEC> w;
        toFloats(loadOnce<true>(reinterpret_cast<Vec<T, VEC> const*>(xRow + col)), v);
        toFloats(*reinterpret_cast<Vec<S, VEC> const*>(scale + col), w);
        storeOnce<true>(reinterpret_cast<Vec<T, VEC>*>(yRow + col), normalize<T>(v, w, inv));
    }
}

// Whether the re-read kernel also holds the scale's vectors, loading them with the second read of
// X before the first store, at up to 40 registers (1536 threads a multiprocessor): fp32 at the
// most vectors a thread in blocks of REREAD_THREADS (H200, 16384x8192 fp32: 250.8 against
// 254.1 us; fp16 130.4 against 126.4, so 16-bit rows do not).
template <typename T, int VEC, int ITEMS, int MAX_THREADS>
constexpr bool rereadHoldsScale = PLUGKIT_RMS_NORM_REREAD_HOLD_SCALE && sizeof(T) == 4
    && ITEMS * VEC == PLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS && MAX_THREADS == kRereadThreads;

// Two reads of X for wide rows (the structure of torch.compile's kernel for them): the first
// only sums squares, its lines kept in L1 and L2 (evict-last); the second, after the block's
// sum, takes X again from the caches (evict-first: those lines may go now) to normalize it. No
// vector is held across the reduction, so a thread needs few registers (at most 32: 2048 threads
// a multiprocessor on sm_80/sm_90; 40 and 1536 threads where it holds the scale), against 512-1024
// threads of the register kernel at 8-16 vectors a thread: more rows in flight, whose DRAM reads
// overlap the other rows' reductions. The registers are capped with __maxnreg__, not with
// launch bounds of 2048 threads a multiprocessor, which ptxas warns about for every
// architecture that holds fewer (sm_75, sm_86, sm_89).
// A block a row, ITEMS vectors a thread.
// __maxnreg__ came with CUDA 12.4; before it, launch bounds of that many registers' blocks.
#if __CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 4)
#define PLUGKIT_RMS_NORM_REREAD_BOUNDS(THREADS, REGISTERS) __launch_bounds__(THREADS) __maxnreg__(REGISTERS)
#else
#define PLUGKIT_RMS_NORM_REREAD_BOUNDS(THREADS, REGISTERS) __launch_bounds__(THREADS, 65536 / (THREADS * (REGISTERS)))
#endif
template <typename T, typename S, int VEC, int ITEMS, int MAX_THREADS>
__global__ void PLUGKIT_RMS_NORM_REREAD_BOUNDS(MAX_THREADS, (rereadHoldsScale<T, VEC, ITEMS, MAX_THREADS> ? 40 : 32))
    rereadKernel(T const* __restrict__ x, S const* __restrict__ scale, T* __restrict__ y, int cols, float invCols,
        float epsilon)
{
    waitForPrerequisites();
    allowDependents();
    using XVec = Vec<T, VEC>;
    using SVec = Vec<S, VEC>;
    T const* const xRow = x + static_cast<int64_t>(blockIdx.x) * cols;
    T* const yRow = y + static_cast<int64_t>(blockIdx.x) * cols;
    auto column = [&](int i) { return (i * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x)) * VEC; };
    auto inRow = [&](int i) { return column(i) < cols; };
    // Columns past the row's end read its first vector and count for nothing: loads and sums
    // without branches (branches around them cost a third more instructions, in 16-bit rows the
    // kernel's limit: vectors taken apart and put together again, addresses computed twice).
    auto loadColumn = [&](int i) { return inRow(i) ? column(i) : 0; };
    auto xAt = [&](int i) { return reinterpret_cast<XVec const*>(at(xRow, loadColumn(i))); };
    XVec items[ITEMS];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        items[i] = loadCached<Evict::Last>(xAt(i));
    }
    float squares = -0.0F;
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        Floats<VEC> v;
        toFloats(items[i], v);
        float const s = sumOfSquares(v);
        squares += inRow(i) ? s : 0.0F;
    }
    float const inv = invRms(blockSum(squares), invCols, epsilon);
    // The second read of X before the first store (a load after a store it may alias cannot be
    // moved above it, so each vector's trip to L2 would wait for the store before). The scale
    // is read between the stores (its lines, read by every block, are in L1) unless the kernel
    // holds it: under the cap of 32 registers that spilled (fp32, bf16).
    constexpr bool kHoldScale = rereadHoldsScale<T, VEC, ITEMS, MAX_THREADS>;
    auto scaleAt = [&](int i) { return loadCached<Evict::Last>(reinterpret_cast<SVec const*>(at(scale, loadColumn(i)))); };
    SVec scaleItems[kHoldScale ? ITEMS : 1];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        items[i] = loadCached<Evict::First>(xAt(i));
        if constexpr (kHoldScale)
        {
            scaleItems[i] = scaleAt(i);
        }
    }
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        Floats<VEC> v;
        Floats<VEC> w;
        toFloats(items[i], v);
        if constexpr (kHoldScale)
        {
            toFloats(scaleItems[i], w);
        }
        else
        {
            toFloats(scaleAt(i), w);
        }
        XVec const out = normalize<T>(v, w, inv);
        if (inRow(i))
        {
            *reinterpret_cast<XVec*>(at(yRow, column(i))) = out;
        }
    }
}

// The row pipeline: a persistent grid, each block rows blockIdx.x, + gridDim.x, ... Thread 0
// starts the bulk copies of a block's next `stages` rows into shared memory; every thread waits
// for its row's stage, takes its vectors into registers and adds their squares. The barrier of
// the block's sum orders every read of the stage before thread 0 refills it with the row
// `stages` rows on, so the copy engine keeps up to `stages` rows of a block in flight while the
// threads normalize and store. Y goes from registers straight to global memory. The scale is
// loaded once a block. Offsets of rows are 64-bit: any row count in one launch.
template <typename T, typename S, int VEC, int ITEMS>
__global__ void __launch_bounds__(kPipelineMaxThreads) pipelineKernel(T const* __restrict__ x,
    S const* __restrict__ scale, T* __restrict__ y, int64_t rows, int cols, float invCols, float epsilon, int stages,
    int stageBytes)
{
    using XVec = Vec<T, VEC>;
    using SVec = Vec<S, VEC>;
    extern __shared__ __align__(kPipelineStageAlign) unsigned char stage[];
    __shared__ StageBarrier full[kPipelineMaxStages];
    __shared__ float partial[2][32];
    bool const issuer = threadIdx.x == 0;
    if (issuer)
    {
        for (int s = 0; s < stages; ++s)
        {
            full[s].init();
        }
        StageBarrier::initFence();
    }
    __syncthreads();
    waitForPrerequisites();
    allowDependents();
    auto const rowBytes = static_cast<uint32_t>(cols * sizeof(T));
    int64_t const step = gridDim.x;
    auto fill = [&](int s, int64_t row) {
        full[s].expectBytes(rowBytes);
        bulkLoad<PLUGKIT_RMS_NORM_PIPELINE_LOAD_HINT != 0>(stage + s * stageBytes, x + row * cols, rowBytes, full[s]);
    };
    int64_t row = blockIdx.x;
    if (issuer)
    {
        for (int s = 0; s < stages && row + s * step < rows; ++s)
        {
            fill(s, row + s * step);
        }
    }
    auto column = [&](int i) { return (i * static_cast<int>(blockDim.x) + static_cast<int>(threadIdx.x)) * VEC; };
    auto inRow = [&](int i) { return column(i) < cols; };
    SVec scaleItems[ITEMS];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i)
    {
        if (inRow(i))
        {
            scaleItems[i] = *reinterpret_cast<SVec const*>(scale + column(i));
        }
    }
    int s = 0;
    uint32_t parity = 0;
    int partialIndex = 0; // blockSum's arrays in turn
    for (; row < rows; row += step)
    {
        full[s].wait(parity);
        auto const* staged = reinterpret_cast<T const*>(stage + s * stageBytes);
        XVec items[ITEMS];
        float squares = -0.0F;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (inRow(i))
            {
                items[i] = *reinterpret_cast<XVec const*>(staged + column(i));
                Floats<VEC> v;
                toFloats(items[i], v);
                squares += sumOfSquares(v);
            }
        }
        float const inv = invRms(blockSum(squares, partial[partialIndex]), invCols, epsilon);
        partialIndex ^= 1;
        // Past the barrier in blockSum: every thread has read stage s.
        if (issuer && row + stages * step < rows)
        {
            fenceBeforeBulkWrite();
            fill(s, row + stages * step);
        }
        T* out = y + row * cols;
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
        {
            if (inRow(i))
            {
                keepRaw(items[i]);
                keepRaw(scaleItems[i]); // converted here each row, not held as fp32 across the loop
                Floats<VEC> v;
                Floats<VEC> w;
                toFloats(items[i], v);
                toFloats(scaleItems[i], w);
                storeOnce<PLUGKIT_RMS_NORM_PIPELINE_STORE_HINT != 0>(
                    reinterpret_cast<XVec*>(out + column(i)), normalize<T>(v, w, inv));
            }
        }
        if (++s == stages)
        {
            s = 0;
            parity ^= 1;
        }
    }
}

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

int multiprocessorCount()
{
    return deviceAttribute(cudaDevAttrMultiProcessorCount);
}

// Blocks a multiprocessor holds at most (32 on sm_80 and sm_90, 16 on sm_86 and sm_89).
int maxBlocksPerMultiprocessor()
{
    return deviceAttribute(cudaDevAttrMaxBlocksPerMultiprocessor);
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
int itemsWithin(int64_t vectors, int64_t threads, int maxItems, int items = 1)
{
    while (items < maxItems && ceilDiv(vectors, items) > threads)
    {
        items *= 2;
    }
    return items;
}

// Threads for a row of `vectors` at `items` a thread, in whole warps.
int64_t warpThreads(int64_t vectors, int64_t items)
{
    return ceilDiv(ceilDiv(vectors, items), 32) * 32;
}

// registerKernel in blocks of `block` threads, each block.y x ROWS rows.
template <typename T, typename S, int VEC, int ITEMS, int ROWS, bool WARP, bool EXACT = false,
    int MAX_THREADS = kMaxThreadsPerRow>
void launchRegister(Problem const& p, S const* scale, dim3 block, int64_t multiprocessors, cudaStream_t stream)
{
    int64_t const groupRows = static_cast<int64_t>(block.y) * ROWS;
    int64_t const blocks = ceilDiv(p.rows, groupRows);
    auto* kernel = registerKernel<T, S, VEC, ITEMS, ROWS, WARP, true, EXACT, MAX_THREADS>;
    // Plain loads and stores: instantiated only for few vectors a thread and 16-byte vectors
    // (the hints apply to those alone).
    constexpr int kPlainMaxItems = WARP ? PLUGKIT_RMS_NORM_WARP_PLAIN_MAX_ITEMS : PLUGKIT_RMS_NORM_PLAIN_MAX_ITEMS;
    if constexpr (ITEMS * ROWS <= kPlainMaxItems && VEC * sizeof(T) == 16)
    {
        if (blocks > 2 * multiprocessors)
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

// Rows of a warp or less (`lanes` threads a row): several rows a block, and several rows a
// thread while that leaves at least WARP_ROW_MIN_WARPS warps a multiprocessor.
template <typename T, typename S, int VEC, int ITEMS>
void launchWarpRows(Problem const& p, S const* scale, int64_t lanes, int64_t multiprocessors, cudaStream_t stream)
{
    constexpr int kRows = std::clamp(PLUGKIT_RMS_NORM_WARP_ROW_ELEMENTS / (ITEMS * VEC), 1, kMaxRowsPerThread);
    int64_t const rowsPerWarp = 32 / lanes;
    bool const manyRows =
        kRows > 1 && ceilDiv(p.rows, rowsPerWarp * kRows) >= multiprocessors * PLUGKIT_RMS_NORM_WARP_ROW_MIN_WARPS;
    int64_t const rowsPerThread = manyRows ? kRows : 1;
    // Several rows a thread: one-warp blocks while they fit in one wave, larger ones beyond.
    bool const oneWave = ceilDiv(p.rows, rowsPerWarp * rowsPerThread) <= multiprocessors * maxBlocksPerMultiprocessor();
    int64_t rowsPerBlock = (manyRows ? (oneWave ? 32 : kManyRowsBlockThreads) : kWarpRowBlockThreads) / lanes;
    // Fewer rows a block when that would leave multiprocessors idle.
    while (rowsPerBlock > 1 && ceilDiv(p.rows, rowsPerBlock * rowsPerThread) < multiprocessors)
    {
        rowsPerBlock /= 2;
    }
    dim3 const block(static_cast<unsigned>(lanes), static_cast<unsigned>(rowsPerBlock));
    // Rows that fill a warp's 16-byte vectors exactly take a kernel with the row length a constant.
    bool const exact = lanes == 32 && p.cols == 32 * ITEMS * VEC;
    if (manyRows && exact)
    {
        if constexpr (VEC * sizeof(T) == 16)
        {
            if (oneWave)
            {
                launchRegister<T, S, VEC, ITEMS, kRows, true, true, 32>(p, scale, block, multiprocessors, stream);
            }
            else
            {
                launchRegister<T, S, VEC, ITEMS, kRows, true, true, kManyRowsBlockThreads>(
                    p, scale, block, multiprocessors, stream);
            }
            return;
        }
    }
    if (manyRows)
    {
        launchRegister<T, S, VEC, ITEMS, kRows, true>(p, scale, block, multiprocessors, stream);
    }
    else
    {
        launchRegister<T, S, VEC, ITEMS, 1, true>(p, scale, block, multiprocessors, stream);
    }
}

template <typename T, typename S, int VEC, int ITEMS>
bool launchPipelineItems(Problem const& p, S const* scale, int threads, int64_t multiprocessors, cudaStream_t stream)
{
    auto* kernel = pipelineKernel<T, S, VEC, ITEMS>;
    if (!bulkCopyCompiled(kernel))
    {
        return false; // before sm_90, or the library has no sm_90 code
    }
    int64_t const stageBytes = ceilDiv(p.cols * static_cast<int64_t>(sizeof(T)), kPipelineStageAlign) * kPipelineStageAlign;
    // Shared memory a block may have beyond its static arrays, and a multiprocessor for its blocks
    // (each block also costs the 1 KB the runtime reserves).
    int64_t const blockLimit = deviceAttribute(cudaDevAttrMaxSharedMemoryPerBlockOptin) - 1024;
    int64_t const multiprocessorBytes = std::min<int64_t>(
        PLUGKIT_RMS_NORM_PIPELINE_BYTES, deviceAttribute(cudaDevAttrMaxSharedMemoryPerMultiprocessor));
    constexpr int kBlocks = PLUGKIT_RMS_NORM_PIPELINE_BLOCKS;
    int64_t const bytes = std::min(multiprocessorBytes / kBlocks - 2048, blockLimit);
    int const stages = static_cast<int>(std::min<int64_t>(bytes / stageBytes, kPipelineMaxStages));
    if (stages < 2)
    {
        return false; // one row a block at a time: nothing copied ahead (H200: slower)
    }
    int const sharedBytes = static_cast<int>(stages * stageBytes);
    PLUGKIT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, sharedBytes));
    // The grid is persistent: only as many blocks as are resident at once (registers may allow fewer).
    int resident = 0;
    PLUGKIT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, sharedBytes));
    int64_t const grid = multiprocessors * std::min(kBlocks, resident);
    if (grid == 0 || p.rows < grid * PLUGKIT_RMS_NORM_PIPELINE_MIN_ROWS || p.rows > grid * PLUGKIT_RMS_NORM_PIPELINE_MAX_ROWS)
    {
        return false;
    }
    launchKernel(kernel, dim3(static_cast<unsigned>(grid)), dim3(static_cast<unsigned>(threads)),
        static_cast<size_t>(sharedBytes), stream, static_cast<T const*>(p.x), scale, static_cast<T*>(p.y), p.rows,
        static_cast<int>(p.cols), 1.0F / static_cast<float>(p.cols), p.epsilon, stages, static_cast<int>(stageBytes));
    return true;
}

// The row pipeline for the problems it takes (see PIPELINE_MIN_ROW_BYTES); false for the others.
template <typename T, typename S, int VEC>
bool launchPipeline(Problem const& p, S const* scale, int64_t vectors, int64_t multiprocessors, cudaStream_t stream)
{
    if (p.cols * static_cast<int64_t>(sizeof(T)) < PLUGKIT_RMS_NORM_PIPELINE_MIN_ROW_BYTES
        || p.rows < multiprocessors * PLUGKIT_RMS_NORM_PIPELINE_MIN_ROWS
        || p.rows > multiprocessors * PLUGKIT_RMS_NORM_PIPELINE_BLOCKS * PLUGKIT_RMS_NORM_PIPELINE_MAX_ROWS)
    {
        return false; // outside the rows it takes in the largest grid (checked again in the grid it gets)
    }
    // A scale wider than X (16-bit X, fp32 scale) takes as many registers again: 8 items spilled.
    constexpr int kMaxItems = sizeof(S) > sizeof(T) ? kPipelineMaxItems / 2 : kPipelineMaxItems;
    int const items = itemsWithin(vectors, PLUGKIT_RMS_NORM_PIPELINE_THREADS, kMaxItems);
    int64_t const threads = warpThreads(vectors, items);
    if (threads > kPipelineMaxThreads)
    {
        return false;
    }
    int const t = static_cast<int>(threads);
    switch (items)
    {
    case 1: return launchPipelineItems<T, S, VEC, 1>(p, scale, t, multiprocessors, stream);
    case 2: return launchPipelineItems<T, S, VEC, 2>(p, scale, t, multiprocessors, stream);
    case 4: return launchPipelineItems<T, S, VEC, 4>(p, scale, t, multiprocessors, stream);
    default: return launchPipelineItems<T, S, VEC, kMaxItems>(p, scale, t, multiprocessors, stream);
    }
}

template <typename T, typename S, int VEC, int ITEMS, int MAX_THREADS>
bool launchRereadItems(Problem const& p, S const* scale, int64_t vectors, cudaStream_t stream)
{
    auto* kernel = rereadKernel<T, S, VEC, ITEMS, MAX_THREADS>;
    if (!cacheHintsCompiled(kernel))
    {
        return false; // before sm_80 both reads would come from DRAM
    }
    // Rows of 16 KB or more: 2^31 of them would be 32 TB.
    PLUGKIT_CHECK(p.rows <= INT32_MAX, "too many rows (" << p.rows << ") for one launch");
    launchKernel(kernel, dim3(static_cast<unsigned>(p.rows)), dim3(static_cast<unsigned>(warpThreads(vectors, ITEMS))),
        0, stream, static_cast<T const*>(p.x), scale, static_cast<T*>(p.y), static_cast<int>(p.cols),
        1.0F / static_cast<float>(p.cols), p.epsilon);
    return true;
}

// The re-read kernel for the problems it takes (see REREAD_MIN_ROW_BYTES); false for the others.
template <typename T, typename S, int VEC>
bool launchReread(Problem const& p, S const* scale, int64_t vectors, int64_t multiprocessors, cudaStream_t stream)
{
    constexpr int kMaxItems = std::max(PLUGKIT_RMS_NORM_REREAD_MAX_ELEMENTS / VEC, 1);
    if (p.cols * static_cast<int64_t>(sizeof(T)) < PLUGKIT_RMS_NORM_REREAD_MIN_ROW_BYTES
        || p.rows < multiprocessors * PLUGKIT_RMS_NORM_REREAD_MIN_ROWS
        || vectors > 2 * int64_t{kRereadThreads} * kMaxItems)
    {
        return false;
    }
    int const items = itemsWithin(vectors, kRereadThreads, kMaxItems);
    if (ceilDiv(vectors, items) > kRereadThreads)
    {
        return launchRereadItems<T, S, VEC, kMaxItems, 2 * kRereadThreads>(p, scale, vectors, stream);
    }
    switch (items)
    {
    case 1: return launchRereadItems<T, S, VEC, 1, kRereadThreads>(p, scale, vectors, stream);
    case 2: return launchRereadItems<T, S, VEC, std::min(2, kMaxItems), kRereadThreads>(p, scale, vectors, stream);
    default: return launchRereadItems<T, S, VEC, kMaxItems, kRereadThreads>(p, scale, vectors, stream);
    }
}

template <typename T, typename S, int VEC>
void launchWithVec(Problem const& p, S const* scale, cudaStream_t stream)
{
    int64_t const vectors = ceilDiv(p.cols, VEC);
    if (vectors > PLUGKIT_RMS_NORM_STREAMING_VECTORS)
    {
        PLUGKIT_CHECK(p.rows <= INT32_MAX, "too many rows (" << p.rows << ") for one launch");
        launchKernel(streamingKernel<T, S, VEC>, dim3(static_cast<unsigned>(p.rows)), dim3(kStreamingThreads), 0, stream,
            static_cast<T const*>(p.x), scale, static_cast<T*>(p.y), p.cols, 1.0F / static_cast<float>(p.cols),
            p.epsilon);
        return;
    }
    int64_t const multiprocessors = multiprocessorCount();
    if constexpr (VEC * sizeof(T) == 16)
    {
        if (launchPipeline<T, S, VEC>(p, scale, vectors, multiprocessors, stream)
            || launchReread<T, S, VEC>(p, scale, vectors, multiprocessors, stream))
        {
            return;
        }
    }
    if (vectors <= PLUGKIT_RMS_NORM_WARP_ROW_VECTORS)
    {
        // A warp or less a row, each thread at least WARP_ROW_ITEMS vectors (no more than the row has).
        int const items = itemsWithin(vectors, 32, kMaxItems,
            static_cast<int>(std::min<int64_t>(PLUGKIT_RMS_NORM_WARP_ROW_ITEMS, nextPowerOfTwo(vectors))));
        int64_t const lanes = nextPowerOfTwo(ceilDiv(vectors, items));
        // Only the item counts these rows can take are instantiated.
        constexpr int kWarpItems = std::max<int>(
            PLUGKIT_RMS_NORM_WARP_ROW_ITEMS, nextPowerOfTwo(ceilDiv(PLUGKIT_RMS_NORM_WARP_ROW_VECTORS, 32)));
        PLUGKIT_CHECK(items <= kWarpItems, "internal: " << items << " items a thread for rows of a warp");
        switch (items)
        {
        case 1: launchWarpRows<T, S, VEC, 1>(p, scale, lanes, multiprocessors, stream); break;
        case 2: if constexpr (kWarpItems >= 2) { launchWarpRows<T, S, VEC, 2>(p, scale, lanes, multiprocessors, stream); } break;
        case 4: if constexpr (kWarpItems >= 4) { launchWarpRows<T, S, VEC, 4>(p, scale, lanes, multiprocessors, stream); } break;
        case 8: if constexpr (kWarpItems >= 8) { launchWarpRows<T, S, VEC, 8>(p, scale, lanes, multiprocessors, stream); } break;
        default: if constexpr (kWarpItems >= 16) { launchWarpRows<T, S, VEC, 16>(p, scale, lanes, multiprocessors, stream); } break;
        }
        return;
    }
    // A block a row: the fewest items a thread (up to 16) that keep a row within kThreadsPerRow
    // threads (SMALL_GRID_THREADS when the rows are fewer than multiprocessors); rows wider than
    // that at 16 items get up to 512 threads.
    int64_t const threadsPerRow = p.rows < multiprocessors ? PLUGKIT_RMS_NORM_SMALL_GRID_THREADS : kThreadsPerRow;
    int const items = itemsWithin(vectors, threadsPerRow, kMaxItems);
    dim3 const block(static_cast<unsigned>(warpThreads(vectors, items)), 1U);
    switch (items)
    {
    case 1: launchRegister<T, S, VEC, 1, 1, false>(p, scale, block, multiprocessors, stream); break;
    case 2: launchRegister<T, S, VEC, 2, 1, false>(p, scale, block, multiprocessors, stream); break;
    case 4: launchRegister<T, S, VEC, 4, 1, false>(p, scale, block, multiprocessors, stream); break;
    case 8: launchRegister<T, S, VEC, 8, 1, false>(p, scale, block, multiprocessors, stream); break;
    default: launchRegister<T, S, VEC, 16, 1, false>(p, scale, block, multiprocessors, stream); break;
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
        launchKernel(expandScaleKernel<S>, dim3(blocks), dim3(256), 0, stream, scale, full, p.cols, p.scaleBroadcast);
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
