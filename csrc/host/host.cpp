#include "host.h"

#include "plugkit/fields.h"
#include "plugkit/formats.h"
#include "plugkit/plugin.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>
#include <sys/stat.h>

namespace plugkit::host
{

// ---------------------------------------------------------------- logging

void Logger::log(Severity severity, char const* msg) noexcept
{
    try
    {
        std::lock_guard<std::mutex> lock(mMutex);
        mMessages.emplace_back(static_cast<int>(severity), msg ? msg : "");
    }
    catch (...)
    {
    }
}

std::vector<std::pair<int, std::string>> Logger::take()
{
    std::lock_guard<std::mutex> lock(mMutex);
    return std::exchange(mMessages, {});
}

size_t Logger::size()
{
    std::lock_guard<std::mutex> lock(mMutex);
    return mMessages.size();
}

std::string Logger::errorsSince(size_t since)
{
    std::lock_guard<std::mutex> lock(mMutex);
    std::string out;
    for (size_t i = std::min(since, mMessages.size()); i < mMessages.size(); ++i)
    {
        if (mMessages[i].first <= static_cast<int>(Severity::kERROR))
        {
            out += (out.empty() ? "" : "\n") + mMessages[i].second;
        }
    }
    return out;
}

Logger& logger()
{
    static Logger instance;
    return instance;
}

namespace
{

class LoggerFinder final : public nvinfer1::ILoggerFinder
{
public:
    nvinfer1::ILogger* findLogger() override
    {
        return &logger();
    }
};

LoggerFinder& loggerFinder()
{
    static LoggerFinder instance;
    return instance;
}

//! Throw HostError for a failed plugin call, with the errors the plugin logged during it.
[[noreturn]] void fail(std::string const& what, size_t logMark)
{
    std::string const errors = logger().errorsSince(logMark);
    throw HostError(what + (errors.empty() ? " (the plugin logged no error)" : ":\n" + errors));
}

nvinfer1::Dims toDims(std::vector<int64_t> const& v, char const* what)
{
    if (v.size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS))
    {
        throw HostError(std::string(what) + ": rank " + std::to_string(v.size()) + " exceeds TensorRT's maximum of "
            + std::to_string(nvinfer1::Dims::MAX_DIMS));
    }
    nvinfer1::Dims d{};
    d.nbDims = static_cast<int32_t>(v.size());
    std::copy(v.begin(), v.end(), d.d);
    return d;
}

// What TensorRT passes to configurePlugin/getWorkspaceSize: desc.dims has -1 where min != max.
nvinfer1::DynamicPluginTensorDesc toDynamicDesc(TensorRange const& t)
{
    if (t.min.size() != t.opt.size() || t.min.size() != t.max.size())
    {
        throw HostError("a tensor's min, opt and max shapes must have the same rank");
    }
    nvinfer1::DynamicPluginTensorDesc d{};
    d.min = toDims(t.min, "min shape");
    d.opt = toDims(t.opt, "opt shape");
    d.max = toDims(t.max, "max shape");
    d.desc.dims = d.opt;
    for (int32_t i = 0; i < d.desc.dims.nbDims; ++i)
    {
        if (d.min.d[i] > d.opt.d[i] || d.opt.d[i] > d.max.d[i])
        {
            throw HostError("shape range must satisfy min <= opt <= max in every dimension");
        }
        if (d.min.d[i] != d.max.d[i])
        {
            d.desc.dims.d[i] = -1;
        }
    }
    d.desc.type = t.type;
    d.desc.format = t.format;
    d.desc.scale = 1.0F;
    return d;
}

std::vector<nvinfer1::DynamicPluginTensorDesc> toDynamicDescs(std::vector<TensorRange> const& v)
{
    std::vector<nvinfer1::DynamicPluginTensorDesc> out;
    out.reserve(v.size());
    for (auto const& t : v)
    {
        out.push_back(toDynamicDesc(t));
    }
    return out;
}

std::vector<nvinfer1::PluginTensorDesc> toDescs(std::vector<TensorValue> const& v)
{
    std::vector<nvinfer1::PluginTensorDesc> out;
    for (auto const& t : v)
    {
        nvinfer1::PluginTensorDesc d{};
        d.dims = toDims(t.dims, "shape");
        d.type = t.type;
        d.format = t.format;
        d.scale = 1.0F;
        out.push_back(d);
    }
    return out;
}

//! The device pointers of tensors, as enqueue takes them.
template <typename Pointer>
std::vector<Pointer> addresses(std::vector<TensorValue> const& tensors)
{
    std::vector<Pointer> pointers;
    pointers.reserve(tensors.size());
    for (auto const& t : tensors)
    {
        pointers.push_back(reinterpret_cast<Pointer>(t.address));
    }
    return pointers;
}

template <typename Capability>
Capability* capability(nvinfer1::IPluginV3* plugin, nvinfer1::PluginCapabilityType type, char const* kind)
{
    nvinfer1::IPluginCapability* c = plugin->getCapabilityInterface(type);
    if (c == nullptr)
    {
        return nullptr;
    }
    nvinfer1::InterfaceInfo const info = c->getInterfaceInfo();
    if (info.kind == nullptr || std::strcmp(info.kind, kind) != 0)
    {
        throw HostError(std::string("plugin capability is '") + (info.kind ? info.kind : "?") + "', expected '" + kind + "'");
    }
    return static_cast<Capability*>(c);
}

} // namespace

