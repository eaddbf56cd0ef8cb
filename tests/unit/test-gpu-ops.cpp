// Conformance of the CUDA RMSNorm, SwiGLU, router top-k, RoPE, expert FFN (and its rows against the
// host's device-order rows, bit for bit), row ops (add, bias,
// gather, combine), KV-cache stores, attention and device expert slots against the CPU backend
// (same inputs, normalised error bound, NaN/inf checks, guard regions). Exits 77 (ctest: skipped) when
// this build or machine has no usable CUDA device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "gpu-test-blocks.h"
#include "gpu-test-main.h"
#include "moerun/cache/device-slots.h"
#include "moerun/kernels/backend.h"
#include "moerun/kernels/cpu/device-order.h"
#include "moerun/kernels/cpu/vec-dot.h"
#include "moerun/quant/quantize.h"
#include "moerun/quant/types.h"

using namespace moerun;

namespace {

constexpr size_t kGuard = 32;
constexpr float kGuardValue = -12345.5f;

// A device copy of `host` with guard regions; returns the pointer past the front guard.
template <typename T>
T *to_device(kernels::Backend &gpu, const std::vector<T> &host) {
    std::vector<T> padded(host.size() + 2 * kGuard, static_cast<T>(kGuardValue));
    std::copy(host.begin(), host.end(), padded.begin() + kGuard);
    auto *d = static_cast<T *>(gpu.alloc(padded.size() * sizeof(T)));
    REQUIRE(d);
    REQUIRE(gpu.upload(d, padded.data(), padded.size() * sizeof(T)) == kernels::Status::ok);
    return d + kGuard;
}

// Downloads n values at d (past its front guard), checks both guards and frees the buffer.
template <typename T>
std::vector<T> from_device(kernels::Backend &gpu, T *d, size_t n) {
    std::vector<T> padded(n + 2 * kGuard);
    REQUIRE(gpu.download(padded.data(), d - kGuard, padded.size() * sizeof(T)) == kernels::Status::ok);
    gpu.free(d - kGuard);
    for (size_t i = 0; i < kGuard; ++i) {
        REQUIRE(padded[i] == static_cast<T>(kGuardValue));
        REQUIRE(padded[kGuard + n + i] == static_cast<T>(kGuardValue));
    }
    return {padded.begin() + kGuard, padded.begin() + kGuard + static_cast<ptrdiff_t>(n)};
}

double nmse(const std::vector<float> &got, const std::vector<float> &ref) {
    double e = 0, r = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        REQUIRE(std::isfinite(got[i]));
        e += double(got[i] - ref[i]) * double(got[i] - ref[i]);
        r += double(ref[i]) * double(ref[i]);
    }
    return r > 0 ? e / r : e;
}

std::vector<float> normal(size_t n, std::mt19937 &rng, float sd = 1.0f) {
    std::normal_distribution<float> nd(0.0f, sd);
    std::vector<float> v(n);
    for (auto &x : v) x = nd(rng);
    return v;
}

}  // namespace

TEST_CASE("cuda rms_norm and swiglu match the CPU backend") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(1);
    for (const int64_t n : {64, 2048, 4000}) {
        CAPTURE(n);
        const int64_t rows = 3;
        const auto x = normal(static_cast<size_t>(rows * n), rng), w = normal(static_cast<size_t>(n), rng);
        std::vector<float> ref(x.size());
        REQUIRE(cpu->rms_norm(x.data(), w.data(), ref.data(), rows, n, 1e-6f) == kernels::Status::ok);
        float *dx = to_device(*gpu, x), *dw = to_device(*gpu, w),
              *dy = to_device(*gpu, std::vector<float>(x.size()));
        REQUIRE(gpu->rms_norm(dx, dw, dy, rows, n, 1e-6f) == kernels::Status::ok);
        CHECK(nmse(from_device(*gpu, dy, x.size()), ref) < 1e-10);
        from_device(*gpu, dx, x.size());
        from_device(*gpu, dw, w.size());

        const auto g = normal(static_cast<size_t>(n), rng, 3.0f), u = normal(static_cast<size_t>(n), rng);
        std::vector<float> sref(static_cast<size_t>(n));
        REQUIRE(cpu->swiglu(g.data(), u.data(), sref.data(), n) == kernels::Status::ok);
        float *dg = to_device(*gpu, g), *du = to_device(*gpu, u),
              *ds = to_device(*gpu, std::vector<float>(g.size()));
        REQUIRE(gpu->swiglu(dg, du, ds, n) == kernels::Status::ok);
        CHECK(nmse(from_device(*gpu, ds, g.size()), sref) < 1e-10);
        from_device(*gpu, dg, g.size());
        from_device(*gpu, du, u.size());
    }
}

namespace {

// router_topk of the same logits [n_tok, n_expert] on the CPU backend and on gpu: each one's
// expert ids and weights [n_tok, k].
struct TopK {
    std::vector<int32_t> ids, gpu_ids;
    std::vector<float> w, gpu_w;
};
TopK both_topk(kernels::Backend &gpu, kernels::Backend &cpu, const std::vector<float> &logits, int64_t n_tok,
               int n_expert, int k, bool renorm) {
    const size_t no = static_cast<size_t>(n_tok * k);
    TopK r{std::vector<int32_t>(no), {}, std::vector<float>(no), {}};
    REQUIRE(cpu.router_topk(logits.data(), n_tok, n_expert, k, renorm, r.ids.data(), r.w.data()) ==
            kernels::Status::ok);
    float *dl = to_device(gpu, logits), *dw = to_device(gpu, std::vector<float>(no));
    int32_t *di = to_device(gpu, std::vector<int32_t>(no));
    REQUIRE(gpu.router_topk(dl, n_tok, n_expert, k, renorm, di, dw) == kernels::Status::ok);
    r.gpu_ids = from_device(gpu, di, no);
    r.gpu_w = from_device(gpu, dw, no);
    from_device(gpu, dl, logits.size());
    return r;
}

}  // namespace

