// AVX2 prefill products of the super-block types Q4_K, Q5_K, Q6_K, Q3_K, Q2_K, IQ4_XS with Q8_K activations,
// 8 weight rows per pass, one row per 32-bit lane (the AVX2 counterpart of lanes-k-avx512.cpp, for
// CPUs without AVX-512: most laptops). A super-block of 8 rows is unpacked to unsigned bytes and
// transposed once into a panel: for each 4 elements, a ymm whose lane r holds the 4 quants of row
// r. vpmaddubsw against the activation's 4 bytes broadcast gives two int16 pair sums per row;
// kSteps such steps are added as int16 while they cannot overflow (Q4_K: 8 steps, 8 * 2 * 15 * 128
// < 2^15; Q5_K: 4; Q6_K: 2; Q3_K, Q2_K: the 4 of a sub-block), then vpmaddwd by the sub-block scale
// gives int32, exact.
//
// Per row and activation, super-block after super-block in order (exact int32 sums):
//   Q4_K, Q5_K, Q2_K: I = sum_j sc_j * sum(q * y over j),  M = sum_j m_j * (sum of y over j),
//                     acc = fma(fl(d * dy), float(I), acc),  acc_m = fma(fl(dmin * dy), float(M), acc_m),
//                     result = acc - acc_m;
//   Q6_K, Q3_K:       I = sum_j sc_j * sum(q * y over j) - offset * sum_j sc_j * (sum of y over j)
//                     (the quants are stored + 32, + 4), acc = fma(fl(d * dy), float(I), acc), result = acc;
//   IQ4_XS:           its values are signed (-127..113) and reach 2 * 127 * 127 in a pair, so its panel
//                     keeps |v| and v, each step is |v| x sign(y, v) and goes to int32 by the scale at
//                     once: I = sum_j (ls_j - 32) * sum(v * y over j), acc = fma(fl(d * dy), float(I), acc);
// the steps of the AVX2 row kernels (k4_rows, q6_k_rows, k2_rows, iq4_xs_rows in vec-dot-avx2.cpp)
// and the AVX-512 ones, so all give the same bits.
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "avx2-lanes.h"
#include "avx2-unpack.h"
#include "moerun/quant/blocks.h"

#define MOERUN_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace moerun::kernels::cpu::avx2 {
namespace {

using avx2_lanes::bcast32;
using avx2_lanes::kRows;  // weight rows per panel, one per 32-bit lane
constexpr int kTok = 4;   // activation rows per pass over the panels
// Fewer activation rows, or exactly 4 (one pass of the 4-row kernel), go through the row kernels:
// measured on Q4_K 1024 x 2048, one thread, the panels are 8-10% faster at 3, 5 and 6 rows and
// 8% slower at 4.
constexpr int kMinPanelTok = 3;

// One super-block of 8 rows. alignas: this file is compiled without -mavx, where GCC gives __m256i
// 16-byte alignment, so std::vector<Panel> would allocate at 16 what the kernels access at 32.
struct alignas(64) Panel {
    __m256i q[64];   // q[k] lane r: quants 4k..4k+3 of row r (u8)
    __m256i sc[16];  // sub-block j (Q4_K, Q5_K: 8 of 32; the others: 16 of 16): lane r = row r's
                     // scale, in both int16 halves
    __m256i pr[8];   // lane r: the int16 coefficients of the activation's 16-element sums 2c, 2c + 1:
                     // Q4_K, Q5_K: the min of sub-block c, twice; Q2_K: the mins of sub-blocks 2c, 2c + 1;
                     // Q6_K, Q3_K: their scales
    __m256 d, dmin;  // [lane] super-block scales of sc and of the mins (Q6_K, Q3_K: 0)
};

using avx2_lanes::transpose8x8;

// Q4_K, Q5_K: super-block i of rows[0..8) into p.
template <class B>
MOERUN_AVX2 void make_panel_k4(const uint8_t *const *rows, int64_t i, Panel &p) {
    __m256i q[kRows][8];  // [row][sub-block]
    alignas(32) int32_t sc[8][kRows], mn[8][kRows];
    alignas(16) uint16_t d[kRows], dmin[kRows];
    for (int r = 0; r < kRows; ++r) {
        const B &x = reinterpret_cast<const B *>(rows[r])[i];
        k4_unpack_u8(x, q[r]);
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
        p.pr[j] = _mm256_load_si256(reinterpret_cast<const __m256i *>(mn[j]));
    }
    p.d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i *>(d)));
    p.dmin = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i *>(dmin)));
}