// ---------------------------------------------------------------- expressions

DimExpr::DimExpr(std::optional<int64_t> value, std::string text)
    : mValue(value)
    , mText(std::move(text))
{
    mImplStorage.self = this;
    mImpl = &mImplStorage;
}

DimExpr::DimExpr(int32_t outputIndex, DimExpr const& opt, DimExpr const& upper)
    : mText("size" + std::to_string(outputIndex))
    , mSizeOutput(outputIndex)
    , mOpt(&opt)
    , mUpper(&upper)
{
    mImplStorage.self = this;
    mImpl = &mImplStorage;
}

ExprBuilder::ExprBuilder()
{
    mImplStorage.self = this;
    mImpl = &mImplStorage;
}

DimExpr const* ExprBuilder::own(std::unique_ptr<DimExpr> e)
{
    mExprs.push_back(std::move(e));
    return mExprs.back().get();
}

DimExpr const* ExprBuilder::makeConstant(int64_t value)
{
    return own(std::make_unique<DimExpr>(value, std::to_string(value)));
}

DimExpr const* ExprBuilder::makeSymbol(std::string const& name)
{
    return own(std::make_unique<DimExpr>(std::nullopt, name));
}

namespace
{
int64_t floorDiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
} // namespace

DimExpr const* ExprBuilder::makeOperation(nvinfer1::DimensionOperation op, DimExpr const& a, DimExpr const& b)
{
    using Op = nvinfer1::DimensionOperation;
    if (a.value() && b.value())
    {
        int64_t const x = *a.value();
        int64_t const y = *b.value();
        if ((op == Op::kFLOOR_DIV || op == Op::kCEIL_DIV) && y == 0)
        {
            throw HostError("division by zero in a shape expression");
        }
        switch (op)
        {
        case Op::kSUM: return makeConstant(x + y);
        case Op::kPROD: return makeConstant(x * y);
        case Op::kMAX: return makeConstant(std::max(x, y));
        case Op::kMIN: return makeConstant(std::min(x, y));
        case Op::kSUB: return makeConstant(x - y);
        case Op::kEQUAL: return makeConstant(x == y ? 1 : 0);
        case Op::kLESS: return makeConstant(x < y ? 1 : 0);
        case Op::kFLOOR_DIV: return makeConstant(floorDiv(x, y));
        case Op::kCEIL_DIV: return makeConstant(-floorDiv(-x, y));
        }
    }
    // Identities keep symbolic shapes readable: N*1 is N, N+0 is N.
    if ((op == Op::kPROD && b.value() == 1) || ((op == Op::kSUM || op == Op::kSUB) && b.value() == 0)
        || (op == Op::kFLOOR_DIV && b.value() == 1) || (op == Op::kCEIL_DIV && b.value() == 1))
    {
        return &a;
    }
    if ((op == Op::kPROD && a.value() == 1) || (op == Op::kSUM && a.value() == 0))
    {
        return &b;
    }
    char const* name = nullptr;
    switch (op)
    {
    case Op::kSUM: name = " + "; break;
    case Op::kPROD: name = " * "; break;
    case Op::kSUB: name = " - "; break;
    case Op::kFLOOR_DIV: name = " // "; break;
    case Op::kCEIL_DIV: name = " ceildiv "; break;
    case Op::kMAX: return own(std::make_unique<DimExpr>(std::nullopt, "max(" + a.text() + ", " + b.text() + ")"));
    case Op::kMIN: return own(std::make_unique<DimExpr>(std::nullopt, "min(" + a.text() + ", " + b.text() + ")"));
    case Op::kEQUAL: name = " == "; break;
    case Op::kLESS: name = " < "; break;
    }
    if (name == nullptr)
    {
        throw HostError("unknown DimensionOperation " + std::to_string(static_cast<int32_t>(op)));
    }
    return own(std::make_unique<DimExpr>(std::nullopt, "(" + a.text() + name + b.text() + ")"));
}

