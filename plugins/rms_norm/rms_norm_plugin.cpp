// RMSNorm (ONNX RMSNormalization, opset 23) as an IPluginV3 plugin:
//   Y = X / sqrt(mean(X^2 over axes >= axis) + epsilon) * scale
// X, scale and Y are fp32, fp16 or bf16 (scale's type may differ from X's);
// Y has X's type and shape; the sum of squares is accumulated in fp32 (stash_type 1).
#include "rms_norm_launch.h"

#include "plugkit/plugin.h"

#include <cmath>

namespace plugkit::rms_norm
{

struct RmsNormAttrs
{
    int32_t axis = -1;
    float epsilon = 1e-5F;
    int32_t stashType = 1; //!< ONNX's precision of the mean square: 1 (float32), the only one the kernels have

    static constexpr auto fields = fieldTable(field("axis", &RmsNormAttrs::axis),
        field("epsilon", &RmsNormAttrs::epsilon), field("stash_type", &RmsNormAttrs::stashType));

    void validate() const
    {
        PLUGKIT_CHECK(std::isfinite(epsilon) && epsilon > 0.0F, "epsilon must be a positive number; got " << epsilon);
        PLUGKIT_CHECK(stashType == 1,
            "stash_type must be 1 (float32: the sum of squares is accumulated in fp32); got " << stashType);
    }
};

class RmsNormPlugin : public Plugin<RmsNormPlugin, RmsNormAttrs>
{
public:
    static constexpr char const* kName = "RMSNorm";
    static constexpr char const* kVersion = "1";
    static constexpr int32_t kNbInputs = 2;
    static constexpr int32_t kNbOutputs = 1;
    static constexpr IoRule kIoRules[] = {anyOf(kFloatTypes), anyOf(kFloatTypes), sameAs(0)};

    using Plugin::Plugin;

    void outputShapes(nvinfer1::DimsExprs const* in, nvinfer1::DimsExprs* out, nvinfer1::IExprBuilder&) const
    {
        firstAxis(in[0].nbDims);
        out[0] = in[0];
    }

    void checkShapes(nvinfer1::Dims const* in, nvinfer1::Dims const*) const
    {
        layout(in[0], in[1]);
    }

    size_t workspaceSize(nvinfer1::DynamicPluginTensorDesc const* in, nvinfer1::DynamicPluginTensorDesc const*) const
    {
        Layout const l = layout(in[0].max, in[1].max);
        return rms_norm::workspaceSize(l.cols, l.scaleCols);
    }

    void enqueue(Tensors const& t, void* workspace, cudaStream_t stream) const
    {
        Layout const l = layout(t.inputDesc[0].dims, t.inputDesc[1].dims);
        launch(Problem{t.inputDesc[0].type, t.inputDesc[1].type, t.inputs[0], t.inputs[1], t.outputs[0], l.rows, l.cols,
                   l.scaleCols, attrs().epsilon, l.scale},
            workspace, stream);
    }

private:
    struct Layout
    {
        int64_t rows;
        int64_t cols;
        int64_t scaleCols;
        Broadcast scale; //!< how scale is read along X's normalized axes
    };

    int32_t firstAxis(int32_t rank) const
    {
        int32_t const axis = attrs().axis;
        PLUGKIT_CHECK(rank >= 1, "X must have rank >= 1; got a scalar");
        PLUGKIT_CHECK(axis >= -rank && axis < rank,
            "axis " << axis << " is out of range for X of rank " << rank << " (valid: " << -rank << " to " << rank - 1
                    << ")");
        return axis < 0 ? axis + rank : axis;
    }

    // Rows and normalized size of X, and how scale broadcasts to the normalized axes X[axis:]
    // (numpy's rules, as ONNX has them: [H] or [S, H] or [S, 1] over normalized axes [S, H]).
    Layout layout(nvinfer1::Dims const& x, nvinfer1::Dims const& scale) const
    {
        int32_t const axis = firstAxis(x.nbDims);
        Layout l{1, 1, volume(scale), {}};
        for (int32_t i = 0; i < x.nbDims; ++i)
        {
            (i < axis ? l.rows : l.cols) *= x.d[i];
        }
        nvinfer1::Dims normalized{};
        normalized.nbDims = x.nbDims - axis;
        for (int32_t i = 0; i < normalized.nbDims; ++i)
        {
            normalized.d[i] = x.d[axis + i];
        }
        int32_t lead = 0; // leading 1s of scale broadcast trivially, even beyond the normalized rank
        while (lead < scale.nbDims - normalized.nbDims && scale.d[lead] == 1)
        {
            ++lead;
        }
        nvinfer1::Dims trimmed{};
        trimmed.nbDims = scale.nbDims - lead;
        for (int32_t i = 0; i < trimmed.nbDims; ++i)
        {
            trimmed.d[i] = scale.d[lead + i];
        }
        PLUGKIT_CHECK(trimmed.nbDims <= normalized.nbDims,
            "scale " << toString(scale) << " has more axes than X's normalized axes " << toString(normalized));
        PLUGKIT_CHECK(broadcastsTo(trimmed, normalized),
            "scale " << toString(scale) << " does not broadcast to X's normalized axes " << toString(normalized)
                     << " (axis=" << attrs().axis << ")");
        l.scale = broadcast(trimmed, normalized);
        return l;
    }

};

PLUGKIT_REGISTER_PLUGIN(RmsNormPlugin)

} // namespace plugkit::rms_norm
