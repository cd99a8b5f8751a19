// Launcher of the MultiScaleDeformableAttention kernels (msda_kernel.cu).
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace plugkit::msda
{

//! The kernel mappings, as the plugin's tactics (TensorRT reserves 0 for its default).
enum Tactic : int32_t
{
    kChannelThreads = 1, //!< the original CUDA mapping: a thread an output channel, scalar loads
    kPointGroups = 2,       //!< a group of lanes a (batch, query, head), 16-byte vector gathers, point math once a lane
    kPointGroupsNarrow = 3, //!< the same with 8-byte vectors: twice the lanes a group, half the registers
    kSplitPoints = 4,       //!< point groups whose points are split over 4 slices of lanes (short grids)
};

//! One launch: value [B, S, H, D], spatial_shapes [L, 2], level_start_index [L],
//! sampling_locations [B, Q, H, L, P, 2], attention_weights [B, Q, H, L, P] -> output [B, Q, H*D].
struct Problem
{
    nvinfer1::DataType floatType; //!< value, locations, weights and output
    nvinfer1::DataType indexType; //!< spatial_shapes and level_start_index
    void const* value;
    void const* spatialShapes;
    void const* levelStartIndex;
    void const* locations;
    void const* weights;
    void* output;
    int64_t batch;
    int64_t spatial; //!< S
    int64_t queries; //!< Q
    int32_t heads;   //!< H
    int32_t channels; //!< D
    int32_t levels;  //!< L
    int32_t points;  //!< P
};

//! Largest level count the kernels take (their per-block table of levels).
constexpr int32_t kMaxLevels = 32;

//! Enqueue `tactic`'s kernel for `p` on `stream`; throws plugkit::Error on bad input or a failed launch.
void launch(Problem const& p, int32_t tactic, cudaStream_t stream);

} // namespace plugkit::msda
