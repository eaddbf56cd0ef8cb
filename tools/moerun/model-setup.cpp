// Model loading with a memory budget for the CLI (see model-setup.h).
#include "model-setup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "moerun/cache/miss-cost.h"
#include "moerun/cache/policy.h"
#include "moerun/kernels/backend.h"
#include "moerun/runtime/model-info.h"

namespace moerun::cli {

bool same_file(const std::string &a, const std::string &b) {
    struct stat sa {
    }, sb{};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

void add_memory_options(CLI::App *app, MemoryFlags &f) {
    app->add_option("--host-mem", f.host_mem, "host RAM budget, e.g. 6GiB (default: 90% of available RAM)");
    app->add_option("--device-mem", f.device_mem,
                    "device budget; on the CPU backend it is RAM and adds to --host-mem");
    app->add_option("--cache-policy", f.policy,
                    "expert cache eviction policy: lru, slru, lfu, segment, least-stale, "
                    "belady (needs --routing-trace)")
        ->capture_default_str()
        ->check(CLI::IsMember(
            std::vector<std::string>(cache::policy_names().begin(), cache::policy_names().end())));
    app->add_flag("--cache-per-layer", f.per_layer,
                  "one cache partition per layer (default: one for the model)");
    app->add_flag("--force-cache", f.force_cache,
                  "use the expert cache even when every expert fits the budget");
    app->add_option("--cache-slots", f.cache_slots,
                    "use the expert cache with exactly this many slots (overrides the budget's count)")
        ->check(CLI::Range(1u, 1u << 30));
    app->add_option("--prefetch", f.prefetch,
                    "prefetch: auto, none, next-layer (auto: next-layer unless routing is "
                    "forced by a trace)")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "none", "next-layer"}));
    app->add_option("--io-depth", f.io_depth, "NVMe reads in flight")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1024u));
    app->add_option("--routing-trace", f.routing_trace,
                    "force the experts of each token from a routing trace (moerun, MOETRC01 or CSV)");
    app->add_option("--routing-offset", f.routing_offset, "first trace token to use")->capture_default_str();
    app->add_option("--trace-out", f.trace_out, "record the routing of this run to a trace file");
    app->add_option(
        "--pin-hot", f.pin_hot,
        "keep the N most used experts (counted in --pin-profile or the routing trace) resident for good");
    app->add_option("--pin-profile", f.pin_profile, "routing trace to count expert uses in for --pin-hot");
    app->add_flag("--stats", f.stats, "print expert cache statistics per layer");
    app->add_option("--cache-type-k", f.type_k, "KV cache type of the keys: f16 or f32 (also -ctk)")
        ->check(CLI::IsMember({"f16", "f32"}))
        ->capture_default_str();
    app->add_option("--cache-type-v", f.type_v, "KV cache type of the values: f16 or f32 (also -ctv)")
        ->check(CLI::IsMember({"f16", "f32"}))
        ->capture_default_str();
    app->add_option(
           "--backend", f.backend,
           "where the forward pass runs: auto (cpu until the CUDA pass is validated on a GPU), cpu, cuda, "
           "cpu-device (the device code path on the CPU backend, for tests)")
        ->check(CLI::IsMember({"auto", "cpu", "cuda", "cpu-device"}))
        ->capture_default_str();
    app->add_option("--device-slots", f.device_slots,
                    "device backends: exactly this many expert slots on the device (overrides --device-mem's "
                    "count; at least the experts a token uses)");
    app->add_option("--device-prefetch", f.device_prefetch,
                    "device backends, decode: copy the experts a routing predictor expects at the next layer "
                    "into device slots while the current layer computes: none, previous, transition "
                    "(through the expert cache: read from NVMe ahead when not in host memory)")
        ->check(CLI::IsMember({"none", "previous", "transition"}))
        ->capture_default_str();
    app->add_option(
           "--cpu-fallback", f.cpu_fallback,
           "device backends, decode: run a slot miss on the CPU cores from host memory instead of "
           "copying it: off, auto (a cost model with bandwidths measured at start decides per miss), "
           "always. Not off: on CUDA, tokens can differ with the budget (CPU and GPU round differently)")
        ->check(CLI::IsMember({"off", "auto", "always"}))
        ->capture_default_str();
    app->add_flag("--device-graphs", f.device_graphs,
                  "device backends, decode: run each layer's attention and router as one CUDA graph, updated "
                  "per token (not yet measured on a GPU; the CPU backend runs them directly)");
    app->add_flag("--exclusive-tiers", f.exclusive_tiers,
                  "device backends over the expert cache, decode: an expert copied up into a device slot "
                  "leaves the host cache, and one the device slots evict is copied back into it, so the two "
                  "tiers hold different experts and fewer are read from disk");
}

