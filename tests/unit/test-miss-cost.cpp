// The GPU machine's miss cost model (cache/miss-cost.h): the break-even reuse of a copy, the
// per-layer plan, and the reuse estimate.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "moerun/cache/miss-cost.h"

using namespace moerun::cache;

namespace {
constexpr double GB = 1e9;
constexpr uint64_t kExpert = 3 << 20;  // a 3 MiB expert
}  // namespace

TEST_CASE("a copy pays after ~2.5 uses at PCIe 4 and ~1.2 at PCIe 5 against a 62 GB/s CPU") {
    const double gpu = 2000 * GB;  // HBM: the device product costs 3% of the CPU's
    // (1 / 25) / (1 / 62 - 1 / 2000) = 2.56 and (1 / 50) / (...) = 1.28: "about 2.5 and 1.2"
    CHECK(copy_break_even_uses({25 * GB, 62 * GB, gpu}) == doctest::Approx(2.559).epsilon(0.001));
    CHECK(copy_break_even_uses({50 * GB, 62 * GB, gpu}) == doctest::Approx(1.280).epsilon(0.001));
    // A CPU no slower than the GPU: copying never pays.
    CHECK(std::isinf(copy_break_even_uses({25 * GB, 100 * GB, 100 * GB})));
    CHECK_THROWS_AS(copy_break_even_uses({0, 62 * GB, gpu}), std::invalid_argument);
    CHECK_THROWS_AS(copy_break_even_uses({25 * GB, -1, gpu}), std::invalid_argument);
}

TEST_CASE("plan_misses copies reused experts and computes one-off misses on the CPU") {
    const TierBandwidths bw{25 * GB, 62 * GB, 2000 * GB};
    // The GPU is busy long enough that the CPU side never finishes last: only reuse decides.
    const std::vector<MissCandidate> m = {{kExpert, 1.0}, {kExpert, 4.0}, {kExpert, 2.0}, {kExpert, 2.6}};
    const MissPlan p = plan_misses(bw, 1.0, m);
    REQUIRE(p.action.size() == 4);
    CHECK(p.action[0] == MissAction::cpu);
    CHECK(p.action[1] == MissAction::copy);
    CHECK(p.action[2] == MissAction::cpu);
    CHECK(p.action[3] == MissAction::copy);
    CHECK(p.cpu_seconds == doctest::Approx(2.0 * kExpert / bw.cpu));
    CHECK(p.gpu_seconds == doctest::Approx(1.0 + 2.0 * (kExpert / bw.h2d + kExpert / bw.gpu)));
}

TEST_CASE("plan_misses moves CPU misses to the GPU while the CPU side would finish last") {
    const TierBandwidths bw{25 * GB, 62 * GB, 2000 * GB};
    // Eight one-off misses, no resident work: all on the CPU would take 8 t_cpu; the balanced plan
    // splits them so that neither side is idle for long, and is never slower than all-CPU.
    const std::vector<MissCandidate> m(8, MissCandidate{kExpert, 1.0});
    const MissPlan p = plan_misses(bw, 0.0, m);
    int copies = 0;
    for (const auto a : p.action) copies += a == MissAction::copy;
    const double t_cpu = double(kExpert) / bw.cpu,
                 t_gpu = double(kExpert) / bw.h2d + double(kExpert) / bw.gpu;
    CHECK(copies > 0);
    CHECK(copies < 8);
    CHECK(p.layer_seconds() < 8 * t_cpu);
    CHECK(p.cpu_seconds == doctest::Approx((8 - copies) * t_cpu));
    CHECK(p.gpu_seconds == doctest::Approx(copies * t_gpu));
    // One more copy or one fewer would not be faster.
    CHECK(std::max((8 - copies - 1) * t_cpu, (copies + 1) * t_gpu) >= p.layer_seconds() - 1e-12);
    CHECK(std::max((8 - copies + 1) * t_cpu, (copies - 1) * t_gpu) >= p.layer_seconds() - 1e-12);
    // With a long resident GPU phase, the same misses all stay on the CPU.
    const MissPlan busy = plan_misses(bw, 1.0, m);
    for (const auto a : busy.action) CHECK(a == MissAction::cpu);
    // No misses: nothing to decide.
    CHECK(plan_misses(bw, 0.5, {}).layer_seconds() == doctest::Approx(0.5));
}

TEST_CASE("ReuseEstimator follows each expert's recent use frequency") {
    ReuseEstimator r(2, 8, 8);
    const std::vector<uint16_t> always = {3}, both = {3, 5};
    for (int t = 0; t < 200; ++t) r.observe(1, t % 2 == 0 ? both : always);
    CHECK(r.use_probability(1, 3) == doctest::Approx(1.0).epsilon(0.01));
    CHECK(r.use_probability(1, 5) == doctest::Approx(0.5).epsilon(0.05));
    CHECK(r.use_probability(1, 0) == 0.0);
    CHECK(r.use_probability(0, 3) == 0.0);  // layers are separate
    CHECK(r.expected_uses(1, 5, 10) == doctest::Approx(6.0).epsilon(0.05));
    CHECK(r.expected_uses(1, 0, 10) == 1.0);
    // An expert that stops being used fades with the half-life.
    for (int t = 0; t < 8; ++t) r.observe(1, always);
    CHECK(r.use_probability(1, 5) == doctest::Approx(0.25).epsilon(0.1));
    CHECK_THROWS_AS(r.observe(2, always), std::out_of_range);
    const std::vector<uint16_t> bad = {8};
    CHECK_THROWS_AS(r.observe(0, bad), std::out_of_range);
    CHECK_THROWS_AS(ReuseEstimator(0, 8), std::invalid_argument);
}
