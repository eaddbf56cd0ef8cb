// The backend interface on the CPU backend (always built): the registry, matmul against the
// reference dequantization, and statuses for bad arguments. The CUDA backend runs the same calls
// in the gpu-labelled tests.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
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

TEST_CASE("CPU backend router_topk: softmax, the k most probable experts, renormalised or not") {
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0, 2);
    for (const int n_expert : {8, 60, 128}) {
        for (const int k : {1, 2, 8}) {
            for (const bool renorm : {false, true}) {
                const int64_t n_tok = 5;
                std::vector<float> logits(static_cast<size_t>(n_tok * n_expert)),
                    w(static_cast<size_t>(n_tok * k));
                for (auto &v : logits) v = nd(rng);
                logits[3] = logits[4];  // a tie: the lower id ranks first
                std::vector<int32_t> ids(static_cast<size_t>(n_tok * k));
                REQUIRE(cpu->router_topk(logits.data(), n_tok, n_expert, k, renorm, ids.data(), w.data()) ==
                        kernels::Status::ok);
                for (int64_t t = 0; t < n_tok; ++t) {
                    const float *l = &logits[static_cast<size_t>(t * n_expert)];
                    double mx = *std::max_element(l, l + n_expert), z = 0;
                    for (int e = 0; e < n_expert; ++e) z += std::exp(double(l[e]) - mx);
                    std::vector<int> order(static_cast<size_t>(n_expert));
                    for (int e = 0; e < n_expert; ++e) order[static_cast<size_t>(e)] = e;
                    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
                    double sel = 0;
                    for (int j = 0; j < k; ++j)
                        sel += std::exp(double(l[order[static_cast<size_t>(j)]]) - mx) / z;
                    for (int j = 0; j < k; ++j) {
                        const int e = order[static_cast<size_t>(j)];
                        CHECK(ids[static_cast<size_t>(t * k + j)] == e);
                        const double p = std::exp(double(l[e]) - mx) / z;
                        CHECK(w[static_cast<size_t>(t * k + j)] ==
                              doctest::Approx(renorm ? p / sel : p).epsilon(1e-5));
                    }
                }
            }
        }
    }
    std::vector<float> l(8);
    std::vector<int32_t> ids(8);
    std::vector<float> w(8);
    CHECK(cpu->router_topk(l.data(), 1, 8, 9, false, ids.data(), w.data()) ==
          kernels::Status::invalid_argument);
    CHECK(cpu->router_topk(l.data(), 1, 8, 0, false, ids.data(), w.data()) ==
          kernels::Status::invalid_argument);
    CHECK(cpu->rope(l.data(), 1, 1, 8, 3, 0, 10000.0f, false, {}) == kernels::Status::invalid_argument);
}

