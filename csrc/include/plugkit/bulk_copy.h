// Copies from global to shared memory by the bulk copy engine (compute capability 9.0 and
// newer), completing on a shared-memory barrier (mbarrier): one thread starts a copy of a whole
// row or tile, the block does other work, and every thread waits on the barrier before reading.
// A memory-bound kernel keeps several such stages in flight and the copy engine, not the threads,
// keeps the loads coming (see plugins/rms_norm for a row pipeline).
//
//   device (.cu, sm_90+)   StageBarrier: init (one thread, then initFence and a __syncthreads),
//                          expectBytes + bulkLoad (the thread that starts the copy), wait (readers)
//                          fenceBeforeBulkWrite (before a copy overwrites what threads read)
//   host (.cu)             bulkCopyCompiled(kernel)
//
// Rules of the engine: source, destination and size are multiples of 16 bytes. A barrier's phase
// completes when its one expected arrival (expectBytes) came and every byte it announced landed;
// the n-th wait on a barrier (n = 0, 1, ...) waits for phase parity n & 1.
// Before sm_90 the device functions compile to a trap: launch a kernel that uses them only where
// bulkCopyCompiled(kernel), which is false also where the driver compiles the kernel for a newer
// device from PTX of an older architecture.
#pragma once

#include "plugkit/cache_hints.h"
#include "plugkit/launch.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace plugkit
{

#if defined(__CUDACC__)

//! Whether `kernel`, as the current device runs it, was compiled for compute capability 9.0 or newer
//! (its PTX version: 90 also for sm_90 machine code): then its bulk copies are real instructions.
template <typename... Params>
bool bulkCopyCompiled(void (*kernel)(Params...))
{
    return kernelPtxVersion(kernel) >= 90;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define PLUGKIT_BULK_COPY_ASM(...) asm volatile(__VA_ARGS__)
#else
#define PLUGKIT_BULK_COPY_ASM(...) __trap()
#endif

__device__ __forceinline__ uint32_t sharedAddress(void const* p)
{
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

//! An mbarrier in shared memory that counts one arrival and the bytes of the copies announced to it.
struct StageBarrier
{
    uint64_t word;

    //! One thread, before any other use; then initFence() and a __syncthreads().
    __device__ __forceinline__ void init()
    {
        PLUGKIT_BULK_COPY_ASM("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(sharedAddress(&word)) : "memory");
    }

    //! Makes the barriers this thread initialized visible to the copy engine.
    __device__ static __forceinline__ void initFence()
    {
        PLUGKIT_BULK_COPY_ASM("fence.mbarrier_init.release.cluster;" ::: "memory");
    }

    //! The arrival of the current phase, announcing `bytes` still to land (by bulkLoad).
    __device__ __forceinline__ void expectBytes(uint32_t bytes)
    {
        PLUGKIT_BULK_COPY_ASM(
            "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(sharedAddress(&word)), "r"(bytes) : "memory");
    }

    //! Blocks the calling thread until the phase of this parity has completed.
    __device__ __forceinline__ void wait(uint32_t parity)
    {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        uint32_t done = 0;
        do
        {
            asm volatile(
                "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
                : "=r"(done)
                : "r"(sharedAddress(&word)), "r"(parity)
                : "memory");
        } while (done == 0);
#else
        __trap();
#endif
    }
};

//! Copy `bytes` from global `src` to shared `dst`; `barrier` counts them as they land. Evict-first
//! in L2 when EVICT_FIRST (data read once).
template <bool EVICT_FIRST = false>
__device__ __forceinline__ void bulkLoad(void* dst, void const* src, uint32_t bytes, StageBarrier& barrier)
{
    if constexpr (EVICT_FIRST)
    {
        PLUGKIT_BULK_COPY_ASM(
            "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(
                sharedAddress(dst)),
            "l"(src), "r"(bytes), "r"(sharedAddress(&barrier.word)), "l"(l2Policy<Evict::First>())
            : "memory");
    }
    else
    {
        PLUGKIT_BULK_COPY_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                                  sharedAddress(dst)),
            "l"(src), "r"(bytes), "r"(sharedAddress(&barrier.word))
            : "memory");
    }
}

//! In the thread that starts a copy into shared memory that threads read before (ordinary loads,
//! then a __syncthreads): orders those reads before the copy engine's writes.
__device__ __forceinline__ void fenceBeforeBulkWrite()
{
    PLUGKIT_BULK_COPY_ASM("fence.proxy.async.shared::cta;" ::: "memory");
}

#undef PLUGKIT_BULK_COPY_ASM

#endif // __CUDACC__

} // namespace plugkit
