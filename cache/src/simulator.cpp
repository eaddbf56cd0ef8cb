// Trace replay through one eviction policy (see simulator.h for the serving order).
//
// State is sized once per replay: residency, pin marks and "prefetched, not yet used" flags per
// (layer, expert), and one policy per partition. Pinning is a mark per entry compared with the
// mark of the (step, layer) being served, so nothing is cleared between layers.
#include "moerun/cache/simulator.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>

namespace moerun::cache {
namespace {

class Replay {
  public:
    Replay(const Trace &trace, const SimOptions &opt, const FutureTrace *future)
        : opt_(opt),
          n_layers_(trace.shape.n_layers),
          n_experts_(trace.shape.n_experts),
          n_entries_(size_t{n_layers_} * n_experts_),
          resident_(n_entries_, 0),
          prefetched_(n_entries_, 0),
          seen_(n_entries_, 0),
          pin_(n_entries_, 0),
          counts_(n_layers_),
          predicted_(n_experts_) {
        params_ = opt.params;
        params_.capacity = opt.capacity;
        params_.n_layers = n_layers_;
        params_.n_experts = n_experts_;
        params_.top_k = trace.shape.top_k;
        params_.future = future;
        const size_t n_parts = opt.partitioning == Partitioning::per_layer ? n_layers_ : 1;
        used_.assign(n_parts, 0);
        for (size_t p = 0; p < n_parts; ++p) policies_.push_back(make_policy(opt.policy, params_));
        bytes_ = opt.expert_bytes.empty() ? trace.shape.expert_bytes : opt.expert_bytes;
        bytes_.resize(n_layers_, 0);
    }

    // Serves the experts of (step, layer), pinned while they are acquired.
    void acquire(uint64_t step, uint32_t layer, std::span<const uint16_t> experts) {
        const uint64_t now = step * n_layers_ + layer;
        pin(experts, layer);
        Policy &policy = partition_policy(layer);
        SimCounts &c = counts_[layer];
        for (uint16_t e : experts) {
            const ExpertId id{layer, e};
            const size_t i = index(id);
            ++c.accesses;
            if (resident_[i]) {
                ++c.hits;
                if (prefetched_[i]) {
                    prefetched_[i] = 0;
                    ++c.prefetches_used;
                }
                policy.on_hit(id, now);
            } else {
                ++c.misses;
                if (!seen_[i]) ++c.cold_misses;
                if (!make_room(layer, now))
                    throw std::logic_error("simulate: policy '" + opt_.policy +
                                           "' found no victim while serving a miss");
                insert(id, now, false);
                c.bytes_moved += bytes_[layer];
            }
            seen_[i] = 1;
        }
    }

    // After (step, layer) is served: loads the experts the prefetcher predicts for a later layer.
    void prefetch(uint64_t step, uint32_t layer, uint64_t target_token, uint32_t target_layer) {
        const uint64_t now = step * n_layers_ + layer;
        const size_t n = opt_.prefetcher.fn(opt_.prefetcher.ctx, target_token, target_layer, predicted_);
        const std::span<const uint16_t> predicted(predicted_.data(), std::min(n, predicted_.size()));
        for (uint16_t e : predicted)
            if (e >= n_experts_)
                throw std::invalid_argument("simulate: prefetcher predicted expert " + std::to_string(e) +
                                            " >= n_experts");
        pin(predicted, target_layer);
        SimCounts &c = counts_[target_layer];
        for (uint16_t e : predicted) {
            const ExpertId id{target_layer, e};
            if (resident_[index(id)]) continue;
            if (!make_room(target_layer, now)) return;  // everything pinned: drop the prefetch
            insert(id, now, true);
            prefetched_[index(id)] = 1;
            ++c.prefetches_issued;
            c.bytes_moved += bytes_[target_layer];
        }
    }

    // Empties every partition (a new sequence with reset_on_sequence).
    void reset() {
        for (size_t i = 0; i < n_entries_; ++i) {
            if (prefetched_[i]) ++counts_[i / n_experts_].prefetches_wasted;
            resident_[i] = prefetched_[i] = 0;
        }
        for (size_t p = 0; p < policies_.size(); ++p) {
            policies_[p] = make_policy(opt_.policy, params_);
            used_[p] = 0;
        }
    }

    SimResult finish(uint64_t tokens) {
        for (size_t i = 0; i < n_entries_; ++i)  // never used before the end of the replay
            if (prefetched_[i]) ++counts_[i / n_experts_].prefetches_wasted;
        SimResult r;
        r.policy = opt_.policy;
        r.capacity = opt_.capacity;
        r.partitioning = opt_.partitioning;
        r.tokens = tokens;
        for (const SimCounts &c : counts_) {
            r.total.accesses += c.accesses;
            r.total.hits += c.hits;
            r.total.misses += c.misses;
            r.total.cold_misses += c.cold_misses;
            r.total.evictions += c.evictions;
            r.total.prefetches_issued += c.prefetches_issued;
            r.total.prefetches_used += c.prefetches_used;
            r.total.prefetches_wasted += c.prefetches_wasted;
            r.total.bytes_moved += c.bytes_moved;
        }
        r.per_layer = counts_;
        return r;
    }

  private:
    size_t index(ExpertId id) const { return size_t{id.layer} * n_experts_ + id.expert; }
    size_t partition(uint32_t layer) const {
        return opt_.partitioning == Partitioning::per_layer ? layer : 0;
    }
    Policy &partition_policy(uint32_t layer) { return *policies_[partition(layer)]; }

