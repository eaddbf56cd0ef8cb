// Internal (x86-64 only): moving 8 weight rows into the 32-bit lanes of a ymm, for the kernels that
// compute one row per lane (lanes-k-avx2.cpp, lanes-32-avx2.cpp, lanes-avx512.cpp's decode rows).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#define MOERUN_AVX2_LANES_INLINE __attribute__((target("avx2"), always_inline)) inline

namespace moerun::kernels::cpu::avx2_lanes {

constexpr int kRows = 8;  // weight rows per pass, one per 32-bit lane of a ymm

// The 8 rows from r0 of a matrix of n_rows rows (row r at w + r * rb) into rows[]; lanes past the
// last row repeat it (their results are not stored). Returns how many are real.
inline int block_rows(const uint8_t *w, size_t rb, int64_t n_rows, int64_t r0, const uint8_t *rows[kRows]) {
    const int valid = static_cast<int>(n_rows - r0 < kRows ? n_rows - r0 : kRows);
    for (int r = 0; r < kRows; ++r) rows[r] = w + static_cast<size_t>(r0 + (r < valid ? r : valid - 1)) * rb;
    return valid;
}

// out[t] lane r (t < m, r < valid) to y[t * ldy + r].
MOERUN_AVX2_LANES_INLINE void store_rows8(const __m256 *out, int m, int valid, float *y, int64_t ldy) {
    for (int t = 0; t < m; ++t) {
        alignas(32) float o[kRows];
        _mm256_store_ps(o, out[t]);
        std::memcpy(y + t * ldy, o, static_cast<size_t>(valid) * sizeof(float));
    }
}

// The 4 bytes at p in every 32-bit lane.
MOERUN_AVX2_LANES_INLINE __m256i bcast32(const void *p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// 8 rows of 8 dwords to 8 ymm: out[k] lane r = dword k of in[r].
MOERUN_AVX2_LANES_INLINE void transpose8x8(const __m256i *in, __m256i *out) {
    __m256i t[8], u[8];
    for (int p = 0; p < 4; ++p) {
        t[2 * p] = _mm256_unpacklo_epi32(in[2 * p], in[2 * p + 1]);  // a0 b0 a1 b1 | a4 b4 a5 b5
        t[2 * p + 1] = _mm256_unpackhi_epi32(in[2 * p], in[2 * p + 1]);
    }
    for (int h = 0; h < 2; ++h) {  // rows 4h..4h+3
        const __m256i *s = t + 4 * h;
        u[4 * h + 0] = _mm256_unpacklo_epi64(s[0], s[2]);  // dwords 0 | 4
        u[4 * h + 1] = _mm256_unpackhi_epi64(s[0], s[2]);  // 1 | 5
        u[4 * h + 2] = _mm256_unpacklo_epi64(s[1], s[3]);  // 2 | 6
        u[4 * h + 3] = _mm256_unpackhi_epi64(s[1], s[3]);  // 3 | 7
    }
    for (int k = 0; k < 4; ++k) {
        out[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
        out[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
    }
}

// The totals of 8 rows' int32 partial sums (p[r]: 8 partials of row r) as lane r (exact: any order
// gives the same integer).
MOERUN_AVX2_LANES_INLINE __m256i sum_rows8(const __m256i *p) {
    __m256i q[4], h[2];
    for (int j = 0; j < 4; ++j)  // [row 2j, row 2j + 1] x (dwords 0 + 2, 1 + 3 | 4 + 6, 5 + 7)
        q[j] = _mm256_add_epi32(_mm256_unpacklo_epi32(p[2 * j], p[2 * j + 1]),
                                _mm256_unpackhi_epi32(p[2 * j], p[2 * j + 1]));
    for (int j = 0; j < 2; ++j)  // rows 4j..4j+3: dwords 0..3 | 4..7
        h[j] = _mm256_add_epi32(_mm256_unpacklo_epi64(q[2 * j], q[2 * j + 1]),
                                _mm256_unpackhi_epi64(q[2 * j], q[2 * j + 1]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(h[0], h[1], 0x20),
                            _mm256_permute2x128_si256(h[0], h[1], 0x31));
}

}  // namespace moerun::kernels::cpu::avx2_lanes

#undef MOERUN_AVX2_LANES_INLINE
