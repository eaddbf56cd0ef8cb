// Belady's MIN: evict the entry whose next use is furthest in the future (never again = the
// furthest); ties go to the lowest id (layer, then expert) so that runs are reproducible.
// Optimal for demand paging, so it is the bound every other policy is measured against.
//
// Each entry caches its next use, computed when it is used or inserted; an entry is not used
// again before that time, so the cached value holds until then. victim() recomputes a cached
// value that has fallen to or below `now` (the routing served diverged from the future, or a
// prefetch went unused).
#include "policy-util.h"

namespace moerun::cache::detail {
namespace {

class Belady final : public Policy {
  public:
    explicit Belady(const PolicyParams &p)
        : n_experts_(p.n_experts),
          future_(p.future),
          resident_(p.n_layers * p.n_experts),
          next_(p.n_layers * p.n_experts, 0) {}

    std::string_view name() const override { return "belady"; }
    void on_hit(ExpertId id, uint64_t now) override {
        next_[index_of(id, n_experts_)] = future_->next_use(id, now);
    }
    void on_insert(ExpertId id, uint64_t now, bool prefetch) override {
        const uint32_t i = index_of(id, n_experts_);
        resident_.insert(i);
        // A prefetched entry is not used at `now`: its next use may be now itself.
        next_[i] = future_->next_use(id, prefetch && now > 0 ? now - 1 : now);
    }
    void on_evict(ExpertId id) override { resident_.erase(index_of(id, n_experts_)); }
    std::optional<ExpertId> victim(Evictable evictable, uint64_t now) override {
        uint32_t best = kNone;
        uint64_t best_next = 0;
        for (uint32_t i : resident_.items()) {
            if (next_[i] < now) next_[i] = future_->next_use(id_of(i, n_experts_), now - 1);
            const uint64_t n = next_[i];
            if (best != kNone && (n < best_next || (n == best_next && i > best))) continue;
            if (!evictable(id_of(i, n_experts_))) continue;
            best = i;
            best_next = n;
        }
        if (best == kNone) return std::nullopt;
        return id_of(best, n_experts_);
    }

  private:
    uint32_t n_experts_;
    const FutureTrace *future_;
    ResidentSet resident_;
    std::vector<uint64_t> next_;  // [n_layers * n_experts] cached next use
};

}  // namespace

std::unique_ptr<Policy> make_belady(const PolicyParams &p) {
    return std::make_unique<Belady>(p);
}

}  // namespace moerun::cache::detail
