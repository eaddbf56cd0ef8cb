// The CPU vec-dot kernels against the scalar reference of quant/: for every weight type, the
// integer kernel must equal dot(dequantize(w), dequantize(quantize_act(x))) up to float rounding,
// and stay close to the exact float dot(dequantize(w), x) (activation quantization error only).
#include <doctest/doctest.h>

#include <algorithm>
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
        case quant::Type::Q8_0:
        case quant::Type::IQ4_NL: {
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

// A weight row of n values of type t: quantized from Gaussian data (std 0.5) where quant/ has a
// quantizer; otherwise (Q2_K, Q3_K, IQ4_NL, IQ4_XS) random payload bytes (every quant and
// sub-block scale, negative scales included) with the fp16 scales set to modest values.
std::vector<uint8_t> weight_row(quant::Type t, int64_t n, std::mt19937 &rng) {
    const uint64_t rb = *quant::row_bytes(t, static_cast<uint64_t>(n));
    std::vector<uint8_t> w(rb);
    if (quant::can_quantize(t)) {
        std::normal_distribution<float> wd(0, 0.5f);
        std::vector<float> src(static_cast<size_t>(n));
        for (auto &v : src) v = wd(rng);
        quant::quantize_row(t, src.data(), w.data(), n);
        return w;
    }
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto &b : w) b = static_cast<uint8_t>(byte(rng));
    const uint16_t d = quant::fp32_to_fp16(0.01f), dmin = quant::fp32_to_fp16(0.02f);
    for (uint64_t off = 0; off < rb; off += quant::type_size(t)) {
        if (t == quant::Type::Q2_K) {
            std::memcpy(&w[off + 80], &d, 2);
            std::memcpy(&w[off + 82], &dmin, 2);
        } else if (t == quant::Type::Q3_K) {
            std::memcpy(&w[off + 108], &d, 2);
        } else {  // IQ4_NL, IQ4_XS: d first
            std::memcpy(&w[off], &d, 2);
        }
    }
    return w;
}

// Every weight type the CPU kernels take.
const quant::Type kAllTypes[] = {
    quant::Type::F32,  quant::Type::F16,  quant::Type::BF16, quant::Type::Q4_0,   quant::Type::Q4_1,
    quant::Type::Q5_0, quant::Type::Q5_1, quant::Type::Q8_0, quant::Type::Q2_K,   quant::Type::Q3_K,
    quant::Type::Q4_K, quant::Type::Q5_K, quant::Type::Q6_K, quant::Type::IQ4_NL, quant::Type::IQ4_XS};

// Every instruction set this CPU has (the generic one always).
std::vector<cpu::Isa> isas() {
    std::vector<cpu::Isa> v = {cpu::Isa::generic};
    if (cpu::best_isa() >= cpu::Isa::avx2) v.push_back(cpu::Isa::avx2);
    if (cpu::best_isa() >= cpu::Isa::avx512) v.push_back(cpu::Isa::avx512);
    return v;
}

// Restores the default instruction set when a test case ends.
struct IsaGuard {
    cpu::Isa saved = cpu::active_isa();
    ~IsaGuard() { cpu::set_isa(saved); }
};

}  // namespace

