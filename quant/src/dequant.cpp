// dequantize_row: the dispatch on the tensor type.
#include <stdexcept>
#include <string>

#include "moerun/quant/dequant.h"

namespace moerun::quant {

void dequantize_row(Type t, const void *src, float *dst, int64_t n) {
    switch (t) {
        case Type::F32:
            return dequantize_row_f32(src, dst, n);
        case Type::F16:
            return dequantize_row_f16(src, dst, n);
        case Type::BF16:
            return dequantize_row_bf16(src, dst, n);
        case Type::Q4_0:
            return dequantize_row_q4_0(src, dst, n);
        case Type::Q4_1:
            return dequantize_row_q4_1(src, dst, n);
        case Type::Q5_0:
            return dequantize_row_q5_0(src, dst, n);
        case Type::Q5_1:
            return dequantize_row_q5_1(src, dst, n);
        case Type::Q8_0:
            return dequantize_row_q8_0(src, dst, n);
        case Type::Q2_K:
            return dequantize_row_q2_k(src, dst, n);
        case Type::Q3_K:
            return dequantize_row_q3_k(src, dst, n);
        case Type::Q4_K:
            return dequantize_row_q4_k(src, dst, n);
        case Type::Q5_K:
            return dequantize_row_q5_k(src, dst, n);
        case Type::Q6_K:
            return dequantize_row_q6_k(src, dst, n);
        case Type::IQ4_NL:
            return dequantize_row_iq4_nl(src, dst, n);
        case Type::IQ4_XS:
            return dequantize_row_iq4_xs(src, dst, n);
        default:
            break;
    }
    throw std::invalid_argument("dequantize_row: no dequantizer for type " + std::string(type_name(t)) +
                                " (id " + std::to_string(static_cast<uint32_t>(t)) + ")");
}

}  // namespace moerun::quant
