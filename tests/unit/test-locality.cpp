// Locality metrics (SRP, SCH, overlap, popularity) against values computed by hand on tiny
// traces; the derivations are in the comments.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "moerun/cache/locality.h"

using moerun::cache::Partitioning;
using moerun::cache::Trace;

namespace {

// One layer; seqs[s][t] lists the experts of token t of sequence s (top_k each).
Trace one_layer(uint32_t n_experts, const std::vector<std::vector<std::vector<uint16_t>>> &seqs) {
    Trace tr;
    tr.shape.n_layers = 1;
    tr.shape.n_experts = n_experts;
    tr.shape.top_k = uint32_t(seqs.at(0).at(0).size());
    for (uint32_t s = 0; s < seqs.size(); ++s) {
        tr.sequences.push_back({s, 0, 0, tr.n_tokens(), seqs[s].size()});
        for (const auto &tok : seqs[s]) {
            tr.token_ids.push_back(-1);
            tr.prefill.push_back(0);
            tr.experts.insert(tr.experts.end(), tok.begin(), tok.end());
        }
    }
    return tr;
}

Trace refs(uint32_t n_experts, const std::vector<uint16_t> &r) {
    std::vector<std::vector<uint16_t>> toks;
    for (uint16_t e : r) toks.push_back({e});
    return one_layer(n_experts, {toks});
}

}  // namespace

TEST_CASE("SRP: sliding windows, best threshold") {
    // Experts 0 0 1 1, m = 2: windows {0,0} {0,1} {1,1}. Counts per (window, expert):
    // c=2 twice, c=1 twice, c=0 eight times; uses = m * top_k * windows = 6.
    //   j=0: hits 6, group 12, F1 = 12 / (24 + 6) = 0.4
    //   j=1: hits 6, group 4,  F1 = 12 / (8 + 6)  = 6/7  <- best
    //   j=2: hits 4, group 2,  F1 = 8 / (4 + 6)   = 0.8
    const Trace t = refs(4, {0, 0, 1, 1});
    const auto r = moerun::cache::segment_routing_best_performance(t, 2);
    CHECK(r.windows == 3);
    CHECK(r.srp == doctest::Approx(6.0 / 7.0));
    CHECK(r.threshold == 1);
    CHECK(r.precision == doctest::Approx(0.75));
    CHECK(r.recall == doctest::Approx(1.0));
    CHECK(r.group_size == doctest::Approx(4.0 / 3.0));
    CHECK(r.layer_srp.at(0) == doctest::Approx(6.0 / 7.0));

    // One token per segment: the group is the token's own experts.
    CHECK(moerun::cache::segment_routing_best_performance(t, 1).srp == doctest::Approx(1.0));
    // No window fits: 0.
    const auto none = moerun::cache::segment_routing_best_performance(t, 5);
    CHECK(none.windows == 0);
    CHECK(none.srp == 0.0);
    CHECK_THROWS_AS(moerun::cache::segment_routing_best_performance(t, 0), std::invalid_argument);
}

TEST_CASE("SRP: windows do not cross sequences") {
    // Two sequences 0 0 | 1 1: windows {0,0} and {1,1} only; j = 1 and j = 2 both give precision
    // and recall 1 (ties go to the smallest j).
    const Trace t = one_layer(4, {{{0}, {0}}, {{1}, {1}}});
    const auto r = moerun::cache::segment_routing_best_performance(t, 2);
    CHECK(r.windows == 2);
    CHECK(r.srp == doctest::Approx(1.0));
    CHECK(r.threshold == 1);
}