TEST_CASE("cuda router_topk picks the CPU backend's experts with its weights") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(2);
    for (const int n_expert : {8, 60, 64, 128, 256}) {
        for (const int k : {1, 2, 8}) {
            for (const bool renorm : {false, true}) {
                CAPTURE(n_expert);
                CAPTURE(k);
                CAPTURE(renorm);
                const int64_t n_tok = 7;
                auto logits = normal(static_cast<size_t>(n_tok * n_expert), rng, 2.0f);
                logits.at(1) = logits.at(2);  // a tie: the lower id first
                const TopK r = both_topk(*gpu, *cpu, logits, n_tok, n_expert, k, renorm);
                CHECK(r.gpu_ids == r.ids);
                CHECK(nmse(r.gpu_w, r.w) < 1e-10);
            }
        }
    }
}

// NaN logits (a broken model): both backends still pick k distinct experts in range, the same
// ones (a NaN counts as -inf, ties to the lower id), and the NaN reaches the weights.
TEST_CASE("cuda router_topk on NaN logits picks the CPU backend's experts, all in range") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(12);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (const int n_expert : {8, 64, 128}) {
        const int k = 8;
        const int64_t n_tok = 3;
        CAPTURE(n_expert);
        auto logits = normal(static_cast<size_t>(n_tok * n_expert), rng, 2.0f);
        for (int e = 0; e < n_expert; ++e) logits[static_cast<size_t>(e)] = nan;  // token 0: all NaN
        logits[static_cast<size_t>(n_expert + 5)] = nan;                          // token 1: one NaN
        const TopK r = both_topk(*gpu, *cpu, logits, n_tok, n_expert, k, true);
        const std::vector<int32_t> &got = r.gpu_ids;
        const std::vector<float> &gw = r.gpu_w, &w = r.w;
        const size_t no = w.size();
        CHECK(got == r.ids);
        for (int64_t t = 0; t < n_tok; ++t) {
            std::vector<int32_t> row(got.begin() + t * k, got.begin() + (t + 1) * k);
            for (const int32_t e : row) CHECK((e >= 0 && e < n_expert));
            std::sort(row.begin(), row.end());
            CHECK(std::adjacent_find(row.begin(), row.end()) == row.end());
        }
        for (size_t i = 0; i < no; ++i) CHECK(std::isnan(gw[i]) == std::isnan(w[i]));
        CHECK(std::isnan(gw[0]));  // the all-NaN token's weights stay NaN
    }
}

TEST_CASE("cuda rope matches the CPU backend: normal and NeoX, partial rotation, linear and YaRN scaling") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(3);
    kernels::cpu::RopeScaling yarn{0.25f, 1.0f, 1.0f, 0, 0};
    float dims[2];
    kernels::cpu::yarn_corr_dims(128, 4096, 1e6f, 32, 1, dims);
    yarn.corr_low = dims[0];
    yarn.corr_high = dims[1];
    const kernels::cpu::RopeScaling none{}, linear{0.5f, 0.0f, 1.0f, 0, 0};
    for (const auto &s : {none, linear, yarn}) {
        for (const bool neox : {false, true}) {
            for (const int n_rot : {128, 64}) {
                CAPTURE(neox);
                CAPTURE(n_rot);
                const int64_t n_tok = 5, n_head = 4, hd = 128, pos0 = 3000;
                const auto x = normal(static_cast<size_t>(n_tok * n_head * hd), rng);
                std::vector<float> ref = x;
                REQUIRE(cpu->rope(ref.data(), n_tok, n_head, hd, n_rot, pos0, 1e6f, neox, s) ==
                        kernels::Status::ok);
                float *dx = to_device(*gpu, x);
                REQUIRE(gpu->rope(dx, n_tok, n_head, hd, n_rot, pos0, 1e6f, neox, s) == kernels::Status::ok);
                CHECK(nmse(from_device(*gpu, dx, x.size()), ref) < 1e-9);
            }
        }
    }
}

