// The IPluginV3 boilerplate, written once.
//
// A plugin derives from plugkit::Plugin<Self, Attrs> and supplies what is
// particular to its op (see plugins/rms_norm/rms_norm_plugin.cpp):
//
//   required
//     static constexpr char const* kName, kVersion;       // plugin type and version
//     static constexpr int32_t kNbInputs, kNbOutputs;
//     static constexpr plugkit::IoRule kIoRules[];         // dtype/format rules, one per position
//     void enqueue(plugkit::Tensors const&, void* workspace, cudaStream_t) const;
//   optional (the base's defaults shown)
//     static constexpr char const* kNamespace = "plugkit";
//     static constexpr int32_t kNbOptionalInputs = 0;   // trailing inputs a network may leave out
//     void outputShapes(DimsExprs const* in, DimsExprs* out, IExprBuilder&) const;  // out[i] = in[0]
//     void outputDataTypes(DataType const* in, DataType* out) const;            // from kIoRules
//     void checkShapes(Dims const* in, Dims const* out) const;                  // accept all
//     size_t workspaceSize(DynamicPluginTensorDesc const* in, DynamicPluginTensorDesc const* out) const;  // 0
//     std::vector<int32_t> tactics() const;          // kernel variants, positive values; {} (TensorRT's default 0)
//     char const* tacticName(int32_t tactic) const;  // for bench tables; nullptr: "tactic N"
//
// enqueue reads the tactic TensorRT chose with tactic(): the value of setTactic, or
// tactics()[0] when TensorRT set the default 0 (or nothing). TensorRT times every
// value of tactics() at build time and stores its pick in the engine, so the
// serialized fields do not carry it.
//
// Data-dependent output shapes are TensorRT's own: in outputShapes, declare the size
// output with exprBuilder.declareSizeTensor(index, opt, upper), give it nbDims = 0 and
// dtype INT32, and use the returned expression in the data outputs' dims.
//
// Hooks report errors by throwing plugkit::Error (PLUGKIT_CHECK). The methods
// TensorRT calls catch them, log them with the plugin and layer name, report
// them to the runtime's error recorder, and return TensorRT's failure value.
#pragma once

#include "plugkit/fields.h"
#include "plugkit/formats.h"
#include "plugkit/status.h"

