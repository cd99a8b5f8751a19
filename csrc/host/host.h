// The plugin host: drives IPluginV3 plugins from a plugin library through the
// lifecycle TensorRT follows, without TensorRT. It supplies what TensorRT would:
// the logger (setLoggerFinder), a symbolic IExprBuilder for output shapes, an
// IPluginResourceContext with a GPU allocator and an error recorder.
// Everything but enqueue works without a GPU.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace plugkit::host
{

//! Any failure the host reports to Python: a bad library, a plugin call that failed, bad arguments.
class HostError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

//! Collects what plugins log; the host attaches the errors of a failed call to its exception.
class Logger final : public nvinfer1::ILogger
{
public:
    void log(Severity severity, char const* msg) noexcept override;
    //! Messages since the last take, oldest first, as (severity, text).
    std::vector<std::pair<int, std::string>> take();
    size_t size();
    //! The error messages logged since message number `since`, joined by newlines.
    std::string errorsSince(size_t since);

private:
    std::mutex mMutex;
    std::vector<std::pair<int, std::string>> mMessages;
};

Logger& logger();

//! A dimension expression: a constant, a named symbol, or an operation on two expressions.
class DimExpr final : public nvinfer1::IDimensionExpr
{
public:
    DimExpr(std::optional<int64_t> value, std::string text);
    //! The value of size-tensor output `outputIndex` (IExprBuilder::declareSizeTensor).
    DimExpr(int32_t outputIndex, DimExpr const& opt, DimExpr const& upper);
    std::string const& text() const noexcept
    {
        return mText;
    }
    std::optional<int64_t> value() const noexcept
    {
        return mValue;
    }
    //! For a size tensor: its output index, auto-tuning value and upper bound; -1 and null otherwise.
    int32_t sizeOutput() const noexcept
    {
        return mSizeOutput;
    }
    DimExpr const* opt() const noexcept
    {
        return mOpt;
    }
    DimExpr const* upper() const noexcept
    {
        return mUpper;
    }

private:
    struct Impl final : nvinfer1::apiv::VDimensionExpr
    {
        DimExpr const* self;
        bool isConstant() const override
        {
            return self->mValue.has_value();
        }
        int64_t getConstantValue() const override
        {
            return self->mValue.value_or(-1);
        }
        bool isSizeTensor() const override
        {
            return self->mSizeOutput >= 0;
        }
    };
    Impl mImplStorage;
    std::optional<int64_t> mValue;
    std::string mText;
    int32_t mSizeOutput{-1};
    DimExpr const* mOpt{nullptr};
    DimExpr const* mUpper{nullptr};
};

//! Builds dimension expressions; owns them for as long as it lives. Operations on
//! constants fold to constants, as TensorRT's builder does.
class ExprBuilder final : public nvinfer1::IExprBuilder
{
public:
    ExprBuilder();
    DimExpr const* makeConstant(int64_t value);
    DimExpr const* makeSymbol(std::string const& name);
    DimExpr const* makeOperation(nvinfer1::DimensionOperation op, DimExpr const& a, DimExpr const& b);
    DimExpr const* makeSizeTensor(int32_t outputIndex, DimExpr const& opt, DimExpr const& upper);

private:
    struct Impl final : nvinfer1::apiv::VExprBuilder
    {
        ExprBuilder* self;
        nvinfer1::IDimensionExpr const* constant(int64_t value) override;
        nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op,
            nvinfer1::IDimensionExpr const& first, nvinfer1::IDimensionExpr const& second) override;
        nvinfer1::IDimensionExpr const* declareSizeTensor(
            int32_t outputIndex, nvinfer1::IDimensionExpr const& opt, nvinfer1::IDimensionExpr const& upper) override;
    };
    DimExpr const* own(std::unique_ptr<DimExpr> e);
    Impl mImplStorage;
    std::deque<std::unique_ptr<DimExpr>> mExprs;
    std::vector<DimExpr const*> mSizeTensors;

public:
    //! The size tensors declared so far, in order.
    std::vector<DimExpr const*> const& sizeTensors() const noexcept
    {
        return mSizeTensors;
    }
};

