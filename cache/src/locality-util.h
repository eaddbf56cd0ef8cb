// Shared by the locality metrics (locality-*.cpp): trace checks and the token ranges of the
// sequences.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moerun/cache/trace.h"

namespace moerun::cache::locality_detail {

struct Range {
    uint64_t first = 0, n = 0;
};

// Throws std::invalid_argument("<what>: ...") when the trace's arrays do not match its shape, an id
// is out of range, a sequence lies outside the tokens, or n_layers x n_experts exceeds 2^24.
void check_trace(const Trace &trace, const char *what);

// The tokens of each sequence with at least one token, in order; the whole trace as one sequence
// when it lists none.
std::vector<Range> sequence_ranges(const Trace &trace);

}  // namespace moerun::cache::locality_detail
