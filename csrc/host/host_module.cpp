// plugkit._host: the Python binding of the plugin host (host.h). Python's face
// of it, with torch/cupy tensors and typed attributes, is plugkit/host.py.
#include "host.h"

#include "plugkit/fields.h"
#include "plugkit/formats.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <map>

namespace py = pybind11;
using namespace plugkit::host;

namespace
{

template <typename Enum>
std::map<std::string, Enum> const& names();

template <>
std::map<std::string, nvinfer1::DataType> const& names()
{
    using nvinfer1::DataType;
    static std::map<std::string, DataType> const m{{"float32", DataType::kFLOAT}, {"float16", DataType::kHALF},
        {"int8", DataType::kINT8}, {"int32", DataType::kINT32}, {"bool", DataType::kBOOL}, {"uint8", DataType::kUINT8},
        {"fp8", DataType::kFP8}, {"bfloat16", DataType::kBF16}, {"int64", DataType::kINT64}, {"int4", DataType::kINT4}};
    return m;
}

template <>
std::map<std::string, nvinfer1::TensorFormat> const& names()
{
    using F = nvinfer1::TensorFormat;
    static std::map<std::string, F> const m{{"LINEAR", F::kLINEAR}, {"CHW2", F::kCHW2}, {"HWC8", F::kHWC8},
        {"CHW4", F::kCHW4}, {"CHW16", F::kCHW16}, {"CHW32", F::kCHW32}, {"DHWC8", F::kDHWC8}, {"CDHW32", F::kCDHW32},
        {"HWC", F::kHWC}, {"DLA_LINEAR", F::kDLA_LINEAR}, {"DLA_HWC4", F::kDLA_HWC4}, {"HWC16", F::kHWC16},
        {"DHWC", F::kDHWC}};
    return m;
}

template <>
std::map<std::string, nvinfer1::PluginFieldType> const& names()
{
    static std::map<std::string, nvinfer1::PluginFieldType> const m = [] {
        std::map<std::string, nvinfer1::PluginFieldType> out;
        for (int32_t i = 0; i <= static_cast<int32_t>(nvinfer1::PluginFieldType::kFP4); ++i)
        {
            auto const t = static_cast<nvinfer1::PluginFieldType>(i);
            out[plugkit::fieldTypeName(t)] = t;
        }
        return out;
    }();
    return m;
}

template <typename Enum>
Enum fromName(std::string const& name, char const* what)
{
    auto const& m = names<Enum>();
    auto it = m.find(name);
    if (it == m.end())
    {
        std::string known;
        for (auto const& kv : m)
        {
            known += (known.empty() ? "" : ", ") + kv.first;
        }
        throw HostError("unknown " + std::string(what) + " '" + name + "'; known: " + known);
    }
    return it->second;
}

template <typename Enum>
std::string toName(Enum value)
{
    for (auto const& kv : names<Enum>())
    {
        if (kv.second == value)
        {
            return kv.first;
        }
    }
    return "unknown(" + std::to_string(static_cast<int32_t>(value)) + ")";
}

// Python tuples <-> host structs.
using RangeTuple = std::tuple<std::string, std::string, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>>;
using ValueTuple = std::tuple<std::string, std::string, std::vector<int64_t>, uintptr_t>;
using FieldTuple = std::tuple<std::string, std::string, py::bytes, int32_t>;

std::vector<TensorRange> toRanges(std::vector<RangeTuple> const& v)
{
    std::vector<TensorRange> out;
    for (auto const& [dtype, format, min, opt, max] : v)
    {
        out.push_back(TensorRange{fromName<nvinfer1::DataType>(dtype, "dtype"),
            fromName<nvinfer1::TensorFormat>(format, "tensor format"), min, opt, max});
    }
    return out;
}

std::vector<TensorValue> toValues(std::vector<ValueTuple> const& v)
{
    std::vector<TensorValue> out;
    for (auto const& [dtype, format, dims, address] : v)
    {
        out.push_back(TensorValue{fromName<nvinfer1::DataType>(dtype, "dtype"),
            fromName<nvinfer1::TensorFormat>(format, "tensor format"), dims, address});
    }
    return out;
}

std::vector<FieldTuple> toTuples(std::vector<RawField> const& fields)
{
    std::vector<FieldTuple> out;
    for (auto const& f : fields)
    {
        out.emplace_back(f.name, plugkit::fieldTypeName(f.type), py::bytes(f.data), f.length);
    }
    return out;
}

// A plugin reads `length` elements from a field's data: the data must hold them,
// and a name with an embedded NUL would reach the plugin as its prefix.
RawField toRawField(FieldTuple const& field)
{
    auto const& [name, typeName, bytes, length] = field;
    if (name.find('\0') != std::string::npos)
    {
        throw HostError("field name contains a NUL character: a plugin would read it as '" +
            std::string(name.c_str()) + "'");
    }
    auto const type = fromName<nvinfer1::PluginFieldType>(typeName, "field type");
    std::string data(bytes);
    if (length < 0)
    {
        throw HostError("field '" + name + "': length " + std::to_string(length) + " is negative");
    }
    int64_t const neededBits = static_cast<int64_t>(length) * plugkit::fieldElementBits(type);
    if (neededBits > static_cast<int64_t>(data.size()) * 8)
    {
        throw HostError("field '" + name + "': length " + std::to_string(length) + " " + typeName +
            " element(s) need " + std::to_string((neededBits + 7) / 8) + " bytes of data; got " +
            std::to_string(data.size()));
    }
    return RawField{name, type, std::move(data), length};
}

// A creator keeps its library loaded.
struct Creator
{
    std::shared_ptr<Library> library;
    nvinfer1::IPluginCreatorV3One* creator;
};

} // namespace

