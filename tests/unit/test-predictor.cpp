// Routing-path predictors: what they learn from hand-made routing (a deterministic layer chain,
// repetition, gaps), the evaluation's counting, argument checks, and the shipped OLMoE trace
// (skipped when ../shared/data is absent).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "moerun/cache/trace.h"
#include "moerun/predictor/evaluate.h"
#include "moerun/predictor/predictor.h"

using moerun::predictor::DistanceScore;
using moerun::predictor::evaluate;
using moerun::predictor::make_predictor;
using moerun::predictor::PredictorParams;
using moerun::predictor::Shape;

namespace {

// n_tokens tokens of L layers, top_k 2 of X experts. Layer 0 of each token is random; every later
// layer follows from the one before: e -> (3e + 1) mod X.
std::vector<uint16_t> chain_routing(const Shape &s, uint64_t n_tokens, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint16_t> ids;
    for (uint64_t t = 0; t < n_tokens; ++t) {
        uint16_t a = static_cast<uint16_t>(rng() % s.n_experts), b = a;
        while (b == a) b = static_cast<uint16_t>(rng() % s.n_experts);
        for (uint32_t l = 0; l < s.n_layers; ++l) {
            ids.push_back(a);
            ids.push_back(b);
            a = static_cast<uint16_t>((3u * a + 1u) % s.n_experts);
            b = static_cast<uint16_t>((3u * b + 1u) % s.n_experts);
        }
    }
    return ids;
}

}  // namespace

TEST_CASE("transition learns a layer chain that the previous token does not predict") {
    const Shape s{4, 32, 2};  // 3 of every 4 positions follow from the one before
    const auto ids = chain_routing(s, 2000, 1);
    const std::vector<uint32_t> d = {1, 2};
    auto tr = make_predictor("transition", s, {2, 0, 0.25f});
    auto pv = make_predictor("previous", s, {2, 0, 0.25f});
    const auto t = evaluate(*tr, s, ids, {}, d, false);
    const auto p = evaluate(*pv, s, ids, {}, d, false);
    MESSAGE("d=1 transition ", t[0].precision(), " previous ", p[0].precision(), "; d=2 transition ",
            t[1].precision());
    // Deterministic within a token: 3/4 of the d=1 targets and 2/4 of the d=2 targets.
    CHECK(t[0].precision() > 0.72);
    CHECK(t[1].precision() > 0.47);
    CHECK(p[0].precision() < 0.15);  // random tokens: about top_k / n_experts
}

TEST_CASE("previous predicts repeated routing exactly; counts of the evaluation") {
    const Shape s{3, 16, 4};
    std::vector<uint16_t> ids;
    for (int t = 0; t < 50; ++t)
        for (uint16_t l = 0; l < 3; ++l)
            for (uint16_t j = 0; j < 4; ++j) ids.push_back(static_cast<uint16_t>((l * 5 + j * 3) % 16));
    for (const char *name : {"previous", "transition"}) {
        auto p = make_predictor(name, s, {3, 64, 0.25f});
        const std::vector<uint32_t> d = {1, 3};
        const auto r = evaluate(*p, s, ids, std::vector<uint64_t>{0, 20}, d, false);
        // Per sequence: positions n_tokens * L, each predicting the one d later in the same sequence.
        CHECK(r[0].predictions == (20 * 3 - 1) + (30 * 3 - 1));
        CHECK(r[1].predictions == (20 * 3 - 3) + (30 * 3 - 3));
        CHECK(r[0].selected == r[0].predictions * 4);
        // Wrong only while nothing is known of the target layer: the first token's layers.
        CHECK(r[1].correct == r[1].selected);  // d = 3 = n_layers: the same layer, one token later
        CHECK(r[0].correct >= r[0].selected - 2 * 4);
    }
}

TEST_CASE("predictors: reset forgets, a gap is not learned across, ids are distinct") {
    const Shape s{4, 32, 2};
    auto tr = make_predictor("transition", s, {1, 0, 0.0f});  // no recency: transitions only
    const auto ids = chain_routing(s, 200, 2);
    evaluate(*tr, s, ids, {}, std::vector<uint32_t>{1}, false);
    tr->observe(0, std::vector<uint16_t>{5, 9});
    std::vector<uint16_t> out(8);
    const size_t n = tr->predict(1, out);
    REQUIRE(n >= 2);
    CHECK(out[0] != out[1]);
    const std::vector<uint16_t> want = {16, 28};  // 3*5+1, 3*9+1
    CHECK(std::find(want.begin(), want.end(), out[0]) != want.end());
    CHECK(std::find(want.begin(), want.end(), out[1]) != want.end());
    CHECK(tr->target_layer(1) == 1);

    tr->reset();
    CHECK(tr->predict(1, out) == 0);
    // After a reset, a transition 0 -> 2 (a gap) teaches nothing about layer 0 -> 1.
    tr->observe(0, std::vector<uint16_t>{1, 2});
    tr->observe(2, std::vector<uint16_t>{3, 4});
    tr->observe(0, std::vector<uint16_t>{1, 2});
    CHECK(tr->predict(1, out) == 0);
}

TEST_CASE("predictors: bad arguments name what was wrong") {
    const Shape s{4, 32, 2};
    CHECK_THROWS_WITH_AS(make_predictor("oracle", s), doctest::Contains("unknown predictor 'oracle'"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(make_predictor("previous", Shape{4, 2, 3}), doctest::Contains("top_k"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(make_predictor("transition", s, {5, 0, 0.25f}), doctest::Contains("max_distance"),
                         std::invalid_argument);
    auto p = make_predictor("transition", s);
    CHECK_THROWS_WITH_AS(p->observe(4, std::vector<uint16_t>{1}), doctest::Contains("layer 4"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(p->observe(0, std::vector<uint16_t>{1, 2, 3}), doctest::Contains("top_k is 2"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(p->observe(0, std::vector<uint16_t>{32}), doctest::Contains("expert 32"),
                         std::invalid_argument);
    std::vector<uint16_t> out(2);
    CHECK_THROWS_WITH_AS(p->predict(0, out), doctest::Contains("distance 0"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(p->predict(4, out), doctest::Contains("outside 1..3"), std::invalid_argument);
    CHECK_THROWS_AS(evaluate(*p, s, std::vector<uint16_t>(7), {}, std::vector<uint32_t>{1}, false),
                    std::invalid_argument);
}

TEST_CASE("the shipped OLMoE trace: transition beats the previous token") {
    const std::string path =
        std::string(MOERUN_SHARED_DATA) + "/traces/olmoe-1b-7b-decode-general-coding.bin";
    if (!std::filesystem::exists(path)) {
        MESSAGE("skipped: ", path, " is absent");
        return;
    }
    const moerun::cache::Trace trace = moerun::cache::read_trace(path);
    const Shape s{trace.shape.n_layers, trace.shape.n_experts, trace.shape.top_k};
    std::vector<uint64_t> starts;
    for (const auto &q : trace.sequences) starts.push_back(q.first);
    const std::vector<uint32_t> d = {1, 2, 3};
    auto tr = make_predictor("transition", s);
    auto pv = make_predictor("previous", s);
    const auto t = evaluate(*tr, s, trace.experts, starts, d, false);
    const auto p = evaluate(*pv, s, trace.experts, starts, d, false);
    for (size_t i = 0; i < d.size(); ++i) {
        MESSAGE("d=", d[i], ": transition ", t[i].precision(), ", previous ", p[i].precision());
        CHECK(t[i].precision() > p[i].precision());
    }
}
