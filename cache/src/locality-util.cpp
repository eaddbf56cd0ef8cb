// Trace checks and sequence ranges for the locality metrics (see locality-util.h).
#include "locality-util.h"

#include <stdexcept>

namespace moerun::cache::locality_detail {

void check_trace(const Trace &trace, const char *what) {
    const TraceShape &s = trace.shape;
    auto fail = [what](const std::string &m) { throw std::invalid_argument(std::string(what) + ": " + m); };
    if (s.n_layers == 0 || s.n_experts == 0 || s.top_k == 0)
        fail("the trace shape needs n_layers, n_experts and top_k >= 1");
    if (s.n_experts > 65536) fail("n_experts must be <= 65536");
    if (uint64_t{s.n_layers} * s.n_experts > (uint64_t{1} << 24))
        fail("n_layers x n_experts = " + std::to_string(uint64_t{s.n_layers} * s.n_experts) +
             " exceeds 2^24 experts");
    if (trace.experts.size() != trace.n_tokens() * s.n_layers * s.top_k)
        fail("experts holds " + std::to_string(trace.experts.size()) +
             " ids, expected n_tokens * n_layers * top_k = " +
             std::to_string(trace.n_tokens() * s.n_layers * s.top_k));
    for (uint16_t e : trace.experts)
        if (e >= s.n_experts)
            fail("expert id " + std::to_string(e) + " >= n_experts " + std::to_string(s.n_experts));
    for (const TraceSequence &q : trace.sequences)
        if (q.first > trace.n_tokens() || q.n_tokens > trace.n_tokens() - q.first)
            fail("sequence " + std::to_string(q.id) + " lies outside the trace's tokens");
}

std::vector<Range> sequence_ranges(const Trace &trace) {
    std::vector<Range> out;
    if (trace.sequences.empty()) {
        if (trace.n_tokens() > 0) out.push_back({0, trace.n_tokens()});
        return out;
    }
    for (const TraceSequence &q : trace.sequences)
        if (q.n_tokens > 0) out.push_back({q.first, q.n_tokens});
    return out;
}

}  // namespace moerun::cache::locality_detail
