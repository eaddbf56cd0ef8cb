// "transition": inter-layer transition statistics, learned online. For each lookahead d and
// source layer l it counts, over the positions seen, how often expert e selected at (t, l) was
// followed d positions later by expert e'. A prediction scores every e' as the mean over the
// last selection's experts e of P(e' | e) = T[d][l][e][e'] / N[d][l][e], plus `recency` when e'
// is in the target layer's latest selection, and returns the best (ties: lower id). Counts halve
// every half_life tokens.
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "history.h"
#include "predictor-impl.h"

namespace moerun::predictor {

namespace {

class Transition final : public Predictor {
  public:
    Transition(const Shape &shape, const PredictorParams &params)
        : shape_(shape),
          params_(params),
          history_(shape, params.max_distance),
          score_(shape.n_experts),
          order_(shape.n_experts) {
        n_layers_ = shape.n_layers;
        const uint64_t cells =
            uint64_t{params.max_distance} * shape.n_layers * shape.n_experts * shape.n_experts;
        if (cells > (uint64_t{1} << 28))
            throw std::invalid_argument(
                "predictor 'transition': " + std::to_string(cells) +
                " transition counts (max_distance x n_layers x n_experts^2) exceed 2^28");
        t_.assign(static_cast<size_t>(cells), 0.0f);
        n_.assign(size_t{params.max_distance} * shape.n_layers * shape.n_experts, 0.0f);
    }
    std::string_view name() const override { return "transition"; }

    void observe(uint32_t layer, std::span<const uint16_t> experts) override {
        check_observe(shape_, "predictor 'transition'", layer, experts);
        const bool gap = any_ && layer != (last_layer_ + 1) % shape_.n_layers;
        if (!gap) learn(experts);
        history_.push(layer, experts, gap);
        last_layer_ = layer;
        any_ = true;
        if (layer == 0 && params_.half_life > 0 && ++tokens_ % params_.half_life == 0) {
            for (float &c : t_) c *= 0.5f;
            for (float &c : n_) c *= 0.5f;
        }
    }

    void reset() override {
        std::fill(t_.begin(), t_.end(), 0.0f);
        std::fill(n_.begin(), n_.end(), 0.0f);
        history_.clear();
        any_ = false;
        last_layer_ = 0;
        tokens_ = 0;
    }

    size_t predict(uint32_t distance, std::span<uint16_t> out, std::span<float> score) override {
        check_distance(params_, "predictor 'transition'", distance);
        if (!any_ || out.empty()) return 0;
        const uint32_t X = shape_.n_experts;
        std::fill(score_.begin(), score_.end(), 0.0f);
        const std::span<const uint16_t> src = history_.back(0);
        if (!src.empty()) {
            const float share = 1.0f / static_cast<float>(src.size());
            for (const uint16_t e : src) {
                const size_t row = cell(distance, last_layer_, e);
                const float seen = n_[row / X];
                if (seen <= 0.0f) continue;
                const float *t = &t_[row];
                const float f = share / seen;
                for (uint32_t x = 0; x < X; ++x) score_[x] += f * t[x];
            }
        }
        for (const uint16_t e : history_.latest(target_layer(distance))) score_[e] += params_.recency;
        std::iota(order_.begin(), order_.end(), uint16_t{0});
        const size_t n = std::min<size_t>(out.size(), X);
        std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(n), order_.end(),
                          [&](uint16_t a, uint16_t b) {
                              return score_[a] > score_[b] || (score_[a] == score_[b] && a < b);
                          });
        size_t m = 0;
        while (m < n && score_[order_[m]] > 0.0f) {
            out[m] = order_[m];
            if (m < score.size()) score[m] = score_[order_[m]];
            ++m;
        }
        return m;
    }

  private:
    // First count of T[d][layer][e][*] (its N is at the same index / n_experts).
    size_t cell(uint32_t d, uint32_t layer, uint16_t e) const {
        return ((size_t{d - 1} * shape_.n_layers + layer) * shape_.n_experts + e) * shape_.n_experts;
    }
    // Counts the transitions from the last max_distance positions into `experts`.
    void learn(std::span<const uint16_t> experts) {
        const uint32_t X = shape_.n_experts;
        for (uint32_t d = 1; d <= params_.max_distance; ++d) {
            const std::span<const uint16_t> src = history_.back(d - 1);
            if (src.empty()) break;
            const uint32_t sl = history_.back_layer(d - 1);
            for (const uint16_t e : src) {
                const size_t row = cell(d, sl, e);
                n_[row / X] += 1.0f;
                for (const uint16_t x : experts) t_[row + x] += 1.0f;
            }
        }
    }

    Shape shape_;
    PredictorParams params_;
    History history_;
    std::vector<float> t_;  // [max_distance, n_layers, n_experts, n_experts]
    std::vector<float> n_;  // [max_distance, n_layers, n_experts]
    std::vector<float> score_;
    std::vector<uint16_t> order_;
    uint64_t tokens_ = 0;
};

}  // namespace

std::unique_ptr<Predictor> make_transition(const Shape &shape, const PredictorParams &params) {
    return std::make_unique<Transition>(shape, params);
}

}  // namespace moerun::predictor
