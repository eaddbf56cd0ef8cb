// Token sampling from logits, in llama.cpp's default order:
//   repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw (seeded).
// temp <= 0 is greedy (argmax; ties go to the lowest id). Deterministic for a given seed.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace moerun {

struct SamplerParams {
    float temp = 0.8f;
    int32_t top_k = 40;           // <= 0: off
    float top_p = 0.95f;          // >= 1: off
    float min_p = 0.05f;          // <= 0: off
    float repeat_penalty = 1.0f;  // 1: off
    int32_t repeat_last_n = 64;
    uint32_t seed = 0xFFFFFFFFu;  // 0xFFFFFFFF: a random seed
};

class Sampler {
  public:
    explicit Sampler(SamplerParams params);
    // Picks the next token from logits [n_vocab]; does not modify the input.
    int32_t sample(std::span<const float> logits);
    // Records an accepted token (prompt or generated) for the repetition penalty.
    void accept(int32_t token);
    uint32_t seed() const { return seed_; }

  private:
    SamplerParams p_;
    uint32_t seed_;
    std::mt19937 rng_;
    std::deque<int32_t> recent_;
    std::vector<std::pair<float, int32_t>> cand_;  // workspace (logit, id)
};

}  // namespace moerun