TEST_CASE("vec_dot equals the dequantized reference for every type") {
    IsaGuard guard;
    for (const cpu::Isa isa : isas()) {
        cpu::set_isa(isa);
        CAPTURE(cpu::isa_name(isa));
        const auto &types = kAllTypes;
        std::mt19937 rng(11);
        const int64_t n = 1024;
        for (auto t : types) {
            CAPTURE(quant::type_name(t));
            const std::vector<uint8_t> w = weight_row(t, n, rng);
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
}

TEST_CASE("the block types give the same bits under AVX2 and AVX-512") {
    // Both reduce each block (super-block) to exact integers, then take the same float steps.
    if (cpu::best_isa() < cpu::Isa::avx512) return;
    IsaGuard guard;
    std::mt19937 rng(23);
    std::normal_distribution<float> nd(0, 1);
    const int64_t n = 2048;
    for (auto t : {quant::Type::Q4_K, quant::Type::Q5_K, quant::Type::Q6_K, quant::Type::Q3_K,
                   quant::Type::Q2_K, quant::Type::IQ4_XS, quant::Type::Q8_0, quant::Type::Q4_0,
                   quant::Type::Q5_0, quant::Type::IQ4_NL}) {
        CAPTURE(quant::type_name(t));
        for (int rep = 0; rep < 16; ++rep) {
            const std::vector<uint8_t> w = weight_row(t, n, rng);
            std::vector<float> x(static_cast<size_t>(n));
            for (auto &v : x) v = nd(rng);
            std::vector<uint8_t> act(cpu::act_bytes(t, n));
            cpu::quantize_act(t, x.data(), act.data(), n);
            cpu::set_isa(cpu::Isa::avx2);
            const float a2 = cpu::vec_dot(t, w.data(), act.data(), n);
            cpu::set_isa(cpu::Isa::avx512);
            CHECK(cpu::vec_dot(t, w.data(), act.data(), n) == a2);
        }
    }
}

TEST_CASE("32-element blocks at the extremes: no int16 step saturates, on every instruction set") {
    // Quants all at one end of their range against activations all at +-127: the largest pair and
    // step sums the kernels form in 16 bits. Equal to the generic kernel (exact integers) up to the
    // order of the float steps.
    IsaGuard guard;
    const int64_t n = 256, nb = n / 32;
    const uint16_t one = 0x3C00;  // fp16 1.0
    for (auto t : {quant::Type::Q8_0, quant::Type::Q4_0, quant::Type::Q5_0, quant::Type::IQ4_NL}) {
        for (bool high :
             {false, true}) {  // Q8_0: -128 / 127; Q4_0: -8 / 7; Q5_0: -16 / 15; IQ4_NL: -127 / 113
            CAPTURE(quant::type_name(t));
            CAPTURE(high);
            const size_t rb = *quant::row_bytes(t, n), bb = rb / nb;
            std::vector<uint8_t> w(rb);
            for (int64_t i = 0; i < nb; ++i) {
                uint8_t *b = w.data() + i * bb;
                std::memcpy(b, &one, 2);
                std::memset(b + 2, t == quant::Type::Q8_0 ? (high ? 0x7F : 0x80) : (high ? 0xFF : 0x00),
                            bb - 2);
            }
            for (float sign : {1.0f, -1.0f}) {
                const std::vector<float> x(static_cast<size_t>(n), sign);
                const size_t ab = cpu::act_bytes(t, n);
                std::vector<uint8_t> act(ab * 5);
                for (int k = 0; k < 5; ++k) cpu::quantize_act(t, x.data(), act.data() + k * ab, n);
                const float want = cpu::vec_dot_generic(t, w.data(), act.data(), n);
                REQUIRE(std::fabs(want) > 1000.0f);
                for (auto isa : isas()) {
                    CAPTURE(cpu::isa_name(isa));
                    cpu::set_isa(isa);
                    for (int64_t m : {1, 2, 5}) {  // decode and panel kernels
                        std::vector<float> y(static_cast<size_t>(m));
                        cpu::vec_dot_tile(t, w.data(), rb, 1, act.data(), ab, m, n, y.data(), 1);
                        for (float v : y) CHECK(std::fabs(v - want) <= 1e-6f * std::fabs(want));
                    }
                }
            }
        }
    }
}

TEST_CASE("IQ4_XS at the extremes: no int16 step saturates, on every instruction set") {
    // Every value -127 with scale -32, or 113 with scale 31, against activations all at +-127: the
    // largest pairs (2 * 127 * 127) and scaled sums the kernels form. Equal to the generic kernel.
    IsaGuard guard;
    const int64_t n = 512;
    const uint16_t one = 0x3C00;  // fp16 1.0
    for (bool high : {false, true}) {
        CAPTURE(high);
        const size_t rb = *quant::row_bytes(quant::Type::IQ4_XS, n);
        std::vector<uint8_t> w(rb);
        for (size_t off = 0; off < rb; off += sizeof(quant::BlockIQ4_XS)) {
            quant::BlockIQ4_XS b;
            std::memcpy(&b.d, &one, 2);
            b.scales_h = high ? 0xFFFF : 0;  // ls = 63 (scale 31) or 0 (scale -32)
            std::memset(b.scales_l, high ? 0xFF : 0x00, sizeof b.scales_l);
            std::memset(b.qs, high ? 0xFF : 0x00, sizeof b.qs);  // index 15 (113) or 0 (-127)
            std::memcpy(w.data() + off, &b, sizeof b);
        }
        for (float sign : {1.0f, -1.0f}) {
            const std::vector<float> x(static_cast<size_t>(n), sign);
            const size_t ab = cpu::act_bytes(quant::Type::IQ4_XS, n);
            std::vector<uint8_t> act(ab * 5);
            for (int k = 0; k < 5; ++k)
                cpu::quantize_act(quant::Type::IQ4_XS, x.data(), act.data() + k * ab, n);
            const float want = cpu::vec_dot_generic(quant::Type::IQ4_XS, w.data(), act.data(), n);
            REQUIRE(std::fabs(want) > 1e5f);
            for (auto isa : isas()) {
                CAPTURE(cpu::isa_name(isa));
                cpu::set_isa(isa);
                for (int64_t m : {1, 3, 4, 5}) {  // row and panel kernels
                    std::vector<float> y(static_cast<size_t>(m));
                    cpu::vec_dot_tile(quant::Type::IQ4_XS, w.data(), rb, 1, act.data(), ab, m, n, y.data(),
                                      1);
                    for (float v : y) CHECK(v == want);
                }
            }
        }
    }
}

TEST_CASE("vec_dot_x4 is bit-identical to four vec_dot calls") {
    IsaGuard guard;
    for (const cpu::Isa isa : isas()) {
        cpu::set_isa(isa);
        CAPTURE(cpu::isa_name(isa));
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
}

TEST_CASE("vec_dot_rows is bit-identical to vec_dot for every row count") {
    IsaGuard guard;
    for (const cpu::Isa isa : isas()) {
        cpu::set_isa(isa);
        CAPTURE(cpu::isa_name(isa));
        std::mt19937 rng(7);
        std::normal_distribution<float> nd(0, 1);
        const int64_t n = 1536;
        for (auto t : kAllTypes) {
            CAPTURE(quant::type_name(t));
            const std::vector<uint8_t> w = weight_row(t, n, rng);
            std::vector<float> src(static_cast<size_t>(n));
            const int max_rows = 2 * cpu::kMaxDotRows + 3;
            std::vector<std::vector<uint8_t>> acts(max_rows, std::vector<uint8_t>(cpu::act_bytes(t, n)));
            std::vector<const void *> ptrs(max_rows);
            for (int k = 0; k < max_rows; ++k) {
                for (auto &v : src) v = nd(rng) * static_cast<float>(k + 1);
                cpu::quantize_act(t, src.data(), acts[static_cast<size_t>(k)].data(), n);
                ptrs[static_cast<size_t>(k)] = acts[static_cast<size_t>(k)].data();
            }
            for (int rows = 1; rows <= max_rows; ++rows) {
                CAPTURE(rows);
                std::vector<float> out(static_cast<size_t>(rows));
                cpu::vec_dot_rows(t, w.data(), ptrs.data(), rows, n, out.data());
                for (int k = 0; k < rows; ++k)
                    CHECK(out[static_cast<size_t>(k)] ==
                          cpu::vec_dot(t, w.data(), ptrs[static_cast<size_t>(k)], n));
            }
        }
    }
}

TEST_CASE("vec_dot_tile equals vec_dot on every instruction set") {
    IsaGuard guard;
    std::mt19937 rng(17);
    std::normal_distribution<float> nd(0, 1);
    const int64_t n = 512, n_rows = 37, n_act = 19;  // 16-row panels (lanes-avx512.cpp): two and a part
    for (auto t : {quant::Type::Q4_K, quant::Type::Q8_0, quant::Type::Q6_K, quant::Type::Q5_K,
                   quant::Type::Q4_0, quant::Type::Q5_0, quant::Type::IQ4_NL, quant::Type::IQ4_XS,
                   quant::Type::Q2_K, quant::Type::Q3_K, quant::Type::F32}) {
        CAPTURE(quant::type_name(t));
        const size_t rb = *quant::row_bytes(t, n), ab = cpu::act_bytes(t, n);
        std::vector<float> src(static_cast<size_t>(n));
        std::vector<uint8_t> w(rb * n_rows), act(ab * n_act);
        for (int64_t r = 0; r < n_rows; ++r) {
            const std::vector<uint8_t> row = weight_row(t, n, rng);
            std::copy(row.begin(), row.end(),
                      w.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(r) * rb));
        }
        for (auto isa : isas()) {
            CAPTURE(cpu::isa_name(isa));
            cpu::set_isa(isa);
            for (int64_t k = 0; k < n_act; ++k) {
                for (auto &v : src) v = nd(rng);
                cpu::quantize_act(t, src.data(), act.data() + static_cast<size_t>(k) * ab, n);
            }
            const int64_t ldy = n_rows + 2;
            // 1 and 2 activation rows: decode kernels (8 rows per pass in lanes-avx512.cpp).
            for (const int64_t m : {int64_t{1}, int64_t{2}, int64_t{3}, n_act}) {
                CAPTURE(m);
                std::vector<float> y(static_cast<size_t>(ldy * m), -1.0f);
                cpu::vec_dot_tile(t, w.data(), rb, n_rows, act.data(), ab, m, n, y.data(), ldy);
                for (int64_t k = 0; k < m; ++k)
                    for (int64_t r = 0; r < ldy; ++r) {
                        const float want = r < n_rows
                                               ? cpu::vec_dot(t, w.data() + static_cast<size_t>(r) * rb,
                                                              act.data() + static_cast<size_t>(k) * ab, n)
                                               : -1.0f;
                        CHECK(y[static_cast<size_t>(k * ldy + r)] == want);
                    }
            }
        }
    }
}

TEST_CASE("quantize_act gives the same bytes under every instruction set") {
    IsaGuard guard;
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0, 1);
    const int64_t n = 2048;
    std::vector<float> x(static_cast<size_t>(n));
    for (auto &v : x) v = nd(rng);
    // Edge cases: an all-zero K block, ties between +max and -max (the first one wins), exact
    // halves after scaling (nearest-even), a block whose largest magnitude is negative.
    for (int64_t i = 0; i < 256; ++i) x[static_cast<size_t>(i)] = 0;
    x[300] = -3.0f;
    x[400] = 3.0f;
    for (int64_t i = 512; i < 768; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i % 9 - 4) * 0.5f;
    x[700] = 127.0f;
    for (int64_t i = 768; i < 800; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i % 5) - 2.5f;
    for (auto t : {quant::Type::Q8_0, quant::Type::Q4_K, quant::Type::Q6_K, quant::Type::Q4_0,
                   quant::Type::Q4_1, quant::Type::F16, quant::Type::F32}) {
        CAPTURE(quant::type_name(t));
        cpu::set_isa(cpu::Isa::generic);
        std::vector<uint8_t> ref(cpu::act_bytes(t, n));
        cpu::quantize_act(t, x.data(), ref.data(), n);
        for (const cpu::Isa isa : isas()) {
            CAPTURE(cpu::isa_name(isa));
            cpu::set_isa(isa);
            std::vector<uint8_t> got(ref.size(), 0xAA);
            cpu::quantize_act(t, x.data(), got.data(), n);
            CHECK(std::memcmp(got.data(), ref.data(), ref.size()) == 0);
        }
    }
}

TEST_CASE(
    "attention_head matches the dot / softmax / axpy definition for F32 and F16 caches on every instruction "
    "set") {
    IsaGuard guard;
    std::mt19937 rng(13);
    std::normal_distribution<float> nd(0, 1);
    const auto half = [](float x) { return quant::fp16_to_fp32(quant::fp32_to_fp16(x)); };
    for (const int64_t hd : {64, 128, 256, 96, 40, 20}) {
        for (const int64_t n_pos : {1, 37}) {
            for (const bool k16 : {false, true}) {
                for (const bool v16 : {false, true}) {
                    CAPTURE(hd);
                    CAPTURE(n_pos);
                    CAPTURE(k16);
                    CAPTURE(v16);
                    const size_t n = static_cast<size_t>(hd * n_pos);
                    std::vector<float> q(static_cast<size_t>(hd)), kf(n), vf(n);
                    for (auto &x : q) x = 2 * nd(rng);
                    for (auto &x : kf) x = nd(rng);
                    for (auto &x : vf) x = nd(rng);
                    std::vector<uint16_t> kh(n), vh(n);
                    for (size_t i = 0; i < n; ++i) {
                        kh[i] = quant::fp32_to_fp16(kf[i]);
                        vh[i] = quant::fp32_to_fp16(vf[i]);
                        if (k16) kf[i] = quant::fp16_to_fp32(kh[i]);
                        if (v16) vf[i] = quant::fp16_to_fp32(vh[i]);
                    }
                    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
                    // Reference in double: the query rounded to F16 for F16 keys, the probabilities
                    // for F16 values.
                    std::vector<double> s(static_cast<size_t>(n_pos)), ref(static_cast<size_t>(hd), 0.5);
                    double mx = -1e30, sum = 0;
                    for (int64_t p = 0; p < n_pos; ++p) {
                        double d = 0;
                        for (int64_t i = 0; i < hd; ++i) {
                            const float qi = q[static_cast<size_t>(i)];
                            d += double(k16 ? half(qi) : qi) * kf[static_cast<size_t>(p * hd + i)];
                        }
                        s[static_cast<size_t>(p)] = d * scale;
                        mx = std::max(mx, s[static_cast<size_t>(p)]);
                    }
                    for (auto &x : s) sum += (x = std::exp(x - mx));
                    for (int64_t p = 0; p < n_pos; ++p) {
                        const double w = s[static_cast<size_t>(p)] / sum;
                        const double wr = v16 ? double(half(static_cast<float>(w))) : w;
                        for (int64_t i = 0; i < hd; ++i)
                            ref[static_cast<size_t>(i)] += wr * vf[static_cast<size_t>(p * hd + i)];
                    }
                    const void *k = k16 ? static_cast<const void *>(kh.data()) : kf.data();
                    const void *v = v16 ? static_cast<const void *>(vh.data()) : vf.data();
                    for (const cpu::Isa isa : isas()) {
                        CAPTURE(cpu::isa_name(isa));
                        cpu::set_isa(isa);
                        std::vector<float> scores(static_cast<size_t>(n_pos)),
                            out(static_cast<size_t>(hd), 0.5f);
                        cpu::attention_head(q.data(), k, k16 ? quant::Type::F16 : quant::Type::F32, v,
                                            v16 ? quant::Type::F16 : quant::Type::F32, n_pos, hd, scale,
                                            scores.data(), out.data());
                        for (int64_t i = 0; i < hd; ++i)
                            CHECK(std::fabs(out[static_cast<size_t>(i)] - ref[static_cast<size_t>(i)]) <=
                                  2e-5);
                    }
                }
            }
        }
    }
}

TEST_CASE("store_kv_row writes F16 exactly as fp32_to_fp16 on every instruction set") {
    IsaGuard guard;
    std::mt19937 rng(5);
    std::vector<float> x(1000);
    for (auto &v : x)
        v = std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng), static_cast<int>(rng() % 40) - 28);
    // ties, subnormals, overflow, infinities, signed zero
    const float specials[] = {1.0f + 0x1p-11f, 1.0f + 0x3p-11f, 0x1p-24f, 0x1p-25f,
                              0x3p-26f,        65504.0f,        65520.0f, 1e9f,
                              -INFINITY,       INFINITY,        -0.0f,    0x1.ffcp-15f};
    std::copy(std::begin(specials), std::end(specials), x.begin());
    std::vector<uint16_t> ref(x.size());
    for (size_t i = 0; i < x.size(); ++i) ref[i] = quant::fp32_to_fp16(x[i]);
    for (const cpu::Isa isa : isas()) {
        CAPTURE(cpu::isa_name(isa));
        cpu::set_isa(isa);
        std::vector<uint16_t> got(x.size());
        cpu::store_kv_row(quant::Type::F16, x.data(), got.data(), static_cast<int64_t>(x.size()) - 3);
        CHECK(std::memcmp(got.data(), ref.data(), (x.size() - 3) * 2) == 0);
        std::vector<float> f(x.size());
        cpu::store_kv_row(quant::Type::F32, x.data(), f.data(), static_cast<int64_t>(x.size()));
        CHECK(f == x);
    }
}

