// The device forward pass's row ops on the CPU backend against plain references: residual add,
// bias, gather and weighted combine of expert rows, KV-cache stores and causal GQA attention (in
// double precision, from the cache's stored values). Bad arguments give statuses, not crashes.
// test-gpu-ops runs the CUDA backend against these same CPU results.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "moerun/kernels/backend.h"
#include "moerun/quant/half.h"

using namespace moerun;
using kernels::Status;

namespace {

std::vector<float> normal(size_t n, std::mt19937 &rng, float sd = 1.0f) {
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(n);
    for (auto &x : v) x = nd(rng);
    return v;
}

float stored(quant::Type t, float x) {
    return t == quant::Type::F16 ? quant::fp16_to_fp32(quant::fp32_to_fp16(x)) : x;
}

}  // namespace

TEST_CASE("add, add_bias, gather_rows and combine_rows") {
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(5);
    const int64_t n = 37, rows = 6;
    auto y = normal(static_cast<size_t>(rows * n), rng);
    const auto a = normal(y.size(), rng), b = normal(static_cast<size_t>(n), rng);
    auto want = y;
    for (size_t i = 0; i < y.size(); ++i) want[i] += a[i];
    REQUIRE(cpu->add(y.data(), a.data(), rows * n) == Status::ok);
    CHECK(y == want);
    for (size_t i = 0; i < y.size(); ++i) want[i] += b[i % n];
    REQUIRE(cpu->add_bias(y.data(), b.data(), rows, n) == Status::ok);
    CHECK(y == want);

    const std::vector<int32_t> pick = {5, 0, 0, 3, 1};
    std::vector<float> g(pick.size() * n);
    REQUIRE(cpu->gather_rows(y.data(), pick.data(), static_cast<int64_t>(pick.size()), n, g.data()) ==
            Status::ok);
    for (size_t i = 0; i < pick.size(); ++i)
        CHECK(std::equal(g.begin() + static_cast<ptrdiff_t>(i * n),
                         g.begin() + static_cast<ptrdiff_t>((i + 1) * n), y.begin() + pick[i] * n));

    // Two tokens, three ranks each: dst[t] = (dst[t] if accumulating) + sum_j w[t, j] src[rows[t, j]].
    const std::vector<int32_t> sel = {4, 1, 2, 0, 5, 3};
    const std::vector<float> w = {0.5f, 0.25f, 0.125f, 1.0f, -2.0f, 0.75f};
    for (const bool accumulate : {false, true}) {
        CAPTURE(accumulate);
        auto dst = normal(static_cast<size_t>(2 * n), rng);
        const auto before = dst;
        REQUIRE(cpu->combine_rows(y.data(), sel.data(), w.data(), 2, 3, n, dst.data(), accumulate) ==
                Status::ok);
        for (int64_t t = 0; t < 2; ++t)
            for (int64_t i = 0; i < n; ++i) {
                double ref = accumulate ? before[static_cast<size_t>(t * n + i)] : 0.0;
                for (int j = 0; j < 3; ++j)
                    ref += double(w[t * 3 + j]) * y[static_cast<size_t>(sel[t * 3 + j] * n + i)];
                CHECK(dst[static_cast<size_t>(t * n + i)] == doctest::Approx(ref).epsilon(1e-5));
            }
    }
    const std::vector<int32_t> bad = {-1};
    CHECK(cpu->gather_rows(y.data(), bad.data(), 1, n, g.data()) == Status::invalid_argument);
    CHECK(cpu->combine_rows(y.data(), bad.data(), w.data(), 1, 1, n, g.data(), false) ==
          Status::invalid_argument);
    CHECK(cpu->add(nullptr, a.data(), 1) == Status::invalid_argument);
}

TEST_CASE("kv_store lays rows out as [kv head, position, head dim], F16 rounded to nearest") {
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(6);
    const int n_kv = 3, hd = 40;
    const int64_t n_ctx = 11, pos0 = 4, n_tok = 5;
    const auto x = normal(static_cast<size_t>(n_tok * n_kv * hd), rng, 4.0f);
    for (const quant::Type t : {quant::Type::F32, quant::Type::F16}) {
        CAPTURE(quant::type_name(t));
        const size_t elt = t == quant::Type::F16 ? 2 : 4;
        std::vector<uint8_t> cache(static_cast<size_t>(n_kv * n_ctx * hd) * elt, 0xAB);
        REQUIRE(cpu->kv_store(x.data(), n_tok, n_kv, hd, t, cache.data(), n_ctx, pos0) == Status::ok);
        for (int h = 0; h < n_kv; ++h)
            for (int64_t p = 0; p < n_ctx; ++p)
                for (int i = 0; i < hd; ++i) {
                    const size_t at = static_cast<size_t>((h * n_ctx + p) * hd + i);
                    if (p < pos0 || p >= pos0 + n_tok) {  // untouched
                        CHECK(cache[at * elt] == 0xAB);
                        continue;
                    }
                    const float src = x[static_cast<size_t>(((p - pos0) * n_kv + h) * hd + i)];
                    if (t == quant::Type::F16) {
                        uint16_t got;
                        std::memcpy(&got, &cache[at * 2], 2);
                        CHECK(got == quant::fp32_to_fp16(src));
                    } else {
                        float got;
                        std::memcpy(&got, &cache[at * 4], 4);
                        CHECK(got == src);
                    }
                }
        CHECK(cpu->kv_store(x.data(), n_tok, n_kv, hd, t, cache.data(), n_ctx, n_ctx - 2) ==
              Status::invalid_argument);
    }
    std::vector<uint8_t> c(64);
    CHECK(cpu->kv_store(x.data(), 1, 1, 8, quant::Type::Q8_0, c.data(), 2, 0) == Status::unsupported);
}