#include <NvInferRuntime.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace plugkit
{

//! What a plugkit plugin tells tools beyond IPluginV3: the plugin host asks for it with
//! getCapabilityInterface(kInfoCapability); TensorRT never asks for that value.
class IPluginInfo : public nvinfer1::IPluginCapability
{
public:
    nvinfer1::InterfaceInfo getInterfaceInfo() const noexcept override
    {
        return nvinfer1::InterfaceInfo{"PLUGKIT_PLUGIN_INFO", 1, 0};
    }
    //! A short name of a tactic, or nullptr when the plugin names none.
    virtual char const* getTacticName(int32_t tactic) const noexcept = 0;
};

constexpr auto kInfoCapability = static_cast<nvinfer1::PluginCapabilityType>(0x706b6974); // "pkit"

//! The tensors of one enqueue: descriptors and device pointers, inputs then outputs.
struct Tensors
{
    nvinfer1::PluginTensorDesc const* inputDesc;
    nvinfer1::PluginTensorDesc const* outputDesc;
    void const* const* inputs;
    void* const* outputs;
};

template <typename Self, typename AttrsT>
class Plugin : public nvinfer1::IPluginV3,
               public nvinfer1::IPluginV3OneCore,
               public nvinfer1::IPluginV3OneBuild,
               public nvinfer1::IPluginV3OneRuntime,
               public IPluginInfo
{
public:
    using Attrs = AttrsT;
    static constexpr char const* kNamespace = "plugkit";
    //! How many of the last inputs a network may leave out. TensorRT passes every method the
    //! input count of the layer (an ONNX node without its optional trailing inputs has fewer);
    //! kIoRules still has a rule for every input, and outputs follow the inputs present.
    static constexpr int32_t kNbOptionalInputs = 0;

    Plugin(std::string layerName, Attrs attrs)
        : mLayerName(std::move(layerName))
        , mAttrs(std::move(attrs))
    {
    }

    Attrs const& attrs() const noexcept
    {
        return mAttrs;
    }

    //! The inputs this layer has (kNbInputs less the optional ones left out), as TensorRT last
    //! told it: every build call and onShapeChange pass the count; enqueue does not, so it is kept.
    int32_t nbInputs() const noexcept
    {
        return mNbInputs < 0 ? Self::kNbInputs : mNbInputs;
    }

    //! "RMSNorm 'layer_name'" for messages.
    std::string who() const
    {
        return std::string(Self::kName) + (mLayerName.empty() ? "" : " '" + mLayerName + "'");
    }

    // ---- default hooks; Self hides those it needs to change ----

    void outputShapes(nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder&) const
    {
        for (int32_t i = 0; i < Self::kNbOutputs; ++i)
        {
            outputs[i] = inputs[0];
        }
    }

    void outputDataTypes(nvinfer1::DataType const* inputTypes, nvinfer1::DataType* outputTypes) const
    {
        for (int32_t i = 0; i < Self::kNbOutputs; ++i)
        {
            IoRule const& rule = Self::kIoRules[Self::kNbInputs + i];
            if (rule.sameAs >= 0 && rule.sameAs < Self::kNbInputs)
            {
                outputTypes[i] = inputTypes[rule.sameAs];
            }
            else
            {
                PLUGKIT_CHECK(singleType(rule.types, outputTypes[i]),
                    "output " << i << " has no single dtype in kIoRules; declare outputDataTypes()");
            }
        }
    }

    void checkShapes(nvinfer1::Dims const*, nvinfer1::Dims const*) const {}

    size_t workspaceSize(nvinfer1::DynamicPluginTensorDesc const*, nvinfer1::DynamicPluginTensorDesc const*) const
    {
        return 0;
    }

    std::vector<int32_t> tactics() const
    {
        return {};
    }

    char const* tacticName(int32_t) const
    {
        return nullptr;
    }

    //! The tactic enqueue runs: setTactic's value, else (0 or never set) the first of tactics(), else 0.
    int32_t tactic() const noexcept
    {
        if (mTactic != 0)
        {
            return mTactic;
        }
        try
        {
            std::vector<int32_t> const valid = self().tactics(); // getValidTactics reported any error already
            return valid.empty() ? 0 : valid.front();
        }
        catch (...)
        {
            return 0;
        }
    }

    // ---- IPluginV3 ----

    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return type == kInfoCapability ? static_cast<IPluginInfo*>(this) : nullptr;
    }

    nvinfer1::IPluginV3* clone() noexcept override
    {
        return guarded<nvinfer1::IPluginV3*>(
            "clone", who(), nullptr, [&] { return new Self(static_cast<Self const&>(*this)); });
    }

    // ---- IPluginV3OneCore ----

    char const* getPluginName() const noexcept override
    {
        return Self::kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return Self::kVersion;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return Self::kNamespace;
    }

    // ---- IPluginV3OneBuild ----

    int32_t getNbOutputs() const noexcept override
    {
        return Self::kNbOutputs;
    }

    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
        int32_t nbInputs) const noexcept override
    {
        return status("getOutputDataTypes", [&] {
            checkCounts(nbInputs, nbOutputs);
            self().outputDataTypes(inputTypes, outputTypes);
        });
    }

    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const*, int32_t,
        nvinfer1::DimsExprs* outputs, int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override
    {
        return status("getOutputShapes", [&] {
            checkCounts(nbInputs, nbOutputs);
            self().outputShapes(inputs, outputs, exprBuilder);
        });
    }

    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override
    {
        static_assert(sizeof(Self::kIoRules) / sizeof(IoRule) == Self::kNbInputs + Self::kNbOutputs,
            "kIoRules needs one rule per input and output");
        static_assert(isValid(Self::kIoRules), "kIoRules: sameAs must name an earlier position");
        return guarded<bool>("supportsFormatCombination", who(), false, [&] {
            checkCounts(nbInputs, nbOutputs);
            return supportsCombination(Self::kIoRules, pos, inOut, nbInputs, Self::kNbInputs);
        });
    }

    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override
    {
        return status("configurePlugin", [&] {
            checkCounts(nbInputs, nbOutputs);
            // Both ends of every optimization-profile range must be shapes the plugin accepts.
            for (auto bound : {&nvinfer1::DynamicPluginTensorDesc::min, &nvinfer1::DynamicPluginTensorDesc::max})
            {
                std::vector<nvinfer1::Dims> ins, outs;
                for (int32_t i = 0; i < nbInputs; ++i)
                {
                    ins.push_back(in[i].*bound);
                }
                for (int32_t i = 0; i < nbOutputs; ++i)
                {
                    outs.push_back(out[i].*bound);
                }
                self().checkShapes(ins.data(), outs.data());
            }
        });
    }

    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override
    {
        return guarded<size_t>("getWorkspaceSize", who(), 0, [&] {
            checkCounts(nbInputs, nbOutputs);
            return self().workspaceSize(inputs, outputs);
        });
    }

    int32_t getNbTactics() noexcept override
    {
        return guarded<int32_t>("getNbTactics", who(), -1, [&] { return static_cast<int32_t>(self().tactics().size()); });
    }

    int32_t getValidTactics(int32_t* tactics, int32_t nbTactics) noexcept override
    {
        return status("getValidTactics", [&] {
            std::vector<int32_t> const valid = self().tactics();
            // A plugin without tactics may be asked for none, with no array: TensorRT-RTX 1.7 asks
            // CTCGreedyDecoder (data-dependent outputs) so, though not RMSNorm.
            PLUGKIT_CHECK((tactics != nullptr || valid.empty()) && nbTactics == static_cast<int32_t>(valid.size()),
                "asked for " << nbTactics << " tactics; the plugin has " << valid.size());
            for (size_t i = 0; i < valid.size(); ++i)
            {
                // TensorRT reserves 0 for its default tactic and needs the values unique.
                PLUGKIT_CHECK(valid[i] > 0 && std::find(valid.begin(), valid.begin() + i, valid[i]) == valid.begin() + i,
                    "tactics() must return unique positive values; got " << tacticList(valid));
            }
            std::copy(valid.begin(), valid.end(), tactics);
        });
    }

    //! Timings cached for one plugin are reused only for the same attribute values: the ID is the
    //! plugin's name and version and its serialized fields (TensorRT adds the shapes and formats).
    char const* getTimingCacheID() noexcept override
    {
        return guarded<char const*>("getTimingCacheID", who(), nullptr, [&] {
            mTimingCacheID = std::string(Self::kNamespace) + "::" + Self::kName + "_v" + Self::kVersion;
            static char const kHex[] = "0123456789abcdef";
            for (nvinfer1::PluginField const& f : serializeFields(mAttrs))
            {
                mTimingCacheID += std::string("_") + f.name + "=";
                auto const* bytes = static_cast<unsigned char const*>(f.data);
                size_t const size = fieldElementSize(f.type) * static_cast<size_t>(f.length);
                for (size_t i = 0; bytes != nullptr && i < size; ++i)
                {
                    mTimingCacheID += kHex[bytes[i] >> 4];
                    mTimingCacheID += kHex[bytes[i] & 15];
                }
            }
            return mTimingCacheID.c_str();
        });
    }

    // ---- IPluginInfo ----

    char const* getTacticName(int32_t tactic) const noexcept override
    {
        return guarded<char const*>("tacticName", who(), nullptr, [&] { return self().tacticName(tactic); });
    }

    // ---- IPluginV3OneRuntime ----

    int32_t setTactic(int32_t tactic) noexcept override
    {
        return status("setTactic", [&] {
            std::vector<int32_t> const valid = self().tactics();
            if (tactic == 0)
            {
                mTactic = valid.empty() ? 0 : valid.front(); // TensorRT's default tactic: the first
                return;
            }
            PLUGKIT_CHECK(std::find(valid.begin(), valid.end(), tactic) != valid.end(),
                "tactic " << tactic << " is not one of this plugin's tactics (" << tacticList(valid) << ")");
            mTactic = tactic;
        });
    }

    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override
    {
        return status("onShapeChange", [&] {
            checkCounts(nbInputs, nbOutputs);
            std::vector<nvinfer1::Dims> ins, outs;
            for (int32_t i = 0; i < nbInputs; ++i)
            {
                ins.push_back(in[i].dims);
            }
            for (int32_t i = 0; i < nbOutputs; ++i)
            {
                outs.push_back(out[i].dims);
            }
            self().checkShapes(ins.data(), outs.data());
        });
    }

    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override
    {
        return status("enqueue", [&] {
            self().enqueue(Tensors{inputDesc, outputDesc, inputs, outputs}, workspace, stream);
        });
    }

    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override
    {
        return guarded<nvinfer1::IPluginV3*>("attachToContext", who(), nullptr, [&] {
            auto* attached = new Self(static_cast<Self const&>(*this));
            static_cast<Plugin*>(attached)->mErrorRecorder = context ? context->getErrorRecorder() : nullptr;
            return static_cast<nvinfer1::IPluginV3*>(attached);
        });
    }

    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        return guarded<nvinfer1::PluginFieldCollection const*>("getFieldsToSerialize", who(), nullptr, [&] {
            mSerialized = serializeFields(mAttrs);
            mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
            mSerializedCollection.fields = mSerialized.data();
            return &mSerializedCollection;
        });
    }

