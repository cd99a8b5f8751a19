// Typed plugin attributes <-> PluginFieldCollection.
//
// A plugin declares its attributes as a plain struct with default member
// initializers and a table of (name, member pointer) pairs:
//
//     struct RmsNormAttrs {
//         int32_t axis = -1;
//         float epsilon = 1e-5F;
//         static constexpr auto fields = plugkit::fieldTable(
//             plugkit::field("axis", &RmsNormAttrs::axis),
//             plugkit::field("epsilon", &RmsNormAttrs::epsilon));
//         void validate() const;  // optional: throw plugkit::Error on bad values
//     };
//
// From that table the SDK derives the creator's field names, parses the
// fields TensorRT passes to createPlugin (the ONNX parser passes node
// attributes; a missing field keeps its default), and emits the fields that
// getFieldsToSerialize returns.
#pragma once

#include "plugkit/status.h"

#include <NvInferRuntime.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace plugkit
{

//! The C++ member types a field may have, and the PluginFieldType each one is reported as.
template <typename T>
struct FieldTraits;

template <>
struct FieldTraits<float>
{
    static constexpr nvinfer1::PluginFieldType kType = nvinfer1::PluginFieldType::kFLOAT32;
    static constexpr bool kArray = false;
    using Element = float;
};
template <>
struct FieldTraits<int32_t>
{
    static constexpr nvinfer1::PluginFieldType kType = nvinfer1::PluginFieldType::kINT32;
    static constexpr bool kArray = false;
    using Element = int32_t;
};
template <>
struct FieldTraits<int64_t>
{
    static constexpr nvinfer1::PluginFieldType kType = nvinfer1::PluginFieldType::kINT64;
    static constexpr bool kArray = false;
    using Element = int64_t;
};
template <typename E>
struct FieldTraits<std::vector<E>>
{
    static constexpr nvinfer1::PluginFieldType kType = FieldTraits<E>::kType;
    static constexpr bool kArray = true;
    using Element = E;
};
template <>
struct FieldTraits<std::string>
{
    static constexpr nvinfer1::PluginFieldType kType = nvinfer1::PluginFieldType::kCHAR;
    static constexpr bool kArray = true;
    using Element = char;
};

inline char const* fieldTypeName(nvinfer1::PluginFieldType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginFieldType::kFLOAT16: return "FLOAT16";
    case nvinfer1::PluginFieldType::kFLOAT32: return "FLOAT32";
    case nvinfer1::PluginFieldType::kFLOAT64: return "FLOAT64";
    case nvinfer1::PluginFieldType::kINT8: return "INT8";
    case nvinfer1::PluginFieldType::kINT16: return "INT16";
    case nvinfer1::PluginFieldType::kINT32: return "INT32";
    case nvinfer1::PluginFieldType::kCHAR: return "CHAR";
    case nvinfer1::PluginFieldType::kDIMS: return "DIMS";
    case nvinfer1::PluginFieldType::kUNKNOWN: return "UNKNOWN";
    case nvinfer1::PluginFieldType::kBF16: return "BF16";
    case nvinfer1::PluginFieldType::kINT64: return "INT64";
    case nvinfer1::PluginFieldType::kFP8: return "FP8";
    case nvinfer1::PluginFieldType::kINT4: return "INT4";
    case nvinfer1::PluginFieldType::kFP4: return "FP4";
    }
    return "UNKNOWN";
}

//! One attribute: its name and where it lives in the attribute struct.
template <typename Attrs, typename T>
struct Field
{
    char const* name;
    T Attrs::*member;
    using Value = T;
};

template <typename Attrs, typename T>
constexpr Field<Attrs, T> field(char const* name, T Attrs::*member)
{
    static_assert(sizeof(FieldTraits<T>) > 0, "unsupported field type");
    return {name, member};
}

template <typename... Fields>
constexpr std::tuple<Fields...> fieldTable(Fields... fields)
{
    return std::tuple<Fields...>(fields...);
}

