// Dequantization of the plain float types: F32 (a copy), F16 and BF16 (exact widening).
#include <cstring>

#include "moerun/quant/dequant.h"
#include "moerun/quant/half.h"
#include "row-check.h"

namespace moerun::quant {

void dequantize_row_f32(const void *src, float *dst, int64_t n) {
    detail::row_blocks(Type::F32, n, "dequantize_row");
    if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void dequantize_row_f16(const void *src, float *dst, int64_t n) {
    detail::row_blocks(Type::F16, n, "dequantize_row");
    const auto *p = static_cast<const unsigned char *>(src);
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = fp16_to_fp32(h);
    }
}

void dequantize_row_bf16(const void *src, float *dst, int64_t n) {
    detail::row_blocks(Type::BF16, n, "dequantize_row");
    const auto *p = static_cast<const unsigned char *>(src);
    for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = bf16_to_fp32(h);
    }
}

}  // namespace moerun::quant
