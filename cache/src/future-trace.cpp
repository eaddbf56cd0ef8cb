// FutureTrace: per (layer, expert), the sorted times at which it is used. next_use starts from a
// per-entry cursor (replays ask with a rising clock) and falls back to a binary search. Built
// once before a replay, so the appends may allocate; lookups never do.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "moerun/cache/policy.h"

namespace moerun::cache {

FutureTrace::FutureTrace(uint32_t n_layers, uint32_t n_experts) : n_layers_(n_layers), n_experts_(n_experts) {
    if (n_layers == 0 || n_experts == 0)
        throw std::invalid_argument("FutureTrace: n_layers and n_experts must be >= 1");
    uses_.resize(size_t{n_layers} * n_experts);
    cursor_.assign(size_t{n_layers} * n_experts, 0);
}

void FutureTrace::push_step(std::span<const std::span<const uint16_t>> experts_per_layer) {
    if (experts_per_layer.size() != n_layers_)
        throw std::invalid_argument("FutureTrace::push_step: expected " + std::to_string(n_layers_) +
                                    " layers, got " + std::to_string(experts_per_layer.size()));
    for (uint32_t l = 0; l < n_layers_; ++l) {
        const uint64_t t = n_steps_ * n_layers_ + l;
        for (uint16_t e : experts_per_layer[l]) {
            if (e >= n_experts_)
                throw std::invalid_argument("FutureTrace::push_step: expert " + std::to_string(e) +
                                            " at layer " + std::to_string(l) + " is >= n_experts " +
                                            std::to_string(n_experts_));
            std::vector<uint64_t> &u = uses_[size_t{l} * n_experts_ + e];
            if (u.empty() || u.back() != t) u.push_back(t);  // a repeated id counts once
        }
    }
    ++n_steps_;
}

uint64_t FutureTrace::next_use(ExpertId id, uint64_t now) const {
    if (id.layer >= n_layers_ || id.expert >= n_experts_) return UINT64_MAX;
    const size_t i = size_t{id.layer} * n_experts_ + id.expert;
    const std::vector<uint64_t> &u = uses_[i];
    // The answer is the first use > now. Try the cursor and the few entries after it first.
    size_t c = std::min<size_t>(cursor_[i], u.size());
    if (c == 0 || u[c - 1] <= now) {
        for (size_t k = 0; k < 4 && c < u.size() && u[c] <= now; ++k) ++c;
        if (c < u.size() && u[c] <= now)
            c = size_t(std::upper_bound(u.begin() + c, u.end(), now) - u.begin());
    } else {
        c = size_t(std::upper_bound(u.begin(), u.begin() + c, now) - u.begin());
    }
    cursor_[i] = static_cast<uint32_t>(c);
    return c == u.size() ? UINT64_MAX : u[c];
}

uint32_t FutureTrace::n_layers() const {
    return n_layers_;
}
uint32_t FutureTrace::n_experts() const {
    return n_experts_;
}
uint64_t FutureTrace::n_steps() const {
    return n_steps_;
}

}  // namespace moerun::cache
