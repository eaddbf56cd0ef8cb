// Dequantization of the K-quant super-blocks (256 elements): Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
//
// Written per element from the layout comments of blocks.h: for element e, find its quant bits and
// its sub-block, then y = (d * sc) * q - (dmin * m) (or (d * sc) * q for the symmetric types),
// rounding after each operation as ggml's reference and gguf-py do.
#include "moerun/quant/dequant.h"
#include "moerun/quant/half.h"
#include "row-blocks.h"
#include "strict-fp.h"

namespace moerun::quant {

void dequantize_block(const BlockQ2_K &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < QK_K; ++e) {
        const int h = e / 128, s = (e % 128) / 32, l = e % 32;
        const int q = (b.qs[32 * h + l] >> (2 * s)) & 3;
        const int sub = e / 16;
        const float dl = d * static_cast<float>(b.scales[sub] & 0x0f);
        const float ml = dmin * static_cast<float>(b.scales[sub] >> 4);
        y[e] = dl * static_cast<float>(q) - ml;
    }
}

void dequantize_block(const BlockQ3_K &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < QK_K; ++e) {
        const int h = e / 128, s = (e % 128) / 32, l = e % 32;
        const int low = (b.qs[32 * h + l] >> (2 * s)) & 3;
        const int hbit = (b.hmask[l] >> (4 * h + s)) & 1;
        const int q = low - (hbit ? 0 : 4);  // in [-4, 3]
        const float dl = d * static_cast<float>(q3_k_scale(b.scales, e / 16) - 32);
        y[e] = dl * static_cast<float>(q);
    }
}

void dequantize_block(const BlockQ4_K &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < QK_K; ++e) {
        const int c = e / 64, l = e % 64;
        const int q = (b.qs[32 * c + l % 32] >> (4 * (l / 32))) & 0x0f;
        int sc = 0, m = 0;
        q4_k_scale_min(b.scales, e / 32, sc, m);
        const float dl = d * static_cast<float>(sc);
        const float ml = dmin * static_cast<float>(m);
        y[e] = dl * static_cast<float>(q) - ml;
    }
}

void dequantize_block(const BlockQ5_K &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < QK_K; ++e) {
        const int c = e / 64, l = e % 64;
        const int low = (b.qs[32 * c + l % 32] >> (4 * (l / 32))) & 0x0f;
        const int high = (b.qh[l % 32] >> (2 * c + l / 32)) & 1;
        const int q = low | (high << 4);
        int sc = 0, m = 0;
        q4_k_scale_min(b.scales, e / 32, sc, m);
        const float dl = d * static_cast<float>(sc);
        const float ml = dmin * static_cast<float>(m);
        y[e] = dl * static_cast<float>(q) - ml;
    }
}

void dequantize_block(const BlockQ6_K &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < QK_K; ++e) {
        const int h = e / 128, s = (e % 128) / 32, l = e % 32;
        const int low = (b.ql[64 * h + 32 * (s & 1) + l] >> (4 * (s >> 1))) & 0x0f;
        const int high = (b.qh[32 * h + l] >> (2 * s)) & 3;
        const int q = (low | (high << 4)) - 32;
        const float dl = d * static_cast<float>(b.scales[e / 16]);
        y[e] = dl * static_cast<float>(q);
    }
}

void dequantize_row_q2_k(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ2_K>(Type::Q2_K, src, dst, n);
}
void dequantize_row_q3_k(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ3_K>(Type::Q3_K, src, dst, n);
}
void dequantize_row_q4_k(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ4_K>(Type::Q4_K, src, dst, n);
}
void dequantize_row_q5_k(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ5_K>(Type::Q5_K, src, dst, n);
}
void dequantize_row_q6_k(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockQ6_K>(Type::Q6_K, src, dst, n);
}

}  // namespace moerun::quant
