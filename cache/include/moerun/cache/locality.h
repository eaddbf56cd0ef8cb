// Locality of expert routing in a trace, without simulating a particular cache policy.
//
// Two metrics of "Not All Models Suit Expert Offloading: On Local Routing Consistency of
// Mixture-of-Expert Models" (Liang et al., arXiv 2505.16056, code: github.com/ljcleo/moe-lrc),
// computed as that paper's code computes them, plus simple statistics:
//
//   SRP, Segment Routing best Performance, for a segment length m: every window of m consecutive
//   tokens of a sequence (sliding, one per start position; windows never cross a sequence) and
//   every layer is served by one fixed group of experts: the experts used at least j times in
//   the window. The group is scored against the real routing by F1, pooled over windows (and
//   layers): precision = hits / (m x group size), recall = hits / (m x top_k), where hits counts
//   the (token, expert) uses the group covers. SRP is the best F1 over the threshold j = 0..m.
//   1 means every segment uses one fixed set of top_k experts; low values mean routing changes
//   from token to token.
//
//   SCH, Segment Cache best Hit rate, for a segment length L and a cache size C: the hit rate of
//   a cache of C experts that knows the next L tokens: on a miss it evicts the resident expert
//   with the fewest uses among the current token and the L-1 after it (uses already served at
//   this token not counted), the least recently used one among equals. A stack algorithm
//   (Mattson et al. 1970) gives every C in one pass. As in moe-lrc: a use counts as a hit when
//   its stack depth before the token is < C, and a first use counts as a hit while the cache
//   still has a free slot (the cache starts with the experts in order of first use), so a cache
//   that holds every expert scores 1; each sequence starts empty; the result is the mean over
//   sequences of each sequence's hit rate.
//
//   Consecutive-token overlap: |experts(t) ∩ experts(t+1)| / top_k, per layer, averaged over the
//   pairs of consecutive tokens of the same sequence (random routing: top_k / n_experts).
//
//   Popularity: uses per (layer, expert); per layer the share of uses taken by the top 10% of
//   experts (at least one), the Gini coefficient of the counts (0: uniform, -> 1: one expert takes
//   all) and the entropy normalised by log(n_experts) (1: uniform).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "moerun/cache/simulator.h"
#include "moerun/cache/trace.h"

namespace moerun::cache {

struct SrpResult {
    uint32_t segment_len = 0;
    uint64_t windows = 0;    // windows per layer (sum over sequences of max(0, n_tokens - m + 1))
    double srp = 0;          // best F1 over all layers with one threshold (0 when no window)
    uint32_t threshold = 0;  // the best j: an expert is in the group when used >= j times
    double precision = 0, recall = 0;
    double group_size = 0;                  // mean experts in the group, per window and layer
    std::vector<double> layer_srp;          // [n_layers] best F1 of each layer (own threshold)
    std::vector<uint32_t> layer_threshold;  // [n_layers]
};

// Throws std::invalid_argument when segment_len is 0 or the trace's arrays do not match its shape.
SrpResult segment_routing_best_performance(const Trace &trace, uint32_t segment_len);

struct SchResult {
    uint32_t segment_len = 0;
    Partitioning partitioning = Partitioning::per_layer;
    std::vector<uint32_t> capacities;      // as asked: per-layer slots, or slots of one global cache
    std::vector<double> hit_rate;          // [capacities] mean over sequences
    std::vector<double> seq_min, seq_max;  // [capacities] spread over the sequences
    uint64_t sequences = 0;                // sequences with at least one token
};

// Per-layer: one cache of C slots per layer (a layer's "token" is its top_k uses). Global: one
// cache of C slots over every (layer, expert); a token is the uses of all layers in layer order.
// Throws std::invalid_argument when segment_len is 0, a capacity is 0 or the trace is malformed.
SchResult segment_cache_best_hit_rate(const Trace &trace, uint32_t segment_len,
                                      std::span<const uint32_t> capacities, Partitioning partitioning);

struct PopularityResult {
    std::vector<uint64_t> counts;     // [n_layers][n_experts] uses
    std::vector<double> top10_share;  // [n_layers] share of the layer's uses by its top 10% experts
    std::vector<double> gini;         // [n_layers]
    std::vector<double> entropy;      // [n_layers] normalised entropy in [0, 1]
    std::vector<double> overlap;      // [n_layers] mean consecutive-token overlap
    uint64_t pairs = 0;               // consecutive-token pairs per layer
    double mean_overlap = 0;          // over layers
    double random_overlap = 0;        // top_k / n_experts
};

// Throws std::invalid_argument when the trace's arrays do not match its shape.
PopularityResult routing_popularity(const Trace &trace);

}  // namespace moerun::cache