namespace {

// Picks the backend for --backend and says why. Returns null for the CPU forward pass (which calls
// the CPU kernels directly); throws when the backend asked for by name is not usable.
std::unique_ptr<kernels::Backend> choose_backend(const std::string &want, std::string *desc) {
    std::string cuda_why = "CUDA not compiled in";
    bool cuda_ok = false;
    for (const kernels::BackendProbe &p : kernels::probe_backends())
        if (p.name == "cuda" && p.compiled) {
            cuda_ok = p.available;
            cuda_why = p.available ? "CUDA device " + p.reason : "CUDA compiled, " + p.reason;
        }
    // auto stays on the CPU pass until the CUDA pass has run its gpu tests on a GPU (it has not:
    // no GPU machine has been available); --backend cuda runs it.
    if (want == "auto" && cuda_ok)
        cuda_why += "; the CUDA pass is not yet validated on a GPU, --backend cuda runs it";
    if (want == "cuda") {
        std::string why;
        auto b = kernels::make_backend("cuda", &why);
        if (!b)
            throw std::invalid_argument("--backend cuda: not usable here: " + (why.empty() ? cuda_why : why));
        *desc = "cuda (" + cuda_why + ")";
        return b;
    }
    if (want == "cpu-device") {
        *desc = "cpu-device (the device forward pass on the CPU backend; " + cuda_why + ")";
        return kernels::make_backend("cpu");
    }
    *desc = "cpu (" + cuda_why + ")";
    return nullptr;
}

// Reads every page of the dense tensors (`dense`) and of the experts (`experts`: read in place) so the
// first tokens do not pay for page faults; shows progress on stderr for large files.
void prefault(const gguf::GgufFile &file, bool dense, bool experts) {
    const runtime::ModelInfo info = runtime::ModelInfo::from_gguf(file);
    const runtime::ExpertSummary sum = runtime::ExpertSummary::from_gguf(file, info);
    auto is_expert = [&](const gguf::TensorInfo &t) {
        for (const auto &l : sum.layers)
            if (&t == l.gate || &t == l.up || &t == l.down) return true;
        return false;
    };
    uint64_t total = 0, done = 0;
    for (const auto &t : file.tensors())
        if (is_expert(t) ? experts : dense) total += file.tensor_data(t).size();
    const bool show = total > (256ull << 20);
    const bool tty = isatty(STDERR_FILENO) != 0;
    int last = -1;
    volatile uint8_t sink = 0;
    for (const auto &t : file.tensors()) {
        if (!(is_expert(t) ? experts : dense)) continue;
        const auto bytes = file.tensor_data(t);
        file.advise_willneed(file.data_offset() + t.offset, bytes.size());
        for (size_t i = 0; i < bytes.size(); i += 4096) sink = static_cast<uint8_t>(sink + bytes[i]);
        done += bytes.size();
        const int pct = static_cast<int>(100 * done / std::max<uint64_t>(total, 1));
        if (show && tty && pct != last) std::fprintf(stderr, "\rmoerun: loading %3d%%", pct);
        last = pct;
    }
    if (show)
        std::fprintf(stderr, tty ? "\rmoerun: loaded %s\n" : "moerun: loaded %s\n",
                     format_size(done).c_str());
}

// A trace this run reads must be of this model: same layers and experts (and top-k when it
// drives the routing) and at least one token. Checked before any of its rows is indexed.
void check_trace_shape(const cache::Trace &t, const std::string &flag, const std::string &path,
                       const Hparams &hp, bool need_top_k) {
    const std::string why =
        cache::trace_mismatch(t, hp.n_layer, hp.n_expert, need_top_k ? hp.n_expert_used : 0);
    if (!why.empty()) throw std::invalid_argument(flag + " " + path + ": " + why);
}

// --pin-hot: counts each expert's uses in the profile trace and pins the most used ones.
void pin_hot_experts(Session &s, const MemoryFlags &f) {
    const Hparams &hp = s.model.hparams();
    std::unique_ptr<cache::Trace> own;
    const cache::Trace *profile = s.routing.get();
    if (!f.pin_profile.empty()) {
        own = std::make_unique<cache::Trace>(cache::read_trace(f.pin_profile));
        check_trace_shape(*own, "--pin-profile", f.pin_profile, hp, false);
        profile = own.get();
    }
    if (profile == nullptr)
        throw std::invalid_argument("--pin-hot needs a profile: give --pin-profile or --routing-trace");
    std::vector<uint64_t> uses(size_t{hp.n_layer} * hp.n_expert, 0);
    for (uint64_t t = 0; t < profile->n_tokens(); ++t)
        for (uint32_t l = 0; l < hp.n_layer; ++l)
            for (uint16_t e : profile->experts_at(t, l)) ++uses[size_t{l} * hp.n_expert + e];
    std::vector<uint32_t> order(uses.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return uses[a] > uses[b]; });
    std::vector<cache::ExpertId> hot;
    for (uint32_t i = 0; i < std::min<uint32_t>(f.pin_hot, static_cast<uint32_t>(order.size())); ++i)
        hot.push_back({order[i] / hp.n_expert, order[i] % hp.n_expert});
    cache::ExpertCache *cache = s.experts->cache();
    const uint32_t n = cache->pin_permanently(hot);
    std::fprintf(stderr, "moerun: pinned the %u most used experts of the profile for good (%u asked)\n", n,
                 f.pin_hot);
}

}  // namespace

