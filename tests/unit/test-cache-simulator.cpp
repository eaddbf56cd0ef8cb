// Trace replay: counting on small hand-made traces (partitioning, prefill, sequence resets,
// bytes, prefetch), argument checks, and the shipped OLMoE trace through every policy (skipped
// when ../shared/data is absent).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "moerun/cache/policy.h"
#include "moerun/cache/simulator.h"
#include "moerun/cache/trace.h"

using moerun::cache::Partitioning;
using moerun::cache::policy_names;
using moerun::cache::SimOptions;
using moerun::cache::SimResult;
using moerun::cache::simulate;
using moerun::cache::Trace;

namespace {

// A trace of one sequence; tokens[t][layer] lists the experts (top_k each).
Trace make_trace(uint32_t n_experts, const std::vector<std::vector<std::vector<uint16_t>>> &tokens) {
    Trace t;
    t.shape.n_layers = uint32_t(tokens.at(0).size());
    t.shape.n_experts = n_experts;
    t.shape.top_k = uint32_t(tokens.at(0).at(0).size());
    for (const auto &tok : tokens) {
        t.token_ids.push_back(-1);
        t.prefill.push_back(0);
        for (const auto &layer : tok) t.experts.insert(t.experts.end(), layer.begin(), layer.end());
    }
    t.sequences.push_back({0, 0, 0, 0, tokens.size()});
    return t;
}

Trace single_layer(const std::vector<uint16_t> &refs, uint32_t n_experts) {
    std::vector<std::vector<std::vector<uint16_t>>> tokens;
    for (uint16_t e : refs) tokens.push_back({{e}});
    return make_trace(n_experts, tokens);
}

SimResult run(const Trace &t, const std::string &policy, uint32_t capacity,
              Partitioning part = Partitioning::per_layer) {
    SimOptions o;
    o.policy = policy;
    o.capacity = capacity;
    o.partitioning = part;
    return simulate(t, o);
}

// MOETRC01 (../shared/data/README.md): a local reader until cache/'s trace reader lands.
// Little-endian: "MOETRC01" u32 n_layers n_experts top_k n_seqs; per sequence u32 id, domain,
// prompt_length, n_tokens; i32 token_id[n]; u8 experts[n][n_layers][top_k]; f16 weights[same].
bool read_moetrc01(const std::string &path, Trace &t) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    auto u32 = [&f]() {
        uint8_t b[4] = {};
        f.read(reinterpret_cast<char *>(b), 4);
        return uint32_t(b[0]) | uint32_t(b[1]) << 8 | uint32_t(b[2]) << 16 | uint32_t(b[3]) << 24;
    };
    char magic[8] = {};
    f.read(magic, 8);
    REQUIRE(std::memcmp(magic, "MOETRC01", 8) == 0);
    t.shape.n_layers = u32();
    t.shape.n_experts = u32();
    t.shape.top_k = u32();
    const uint32_t n_seqs = u32();
    REQUIRE((t.shape.n_layers > 0 && t.shape.n_experts > 0 && t.shape.n_experts <= 256 && t.shape.top_k > 0));
    const size_t per_token = size_t{t.shape.n_layers} * t.shape.top_k;
    std::vector<uint8_t> ids;
    for (uint32_t s = 0; s < n_seqs; ++s) {
        moerun::cache::TraceSequence seq;
        seq.id = u32();
        seq.domain = u32();
        seq.prompt_length = u32();
        seq.n_tokens = u32();
        seq.first = t.n_tokens();
        REQUIRE(f.good());
        for (uint64_t i = 0; i < seq.n_tokens; ++i) t.token_ids.push_back(int32_t(u32()));
        ids.resize(seq.n_tokens * per_token);
        f.read(reinterpret_cast<char *>(ids.data()), std::streamsize(ids.size()));
        f.seekg(std::streamoff(ids.size() * 2), std::ios::cur);  // gate weights: not needed here
        REQUIRE(f.good());
        for (uint8_t e : ids) {
            REQUIRE(e < t.shape.n_experts);
            t.experts.push_back(e);
        }
        t.prefill.resize(t.n_tokens(), 0);
        t.sequences.push_back(seq);
    }
    return true;
}

}  // namespace

TEST_CASE("replay of the classic reference string: faults, cold misses, evictions, bytes") {
    const Trace t = single_layer({7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1}, 8);
    SimOptions o;
    o.capacity = 3;
    o.expert_bytes = {1000};
    const SimResult lru = simulate(t, o);
    CHECK(lru.tokens == 20);
    CHECK(lru.total.accesses == 20);
    CHECK(lru.total.misses == 12);
    CHECK(lru.total.hits == 8);
    CHECK(lru.total.cold_misses == 6);
    CHECK(lru.total.evictions == 12 - 3);
    CHECK(lru.total.bytes_moved == 12000);
    CHECK(lru.bytes_per_token() == doctest::Approx(600.0));
    CHECK(lru.misses_per_token() == doctest::Approx(0.6));
    CHECK(lru.hit_rate() == doctest::Approx(0.4));
    o.policy = "belady";
    CHECK(simulate(t, o).total.misses == 9);
}

