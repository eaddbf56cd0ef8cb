// Compares moerun's logits with llama.cpp's (a MOELOGIT file from llama_oracle.py, made with
// --batch 1 and the --kv-type given here) on one model:
//   1. the prompt evaluated as ONE batch (moerun's prefill path), logits at every position,
//      against llama.cpp's token-by-token logits: max |diff| / max |logit| per position, top-1;
//   2. greedy decoding one token at a time from the prompt, against llama.cpp's continuation.
// Usage: logits-compare MODEL.gguf ORACLE.bin --tol T [--first-tol T0] [--min-top1 F]
//                       [--greedy require|report] [--threads N] [--kv-type f32|f16]
// Passes when every position is within T, position 0 within T0 (default 1e-4), the share of
// positions with the same top-1 token is >= F (default 1), and (with --greedy require, the
// default) the continuation is identical. Exit 0 pass, 1 fail, 2 bad input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "moerun/runtime/context.h"
#include "moerun/runtime/gguf.h"
#include "oracle_file.h"

namespace {

int32_t argmax(const float *x, size_t n) {
    return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

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
    double tol = -1, first_tol = 1e-4, min_top1 = 1.0;
    bool require_greedy = true;
    int threads = 1;
    moerun::quant::Type kv_type = moerun::quant::Type::F32;
    for (int i = 3; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--tol")
            tol = std::stod(v);
        else if (k == "--first-tol")
            first_tol = std::stod(v);
        else if (k == "--min-top1")
            min_top1 = std::stod(v);
        else if (k == "--greedy")
            require_greedy = v == "require";
        else if (k == "--threads")
            threads = std::stoi(v);
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
        moerun::Context ctx(
            model, {.n_ctx = ref.n_tokens + 8, .n_threads = threads, .type_k = kv_type, .type_v = kv_type});

        // 1. The prompt as one batch, all logits.
        ctx.eval(std::span<const int32_t>(ref.tokens.data(), np), true);
        double worst = 0, first = 0;
        size_t worst_at = 0, top1_same = 0;
        for (size_t i = 0; i < np; ++i) {
            const float *ours = ctx.logits(i);
            for (size_t v = 0; v < V; ++v)
                if (!std::isfinite(ours[v])) {
                    std::fprintf(stderr, "position %zu: non-finite logit at token %zu\n", i, v);
                    return 1;
                }
            const double d = rel_diff(ours, ref.logits.data() + i * V, V);
            if (i == 0) first = d;
            if (d > worst) worst = d, worst_at = i;
            top1_same += argmax(ours, V) == argmax(ref.logits.data() + i * V, V);
        }

        // 2. Greedy continuation, one token at a time.
        const size_t n_gen = ref.n_tokens - np;
        size_t same_prefix = 0;
        int32_t next = argmax(ctx.logits(np - 1), V);
        for (size_t i = np; i < ref.n_tokens && next == ref.tokens[i]; ++i) {
            ++same_prefix;
            ctx.eval(std::span<const int32_t>(&next, 1), false);
            next = argmax(ctx.logits(0), V);
        }
        const double top1_share = double(top1_same) / double(np);
        const bool ok = worst <= tol && first <= first_tol && top1_share >= min_top1 &&
                        (!require_greedy || same_prefix == n_gen);
        std::printf(
            "%s: %zu positions: max|diff|/max|logit| %.3g at %zu (tol %.3g), position 0 %.3g (tol %.3g), "
            "top-1 same %zu/%zu (min %.0f%%); greedy identical for %zu/%zu tokens (%s) -> %s\n",
            argv[1], np, worst, worst_at, tol, first, first_tol, top1_same, np, 100 * min_top1, same_prefix,
            n_gen, require_greedy ? "required" : "reported", ok ? "PASS" : "FAIL");
        return ok ? 0 : 1;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "logits-compare: error: %s\n", e.what());
        return 2;
    }
}
