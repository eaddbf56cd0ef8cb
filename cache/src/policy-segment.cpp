// Segment: keep the experts the recent segment of tokens uses most.
//
// After moe-lrc (Liang et al., "Not All Models Suit Expert Offloading: On Local Routing
// Consistency of Mixture-of-Expert Models", arXiv 2505.16056). Its Segment Cache Best Hit Rate
// (SCH) replays a cache that knows the next `segment length` tokens: the code
// (github.com/ljcleo/moe-lrc, src/41_sch_calc.py, calc_fsf) ranks experts by how often they are
// used in the window of tokens [t, t + L) and breaks ties by recency, and the cache holds the
// top-ranked ones. That is an oracle; this policy is its online mirror, which the runtime can
// run: the window looks back instead of ahead. An entry's score is the number of steps among the
// last segment_len steps (the current one included) in which it was used; the victim is the
// lowest score, ties to the least recently used. With segment_len = 1 it is LRU.
//
// (Evicting "entries not used in the current segment first, LRU among them, then LRU among the
// rest" would be LRU itself: being unused in the segment is a suffix of the LRU order. The count
// inside the window is what makes a segment policy differ from LRU.)
//
// Per entry: a bit mask of the steps it was used in (bit 0 = its last step) and that step, so
// the sliding window costs a shift and a popcount. segment_len <= 64. The entries are kept in an
// LRU list; victim() walks it from the least recent end, so ties resolve by order and the walk
// stops at the first evictable entry with no use in the window (the lowest possible score).
#include <bit>

#include "policy-util.h"

namespace moerun::cache::detail {
namespace {

class Segment final : public Policy {
  public:
    explicit Segment(const PolicyParams &p)
        : n_layers_(p.n_layers),
          n_experts_(p.n_experts),
          window_(p.segment_len),
          lru_(p.n_layers * p.n_experts),
          mask_(p.n_layers * p.n_experts, 0),
          step_(p.n_layers * p.n_experts, 0) {}

    std::string_view name() const override { return "segment"; }
    void on_hit(ExpertId id, uint64_t now) override { use(index_of(id, n_experts_), now); }
    void on_insert(ExpertId id, uint64_t now, bool) override {
        const uint32_t i = index_of(id, n_experts_);
        mask_[i] = 0;
        use(i, now);
    }
    void on_evict(ExpertId id) override {
        const uint32_t i = index_of(id, n_experts_);
        if (lru_.contains(i)) lru_.remove(i);
    }
    std::optional<ExpertId> victim(Evictable evictable, uint64_t now) override {
        const uint64_t step = now / n_layers_;
        uint32_t best = kNone;
        int best_score = 0;
        for (uint32_t i = lru_.tail(); i != kNone; i = lru_.prev(i)) {
            const int s = score(i, step);
            if (best != kNone && s >= best_score) continue;  // equal: the earlier one is less recent
            if (!evictable(id_of(i, n_experts_))) continue;
            best = i;
            best_score = s;
            if (s == 0) break;
        }
        if (best == kNone) return std::nullopt;
        return id_of(best, n_experts_);
    }

  private:
    // The entry's mask brought to `step` (bit b = used at step - b).
    uint64_t shifted(uint32_t i, uint64_t step) const {
        const uint64_t d = step > step_[i] ? step - step_[i] : 0;
        return d >= 64 ? 0 : mask_[i] << d;
    }
    int score(uint32_t i, uint64_t step) const {
        const uint64_t in_window = window_ >= 64 ? ~uint64_t{0} : (uint64_t{1} << window_) - 1;
        return std::popcount(shifted(i, step) & in_window);
    }
    void use(uint32_t i, uint64_t now) {
        const uint64_t step = now / n_layers_;
        mask_[i] = shifted(i, step) | 1;
        step_[i] = step;
        if (lru_.contains(i))
            lru_.move_to_front(i);
        else
            lru_.push_front(i);
    }

    uint32_t n_layers_, n_experts_, window_;
    IndexList lru_;                      // resident entries, most recent at the head
    std::vector<uint64_t> mask_, step_;  // [n_layers * n_experts]
};

}  // namespace

std::unique_ptr<Policy> make_segment(const PolicyParams &p) {
    return std::make_unique<Segment>(p);
}

}  // namespace moerun::cache::detail
