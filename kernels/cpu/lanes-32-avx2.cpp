// AVX2 products of the 32-element block types (Q8_0, Q4_0, Q5_0, IQ4_NL) with Q8_0 activations, 8
// weight rows per pass, one row per 32-bit lane (the AVX2 counterpart of lanes-avx512.cpp, for CPUs
// without AVX-512). Every product of these types on AVX2 goes through here, so one row, a decode
// step and a prompt tile all take the same steps. Per row and activation, block after block in order:
//   acc = fma(fl(dx * dy), float(sum of the block's 32 products), acc),  acc starting at 0,
// the definition of the AVX-512 kernels, so both instruction sets give the same bits.
//
// One or two activation rows (decode): each row's block against the activation as in a one-row
// kernel (|w| x sign(y, w), vpmaddubsw, vpmaddwd to 8 int32 partials), then the 8 rows' partials
// reduced to one int32 per row, lane r = row r.
// Three or more (prompt): a block of 8 rows is transposed once into a panel, ymm k lane r holding
// quants 4k..4k+3 of row r, and each product takes the activation's dword k broadcast:
//   Q4_0, Q5_0: the quants stored unsigned (q + 8, q + 16), vpmaddubsw pair sums added as int16 for
//               8 (Q4_0: 8 * 2 * 15 * 127 < 2^15) or 4 (Q5_0: 4 * 2 * 31 * 127) steps, then to int32;
//               the offset comes back out as offset * sum(y) (ActQ8_0::s128 / 128);
//   Q8_0, IQ4_NL: |q| and q stored, |q| x sign(y, q) per step (pairs up to 2 * 128 * 127, no room to
//               add two steps as int16).
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "avx2-lanes.h"
#include "block32-decode.h"
#include "moerun/quant/blocks.h"

#define MOERUN_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace moerun::kernels::cpu::avx2 {
namespace {

using avx2_lanes::bcast32;
using avx2_lanes::kRows;         // weight rows per pass, one per 32-bit lane
constexpr int kTok = 4;          // activation rows per pass over the panels
constexpr int kMinPanelTok = 3;  // fewer activation rows: the decode kernel (a panel costs more)

// Activation row k: ptrs[k], or base + k * ab when ptrs is null.
struct Acts {
    const uint8_t *const *ptrs;
    const uint8_t *base;
    size_t ab;
    const ActQ8_0 *operator[](int64_t k) const {
        return reinterpret_cast<const ActQ8_0 *>(ptrs ? ptrs[k] : base + static_cast<size_t>(k) * ab);
    }
};

// How a type's panel products are summed: kOffset > 0: unsigned quants q + kOffset, kSteps int16 steps
// before widening; kOffset 0: |q| x sign(y, q).
template <class D>
struct Shape {
    static constexpr int kOffset = 0, kSteps = 1;
};
template <>
struct Shape<block32::DecQ4_0> {
    static constexpr int kOffset = 8, kSteps = 8;
};
template <>
struct Shape<block32::DecQ5_0> {
    static constexpr int kOffset = 16, kSteps = 4;
};

// The fp16 scales of block i of the 8 rows, as floats in lanes 0..7.
template <class B>
MOERUN_AVX2 inline __m256 row_scales(const uint8_t *const *rows, int64_t i) {
    alignas(16) uint16_t d[kRows];
    for (int r = 0; r < kRows; ++r) d[r] = reinterpret_cast<const B *>(rows[r])[i].d;
    return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i *>(d)));
}