TEST_CASE("cuda expert_ffn matches the CPU backend (one launch per product over all experts)") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(4);
    std::normal_distribution<float> nd(0.0f, 0.1f);
    const int64_t E = 512, F = 768;
    struct Mix {
        quant::Type g, u, d;
    };
    for (const Mix mix : {Mix{quant::Type::Q4_K, quant::Type::Q4_K, quant::Type::Q6_K},
                          Mix{quant::Type::Q8_0, quant::Type::Q4_0, quant::Type::Q8_0}}) {
        for (const int n : {1, 8}) {
            CAPTURE(quant::type_name(mix.g));
            CAPTURE(n);
            const auto make = [&](quant::Type t, int64_t rows, int64_t cols) {
                const uint64_t rb = *quant::row_bytes(t, cols);
                std::vector<uint8_t> w(rb * rows);
                std::vector<float> src(cols);
                for (int64_t r = 0; r < rows; ++r) {
                    for (auto &v : src) v = nd(rng);
                    quant::quantize_row(t, src.data(), w.data() + r * rb, cols);
                }
                return w;
            };
            std::vector<std::vector<uint8_t>> hg, hu, hd;
            std::vector<const void *> pg, pu, pd, dg, du, dd;
            std::vector<float> weights;
            for (int j = 0; j < n; ++j) {
                hg.push_back(make(mix.g, F, E));
                hu.push_back(make(mix.u, F, E));
                hd.push_back(make(mix.d, E, F));
                weights.push_back(1.0f / static_cast<float>(j + 2));
            }
            for (int j = 0; j < n; ++j) {
                pg.push_back(hg[j].data()), pu.push_back(hu[j].data()), pd.push_back(hd[j].data());
                for (auto [host, dev] :
                     {std::pair{&hg[j], &dg}, std::pair{&hu[j], &du}, std::pair{&hd[j], &dd}}) {
                    void *p = gpu->alloc(host->size());
                    REQUIRE(gpu->upload(p, host->data(), host->size()) == kernels::Status::ok);
                    dev->push_back(p);
                }
            }
            std::vector<float> x(E), ref(E), scratch(2 * n * F + n * E);
            for (auto &v : x) v = nd(rng) * 10.0f;
            const kernels::Backend::ExpertFfn fc{mix.g,     mix.u,          mix.d, pg.data(), pu.data(),
                                                 pd.data(), weights.data(), n,     E,         F};
            REQUIRE(cpu->expert_ffn(fc, x.data(), ref.data(), scratch.data()) == kernels::Status::ok);
            const kernels::Backend::ExpertFfn fd{mix.g,     mix.u,          mix.d, dg.data(), du.data(),
                                                 dd.data(), weights.data(), n,     E,         F};
            float *dx = to_device(*gpu, x), *dy = to_device(*gpu, std::vector<float>(E));
            auto *ds = static_cast<float *>(gpu->alloc(scratch.size() * sizeof(float)));
            const kernels::Status st = gpu->expert_ffn(fd, dx, dy, ds);
            INFO(gpu->last_error());
            REQUIRE(st == kernels::Status::ok);
            const std::vector<float> fused = from_device(*gpu, dy, E);
            CHECK(nmse(fused, ref) < 5e-4);
            // rows_out (the CPU fallback's path): each expert's row as the CPU backend computes
            // it, no sum when y is null, and combine_rows over the rows gives the fused sum.
            std::vector<float> ref_rows(static_cast<size_t>(n * E));
            kernels::Backend::ExpertFfn fcr = fc, fdr = fd;
            fcr.rows_out = ref_rows.data();
            REQUIRE(cpu->expert_ffn(fcr, x.data(), nullptr, scratch.data()) == kernels::Status::ok);
            float *drows = to_device(*gpu, std::vector<float>(ref_rows.size(), 0.0f));
            fdr.rows_out = drows;
            REQUIRE(gpu->expert_ffn(fdr, dx, nullptr, ds) == kernels::Status::ok);
            std::vector<int32_t> ranks(static_cast<size_t>(n));
            for (int j = 0; j < n; ++j) ranks[static_cast<size_t>(j)] = j;
            float *dsum = to_device(*gpu, std::vector<float>(E, 3.0f));
            REQUIRE(gpu->combine_rows(drows, ranks.data(), weights.data(), 1, n, E, dsum, false) ==
                    kernels::Status::ok);
            CHECK(nmse(from_device(*gpu, dsum, E), fused) < 1e-10);
            CHECK(nmse(from_device(*gpu, drows, ref_rows.size()), ref_rows) < 5e-4);
            from_device(*gpu, dx, x.size());
            gpu->free(ds);
            for (auto *v : {&dg, &du, &dd})
                for (const void *p : *v) gpu->free(const_cast<void *>(p));
        }
    }
}

