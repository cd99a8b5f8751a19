// Small helpers the two example programs share: a logger, file I/O, shape and argument parsing, main.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace example
{

//! TensorRT reports through an ILogger the application supplies; this one prints warnings and errors.
class Logger : public nvinfer1::ILogger
{
public:
    explicit Logger(Severity threshold = Severity::kWARNING) : mThreshold(threshold) {}

    void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override
    {
        if (severity <= mThreshold)
        {
            std::fprintf(stderr, "[TensorRT] %s\n", msg);
        }
    }

private:
    Severity mThreshold;
};

inline std::vector<char> readFile(std::string const& path)
{
    std::ifstream file(path, std::ios::binary);
    if (!file)
    {
        throw std::runtime_error("cannot open " + path);
    }
    return std::vector<char>(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

inline void writeFile(std::string const& path, void const* data, std::size_t size)
{
    std::string const tmp = path + ".tmp";
    {
        std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
        file.write(static_cast<char const*>(data), static_cast<std::streamsize>(size));
        if (!file)
        {
            throw std::runtime_error("cannot write " + tmp);
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
    {
        throw std::runtime_error("cannot rename " + tmp + " to " + path);
    }
}

//! "1x3x32x64" -> Dims{4, {1, 3, 32, 64}}.
inline nvinfer1::Dims parseDims(std::string const& text)
{
    nvinfer1::Dims dims{};
    dims.nbDims = 0;
    std::size_t start = 0;
    while (start <= text.size() && !text.empty())
    {
        std::size_t const end = text.find('x', start);
        std::string const part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (dims.nbDims >= nvinfer1::Dims::MAX_DIMS)
        {
            throw std::runtime_error("too many dimensions in " + text);
        }
        dims.d[dims.nbDims++] = std::stoll(part);
        if (end == std::string::npos)
        {
            break;
        }
        start = end + 1;
    }
    return dims;
}

inline std::string formatDims(nvinfer1::Dims const& dims)
{
    std::string text;
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        text += (i ? "x" : "") + std::to_string(dims.d[i]);
    }
    return text.empty() ? "scalar" : text;
}

inline int64_t volume(nvinfer1::Dims const& dims)
{
    int64_t n = 1;
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        n *= dims.d[i];
    }
    return n;
}

//! Bytes per element; 0 for types this example does not handle.
inline std::size_t elementSize(nvinfer1::DataType type)
{
    switch (type)
    {
    case nvinfer1::DataType::kFLOAT:
    case nvinfer1::DataType::kINT32: return 4;
    case nvinfer1::DataType::kHALF:
    case nvinfer1::DataType::kBF16: return 2;
    case nvinfer1::DataType::kINT64: return 8;
    case nvinfer1::DataType::kINT8:
    case nvinfer1::DataType::kUINT8:
    case nvinfer1::DataType::kBOOL: return 1;
    default: return 0;
    }
}

//! "--plugins a.so --plugins b.so" and "--name value" options after the positional arguments.
struct Args
{
    std::vector<std::string> positional;
    std::vector<std::string> plugins;
    std::vector<std::string> shapes;
    int64_t workspaceMiB{0};
    int32_t iterations{0};
    bool fp16{false};
    bool stronglyTyped{false};
};

inline Args parseArgs(int argc, char** argv)
{
    Args args;
    for (int i = 1; i < argc; ++i)
    {
        std::string const arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
            {
                throw std::runtime_error(arg + " needs a value");
            }
            return argv[++i];
        };
        if (arg == "--plugins")
            args.plugins.push_back(value());
        else if (arg == "--shapes")
            args.shapes.push_back(value());
        else if (arg == "--workspace")
            args.workspaceMiB = std::stoll(value());
        else if (arg == "--iterations")
            args.iterations = std::stoi(value());
        else if (arg == "--fp16")
            args.fp16 = true;
        else if (arg == "--strongly-typed")
            args.stronglyTyped = true;
        else if (arg.rfind("--", 0) == 0)
            throw std::runtime_error("unknown option " + arg);
        else
            args.positional.push_back(arg);
    }
    return args;
}

//! A program's main: `body` on the parsed arguments; an exception becomes "<tool>: error: <what>" and exit code 1.
template <typename Body>
int runMain(int argc, char** argv, char const* tool, Body body)
{
    try
    {
        return body(parseArgs(argc, argv));
    }
    catch (std::exception const& e)
    {
        std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
        return 1;
    }
}

} // namespace example
