// Conformance of the CUDA RMSNorm, SwiGLU, router top-k and RoPE against the CPU backend (same
// inputs, normalised error bound, NaN/inf checks, guard regions). Exits 77 (ctest: skipped) when
// this build or machine has no usable CUDA device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "gpu-test-main.h"
#include "moerun/kernels/backend.h"
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
    auto gpu = kernels::make_backend("cuda");
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

TEST_CASE("cuda router_topk picks the CPU backend's experts with its weights") {
    auto gpu = kernels::make_backend("cuda");
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
                const size_t no = static_cast<size_t>(n_tok * k);
                std::vector<int32_t> ids(no);
                std::vector<float> w(no);
                REQUIRE(cpu->router_topk(logits.data(), n_tok, n_expert, k, renorm, ids.data(), w.data()) ==
                        kernels::Status::ok);
                float *dl = to_device(*gpu, logits), *dw = to_device(*gpu, std::vector<float>(no));
                int32_t *di = to_device(*gpu, std::vector<int32_t>(no));
                REQUIRE(gpu->router_topk(dl, n_tok, n_expert, k, renorm, di, dw) == kernels::Status::ok);
                CHECK(from_device(*gpu, di, no) == ids);
                CHECK(nmse(from_device(*gpu, dw, no), w) < 1e-10);
                from_device(*gpu, dl, logits.size());
            }
        }
    }
}

TEST_CASE("cuda rope matches the CPU backend: normal and NeoX, partial rotation, linear and YaRN scaling") {
    auto gpu = kernels::make_backend("cuda");
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
    auto gpu = kernels::make_backend("cuda");
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
            CHECK(nmse(from_device(*gpu, dy, E), ref) < 5e-4);
            from_device(*gpu, dx, x.size());
            gpu->free(ds);
            for (auto *v : {&dg, &du, &dd})
                for (const void *p : *v) gpu->free(const_cast<void *>(p));
        }
    }
}

int main(int argc, char **argv) {
    return gpu_test_main(argc, argv);
}
