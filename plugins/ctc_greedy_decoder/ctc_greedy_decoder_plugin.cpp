// CTCGreedyDecoder as an IPluginV3 plugin: best-path decoding of CTC logits.
//   inputs   logits [N, T, C] fp32/fp16/bf16; lengths [N] INT32 (optional: all T when left out)
//   outputs  labels [N, M] INT32, scores [N, M] FP32, decoded lengths [N] INT32, M (0-d INT32)
// M, the longest decoded length, is data-dependent: a size tensor declared with upper bound T.
#include "ctc_greedy_decoder_kernel.h"

#include "plugkit/plugin.h"

namespace plugkit::ctc_greedy_decoder
{

struct CtcGreedyDecoderAttrs
{
    int32_t blank = 0;
    int32_t mergeRepeated = 1;

    static constexpr auto fields = fieldTable(
        field("blank", &CtcGreedyDecoderAttrs::blank), field("merge_repeated", &CtcGreedyDecoderAttrs::mergeRepeated));

    void validate() const
    {
        PLUGKIT_CHECK(blank >= 0, "blank must be a class index >= 0; got " << blank);
        PLUGKIT_CHECK(mergeRepeated == 0 || mergeRepeated == 1, "merge_repeated must be 0 or 1; got " << mergeRepeated);
    }
};

class CtcGreedyDecoderPlugin : public Plugin<CtcGreedyDecoderPlugin, CtcGreedyDecoderAttrs>
{
public:
    static constexpr char const* kName = "CTCGreedyDecoder";
    static constexpr char const* kVersion = "1";
    // lengths is optional: an ONNX node (or network layer) may have logits alone.
    static constexpr int32_t kNbInputs = 2;
    static constexpr int32_t kNbOptionalInputs = 1;
    static constexpr int32_t kNbOutputs = 4;
    static constexpr int32_t kSizeOutput = 3;
    static constexpr TypeMask kInt32 = typeBit(nvinfer1::DataType::kINT32);
    static constexpr IoRule kIoRules[] = {
        anyOf(kFloatTypes),                            // logits
        anyOf(kInt32),                                 // lengths
        anyOf(kInt32),                                 // labels
        anyOf(typeBit(nvinfer1::DataType::kFLOAT)),    // scores
        anyOf(kInt32),                                 // decoded lengths
        anyOf(kInt32),                                 // M, the size tensor
    };

    using Plugin::Plugin;

    void outputShapes(nvinfer1::DimsExprs const* in, nvinfer1::DimsExprs* out, nvinfer1::IExprBuilder& exprs) const
    {
        nvinfer1::DimsExprs const& logits = in[0];
        PLUGKIT_CHECK(logits.nbDims == 3, "logits must have rank 3 [N, T, C]; got rank " << logits.nbDims);
        if (logits.d[2]->isConstant())
        {
            checkBlank(logits.d[2]->getConstantValue());
        }
        if (nbInputs() == 2)
        {
            PLUGKIT_CHECK(in[1].nbDims == 1, "lengths must have shape [N]; got rank " << in[1].nbDims);
            PLUGKIT_CHECK(!in[1].d[0]->isConstant() || !logits.d[0]->isConstant()
                    || in[1].d[0]->getConstantValue() == logits.d[0]->getConstantValue(),
                "lengths must have shape [N] = [" << logits.d[0]->getConstantValue() << "]; got ["
                                                  << in[1].d[0]->getConstantValue() << "]");
        }
        // M is at most T; TensorRT sizes the outputs by the upper bound and uses opt for tuning.
        auto const* half = exprs.operation(nvinfer1::DimensionOperation::kCEIL_DIV, *logits.d[1], *exprs.constant(2));
        auto const* longest = exprs.declareSizeTensor(kSizeOutput, *half, *logits.d[1]);
        out[0].nbDims = 2;
        out[0].d[0] = logits.d[0];
        out[0].d[1] = longest;
        out[1] = out[0];
        out[2].nbDims = 1;
        out[2].d[0] = logits.d[0];
        out[kSizeOutput].nbDims = 0;
    }

    void checkShapes(nvinfer1::Dims const* in, nvinfer1::Dims const*) const
    {
        nvinfer1::Dims const& logits = in[0];
        PLUGKIT_CHECK(logits.nbDims == 3, "logits must have rank 3 [N, T, C]; got " << toString(logits));
        checkBlank(logits.d[2]);
        if (nbInputs() == 2)
        {
            PLUGKIT_CHECK(in[1].nbDims == 1 && in[1].d[0] == logits.d[0],
                "lengths must have shape [N] = [" << logits.d[0] << "]; got " << toString(in[1]));
        }
    }

    size_t workspaceSize(nvinfer1::DynamicPluginTensorDesc const* in, nvinfer1::DynamicPluginTensorDesc const*) const
    {
        return ctc_greedy_decoder::workspaceSize(in[0].max.d[0], in[0].max.d[1]);
    }

    void enqueue(Tensors const& t, void* workspace, cudaStream_t stream) const
    {
        nvinfer1::Dims const& d = t.inputDesc[0].dims;
        launch(Problem{t.inputDesc[0].type, t.inputs[0],
                   nbInputs() == 2 ? static_cast<int32_t const*>(t.inputs[1]) : nullptr,
                   static_cast<int32_t*>(t.outputs[0]), static_cast<float*>(t.outputs[1]),
                   static_cast<int32_t*>(t.outputs[2]), static_cast<int32_t*>(t.outputs[kSizeOutput]), d.d[0], d.d[1],
                   d.d[2], attrs().blank, attrs().mergeRepeated == 1},
            workspace, stream);
    }

private:
    void checkBlank(int64_t classes) const
    {
        PLUGKIT_CHECK(attrs().blank < classes,
            "blank " << attrs().blank << " is outside [0, C) for logits with C = " << classes << " classes");
    }
};

PLUGKIT_REGISTER_PLUGIN(CtcGreedyDecoderPlugin)

} // namespace plugkit::ctc_greedy_decoder
