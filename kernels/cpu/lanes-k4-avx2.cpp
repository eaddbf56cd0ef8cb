// AVX2 prefill products of Q4_K and Q5_K with Q8_K activations, 8 weight rows per pass, one row per
// 32-bit lane (the AVX2 counterpart of lanes-k-avx512.cpp, for CPUs without AVX-512: most laptops).
// A super-block of 8 rows is unpacked to unsigned bytes and transposed once into a panel: for each
// 4 elements, a ymm whose lane r holds the 4 quants of row r. vpmaddubsw against the activation's
// 4 bytes broadcast gives two int16 pair sums per row; the 8 steps of a 32-element sub-block are
// added as int16 (Q4_K: |sum| <= 8 * 2 * 15 * 127 < 2^15; Q5_K adds 4 steps at a time), then
// vpmaddwd by the sub-block scale gives int32, exact.
//
// Per row and activation, super-block after super-block in order (exact int32 sums):
//   I = sum_j sc_j * sum(q * y over j),  M = sum_j m_j * (sum of y over j),
//   acc = fma(fl(d * dy), float(I), acc),  acc_m = fma(fl(dmin * dy), float(M), acc_m),
//   result = acc - acc_m:
// the steps of the AVX2 row kernels (k4_rows in vec-dot-avx2.cpp) and the AVX-512 ones, so all give
// the same bits.
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "moerun/quant/blocks.h"

#define MOERUN_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace moerun::kernels::cpu::avx2 {
namespace {

constexpr int kRows = 8;  // weight rows per panel, one per 32-bit lane
constexpr int kTok = 4;   // activation rows per pass over the panels
// Fewer activation rows, or exactly 4 (one pass of the 4-row kernel), go through the row kernels:
// measured on Q4_K 1024 x 2048, one thread, the panels are 8-10% faster at 3, 5 and 6 rows and
// 8% slower at 4.
constexpr int kMinPanelTok = 3;

// One super-block of 8 rows. alignas: this file is compiled without -mavx, where GCC gives __m256i
// 16-byte alignment, so std::vector<Panel> would allocate at 16 what the kernels access at 32.
struct alignas(64) Panel {
    __m256i q[64];  // q[k] lane r: quants 4k..4k+3 of row r (u8)
    __m256i sc[8];  // sub-block j: lane r = row r's scale, in both int16 halves
    __m256i mn[8];  // sub-block j: lane r = row r's min, in both int16 halves
    __m256 d, dmin;
};

// 8 rows of 8 dwords to 8 ymm: out[k] lane r = dword k of in[r].
MOERUN_AVX2 inline void transpose8x8(const __m256i *in, __m256i *out) {
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

// Row x's 256 quants as 8 ymm of unsigned bytes, sub-block j in q[j]: the low nibbles of
// qs[32c..32c+32) are sub-block 2c, the high nibbles 2c+1; Q5_K adds bit j of qh[l] as bit 4.
template <class B>
MOERUN_AVX2 inline void unpack_row(const B &x, __m256i *q) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    [[maybe_unused]] __m256i qh = _mm256_setzero_si256();
    if constexpr (std::is_same_v<B, quant::BlockQ5_K>)
        qh = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qh));
    for (int c = 0; c < 4; ++c) {
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(x.qs + 32 * c));
        q[2 * c] = _mm256_and_si256(b, m4);
        q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
        if constexpr (std::is_same_v<B, quant::BlockQ5_K>)
            for (int h = 0; h < 2; ++h) {
                const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << (2 * c + h)));
                const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);
                q[2 * c + h] = _mm256_or_si256(q[2 * c + h], _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
            }
    }
}

// Super-block i of rows[0..8) into p.
template <class B>
MOERUN_AVX2 void make_panel(const uint8_t *const *rows, int64_t i, Panel &p) {
    __m256i q[kRows][8];  // [row][sub-block]
    alignas(32) int32_t sc[8][kRows], mn[8][kRows];
    alignas(16) uint16_t d[kRows], dmin[kRows];
    for (int r = 0; r < kRows; ++r) {
        const B &x = reinterpret_cast<const B *>(rows[r])[i];
        unpack_row(x, q[r]);
        const K4ScaleWords k = k4_scale_words(x.scales);
        const uint64_t s = k.sc_lo | static_cast<uint64_t>(k.sc_hi) << 32,
                       m = k.m_lo | static_cast<uint64_t>(k.m_hi) << 32;
        for (int j = 0; j < 8; ++j) {
            sc[j][r] = static_cast<int32_t>((s >> (8 * j) & 0xFF) * 0x10001u);
            mn[j][r] = static_cast<int32_t>((m >> (8 * j) & 0xFF) * 0x10001u);
        }
        d[r] = x.d;
        dmin[r] = x.dmin;
    }
    for (int j = 0; j < 8; ++j) {
        __m256i in[kRows];
        for (int r = 0; r < kRows; ++r) in[r] = q[r][j];
        transpose8x8(in, p.q + 8 * j);
        p.sc[j] = _mm256_load_si256(reinterpret_cast<const __m256i *>(sc[j]));
        p.mn[j] = _mm256_load_si256(reinterpret_cast<const __m256i *>(mn[j]));
    }
    p.d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i *>(d)));
    p.dmin = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i *>(dmin)));
}

