// The CPU fallback's planner and start-up measurement (cache/cpu-fallback.h).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "moerun/cache/cpu-fallback.h"
#include "moerun/kernels/backend.h"
#include "moerun/quant/quantize.h"
#include "moerun/quant/types.h"

using namespace moerun;
using namespace moerun::cache;

namespace {
constexpr double GB = 1e9;
constexpr uint64_t kExpert = 3 << 20;
}  // namespace

TEST_CASE("cpu fallback modes parse by name; others are refused with the accepted names") {
    CHECK(parse_fallback("off") == FallbackMode::off);
    CHECK(parse_fallback("auto") == FallbackMode::automatic);
    CHECK(parse_fallback("always") == FallbackMode::always);
    try {
        (void)parse_fallback("sometimes");
        FAIL("accepted");
    } catch (const std::invalid_argument &e) {
        CHECK(std::string(e.what()).find("expected off, auto or always") != std::string::npos);
    }
}

TEST_CASE("off copies every miss, always computes every miss on the CPU") {
    const TierBandwidths bw{25 * GB, 62 * GB, 2000 * GB};
    const uint16_t missing[] = {3, 7, 9};
    std::vector<uint8_t> to_cpu;
    MissPlanner off(FallbackMode::off, bw, 2, 16, 32);
    off.plan(0, missing, kExpert, 0, to_cpu);
    CHECK(to_cpu == std::vector<uint8_t>{0, 0, 0});
    MissPlanner always(FallbackMode::always, bw, 2, 16, 32);
    always.plan(1, missing, kExpert, 0, to_cpu);
    CHECK(to_cpu == std::vector<uint8_t>{1, 1, 1});
    always.plan(1, {}, kExpert, 0, to_cpu);
    CHECK(to_cpu.empty());
}

TEST_CASE("auto copies the experts the routing keeps using and computes one-off misses on the CPU") {
    // PCIe 4 against a 62 GB/s CPU: a copy pays after ~2.6 uses. With 64 slots and ~4 copies a
    // token, a new entry lives ~16 tokens: an expert used every other token is worth ~9 uses.
    const TierBandwidths bw{25 * GB, 62 * GB, 2000 * GB};
    MissPlanner p(FallbackMode::automatic, bw, 1, 16, 64);
    for (int t = 0; t < 64; ++t) {
        const uint16_t used[] = {1, static_cast<uint16_t>(t % 2 == 0 ? 2 : 3)};
        p.observe(0, used);
        p.end_token(4);
    }
    // The GPU side is long (many resident experts), so balancing moves nothing.
    const uint16_t missing[] = {1, 2, 12};
    std::vector<uint8_t> to_cpu;
    p.plan(0, missing, kExpert, 64 * kExpert, to_cpu);
    CHECK(to_cpu == std::vector<uint8_t>{0, 0, 1});
    // Copies are short-lived when every token copies many experts: residency 64 / 64 = 1 token,
    // so even expert 1 (used every token) is worth under 2 uses and stays on the CPU.
    for (int t = 0; t < 200; ++t) p.end_token(64);
    p.plan(0, missing, kExpert, 64 * kExpert, to_cpu);
    CHECK(to_cpu == std::vector<uint8_t>{1, 1, 1});
}

TEST_CASE("auto moves misses to the device when the CPU side would finish the layer last") {
    // No reuse at all (fresh planner), but nothing resident: the GPU is idle while the CPU works
    // through four experts; copying some of them shortens the layer.
    const TierBandwidths bw{25 * GB, 62 * GB, 2000 * GB};
    MissPlanner p(FallbackMode::automatic, bw, 1, 16, 64);
    const uint16_t missing[] = {4, 5, 6, 8};
    std::vector<uint8_t> to_cpu;
    p.plan(0, missing, kExpert, 0, to_cpu);
    int on_cpu = 0;
    for (const uint8_t c : to_cpu) on_cpu += c;
    CHECK(on_cpu > 0);
    CHECK(on_cpu < 4);
}

TEST_CASE("auto refuses bandwidths that are not positive") {
    CHECK_THROWS_AS(MissPlanner(FallbackMode::automatic, {0, 1, 1}, 1, 4, 4), std::invalid_argument);
    CHECK_NOTHROW(MissPlanner(FallbackMode::always, {0, 0, 0}, 1, 4, 4));
}

TEST_CASE("measure_tiers times a real expert on the CPU backend and returns positive bandwidths") {
    auto be = kernels::make_backend("cpu");
    kernels::cpu::ThreadPool pool(1);
    const int64_t E = 256, F = 512;
    ExpertSample s{quant::Type::Q4_K, quant::Type::Q4_K, quant::Type::Q6_K, E, F, {}, {}, {}};
    s.layout = {*quant::row_bytes(s.gate_type, E) * F, *quant::row_bytes(s.up_type, E) * F,
                *quant::row_bytes(s.down_type, F) * E};
    s.bytes.assign(s.layout.bytes(), 0);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0, 0.1f);
    std::vector<float> row(static_cast<size_t>(F));
    for (int64_t r = 0; r < F; ++r) {
        for (int64_t i = 0; i < E; ++i) row[static_cast<size_t>(i)] = nd(rng);
        quant::quantize_row(s.gate_type, row.data(), s.bytes.data() + r * *quant::row_bytes(s.gate_type, E),
                            E);
        quant::quantize_row(s.up_type, row.data(),
                            s.bytes.data() + s.layout.up_offset() + r * *quant::row_bytes(s.up_type, E), E);
    }
    for (int64_t r = 0; r < E; ++r) {
        for (auto &v : row) v = nd(rng);
        quant::quantize_row(s.down_type, row.data(),
                            s.bytes.data() + s.layout.down_offset() + r * *quant::row_bytes(s.down_type, F),
                            F);
    }
    std::vector<float> x(static_cast<size_t>(E)), y(static_cast<size_t>(E)), scratch(2 * F + E);
    const TierBandwidths bw = measure_tiers(*be, pool, s, x.data(), y.data(), scratch.data());
    CHECK(bw.h2d > 0);
    CHECK(bw.cpu > 0);
    CHECK(bw.gpu > 0);
    CHECK(std::isfinite(bw.h2d + bw.cpu + bw.gpu));
    // The device expert ran on real weights: its output is finite and not all zero.
    double sum = 0;
    for (const float v : y) sum += std::fabs(v);
    CHECK(std::isfinite(sum));
    CHECK(sum > 0);
    // The CPU timed over distinct host experts (here the sample's own bytes twice).
    const uint8_t *h = s.bytes.data();
    s.cpu_views.assign(2, ExpertView{h, h + s.layout.up_offset(), h + s.layout.down_offset()});
    const TierBandwidths bw2 = measure_tiers(*be, pool, s, x.data(), y.data(), scratch.data());
    CHECK(bw2.cpu > 0);
    CHECK(std::isfinite(bw2.cpu));
    s.bytes.resize(10);
    CHECK_THROWS_AS(measure_tiers(*be, pool, s, x.data(), y.data(), scratch.data()), std::invalid_argument);
}
