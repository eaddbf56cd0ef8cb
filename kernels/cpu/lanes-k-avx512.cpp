// AVX-512 VNNI prefill products of the super-block types (Q4_K, Q5_K, Q6_K, Q3_K, Q2_K, IQ4_XS) with
// Q8_K activations, 16 weight rows per pass, one row per 32-bit lane (as lanes-avx512.cpp for the
// 32-element types). A super-block of 16 rows is transposed (packed bytes, 16 rows x 8 dwords at a
// time) and unpacked lane-wise once into a panel: for each 32 elements, 8 zmm whose lane r holds
// quants 4k..4k+3 of row r as u8, and the rows' sub-block scales as int32 lanes. vpdpbusd with the
// activation's dword broadcast from memory then adds 4 products to all 16 rows per instruction;
// vpmulld applies the sub-block scales, vpdpwssd the coefficients of the activation's 16-element
// sums (mins, or the offsets that made the quants unsigned).
//
// Per row and activation the result is, super-block after super-block in order (exact int32 sums):
//   Q4_K, Q5_K, Q2_K:  I = sum_j sc_j * sum(q * y over j),  M = sum_j m_j * (sum of y over j),
//                      acc = fma(fl(d * dy), float(I), acc),  acc_m = fma(fl(dmin * dy), float(M), acc_m),
//                      result = acc - acc_m;
//   Q6_K, Q3_K, IQ4_XS: I = sum_j sc_j * sum(q * y over j) - offset * sum_j sc_j * (sum of y over j),
//                      acc = fma(fl(d * dy), float(I), acc), result = acc;
// the steps of the one- and two-row kernels (rows, rows2 in vec-dot-avx512.cpp), so all give
// the same bits.
#include "vec-dot-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "avx512-target.h"
#include "lanes-avx512.h"
#include "moerun/quant/blocks.h"