namespace detail
{
// Read `count` numbers stored as `type` and convert each to E, refusing values E cannot hold.
template <typename E>
std::vector<E> readNumbers(nvinfer1::PluginField const& f, char const* fieldName)
{
    using nvinfer1::PluginFieldType;
    std::vector<E> out;
    out.reserve(static_cast<size_t>(f.length));
    auto convert = [&](auto const* src) {
        for (int32_t i = 0; i < f.length; ++i)
        {
            auto const v = src[i];
            if constexpr (std::is_integral_v<E>)
            {
                using S = std::decay_t<decltype(v)>;
                if constexpr (std::is_integral_v<S>)
                {
                    PLUGKIT_CHECK(static_cast<long double>(v) >= static_cast<long double>(std::numeric_limits<E>::min())
                            && static_cast<long double>(v) <= static_cast<long double>(std::numeric_limits<E>::max()),
                        "field '" << fieldName << "': value " << v << " does not fit in "
                                  << fieldTypeName(FieldTraits<E>::kType));
                }
            }
            out.push_back(static_cast<E>(v));
        }
    };
    // The caller has checked that f.type is a number type of E's kind (integer or float).
    switch (f.type)
    {
    case PluginFieldType::kINT8: convert(static_cast<int8_t const*>(f.data)); break;
    case PluginFieldType::kINT16: convert(static_cast<int16_t const*>(f.data)); break;
    case PluginFieldType::kINT32: convert(static_cast<int32_t const*>(f.data)); break;
    case PluginFieldType::kINT64: convert(static_cast<int64_t const*>(f.data)); break;
    case PluginFieldType::kFLOAT32: convert(static_cast<float const*>(f.data)); break;
    case PluginFieldType::kFLOAT64: convert(static_cast<double const*>(f.data)); break;
    default: PLUGKIT_CHECK(false, "field '" << fieldName << "': cannot read " << fieldTypeName(f.type));
    }
    return out;
}

inline bool isNumberType(nvinfer1::PluginFieldType t, bool integral)
{
    using nvinfer1::PluginFieldType;
    if (integral)
    {
        return t == PluginFieldType::kINT8 || t == PluginFieldType::kINT16 || t == PluginFieldType::kINT32
            || t == PluginFieldType::kINT64;
    }
    return t == PluginFieldType::kFLOAT32 || t == PluginFieldType::kFLOAT64;
}

// Parse one PluginField into `value`. Integer fields accept any integer field type whose
// values fit (the ONNX parser passes INT attributes as INT32, numpy users often pass INT64);
// float fields accept FLOAT32 and FLOAT64. Anything else is a type error.
template <typename T>
void parseField(nvinfer1::PluginField const& f, T& value)
{
    using Traits = FieldTraits<T>;
    PLUGKIT_CHECK(f.length >= 0, "field '" << f.name << "': negative length " << f.length);
    PLUGKIT_CHECK(f.data != nullptr || f.length == 0, "field '" << f.name << "': no data");
    if constexpr (std::is_same_v<T, std::string>)
    {
        PLUGKIT_CHECK(f.type == nvinfer1::PluginFieldType::kCHAR,
            "field '" << f.name << "' is a string (CHAR); got " << fieldTypeName(f.type));
        value.assign(static_cast<char const*>(f.data), static_cast<size_t>(f.length));
        value.erase(value.find_last_not_of('\0') + 1); // a C string's terminator is not part of it
    }
    else
    {
        using E = typename Traits::Element;
        PLUGKIT_CHECK(isNumberType(f.type, std::is_integral_v<E>),
            "field '" << f.name << "' is " << fieldTypeName(Traits::kType) << (Traits::kArray ? "[]" : "") << "; got "
                      << fieldTypeName(f.type));
        std::vector<E> numbers = readNumbers<E>(f, f.name);
        if constexpr (Traits::kArray)
        {
            value = std::move(numbers);
        }
        else
        {
            PLUGKIT_CHECK(numbers.size() == 1,
                "field '" << f.name << "' is a single " << fieldTypeName(Traits::kType) << "; got " << numbers.size()
                          << " values");
            value = numbers[0];
        }
    }
}

template <typename T>
nvinfer1::PluginField toPluginField(char const* name, T const& value)
{
    using Traits = FieldTraits<T>;
    if constexpr (std::is_same_v<T, std::string>)
    {
        return {name, value.c_str(), Traits::kType, static_cast<int32_t>(value.size())};
    }
    else if constexpr (Traits::kArray)
    {
        return {name, value.data(), Traits::kType, static_cast<int32_t>(value.size())};
    }
    else
    {
        return {name, &value, Traits::kType, 1};
    }
}

template <typename A, typename = void>
struct HasValidate : std::false_type
{
};
template <typename A>
struct HasValidate<A, std::void_t<decltype(std::declval<A const&>().validate())>> : std::true_type
{
};
} // namespace detail

