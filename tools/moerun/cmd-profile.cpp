// `moerun profile`: cache hit rates and routing locality from routing traces, without the model.
//
//   moerun profile replay TRACE [--policy lru,slru,lfu,segment,belady] [--size 8,16,...]
//                        [--per-layer | --global] [--prefetch none|oracle-next-layer] [--model GGUF]
//                        [--domain N] [--skip-prefill] [--reset-per-sequence] [--per-sequence]
//                        [--stats] [--json] [--html FILE] [--threads N]
//   moerun profile stats TRACE [--segment 1,2,4,8,16] [--size ...] [--global] [--domain N] ...
//   moerun profile predict TRACE    (predictor evaluation: not available yet, says so)
//
// The replay runs cache::simulate, the policy code the runtime uses; Belady's policy always runs
// too and is printed next to each size. The work is in profile-run.cpp, the outputs in
// profile-report.cpp (table, JSON) and profile-html.cpp (the page).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <stdexcept>

#include "cli-common.h"
#include "moerun/cache/policy.h"
#include "profile-html.h"
#include "profile-report.h"
#include "profile-run.h"
#include "subcommands.h"

namespace moerun::cli {
namespace {

using profile::Options;

struct ProfileArgs {
    Options o;
    bool global = false, per_layer = false, json = false, stats = false;
    std::string html;
    int threads = 0;
};

std::string join(const std::vector<uint32_t> &xs) {
    std::string s;
    for (uint32_t x : xs) s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
}
std::string join(const std::vector<std::string> &xs) {
    std::string s;
    for (const std::string &x : xs) s += (s.empty() ? "" : ",") + x;
    return s;
}

// The effective command line (defaults filled in), printed in the JSON and the page.
std::string command_line(const std::string &sub, const ProfileArgs &a) {
    const Options &o = a.o;
    std::string c = std::string("moerun profile ") + sub + " " + o.trace_path;
    if (sub == "replay") {
        c += std::string(" --policy ") + join(o.policies) + " --size " + join(o.sizes);
        c += o.partitioning == cache::Partitioning::global ? " --global" : " --per-layer";
        if (o.prefetch != "none") c += std::string(" --prefetch ") + o.prefetch;
        if (o.reset_per_sequence) c += " --reset-per-sequence";
        if (o.per_sequence) c += " --per-sequence";
    } else {
        c += std::string(" --segment ") + join(o.segments) + " --size " + join(o.sch_sizes);
        if (o.partitioning == cache::Partitioning::global) c += " --global";
    }
    if (!o.model_path.empty()) c += std::string(" --model ") + o.model_path;
    if (o.domain) c += std::string(" --domain ") + std::to_string(*o.domain);
    if (!o.by_domain) c += " --no-by-domain";
    if (o.skip_prefill) c += " --skip-prefill";
    if (a.stats && sub == "replay") c += " --stats";
    if (!a.html.empty()) c += std::string(" --html ") + a.html;
    if (a.json) c += " --json";
    return c;
}

void check_sizes(const std::vector<uint32_t> &sizes, const char *flag) {
    for (uint32_t s : sizes)
        if (s == 0) throw std::runtime_error(std::string(flag) + ": sizes must be >= 1");
}

int run_profile(const std::string &sub, ProfileArgs &a) {
    Options &o = a.o;
    if (a.global && a.per_layer) throw std::runtime_error("--global and --per-layer exclude each other");
    o.partitioning = a.global ? cache::Partitioning::global : cache::Partitioning::per_layer;
    o.threads = unsigned(resolve_threads(a.threads));
    for (const std::string &p : o.policies) {
        const auto names = cache::policy_names();
        if (std::find(names.begin(), names.end(), p) == names.end())
            throw std::runtime_error(std::string("--policy: unknown policy '") + p + "' (known: " +
                                     join(std::vector<std::string>(names.begin(), names.end())) + ")");
    }
    if (o.prefetch != "none" && o.prefetch != "oracle-next-layer")
        throw std::runtime_error(std::string("--prefetch: unknown prefetcher '") + o.prefetch +
                                 "' (known: none, oracle-next-layer); predictor evaluation is not available "
                                 "yet: moerun has no learned predictor to evaluate");

    profile::Report report;
    std::vector<profile::Scope> scopes = profile::load(o, report.trace);
    for (const profile::Scope &s : scopes) report.scopes.push_back(s.name);
    report.skip_prefill = o.skip_prefill;
    report.domain = o.domain;
    const auto defaults = profile::default_sizes(o.partitioning, report.trace.n_layers);
    if (o.sizes.empty()) o.sizes = defaults;
    check_sizes(o.sizes, "--size");
    if (sub == "replay") {
        for (uint32_t s : o.sizes)
            if (s < report.trace.top_k)
                throw std::runtime_error(std::string("--size ") + std::to_string(s) + " is below top_k " +
                                         std::to_string(report.trace.top_k) +
                                         ": the experts of one layer could not all be resident");
        if (o.breakdown_size && std::find(o.sizes.begin(), o.sizes.end(), o.breakdown_size) == o.sizes.end())
            throw std::runtime_error(std::string("--breakdown-size ") + std::to_string(o.breakdown_size) +
                                     " is not one of the --size values");
        report.replay = profile::run_replay(scopes, o, report.trace);
    }
    if (sub == "stats" || a.stats || !a.html.empty()) {
        if (o.segments.empty()) o.segments = {1, 2, 4, 8, 16};
        for (uint32_t s : o.segments)
            if (s == 0) throw std::runtime_error("--segment: segment lengths must be >= 1");
        o.sch_sizes = o.sizes;
        report.segments = o.segments;
        report.sch_sizes = o.sch_sizes;
        report.sch_partitioning = o.partitioning;
        const auto t0 = std::chrono::steady_clock::now();
        report.locality = profile::run_locality(scopes, o);
        report.locality_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    report.command = command_line(sub, a);
    if (!a.html.empty()) {
        std::ofstream f(a.html, std::ios::binary);
        if (!f) throw std::runtime_error(a.html + ": cannot open for writing");
        f << profile::format_html(report);
        if (!f.flush()) throw std::runtime_error(a.html + ": write failed");
    }
    std::cout << (a.json ? profile::format_json(report) : profile::format_table(report));
    if (!a.json && !a.html.empty()) std::cout << "\nwrote " << a.html << "\n";
    return 0;
}

void add_common(CLI::App *app, ProfileArgs &a) {
    app->add_option("trace", a.o.trace_path,
                    "routing trace: MRNTRACE (moerun run --trace-out), MOETRC01 or CSV")
        ->required();
    app->add_option("--size", a.o.sizes,
                    "cache sizes, comma-separated: slots per layer with --per-layer (default 8,16,24,32,48), "
                    "total slots with --global (default those x n_layers)")
        ->delimiter(',');
    app->add_flag("--per-layer", a.per_layer, "each layer has its own SIZE slots (default)");
    app->add_flag("--global", a.global, "one cache of SIZE slots shared by all layers");
    app->add_option("--domain", a.o.domain, "only the sequences of this domain");
    app->add_flag("--by-domain,!--no-by-domain", a.o.by_domain,
                  "also report each domain alone when the trace has several (default on)");
    app->add_flag("--skip-prefill", a.o.skip_prefill, "only decoded tokens (drop prompt tokens)");
    app->add_flag("--json", a.json,
                  "one JSON object (schema moerun-profile/1, see README) instead of tables");
    app->add_option("--html", a.html, "also write a self-contained HTML report with plots (inline SVG)");
    app->add_option("-t,--threads", a.threads, "threads for the independent replays (0: all)")
        ->capture_default_str();
}

}  // namespace

Subcommand add_profile(CLI::App &parent) {
    auto replay = std::make_shared<ProfileArgs>();
    auto stats = std::make_shared<ProfileArgs>();
    CLI::App *app = parent.add_subcommand(
        "profile", "Cache hit rates and routing locality from a routing trace, without running the model");
    app->require_subcommand(1);

    CLI::App *r = app->add_subcommand(
        "replay", "Replay the trace through cache policies and sizes; Belady's bound is always shown");
    add_common(r, *replay);
    replay->o.policies = {"lru", "slru", "lfu", "segment", "belady"};
    r->add_option("--policy", replay->o.policies,
                  "policies, comma-separated (lru slru lfu segment least-stale belady)")
        ->delimiter(',')
        ->capture_default_str();
    r->add_option("--prefetch", replay->o.prefetch,
                  "none, or oracle-next-layer: an upper bound that loads the next layer's experts exactly")
        ->capture_default_str();
    r->add_option("--model", replay->o.model_path, "GGUF model for the bytes of one expert per layer");
    r->add_flag("--reset-per-sequence", replay->o.reset_per_sequence,
                "empty the cache at each sequence start (default: stays warm)");
    r->add_flag("--per-sequence", replay->o.per_sequence,
                "also replay each sequence alone (empty cache) and report the spread of hit rates");
    r->add_option("--breakdown-size", replay->o.breakdown_size,
                  "size of the per-layer table (default: middle size)");
    r->add_flag("--stats", replay->stats, "also compute the locality metrics of `profile stats`");

    CLI::App *s = app->add_subcommand(
        "stats",
        "Routing locality: SRP and SCH (moe-lrc, arXiv 2505.16056), token overlap, expert popularity");
    add_common(s, *stats);
    s->add_option("--segment", stats->o.segments, "segment lengths for SRP and SCH (default 1,2,4,8,16)")
        ->delimiter(',');

    CLI::App *p = app->add_subcommand("predict", "Predictor precision/recall (not available yet)");
    p->allow_extras();

    return {app, [replay, stats, r, s, p]() -> int {
                if (r->parsed()) return run_profile("replay", *replay);
                if (s->parsed()) return run_profile("stats", *stats);
                if (p->parsed())
                    throw std::runtime_error(
                        "profile predict: predictor evaluation is not available yet: moerun has no expert "
                        "predictor to evaluate (`profile replay --prefetch oracle-next-layer` gives the "
                        "upper bound of a perfect next-layer prefetcher)");
                return 1;
            }};
}

}  // namespace moerun::cli