//! A loaded plugin library (dlopen), closed when the last plugin made from it is gone.
class Library
{
public:
    explicit Library(std::string path);
    ~Library();
    Library(Library const&) = delete;
    Library& operator=(Library const&) = delete;

    std::string const& path() const noexcept
    {
        return mPath;
    }
    std::vector<nvinfer1::IPluginCreatorV3One*> const& creators() const noexcept
    {
        return mCreators;
    }
    //! Creators getCreators() returned that are not IPluginV3 creators, by interface kind.
    std::vector<std::string> const& skipped() const noexcept
    {
        return mSkipped;
    }
    std::optional<int32_t> tensorrtVersion() const noexcept
    {
        return mTensorRTVersion;
    }

private:
    std::string mPath;
    void* mHandle{nullptr};
    std::vector<nvinfer1::IPluginCreatorV3One*> mCreators;
    std::vector<std::string> mSkipped;
    std::optional<int32_t> mTensorRTVersion;
};

//! A raw plugin field as Python hands it over: name, PluginFieldType, bytes, element count.
struct RawField
{
    std::string name;
    nvinfer1::PluginFieldType type;
    std::string data;
    int32_t length;
};

//! Dims given by Python: each entry a constant or a symbol name.
using DimSpec = std::variant<int64_t, std::string>;

//! A data-dependent output dimension: the size-tensor output it is the value of, its opt and upper bound.
struct SizeTensorDim
{
    int32_t outputIndex;
    DimSpec opt;
    DimSpec upper;
};

//! An output dimension as the host reports it.
using OutputDim = std::variant<int64_t, std::string, SizeTensorDim>;

//! One tensor as the build phase sees it: dtype, format, and its shape range (min/opt/max).
struct TensorRange
{
    nvinfer1::DataType type;
    nvinfer1::TensorFormat format;
    std::vector<int64_t> min, opt, max;
};

//! One concrete tensor at runtime: dtype, format, dims, device address.
struct TensorValue
{
    nvinfer1::DataType type;
    nvinfer1::TensorFormat format;
    std::vector<int64_t> dims;
    uintptr_t address;
};

class Plugin
{
public:
    Plugin(std::shared_ptr<Library> library, nvinfer1::IPluginV3* plugin, std::shared_ptr<std::vector<std::string>> trace);
    ~Plugin();
    Plugin(Plugin const&) = delete;
    Plugin& operator=(Plugin const&) = delete;

    std::string name() const;
    std::string version() const;
    std::string pluginNamespace() const;

    int32_t nbOutputs();
    std::vector<nvinfer1::DataType> outputDataTypes(std::vector<nvinfer1::DataType> const& inputTypes);
    std::vector<std::vector<OutputDim>> outputShapes(std::vector<std::vector<DimSpec>> const& inputShapes);
    bool supportsFormatCombination(int32_t pos, std::vector<TensorRange> const& inOut, int32_t nbInputs);
    //! getFormatCombinationLimit: how many accepted format combinations the builder goes on to time.
    int32_t formatCombinationLimit();
    void configure(std::vector<TensorRange> const& inputs, std::vector<TensorRange> const& outputs);
    size_t workspaceSize(std::vector<TensorRange> const& inputs, std::vector<TensorRange> const& outputs);
    std::vector<int32_t> validTactics();
    void setTactic(int32_t tactic);
    std::vector<RawField> fieldsToSerialize();
    std::unique_ptr<Plugin> clone();
    std::unique_ptr<Plugin> attachToContext();
    void onShapeChange(std::vector<TensorValue> const& inputs, std::vector<TensorValue> const& outputs);
    void enqueue(std::vector<TensorValue> const& inputs, std::vector<TensorValue> const& outputs, uintptr_t workspace,
        uintptr_t stream);
    //! The CPU time, in nanoseconds, of each of `iterations` enqueue calls, timed around the call TensorRT
    //! makes and nothing else (descriptors and pointers are prepared once, before the first).
    std::vector<int64_t> enqueueCpuTimes(std::vector<TensorValue> const& inputs, std::vector<TensorValue> const& outputs,
        uintptr_t workspace, uintptr_t stream, int32_t iterations);
    //! A plugkit plugin's name for a tactic (IPluginInfo), or "" when it gives none.
    std::string tacticName(int32_t tactic);
    //! getTimingCacheID, or nullopt when the plugin returns nullptr (no timing caching).
    std::optional<std::string> timingCacheID();