// Decode: out[t] lane r = row r against activation row t, T = 1 or 2. The next 8 rows (contiguous,
// at `next`) are prefetched as one linear stream, 8 blocks' worth of bytes per block: read side by
// side as 8 separate streams, rows come from memory at about half the bandwidth.
template <class D, int T>
MOERUN_AVX2 void rows8(const uint8_t *const *rows, const uint8_t *next, int64_t nb, const ActQ8_0 *const *y,
                       __m256 *out) {
    using B = typename D::Block;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const char *ahead =
            reinterpret_cast<const char *>(next) + i * kRows * static_cast<int64_t>(sizeof(B));
        for (int j = 0; j < kRows * static_cast<int>(sizeof(B)); j += 64)
            _mm_prefetch(ahead + j, _MM_HINT_T0);
        __m256i xq[kRows], ax[kRows], p[kRows];
        for (int r = 0; r < kRows; ++r) {
            xq[r] = D::quants(reinterpret_cast<const B *>(rows[r])[i]);
            ax[r] = _mm256_sign_epi8(xq[r], xq[r]);  // |q| as u8 (-128 -> 128)
        }
        const __m256 dx = row_scales<B>(rows, i);
        for (int t = 0; t < T; ++t) {
            const ActQ8_0 &yb = y[t][i];
            const __m256i yv = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(yb.qs));
            for (int r = 0; r < kRows; ++r)
                p[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(yv, xq[r])), ones);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(yb.d)),
                                     _mm256_cvtepi32_ps(avx2_lanes::sum_rows8(p)), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
}

// One block of 8 rows. alignas: this file is compiled without -mavx, where GCC gives __m256i 16-byte
// alignment, so std::vector<Panel> would allocate at 16 what the kernels access at 32.
struct alignas(64) Panel {
    __m256i q[8];  // q[k] lane r: quants 4k..4k+3 of row r: q + offset (u8), or |q| (u8)
    __m256i s[8];  // the same dwords of q (s8), for sign(y, q); unused with an offset
    __m256 d;      // lane r: row r's block scale
};

template <class D>
MOERUN_AVX2 void make_panel(const uint8_t *const *rows, int64_t i, Panel &p) {
    using B = typename D::Block;
    using S = Shape<D>;
    __m256i q[kRows];
    for (int r = 0; r < kRows; ++r) q[r] = D::quants(reinterpret_cast<const B *>(rows[r])[i]);
    if constexpr (S::kOffset > 0) {
        for (int r = 0; r < kRows; ++r) q[r] = _mm256_add_epi8(q[r], _mm256_set1_epi8(S::kOffset));
        avx2_lanes::transpose8x8(q, p.q);
    } else {
        avx2_lanes::transpose8x8(q, p.s);
        for (int k = 0; k < 8; ++k) p.q[k] = _mm256_sign_epi8(p.s[k], p.s[k]);
    }
    p.d = row_scales<B>(rows, i);
}

// Prompt: the panels of one 8-row block against T activation rows, out[t] lane r = row r's result.
template <class D, int T>
MOERUN_AVX2 void run_panels(const Panel *panels, int64_t nb, const ActQ8_0 *const *y, __m256 *out) {
    using S = Shape<D>;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; ++i) {
        const Panel &p = panels[i];
        for (int t = 0; t < T; ++t) {
            const ActQ8_0 &yb = y[t][i];
            __m256i s32;
            if constexpr (S::kOffset > 0) {
                s32 = _mm256_set1_epi32(-S::kOffset * (yb.s128 / 128));
                for (int k0 = 0; k0 < 8; k0 += S::kSteps) {
                    __m256i s16 = _mm256_setzero_si256();
                    for (int k = k0; k < k0 + S::kSteps; ++k)
                        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(p.q[k], bcast32(yb.qs + 4 * k)));
                    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(s16, ones));
                }
            } else {
                s32 = _mm256_setzero_si256();
                for (int k = 0; k < 8; ++k) {
                    const __m256i sy = _mm256_sign_epi8(bcast32(yb.qs + 4 * k), p.s[k]);
                    s32 = _mm256_add_epi32(s32, _mm256_madd_epi16(_mm256_maddubs_epi16(p.q[k], sy), ones));
                }
            }
            acc[t] =
                _mm256_fmadd_ps(_mm256_mul_ps(p.d, _mm256_set1_ps(yb.d)), _mm256_cvtepi32_ps(s32), acc[t]);
        }
    }
    for (int t = 0; t < T; ++t) out[t] = acc[t];
}

