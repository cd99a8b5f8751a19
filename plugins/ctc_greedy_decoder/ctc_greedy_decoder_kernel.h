// Launcher of the CTCGreedyDecoder kernels (ctc_greedy_decoder_kernel.cu).
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace plugkit::ctc_greedy_decoder
{

//! One decode of logits [n, t, c] into labels/scores [n, M], decoded lengths [n] and M.
struct Problem
{
    nvinfer1::DataType logitsType;
    void const* logits;
    int32_t const* lengths; //!< [n] valid frames per sample, or null for all t
    int32_t* labels;        //!< [n, M], row stride M (the data-dependent size)
    float* scores;          //!< [n, M]
    int32_t* decodedLengths; //!< [n]
    int32_t* longest;       //!< M, a 0-d size tensor
    int64_t n;
    int64_t t;
    int64_t c;
    int32_t blank;
    bool mergeRepeated;
};

//! Workspace bytes of a decode of [n, t, *]: per frame its argmax and probability, per
//! decoded label its class and score, with row stride t.
size_t workspaceSize(int64_t n, int64_t t);

//! Enqueue the decode on `stream` (no host synchronization); throws plugkit::Error on a failed launch.
void launch(Problem const& p, void* workspace, cudaStream_t stream);

} // namespace plugkit::ctc_greedy_decoder