DimExpr const* ExprBuilder::makeSizeTensor(int32_t outputIndex, DimExpr const& opt, DimExpr const& upper)
{
    // TensorRT's rule: opt must not depend on a size tensor (nor, here, may the bound).
    if (opt.sizeOutput() >= 0 || upper.sizeOutput() >= 0)
    {
        throw HostError("declareSizeTensor(" + std::to_string(outputIndex)
            + "): opt and upper must be computed from input dimensions, not from another size tensor");
    }
    auto const* e = own(std::make_unique<DimExpr>(outputIndex, opt, upper));
    mSizeTensors.push_back(e);
    return e;
}

// TensorRT's IExprBuilder entry points; the plugin's noexcept methods call these.
nvinfer1::IDimensionExpr const* ExprBuilder::Impl::constant(int64_t value)
{
    return self->makeConstant(value);
}

nvinfer1::IDimensionExpr const* ExprBuilder::Impl::operation(
    nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first, nvinfer1::IDimensionExpr const& second)
{
    try
    {
        return self->makeOperation(op, static_cast<DimExpr const&>(first), static_cast<DimExpr const&>(second));
    }
    catch (std::exception const& e)
    {
        logger().log(nvinfer1::ILogger::Severity::kERROR, e.what());
        return nullptr;
    }
}

nvinfer1::IDimensionExpr const* ExprBuilder::Impl::declareSizeTensor(
    int32_t outputIndex, nvinfer1::IDimensionExpr const& opt, nvinfer1::IDimensionExpr const& upper)
{
    try
    {
        return self->makeSizeTensor(outputIndex, static_cast<DimExpr const&>(opt), static_cast<DimExpr const&>(upper));
    }
    catch (std::exception const& e)
    {
        logger().log(nvinfer1::ILogger::Severity::kERROR, e.what());
        return nullptr;
    }
}

// ---------------------------------------------------------------- resources

namespace
{
class GpuAllocator final : public nvinfer1::IGpuAsyncAllocator
{
public:
    void* allocateAsync(uint64_t size, uint64_t, nvinfer1::AllocatorFlags, cudaStream_t stream) noexcept override
    {
        void* p = nullptr;
        return cudaMallocAsync(&p, size, stream) == cudaSuccess ? p : nullptr;
    }
    bool deallocateAsync(void* memory, cudaStream_t stream) noexcept override
    {
        return cudaFreeAsync(memory, stream) == cudaSuccess;
    }
};

class ErrorRecorder final : public nvinfer1::IErrorRecorder
{
public:
    int32_t getNbErrors() const noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        return static_cast<int32_t>(mErrors.size());
    }
    nvinfer1::ErrorCode getErrorCode(int32_t i) const noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        return i >= 0 && i < static_cast<int32_t>(mErrors.size()) ? mErrors[i].first : nvinfer1::ErrorCode::kINVALID_ARGUMENT;
    }
    ErrorDesc getErrorDesc(int32_t i) const noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        return i >= 0 && i < static_cast<int32_t>(mErrors.size()) ? mErrors[i].second.c_str() : "";
    }
    bool hasOverflowed() const noexcept override
    {
        return false;
    }
    void clear() noexcept override
    {
        std::lock_guard<std::mutex> lock(mMutex);
        mErrors.clear();
    }
    bool reportError(nvinfer1::ErrorCode code, ErrorDesc desc) noexcept override
    {
        try
        {
            std::lock_guard<std::mutex> lock(mMutex);
            mErrors.emplace_back(code, desc ? desc : "");
        }
        catch (...)
        {
        }
        return true; // an error is never fatal to the host: it raises in Python instead
    }
    RefCount incRefCount() noexcept override
    {
        return ++mRefs;
    }
    RefCount decRefCount() noexcept override
    {
        return --mRefs;
    }

