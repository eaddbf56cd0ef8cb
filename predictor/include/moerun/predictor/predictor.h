// Routing-path predictors: from the experts a run has selected so far, guess the experts that a
// later layer will select, so the runtime can copy them towards the device before they are needed.
//
// The routing clock is one chain of positions (token t, layer l): ... (t, L-1), (t+1, 0), (t+1, 1)
// ... A predictor is told each position's selection in that order (observe), and guesses the
// selection `distance` positions after the last observed one (predict): distance 1 is the next
// layer of the same token, or layer 0 of the next token after the last layer. Predictors learn
// online from what they observe (no training data, no model weights) and never allocate after
// construction: observe and predict run on the decode path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace moerun::predictor {

struct Shape {
    uint32_t n_layers = 0;
    uint32_t n_experts = 0;
    uint32_t top_k = 0;  // experts selected per position
};

struct PredictorParams {
    uint32_t max_distance = 3;  // predict() accepts 1 .. max_distance (< n_layers)
    // transition: the statistics halve every this many tokens, so they follow the current
    // sequence; 0 keeps every count. On the shipped OLMoE trace 16-32 tokens predicted best
    // (d=1 precision 66% at 32, 61% at 512, 58% with no decay).
    uint32_t half_life = 32;
    // transition: weight of "selected at the target layer by the latest token" next to the
    // transition probability (0..1 scale); it breaks ties and covers the first tokens. Small
    // is best on the shipped trace (0.05: 66%; 0.25: 60%; 1: 45%, the previous token alone).
    float recency = 0.05f;
};

class Predictor {
  public:
    virtual ~Predictor() = default;
    virtual std::string_view name() const = 0;
    // The selection at the next position of the clock: `layer` of the current token. A layer
    // that does not follow the last observed one (a gap) is recorded without learning across it.
    // Ids must be < n_experts and at most top_k of them (std::invalid_argument otherwise).
    virtual void observe(uint32_t layer, std::span<const uint16_t> experts) = 0;
    // Forgets the history and the statistics.
    virtual void reset() = 0;
    // The layer that predict(distance) is about: (last observed layer + distance) mod n_layers.
    uint32_t target_layer(uint32_t distance) const;
    // Writes at most out.size() experts expected at the position `distance` after the last
    // observed one, most likely first (distinct ids), and returns how many; 0 before the first
    // observation. When `score` is given (as long as out), score[i] is out[i]'s estimated chance
    // of being selected (transition: the transition probability plus the recency weight;
    // previous: 1). distance must be in 1..max_distance (std::invalid_argument otherwise).
    virtual size_t predict(uint32_t distance, std::span<uint16_t> out, std::span<float> score = {}) = 0;

  protected:
    uint32_t n_layers_ = 0;
    uint32_t last_layer_ = 0;
    bool any_ = false;  // something observed since construction or reset
};

// What is worth prefetching at `distance`: the predicted experts whose score is >= min_score, at
// most out.size(), most likely first; score_scratch must be as long as out. On the shipped OLMoE
// trace with 16 of 64 slots a layer (LRU), transition with min_score 0.3 turned 40% of the demand
// misses into prefetch hits for 25% more expert loads (`moerun profile replay --prefetch`).
constexpr float kPrefetchMinScore = 0.3f;
size_t predict_likely(Predictor &p, uint32_t distance, float min_score, std::span<uint16_t> out,
                      std::span<float> score_scratch);

// Names accepted by make_predictor: "previous" (the target layer's latest selection: temporal
// locality alone) and "transition" (inter-layer transition statistics plus recency).
std::span<const std::string_view> predictor_names();
// Throws std::invalid_argument naming the predictor and the accepted names, or a bad shape.
std::unique_ptr<Predictor> make_predictor(std::string_view name, const Shape &shape,
                                          const PredictorParams &params = {});

}  // namespace moerun::predictor
