// The register kernel: one pass, the row held in registers (rows of a warp or less, several a
// block and several a thread; or a block a row).
#pragma once

#include "rms_norm_device.cuh"

namespace plugkit::rms_norm
{
namespace
{

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

} // namespace
} // namespace plugkit::rms_norm