//! The creator's field list: names and types, no data. Arrays and strings report length 0 (any length).
template <typename Attrs>
std::vector<nvinfer1::PluginField> fieldNames()
{
    std::vector<nvinfer1::PluginField> names;
    std::apply(
        [&](auto const&... f) {
            (names.emplace_back(f.name, nullptr, FieldTraits<typename std::decay_t<decltype(f)>::Value>::kType,
                 FieldTraits<typename std::decay_t<decltype(f)>::Value>::kArray ? 0 : 1),
                ...);
        },
        Attrs::fields);
    return names;
}

//! Attributes from a field collection: defaults, overridden by the fields present, then validated.
//! Unknown, duplicated or mistyped fields are errors that name the field.
template <typename Attrs>
Attrs parseFields(nvinfer1::PluginFieldCollection const* fc)
{
    Attrs attrs{};
    int32_t const nbFields = fc ? fc->nbFields : 0;
    PLUGKIT_CHECK(nbFields >= 0 && (nbFields == 0 || fc->fields != nullptr), "malformed PluginFieldCollection");
    std::vector<std::string> seen;
    for (int32_t i = 0; i < nbFields; ++i)
    {
        nvinfer1::PluginField const& pf = fc->fields[i];
        PLUGKIT_CHECK(pf.name != nullptr, "field #" << i << " has no name");
        std::string const name = pf.name;
        for (auto const& s : seen)
        {
            PLUGKIT_CHECK(s != name, "field '" << name << "' is given twice");
        }
        seen.push_back(name);
        bool known = false;
        std::apply(
            [&](auto const&... f) {
                ((name == f.name ? (detail::parseField(pf, attrs.*(f.member)), known = true) : false), ...);
            },
            Attrs::fields);
        if (!known)
        {
            std::string expected;
            std::apply([&](auto const&... f) { ((expected += (expected.empty() ? "" : ", ") + std::string(f.name)), ...); },
                Attrs::fields);
            PLUGKIT_CHECK(false, "unknown field '" << name << "'; this plugin's fields are: "
                                                  << (expected.empty() ? "none" : expected));
        }
    }
    if constexpr (detail::HasValidate<Attrs>::value)
    {
        attrs.validate();
    }
    return attrs;
}

//! Bits of one element of a field type, as TensorRT's PluginField documents them: 4 for kINT4 and
//! kFP4, 8 for kUNKNOWN (its length counts bytes), one Dims for kDIMS; 0 for a value outside the enum.
inline int32_t fieldElementBits(nvinfer1::PluginFieldType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginFieldType::kINT4:
    case nvinfer1::PluginFieldType::kFP4: return 4;
    case nvinfer1::PluginFieldType::kINT8:
    case nvinfer1::PluginFieldType::kFP8:
    case nvinfer1::PluginFieldType::kCHAR:
    case nvinfer1::PluginFieldType::kUNKNOWN: return 8;
    case nvinfer1::PluginFieldType::kFLOAT16:
    case nvinfer1::PluginFieldType::kBF16:
    case nvinfer1::PluginFieldType::kINT16: return 16;
    case nvinfer1::PluginFieldType::kFLOAT32:
    case nvinfer1::PluginFieldType::kINT32: return 32;
    case nvinfer1::PluginFieldType::kFLOAT64:
    case nvinfer1::PluginFieldType::kINT64: return 64;
    case nvinfer1::PluginFieldType::kDIMS: return 8 * static_cast<int32_t>(sizeof(nvinfer1::Dims));
    default: return 0;
    }
}

//! Bytes of one element of a field type; kUNKNOWN counts bytes, kDIMS one Dims; 0 for sub-byte types.
inline size_t fieldElementSize(nvinfer1::PluginFieldType type) noexcept
{
    int32_t const bits = fieldElementBits(type);
    return bits % 8 == 0 ? static_cast<size_t>(bits / 8) : 0;
}

//! The fields that recreate `attrs`; they point into `attrs`, which must outlive them.
template <typename Attrs>
std::vector<nvinfer1::PluginField> serializeFields(Attrs const& attrs)
{
    std::vector<nvinfer1::PluginField> out;
    std::apply([&](auto const&... f) { (out.push_back(detail::toPluginField(f.name, attrs.*(f.member))), ...); },
        Attrs::fields);
    return out;
}

} // namespace plugkit
