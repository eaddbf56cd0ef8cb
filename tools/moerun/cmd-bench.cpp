// `moerun bench`: prompt processing and decode speed, llama-bench style. Each repetition
// evaluates a prompt of -p random token ids as one batch, then decodes -n tokens one at a time
// (greedy argmax; no tokenizer, no sampling cost). One warm-up run is excluded. Prints a
// markdown table (mean +- stddev over -r repetitions), or JSON with --json.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>

#include "cli-common.h"
#include "model-setup.h"
#include "moerun/kernels/cpu/device-order.h"
#include "moerun/kernels/cpu/vec-dot.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/gguf.h"
#include "process-stats.h"
#include "subcommands.h"

namespace moerun::cli {

namespace {

struct BenchOptions {
    std::string model;
    int n_prompt = 512, n_gen = 128, reps = 3, threads = 0;
    bool json = false, io = false;
    double io_seconds = 3;
    bool expert_cpu = false, kernels = false;
    MemoryFlags mem;
};

std::string describe_model(const Model &model) {
    const auto &hp = model.hparams();
    return std::string(model.arch().name) + " " + std::to_string(hp.n_layer) + "L " +
           std::to_string(hp.n_expert) + "x top-" + std::to_string(hp.n_expert_used);
}

// --expert-cpu: one token through layer 0's experts on the host cores, as the CPU fallback runs a
// miss: with the CPU kernels (8-bit activations; the CPU backend's rows) and in the CUDA kernels'
// order (F32 activations; the rows a CUDA device computes, kernels/cpu/device-order.h). Each expert
// once per repetition (cold, as decode meets them); prints the median per expert and its weight
// bandwidth, the speed the fallback's cost model measures at start.
int bench_expert_cpu(const BenchOptions &o, int threads) {
    auto file = gguf::GgufFile::open(o.model);
    const Model model = Model::load(file);
    const auto &hp = model.hparams();
    if (hp.n_expert == 0) throw std::invalid_argument(o.model + ": not a mixture-of-experts model");
    const LayerWeights &L = model.layer(0);
    const int64_t E = hp.n_embd, F = hp.n_ff_exp;
    kernels::cpu::ThreadPool pool(threads);
    std::vector<float> x(static_cast<size_t>(E)), g(static_cast<size_t>(F)), u(g.size()), d(x.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = 0.01f * static_cast<float>(i % 17) - 0.08f;
    const uint64_t bytes = L.gate_exps.expert_bytes() + L.up_exps.expert_bytes() + L.down_exps.expert_bytes();
    const auto ffn = [&](bool device_order, uint32_t e) {
        const kernels::cpu::HostExpert he{L.gate_exps.type,
                                          L.up_exps.type,
                                          L.down_exps.type,
                                          L.gate_exps.data + e * L.gate_exps.expert_bytes(),
                                          L.up_exps.data + e * L.up_exps.expert_bytes(),
                                          L.down_exps.data + e * L.down_exps.expert_bytes(),
                                          E,
                                          F};
        kernels::cpu::host_expert_row(
            pool,
            device_order ? kernels::Backend::HostMath::device_order : kernels::Backend::HostMath::cpu_kernels,
            he, x.data(), g.data(), u.data(), d.data());
    };
    std::printf(
        "| model | threads | expert on the CPU | ms / expert | GB/s of weights |\n|---|---|---|---|---|\n");
    for (const bool device_order : {false, true}) {
        ffn(device_order, 0);  // warm-up: threads, code
        std::vector<double> t;
        for (int r = 0; r < o.reps; ++r)
            for (uint32_t e = 0; e < hp.n_expert; ++e) {
                const auto t0 = std::chrono::steady_clock::now();
                ffn(device_order, e);
                t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
        std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
        const double sec = t[t.size() / 2];
        std::printf("| %s | %d | %s | %.3f | %.2f |\n", describe_model(model).c_str(), threads,
                    device_order ? "CUDA's order (F32 activations)" : "CPU kernels (8-bit activations)",
                    1e3 * sec, double(bytes) / sec / 1e9);
    }
    std::printf("\n%u experts of layer 0, %s each (%s, %s, %s), median of %d passes over them\n", hp.n_expert,
                format_bytes(bytes).c_str(), std::string(quant::type_name(L.gate_exps.type)).c_str(),
                std::string(quant::type_name(L.up_exps.type)).c_str(),
                std::string(quant::type_name(L.down_exps.type)).c_str(), o.reps);
    return 0;
}

// --kernels: the CPU matrix kernels alone, on one thread, on the model's own weights: layer 0's
// attention query matrix, first expert's gate and down matrices, and the first 2048 rows of the
// output matrix (one row per weight type met). Each product y[tokens, rows] = act x W^T runs through
// vec_dot_tile (the kernels matmul uses) until at least 0.2 s have passed; the best of -r runs in
// multiply-adds per second. The matrices are small enough to stay in the caches, so this is the
// arithmetic speed: 1 token is decode's kernel, 8 and 64 tokens the prompt's.
int bench_kernels(const BenchOptions &o) {
    auto file = gguf::GgufFile::open(o.model);
    const Model model = Model::load(file);
    const LayerWeights &L = model.layer(0);
    struct Mat {
        const char *name;
        const Weight *w;
        int64_t rows;
    };
    std::vector<Mat> mats;
    const auto add = [&](const char *name, const Weight &w, int64_t rows) {
        if (!w.present()) return;
        for (const Mat &m : mats)
            if (m.w->type == w.type) return;
        mats.push_back({name, &w, rows});
    };
    add("attn_q", L.wq, L.wq.ne[1]);
    add("ffn_gate_exps[0]", L.gate_exps, L.gate_exps.ne[1]);
    add("ffn_down_exps[0]", L.down_exps, L.down_exps.ne[1]);
    add("output", model.output(), std::min<int64_t>(model.output().ne[1], 2048));
    std::printf(
        "| matrix | type | rows x cols | tokens | GMAC/s | GB/s of weights |\n|---|---|---|---|---|---|\n");
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0, 1);
    for (const Mat &m : mats) {
        const int64_t cols = m.w->ne[0];
        const quant::Type t = m.w->type;
        const size_t ab = kernels::cpu::act_bytes(t, cols);
        for (const int64_t n_tok : {int64_t{1}, int64_t{8}, int64_t{64}}) {
            std::vector<float> x(static_cast<size_t>(cols));
            std::vector<uint8_t> act(ab * static_cast<size_t>(n_tok));
            for (int64_t k = 0; k < n_tok; ++k) {
                for (float &v : x) v = nd(rng);
                kernels::cpu::quantize_act(t, x.data(), act.data() + static_cast<size_t>(k) * ab, cols);
            }
            std::vector<float> y(static_cast<size_t>(m.rows * n_tok));
            double best = 0;
            for (int r = 0; r < o.reps; ++r) {
                const auto t0 = std::chrono::steady_clock::now();
                int64_t calls = 0;
                double sec = 0;
                do {
                    kernels::cpu::vec_dot_tile(t, m.w->data, m.w->row_bytes, m.rows, act.data(), ab, n_tok,
                                               cols, y.data(), m.rows);
                    ++calls;
                    sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                } while (sec < 0.2);
                best = std::max(best, double(calls) / sec);
            }
            const double macs = double(m.rows) * double(cols) * double(n_tok);
            std::printf("| %s | %s | %lld x %lld | %lld | %.1f | %.1f |\n", m.name,
                        std::string(quant::type_name(t)).c_str(), static_cast<long long>(m.rows),
                        static_cast<long long>(cols), static_cast<long long>(n_tok), best * macs / 1e9,
                        best * double(m.w->row_bytes) * double(m.rows) / 1e9);
        }
    }
    std::printf("\none thread, %s kernels, best of %d runs of >= 0.2 s each\n",
                kernels::cpu::isa_name(kernels::cpu::active_isa()), o.reps);
    return 0;
}

// --io: the NVMe tier alone. Reads random experts of the model (gate, up, down: three aligned
// O_DIRECT reads each) with `depth` experts in flight, for io_seconds; prints the bandwidth.
int bench_io(const BenchOptions &o) {
    auto file = gguf::GgufFile::open(o.model);
    const Model model = Model::load(file);
    const auto locs = expert_locations(file, model);
    const unsigned depth = std::max(1u, o.mem.io_depth / 3);
    cache::NvmeReader reader(o.model, depth * 3);
    const uint64_t slot = cache::ExpertCache::slot_bytes(locs);
    void *arena = nullptr;
    if (posix_memalign(&arena, cache::NvmeReader::kAlign, slot * depth) != 0) throw std::bad_alloc();
    std::unique_ptr<void, decltype(&std::free)> hold(arena, &std::free);
    auto *base = static_cast<uint8_t *>(arena);
    std::mt19937_64 rng(42);
    std::vector<int> pending(depth, 0);
    uint64_t experts = 0, bytes = 0;
    auto issue = [&](unsigned b) {
        const cache::ExpertLocation &l = locs[rng() % locs.size()];
        uint64_t off = 0;
        for (const cache::ByteRange &r : {l.gate, l.up, l.down}) {
            if (r.size == 0) continue;
            reader.submit({r.offset, r.size, base + b * slot + off, b});
            off += cache::NvmeReader::span_bytes(r.offset, r.size);
            ++pending[b];
        }
        bytes += l.bytes();
    };
    const auto t0 = std::chrono::steady_clock::now();
    for (unsigned b = 0; b < depth; ++b) issue(b);
    double secs = 0;
    while ((secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) <
           o.io_seconds) {
        reader.wait_one([&](uint64_t tag) {
            if (--pending[tag] == 0) {
                ++experts;
                issue(static_cast<unsigned>(tag));
            }
        });
    }
    while (reader.outstanding() > 0) reader.wait_one([](uint64_t) {});
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double gbps = static_cast<double>(bytes) / secs / 1e9;
    if (o.json)
        std::printf(
            "{\"model\": \"%s\", \"mode\": \"%s\", \"experts_in_flight\": %u, \"expert_bytes\": %llu, "
            "\"experts\": %llu, \"seconds\": %.3f, \"gb_per_s\": %.4f}\n",
            o.model.c_str(), reader.mode().c_str(), depth, static_cast<unsigned long long>(locs[0].bytes()),
            static_cast<unsigned long long>(experts), secs, gbps);
    else
        std::printf("NVMe tier (%s): %llu random experts of %s in %.2f s, %u in flight: %.3f GB/s\n",
                    reader.mode().c_str(), static_cast<unsigned long long>(experts),
                    format_bytes(locs[0].bytes()).c_str(), secs, depth, gbps);
    return 0;
}

struct MeanStd {
    double mean = 0, std = 0;
};

MeanStd stats(const std::vector<double> &v) {
    MeanStd r;
    for (double x : v) r.mean += x;
    r.mean /= static_cast<double>(v.size());
    for (double x : v) r.std += (x - r.mean) * (x - r.mean);
    r.std = v.size() > 1 ? std::sqrt(r.std / static_cast<double>(v.size() - 1)) : 0.0;
    return r;
}

int bench(const BenchOptions &o) {
    if (o.io) return bench_io(o);
    if (o.kernels) return bench_kernels(o);
    const int threads = resolve_threads(o.threads);
    if (o.expert_cpu) return bench_expert_cpu(o, threads);
    const auto session =
        open_cli_session(o.model, o.mem, static_cast<uint32_t>(o.n_prompt + o.n_gen + 1), threads);
    const Model &model = session->model;
    Context ctx(model, session->ctx);
    cache::LayerCacheStats decode_stats;                      // summed over the measured decode phases
    uint64_t slot_hits = 0, slot_misses = 0, slot_bytes = 0;  // device slots, measured decode phases
    uint64_t slot_prefetches = 0, slot_prefetch_used = 0, slot_cpu_misses = 0, slot_transfers = 0;
    uint64_t write_backs = 0;
    const uint32_t V = model.hparams().n_vocab;
    std::mt19937 rng(1234);
    std::vector<int32_t> prompt(static_cast<size_t>(o.n_prompt));
    std::vector<double> pp, tg;
    double decode_seconds = 0;
    for (int rep = -1; rep < o.reps; ++rep) {  // rep -1: warm-up
        for (auto &t : prompt) t = static_cast<int32_t>(rng() % V);
        ctx.reset();
        auto t0 = std::chrono::steady_clock::now();
        if (o.n_prompt > 0) ctx.eval(prompt, false);
        auto t1 = std::chrono::steady_clock::now();
        const cache::LayerCacheStats before = cache_totals(*session);
        const ContextStats slots_before = ctx.stats();
        int32_t next =
            o.n_prompt > 0
                ? static_cast<int32_t>(std::max_element(ctx.logits(0), ctx.logits(0) + V) - ctx.logits(0))
                : 1;
        for (int i = 0; i < o.n_gen; ++i) {
            ctx.eval(std::span<const int32_t>(&next, 1), false);
            next = static_cast<int32_t>(std::max_element(ctx.logits(0), ctx.logits(0) + V) - ctx.logits(0));
        }
        auto t2 = std::chrono::steady_clock::now();
        if (rep < 0) continue;
        cache::LayerCacheStats after = cache_totals(*session);
        slot_hits += ctx.stats().slot_hits - slots_before.slot_hits;
        slot_misses += ctx.stats().slot_misses - slots_before.slot_misses;
        slot_bytes += ctx.stats().slot_bytes_uploaded - slots_before.slot_bytes_uploaded;
        slot_prefetches += ctx.stats().slot_prefetches - slots_before.slot_prefetches;
        slot_prefetch_used += ctx.stats().slot_prefetch_used - slots_before.slot_prefetch_used;
        slot_cpu_misses += ctx.stats().slot_cpu_misses - slots_before.slot_cpu_misses;
        slot_transfers += ctx.stats().slot_transfers - slots_before.slot_transfers;
        write_backs += ctx.stats().slot_write_backs - slots_before.slot_write_backs;
        decode_stats.accesses += after.accesses - before.accesses;
        decode_stats.hits += after.hits - before.hits;
        decode_stats.late_hits += after.late_hits - before.late_hits;
        decode_stats.misses += after.misses - before.misses;
        decode_stats.bytes_read += after.bytes_read - before.bytes_read;
        decode_stats.wait_seconds += after.wait_seconds - before.wait_seconds;
        decode_stats.prefetch_issued += after.prefetch_issued - before.prefetch_issued;
        decode_stats.prefetch_used += after.prefetch_used - before.prefetch_used;
        decode_seconds += std::chrono::duration<double>(t2 - t1).count();
        if (o.n_prompt > 0) pp.push_back(o.n_prompt / std::chrono::duration<double>(t1 - t0).count());
        if (o.n_gen > 0) tg.push_back(o.n_gen / std::chrono::duration<double>(t2 - t1).count());
    }
    const std::string desc = describe_model(model);
    const MeanStd p = pp.empty() ? MeanStd{} : stats(pp), g = tg.empty() ? MeanStd{} : stats(tg);
    const cache::LayerCacheStats &ds = decode_stats;
    const double n_dec = static_cast<double>(o.n_gen) * o.reps;
    const double hit_rate = ds.accesses ? double(ds.hit_total()) / double(ds.accesses) : 1.0;
    const double bytes_per_tok = n_dec > 0 ? double(ds.bytes_read) / n_dec : 0.0;
    const double misses_per_tok = n_dec > 0 ? double(ds.misses) / n_dec : 0.0;
    const double io_share = decode_seconds > 0 ? ds.wait_seconds / decode_seconds : 0.0;
    const ContextStats &cs = ctx.stats();
    if (o.json) {
        std::printf(
            "{\"model\": \"%s\", \"desc\": \"%s\", \"threads\": %d, \"reps\": %d, \"n_prompt\": %d, "
            "\"n_gen\": %d, "
            "\"pp_tps\": %.4f, \"pp_std\": %.4f, \"tg_tps\": %.4f, \"tg_std\": %.4f, \"peak_rss\": %llu, "
            "\"budget\": %llu, \"cached\": %s, \"n_slots\": %u, \"slot_bytes\": %llu, \"dense_bytes\": %llu, "
            "\"hit_rate\": %.5f, \"misses_per_token\": %.4f, \"bytes_per_token\": %.1f, \"io_wait_share\": "
            "%.4f, "
            "\"prefetch_issued\": %llu, \"prefetch_used\": %llu, \"fixed_overhead\": %llu, \"backend\": "
            "\"%s\", "
            "\"device\": \"%s\", \"device_bytes\": %llu, \"device_slots\": %u, \"slot_hits\": %llu, "
            "\"slot_misses\": %llu, \"slot_bytes_per_token\": %.1f, \"device_policy\": \"%s\", "
            "\"device_prefetch\": \"%s\", \"slot_prefetches\": %llu, \"slot_prefetch_used\": %llu, "
            "\"cpu_fallback\": \"%s\", \"slot_cpu_misses\": %llu, \"fallback_h2d\": %.4g, \"fallback_cpu\": "
            "%.4g, "
            "\"fallback_device\": %.4g, \"slot_transfers_per_token\": %.2f, \"host_registered_bytes\": "
            "%llu, \"host_dense_bytes\": %llu, \"host_dropped_bytes\": %llu, \"slot_write_backs\": %llu}\n",
            o.model.c_str(), desc.c_str(), threads, o.reps, o.n_prompt, o.n_gen, p.mean, p.std, g.mean, g.std,
            static_cast<unsigned long long>(peak_rss_bytes()),
            static_cast<unsigned long long>(session->plan.budget), session->plan.cached ? "true" : "false",
            session->plan.n_slots, static_cast<unsigned long long>(session->plan.slot_bytes),
            static_cast<unsigned long long>(session->plan.dense_bytes), hit_rate, misses_per_tok,
            bytes_per_tok, io_share, static_cast<unsigned long long>(ds.prefetch_issued),
            static_cast<unsigned long long>(ds.prefetch_used),
            static_cast<unsigned long long>(MemoryPlan::kFixedOverhead),
            session->backend ? std::string(session->backend->name()).c_str() : "cpu",
            session->backend ? session->backend->device_info().name.c_str() : "",
            static_cast<unsigned long long>(cs.device_bytes), cs.device_slots,
            static_cast<unsigned long long>(slot_hits), static_cast<unsigned long long>(slot_misses),
            n_dec > 0 ? double(slot_bytes) / n_dec : 0.0,
            session->backend ? session->ctx.device_policy.c_str() : "",
            session->backend ? session->ctx.device_prefetch.c_str() : "",
            static_cast<unsigned long long>(slot_prefetches),
            static_cast<unsigned long long>(slot_prefetch_used),
            session->backend ? session->ctx.cpu_fallback.c_str() : "",
            static_cast<unsigned long long>(slot_cpu_misses), cs.fallback_h2d, cs.fallback_cpu,
            cs.fallback_device, n_dec > 0 ? double(slot_transfers) / n_dec : 0.0,
            static_cast<unsigned long long>(cs.host_registered_bytes),
            static_cast<unsigned long long>(session->plan.host_dense_bytes),
            static_cast<unsigned long long>(cs.host_dropped_bytes),
            static_cast<unsigned long long>(write_backs));
        close_trace_out(*session, ctx.stats(), o.mem.trace_out);
        return 0;
    }
    std::printf("| model | threads | test | t/s |\n|---|---|---|---|\n");
    if (!pp.empty())
        std::printf("| %s | %d | pp%d | %.2f ± %.2f |\n", desc.c_str(), threads, o.n_prompt, p.mean, p.std);
    if (!tg.empty())
        std::printf("| %s | %d | tg%d | %.2f ± %.2f |\n", desc.c_str(), threads, o.n_gen, g.mean, g.std);
    std::printf("\npeak RSS %s, %d repetitions after one warm-up\n", format_bytes(peak_rss_bytes()).c_str(),
                o.reps);
    if (session->plan.cached)
        std::printf(
            "decode: hit rate %.1f%%, %.2f misses/token, %s read/token, I/O wait %.0f%% of decode time\n",
            100 * hit_rate, misses_per_tok, format_bytes(static_cast<uint64_t>(bytes_per_tok)).c_str(),
            100 * io_share);
    print_device_stats(*session, ctx.stats(), stdout);
    if (o.mem.stats) print_cache_stats(*session, stdout);
    close_trace_out(*session, ctx.stats(), o.mem.trace_out);
    return 0;
}

}  // namespace

Subcommand add_bench(CLI::App &parent) {
    auto o = std::make_shared<BenchOptions>();
    CLI::App *app = parent.add_subcommand("bench", "Measure prompt and decode speed (llama-bench style)");
    app->add_option("-m,--model", o->model, "GGUF model file")->required();
    app->add_option("-p,--n-prompt", o->n_prompt, "prompt tokens")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 16));
    app->add_option("-n,--n-gen", o->n_gen, "generated tokens")
        ->capture_default_str()
        ->check(CLI::Range(0, 1 << 16));
    app->add_option("-r,--repetitions", o->reps, "repetitions")
        ->capture_default_str()
        ->check(CLI::Range(1, 1000));
    app->add_option("-t,--threads", o->threads, "CPU threads (0: all)")->capture_default_str();
    app->add_flag("--json", o->json, "one JSON object instead of the table");
    add_memory_options(app, o->mem);
    app->add_flag(
        "--io", o->io,
        "measure the NVMe tier instead: O_DIRECT reads of random experts (--io-depth reads in flight)");
    app->add_option("--io-seconds", o->io_seconds, "duration of --io")->capture_default_str();
    app->add_flag(
        "--kernels", o->kernels,
        "measure the CPU matrix kernels instead: one thread, the model's own matrices (one per weight "
        "type), 1, 8 and 64 tokens");
    app->add_flag(
        "--expert-cpu", o->expert_cpu,
        "measure the CPU fallback's expert speed instead: layer 0's experts on the host cores, with the CPU "
        "kernels and in the CUDA kernels' order (-r passes)");
    return {app, [o] { return bench(*o); }};
}

}  // namespace moerun::cli
