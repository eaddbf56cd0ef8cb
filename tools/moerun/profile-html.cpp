// The HTML page of `moerun profile --html` (see profile-html.h). Everything is inline: CSS in a
// <style> block, plots as SVG (svg-plot.h); no script.
#include "profile-html.h"

#include <algorithm>
#include <cmath>

#include "profile-report.h"
#include "svg-plot.h"

namespace moerun::cli::profile {
namespace {

using svg::escape;

constexpr const char *kStyle = R"(<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; max-width: 1300px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; border-bottom: 1px solid #ddd; }
pre { background: #f5f5f5; padding: 8px; white-space: pre-wrap; word-break: break-all; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plot text { font-size: 11px; fill: #333; }
.plot .title { font-size: 13px; font-weight: bold; }
.plot .ytick { text-anchor: end; } .plot .xtick { text-anchor: middle; }
.plot .xlabel { text-anchor: middle; } .plot .ylabel { text-anchor: middle; }
.plot .grid { stroke: #e4e4e4; } .plot .axis { stroke: #555; } .plot .frame { fill: none; stroke: #555; }
.note { color: #555; font-size: 13px; }
</style>
)";

std::string policy_color(const std::string &p) {
    if (p == "lru") return "#1f77b4";
    if (p == "slru") return "#ff7f0e";
    if (p == "lfu") return "#2ca02c";
    if (p == "segment") return "#9467bd";
    if (p == "least-stale") return "#8c564b";
    if (p == "belady") return "#111111";
    return "#e377c2";
}

double floor_tenth(double v) {
    return std::max(0.0, std::floor(v * 10 - 1e-9) / 10);
}

svg::Series series_for(const ReplayReport &p, const std::string &scope, const std::string &pol) {
    svg::Series s{pol, policy_color(pol), pol == "belady", {}, {}};
    for (uint32_t size : p.sizes)
        if (const ReplayCell *c = p.find(scope, pol, size)) {
            s.x.push_back(size);
            s.y.push_back(c->result.hit_rate());
        }
    return s;
}

void summary(const Report &r, std::string &h) {
    const TraceSummary &t = r.trace;
    h += std::string("<h2>Command and trace</h2>\n<pre>") + escape(r.command) + "</pre>\n<table>";
    auto row = [&h](const std::string &k, const std::string &v) {
        h += std::string("<tr><th class=\"l\">") + escape(k) + "</th><td class=\"l\">" + escape(v) +
             "</td></tr>";
    };
    row("trace", t.path + " (" + t.format + ")");
    row("shape", std::to_string(t.n_layers) + " MoE layers x " + std::to_string(t.n_experts) +
                     std::string(" experts, top-") + std::to_string(t.top_k));
    row("tokens", std::to_string(t.tokens) + " in " + std::to_string(t.sequences) + " sequences (" +
                      std::to_string(t.prefill_tokens) + " prefill)");
    std::string d;
    for (const auto &[dom, n] : t.domains)
        d += (d.empty() ? "" : ", ") + std::to_string(dom) + ": " + std::to_string(n) + " sequences";
    row("domains", d.empty() ? "-" : d);
    if (!t.model.empty()) row("model", t.model);
    row("expert bytes", t.bytes_source);
    std::string sel = r.domain ? std::string("domain ") + std::to_string(*r.domain) : "every sequence";
    if (r.skip_prefill) sel += ", decoded tokens only";
    row("selection", sel);
    h += "</table>\n";
}

void replay_section(const Report &r, std::string &h) {
    const ReplayReport &p = *r.replay;
    const bool per_layer = p.partitioning == cache::Partitioning::per_layer;
    const std::string unit = per_layer ? "cache size (slots per layer)" : "cache size (slots, all layers)";
    h += std::string("<h2>Hit rate against cache size</h2>\n<p class=\"note\">") +
         std::string(per_layer ? "Each layer has its own slots. " : "One cache shared by all layers. ") +
         std::string("Cache ") +
         (p.reset_per_sequence ? "emptied at each sequence" : "warm across sequences") +
         std::string(", prefetch ") + escape(p.prefetch) +
         ". The dashed black curve is Belady's policy (optimal with the whole future known): "
         "no policy can do better at that size. " +
         std::to_string(p.cells.size()) + " replays in " + fixed(p.seconds, 2) +
         " s.</p>\n<div class=\"plots\">\n";
    double lo = 1;
    for (const ReplayCell &c : p.cells) lo = std::min(lo, c.result.hit_rate());
    for (const std::string &scope : r.scopes) {
        svg::LinePlot plot;
        plot.title = std::string("hit rate [") + scope + "]";
        plot.x_label = unit;
        plot.y_label = "hit rate";
        plot.y_min = floor_tenth(lo);
        plot.y_max = 1;
        plot.width = 420;
        for (const std::string &pol : p.policies) plot.series.push_back(series_for(p, scope, pol));
        h += svg::line_plot(plot);
    }
    h += "</div>\n";

    h += std::string("<h2>Per-layer hit rate at size ") + std::to_string(p.breakdown_size) + " [" +
         escape(r.scopes[0]) + "]</h2>\n";
    svg::LinePlot layers;
    layers.title = std::string("hit rate per layer, size ") + std::to_string(p.breakdown_size);
    layers.x_label = "layer";
    layers.y_label = "hit rate";
    layers.width = 760;
    double llo = 1;
    for (const std::string &pol : p.policies) {
        const ReplayCell *c = p.find(r.scopes[0], pol, p.breakdown_size);
        if (!c) continue;
        svg::Series s{pol, policy_color(pol), pol == "belady", {}, {}};
        for (size_t l = 0; l < c->result.per_layer.size(); ++l) {
            s.x.push_back(double(l));
            s.y.push_back(c->result.per_layer[l].hit_rate());
            llo = std::min(llo, s.y.back());
        }
        layers.series.push_back(std::move(s));
    }
    for (uint32_t l = 0; l<r.trace.n_layers; l += r.trace.n_layers> 32 ? 4 : 1) layers.x_ticks.push_back(l);
    layers.y_min = floor_tenth(llo);
    h += svg::line_plot(layers);

    h += std::string("<h2>Replay details [") + escape(r.scopes[0]) +
         "]</h2>\n<table><tr><th class=\"l\">policy</th><th>size</th><th>hit rate</th><th>Belady</th>"
         "<th>gap (points)</th><th>misses/token</th><th>MiB/token</th><th>cold share of misses</th></tr>\n";
    for (const std::string &pol : p.policies)
        for (uint32_t size : p.sizes) {
            const ReplayCell *c = p.find(r.scopes[0], pol, size), *b = p.find(r.scopes[0], "belady", size);
            if (!c || !b) continue;
            const cache::SimResult &x = c->result;
            h += std::string("<tr><td class=\"l\">") + escape(pol) + "</td><td>" + std::to_string(size) +
                 "</td><td>" + percent(x.hit_rate()) + "</td><td>" + percent(b->result.hit_rate()) +
                 "</td><td>" + fixed(100 * (b->result.hit_rate() - x.hit_rate()), 1) + "</td><td>" +
                 fixed(x.misses_per_token(), 2) + "</td><td>" +
                 (r.trace.expert_bytes.empty() ? "-" : fixed(x.bytes_per_token() / 1048576.0, 2)) +
                 std::string("</td><td>") + cold_share(x.total) + "</td></tr>\n";
        }
    h += "</table>\n";
}

void locality_section(const Report &r, std::string &h) {
    h += "<h2>Locality: SRP and SCH</h2>\n<p class=\"note\">SRP (segment routing best performance): the best "
         "F1 "
         "of serving every window of <i>m</i> tokens with one fixed expert group per layer. SCH (segment "
         "cache "
         "best hit rate): hit rate of a cache that knows the next <i>L</i> tokens and evicts the expert with "
         "the "
         "fewest uses in them. Both as defined by moe-lrc (arXiv 2505.16056). SCH sizes are " +
         partitioning_name(r.sch_partitioning) + " slots.</p>\n";
    for (const LocalityReport &l : r.locality) {
        h += std::string("<table><tr><th class=\"l\">") + escape(l.scope) + "</th><th>segment</th>";
        h += "<th>SRP</th><th>precision</th><th>recall</th><th>group</th>";
        for (uint32_t c : r.sch_sizes) h += std::string("<th>SCH @") + std::to_string(c) + "</th>";
        h += "</tr>\n";
        for (size_t i = 0; i < l.srp.size(); ++i) {
            const cache::SrpResult &s = l.srp[i];
            h += std::string("<tr><td></td><td>") + std::to_string(s.segment_len) + "</td><td>" +
                 fixed(s.srp, 3) + std::string("</td><td>") + fixed(s.precision, 3) + "</td><td>" +
                 fixed(s.recall, 3) + "</td><td>" + fixed(s.group_size, 1) + "</td>";
            if (i < l.sch.size())
                for (double x : l.sch[i].hit_rate) h += std::string("<td>") + percent(x) + "</td>";
            h += "</tr>\n";
        }
        h += "</table>\n";
    }

    const LocalityReport &all = r.locality[0];
    const cache::PopularityResult &p = all.popularity;
    const TraceSummary &t = r.trace;
    h += std::string("<h2>Expert popularity [") + escape(all.scope) +
         "]</h2>\n<p class=\"note\">Share of each layer's uses "
         "taken by each expert (uniform routing: " +
         percent(1.0 / t.n_experts, 2) + " each). Consecutive tokens share " + percent(p.mean_overlap) +
         std::string(" of their experts (random routing: ") + percent(p.random_overlap) + ").</p>\n";
    svg::HeatMap m;
    m.title = "expert popularity per layer";
    m.row_label = "layer";
    m.col_label = "expert";
    m.value_label = "of the layer's uses";
    m.rows = t.n_layers;
    m.cols = t.n_experts;
    m.cell_w = std::clamp(1100 / int(std::max<uint32_t>(1, t.n_experts)), 2, 18);
    m.cell_h = std::clamp(640 / int(std::max<uint32_t>(1, t.n_layers)), 3, 18);
    for (uint32_t l = 0; l < t.n_layers; ++l) {
        uint64_t total = 0;
        for (uint32_t e = 0; e < t.n_experts; ++e) total += p.counts[size_t{l} * t.n_experts + e];
        for (uint32_t e = 0; e < t.n_experts; ++e)
            m.values.push_back(total ? double(p.counts[size_t{l} * t.n_experts + e]) / double(total) : 0);
    }
    h += svg::heat_map(m);
    h += "<table><tr><th>layer</th><th>consecutive overlap</th><th>top 10% share</th><th>Gini</th>"
         "<th>entropy</th>";
    if (!all.srp.empty())
        h += std::string("<th>SRP m=") + std::to_string(all.srp.back().segment_len) + "</th>";
    h += "</tr>\n";
    for (size_t l = 0; l < p.overlap.size(); ++l) {
        h += std::string("<tr><td>") + std::to_string(l) + "</td><td>" + percent(p.overlap[l]) + "</td><td>" +
             percent(p.top10_share[l]) + "</td><td>" + fixed(p.gini[l], 3) + "</td><td>" +
             fixed(p.entropy[l], 3) + "</td>";
        if (!all.srp.empty()) h += std::string("<td>") + fixed(all.srp.back().layer_srp[l], 3) + "</td>";
        h += "</tr>\n";
    }
    h += "</table>\n";
}

}  // namespace

std::string format_html(const Report &r) {
    std::string h = std::string(
                        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
                        "charset=\"utf-8\">\n<title>moerun profile: ") +
                    escape(r.trace.path) + "</title>\n" + kStyle +
                    "</head>\n<body>\n<h1>moerun profile</h1>\n";
    summary(r, h);
    if (r.replay) replay_section(r, h);
    if (!r.locality.empty()) locality_section(r, h);
    h +=
        "<p class=\"note\">Written by moerun profile. All numbers from the routing trace alone; no model was "
        "run.</p>\n</body>\n</html>\n";
    return h;
}

}  // namespace moerun::cli::profile