// The CPU fallback's promise: a miss computed on the host gives the row the device would have
// given, bit for bit, so the tokens do not depend on which experts were resident.
TEST_CASE("expert_ffn rows equal the host's rows for this backend bit for bit (CPU fallback)") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    kernels::cpu::ThreadPool pool(2);
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 0.1f);
    const bool device_order = gpu->host_math() == kernels::Backend::HostMath::device_order;
    const std::string host_math = device_order ? "device order" : "cpu kernels";
    CAPTURE(host_math);
    struct Mix {
        quant::Type g, u, d;
        int64_t E, F;
    };
    using T = quant::Type;
    for (const Mix mix :
         {Mix{T::Q4_K, T::Q4_K, T::Q6_K, 2048, 768}, Mix{T::Q5_K, T::Q5_K, T::Q8_0, 512, 1280},
          Mix{T::Q2_K, T::Q3_K, T::Q4_0, 768, 512}, Mix{T::F16, T::F32, T::Q6_K, 256, 512},
          Mix{T::Q5_0, T::Q5_1, T::Q4_1, 512, 256}, Mix{T::IQ4_XS, T::IQ4_XS, T::IQ4_NL, 512, 256},
          Mix{T::BF16, T::F16, T::F32, 200, 72}}) {  // rows of F32 / F16 / BF16 may have any length
        CAPTURE(quant::type_name(mix.g));
        const int64_t E = mix.E, F = mix.F;
        const auto make = [&](T t, int64_t rows, int64_t cols) {
            const uint64_t rb = *quant::row_bytes(t, cols);
            std::vector<uint8_t> w(rb * rows);
            if (fill_random_blocks(t, w, rng)) return w;  // Q2_K, Q3_K, IQ4_*: no quantizer in quant/
            std::vector<float> src(cols);
            for (int64_t r = 0; r < rows; ++r) {
                for (auto &v : src) v = nd(rng);
                quant::quantize_row(t, src.data(), w.data() + r * rb, cols);
            }
            return w;
        };
        const std::vector<uint8_t> hg = make(mix.g, F, E), hu = make(mix.u, F, E), hd = make(mix.d, E, F);
        std::vector<float> x(E);
        for (auto &v : x) v = nd(rng) * 10.0f;
        x[3] = -0.0f, x[5] = 0.0f;  // signed zeros take the same path
        // the device's row and weighted sum of the expert
        void *dg = gpu->alloc(hg.size()), *du = gpu->alloc(hu.size()), *dd = gpu->alloc(hd.size());
        REQUIRE(gpu->upload(dg, hg.data(), hg.size()) == kernels::Status::ok);
        REQUIRE(gpu->upload(du, hu.data(), hu.size()) == kernels::Status::ok);
        REQUIRE(gpu->upload(dd, hd.data(), hd.size()) == kernels::Status::ok);
        const void *pg[] = {dg}, *pu[] = {du}, *pd[] = {dd};
        const float weight[] = {0.37f};
        kernels::Backend::ExpertFfn f{mix.g, mix.u, mix.d, pg, pu, pd, weight, 1, E, F};
        float *dx = to_device(*gpu, x), *drow = to_device(*gpu, std::vector<float>(E, 0.0f));
        auto *ds = static_cast<float *>(gpu->alloc((2 * F + E) * sizeof(float)));
        f.rows_out = drow;
        const kernels::Status st = gpu->expert_ffn(f, dx, nullptr, ds);
        INFO(gpu->last_error());
        REQUIRE(st == kernels::Status::ok);
        const std::vector<float> row = from_device(*gpu, drow, static_cast<size_t>(E));
        // the host's
        std::vector<float> host(E), g(F), u(F), scratch(2 * F + E);
        const auto same_bits = [&](const std::vector<float> &a, const std::vector<float> &b) {
            size_t diff = 0;
            for (size_t i = 0; i < a.size(); ++i) diff += std::memcmp(&a[i], &b[i], 4) != 0;
            return diff;
        };
        if (device_order) {
            const kernels::cpu::HostExpert de{mix.g, mix.u, mix.d, hg.data(), hu.data(), hd.data(), E, F};
            for (const kernels::cpu::Isa isa : {kernels::cpu::best_isa(), kernels::cpu::Isa::generic}) {
                CAPTURE(kernels::cpu::isa_name(isa));
                kernels::cpu::set_isa(isa);
                kernels::cpu::device_order_expert(pool, de, x.data(), g.data(), u.data(), host.data());
                CHECK(same_bits(host, row) == 0);
            }
            kernels::cpu::set_isa(kernels::cpu::best_isa());
        } else {
            const void *hpg[] = {hg.data()}, *hpu[] = {hu.data()}, *hpd[] = {hd.data()};
            kernels::Backend::ExpertFfn fc{mix.g, mix.u, mix.d, hpg, hpu, hpd, weight, 1, E, F};
            fc.rows_out = host.data();
            REQUIRE(cpu->expert_ffn(fc, x.data(), nullptr, scratch.data()) == kernels::Status::ok);
            CHECK(same_bits(host, row) == 0);
        }
        // the rows summed by combine_rows equal the fused weighted sum, bit for bit
        float *dy = to_device(*gpu, std::vector<float>(E, 0.0f));
        f.rows_out = nullptr;
        REQUIRE(gpu->expert_ffn(f, dx, dy, ds) == kernels::Status::ok);
        const std::vector<float> fused = from_device(*gpu, dy, static_cast<size_t>(E));
        float *drows = to_device(*gpu, row), *dsum = to_device(*gpu, std::vector<float>(E, 3.0f));
        const int32_t rank0[] = {0};
        REQUIRE(gpu->combine_rows(drows, rank0, weight, 1, 1, E, dsum, false) == kernels::Status::ok);
        CHECK(same_bits(from_device(*gpu, dsum, static_cast<size_t>(E)), fused) == 0);
        from_device(*gpu, drows, static_cast<size_t>(E));
        from_device(*gpu, dx, x.size());
        gpu->free(ds), gpu->free(dg), gpu->free(du), gpu->free(dd);
    }
}

TEST_CASE("cuda add, add_bias, gather_rows and combine_rows equal the CPU backend") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(11);
    const int64_t n = 1000, rows = 9;
    const auto y0 = normal(static_cast<size_t>(rows * n), rng), a = normal(y0.size(), rng),
               b = normal(static_cast<size_t>(n), rng);
    auto ref = y0;
    REQUIRE(cpu->add(ref.data(), a.data(), rows * n) == kernels::Status::ok);
    REQUIRE(cpu->add_bias(ref.data(), b.data(), rows, n) == kernels::Status::ok);
    float *dy = to_device(*gpu, y0), *da = to_device(*gpu, a), *db = to_device(*gpu, b);
    REQUIRE(gpu->add(dy, da, rows * n) == kernels::Status::ok);
    REQUIRE(gpu->add_bias(dy, db, rows, n) == kernels::Status::ok);
    const auto got = from_device(*gpu, dy, ref.size());
    CHECK(got == ref);  // one rounding per element on both

    // Rows of 5 tokens x top-3, in shuffled order, gathered and combined back.
    std::vector<int32_t> pick(15), sel(15);
    for (size_t i = 0; i < pick.size(); ++i) pick[i] = static_cast<int32_t>(rng() % rows);
    for (size_t i = 0; i < sel.size(); ++i) sel[i] = static_cast<int32_t>(i);
    std::shuffle(sel.begin(), sel.end(), rng);
    const auto w = normal(15, rng);
    std::vector<float> g_ref(15 * n), c_ref = normal(static_cast<size_t>(5 * n), rng);
    const auto c0 = c_ref;
    REQUIRE(cpu->gather_rows(ref.data(), pick.data(), 15, n, g_ref.data()) == kernels::Status::ok);
    REQUIRE(cpu->combine_rows(g_ref.data(), sel.data(), w.data(), 5, 3, n, c_ref.data(), true) ==
            kernels::Status::ok);
    float *dsrc = to_device(*gpu, ref), *dg = to_device(*gpu, std::vector<float>(g_ref.size())),
          *dc = to_device(*gpu, c0);
    REQUIRE(gpu->gather_rows(dsrc, pick.data(), 15, n, dg) == kernels::Status::ok);
    REQUIRE(gpu->combine_rows(dg, sel.data(), w.data(), 5, 3, n, dc, true) == kernels::Status::ok);
    CHECK(from_device(*gpu, dg, g_ref.size()) == g_ref);
    CHECK(nmse(from_device(*gpu, dc, c_ref.size()), c_ref) < 1e-12);
    from_device(*gpu, da, a.size());
    from_device(*gpu, db, b.size());
    from_device(*gpu, dsrc, ref.size());
}

