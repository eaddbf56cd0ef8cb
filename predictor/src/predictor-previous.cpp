// "previous": the target layer's latest selection. Consecutive tokens share much of their
// routing (43% of OLMoE's top-8 in the shipped trace), so this is the baseline a learned
// predictor has to beat.
#include <algorithm>

#include "history.h"
#include "predictor-impl.h"

namespace moerun::predictor {

namespace {

class Previous final : public Predictor {
  public:
    Previous(const Shape &shape, const PredictorParams &params)
        : shape_(shape), params_(params), history_(shape, 1) {
        n_layers_ = shape.n_layers;
    }
    std::string_view name() const override { return "previous"; }
    void observe(uint32_t layer, std::span<const uint16_t> experts) override {
        check_observe(shape_, "predictor 'previous'", layer, experts);
        history_.push(layer, experts, false);
        last_layer_ = layer;
        any_ = true;
    }
    void reset() override {
        history_.clear();
        any_ = false;
        last_layer_ = 0;
    }
    size_t predict(uint32_t distance, std::span<uint16_t> out, std::span<float> score) override {
        check_distance(params_, "predictor 'previous'", distance);
        if (!any_) return 0;
        const std::span<const uint16_t> latest = history_.latest(target_layer(distance));
        const size_t n = std::min(latest.size(), out.size());
        std::copy_n(latest.begin(), n, out.begin());
        for (size_t i = 0; i < std::min(n, score.size()); ++i) score[i] = 1.0f;
        return n;
    }

  private:
    Shape shape_;
    PredictorParams params_;
    History history_;
};

}  // namespace

std::unique_ptr<Predictor> make_previous(const Shape &shape, const PredictorParams &params) {
    return std::make_unique<Previous>(shape, params);
}

}  // namespace moerun::predictor
