// Eviction policies, driven directly through the Policy interface by a small local cache model
// (independent of the simulator): textbook reference strings, SLRU scan resistance, LFU aging,
// the layer-cyclic order of least-stale, pinning, and Belady against an exhaustive optimum.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "moerun/cache/policy.h"

using moerun::cache::Evictable;
using moerun::cache::ExpertId;
using moerun::cache::FutureTrace;
using moerun::cache::make_policy;
using moerun::cache::Policy;
using moerun::cache::policy_names;
using moerun::cache::PolicyParams;

namespace {

// One (step, layer) of routing: the experts served there, all pinned while they are served.
struct Group {
    uint32_t layer = 0;
    std::vector<uint16_t> experts;
};

// Routing as groups, one step = n_layers consecutive groups (layer 0..n_layers-1).
struct Routing {
    uint32_t n_layers = 1, n_experts = 1;
    std::vector<Group> groups;
    uint64_t now(size_t g) const { return g; }  // groups are in clock order
};

// A single-layer routing with one expert per step: the classic paging reference string.
Routing reference_string(const std::vector<uint16_t> &refs, uint32_t n_experts) {
    Routing r;
    r.n_experts = n_experts;
    for (uint16_t e : refs) r.groups.push_back({0, {e}});
    return r;
}

FutureTrace future_of(const Routing &r) {
    FutureTrace f(r.n_layers, r.n_experts);
    for (size_t g = 0; g < r.groups.size(); g += r.n_layers) {
        std::vector<std::span<const uint16_t>> step(r.n_layers);
        for (uint32_t l = 0; l < r.n_layers; ++l) step[l] = r.groups[g + l].experts;
        f.push_step(step);
    }
    return f;
}

struct Pins {
    std::set<std::pair<uint32_t, uint32_t>> ids;
    static bool fn(const void *ctx, ExpertId id) {
        return !static_cast<const Pins *>(ctx)->ids.count({id.layer, id.expert});
    }
    Evictable evictable() const { return {&Pins::fn, this}; }
};

// Serves `r` through one partition of `capacity` entries; returns the misses (faults).
uint64_t run_faults(const std::string &name, const Routing &r, uint32_t capacity, PolicyParams p = {}) {
    FutureTrace future = future_of(r);
    p.capacity = capacity;
    p.n_layers = r.n_layers;
    p.n_experts = r.n_experts;
    p.future = &future;
    auto policy = make_policy(name, p);
    std::set<std::pair<uint32_t, uint32_t>> resident;
    uint64_t faults = 0;
    for (size_t g = 0; g < r.groups.size(); ++g) {
        const Group &grp = r.groups[g];
        Pins pins;
        for (uint16_t e : grp.experts) pins.ids.insert({grp.layer, e});
        for (uint16_t e : grp.experts) {
            const ExpertId id{grp.layer, e};
            if (resident.count({id.layer, id.expert})) {
                policy->on_hit(id, r.now(g));
                continue;
            }
            ++faults;
            if (resident.size() == capacity) {
                auto v = policy->victim(pins.evictable(), r.now(g));
                REQUIRE(v.has_value());
                REQUIRE(resident.count({v->layer, v->expert}) == 1);
                REQUIRE(!pins.ids.count({v->layer, v->expert}));
                resident.erase({v->layer, v->expert});
                policy->on_evict(*v);
            }
            resident.insert({id.layer, id.expert});
            policy->on_insert(id, r.now(g), false);
        }
    }
    return faults;
}

// The fewest faults any eviction choice achieves (exhaustive search with memo over the resident
// set): the ground truth Belady must reach. Entries: global index layer * n_experts + expert.
uint64_t optimal_faults(const Routing &r, uint32_t capacity) {
    struct Req {
        uint32_t id;
        uint32_t pins;  // bit mask of the group's entries
    };
    std::vector<Req> reqs;
    for (const Group &g : r.groups) {
        uint32_t pins = 0;
        for (uint16_t e : g.experts) pins |= 1u << (g.layer * r.n_experts + e);
        for (uint16_t e : g.experts) reqs.push_back({g.layer * r.n_experts + e, pins});
    }
    std::map<std::pair<size_t, uint32_t>, uint64_t> memo;
    auto best = [&](auto &&self, size_t i, uint32_t cache) -> uint64_t {
        if (i == reqs.size()) return 0;
        auto it = memo.find({i, cache});
        if (it != memo.end()) return it->second;
        const uint32_t bit = 1u << reqs[i].id;
        uint64_t out;
        if (cache & bit) {
            out = self(self, i + 1, cache);
        } else if (uint32_t(std::popcount(cache)) < capacity) {
            out = 1 + self(self, i + 1, cache | bit);
        } else {
            out = UINT64_MAX;
            for (uint32_t v = 0; v < 32; ++v) {
                const uint32_t vb = 1u << v;
                if (!(cache & vb) || (reqs[i].pins & vb)) continue;
                out = std::min(out, 1 + self(self, i + 1, (cache & ~vb) | bit));
            }
        }
        memo[{i, cache}] = out;
        return out;
    };
    return best(best, 0, 0);
}

Routing random_routing(std::mt19937 &rng, uint32_t n_layers, uint32_t n_experts, uint32_t top_k,
                       uint32_t steps) {
    Routing r;
    r.n_layers = n_layers;
    r.n_experts = n_experts;
    std::vector<uint16_t> all(n_experts);
    for (uint32_t e = 0; e < n_experts; ++e) all[e] = uint16_t(e);
    for (uint32_t s = 0; s < steps; ++s)
        for (uint32_t l = 0; l < n_layers; ++l) {
            std::shuffle(all.begin(), all.end(), rng);
            r.groups.push_back({l, std::vector<uint16_t>(all.begin(), all.begin() + top_k)});
        }
    return r;
}

const std::vector<uint16_t> kClassic = {7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1};

}  // namespace

