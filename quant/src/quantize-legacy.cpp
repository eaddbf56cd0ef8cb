// Quantization to the 32-element "legacy" blocks, with ggml's reference rules
// (quantize_row_*_ref), which gguf-py's quantize_blocks reproduces:
//
//   Q8_0: d = max|x| / 127, q = round-half-away(x / d)            (x * (1 / d) exactly so)
//   Q4_0: v = the x of largest |x| (first on ties), d = v / -8, q = min(15, trunc(x * (1 / d) + 8.5))
//   Q5_0: as Q4_0 with -16, 16.5, 31
//   Q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min) * (1 / d) + 0.5))
//   Q5_1: as Q4_1 with 31
//
// 1 / d is taken from the float d before it is rounded to fp16, and is 0 when d is 0. Every step
// is one float operation, rounded, in this order.
#include <cmath>

#include "moerun/quant/half.h"
#include "moerun/quant/quantize.h"
#include "row-blocks.h"
#include "strict-fp.h"

namespace moerun::quant {
namespace {

// trunc(v) clamped to [0, hi]; v is >= 0 for finite inputs, NaN gives 0.
int trunc_clamped(float v, int hi) {
    if (!(v >= 0.0f)) return 0;
    if (v >= static_cast<float>(hi)) return hi;
    return static_cast<int>(v);
}

// Largest-magnitude element, keeping its sign; the first one on ties.
float signed_absmax(const float *x, int n) {
    float amax = 0.0f, vmax = 0.0f;
    for (int j = 0; j < n; ++j) {
        if (amax < std::fabs(x[j])) {
            amax = std::fabs(x[j]);
            vmax = x[j];
        }
    }
    return vmax;
}

void set_high_bit(uint8_t (&qh)[4], int j, int q) {
    if (q & 0x10) qh[j / 8] = static_cast<uint8_t>(qh[j / 8] | (1u << (j % 8)));
}

}  // namespace

void quantize_block(const float *x, BlockQ8_0 &b) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) {
        float r = std::round(x[j] * id);                       // half away from zero, as roundf
        if (!(r >= -128.0f)) r = r > 0.0f ? 127.0f : -128.0f;  // NaN / -inf guard (not reached for finite x)
        if (r > 127.0f) r = 127.0f;
        b.qs[j] = static_cast<int8_t>(r);
    }
}

void quantize_block(const float *x, BlockQ4_0 &b) {
    const float d = signed_absmax(x, QK4_0) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
        const int q0 = trunc_clamped(x[j] * id + 8.5f, 15);
        const int q1 = trunc_clamped(x[j + QK4_0 / 2] * id + 8.5f, 15);
        b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
}

void quantize_block(const float *x, BlockQ5_0 &b) {
    const float d = signed_absmax(x, QK5_0) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < 4; ++j) b.qh[j] = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
        const int q0 = trunc_clamped(x[j] * id + 16.5f, 31);
        const int q1 = trunc_clamped(x[j + QK5_0 / 2] * id + 16.5f, 31);
        b.qs[j] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
        set_high_bit(b.qh, j, q0);
        set_high_bit(b.qh, j + QK5_0 / 2, q1);
    }
}

namespace {

// Shared by Q4_1 and Q5_1: x = d * q + min, q in [0, nmax].
void quantize_with_min(const float *x, int nmax, uint16_t &d16, uint16_t &m16, int *q) {
    float lo = x[0], hi = x[0];
    for (int j = 1; j < 32; ++j) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    const float d = (hi - lo) / static_cast<float>(nmax);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    d16 = fp32_to_fp16(d);
    m16 = fp32_to_fp16(lo);
    for (int j = 0; j < 32; ++j) q[j] = trunc_clamped((x[j] - lo) * id + 0.5f, nmax);
}

}  // namespace

void quantize_block(const float *x, BlockQ4_1 &b) {
    int q[QK4_1];
    quantize_with_min(x, 15, b.d, b.m, q);
    for (int j = 0; j < QK4_1 / 2; ++j) b.qs[j] = static_cast<uint8_t>(q[j] | (q[j + QK4_1 / 2] << 4));
}

void quantize_block(const float *x, BlockQ5_1 &b) {
    int q[QK5_1];
    quantize_with_min(x, 31, b.d, b.m, q);
    for (int j = 0; j < 4; ++j) b.qh[j] = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
        b.qs[j] = static_cast<uint8_t>((q[j] & 0x0f) | ((q[j + QK5_1 / 2] & 0x0f) << 4));
        set_high_bit(b.qh, j, q[j]);
        set_high_bit(b.qh, j + QK5_1 / 2, q[j + QK5_1 / 2]);
    }
}

void quantize_row_q4_0(const float *src, void *dst, int64_t n) {
    detail::quantize_blocks<BlockQ4_0>(Type::Q4_0, src, dst, n);
}
void quantize_row_q4_1(const float *src, void *dst, int64_t n) {
    detail::quantize_blocks<BlockQ4_1>(Type::Q4_1, src, dst, n);
}
void quantize_row_q5_0(const float *src, void *dst, int64_t n) {
    detail::quantize_blocks<BlockQ5_0>(Type::Q5_0, src, dst, n);
}
void quantize_row_q5_1(const float *src, void *dst, int64_t n) {
    detail::quantize_blocks<BlockQ5_1>(Type::Q5_1, src, dst, n);
}
void quantize_row_q8_0(const float *src, void *dst, int64_t n) {
    detail::quantize_blocks<BlockQ8_0>(Type::Q8_0, src, dst, n);
}

}  // namespace moerun::quant
