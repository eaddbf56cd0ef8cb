// Internal (x86-64 only): the signed quants of one 32-element weight block (Q8_0, Q4_0, Q5_0,
// IQ4_NL) as 32 int8 in a ymm, for the kernels against Q8_0 activations in vec-dot-avx2.cpp and
// vec-dot-avx512.cpp (AVX2 code, inlined into both).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "moerun/quant/blocks.h"

#define MOERUN_BLOCK32_INLINE __attribute__((target("avx2"), always_inline)) inline

namespace moerun::kernels::cpu::block32 {

// The 32 quants 0..15 of a Q4_0-packed block: elements 0..15 the low nibbles, 16..31 the high.
MOERUN_BLOCK32_INLINE __m256i nibbles(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i *>(qs));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
}

// kIQ4Values in both 128-bit lanes (vpshufb looks up within lanes).
MOERUN_BLOCK32_INLINE __m256i iq4_table() {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(quant::kIQ4Values)));
}

struct DecQ8_0 {
    using Block = quant::BlockQ8_0;
    MOERUN_BLOCK32_INLINE static __m256i quants(const Block &b) {
        return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.qs));
    }
};
struct DecQ4_0 {
    using Block = quant::BlockQ4_0;
    MOERUN_BLOCK32_INLINE static __m256i quants(const Block &b) {
        return _mm256_sub_epi8(nibbles(b.qs), _mm256_set1_epi8(8));
    }
};
struct DecQ5_0 {  // bit j of qh is bit 4 of quant j
    using Block = quant::BlockQ5_0;
    MOERUN_BLOCK32_INLINE static __m256i quants(const Block &b) {
        uint32_t qh;
        std::memcpy(&qh, b.qh, 4);
        // byte j <- byte j / 8 of qh, then keep bit j % 8 of it
        const __m256i spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(static_cast<int>(qh)),
            _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
        const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
        const __m256i hi =
            _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
        return _mm256_sub_epi8(_mm256_or_si256(nibbles(b.qs), hi), _mm256_set1_epi8(16));
    }
};
struct DecIQ4_NL {
    using Block = quant::BlockIQ4_NL;
    MOERUN_BLOCK32_INLINE static __m256i quants(const Block &b) {
        return _mm256_shuffle_epi8(iq4_table(), nibbles(b.qs));
    }
};

}  // namespace moerun::kernels::cpu::block32

#undef MOERUN_BLOCK32_INLINE
