// Internal (x86-64 only): pieces shared by the AVX-512 kernels that hold 16 weight rows in the lanes
// of a zmm (lanes-avx512.cpp: the 32-element types; lanes-k-avx512.cpp: the K-quants).
#pragma once
#include <immintrin.h>

#include <climits>
#include <cstddef>
#include <cstdint>

#define MOERUN_LANES_INLINE                                                               \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c"), \
                   always_inline)) inline

namespace moerun::kernels::cpu::avx512::lanes {

constexpr int kRows = 16;        // weight rows per panel, one per 32-bit lane
constexpr int kMinPanelTok = 3;  // fewer activation rows go through the row kernels (a panel costs more)

// 16 rows of 8 dwords (q[r]: row r) to 8 zmm of 16 lanes: out[k] lane r = dword k of row r.
MOERUN_LANES_INLINE void transpose16x8(const __m256i *q, __m512i *out) {
    // z[j] = rows j | j + 4, z[j + 4] = rows j + 8 | j + 12 (j < 4), as two 256-bit halves.
    __m512i z[8];
    for (int j = 0; j < 4; ++j) {
        z[j] = _mm512_inserti64x4(_mm512_castsi256_si512(q[j]), q[j + 4], 1);
        z[j + 4] = _mm512_inserti64x4(_mm512_castsi256_si512(q[j + 8]), q[j + 12], 1);
    }
    // Within each 128-bit lane: 4 x 4 transposes of dwords (lane 0 of b[c]: dword c of rows 0..3;
    // lane 1: dword c + 4 of rows 0..3; lanes 2, 3: the same for rows 4..7; b[c + 4]: rows 8..15).
    __m512i b[8];
    for (int h = 0; h < 2; ++h) {
        const __m512i *s = z + 4 * h;
        const __m512i a0 = _mm512_unpacklo_epi32(s[0], s[1]), a1 = _mm512_unpackhi_epi32(s[0], s[1]);
        const __m512i a2 = _mm512_unpacklo_epi32(s[2], s[3]), a3 = _mm512_unpackhi_epi32(s[2], s[3]);
        b[4 * h + 0] = _mm512_unpacklo_epi64(a0, a2);
        b[4 * h + 1] = _mm512_unpackhi_epi64(a0, a2);
        b[4 * h + 2] = _mm512_unpacklo_epi64(a1, a3);
        b[4 * h + 3] = _mm512_unpackhi_epi64(a1, a3);
    }
    for (int c = 0; c < 4; ++c) {
        out[c] = _mm512_shuffle_i32x4(b[c], b[c + 4], 0x88);      // 128-bit lanes 0, 2 | 0, 2
        out[c + 4] = _mm512_shuffle_i32x4(b[c], b[c + 4], 0xDD);  // lanes 1, 3 | 1, 3
    }
}

// Activation row k: ptrs[k], or base + k * ab when ptrs is null.
struct Acts {
    const uint8_t *const *ptrs;
    const uint8_t *base;
    size_t ab;
    const uint8_t *operator[](int64_t k) const { return ptrs ? ptrs[k] : base + static_cast<size_t>(k) * ab; }
};

// Whether rows rb bytes apart can be gathered with 32-bit offsets from a panel's first row.
inline bool gather_ok(size_t rb) {
    return rb <= static_cast<size_t>(INT32_MAX / kRows);
}

// The rows of one panel: rows[r] = w + (r0 + min(r, valid - 1)) * rb (lanes past the last row repeat
// it; their results are not stored), off = rows[r] - rows[0] (needs gather_ok(rb)), keep = the lanes
// to store.
struct PanelRows {
    const uint8_t *rows[kRows];
    __m512i off;
    __mmask16 keep;
    MOERUN_LANES_INLINE PanelRows(const uint8_t *w, size_t rb, int64_t r0, int64_t n_rows) {
        const int valid = static_cast<int>(n_rows - r0 < kRows ? n_rows - r0 : kRows);
        alignas(64) int32_t o[kRows];
        for (int r = 0; r < kRows; ++r) {
            const int rr = r < valid ? r : valid - 1;
            rows[r] = w + static_cast<size_t>(r0 + rr) * rb;
            o[r] = static_cast<int32_t>(static_cast<size_t>(rr) * rb);
        }
        off = _mm512_load_si512(o);
        keep = static_cast<__mmask16>((1u << valid) - 1);
    }
};

}  // namespace moerun::kernels::cpu::avx512::lanes

#undef MOERUN_LANES_INLINE
