// Build a TensorRT engine from an ONNX model that uses plugkit plugins, the C++ way:
// logger -> builder -> network -> ONNX parser -> builder config (workspace limit,
// optimization profile) -> buildSerializedNetwork -> save.
//
//   build_engine model.plugged.onnx model.engine --plugins libplugkit_plugins.so
//       [--shapes input:1x3x32x64,1x3x32x448,1x3x32x1024] [--workspace 1024] [--fp16] [--strongly-typed]
//
// The ONNX parser (NvOnnxParser.h, libnvonnxparser) ships with TensorRT, not with
// the header-only set CI compiles against; without it this file still compiles
// (so the builder/config calls are type-checked) and the program says what is missing.
#include "common.h"

#include "plugkit/loader.h"

#include <NvInfer.h>

#ifndef PLUGKIT_HAVE_ONNX_PARSER
#if __has_include(<NvOnnxParser.h>)
#define PLUGKIT_HAVE_ONNX_PARSER 1
#else
#define PLUGKIT_HAVE_ONNX_PARSER 0
#endif
#endif
#if PLUGKIT_HAVE_ONNX_PARSER
#include <NvOnnxParser.h>
#endif

#include <cstdio>
#include <memory>
#include <string>

namespace
{

//! "name:MIN,OPT,MAX" (or "name:SHAPE") -> the profile's three dims for that input.
void addShapeRange(nvinfer1::IOptimizationProfile& profile, std::string const& spec)
{
    std::size_t const colon = spec.rfind(':');
    if (colon == std::string::npos)
    {
        throw std::runtime_error("--shapes " + spec + ": write NAME:MIN,OPT,MAX");
    }
    std::string const name = spec.substr(0, colon);
    std::string const shapes = spec.substr(colon + 1);
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t comma; (comma = shapes.find(',', start)) != std::string::npos; start = comma + 1)
    {
        parts.push_back(shapes.substr(start, comma - start));
    }
    parts.push_back(shapes.substr(start));
    if (parts.size() == 1)
    {
        parts = {parts[0], parts[0], parts[0]};
    }
    if (parts.size() != 3)
    {
        throw std::runtime_error("--shapes " + spec + ": give one shape or three (MIN,OPT,MAX)");
    }
    using nvinfer1::OptProfileSelector;
    bool ok = profile.setDimensions(name.c_str(), OptProfileSelector::kMIN, example::parseDims(parts[0]));
    ok = ok && profile.setDimensions(name.c_str(), OptProfileSelector::kOPT, example::parseDims(parts[1]));
    ok = ok && profile.setDimensions(name.c_str(), OptProfileSelector::kMAX, example::parseDims(parts[2]));
    if (!ok)
    {
        throw std::runtime_error("--shapes " + spec + ": TensorRT rejected the range (MIN <= OPT <= MAX per dimension?)");
    }
}

int buildEngine(example::Args const& args)
{
    if (args.positional.size() != 2)
    {
        std::fprintf(stderr,
            "usage: build_engine MODEL.onnx OUT.engine --plugins LIB.so [--shapes NAME:MIN,OPT,MAX] "
            "[--workspace MiB] [--fp16] [--strongly-typed]\n");
        return 2;
    }
    std::string const& onnxPath = args.positional[0];
    std::string const& enginePath = args.positional[1];

    example::Logger logger;
    std::unique_ptr<nvinfer1::IBuilder> builder{nvinfer1::createInferBuilder(logger)};
    if (!builder)
    {
        throw std::runtime_error("cannot create a TensorRT builder (is a CUDA GPU visible?)");
    }
    // The parser looks plugin creators up in the builder's registry.
    plugkit::loadPlugins(builder->getPluginRegistry(), args.plugins);

    uint32_t networkFlags = 0;
    if (args.stronglyTyped)
    {
        networkFlags |= 1U << static_cast<uint32_t>(nvinfer1::NetworkDefinitionCreationFlag::kSTRONGLY_TYPED);
    }
    std::unique_ptr<nvinfer1::INetworkDefinition> network{builder->createNetworkV2(networkFlags)};

#if PLUGKIT_HAVE_ONNX_PARSER
    std::unique_ptr<nvonnxparser::IParser> parser{nvonnxparser::createParser(*network, logger)};
    if (!parser->parseFromFile(onnxPath.c_str(), static_cast<int32_t>(nvinfer1::ILogger::Severity::kWARNING)))
    {
        for (int32_t i = 0; i < parser->getNbErrors(); ++i)
        {
            std::fprintf(stderr, "ONNX parser: %s\n", parser->getError(i)->desc());
        }
        std::fprintf(stderr,
            "cannot parse %s (for a plugin node: `plugkit doctor %s --plugins LIB` names the mismatch)\n",
            onnxPath.c_str(), onnxPath.c_str());
        return 1;
    }
#else
    std::fprintf(stderr,
        "build_engine was compiled without TensorRT's ONNX parser (NvOnnxParser.h not found); "
        "reconfigure with a full TensorRT install (-DTensorRT_ROOT=...) to parse %s\n",
        onnxPath.c_str());
    return 1;
#endif

    std::unique_ptr<nvinfer1::IBuilderConfig> config{builder->createBuilderConfig()};
    if (args.workspaceMiB > 0)
    {
        config->setMemoryPoolLimit(nvinfer1::MemoryPoolType::kWORKSPACE, static_cast<std::size_t>(args.workspaceMiB) << 20);
    }
    if (args.fp16)
    {
#if NV_TENSORRT_MAJOR < 11
        // Weak typing: TensorRT 10 may pick fp16 kernels per layer. Deprecated in 10, removed in 11.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        config->setFlag(nvinfer1::BuilderFlag::kFP16);
#pragma GCC diagnostic pop
#else
        std::fprintf(stderr,
            "TensorRT 11 has no FP16 builder flag: networks are strongly typed. Cast the model to fp16 first "
            "(`plugkit engine --fp16` does it) and build that.\n");
        return 2;
#endif
    }
    if (!args.shapes.empty())
    {
        nvinfer1::IOptimizationProfile* profile = builder->createOptimizationProfile();
        for (std::string const& spec : args.shapes)
        {
            addShapeRange(*profile, spec);
        }
        config->addOptimizationProfile(profile);
    }

    std::unique_ptr<nvinfer1::IHostMemory> serialized{builder->buildSerializedNetwork(*network, *config)};
    if (!serialized || serialized->size() == 0)
    {
        std::fprintf(stderr, "TensorRT could not build %s (see its messages above)\n", onnxPath.c_str());
        return 1;
    }
    example::writeFile(enginePath, serialized->data(), serialized->size());
    std::printf("saved %s (%zu bytes)\n", enginePath.c_str(), serialized->size());
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    return example::runMain(argc, argv, "build_engine", buildEngine);
}