TEST_CASE("policy names: the six policies, every one constructible") {
    std::vector<std::string> names(policy_names().begin(), policy_names().end());
    CHECK(names == std::vector<std::string>{"lru", "slru", "lfu", "segment", "least-stale", "belady"});
    FutureTrace f(1, 4);
    PolicyParams p;
    p.capacity = 2;
    p.n_experts = 4;
    p.future = &f;
    for (std::string_view n : policy_names()) CHECK(make_policy(n, p)->name() == n);
}

TEST_CASE("classic reference string, 3 frames: LRU 12 faults, Belady 9, LFU 11") {
    const Routing r = reference_string(kClassic, 8);
    CHECK(run_faults("lru", r, 3) == 12);
    CHECK(run_faults("belady", r, 3) == 9);
    PolicyParams p;
    p.lfu_half_life = 1u << 30;  // no aging: textbook LFU (in-cache counts, ties to LRU)
    CHECK(run_faults("lfu", r, 3, p) == 11);
    CHECK(optimal_faults(r, 3) == 9);
    // One layer: least-stale is LRU, and segment with a one-step window is LRU too.
    CHECK(run_faults("least-stale", r, 3) == 12);
    p.segment_len = 1;
    CHECK(run_faults("segment", r, 3, p) == 12);
    // Enough frames: only the 6 cold faults, whatever the policy.
    for (std::string_view n : policy_names()) CHECK(run_faults(std::string(n), r, 6) == 6);
}

TEST_CASE("LRU evicts the least recently used; a prefetch insert counts as recent") {
    PolicyParams p;
    p.capacity = 3;
    p.n_experts = 8;
    auto lru = make_policy("lru", p);
    lru->on_insert({0, 1}, 0, false);
    lru->on_insert({0, 2}, 1, false);
    lru->on_insert({0, 3}, 2, true);
    lru->on_hit({0, 1}, 3);
    CHECK(lru->victim({}, 4) == ExpertId{0, 2});
    lru->on_evict({0, 2});
    CHECK(lru->victim({}, 4) == ExpertId{0, 3});
}

TEST_CASE("SLRU: a one-off scan does not flush the reused working set; LRU's does") {
    // Working set {0, 1} used twice (promoted to protected), then a scan of 20 one-off experts.
    std::vector<uint16_t> refs = {0, 1, 0, 1};
    for (uint16_t e = 10; e < 30; ++e) refs.push_back(e);
    refs.push_back(0);
    refs.push_back(1);
    const Routing r = reference_string(refs, 32);
    PolicyParams p;
    p.slru_protected = 0.5;  // 2 of 4 slots protected
    // 2 cold + 20 scan faults; the final 0 and 1 hit under SLRU, fault under LRU.
    CHECK(run_faults("slru", r, 4, p) == 22);
    CHECK(run_faults("lru", r, 4) == 24);
}

