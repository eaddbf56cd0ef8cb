// Terminal tables and JSON for `moerun profile` (see profile-report.h).
#include "profile-report.h"

#include <algorithm>
#include <cstdio>

#include "json-writer.h"

namespace moerun::cli::profile {
namespace {

std::string pad(const std::string &s, size_t width, bool left = false) {
    if (s.size() >= width) return s;
    return left ? s + std::string(width - s.size(), ' ') : std::string(width - s.size(), ' ') + s;
}

// Width of a policy's column: the name and two spaces, at least 9.
size_t col(const std::string &policy) {
    return std::max<size_t>(9, policy.size() + 2);
}

std::string bytes_per_token(const Report &r, const cache::SimResult &res) {
    if (r.trace.expert_bytes.empty()) return "-";
    return fixed(res.bytes_per_token() / (1024.0 * 1024.0), 2);
}

void summary(const Report &r, std::string &out) {
    const TraceSummary &t = r.trace;
    out += std::string("trace   ") + t.path + " (" + t.format + "): " + std::to_string(t.n_layers) +
           " layers x " + std::to_string(t.n_experts) + " experts, top-" + std::to_string(t.top_k) + "; " +
           std::to_string(t.sequences) + " sequences, " + std::to_string(t.tokens) + " tokens (" +
           std::to_string(t.prefill_tokens) + " prefill)";
    if (t.domains.size() > 1) {
        out += "; domains";
        for (const auto &[d, n] : t.domains) {
            out += d == t.domains.front().first ? " " : ", ";
            out += std::to_string(d);
            out += std::string(": ") + std::to_string(n) + " seqs";
        }
    }
    out += "\n";
    if (r.domain) out += std::string("select  domain ") + std::to_string(*r.domain) + "\n";
    if (r.skip_prefill) out += "select  decoded tokens only (--skip-prefill)\n";
}

void replay_tables(const Report &r, std::string &out) {
    const ReplayReport &p = *r.replay;
    const bool per_layer = p.partitioning == cache::Partitioning::per_layer;
    out += std::string("replay  ") +
           std::string(per_layer ? "per-layer slots (SIZE slots in each layer)"
                                 : "global slots (SIZE slots shared by all layers)") +
           std::string(", cache ") +
           (p.reset_per_sequence ? "emptied at each sequence" : "warm across sequences") +
           std::string(", prefetch ") + p.prefetch + ", expert bytes: " + r.trace.bytes_source + "\n";
    out += std::string("        ") + std::to_string(p.cells.size()) + " replays in " + fixed(p.seconds, 2) +
           " s on " + std::to_string(p.threads) + " thread(s)\n";
    for (const std::string &scope : r.scopes) {
        const ReplayCell *any = p.find(scope, p.policies[0], p.sizes[0]);
        out += std::string("\nhit rate [") + scope + "] (" + std::to_string(any ? any->result.tokens : 0) +
               " tokens)\n";
        out += pad("size", 7);
        for (const std::string &pol : p.policies) out += pad(pol, col(pol));
        out += "\n";
        for (uint32_t size : p.sizes) {
            out += pad(std::to_string(size), 7);
            for (const std::string &pol : p.policies) {
                const ReplayCell *c = p.find(scope, pol, size);
                out += pad(c ? percent(c->result.hit_rate()) : "-", col(pol));
            }
            out += "\n";
        }
    }
    const std::string &all = r.scopes[0];
    out += std::string("\ndetails [") + all +
           "] (gap: Belady's hit rate minus the policy's; cold: share of misses that are first uses)\n";
    out += pad("policy", 12, true) + pad("size", 6) + pad("hit rate", 10) + pad("belady", 9) + pad("gap", 8) +
           pad("miss/tok", 10) + pad("MiB/tok", 9) + pad("cold", 7);
    if (p.prefetch != "none") out += pad("loads/tok", 11) + pad("pf used", 10) + pad("pf waste", 10);
    out += "\n";
    for (const std::string &pol : p.policies)
        for (uint32_t size : p.sizes) {
            const ReplayCell *c = p.find(all, pol, size), *b = p.find(all, "belady", size);
            if (!c || !b) continue;
            const cache::SimResult &x = c->result;
            out += pad(pol, 12, true) + pad(std::to_string(size), 6) + pad(percent(x.hit_rate()), 10) +
                   pad(percent(b->result.hit_rate()), 9) +
                   pad(fixed(100 * (b->result.hit_rate() - x.hit_rate()), 1), 8) +
                   pad(fixed(x.misses_per_token(), 2), 10) + pad(bytes_per_token(r, x), 9) +
                   pad(cold_share(x.total), 7);
            if (p.prefetch != "none")
                out += pad(fixed(double(x.total.misses + x.total.prefetches_issued) /
                                     double(std::max<uint64_t>(1, x.tokens)),
                                 2),
                           11) +
                       pad(std::to_string(x.total.prefetches_used), 10) +
                       pad(std::to_string(x.total.prefetches_wasted), 10);
            out += "\n";
        }
    out +=
        std::string("\nper-layer hit rate [") + all + "] at size " + std::to_string(p.breakdown_size) + "\n";
    out += pad("layer", 7);
    for (const std::string &pol : p.policies) out += pad(pol, col(pol));
    out += "\n";
    for (uint32_t l = 0; l < r.trace.n_layers; ++l) {
        out += pad(std::to_string(l), 7);
        for (const std::string &pol : p.policies) {
            const ReplayCell *c = p.find(all, pol, p.breakdown_size);
            out += pad(c && l < c->result.per_layer.size() ? percent(c->result.per_layer[l].hit_rate()) : "-",
                       9);
        }
        out += "\n";
    }
    if (!p.per_sequence) return;
    for (const std::string &scope : r.scopes) {
        out += std::string("\nper-sequence hit rate [") + scope +
               "], each sequence alone from an empty cache: median (p10-p90)\n";
        out += pad("size", 7);
        for (const std::string &pol : p.policies) out += pad(pol, 20);
        out += "\n";
        for (uint32_t size : p.sizes) {
            out += pad(std::to_string(size), 7);
            for (const std::string &pol : p.policies) {
                const ReplayCell *c = p.find(scope, pol, size);
                out += pad(c && c->spread
                               ? fixed(100 * c->spread->median, 1) + " (" + fixed(100 * c->spread->p10, 1) +
                                     std::string("-") + fixed(100 * c->spread->p90, 1) + ")"
                               : "-",
                           20);
            }
            out += "\n";
        }
    }
}

void locality_tables(const Report &r, std::string &out) {
    for (const LocalityReport &l : r.locality) {
        out += std::string("\nSRP, segment routing best performance [") + l.scope +
               "] (best F1 of one expert group per segment and layer)\n";
        out += pad("segment", 8) + pad("SRP", 8) + pad("uses>=", 8) + pad("precision", 11) +
               pad("recall", 8) + pad("group", 7) + "\n";
        for (const cache::SrpResult &s : l.srp)
            out += pad(std::to_string(s.segment_len), 8) + pad(fixed(s.srp, 3), 8) +
                   pad(std::to_string(s.threshold), 8) + pad(fixed(s.precision, 3), 11) +
                   pad(fixed(s.recall, 3), 8) + pad(fixed(s.group_size, 1), 7) + "\n";
        out += std::string("\nSCH, segment cache best hit rate [") + l.scope + "] (" +
               partitioning_name(r.sch_partitioning) + " slots; columns: cache size)\n";
        out += pad("segment", 8);
        for (uint32_t c : r.sch_sizes) out += pad(std::to_string(c), 8);
        out += "\n";
        for (const cache::SchResult &s : l.sch) {
            out += pad(std::to_string(s.segment_len), 8);
            for (double h : s.hit_rate) out += pad(percent(h), 8);
            out += "\n";
        }
        const cache::PopularityResult &p = l.popularity;
        out += std::string("\nrouting statistics [") + l.scope + "]: consecutive-token overlap " +
               percent(p.mean_overlap) + " (random routing " + percent(p.random_overlap) + ")\n";
        out += pad("layer", 7) + pad("overlap", 9) + pad("top10%", 8) + pad("gini", 7) + pad("entropy", 9) +
               "\n";
        for (size_t i = 0; i < p.overlap.size(); ++i)
            out += pad(std::to_string(i), 7) + pad(percent(p.overlap[i]), 9) +
                   pad(percent(p.top10_share[i]), 8) + pad(fixed(p.gini[i], 3), 7) +
                   pad(fixed(p.entropy[i], 3), 9) + "\n";
    }
}

void json_cell(JsonWriter &j, const Report &r, const ReplayCell &c, const ReplayCell *belady) {
    const cache::SimResult &x = c.result;
    j.begin_object();
    j.field("scope", c.scope).field("policy", c.policy).field("size", c.size);
    j.field("tokens", x.tokens).field("accesses", x.total.accesses).field("hits", x.total.hits);
    j.field("misses", x.total.misses).field("cold_misses", x.total.cold_misses);
    j.field("evictions", x.total.evictions);
    j.field("hit_rate", x.hit_rate()).field("misses_per_token", x.misses_per_token());
    j.key("bytes_per_token");
    if (r.trace.expert_bytes.empty())
        j.null();
    else
        j.value(x.bytes_per_token());
    j.field("cold_share", x.total.misses ? double(x.total.cold_misses) / double(x.total.misses) : 0.0);
    j.key("belady_hit_rate");
    if (belady)
        j.value(belady->result.hit_rate());
    else
        j.null();
    j.field("prefetches_issued", x.total.prefetches_issued).field("prefetches_used", x.total.prefetches_used);
    j.field("prefetches_wasted", x.total.prefetches_wasted);
    std::vector<double> layers;
    for (const cache::SimCounts &l : x.per_layer) layers.push_back(l.hit_rate());
    j.field("per_layer_hit_rate", layers);
    j.key("sequence_hit_rate");
    if (c.spread)
        j.begin_object()
            .field("sequences", c.spread->sequences)
            .field("min", c.spread->min)
            .field("p10", c.spread->p10)
            .field("median", c.spread->median)
            .field("p90", c.spread->p90)
            .field("max", c.spread->max)
            .end_object();
    else
        j.null();
    j.end_object();
}

}  // namespace

std::string percent(double x, int decimals) {
    return fixed(100 * x, decimals) + "%";
}

std::string fixed(double x, int decimals) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
    return buf;
}

