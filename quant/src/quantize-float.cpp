// Quantization to the plain float types: F32 (a copy), F16 and BF16 (round to nearest even).
#include <cstring>

#include "moerun/quant/half.h"
#include "moerun/quant/quantize.h"
#include "row-check.h"

namespace moerun::quant {

void quantize_row_f32(const float *src, void *dst, int64_t n) {
    detail::row_blocks(Type::F32, n, "quantize_row");
    if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

void quantize_row_f16(const float *src, void *dst, int64_t n) {
    detail::row_blocks(Type::F16, n, "quantize_row");
    auto *p = static_cast<unsigned char *>(dst);
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_fp16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
    }
}

void quantize_row_bf16(const float *src, void *dst, int64_t n) {
    detail::row_blocks(Type::BF16, n, "quantize_row");
    auto *p = static_cast<unsigned char *>(dst);
    for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_bf16(src[i]);
        std::memcpy(p + 2 * i, &h, 2);
    }
}

}  // namespace moerun::quant
