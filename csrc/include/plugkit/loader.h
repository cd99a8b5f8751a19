// Loading plugkit plugin libraries into TensorRT, for inference programs.
//
//     auto runtime = std::unique_ptr<nvinfer1::IRuntime>(nvinfer1::createInferRuntime(logger));
//     plugkit::loadPlugins(runtime->getPluginRegistry(), {"libplugkit_plugins.so"});
//
// Before TensorRT sees a library, loadPlugins checks what otherwise fails late
// or obscurely: that the program's TensorRT headers (NV_TENSORRT_VERSION) and
// the libnvinfer it runs with (getInferLibVersion()) are compatible, that the
// file exists and is a shared library exporting getCreators, and that the
// TensorRT headers the plugin library was compiled against (its exported
// plugkit_tensorrt_version) fit the runtime. Each failure throws
// plugkit::LoaderError whose message names the file, both versions and the fix.
//
// The rule, the same as plugkit's Python side: equal major versions, and
// headers no newer (major.minor) than the runtime; older headers of the same
// major version work.
//
// This header is for applications (it may throw); plugin code never includes it.
// Link: libnvinfer (getInferLibVersion) and libdl.
#pragma once

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace plugkit
{

//! A plugin library that cannot be used, with a message that names the fix.
class LoaderError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

//! A TensorRT version in the integer form of NV_TENSORRT_VERSION / getInferLibVersion():
//! major * 10000 + minor * 100 + patch.
struct TensorRTVersion
{
    int32_t major{0};
    int32_t minor{0};
    int32_t patch{0};

    static constexpr TensorRTVersion fromInt(int32_t v) noexcept
    {
        return TensorRTVersion{v / 10000, (v / 100) % 100, v % 100};
    }
    std::string str() const
    {
        return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
    }
};

//! The TensorRT headers this translation unit is compiled against.
constexpr int32_t kHeaderTensorRTVersion = NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH;

enum class VersionMatch : int32_t
{
    kSAME = 0,          //!< same major.minor
    kOLDER_HEADERS = 1, //!< same major, headers older than the runtime: compatible
    kNEWER_HEADERS = 2, //!< headers newer than the runtime: the code may call what the runtime lacks
    kOTHER_MAJOR = 3,   //!< different major versions: ABI differs
};

//! Compare compiled-against headers with a runtime; both in NV_TENSORRT_VERSION form.
constexpr VersionMatch compareVersions(int32_t compiled, int32_t runtime) noexcept
{
    TensorRTVersion const c = TensorRTVersion::fromInt(compiled);
    TensorRTVersion const r = TensorRTVersion::fromInt(runtime);
    if (c.major != r.major)
    {
        return VersionMatch::kOTHER_MAJOR;
    }
    if (c.minor > r.minor)
    {
        return VersionMatch::kNEWER_HEADERS;
    }
    return c.minor < r.minor ? VersionMatch::kOLDER_HEADERS : VersionMatch::kSAME;
}

constexpr bool isCompatible(VersionMatch match) noexcept
{
    return match == VersionMatch::kSAME || match == VersionMatch::kOLDER_HEADERS;
}

//! The message for an incompatible pair; `what` names the compiled thing.
inline std::string describeMismatch(std::string const& what, int32_t compiled, int32_t runtime)
{
    std::string const c = TensorRTVersion::fromInt(compiled).str();
    std::string const r = TensorRTVersion::fromInt(runtime).str();
    switch (compareVersions(compiled, runtime))
    {
    case VersionMatch::kOTHER_MAJOR:
        return what + " was compiled against TensorRT " + c + " headers, but the TensorRT runtime (libnvinfer) is "
            + r + ": the major versions differ and so does the ABI. Rebuild it against TensorRT "
            + std::to_string(TensorRTVersion::fromInt(runtime).major)
            + ".x headers (-DTensorRT_ROOT=...), or run with the TensorRT it was built for (LD_LIBRARY_PATH).";
    case VersionMatch::kNEWER_HEADERS:
        return what + " was compiled against TensorRT " + c + " headers, newer than the TensorRT runtime " + r
            + ": it may call interfaces this runtime lacks. Upgrade TensorRT, or rebuild against " + r + " headers.";
    default: return what + ": TensorRT " + c + " headers, runtime " + r + ": compatible.";
    }
}

//! The TensorRT runtime version (libnvinfer's getInferLibVersion()).
inline int32_t runtimeTensorRTVersion() noexcept
{
    return getInferLibVersion();
}

//! Throws LoaderError when this program's headers do not fit the libnvinfer it runs with.
inline void checkTensorRTVersion()
{
    int32_t const runtime = runtimeTensorRTVersion();
    if (!isCompatible(compareVersions(kHeaderTensorRTVersion, runtime)))
    {
        throw LoaderError(describeMismatch("this program", kHeaderTensorRTVersion, runtime));
    }
}

namespace detail
{
//! Checks a plugin library file before TensorRT opens it; returns the TensorRT version its
//! plugins were compiled against (0 when it does not say: not a plugkit library).
inline int32_t inspectPluginLibrary(std::string const& path, int32_t runtime)
{
    struct stat info
    {
    };
    if (::stat(path.c_str(), &info) != 0)
    {
        throw LoaderError("plugin library " + path
            + " does not exist (build it with: cmake -S . -B build && cmake --build build, or pass its full path)");
    }
    if (S_ISDIR(info.st_mode))
    {
        throw LoaderError("plugin library " + path + " is a directory; pass the .so file");
    }
    void* handle = ::dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (handle == nullptr)
    {
        char const* error = ::dlerror();
        throw LoaderError("cannot open plugin library " + path + ": " + (error ? error : "unknown dlopen error")
            + " (a missing dependency shows in `ldd " + path + "`; is LD_LIBRARY_PATH set for TensorRT and CUDA?)");
    }
    bool const hasEntryPoint = ::dlsym(handle, "getCreators") != nullptr;
    using VersionFn = int32_t (*)();
    auto const versionFn = reinterpret_cast<VersionFn>(::dlsym(handle, "plugkit_tensorrt_version"));
    int32_t const compiled = versionFn ? versionFn() : 0;
    ::dlclose(handle);
    if (!hasEntryPoint)
    {
        throw LoaderError("plugin library " + path
            + " exports no getCreators(), the entry point TensorRT loads IPluginV3 plugins through; "
              "build it with plugkit_add_plugin_library()");
    }
    if (compiled != 0 && !isCompatible(compareVersions(compiled, runtime)))
    {
        throw LoaderError(describeMismatch("plugin library " + path, compiled, runtime));
    }
    return compiled;
}
} // namespace detail

//! A library loadPlugins registered; `handle` is TensorRT's, for IPluginRegistry::deregisterLibrary.
struct LoadedPluginLibrary
{
    std::string path;
    nvinfer1::IPluginRegistry::PluginLibraryHandle handle{nullptr};
    int32_t compiledTensorRTVersion{0}; //!< 0 when the library does not report it
};

//! Register the plugin creators of each library with `registry` (e.g. runtime->getPluginRegistry(),
//! or getPluginRegistry() for the global one). Checks versions and files first; throws LoaderError.
inline std::vector<LoadedPluginLibrary> loadPlugins(
    nvinfer1::IPluginRegistry& registry, std::vector<std::string> const& paths)
{
    checkTensorRTVersion();
    int32_t const runtime = runtimeTensorRTVersion();
    std::vector<LoadedPluginLibrary> loaded;
    loaded.reserve(paths.size());
    for (std::string const& path : paths)
    {
        int32_t const compiled = detail::inspectPluginLibrary(path, runtime);
        nvinfer1::IPluginRegistry::PluginLibraryHandle handle = registry.loadLibrary(path.c_str());
        if (handle == nullptr)
        {
            throw LoaderError("TensorRT could not load plugin library " + path
                + " (see the TensorRT log above): a plugin with the same name, version and namespace may "
                  "already be registered, for example by loading the library twice");
        }
        loaded.push_back(LoadedPluginLibrary{path, handle, compiled});
    }
    return loaded;
}

} // namespace plugkit
