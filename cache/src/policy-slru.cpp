// Segmented LRU (Karedla, Love and Wherry, 1994): two LRU lists.
//   probation: every new entry (demand or prefetch) enters at its MRU end;
//   protected: a hit on a probationary entry promotes it here (MRU end). Its capacity is
//              floor(capacity * slru_protected); when it overflows, its LRU entry is demoted to
//              probation's MRU end, so it gets a second chance before leaving.
// Victims come from probation's LRU end first, then from protected's: a one-off scan passes
// through probation without flushing the reused (protected) working set.
#include <cmath>

#include "policy-util.h"

namespace moerun::cache::detail {
namespace {

class Slru final : public Policy {
  public:
    explicit Slru(const PolicyParams &p)
        : n_experts_(p.n_experts),
          protected_cap_(static_cast<uint32_t>(std::floor(p.capacity * p.slru_protected))),
          probation_(p.n_layers * p.n_experts),
          protected_(p.n_layers * p.n_experts) {}

    std::string_view name() const override { return "slru"; }

    void on_hit(ExpertId id, uint64_t) override {
        const uint32_t i = index_of(id, n_experts_);
        if (protected_.contains(i)) {
            protected_.move_to_front(i);
            return;
        }
        if (probation_.contains(i)) probation_.remove(i);
        if (protected_cap_ == 0) {  // no protected segment: plain LRU
            probation_.push_front(i);
            return;
        }
        protected_.push_front(i);
        if (protected_.size() > protected_cap_) {
            const uint32_t demoted = protected_.tail();
            protected_.remove(demoted);
            probation_.push_front(demoted);
        }
    }
    void on_insert(ExpertId id, uint64_t, bool) override {
        const uint32_t i = index_of(id, n_experts_);
        unlink(i);
        probation_.push_front(i);
    }
    void on_evict(ExpertId id) override { unlink(index_of(id, n_experts_)); }
    std::optional<ExpertId> victim(Evictable evictable, uint64_t) override {
        uint32_t i = probation_.last_evictable(evictable, n_experts_);
        if (i == kNone) i = protected_.last_evictable(evictable, n_experts_);
        if (i == kNone) return std::nullopt;
        return id_of(i, n_experts_);
    }

  private:
    void unlink(uint32_t i) {
        if (probation_.contains(i)) probation_.remove(i);
        if (protected_.contains(i)) protected_.remove(i);
    }

    uint32_t n_experts_, protected_cap_;
    IndexList probation_, protected_;
};

}  // namespace

std::unique_ptr<Policy> make_slru(const PolicyParams &p) {
    return std::make_unique<Slru>(p);
}

}  // namespace moerun::cache::detail