namespace moerun::kernels::cpu::avx512 {
namespace {

using lanes::Acts;
using lanes::kRows;
constexpr int kTok = 4;  // activation rows per pass over the panels

// One super-block of 16 weight rows: 8 chunks of 32 elements. With sub-blocks of 32 (Q4_K, Q5_K,
// IQ4_XS) chunk c is sub-block c (scale sc[c]); with sub-blocks of 16 (Q6_K, Q3_K, Q2_K) it is
// sub-blocks 2c (dwords 0..3, scale sc[2c]) and 2c + 1 (dwords 4..7, sc[2c + 1]). pr[c] holds the
// coefficients of the activation's 16-element sums bsums[2c], bsums[2c + 1] as two int16: the mins
// (Q4_K, Q5_K, Q2_K), or the scales of an offset that made the quants unsigned (IQ4_XS +128, Q6_K
// -32, Q3_K -4).
struct alignas(64) Panel {
    __m512i q[8][8];        // [chunk c][dword k][16 lanes] quants 4k..4k+3 of chunk c (u8)
    int32_t sc[16][kRows];  // [sub-block][lane] scale
    int32_t pr[8][kRows];   // [c][lane] two int16: coefficients of bsums[2c], bsums[2c + 1]
    float d[kRows];         // [lane] super-block scale of sc
    float dmin[kRows];      // [lane] Q4_K, Q5_K, Q2_K: super-block scale of the mins
};

template <class B>
MOERUN_AVX512 void make_panel_k4(const uint8_t *const *rows, __m512i off, int64_t i, Panel &p) {
    constexpr bool five = std::is_same_v<B, quant::BlockQ5_K>;
    const B *blk[kRows];
    for (int r = 0; r < kRows; ++r) blk[r] = reinterpret_cast<const B *>(rows[r]) + i;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    // Chunk c of 32 packed bytes: its low nibbles are sub-block 2c, its high nibbles 2c + 1.
    for (int c = 0; c < 4; ++c) {
        __m256i q[kRows];
        __m512i t[8];
        for (int r = 0; r < kRows; ++r)
            q[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk[r]->qs + 32 * c));
        lanes::transpose16x8(q, t);
        for (int k = 0; k < 8; ++k) {
            p.q[2 * c][k] = _mm512_and_si512(t[k], m4);
            p.q[2 * c + 1][k] = _mm512_and_si512(_mm512_srli_epi16(t[k], 4), m4);
        }
    }
    if constexpr (five) {  // bit j of qh[l] is bit 4 of element l of sub-block j
        __m256i h[kRows];
        __m512i t[8];
        for (int r = 0; r < kRows; ++r)
            h[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk[r]->qh));
        lanes::transpose16x8(h, t);
        const __m512i sixteen = _mm512_set1_epi8(16);
        for (int j = 0; j < 8; ++j) {
            const __m512i bit = _mm512_set1_epi8(static_cast<char>(1 << j));
            for (int k = 0; k < 8; ++k)
                p.q[j][k] =
                    _mm512_mask_add_epi8(p.q[j][k], _mm512_test_epi8_mask(t[k], bit), p.q[j][k], sixteen);
        }
    }
    // Scales and mins: the block's first 16 bytes of every row, gathered as 4 dwords per lane:
    // d | dmin << 16, then the three scale words (k4_scale_words, lane-wise).
    const char *base = reinterpret_cast<const char *>(blk[0]);
    const __m512i w0 = _mm512_i32gather_epi32(off, base + 4, 1),
                  w1 = _mm512_i32gather_epi32(off, base + 8, 1),
                  w2 = _mm512_i32gather_epi32(off, base + 12, 1), dd = _mm512_i32gather_epi32(off, base, 1);
    const __m512i c3f = _mm512_set1_epi32(0x3f3f3f3f), c0f = _mm512_set1_epi32(0x0f0f0f0f),
                  c30 = _mm512_set1_epi32(0x30303030), ff = _mm512_set1_epi32(0xFF);
    const __m512i sc_lo = _mm512_and_si512(w0, c3f), m_lo = _mm512_and_si512(w1, c3f);
    const __m512i sc_hi =
        _mm512_or_si512(_mm512_and_si512(w2, c0f), _mm512_and_si512(_mm512_srli_epi32(w0, 2), c30));
    const __m512i m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w2, 4), c0f),
                                         _mm512_and_si512(_mm512_srli_epi32(w1, 2), c30));
    for (int j = 0; j < 4; ++j) {
        _mm512_store_si512(p.sc[j], _mm512_and_si512(_mm512_srli_epi32(sc_lo, 8 * j), ff));
        _mm512_store_si512(p.sc[j + 4], _mm512_and_si512(_mm512_srli_epi32(sc_hi, 8 * j), ff));
        const __m512i a = _mm512_and_si512(_mm512_srli_epi32(m_lo, 8 * j), ff),
                      b = _mm512_and_si512(_mm512_srli_epi32(m_hi, 8 * j), ff);
        _mm512_store_si512(p.pr[j], _mm512_or_si512(a, _mm512_slli_epi32(a, 16)));
        _mm512_store_si512(p.pr[j + 4], _mm512_or_si512(b, _mm512_slli_epi32(b, 16)));
    }
    _mm512_store_ps(p.d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)));
    _mm512_store_ps(p.dmin, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
}

