// `moerun profile` outputs for people and scripts: the terminal tables and the JSON document
// (schema "moerun-profile/1", described in README.md, section "moerun profile").
#pragma once

#include <string>

#include "profile-data.h"

namespace moerun::cli::profile {

// Plain-text tables: trace summary, replay grid (hit rate per size and policy with Belady),
// details, per-layer breakdown, per-sequence spread; SRP, SCH, overlap and popularity.
std::string format_table(const Report &report);

// One JSON object.
std::string format_json(const Report &report);

// Small formatting helpers shared with the HTML page.
std::string percent(double x, int decimals = 1);
std::string fixed(double x, int decimals);
std::string partitioning_name(cache::Partitioning p);
std::string cold_share(const cache::SimCounts &c);

}  // namespace moerun::cli::profile