TEST_CASE("SLRU: protected overflow demotes to probation's MRU end") {
    PolicyParams p;
    p.capacity = 4;
    p.n_experts = 8;
    p.slru_protected = 0.5;  // protected holds 2
    auto s = make_policy("slru", p);
    for (uint32_t e = 0; e < 4; ++e) s->on_insert({0, e}, e, false);  // probation: 3 2 1 0
    s->on_hit({0, 0}, 4);                                             // protected: 0
    s->on_hit({0, 1}, 5);                                             // protected: 1 0
    s->on_hit({0, 2}, 6);  // protected: 2 1, demotes 0 -> probation: 0 3
    // Probation's LRU end is 3 (inserted before 0 was demoted to the MRU end).
    CHECK(s->victim({}, 7) == ExpertId{0, 3});
    s->on_evict({0, 3});
    CHECK(s->victim({}, 7) == ExpertId{0, 0});
    s->on_evict({0, 0});
    // Probation empty: protected's LRU end.
    CHECK(s->victim({}, 7) == ExpertId{0, 1});
}

TEST_CASE("LFU: old popularity ages out") {
    PolicyParams p;
    p.capacity = 2;
    p.n_experts = 4;
    auto run = [&](uint32_t half_life) {
        p.lfu_half_life = half_life;
        auto lfu = make_policy("lfu", p);
        lfu->on_insert({0, 0}, 0, false);
        for (uint64_t t = 1; t < 8; ++t) lfu->on_hit({0, 0}, t);  // expert 0: 8 uses, long ago
        lfu->on_insert({0, 1}, 100, false);
        lfu->on_hit({0, 1}, 101);  // expert 1: 2 recent uses
        return lfu->victim({}, 102);
    };
    CHECK(run(1000) == ExpertId{0, 1});  // no aging to speak of: fewer uses loses
    CHECK(run(2) == ExpertId{0, 0});     // 8 uses halved ~47 times since: 0 < 2
    // One halving: 7 uses in step 8 become 3 at step 9, still more than expert 1's 2.
    p.lfu_half_life = 1;
    auto lfu = make_policy("lfu", p);
    lfu->on_insert({0, 0}, 0, false);
    for (uint64_t t = 1; t < 8; ++t) lfu->on_hit({0, 0}, 8);  // all in step/epoch 8
    lfu->on_insert({0, 1}, 9, false);
    lfu->on_hit({0, 1}, 9);
    CHECK(lfu->victim({}, 9) == ExpertId{0, 1});
}

TEST_CASE("LFU: ties go to the least recently used") {
    PolicyParams p;
    p.capacity = 3;
    p.n_experts = 4;
    auto lfu = make_policy("lfu", p);
    lfu->on_insert({0, 2}, 0, false);
    lfu->on_insert({0, 0}, 1, false);
    lfu->on_insert({0, 1}, 2, false);
    CHECK(lfu->victim({}, 3) == ExpertId{0, 2});
    lfu->on_hit({0, 2}, 3);
    CHECK(lfu->victim({}, 4) == ExpertId{0, 0});
}

TEST_CASE("segment: fewest uses in the last segment_len steps, ties to LRU") {
    PolicyParams p;
    p.capacity = 3;
    p.n_layers = 2;
    p.n_experts = 4;
    p.segment_len = 4;
    auto s = make_policy("segment", p);
    // Steps 0..3 (now = step * 2): expert 0 every step, expert 1 once at step 0, expert 2 at step 3.
    s->on_insert({0, 0}, 0, false);
    s->on_insert({0, 1}, 0, false);
    for (uint64_t step = 1; step < 4; ++step) s->on_hit({0, 0}, step * 2);
    s->on_insert({0, 2}, 6, false);
    // At step 3: counts 0:4, 1:1, 2:1; 1 and 2 tie, 1 is less recent.
    CHECK(s->victim({}, 6) == ExpertId{0, 1});
    // At step 4 expert 1's use (step 0) has left the window: 0 < 1.
    s->on_hit({0, 1}, 6);  // now 1 has uses at steps 0 and 3
    CHECK(s->victim({}, 8) == ExpertId{0, 2});
    // Much later every window is empty: LRU (expert 0's last hit came before 2's insert).
    CHECK(s->victim({}, 1000) == ExpertId{0, 0});
    s->on_hit({0, 0}, 1000);
    CHECK(s->victim({}, 1002) == ExpertId{0, 2});
}

