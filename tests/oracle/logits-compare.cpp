// Compares moerun's logits with llama.cpp's (a MOELOGIT file from llama_oracle.py, made with
// --batch 1 and the --kv-type given here) on one model:
//   1. the prompt evaluated as ONE batch (moerun's prefill path), logits at every position,
//      against llama.cpp's token-by-token logits: max |diff| / max |logit| per position, top-1;
//   2. greedy decoding one token at a time from the prompt, against llama.cpp's continuation.
// Usage: logits-compare MODEL.gguf ORACLE.bin --tol T [--first-tol T0] [--min-top1 F]
//                       [--greedy require|report] [--threads N] [--kv-type f32|f16]
//                       [--backend cpu|cuda --device-slots N|min|few] [--device-graphs on|off]
//                       [--tol-share S --max-tol T1]
// Passes when every position is within T (with --tol-share: a share S of them, and all within
// T1), position 0 within T0 (default 1e-4), the share of positions with the same top-1 token is
// >= F (default 1), and (with --greedy require, the default) the continuation is identical.
// --tol-share is for backends whose activations differ in precision from llama.cpp's: where two
// experts' router scores nearly tie, the other one can win at a few positions, and one changed
// expert of a 1-layer model moves those positions' logits far more than rounding does. Exit 0 pass, 1 fail, 2
// bad input, 77 the backend is not usable here (skipped).
// --backend runs the forward pass on that backend (ContextParams::backend) with N expert slots
// (min: the model's top-k, so experts are evicted and copied in all the time; few: top-k + 2, which
// leaves decode room to prefetch into slots on the copy queue), then again with a
// slot for every expert, and also requires the two runs' logits to be bit-identical: results
// must not depend on the cache. --device-graphs on runs decode's dense parts as graphs
// (ContextParams::device_graphs) in both runs, and on CUDA fails when none ran as one.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "moerun/kernels/backend.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/gguf.h"
#include "oracle_file.h"

