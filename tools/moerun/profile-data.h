// What `moerun profile` computes, shared by the runner (profile-run.cpp) and the outputs
// (profile-report.cpp: table and JSON; profile-html.cpp: the HTML page).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "moerun/cache/locality.h"
#include "moerun/cache/simulator.h"
#include "moerun/cache/trace.h"

namespace moerun::cli::profile {

struct TraceSummary {
    std::string path, format;  // format: "MRNTRACE", "MOETRC01" or "CSV"
    uint32_t n_layers = 0, n_experts = 0, top_k = 0;
    uint64_t sequences = 0, tokens = 0, prefill_tokens = 0;  // of the whole file
    std::vector<std::pair<uint32_t, uint64_t>> domains;      // domain -> sequences
    std::string model;                                       // from the trace header
    std::vector<uint64_t> expert_bytes;  // [n_layers] used for bytes per token; empty: unknown
    std::string bytes_source;            // "model FILE", "trace header" or "unknown"
};

// A part of the trace the results are for: "all" (what the filters kept) or "domain N".
struct Scope {
    std::string name;
    cache::Trace trace;
};

struct Spread {  // of per-sequence hit rates
    double min = 0, p10 = 0, median = 0, p90 = 0, max = 0;
    uint64_t sequences = 0;
};

struct ReplayCell {
    std::string scope, policy;
    uint32_t size = 0;
    cache::SimResult result;
    std::optional<Spread> spread;  // --per-sequence: each sequence replayed alone, cold cache
};

struct ReplayReport {
    cache::Partitioning partitioning = cache::Partitioning::per_layer;
    std::vector<std::string> policies;  // as asked, belady last (always run)
    std::vector<uint32_t> sizes;
    std::string prefetch = "none";
    bool reset_per_sequence = false, per_sequence = false;
    uint32_t breakdown_size = 0;  // the size of the per-layer table
    std::vector<ReplayCell> cells;
    double seconds = 0;
    unsigned threads = 1;

    const ReplayCell *find(const std::string &scope, const std::string &policy, uint32_t size) const {
        for (const ReplayCell &c : cells)
            if (c.scope == scope && c.policy == policy && c.size == size) return &c;
        return nullptr;
    }
};

struct LocalityReport {
    std::string scope;
    std::vector<cache::SrpResult> srp;  // per segment length
    std::vector<cache::SchResult> sch;  // per segment length
    cache::PopularityResult popularity;
};

struct Report {
    std::string command;  // the command line
    TraceSummary trace;
    bool skip_prefill = false;
    std::optional<uint32_t> domain;   // --domain
    std::vector<std::string> scopes;  // in order: "all", then "domain N"...
    std::optional<ReplayReport> replay;
    std::vector<LocalityReport> locality;
    std::vector<uint32_t> segments;  // SRP/SCH segment lengths
    std::vector<uint32_t> sch_sizes;
    cache::Partitioning sch_partitioning = cache::Partitioning::per_layer;
    double locality_seconds = 0;
};

}  // namespace moerun::cli::profile