TEST_CASE("attention: causal GQA over the cache, against a double-precision reference") {
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(7);
    struct Shape {
        int n_head, n_kv, hd;
        int64_t n_ctx, pos0, n_tok;
    };
    for (const Shape s : {Shape{4, 4, 64, 16, 0, 7}, Shape{8, 2, 128, 40, 9, 3}, Shape{6, 3, 20, 12, 11, 1},
                          Shape{2, 1, 256, 9, 0, 9}}) {
        for (const quant::Type t : {quant::Type::F32, quant::Type::F16}) {
            CAPTURE(s.n_head);
            CAPTURE(s.hd);
            CAPTURE(quant::type_name(t));
            const size_t elt = t == quant::Type::F16 ? 2 : 4;
            const int64_t n_pos = s.pos0 + s.n_tok;
            // Fill the cache's first n_pos positions through kv_store (checked above).
            const auto kx = normal(static_cast<size_t>(n_pos * s.n_kv * s.hd), rng);
            const auto vx = normal(kx.size(), rng);
            std::vector<uint8_t> kc(static_cast<size_t>(s.n_kv * s.n_ctx * s.hd) * elt), vc(kc.size());
            REQUIRE(cpu->kv_store(kx.data(), n_pos, s.n_kv, s.hd, t, kc.data(), s.n_ctx, 0) == Status::ok);
            REQUIRE(cpu->kv_store(vx.data(), n_pos, s.n_kv, s.hd, t, vc.data(), s.n_ctx, 0) == Status::ok);
            const auto q = normal(static_cast<size_t>(s.n_tok * s.n_head * s.hd), rng);
            std::vector<float> out(q.size(), 99.0f);
            const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
            const kernels::Backend::Attention a{kc.data(), vc.data(), t,      t,    s.n_ctx, s.n_tok,
                                                s.pos0,    s.n_head,  s.n_kv, s.hd, scale};
            REQUIRE(cpu->attention(a, q.data(), out.data()) == Status::ok);
            double err = 0, ref2 = 0;
            for (int64_t tk = 0; tk < s.n_tok; ++tk)
                for (int h = 0; h < s.n_head; ++h) {
                    const int kvh = h / (s.n_head / s.n_kv);
                    const int64_t np = s.pos0 + tk + 1;
                    std::vector<double> p(static_cast<size_t>(np));
                    double mx = -1e300, sum = 0;
                    for (int64_t pp = 0; pp < np; ++pp) {
                        double d = 0;
                        for (int i = 0; i < s.hd; ++i)
                            d += double(q[static_cast<size_t>((tk * s.n_head + h) * s.hd + i)]) *
                                 stored(t, kx[static_cast<size_t>((pp * s.n_kv + kvh) * s.hd + i)]);
                        p[static_cast<size_t>(pp)] = d * scale;
                        mx = std::max(mx, p[static_cast<size_t>(pp)]);
                    }
                    for (auto &v : p) sum += (v = std::exp(v - mx));
                    for (int i = 0; i < s.hd; ++i) {
                        double ref = 0;
                        for (int64_t pp = 0; pp < np; ++pp)
                            ref += p[static_cast<size_t>(pp)] / sum *
                                   stored(t, vx[static_cast<size_t>((pp * s.n_kv + kvh) * s.hd + i)]);
                        const double got = out[static_cast<size_t>((tk * s.n_head + h) * s.hd + i)];
                        REQUIRE(std::isfinite(got));
                        err += (got - ref) * (got - ref);
                        ref2 += ref * ref;
                    }
                }
            // F16: the query and the probabilities are rounded to F16 (as llama.cpp does).
            CHECK(err / ref2 < (t == quant::Type::F16 ? 2e-6 : 1e-11));
        }
    }
    std::vector<float> q(64), out(64);
    std::vector<uint8_t> c(64 * 4 * 4);
    const kernels::Backend::Attention past_end{
        c.data(), c.data(), quant::Type::F32, quant::Type::F32, 4, 2, 3, 1, 1, 64, 1.0f};
    CHECK(cpu->attention(past_end, q.data(), out.data()) == Status::invalid_argument);
    const kernels::Backend::Attention bad_gqa{
        c.data(), c.data(), quant::Type::F32, quant::Type::F32, 4, 1, 0, 3, 2, 16, 1.0f};
    CHECK(cpu->attention(bad_gqa, q.data(), out.data()) == Status::invalid_argument);
}