std::unique_ptr<Session> open_session(const std::string &path, const MemoryFlags &f, uint32_t n_ctx,
                                      int threads) {
    // --trace-out truncates its file: never one this run reads (the model is mapped: truncating it
    // would destroy it and end the run with SIGBUS).
    if (!f.trace_out.empty())
        for (const std::string &in : {path, f.routing_trace, f.pin_profile})
            if (!in.empty() && same_file(f.trace_out, in))
                throw std::invalid_argument("--trace-out " + f.trace_out + ": is the same file as " + in +
                                            ", which this run reads; give another path");
    set_mapped_file_for_errors(path);
    auto file = gguf::GgufFile::open(path);
    Model model = Model::load(file);
    auto s = std::make_unique<Session>(std::move(file), std::move(model));
    const Hparams &hp = s->model.hparams();
    s->ctx.n_ctx = n_ctx;
    s->ctx.n_threads = threads;
    s->ctx.type_k = f.type_k == "f32" ? quant::Type::F32 : quant::Type::F16;
    s->ctx.type_v = f.type_v == "f32" ? quant::Type::F32 : quant::Type::F16;
    s->backend = choose_backend(f.backend, &s->backend_desc);
    MemoryOptions mo;
    if (!f.host_mem.empty()) mo.host_mem = parse_size(f.host_mem);
    if (s->backend) {
        // The device budget holds dense weights, KV cache, workspaces and expert slots (the
        // Context allocates them at start); host RAM holds the experts' host tier.
        const kernels::DeviceInfo di = s->backend->device_info();
        s->ctx.backend = s->backend.get();
        mo.state_on_device = true;
        s->ctx.device_slots = f.device_slots;
        s->ctx.device_mem = !f.device_mem.empty() ? parse_size(f.device_mem)
                            : di.free_memory > 0  ? di.free_memory / 10 * 9
                                                  : 0;
        if (f.policy == "belady")
            throw std::invalid_argument("--cache-policy belady is not available for device slots");
        s->ctx.device_policy = f.policy;  // the device slots are replaced by the cache's policy
        s->ctx.device_prefetch = f.device_prefetch == "none" ? "" : f.device_prefetch;
        s->ctx.cpu_fallback = f.cpu_fallback;
        s->ctx.device_graphs = f.device_graphs;
        s->ctx.exclusive_tiers = f.exclusive_tiers;
        s->ctx.weights_file = &s->file;
    } else {
        if (!f.device_mem.empty()) mo.device_mem = parse_size(f.device_mem);
        if (f.device_slots > 0)
            throw std::invalid_argument("--device-slots needs a device backend (--backend)");
        if (f.cpu_fallback != "off")
            throw std::invalid_argument(
                "--cpu-fallback needs a device backend (--backend); the CPU forward "
                "pass computes every expert on the CPU already");
    }
    mo.force_cache = f.force_cache || f.cache_slots > 0;
    if (!f.routing_trace.empty()) {
        s->routing = std::make_unique<cache::Trace>(cache::read_trace(f.routing_trace));
        check_trace_shape(*s->routing, "--routing-trace", f.routing_trace, hp, true);
        s->ctx.routing = s->routing.get();
        s->ctx.routing_offset = f.routing_offset;
    }
    const uint32_t min_slots = f.per_layer ? hp.n_layer : 1;
    // The experts' byte ranges, computed once for the plan, the cache and the trace header.
    std::vector<cache::ExpertLocation> locs = expert_locations(s->file, s->model);
    s->plan = plan_memory(s->file, locs, s->model, s->ctx, mo, f.cache_slots > 0 ? 0 : min_slots);
    if (f.cache_slots > 0) {
        s->plan.n_slots = static_cast<uint32_t>(std::min<uint64_t>(f.cache_slots, s->plan.n_experts_total));
        s->plan.budget_from_free = false;
    }
    std::fprintf(stderr, "moerun: backend %s\n", s->backend_desc.c_str());
    std::fprintf(stderr, "moerun: %s\n", s->plan.describe().c_str());
    if (s->plan.cached) {
        s->file.advise_random();
        cache::CacheConfig cc;
        cc.n_slots = s->plan.n_slots;
        cc.per_layer = f.per_layer;
        cc.policy = f.policy;
        cc.queue_depth = f.io_depth;
        if (f.policy == "belady") {
            if (!s->routing)
                throw std::invalid_argument("--cache-policy belady needs the future: give --routing-trace");
            s->future = std::make_unique<cache::FutureTrace>(hp.n_layer, hp.n_expert);
            std::vector<std::span<const uint16_t>> per_layer(hp.n_layer);
            for (uint64_t step = 0; step < n_ctx; ++step) {
                const uint64_t at = (f.routing_offset + step) % s->routing->n_tokens();
                for (uint32_t l = 0; l < hp.n_layer; ++l) per_layer[l] = s->routing->experts_at(at, l);
                s->future->push_step(per_layer);
            }
            cc.policy_params.future = s->future.get();
        }
        cc.policy_params.top_k = hp.n_expert_used;
        s->experts = make_cached_experts(s->file, s->model, locs, cc);
        std::fprintf(stderr, "moerun: expert cache: %s policy, %s, reads via %s\n", f.policy.c_str(),
                     f.per_layer ? "per-layer partitions" : "one partition",
                     s->experts->cache()->reader().mode().c_str());
        s->ctx.prefetch_next_layer = f.prefetch == "next-layer" || (f.prefetch == "auto" && !s->routing);
        if (f.pin_hot > 0) pin_hot_experts(*s, f);
    } else {
        s->experts = make_mapped_experts(s->model);
    }
    s->ctx.experts = s->experts.get();
    // With a backend the dense matrices are read once, for their upload (ContextParams::weights_file).
    prefault(s->file, !s->backend, !s->plan.cached);
    if (!f.trace_out.empty()) {
        cache::TraceShape shape;
        shape.n_layers = hp.n_layer;
        shape.n_experts = hp.n_expert;
        shape.top_k = hp.n_expert_used;
        for (const auto &loc : locs)
            if (loc.id.expert == 0) shape.expert_bytes.push_back(loc.bytes());
        shape.model = path;
        s->trace_out = std::make_unique<cache::TraceWriter>(f.trace_out, shape);
        s->trace_out->begin_sequence(0, 0);
        s->ctx.trace_out = s->trace_out.get();
    }
    return s;
}

