// LRU: evict the entry whose last use (hit or insert, a prefetch insert included) is oldest.
// One intrusive list, most recent at the head; victim() walks from the tail past pinned entries.
#include "policy-util.h"

namespace moerun::cache::detail {
namespace {

class Lru final : public Policy {
  public:
    explicit Lru(const PolicyParams &p) : n_experts_(p.n_experts), list_(p.n_layers * p.n_experts) {}

    std::string_view name() const override { return "lru"; }
    void on_hit(ExpertId id, uint64_t) override { list_.move_to_front(index_of(id, n_experts_)); }
    void on_insert(ExpertId id, uint64_t, bool) override {
        const uint32_t i = index_of(id, n_experts_);
        if (list_.contains(i))
            list_.move_to_front(i);
        else
            list_.push_front(i);
    }
    void on_evict(ExpertId id) override {
        const uint32_t i = index_of(id, n_experts_);
        if (list_.contains(i)) list_.remove(i);
    }
    std::optional<ExpertId> victim(Evictable evictable, uint64_t) override {
        const uint32_t i = list_.last_evictable(evictable, n_experts_);
        if (i == kNone) return std::nullopt;
        return id_of(i, n_experts_);
    }

  private:
    uint32_t n_experts_;
    IndexList list_;
};

}  // namespace

std::unique_ptr<Policy> make_lru(const PolicyParams &p) {
    return std::make_unique<Lru>(p);
}

}  // namespace moerun::cache::detail