// More tokens than a grid's y dimension holds (65535): the launch goes in chunks.
TEST_CASE("cuda combine_rows over more than 65535 tokens equals the CPU backend") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(13);
    const int64_t n_tok = 65535 + 9, n = 32, n_src = 5;
    const int k = 2;
    const auto src = normal(static_cast<size_t>(n_src * n), rng);
    const auto w = normal(static_cast<size_t>(n_tok * k), rng);
    std::vector<int32_t> sel(static_cast<size_t>(n_tok * k));
    for (auto &r : sel) r = static_cast<int32_t>(rng() % n_src);
    std::vector<float> ref(static_cast<size_t>(n_tok * n));
    REQUIRE(cpu->combine_rows(src.data(), sel.data(), w.data(), n_tok, k, n, ref.data(), false) ==
            kernels::Status::ok);
    float *ds = to_device(*gpu, src), *dd = to_device(*gpu, std::vector<float>(ref.size()));
    REQUIRE(gpu->combine_rows(ds, sel.data(), w.data(), n_tok, k, n, dd, false) == kernels::Status::ok);
    const auto got = from_device(*gpu, dd, ref.size());
    CHECK(nmse(got, ref) < 1e-12);
    const std::vector<float> last_got(got.end() - n, got.end()), last_ref(ref.end() - n, ref.end());
    CHECK(nmse(last_got, last_ref) < 1e-12);  // the last token, in the second chunk
    from_device(*gpu, ds, src.size());
}

// reserve_rows sizes the row-index staging at start: it is counted in workspace_bytes, and calls
// within it allocate nothing (device memory stays as it was).
TEST_CASE("reserve_rows: staging for a batch's rows is allocated up front and counted") {
    auto gpu = gpu_backend();
    const bool cuda = gpu->name() == "cuda";
    CHECK(gpu->max_batch_tokens() == (cuda ? 65535 : INT64_MAX));
    const int64_t n_tok = 12000, n = 8, n_src = 3;
    const int k = 4;  // 48000 row indices and weights: past the initial staging
    const uint64_t before = gpu->workspace_bytes();
    REQUIRE(gpu->reserve_rows(n_tok * k) == kernels::Status::ok);
    const uint64_t after = gpu->workspace_bytes();
    if (cuda) CHECK(after >= before + 2 * 4 * static_cast<uint64_t>(n_tok * k) - 64 * 1024);
    CHECK(gpu->reserve_rows(-1) == (cuda ? kernels::Status::invalid_argument : kernels::Status::ok));
    std::mt19937 rng(17);
    const auto src = normal(static_cast<size_t>(n_src * n), rng);
    const auto w = normal(static_cast<size_t>(n_tok * k), rng);
    std::vector<int32_t> sel(static_cast<size_t>(n_tok * k));
    for (auto &r : sel) r = static_cast<int32_t>(rng() % n_src);
    float *ds = to_device(*gpu, src),
          *dd = to_device(*gpu, std::vector<float>(static_cast<size_t>(n_tok * n)));
    const uint64_t free0 = gpu->device_info().free_memory;
    REQUIRE(gpu->combine_rows(ds, sel.data(), w.data(), n_tok, k, n, dd, false) == kernels::Status::ok);
    REQUIRE(gpu->gather_rows(ds, sel.data(), n_tok * k / n_src / 4, n, dd) == kernels::Status::ok);
    if (cuda) CHECK(gpu->device_info().free_memory == free0);  // (the CPU's is the system's, which moves)
    CHECK(gpu->workspace_bytes() == after);
    from_device(*gpu, dd, static_cast<size_t>(n_tok * n));
    from_device(*gpu, ds, src.size());
}

