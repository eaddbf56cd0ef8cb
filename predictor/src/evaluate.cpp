// Precision and recall of a predictor replayed over a routing sequence.
#include "moerun/predictor/evaluate.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace moerun::predictor {

std::vector<DistanceScore> evaluate(Predictor &p, const Shape &shape, std::span<const uint16_t> experts,
                                    std::span<const uint64_t> sequence_starts,
                                    std::span<const uint32_t> distances, bool reset_per_sequence) {
    const uint64_t L = shape.n_layers, K = shape.top_k;
    if (L == 0 || K == 0 || experts.size() % (L * K) != 0)
        throw std::invalid_argument("predictor evaluation: " + std::to_string(experts.size()) +
                                    " expert ids are not a whole number of tokens of " + std::to_string(L) +
                                    " layers x top_k " + std::to_string(K));
    const uint64_t n_tokens = experts.size() / (L * K);
    for (size_t i = 0; i < sequence_starts.size(); ++i)
        if (sequence_starts[i] > n_tokens || (i > 0 && sequence_starts[i] <= sequence_starts[i - 1]))
            throw std::invalid_argument("predictor evaluation: sequence starts must ascend within the " +
                                        std::to_string(n_tokens) + " tokens");
    std::vector<DistanceScore> scores(distances.size());
    for (size_t i = 0; i < distances.size(); ++i) scores[i].distance = distances[i];
    std::vector<uint16_t> out(static_cast<size_t>(K));

    size_t next_start = 0;  // index into sequence_starts
    uint64_t seq_end = n_tokens;
    auto at = [&](uint64_t pos) {
        return experts.subspan(static_cast<size_t>(pos * K), static_cast<size_t>(K));
    };
    for (uint64_t t = 0; t < n_tokens; ++t) {
        if (next_start < sequence_starts.size() && sequence_starts[next_start] == t) {
            ++next_start;
            if (t > 0 && reset_per_sequence) p.reset();
        }
        if (t == 0 || (next_start > 0 && sequence_starts[next_start - 1] == t))
            seq_end = next_start < sequence_starts.size() ? sequence_starts[next_start] : n_tokens;
        for (uint64_t l = 0; l < L; ++l) {
            const uint64_t pos = t * L + l;
            p.observe(static_cast<uint32_t>(l), at(pos));
            for (DistanceScore &s : scores) {
                const uint64_t target = pos + s.distance;
                if (target >= seq_end * L) continue;
                const size_t n = p.predict(s.distance, out);
                const std::span<const uint16_t> truth = at(target);
                ++s.predictions;
                s.predicted += n;
                s.selected += truth.size();
                for (size_t i = 0; i < n; ++i)
                    s.correct += std::find(truth.begin(), truth.end(), out[i]) != truth.end() ? 1 : 0;
            }
        }
    }
    return scores;
}

}  // namespace moerun::predictor
