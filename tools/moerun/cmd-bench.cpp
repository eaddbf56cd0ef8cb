// `moerun bench`: prompt processing and decode speed, llama-bench style. Each repetition
// evaluates a prompt of -p random token ids as one batch, then decodes -n tokens one at a time
// (greedy argmax; no tokenizer, no sampling cost). One warm-up run is excluded. Prints a
// markdown table (mean +- stddev over -r repetitions), or JSON with --json.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "cli-common.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/gguf.h"
#include "process-stats.h"
#include "subcommands.h"

namespace moerun::cli {

namespace {

struct BenchOptions {
    std::string model;
    int n_prompt = 512, n_gen = 128, reps = 3, threads = 0;
    bool json = false;
};

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
    auto file = gguf::GgufFile::open(o.model);
    const Model model = Model::load(file);
    const int threads = resolve_threads(o.threads);
    Context ctx(model, {.n_ctx = static_cast<uint32_t>(o.n_prompt + o.n_gen + 1), .n_threads = threads});
    const uint32_t V = model.hparams().n_vocab;
    std::mt19937 rng(1234);
    std::vector<int32_t> prompt(static_cast<size_t>(o.n_prompt));
    std::vector<double> pp, tg;
    for (int rep = -1; rep < o.reps; ++rep) {  // rep -1: warm-up
        for (auto &t : prompt) t = static_cast<int32_t>(rng() % V);
        ctx.reset();
        auto t0 = std::chrono::steady_clock::now();
        if (o.n_prompt > 0) ctx.eval(prompt, false);
        auto t1 = std::chrono::steady_clock::now();
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
        if (o.n_prompt > 0) pp.push_back(o.n_prompt / std::chrono::duration<double>(t1 - t0).count());
        if (o.n_gen > 0) tg.push_back(o.n_gen / std::chrono::duration<double>(t2 - t1).count());
    }
    const auto &hp = model.hparams();
    const std::string desc = std::string(model.arch().name) + " " + std::to_string(hp.n_layer) + "L " +
                             std::to_string(hp.n_expert) + "x top-" + std::to_string(hp.n_expert_used);
    const MeanStd p = pp.empty() ? MeanStd{} : stats(pp), g = tg.empty() ? MeanStd{} : stats(tg);
    if (o.json) {
        std::printf(
            "{\"model\": \"%s\", \"desc\": \"%s\", \"threads\": %d, \"reps\": %d, \"n_prompt\": %d, "
            "\"n_gen\": %d, "
            "\"pp_tps\": %.4f, \"pp_std\": %.4f, \"tg_tps\": %.4f, \"tg_std\": %.4f, \"peak_rss\": %llu}\n",
            o.model.c_str(), desc.c_str(), threads, o.reps, o.n_prompt, o.n_gen, p.mean, p.std, g.mean, g.std,
            static_cast<unsigned long long>(peak_rss_bytes()));
        return 0;
    }
    std::printf("| model | threads | test | t/s |\n|---|---|---|---|\n");
    if (!pp.empty())
        std::printf("| %s | %d | pp%d | %.2f ± %.2f |\n", desc.c_str(), threads, o.n_prompt, p.mean, p.std);
    if (!tg.empty())
        std::printf("| %s | %d | tg%d | %.2f ± %.2f |\n", desc.c_str(), threads, o.n_gen, g.mean, g.std);
    std::printf("\npeak RSS %s, %d repetitions after one warm-up\n", format_bytes(peak_rss_bytes()).c_str(),
                o.reps);
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
    return {app, [o] { return bench(*o); }};
}

}  // namespace moerun::cli