TEST_CASE("cuda kv_store and attention match the CPU backend (GQA, positions after a prefix, F32 and F16)") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    std::mt19937 rng(12);
    struct Shape {
        int n_head, n_kv, hd;
        int64_t n_ctx, pos0, n_tok;
    };
    for (const Shape s :
         {Shape{4, 4, 64, 64, 0, 33}, Shape{32, 4, 128, 600, 500, 1}, Shape{16, 2, 128, 300, 40, 77},
          Shape{6, 3, 20, 12, 11, 1}, Shape{2, 1, 256, 40, 0, 40}}) {
        for (const quant::Type t : {quant::Type::F32, quant::Type::F16}) {
            CAPTURE(s.n_head);
            CAPTURE(s.hd);
            CAPTURE(s.n_tok);
            CAPTURE(quant::type_name(t));
            const size_t elt = t == quant::Type::F16 ? 2 : 4;
            const int64_t n_pos = s.pos0 + s.n_tok;
            const auto kx = normal(static_cast<size_t>(n_pos * s.n_kv * s.hd), rng);
            const auto vx = normal(kx.size(), rng);
            const size_t cache_bytes = static_cast<size_t>(s.n_kv * s.n_ctx * s.hd) * elt;
            std::vector<uint8_t> kc(cache_bytes), vc(cache_bytes);
            REQUIRE(cpu->kv_store(kx.data(), n_pos, s.n_kv, s.hd, t, kc.data(), s.n_ctx, 0) ==
                    kernels::Status::ok);
            REQUIRE(cpu->kv_store(vx.data(), n_pos, s.n_kv, s.hd, t, vc.data(), s.n_ctx, 0) ==
                    kernels::Status::ok);
            // The device caches are filled by the device kv_store in two calls (prefix, then batch).
            auto *dkc = static_cast<uint8_t *>(gpu->alloc(cache_bytes)),
                 *dvc = static_cast<uint8_t *>(gpu->alloc(cache_bytes));
            REQUIRE((dkc && dvc));
            const int64_t split = s.pos0;
            float *dkx = to_device(*gpu, kx), *dvx = to_device(*gpu, vx);
            const int64_t row = int64_t{s.n_kv} * s.hd;
            for (const auto &[p0, m] : {std::pair<int64_t, int64_t>{0, split}, {split, n_pos - split}}) {
                if (m == 0) continue;
                REQUIRE(gpu->kv_store(dkx + p0 * row, m, s.n_kv, s.hd, t, dkc, s.n_ctx, p0) ==
                        kernels::Status::ok);
                REQUIRE(gpu->kv_store(dvx + p0 * row, m, s.n_kv, s.hd, t, dvc, s.n_ctx, p0) ==
                        kernels::Status::ok);
            }
            // Stored positions agree bit for bit (F16: round to nearest even on both).
            std::vector<uint8_t> back(cache_bytes);
            REQUIRE(gpu->download(back.data(), dkc, cache_bytes) == kernels::Status::ok);
            for (int h = 0; h < s.n_kv; ++h) {
                const size_t off = static_cast<size_t>(h * s.n_ctx * s.hd) * elt,
                             len = static_cast<size_t>(n_pos * s.hd) * elt;
                CHECK(std::equal(back.begin() + off, back.begin() + off + len, kc.begin() + off));
            }
            const auto q = normal(static_cast<size_t>(s.n_tok * s.n_head * s.hd), rng, 2.0f);
            const float scale = 1.0f / std::sqrt(static_cast<float>(s.hd));
            std::vector<float> ref(q.size());
            const kernels::Backend::Attention ac{kc.data(), vc.data(), t,      t,    s.n_ctx, s.n_tok,
                                                 s.pos0,    s.n_head,  s.n_kv, s.hd, scale};
            REQUIRE(cpu->attention(ac, q.data(), ref.data()) == kernels::Status::ok);
            float *dq = to_device(*gpu, q), *dout = to_device(*gpu, std::vector<float>(q.size(), 7.0f));
            const kernels::Backend::Attention ad{dkc,    dvc,      t,      t,    s.n_ctx, s.n_tok,
                                                 s.pos0, s.n_head, s.n_kv, s.hd, scale};
            const kernels::Status st = gpu->attention(ad, dq, dout);
            INFO(gpu->last_error());
            REQUIRE(st == kernels::Status::ok);
            // F16: a probability that lands on an F16 rounding tie may round the other way.
            CHECK(nmse(from_device(*gpu, dout, q.size()), ref) < (t == quant::Type::F16 ? 1e-6 : 1e-10));
            from_device(*gpu, dq, q.size());
            from_device(*gpu, dkx, kx.size());
            from_device(*gpu, dvx, vx.size());
            gpu->free(dkc);
            gpu->free(dvc);
        }
    }
}

TEST_CASE("device slots on the GPU hold the bytes copied in, after replacements") {
    auto gpu = gpu_backend();
    const cache::SlotLayout lay{3000, 3000, 5000};
    cache::DeviceSlots slots(*gpu, 2, lay.bytes(), "lru",
                             cache::PolicyParams{.n_layers = 1, .n_experts = 4, .top_k = 1});
    std::vector<std::vector<uint8_t>> parts;
    std::mt19937 rng(13);
    for (uint32_t e = 0; e < 4; ++e) {
        std::vector<uint8_t> g(lay.gate_bytes), u(lay.up_bytes), d(lay.down_bytes);
        for (auto *v : {&g, &u, &d})
            for (auto &x : *v) x = static_cast<uint8_t>(rng());
        const cache::ExpertView dv = slots.load({0, e}, {g.data(), u.data(), d.data()}, lay);
        slots.end_layer();
        std::vector<uint8_t> back(lay.down_bytes);
        REQUIRE(gpu->download(back.data(), dv.down, back.size()) == kernels::Status::ok);
        CHECK(back == d);
        back.resize(lay.gate_bytes);
        REQUIRE(gpu->download(back.data(), dv.gate, back.size()) == kernels::Status::ok);
        CHECK(back == g);
    }
    CHECK(slots.stats().evictions == 2);
}

TEST_CASE("copy queue: prefetch copies from registered host memory reach the slot after compute waits") {
    auto gpu = gpu_backend();
    const cache::SlotLayout lay{4096, 4096, 8192};
    cache::DeviceSlots slots(*gpu, 4, lay.bytes(), "least-stale",
                             cache::PolicyParams{.n_layers = 2, .n_experts = 8, .top_k = 2});
    // One page-aligned host block for three experts, registered (the CPU backend only remembers it).
    const size_t one = lay.gate_bytes + lay.up_bytes + lay.down_bytes;
    std::vector<uint8_t> block(3 * one + 8192);
    uint8_t *base = block.data() + (4096 - reinterpret_cast<uintptr_t>(block.data()) % 4096) % 4096;
    std::mt19937 rng(29);
    for (size_t i = 0; i < 3 * one; ++i) base[i] = static_cast<uint8_t>(rng());
    const kernels::Status reg = gpu->host_register(base, 3 * one, kernels::Backend::HostAccess::read_only);
    CHECK(reg == kernels::Status::ok);
    slots.begin_layer(0);
    for (uint32_t e = 0; e < 3; ++e) {
        const uint8_t *h = base + e * one;
        REQUIRE(slots.prefetch({1, e}, {h, h + lay.gate_bytes, h + lay.gate_bytes + lay.up_bytes}, lay, 1));
    }
    slots.end_layer();
    slots.begin_layer(1);
    REQUIRE(gpu->compute_wait_copies() == kernels::Status::ok);
    for (uint32_t e = 0; e < 3; ++e) {
        const auto d = slots.find({1, e});
        REQUIRE(d);
        std::vector<uint8_t> back(lay.down_bytes);
        REQUIRE(gpu->download(back.data(), d->down, back.size()) == kernels::Status::ok);
        CHECK(std::equal(back.begin(), back.end(), base + e * one + lay.gate_bytes + lay.up_bytes));
        back.resize(lay.gate_bytes);
        REQUIRE(gpu->download(back.data(), d->gate, back.size()) == kernels::Status::ok);
        CHECK(std::equal(back.begin(), back.end(), base + e * one));
    }
    CHECK(slots.stats().prefetch_used == 3);
    REQUIRE(gpu->synchronize() == kernels::Status::ok);
    if (reg == kernels::Status::ok) CHECK(gpu->host_unregister(base) == kernels::Status::ok);
}

