// Two small plugins that exercise the SDK beyond RMSNorm; their kernels are deliberately trivial.
//  TacticScale:  Y = X * factor with `variants` tactics (1..variants); a second INT32 output [1]
//                holds the tactic enqueue ran, so tests see what setTactic chose.
//  NonZeroProbe: TensorRT's INonZero for a 2-D input of any dtype plugkit accepts: indices [2, K]
//                (INT32, or INT64 with int64_indices=1), K data-dependent with upper bound R*C; a
//                [R, C] INT32 mask; K itself as the size tensor, the last output.
//  SizeTensorMisuse: declarations TensorRT refuses (per `mistake`), for the host's refusals; never enqueued.
#include "plugkit/plugin.h"

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

void launchTacticScale(int32_t tactic, nvinfer1::DataType type, void const* x, void* y, int32_t* used, int64_t n,
    float factor, cudaStream_t stream);
void launchNonZero(nvinfer1::DataType inType, nvinfer1::DataType indexType, void const* x, int64_t rows, int64_t cols,
    void* indices, int32_t* mask, int32_t* count, cudaStream_t stream);

namespace sdktest
{

struct ScaleAttrs
{
    float factor = 2.0F;
    int32_t variants = 2;
    static constexpr auto fields = plugkit::fieldTable(
        plugkit::field("factor", &ScaleAttrs::factor), plugkit::field("variants", &ScaleAttrs::variants));
    void validate() const
    {
        PLUGKIT_CHECK(variants >= 0 && variants <= 4, "variants must be in [0, 4]; got " << variants);
    }
};

class TacticScalePlugin : public plugkit::Plugin<TacticScalePlugin, ScaleAttrs>
{
public:
    static constexpr char const* kName = "TacticScale";
    static constexpr char const* kVersion = "1";
    static constexpr char const* kNamespace = "sdktest";
    static constexpr int32_t kNbInputs = 1;
    static constexpr int32_t kNbOutputs = 2;
    static constexpr plugkit::IoRule kIoRules[] = {plugkit::anyOf(plugkit::kFloatTypes), plugkit::sameAs(0),
        plugkit::anyOf(plugkit::typeBit(nvinfer1::DataType::kINT32))};

    using Plugin::Plugin;

    std::vector<int32_t> tactics() const
    {
        std::vector<int32_t> out;
        for (int32_t t = 1; t <= attrs().variants; ++t)
        {
            out.push_back(t);
        }
        return out;
    }

    char const* tacticName(int32_t tactic) const
    {
        return tactic == 1 ? "one-per-thread" : "grid-stride";
    }

    void outputShapes(nvinfer1::DimsExprs const* in, nvinfer1::DimsExprs* out, nvinfer1::IExprBuilder& b) const
    {
        out[0] = in[0];
        out[1].nbDims = 1;
        out[1].d[0] = b.constant(1);
    }

    void enqueue(plugkit::Tensors const& t, void*, cudaStream_t stream) const
    {
        launchTacticScale(tactic(), t.inputDesc[0].type, t.inputs[0], t.outputs[0], static_cast<int32_t*>(t.outputs[1]),
            plugkit::volume(t.inputDesc[0].dims), attrs().factor, stream);
    }
};

PLUGKIT_REGISTER_PLUGIN(TacticScalePlugin)

struct NonZeroAttrs
{
    int32_t int64_indices = 0;
    static constexpr auto fields = plugkit::fieldTable(plugkit::field("int64_indices", &NonZeroAttrs::int64_indices));
};

class NonZeroProbePlugin : public plugkit::Plugin<NonZeroProbePlugin, NonZeroAttrs>
{
public:
    static constexpr char const* kName = "NonZeroProbe";
    static constexpr char const* kVersion = "1";
    static constexpr char const* kNamespace = "sdktest";
    static constexpr int32_t kNbInputs = 1;
    static constexpr int32_t kNbOutputs = 3;
    static constexpr plugkit::IoRule kIoRules[] = {
        plugkit::anyOf(plugkit::kFloatTypes | plugkit::kIndexTypes | plugkit::typeBit(nvinfer1::DataType::kBOOL)
            | plugkit::typeBit(nvinfer1::DataType::kUINT8)),
        plugkit::anyOf(plugkit::kIndexTypes),                         // indices [2, K]
        plugkit::anyOf(plugkit::typeBit(nvinfer1::DataType::kINT32)), // mask [R, C]
        plugkit::anyOf(plugkit::typeBit(nvinfer1::DataType::kINT32)), // K, the size tensor
    };

