// Y = X * factor: the smallest plugin an external project can write with the SDK.
#include "plugkit/plugin.h"

#include <cuda_runtime_api.h>

void launchScale(nvinfer1::DataType type, void const* x, void* y, int64_t n, float factor, cudaStream_t stream);

namespace consumer
{

struct ScaleAttrs
{
    float factor = 2.0F;
    std::string label = "scale";
    static constexpr auto fields = plugkit::fieldTable(
        plugkit::field("factor", &ScaleAttrs::factor), plugkit::field("label", &ScaleAttrs::label));
};

class ExternalScalePlugin : public plugkit::Plugin<ExternalScalePlugin, ScaleAttrs>
{
public:
    static constexpr char const* kName = "ExternalScale";
    static constexpr char const* kVersion = "2";
    static constexpr char const* kNamespace = "consumer";
    static constexpr int32_t kNbInputs = 1;
    static constexpr int32_t kNbOutputs = 1;
    static constexpr plugkit::IoRule kIoRules[] = {plugkit::anyOf(plugkit::kFloatTypes), plugkit::sameAs(0)};

    using Plugin::Plugin;

    void enqueue(plugkit::Tensors const& t, void*, cudaStream_t stream) const
    {
        launchScale(t.inputDesc[0].type, t.inputs[0], t.outputs[0], plugkit::volume(t.inputDesc[0].dims),
            attrs().factor, stream);
    }
};

PLUGKIT_REGISTER_PLUGIN(ExternalScalePlugin)

} // namespace consumer
