// The miss cost model of a GPU machine (design.md, "Machines and tiers"): for each expert of a
// layer that is not in a device slot, run it on the CPU from host memory (moving a few KiB of
// activations) or copy its weights to the device and run it there (megabytes over PCIe, paid back
// only when the expert is used again before it is evicted).
//
// Per miss, with B the expert's weight bytes:
//   t_copy = B / h2d_bandwidth        t_gpu = B / gpu_bandwidth        t_cpu = B / cpu_bandwidth
// Copying pays when the expected uses U before eviction satisfy U * t_cpu > t_copy + U * t_gpu,
// i.e. U > t_copy / (t_cpu - t_gpu): at PCIe 4 (~25 GB/s) against a CPU reading weights at ~62 GB/s,
// about 2.5 uses; at PCIe 5 about 1.2. A layer's CPU misses run while the GPU computes the resident
// experts and the copies, so when the CPU side would finish last, the planner moves its largest
// misses to the GPU until it no longer does. Experts that are only on NVMe are read to host first
// (the same for both choices, so it does not change the decision).
//
// The bandwidths are measured at start-up (copy and product timings on the machine), not guessed.
// Pure arithmetic: unit-tested without a GPU; the CUDA forward pass is its user.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace moerun::cache {

struct TierBandwidths {
    double h2d = 0;  // host -> device copies of pinned memory, bytes/s
    double cpu = 0;  // CPU expert FFN for one token, bytes of weights per second
    double gpu = 0;  // device expert FFN for one token, bytes of weights per second
};

struct MissCandidate {
    uint64_t bytes = 0;          // the expert's weight bytes
    double expected_uses = 1.0;  // uses before eviction if copied, this one included (>= 1)
};

enum class MissAction : uint8_t { cpu, copy };

struct MissPlan {
    std::vector<MissAction> action;  // [candidates]
    double cpu_seconds = 0;          // the CPU side: its misses, one after the other
    double gpu_seconds = 0;          // the GPU side: resident experts, then copies and their products
    double layer_seconds() const { return cpu_seconds > gpu_seconds ? cpu_seconds : gpu_seconds; }
};

// Uses above which a copy pays for itself: t_copy / (t_cpu - t_gpu) (infinity when the CPU is not
// slower than the GPU). Throws std::invalid_argument for a bandwidth that is not positive.
double copy_break_even_uses(const TierBandwidths &bw);

// The decision for one layer's misses, given the seconds the GPU spends on its resident experts.
MissPlan plan_misses(const TierBandwidths &bw, double gpu_resident_seconds,
                     std::span<const MissCandidate> misses);

// Expected uses of an expert before eviction: 1 (this use) + p * residency, with p the expert's
// recent per-token use probability in its layer and residency the tokens a new slot entry
// survives (the partition's slots divided by its misses per token).
class ReuseEstimator {
  public:
    // half_life: tokens after which an observation counts half.
    ReuseEstimator(uint32_t n_layers, uint32_t n_experts, double half_life = 32);
    // One token's routing of a layer: experts used (distinct ids < n_experts).
    void observe(uint32_t layer, std::span<const uint16_t> experts);
    double use_probability(uint32_t layer, uint16_t expert) const;
    double expected_uses(uint32_t layer, uint16_t expert, double residency_tokens) const;

  private:
    uint32_t n_experts_;
    double decay_;
    std::vector<double> p_;  // [n_layers * n_experts]
};

}  // namespace moerun::cache