TEST_CASE("per-layer partitions vs one global partition") {
    // Two layers, top-1: layer 0 cycles over 3 experts, layer 1 always uses expert 0.
    std::vector<std::vector<std::vector<uint16_t>>> tokens;
    for (int i = 0; i < 30; ++i) tokens.push_back({{uint16_t(i % 3)}, {0}});
    const Trace t = make_trace(4, tokens);
    // Per-layer, 2 slots: layer 0 thrashes under LRU (a cycle of 3), layer 1 hits after its cold miss.
    const SimResult per = run(t, "lru", 2);
    REQUIRE(per.per_layer.size() == 2);
    CHECK(per.per_layer[0].misses == 30);
    CHECK(per.per_layer[1].misses == 1);
    CHECK(per.total.misses == 31);
    CHECK(per.per_layer[0].accesses + per.per_layer[1].accesses == per.total.accesses);
    // Global, 4 slots: everything fits after the 4 cold misses.
    const SimResult glob = run(t, "lru", 4, Partitioning::global);
    CHECK(glob.total.misses == 4);
    CHECK(glob.total.cold_misses == 4);
    // Global, 3 slots: layer 1's expert stays; layer 0's cycle of 3 over the 2 other slots
    // thrashes under LRU (it always evicts the expert needed next); Belady halves that.
    const SimResult g_lru = run(t, "lru", 3, Partitioning::global);
    const SimResult g_opt = run(t, "belady", 3, Partitioning::global);
    CHECK(g_lru.total.misses == 31);
    CHECK(g_opt.total.misses < 20);
    for (std::string_view n : policy_names())
        CHECK(run(t, std::string(n), 3, Partitioning::global).total.misses >= g_opt.total.misses);
}

TEST_CASE("top_k experts of a layer are pinned together") {
    // Top-2 with 2 slots: both experts of a layer must be resident at once; the replay works
    // (no victim is ever a pinned expert of the same layer) and each new pair costs 2 misses.
    const Trace t = make_trace(8, {{{0, 1}}, {{2, 3}}, {{0, 1}}, {{0, 2}}});
    for (std::string_view n : policy_names()) {
        CAPTURE(n);
        const SimResult r = run(t, std::string(n), 2);
        CHECK(r.total.accesses == 8);
        CHECK(r.total.misses == 7);  // only the last token's expert 0 can hit
    }
}

TEST_CASE("prefill tokens can be skipped; sequences keep the cache warm or reset it") {
    std::vector<std::vector<std::vector<uint16_t>>> tokens = {{{0}}, {{1}}, {{0}}, {{1}}};
    Trace t = make_trace(4, tokens);
    t.sequences = {{0, 0, 0, 0, 2}, {1, 0, 0, 2, 2}};
    SimOptions o;
    o.capacity = 2;
    CHECK(simulate(t, o).total.misses == 2);
    o.reset_on_sequence = true;
    const SimResult reset = simulate(t, o);
    CHECK(reset.total.misses == 4);
    CHECK(reset.total.cold_misses == 2);  // first use ever, not first use in the sequence
    CHECK(reset.total.evictions == 0);    // a reset is not an eviction
    t.prefill = {1, 0, 1, 0};
    o.reset_on_sequence = false;
    o.skip_prefill = true;
    const SimResult decode = simulate(t, o);
    CHECK(decode.tokens == 2);
    CHECK(decode.total.accesses == 2);
    CHECK(decode.total.misses == 1);
}

TEST_CASE("an oracle next-layer prefetcher turns demand misses into used prefetches") {
    std::vector<std::vector<std::vector<uint16_t>>> tokens;
    for (int i = 0; i < 40; ++i)
        tokens.push_back({{uint16_t(i % 5)}, {uint16_t((i * 3) % 5)}, {uint16_t((i * 7 + 1) % 5)}});
    const Trace t = make_trace(5, tokens);
    struct Oracle {
        const Trace *trace;
        static size_t predict(void *ctx, uint64_t token, uint32_t layer, std::span<uint16_t> out) {
            const auto experts = static_cast<Oracle *>(ctx)->trace->experts_at(token, layer);
            std::copy(experts.begin(), experts.end(), out.begin());
            return experts.size();
        }
    } oracle{&t};
    SimOptions o;
    o.capacity = 2;
    const SimResult demand = simulate(t, o);
    o.prefetcher.fn = &Oracle::predict;
    o.prefetcher.ctx = &oracle;
    const SimResult pref = simulate(t, o);
    // Every access after the first layer of the first token was prefetched exactly in time.
    CHECK(pref.total.misses == 1);
    CHECK(pref.total.prefetches_used + pref.total.prefetches_wasted == pref.total.prefetches_issued);
    CHECK(pref.total.prefetches_used > 0);
    CHECK(demand.total.misses > pref.total.misses);
    CHECK(pref.total.accesses == demand.total.accesses);
}

