// Dequantization of the 32-element "legacy" blocks: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.
//
// Symmetric types: y = d * (q - offset). With a min: y = d * q + m. One rounding per operation,
// in this order, as ggml's dequantize_row_* and gguf-py's dequantize_blocks.
#include <cstring>

#include "moerun/quant/dequant.h"
#include "moerun/quant/half.h"
#include "row-blocks.h"
#include "strict-fp.h"

namespace moerun::quant {
namespace {

// Bit 4 of the 5-bit quant j of a Q5 block.
int high_bit(const uint8_t (&qh)[4], int j) {
    return (qh[j / 8] >> (j % 8)) & 1;
}

}  // namespace

void dequantize_block(const BlockQ4_0 &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
        const int q0 = (b.qs[j] & 0x0f) - 8;
        const int q1 = (b.qs[j] >> 4) - 8;
        y[j] = d * static_cast<float>(q0);
        y[j + QK4_0 / 2] = d * static_cast<float>(q1);
    }
}

void dequantize_block(const BlockQ4_1 &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
        const int q0 = b.qs[j] & 0x0f;
        const int q1 = b.qs[j] >> 4;
        y[j] = d * static_cast<float>(q0) + m;
        y[j + QK4_1 / 2] = d * static_cast<float>(q1) + m;
    }
}

void dequantize_block(const BlockQ5_0 &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < QK5_0 / 2; ++j) {
        const int q0 = ((b.qs[j] & 0x0f) | (high_bit(b.qh, j) << 4)) - 16;
        const int q1 = ((b.qs[j] >> 4) | (high_bit(b.qh, j + QK5_0 / 2) << 4)) - 16;
        y[j] = d * static_cast<float>(q0);
        y[j + QK5_0 / 2] = d * static_cast<float>(q1);
    }
}

void dequantize_block(const BlockQ5_1 &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    for (int j = 0; j < QK5_1 / 2; ++j) {
        const int q0 = (b.qs[j] & 0x0f) | (high_bit(b.qh, j) << 4);
        const int q1 = (b.qs[j] >> 4) | (high_bit(b.qh, j + QK5_1 / 2) << 4);
        y[j] = d * static_cast<float>(q0) + m;
        y[j + QK5_1 / 2] = d * static_cast<float>(q1) + m;
    }
}

void dequantize_block(const BlockQ8_0 &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < QK8_0; ++j) y[j] = d * static_cast<float>(b.qs[j]);
}

void dequantize_row_q4_0(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ4_0>(Type::Q4_0, src, dst, n);
}
void dequantize_row_q4_1(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ4_1>(Type::Q4_1, src, dst, n);
}
void dequantize_row_q5_0(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ5_0>(Type::Q5_0, src, dst, n);
}
void dequantize_row_q5_1(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ5_1>(Type::Q5_1, src, dst, n);
}
void dequantize_row_q8_0(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ8_0>(Type::Q8_0, src, dst, n);
}

}  // namespace moerun::quant