TEST_CASE("copy queue: once the host has waited for the copies, their sources may change") {
    auto gpu = gpu_backend();
    std::mt19937 rng(31);
    std::vector<uint8_t> src(8192);
    for (auto &b : src) b = static_cast<uint8_t>(rng());
    const std::vector<uint8_t> sent = src;
    void *dst = gpu->alloc(src.size());
    REQUIRE(dst);
    REQUIRE(gpu->upload_async(dst, src.data(), src.size()) == kernels::Status::ok);
    REQUIRE(gpu->wait_copies() == kernels::Status::ok);
    std::fill(src.begin(), src.end(), uint8_t{0xAB});  // e.g. a host cache slot refilled
    REQUIRE(gpu->compute_wait_copies() == kernels::Status::ok);
    std::vector<uint8_t> back(src.size());
    REQUIRE(gpu->download(back.data(), dst, back.size()) == kernels::Status::ok);
    CHECK(back == sent);
    gpu->free(dst);
}

TEST_CASE("copy queue: download_async takes a buffer's bytes before later copies refill it") {
    // Exclusive tiers' write-back: an evicted expert goes back to a host slot registered
    // read_write, then its device slot is refilled on the copy queue (a prefetch) or, after a
    // compute wait, on the compute queue (a demand copy).
    auto gpu = gpu_backend();
    constexpr size_t n = 8192;
    std::mt19937 rng(35);
    std::vector<uint8_t> a(n), b(n), c(n);
    for (auto *v : {&a, &b, &c})
        for (auto &x : *v) x = static_cast<uint8_t>(rng());
    std::vector<uint8_t> block(3 * n + 4096);
    uint8_t *host = block.data() + (4096 - reinterpret_cast<uintptr_t>(block.data()) % 4096) % 4096;
    REQUIRE(gpu->host_register(host, 2 * n, kernels::Backend::HostAccess::read_write) == kernels::Status::ok);
    auto *dev = static_cast<uint8_t *>(gpu->alloc(n));
    REQUIRE(dev);
    REQUIRE(gpu->upload(dev, a.data(), n) == kernels::Status::ok);
    REQUIRE(gpu->wait_compute() == kernels::Status::ok);
    const uint64_t before = gpu->copies_issued();
    REQUIRE(gpu->download_async(host, dev, n) == kernels::Status::ok);      // a goes back
    REQUIRE(gpu->upload_async(dev, b.data(), n) == kernels::Status::ok);    // b refills (copy queue)
    REQUIRE(gpu->download_async(host + n, dev, n) == kernels::Status::ok);  // b goes back
    CHECK(gpu->copies_issued() == before + 3);
    REQUIRE(gpu->compute_wait_copy(gpu->copies_issued()) == kernels::Status::ok);
    REQUIRE(gpu->upload(dev, c.data(), n) == kernels::Status::ok);  // c refills (compute queue)
    std::vector<uint8_t> back(n);
    REQUIRE(gpu->download(back.data(), dev, n) == kernels::Status::ok);
    CHECK(back == c);
    REQUIRE(gpu->wait_copies() == kernels::Status::ok);
    CHECK(std::equal(a.begin(), a.end(), host));
    CHECK(std::equal(b.begin(), b.end(), host + n));
    gpu->free(dev);
    CHECK(gpu->host_unregister(host) == kernels::Status::ok);
}

TEST_CASE("upload: a registered source may change once the host has waited for the compute queue") {
    auto gpu = gpu_backend();
    std::mt19937 rng(33);
    std::vector<uint8_t> block(3 * 4096);
    uint8_t *src = block.data() + (4096 - reinterpret_cast<uintptr_t>(block.data()) % 4096) % 4096;
    for (size_t i = 0; i < 4096; ++i) src[i] = static_cast<uint8_t>(rng());
    const std::vector<uint8_t> sent(src, src + 4096);
    REQUIRE(gpu->host_register(src, 4096, kernels::Backend::HostAccess::read_only) == kernels::Status::ok);
    void *dst = gpu->alloc(4096);
    REQUIRE(dst);
    REQUIRE(gpu->upload(dst, src, 4096) == kernels::Status::ok);
    REQUIRE(gpu->wait_compute() == kernels::Status::ok);
    std::fill(src, src + 4096, uint8_t{0xCD});  // a host cache slot handed back and refilled
    std::vector<uint8_t> back(4096);
    REQUIRE(gpu->download(back.data(), dst, back.size()) == kernels::Status::ok);
    CHECK(back == sent);
    gpu->free(dst);
    CHECK(gpu->host_unregister(src) == kernels::Status::ok);
}