MOERUN_AVX2 inline __m256i bcast32(const void *p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// The panels of one 8-row block against T activation rows: out[t] lane r = row r's result.
template <bool kFive, int T>
MOERUN_AVX2 void run_panels(const Panel *panels, int64_t nsb, const uint8_t *const *act, __m256 *out) {
    __m256 acc[T], acc_m[T];
    for (int t = 0; t < T; ++t) acc[t] = acc_m[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const Panel &p = panels[i];
        const ActQ8_K *y[T];
        for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const ActQ8_K *>(act[t]) + i;
        __m256i isum[T], msum[T];
        for (int t = 0; t < T; ++t) isum[t] = msum[t] = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {
            // Q5_K's quants reach 31: two int16 partial sums of 4 steps each
            constexpr int kSteps = kFive ? 4 : 8;
            for (int k0 = 0; k0 < 8; k0 += kSteps) {
                __m256i s16[T];
                for (int t = 0; t < T; ++t) s16[t] = _mm256_setzero_si256();
                for (int k = k0; k < k0 + kSteps; ++k) {
                    const __m256i q = p.q[8 * j + k];
                    for (int t = 0; t < T; ++t)
                        s16[t] = _mm256_add_epi16(
                            s16[t], _mm256_maddubs_epi16(q, bcast32(y[t]->qs + 32 * j + 4 * k)));
                }
                for (int t = 0; t < T; ++t)
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], p.sc[j]));
            }
            // m_j * (bsums[2j] + bsums[2j+1])
            for (int t = 0; t < T; ++t)
                msum[t] = _mm256_add_epi32(msum[t], _mm256_madd_epi16(p.mn[j], bcast32(y[t]->bsums + 2 * j)));
        }
        for (int t = 0; t < T; ++t) {
            const __m256 dy = _mm256_set1_ps(y[t]->d);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(p.d, dy), _mm256_cvtepi32_ps(isum[t]), acc[t]);
            acc_m[t] = _mm256_fmadd_ps(_mm256_mul_ps(p.dmin, dy), _mm256_cvtepi32_ps(msum[t]), acc_m[t]);
        }
    }
    for (int t = 0; t < T; ++t) out[t] = _mm256_sub_ps(acc[t], acc_m[t]);
}

template <class B>
MOERUN_AVX2 void tile_k4(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *act, size_t ab,
                         int64_t n_act, int64_t n, float *y, int64_t ldy) {
    constexpr bool five = std::is_same_v<B, quant::BlockQ5_K>;
    const int64_t nsb = n / 256;
    thread_local std::vector<Panel> panels_tls;
    std::vector<Panel> &panels = panels_tls;
    if (static_cast<int64_t>(panels.size()) < nsb) panels.resize(static_cast<size_t>(nsb));
    for (int64_t r0 = 0; r0 < n_rows; r0 += kRows) {
        const int valid = static_cast<int>(n_rows - r0 < kRows ? n_rows - r0 : kRows);
        const uint8_t *rows[kRows];
        for (int r = 0; r < kRows; ++r)  // lanes past the last row repeat it (not stored)
            rows[r] = w + static_cast<size_t>(r0 + (r < valid ? r : valid - 1)) * rb;
        for (int64_t i = 0; i < nsb; ++i) make_panel<B>(rows, i, panels[static_cast<size_t>(i)]);
        for (int64_t t0 = 0; t0 < n_act; t0 += kTok) {
            const int m = static_cast<int>(n_act - t0 < kTok ? n_act - t0 : kTok);
            const uint8_t *a[kTok];
            for (int t = 0; t < m; ++t) a[t] = act + static_cast<size_t>(t0 + t) * ab;
            __m256 out[kTok];
            switch (m) {
                case 4:
                    run_panels<five, 4>(panels.data(), nsb, a, out);
                    break;
                case 3:
                    run_panels<five, 3>(panels.data(), nsb, a, out);
                    break;
                case 2:
                    run_panels<five, 2>(panels.data(), nsb, a, out);
                    break;
                default:
                    run_panels<five, 1>(panels.data(), nsb, a, out);
                    break;
            }
            for (int t = 0; t < m; ++t) {
                alignas(32) float o[kRows];
                _mm256_store_ps(o, out[t]);
                std::memcpy(y + (t0 + t) * ldy + r0, o, static_cast<size_t>(valid) * sizeof(float));
            }
        }
    }
}

}  // namespace

bool lanes_k4_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                   int64_t n_act, int64_t n, float *y, int64_t ldy) {
    if (n_act < kMinPanelTok || n_act == 4) return false;
    const auto *wb = static_cast<const uint8_t *>(w);
    const auto *a = static_cast<const uint8_t *>(act);
    switch (t) {
        case quant::Type::Q4_K:
            tile_k4<quant::BlockQ4_K>(wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q5_K:
            tile_k4<quant::BlockQ5_K>(wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        default:
            return false;
    }
}

}  // namespace moerun::kernels::cpu::avx2

#else
namespace moerun::kernels::cpu::avx2 {
bool lanes_k4_tile(quant::Type, const void *, size_t, int64_t, const void *, size_t, int64_t, int64_t,
                   float *, int64_t) {
    return false;
}
}  // namespace moerun::kernels::cpu::avx2
#endif
