// A plugin library that records what a TensorRT builder asks of plugins: it loads the real library
// (PLUGKIT_RECORDED_LIBRARY), wraps each of its creators and every plugin they make, forwards every
// call and appends one line per call to PLUGKIT_CALL_LOG: "<plugin id> <method> [details]".
// tests/test_engine_rtx.py builds it with g++ and compares the log with the lifecycle the plugin
// host drives. Built against the TensorRT 10 headers, like the plugin libraries it wraps.
#include <NvInferRuntime.h>

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace
{
using namespace nvinfer1;

std::mutex gLogMutex;
std::atomic<int> gNextId{0};

void record(int id, std::string const& line)
{
    char const* path = std::getenv("PLUGKIT_CALL_LOG");
    if (!path)
    {
        return;
    }
    std::lock_guard<std::mutex> lock(gLogMutex);
    if (FILE* f = std::fopen(path, "a"))
    {
        std::fprintf(f, "%d %s\n", id, line.c_str());
        std::fclose(f);
    }
}

std::string describeFields(PluginFieldCollection const* fc)
{
    std::ostringstream out;
    for (int32_t i = 0; fc && i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        out << (i ? " " : "") << f.name << "=";
        for (int32_t j = 0; f.data && j < f.length; ++j)
        {
            if (f.type == PluginFieldType::kCHAR)
            {
                out << static_cast<char const*>(f.data)[j];
                continue;
            }
            out << (j ? "," : "");
            switch (f.type)
            {
            case PluginFieldType::kFLOAT32: out << static_cast<float const*>(f.data)[j]; break;
            case PluginFieldType::kFLOAT64: out << static_cast<double const*>(f.data)[j]; break;
            case PluginFieldType::kINT32: out << static_cast<int32_t const*>(f.data)[j]; break;
            case PluginFieldType::kINT64: out << static_cast<int64_t const*>(f.data)[j]; break;
            default: out << "?"; break;
            }
        }
    }
    return out.str();
}

class RecordingPlugin : public IPluginV3, public IPluginV3OneCore, public IPluginV3OneBuild, public IPluginV3OneRuntime
{
public:
    explicit RecordingPlugin(IPluginV3* inner)
        : mInner(inner)
        , mId(gNextId++)
        , mCore(static_cast<IPluginV3OneCore*>(inner->getCapabilityInterface(PluginCapabilityType::kCORE)))
        , mBuild(static_cast<IPluginV3OneBuild*>(inner->getCapabilityInterface(PluginCapabilityType::kBUILD)))
        , mRuntime(static_cast<IPluginV3OneRuntime*>(inner->getCapabilityInterface(PluginCapabilityType::kRUNTIME)))
    {
    }
    ~RecordingPlugin() override
    {
        record(mId, "destroy");
        delete mInner;
    }
    int id() const
    {
        return mId;
    }

    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return mBuild ? static_cast<IPluginV3OneBuild*>(this) : nullptr;
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    IPluginV3* clone() noexcept override
    {
        IPluginV3* copy = mInner->clone();
        auto* wrapped = copy ? new RecordingPlugin(copy) : nullptr;
        record(mId, "clone -> " + std::to_string(wrapped ? wrapped->id() : -1));
        return wrapped;
    }

    char const* getPluginName() const noexcept override
    {
        return mCore->getPluginName();
    }
    char const* getPluginVersion() const noexcept override
    {
        return mCore->getPluginVersion();
    }
    char const* getPluginNamespace() const noexcept override
    {
        return mCore->getPluginNamespace();
    }

    int32_t getNbOutputs() const noexcept override
    {
        record(mId, "getNbOutputs");
        return mBuild->getNbOutputs();
    }
    int32_t getOutputDataTypes(
        DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept override
    {
        record(mId, "getOutputDataTypes");
        return mBuild->getOutputDataTypes(outputTypes, nbOutputs, inputTypes, nbInputs);
    }
    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& exprBuilder) noexcept override
    {
        record(mId, "getOutputShapes");
        return mBuild->getOutputShapes(
            inputs, nbInputs, shapeInputs, nbShapeInputs, outputs, nbOutputs, exprBuilder);
    }
    bool supportsFormatCombination(
        int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override
    {
        bool const ok = mBuild->supportsFormatCombination(pos, inOut, nbInputs, nbOutputs);
        record(mId, "supportsFormatCombination " + std::to_string(pos) + " " + (ok ? "yes" : "no"));
        return ok;
    }
    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override
    {
        record(mId, "configurePlugin");
        return mBuild->configurePlugin(in, nbInputs, out, nbOutputs);
    }
    size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override
    {
        record(mId, "getWorkspaceSize");
        return mBuild->getWorkspaceSize(inputs, nbInputs, outputs, nbOutputs);
    }
    int32_t getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept override
    {
        record(mId, "getValidTactics");
        return mBuild->getValidTactics(tactics, nbTactics);
    }
    int32_t getNbTactics() noexcept override
    {
        record(mId, "getNbTactics");
        return mBuild->getNbTactics();
    }
    char const* getTimingCacheID() noexcept override
    {
        record(mId, "getTimingCacheID");
        return mBuild->getTimingCacheID();
    }
    int32_t getFormatCombinationLimit() noexcept override
    {
        record(mId, "getFormatCombinationLimit");
        return mBuild->getFormatCombinationLimit();
    }
    char const* getMetadataString() noexcept override
    {
        record(mId, "getMetadataString");
        return mBuild->getMetadataString();
    }

    int32_t setTactic(int32_t tactic) noexcept override
    {
        record(mId, "setTactic " + std::to_string(tactic));
        return mRuntime->setTactic(tactic);
    }
    int32_t onShapeChange(
        PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept override
    {
        record(mId, "onShapeChange");
        return mRuntime->onShapeChange(in, nbInputs, out, nbOutputs);
    }
    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc, void const* const* inputs,
        void* const* outputs, void* workspace, cudaStream_t stream) noexcept override
    {
        record(mId, "enqueue");
        return mRuntime->enqueue(inputDesc, outputDesc, inputs, outputs, workspace, stream);
    }
    IPluginV3* attachToContext(IPluginResourceContext* context) noexcept override
    {
        IPluginV3* attached = mRuntime->attachToContext(context);
        auto* wrapped = attached ? new RecordingPlugin(attached) : nullptr;
        record(mId, "attachToContext -> " + std::to_string(wrapped ? wrapped->id() : -1));
        return wrapped;
    }
    PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        PluginFieldCollection const* fc = mRuntime->getFieldsToSerialize();
        record(mId, "getFieldsToSerialize " + describeFields(fc));
        return fc;
    }

private:
    IPluginV3* mInner;
    int mId;
    IPluginV3OneCore* mCore;
    IPluginV3OneBuild* mBuild;
    IPluginV3OneRuntime* mRuntime;
};

class RecordingCreator : public IPluginCreatorV3One
{
public:
    explicit RecordingCreator(IPluginCreatorV3One* inner)
        : mInner(inner)
    {
    }
    IPluginV3* createPlugin(char const* name, PluginFieldCollection const* fc, TensorRTPhase phase) noexcept override
    {
        IPluginV3* plugin = mInner->createPlugin(name, fc, phase);
        auto* wrapped = plugin ? new RecordingPlugin(plugin) : nullptr;
        record(wrapped ? wrapped->id() : -1,
            std::string("createPlugin ") + (phase == TensorRTPhase::kBUILD ? "kBUILD " : "kRUNTIME ")
                + describeFields(fc));
        return wrapped;
    }
    PluginFieldCollection const* getFieldNames() noexcept override
    {
        return mInner->getFieldNames();
    }
    char const* getPluginName() const noexcept override
    {
        return mInner->getPluginName();
    }
    char const* getPluginVersion() const noexcept override
    {
        return mInner->getPluginVersion();
    }
    char const* getPluginNamespace() const noexcept override
    {
        return mInner->getPluginNamespace();
    }

private:
    IPluginCreatorV3One* mInner;
};

std::vector<std::unique_ptr<RecordingCreator>>& creators()
{
    static std::vector<std::unique_ptr<RecordingCreator>> wrapped;
    return wrapped;
}
std::vector<IPluginCreatorInterface*>& creatorList()
{
    static std::vector<IPluginCreatorInterface*> list;
    return list;
}

void* recordedLibrary()
{
    static void* handle = [] {
        char const* path = std::getenv("PLUGKIT_RECORDED_LIBRARY");
        return path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    }();
    return handle;
}

} // namespace

