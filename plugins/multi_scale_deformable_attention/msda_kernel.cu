// MultiScaleDeformableAttention kernels: for each (batch b, query q, head h) and channel d,
//   out[b, q, h*D + d] = sum over levels l and points p of
//       attention_weights[b, q, h, l, p] * bilinear(value level l of (b, h), channel d, at sampling_locations[b, q, h, l, p])
// in grid_sample's convention (align_corners=False, zeros outside the map): a location (x, y)
// in [0, 1] samples pixel coordinates (x * W_l - 0.5, y * H_l - 0.5). Sums are kept in fp32.
//
// The level table (spatial_shapes, level_start_index) lives in device memory: the launcher
// cannot read it without a synchronization, so each block reads it into shared memory. A level
// whose rows do not fit in the value tensor (start < 0, or start + H*W > S) is read as empty:
// no read can leave value, whatever the table says, and such a level contributes zeros.
#include "msda_kernel.h"

#include "plugkit/dispatch.h"
#include "plugkit/launch.h"

#include <algorithm>
#include <limits>
#include <type_traits>

namespace plugkit::msda
{
namespace
{

constexpr int32_t kBlockThreads = 256;

struct Level
{
    float height;
    float width;
    int32_t rows;  //!< H_l (0 for a level that does not fit in value)
    int32_t cols;  //!< W_l
    int32_t start; //!< first position of the level in value's S axis
};

//! The level table, from device memory into shared memory, made safe to index value with.
template <typename I>
__device__ void loadLevels(Level* levels, I const* shapes, I const* starts, int32_t nbLevels, int64_t spatial)
{
    for (int32_t l = threadIdx.x; l < nbLevels; l += blockDim.x)
    {
        int64_t const h = static_cast<int64_t>(shapes[2 * l]);
        int64_t const w = static_cast<int64_t>(shapes[2 * l + 1]);
        int64_t const s = static_cast<int64_t>(starts[l]);
        // h * w cannot overflow once both are checked against spatial (< 2^31).
        bool const fits = h >= 0 && w >= 0 && h <= spatial && w <= spatial && s >= 0 && s <= spatial
            && h * w <= spatial - s;
        Level level;
        level.rows = fits ? static_cast<int32_t>(h) : 0;
        level.cols = fits ? static_cast<int32_t>(w) : 0;
        level.start = fits ? static_cast<int32_t>(s) : 0;
        level.height = static_cast<float>(level.rows);
        level.width = static_cast<float>(level.cols);
        levels[l] = level;
    }
}

//! The four bilinear corners of one sampling point: value positions and weights, the attention
//! weight folded in; only corners `inside` the map may be read.
struct Corners
{
    int32_t offset[4];
    float weight[4];
    bool inside[4];
};

__device__ __forceinline__ bool corners(Level const& level, float x, float y, float attention, Corners& c)
{
    float const w_im = x * level.width - 0.5F;
    float const h_im = y * level.height - 0.5F;
    // Also false for NaN, for an empty level, and for any point whose four corners all lie outside the map.
    if (!(h_im > -1.0F && w_im > -1.0F && h_im < level.height && w_im < level.width) || level.rows == 0
        || level.cols == 0)
    {
        return false;
    }
    int32_t const h0 = static_cast<int32_t>(floorf(h_im));
    int32_t const w0 = static_cast<int32_t>(floorf(w_im));
    float const lh = h_im - static_cast<float>(h0);
    float const lw = w_im - static_cast<float>(w0);
    float const hh = 1.0F - lh;
    float const hw = 1.0F - lw;
    bool const top = h0 >= 0;
    bool const bottom = h0 + 1 < level.rows;
    bool const left = w0 >= 0;
    bool const right = w0 + 1 < level.cols;
    int32_t const row0 = level.start + h0 * level.cols;
    int32_t const row1 = row0 + level.cols;
    c.inside[0] = top && left;
    c.inside[1] = top && right;
    c.inside[2] = bottom && left;
    c.inside[3] = bottom && right;
    c.offset[0] = row0 + w0;
    c.offset[1] = row0 + w0 + 1;
    c.offset[2] = row1 + w0;
    c.offset[3] = row1 + w0 + 1;
    c.weight[0] = hh * hw * attention;
    c.weight[1] = hh * lw * attention;
    c.weight[2] = lh * hw * attention;
    c.weight[3] = lh * lw * attention;
    return true;
}

// ---- tactic 1: the original Deformable-DETR mapping, a thread an output channel ----

template <typename T, typename I>
__global__ void __launch_bounds__(kBlockThreads) channelThreadsKernel(T const* __restrict__ value,
    I const* __restrict__ shapes, I const* __restrict__ starts, T const* __restrict__ locations,
    T const* __restrict__ weights, T* __restrict__ output, int64_t outputs, int64_t spatial, int32_t heads,
    int32_t channels, int32_t nbLevels, int32_t points, int64_t queries)
{
    __shared__ Level levels[kMaxLevels];
    waitForPrerequisites();
    allowDependents();
    loadLevels(levels, shapes, starts, nbLevels, spatial);
    __syncthreads();
    int64_t const headChannels = static_cast<int64_t>(heads) * channels;
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < outputs;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    {
        int64_t const bqh = i / channels; // (b, q, h) flattened
        int32_t const d = static_cast<int32_t>(i - bqh * channels);
        int32_t const h = static_cast<int32_t>(bqh % heads);
        int64_t const b = bqh / heads / queries;
        T const* v = value + b * spatial * headChannels + h * channels + d;
        T const* loc = locations + bqh * nbLevels * points * 2;
        T const* att = weights + bqh * nbLevels * points;
        float acc = 0.0F;
        for (int32_t l = 0; l < nbLevels; ++l)
        {
            Level const level = levels[l];
            for (int32_t p = 0; p < points; ++p, loc += 2, ++att)
            {
                Corners c;
                if (corners(level, toFloat(loc[0]), toFloat(loc[1]), toFloat(*att), c))
                {
#pragma unroll
                    for (int32_t k = 0; k < 4; ++k)
                    {
                        if (c.inside[k])
                        {
                            acc += c.weight[k] * toFloat(v[c.offset[k] * headChannels]);
                        }
                    }
                }
            }
        }
        output[i] = fromFloat<T>(acc);
    }
}

// ---- tactics 2 and 3: a group of lanes a (b, q, h), VEC channels a lane, vector gathers ----

template <typename T, int32_t VEC>
struct alignas(sizeof(T) * VEC) Vec
{
    T v[VEC];
};

template <int32_t VEC>
__device__ __forceinline__ void zeroFill(float (&acc)[VEC])
{
#pragma unroll
    for (int32_t e = 0; e < VEC; ++e)
    {
        acc[e] = 0.0F;
    }
}

//! Adds one sampling point's four weighted corners of the channel vector `c` to `acc`. All four
//! gathers are in flight before the arithmetic; a corner outside the map reads nothing and counts
//! as zeros.
template <typename T, int32_t VEC>
__device__ __forceinline__ void accumulateCorners(
    Vec<T, VEC> const* v, Corners const& s, int32_t headVectors, int32_t c, float (&acc)[VEC])
{
    using V = Vec<T, VEC>;
    V corner[4];
#pragma unroll
    for (int32_t k = 0; k < 4; ++k)
    {
        corner[k] = s.inside[k] ? v[static_cast<int64_t>(s.offset[k]) * headVectors + c] : V{};
    }
#pragma unroll
    for (int32_t k = 0; k < 4; ++k)
    {
#pragma unroll
        for (int32_t e = 0; e < VEC; ++e)
        {
            acc[e] += s.weight[k] * toFloat(corner[k].v[e]);
        }
    }
}

template <typename T, int32_t VEC>
__device__ __forceinline__ Vec<T, VEC> toVec(float const (&acc)[VEC])
{
    Vec<T, VEC> result;
#pragma unroll
    for (int32_t e = 0; e < VEC; ++e)
    {
        result.v[e] = fromFloat<T>(acc[e]);
    }
    return result;
}

template <typename T, int32_t VEC, typename I>
__global__ void __launch_bounds__(kBlockThreads) pointGroupsKernel(T const* __restrict__ value,
    I const* __restrict__ shapes, I const* __restrict__ starts, T const* __restrict__ locations,
    T const* __restrict__ weights, T* __restrict__ output, int64_t groups, int32_t groupLanes, int64_t spatial,
    int32_t heads, int32_t channels, int32_t nbLevels, int32_t points, int64_t queries)
{
    __shared__ Level levels[kMaxLevels];
    waitForPrerequisites();
    allowDependents();
    loadLevels(levels, shapes, starts, nbLevels, spatial);
    __syncthreads();
    using V = Vec<T, VEC>;
    int32_t const vectors = channels / VEC;
    int32_t const lane = threadIdx.x % groupLanes;
    int64_t const headChannels = static_cast<int64_t>(heads) * channels;
    int32_t const headVectors = static_cast<int32_t>(headChannels / VEC);
    int64_t const groupsPerLaunchStep = static_cast<int64_t>(gridDim.x) * (blockDim.x / groupLanes);
    for (int64_t bqh = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / groupLanes; bqh < groups;
         bqh += groupsPerLaunchStep)
    {
        int32_t const h = static_cast<int32_t>(bqh % heads);
        int64_t const b = bqh / heads / queries;
        V const* v = reinterpret_cast<V const*>(value + b * spatial * headChannels + h * channels);
        V* out = reinterpret_cast<V*>(output + bqh * channels);
        // Channels past a group's lanes (D > VEC * lanes) take further passes over the points.
        for (int32_t c = lane; c < vectors; c += groupLanes)
        {
            float acc[VEC];
            zeroFill(acc);
            T const* loc = locations + bqh * nbLevels * points * 2;
            T const* att = weights + bqh * nbLevels * points;
            for (int32_t l = 0; l < nbLevels; ++l)
            {
                Level const level = levels[l];
                // Unrolled so that the next points' locations load while this point's gathers wait.
#pragma unroll 4
                for (int32_t p = 0; p < points; ++p, loc += 2, ++att)
                {
                    Corners s;
                    if (!corners(level, toFloat(loc[0]), toFloat(loc[1]), toFloat(*att), s))
                    {
                        continue;
                    }
                    accumulateCorners(v, s, headVectors, c, acc);
                }
            }
            out[c] = toVec<T>(acc);
        }
    }
}

// ---- tactic 4: point groups whose points are split over 4 slices of lanes ----
// For short grids (decoder queries): a (b, q, h) gets `channelLanes` x 4 lanes; slice k takes
// the points k, k+4, ... for the same channels, and the slices' sums meet by shuffles. A
// group's channels fit its lanes in one pass (the launcher checks). Every lane of a warp runs
// the same loop trips, so the full-warp shuffles see all 32 lanes.

constexpr int32_t kSlices = 4;

template <typename T, int32_t VEC, typename I>
__global__ void __launch_bounds__(kBlockThreads) splitPointsKernel(T const* __restrict__ value,
    I const* __restrict__ shapes, I const* __restrict__ starts, T const* __restrict__ locations,
    T const* __restrict__ weights, T* __restrict__ output, int64_t groups, int32_t channelLanes, int64_t spatial,
    int32_t heads, int32_t channels, int32_t nbLevels, int32_t points, int64_t queries)
{
    __shared__ Level levels[kMaxLevels];
    waitForPrerequisites();
    allowDependents();
    loadLevels(levels, shapes, starts, nbLevels, spatial);
    __syncthreads();
    using V = Vec<T, VEC>;
    int32_t const groupLanes = channelLanes * kSlices;
    int32_t const groupsPerWarp = 32 / groupLanes;
    int32_t const laneInWarp = threadIdx.x % 32;
    int32_t const c = laneInWarp % channelLanes; // this lane's vector of channels
    int32_t const slice = (laneInWarp % groupLanes) / channelLanes;
    int32_t const vectors = channels / VEC;
    int32_t const samples = nbLevels * points;
    int64_t const headChannels = static_cast<int64_t>(heads) * channels;
    int32_t const headVectors = static_cast<int32_t>(headChannels / VEC);
    int64_t const warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
    int64_t const warp = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
    for (int64_t first = warp * groupsPerWarp; first < groups; first += warps * groupsPerWarp)
    {
        int64_t const bqh = first + laneInWarp / groupLanes;
        bool const active = bqh < groups && c < vectors;
        float acc[VEC];
        zeroFill(acc);
        if (active)
        {
            int32_t const h = static_cast<int32_t>(bqh % heads);
            int64_t const b = bqh / heads / queries;
            V const* v = reinterpret_cast<V const*>(value + b * spatial * headChannels + h * channels);
            T const* loc = locations + bqh * samples * 2;
            T const* att = weights + bqh * samples;
#pragma unroll 2
            for (int32_t i = slice; i < samples; i += kSlices)
            {
                Corners s;
                if (!corners(levels[i / points], toFloat(loc[2 * i]), toFloat(loc[2 * i + 1]), toFloat(att[i]), s))
                {
                    continue;
                }
                accumulateCorners(v, s, headVectors, c, acc);
            }
        }
        // Sum the slices: lanes channelLanes, 2*channelLanes apart hold the same channels.
        for (int32_t m = channelLanes; m < groupLanes; m *= 2)
        {
#pragma unroll
            for (int32_t e = 0; e < VEC; ++e)
            {
                acc[e] += __shfl_xor_sync(0xFFFFFFFFU, acc[e], m);
            }
        }
        if (active && slice == 0)
        {
            reinterpret_cast<V*>(output + bqh * channels)[c] = toVec<T>(acc);
        }
    }
}

int32_t nextPowerOfTwo(int32_t n)
{
    int32_t p = 1;
    while (p < n)
    {
        p *= 2;
    }
    return p;
}

int64_t gridFor(int64_t threads)
{
    // Grid-stride loops cover the rest: more blocks than this only add scheduling.
    constexpr int64_t kMaxBlocks = int64_t{1} << 20;
    return std::max<int64_t>(1, std::min((threads + kBlockThreads - 1) / kBlockThreads, kMaxBlocks));
}

bool aligned(void const* p, size_t bytes)
{
    return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

template <typename T, int32_t VEC, typename I>
void launchPointGroups(Problem const& p, cudaStream_t stream)
{
    int64_t const groups = p.batch * p.queries * p.heads;
    int32_t const lanes = std::min(32, nextPowerOfTwo(p.channels / VEC));
    launchKernel(pointGroupsKernel<T, VEC, I>, dim3(static_cast<unsigned>(gridFor(groups * lanes))),
        dim3(kBlockThreads), 0, stream, static_cast<T const*>(p.value), static_cast<I const*>(p.spatialShapes),
        static_cast<I const*>(p.levelStartIndex), static_cast<T const*>(p.locations), static_cast<T const*>(p.weights),
        static_cast<T*>(p.output), groups, lanes, p.spatial, p.heads, p.channels, p.levels, p.points, p.queries);
}

//! Point groups with the widest vectors of at most `bytes` that value, output and D allow (16 or
//! 8 bytes), else a channel a lane.
template <typename T, typename I>
void launchPointGroups(Problem const& p, size_t bytes, cudaStream_t stream)
{
    auto fits = [&](size_t vectorBytes) {
        return vectorBytes <= bytes && p.channels % static_cast<int32_t>(vectorBytes / sizeof(T)) == 0
            && aligned(p.value, vectorBytes) && aligned(p.output, vectorBytes);
    };
    if (fits(16))
    {
        launchPointGroups<T, static_cast<int32_t>(16 / sizeof(T)), I>(p, stream);
    }
    else if (fits(8))
    {
        launchPointGroups<T, static_cast<int32_t>(8 / sizeof(T)), I>(p, stream);
    }
    else
    {
        launchPointGroups<T, 1, I>(p, stream);
    }
}

//! Split points with the widest vectors that fit, when a group's channels fit in 32 / 4 lanes in
//! one pass; else the point groups of 16-byte vectors.
template <typename T, typename I>
void launchSplitPoints(Problem const& p, cudaStream_t stream)
{
    auto launchWith = [&](auto vecTag) {
        constexpr int32_t VEC = decltype(vecTag)::value;
        int64_t const groups = p.batch * p.queries * p.heads;
        int32_t const channelLanes = nextPowerOfTwo(p.channels / VEC);
        int32_t const groupsPerWarp = 32 / (channelLanes * kSlices);
        int64_t const warps = (groups + groupsPerWarp - 1) / groupsPerWarp;
        launchKernel(splitPointsKernel<T, VEC, I>, dim3(static_cast<unsigned>(gridFor(warps * 32))),
            dim3(kBlockThreads), 0, stream, static_cast<T const*>(p.value), static_cast<I const*>(p.spatialShapes),
            static_cast<I const*>(p.levelStartIndex), static_cast<T const*>(p.locations),
            static_cast<T const*>(p.weights), static_cast<T*>(p.output), groups, channelLanes, p.spatial, p.heads,
            p.channels, p.levels, p.points, p.queries);
    };
    auto fits = [&](size_t vectorBytes) {
        int32_t const vec = static_cast<int32_t>(vectorBytes / sizeof(T));
        return p.channels % vec == 0 && nextPowerOfTwo(p.channels / vec) * kSlices <= 32
            && aligned(p.value, vectorBytes) && aligned(p.output, vectorBytes);
    };
    if (fits(16))
    {
        launchWith(std::integral_constant<int32_t, static_cast<int32_t>(16 / sizeof(T))>{});
    }
    else if (fits(8))
    {
        launchWith(std::integral_constant<int32_t, static_cast<int32_t>(8 / sizeof(T))>{});
    }
    else if (p.channels * kSlices <= 32)
    {
        launchWith(std::integral_constant<int32_t, 1>{});
    }
    else
    {
        launchPointGroups<T, I>(p, 16, stream);
    }
}

template <typename T, typename I>
void launchTyped(Problem const& p, int32_t tactic, cudaStream_t stream)
{
    switch (tactic)
    {
    case kChannelThreads:
    {
        int64_t const outputs = p.batch * p.queries * p.heads * p.channels;
        launchKernel(channelThreadsKernel<T, I>, dim3(static_cast<unsigned>(gridFor(outputs))), dim3(kBlockThreads), 0,
            stream, static_cast<T const*>(p.value), static_cast<I const*>(p.spatialShapes),
            static_cast<I const*>(p.levelStartIndex), static_cast<T const*>(p.locations),
            static_cast<T const*>(p.weights), static_cast<T*>(p.output), outputs, p.spatial, p.heads, p.channels,
            p.levels, p.points, p.queries);
        return;
    }
    case kPointGroups: launchPointGroups<T, I>(p, 16, stream); return;
    case kPointGroupsNarrow: launchPointGroups<T, I>(p, 8, stream); return;
    case kSplitPoints: launchSplitPoints<T, I>(p, stream); return;
    default: break;
    }
    throw Error("unknown tactic " + std::to_string(tactic));
}

} // namespace

void launch(Problem const& p, int32_t tactic, cudaStream_t stream)
{
    PLUGKIT_CHECK(p.levels >= 1 && p.levels <= kMaxLevels,
        "the kernels take 1 to " << kMaxLevels << " levels; got " << p.levels);
    PLUGKIT_CHECK(p.spatial < std::numeric_limits<int32_t>::max(),
        "value has " << p.spatial << " positions; the kernels index up to 2^31 - 1");
    if (p.batch == 0 || p.queries == 0 || p.heads == 0 || p.channels == 0)
    {
        return;
    }
    dispatchFloat(p.floatType, [&](auto floatTag) {
        using T = typename decltype(floatTag)::type;
        dispatchIndex(p.indexType, [&](auto indexTag) {
            launchTyped<T, typename decltype(indexTag)::type>(p, tactic, stream);
        });
    });
}

} // namespace plugkit::msda
