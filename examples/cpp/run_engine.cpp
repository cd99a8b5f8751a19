// Load a TensorRT engine that uses plugkit plugins and run inference:
// runtime -> plugins -> deserializeCudaEngine -> execution context -> input shapes
// -> tensor addresses -> enqueueV3 -> outputs.
//
//   run_engine model.engine --plugins libplugkit_plugins.so [--shapes input:1x3x32x448] [--iterations 100]
//
// Inputs are filled with a deterministic ramp; each output is summarized.
#include "common.h"

#include "plugkit/loader.h"

#include <NvInferRuntime.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace
{

void check(cudaError_t status, char const* what)
{
    if (status != cudaSuccess)
    {
        throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
    }
}

struct DeviceBuffer
{
    void* ptr{nullptr};
    std::size_t bytes{0};
    DeviceBuffer() = default;
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
    ~DeviceBuffer()
    {
        if (ptr)
        {
            cudaFree(ptr);
        }
    }
    void allocate(std::size_t n)
    {
        check(cudaMalloc(&ptr, std::max<std::size_t>(n, 1)), "cudaMalloc");
        bytes = n;
    }
};

std::vector<double> toDoubles(std::vector<char> const& host, nvinfer1::DataType type, int64_t count)
{
    std::vector<double> values(static_cast<std::size_t>(count));
    for (int64_t i = 0; i < count; ++i)
    {
        switch (type)
        {
        case nvinfer1::DataType::kFLOAT: values[i] = reinterpret_cast<float const*>(host.data())[i]; break;
        case nvinfer1::DataType::kHALF: values[i] = __half2float(reinterpret_cast<__half const*>(host.data())[i]); break;
        case nvinfer1::DataType::kINT32: values[i] = reinterpret_cast<int32_t const*>(host.data())[i]; break;
        case nvinfer1::DataType::kINT64: values[i] = static_cast<double>(reinterpret_cast<int64_t const*>(host.data())[i]); break;
        default: values[i] = static_cast<unsigned char>(host[static_cast<std::size_t>(i)]); break;
        }
    }
    return values;
}

void fillInput(std::vector<char>& host, nvinfer1::DataType type, int64_t count)
{
    for (int64_t i = 0; i < count; ++i)
    {
        double const v = static_cast<double>(i % 17) / 17.0 - 0.5; // a deterministic ramp in [-0.5, 0.5)
        switch (type)
        {
        case nvinfer1::DataType::kFLOAT: reinterpret_cast<float*>(host.data())[i] = static_cast<float>(v); break;
        case nvinfer1::DataType::kHALF: reinterpret_cast<__half*>(host.data())[i] = __float2half(static_cast<float>(v)); break;
        case nvinfer1::DataType::kINT32: reinterpret_cast<int32_t*>(host.data())[i] = static_cast<int32_t>(i % 8); break;
        case nvinfer1::DataType::kINT64: reinterpret_cast<int64_t*>(host.data())[i] = i % 8; break;
        default: host[static_cast<std::size_t>(i)] = 0; break;
        }
    }
}

int runEngine(example::Args const& args)
{
    if (args.positional.size() != 1)
    {
        std::fprintf(stderr, "usage: run_engine MODEL.engine --plugins LIB.so [--shapes NAME:SHAPE] [--iterations N]\n");
        return 2;
    }
    std::string const& enginePath = args.positional[0];
    std::map<std::string, nvinfer1::Dims> shapes;
    for (std::string const& spec : args.shapes)
    {
        std::size_t const colon = spec.rfind(':');
        if (colon == std::string::npos)
        {
            throw std::runtime_error("--shapes " + spec + ": write NAME:SHAPE");
        }
        shapes[spec.substr(0, colon)] = example::parseDims(spec.substr(colon + 1));
    }

    example::Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime{nvinfer1::createInferRuntime(logger)};
    if (!runtime)
    {
        throw std::runtime_error("cannot create a TensorRT runtime (is a CUDA GPU visible?)");
    }
    // The engine's plugin layers are re-created from the registry on deserialization.
    plugkit::loadPlugins(runtime->getPluginRegistry(), args.plugins);
    // Version-compatible engines carry a lean runtime (and serialized plugins): allow their host code.
    runtime->setEngineHostCodeAllowed(true);

    std::vector<char> const plan = example::readFile(enginePath);
    std::unique_ptr<nvinfer1::ICudaEngine> engine{runtime->deserializeCudaEngine(plan.data(), plan.size())};
    if (!engine)
    {
        std::fprintf(stderr,
            "cannot load %s (see TensorRT's messages above): it was built by another TensorRT version or for "
            "another GPU, a plugin library is missing (--plugins), or the file is corrupt\n",
            enginePath.c_str());
        return 1;
    }
    std::unique_ptr<nvinfer1::IExecutionContext> context{engine->createExecutionContext()};

    int32_t const nbTensors = engine->getNbIOTensors();
    std::vector<std::unique_ptr<DeviceBuffer>> buffers;
    std::vector<std::string> outputs;
    for (int32_t i = 0; i < nbTensors; ++i)
    {
        char const* name = engine->getIOTensorName(i);
        if (engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT)
        {
            outputs.emplace_back(name);
            continue;
        }
        nvinfer1::Dims dims = engine->getTensorShape(name);
        if (shapes.count(name))
        {
            dims = shapes[name];
        }
        else if (std::any_of(dims.d, dims.d + dims.nbDims, [](int64_t d) { return d < 0; }))
        {
            dims = engine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kOPT);
        }
        if (!context->setInputShape(name, dims))
        {
            nvinfer1::Dims const lo = engine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMIN);
            nvinfer1::Dims const hi = engine->getProfileShape(name, 0, nvinfer1::OptProfileSelector::kMAX);
            throw std::runtime_error("input " + std::string(name) + " shape " + example::formatDims(dims)
                + " is outside the engine's profile " + example::formatDims(lo) + " .. " + example::formatDims(hi));
        }
        nvinfer1::DataType const type = engine->getTensorDataType(name);
        std::size_t const size = example::elementSize(type);
        if (size == 0)
        {
            throw std::runtime_error("input " + std::string(name) + " has a data type this example does not fill");
        }
        int64_t const count = example::volume(dims);
        std::vector<char> host(static_cast<std::size_t>(count) * size);
        fillInput(host, type, count);
        buffers.push_back(std::make_unique<DeviceBuffer>());
        buffers.back()->allocate(host.size());
        check(cudaMemcpy(buffers.back()->ptr, host.data(), host.size(), cudaMemcpyHostToDevice), "cudaMemcpy");
        context->setTensorAddress(name, buffers.back()->ptr);
        std::printf("input  %s: %s\n", name, example::formatDims(dims).c_str());
    }

    std::map<std::string, DeviceBuffer*> outputBuffers;
    for (std::string const& name : outputs)
    {
        nvinfer1::Dims const dims = context->getTensorShape(name.c_str()); // resolved from the input shapes
        std::size_t const size = std::max<std::size_t>(example::elementSize(engine->getTensorDataType(name.c_str())), 1);
        buffers.push_back(std::make_unique<DeviceBuffer>());
        buffers.back()->allocate(static_cast<std::size_t>(std::max<int64_t>(example::volume(dims), 0)) * size);
        context->setTensorAddress(name.c_str(), buffers.back()->ptr);
        outputBuffers[name] = buffers.back().get();
    }

    cudaStream_t stream{};
    check(cudaStreamCreate(&stream), "cudaStreamCreate");
    if (!context->enqueueV3(stream))
    {
        throw std::runtime_error("enqueueV3 failed (see TensorRT's messages above)");
    }
    check(cudaStreamSynchronize(stream), "inference");

    for (std::string const& name : outputs)
    {
        nvinfer1::Dims const dims = context->getTensorShape(name.c_str());
        nvinfer1::DataType const type = engine->getTensorDataType(name.c_str());
        int64_t const count = example::volume(dims);
        std::vector<char> host(outputBuffers[name]->bytes);
        check(cudaMemcpy(host.data(), outputBuffers[name]->ptr, host.size(), cudaMemcpyDeviceToHost), "cudaMemcpy");
        std::printf("output %s: %s", name.c_str(), example::formatDims(dims).c_str());
        if (example::elementSize(type) != 0 && count > 0)
        {
            std::vector<double> const values = toDoubles(host, type, count);
            auto const [lo, hi] = std::minmax_element(values.begin(), values.end());
            std::printf("  min %.6g  max %.6g  first %.6g", *lo, *hi, values[0]);
        }
        std::printf("\n");
    }

    if (args.iterations > 0)
    {
        cudaEvent_t start{}, stop{};
        check(cudaEventCreate(&start), "cudaEventCreate");
        check(cudaEventCreate(&stop), "cudaEventCreate");
        std::vector<float> times;
        for (int32_t i = 0; i < args.iterations; ++i)
        {
            check(cudaEventRecord(start, stream), "cudaEventRecord");
            context->enqueueV3(stream);
            check(cudaEventRecord(stop, stream), "cudaEventRecord");
            check(cudaEventSynchronize(stop), "cudaEventSynchronize");
            float ms = 0.F;
            check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
            times.push_back(ms);
        }
        std::sort(times.begin(), times.end());
        auto percentile = [&](double p) { return times[static_cast<std::size_t>(p * (times.size() - 1))]; };
        std::printf("latency over %d runs (ms): p50 %.3f  p90 %.3f  p99 %.3f\n", args.iterations, percentile(0.5),
            percentile(0.9), percentile(0.99));
        cudaEventDestroy(start);
        cudaEventDestroy(stop);
    }
    cudaStreamDestroy(stream);
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    return example::runMain(argc, argv, "run_engine", runEngine);
}
