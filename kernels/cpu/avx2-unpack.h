// Internal (x86-64 only): the quants of a Q4_K/Q5_K, Q6_K or Q2_K/Q3_K super-block unpacked to unsigned
// bytes (IQ4_XS: its looked-up values, signed), 32 elements per ymm, for the AVX2 and AVX-512 kernels
// (vec-dot-avx2.cpp, lanes-k-avx2.cpp, vec-dot-avx512.cpp).
#pragma once
#include <immintrin.h>

#include <type_traits>

#include "block32-decode.h"
#include "moerun/quant/blocks.h"
#include "vec-dot-impl.h"

namespace moerun::kernels::cpu {

// The 256 quants of a Q4_K (0..15) or Q5_K (0..31) block, sub-block j (elements 32j..32j+31) in
// q[j]: the low nibbles of qs[32c..32c+32) are sub-block 2c, the high nibbles 2c+1; Q5_K adds bit j
// of qh[l] as bit 4 of element l of sub-block j.
template <class B>
__attribute__((target("avx2"), always_inline)) inline void k4_unpack_u8(const B &x, __m256i q[8]) {
    constexpr bool five = std::is_same_v<B, quant::BlockQ5_K>;
    static_assert(five || std::is_same_v<B, quant::BlockQ4_K>);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    [[maybe_unused]] __m256i qh = _mm256_setzero_si256();
    if constexpr (five) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qh));
    for (int c = 0; c < 4; ++c) {
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * c));
        q[2 * c] = _mm256_and_si256(b, m4);
        q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
        if constexpr (five)
            for (int h = 0; h < 2; ++h) {
                const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << (2 * c + h)));
                const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
                q[2 * c + h] = _mm256_or_si256(q[2 * c + h], _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
            }
    }
}

// The 128 quants (0..63) of half h (0 or 1) of Q6_K block b as four registers of 32 bytes: v[s] holds
// elements 128 h + 32 s .. 128 h + 32 s + 31 (low 4 bits from ql, high 2 bits from qh).
__attribute__((target("avx2"), always_inline)) inline void q6_k_unpack_half(const quant::BlockQ6_K &b, int h,
                                                                            __m256i v[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.ql + 64 * h));
    const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.ql + 64 * h + 32));
    const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b.qh + 32 * h));
    const __m256i lo[4] = {_mm256_and_si256(ql0, m4), _mm256_and_si256(ql1, m4),
                           _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4)};
    for (int s = 0; s < 4; ++s) {
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * s), m2);
        v[s] = _mm256_or_si256(lo[s], _mm256_slli_epi16(hi, 4));
    }
}

// The 256 quants of a Q2_K (0..3) or Q3_K (0..7, the stored value; the quant is that - 4) block, 32
// elements per register: q[4h + s] holds elements 128h + 32s .. + 31, bits 2s..2s+1 of qs[32h + l]
// (Q3_K: plus bit 4h + s of hmask[l] as bit 2); its low 16 bytes are sub-block 8h + 2s, the high
// 16 the next. sc16: the 16 sub-block scales as int16 (Q3_K: the 6-bit value - 32); mn16: Q2_K's
// 16 mins.
template <class B>
__attribute__((target("avx2"), always_inline)) inline void k2_unpack_u8(const B &x, __m256i q[8],
                                                                        __m256i &sc16, __m256i &mn16) {
    constexpr bool three = std::is_same_v<B, quant::BlockQ3_K>;
    static_assert(three || std::is_same_v<B, quant::BlockQ2_K>);
    if constexpr (three) {
        uint32_t wd[4];  // in registers: a 16-byte load of 4-byte stores would stall forwarding
        q3_k_scale_words(x.scales, wd);
        const __m128i b = _mm_set_epi32(static_cast<int>(wd[3]), static_cast<int>(wd[2]),
                                        static_cast<int>(wd[1]), static_cast<int>(wd[0]));
        sc16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(b), _mm256_set1_epi16(32));
        mn16 = _mm256_setzero_si256();
    } else {
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i *>(x.scales));
        sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(b, _mm_set1_epi8(0x0F)));
        mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F)));
    }
    const __m256i m2 = _mm256_set1_epi8(3);
    [[maybe_unused]] __m256i hm = _mm256_setzero_si256();
    if constexpr (three) hm = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.hmask));
    for (int h = 0; h < 2; ++h) {
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * h));
        for (int k = 0; k < 4; ++k) {
            const int r = 4 * h + k;
            q[r] = _mm256_and_si256(_mm256_srli_epi16(b, 2 * k), m2);
            if constexpr (three) {
                const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << r));
                q[r] = _mm256_or_si256(
                    q[r],
                    _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit), _mm256_set1_epi8(4)));
            }
        }
    }
}

// The 256 values of an IQ4_XS block (kIQ4Values, -127..113, s8), sub-block ib (elements 32ib..32ib+31)
// in v[ib]: its low nibbles of qs[16ib..16ib+16) are elements 0..15, the high nibbles 16..31.
// sc: the 8 sub-block scales ls - 32 (-32..31) as int16.
__attribute__((target("avx2"), always_inline)) inline void iq4_xs_unpack(const quant::BlockIQ4_XS &x,
                                                                         __m256i v[8], __m128i &sc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i table = block32::iq4_table();
    for (int c = 0; c < 4; ++c) {  // sub-blocks 2c, 2c + 1
        const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * c));
        const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        v[2 * c] = _mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x20));
        v[2 * c + 1] = _mm256_shuffle_epi8(table, _mm256_permute2x128_si256(lo, hi, 0x31));
    }
    sc = _mm_sub_epi16(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(
                           static_cast<long long>(iq4_xs_scale_bytes(x.scales_l, x.scales_h)))),
                       _mm_set1_epi16(32));
}

}  // namespace moerun::kernels::cpu