protected:
    // Copies (clone, attachToContext) rebuild their serialized fields on demand:
    // the pointers in mSerialized belong to the object they were made from.
    Plugin(Plugin const& other)
        : mLayerName(other.mLayerName)
        , mAttrs(other.mAttrs)
        , mErrorRecorder(other.mErrorRecorder)
        , mNbInputs(other.mNbInputs)
        , mTactic(other.mTactic)
    {
    }
    Plugin& operator=(Plugin const&) = delete;

private:
    Self const& self() const noexcept
    {
        return static_cast<Self const&>(*this);
    }

    static std::string tacticList(std::vector<int32_t> const& tactics)
    {
        std::string s;
        for (int32_t t : tactics)
        {
            s += (s.empty() ? "" : ", ") + std::to_string(t);
        }
        return s.empty() ? "none; only the default 0" : s;
    }

    void checkCounts(int32_t nbInputs, int32_t nbOutputs) const
    {
        static_assert(Self::kNbOptionalInputs >= 0 && Self::kNbOptionalInputs <= Self::kNbInputs,
            "kNbOptionalInputs must be between 0 and kNbInputs");
        int32_t const fewest = Self::kNbInputs - Self::kNbOptionalInputs;
        PLUGKIT_CHECK(nbInputs >= fewest && nbInputs <= Self::kNbInputs && nbOutputs == Self::kNbOutputs,
            "expects " << (fewest == Self::kNbInputs ? "" : std::to_string(fewest) + " to ") << Self::kNbInputs
                       << " input(s) and " << Self::kNbOutputs << " output(s); got " << nbInputs << " and "
                       << nbOutputs);
        mNbInputs = nbInputs;
    }

    //! Run a hook; 0 on success, -1 after logging (and recording, at runtime) its error.
    template <typename Body>
    int32_t status(char const* where, Body&& body) const noexcept
    {
        try
        {
            body();
            return 0;
        }
        catch (std::exception const& e)
        {
            report(where, e.what());
        }
        catch (...)
        {
            report(where, "unknown exception");
        }
        return -1;
    }

    void report(char const* where, char const* what) const noexcept
    {
        try
        {
            std::string const message = who() + ": " + where + ": " + what;
            logError(message);
            if (mErrorRecorder)
            {
                mErrorRecorder->reportError(nvinfer1::ErrorCode::kFAILED_EXECUTION, message.c_str());
            }
        }
        catch (...)
        {
        }
    }

    std::string mLayerName;
    Attrs mAttrs;
    nvinfer1::IErrorRecorder* mErrorRecorder{nullptr};
    mutable int32_t mNbInputs{-1}; // -1: not told yet (nbInputs() then says kNbInputs)
    int32_t mTactic{0}; //!< 0 until setTactic: tactic() then falls back to tactics()[0]
    std::string mTimingCacheID;
    std::vector<nvinfer1::PluginField> mSerialized;
    nvinfer1::PluginFieldCollection mSerializedCollection{};
};

