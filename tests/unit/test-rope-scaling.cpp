// RoPE frequency scaling: the scaled kernel against the plain one and hand-computed YaRN
// correction dims; metadata handling in Model::load (supported types, bad factors). Logits with
// YaRN and linear scaling are checked against llama.cpp by the oracle tests (oracle-logits-rope-*).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gguf-builder.h"
#include "moerun/kernels/cpu/ops.h"
#include "moerun/kernels/cpu/rope.h"
#include "moerun/runtime/model.h"

using namespace moerun;
namespace cpu = moerun::kernels::cpu;

TEST_CASE("unscaled rope rotates pair i by pos * base^(-2i/n_rot), interleaved or NeoX") {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    const int n_head = 3, hd = 16, n_rot = 16;
    const float pos = 37.0f, base = 10000.0f;
    for (bool neox : {false, true}) {
        std::vector<float> x(n_head * hd);
        for (auto &v : x) v = nd(rng);
        const std::vector<float> in = x;
        cpu::rope(x.data(), n_head, hd, n_rot, pos, base, neox);
        for (int h = 0; h < n_head; ++h)
            for (int i = 0; i < n_rot / 2; ++i) {
                const double theta = pos * std::pow(double{base}, -2.0 * i / n_rot);
                const int a = h * hd + (neox ? i : 2 * i), b = h * hd + (neox ? i + n_rot / 2 : 2 * i + 1);
                CHECK(x[a] ==
                      doctest::Approx(in[a] * std::cos(theta) - in[b] * std::sin(theta)).epsilon(1e-4));
                CHECK(x[b] ==
                      doctest::Approx(in[a] * std::sin(theta) + in[b] * std::cos(theta)).epsilon(1e-4));
            }
    }
}

TEST_CASE(
    "linear scaling rotates by freq_scale times the angle; YaRN keeps high frequencies and scales "
    "magnitude") {
    // One head, n_rot 4: pairs i = 0, 1 with theta = pos * base^(-i/2) (base 100: 1, 0.1).
    const float pos = 8.0f;
    cpu::RopeScaling lin;
    lin.freq_scale = 0.25f;
    std::vector<float> x = {1, 0, 1, 0};  // interleaved pairs (0,1), (2,3)
    cpu::rope_scaled(x.data(), 1, 4, 4, pos, 100.0f, false, lin);
    CHECK(x[0] == doctest::Approx(std::cos(2.0)).epsilon(1e-6));
    CHECK(x[1] == doctest::Approx(std::sin(2.0)).epsilon(1e-6));
    CHECK(x[2] == doctest::Approx(std::cos(0.2)).epsilon(1e-6));
    cpu::RopeScaling yarn = lin;
    yarn.ext_factor = 1.0f;
    yarn.corr_low = 0.0f;  // pair 0 fully extrapolated (ramp 1), pair 1 fully interpolated (ramp 0)
    yarn.corr_high = 1.0f;
    const double mscale = 1.0 + 0.1 * std::log(4.0);
    x = {1, 0, 1, 0};
    cpu::rope_scaled(x.data(), 1, 4, 4, pos, 100.0f, false, yarn);
    CHECK(x[0] == doctest::Approx(mscale * std::cos(8.0)).epsilon(1e-5));
    CHECK(x[1] == doctest::Approx(mscale * std::sin(8.0)).epsilon(1e-5));
    CHECK(x[2] == doctest::Approx(mscale * std::cos(0.2)).epsilon(1e-5));
}

TEST_CASE("YaRN correction dims as ggml computes them") {
    float d[2];
    cpu::yarn_corr_dims(128, 4096, 1e6f, 32.0f, 1.0f, d);  // 13.96 -> 13, 30.02 -> 31
    CHECK(d[0] == 13.0f);
    CHECK(d[1] == 31.0f);
    cpu::yarn_corr_dims(16, 32, 10000.0f, 32.0f, 1.0f, d);  // negative start clamps to 0
    CHECK(d[0] == 0.0f);
    cpu::yarn_corr_dims(8, 1 << 20, 10.0f, 32.0f, 1.0f, d);  // end clamps to n_rot - 1
    CHECK(d[1] == 7.0f);
}

namespace {
std::string load_error(const std::string &type, float factor) {
    auto b = test::make_moe_model();
    b.kv("qwen3moe.rope.scaling.type", test::str(type));
    if (factor != 0) b.kv("qwen3moe.rope.scaling.factor", test::f32(factor));
    const auto f = gguf::GgufFile::from_memory("rope.gguf", b.build());
    try {
        (void)Model::load(f);
    } catch (const std::exception &e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("rope scaling metadata: unsupported types and bad factors are refused by name") {
    CHECK(load_error("longrope", 4).find("rope.scaling.type") != std::string::npos);
    CHECK(load_error("longrope", 4).find("not supported") != std::string::npos);
    CHECK(load_error("yarn", 0).find("rope.scaling.factor") != std::string::npos);
    CHECK(load_error("linear", -2).find("rope.scaling.factor") != std::string::npos);
    // Accepted: loading goes on to the tensors (this tiny file has no attention k/v/o).
    const std::string ok = load_error("yarn", 4);
    CHECK(ok.find("rope.scaling") == std::string::npos);
    CHECK(ok.find("attn_k") != std::string::npos);
}