    //! The plugin methods called so far on this plugin and the plugins made from it, in order.
    std::vector<std::string> const& trace() const
    {
        return *mTrace;
    }
    std::shared_ptr<std::vector<std::string>> traceHandle() const
    {
        return mTrace;
    }
    //! Errors recorded through the resource context's error recorder (runtime phase).
    std::vector<std::string> recordedErrors() const;

private:
    friend class BoundEnqueue;
    nvinfer1::IPluginV3OneBuild& build();
    nvinfer1::IPluginV3OneRuntime& runtime();
    void record(char const* method);
    //! Records `method` and calls `call(inputs, nbInputs, outputs, nbOutputs)`; a nonzero return fails
    //! with "<name>: <method> refused the shapes" and the errors the plugin logged meanwhile.
    template <typename Desc, typename Call>
    void callWithShapes(char const* method, std::vector<Desc> const& in, std::vector<Desc> const& out, Call&& call);

    std::shared_ptr<Library> mLibrary;
    nvinfer1::IPluginV3* mPlugin;
    nvinfer1::IPluginV3OneCore* mCore{nullptr};
    nvinfer1::IPluginV3OneBuild* mBuild{nullptr};
    nvinfer1::IPluginV3OneRuntime* mRuntime{nullptr};
    std::shared_ptr<std::vector<std::string>> mTrace;
    std::shared_ptr<class ResourceContext> mContext;
};

//! A runtime plugin's enqueue for one fixed set of tensor descriptors (dtypes, formats, dims), built
//! once, so that each call passes only device addresses, a workspace and a stream: the per-call path
//! of plugkit's torch ops. The caller keeps the plugin alive and calls from one thread at a time
//! (Python holds the GIL through a call), and has already called onShapeChange for these descriptors.
class BoundEnqueue
{
public:
    BoundEnqueue(Plugin& plugin, std::vector<TensorValue> const& inputs, std::vector<TensorValue> const& outputs);

    size_t nbInputs() const noexcept
    {
        return mInputs.size();
    }
    size_t nbOutputs() const noexcept
    {
        return mOutputs.size();
    }
    //! enqueue on `addresses` (inputs, then outputs; nbInputs() + nbOutputs() of them).
    void operator()(uintptr_t const* addresses, uintptr_t workspace, uintptr_t stream);

private:
    Plugin& mPlugin;
    nvinfer1::IPluginV3OneRuntime& mRuntime;
    std::vector<nvinfer1::PluginTensorDesc> mInputs, mOutputs;
    std::vector<void const*> mInputPtrs;
    std::vector<void*> mOutputPtrs;
    bool mRecorded{false};
};

//! Create a plugin through `creator` from raw fields, in the build or runtime phase.
std::unique_ptr<Plugin> createPlugin(std::shared_ptr<Library> const& library, nvinfer1::IPluginCreatorV3One* creator,
    std::string const& layerName, std::vector<RawField> const& fields, nvinfer1::TensorRTPhase phase);

//! Number of CUDA devices, 0 when there is no driver or device.
int32_t cudaDeviceCount();

} // namespace plugkit::host
