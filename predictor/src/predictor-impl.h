// Shared by the predictors: argument checks and the factories of each one.
#pragma once

#include <memory>
#include <span>

#include "moerun/predictor/predictor.h"

namespace moerun::predictor {

// std::invalid_argument for a layer >= n_layers, more than top_k ids or an id >= n_experts.
void check_observe(const Shape &shape, const char *who, uint32_t layer, std::span<const uint16_t> experts);
// std::invalid_argument for a distance outside 1..max_distance.
void check_distance(const PredictorParams &params, const char *who, uint32_t distance);

std::unique_ptr<Predictor> make_previous(const Shape &shape, const PredictorParams &params);
std::unique_ptr<Predictor> make_transition(const Shape &shape, const PredictorParams &params);

}  // namespace moerun::predictor
