// The predictor registry and the checks every predictor makes.
#include <array>
#include <stdexcept>
#include <string>

#include "predictor-impl.h"

namespace moerun::predictor {

namespace {
constexpr std::array<std::string_view, 2> kNames = {"previous", "transition"};
}

uint32_t Predictor::target_layer(uint32_t distance) const {
    return n_layers_ == 0 ? 0 : (last_layer_ + distance) % n_layers_;
}

void check_observe(const Shape &shape, const char *who, uint32_t layer, std::span<const uint16_t> experts) {
    if (layer >= shape.n_layers)
        throw std::invalid_argument(std::string(who) + ": layer " + std::to_string(layer) + " >= n_layers " +
                                    std::to_string(shape.n_layers));
    if (experts.size() > shape.top_k)
        throw std::invalid_argument(std::string(who) + ": " + std::to_string(experts.size()) +
                                    " experts observed at layer " + std::to_string(layer) + ", top_k is " +
                                    std::to_string(shape.top_k));
    for (const uint16_t e : experts)
        if (e >= shape.n_experts)
            throw std::invalid_argument(std::string(who) + ": expert " + std::to_string(e) + " at layer " +
                                        std::to_string(layer) + " >= n_experts " +
                                        std::to_string(shape.n_experts));
}

void check_distance(const PredictorParams &params, const char *who, uint32_t distance) {
    if (distance == 0 || distance > params.max_distance)
        throw std::invalid_argument(std::string(who) + ": distance " + std::to_string(distance) +
                                    " outside 1.." + std::to_string(params.max_distance));
}

size_t predict_likely(Predictor &p, uint32_t distance, float min_score, std::span<uint16_t> out,
                      std::span<float> score_scratch) {
    if (score_scratch.size() < out.size())
        throw std::invalid_argument("predict_likely: the score scratch is shorter than the output");
    size_t n = p.predict(distance, out, score_scratch.first(out.size()));
    while (n > 0 && score_scratch[n - 1] < min_score) --n;  // scores descend
    return n;
}

std::span<const std::string_view> predictor_names() {
    return kNames;
}

std::unique_ptr<Predictor> make_predictor(std::string_view name, const Shape &shape,
                                          const PredictorParams &params) {
    const std::string who = "predictor '" + std::string(name) + "'";
    if (shape.n_layers == 0 || shape.n_experts == 0 || shape.top_k == 0 || shape.top_k > shape.n_experts ||
        shape.n_experts > 65536)
        throw std::invalid_argument(
            who + ": shape needs n_layers >= 1 and 1 <= top_k <= n_experts <= 65536 (got " +
            std::to_string(shape.n_layers) + " layers, " + std::to_string(shape.n_experts) +
            " experts, top_k " + std::to_string(shape.top_k) + ")");
    if (params.max_distance == 0 || params.max_distance > shape.n_layers)
        throw std::invalid_argument(who + ": max_distance " + std::to_string(params.max_distance) +
                                    " outside 1..n_layers (" + std::to_string(shape.n_layers) + ")");
    if (!(params.recency >= 0.0f && params.recency <= 1e6f))
        throw std::invalid_argument(who + ": recency must be a finite value >= 0");
    if (name == "previous") return make_previous(shape, params);
    if (name == "transition") return make_transition(shape, params);
    std::string known;
    for (const std::string_view n : kNames) known += (known.empty() ? "" : ", ") + std::string(n);
    throw std::invalid_argument("unknown predictor '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace moerun::predictor
