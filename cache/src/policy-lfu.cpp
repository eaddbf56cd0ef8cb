// LFU with aging: evict the entry with the smallest use count; ties go to the least recently used.
// Counts halve every lfu_half_life steps (step = now / n_layers), so experts that were popular
// long ago do not squat slots forever. The halving is lazy: each entry keeps its count and the
// aging epoch it was last brought up to date in, and is shifted right by the epochs since.
// An insert (demand or prefetch) starts the count at 1; counts live only while resident.
#include "policy-util.h"

namespace moerun::cache::detail {
namespace {

class Lfu final : public Policy {
  public:
    explicit Lfu(const PolicyParams &p)
        : n_layers_(p.n_layers),
          n_experts_(p.n_experts),
          half_life_(p.lfu_half_life),
          resident_(p.n_layers * p.n_experts),
          count_(p.n_layers * p.n_experts, 0),
          epoch_(p.n_layers * p.n_experts, 0),
          seq_(p.n_layers * p.n_experts, 0) {}

    std::string_view name() const override { return "lfu"; }
    void on_hit(ExpertId id, uint64_t now) override {
        const uint32_t i = index_of(id, n_experts_);
        const uint64_t e = epoch(now);
        count_[i] = aged(i, e) + 1;
        epoch_[i] = e;
        seq_[i] = ++tick_;
    }
    void on_insert(ExpertId id, uint64_t now, bool) override {
        const uint32_t i = index_of(id, n_experts_);
        resident_.insert(i);
        count_[i] = 1;
        epoch_[i] = epoch(now);
        seq_[i] = ++tick_;
    }
    void on_evict(ExpertId id) override { resident_.erase(index_of(id, n_experts_)); }
    std::optional<ExpertId> victim(Evictable evictable, uint64_t now) override {
        const uint64_t e = epoch(now);
        uint32_t best = kNone;
        uint64_t best_count = 0, best_seq = 0;
        for (uint32_t i : resident_.items()) {
            const uint64_t c = aged(i, e);
            if (best != kNone && (c > best_count || (c == best_count && seq_[i] > best_seq))) continue;
            if (!evictable(id_of(i, n_experts_))) continue;
            best = i;
            best_count = c;
            best_seq = seq_[i];
        }
        if (best == kNone) return std::nullopt;
        return id_of(best, n_experts_);
    }

  private:
    uint64_t epoch(uint64_t now) const { return now / n_layers_ / half_life_; }
    uint64_t aged(uint32_t i, uint64_t e) const {
        const uint64_t d = e > epoch_[i] ? e - epoch_[i] : 0;
        return d >= 64 ? 0 : count_[i] >> d;
    }

    uint32_t n_layers_, n_experts_, half_life_;
    ResidentSet resident_;
    std::vector<uint64_t> count_, epoch_, seq_;  // [n_layers * n_experts]
    uint64_t tick_ = 0;                          // event counter: the LRU tie-break
};

}  // namespace

std::unique_ptr<Policy> make_lfu(const PolicyParams &p) {
    return std::make_unique<Lfu>(p);
}

}  // namespace moerun::cache::detail
