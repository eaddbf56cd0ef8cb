// `moerun profile`: trace loading and filtering, the replay grid and the locality metrics.
//
// Every (scope, policy, size) is one independent cache::simulate call (the runtime's policy
// code), so the grid runs on a small pool of threads; results are stored by index and never
// depend on the thread count. Belady's policy is always added: it is the bound each row is
// compared with.
#include "profile-run.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "moerun/runtime/gguf.h"
#include "moerun/runtime/model-info.h"

namespace moerun::cli::profile {
namespace {

// Runs fn(0..n-1) on up to `threads` threads; rethrows the first exception.
void parallel_for(size_t n, unsigned threads, const std::function<void(size_t)> &fn) {
    std::atomic<size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto worker = [&] {
        for (size_t i; (i = next++) < n;) {
            try {
                fn(i);
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error) error = std::current_exception();
                next = n;
            }
        }
    };
    std::vector<std::thread> pool;
    const unsigned extra = std::min<size_t>(threads, n) > 1 ? unsigned(std::min<size_t>(threads, n)) - 1 : 0;
    for (unsigned t = 0; t < extra; ++t) pool.emplace_back(worker);
    worker();
    for (std::thread &t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

std::string detect_format(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    char magic[8] = {};
    f.read(magic, 8);
    const std::string m(magic, size_t(f.gcount()));
    return m == "MRNTRACE" ? "MRNTRACE" : m == "MOETRC01" ? "MOETRC01" : "CSV";
}

// The sequences of `in` that `keep` accepts, without prefill tokens when skip_prefill; weights
// are dropped (the profile does not use them).
cache::Trace select(const cache::Trace &in, const std::function<bool(const cache::TraceSequence &)> &keep,
                    bool skip_prefill) {
    cache::Trace out;
    out.shape = in.shape;
    const size_t per_token = size_t{in.shape.n_layers} * in.shape.top_k;
    std::vector<cache::TraceSequence> seqs = in.sequences;
    if (seqs.empty() && in.n_tokens() > 0) seqs.push_back({0, 0, 0, 0, in.n_tokens()});
    for (const cache::TraceSequence &s : seqs) {
        if (!keep(s)) continue;
        cache::TraceSequence q = s;
        q.first = out.n_tokens();
        for (uint64_t t = s.first; t < s.first + s.n_tokens; ++t) {
            const bool prefill = !in.prefill.empty() && in.prefill[t];
            if (skip_prefill && prefill) continue;
            out.token_ids.push_back(in.token_ids.empty() ? -1 : in.token_ids[t]);
            out.prefill.push_back(prefill ? 1 : 0);
            out.experts.insert(out.experts.end(), in.experts.begin() + std::ptrdiff_t(t * per_token),
                               in.experts.begin() + std::ptrdiff_t((t + 1) * per_token));
        }
        q.n_tokens = out.n_tokens() - q.first;
        if (q.n_tokens > 0) out.sequences.push_back(q);
    }
    return out;
}

std::vector<uint64_t> model_expert_bytes(const std::string &path, const TraceSummary &s) {
    const gguf::GgufFile file = gguf::GgufFile::open(path);
    const runtime::ModelInfo info = runtime::ModelInfo::from_gguf(file);
    const runtime::ExpertSummary experts = runtime::ExpertSummary::from_gguf(file, info);
    if (experts.layers.size() != s.n_layers || experts.n_expert != s.n_experts)
        throw std::runtime_error(path + ": the model has " + std::to_string(experts.layers.size()) +
                                 std::string(" MoE layers x ") + std::to_string(experts.n_expert) +
                                 std::string(" experts but the trace has ") + std::to_string(s.n_layers) +
                                 " x " + std::to_string(s.n_experts) + ": not the model of this trace");
    std::vector<uint64_t> bytes;
    for (const runtime::LayerExperts &l : experts.layers) bytes.push_back(l.bytes_per_expert);
    return bytes;
}

// The oracle prefetcher: the next layer's experts, exactly.
size_t oracle_next_layer(void *ctx, uint64_t token, uint32_t layer, std::span<uint16_t> out) {
    const auto &trace = *static_cast<const cache::Trace *>(ctx);
    const std::span<const uint16_t> e = trace.experts_at(token, layer);
    const size_t n = std::min(e.size(), out.size());
    std::copy_n(e.begin(), n, out.begin());
    return n;
}

// A predictor as the replay's prefetcher: it observes each served (token, layer) of the trace
// and predicts the next layer's experts (distance 1).
struct PredictorPrefetch {
    const cache::Trace *trace;
    std::unique_ptr<predictor::Predictor> p;
    static void observe(void *ctx, uint64_t token, uint32_t layer) {
        auto &self = *static_cast<PredictorPrefetch *>(ctx);
        self.p->observe(layer, self.trace->experts_at(token, layer));
    }
    static size_t predict(void *ctx, uint64_t, uint32_t, std::span<uint16_t> out) {
        auto &self = *static_cast<PredictorPrefetch *>(ctx);
        const size_t most = std::min(out.size(), self.score.size());
        return predictor::predict_likely(*self.p, 1, self.min_score, out.first(most), self.score);
    }
    std::vector<float> score;  // [2 * top_k]: at most that many prefetches a layer
    float min_score = predictor::kPrefetchMinScore;
};

predictor::Shape shape_of(const cache::Trace &t) {
    return {t.shape.n_layers, t.shape.n_experts, t.shape.top_k};
}

Spread spread_of(std::vector<double> rates) {
    Spread s;
    s.sequences = rates.size();
    if (rates.empty()) return s;
    std::sort(rates.begin(), rates.end());
    auto at = [&](double q) { return rates[size_t(q * double(rates.size() - 1) + 0.5)]; };
    s.min = rates.front();
    s.p10 = at(0.1);
    s.median = at(0.5);
    s.p90 = at(0.9);
    s.max = rates.back();
    return s;
}

}  // namespace

std::vector<uint32_t> default_sizes(cache::Partitioning partitioning, uint32_t n_layers) {
    std::vector<uint32_t> s{8, 16, 24, 32, 48};
    if (partitioning == cache::Partitioning::global)
        for (uint32_t &x : s) x *= n_layers;
    return s;
}

std::vector<Scope> load(const Options &o, TraceSummary &summary) {
    const cache::Trace trace = cache::read_trace(o.trace_path);
    summary.path = o.trace_path;
    summary.format = detect_format(o.trace_path);
    summary.n_layers = trace.shape.n_layers;
    summary.n_experts = trace.shape.n_experts;
    summary.top_k = trace.shape.top_k;
    summary.sequences = trace.sequences.size();
    summary.tokens = trace.n_tokens();
    for (uint8_t p : trace.prefill) summary.prefill_tokens += p;
    std::map<uint32_t, uint64_t> domains;
    for (const cache::TraceSequence &s : trace.sequences) ++domains[s.domain];
    summary.domains.assign(domains.begin(), domains.end());
    summary.model = trace.shape.model;
    if (!o.model_path.empty()) {
        summary.expert_bytes = model_expert_bytes(o.model_path, summary);
        summary.bytes_source = std::string("model ") + o.model_path;
    } else if (std::any_of(trace.shape.expert_bytes.begin(), trace.shape.expert_bytes.end(),
                           [](uint64_t b) { return b != 0; })) {
        summary.expert_bytes = trace.shape.expert_bytes;
        summary.bytes_source = "trace header";
    } else {
        summary.bytes_source = "unknown";
    }

    if (o.domain && !domains.count(*o.domain)) {
        std::string have;
        for (const auto &[d, n] : domains) have += (have.empty() ? "" : ", ") + std::to_string(d);
        throw std::runtime_error(o.trace_path + ": no sequence has domain " + std::to_string(*o.domain) +
                                 std::string(" (domains: ") + (have.empty() ? "none" : have) + ")");
    }
    std::vector<Scope> scopes;
    auto in_domain = [&](const cache::TraceSequence &s) { return !o.domain || s.domain == *o.domain; };
    scopes.push_back({o.domain ? std::string("domain ") + std::to_string(*o.domain) : "all",
                      select(trace, in_domain, o.skip_prefill)});
    if (scopes[0].trace.n_tokens() == 0)
        throw std::runtime_error(
            o.trace_path + ": no token left to replay" +
            (o.skip_prefill ? " (every token is prefill and --skip-prefill is set)" : ""));
    if (o.by_domain && !o.domain && domains.size() > 1)
        for (const auto &[d, n] : domains)
            scopes.push_back({"domain " + std::to_string(d),
                              select(
                                  trace, [d = d](const cache::TraceSequence &s) { return s.domain == d; },
                                  o.skip_prefill)});
    return scopes;
}

ReplayReport run_replay(const std::vector<Scope> &scopes, const Options &o, const TraceSummary &summary) {
    ReplayReport r;
    r.partitioning = o.partitioning;
    r.policies = o.policies;
    if (std::find(r.policies.begin(), r.policies.end(), "belady") == r.policies.end())
        r.policies.push_back("belady");
    r.sizes = o.sizes;
    r.prefetch = o.prefetch;
    r.reset_per_sequence = o.reset_per_sequence;
    r.per_sequence = o.per_sequence;
    r.breakdown_size = o.breakdown_size ? o.breakdown_size : r.sizes[r.sizes.size() / 2];
    r.threads = o.threads;

    // Per scope, the sequences as traces of their own (--per-sequence).
    std::vector<std::vector<cache::Trace>> alone(scopes.size());
    if (o.per_sequence)
        for (size_t s = 0; s < scopes.size(); ++s)
            for (const cache::TraceSequence &q : scopes[s].trace.sequences)
                alone[s].push_back(select(
                    scopes[s].trace, [&q](const cache::TraceSequence &x) { return x.first == q.first; },
                    false));

    struct Job {
        size_t scope;
        std::string policy;
        uint32_t size;
    };
    std::vector<Job> jobs;
    for (size_t s = 0; s < scopes.size(); ++s)
        for (const std::string &p : r.policies)
            for (uint32_t size : r.sizes) jobs.push_back({s, p, size});
    r.cells.resize(jobs.size());
    const auto t0 = std::chrono::steady_clock::now();
    parallel_for(jobs.size(), o.threads, [&](size_t i) {
        const Job &j = jobs[i];
        const cache::Trace &trace = scopes[j.scope].trace;
        cache::SimOptions so;
        so.policy = j.policy;
        so.capacity = j.size;
        so.partitioning = o.partitioning;
        so.reset_on_sequence = o.reset_per_sequence;
        so.expert_bytes = summary.expert_bytes;
        // A learning prefetcher starts afresh for each replay it serves.
        PredictorPrefetch learner{nullptr, nullptr, {}, 0.0f};
        const auto use = [&](const cache::Trace &tr) {
            if (o.prefetch == "oracle-next-layer") {
                so.prefetcher = {1, &oracle_next_layer, const_cast<cache::Trace *>(&tr)};
            } else if (o.prefetch != "none") {
                learner = {&tr, predictor::make_predictor(o.prefetch, shape_of(tr), {1}),
                           std::vector<float>(2 * size_t{tr.shape.top_k}), o.prefetch_min};
                so.prefetcher = {1, &PredictorPrefetch::predict, &learner, &PredictorPrefetch::observe};
            }
        };
        use(trace);
        ReplayCell &c = r.cells[i];
        c.scope = scopes[j.scope].name;
        c.policy = j.policy;
        c.size = j.size;
        c.result = cache::simulate(trace, so);
        if (o.per_sequence) {
            std::vector<double> rates;
            for (const cache::Trace &seq : alone[j.scope]) {
                use(seq);
                rates.push_back(cache::simulate(seq, so).hit_rate());
            }
            c.spread = spread_of(std::move(rates));
        }
    });
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

std::vector<PredictRow> run_predict(const std::vector<Scope> &scopes, const Options &o) {
    std::vector<PredictRow> rows(scopes.size() * o.predictors.size() * o.distances.size());
    parallel_for(scopes.size() * o.predictors.size(), o.threads, [&](size_t i) {
        const size_t s = i / o.predictors.size(), k = i % o.predictors.size();
        const cache::Trace &trace = scopes[s].trace;
        const predictor::Shape shape = shape_of(trace);
        const uint32_t most = *std::max_element(o.distances.begin(), o.distances.end());
        predictor::PredictorParams params;
        params.max_distance = most;
        auto p = predictor::make_predictor(o.predictors[k], shape, params);
        std::vector<uint64_t> starts;
        for (const cache::TraceSequence &q : trace.sequences) starts.push_back(q.first);
        const auto scores =
            predictor::evaluate(*p, shape, trace.experts, starts, o.distances, o.reset_per_sequence);
        for (size_t d = 0; d < scores.size(); ++d)
            rows[i * o.distances.size() + d] = {scopes[s].name, o.predictors[k], scores[d]};
    });
    return rows;
}

std::vector<LocalityReport> run_locality(const std::vector<Scope> &scopes, const Options &o) {
    std::vector<LocalityReport> out(scopes.size());
    const size_t per_scope = 2 * o.segments.size() + 1;
    for (size_t s = 0; s < scopes.size(); ++s) {
        out[s].scope = scopes[s].name;
        out[s].srp.resize(o.segments.size());
        out[s].sch.resize(o.segments.size());
    }
    parallel_for(scopes.size() * per_scope, o.threads, [&](size_t i) {
        const size_t s = i / per_scope, k = i % per_scope;
        const cache::Trace &trace = scopes[s].trace;
        if (k == 0)
            out[s].popularity = cache::routing_popularity(trace);
        else if (k <= o.segments.size())
            out[s].srp[k - 1] = cache::segment_routing_best_performance(trace, o.segments[k - 1]);
        else
            out[s].sch[k - 1 - o.segments.size()] = cache::segment_cache_best_hit_rate(
                trace, o.segments[k - 1 - o.segments.size()], o.sch_sizes, o.partitioning);
    });
    return out;
}

}  // namespace moerun::cli::profile