// Q6_K, Q2_K, Q3_K (sub-blocks of 16): register c of a row's unpacked quants holds elements
// 32c .. 32c + 31, sub-blocks 2c and 2c + 1, transposed as the Q4_K sub-blocks are.
template <class B>
MOERUN_AVX2 void make_panel_16(const uint8_t *const *rows, int64_t i, Panel &p) {
    constexpr bool q6 = std::is_same_v<B, quant::BlockQ6_K>, q2 = std::is_same_v<B, quant::BlockQ2_K>;
    __m256i q[kRows][8];  // [row][32 elements]
    alignas(32) int32_t sc[16][kRows], pr[8][kRows];
    alignas(16) uint16_t d[kRows], dmin[kRows] = {};
    for (int r = 0; r < kRows; ++r) {
        const B &x = reinterpret_cast<const B *>(rows[r])[i];
        __m256i sc16, mn16;
        if constexpr (q6) {
            q6_k_unpack_half(x, 0, q[r]);
            q6_k_unpack_half(x, 1, q[r] + 4);
            sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x.scales)));
        } else {
            k2_unpack_u8(x, q[r], sc16, mn16);
        }
        alignas(32) uint16_t s16[16], m16[16];
        _mm256_store_si256(reinterpret_cast<__m256i *>(s16), sc16);
        if constexpr (q2) _mm256_store_si256(reinterpret_cast<__m256i *>(m16), mn16);
        const uint16_t *coef = q2 ? m16 : s16;  // of the 16-element sums: Q2_K's mins, or the offset's scales
        for (int j = 0; j < 16; ++j) sc[j][r] = static_cast<int32_t>(s16[j] * 0x10001u);
        for (int c = 0; c < 8; ++c)
            pr[c][r] = static_cast<int32_t>(coef[2 * c] | static_cast<uint32_t>(coef[2 * c + 1]) << 16);
        d[r] = x.d;
        if constexpr (q2) dmin[r] = x.dmin;
    }
    for (int c = 0; c < 8; ++c) {
        __m256i in[kRows];
        for (int r = 0; r < kRows; ++r) in[r] = q[r][c];
        transpose8x8(in, p.q + 8 * c);
        p.pr[c] = _mm256_load_si256(reinterpret_cast<const __m256i *>(pr[c]));
    }
    for (int j = 0; j < 16; ++j) p.sc[j] = _mm256_load_si256(reinterpret_cast<const __m256i *>(sc[j]));
    p.d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i *>(d)));
    p.dmin = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i *>(dmin)));
}

// The shape of a type's sums: kSub steps of 4 elements per sub-block, kSteps of them added as int16
// before the scale (|sum| < 2^15: kSteps * 2 * max quant * 128), then the mins (acc - acc_m: Q4_K,
// Q5_K, Q2_K) or an offset folded into I as - (O << kShift) (Q6_K: -32, Q3_K: -4).
template <class B>
struct Shape {
    static constexpr bool kQ6 = std::is_same_v<B, quant::BlockQ6_K>;
    static constexpr bool kQ3 = std::is_same_v<B, quant::BlockQ3_K>;
    static constexpr bool kQ2 = std::is_same_v<B, quant::BlockQ2_K>;
    static constexpr bool kSub16 = kQ6 || kQ3 || kQ2;
    static constexpr int kSub = kSub16 ? 4 : 8;
    static constexpr int kSteps = kQ6 ? 2 : kSub16 ? 4 : std::is_same_v<B, quant::BlockQ5_K> ? 4 : 8;
    static constexpr bool kMins = !kQ6 && !kQ3;
    static constexpr int kShift = kQ6 ? 5 : 2;
};

