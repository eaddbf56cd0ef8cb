// Predictor evaluation over a recorded routing sequence: at every position, after observing it,
// each distance d's prediction of top_k experts is compared with the selection d positions later
// (within the same sequence). Used by `moerun profile predict` and the predictor tests.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "moerun/predictor/predictor.h"

namespace moerun::predictor {

struct DistanceScore {
    uint32_t distance = 0;
    uint64_t predictions = 0;  // positions predicted
    uint64_t predicted = 0;    // expert ids predicted (<= top_k per prediction)
    uint64_t correct = 0;      // of those, selected at the target
    uint64_t selected = 0;     // expert ids selected at the targets
    double precision() const { return predicted ? double(correct) / double(predicted) : 0.0; }
    double recall() const { return selected ? double(correct) / double(selected) : 0.0; }
};

// experts: [n_tokens, n_layers, top_k] in decode order; sequence_starts: the first token of each
// sequence (ascending; token 0 is a start whether listed or not). Predictions never cross into the
// next sequence; with reset_per_sequence the predictor is reset at each start (else it stays warm).
// Throws std::invalid_argument when the arrays do not match the shape or a distance is out of range.
std::vector<DistanceScore> evaluate(Predictor &p, const Shape &shape, std::span<const uint16_t> experts,
                                    std::span<const uint64_t> sequence_starts,
                                    std::span<const uint32_t> distances, bool reset_per_sequence);

}  // namespace moerun::predictor