TEST_CASE("matmul_group equals vec_dot per row and token, whatever the grouping and thread count") {
    IsaGuard guard;
    std::mt19937 rng(23);
    std::normal_distribution<float> nd(0, 1);
    // Jobs of mixed types, shapes and token counts (1 token: decode; 70: past one token tile).
    struct Spec {
        quant::Type t;
        int64_t rows, cols, n_tok;
    };
    const Spec specs[] = {{quant::Type::Q4_K, 37, 512, 1}, {quant::Type::Q6_K, 8, 256, 3},
                          {quant::Type::Q8_0, 64, 96, 70}, {quant::Type::Q4_K, 1, 256, 1},
                          {quant::Type::F32, 19, 40, 5},   {quant::Type::Q5_K, 33, 256, 9}};
    struct Data {
        std::vector<uint8_t> w;
        std::vector<float> x;
    };
    std::vector<Data> data;
    for (const Spec &s : specs) {
        Data d;
        const size_t rb = *quant::row_bytes(s.t, static_cast<uint64_t>(s.cols));
        d.w.resize(rb * static_cast<size_t>(s.rows));
        std::vector<float> src(static_cast<size_t>(s.cols));
        for (int64_t r = 0; r < s.rows; ++r) {
            for (auto &v : src) v = nd(rng);
            quant::quantize_row(s.t, src.data(), d.w.data() + static_cast<size_t>(r) * rb, s.cols);
        }
        d.x.resize(static_cast<size_t>(s.cols * s.n_tok));
        for (auto &v : d.x) v = nd(rng);
        data.push_back(std::move(d));
    }
    for (const cpu::Isa isa : isas()) {
        CAPTURE(cpu::isa_name(isa));
        cpu::set_isa(isa);
        // want[j]: y of job j from vec_dot, [n_tok, rows]
        std::vector<std::vector<float>> want;
        for (size_t j = 0; j < std::size(specs); ++j) {
            const Spec &s = specs[j];
            const size_t rb = *quant::row_bytes(s.t, static_cast<uint64_t>(s.cols)),
                         ab = cpu::act_bytes(s.t, s.cols);
            std::vector<uint8_t> act(ab);
            std::vector<float> y(static_cast<size_t>(s.rows * s.n_tok));
            for (int64_t t = 0; t < s.n_tok; ++t) {
                cpu::quantize_act(s.t, &data[j].x[static_cast<size_t>(t * s.cols)], act.data(), s.cols);
                for (int64_t r = 0; r < s.rows; ++r)
                    y[static_cast<size_t>(t * s.rows + r)] =
                        cpu::vec_dot(s.t, data[j].w.data() + static_cast<size_t>(r) * rb, act.data(), s.cols);
            }
            want.push_back(std::move(y));
        }
        for (const int threads : {1, 2, 3}) {
            CAPTURE(threads);
            cpu::ThreadPool pool(threads);
            std::vector<std::vector<float>> got(std::size(specs));
            std::vector<cpu::MatmulJob> jobs;
            for (size_t j = 0; j < std::size(specs); ++j) {
                const Spec &s = specs[j];
                got[j].assign(static_cast<size_t>(s.rows * s.n_tok), NAN);
                jobs.push_back(
                    {s.t, data[j].w.data(), data[j].x.data(), got[j].data(), s.rows, s.cols, s.n_tok});
            }
            cpu::matmul_group(pool, jobs);  // all at once
            for (size_t j = 0; j < std::size(specs); ++j) CHECK(got[j] == want[j]);
            for (size_t j = 0; j < std::size(specs); ++j) {  // one at a time
                const Spec &s = specs[j];
                std::fill(got[j].begin(), got[j].end(), NAN);
                cpu::matmul(pool, s.t, data[j].w.data(), data[j].x.data(), got[j].data(), s.rows, s.cols,
                            s.n_tok);
                CHECK(got[j] == want[j]);
            }
        }
    }
}
