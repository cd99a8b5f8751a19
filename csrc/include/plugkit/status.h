// Errors, logging and CUDA checks for plugin code.
//
// Plugin code reports problems by throwing plugkit::Error (PLUGKIT_CHECK,
// PLUGKIT_CUDA_CHECK). The SDK's IPluginV3 methods catch every exception at
// the TensorRT ABI boundary, log it through the logger TensorRT gave the
// library, and return TensorRT's failure value: no exception crosses the ABI.
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <string>

namespace plugkit
{

//! An error a plugin reports; its message names the thing and, where possible, the fix.
class Error : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

namespace detail
{
// The logger finder is library-wide configuration that TensorRT (or the plugkit
// host) hands over through the exported setLoggerFinder(); plugins hold no state of it.
inline nvinfer1::ILoggerFinder*& loggerFinder() noexcept
{
    static nvinfer1::ILoggerFinder* finder = nullptr;
    return finder;
}
} // namespace detail

//! Send a message to TensorRT's logger, or to stderr when the library was loaded without one.
inline void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept
{
    try
    {
        nvinfer1::ILogger* logger = detail::loggerFinder() ? detail::loggerFinder()->findLogger() : nullptr;
        if (logger)
        {
            logger->log(severity, message.c_str());
        }
        else if (severity <= nvinfer1::ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "[plugkit] %s\n", message.c_str());
        }
    }
    catch (...)
    {
    }
}

inline void logError(std::string const& message) noexcept
{
    log(nvinfer1::ILogger::Severity::kERROR, message);
}

//! Run `body`; turn any exception into a logged error (prefixed by `where`) and `onError`.
template <typename R, typename Body>
R guarded(char const* where, std::string const& who, R onError, Body&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& e)
    {
        logError(who + ": " + where + ": " + e.what());
    }
    catch (...)
    {
        logError(who + ": " + where + ": unknown exception");
    }
    return onError;
}

} // namespace plugkit

//! Throw plugkit::Error with a streamed message when `cond` is false.
#define PLUGKIT_CHECK(cond, message)                                                                                   \
    do                                                                                                                 \
    {                                                                                                                  \
        if (!(cond))                                                                                                   \
        {                                                                                                              \
            std::ostringstream plugkit_message_;                                                                       \
            plugkit_message_ << message;                                                                               \
            throw ::plugkit::Error(plugkit_message_.str());                                                            \
        }                                                                                                              \
    } while (0)

//! Throw plugkit::Error naming the failed CUDA call and its error string.
#define PLUGKIT_CUDA_CHECK(call)                                                                                       \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t const plugkit_status_ = (call);                                                                    \
        PLUGKIT_CHECK(plugkit_status_ == cudaSuccess,                                                                  \
            #call << " failed: " << cudaGetErrorName(plugkit_status_) << " (" << cudaGetErrorString(plugkit_status_)  \
                  << ")");                                                                                             \
    } while (0)