private:
    mutable std::mutex mMutex;
    std::deque<std::pair<nvinfer1::ErrorCode, std::string>> mErrors; // deque: descriptions stay put
    RefCount mRefs{0};
};
} // namespace

class ResourceContext final : public nvinfer1::IPluginResourceContext
{
public:
    nvinfer1::IGpuAllocator* getGpuAllocator() const noexcept override
    {
        return &mAllocator;
    }
    nvinfer1::IErrorRecorder* getErrorRecorder() const noexcept override
    {
        return &mRecorder;
    }
    ErrorRecorder& recorder() const noexcept
    {
        return mRecorder;
    }

private:
    mutable GpuAllocator mAllocator;
    mutable ErrorRecorder mRecorder;
};

// ---------------------------------------------------------------- library

Library::Library(std::string path)
    : mPath(std::move(path))
{
    struct stat st{};
    if (stat(mPath.c_str(), &st) != 0)
    {
        throw HostError("plugin library '" + mPath + "' does not exist; build it with `python -m plugkit build`");
    }
    if (!S_ISREG(st.st_mode))
    {
        throw HostError("'" + mPath + "' is not a file, so not a plugin library");
    }
    mHandle = dlopen(mPath.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (mHandle == nullptr)
    {
        char const* err = dlerror();
        throw HostError("cannot load '" + mPath + "' as a shared library: " + (err ? err : "unknown dlopen error"));
    }
    using GetCreators = nvinfer1::IPluginCreatorInterface* const* (*) (int32_t&);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(mHandle, "getCreators"));
    if (getCreators == nullptr)
    {
        dlclose(mHandle);
        throw HostError("'" + mPath + "' exports no getCreators(), so it is not an IPluginV3 plugin library "
            "(TensorRT's loadLibrary would refuse it too)");
    }
    using SetLoggerFinder = void (*)(nvinfer1::ILoggerFinder*);
    if (auto setLoggerFinder = reinterpret_cast<SetLoggerFinder>(dlsym(mHandle, "setLoggerFinder")))
    {
        setLoggerFinder(&loggerFinder());
    }
    using Version = int32_t (*)();
    if (auto version = reinterpret_cast<Version>(dlsym(mHandle, "plugkit_tensorrt_version")))
    {
        mTensorRTVersion = version();
    }
    int32_t count = 0;
    nvinfer1::IPluginCreatorInterface* const* list = getCreators(count);
    if (count < 0 || (count > 0 && list == nullptr))
    {
        dlclose(mHandle);
        throw HostError("'" + mPath + "': getCreators() returned an invalid list");
    }
    for (int32_t i = 0; i < count; ++i)
    {
        nvinfer1::IPluginCreatorInterface* c = list[i];
        if (c == nullptr)
        {
            mSkipped.emplace_back("null creator #" + std::to_string(i));
            continue;
        }
        nvinfer1::InterfaceInfo const info = c->getInterfaceInfo();
        if (info.kind && std::strcmp(info.kind, "PLUGIN CREATOR_V3ONE") == 0)
        {
            mCreators.push_back(static_cast<nvinfer1::IPluginCreatorV3One*>(c));
        }
        else
        {
            mSkipped.emplace_back(info.kind ? info.kind : "unknown interface");
        }
    }
}

Library::~Library()
{
    if (mHandle)
    {
        dlclose(mHandle);
    }
}

// ---------------------------------------------------------------- plugin

std::unique_ptr<Plugin> createPlugin(std::shared_ptr<Library> const& library, nvinfer1::IPluginCreatorV3One* creator,
    std::string const& layerName, std::vector<RawField> const& fields, nvinfer1::TensorRTPhase phase)
{
    std::vector<nvinfer1::PluginField> pluginFields;
    for (auto const& f : fields)
    {
        pluginFields.emplace_back(f.name.c_str(), f.data.data(), f.type, f.length);
    }
    nvinfer1::PluginFieldCollection fc{static_cast<int32_t>(pluginFields.size()), pluginFields.data()};
    size_t const mark = logger().size();
    nvinfer1::IPluginV3* plugin = creator->createPlugin(layerName.c_str(), &fc, phase);
    std::string const what = std::string(creator->getPluginName()) + " v" + creator->getPluginVersion()
        + ": createPlugin(" + (phase == nvinfer1::TensorRTPhase::kBUILD ? "kBUILD" : "kRUNTIME") + ") failed";
    if (plugin == nullptr)
    {
        fail(what, mark);
    }
    auto trace = std::make_shared<std::vector<std::string>>();
    trace->push_back(phase == nvinfer1::TensorRTPhase::kBUILD ? "createPlugin(kBUILD)" : "createPlugin(kRUNTIME)");
    return std::make_unique<Plugin>(library, plugin, std::move(trace));
}

