// Triton kernels compiled ahead of time and embedded in the plugin library.
//
// `plugkit build` runs `python -m plugkit.triton_aot` on a plugin folder's kernel.py: it compiles
// the @triton.jit kernel for every architecture of PLUGKIT_CUDA_ARCHITECTURES, every dtype of the
// op and every autotune config, and writes a C++ source holding the cubins as byte arrays plus a
// header with the launch (<op>_triton.h). This file is what that generated code runs on.
//
// Loading: CUDA's context-independent libraries (cudaLibraryLoadData, CUDA >= 12.0), the runtime
// API's form of cuLibraryLoadData: a cubin is loaded once per process on its first launch, the
// driver puts it into every context that launches it, and it is unloaded when the plugin library
// is unloaded. No libcuda link: the library still loads on a machine without a GPU driver.
#pragma once

#include "plugkit/launch.h"
#include "plugkit/status.h"

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <sstream>
#include <string>

namespace plugkit
{

//! One cubin of a Triton kernel, as plugkit.triton_aot wrote it.
struct TritonBinary
{
    int32_t arch;                 //!< compute capability it runs on, e.g. 80 (sm_80..sm_8x) or 90 (sm_90a)
    nvinfer1::DataType type;      //!< the dtype of the tensors it was compiled for
    int32_t config;               //!< the tactic: 1 + the index of its autotune config
    bool aligned;                 //!< compiled for 16-byte aligned tensors and sizes that are multiples of 16
    char const* data;             //!< the cubin
    size_t size;
    char const* symbol;           //!< the kernel's name in the cubin
    int32_t threads;              //!< num_warps * 32
    int32_t sharedBytes;          //!< dynamic shared memory of one block
};

//! The cubins of one kernel; a namespace-scope object of the generated source, so its destructor
//! unloads what was loaded when the library is unloaded.
class TritonKernel
{
public:
    static constexpr int kMaxBinaries = 512;
    static constexpr int kMaxDevices = 64;

    TritonKernel(char const* name, TritonBinary const* binaries, int count) noexcept
        : mName(name)
        , mBinaries(binaries)
        , mCount(count < kMaxBinaries ? count : kMaxBinaries)
    {
    }

    TritonKernel(TritonKernel const&) = delete;
    TritonKernel& operator=(TritonKernel const&) = delete;

    ~TritonKernel()
    {
        for (int i = 0; i < mCount; ++i)
        {
            if (mLoaded[i].library != nullptr)
            {
                cudaLibraryUnload(mLoaded[i].library); // at process exit the runtime may be gone: ignore errors
            }
        }
    }

    //! Launch the cubin for the current device, `type`, `config` and alignment on `stream`.
    //! `args` points at each kernel argument that is not a tl.constexpr, in order.
    void launch(nvinfer1::DataType type, int32_t config, bool aligned, int64_t const (&grid)[3], void** args,
        cudaStream_t stream) const
    {
        PLUGKIT_CHECK(grid[0] <= 0x7fffffff && grid[1] <= 65535 && grid[2] <= 65535,
            mName << ": grid (" << grid[0] << ", " << grid[1] << ", " << grid[2]
                  << ") is larger than CUDA allows (2^31-1, 65535, 65535)");
        if (grid[0] <= 0 || grid[1] <= 0 || grid[2] <= 0)
        {
            return; // nothing to do (an empty tensor)
        }
        int device = 0;
        PLUGKIT_CUDA_CHECK(cudaGetDevice(&device));
        int const capability = deviceAttribute(cudaDevAttrComputeCapabilityMajor) * 10
            + deviceAttribute(cudaDevAttrComputeCapabilityMinor); // asked once per device
        int const index = pick(type, config, aligned, capability);
        TritonBinary const& binary = mBinaries[index];
        cudaKernel_t const kernel = load(index, device);
        PLUGKIT_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<void const*>(kernel),
            dim3(static_cast<unsigned>(grid[0]), static_cast<unsigned>(grid[1]), static_cast<unsigned>(grid[2])),
            dim3(static_cast<unsigned>(binary.threads)), args, static_cast<size_t>(binary.sharedBytes), stream));
    }

