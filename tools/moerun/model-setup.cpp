// Model loading with a memory budget for the CLI (see model-setup.h).
#include "model-setup.h"

#include <unistd.h>

#include "moerun/cache/miss-cost.h"
#include "moerun/cache/policy.h"
#include "moerun/kernels/backend.h"

namespace moerun::cli {

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
        ->check(CLI::IsMember(std::vector<std::string>(backend_names().begin(), backend_names().end())))
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
        ->check(
            CLI::IsMember(std::vector<std::string>(cpu_fallback_names().begin(), cpu_fallback_names().end())))
        ->capture_default_str();
    app->add_flag("--device-graphs", f.device_graphs,
                  "device backends, decode: run each layer's attention and router as one CUDA graph, updated "
                  "per token (not yet measured on a GPU; the CPU backend runs them directly)");
    app->add_flag("--exclusive-tiers", f.exclusive_tiers,
                  "device backends over the expert cache, decode: an expert copied up into a device slot "
                  "leaves the host cache, and one the device slots evict is copied back into it, so the two "
                  "tiers hold different experts and fewer are read from disk");
}

std::unique_ptr<Session> open_cli_session(const std::string &path, const MemoryFlags &f, uint32_t n_ctx,
                                          int threads) {
    set_mapped_file_for_errors(path);
    const bool tty = isatty(STDERR_FILENO) != 0;
    int last = -1;
    SessionLog log;
    log.info = [](const std::string &line) { std::fprintf(stderr, "moerun: %s\n", line.c_str()); };
    // Large files show their reading in: a percentage on a terminal, and one line when done.
    log.progress = [tty, &last](uint64_t done, uint64_t total) {
        if (total <= (256ull << 20)) return;
        const int pct = static_cast<int>(100 * done / total);
        if (tty && pct != last) std::fprintf(stderr, "\rmoerun: loading %3d%%", pct);
        last = pct;
        if (done == total)
            std::fprintf(stderr, tty ? "\rmoerun: loaded %s\n" : "moerun: loaded %s\n",
                         format_size(done).c_str());
    };
    return moerun::open_session(path, f, n_ctx, threads, log);
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