std::string partitioning_name(cache::Partitioning p) {
    return p == cache::Partitioning::per_layer ? "per-layer" : "global";
}

std::string cold_share(const cache::SimCounts &c) {
    return c.misses ? percent(double(c.cold_misses) / double(c.misses), 0) : "-";
}

std::string format_table(const Report &r) {
    std::string out;
    summary(r, out);
    if (r.replay) replay_tables(r, out);
    if (!r.locality.empty()) {
        locality_tables(r, out);
        out += std::string("\nlocality metrics in ") + fixed(r.locality_seconds, 2) + " s\n";
    }
    return out;
}

std::string format_json(const Report &r) {
    JsonWriter j;
    j.begin_object();
    j.field("schema", "moerun-profile/1").field("command", r.command);
    const TraceSummary &t = r.trace;
    j.key("trace").begin_object();
    j.field("path", t.path)
        .field("format", t.format)
        .field("n_layers", t.n_layers)
        .field("n_experts", t.n_experts);
    j.field("top_k", t.top_k).field("sequences", t.sequences).field("tokens", t.tokens);
    j.field("prefill_tokens", t.prefill_tokens).field("model", t.model);
    j.key("domains").begin_object();
    for (const auto &[d, n] : t.domains) j.field(std::to_string(d), n);
    j.end_object();
    j.key("expert_bytes");
    if (t.expert_bytes.empty())
        j.null();
    else
        j.array(t.expert_bytes);
    j.field("bytes_source", t.bytes_source);
    j.end_object();
    j.key("select").begin_object();
    j.key("domain");
    if (r.domain)
        j.value(*r.domain);
    else
        j.null();
    j.field("skip_prefill", r.skip_prefill).field("scopes", r.scopes);
    j.end_object();
    j.key("replay");
    if (r.replay) {
        const ReplayReport &p = *r.replay;
        j.begin_object();
        j.field("partitioning", partitioning_name(p.partitioning)).field("policies", p.policies);
        j.field("sizes", p.sizes).field("prefetch", p.prefetch);
        j.field("reset_per_sequence", p.reset_per_sequence).field("per_sequence", p.per_sequence);
        j.field("seconds", p.seconds).field("threads", p.threads);
        j.key("results").begin_array();
        for (const ReplayCell &c : p.cells) json_cell(j, r, c, p.find(c.scope, "belady", c.size));
        j.end_array();
        j.end_object();
    } else {
        j.null();
    }
    j.key("locality");
    if (r.locality.empty()) {
        j.null();
    } else {
        j.begin_object();
        j.field("segments", r.segments).field("sch_sizes", r.sch_sizes);
        j.field("sch_partitioning", partitioning_name(r.sch_partitioning))
            .field("seconds", r.locality_seconds);
        j.key("scopes").begin_array();
        for (const LocalityReport &l : r.locality) {
            j.begin_object().field("scope", l.scope);
            j.key("srp").begin_array();
            for (const cache::SrpResult &s : l.srp)
                j.begin_object()
                    .field("segment", s.segment_len)
                    .field("windows", s.windows)
                    .field("srp", s.srp)
                    .field("threshold", s.threshold)
                    .field("precision", s.precision)
                    .field("recall", s.recall)
                    .field("group_size", s.group_size)
                    .field("per_layer", s.layer_srp)
                    .end_object();
            j.end_array();
            j.key("sch").begin_array();
            for (const cache::SchResult &s : l.sch)
                j.begin_object()
                    .field("segment", s.segment_len)
                    .field("sequences", s.sequences)
                    .field("hit_rate", s.hit_rate)
                    .field("sequence_min", s.seq_min)
                    .field("sequence_max", s.seq_max)
                    .end_object();
            j.end_array();
            const cache::PopularityResult &p = l.popularity;
            j.key("overlap").begin_object();
            j.field("mean", p.mean_overlap).field("random", p.random_overlap).field("pairs", p.pairs);
            j.field("per_layer", p.overlap).end_object();
            j.key("popularity").begin_object();
            j.field("top10_share", p.top10_share).field("gini", p.gini).field("entropy", p.entropy);
            j.key("counts").begin_array();
            for (uint32_t layer = 0; layer < t.n_layers; ++layer)
                j.array(std::vector<uint64_t>(p.counts.begin() + std::ptrdiff_t(layer) * t.n_experts,
                                              p.counts.begin() + std::ptrdiff_t(layer + 1) * t.n_experts));
            j.end_array().end_object();
            j.end_object();
        }
        j.end_array();
        j.end_object();
    }
    j.end_object();
    return j.str() + "\n";
}

}  // namespace moerun::cli::profile
