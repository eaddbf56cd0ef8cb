// The policy names and make_policy: validates the parameters, then dispatches by name.
#include <array>
#include <cmath>

#include "policy-util.h"

namespace moerun::cache {
namespace {

constexpr std::array<std::string_view, 6> kNames = {"lru", "slru", "lfu", "segment", "least-stale", "belady"};

std::string accepted() {
    std::string s;
    for (std::string_view n : kNames) {
        if (!s.empty()) s += ", ";
        s += n;
    }
    return s;
}

}  // namespace

std::span<const std::string_view> policy_names() {
    return kNames;
}

std::unique_ptr<Policy> make_policy(std::string_view name, const PolicyParams &params) {
    auto fail = [&](const std::string &what) {
        throw std::invalid_argument("policy '" + std::string(name) + "': " + what);
    };
    if (name == "lru" || name == "slru" || name == "lfu" || name == "segment" || name == "least-stale" ||
        name == "belady")
        detail::check_common(name, params);
    if (name == "lru") return detail::make_lru(params);
    if (name == "slru") {
        if (!(params.slru_protected >= 0.0 && params.slru_protected < 1.0))
            fail("slru_protected must be in [0, 1)");
        return detail::make_slru(params);
    }
    if (name == "lfu") {
        if (params.lfu_half_life < 1) fail("lfu_half_life must be >= 1 step");
        return detail::make_lfu(params);
    }
    if (name == "segment") {
        if (params.segment_len < 1 || params.segment_len > 64) fail("segment_len must be in [1, 64] steps");
        return detail::make_segment(params);
    }
    if (name == "least-stale") return detail::make_least_stale(params);
    if (name == "belady") {
        if (params.future == nullptr) fail("needs the future routing (PolicyParams::future)");
        if (params.future->n_layers() != params.n_layers || params.future->n_experts() != params.n_experts)
            fail("the future routing's shape does not match n_layers / n_experts");
        return detail::make_belady(params);
    }
    throw std::invalid_argument("unknown eviction policy '" + std::string(name) +
                                "'; accepted: " + accepted());
}

}  // namespace moerun::cache