TEST_CASE("CPU backend expert_ffn equals the weighted sum of each expert's SwiGLU FFN") {
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(21);
    std::normal_distribution<float> nd(0, 1);
    const int64_t E = 256, F = 512;
    const int n = 3;
    const quant::Type tg = quant::Type::Q4_K, td = quant::Type::Q6_K;  // a Q4_K_M-like mix
    const auto make = [&](quant::Type t, int64_t rows, int64_t cols) {
        std::vector<uint8_t> w(*quant::row_bytes(t, cols) * rows);
        std::vector<float> src(cols);
        for (int64_t r = 0; r < rows; ++r) {
            for (auto &v : src) v = nd(rng) * 0.1f;
            quant::quantize_row(t, src.data(), w.data() + r * *quant::row_bytes(t, cols), cols);
        }
        return w;
    };
    std::vector<std::vector<uint8_t>> gate, up, down;
    std::vector<const void *> pg, pu, pd;
    for (int j = 0; j < n; ++j) {
        gate.push_back(make(tg, F, E));
        up.push_back(make(tg, F, E));
        down.push_back(make(td, E, F));
    }
    for (int j = 0; j < n; ++j)
        pg.push_back(gate[j].data()), pu.push_back(up[j].data()), pd.push_back(down[j].data());
    const float weights[n] = {0.5f, 0.3f, 0.2f};
    std::vector<float> x(E), y(E), scratch(2 * n * F + n * E);
    for (auto &v : x) v = nd(rng);
    const kernels::Backend::ExpertFfn f{tg, tg, td, pg.data(), pu.data(), pd.data(), weights, n, E, F};
    REQUIRE(cpu->expert_ffn(f, x.data(), y.data(), scratch.data()) == kernels::Status::ok);
    // Reference: dequantized weights, double sums.
    const auto dq = [](quant::Type t, const std::vector<uint8_t> &w, int64_t rows, int64_t cols) {
        std::vector<float> out(rows * cols);
        quant::dequantize_row(t, w.data(), out.data(), rows * cols);
        return out;
    };
    std::vector<double> ref(E, 0.0);
    for (int j = 0; j < n; ++j) {
        const auto G = dq(tg, gate[j], F, E), U = dq(tg, up[j], F, E), D = dq(td, down[j], E, F);
        std::vector<double> h(F);
        for (int64_t r = 0; r < F; ++r) {
            double a = 0, b = 0;
            for (int64_t i = 0; i < E; ++i)
                a += double(G[r * E + i]) * x[i], b += double(U[r * E + i]) * x[i];
            h[r] = a / (1 + std::exp(-a)) * b;
        }
        for (int64_t r = 0; r < E; ++r) {
            double s = 0;
            for (int64_t i = 0; i < F; ++i) s += double(D[r * F + i]) * h[i];
            ref[r] += weights[j] * s;
        }
    }
    double err2 = 0, ref2 = 0;
    for (int64_t i = 0; i < E; ++i) err2 += (y[i] - ref[i]) * (y[i] - ref[i]), ref2 += ref[i] * ref[i];
    // The CPU rounds x and the SwiGLU output to 8 bits per block (Q8_K) before the products, as
    // llama.cpp does: measured NMSE 4.3e-4 here (1.5e-4 with Q8_0 weights, ~1e-14 with F32). A
    // wrong expert, weight or layout gives 1e-1 or more.
    CHECK(err2 / ref2 < 2e-3);
    const kernels::Backend::ExpertFfn none{tg, tg, td, pg.data(), pu.data(), pd.data(), weights, 0, E, F};
    CHECK(cpu->expert_ffn(none, x.data(), y.data(), scratch.data()) == kernels::Status::invalid_argument);

    // rows_out: each expert's unweighted row, and no sum when y is null; combine_rows over the
    // rows in rank order gives the fused sum bit for bit (what the CPU fallback relies on).
    std::vector<float> rows(static_cast<size_t>(n * E), -1.0f), sum(E, 7.0f);
    kernels::Backend::ExpertFfn fr = f;
    fr.rows_out = rows.data();
    REQUIRE(cpu->expert_ffn(fr, x.data(), nullptr, scratch.data()) == kernels::Status::ok);
    const int32_t rank_rows[n] = {0, 1, 2};
    REQUIRE(cpu->combine_rows(rows.data(), rank_rows, weights, 1, n, E, sum.data(), false) ==
            kernels::Status::ok);
    CHECK(std::memcmp(sum.data(), y.data(), y.size() * sizeof(float)) == 0);
    // Row j is expert j alone (weight 1).
    std::vector<float> one(E);
    const float w1 = 1.0f;
    const kernels::Backend::ExpertFfn f1{tg, tg, td, pg.data() + 1, pu.data() + 1, pd.data() + 1, &w1,
                                         1,  E,  F};
    REQUIRE(cpu->expert_ffn(f1, x.data(), one.data(), scratch.data()) == kernels::Status::ok);
    CHECK(std::memcmp(one.data(), rows.data() + E, E * sizeof(float)) == 0);
    fr.rows_out = nullptr;
    CHECK(cpu->expert_ffn(fr, x.data(), nullptr, scratch.data()) == kernels::Status::invalid_argument);
}
