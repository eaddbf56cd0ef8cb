// SCH, Segment Cache best Hit rate (see locality.h for the definition).
//
// The cache that evicts the expert with the fewest uses in the next L tokens (then the least
// recently used) has the inclusion property: its content at size C is the top C of one stack
// (Mattson et al. 1970). On a use of x at depth d, x goes on top and the entries above d are
// carried down: at each level the carried entry and the one there are compared and the one with
// the lower priority goes on down; what is carried last fills depth d. A use is a hit for every
// C > its depth before the token. Entries are ids in one partition (a layer's experts, or every
// (layer, expert) for the global cache).
#include <algorithm>
#include <stdexcept>

#include "locality-util.h"
#include "moerun/cache/locality.h"

namespace moerun::cache {
namespace {

constexpr uint32_t kAbsent = UINT32_MAX;

// One sequence of one partition: `tokens` lists per token the ids it uses (`per_token` each).
class SegmentStack {
  public:
    explicit SegmentStack(uint32_t n_ids) : future_(n_ids), last_(n_ids), depth_(n_ids) {}

    // Adds to hist[d] the uses found at depth d (a first use: the free slot it would take).
    void run(const std::vector<uint32_t> &tokens, size_t per_token, uint32_t L, std::vector<uint64_t> &hist) {
        const size_t n = per_token ? tokens.size() / per_token : 0;
        std::fill(future_.begin(), future_.end(), 0u);
        std::fill(depth_.begin(), depth_.end(), kAbsent);
        stack_.clear();
        for (size_t t = 0; t < std::min<size_t>(L, n); ++t)
            for (size_t i = 0; i < per_token; ++i) ++future_[tokens[t * per_token + i]];
        for (size_t t = 0; t < n; ++t) {
            const uint32_t *use = tokens.data() + t * per_token;
            size_t fresh = stack_.size();
            for (size_t i = 0; i < per_token; ++i) {
                const uint32_t d = depth_[use[i]];
                ++hist[d == kAbsent ? fresh++ : d];
            }
            for (size_t i = 0; i < per_token; ++i) {
                move_to_top(use[i]);
                --future_[use[i]];
                last_[use[i]] = ++clock_;
            }
            if (t + L < n)
                for (size_t i = 0; i < per_token; ++i) ++future_[tokens[(t + L) * per_token + i]];
        }
    }

  private:
    bool higher(uint32_t a, uint32_t b) const {  // priority of a above that of b
        return future_[a] != future_[b] ? future_[a] > future_[b] : last_[a] > last_[b];
    }
    void place(uint32_t id, uint32_t d) {
        stack_[d] = id;
        depth_[id] = d;
    }
    void move_to_top(uint32_t x) {
        uint32_t d = depth_[x];
        if (d == 0) return;
        if (d == kAbsent) {
            d = uint32_t(stack_.size());
            stack_.push_back(x);
        }
        uint32_t carry = stack_[0];
        place(x, 0);
        for (uint32_t j = 1; j < d; ++j)
            if (higher(carry, stack_[j])) {
                const uint32_t down = stack_[j];
                place(carry, j);
                carry = down;
            }
        place(carry, d);
    }

    std::vector<uint32_t> future_;  // [ids] uses in the current token and the L-1 after it, not yet served
    std::vector<uint64_t> last_;    // [ids] clock of the last use
    std::vector<uint32_t> depth_;   // [ids] depth in the stack, kAbsent before the first use
    std::vector<uint32_t> stack_;   // ids, top (highest priority) first
    uint64_t clock_ = 0;
};

}  // namespace

SchResult segment_cache_best_hit_rate(const Trace &trace, uint32_t segment_len,
                                      std::span<const uint32_t> capacities, Partitioning partitioning) {
    locality_detail::check_trace(trace, "SCH");
    if (segment_len == 0) throw std::invalid_argument("SCH: the segment length must be >= 1");
    for (uint32_t c : capacities)
        if (c == 0) throw std::invalid_argument("SCH: cache sizes must be >= 1");
    const TraceShape &s = trace.shape;
    const bool global = partitioning == Partitioning::global;
    const uint32_t n_ids = global ? s.n_layers * s.n_experts : s.n_experts;
    const size_t per_token = global ? size_t{s.n_layers} * s.top_k : s.top_k;

    SchResult r;
    r.segment_len = segment_len;
    r.partitioning = partitioning;
    r.capacities.assign(capacities.begin(), capacities.end());
    r.hit_rate.assign(capacities.size(), 0);
    r.seq_min.assign(capacities.size(), 1);
    r.seq_max.assign(capacities.size(), 0);

    SegmentStack stack(n_ids);
    std::vector<uint32_t> tokens;
    std::vector<uint64_t> hist(size_t{n_ids} + per_token + 1);
    for (const auto &q : locality_detail::sequence_ranges(trace)) {
        std::fill(hist.begin(), hist.end(), 0u);
        if (global) {
            tokens.clear();
            for (uint64_t t = q.first; t < q.first + q.n; ++t)
                for (uint32_t l = 0; l < s.n_layers; ++l)
                    for (uint16_t e : trace.experts_at(t, l)) tokens.push_back(l * s.n_experts + e);
            stack.run(tokens, per_token, segment_len, hist);
        } else {
            for (uint32_t l = 0; l < s.n_layers; ++l) {
                tokens.clear();
                for (uint64_t t = q.first; t < q.first + q.n; ++t)
                    for (uint16_t e : trace.experts_at(t, l)) tokens.push_back(e);
                stack.run(tokens, per_token, segment_len, hist);
            }
        }
        const double uses = double(q.n) * double(s.n_layers) * double(s.top_k);
        for (size_t i = 0; i < capacities.size(); ++i) {
            uint64_t hits = 0;
            for (size_t d = 0; d < std::min<size_t>(capacities[i], hist.size()); ++d) hits += hist[d];
            const double rate = double(hits) / uses;
            r.hit_rate[i] += rate;
            r.seq_min[i] = std::min(r.seq_min[i], rate);
            r.seq_max[i] = std::max(r.seq_max[i], rate);
        }
        ++r.sequences;
    }
    for (size_t i = 0; i < capacities.size(); ++i) {
        if (r.sequences)
            r.hit_rate[i] /= double(r.sequences);
        else
            r.seq_min[i] = 0;
    }
    return r;
}

}  // namespace moerun::cache