TEST_CASE("a learning prefetcher observes every served (token, layer) in clock order before predicting") {
    const Trace t = make_trace(6, {{{0}, {1}}, {{2}, {3}}, {{4}, {5}}});
    struct Log {
        std::vector<std::pair<uint64_t, uint32_t>> seen, asked;
        static void observe(void *ctx, uint64_t token, uint32_t layer) {
            static_cast<Log *>(ctx)->seen.emplace_back(token, layer);
        }
        static size_t predict(void *ctx, uint64_t token, uint32_t layer, std::span<uint16_t>) {
            auto &log = *static_cast<Log *>(ctx);
            // Asked about the position one after the last observed one.
            CHECK(log.seen.back().first * 2 + log.seen.back().second + 1 == token * 2 + layer);
            log.asked.emplace_back(token, layer);
            return 0;
        }
    } log;
    SimOptions o;
    o.capacity = 1;
    o.prefetcher = {1, &Log::predict, &log, &Log::observe};
    simulate(t, o);
    const std::vector<std::pair<uint64_t, uint32_t>> all = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 0}, {2, 1}};
    CHECK(log.seen == all);
    CHECK(log.asked == std::vector<std::pair<uint64_t, uint32_t>>(all.begin() + 1, all.end()));
}

TEST_CASE("bad arguments are rejected with std::invalid_argument") {
    const Trace t = make_trace(8, {{{0, 1}, {2, 3}}});
    CHECK_THROWS_WITH_AS(run(t, "lru", 1), doctest::Contains("top_k"), std::invalid_argument);
    CHECK_THROWS_AS(run(t, "lru", 1, Partitioning::global), std::invalid_argument);
    CHECK_THROWS_AS(run(t, "mru", 4), std::invalid_argument);
    Trace bad = t;
    bad.experts.pop_back();
    CHECK_THROWS_AS(run(bad, "lru", 4), std::invalid_argument);
    bad = t;
    bad.experts[0] = 8;
    CHECK_THROWS_AS(run(bad, "lru", 4), std::invalid_argument);
    SimOptions o;
    o.capacity = 4;
    o.expert_bytes = {1};
    CHECK_THROWS_AS(simulate(t, o), std::invalid_argument);
}

TEST_CASE("OLMoE trace: hit rates of every policy, per layer and global") {
    const std::string path =
        std::string(MOERUN_SHARED_DATA) + "/traces/olmoe-1b-7b-decode-general-coding.bin";
    Trace t;
    if (!read_moetrc01(path, t)) {
        MESSAGE("skipped: " << path << " is absent");
        return;
    }
    REQUIRE(t.shape.n_layers == 16);
    REQUIRE(t.shape.n_experts == 64);
    REQUIRE(t.shape.top_k == 8);
    MESSAGE("OLMoE trace: " << t.n_tokens() << " tokens, " << t.sequences.size() << " sequences");

    auto table = [&](Partitioning part, std::vector<uint32_t> sizes) {
        for (uint32_t capacity : sizes) {
            double belady = 0, best_other = 0;
            std::string line = (part == Partitioning::per_layer ? "per-layer " : "global ") +
                               std::to_string(capacity) + " slots:";
            for (std::string_view n : policy_names()) {
                SimOptions o;
                o.policy = std::string(n);
                o.capacity = capacity;
                o.partitioning = part;
                const auto t0 = std::chrono::steady_clock::now();
                const SimResult r = simulate(t, o);
                const double ms =
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
                CHECK(r.total.accesses == t.n_tokens() * 16 * 8);
                CHECK(r.total.hits + r.total.misses == r.total.accesses);
                char buf[96];
                std::snprintf(buf, sizeof buf, " %s %.1f%% (%.0f ms)", o.policy.c_str(), 100 * r.hit_rate(),
                              ms);
                line += buf;
                if (n == "belady")
                    belady = r.hit_rate();
                else
                    best_other = std::max(best_other, r.hit_rate());
                if (n == "lru" && part == Partitioning::per_layer && capacity == 16) {
                    CHECK(r.hit_rate() > 0.45);
                    CHECK(r.hit_rate() < 0.75);
                }
                if (n == "belady" && part == Partitioning::per_layer && capacity == 16) {
                    CHECK(r.hit_rate() > 0.6);
                    CHECK(r.hit_rate() < 0.9);
                }
            }
            MESSAGE(line);
            CHECK(belady >= best_other);
        }
    };
    table(Partitioning::per_layer, {8, 16, 32});
    table(Partitioning::global, {128, 256, 512});

    SimOptions o;
    o.capacity = 16;
    const SimResult a = simulate(t, o), b = simulate(t, o);
    CHECK(a.total.hits == b.total.hits);  // deterministic
    CHECK(a.total.evictions == b.total.evictions);
}