private:
    struct Loaded
    {
        cudaLibrary_t library{nullptr};
        cudaKernel_t kernel{nullptr};
        uint64_t sharedSetOn{0}; //!< devices (bits) whose shared-memory limit was raised for this kernel
    };

    //! The binary for the device: the highest architecture of its major version not above it
    //! (SASS of sm_80 runs on sm_86 and sm_89; Triton's sm_90 cubins are sm_90a, for 9.0 only).
    int pick(nvinfer1::DataType type, int32_t config, bool aligned, int cc) const
    {
        int best = -1;
        std::ostringstream built;
        for (int i = 0; i < mCount; ++i)
        {
            TritonBinary const& b = mBinaries[i];
            if (b.type != type || b.config != config || b.aligned != aligned)
            {
                continue;
            }
            built << (built.tellp() > 0 ? ", " : "") << "sm_" << b.arch;
            if (b.arch / 10 == cc / 10 && b.arch <= cc && (best < 0 || b.arch > mBinaries[best].arch))
            {
                best = i;
            }
        }
        PLUGKIT_CHECK(built.tellp() > 0,
            mName << ": no cubin for dtype " << static_cast<int>(type) << ", config " << config
                  << " (the plugin asked for a dtype or tactic the kernel was not compiled for)");
        PLUGKIT_CHECK(best >= 0,
            mName << ": no cubin for this GPU (sm_" << cc << "); the library holds " << built.str()
                  << ". Rebuild with PLUGKIT_CUDA_ARCHITECTURES including " << cc);
        return best;
    }

    cudaKernel_t load(int index, int device) const
    {
        std::lock_guard<std::mutex> lock(mMutex);
        Loaded& loaded = mLoaded[index];
        TritonBinary const& binary = mBinaries[index];
        if (loaded.library == nullptr)
        {
            PLUGKIT_CUDA_CHECK(cudaLibraryLoadData(
                &loaded.library, binary.data, nullptr, nullptr, 0, nullptr, nullptr, 0));
            cudaError_t const status = cudaLibraryGetKernel(&loaded.kernel, loaded.library, binary.symbol);
            if (status != cudaSuccess)
            {
                cudaLibraryUnload(loaded.library);
                loaded.library = nullptr;
                PLUGKIT_CUDA_CHECK(status);
            }
        }
        // Blocks may use more than 48 KiB of shared memory only when asked for, per device.
        uint64_t const bit = device < kMaxDevices ? uint64_t{1} << device : 0;
        if (binary.sharedBytes > 48 * 1024 && (bit == 0 || (loaded.sharedSetOn & bit) == 0))
        {
            PLUGKIT_CUDA_CHECK(cudaKernelSetAttributeForDevice(
                loaded.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, binary.sharedBytes, device));
            loaded.sharedSetOn |= bit;
        }
        return loaded.kernel;
    }

    char const* mName;
    TritonBinary const* mBinaries;
    int mCount;
    mutable std::mutex mMutex;
    mutable Loaded mLoaded[kMaxBinaries]{};
};

//! What generated launches compute their arguments and grids with (plugkit.triton_aot).
namespace triton
{
inline int64_t numel(nvinfer1::Dims const& d) noexcept
{
    int64_t n = 1;
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        n *= d.d[i];
    }
    return n;
}

//! All dims but the last, multiplied (1 for a scalar).
inline int64_t rows(nvinfer1::Dims const& d) noexcept
{
    int64_t n = 1;
    for (int32_t i = 0; i + 1 < d.nbDims; ++i)
    {
        n *= d.d[i];
    }
    return n;
}

inline int64_t cols(nvinfer1::Dims const& d) noexcept
{
    return d.nbDims == 0 ? 1 : d.d[d.nbDims - 1];
}

constexpr int64_t cdiv(int64_t a, int64_t b) noexcept
{
    return (a + b - 1) / b;
}

inline bool aligned(void const* p) noexcept
{
    return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}
} // namespace triton

//! Whether `input` broadcasts to `full` by repeating whole: after its leading 1s, its dims are
//! `full`'s last dims (a bias [C] to [N, C], a scalar [1] to anything). Element i of `full` then
//! reads element i % volume(input) of it, which is all a simple Triton kernel needs to know.
inline bool broadcastsAsSuffix(nvinfer1::Dims const& input, nvinfer1::Dims const& full) noexcept
{
    if (input.nbDims > full.nbDims)
    {
        return false; // numpy would broadcast `full` up to the input's rank: a bigger output
    }
    int32_t first = 0;
    while (first < input.nbDims && input.d[first] == 1)
    {
        ++first;
    }
    int32_t const rest = input.nbDims - first;
    if (rest > full.nbDims)
    {
        return false;
    }
    for (int32_t i = 0; i < rest; ++i)
    {
        if (input.d[first + i] != full.d[full.nbDims - rest + i])
        {
            return false;
        }
    }
    return true;
}

} // namespace plugkit
