// Conformance of the CUDA dequantization kernels against the CPU backend (test-backend-ops style):
// same blocks on both backends, normalised error bound, NaN/inf check, guard regions around the
// output. Exits 77 (ctest: skipped) when this build or machine has no usable CUDA device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gpu-test-blocks.h"
#include "gpu-test-main.h"
#include "moerun/kernels/backend.h"
#include "moerun/quant/quantize.h"

using namespace moerun;

namespace {

constexpr size_t kGuard = 64;  // floats of guard region on each side of the output
constexpr float kGuardValue = -12345.5f;

void check_type(kernels::Backend &gpu, kernels::Backend &cpu, quant::Type t, int64_t n, uint32_t seed) {
    CAPTURE(quant::type_name(t));
    CAPTURE(n);
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.5f);
    std::vector<float> x(static_cast<size_t>(n));
    for (auto &v : x) v = dist(rng);
    std::vector<uint8_t> blocks(*quant::row_bytes(t, static_cast<uint64_t>(n)));
    if (!fill_random_blocks(t, blocks, rng))
        REQUIRE(quant::quantize_row(t, x.data(), blocks.data(), n) == blocks.size());

    // CPU reference.
    std::vector<float> ref(static_cast<size_t>(n));
    REQUIRE(cpu.dequantize(t, blocks.data(), ref.data(), n) == kernels::Status::ok);

    // Device run with guard regions on both sides of the output.
    void *d_src = gpu.alloc(blocks.size());
    auto *d_out = static_cast<float *>(gpu.alloc((static_cast<size_t>(n) + 2 * kGuard) * sizeof(float)));
    REQUIRE(d_src);
    REQUIRE(d_out);
    std::vector<float> host(static_cast<size_t>(n) + 2 * kGuard, kGuardValue);
    REQUIRE(gpu.upload(d_src, blocks.data(), blocks.size()) == kernels::Status::ok);
    REQUIRE(gpu.upload(d_out, host.data(), host.size() * sizeof(float)) == kernels::Status::ok);
    REQUIRE(gpu.dequantize(t, d_src, d_out + kGuard, n) == kernels::Status::ok);
    REQUIRE(gpu.download(host.data(), d_out, host.size() * sizeof(float)) == kernels::Status::ok);
    gpu.free(d_src);
    gpu.free(d_out);

    for (size_t i = 0; i < kGuard; ++i) {
        REQUIRE(host[i] == kGuardValue);
        REQUIRE(host[kGuard + static_cast<size_t>(n) + i] == kGuardValue);
    }
    double err2 = 0, ref2 = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        const float g = host[kGuard + i];
        REQUIRE(std::isfinite(g));
        err2 += double(g - ref[i]) * double(g - ref[i]);
        ref2 += double(ref[i]) * double(ref[i]);
    }
    const double nmse = ref2 > 0 ? err2 / ref2 : err2;
    CHECK(nmse < 1e-12);  // same formula on both sides; only FMA contraction may differ
}

}  // namespace

TEST_CASE("cuda dequantize matches the CPU reference") {
    auto gpu = gpu_backend();
    REQUIRE(gpu);
    auto cpu = kernels::make_backend("cpu");
    MESSAGE("device: " << gpu->device_info().name);
    const quant::Type types[] = {
        quant::Type::F32,  quant::Type::F16,  quant::Type::BF16, quant::Type::Q8_0,   quant::Type::Q4_0,
        quant::Type::Q4_1, quant::Type::Q5_0, quant::Type::Q5_1, quant::Type::Q4_K,   quant::Type::Q5_K,
        quant::Type::Q6_K, quant::Type::Q2_K, quant::Type::Q3_K, quant::Type::IQ4_NL, quant::Type::IQ4_XS};
    uint32_t seed = 1;
    for (auto t : types)
        for (int64_t n : {256, 4096, 256 * 1000}) check_type(*gpu, *cpu, t, n, seed++);
}

int main(int argc, char **argv) {
    return gpu_test_main(argc, argv);
}
