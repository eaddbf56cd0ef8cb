#include "moerun/runtime/sampler.h"

#include <algorithm>
#include <cmath>

namespace moerun {

Sampler::Sampler(SamplerParams params)
    : p_(params), seed_(params.seed == 0xFFFFFFFFu ? std::random_device{}() : params.seed), rng_(seed_) {}

void Sampler::accept(int32_t token) {
    if (p_.repeat_last_n <= 0) return;
    recent_.push_back(token);
    while (recent_.size() > static_cast<size_t>(p_.repeat_last_n)) recent_.pop_front();
}

int32_t Sampler::sample(std::span<const float> logits) {
    const auto n = static_cast<int32_t>(logits.size());
    if (p_.temp <= 0.0f && p_.repeat_penalty == 1.0f) {
        return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    cand_.resize(logits.size());
    for (int32_t i = 0; i < n; ++i) cand_[static_cast<size_t>(i)] = {logits[static_cast<size_t>(i)], i};
    if (p_.repeat_penalty != 1.0f) {
        for (int32_t t : recent_) {
            if (t < 0 || t >= n) continue;
            float &l = cand_[static_cast<size_t>(t)].first;
            l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
        }
    }
    auto by_logit = [](const auto &a, const auto &b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    if (p_.temp <= 0.0f) return std::min_element(cand_.begin(), cand_.end(), by_logit)->second;

    size_t keep = cand_.size();
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) keep = static_cast<size_t>(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<ptrdiff_t>(keep), cand_.end(), by_logit);
    cand_.resize(keep);

    // Probabilities at temperature 1 for the top-p / min-p cuts (as llama.cpp's chain does).
    std::vector<double> prob(keep);
    const float mx = cand_[0].first;
    double sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += prob[i] = std::exp(double(cand_[i].first - mx));
    if (p_.top_p < 1.0f) {
        double cum = 0;
        size_t k = 0;
        while (k < keep) {
            cum += prob[k] / sum;
            ++k;
            if (cum >= p_.top_p) break;
        }
        keep = std::max<size_t>(1, k);
    }
    if (p_.min_p > 0.0f) {
        size_t k = 1;
        while (k < keep && prob[k] >= p_.min_p * prob[0]) ++k;  // prob[0] is the max
        keep = k;
    }
    cand_.resize(keep);

    // Temperature, then a seeded draw.
    std::vector<double> w(keep);
    for (size_t i = 0; i < keep; ++i) w[i] = std::exp(double(cand_[i].first - mx) / double(p_.temp));
    std::discrete_distribution<size_t> dist(w.begin(), w.end());
    return cand_[dist(rng_)].second;
}

}  // namespace moerun