PYBIND11_MODULE(_host, m)
{
    m.doc() = "plugkit plugin host: drives IPluginV3 plugins through TensorRT's lifecycle without TensorRT";
    py::register_exception<HostError>(m, "HostError", PyExc_RuntimeError);

    m.def("cuda_device_count", &cudaDeviceCount, "Number of visible CUDA devices (0 without driver or device).");
    m.def("take_log", [] { return logger().take(); }, "Messages plugins logged since the last call: (severity, text).");
    m.def("dtypes", [] {
        std::vector<std::string> out;
        for (auto const& kv : names<nvinfer1::DataType>())
        {
            out.push_back(kv.first);
        }
        return out;
    });
    m.def("formats", [] {
        std::vector<std::string> out;
        for (auto const& kv : names<nvinfer1::TensorFormat>())
        {
            out.push_back(kv.first);
        }
        return out;
    });

    py::class_<Library, std::shared_ptr<Library>>(m, "Library")
        .def(py::init<std::string>(), py::arg("path"))
        .def_property_readonly("path", &Library::path)
        .def_property_readonly("tensorrt_version", &Library::tensorrtVersion)
        .def_property_readonly("skipped_creators", &Library::skipped)
        .def("creators", [](std::shared_ptr<Library> const& self) {
            std::vector<Creator> out;
            for (auto* c : self->creators())
            {
                out.push_back(Creator{self, c});
            }
            return out;
        });

    py::class_<Creator>(m, "Creator")
        .def_property_readonly("name", [](Creator const& c) { return std::string(c.creator->getPluginName()); })
        .def_property_readonly("version", [](Creator const& c) { return std::string(c.creator->getPluginVersion()); })
        .def_property_readonly("namespace", [](Creator const& c) {
            char const* ns = c.creator->getPluginNamespace();
            return std::string(ns ? ns : "");
        })
        .def("field_names", [](Creator const& c) {
            std::vector<std::tuple<std::string, std::string, int32_t>> out;
            nvinfer1::PluginFieldCollection const* fc = c.creator->getFieldNames();
            for (int32_t i = 0; fc && i < fc->nbFields; ++i)
            {
                out.emplace_back(fc->fields[i].name ? fc->fields[i].name : "", plugkit::fieldTypeName(fc->fields[i].type),
                    fc->fields[i].length);
            }
            return out;
        })
        .def(
            "create",
            [](Creator const& c, std::string const& layerName, std::vector<FieldTuple> const& fields, std::string const& phase) {
                std::vector<RawField> raw;
                for (auto const& field : fields)
                {
                    raw.push_back(toRawField(field));
                }
                if (layerName.find('\0') != std::string::npos)
                {
                    throw HostError("layer name contains a NUL character");
                }
                if (phase != "build" && phase != "runtime")
                {
                    throw HostError("phase must be 'build' or 'runtime'; got '" + phase + "'");
                }
                return createPlugin(c.library, c.creator, layerName, raw,
                    phase == "build" ? nvinfer1::TensorRTPhase::kBUILD : nvinfer1::TensorRTPhase::kRUNTIME);
            },
            py::arg("layer_name"), py::arg("fields"), py::arg("phase"));

    py::class_<SizeTensorDim>(m, "SizeTensorDim")
        .def_readonly("output_index", &SizeTensorDim::outputIndex)
        .def_readonly("opt", &SizeTensorDim::opt)
        .def_readonly("upper", &SizeTensorDim::upper);

    py::class_<Plugin>(m, "Plugin")
        .def_property_readonly("name", &Plugin::name)
        .def_property_readonly("version", &Plugin::version)
        .def_property_readonly("namespace", &Plugin::pluginNamespace)
        .def_property_readonly("trace", &Plugin::trace)
        .def_property_readonly("recorded_errors", &Plugin::recordedErrors)
        .def("nb_outputs", &Plugin::nbOutputs)
        .def("output_dtypes",
            [](Plugin& p, std::vector<std::string> const& inputTypes) {
                std::vector<nvinfer1::DataType> in;
                for (auto const& t : inputTypes)
                {
                    in.push_back(fromName<nvinfer1::DataType>(t, "dtype"));
                }
                std::vector<std::string> out;
                for (auto t : p.outputDataTypes(in))
                {
                    out.push_back(toName(t));
                }
                return out;
            })
        .def("output_shapes", &Plugin::outputShapes)
        .def("supports", [](Plugin& p, int32_t pos, std::vector<RangeTuple> const& inOut,
                             int32_t nbInputs) { return p.supportsFormatCombination(pos, toRanges(inOut), nbInputs); })
        .def("format_combination_limit", &Plugin::formatCombinationLimit)
        .def("configure", [](Plugin& p, std::vector<RangeTuple> const& in,
                              std::vector<RangeTuple> const& out) { p.configure(toRanges(in), toRanges(out)); })
        .def("workspace_size", [](Plugin& p, std::vector<RangeTuple> const& in,
                                   std::vector<RangeTuple> const& out) { return p.workspaceSize(toRanges(in), toRanges(out)); })
        .def("valid_tactics", &Plugin::validTactics)
        .def("set_tactic", &Plugin::setTactic)
        .def("fields_to_serialize", [](Plugin& p) { return toTuples(p.fieldsToSerialize()); })
        .def("clone", &Plugin::clone)
        .def("attach_to_context", &Plugin::attachToContext)
        .def("on_shape_change", [](Plugin& p, std::vector<ValueTuple> const& in,
                                    std::vector<ValueTuple> const& out) { p.onShapeChange(toValues(in), toValues(out)); })
        .def(
            "enqueue",
            [](Plugin& p, std::vector<ValueTuple> const& in, std::vector<ValueTuple> const& out, uintptr_t workspace,
                uintptr_t stream) {
                auto const inputs = toValues(in);
                auto const outputs = toValues(out);
                py::gil_scoped_release release;
                p.enqueue(inputs, outputs, workspace, stream);
            },
            py::arg("inputs"), py::arg("outputs"), py::arg("workspace"), py::arg("stream"))
        .def(
            "enqueue_cpu_times",
            [](Plugin& p, std::vector<ValueTuple> const& in, std::vector<ValueTuple> const& out, uintptr_t workspace,
                uintptr_t stream, int32_t iterations) {
                auto const inputs = toValues(in);
                auto const outputs = toValues(out);
                py::gil_scoped_release release;
                return p.enqueueCpuTimes(inputs, outputs, workspace, stream, iterations);
            },
            py::arg("inputs"), py::arg("outputs"), py::arg("workspace"), py::arg("stream"), py::arg("iterations"))
        .def("tactic_name", &Plugin::tacticName)
        .def("timing_cache_id", &Plugin::timingCacheID);

    // The torch ops' per-call path (plugkit/torch_kernels.py): descriptors built once by bind_enqueue,
    // then each call converts only the integer addresses and the stream handle.
    py::class_<BoundEnqueue>(m, "BoundEnqueue")
        .def_property_readonly("nb_inputs", &BoundEnqueue::nbInputs)
        .def_property_readonly("nb_outputs", &BoundEnqueue::nbOutputs)
        .def(
            "__call__",
            [](BoundEnqueue& bound, py::args const& args) {
                size_t const n = bound.nbInputs() + bound.nbOutputs();
                if (args.size() != n + 2)
                {
                    throw HostError("enqueue takes " + std::to_string(n) + " tensor addresses (inputs, then outputs), "
                        "a workspace address and a stream handle; got " + std::to_string(args.size()) + " arguments");
                }
                auto address = [&](size_t i) {
                    void* p = PyLong_AsVoidPtr(PyTuple_GET_ITEM(args.ptr(), static_cast<Py_ssize_t>(i)));
                    if (p == nullptr && PyErr_Occurred())
                    {
                        throw py::error_already_set();
                    }
                    return reinterpret_cast<uintptr_t>(p);
                };
                std::array<uintptr_t, 64> small{};
                std::vector<uintptr_t> large(n > small.size() ? n : 0);
                uintptr_t* addresses = n > small.size() ? large.data() : small.data();
                for (size_t i = 0; i < n; ++i)
                {
                    addresses[i] = address(i);
                }
                // The GIL stays held: the call is a few microseconds of launch work, and holding it
                // keeps the bound pointer arrays single-threaded.
                bound(addresses, address(n), address(n + 1));
            },
            "enqueue(*addresses, workspace, stream): device addresses of the inputs then the outputs, "
            "the workspace address (0 for none) and the cudaStream_t handle, all as ints.");
    m.def(
        "bind_enqueue",
        [](Plugin& plugin, std::vector<ValueTuple> const& in, std::vector<ValueTuple> const& out) {
            return std::make_unique<BoundEnqueue>(plugin, toValues(in), toValues(out));
        },
        py::arg("plugin"), py::arg("inputs"), py::arg("outputs"), py::keep_alive<0, 1>(),
        "A runtime plugin's enqueue with these (dtype, format, dims, ignored address) descriptors fixed.");
}
