// Expert popularity per layer (counts, top-10% share, Gini, entropy) and consecutive-token
// overlap (see locality.h).
#include <algorithm>
#include <cmath>

#include "locality-util.h"
#include "moerun/cache/locality.h"

namespace moerun::cache {
namespace {

void skew(std::span<const uint64_t> counts, double &top10, double &gini, double &entropy) {
    const size_t n = counts.size();
    std::vector<uint64_t> sorted(counts.begin(), counts.end());
    std::sort(sorted.begin(), sorted.end());
    double total = 0;
    for (uint64_t c : sorted) total += double(c);
    top10 = gini = entropy = 0;
    if (total == 0) return;
    const size_t top = std::max<size_t>(1, (n + 9) / 10);
    double weighted = 0, top_sum = 0;
    for (size_t i = 0; i < n; ++i) {
        weighted += double(i + 1) * double(sorted[i]);
        if (i >= n - top) top_sum += double(sorted[i]);
        if (sorted[i]) {
            const double p = double(sorted[i]) / total;
            entropy -= p * std::log(p);
        }
    }
    top10 = top_sum / total;
    gini = 2 * weighted / (double(n) * total) - double(n + 1) / double(n);
    entropy = n > 1 ? entropy / std::log(double(n)) : 1.0;
}

}  // namespace

PopularityResult routing_popularity(const Trace &trace) {
    locality_detail::check_trace(trace, "popularity");
    const TraceShape &s = trace.shape;
    PopularityResult r;
    r.counts.assign(size_t{s.n_layers} * s.n_experts, 0);
    r.top10_share.assign(s.n_layers, 0);
    r.gini.assign(s.n_layers, 0);
    r.entropy.assign(s.n_layers, 0);
    r.overlap.assign(s.n_layers, 0);
    r.random_overlap = double(s.top_k) / double(s.n_experts);

    std::vector<uint64_t> stamp(s.n_experts, 0);
    uint64_t tick = 0;
    for (const auto &q : locality_detail::sequence_ranges(trace)) r.pairs += q.n - 1;
    for (uint32_t l = 0; l < s.n_layers; ++l) {
        uint64_t shared = 0;
        for (const auto &q : locality_detail::sequence_ranges(trace)) {
            for (uint64_t t = q.first; t < q.first + q.n; ++t) {
                ++tick;
                for (uint16_t e : trace.experts_at(t, l)) {
                    ++r.counts[size_t{l} * s.n_experts + e];
                    if (t > q.first && stamp[e] == tick - 1) ++shared;  // used by the previous token
                }
                for (uint16_t e : trace.experts_at(t, l)) stamp[e] = tick;
            }
            ++tick;  // no overlap across a sequence boundary
        }
        if (r.pairs) r.overlap[l] = double(shared) / (double(r.pairs) * double(s.top_k));
        skew(std::span<const uint64_t>(r.counts).subspan(size_t{l} * s.n_experts, s.n_experts),
             r.top10_share[l], r.gini[l], r.entropy[l]);
        r.mean_overlap += r.overlap[l] / double(s.n_layers);
    }
    return r;
}

}  // namespace moerun::cache