//! The creator of every plugkit plugin: fields from the plugin's Attrs, names from the plugin class.
template <typename PluginT>
class Creator final : public nvinfer1::IPluginCreatorV3One
{
public:
    Creator()
        : mFieldNames(fieldNames<typename PluginT::Attrs>())
    {
        mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
        mFieldCollection.fields = mFieldNames.data();
    }

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase) noexcept override
    {
        // Build and runtime phases read the same fields: getFieldsToSerialize emits exactly the attributes.
        std::string const layer = name ? name : "";
        return guarded<nvinfer1::IPluginV3*>("createPlugin", std::string(PluginT::kName) + (layer.empty() ? "" : " '" + layer + "'"),
            nullptr, [&] { return new PluginT(layer, parseFields<typename PluginT::Attrs>(fc)); });
    }

    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mFieldCollection;
    }
    char const* getPluginName() const noexcept override
    {
        return PluginT::kName;
    }
    char const* getPluginVersion() const noexcept override
    {
        return PluginT::kVersion;
    }
    char const* getPluginNamespace() const noexcept override
    {
        return PluginT::kNamespace;
    }

private:
    std::vector<nvinfer1::PluginField> mFieldNames;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

} // namespace plugkit

//! Make a plugin class known to its library's getCreators(). Put it once, in the plugin's .cpp, in
//! any namespace. plugkit_add_plugin_library() finds these lines and generates the entry point,
//! so nothing is registered by static initializers that a linker could drop.
#define PLUGKIT_REGISTER_PLUGIN(PluginClass)                                                                           \
    extern "C" __attribute__((visibility("hidden"))) nvinfer1::IPluginCreatorInterface* plugkit_creator_##PluginClass()  \
    {                                                                                                                  \
        static ::plugkit::Creator<PluginClass> creator;                                                                \
        return &creator;                                                                                               \
    }
