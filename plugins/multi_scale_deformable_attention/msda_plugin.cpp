// MultiScaleDeformableAttention (Deformable DETR) as an IPluginV3 plugin:
//   value [B, S, H, D], spatial_shapes [L, 2], level_start_index [L],
//   sampling_locations [B, Q, H, L, P, 2], attention_weights [B, Q, H, L, P] -> output [B, Q, H*D]
// Bilinear sampling of each level's value map (align_corners=False, zeros outside), weighted by
// the attention weights, summed over levels and points in fp32. The float tensors share one
// dtype (fp32, fp16 or bf16); spatial_shapes and level_start_index are int32 or int64.
// Tactics: the kernel mappings of msda_kernel.h.
#include "msda_kernel.h"

#include "plugkit/plugin.h"

namespace plugkit::msda
{

struct MsdaAttrs
{
    static constexpr auto fields = fieldTable();
};

class MultiScaleDeformableAttentionPlugin : public Plugin<MultiScaleDeformableAttentionPlugin, MsdaAttrs>
{
public:
    static constexpr char const* kName = "MultiScaleDeformableAttention";
    static constexpr char const* kVersion = "1";
    static constexpr int32_t kNbInputs = 5;
    static constexpr int32_t kNbOutputs = 1;
    static constexpr IoRule kIoRules[] = {
        anyOf(kFloatTypes), // value
        anyOf(kIndexTypes), // spatial_shapes
        sameAs(1),          // level_start_index
        sameAs(0),          // sampling_locations
        sameAs(0),          // attention_weights
        sameAs(0),          // output
    };

    using Plugin::Plugin;

    //! The fast mapping first: it is what runs where no tactic is chosen (TensorRT's default 0).
    std::vector<int32_t> tactics() const
    {
        return {kPointGroups, kPointGroupsNarrow, kSplitPoints, kChannelThreads};
    }

    char const* tacticName(int32_t tactic) const
    {
        switch (tactic)
        {
        case kChannelThreads: return "channel threads";
        case kPointGroups: return "point groups 16B";
        case kPointGroupsNarrow: return "point groups 8B";
        case kSplitPoints: return "split points";
        default: return "unknown";
        }
    }

    void outputShapes(nvinfer1::DimsExprs const* in, nvinfer1::DimsExprs* out, nvinfer1::IExprBuilder& exprs) const
    {
        checkRanks(in[0].nbDims, in[1].nbDims, in[2].nbDims, in[3].nbDims, in[4].nbDims);
        out[0].nbDims = 3;
        out[0].d[0] = in[3].d[0];
        out[0].d[1] = in[3].d[1];
        out[0].d[2] = exprs.operation(nvinfer1::DimensionOperation::kPROD, *in[0].d[2], *in[0].d[3]);
    }

    void checkShapes(nvinfer1::Dims const* in, nvinfer1::Dims const*) const
    {
        problem(in);
    }

    void enqueue(Tensors const& t, void*, cudaStream_t stream) const
    {
        nvinfer1::Dims dims[kNbInputs];
        for (int32_t i = 0; i < kNbInputs; ++i)
        {
            dims[i] = t.inputDesc[i].dims;
        }
        Problem p = problem(dims);
        p.floatType = t.inputDesc[0].type;
        p.indexType = t.inputDesc[1].type;
        p.value = t.inputs[0];
        p.spatialShapes = t.inputs[1];
        p.levelStartIndex = t.inputs[2];
        p.locations = t.inputs[3];
        p.weights = t.inputs[4];
        p.output = t.outputs[0];
        launch(p, tactic(), stream);
    }

private:
    static void checkRanks(int32_t value, int32_t shapes, int32_t starts, int32_t locations, int32_t weights)
    {
        PLUGKIT_CHECK(value == 4, "value must be [B, S, H, D]; got rank " << value);
        PLUGKIT_CHECK(shapes == 2, "spatial_shapes must be [L, 2]; got rank " << shapes);
        PLUGKIT_CHECK(starts == 1, "level_start_index must be [L]; got rank " << starts);
        PLUGKIT_CHECK(locations == 6, "sampling_locations must be [B, Q, H, L, P, 2]; got rank " << locations);
        PLUGKIT_CHECK(weights == 5, "attention_weights must be [B, Q, H, L, P]; got rank " << weights);
    }

    //! The launch's sizes from concrete input dims, every shape relation checked. Whether S equals
    //! the sum of H_l * W_l cannot be checked here: spatial_shapes is in device memory.
    static Problem problem(nvinfer1::Dims const* in)
    {
        nvinfer1::Dims const& value = in[0];
        nvinfer1::Dims const& shapes = in[1];
        nvinfer1::Dims const& starts = in[2];
        nvinfer1::Dims const& loc = in[3];
        nvinfer1::Dims const& att = in[4];
        checkRanks(value.nbDims, shapes.nbDims, starts.nbDims, loc.nbDims, att.nbDims);
        auto same = [](int64_t a, int64_t b) { return a == b; };
        PLUGKIT_CHECK(shapes.d[1] == 2, "spatial_shapes must be [L, 2] (H_l, W_l); got " << toString(shapes));
        PLUGKIT_CHECK(loc.d[5] == 2, "sampling_locations must end in 2 (x, y); got " << toString(loc));
        PLUGKIT_CHECK(same(starts.d[0], shapes.d[0]),
            "level_start_index " << toString(starts) << " must have one entry a level of spatial_shapes "
                                 << toString(shapes));
        PLUGKIT_CHECK(shapes.d[0] >= 1 && shapes.d[0] <= kMaxLevels,
            "spatial_shapes " << toString(shapes) << ": the plugin takes 1 to " << kMaxLevels << " levels");
        PLUGKIT_CHECK(same(loc.d[0], value.d[0]) && same(att.d[0], value.d[0]),
            "batch differs: value " << toString(value) << ", sampling_locations " << toString(loc)
                                    << ", attention_weights " << toString(att));
        PLUGKIT_CHECK(same(loc.d[2], value.d[2]) && same(att.d[2], value.d[2]),
            "heads differ: value " << toString(value) << " has H=" << value.d[2] << ", sampling_locations "
                                   << toString(loc) << ", attention_weights " << toString(att));
        PLUGKIT_CHECK(same(loc.d[3], shapes.d[0]) && same(att.d[3], shapes.d[0]),
            "levels differ: spatial_shapes " << toString(shapes) << " has L=" << shapes.d[0] << ", sampling_locations "
                                             << toString(loc) << ", attention_weights " << toString(att));
        PLUGKIT_CHECK(same(att.d[1], loc.d[1]) && same(att.d[4], loc.d[4]),
            "attention_weights " << toString(att) << " must be sampling_locations " << toString(loc)
                                 << " without its last axis");
        PLUGKIT_CHECK(value.d[1] < (int64_t{1} << 31) - 1,
            "value " << toString(value) << ": S must be below 2^31 - 1");
        Problem p{};
        p.batch = value.d[0];
        p.spatial = value.d[1];
        p.heads = static_cast<int32_t>(value.d[2]);
        p.channels = static_cast<int32_t>(value.d[3]);
        p.queries = loc.d[1];
        p.levels = static_cast<int32_t>(loc.d[3]);
        p.points = static_cast<int32_t>(loc.d[4]);
        return p;
    }
};

PLUGKIT_REGISTER_PLUGIN(MultiScaleDeformableAttentionPlugin)

} // namespace plugkit::msda
