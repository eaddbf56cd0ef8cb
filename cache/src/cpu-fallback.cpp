// CPU fallback of the device pass: the start-up measurement and the per-layer miss planner.
#include "moerun/cache/cpu-fallback.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "moerun/kernels/cpu/device-order.h"

namespace moerun::cache {

FallbackMode parse_fallback(const std::string &name) {
    if (name == "off" || name.empty()) return FallbackMode::off;
    if (name == "auto") return FallbackMode::automatic;
    if (name == "always") return FallbackMode::always;
    throw std::invalid_argument("cpu fallback '" + name + "': expected off, auto or always");
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMinReps = 5;
constexpr double kMinSeconds = 0.005;

void check(kernels::Backend &be, kernels::Status st, const char *what) {
    if (st != kernels::Status::ok)
        throw std::runtime_error(std::string("measuring the CPU fallback's bandwidths: ") + what +
                                 " on the " + std::string(be.name()) + " backend failed: " + be.last_error());
}

double seconds(Clock::time_point t0) {
    return std::max(1e-9, std::chrono::duration<double>(Clock::now() - t0).count());
}

// Seconds per call of f: the fastest of at least kMinReps calls and kMinSeconds after a warm-up
// one (the fastest, because a busy machine only ever slows a call down).
template <class F>
double seconds_per(F &&f) {
    f();
    double best = 1e30;
    const auto start = Clock::now();
    for (int i = 0; i < kMinReps || seconds(start) < kMinSeconds; ++i) {
        const auto t0 = Clock::now();
        f();
        best = std::min(best, seconds(t0));
    }
    return best;
}

}  // namespace

TierBandwidths measure_tiers(kernels::Backend &be, kernels::cpu::ThreadPool &pool, const ExpertSample &s,
                             float *dev_x, float *dev_y, float *dev_scratch) {
    const uint64_t n = s.layout.bytes();
    if (s.bytes.size() < n) throw std::invalid_argument("measure_tiers: sample smaller than its layout");
    const int64_t E = s.n_embd, F = s.n_ff;
    void *dev = be.alloc(static_cast<size_t>(n));
    if (dev == nullptr)
        throw std::runtime_error("measuring the CPU fallback's bandwidths: cannot allocate " +
                                 std::to_string(n) + " bytes on the " + std::string(be.name()) +
                                 " backend: " + be.last_error());
    const bool locked = be.host_register(s.bytes.data(), static_cast<size_t>(n),
                                         kernels::Backend::HostAccess::read_only) == kernels::Status::ok;
    TierBandwidths bw;
    try {
        bw.h2d = double(n) / seconds_per([&] {
                     check(be, be.upload(dev, s.bytes.data(), static_cast<size_t>(n)), "upload");
                     check(be, be.synchronize(), "synchronize");
                 });
        // One token through the expert, on the device and on the CPU.
        std::vector<float> x(static_cast<size_t>(E)), g(static_cast<size_t>(F)), u(g.size()), d(x.size());
        for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * static_cast<float>(i % 17) - 0.08f;
        check(be, be.upload(dev_x, x.data(), x.size() * sizeof(float)), "upload");
        const auto *base = static_cast<const uint8_t *>(dev);
        const void *pg = base, *pu = base + s.layout.up_offset(), *pd = base + s.layout.down_offset();
        const float one = 1.0f;
        const kernels::Backend::ExpertFfn f{s.gate_type, s.up_type, s.down_type, &pg, &pu,
                                            &pd,         &one,      1,           E,   F};
        bw.gpu = double(n) / seconds_per([&] {
                     check(be, be.expert_ffn(f, dev_x, dev_y, dev_scratch), "expert_ffn");
                     check(be, be.synchronize(), "synchronize");
                 });
        // The host's way of computing the backend's rows (Backend::host_math).
        const auto cpu_ffn = [&](const ExpertView &w) {
            const kernels::cpu::HostExpert he{s.gate_type, s.up_type, s.down_type, w.gate,
                                              w.up,        w.down,    E,           F};
            kernels::cpu::host_expert_row(pool, be.host_math(), he, x.data(), g.data(), u.data(), d.data());
        };
        const uint8_t *h = s.bytes.data();
        const ExpertView own{h, h + s.layout.up_offset(), h + s.layout.down_offset()};
        if (s.cpu_views.empty()) {
            bw.cpu = double(n) / seconds_per([&] { cpu_ffn(own); });
        } else {
            // Each expert once (cold, as decode meets them): the median call.
            cpu_ffn(own);  // warm-up (threads, code)
            std::vector<double> t;
            for (const ExpertView &w : s.cpu_views) {
                const auto t0 = Clock::now();
                cpu_ffn(w);
                t.push_back(seconds(t0));
            }
            std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
            bw.cpu = double(n) / t[t.size() / 2];
        }
    } catch (...) {
        if (locked) (void)be.host_unregister(s.bytes.data());
        be.free(dev);
        throw;
    }
    if (locked) (void)be.host_unregister(s.bytes.data());
    be.free(dev);
    return bw;
}

MissPlanner::MissPlanner(FallbackMode mode, const TierBandwidths &bw, uint32_t n_layers, uint32_t n_experts,
                         uint32_t n_slots)
    : mode_(mode), bw_(bw), reuse_(n_layers, n_experts), n_slots_(n_slots) {
    if (mode_ == FallbackMode::automatic) (void)copy_break_even_uses(bw_);  // checks the bandwidths
}

void MissPlanner::observe(uint32_t layer, std::span<const uint16_t> experts) {
    reuse_.observe(layer, experts);
}

void MissPlanner::end_token(uint64_t copies) {
    constexpr double kWeight = 0.1;  // about the last ten tokens
    copies_per_token_ = copies_per_token_ == 0 ? double(copies)
                                               : (1 - kWeight) * copies_per_token_ + kWeight * double(copies);
}

void MissPlanner::plan(uint32_t layer, std::span<const uint16_t> missing, uint64_t expert_bytes,
                       uint64_t resident_bytes, std::vector<uint8_t> &to_cpu) {
    to_cpu.assign(missing.size(), mode_ == FallbackMode::always ? 1 : 0);
    if (mode_ != FallbackMode::automatic || missing.empty()) return;
    // A new slot entry survives about n_slots / (copies per token) tokens.
    const double residency = double(n_slots_) / std::max(1.0, copies_per_token_);
    cand_.clear();
    for (const uint16_t e : missing)
        cand_.push_back({expert_bytes, reuse_.expected_uses(layer, e, residency)});
    const MissPlan p = plan_misses(bw_, double(resident_bytes) / bw_.gpu, cand_);
    for (size_t i = 0; i < missing.size(); ++i) to_cpu[i] = p.action[i] == MissAction::cpu ? 1 : 0;
}

}  // namespace moerun::cache
