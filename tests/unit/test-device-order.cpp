// The host's copy of the CUDA decode products (kernels/cpu/device-order.h), which the CPU fallback
// of a CUDA run uses so a miss's row equals the device's bit for bit. Here, without a device: the
// AVX2 rows equal the generic ones (the device's own block-dot.cuh code) bit for bit, both are
// close to the exact product of the reference dequantization, and the expert row is the
// composition of its products. test-gpu-ops compares these rows with a device's.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "gpu-test-blocks.h"
#include "moerun/kernels/cpu/device-order.h"
#include "moerun/kernels/cpu/vec-dot.h"
#include "moerun/quant/dequant.h"
#include "moerun/quant/quantize.h"
#include "moerun/quant/types.h"

using namespace moerun;
namespace cpu = kernels::cpu;
using T = quant::Type;

namespace {

std::vector<uint8_t> random_matrix(T t, int64_t rows, int64_t cols, std::mt19937 &rng) {
    std::normal_distribution<float> nd(0.0f, 0.5f);
    const uint64_t rb = *quant::row_bytes(t, cols);
    std::vector<uint8_t> w(rb * static_cast<uint64_t>(rows));
    if (fill_random_blocks(t, w, rng)) return w;  // Q2_K, Q3_K, IQ4_*: no quantizer in quant/
    std::vector<float> src(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
        for (auto &v : src) v = nd(rng);
        quant::quantize_row(t, src.data(), w.data() + r * rb, cols);
    }
    return w;
}

size_t bit_differences(const std::vector<float> &a, const std::vector<float> &b) {
    size_t n = 0;
    for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], 4) != 0;
    return n;
}

struct IsaGuard {
    ~IsaGuard() { cpu::set_isa(cpu::best_isa()); }
};

}  // namespace

TEST_CASE("device-order products: the SIMD rows equal the device code's, near the exact product") {
    cpu::ThreadPool pool(2);
    IsaGuard guard;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const T t : {T::F32, T::F16, T::BF16, T::Q8_0, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q4_K, T::Q5_K,
                      T::Q6_K, T::Q2_K, T::Q3_K, T::IQ4_NL, T::IQ4_XS}) {
        REQUIRE(cpu::device_order_supported(t));
        // 256 columns: 8 chunks (lanes 8..31 stay zero); 2304: 72 chunks, lanes wrap twice
        // F32 / F16 / BF16 rows of any length: 48 (one partial chunk), 1000 (31 chunks and a part)
        const bool any_length = quant::traits(t).block_size == 1;
        for (const int64_t cols : {int64_t{256}, int64_t{2304}, int64_t{48}, int64_t{1000}}) {
            if (cols % 32 != 0 && !any_length) continue;
            CAPTURE(quant::type_name(t));
            CAPTURE(cols);
            const int64_t rows = 37;  // not a multiple of the threads' grain
            const std::vector<uint8_t> w = random_matrix(t, rows, cols, rng);
            std::vector<float> x(static_cast<size_t>(cols));
            for (auto &v : x) v = nd(rng);
            x[1] = -0.0f;
            std::vector<float> fast(static_cast<size_t>(rows)), generic(fast.size());
            cpu::set_isa(cpu::best_isa());
            cpu::device_order_matvec(pool, t, w.data(), x.data(), fast.data(), rows, cols);
            cpu::set_isa(cpu::Isa::generic);
            cpu::device_order_matvec(pool, t, w.data(), x.data(), generic.data(), rows, cols);
            CHECK(bit_differences(fast, generic) == 0);
            // against the reference dequantization and a double dot product
            const uint64_t rb = *quant::row_bytes(t, cols);
            std::vector<float> wr(static_cast<size_t>(cols));
            for (int64_t r = 0; r < rows; ++r) {
                quant::dequantize_row(t, w.data() + r * rb, wr.data(), cols);
                double exact = 0, mag = 0;
                for (int64_t i = 0; i < cols; ++i) {
                    exact += double(wr[i]) * double(x[i]);
                    mag += std::fabs(double(wr[i]) * double(x[i]));
                }
                CHECK(std::fabs(generic[r] - exact) <= 1e-5 * mag + 1e-30);
            }
        }
    }
}

TEST_CASE("device-order expert row: gate and up, SwiGLU, down") {
    cpu::ThreadPool pool(2);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t E = 512, F = 768;
    const auto g = random_matrix(T::Q4_K, F, E, rng), u = random_matrix(T::Q5_K, F, E, rng),
               d = random_matrix(T::Q6_K, E, F, rng);
    std::vector<float> x(E);
    for (auto &v : x) v = nd(rng);
    const cpu::HostExpert e{T::Q4_K, T::Q5_K, T::Q6_K, g.data(), u.data(), d.data(), E, F};
    std::vector<float> gs(F), us(F), out(E);
    cpu::device_order_expert(pool, e, x.data(), gs.data(), us.data(), out.data());
    // the same products one by one, then SwiGLU to about an ulp of the libm formula
    std::vector<float> g2(F), u2(F), h(F), out2(E);
    cpu::device_order_matvec(pool, T::Q4_K, g.data(), x.data(), g2.data(), F, E);
    cpu::device_order_matvec(pool, T::Q5_K, u.data(), x.data(), u2.data(), F, E);
    for (int64_t i = 0; i < F; ++i) {
        h[i] = gs[i];  // the expert's SwiGLU output, left in g
        const double ref = double(g2[i]) / (1.0 + std::exp(-double(g2[i]))) * double(u2[i]);
        CHECK(std::fabs(h[i] - ref) <= 4e-7 * std::fabs(ref) + 1e-30);
    }
    cpu::device_order_matvec(pool, T::Q6_K, d.data(), h.data(), out2.data(), E, F);
    CHECK(bit_differences(out, out2) == 0);
}

TEST_CASE("device-order products refuse types and shapes the device has no kernel for") {
    cpu::ThreadPool pool(1);
    std::vector<uint8_t> w(1024);
    std::vector<float> x(256), y(4);
    CHECK_FALSE(cpu::device_order_supported(T::Q8_1));
    CHECK_THROWS_AS(cpu::device_order_matvec(pool, T::Q8_1, w.data(), x.data(), y.data(), 1, 256),
                    std::invalid_argument);
    CHECK_THROWS_WITH_AS(cpu::device_order_matvec(pool, T::Q4_K, w.data(), x.data(), y.data(), 1, 160),
                         doctest::Contains("160 columns of Q4_K"), std::invalid_argument);
}
