// The work of `moerun profile`: load and filter the trace, replay it through every policy and
// size (and Belady's bound), compute the locality metrics. No output here (profile-report.h,
// profile-html.h).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "moerun/predictor/evaluate.h"
#include "profile-data.h"

namespace moerun::cli::profile {

struct Options {
    std::string trace_path, model_path;  // model: a GGUF for the expert sizes ("" for none)
    std::optional<uint32_t> domain;      // keep only this domain
    bool by_domain = true;               // also report each domain alone (when the trace has several)
    bool skip_prefill = false;
    unsigned threads = 1;
    // replay
    std::vector<std::string> policies;
    std::vector<uint32_t> sizes;
    cache::Partitioning partitioning = cache::Partitioning::per_layer;
    std::string prefetch = "none";                      // none | oracle-next-layer | a predictor name
    float prefetch_min = predictor::kPrefetchMinScore;  // a predictor's score to prefetch an expert
    bool reset_per_sequence = false;
    bool per_sequence = false;
    uint32_t breakdown_size = 0;  // 0: the middle size
    // predict
    std::vector<std::string> predictors;
    std::vector<uint32_t> distances;
    // locality
    std::vector<uint32_t> segments;
    std::vector<uint32_t> sch_sizes;
};

// The sizes used when none are given: 8,16,24,32,48 slots per layer, times n_layers in global mode.
std::vector<uint32_t> default_sizes(cache::Partitioning partitioning, uint32_t n_layers);

// Reads the trace (cache::TraceError on bad input), applies --domain and --skip-prefill, and
// returns the summary and the scopes ("all", then one per domain when by_domain and there are
// several). Throws std::runtime_error for a --domain the trace lacks or an empty selection.
std::vector<Scope> load(const Options &o, TraceSummary &summary);

// Replays every scope x policy x size (belady added when missing), `threads` at a time.
ReplayReport run_replay(const std::vector<Scope> &scopes, const Options &o, const TraceSummary &summary);

// One predictor's precision and recall at one lookahead, in one scope.
struct PredictRow {
    std::string scope, predictor;
    predictor::DistanceScore score;
};
// Replays every scope through every predictor (o.predictors, o.distances, o.reset_per_sequence).
std::vector<PredictRow> run_predict(const std::vector<Scope> &scopes, const Options &o);

// SRP and SCH for o.segments (SCH at o.sch_sizes, in o.partitioning), overlap and popularity.
std::vector<LocalityReport> run_locality(const std::vector<Scope> &scopes, const Options &o);

}  // namespace moerun::cli::profile