    using Plugin::Plugin;

    void outputDataTypes(nvinfer1::DataType const*, nvinfer1::DataType* out) const
    {
        out[0] = attrs().int64_indices ? nvinfer1::DataType::kINT64 : nvinfer1::DataType::kINT32;
        out[1] = nvinfer1::DataType::kINT32;
        out[2] = nvinfer1::DataType::kINT32;
    }

    void outputShapes(nvinfer1::DimsExprs const* in, nvinfer1::DimsExprs* out, nvinfer1::IExprBuilder& b) const
    {
        PLUGKIT_CHECK(in[0].nbDims == 2, "x must have rank 2; got rank " << in[0].nbDims);
        auto const* upper = b.operation(nvinfer1::DimensionOperation::kPROD, *in[0].d[0], *in[0].d[1]);
        auto const* opt = b.operation(nvinfer1::DimensionOperation::kFLOOR_DIV, *upper, *b.constant(2));
        auto const* k = b.declareSizeTensor(2, *opt, *upper);
        PLUGKIT_CHECK(k != nullptr, "declareSizeTensor failed");
        out[0].nbDims = 2;
        out[0].d[0] = b.constant(2);
        out[0].d[1] = k;
        out[1] = in[0];
        out[2].nbDims = 0;
    }

    void enqueue(plugkit::Tensors const& t, void*, cudaStream_t stream) const
    {
        nvinfer1::Dims const& d = t.inputDesc[0].dims;
        launchNonZero(t.inputDesc[0].type, t.outputDesc[0].type, t.inputs[0], d.d[0], d.d[1], t.outputs[0],
            static_cast<int32_t*>(t.outputs[1]), static_cast<int32_t*>(t.outputs[2]), stream);
    }
};

PLUGKIT_REGISTER_PLUGIN(NonZeroProbePlugin)

struct MisuseAttrs
{
    std::string mistake = "none"; // "int64_size", "bool_output", "size_not_0d", "zero_tactic"
    static constexpr auto fields = plugkit::fieldTable(plugkit::field("mistake", &MisuseAttrs::mistake));
};

class SizeTensorMisusePlugin : public plugkit::Plugin<SizeTensorMisusePlugin, MisuseAttrs>
{
public:
    static constexpr char const* kName = "SizeTensorMisuse";
    static constexpr char const* kVersion = "1";
    static constexpr char const* kNamespace = "sdktest";
    static constexpr int32_t kNbInputs = 1;
    static constexpr int32_t kNbOutputs = 2;
    static constexpr plugkit::IoRule kIoRules[] = {plugkit::anyOf(plugkit::kFloat32Only),
        plugkit::anyOf(plugkit::kFloat32Only | plugkit::typeBit(nvinfer1::DataType::kBOOL)),
        plugkit::anyOf(plugkit::kIndexTypes)};

    using Plugin::Plugin;

    std::vector<int32_t> tactics() const
    {
        return attrs().mistake == "zero_tactic" ? std::vector<int32_t>{2, 0} : std::vector<int32_t>{};
    }

    void outputDataTypes(nvinfer1::DataType const*, nvinfer1::DataType* out) const
    {
        out[0] = attrs().mistake == "bool_output" ? nvinfer1::DataType::kBOOL : nvinfer1::DataType::kFLOAT;
        out[1] = attrs().mistake == "int64_size" ? nvinfer1::DataType::kINT64 : nvinfer1::DataType::kINT32;
    }

    void outputShapes(nvinfer1::DimsExprs const* in, nvinfer1::DimsExprs* out, nvinfer1::IExprBuilder& b) const
    {
        out[0].nbDims = 1;
        out[0].d[0] = b.declareSizeTensor(1, *in[0].d[0], *in[0].d[0]);
        out[1].nbDims = attrs().mistake == "size_not_0d" ? 1 : 0;
        out[1].d[0] = b.constant(1);
    }

    void enqueue(plugkit::Tensors const&, void*, cudaStream_t) const
    {
        PLUGKIT_CHECK(false, "test-only plugin: never enqueued");
    }
};

PLUGKIT_REGISTER_PLUGIN(SizeTensorMisusePlugin)

} // namespace sdktest
