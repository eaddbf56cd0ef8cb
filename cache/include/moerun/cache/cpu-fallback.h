// CPU fallback of the device pass (decode; runtime/src/forward-device.cpp): a layer's slot miss is either
// copied into a device slot and run there, or run on the CPU cores from host memory while the device runs the
// resident experts, its output row then uploaded and summed on the device (Fiddler). Which, per miss:
//   off     every miss is copied (the default: results identical at every budget);
//   always  every decode miss runs on the CPU (prefill still copies: a batch reuses each expert);
//   auto    plan_misses, with bandwidths measured at start-up and each expert's expected
//           uses before eviction from its recent routing (ReuseEstimator) and how long a
//           slot entry survives (the slots over the copies per token, a running mean).
// On the CPU backend the rows are bit-identical either way; on CUDA a CPU-computed row rounds
// differently from the GPU's (the CPU quantizes activations to 8 bits as llama.cpp does), so with
// fallback on, tokens can depend on the budget.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "moerun/cache/device-slots.h"
#include "moerun/cache/miss-cost.h"
#include "moerun/kernels/backend.h"
#include "moerun/kernels/cpu/thread-pool.h"

namespace moerun::cache {

enum class FallbackMode : uint8_t { off, automatic, always };

// "off", "auto", "always"; throws std::invalid_argument naming the accepted values.
FallbackMode parse_fallback(const std::string &name);

// One expert's weights for a measurement: its types and shape, and its bytes in slot layout.
struct ExpertSample {
    quant::Type gate_type, up_type, down_type;
    int64_t n_embd = 0, n_ff = 0;
    SlotLayout layout;
    std::vector<uint8_t> bytes;  // [layout.bytes()]: gate, up, down at the layout's offsets
    // Host experts of the same shape to time the CPU over, one pass, each once (distinct experts
    // larger than the CPU's caches together, as decode meets them); empty: `bytes`, repeated,
    // which stays in cache and flatters the CPU.
    std::vector<ExpertView> cpu_views;
};

// Times, on this machine: copying the sample to the device from page-locked host memory (when the
// backend page-locks), the device's expert FFN of one token over it, and the CPU's (over
// cpu_views when given). `dev_x`,
// `dev_y`, `dev_scratch` are device workspaces for expert_ffn of one expert; a device buffer of
// the sample's size is allocated and freed here. Throws std::runtime_error when a call fails.
TierBandwidths measure_tiers(kernels::Backend &be, kernels::cpu::ThreadPool &pool, const ExpertSample &sample,
                             float *dev_x, float *dev_y, float *dev_scratch);

// Decides, per decode layer, which misses run on the CPU.
class MissPlanner {
  public:
    MissPlanner(FallbackMode mode, const TierBandwidths &bw, uint32_t n_layers, uint32_t n_experts,
                uint32_t n_slots);
    FallbackMode mode() const { return mode_; }
    const TierBandwidths &bandwidths() const { return bw_; }
    // The routing of one decode token at a layer (every layer, hits included).
    void observe(uint32_t layer, std::span<const uint16_t> experts);
    // The copies into slots (demand and prefetch) of one whole decode token.
    void end_token(uint64_t copies);
    // to_cpu[i] = whether missing[i] (distinct experts of `layer`, `expert_bytes` each) runs on
    // the CPU; `resident_bytes`: the weights the device computes anyway at this layer.
    void plan(uint32_t layer, std::span<const uint16_t> missing, uint64_t expert_bytes,
              uint64_t resident_bytes, std::vector<uint8_t> &to_cpu);

  private:
    FallbackMode mode_;
    TierBandwidths bw_;
    ReuseEstimator reuse_;
    uint32_t n_slots_;
    double copies_per_token_ = 0;  // running mean (0 until the first token)
    std::vector<MissCandidate> cand_;
};

}  // namespace moerun::cache
