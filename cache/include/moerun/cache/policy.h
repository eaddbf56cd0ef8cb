// Eviction policies: one interface, used by the runtime's expert cache and by `moerun profile`.
//
// A policy manages one cache partition (one layer's slots, or every slot of the model). The
// cache owns residency and capacity; the policy is told every event and names the victim when
// the partition is full. Time is the routing clock of the trace or of the run:
//   now = step * n_layers + layer
// where a step is one token (decode) or one token of a prefill batch. Every access of a step at
// a layer carries the same `now`; accesses of one (step, layer) are told in the order the cache
// serves them. Policies never allocate after construction (the decode path must not allocate).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moerun/cache/expert-id.h"

namespace moerun::cache {

// Which resident entries the policy may evict (the cache pins the experts of the layer that is
// computing). A non-owning callable reference: no allocation, no std::function.
struct Evictable {
    bool (*fn)(const void *ctx, ExpertId id) = nullptr;
    const void *ctx = nullptr;
    bool operator()(ExpertId id) const { return fn == nullptr || fn(ctx, id); }
};

// The known future of a routing sequence, for Belady's policy: per step and layer, the selected
// experts. Built from a trace (profile replay, or a run driven by --routing-trace).
class FutureTrace {
  public:
    FutureTrace(uint32_t n_layers, uint32_t n_experts);
    // Appends one step: experts[layer] lists the experts selected at that layer.
    void push_step(std::span<const std::span<const uint16_t>> experts_per_layer);
    // The next time > now at which `id` is used, or UINT64_MAX when never again.
    uint64_t next_use(ExpertId id, uint64_t now) const;
    uint32_t n_layers() const;
    uint32_t n_experts() const;
    uint64_t n_steps() const;

  private:
    uint32_t n_layers_ = 0, n_experts_ = 0;
    uint64_t n_steps_ = 0;
    // Per (layer, expert): the sorted times it is used.
    std::vector<std::vector<uint64_t>> uses_;
    // Per (layer, expert): where the last next_use answer was found. Replays ask with a rising
    // `now`, so the answer is usually there or just after it; otherwise a binary search. (Makes
    // next_use unsafe to call from several threads at once.)
    mutable std::vector<uint32_t> cursor_;
};

struct PolicyParams {
    uint32_t capacity = 0;                // entries in this partition (>= 1)
    uint32_t n_layers = 1;                // of the model (for the clock)
    uint32_t n_experts = 1;               // per layer
    uint32_t top_k = 1;                   // experts selected per token and layer
    uint32_t segment_len = 8;             // segment policy: tokens per segment
    uint32_t lfu_half_life = 64;          // LFU: counts halve every this many steps
    double slru_protected = 0.5;          // SLRU: share of capacity in the protected segment
    const FutureTrace *future = nullptr;  // Belady: required
};

class Policy {
  public:
    virtual ~Policy() = default;
    virtual std::string_view name() const = 0;
    // A resident entry was used (hit), at time now.
    virtual void on_hit(ExpertId id, uint64_t now) = 0;
    // An entry became resident: after a demand miss (prefetch=false; it is being used at now) or
    // by a prefetch (prefetch=true; not used yet).
    virtual void on_insert(ExpertId id, uint64_t now, bool prefetch) = 0;
    // The entry left the partition (chosen by victim() or dropped by the cache).
    virtual void on_evict(ExpertId id) = 0;
    // The entry to evict among the resident, evictable ones, or nullopt when none is evictable.
    virtual std::optional<ExpertId> victim(Evictable evictable, uint64_t now) = 0;
};

// Names accepted by make_policy: "lru", "slru", "lfu", "segment", "least-stale", "belady".
std::span<const std::string_view> policy_names();
// Throws std::invalid_argument naming the policy and the accepted names, or a missing future
// for "belady".
std::unique_ptr<Policy> make_policy(std::string_view name, const PolicyParams &params);

}  // namespace moerun::cache
