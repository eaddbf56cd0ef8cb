// Least-Stale, after SpecMD (Hoang, Jaiswal, Samragh and Cho, "SpecMD: A Comprehensive Study On
// Speculative Expert Prefetching", arXiv 2602.03921).
//
// THE DEFINITION HERE IS INFERRED. The paper's method section could not be read from here (only
// its abstract: Least-Stale "exploits MoE's predictable expert access patterns to reduce
// collision misses"). Public re-implementations describe it as a two-generation policy: experts
// touched in the current forward pass (token) are fresh, the others stale; stale ones are evicted
// first, oldest first; the reasoning given is that within a token the layers run in a fixed
// order, so an expert whose layer has already run this token cannot be used again before the
// next token. This file implements that idea on the layer-cyclic routing clock (now = step *
// n_layers + layer), which also covers a global partition in the middle of a token:
//
//   1. staleness = full passes over the layers since the entry's last use,
//      floor((now - last_use) / n_layers): evict the most stale first (fresh = 0, i.e. used
//      within the last n_layers clock ticks);
//   2. among equally stale entries, evict the one whose next possible use is furthest: the
//      cyclic distance from the current layer to the entry's layer, in 1..n_layers (the current
//      layer's unpinned experts are a full pass away; the next layer's are 1 away);
//   3. then the oldest last use (a per-policy event counter, so the order is deterministic).
//
// In a per-layer partition every entry has the same layer, so this is LRU; it differs from LRU
// in a global partition, where LRU evicts the previous token's experts of the layers about to run.
// A prefetch insert counts as a use at `now`.
//
// Per layer, one intrusive LRU list: within a layer, rule 1 and 3 order entries exactly by last
// use, so each layer's candidate is its least recent evictable entry and victim() compares one
// candidate per layer.
#include "policy-util.h"

namespace moerun::cache::detail {
namespace {

class LeastStale final : public Policy {
  public:
    explicit LeastStale(const PolicyParams &p)
        : n_layers_(p.n_layers),
          n_experts_(p.n_experts),
          last_(p.n_layers * p.n_experts, 0),
          seq_(p.n_layers * p.n_experts, 0) {
        lists_.reserve(n_layers_);
        for (uint32_t l = 0; l < n_layers_; ++l) lists_.emplace_back(n_experts_);
    }

    std::string_view name() const override { return "least-stale"; }
    void on_hit(ExpertId id, uint64_t now) override { use(id, now); }
    void on_insert(ExpertId id, uint64_t now, bool) override { use(id, now); }
    void on_evict(ExpertId id) override {
        IndexList &list = lists_[id.layer];
        if (list.contains(id.expert)) list.remove(id.expert);
    }
    std::optional<ExpertId> victim(Evictable evictable, uint64_t now) override {
        const uint32_t cur_layer = static_cast<uint32_t>(now % n_layers_);
        bool found = false;
        ExpertId best{};
        uint64_t best_passes = 0, best_seq = 0;
        uint32_t best_dist = 0;
        for (uint32_t l = 0; l < n_layers_; ++l) {
            const IndexList &list = lists_[l];
            uint32_t e = list.tail();
            while (e != kNone && !evictable(ExpertId{l, e})) e = list.prev(e);
            if (e == kNone) continue;
            const uint32_t i = l * n_experts_ + e;
            const uint64_t passes = now > last_[i] ? (now - last_[i]) / n_layers_ : 0;
            const uint32_t dist = (l + n_layers_ - cur_layer - 1) % n_layers_ + 1;
            const bool better =
                !found || passes > best_passes ||
                (passes == best_passes && (dist > best_dist || (dist == best_dist && seq_[i] < best_seq)));
            if (!better) continue;
            found = true;
            best = ExpertId{l, e};
            best_passes = passes;
            best_dist = dist;
            best_seq = seq_[i];
        }
        if (!found) return std::nullopt;
        return best;
    }

  private:
    void use(ExpertId id, uint64_t now) {
        IndexList &list = lists_[id.layer];
        if (list.contains(id.expert))
            list.move_to_front(id.expert);
        else
            list.push_front(id.expert);
        const uint32_t i = index_of(id, n_experts_);
        last_[i] = now;
        seq_[i] = ++tick_;
    }

    uint32_t n_layers_, n_experts_;
    std::vector<IndexList> lists_;      // [n_layers], indexed by expert; head = most recent
    std::vector<uint64_t> last_, seq_;  // [n_layers * n_experts]
    uint64_t tick_ = 0;
};

}  // namespace

std::unique_ptr<Policy> make_least_stale(const PolicyParams &p) {
    return std::make_unique<LeastStale>(p);
}

}  // namespace moerun::cache::detail
