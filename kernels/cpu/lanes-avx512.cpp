// AVX-512 VNNI products of 32-element weight blocks (Q8_0, Q4_0, Q5_0, IQ4_NL) with Q8_0 activations,
// 16 weight rows at a time, one row per 32-bit lane. A block of 16 rows is transposed once into a
// panel: zmm k holds dword k (quants 4k..4k+3) of every row, offset to unsigned (q + 128, the sign
// bit flipped), and a zmm of the rows' scales. Then every vpdpbusd multiplies that dword of all 16
// rows with the activation's dword k, broadcast from memory: 64 multiply-adds per instruction, and the
// float scaling (cvt, mul, fma) is paid once per block for 16 rows instead of once per row. The
// offset comes back out through the activation's ActQ8_0::s128 (128 x the sum of its quants).
//
// Per row and activation this computes, block after block in order,
//   acc = fma(fl(dx * dy), float(sum of the block's 32 products), acc),  acc starting at 0,
// whatever the number of rows, tokens or lanes in use: every caller of these kernels (one row or a
// tile) gets the same bits.
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "avx2-lanes.h"
#include "avx512-target.h"
#include "block32-decode.h"
#include "lanes-avx512.h"
#include "moerun/quant/blocks.h"

namespace moerun::kernels::cpu::avx512 {
namespace {

constexpr int kLanes = lanes::kRows;
constexpr int kTok = 8;  // activation rows per pass over the panels
using lanes::kMinPanelTok;

// One block of 16 weight rows.
struct alignas(64) Panel {
    __m512i q[8];  // [8][16 lanes] dword k of each row's quants, + 128 per byte (u8)
    __m512 d;      // [16 lanes] each row's block scale
};

// The panel of block i of the rows at rows[0..15] (rows[r] - rows[0] in off[r], in bytes).
template <class D>
MOERUN_AVX512 inline void make_panel(const uint8_t *const *rows, __m512i off, int64_t i, Panel &p) {
    using B = typename D::Block;
    __m256i q[kLanes];  // [16] the rows' quants (s8)
    for (int r = 0; r < kLanes; ++r) q[r] = D::quants(reinterpret_cast<const B *>(rows[r])[i]);
    __m512i t[8];
    lanes::transpose16x8(q, t);
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int k = 0; k < 8; ++k) p.q[k] = _mm512_xor_si512(t[k], flip);
    // Each block starts with its fp16 scale: gather the 4 bytes there, keep the low half.
    const __m512i dw = _mm512_i32gather_epi32(off, rows[0] + i * static_cast<int64_t>(sizeof(B)), 1);
    p.d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw));
}

// acc[t] (lane r: row r) over the nb panels for T activation rows.
template <int T>
MOERUN_AVX512 void run_panels(const Panel *panels, int64_t nb, const uint8_t *const *act, __m512 *out) {
    const ActQ8_0 *y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const ActQ8_0 *>(act[t]);
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const Panel &p = panels[i];
        for (int t = 0; t < T; ++t) {
            const ActQ8_0 &yb = y[t][i];
            __m512i s = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_set1_epi32(yb.s128));
            for (int k = 0; k < 8; ++k) {
                int32_t v;
                std::memcpy(&v, yb.qs + 4 * k, 4);
                s = _mm512_dpbusd_epi32(s, p.q[k], _mm512_set1_epi32(v));
            }
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(p.d, _mm512_set1_ps(yb.d)), _mm512_cvtepi32_ps(s), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
}

MOERUN_AVX512 void run_tokens(const Panel *panels, int64_t nb, const uint8_t *const *act, int n_act,
                              __m512 *out) {
    for (int t = 0; t < n_act;) {
        const int m = n_act - t;
        if (m >= 8) {
            run_panels<8>(panels, nb, act + t, out + t);
            t += 8;
        } else if (m >= 4) {
            run_panels<4>(panels, nb, act + t, out + t);
            t += 4;
        } else if (m >= 2) {
            run_panels<2>(panels, nb, act + t, out + t);
            t += 2;
        } else {
            run_panels<1>(panels, nb, act + t, out + t);
            t += 1;
        }
    }
}

// For one or two activation rows, building panels costs more than it saves: 8 weight rows per pass,
// each row's block against the activation as in a one-row kernel (|w| x sign(y, w), 8 int32 sums of
// 4 products), then the 8 rows' sums reduced to one int32 per row, lane r = row r (exact: any order
// gives the same integer). The float steps are those of run_panels, so both give the same bits.
using avx2_lanes::sum_rows8;

