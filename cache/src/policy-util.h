// Private helpers shared by the policy implementations: dense entry indices and an intrusive
// doubly linked list over them.
//
// Every policy preallocates its state for all n_layers * n_experts entries at construction, so
// that no event allocates. An entry's index is layer * n_experts + expert.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "moerun/cache/expert-id.h"
#include "moerun/cache/policy.h"

namespace moerun::cache::detail {

inline constexpr uint32_t kNone = UINT32_MAX;

inline uint32_t index_of(ExpertId id, uint32_t n_experts) {
    return id.layer * n_experts + id.expert;
}
inline ExpertId id_of(uint32_t index, uint32_t n_experts) {
    return {index / n_experts, index % n_experts};
}

// Doubly linked list of entry indices, links stored in arrays sized once. head = most recent
// (MRU) end, tail = least recent (LRU) end. One list object may share its link arrays with no
// other list: each entry is in at most one list of a given IndexList.
class IndexList {
  public:
    explicit IndexList(uint32_t n) : prev_(n, kNone), next_(n, kNone), in_(n, 0) {}

    bool contains(uint32_t i) const { return in_[i] != 0; }
    uint32_t size() const { return size_; }
    uint32_t head() const { return head_; }
    uint32_t tail() const { return tail_; }
    uint32_t prev(uint32_t i) const { return prev_[i]; }  // towards the head

    void push_front(uint32_t i) {
        prev_[i] = kNone;
        next_[i] = head_;
        if (head_ != kNone) prev_[head_] = i;
        head_ = i;
        if (tail_ == kNone) tail_ = i;
        in_[i] = 1;
        ++size_;
    }
    void remove(uint32_t i) {
        if (prev_[i] != kNone)
            next_[prev_[i]] = next_[i];
        else
            head_ = next_[i];
        if (next_[i] != kNone)
            prev_[next_[i]] = prev_[i];
        else
            tail_ = prev_[i];
        prev_[i] = next_[i] = kNone;
        in_[i] = 0;
        --size_;
    }
    void move_to_front(uint32_t i) {
        remove(i);
        push_front(i);
    }
    // The entry nearest the tail that `evictable` accepts, or kNone.
    uint32_t last_evictable(const Evictable &evictable, uint32_t n_experts) const {
        for (uint32_t i = tail_; i != kNone; i = prev_[i])
            if (evictable(id_of(i, n_experts))) return i;
        return kNone;
    }

  private:
    std::vector<uint32_t> prev_, next_;
    std::vector<uint8_t> in_;
    uint32_t head_ = kNone, tail_ = kNone, size_ = 0;
};

// The resident entries as a dense array (swap-remove), for policies whose victim() scans every
// entry: a partition holds at most a few hundred entries, and a linear scan over a dense array
// beats a heap whose keys change on almost every event.
class ResidentSet {
  public:
    explicit ResidentSet(uint32_t n) : pos_(n, kNone) { items_.reserve(n); }

    bool contains(uint32_t i) const { return pos_[i] != kNone; }
    void insert(uint32_t i) {
        if (contains(i)) return;
        pos_[i] = static_cast<uint32_t>(items_.size());
        items_.push_back(i);  // never reallocates: reserved for every entry
    }
    void erase(uint32_t i) {
        if (!contains(i)) return;
        const uint32_t p = pos_[i], last = items_.back();
        items_[p] = last;
        pos_[last] = p;
        items_.pop_back();
        pos_[i] = kNone;
    }
    const std::vector<uint32_t> &items() const { return items_; }

  private:
    std::vector<uint32_t> pos_;
    std::vector<uint32_t> items_;
};

// The checks every policy shares (make_policy applies them before construction).
inline void check_common(std::string_view name, const PolicyParams &p) {
    auto fail = [&](const std::string &what) {
        throw std::invalid_argument("policy '" + std::string(name) + "': " + what);
    };
    if (p.capacity < 1) fail("capacity must be >= 1");
    if (p.n_layers < 1 || p.n_experts < 1) fail("n_layers and n_experts must be >= 1");
    if (uint64_t{p.n_layers} * p.n_experts > UINT32_MAX / 2) fail("n_layers * n_experts is too large");
}

// One constructor per policy file; make_policy (policy-registry.cpp) validates the parameters the
// policy needs and dispatches by name.
std::unique_ptr<Policy> make_lru(const PolicyParams &p);
std::unique_ptr<Policy> make_slru(const PolicyParams &p);
std::unique_ptr<Policy> make_lfu(const PolicyParams &p);
std::unique_ptr<Policy> make_segment(const PolicyParams &p);
std::unique_ptr<Policy> make_least_stale(const PolicyParams &p);
std::unique_ptr<Policy> make_belady(const PolicyParams &p);

}  // namespace moerun::cache::detail
