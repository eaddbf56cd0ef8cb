// attention_head and store_kv_row: the portable definition, and the dispatch to the ISA kernels.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "moerun/kernels/cpu/ops.h"
#include "moerun/quant/half.h"
#include "vec-dot-impl.h"

namespace moerun::kernels::cpu {

namespace {

// Element i of a KV row of type t (F32 or F16).
inline float kv_at(const void *row, quant::Type t, int64_t i) {
    return t == quant::Type::F16 ? quant::fp16_to_fp32(static_cast<const uint16_t *>(row)[i])
                                 : static_cast<const float *>(row)[i];
}

inline float round_half(float x) {
    return quant::fp16_to_fp32(quant::fp32_to_fp16(x));
}

}  // namespace

bool kv_type_supported(quant::Type t) {
    return t == quant::Type::F32 || t == quant::Type::F16;
}

void store_kv_row(quant::Type t, const float *src, void *dst, int64_t n) {
    if (t == quant::Type::F16) {
        if (active_isa() != Isa::generic && avx2::store_f16(src, static_cast<uint16_t *>(dst), n)) return;
        auto *h = static_cast<uint16_t *>(dst);
        for (int64_t i = 0; i < n; ++i) h[i] = quant::fp32_to_fp16(src[i]);
    } else {
        std::copy_n(src, n, static_cast<float *>(dst));
    }
}

void attention_head(const float *q, const void *k, quant::Type type_k, const void *v, quant::Type type_v,
                    int64_t n_pos, int64_t hd, float scale, float *scores, float *out) {
    if (!kv_type_supported(type_k) || !kv_type_supported(type_v))
        throw std::invalid_argument("attention_head: the KV cache holds F32 or F16");
    const Isa isa = active_isa();
    if (isa == Isa::avx512 && avx512::attention_head(q, k, type_k, v, type_v, n_pos, hd, scale, scores, out))
        return;
    if (isa != Isa::generic && avx2::attention_head(q, k, type_k, v, type_v, n_pos, hd, scale, scores, out))
        return;
    const bool k16 = type_k == quant::Type::F16, v16 = type_v == quant::Type::F16;
    const size_t kb = k16 ? 2 : 4, vb = v16 ? 2 : 4;
    for (int64_t p = 0; p < n_pos; ++p) {
        const void *kp = static_cast<const uint8_t *>(k) + static_cast<size_t>(p * hd) * kb;
        float s = 0;
        for (int64_t i = 0; i < hd; ++i) s += (k16 ? round_half(q[i]) : q[i]) * kv_at(kp, type_k, i);
        scores[p] = s * scale;
    }
    softmax(scores, n_pos);
    for (int64_t p = 0; p < n_pos; ++p) {
        const float w = v16 ? round_half(scores[p]) : scores[p];
        const void *vp = static_cast<const uint8_t *>(v) + static_cast<size_t>(p * hd) * vb;
        for (int64_t i = 0; i < hd; ++i) out[i] += w * kv_at(vp, type_v, i);
    }
}

}  // namespace moerun::kernels::cpu
