// Internal: the ISA-specific vec-dot kernels that vec-dot.cpp dispatches to.
#pragma once
#include <cstdint>
#include <cstring>

#include "moerun/kernels/cpu/vec-dot.h"

namespace moerun::kernels::cpu {

// The 8 six-bit scales and mins of a Q4_K block (12 bytes), one byte each, packed as four words:
// sc[0..3], sc[4..7], m[0..3], m[4..7]. With w0, w1, w2 the little-endian words of `scales`:
//   sc[0..3] = w0 & 0x3f..,  sc[4..7] = (w2 & 0x0f..) | ((w0 >> 2) & 0x30..)
//   m[0..3]  = w1 & 0x3f..,  m[4..7]  = ((w2 >> 4) & 0x0f..) | ((w1 >> 2) & 0x30..)
// The SIMD kernels widen these to int16 lanes.
struct K4ScaleWords {
    uint32_t sc_lo, sc_hi, m_lo, m_hi;
};
inline K4ScaleWords k4_scale_words(const uint8_t *scales) {
    uint32_t w[3];
    std::memcpy(w, scales, 12);
    return {w[0] & 0x3f3f3f3fu, (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u), w[1] & 0x3f3f3f3fu,
            ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u)};
}

// The 16 six-bit scales of a Q3_K block (12 bytes; before the -32), one byte each, as four words
// (scale j = byte j % 4 of word j / 4). Low 4 bits: the nibbles of bytes 0..7 (low nibbles are
// scales 0..7, high nibbles 8..15); high 2 bits: the 2-bit fields of bytes 8..11 (field k of byte
// 8 + j % 4 is scale 4k + j % 4). With w0, w1, w2 the little-endian words of `scales`, word k is
// (nibbles of w0 or w1) | (((w2 >> 2k) & 0x03..) << 4).
inline void q3_k_scale_words(const uint8_t *scales, uint32_t out[4]) {
    uint32_t w[3];
    std::memcpy(w, scales, 12);
    const uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    out[0] = (w[0] & m4) | ((w[2] & m2) << 4);
    out[1] = (w[1] & m4) | (((w[2] >> 2) & m2) << 4);
    out[2] = ((w[0] >> 4) & m4) | (((w[2] >> 4) & m2) << 4);
    out[3] = ((w[1] >> 4) & m4) | (((w[2] >> 6) & m2) << 4);
}

// The 8 six-bit scales ls of an IQ4_XS block (stored + 32), one per byte (byte ib = sub-block ib):
// the nibbles of scales_l and the 2-bit fields of scales_h spread to bytes by shifts and masks.
inline uint64_t iq4_xs_scale_bytes(const uint8_t scales_l[4], uint16_t scales_h) {
    uint32_t l32;
    std::memcpy(&l32, scales_l, 4);
    uint64_t l = l32;  // nibble k -> byte k
    l = (l | (l << 16)) & 0x0000FFFF0000FFFFull;
    l = (l | (l << 8)) & 0x00FF00FF00FF00FFull;
    l = (l | (l << 4)) & 0x0F0F0F0F0F0F0F0Full;
    uint64_t h = scales_h;  // 2-bit field k -> byte k
    h = (h | (h << 24)) & 0x000000FF000000FFull;
    h = (h | (h << 12)) & 0x000F000F000F000Full;
    h = (h | (h << 6)) & 0x0303030303030303ull;
    return l | (h << 4);
}

}  // namespace moerun::kernels::cpu

