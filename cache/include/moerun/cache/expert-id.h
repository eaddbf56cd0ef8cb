// Identity and location of an expert: the unit of caching.
//
// An expert (layer l, expert e) of a GGUF model is three byte ranges inside the file, the
// e-th slices of the stacked tensors blk.l.ffn_{gate,up,down}_exps.weight
// ([n_expert, n_ff, n_embd] for gate/up, [n_expert, n_embd, n_ff] for down, expert index outermost).
// The runtime fills ExpertLocation from the GGUF reader; the cache moves these bytes between tiers.
#pragma once

#include <cstdint>
#include <functional>

namespace moerun::cache {

struct ExpertId {
    uint32_t layer = 0;
    uint32_t expert = 0;
    friend bool operator==(const ExpertId &, const ExpertId &) = default;
};

struct ByteRange {
    uint64_t offset = 0;  // absolute file offset
    uint64_t size = 0;    // bytes
};

struct ExpertLocation {
    ExpertId id;
    ByteRange gate, up, down;
    uint64_t bytes() const { return gate.size + up.size + down.size; }
};

}  // namespace moerun::cache

template <>
struct std::hash<moerun::cache::ExpertId> {
    size_t operator()(const moerun::cache::ExpertId &x) const noexcept {
        return std::hash<uint64_t>{}((uint64_t{x.layer} << 32) | x.expert);
    }
};