TEST_CASE("least-stale: stale first, then the layer that comes up last, then the oldest") {
    PolicyParams p;
    p.capacity = 8;
    p.n_layers = 4;
    p.n_experts = 4;
    auto ls = make_policy("least-stale", p);
    auto lru = make_policy("lru", p);
    auto both = [&](ExpertId id, uint64_t now) {
        ls->on_insert(id, now, false);
        lru->on_insert(id, now, false);
    };
    // Step 0 (now 0..3): expert 0 at every layer; step 1, layers 0 and 1 (now 4, 5): expert 1.
    for (uint32_t l = 0; l < 4; ++l) both({l, 0}, l);
    both({0, 1}, 4);
    both({1, 1}, 5);
    // Serving step 1, layer 2 (now 6), its expert 0 pinned. A full pass old (stale): (0,0) and
    // (1,0). Layer 1 comes up again after layer 0 does (3 ticks vs 2): (1,0) goes first; LRU
    // would take the older (0,0).
    Pins pins;
    pins.ids = {{2, 0}};
    const std::vector<ExpertId> expected = {{1, 0}, {0, 0}, {1, 1}, {0, 1}, {3, 0}};
    CHECK(lru->victim(pins.evictable(), 6) == ExpertId{0, 0});
    for (const ExpertId &want : expected) {
        const auto v = ls->victim(pins.evictable(), 6);
        REQUIRE(v.has_value());
        CHECK(*v == want);
        ls->on_evict(*v);
    }
    // (1,1), (0,1), (3,0) are all fresh: layer 3 runs next, so its expert is kept longest, where
    // LRU would evict it first among them. Only the pinned entry is left now.
    CHECK_FALSE(ls->victim(pins.evictable(), 6).has_value());
}

TEST_CASE("belady: furthest next use; never again first, lowest id among those") {
    Routing r = reference_string({0, 1, 2, 3, 1, 0, 1}, 6);
    FutureTrace f = future_of(r);
    CHECK(f.n_steps() == 7);
    CHECK(f.next_use({0, 1}, 1) == 4);
    CHECK(f.next_use({0, 1}, 4) == 6);
    CHECK(f.next_use({0, 1}, 6) == UINT64_MAX);
    CHECK(f.next_use({0, 5}, 0) == UINT64_MAX);
    PolicyParams p;
    p.capacity = 4;
    p.n_experts = 6;
    p.future = &f;
    auto b = make_policy("belady", p);
    for (uint32_t e = 0; e < 3; ++e) b->on_insert({0, e}, e, false);
    // At now 3: next uses 0 -> 5, 1 -> 4, 2 -> never.
    CHECK(b->victim({}, 3) == ExpertId{0, 2});
    b->on_evict({0, 2});
    CHECK(b->victim({}, 3) == ExpertId{0, 0});
    b->on_insert({0, 3}, 3, false);  // 3: never again; 4 (never used) inserted by a prefetch
    b->on_insert({0, 4}, 3, true);
    CHECK(b->victim({}, 3) == ExpertId{0, 3});  // both never again: lowest id
}

TEST_CASE("every policy honours pinning and returns nullopt when all are pinned") {
    std::mt19937 rng(1234);
    const uint32_t n_layers = 3, n_experts = 6, capacity = 5;
    // A random routing so that Belady has a future to look at.
    const Routing r = random_routing(rng, n_layers, n_experts, 2, 40);
    FutureTrace f = future_of(r);
    for (std::string_view name : policy_names()) {
        CAPTURE(name);
        PolicyParams p;
        p.capacity = capacity;
        p.n_layers = n_layers;
        p.n_experts = n_experts;
        p.future = &f;
        auto policy = make_policy(name, p);
        std::vector<ExpertId> resident;
        uint64_t now = 0;
        for (int op = 0; op < 400; ++op) {
            now += rng() % 3;
            if (resident.size() < capacity) {
                const ExpertId id{uint32_t(rng() % n_layers), uint32_t(rng() % n_experts)};
                if (std::find(resident.begin(), resident.end(), id) != resident.end()) {
                    policy->on_hit(id, now);
                    continue;
                }
                resident.push_back(id);
                policy->on_insert(id, now, rng() % 4 == 0);
                continue;
            }
            // Full: pin a random subset (sometimes all) and ask for a victim.
            Pins pins;
            const bool all = rng() % 5 == 0;
            for (const ExpertId &id : resident)
                if (all || rng() % 2) pins.ids.insert({id.layer, id.expert});
            const auto v = policy->victim(pins.evictable(), now);
            if (pins.ids.size() == resident.size()) {
                CHECK_FALSE(v.has_value());
                continue;
            }
            REQUIRE(v.has_value());
            CHECK(std::find(resident.begin(), resident.end(), *v) != resident.end());
            CHECK(!pins.ids.count({v->layer, v->expert}));
            resident.erase(std::find(resident.begin(), resident.end(), *v));
            policy->on_evict(*v);
        }
    }
}