template <class D, int T>
MOERUN_AVX512 void rows8(const uint8_t *const *rows, const uint8_t *next, __m256i off, int64_t nb,
                         const uint8_t *const *act, __m256 *out) {
    using B = typename D::Block;
    const ActQ8_0 *y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const ActQ8_0 *>(act[t]);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        __m256i xq[8], ax[8], p[8];
        {  // the next 8 rows (contiguous) as one stream, 8 blocks' worth of bytes per block
            const char *ahead =
                reinterpret_cast<const char *>(next) + i * 8 * static_cast<int64_t>(sizeof(B));
            for (int j = 0; j < 8 * static_cast<int>(sizeof(B)); j += 64)
                _mm_prefetch(ahead + j, _MM_HINT_T0);
        }
        for (int r = 0; r < 8; ++r) {
            xq[r] = D::quants(reinterpret_cast<const B *>(rows[r])[i]);
            ax[r] = _mm256_abs_epi8(xq[r]);
        }
        const __m256i dw = _mm256_i32gather_epi32(
            reinterpret_cast<const int *>(rows[0] + i * static_cast<int64_t>(sizeof(B))), off, 1);
        const __m256 dx = _mm256_cvtph_ps(_mm256_cvtepi32_epi16(dw));
        for (int t = 0; t < T; ++t) {
            const ActQ8_0 &yb = y[t][i];
            const __m256i yv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.qs));
            for (int r = 0; r < 8; ++r)
                p[r] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax[r], _mm256_sign_epi8(yv, xq[r]));
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(yb.d)),
                                     _mm256_cvtepi32_ps(sum_rows8(p)), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
}

using lanes::Acts;

// y[k * ldy + r] for rows r < n_rows (row r at w + r * rb) and activation rows k < n_act.
template <class D>
MOERUN_AVX512 bool tile32(const uint8_t *w, size_t rb, int64_t n_rows, const Acts &act, int64_t n_act,
                          int64_t n, float *y, int64_t ldy) {
    if (!lanes::gather_ok(rb)) return false;
    const int64_t nb = n / 32;
    if (n_rows <= 0 || n_act <= 0) return true;
    if (n_act < kMinPanelTok) {
        for (int64_t r0 = 0; r0 < n_rows; r0 += 8) {
            const int valid = static_cast<int>(n_rows - r0 < 8 ? n_rows - r0 : 8);
            const uint8_t *rows[8];
            alignas(32) int32_t off[8];
            for (int r = 0; r < 8; ++r) {  // lanes past the last row repeat it (not stored)
                const int rr = r < valid ? r : valid - 1;
                rows[r] = w + static_cast<size_t>(r0 + rr) * rb;
                off[r] = static_cast<int32_t>(static_cast<size_t>(rr) * rb);
            }
            const __m256i voff = _mm256_load_si256(reinterpret_cast<const __m256i *>(off));
            const uint8_t *next = w + static_cast<size_t>(r0 + 8) * rb;  // prefetched (may be past the end)
            const __mmask8 keep = static_cast<__mmask8>((1u << valid) - 1);
            __m256 out[2];
            const uint8_t *a[2] = {act[0], n_act > 1 ? act[1] : act[0]};
            if (n_act == 2)
                rows8<D, 2>(rows, next, voff, nb, a, out);
            else
                rows8<D, 1>(rows, next, voff, nb, a, out);
            for (int t = 0; t < n_act; ++t) _mm256_mask_storeu_ps(y + t * ldy + r0, keep, out[t]);
        }
        return true;
    }
    thread_local std::vector<Panel> panels_tls;
    std::vector<Panel> &panels = panels_tls;
    if (static_cast<int64_t>(panels.size()) < nb) panels.resize(static_cast<size_t>(nb));
    __m512 out[kTok];
    const uint8_t *a[kTok];
    for (int64_t r0 = 0; r0 < n_rows; r0 += kLanes) {
        const lanes::PanelRows pr(w, rb, r0, n_rows);
        for (int64_t i = 0; i < nb; ++i) make_panel<D>(pr.rows, pr.off, i, panels[static_cast<size_t>(i)]);
        for (int64_t t0 = 0; t0 < n_act; t0 += kTok) {
            const int m = static_cast<int>(n_act - t0 < kTok ? n_act - t0 : kTok);
            for (int t = 0; t < m; ++t) a[t] = act[t0 + t];
            run_tokens(panels.data(), nb, a, m, out);
            for (int t = 0; t < m; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * ldy + r0, pr.keep, out[t]);
        }
    }
    return true;
}

MOERUN_AVX512 bool lanes_any(quant::Type t, const uint8_t *w, size_t rb, int64_t n_rows, const Acts &act,
                             int64_t n_act, int64_t n, float *y, int64_t ldy) {
    switch (t) {
        case quant::Type::Q8_0:
            return tile32<block32::DecQ8_0>(w, rb, n_rows, act, n_act, n, y, ldy);
        case quant::Type::Q4_0:
            return tile32<block32::DecQ4_0>(w, rb, n_rows, act, n_act, n, y, ldy);
        case quant::Type::Q5_0:
            return tile32<block32::DecQ5_0>(w, rb, n_rows, act, n_act, n, y, ldy);
        case quant::Type::IQ4_NL:
            return tile32<block32::DecIQ4_NL>(w, rb, n_rows, act, n_act, n, y, ldy);
        default:
            return false;
    }
}

}  // namespace

bool lanes_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                int64_t n_act, int64_t n, float *y, int64_t ldy) {
    return lanes_any(t, static_cast<const uint8_t *>(w), rb, n_rows,
                     Acts{nullptr, static_cast<const uint8_t *>(act), ab}, n_act, n, y, ldy);
}

bool lanes_rows(quant::Type t, const void *w, const void *const *act, int n_act, int64_t n, float *out) {
    return lanes_any(t, static_cast<const uint8_t *>(w), 0, 1,
                     Acts{reinterpret_cast<const uint8_t *const *>(act), nullptr, 0}, n_act, n, out, 1);
}

}  // namespace moerun::kernels::cpu::avx512

#endif  // __x86_64__