// The panels of one 8-row block against T activation rows: out[t] lane r = row r's result.
template <class B, int T>
MOERUN_AVX2 void run_panels(const Panel *panels, int64_t nsb, const uint8_t *const *act, __m256 *out) {
    using S = Shape<B>;
    __m256 acc[T], acc_m[T];
    for (int t = 0; t < T; ++t) acc[t] = acc_m[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const Panel &p = panels[i];
        const ActQ8_K *y[T];
        for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const ActQ8_K *>(act[t]) + i;
        __m256i isum[T], osum[T];
        for (int t = 0; t < T; ++t) isum[t] = osum[t] = _mm256_setzero_si256();
        for (int j = 0; j < 64 / S::kSub; ++j) {
            for (int k0 = 0; k0 < S::kSub; k0 += S::kSteps) {
                __m256i s16[T];
                for (int t = 0; t < T; ++t) s16[t] = _mm256_setzero_si256();
                for (int k = S::kSub * j + k0; k < S::kSub * j + k0 + S::kSteps; ++k) {
                    const __m256i q = p.q[k];
                    for (int t = 0; t < T; ++t)
                        s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(q, bcast32(y[t]->qs + 4 * k)));
                }
                for (int t = 0; t < T; ++t)
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], p.sc[j]));
            }
        }
        // pr[c] x the 16-element sums 2c, 2c + 1: Q4_K, Q5_K: m_c * (bsums[2c] + bsums[2c + 1]); the others:
        // coef_2c * bsums[2c] + coef_2c+1 * bsums[2c + 1]
        for (int c = 0; c < 8; ++c)
            for (int t = 0; t < T; ++t)
                osum[t] = _mm256_add_epi32(osum[t], _mm256_madd_epi16(p.pr[c], bcast32(y[t]->bsums + 2 * c)));
        for (int t = 0; t < T; ++t) {
            const __m256 dy = _mm256_set1_ps(y[t]->d);
            if constexpr (S::kMins) {
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(p.d, dy), _mm256_cvtepi32_ps(isum[t]), acc[t]);
                acc_m[t] = _mm256_fmadd_ps(_mm256_mul_ps(p.dmin, dy), _mm256_cvtepi32_ps(osum[t]), acc_m[t]);
            } else {
                const __m256i v = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(osum[t], S::kShift));
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(p.d, dy), _mm256_cvtepi32_ps(v), acc[t]);
            }
        }
    }
    for (int t = 0; t < T; ++t) out[t] = S::kMins ? _mm256_sub_ps(acc[t], acc_m[t]) : acc[t];
}

// IQ4_XS: one super-block of 8 rows. q[k] / s[k] lane r: |v| (u8) / v (s8) of elements 4k..4k+3 of
// row r; sc[j] lane r: row r's ls_j - 32 in both int16 halves.
struct alignas(64) PanelIQ4 {
    __m256i q[64], s[64], sc[8];
    __m256 d;
};

MOERUN_AVX2 void make_panel_iq4xs(const uint8_t *const *rows, int64_t i, PanelIQ4 &p) {
    __m256i v[kRows][8];  // [row][sub-block]
    alignas(32) int32_t sc[8][kRows];
    alignas(16) uint16_t d[kRows];
    for (int r = 0; r < kRows; ++r) {
        const quant::BlockIQ4_XS &x = reinterpret_cast<const quant::BlockIQ4_XS *>(rows[r])[i];
        __m128i sc16;
        iq4_xs_unpack(x, v[r], sc16);
        alignas(16) uint16_t s16[8];
        _mm_store_si128(reinterpret_cast<__m128i *>(s16), sc16);
        for (int j = 0; j < 8; ++j) sc[j][r] = static_cast<int32_t>(s16[j] * 0x10001u);
        d[r] = x.d;
    }
    for (int j = 0; j < 8; ++j) {
        __m256i in[kRows];
        for (int r = 0; r < kRows; ++r) in[r] = v[r][j];
        transpose8x8(in, p.s + 8 * j);
        for (int k = 8 * j; k < 8 * j + 8; ++k) p.q[k] = _mm256_sign_epi8(p.s[k], p.s[k]);
        p.sc[j] = _mm256_load_si256(reinterpret_cast<const __m256i *>(sc[j]));
    }
    p.d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i *>(d)));
}

template <int T>
MOERUN_AVX2 void run_panels_iq4xs(const PanelIQ4 *panels, int64_t nsb, const uint8_t *const *act,
                                  __m256 *out) {
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const PanelIQ4 &p = panels[i];
        const ActQ8_K *y[T];
        __m256i isum[T];
        for (int t = 0; t < T; ++t) {
            y[t] = reinterpret_cast<const ActQ8_K *>(act[t]) + i;
            isum[t] = _mm256_setzero_si256();
        }
        for (int j = 0; j < 8; ++j)
            for (int k = 8 * j; k < 8 * j + 8; ++k) {
                const __m256i q = p.q[k], s = p.s[k];
                for (int t = 0; t < T; ++t) {
                    const __m256i sy = _mm256_sign_epi8(bcast32(y[t]->qs + 4 * k), s);
                    isum[t] =
                        _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q, sy), p.sc[j]));
                }
            }
        for (int t = 0; t < T; ++t)
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(p.d, _mm256_set1_ps(y[t]->d)), _mm256_cvtepi32_ps(isum[t]),
                                     acc[t]);
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
}