TEST_CASE("SCH: future knowledge of L tokens against recency") {
    // Experts 1 0 2 1, L = 4 (the whole future): before token 2 the stack is [0 1]; 0 has no
    // further use, 1 has one, so 0 is carried below 1: [2 1 0]. Depths: 0 (first, free slot),
    // 1 (first), 2 (first), 1 -> hits at C=1: 1/4, C=2: 3/4, C=3: 4/4.
    const Trace t = refs(3, {1, 0, 2, 1});
    const std::vector<uint32_t> caps{1, 2, 3};
    const auto r = moerun::cache::segment_cache_best_hit_rate(t, 4, caps, Partitioning::per_layer);
    REQUIRE(r.hit_rate.size() == 3);
    CHECK(r.hit_rate[0] == doctest::Approx(0.25));
    CHECK(r.hit_rate[1] == doctest::Approx(0.75));
    CHECK(r.hit_rate[2] == doctest::Approx(1.0));
    CHECK(r.sequences == 1);

    // L = 1 knows only the current token: ties on future uses go to recency, as LRU: the last
    // use of 1 is at depth 2, a miss at C=2 (2/4).
    const auto lru = moerun::cache::segment_cache_best_hit_rate(t, 1, caps, Partitioning::per_layer);
    CHECK(lru.hit_rate[1] == doctest::Approx(0.5));

    // One layer: the global cache is the per-layer one.
    const auto g = moerun::cache::segment_cache_best_hit_rate(t, 4, caps, Partitioning::global);
    CHECK(g.hit_rate[1] == doctest::Approx(0.75));
    CHECK_THROWS_AS(moerun::cache::segment_cache_best_hit_rate(t, 0, caps, Partitioning::per_layer),
                    std::invalid_argument);
}

TEST_CASE("SCH: LRU stack distances when L = 1, per-sequence mean") {
    // 0 1 0 2 0 1: depths 0 1 1 2 1 2 -> C=1: 1/6, C=2: 4/6, C=3: 6/6. A second sequence 0 0:
    // depths 0 0 -> 1 at every C. SCH is the mean of the two sequences' rates.
    const Trace t = one_layer(3, {{{0}, {1}, {0}, {2}, {0}, {1}}, {{0}, {0}}});
    const std::vector<uint32_t> caps{1, 2, 3};
    const auto r = moerun::cache::segment_cache_best_hit_rate(t, 1, caps, Partitioning::per_layer);
    CHECK(r.hit_rate[0] == doctest::Approx((1.0 / 6 + 1.0) / 2));
    CHECK(r.hit_rate[1] == doctest::Approx((4.0 / 6 + 1.0) / 2));
    CHECK(r.seq_min[0] == doctest::Approx(1.0 / 6));
    CHECK(r.seq_max[0] == doctest::Approx(1.0));
}

TEST_CASE("popularity and consecutive-token overlap") {
    // Sequence A: {0,1} {0,2} {3,1}; sequence B: {0,1}. Counts 3 3 1 1 (8 uses).
    // Overlap: A has pairs sharing 1 and 0 experts; B none; the A->B boundary does not count:
    // 1 / (2 pairs x top_k 2) = 0.25. Top 10% of 4 experts = 1 expert: 3/8.
    // Gini of sorted 1 1 3 3: 2 (1+2+9+12) / (4 x 8) - 5/4 = 0.25.
    const Trace t = one_layer(4, {{{0, 1}, {0, 2}, {3, 1}}, {{0, 1}}});
    const auto p = moerun::cache::routing_popularity(t);
    CHECK(p.counts == std::vector<uint64_t>{3, 3, 1, 1});
    CHECK(p.pairs == 2);
    CHECK(p.overlap.at(0) == doctest::Approx(0.25));
    CHECK(p.mean_overlap == doctest::Approx(0.25));
    CHECK(p.random_overlap == doctest::Approx(0.5));
    CHECK(p.top10_share.at(0) == doctest::Approx(0.375));
    CHECK(p.gini.at(0) == doctest::Approx(0.25));
    const double h = -(2 * 0.375 * std::log(0.375) + 2 * 0.125 * std::log(0.125)) / std::log(4.0);
    CHECK(p.entropy.at(0) == doctest::Approx(h));
}

TEST_CASE("locality rejects malformed traces") {
    Trace t = refs(3, {0, 1, 2});
    t.experts[1] = 7;
    CHECK_THROWS_AS(moerun::cache::routing_popularity(t), std::invalid_argument);
    t.experts.pop_back();
    CHECK_THROWS_AS(moerun::cache::segment_routing_best_performance(t, 2), std::invalid_argument);
}
