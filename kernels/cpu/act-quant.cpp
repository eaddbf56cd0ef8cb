// Activation conversion to the vec-dot types (see vec-dot.h). Rounding follows ggml's x86
// CPU code: Q8_0/Q8_1 use id = 127 / amax with round-to-nearest-even; Q8_K uses
// iscale = -127 / max (max: the element of largest magnitude, signed), nearest-even, clamp 127.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "moerun/kernels/cpu/vec-dot.h"
#include "moerun/quant/half.h"
#include "vec-dot-impl.h"

namespace moerun::kernels::cpu {
namespace {

float fp16_round(float x) {
    return quant::fp16_to_fp32(quant::fp32_to_fp16(x));
}
int nearest_even(float x) {
    return static_cast<int>(std::nearbyint(x));
}  // default FE_TONEAREST

void quantize_q8_0(const float *x, ActQ8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.f;
        y[i].d = fp16_round(d);
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            y[i].qs[j] = static_cast<int8_t>(nearest_even(x[j] * id));
            sum += y[i].qs[j];
        }
        y[i].s128 = 128 * sum;
    }
}

void quantize_q8_1(const float *x, ActQ8_1 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.f;
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            y[i].qs[j] = static_cast<int8_t>(nearest_even(x[j] * id));
            sum += y[i].qs[j];
        }
        y[i].d = fp16_round(d);
        y[i].s = fp16_round(d * static_cast<float>(sum));
    }
}

void quantize_q8_k(const float *x, ActQ8_K *y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += 256) {
        float max = 0, amax = 0;
        for (int j = 0; j < 256; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0) {
            std::memset(&y[i], 0, sizeof(ActQ8_K));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < 256; ++j) {
            const int v = nearest_even(iscale * x[j]);
            y[i].qs[j] = static_cast<int8_t>(v > 127 ? 127 : v);
        }
        for (int g = 0; g < 16; ++g) {
            int s = 0;
            for (int j = 0; j < 16; ++j) s += y[i].qs[16 * g + j];
            y[i].bsums[g] = static_cast<int16_t>(s);
        }
        y[i].d = 1 / iscale;
    }
}

}  // namespace

size_t act_bytes(quant::Type t, int64_t n) {
    const auto un = static_cast<size_t>(n);
    switch (t) {
        case quant::Type::Q4_0:
        case quant::Type::Q5_0:
        case quant::Type::Q8_0:
        case quant::Type::IQ4_NL:
            return un / 32 * sizeof(ActQ8_0);
        case quant::Type::Q4_1:
        case quant::Type::Q5_1:
            return un / 32 * sizeof(ActQ8_1);
        case quant::Type::Q2_K:
        case quant::Type::Q3_K:
        case quant::Type::Q4_K:
        case quant::Type::Q5_K:
        case quant::Type::Q6_K:
        case quant::Type::IQ4_XS:
            return un / 256 * sizeof(ActQ8_K);
        default:
            return un * sizeof(float);  // F32 / F16 / BF16: rounded floats
    }
}

void quantize_act(quant::Type t, const float *x, void *dst, int64_t n) {
    if (active_isa() == Isa::avx512 && avx512::quantize(t, x, dst, n)) return;
    quantize_act_generic(t, x, dst, n);
}

void quantize_act_generic(quant::Type t, const float *x, void *dst, int64_t n) {
    switch (t) {
        case quant::Type::Q4_0:
        case quant::Type::Q5_0:
        case quant::Type::Q8_0:
        case quant::Type::IQ4_NL:
            return quantize_q8_0(x, static_cast<ActQ8_0 *>(dst), n / 32);
        case quant::Type::Q4_1:
        case quant::Type::Q5_1:
            return quantize_q8_1(x, static_cast<ActQ8_1 *>(dst), n / 32);
        case quant::Type::Q2_K:
        case quant::Type::Q3_K:
        case quant::Type::Q4_K:
        case quant::Type::Q5_K:
        case quant::Type::Q6_K:
        case quant::Type::IQ4_XS:
            return quantize_q8_k(x, static_cast<ActQ8_K *>(dst), n / 256);
        case quant::Type::F16: {
            auto *y = static_cast<float *>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = fp16_round(x[i]);
            return;
        }
        case quant::Type::BF16: {
            auto *y = static_cast<float *>(dst);
            for (int64_t i = 0; i < n; ++i) y[i] = quant::bf16_to_fp32(quant::fp32_to_bf16(x[i]));
            return;
        }
        case quant::Type::F32:
            std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float));
            return;
        default:
            throw std::invalid_argument("quantize_act: no vec-dot type for " +
                                        std::string(quant::type_name(t)));
    }
}

}  // namespace moerun::kernels::cpu