void print_device_stats(const Session &s, const ContextStats &st, std::FILE *out) {
    if (!s.backend) return;
    const uint64_t looked_up = st.slot_hits + st.slot_misses + st.slot_cpu_misses;
    std::fprintf(
        out,
        "moerun: device %s: %s allocated, %u expert slots; slot hits %llu, misses %llu (%.1f%% hit), "
        "%s copied to the device in %llu transfers (%llu of them in %llu batched calls)\n",
        std::string(s.backend->name()).c_str(), format_size(st.device_bytes).c_str(), st.device_slots,
        static_cast<unsigned long long>(st.slot_hits), static_cast<unsigned long long>(st.slot_misses),
        looked_up ? 100.0 * double(st.slot_hits) / double(looked_up) : 100.0,
        format_size(st.slot_bytes_uploaded).c_str(), static_cast<unsigned long long>(st.slot_transfers),
        static_cast<unsigned long long>(st.slot_batched_transfers),
        static_cast<unsigned long long>(st.slot_batches));
    if (st.slot_prefetches > 0)
        std::fprintf(
            out,
            "moerun: device prefetch (%s): %llu experts copied ahead, %llu used by their layer, %llu "
            "evicted unused\n",
            s.ctx.device_prefetch.c_str(), static_cast<unsigned long long>(st.slot_prefetches),
            static_cast<unsigned long long>(st.slot_prefetch_used),
            static_cast<unsigned long long>(st.slot_prefetch_wasted));
    if (s.ctx.device_graphs)
        std::fprintf(out, "moerun: device graphs: %llu layers' dense parts run as one graph%s\n",
                     static_cast<unsigned long long>(st.device_graph_runs),
                     st.device_graph_runs == 0
                         ? " (the backend has no graphs or could not make one: run directly)"
                         : "");
    if (s.ctx.exclusive_tiers && s.experts && s.experts->cache())
        std::fprintf(
            out,
            "moerun: exclusive tiers: %llu experts written back to the host cache when the device slots "
            "evicted them (%llu for prefetches), %llu left it when copied up\n",
            static_cast<unsigned long long>(st.slot_write_backs),
            static_cast<unsigned long long>(st.slot_prefetch_write_backs),
            static_cast<unsigned long long>(st.host_released));
    else if (s.ctx.exclusive_tiers)
        std::fprintf(
            out, "moerun: exclusive tiers: off, the host tier is the mapped file (every expert in RAM)\n");
    if (st.host_dropped_bytes > 0)
        std::fprintf(out, "moerun: %s of mapped dense weights dropped from host RAM after their upload\n",
                     format_size(st.host_dropped_bytes).c_str());
    if (st.host_registered_bytes > 0)
        std::fprintf(
            out, "moerun: %s of host memory %s for the copies (%s)\n",
            format_size(st.host_registered_bytes).c_str(),
            s.backend->name() == "cpu" ? "registered (not page-locked on the cpu backend)" : "page-locked",
            s.experts && s.experts->cache() ? "the expert cache's slots" : "the mapped expert tensors");
    if (s.ctx.cpu_fallback != "off") {
        std::fprintf(out, "moerun: cpu fallback (%s): %llu slot misses computed on the CPU instead of copied",
                     s.ctx.cpu_fallback.c_str(), static_cast<unsigned long long>(st.slot_cpu_misses));
        if (st.fallback_h2d > 0) {
            const cache::TierBandwidths bw{st.fallback_h2d, st.fallback_cpu, st.fallback_device};
            std::fprintf(
                out,
                "; measured: copy %.2f GB/s, CPU expert %.2f GB/s, device expert %.2f GB/s, so a copy "
                "pays after %.1f uses",
                bw.h2d / 1e9, bw.cpu / 1e9, bw.gpu / 1e9, cache::copy_break_even_uses(bw));
        }
        std::fprintf(out, "\n");
    }
}