// The 8-row blocks of w against the activation rows: K::make builds the panels of a block's super-blocks,
// K::run<T> runs them against T (1..kTok) activation rows at a time.
template <class K>
MOERUN_AVX2 void tile_panels(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *act, size_t ab,
                             int64_t n_act, int64_t n, float *y, int64_t ldy) {
    using P = typename K::Panel;
    const int64_t nsb = n / 256;
    thread_local std::vector<P> panels_tls;
    std::vector<P> &panels = panels_tls;
    if (static_cast<int64_t>(panels.size()) < nsb) panels.resize(static_cast<size_t>(nsb));
    for (int64_t r0 = 0; r0 < n_rows; r0 += kRows) {
        const uint8_t *rows[kRows];
        const int valid = avx2_lanes::block_rows(w, rb, n_rows, r0, rows);
        for (int64_t i = 0; i < nsb; ++i) K::make(rows, i, panels[static_cast<size_t>(i)]);
        for (int64_t t0 = 0; t0 < n_act; t0 += kTok) {
            const int m = static_cast<int>(n_act - t0 < kTok ? n_act - t0 : kTok);
            const uint8_t *a[kTok];
            for (int t = 0; t < m; ++t) a[t] = act + static_cast<size_t>(t0 + t) * ab;
            __m256 out[kTok];
            switch (m) {
                case 4:
                    K::template run<4>(panels.data(), nsb, a, out);
                    break;
                case 3:
                    K::template run<3>(panels.data(), nsb, a, out);
                    break;
                case 2:
                    K::template run<2>(panels.data(), nsb, a, out);
                    break;
                default:
                    K::template run<1>(panels.data(), nsb, a, out);
                    break;
            }
            avx2_lanes::store_rows8(out, m, valid, y + t0 * ldy + r0, ldy);
        }
    }
}

// The super-block types with mins or 16-element sub-blocks (Panel), and IQ4_XS (PanelIQ4).
template <class B>
struct KindK {
    using Panel = cpu::avx2::Panel;
    MOERUN_AVX2 static void make(const uint8_t *const *rows, int64_t i, Panel &p) {
        if constexpr (Shape<B>::kSub16)
            make_panel_16<B>(rows, i, p);
        else
            make_panel_k4<B>(rows, i, p);
    }
    template <int T>
    MOERUN_AVX2 static void run(const Panel *p, int64_t nsb, const uint8_t *const *a, __m256 *out) {
        run_panels<B, T>(p, nsb, a, out);
    }
};

struct KindIQ4XS {
    using Panel = PanelIQ4;
    MOERUN_AVX2 static void make(const uint8_t *const *rows, int64_t i, Panel &p) {
        make_panel_iq4xs(rows, i, p);
    }
    template <int T>
    MOERUN_AVX2 static void run(const Panel *p, int64_t nsb, const uint8_t *const *a, __m256 *out) {
        run_panels_iq4xs<T>(p, nsb, a, out);
    }
};

}  // namespace

bool lanes_k_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                  int64_t n_act, int64_t n, float *y, int64_t ldy) {
    if (n_act < kMinPanelTok || n_act == 4) return false;
    const auto *wb = static_cast<const uint8_t *>(w);
    const auto *a = static_cast<const uint8_t *>(act);
    switch (t) {
        case quant::Type::Q4_K:
            tile_panels<KindK<quant::BlockQ4_K>>(wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q5_K:
            tile_panels<KindK<quant::BlockQ5_K>>(wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q6_K:
            tile_panels<KindK<quant::BlockQ6_K>>(wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q3_K:
            tile_panels<KindK<quant::BlockQ3_K>>(wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::Q2_K:
            tile_panels<KindK<quant::BlockQ2_K>>(wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        case quant::Type::IQ4_XS:
            tile_panels<KindIQ4XS>(wb, rb, n_rows, a, ab, n_act, n, y, ldy);
            return true;
        default:
            return false;
    }
}

}  // namespace moerun::kernels::cpu::avx2

#else
namespace moerun::kernels::cpu::avx2 {
bool lanes_k_tile(quant::Type, const void *, size_t, int64_t, const void *, size_t, int64_t, int64_t, float *,
                  int64_t) {
    return false;
}
}  // namespace moerun::kernels::cpu::avx2
#endif