namespace {

int32_t argmax(const float *x, size_t n) {
    return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

struct Run {
    std::vector<float> prompt_logits;  // [n_prompt, V]
    std::vector<int32_t> greedy;       // the continuation, while it matches the oracle's
    std::vector<float> greedy_logits;  // [greedy.size() + 1, V]
    moerun::ContextStats stats;
};

double rel_diff(const float *ours, const float *theirs, size_t n) {
    double max_diff = 0, max_abs = 0;
    for (size_t v = 0; v < n; ++v) {
        max_diff = std::max(max_diff, double(std::fabs(ours[v] - theirs[v])));
        max_abs = std::max(max_abs, double(std::fabs(theirs[v])));
    }
    return max_diff / std::max(max_abs, 1e-30);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 3) {
        std::fprintf(stderr,
                     "usage: %s MODEL.gguf ORACLE.bin --tol T [--first-tol T0] [--min-top1 F] [--greedy "
                     "require|report] [--threads N] [--kv-type f32|f16]\n",
                     argv[0]);
        return 2;
    }
    double tol = -1, first_tol = 1e-4, min_top1 = 1.0, tol_share = 1.0, max_tol = -1;
    bool require_greedy = true;
    int threads = 1;
    std::string backend_name, slots_arg = "min";
    bool graphs = false;
    moerun::quant::Type kv_type = moerun::quant::Type::F32;
    for (int i = 3; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--tol")
            tol = std::stod(v);
        else if (k == "--first-tol")
            first_tol = std::stod(v);
        else if (k == "--min-top1")
            min_top1 = std::stod(v);
        else if (k == "--tol-share")
            tol_share = std::stod(v);
        else if (k == "--max-tol")
            max_tol = std::stod(v);
        else if (k == "--greedy")
            require_greedy = v == "require";
        else if (k == "--threads")
            threads = std::stoi(v);
        else if (k == "--backend")
            backend_name = v;
        else if (k == "--device-slots")
            slots_arg = v;
        else if (k == "--device-graphs" && (v == "on" || v == "off"))
            graphs = v == "on";
        else if (k == "--kv-type" && (v == "f32" || v == "f16"))
            kv_type = v == "f16" ? moerun::quant::Type::F16 : moerun::quant::Type::F32;
        else {
            std::fprintf(stderr, "unknown option %s\n", k.c_str());
            return 2;
        }
    }
    if (tol < 0) {
        std::fprintf(stderr, "--tol is required\n");
        return 2;
    }
    if ((tol_share < 1.0) != (max_tol >= 0)) {
        std::fprintf(stderr, "--tol-share and --max-tol go together\n");
        return 2;
    }
    if (max_tol < 0) max_tol = tol;
    try {
        const auto ref = moerun::test::read_logits_file(argv[2]);
        auto file = moerun::gguf::GgufFile::open(argv[1]);
        auto model = moerun::Model::load(file);
        const size_t V = model.hparams().n_vocab, np = ref.n_prompt;
        if (ref.n_vocab != V || np == 0 || np > ref.n_tokens) {
            std::fprintf(stderr, "oracle file does not fit the model (n_vocab %u vs %zu, n_prompt %u)\n",
                         ref.n_vocab, V, ref.n_prompt);
            return 2;
        }
        std::unique_ptr<moerun::kernels::Backend> backend;
        if (!backend_name.empty()) {
            std::string why;
            backend = moerun::kernels::make_backend(backend_name, &why);
            if (!backend) {
                std::printf("backend %s not usable here: %s -> SKIPPED\n", backend_name.c_str(), why.c_str());
                return 77;
            }
        }
        const size_t n_gen = ref.n_tokens - np;
        // One run: the prompt as one batch (all logits), then greedy decoding one token at a time
        // while it matches the oracle's continuation.
        auto run = [&](uint32_t slots) {
            moerun::ContextParams cp;
            cp.n_ctx = ref.n_tokens + 8;
            cp.n_threads = threads;
            cp.type_k = cp.type_v = kv_type;
            cp.backend = backend.get();
            cp.device_slots = slots;
            cp.device_graphs = graphs;
            moerun::Context ctx(model, cp);
            Run r;
            ctx.eval(std::span<const int32_t>(ref.tokens.data(), np), true);
            r.prompt_logits.assign(ctx.logits(0), ctx.logits(0) + np * V);
            int32_t next = argmax(ctx.logits(np - 1), V);
            r.greedy_logits.assign(ctx.logits(np - 1), ctx.logits(np - 1) + V);
            for (size_t i = np; i < ref.n_tokens && next == ref.tokens[i]; ++i) {
                r.greedy.push_back(next);
                ctx.eval(std::span<const int32_t>(&next, 1), false);
                r.greedy_logits.insert(r.greedy_logits.end(), ctx.logits(0), ctx.logits(0) + V);
                next = argmax(ctx.logits(0), V);
            }
            r.stats = ctx.stats();
            return r;
        };
        uint32_t slots = 0;
        if (backend)
            slots = slots_arg == "min"   ? model.hparams().n_expert_used
                    : slots_arg == "few" ? model.hparams().n_expert_used + 2
                                         : static_cast<uint32_t>(std::stoul(slots_arg));
        const Run r = run(slots);
        bool same_across_slots = true;
        if (backend) {
            const Run all = run(0);
            same_across_slots = all.prompt_logits == r.prompt_logits && all.greedy == r.greedy &&
                                all.greedy_logits == r.greedy_logits;
            std::printf(
                "backend %s (%s): %u slots (%llu hits, %llu misses, %llu prefetched, %.1f MiB copied) vs %u "
                "slots: logits %s\n",
                backend_name.c_str(), backend->device_info().name.c_str(), r.stats.device_slots,
                static_cast<unsigned long long>(r.stats.slot_hits),
                static_cast<unsigned long long>(r.stats.slot_misses),
                static_cast<unsigned long long>(r.stats.slot_prefetches),
                double(r.stats.slot_bytes_uploaded) / (1 << 20), all.stats.device_slots,
                same_across_slots ? "bit-identical" : "DIFFER (results depend on the cache)");
            if (graphs) {
                std::printf("device graphs: %llu dense parts run as one graph\n",
                            static_cast<unsigned long long>(r.stats.device_graph_runs));
                if (backend_name == "cuda" && r.stats.device_graph_runs == 0) {
                    std::printf("FAIL: --device-graphs on, but no dense part ran as a graph\n");
                    return 1;
                }
            }
        }

        double worst = 0, first = 0;
        size_t worst_at = 0, top1_same = 0, within = 0;
        for (size_t i = 0; i < np; ++i) {
            const float *ours = r.prompt_logits.data() + i * V;
            for (size_t v = 0; v < V; ++v)
                if (!std::isfinite(ours[v])) {
                    std::fprintf(stderr, "position %zu: non-finite logit at token %zu\n", i, v);
                    return 1;
                }
            const double d = rel_diff(ours, ref.logits.data() + i * V, V);
            if (i == 0) first = d;
            within += d <= tol;
            if (d > worst) worst = d, worst_at = i;
            top1_same += argmax(ours, V) == argmax(ref.logits.data() + i * V, V);
        }
        const size_t same_prefix = r.greedy.size();
        const double top1_share = double(top1_same) / double(np);
        const bool ok = worst <= max_tol && double(within) >= tol_share * double(np) && first <= first_tol &&
                        top1_share >= min_top1 && (!require_greedy || same_prefix == n_gen) &&
                        same_across_slots;
        std::printf(
            "%s: %zu positions: max|diff|/max|logit| %.3g at %zu (tol %.3g), %zu/%zu within it (min %.0f%%, "
            "all "
            "within %.3g), position 0 %.3g (tol %.3g), top-1 same %zu/%zu (min %.0f%%); greedy identical for "
            "%zu/%zu tokens (%s) -> %s\n",
            argv[1], np, worst, worst_at, tol, within, np, 100 * tol_share, max_tol, first, first_tol,
            top1_same, np, 100 * min_top1, same_prefix, n_gen, require_greedy ? "required" : "reported",
            ok ? "PASS" : "FAIL");
        return ok ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "logits-compare: error: %s\n", e.what());
        return 2;
    }
}
