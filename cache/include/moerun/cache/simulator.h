// Trace replay: runs a routing trace through an eviction policy exactly as the runtime's expert
// cache serves it, and counts hits, misses and bytes moved. Used by `moerun profile` and tests.
//
// For each token (step) in order, for each layer in order: the top_k experts of (step, layer)
// are pinned (not evictable) while they are acquired; each is then served in rank order: a
// resident one is a hit (on_hit), a missing one evicts the policy's victim if its partition is
// full and is inserted (on_insert, prefetch=false). After the layer is served, an optional
// Prefetcher names experts for a later layer; those not resident are inserted with
// on_insert(prefetch=true) (evicting if needed; the predicted set is pinned while it is loaded).
//
// The clock is now = step * n_layers + layer, where step counts the replayed tokens (skipped
// prefill tokens take no step).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "moerun/cache/policy.h"
#include "moerun/cache/trace.h"

namespace moerun::cache {

enum class Partitioning {
    per_layer,  // each layer has `capacity` slots and its own policy instance
    global,     // one partition of `capacity` slots shared by all layers
};

// Predicts the experts of a later layer after (step, layer) is served: the simulator asks for
// the layer `distance` ticks later on the clock (layer + distance, wrapping into the next
// replayed token past the last layer; nothing past the end of the replay). fn gets the target
// token's index in the Trace and the target layer, writes at most out.size() expert ids into out
// and returns how many it wrote. A plain function pointer and context, like Evictable.
// A predictor that learns from the routing so far sets observe: it is told every served (token,
// layer), in clock order, before fn is asked about the position `distance` later.
struct Prefetcher {
    uint32_t distance = 1;  // >= 1
    size_t (*fn)(void *ctx, uint64_t token, uint32_t layer, std::span<uint16_t> out) = nullptr;
    void *ctx = nullptr;
    void (*observe)(void *ctx, uint64_t token, uint32_t layer) = nullptr;  // optional
    explicit operator bool() const { return fn != nullptr; }
};

struct SimOptions {
    std::string policy = "lru";
    uint32_t capacity = 16;  // slots per partition (>= top_k)
    Partitioning partitioning = Partitioning::per_layer;
    bool skip_prefill = false;       // replay only decoded tokens
    bool reset_on_sequence = false;  // empty the cache at each sequence start (default: stays warm)
    // Tuning knobs (segment_len, lfu_half_life, slru_protected). capacity, n_layers, n_experts,
    // top_k and future are filled in by the simulator.
    PolicyParams params;
    // [n_layers] bytes of one expert per layer; empty: the trace's shape.expert_bytes (0 if unknown).
    std::vector<uint64_t> expert_bytes;
    Prefetcher prefetcher;  // optional
};

struct SimCounts {
    uint64_t accesses = 0, hits = 0, misses = 0;
    uint64_t cold_misses = 0;  // first use of the expert in the replay (unavoidable)
    uint64_t evictions = 0;
    uint64_t prefetches_issued = 0;  // prefetch inserts
    uint64_t prefetches_used = 0;    // prefetched entries later hit before leaving the cache
    uint64_t prefetches_wasted = 0;  // prefetched entries evicted (or reset) before any use
    uint64_t bytes_moved = 0;        // (misses + prefetch inserts) x expert bytes of the layer
    double hit_rate() const { return accesses ? double(hits) / double(accesses) : 0.0; }
};

struct SimResult {
    std::string policy;
    uint32_t capacity = 0;
    Partitioning partitioning = Partitioning::per_layer;
    uint64_t tokens = 0;  // replayed tokens
    SimCounts total;
    std::vector<SimCounts> per_layer;  // [n_layers]
    double hit_rate() const { return total.hit_rate(); }
    double misses_per_token() const { return tokens ? double(total.misses) / double(tokens) : 0.0; }
    double bytes_per_token() const { return tokens ? double(total.bytes_moved) / double(tokens) : 0.0; }
};

// Throws std::invalid_argument for an unknown policy or bad parameters, a capacity below top_k,
// or a trace whose arrays do not match its shape.
SimResult simulate(const Trace &trace, const SimOptions &options);

}  // namespace moerun::cache