MOERUN_AVX512 inline __m512i bcst32(const void *p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

// out[t] (lane r: row r) over the nsb panels for T activation rows, sub-blocks of kSub (32 or 16)
// elements. kShift >= 0: I - (O << kShift) with one scale (IQ4_XS: 7, Q6_K: 5, Q3_K: 2); kShift < 0:
// I and O (the mins) each with their own scale, acc - acc_m (Q4_K, Q5_K, Q2_K).
template <int T, int kSub, int kShift>
MOERUN_AVX512 void run_panels(const Panel *panels, int64_t nsb, const uint8_t *const *act, __m512 *out) {
    const ActQ8_K *y[T];
    for (int t = 0; t < T; ++t) y[t] = reinterpret_cast<const ActQ8_K *>(act[t]);
    __m512 acc[T];
    [[maybe_unused]] __m512 acc_m[T];
    for (int t = 0; t < T; ++t) acc[t] = acc_m[t] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nsb; ++i) {
        const Panel &p = panels[i];
        __m512i isum[T], osum[T];
        for (int t = 0; t < T; ++t) isum[t] = osum[t] = _mm512_setzero_si512();
        for (int c = 0; c < 8; ++c) {
            const __m512i pr = _mm512_load_si512(p.pr[c]);
            for (int t = 0; t < T; ++t) {
                const ActQ8_K &yb = y[t][i];
                __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
                for (int k = 0; k < 4; ++k) {
                    a = _mm512_dpbusd_epi32(a, p.q[c][k], bcst32(yb.qs + 32 * c + 4 * k));
                    b = _mm512_dpbusd_epi32(b, p.q[c][k + 4], bcst32(yb.qs + 32 * c + 16 + 4 * k));
                }
                if constexpr (kSub == 32)
                    isum[t] = _mm512_add_epi32(
                        isum[t], _mm512_mullo_epi32(_mm512_add_epi32(a, b), _mm512_load_si512(p.sc[c])));
                else
                    isum[t] = _mm512_add_epi32(
                        isum[t], _mm512_add_epi32(_mm512_mullo_epi32(a, _mm512_load_si512(p.sc[2 * c])),
                                                  _mm512_mullo_epi32(b, _mm512_load_si512(p.sc[2 * c + 1]))));
                osum[t] = _mm512_dpwssd_epi32(osum[t], pr, bcst32(yb.bsums + 2 * c));
            }
        }
        const __m512 d = _mm512_load_ps(p.d);
        for (int t = 0; t < T; ++t) {
            const __m512 dy = _mm512_set1_ps(y[t][i].d);
            if constexpr (kShift >= 0) {
                const __m512i it = _mm512_sub_epi32(isum[t], _mm512_slli_epi32(osum[t], kShift));
                acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(it), acc[t]);
            } else {
                acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, dy), _mm512_cvtepi32_ps(isum[t]), acc[t]);
                acc_m[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_load_ps(p.dmin), dy),
                                           _mm512_cvtepi32_ps(osum[t]), acc_m[t]);
            }
        }
    }
    for (int t = 0; t < T; ++t) out[t] = kShift >= 0 ? acc[t] : _mm512_sub_ps(acc[t], acc_m[t]);
}

// pr[c] from two int32 lanes' low halves.
MOERUN_AVX512 inline __m512i int16_pair(__m512i lo, __m512i hi) {
    return _mm512_or_si512(_mm512_and_si512(lo, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(hi, 16));
}

// Q6_K: the transposed packed bytes unpack lane-wise, as q6_k_unpack_half does per row: half h,
// part s: low 4 bits from ql[64h + 32(s & 1) ..] (low nibbles for s < 2, high for s >= 2), high 2
// bits from bits 2s..2s+1 of qh[32h ..]. Scales int8.
MOERUN_AVX512 void make_panel_q6(const uint8_t *const *rows, __m512i off, int64_t i, Panel &p) {
    using B = quant::BlockQ6_K;
    const B *blk[kRows];
    for (int r = 0; r < kRows; ++r) blk[r] = reinterpret_cast<const B *>(rows[r]) + i;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
    for (int h = 0; h < 2; ++h) {
        __m512i ql[2][8], qh[8];
        __m256i v[kRows];
        for (int part = 0; part < 2; ++part) {
            for (int r = 0; r < kRows; ++r)
                v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk[r]->ql + 64 * h + 32 * part));
            lanes::transpose16x8(v, ql[part]);
        }
        for (int r = 0; r < kRows; ++r)
            v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk[r]->qh + 32 * h));
        lanes::transpose16x8(v, qh);
        for (int k = 0; k < 8; ++k) {
            const __m512i lo[4] = {_mm512_and_si512(ql[0][k], m4), _mm512_and_si512(ql[1][k], m4),
                                   _mm512_and_si512(_mm512_srli_epi16(ql[0][k], 4), m4),
                                   _mm512_and_si512(_mm512_srli_epi16(ql[1][k], 4), m4)};
            for (int s = 0; s < 4; ++s) {
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qh[k], 2 * s), m2);
                p.q[4 * h + s][k] = _mm512_or_si512(lo[s], _mm512_slli_epi16(hi, 4));
            }
        }
    }
    // scales[16] at byte 192 (4 dwords per lane), d in the upper half of the dword at byte 206
    const char *base = reinterpret_cast<const char *>(blk[0]);
    for (int g = 0; g < 4; ++g) {
        const __m512i wsc = _mm512_i32gather_epi32(off, base + offsetof(B, scales) + 4 * g, 1);
        __m512i sc[4];
        for (int b = 0; b < 4; ++b) {
            sc[b] = _mm512_srai_epi32(_mm512_slli_epi32(wsc, 24 - 8 * b), 24);
            _mm512_store_si512(p.sc[4 * g + b], sc[b]);
        }
        for (int b = 0; b < 4; b += 2) _mm512_store_si512(p.pr[2 * g + b / 2], int16_pair(sc[b], sc[b + 1]));
    }
    const __m512i dd = _mm512_i32gather_epi32(off, base + offsetof(B, d) - 2, 1);
    _mm512_store_ps(p.d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
}

