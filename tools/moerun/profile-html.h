// `moerun profile --html FILE`: one self-contained page (inline SVG and CSS, no script, nothing
// fetched): command line and trace summary; hit rate against cache size per policy with the
// Belady curve (one plot per scope); per-layer hit rates at one size; the expert popularity heat
// map (layers x experts); SRP, SCH and per-layer routing statistics; the replay details.
#pragma once

#include <string>

#include "profile-data.h"

namespace moerun::cli::profile {

std::string format_html(const Report &report);

}  // namespace moerun::cli::profile
