// The CPU vec-dot kernels against the scalar reference of quant/: for every weight type, the
// integer kernel must equal dot(dequantize(w), dequantize(quantize_act(x))) up to float rounding,
// and stay close to the exact float dot(dequantize(w), x) (activation quantization error only).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "moerun/kernels/cpu/ops.h"
#include "moerun/kernels/cpu/vec-dot.h"
#include "moerun/quant/dequant.h"
#include "moerun/quant/half.h"
#include "moerun/quant/quantize.h"

using namespace moerun;
namespace cpu = kernels::cpu;

namespace {

// Dequantizes a converted activation row back to floats (the value the kernel multiplies with).
std::vector<float> act_values(quant::Type t, const std::vector<uint8_t> &act, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    switch (t) {
        case quant::Type::Q4_0:
        case quant::Type::Q5_0:
        case quant::Type::Q8_0: {
            const auto *b = reinterpret_cast<const cpu::ActQ8_0 *>(act.data());
            for (int64_t i = 0; i < n; ++i) v[i] = b[i / 32].d * b[i / 32].qs[i % 32];
            break;
        }
        case quant::Type::Q4_1:
        case quant::Type::Q5_1: {
            const auto *b = reinterpret_cast<const cpu::ActQ8_1 *>(act.data());
            for (int64_t i = 0; i < n; ++i) v[i] = b[i / 32].d * b[i / 32].qs[i % 32];
            break;
        }
        case quant::Type::F32:
        case quant::Type::F16:
        case quant::Type::BF16:
            std::memcpy(v.data(), act.data(), v.size() * sizeof(float));
            break;
        default: {
            const auto *b = reinterpret_cast<const cpu::ActQ8_K *>(act.data());
            for (int64_t i = 0; i < n; ++i) v[i] = b[i / 256].d * b[i / 256].qs[i % 256];
        }
    }
    return v;
}

}  // namespace

TEST_CASE("vec_dot equals the dequantized reference for every type") {
    const quant::Type types[] = {quant::Type::F32,  quant::Type::F16,  quant::Type::BF16, quant::Type::Q4_0,
                                 quant::Type::Q4_1, quant::Type::Q5_0, quant::Type::Q5_1, quant::Type::Q8_0,
                                 quant::Type::Q2_K, quant::Type::Q3_K, quant::Type::Q4_K, quant::Type::Q5_K,
                                 quant::Type::Q6_K};
    std::mt19937 rng(11);
    const int64_t n = 1024;
    for (auto t : types) {
        CAPTURE(quant::type_name(t));
        const uint64_t rb = *quant::row_bytes(t, n);
        std::vector<uint8_t> w(rb);
        // Weights: quantized from Gaussian data where quant/ has a quantizer; otherwise (Q2_K,
        // Q3_K) random payload bytes with the fp16 super-scales set to modest values.
        std::normal_distribution<float> wd(0, 0.5f);
        std::vector<float> src(static_cast<size_t>(n));
        for (auto &v : src) v = wd(rng);
        if (quant::can_quantize(t)) {
            quant::quantize_row(t, src.data(), w.data(), n);
        } else {
            std::uniform_int_distribution<int> byte(0, 255);
            for (auto &b : w) b = static_cast<uint8_t>(byte(rng));
            const uint16_t d = quant::fp32_to_fp16(0.01f), dmin = quant::fp32_to_fp16(0.02f);
            for (uint64_t off = 0; off < rb; off += quant::type_size(t)) {
                if (t == quant::Type::Q2_K) {
                    std::memcpy(&w[off + 80], &d, 2);
                    std::memcpy(&w[off + 82], &dmin, 2);
                } else {  // Q3_K
                    std::memcpy(&w[off + 108], &d, 2);
                }
            }
        }
        std::vector<float> wf(static_cast<size_t>(n));
        quant::dequantize_row(t, w.data(), wf.data(), n);
        std::normal_distribution<float> nd(0, 1);
        std::vector<float> x(static_cast<size_t>(n));
        for (auto &v : x) v = nd(rng);
        std::vector<uint8_t> act(cpu::act_bytes(t, n));
        cpu::quantize_act(t, x.data(), act.data(), n);
        const auto xa = act_values(t, act, n);
        double ref = 0, exact = 0, mag = 0;
        for (int64_t i = 0; i < n; ++i) {
            ref += double(wf[i]) * xa[i];
            exact += double(wf[i]) * x[i];
            mag += std::fabs(double(wf[i]) * x[i]);
        }
        // Q4_1/Q5_1 add m * s with s rounded to fp16: allow for that rounding.
        const double tol = (t == quant::Type::Q4_1 || t == quant::Type::Q5_1) ? 2e-3 : 2e-5;
        const float got = cpu::vec_dot(t, w.data(), act.data(), n);
        CHECK(std::fabs(got - ref) <= tol * mag);
        CHECK(std::fabs(got - exact) <= 0.05 * mag);
    }
}

TEST_CASE("vec_dot_x4 is bit-identical to four vec_dot calls") {
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0, 1);
    const int64_t n = 2048;
    for (auto t : {quant::Type::Q4_K, quant::Type::Q8_0, quant::Type::Q6_K, quant::Type::F32}) {
        CAPTURE(quant::type_name(t));
        std::vector<float> src(static_cast<size_t>(n));
        for (auto &v : src) v = nd(rng);
        std::vector<uint8_t> w(*quant::row_bytes(t, n));
        quant::quantize_row(t, src.data(), w.data(), n);
        std::vector<std::vector<uint8_t>> acts(4, std::vector<uint8_t>(cpu::act_bytes(t, n)));
        const void *ptrs[4];
        for (int k = 0; k < 4; ++k) {
            for (auto &v : src) v = nd(rng);
            cpu::quantize_act(t, src.data(), acts[static_cast<size_t>(k)].data(), n);
            ptrs[k] = acts[static_cast<size_t>(k)].data();
        }
        float out[4];
        cpu::vec_dot_x4(t, w.data(), ptrs, n, out);
        for (int k = 0; k < 4; ++k) CHECK(out[k] == cpu::vec_dot(t, w.data(), ptrs[k], n));
    }
}
