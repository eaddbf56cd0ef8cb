// The selections a predictor has observed: the latest one of each layer, and the last `depth`
// positions of the routing clock (positions before a gap are dropped). Sized at construction.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "moerun/predictor/predictor.h"

namespace moerun::predictor {

class History {
  public:
    History(const Shape &shape, uint32_t depth);
    // Records the selection at `layer`; continues the chain of positions unless `gap`.
    void push(uint32_t layer, std::span<const uint16_t> experts, bool gap);
    void clear();
    // The latest selection at `layer` (empty when none).
    std::span<const uint16_t> latest(uint32_t layer) const;
    // The selection `back` positions before the newest (0: the newest), empty when it is not
    // known (before the start, or before a gap).
    std::span<const uint16_t> back(uint32_t back) const;
    uint32_t back_layer(uint32_t back) const;

  private:
    uint32_t k_, depth_;
    std::vector<uint16_t> latest_;    // [n_layers, top_k]
    std::vector<uint32_t> latest_n_;  // [n_layers]
    std::vector<uint16_t> ring_;      // [depth, top_k], newest at head_
    std::vector<uint32_t> ring_n_, ring_layer_;
    uint32_t head_ = 0, valid_ = 0;
};

}  // namespace moerun::predictor
