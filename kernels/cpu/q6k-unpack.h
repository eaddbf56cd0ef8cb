// Internal (x86-64 only): the 6-bit quants of a Q6_K block, unpacked for the AVX2 and AVX-512
// kernels of vec-dot-avx2.cpp / vec-dot-avx512.cpp.
#pragma once
#include <immintrin.h>

#include "moerun/quant/blocks.h"

namespace moerun::kernels::cpu {

// The 128 quants (0..63) of half h (0 or 1) of block b as four registers of 32 bytes: v[s] holds
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

}  // namespace moerun::kernels::cpu