// TensorRT's loadLibrary wants both entry points of a V3 plugin library.
extern "C" void setLoggerFinder(ILoggerFinder* finder)
{
    using SetLoggerFinder = void (*)(ILoggerFinder*);
    if (void* handle = recordedLibrary())
    {
        if (auto set = reinterpret_cast<SetLoggerFinder>(dlsym(handle, "setLoggerFinder")))
        {
            set(finder);
        }
    }
}

extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    nbCreators = 0;
    if (creatorList().empty())
    {
        char const* path = std::getenv("PLUGKIT_RECORDED_LIBRARY");
        void* handle = recordedLibrary();
        using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
        auto get = handle ? reinterpret_cast<GetCreators>(dlsym(handle, "getCreators")) : nullptr;
        if (!get)
        {
            std::fprintf(stderr, "call_recorder: cannot load getCreators from PLUGKIT_RECORDED_LIBRARY=%s\n",
                path ? path : "(unset)");
            return nullptr;
        }
        int32_t n = 0;
        IPluginCreatorInterface* const* inner = get(n);
        for (int32_t i = 0; i < n; ++i)
        {
            if (std::string(inner[i]->getInterfaceInfo().kind) != "PLUGIN CREATOR_V3ONE")
            {
                continue;
            }
            creators().push_back(std::make_unique<RecordingCreator>(static_cast<IPluginCreatorV3One*>(inner[i])));
            creatorList().push_back(creators().back().get());
        }
    }
    nbCreators = static_cast<int32_t>(creatorList().size());
    return creatorList().data();
}