    void pin(std::span<const uint16_t> experts, uint32_t layer) {
        ++mark_;
        for (uint16_t e : experts) pin_[index(ExpertId{layer, e})] = mark_;
    }
    static bool evictable(const void *ctx, ExpertId id) {
        const Replay &r = *static_cast<const Replay *>(ctx);
        return r.pin_[r.index(id)] != r.mark_;
    }

    // Evicts one entry of the layer's partition if it is full; false when none is evictable.
    bool make_room(uint32_t layer, uint64_t now) {
        const size_t p = partition(layer);
        if (used_[p] < opt_.capacity) return true;
        const std::optional<ExpertId> v = policies_[p]->victim(Evictable{&Replay::evictable, this}, now);
        if (!v) return false;
        const size_t i = index(*v);
        if (v->layer >= n_layers_ || v->expert >= n_experts_ || !resident_[i] || pin_[i] == mark_ ||
            partition(v->layer) != p)
            throw std::logic_error("simulate: policy '" + opt_.policy +
                                   "' named a victim that is not resident and evictable");
        resident_[i] = 0;
        --used_[p];
        if (prefetched_[i]) {
            prefetched_[i] = 0;
            ++counts_[v->layer].prefetches_wasted;
        }
        ++counts_[v->layer].evictions;
        policies_[p]->on_evict(*v);
        return true;
    }
    void insert(ExpertId id, uint64_t now, bool prefetch) {
        resident_[index(id)] = 1;
        ++used_[partition(id.layer)];
        partition_policy(id.layer).on_insert(id, now, prefetch);
    }

    const SimOptions &opt_;
    uint32_t n_layers_, n_experts_;
    size_t n_entries_;
    PolicyParams params_;
    std::vector<std::unique_ptr<Policy>> policies_;  // [partitions]
    std::vector<uint32_t> used_;                     // [partitions] resident entries
    std::vector<uint8_t> resident_, prefetched_, seen_;
    std::vector<uint64_t> pin_;  // [n_layers * n_experts] mark of the pin, current if == mark_
    uint64_t mark_ = 0;
    std::vector<SimCounts> counts_;  // [n_layers]
    std::vector<uint64_t> bytes_;    // [n_layers]
    std::vector<uint16_t> predicted_;
};

void check(const Trace &trace, const SimOptions &opt) {
    const TraceShape &s = trace.shape;
    auto fail = [](const std::string &what) { throw std::invalid_argument("simulate: " + what); };
    if (s.n_layers == 0 || s.n_experts == 0 || s.top_k == 0)
        fail("the trace shape needs n_layers, n_experts and top_k >= 1");
    if (s.n_experts > 65536) fail("n_experts must be <= 65536");
    if (trace.experts.size() != trace.n_tokens() * s.n_layers * s.top_k)
        fail("experts holds " + std::to_string(trace.experts.size()) +
             " ids, expected n_tokens * n_layers * top_k = " +
             std::to_string(trace.n_tokens() * s.n_layers * s.top_k));
    if (!trace.prefill.empty() && trace.prefill.size() != trace.n_tokens())
        fail("prefill must be empty or hold one flag per token");
    if (opt.capacity < s.top_k)
        fail("capacity " + std::to_string(opt.capacity) + " is below top_k " + std::to_string(s.top_k) +
             (opt.partitioning == Partitioning::per_layer ? " (per-layer slots)" : " (global slots)") +
             ": the experts of one layer could not all be resident");
    if (!opt.expert_bytes.empty() && opt.expert_bytes.size() != s.n_layers)
        fail("expert_bytes must hold one size per layer");
    for (uint16_t e : trace.experts)
        if (e >= s.n_experts)
            fail("expert id " + std::to_string(e) + " >= n_experts " + std::to_string(s.n_experts));
}

}  // namespace

SimResult simulate(const Trace &trace, const SimOptions &options) {
    check(trace, options);
    const uint32_t n_layers = trace.shape.n_layers;

    // The replayed tokens, and which of them start a sequence.
    std::vector<uint64_t> tokens;
    tokens.reserve(trace.n_tokens());
    for (uint64_t t = 0; t < trace.n_tokens(); ++t)
        if (!(options.skip_prefill && !trace.prefill.empty() && trace.prefill[t])) tokens.push_back(t);
    std::vector<uint8_t> starts(trace.n_tokens(), 0);
    for (const TraceSequence &s : trace.sequences)
        if (s.first < trace.n_tokens()) starts[s.first] = 1;

    std::optional<FutureTrace> future;
    if (options.policy == "belady") {
        future.emplace(n_layers, trace.shape.n_experts);
        std::vector<std::span<const uint16_t>> step(n_layers);
        for (uint64_t t : tokens) {
            for (uint32_t l = 0; l < n_layers; ++l) step[l] = trace.experts_at(t, l);
            future->push_step(step);
        }
    }

    Replay replay(trace, options, future ? &*future : nullptr);
    // A sequence start resets only after a replayed token, so a reset is never a no-op.
    bool any = false;
    for (uint64_t step = 0; step < tokens.size(); ++step) {
        const uint64_t t = tokens[step];
        if (options.reset_on_sequence && any && starts[t]) replay.reset();
        any = true;
        for (uint32_t l = 0; l < n_layers; ++l) {
            replay.acquire(step, l, trace.experts_at(t, l));
            if (!options.prefetcher) continue;
            if (options.prefetcher.observe) options.prefetcher.observe(options.prefetcher.ctx, t, l);
            const uint64_t target = step * n_layers + l + options.prefetcher.distance;
            const uint64_t target_step = target / n_layers;
            if (options.prefetcher.distance == 0 || target_step >= tokens.size()) continue;
            replay.prefetch(step, l, tokens[target_step], static_cast<uint32_t>(target % n_layers));
        }
    }
    return replay.finish(tokens.size());
}

}  // namespace moerun::cache