TEST_CASE("copy queue: compute waits for copy number k and the ones before it, past 64 in flight") {
    auto gpu = gpu_backend();
    constexpr int kCopies = 150;
    constexpr size_t kBytes = 64 << 10;
    std::mt19937 rng(37);
    std::vector<uint8_t> src(kCopies * kBytes);
    for (auto &b : src) b = static_cast<uint8_t>(rng());
    auto *dst = static_cast<uint8_t *>(gpu->alloc(src.size()));
    REQUIRE(dst);
    const uint64_t before = gpu->copies_issued();
    for (int i = 0; i < kCopies; ++i)
        REQUIRE(gpu->upload_async(dst + i * kBytes, src.data() + i * kBytes, kBytes) == kernels::Status::ok);
    CHECK(gpu->copies_issued() == before + kCopies);
    CHECK(gpu->compute_wait_copy(before + kCopies + 1) == kernels::Status::invalid_argument);
    std::vector<uint8_t> back(kBytes);
    for (const int k : {1, 70, 130, 150}) {  // 1 and 70 share an event slot (64 of them) with later copies
        REQUIRE(gpu->compute_wait_copy(before + k) == kernels::Status::ok);
        for (const int i : {0, k - 1}) {  // copy number k is index k - 1
            REQUIRE(gpu->download(back.data(), dst + i * kBytes, kBytes) == kernels::Status::ok);
            CHECK(std::equal(back.begin(), back.end(), src.begin() + i * kBytes));
        }
    }
    REQUIRE(gpu->synchronize() == kernels::Status::ok);
    gpu->free(dst);
}

TEST_CASE("upload_batch: many copies in one call land like uploads, in stream order with kernels") {
    auto gpu = gpu_backend();
    constexpr int kCopies = 10;
    std::mt19937 rng(43);
    std::vector<std::vector<uint8_t>> src(kCopies);
    std::vector<kernels::Backend::Upload> ups;
    auto *dst = static_cast<uint8_t *>(gpu->alloc(kCopies * 8192));
    REQUIRE(dst);
    for (int i = 0; i < kCopies; ++i) {
        src[i].resize(1000 + 700 * static_cast<size_t>(i));  // sizes differ, none a multiple of 256
        for (auto &b : src[i]) b = static_cast<uint8_t>(rng());
        ups.push_back({dst + i * 8192, src[i].data(), src[i].size()});
    }
    REQUIRE(gpu->upload_batch(ups.data(), ups.size()) == kernels::Status::ok);
    REQUIRE(gpu->upload_batch(ups.data(), 0) == kernels::Status::ok);
    for (int i = 0; i < kCopies; ++i) {
        std::vector<uint8_t> back(src[i].size());
        REQUIRE(gpu->download(back.data(), dst + i * 8192, back.size()) == kernels::Status::ok);
        CHECK(back == src[i]);
    }
    gpu->free(dst);
}

TEST_CASE("graphs: a recorded rms_norm + rope + add runs as one graph, updated for a new position") {
    auto gpu = gpu_backend();
    auto cpu = kernels::make_backend("cpu");
    CHECK(cpu->begin_graph() == kernels::Status::unsupported);  // the CPU backend has none
    std::mt19937 rng(41);
    const int64_t n_head = 4, hd = 64, n = n_head * hd;
    const auto x0 = normal(static_cast<size_t>(n), rng), w = normal(static_cast<size_t>(n), rng),
               r = normal(static_cast<size_t>(n), rng);
    float *dw = to_device(*gpu, w), *dr = to_device(*gpu, r);
    const bool graphs = gpu->name() == "cuda";
    // Three tokens at different positions, the second and third updating the first one's graph;
    // the same graph key each time, as a decode layer uses.
    for (const int64_t pos : {7, 300, 301}) {
        CAPTURE(pos);
        std::vector<float> ref(static_cast<size_t>(n));
        REQUIRE(cpu->rms_norm(x0.data(), w.data(), ref.data(), 1, n, 1e-6f) == kernels::Status::ok);
        REQUIRE(cpu->rope(ref.data(), 1, n_head, hd, hd, pos, 1e4f, true, {}) == kernels::Status::ok);
        REQUIRE(cpu->add(ref.data(), r.data(), n) == kernels::Status::ok);
        float *dx = to_device(*gpu, x0);
        float *dy = to_device(*gpu, std::vector<float>(static_cast<size_t>(n), 0.0f));
        const auto issue = [&] {
            REQUIRE(gpu->rms_norm(dx, dw, dy, 1, n, 1e-6f) == kernels::Status::ok);
            REQUIRE(gpu->rope(dy, 1, n_head, hd, hd, pos, 1e4f, true, {}) == kernels::Status::ok);
            REQUIRE(gpu->add(dy, dr, n) == kernels::Status::ok);
        };
        if (gpu->begin_graph() == kernels::Status::ok) {
            issue();
            REQUIRE(gpu->end_graph(7) == kernels::Status::ok);
        } else {
            CHECK(!graphs);
            issue();
        }
        CHECK(nmse(from_device(*gpu, dy, static_cast<size_t>(n)), ref) < 1e-10);
        (void)from_device(*gpu, dx, static_cast<size_t>(n));
    }
    // A recording discarded after an error runs nothing; the stream works on.
    if (graphs) {
        float *dy = to_device(*gpu, std::vector<float>(static_cast<size_t>(n), 1.0f));
        REQUIRE(gpu->begin_graph() == kernels::Status::ok);
        REQUIRE(gpu->add(dy, dr, n) == kernels::Status::ok);
        REQUIRE(gpu->discard_graph() == kernels::Status::ok);
        const auto got = from_device(*gpu, dy, static_cast<size_t>(n));
        CHECK(std::all_of(got.begin(), got.end(), [](float v) { return v == 1.0f; }));
    }
    (void)from_device(*gpu, dw, static_cast<size_t>(n));
    (void)from_device(*gpu, dr, static_cast<size_t>(n));
}

int main(int argc, char **argv) {
    return gpu_test_main(argc, argv);
}
