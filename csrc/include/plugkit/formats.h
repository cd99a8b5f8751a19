// Declarative dtype/format rules for supportsFormatCombination and getOutputDataTypes.
//
// A plugin lists one rule per tensor position (inputs first, then outputs):
//
//     static constexpr plugkit::IoRule kIoRules[] = {
//         plugkit::anyOf(plugkit::kFloatTypes),  // X
//         plugkit::anyOf(plugkit::kFloatTypes),  // scale
//         plugkit::sameAs(0),                    // Y has X's type
//     };
//
// Every position is linear (row-major) unless its rule says otherwise. TensorRT
// asks about position `pos` knowing only positions 0..pos, so `sameAs` must
// name an earlier position; isValid() checks that at compile time. TensorRT 11
// networks are strongly typed: every dtype a plugin accepts must be listed here.
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>
#include <string>

namespace plugkit
{

using TypeMask = uint32_t;

constexpr TypeMask typeBit(nvinfer1::DataType t)
{
    return TypeMask{1} << static_cast<int32_t>(t);
}

constexpr TypeMask kFloatTypes
    = typeBit(nvinfer1::DataType::kFLOAT) | typeBit(nvinfer1::DataType::kHALF) | typeBit(nvinfer1::DataType::kBF16);
constexpr TypeMask kFloat32Only = typeBit(nvinfer1::DataType::kFLOAT);
constexpr TypeMask kIndexTypes = typeBit(nvinfer1::DataType::kINT32) | typeBit(nvinfer1::DataType::kINT64);

//! What one tensor position accepts.
struct IoRule
{
    TypeMask types = 0;     //!< accepted dtypes, when sameAs < 0
    int32_t sameAs = -1;    //!< position whose dtype this one must equal, or -1
    uint32_t formats = 1U << static_cast<int32_t>(nvinfer1::TensorFormat::kLINEAR); //!< accepted formats (bit mask)
};

constexpr IoRule anyOf(TypeMask types)
{
    return IoRule{types, -1};
}

constexpr IoRule sameAs(int32_t position)
{
    return IoRule{0, position};
}

//! True when every `sameAs` names an earlier position and every rule accepts something.
template <size_t N>
constexpr bool isValid(IoRule const (&rules)[N])
{
    for (size_t i = 0; i < N; ++i)
    {
        if (rules[i].sameAs >= static_cast<int32_t>(i) || (rules[i].sameAs < 0 && rules[i].types == 0)
            || rules[i].formats == 0)
        {
            return false;
        }
    }
    return true;
}

//! Whether position `pos` of `inOut` (inputs, then outputs) satisfies its rule. A layer with
//! `nbInputs` fewer than the rules' inputs (optional trailing inputs left out) has its outputs
//! at earlier positions; they keep the output rules, and so do the positions `sameAs` names.
template <size_t N>
bool supportsCombination(IoRule const (&rules)[N], int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
    int32_t nbInputs, int32_t nbRuleInputs)
{
    int32_t const missing = nbRuleInputs - nbInputs;
    int32_t const rulePos = pos < nbInputs ? pos : pos + missing;
    if (pos < 0 || missing < 0 || rulePos >= static_cast<int32_t>(N))
    {
        return false;
    }
    IoRule const& rule = rules[rulePos];
    nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
    if (!(rule.formats & (1U << static_cast<int32_t>(desc.format))))
    {
        return false;
    }
    if (rule.sameAs >= 0)
    {
        if (rule.sameAs >= nbInputs && rule.sameAs < nbRuleInputs)
        {
            return false; // the input it follows is left out
        }
        return desc.type == inOut[rule.sameAs < nbInputs ? rule.sameAs : rule.sameAs - missing].desc.type;
    }
    return (rule.types & typeBit(desc.type)) != 0;
}

//! The same, for a layer with every input the rules name.
template <size_t N>
bool supportsCombination(IoRule const (&rules)[N], int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut)
{
    return pos >= 0 && pos < static_cast<int32_t>(N) && supportsCombination(rules, pos, inOut, 0, 0);
}

//! The single dtype a mask allows, or false when it allows several (the output type is then not implied).
inline bool singleType(TypeMask mask, nvinfer1::DataType& out)
{
    if (mask == 0 || (mask & (mask - 1)) != 0)
    {
        return false;
    }
    int32_t bit = 0;
    while (!(mask & (TypeMask{1} << bit)))
    {
        ++bit;
    }
    out = static_cast<nvinfer1::DataType>(bit);
    return true;
}

inline char const* dataTypeName(nvinfer1::DataType t) noexcept
{
    switch (t)
    {
    case nvinfer1::DataType::kFLOAT: return "float32";
    case nvinfer1::DataType::kHALF: return "float16";
    case nvinfer1::DataType::kINT8: return "int8";
    case nvinfer1::DataType::kINT32: return "int32";
    case nvinfer1::DataType::kBOOL: return "bool";
    case nvinfer1::DataType::kUINT8: return "uint8";
    case nvinfer1::DataType::kFP8: return "fp8";
    case nvinfer1::DataType::kBF16: return "bfloat16";
    case nvinfer1::DataType::kINT64: return "int64";
    case nvinfer1::DataType::kINT4: return "int4";
    default: return "unknown";
    }
}

//! Size in bytes of one element (0 for sub-byte types).
inline int32_t elementSize(nvinfer1::DataType t) noexcept
{
    switch (t)
    {
    case nvinfer1::DataType::kINT64: return 8;
    case nvinfer1::DataType::kFLOAT:
    case nvinfer1::DataType::kINT32: return 4;
    case nvinfer1::DataType::kHALF:
    case nvinfer1::DataType::kBF16: return 2;
    case nvinfer1::DataType::kINT8:
    case nvinfer1::DataType::kUINT8:
    case nvinfer1::DataType::kBOOL:
    case nvinfer1::DataType::kFP8: return 1;
    default: return 0;
    }
}

//! Dims as "[2, 5, 4096]" for messages.
inline std::string toString(nvinfer1::Dims const& d)
{
    std::string s = "[";
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        s += (i ? ", " : "") + std::to_string(d.d[i]);
    }
    return s + "]";
}

//! Number of elements, or -1 when a dimension is unknown (-1).
inline int64_t volume(nvinfer1::Dims const& d) noexcept
{
    int64_t v = 1;
    for (int32_t i = 0; i < d.nbDims; ++i)
    {
        if (d.d[i] < 0)
        {
            return -1;
        }
        v *= d.d[i];
    }
    return v;
}

} // namespace plugkit
