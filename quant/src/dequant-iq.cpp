// Dequantization of the non-linear 4-bit types IQ4_NL and IQ4_XS: each 4-bit index selects one
// of 16 fixed values (kIQ4Values), scaled by the block's scale. One rounding per operation, in
// this order, as ggml's dequantize_row_iq4_* and gguf-py's dequantize_blocks:
//   IQ4_NL: y = d * v              IQ4_XS: dl = d * (ls - 32), y = dl * v
#include "moerun/quant/dequant.h"
#include "moerun/quant/half.h"
#include "row-blocks.h"
#include "strict-fp.h"

namespace moerun::quant {

void dequantize_block(const BlockIQ4_NL &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < 16; ++j) {
        y[j] = d * static_cast<float>(kIQ4Values[b.qs[j] & 15]);
        y[j + 16] = d * static_cast<float>(kIQ4Values[b.qs[j] >> 4]);
    }
}

void dequantize_block(const BlockIQ4_XS &b, float *y) {
    const float d = fp16_to_fp32(b.d);
    for (int ib = 0; ib < QK_K / 32; ++ib) {
        const float dl = d * static_cast<float>(iq4_xs_scale(b.scales_h, b.scales_l, ib) - 32);
        const uint8_t *qs = b.qs + 16 * ib;
        for (int j = 0; j < 16; ++j) {
            y[32 * ib + j] = dl * static_cast<float>(kIQ4Values[qs[j] & 15]);
            y[32 * ib + j + 16] = dl * static_cast<float>(kIQ4Values[qs[j] >> 4]);
        }
    }
}

void dequantize_row_iq4_nl(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockIQ4_NL>(Type::IQ4_NL, src, dst, n);
}

void dequantize_row_iq4_xs(const void *src, float *dst, int64_t n) {
    detail::dequantize_blocks<BlockIQ4_XS>(Type::IQ4_XS, src, dst, n);
}

}  // namespace moerun::quant
