// Where the forward pass gets expert weights: in place from the mapped file (the model fits the
// memory budget), or through the expert cache (slots over io_uring reads of the file).
//
// The forward pass serves each MoE layer the same way in both cases:
//   src.begin_layer(layer, experts);  while (auto e = src.next()) { use src.view(layer, *e); src.done(layer,
//   *e); }
// (the forward pass also takes whatever else is ready with try_next(), to compute several
// experts in one parallel pass)
// and the order in which experts are handed out never changes the result (each expert writes
// its own output rows; the weighted sum runs in rank order afterwards).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "moerun/cache/expert-cache.h"
#include "moerun/runtime/gguf.h"
#include "moerun/runtime/model.h"

namespace moerun {

class ExpertSource {
  public:
    virtual ~ExpertSource() = default;
    virtual void begin_step(uint64_t step) = 0;
    virtual void begin_layer(uint32_t layer, std::span<const uint16_t> experts) = 0;
    // The next expert ready to compute, waiting for reads; nullopt when all were handed out.
    virtual std::optional<uint16_t> next() = 0;
    // An expert ready now, without waiting; nullopt when none is (next() waits for the rest).
    virtual std::optional<uint16_t> try_next() = 0;
    virtual cache::ExpertView view(uint32_t layer, uint16_t expert) const = 0;
    virtual void done(uint32_t layer, uint16_t expert) = 0;
    virtual void prefetch(uint32_t layer, std::span<const uint16_t> experts) = 0;
    // The cache behind this source, or nullptr when experts are read in place.
    virtual cache::ExpertCache *cache() const = 0;
};

// Experts read in place from the mapped file (no cache).
std::unique_ptr<ExpertSource> make_mapped_experts(const Model &model);

// Experts served by an ExpertCache over `file`; `locations`: expert_locations(file, model).
// Throws like ExpertCache's constructor.
std::unique_ptr<ExpertSource> make_cached_experts(const gguf::GgufFile &file, const Model &model,
                                                  std::vector<cache::ExpertLocation> locations,
                                                  const cache::CacheConfig &config);

// The byte ranges of every expert, [n_layer * n_expert] (layer-major), for the cache.
std::vector<cache::ExpertLocation> expert_locations(const gguf::GgufFile &file, const Model &model);

}  // namespace moerun