// Q2_K / Q3_K: element 128h + 32s + l is bits 2s..2s+1 of qs[32h + l] (Q3_K: plus bit 4h + s of
// hmask[l] as bit 2): chunk 4h + s of the transposed qs[32h ..] shifted by 2s.
template <class B>
MOERUN_AVX512 void make_panel_k2(const uint8_t *const *rows, __m512i off, int64_t i, Panel &p) {
    constexpr bool three = std::is_same_v<B, quant::BlockQ3_K>;
    const B *blk[kRows];
    for (int r = 0; r < kRows; ++r) blk[r] = reinterpret_cast<const B *>(rows[r]) + i;
    const __m512i m2 = _mm512_set1_epi8(0x03);
    __m256i v[kRows];
    [[maybe_unused]] __m512i hm[8];
    if constexpr (three) {
        for (int r = 0; r < kRows; ++r)
            v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk[r]->hmask));
        lanes::transpose16x8(v, hm);
    }
    for (int h = 0; h < 2; ++h) {
        __m512i qs[8];
        for (int r = 0; r < kRows; ++r)
            v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk[r]->qs + 32 * h));
        lanes::transpose16x8(v, qs);
        for (int s = 0; s < 4; ++s)
            for (int k = 0; k < 8; ++k) {
                __m512i q = _mm512_and_si512(_mm512_srli_epi16(qs[k], 2 * s), m2);
                if constexpr (three)
                    q = _mm512_mask_add_epi8(
                        q,
                        _mm512_test_epi8_mask(hm[k], _mm512_set1_epi8(static_cast<char>(1 << (4 * h + s)))),
                        q, _mm512_set1_epi8(4));
                p.q[4 * h + s][k] = q;
            }
    }
    const char *base = reinterpret_cast<const char *>(blk[0]);
    if constexpr (three) {  // q3_k_scale_words lane-wise; scale j = byte j % 4 of word j / 4, - 32
        const __m512i w0 = _mm512_i32gather_epi32(off, base + offsetof(B, scales), 1),
                      w1 = _mm512_i32gather_epi32(off, base + offsetof(B, scales) + 4, 1),
                      w2 = _mm512_i32gather_epi32(off, base + offsetof(B, scales) + 8, 1);
        const __m512i m4w = _mm512_set1_epi32(0x0f0f0f0f), m2w = _mm512_set1_epi32(0x03030303);
        const __m512i word[4] = {
            _mm512_or_si512(_mm512_and_si512(w0, m4w), _mm512_slli_epi32(_mm512_and_si512(w2, m2w), 4)),
            _mm512_or_si512(_mm512_and_si512(w1, m4w),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w2, 2), m2w), 4)),
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w0, 4), m4w),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w2, 4), m2w), 4)),
            _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(w1, 4), m4w),
                            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(w2, 6), m2w), 4))};
        __m512i sc[16];
        for (int j = 0; j < 16; ++j) {
            sc[j] = _mm512_sub_epi32(
                _mm512_and_si512(_mm512_srli_epi32(word[j / 4], 8 * (j % 4)), _mm512_set1_epi32(0xFF)),
                _mm512_set1_epi32(32));
            _mm512_store_si512(p.sc[j], sc[j]);
        }
        for (int c = 0; c < 8; ++c) _mm512_store_si512(p.pr[c], int16_pair(sc[2 * c], sc[2 * c + 1]));
        const __m512i dd = _mm512_i32gather_epi32(off, base + offsetof(B, d) - 2, 1);
        _mm512_store_ps(p.d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
    } else {  // scales[j] = sc | m << 4
        for (int g = 0; g < 4; ++g) {
            const __m512i wsc = _mm512_i32gather_epi32(off, base + offsetof(B, scales) + 4 * g, 1);
            __m512i m[4];
            for (int b = 0; b < 4; ++b) {
                const __m512i byte = _mm512_and_si512(_mm512_srli_epi32(wsc, 8 * b), _mm512_set1_epi32(0xFF));
                _mm512_store_si512(p.sc[4 * g + b], _mm512_and_si512(byte, _mm512_set1_epi32(0x0F)));
                m[b] = _mm512_srli_epi32(byte, 4);
            }
            for (int b = 0; b < 4; b += 2)
                _mm512_store_si512(p.pr[2 * g + b / 2], int16_pair(m[b], m[b + 1]));
        }
        const __m512i dd = _mm512_i32gather_epi32(off, base + offsetof(B, d), 1);  // d | dmin << 16
        _mm512_store_ps(p.d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)));
        _mm512_store_ps(p.dmin, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
    }
}

