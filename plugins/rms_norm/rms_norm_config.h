// RMSNorm's launch knobs: every number the kernel choice (rms_norm_rule.h) and the kernels
// depend on, in one place. Plain C++ (no CUDA): the rule's CPU test compiles it with g++.
#pragma once

namespace plugkit::rms_norm
{

// Tuning knobs, overridable at compile time (-D...) for tune.sh; the measurements behind each are in TUNING.md.
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
// (16384x8192 fp16 by 7%); the measurements are in TUNING.md.
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

} // namespace plugkit::rms_norm