Plugin::Plugin(std::shared_ptr<Library> library, nvinfer1::IPluginV3* plugin, std::shared_ptr<std::vector<std::string>> trace)
    : mLibrary(std::move(library))
    , mPlugin(plugin)
    , mTrace(std::move(trace))
{
    try
    {
        mCore = capability<nvinfer1::IPluginV3OneCore>(plugin, nvinfer1::PluginCapabilityType::kCORE, "PLUGIN_V3ONE_CORE");
        mBuild = capability<nvinfer1::IPluginV3OneBuild>(plugin, nvinfer1::PluginCapabilityType::kBUILD, "PLUGIN_V3ONE_BUILD");
        mRuntime = capability<nvinfer1::IPluginV3OneRuntime>(
            plugin, nvinfer1::PluginCapabilityType::kRUNTIME, "PLUGIN_V3ONE_RUNTIME");
    }
    catch (...)
    {
        delete mPlugin;
        throw;
    }
    if (mCore == nullptr)
    {
        delete mPlugin;
        throw HostError("plugin has no core capability (IPluginV3OneCore), which every IPluginV3 must have");
    }
}

Plugin::~Plugin()
{
    delete mPlugin; // deleted by the library's own (virtual) destructor
}

std::string Plugin::name() const
{
    return mCore->getPluginName();
}
std::string Plugin::version() const
{
    return mCore->getPluginVersion();
}
std::string Plugin::pluginNamespace() const
{
    char const* ns = mCore->getPluginNamespace();
    return ns ? ns : "";
}

void Plugin::record(char const* method)
{
    mTrace->emplace_back(method);
}

nvinfer1::IPluginV3OneBuild& Plugin::build()
{
    if (mBuild == nullptr)
    {
        throw HostError(name() + ": this plugin object has no build capability");
    }
    return *mBuild;
}

nvinfer1::IPluginV3OneRuntime& Plugin::runtime()
{
    if (mRuntime == nullptr)
    {
        throw HostError(name() + ": this plugin object has no runtime capability");
    }
    return *mRuntime;
}

int32_t Plugin::nbOutputs()
{
    record("getNbOutputs");
    int32_t const n = build().getNbOutputs();
    if (n < 0)
    {
        throw HostError(name() + ": getNbOutputs returned " + std::to_string(n));
    }
    return n;
}

std::vector<nvinfer1::DataType> Plugin::outputDataTypes(std::vector<nvinfer1::DataType> const& inputTypes)
{
    int32_t const n = nbOutputs();
    std::vector<nvinfer1::DataType> out(static_cast<size_t>(n), nvinfer1::DataType::kFLOAT);
    size_t const mark = logger().size();
    record("getOutputDataTypes");
    if (build().getOutputDataTypes(out.data(), n, inputTypes.data(), static_cast<int32_t>(inputTypes.size())) != 0)
    {
        fail(name() + ": getOutputDataTypes failed", mark);
    }
    return out;
}

namespace
{
DimSpec toSpec(DimExpr const& e)
{
    return e.value() ? DimSpec{*e.value()} : DimSpec{e.text()};
}
} // namespace