// IQ4_XS: one super-block of 16 weight rows. The 4-bit indices pick kIQ4Values + 128 (u8, 1..241);
// the +128 comes back out through the activation's sums: I = sum_j sc_j * sum((v + 128) * y)
// - 128 * sum_j sc_j * (sum of y over sub-block j), with sc_j = ls_j - 32.
// Sub-block j of chunk c = j / 2: qs[32c + 16(j % 2) .. + 16), low nibbles are its elements 0..15,
// high nibbles 16..31; transposed chunk dword 4(j % 2) + k holds bytes 4k..4k+3 of those 16.
MOERUN_AVX512 void make_panel_iq4xs(const uint8_t *const *rows, __m512i off, int64_t i, Panel &p) {
    using B = quant::BlockIQ4_XS;
    const B *blk[kRows];
    for (int r = 0; r < kRows; ++r) blk[r] = reinterpret_cast<const B *>(rows[r]) + i;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i table = _mm512_xor_si512(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i *>(quant::kIQ4Values))),
        _mm512_set1_epi8(static_cast<char>(0x80)));
    for (int c = 0; c < 4; ++c) {
        __m256i v[kRows];
        __m512i t[8];
        for (int r = 0; r < kRows; ++r)
            v[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(blk[r]->qs + 32 * c));
        lanes::transpose16x8(v, t);
        for (int h = 0; h < 2; ++h)
            for (int k = 0; k < 4; ++k) {
                const __m512i b = t[4 * h + k];
                p.q[2 * c + h][k] = _mm512_shuffle_epi8(table, _mm512_and_si512(b, m4));
                p.q[2 * c + h][k + 4] =
                    _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(b, 4), m4));
            }
    }
    // d | scales_h << 16 at byte 0, scales_l at byte 4
    const char *base = reinterpret_cast<const char *>(blk[0]);
    const __m512i w0 = _mm512_i32gather_epi32(off, base, 1), sl = _mm512_i32gather_epi32(off, base + 4, 1);
    const __m512i sh = _mm512_srli_epi32(w0, 16);
    for (int j = 0; j < 8; ++j) {
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi32(sl, 4 * j), _mm512_set1_epi32(0xF));
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(sh, 2 * j), _mm512_set1_epi32(3));
        const __m512i sc =
            _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), _mm512_set1_epi32(32));
        _mm512_store_si512(p.sc[j], sc);
        _mm512_store_si512(p.pr[j], _mm512_or_si512(_mm512_and_si512(sc, _mm512_set1_epi32(0xFFFF)),
                                                    _mm512_slli_epi32(sc, 16)));
    }
    _mm512_store_ps(p.d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w0)));
}

