#include "moerun/cache/miss-cost.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>

namespace moerun::cache {

namespace {

void check(const TierBandwidths &bw) {
    if (!(bw.h2d > 0) || !(bw.cpu > 0) || !(bw.gpu > 0))
        throw std::invalid_argument("miss cost model: bandwidths must be positive (h2d " +
                                    std::to_string(bw.h2d) + ", cpu " + std::to_string(bw.cpu) + ", gpu " +
                                    std::to_string(bw.gpu) + ")");
}

}  // namespace

double copy_break_even_uses(const TierBandwidths &bw) {
    check(bw);
    const double per_byte_gain = 1.0 / bw.cpu - 1.0 / bw.gpu;
    if (per_byte_gain <= 0) return std::numeric_limits<double>::infinity();
    return (1.0 / bw.h2d) / per_byte_gain;
}

MissPlan plan_misses(const TierBandwidths &bw, double gpu_resident_seconds,
                     std::span<const MissCandidate> misses) {
    const double break_even = copy_break_even_uses(bw);
    MissPlan plan;
    plan.action.assign(misses.size(), MissAction::cpu);
    plan.gpu_seconds = std::max(0.0, gpu_resident_seconds);
    const auto t_cpu = [&](size_t i) { return double(misses[i].bytes) / bw.cpu; };
    const auto t_gpu_side = [&](size_t i) {
        return double(misses[i].bytes) / bw.h2d + double(misses[i].bytes) / bw.gpu;
    };
    // 1. Reuse: copy what will be used often enough to pay back the transfer.
    for (size_t i = 0; i < misses.size(); ++i) {
        if (misses[i].expected_uses > break_even) {
            plan.action[i] = MissAction::copy;
            plan.gpu_seconds += t_gpu_side(i);
        } else {
            plan.cpu_seconds += t_cpu(i);
        }
    }
    // 2. Balance: while the CPU side finishes last, move its largest miss to the GPU if that
    //    shortens the layer.
    std::vector<size_t> on_cpu;
    for (size_t i = 0; i < misses.size(); ++i)
        if (plan.action[i] == MissAction::cpu) on_cpu.push_back(i);
    std::stable_sort(on_cpu.begin(), on_cpu.end(), [&](size_t a, size_t b) { return t_cpu(a) > t_cpu(b); });
    for (const size_t i : on_cpu) {
        if (plan.cpu_seconds <= plan.gpu_seconds) break;
        const double cpu_after = plan.cpu_seconds - t_cpu(i), gpu_after = plan.gpu_seconds + t_gpu_side(i);
        if (std::max(cpu_after, gpu_after) >= plan.layer_seconds()) continue;
        plan.action[i] = MissAction::copy;
        plan.cpu_seconds = cpu_after;
        plan.gpu_seconds = gpu_after;
    }
    return plan;
}

ReuseEstimator::ReuseEstimator(uint32_t n_layers, uint32_t n_experts, double half_life)
    : n_experts_(n_experts),
      decay_(std::pow(0.5, 1.0 / std::max(half_life, 1e-9))),
      p_(size_t{n_layers} * n_experts, 0.0) {
    if (n_layers == 0 || n_experts == 0) throw std::invalid_argument("ReuseEstimator: empty model shape");
}

void ReuseEstimator::observe(uint32_t layer, std::span<const uint16_t> experts) {
    const size_t base = size_t{layer} * n_experts_;
    if (base >= p_.size()) throw std::out_of_range("ReuseEstimator: layer " + std::to_string(layer));
    for (uint32_t e = 0; e < n_experts_; ++e) p_[base + e] *= decay_;
    for (const uint16_t e : experts) {
        if (e >= n_experts_) throw std::out_of_range("ReuseEstimator: expert " + std::to_string(e));
        p_[base + e] += 1.0 - decay_;
    }
}

double ReuseEstimator::use_probability(uint32_t layer, uint16_t expert) const {
    const size_t i = size_t{layer} * n_experts_ + expert;
    if (expert >= n_experts_ || i >= p_.size()) throw std::out_of_range("ReuseEstimator: no such expert");
    return p_[i];
}

double ReuseEstimator::expected_uses(uint32_t layer, uint16_t expert, double residency_tokens) const {
    return 1.0 + use_probability(layer, expert) * std::max(0.0, residency_tokens);
}

}  // namespace moerun::cache
