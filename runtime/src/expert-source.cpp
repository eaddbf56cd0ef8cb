// ExpertSource implementations: mapped (in place) and cached (cache::ExpertCache).
#include "moerun/runtime/expert-source.h"

#include <stdexcept>

#include "moerun/runtime/model-info.h"

namespace moerun {

namespace {

// Hands out the requested experts in order; views point into the mapped file.
class MappedExperts final : public ExpertSource {
  public:
    explicit MappedExperts(const Model &m) : model_(m) { list_.reserve(m.hparams().n_expert); }
    void begin_step(uint64_t) override {}
    void begin_layer(uint32_t layer, std::span<const uint16_t> experts) override {
        layer_ = layer;
        list_.assign(experts.begin(), experts.end());
        head_ = 0;
    }
    std::optional<uint16_t> next() override {
        if (head_ == list_.size()) return std::nullopt;
        return list_[head_++];
    }
    std::optional<uint16_t> try_next() override { return next(); }
    cache::ExpertView view(uint32_t layer, uint16_t e) const override {
        const LayerWeights &L = model_.layer(layer);
        auto at = [e](const Weight &w) {
            return w.present() ? w.data + uint64_t{e} * w.expert_bytes()
                               : static_cast<const uint8_t *>(nullptr);
        };
        return {at(L.gate_exps), at(L.up_exps), at(L.down_exps)};
    }
    void done(uint32_t, uint16_t) override {}
    void prefetch(uint32_t, std::span<const uint16_t>) override {}
    cache::ExpertCache *cache() const override { return nullptr; }

  private:
    const Model &model_;
    uint32_t layer_ = 0;
    std::vector<uint16_t> list_;
    size_t head_ = 0;
};

class CachedExperts final : public ExpertSource {
  public:
    CachedExperts(const gguf::GgufFile &file, const Model &model, std::vector<cache::ExpertLocation> locs,
                  const cache::CacheConfig &cfg)
        : cache_(file.path(), std::move(locs), model.hparams().n_layer, model.hparams().n_expert, cfg) {}
    void begin_step(uint64_t step) override { cache_.begin_step(step); }
    void begin_layer(uint32_t layer, std::span<const uint16_t> experts) override {
        cache_.begin_layer(layer, experts);
    }
    std::optional<uint16_t> next() override { return cache_.next(); }
    std::optional<uint16_t> try_next() override { return cache_.try_next(); }
    cache::ExpertView view(uint32_t layer, uint16_t e) const override { return cache_.view(layer, e); }
    void done(uint32_t layer, uint16_t e) override { cache_.done(layer, e); }
    void prefetch(uint32_t layer, std::span<const uint16_t> experts) override {
        cache_.prefetch(layer, experts);
    }
    cache::ExpertCache *cache() const override { return &cache_; }

  private:
    mutable cache::ExpertCache cache_;
};

}  // namespace

std::vector<cache::ExpertLocation> expert_locations(const gguf::GgufFile &file, const Model &model) {
    const Hparams &hp = model.hparams();
    const runtime::ModelInfo info = runtime::ModelInfo::from_gguf(file);
    const runtime::ExpertSummary sum = runtime::ExpertSummary::from_gguf(file, info);
    if (sum.layers.size() != hp.n_layer)
        throw std::invalid_argument(file.path() + ": " + std::to_string(sum.layers.size()) + " of " +
                                    std::to_string(hp.n_layer) + " layers have experts; the cache needs all");
    std::vector<cache::ExpertLocation> locs;
    locs.reserve(size_t{hp.n_layer} * hp.n_expert);
    for (const runtime::LayerExperts &le : sum.layers)
        for (uint32_t e = 0; e < hp.n_expert; ++e) locs.push_back(runtime::expert_location(file, le, e));
    return locs;
}

std::unique_ptr<ExpertSource> make_mapped_experts(const Model &model) {
    return std::make_unique<MappedExperts>(model);
}

std::unique_ptr<ExpertSource> make_cached_experts(const gguf::GgufFile &file, const Model &model,
                                                  std::vector<cache::ExpertLocation> locations,
                                                  const cache::CacheConfig &config) {
    return std::make_unique<CachedExperts>(file, model, std::move(locations), config);
}

}  // namespace moerun
