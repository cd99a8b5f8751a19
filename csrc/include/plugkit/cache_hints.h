// Global loads that tell L1 and L2 how long to keep their lines (compute capability 8.0 and
// newer: an L2 cache policy from createpolicy, and ld.global's L1/L2 eviction qualifiers).
//
//   device (.cu)   loadCached<Evict::Last>(p)   a line read again soon (by this block or others)
//                  loadCached<Evict::First>(p)  its last read: the first line to go
//                  l2Policy<Evict::Last|First>() for other instructions that take an L2 policy
//                  loadOnce<EVICT_FIRST>(p), storeOnce<EVICT_FIRST>(p, v)  data read or written once:
//                    with EVICT_FIRST, 16-byte values as ld/st.global.cs (any architecture)
//   host (.cu)     cacheHintsCompiled(kernel)
//
// A kernel that reads its data twice, once to reduce and once to produce its output, reads it
// first with Evict::Last and then with Evict::First: the second read then comes from L2 (or L1)
// and its lines leave first, while the lines of the data still to be read twice stay. Before
// sm_80 the loads are plain (Last) or streaming (First, ld.global.cs); cacheHintsCompiled(kernel)
// says which of the two the current device runs.
// V is any type of 2, 4, 8 or a multiple of 16 bytes (Vec<T, N> of plugkit/kernels.h, uint4...),
// aligned to its size (16 for multiples of 16).
#pragma once

#include "plugkit/launch.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace plugkit
{

enum class Evict
{
    First,
    Last,
};

#if defined(__CUDACC__)

//! Whether `kernel`, as the current device runs it, was compiled for compute capability 8.0 or newer:
//! then its loadCached calls carry their hints.
template <typename... Params>
bool cacheHintsCompiled(void (*kernel)(Params...))
{
    return kernelPtxVersion(kernel) >= 80;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define PLUGKIT_CACHE_HINTS 1
#endif

#if defined(PLUGKIT_CACHE_HINTS)
//! An L2 cache policy (createpolicy) for instructions that take one (`.L2::cache_hint`): loads
//! here, bulk copies in plugkit/bulk_copy.h.
template <Evict E>
__device__ __forceinline__ uint64_t l2Policy()
{
    uint64_t policy;
    if constexpr (E == Evict::Last)
    {
        asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
    }
    else
    {
        asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    }
    return policy;
}
#endif

namespace detail
{

#if defined(PLUGKIT_CACHE_HINTS)
// One load of 2, 4, 8 or 16 bytes. Not volatile: two loads of one address with different hints
// are different instructions, which the compiler does not merge.
#define PLUGKIT_HINTED_LOAD(OPERANDS, ...)                                                                             \
    if constexpr (E == Evict::Last)                                                                                     \
    {                                                                                                                   \
        asm("ld.global.L1::evict_last.L2::cache_hint." OPERANDS __VA_ARGS__);                                          \
    }                                                                                                                   \
    else                                                                                                                \
    {                                                                                                                   \
        asm("ld.global.L1::evict_first.L2::cache_hint." OPERANDS __VA_ARGS__);                                         \
    }
template <Evict E>
__device__ __forceinline__ void hintedLoad(uint4& v, void const* p, uint64_t policy)
{
    PLUGKIT_HINTED_LOAD("v4.u32 {%0, %1, %2, %3}, [%4], %5;", : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p), "l"(policy))
}
template <Evict E>
__device__ __forceinline__ void hintedLoad(uint2& v, void const* p, uint64_t policy)
{
    PLUGKIT_HINTED_LOAD("v2.u32 {%0, %1}, [%2], %3;", : "=r"(v.x), "=r"(v.y) : "l"(p), "l"(policy))
}
template <Evict E>
__device__ __forceinline__ void hintedLoad(uint32_t& v, void const* p, uint64_t policy)
{
    PLUGKIT_HINTED_LOAD("u32 %0, [%1], %2;", : "=r"(v) : "l"(p), "l"(policy))
}
template <Evict E>
__device__ __forceinline__ void hintedLoad(unsigned short& v, void const* p, uint64_t policy)
{
    PLUGKIT_HINTED_LOAD("u16 %0, [%1], %2;", : "=h"(v) : "l"(p), "l"(policy))
}
#undef PLUGKIT_HINTED_LOAD
#endif

template <int BYTES>
struct Word;
template <>
struct Word<2>
{
    using type = unsigned short;
};
template <>
struct Word<4>
{
    using type = uint32_t;
};
template <>
struct Word<8>
{
    using type = uint2;
};
template <>
struct Word<16>
{
    using type = uint4;
};

} // namespace detail

//! `*p` for data read once: with EVICT_FIRST, a 16-byte value is loaded with ld.global.cs (first
//! to leave L1 and L2; no cache policy, so any architecture); otherwise, and for other sizes, plainly.
template <bool EVICT_FIRST, typename V>
__device__ __forceinline__ V loadOnce(V const* p)
{
    if constexpr (sizeof(V) == 16 && EVICT_FIRST)
    {
        uint4 const raw = __ldcs(reinterpret_cast<uint4 const*>(p));
        return *reinterpret_cast<V const*>(&raw);
    }
    else
    {
        return *p;
    }
}

//! `*p = v` for data written once: with EVICT_FIRST, a 16-byte value is stored with st.global.cs.
template <bool EVICT_FIRST, typename V>
__device__ __forceinline__ void storeOnce(V* p, V const& v)
{
    if constexpr (sizeof(V) == 16 && EVICT_FIRST)
    {
        __stcs(reinterpret_cast<uint4*>(p), *reinterpret_cast<uint4 const*>(&v));
    }
    else
    {
        *p = v;
    }
}

//! `*p`, with L1 and L2 told to keep the line (Evict::Last) or to let it go first (Evict::First).
template <Evict E, typename V>
__device__ __forceinline__ V loadCached(V const* p)
{
    constexpr int kBytes = static_cast<int>(sizeof(V));
    static_assert(kBytes == 2 || kBytes == 4 || kBytes == 8 || kBytes % 16 == 0, "2, 4, 8 or 16n bytes");
    constexpr int kWordBytes = kBytes < 16 ? kBytes : 16;
    using W = typename detail::Word<kWordBytes>::type;
    V out;
    auto* words = reinterpret_cast<W*>(&out);
    auto const* from = reinterpret_cast<W const*>(p);
#if defined(PLUGKIT_CACHE_HINTS)
    uint64_t const policy = l2Policy<E>();
#pragma unroll
    for (int w = 0; w < kBytes / kWordBytes; ++w)
    {
        detail::hintedLoad<E>(words[w], from + w, policy);
    }
#else
#pragma unroll
    for (int w = 0; w < kBytes / kWordBytes; ++w)
    {
        words[w] = E == Evict::Last ? from[w] : __ldcs(from + w);
    }
#endif
    return out;
}

#undef PLUGKIT_CACHE_HINTS

#endif // __CUDACC__

} // namespace plugkit