namespace moerun::kernels::cpu::avx2 {
bool supported();  // the CPU has AVX2 and FMA
float dot_q4_k(const void *w, const void *act, int64_t n);
float dot_q6_k(const void *w, const void *act, int64_t n);
float dot_q5_k(const void *w, const void *act, int64_t n);
void dot_q5_k_x4(const void *w, const void *const act[4], int64_t n, float out[4]);
float dot_iq4_xs(const void *w, const void *act, int64_t n);
void dot_q4_k_x4(const void *w, const void *const act[4], int64_t n, float out[4]);
void dot_iq4_xs_x4(const void *w, const void *const act[4], int64_t n, float out[4]);
float dot_q2_k(const void *w, const void *act, int64_t n);
void dot_q2_k_x4(const void *w, const void *const act[4], int64_t n, float out[4]);
float dot_q3_k(const void *w, const void *act, int64_t n);
void dot_q3_k_x4(const void *w, const void *const act[4], int64_t n, float out[4]);
void dot_q6_k_x4(const void *w, const void *const act[4], int64_t n, float out[4]);
// vec_dot_tile for Q4_K, Q5_K, Q6_K, Q3_K and Q2_K with 3 or more activation rows, 8 weight rows per pass
// (lanes-k-avx2.cpp), bit-identical to the row kernels; false for the others.
bool lanes_k_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                  int64_t n_act, int64_t n, float *y, int64_t ldy);
// vec_dot_tile / vec_dot_rows for Q8_0, Q4_0, Q5_0 and IQ4_NL, any number of rows, 8 weight rows per
// pass (lanes-32-avx2.cpp): the only AVX2 kernels of these types; false for the others.
bool lanes32_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                  int64_t n_act, int64_t n, float *y, int64_t ldy);
bool lanes32_rows(quant::Type t, const void *w, const void *const *act, int n_act, int64_t n, float *out);
// ops::attention_head for head sizes that are multiples of 8; false for the others.
bool attention_head(const float *q, const void *k, quant::Type type_k, const void *v, quant::Type type_v,
                    int64_t n_pos, int64_t hd, float scale, float *scores, float *out);
// F32 -> F16 with F16C (round to nearest even); false without F16C.
bool store_f16(const float *src, uint16_t *dst, int64_t n);
}  // namespace moerun::kernels::cpu::avx2

namespace moerun::kernels::cpu::avx512 {
bool supported();  // AVX2 + FMA + F16C and AVX-512 F, BW, VL, DQ, VNNI
// out[k] = vec_dot(t, w, act[k], n) for k < n_act (1..kMaxRows), bit-identical to n_act == 1;
// false where t has no AVX-512 kernel (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_0, Q4_0, Q5_0, IQ4_NL, IQ4_XS
// have one).
bool dot_rows(quant::Type t, const void *w, const void *const *act, int n_act, int64_t n, float *out);
// vec_dot_tile for the types dot_rows has; false for the others.
bool dot_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
              int64_t n_act, int64_t n, float *y, int64_t ldy);
// vec_dot_tile and dot_rows for the 32-element types against Q8_0 activations (Q8_0, Q4_0, Q5_0,
// IQ4_NL), 16 weight rows per pass in the lanes of a zmm (lanes-avx512.cpp); false for the others.
bool lanes_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                int64_t n_act, int64_t n, float *y, int64_t ldy);
bool lanes_rows(quant::Type t, const void *w, const void *const *act, int n_act, int64_t n, float *out);
// vec_dot_tile for the super-block types (Q4_K, Q5_K, Q6_K, Q3_K, Q2_K, IQ4_XS) from 3 activation
// rows up, 16 weight rows per pass in the lanes of a zmm (lanes-k-avx512.cpp); false for other types,
// fewer activation rows or rows too far apart for 32-bit gather offsets (then the row kernels serve).
bool lanes_k_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                  int64_t n_act, int64_t n, float *y, int64_t ldy);
// quantize_act for the Q8_0 / Q8_K activation types; false for the others.
bool quantize(quant::Type t, const float *x, void *dst, int64_t n);
// ops::attention_head for head sizes that are multiples of 16 up to 256; false for the others.
bool attention_head(const float *q, const void *k, quant::Type type_k, const void *v, quant::Type type_v,
                    int64_t n_pos, int64_t hd, float scale, float *scores, float *out);
}  // namespace moerun::kernels::cpu::avx512

namespace moerun::kernels::cpu {
// The quantize_act of act-quant.cpp without ISA dispatch (the reference).
void quantize_act_generic(quant::Type t, const float *x, void *dst, int64_t n);
}  // namespace moerun::kernels::cpu
