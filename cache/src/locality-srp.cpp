// SRP, Segment Routing best Performance (see locality.h for the definition).
//
// Per layer, a histogram over every (window, expert) of how many tokens of the window used the
// expert: hist[c], c = 0..m. With the group "used >= j times": hits(j) = sum_{c>=j} c hist[c],
// group(j) = sum_{c>=j} hist[c], predictions = m group(j), uses = m top_k windows, and
// F1(j) = 2 hits / (predictions + uses). The window slides one token at a time, so the histogram
// of the current window is kept up to date as counts change and added to the layer's total.
#include <algorithm>
#include <stdexcept>

#include "locality-util.h"
#include "moerun/cache/locality.h"

namespace moerun::cache {
namespace {

struct Best {
    double f1 = 0, precision = 0, recall = 0, group = 0;
    uint32_t threshold = 0;
};

// The best threshold for histogram totals hist[0..m] over `windows` windows.
Best best_threshold(const std::vector<double> &hist, uint32_t m, uint64_t windows, uint32_t top_k) {
    Best best;
    if (windows == 0) return best;
    const double uses = double(m) * double(top_k) * double(windows);
    double hits = 0, group = 0;
    std::vector<double> f1(m + 1), hits_at(m + 1), group_at(m + 1);
    for (uint32_t j = m + 1; j-- > 0;) {  // suffix sums: j = m .. 0
        hits += double(j) * hist[j];
        group += hist[j];
        hits_at[j] = hits;
        group_at[j] = group;
        const double pred = double(m) * group;
        f1[j] = pred + uses > 0 ? 2 * hits / (pred + uses) : 0;
    }
    for (uint32_t j = 0; j <= m; ++j)
        if (f1[j] > best.f1) {
            best.f1 = f1[j];
            best.threshold = j;
            const double pred = double(m) * group_at[j];
            best.precision = pred > 0 ? hits_at[j] / pred : 0;
            best.recall = hits_at[j] / uses;
            best.group = group_at[j] / double(windows);
        }
    return best;
}

}  // namespace

SrpResult segment_routing_best_performance(const Trace &trace, uint32_t segment_len) {
    locality_detail::check_trace(trace, "SRP");
    if (segment_len == 0) throw std::invalid_argument("SRP: the segment length must be >= 1");
    const TraceShape &s = trace.shape;
    const uint32_t m = segment_len, E = s.n_experts;
    SrpResult r;
    r.segment_len = m;
    r.layer_srp.assign(s.n_layers, 0);
    r.layer_threshold.assign(s.n_layers, 0);

    std::vector<double> all(m + 1, 0), layer_hist(m + 1);
    std::vector<uint64_t> window_hist(m + 1);
    std::vector<uint32_t> cnt(E);
    const std::vector<locality_detail::Range> ranges = locality_detail::sequence_ranges(trace);
    for (const auto &q : ranges) r.windows += q.n >= m ? q.n - m + 1 : 0;

    for (uint32_t l = 0; l < s.n_layers; ++l) {
        std::fill(layer_hist.begin(), layer_hist.end(), 0.0);
        for (const auto &q : ranges) {
            if (q.n < m) continue;
            std::fill(cnt.begin(), cnt.end(), 0u);
            std::fill(window_hist.begin(), window_hist.end(), 0u);
            window_hist[0] = E;
            auto change = [&](uint64_t token, int delta) {
                for (uint16_t e : trace.experts_at(token, l)) {
                    --window_hist[cnt[e]];
                    cnt[e] = uint32_t(int64_t(cnt[e]) + delta);
                    ++window_hist[cnt[e]];
                }
            };
            for (uint64_t t = q.first; t < q.first + m; ++t) change(t, +1);
            for (uint64_t start = q.first;; ++start) {
                for (uint32_t c = 0; c <= m; ++c) layer_hist[c] += double(window_hist[c]);
                if (start + m >= q.first + q.n) break;
                change(start, -1);
                change(start + m, +1);
            }
        }
        const Best b = best_threshold(layer_hist, m, r.windows, s.top_k);
        r.layer_srp[l] = b.f1;
        r.layer_threshold[l] = b.threshold;
        for (uint32_t c = 0; c <= m; ++c) all[c] += layer_hist[c];
    }
    const Best b = best_threshold(all, m, r.windows * s.n_layers, s.top_k);
    r.srp = b.f1;
    r.threshold = b.threshold;
    r.precision = b.precision;
    r.recall = b.recall;
    r.group_size = b.group;
    return r;
}

}  // namespace moerun::cache