// make: builds one super-block's panel of 16 rows; kSub, kShift: see run_panels.
using MakePanel = void (*)(const uint8_t *const *rows, __m512i off, int64_t i, Panel &p);

template <MakePanel make, int kSub, int kShift>
MOERUN_AVX512 void tile_k(const uint8_t *w, size_t rb, int64_t n_rows, const Acts &act, int64_t n_act,
                          int64_t n, float *y, int64_t ldy) {
    const int64_t nsb = n / 256;
    thread_local std::vector<Panel> panels_tls;
    std::vector<Panel> &panels = panels_tls;
    if (static_cast<int64_t>(panels.size()) < nsb) panels.resize(static_cast<size_t>(nsb));
    __m512 out[kTok];
    const uint8_t *a[kTok];
    for (int64_t r0 = 0; r0 < n_rows; r0 += kRows) {
        const lanes::PanelRows pr(w, rb, r0, n_rows);
        for (int64_t i = 0; i < nsb; ++i) make(pr.rows, pr.off, i, panels[static_cast<size_t>(i)]);
        for (int64_t t0 = 0; t0 < n_act; t0 += kTok) {
            const int m = static_cast<int>(n_act - t0 < kTok ? n_act - t0 : kTok);
            for (int t = 0; t < m; ++t) a[t] = act[t0 + t];
            switch (m) {
                case 4:
                    run_panels<4, kSub, kShift>(panels.data(), nsb, a, out);
                    break;
                case 3:
                    run_panels<3, kSub, kShift>(panels.data(), nsb, a, out);
                    break;
                case 2:
                    run_panels<2, kSub, kShift>(panels.data(), nsb, a, out);
                    break;
                default:
                    run_panels<1, kSub, kShift>(panels.data(), nsb, a, out);
                    break;
            }
            for (int t = 0; t < m; ++t) _mm512_mask_storeu_ps(y + (t0 + t) * ldy + r0, pr.keep, out[t]);
        }
    }
}

}  // namespace

bool lanes_k_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                  int64_t n_act, int64_t n, float *y, int64_t ldy) {
    if (n_act < lanes::kMinPanelTok || !lanes::gather_ok(rb)) return false;
    const Acts a{nullptr, static_cast<const uint8_t *>(act), ab};
    const auto *wb = static_cast<const uint8_t *>(w);
    switch (t) {
        case quant::Type::Q4_K:
            tile_k<make_panel_k4<quant::BlockQ4_K>, 32, -1>(wb, rb, n_rows, a, n_act, n, y, ldy);
            return true;
        case quant::Type::Q5_K:
            tile_k<make_panel_k4<quant::BlockQ5_K>, 32, -1>(wb, rb, n_rows, a, n_act, n, y, ldy);
            return true;
        case quant::Type::IQ4_XS:
            tile_k<make_panel_iq4xs, 32, 7>(wb, rb, n_rows, a, n_act, n, y, ldy);
            return true;
        case quant::Type::Q6_K:
            tile_k<make_panel_q6, 16, 5>(wb, rb, n_rows, a, n_act, n, y, ldy);
            return true;
        case quant::Type::Q3_K:
            tile_k<make_panel_k2<quant::BlockQ3_K>, 16, 2>(wb, rb, n_rows, a, n_act, n, y, ldy);
            return true;
        case quant::Type::Q2_K:
            tile_k<make_panel_k2<quant::BlockQ2_K>, 16, -1>(wb, rb, n_rows, a, n_act, n, y, ldy);
            return true;
        default:
            return false;
    }
}

}  // namespace moerun::kernels::cpu::avx512

#endif  // __x86_64__