std::vector<std::vector<OutputDim>> Plugin::outputShapes(std::vector<std::vector<DimSpec>> const& inputShapes)
{
    int32_t const n = nbOutputs();
    ExprBuilder exprs;
    std::vector<nvinfer1::DimsExprs> inputs(inputShapes.size());
    for (size_t i = 0; i < inputShapes.size(); ++i)
    {
        if (inputShapes[i].size() > static_cast<size_t>(nvinfer1::Dims::MAX_DIMS))
        {
            throw HostError("input " + std::to_string(i) + " has rank above TensorRT's maximum");
        }
        inputs[i].nbDims = static_cast<int32_t>(inputShapes[i].size());
        for (size_t j = 0; j < inputShapes[i].size(); ++j)
        {
            DimSpec const& d = inputShapes[i][j];
            inputs[i].d[j] = std::holds_alternative<int64_t>(d) ? exprs.makeConstant(std::get<int64_t>(d))
                                                                 : exprs.makeSymbol(std::get<std::string>(d));
        }
    }
    std::vector<nvinfer1::DimsExprs> outputs(static_cast<size_t>(n));
    for (auto& o : outputs)
    {
        o.nbDims = -1; // so an output the plugin leaves unset is caught below
    }
    size_t const mark = logger().size();
    record("getOutputShapes");
    if (build().getOutputShapes(inputs.data(), static_cast<int32_t>(inputs.size()), nullptr, 0, outputs.data(), n, exprs)
        != 0)
    {
        fail(name() + ": getOutputShapes failed", mark);
    }
    for (DimExpr const* size : exprs.sizeTensors())
    {
        int32_t const k = size->sizeOutput();
        if (k < 0 || k >= n || outputs[k].nbDims != 0)
        {
            throw HostError(name() + ": getOutputShapes declared output " + std::to_string(k)
                + " a size tensor; TensorRT needs it to be an output of the plugin with nbDims = 0");
        }
    }
    std::vector<std::vector<OutputDim>> result;
    for (int32_t i = 0; i < n; ++i)
    {
        if (outputs[i].nbDims < 0 || outputs[i].nbDims > nvinfer1::Dims::MAX_DIMS)
        {
            throw HostError(name() + ": getOutputShapes left output " + std::to_string(i) + " without a valid rank");
        }
        std::vector<OutputDim> dims;
        for (int32_t j = 0; j < outputs[i].nbDims; ++j)
        {
            auto const* e = static_cast<DimExpr const*>(outputs[i].d[j]);
            if (e == nullptr)
            {
                throw HostError(name() + ": getOutputShapes left dimension " + std::to_string(j) + " of output "
                    + std::to_string(i) + " unset");
            }
            if (e->sizeOutput() >= 0)
            {
                dims.emplace_back(SizeTensorDim{e->sizeOutput(), toSpec(*e->opt()), toSpec(*e->upper())});
            }
            else if (e->value())
            {
                dims.emplace_back(*e->value());
            }
            else
            {
                dims.emplace_back(e->text());
            }
        }
        result.push_back(std::move(dims));
    }
    return result;
}

bool Plugin::supportsFormatCombination(int32_t pos, std::vector<TensorRange> const& inOut, int32_t nbInputs)
{
    if (pos < 0 || pos >= static_cast<int32_t>(inOut.size()) || nbInputs < 0 || nbInputs > static_cast<int32_t>(inOut.size()))
    {
        throw HostError("position " + std::to_string(pos) + " is outside the " + std::to_string(inOut.size()) + " tensors given");
    }
    auto const descs = toDynamicDescs(inOut);
    record("supportsFormatCombination");
    return build().supportsFormatCombination(pos, descs.data(), nbInputs, static_cast<int32_t>(inOut.size()) - nbInputs);
}

int32_t Plugin::formatCombinationLimit()
{
    record("getFormatCombinationLimit");
    int32_t const limit = build().getFormatCombinationLimit();
    if (limit <= 0)
    {
        throw HostError(name() + ": getFormatCombinationLimit returned " + std::to_string(limit));
    }
    return limit;
}

template <typename Desc, typename Call>
void Plugin::callWithShapes(char const* method, std::vector<Desc> const& in, std::vector<Desc> const& out, Call&& call)
{
    size_t const mark = logger().size();
    record(method);
    if (call(in.data(), static_cast<int32_t>(in.size()), out.data(), static_cast<int32_t>(out.size())) != 0)
    {
        fail(name() + ": " + method + " refused the shapes", mark);
    }
}

void Plugin::configure(std::vector<TensorRange> const& inputs, std::vector<TensorRange> const& outputs)
{
    auto const in = toDynamicDescs(inputs);
    auto const out = toDynamicDescs(outputs);
    callWithShapes("configurePlugin", in, out, [this](auto... args) { return build().configurePlugin(args...); });
}