void print_cache_stats(const Session &s, std::FILE *out) {
    const cache::ExpertCache *c = s.experts ? s.experts->cache() : nullptr;
    if (c == nullptr) {
        std::fprintf(out, "moerun: expert cache: off (all experts read in place)\n");
        return;
    }
    std::fprintf(out,
                 "\n| layer | accesses | hits | late | misses | hit rate | read | prefetch "
                 "issued/used/wasted/cancelled | I/O wait s |\n");
    std::fprintf(out, "|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
    cache::LayerCacheStats total;
    auto row = [&](const std::string &name, const cache::LayerCacheStats &st) {
        std::fprintf(out, "| %s | %llu | %llu | %llu | %llu | %.1f%% | %s | %llu/%llu/%llu/%llu | %.3f |\n",
                     name.c_str(), static_cast<unsigned long long>(st.accesses),
                     static_cast<unsigned long long>(st.hits), static_cast<unsigned long long>(st.late_hits),
                     static_cast<unsigned long long>(st.misses),
                     st.accesses ? 100.0 * double(st.hit_total()) / double(st.accesses) : 0.0,
                     format_size(st.bytes_read).c_str(), static_cast<unsigned long long>(st.prefetch_issued),
                     static_cast<unsigned long long>(st.prefetch_used),
                     static_cast<unsigned long long>(st.prefetch_wasted),
                     static_cast<unsigned long long>(st.prefetch_cancelled), st.wait_seconds);
    };
    for (size_t l = 0; l < c->stats().size(); ++l) {
        row(std::to_string(l), c->stats()[l]);
        total += c->stats()[l];
    }
    row("all", total);
    if (!s.backend)
        std::fprintf(
            out,
            "moerun: CPU fallback: 0 (CPU forward pass: device and host tiers are the same RAM; a miss "
            "waits for its read; --cpu-fallback applies to device backends)\n");
}

void close_trace_out(Session &s, const ContextStats &st, const std::string &path) {
    if (!s.trace_out) return;
    s.trace_out->close();
    if (st.trace_nonfinite_weights > 0)
        std::fprintf(stderr,
                     "moerun: warning: %s: %llu router weights were not finite (NaN or inf in the model) "
                     "and were recorded as 0\n",
                     path.c_str(), static_cast<unsigned long long>(st.trace_nonfinite_weights));
}

}  // namespace moerun::cli
