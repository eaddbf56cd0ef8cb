// `moerun profile`: cache hit rates and routing locality from routing traces, without the model.
//
//   moerun profile replay TRACE [--policy lru,slru,lfu,segment,belady] [--size 8,16,...]
//                        [--per-layer | --global] [--prefetch none|oracle-next-layer] [--model GGUF]
//                        [--domain N] [--skip-prefill] [--reset-per-sequence] [--per-sequence]
//                        [--stats] [--json] [--html FILE] [--threads N]
//   moerun profile stats TRACE [--segment 1,2,4,8,16] [--size ...] [--global] [--domain N] ...
//   moerun profile predict TRACE [--predictor previous,transition] [--distance 1,2,3]
//                        [--reset-per-sequence] [--domain N] [--json]
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
#include "json-writer.h"
#include "moerun/cache/policy.h"
#include "moerun/predictor/predictor.h"
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
    if (sub == "predict") {
        c += std::string(" --predictor ") + join(o.predictors) + " --distance " + join(o.distances);
        if (o.reset_per_sequence) c += " --reset-per-sequence";
    } else if (sub == "replay") {
        c += std::string(" --policy ") + join(o.policies) + " --size " + join(o.sizes);
        c += o.partitioning == cache::Partitioning::global ? " --global" : " --per-layer";
        if (o.prefetch != "none") c += std::string(" --prefetch ") + o.prefetch;
        if (o.prefetch != "none" && o.prefetch != "oracle-next-layer")
            c += " --prefetch-min " + std::to_string(o.prefetch_min);
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

std::string percent(double x) {
    char b[16];
    std::snprintf(b, sizeof b, "%.1f%%", 100.0 * x);
    return b;
}

// One line per scope and predictor, a column per distance: precision (= recall when top_k ids are
// predicted), then the mean ids predicted.
std::string predict_table(const std::vector<profile::PredictRow> &rows,
                          const std::vector<uint32_t> &distances) {
    std::string t =
        "predictor precision at lookahead d (positions ahead on the routing clock: d=1 is the next "
        "layer); top_k ids predicted per position\n";
    char b[96];
    std::snprintf(b, sizeof b, "%-10s %-11s", "scope", "predictor");
    t += b;
    for (uint32_t d : distances) {
        std::snprintf(b, sizeof b, " %8s", ("d=" + std::to_string(d)).c_str());
        t += b;
    }
    t += "   recall(d=" + std::to_string(distances.front()) + ")\n";
    for (size_t i = 0; i < rows.size(); i += distances.size()) {
        std::snprintf(b, sizeof b, "%-10s %-11s", rows[i].scope.c_str(), rows[i].predictor.c_str());
        t += b;
        for (size_t d = 0; d < distances.size(); ++d) {
            std::snprintf(b, sizeof b, " %8s", percent(rows[i + d].score.precision()).c_str());
            t += b;
        }
        t += "   " + percent(rows[i].score.recall()) + "\n";
    }
    return t;
}

std::string predict_json(const std::vector<profile::PredictRow> &rows, const std::string &command) {
    JsonWriter w;
    w.begin_object()
        .field("schema", "moerun-profile-predict/1")
        .field("command", command)
        .key("rows")
        .begin_array();
    for (const profile::PredictRow &r : rows) {
        w.begin_object()
            .field("scope", r.scope)
            .field("predictor", r.predictor)
            .field("distance", r.score.distance)
            .field("precision", r.score.precision())
            .field("recall", r.score.recall())
            .field("predictions", r.score.predictions)
            .field("ids_predicted", r.score.predicted)
            .field("ids_correct", r.score.correct)
            .end_object();
    }
    w.end_array().end_object();
    return w.str() + "\n";
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
    const auto pnames = predictor::predictor_names();
    const std::vector<std::string> known_predictors(pnames.begin(), pnames.end());
    std::string known_list;
    for (const std::string &n : known_predictors) known_list += (known_list.empty() ? "" : ", ") + n;
    const auto is_predictor = [&](const std::string &n) {
        return std::find(known_predictors.begin(), known_predictors.end(), n) != known_predictors.end();
    };
    if (o.prefetch != "none" && o.prefetch != "oracle-next-layer" && !is_predictor(o.prefetch))
        throw std::runtime_error(std::string("--prefetch: unknown prefetcher '") + o.prefetch +
                                 "' (known: none, oracle-next-layer, " + known_list + ")");
    if (!(o.prefetch_min >= 0.0f && o.prefetch_min <= 1e6f))
        throw std::runtime_error("--prefetch-min: a score >= 0 is expected");
    for (const std::string &p : o.predictors)
        if (!is_predictor(p))
            throw std::runtime_error(std::string("--predictor: unknown predictor '") + p +
                                     "' (known: " + known_list + ")");

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
    if (sub == "predict") {
        if (o.distances.empty())  // the default: 1, 2, 3 as far as the trace has layers
            for (uint32_t d = 1; d <= std::min<uint32_t>(3, report.trace.n_layers); ++d)
                o.distances.push_back(d);
        for (uint32_t d : o.distances)
            if (d == 0 || d > report.trace.n_layers)
                throw std::runtime_error("--distance: " + std::to_string(d) + " is outside 1..n_layers (" +
                                         std::to_string(report.trace.n_layers) + ")");
        const auto rows = profile::run_predict(scopes, o);
        std::cout << (a.json ? predict_json(rows, command_line(sub, a)) : predict_table(rows, o.distances));
        return 0;
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
    r->add_option(
         "--prefetch", replay->o.prefetch,
         "none; previous or transition: a predictor that learns from the replayed routing and loads "
         "its guess of the next layer's experts; oracle-next-layer: the upper bound (the next layer's "
         "experts, exactly)")
        ->capture_default_str();
    r->add_option("--prefetch-min", replay->o.prefetch_min,
                  "with a predictor: prefetch the experts whose predicted chance is at least this (at most "
                  "2 x top_k a layer)")
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

    auto predict = std::make_shared<ProfileArgs>();
    CLI::App *p = app->add_subcommand(
        "predict",
        "Routing-path predictors' precision and recall at lookahead d, learning online from the trace");
    add_common(p, *predict);
    predict->o.predictors = {"previous", "transition"};
    p->add_option("--predictor", predict->o.predictors, "predictors, comma-separated (previous transition)")
        ->delimiter(',')
        ->capture_default_str();
    p->add_option("--distance", predict->o.distances,
                  "lookaheads d in layers, comma-separated (default: 1,2,3, those within the trace's layers)")
        ->delimiter(',');
    p->add_flag("--reset-per-sequence", predict->o.reset_per_sequence,
                "forget the statistics at each sequence start (default: they carry over)");

    return {app, [replay, stats, predict, r, s, p]() -> int {
                if (r->parsed()) return run_profile("replay", *replay);
                if (s->parsed()) return run_profile("stats", *stats);
                if (p->parsed()) return run_profile("predict", *predict);
                return 1;
            }};
}

}  // namespace moerun::cli