size_t Plugin::workspaceSize(std::vector<TensorRange> const& inputs, std::vector<TensorRange> const& outputs)
{
    auto const in = toDynamicDescs(inputs);
    auto const out = toDynamicDescs(outputs);
    record("getWorkspaceSize");
    return build().getWorkspaceSize(in.data(), static_cast<int32_t>(in.size()), out.data(), static_cast<int32_t>(out.size()));
}

std::vector<int32_t> Plugin::validTactics()
{
    record("getNbTactics");
    int32_t const n = build().getNbTactics();
    if (n < 0)
    {
        throw HostError(name() + ": getNbTactics returned " + std::to_string(n));
    }
    std::vector<int32_t> tactics(static_cast<size_t>(n));
    if (n > 0)
    {
        size_t const mark = logger().size();
        record("getValidTactics");
        if (build().getValidTactics(tactics.data(), n) != 0)
        {
            fail(name() + ": getValidTactics failed", mark);
        }
    }
    return tactics;
}

void Plugin::setTactic(int32_t tactic)
{
    size_t const mark = logger().size();
    record("setTactic");
    if (runtime().setTactic(tactic) != 0)
    {
        fail(name() + ": setTactic(" + std::to_string(tactic) + ") failed", mark);
    }
}

std::vector<RawField> Plugin::fieldsToSerialize()
{
    size_t const mark = logger().size();
    record("getFieldsToSerialize");
    nvinfer1::PluginFieldCollection const* fc = runtime().getFieldsToSerialize();
    if (fc == nullptr)
    {
        fail(name() + ": getFieldsToSerialize failed", mark);
    }
    std::vector<RawField> out;
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& f = fc->fields[i];
        size_t const bytes = plugkit::fieldElementSize(f.type);
        if (bytes == 0) // sub-byte types, and values outside the enum
        {
            throw HostError(name() + ": field '" + f.name + "' has a type the host cannot copy");
        }
        out.push_back(RawField{f.name ? f.name : "", f.type,
            std::string(static_cast<char const*>(f.data), f.data ? bytes * static_cast<size_t>(f.length) : 0), f.length});
    }
    return out;
}

std::unique_ptr<Plugin> Plugin::clone()
{
    size_t const mark = logger().size();
    record("clone");
    nvinfer1::IPluginV3* copy = mPlugin->clone();
    if (copy == nullptr)
    {
        fail(name() + ": clone failed", mark);
    }
    auto result = std::make_unique<Plugin>(mLibrary, copy, mTrace);
    result->mContext = mContext;
    return result;
}

std::unique_ptr<Plugin> Plugin::attachToContext()
{
    auto context = std::make_shared<ResourceContext>();
    size_t const mark = logger().size();
    record("attachToContext");
    nvinfer1::IPluginV3* attached = runtime().attachToContext(context.get());
    if (attached == nullptr)
    {
        fail(name() + ": attachToContext failed", mark);
    }
    auto result = std::make_unique<Plugin>(mLibrary, attached, mTrace);
    result->mContext = std::move(context);
    return result;
}

std::vector<std::string> Plugin::recordedErrors() const
{
    std::vector<std::string> out;
    if (mContext)
    {
        for (int32_t i = 0; i < mContext->recorder().getNbErrors(); ++i)
        {
            out.emplace_back(mContext->recorder().getErrorDesc(i));
        }
    }
    return out;
}

void Plugin::onShapeChange(std::vector<TensorValue> const& inputs, std::vector<TensorValue> const& outputs)
{
    auto const in = toDescs(inputs);
    auto const out = toDescs(outputs);
    callWithShapes("onShapeChange", in, out, [this](auto... args) { return runtime().onShapeChange(args...); });
}

void Plugin::enqueue(std::vector<TensorValue> const& inputs, std::vector<TensorValue> const& outputs, uintptr_t workspace,
    uintptr_t stream)
{
    if (cudaDeviceCount() == 0)
    {
        throw HostError(name() + ": enqueue needs a CUDA device and none is visible; everything else the host does "
            "(shapes, dtypes, fields, serialization) works without one");
    }
    auto const in = toDescs(inputs);
    auto const out = toDescs(outputs);
    auto const inPtrs = addresses<void const*>(inputs);
    auto const outPtrs = addresses<void*>(outputs);
    size_t const mark = logger().size();
    record("enqueue");
    if (runtime().enqueue(in.data(), out.data(), inPtrs.data(), outPtrs.data(), reinterpret_cast<void*>(workspace),
            reinterpret_cast<cudaStream_t>(stream))
        != 0)
    {
        fail(name() + ": enqueue failed", mark);
    }
}

