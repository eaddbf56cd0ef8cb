// quantize_row: the dispatch on the tensor type.
#include <stdexcept>
#include <string>

#include "moerun/quant/quantize.h"
#include "row-check.h"

namespace moerun::quant {
namespace {

using RowFn = void (*)(const float *, void *, int64_t);

RowFn row_fn(Type t) {
    switch (t) {
        case Type::F32:
            return quantize_row_f32;
        case Type::F16:
            return quantize_row_f16;
        case Type::BF16:
            return quantize_row_bf16;
        case Type::Q4_0:
            return quantize_row_q4_0;
        case Type::Q4_1:
            return quantize_row_q4_1;
        case Type::Q5_0:
            return quantize_row_q5_0;
        case Type::Q5_1:
            return quantize_row_q5_1;
        case Type::Q8_0:
            return quantize_row_q8_0;
        case Type::Q4_K:
            return quantize_row_q4_k;
        case Type::Q5_K:
            return quantize_row_q5_k;
        case Type::Q6_K:
            return quantize_row_q6_k;
        default:
            return nullptr;
    }
}

}  // namespace

bool can_quantize(Type t) {
    return row_fn(t) != nullptr;
}

size_t quantize_row(Type t, const float *src, void *dst, int64_t n) {
    const RowFn fn = row_fn(t);
    if (fn == nullptr) {
        throw std::invalid_argument("quantize_row: no quantizer for type " + std::string(type_name(t)) +
                                    " (id " + std::to_string(static_cast<uint32_t>(t)) + ")");
    }
    const int64_t nb = detail::row_blocks(t, n, "quantize_row");
    fn(src, dst, n);
    return static_cast<size_t>(nb) * type_size(t);
}

}  // namespace moerun::quant
