// The backend interface on the CPU backend (always built): the registry, matmul against the
// reference dequantization, and statuses for bad arguments. The CUDA backend runs the same calls
// in the gpu-labelled tests.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "moerun/kernels/backend.h"
#include "moerun/quant/dequant.h"
#include "moerun/quant/quantize.h"

using namespace moerun;

TEST_CASE("the registry lists the CPU backend as available and says why CUDA is or is not") {
    const auto probes = kernels::probe_backends();
    bool cpu = false, cuda = false;
    for (const auto &p : probes) {
        if (p.name == "cpu") cpu = p.compiled && p.available;
        if (p.name == "cuda") {
            cuda = true;
            CHECK(!p.reason.empty());
            if (!p.compiled) CHECK(!p.available);
        }
    }
    CHECK(cpu);
    CHECK(cuda);
    std::string why;
    CHECK(kernels::make_backend("tpu", &why) == nullptr);
    CHECK(why.find("unknown backend") != std::string::npos);
}

TEST_CASE("CPU backend matmul equals the dequantized product within the activation rounding") {
    auto cpu = kernels::make_backend("cpu");
    REQUIRE(cpu);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0, 1);
    const int64_t rows = 19, cols = 512, n_tok = 3;
    for (const auto t : {quant::Type::F32, quant::Type::Q8_0, quant::Type::Q4_K, quant::Type::Q6_K}) {
        CAPTURE(quant::type_name(t));
        const uint64_t rb = *quant::row_bytes(t, cols);
        std::vector<uint8_t> w(rb * rows);
        std::vector<float> src(cols), x(static_cast<size_t>(n_tok * cols)),
            y(static_cast<size_t>(n_tok * rows));
        for (int64_t r = 0; r < rows; ++r) {
            for (auto &v : src) v = nd(rng);
            quant::quantize_row(t, src.data(), w.data() + r * rb, cols);
        }
        for (auto &v : x) v = nd(rng);
        REQUIRE(cpu->matmul(t, w.data(), x.data(), y.data(), rows, cols, n_tok) == kernels::Status::ok);
        double err2 = 0, ref2 = 0;
        std::vector<float> wr(cols);
        for (int64_t r = 0; r < rows; ++r) {
            quant::dequantize_row(t, w.data() + r * rb, wr.data(), cols);
            for (int64_t k = 0; k < n_tok; ++k) {
                double ref = 0;
                for (int64_t i = 0; i < cols; ++i) ref += double(wr[i]) * x[k * cols + i];
                const double d = y[k * rows + r] - ref;
                err2 += d * d;
                ref2 += ref * ref;
            }
        }
        CHECK(err2 / ref2 < (t == quant::Type::F32 ? 1e-12 : 1e-4));
    }
}

TEST_CASE("CPU backend matmul refuses bad arguments with a status") {
    auto cpu = kernels::make_backend("cpu");
    std::vector<float> buf(1024);
    CHECK(cpu->matmul(quant::Type::Q4_K, buf.data(), buf.data(), buf.data(), 1, 100, 1) ==
          kernels::Status::invalid_argument);
    CHECK(cpu->matmul(quant::Type::Q4_K, nullptr, buf.data(), buf.data(), 1, 256, 1) ==
          kernels::Status::invalid_argument);
    CHECK(!cpu->last_error().empty());
    CHECK(cpu->matmul(quant::Type::F32, buf.data(), buf.data(), buf.data(), 0, 32, 1) == kernels::Status::ok);
}