// y[k * ldy + r] for rows r < n_rows (row r at w + r * rb) and activation rows k < n_act.
template <class D>
MOERUN_AVX2 void tile32(const uint8_t *w, size_t rb, int64_t n_rows, const Acts &act, int64_t n_act,
                        int64_t n, float *y, int64_t ldy) {
    const int64_t nb = n / 32;
    thread_local std::vector<Panel> panels_tls;
    std::vector<Panel> &panels = panels_tls;
    const bool panel = n_act >= kMinPanelTok;
    if (panel && static_cast<int64_t>(panels.size()) < nb) panels.resize(static_cast<size_t>(nb));
    for (int64_t r0 = 0; r0 < n_rows; r0 += kRows) {
        const uint8_t *rows[kRows];
        const int valid = avx2_lanes::block_rows(w, rb, n_rows, r0, rows);
        if (panel)
            for (int64_t i = 0; i < nb; ++i) make_panel<D>(rows, i, panels[static_cast<size_t>(i)]);
        for (int64_t t0 = 0; t0 < n_act;) {
            const ActQ8_0 *a[kTok];
            __m256 out[kTok];
            int m;
            if (!panel) {
                m = static_cast<int>(n_act - t0);
                for (int t = 0; t < m; ++t) a[t] = act[t0 + t];
                const uint8_t *next = w + static_cast<size_t>(r0 + kRows) * rb;  // may be past the end
                if (m == 2)
                    rows8<D, 2>(rows, next, nb, a, out);
                else
                    rows8<D, 1>(rows, next, nb, a, out);
            } else {
                m = static_cast<int>(n_act - t0 < kTok ? n_act - t0 : kTok);
                for (int t = 0; t < m; ++t) a[t] = act[t0 + t];
                switch (m) {
                    case 4:
                        run_panels<D, 4>(panels.data(), nb, a, out);
                        break;
                    case 3:
                        run_panels<D, 3>(panels.data(), nb, a, out);
                        break;
                    case 2:
                        run_panels<D, 2>(panels.data(), nb, a, out);
                        break;
                    default:
                        run_panels<D, 1>(panels.data(), nb, a, out);
                        break;
                }
            }
            avx2_lanes::store_rows8(out, m, valid, y + t0 * ldy + r0, ldy);
            t0 += m;
        }
    }
}

bool lanes_any(quant::Type t, const uint8_t *w, size_t rb, int64_t n_rows, const Acts &act, int64_t n_act,
               int64_t n, float *y, int64_t ldy) {
    switch (t) {
        case quant::Type::Q8_0:
            tile32<block32::DecQ8_0>(w, rb, n_rows, act, n_act, n, y, ldy);
            return true;
        case quant::Type::Q4_0:
            tile32<block32::DecQ4_0>(w, rb, n_rows, act, n_act, n, y, ldy);
            return true;
        case quant::Type::Q5_0:
            tile32<block32::DecQ5_0>(w, rb, n_rows, act, n_act, n, y, ldy);
            return true;
        case quant::Type::IQ4_NL:
            tile32<block32::DecIQ4_NL>(w, rb, n_rows, act, n_act, n, y, ldy);
            return true;
        default:
            return false;
    }
}

}  // namespace

bool lanes32_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                  int64_t n_act, int64_t n, float *y, int64_t ldy) {
    return lanes_any(t, static_cast<const uint8_t *>(w), rb, n_rows,
                     Acts{nullptr, static_cast<const uint8_t *>(act), ab}, n_act, n, y, ldy);
}

bool lanes32_rows(quant::Type t, const void *w, const void *const *act, int n_act, int64_t n, float *out) {
    return lanes_any(t, static_cast<const uint8_t *>(w), 0, 1,
                     Acts{reinterpret_cast<const uint8_t *const *>(act), nullptr, 0}, n_act, n, out, 1);
}

}  // namespace moerun::kernels::cpu::avx2

#else
namespace moerun::kernels::cpu::avx2 {
bool lanes32_tile(quant::Type, const void *, size_t, int64_t, const void *, size_t, int64_t, int64_t, float *,
                  int64_t) {
    return false;
}
bool lanes32_rows(quant::Type, const void *, const void *const *, int, int64_t, float *) {
    return false;
}
}  // namespace moerun::kernels::cpu::avx2
#endif