std::vector<int64_t> Plugin::enqueueCpuTimes(std::vector<TensorValue> const& inputs,
    std::vector<TensorValue> const& outputs, uintptr_t workspace, uintptr_t stream, int32_t iterations)
{
    if (cudaDeviceCount() == 0)
    {
        throw HostError(name() + ": timing enqueue needs a CUDA device and none is visible");
    }
    auto const in = toDescs(inputs);
    auto const out = toDescs(outputs);
    auto const inPtrs = addresses<void const*>(inputs);
    auto const outPtrs = addresses<void*>(outputs);
    nvinfer1::IPluginV3OneRuntime& rt = runtime();
    std::vector<int64_t> times;
    times.reserve(static_cast<size_t>(std::max(iterations, 0)));
    size_t const mark = logger().size();
    record("enqueue");
    for (int32_t i = 0; i < iterations; ++i)
    {
        auto const start = std::chrono::steady_clock::now();
        int32_t const rc = rt.enqueue(in.data(), out.data(), inPtrs.data(), outPtrs.data(),
            reinterpret_cast<void*>(workspace), reinterpret_cast<cudaStream_t>(stream));
        auto const end = std::chrono::steady_clock::now();
        if (rc != 0)
        {
            fail(name() + ": enqueue failed", mark);
        }
        times.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count());
    }
    return times;
}

BoundEnqueue::BoundEnqueue(Plugin& plugin, std::vector<TensorValue> const& inputs, std::vector<TensorValue> const& outputs)
    : mPlugin(plugin)
    , mRuntime(plugin.runtime())
    , mInputs(toDescs(inputs))
    , mOutputs(toDescs(outputs))
    , mInputPtrs(inputs.size())
    , mOutputPtrs(outputs.size())
{
    if (cudaDeviceCount() == 0)
    {
        throw HostError(plugin.name() + ": enqueue needs a CUDA device and none is visible");
    }
}

void BoundEnqueue::operator()(uintptr_t const* addresses, uintptr_t workspace, uintptr_t stream)
{
    for (size_t i = 0; i < mInputPtrs.size(); ++i)
    {
        mInputPtrs[i] = reinterpret_cast<void const*>(addresses[i]);
    }
    for (size_t i = 0; i < mOutputPtrs.size(); ++i)
    {
        mOutputPtrs[i] = reinterpret_cast<void*>(addresses[mInputPtrs.size() + i]);
    }
    if (!mRecorded) // the trace says "enqueue" once, not once per call of a long-lived op
    {
        mPlugin.record("enqueue");
        mRecorded = true;
    }
    size_t const mark = logger().size();
    if (mRuntime.enqueue(mInputs.data(), mOutputs.data(), mInputPtrs.data(), mOutputPtrs.data(),
            reinterpret_cast<void*>(workspace), reinterpret_cast<cudaStream_t>(stream))
        != 0)
    {
        fail(mPlugin.name() + ": enqueue failed", mark);
    }
}

std::string Plugin::tacticName(int32_t tactic)
{
    // Only plugkit plugins answer kInfoCapability; any other plugin gets the default name.
    nvinfer1::IPluginCapability* c = mPlugin->getCapabilityInterface(plugkit::kInfoCapability);
    if (c == nullptr)
    {
        return "";
    }
    nvinfer1::InterfaceInfo const info = c->getInterfaceInfo();
    if (info.kind == nullptr || std::strcmp(info.kind, "PLUGKIT_PLUGIN_INFO") != 0 || info.major != 1)
    {
        return "";
    }
    char const* n = static_cast<plugkit::IPluginInfo*>(c)->getTacticName(tactic);
    return n ? n : "";
}

std::optional<std::string> Plugin::timingCacheID()
{
    record("getTimingCacheID");
    char const* id = build().getTimingCacheID();
    return id ? std::optional<std::string>(id) : std::nullopt;
}

int32_t cudaDeviceCount()
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess)
    {
        cudaGetLastError(); // clear the sticky "no device/driver" error
        return 0;
    }
    return count;
}

} // namespace plugkit::host
