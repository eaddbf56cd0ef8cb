// Observed selections: latest per layer, and a ring of the last positions.
#include "history.h"

#include <algorithm>

namespace moerun::predictor {

History::History(const Shape &shape, uint32_t depth)
    : k_(shape.top_k),
      depth_(std::max<uint32_t>(depth, 1)),
      latest_(size_t{shape.n_layers} * shape.top_k),
      latest_n_(shape.n_layers, 0),
      ring_(size_t{depth_} * shape.top_k),
      ring_n_(depth_, 0),
      ring_layer_(depth_, 0) {}

void History::push(uint32_t layer, std::span<const uint16_t> experts, bool gap) {
    const uint32_t n = static_cast<uint32_t>(experts.size());
    std::copy(experts.begin(), experts.end(), latest_.begin() + size_t{layer} * k_);
    latest_n_[layer] = n;
    if (gap) valid_ = 0;
    head_ = (head_ + 1) % depth_;
    std::copy(experts.begin(), experts.end(), ring_.begin() + size_t{head_} * k_);
    ring_n_[head_] = n;
    ring_layer_[head_] = layer;
    valid_ = std::min(valid_ + 1, depth_);
}

void History::clear() {
    std::fill(latest_n_.begin(), latest_n_.end(), 0u);
    valid_ = 0;
}

std::span<const uint16_t> History::latest(uint32_t layer) const {
    return {latest_.data() + size_t{layer} * k_, latest_n_[layer]};
}

std::span<const uint16_t> History::back(uint32_t b) const {
    if (b >= valid_) return {};
    const uint32_t i = (head_ + depth_ - b) % depth_;
    return {ring_.data() + size_t{i} * k_, ring_n_[i]};
}

uint32_t History::back_layer(uint32_t b) const {
    return ring_layer_[(head_ + depth_ - b) % depth_];
}

}  // namespace moerun::predictor
