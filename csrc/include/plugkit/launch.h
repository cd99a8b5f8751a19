// Kernel launches with programmatic dependent launch (PDL, compute capability 9.0 and newer).
//
// A kernel launched with plugkit::launchKernel may be scheduled while the kernel before it on the
// stream is still finishing: its blocks become resident and run their prologue, then wait in
// waitForPrerequisites() until that kernel has completed and its writes are visible. The
// launch latency between the two kernels (a microsecond or more, most of a short kernel's time)
// then overlaps the earlier kernel's tail. allowDependents() lets the kernel after this one,
// when it too is launched with PDL, start the same way.
//
//   host (.cu)   launchKernel(kernel, grid, block, sharedBytes, stream, args...)
//                dependentLaunchEnabled(), deviceAttribute(attribute), kernelPtxVersion(kernel),
//                allowDynamicSharedMemory(kernel, bytes), residentBlocks(kernel, threads, bytes)
//   device       waitForPrerequisites(), allowDependents()
//
// The host queries here are answered once per device (plugkit/device_cache.h) and cached after:
// an enqueue that calls them on every launch costs a cudaGetDevice and a map lookup each.
//
// The contract for a kernel launched with plugkit::launchKernel: every thread calls
// waitForPrerequisites() before its first read or write of global memory (the kernel before
// may still be writing its inputs, or reading the memory of its outputs), and no thread
// returns before it (a grid in which no thread waited could complete before the kernel ahead
// of the one it follows). Both calls compile to nothing before sm_90 and do nothing in a
// kernel launched without PDL. Set PLUGKIT_PDL=0 in the environment to launch without PDL.
#pragma once

#include "plugkit/device_cache.h"
#include "plugkit/status.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <tuple>
#include <utility>

namespace plugkit
{

//! An attribute of the current device (cudaDevAttrMultiProcessorCount, ...); asked once per device.
inline int deviceAttribute(cudaDeviceAttr attribute)
{
    static DeviceCache<int, int> cache;
    return cache.get(static_cast<int>(attribute), [attribute](int device) {
        int value = 0;
        PLUGKIT_CUDA_CHECK(cudaDeviceGetAttribute(&value, attribute, device));
        return value;
    });
}

#if defined(__CUDACC__)
//! A kernel as a cache key.
template <typename... Params>
void const* kernelKey(void (*kernel)(Params...))
{
    return reinterpret_cast<void const*>(kernel);
}

//! `kernel`'s function attributes on the current device (registers, PTX version...); asked once per device.
template <typename... Params>
cudaFuncAttributes kernelAttributes(void (*kernel)(Params...))
{
    static DeviceCache<void const*, cudaFuncAttributes> cache;
    return cache.get(kernelKey(kernel), [kernel](int) {
        cudaFuncAttributes attributes{};
        PLUGKIT_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
        return attributes;
    });
}

//! The PTX version `kernel` was compiled from as the current device runs it (90 for sm_90 machine
//! code too; lower where the driver compiles PTX of an older architecture for a newer device).
template <typename... Params>
int kernelPtxVersion(void (*kernel)(Params...))
{
    return kernelAttributes(kernel).ptxVersion;
}

//! Let `kernel` launch with `bytes` of dynamic shared memory on the current device
//! (cudaFuncAttributeMaxDynamicSharedMemorySize, needed above 48 KB): set once per device, kernel
//! and size, and never lowered (a smaller size asked later must not fail a larger launch).
template <typename... Params>
void allowDynamicSharedMemory(void (*kernel)(Params...), int bytes)
{
    static DeviceCache<std::pair<void const*, int>, bool> cache;
    cache.get({kernelKey(kernel), bytes}, [kernel, bytes](int) {
        static std::mutex raising; // read, compare and set as one step
        std::lock_guard<std::mutex> lock(raising);
        cudaFuncAttributes now{};
        PLUGKIT_CUDA_CHECK(cudaFuncGetAttributes(&now, kernel));
        if (now.maxDynamicSharedSizeBytes < bytes)
        {
            PLUGKIT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
        }
        return true;
    });
}

//! Blocks of `threads` threads and `sharedBytes` of dynamic shared memory that a multiprocessor of
//! the current device holds at once (cudaOccupancyMaxActiveBlocksPerMultiprocessor); asked once
//! per device, kernel and launch shape.
template <typename... Params>
int residentBlocks(void (*kernel)(Params...), int threads, size_t sharedBytes)
{
    static DeviceCache<std::tuple<void const*, int, size_t>, int> cache;
    return cache.get({kernelKey(kernel), threads, sharedBytes}, [&](int) {
        int blocks = 0;
        PLUGKIT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, threads, sharedBytes));
        return blocks;
    });
}
#endif

//! Whether launchKernel() uses PDL on the current device: compute capability 9.0 or newer, a driver
//! that captures PDL launches into CUDA graphs (CUDA 12.3), and PLUGKIT_PDL not "0". The setting is
//! read at every launch, so that a graph captured with PLUGKIT_PDL=0 holds plain launches; the
//! driver version once a process, the compute capability once a device.
inline bool dependentLaunchEnabled()
{
    char const* setting = std::getenv("PLUGKIT_PDL");
    if (setting != nullptr && std::strcmp(setting, "0") == 0)
    {
        return false;
    }
    static int const driver = [] {
        int version = 0;
        PLUGKIT_CUDA_CHECK(cudaDriverGetVersion(&version));
        return version;
    }();
    return driver >= 12030 && deviceAttribute(cudaDevAttrComputeCapabilityMajor) >= 9;
}

#if defined(__CUDACC__)

//! Launch `kernel<<<grid, block, sharedBytes, stream>>>(args...)`, with PDL where
//! dependentLaunchEnabled(); throws plugkit::Error when the launch fails. The kernel must keep
//! the contract at the top of this file.
template <typename... Params, typename... Args>
void launchKernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t sharedBytes, cudaStream_t stream, Args&&... args)
{
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = sharedBytes;
    config.stream = stream;
    cudaLaunchAttribute attribute{};
    if (dependentLaunchEnabled())
    {
        attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attribute.val.programmaticStreamSerializationAllowed = 1;
        config.attrs = &attribute;
        config.numAttrs = 1;
    }
    PLUGKIT_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Params>(std::forward<Args>(args))...));
}

//! Wait until the kernel before this one on the stream has completed and its writes are visible
//! (griddepcontrol.wait); returns at once in a kernel launched without PDL.
__device__ __forceinline__ void waitForPrerequisites()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

//! Let the next kernel on the stream, if launched with PDL, be scheduled once every block of
//! this one has called this or exited (griddepcontrol.launch_dependents). It still waits for
//! this kernel to complete before touching memory, so this may come before this kernel's work.
__device__ __forceinline__ void allowDependents()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

#endif // __CUDACC__

} // namespace plugkit