TEST_CASE("Belady equals the exhaustive optimum on tiny random routings; nothing beats it") {
    std::mt19937 rng(42);
    for (int trial = 0; trial < 60; ++trial) {
        CAPTURE(trial);
        const uint32_t n_layers = 1 + trial % 2, top_k = 1 + trial % 2;
        const uint32_t n_experts = n_layers == 1 ? 6 : 4;
        const Routing r = random_routing(rng, n_layers, n_experts, top_k, 8);
        for (uint32_t capacity = top_k; capacity <= top_k + 2; ++capacity) {
            CAPTURE(capacity);
            const uint64_t opt = optimal_faults(r, capacity);
            CHECK(run_faults("belady", r, capacity) == opt);
            for (std::string_view n : policy_names()) CHECK(run_faults(std::string(n), r, capacity) >= opt);
        }
    }
}

TEST_CASE("policies are deterministic: same events, same victims") {
    std::mt19937 rng(7);
    const Routing r = random_routing(rng, 2, 8, 2, 200);
    for (std::string_view n : policy_names())
        CHECK(run_faults(std::string(n), r, 5) == run_faults(std::string(n), r, 5));
}

TEST_CASE("invalid names and parameters are rejected") {
    PolicyParams p;
    p.capacity = 4;
    p.n_experts = 8;
    CHECK_THROWS_AS(make_policy("fifo", p), std::invalid_argument);
    try {
        make_policy("LRU", p);
        FAIL("expected a throw");
    } catch (const std::invalid_argument &e) {
        const std::string msg = e.what();
        CHECK(msg.find("LRU") != std::string::npos);
        CHECK(msg.find("least-stale") != std::string::npos);  // lists the accepted names
    }
    CHECK_THROWS_WITH_AS(make_policy("belady", p), doctest::Contains("future"), std::invalid_argument);
    FutureTrace wrong(2, 8);
    p.future = &wrong;
    CHECK_THROWS_AS(make_policy("belady", p), std::invalid_argument);
    p.future = nullptr;
    PolicyParams q = p;
    q.capacity = 0;
    for (std::string_view n : {"lru", "slru", "lfu", "segment", "least-stale"})
        CHECK_THROWS_AS(make_policy(n, q), std::invalid_argument);
    q = p;
    q.n_experts = 0;
    CHECK_THROWS_AS(make_policy("lru", q), std::invalid_argument);
    q = p;
    q.slru_protected = 1.0;
    CHECK_THROWS_AS(make_policy("slru", q), std::invalid_argument);
    q.slru_protected = -0.1;
    CHECK_THROWS_AS(make_policy("slru", q), std::invalid_argument);
    q = p;
    q.lfu_half_life = 0;
    CHECK_THROWS_AS(make_policy("lfu", q), std::invalid_argument);
    q = p;
    q.segment_len = 0;
    CHECK_THROWS_AS(make_policy("segment", q), std::invalid_argument);
    q.segment_len = 65;
    CHECK_THROWS_AS(make_policy("segment", q), std::invalid_argument);
    q.segment_len = 64;
    CHECK_NOTHROW(make_policy("segment", q));
    // FutureTrace checks its input too.
    CHECK_THROWS_AS(FutureTrace(0, 4), std::invalid_argument);
    FutureTrace f(2, 4);
    const std::vector<uint16_t> ok = {1}, bad = {4};
    std::vector<std::span<const uint16_t>> one_layer = {ok};
    CHECK_THROWS_AS(f.push_step(one_layer), std::invalid_argument);
    std::vector<std::span<const uint16_t>> bad_id = {ok, bad};
    CHECK_THROWS_AS(f.push_step(bad_id), std::invalid_argument);
}
