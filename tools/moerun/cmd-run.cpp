// `moerun run`: load a model, evaluate a prompt, stream the generated text, then print the
// prompt and decode speed and the peak memory. Flags follow llama.cpp's where the meaning is
// the same (-m, -p, -f, -n, -t, -c, --temp, --top-k, --top-p, --min-p, --repeat-penalty, --seed).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "cli-common.h"
#include "input-file.h"
#include "model-setup.h"
#include "moerun/runtime/generate.h"
#include "moerun/runtime/gguf.h"
#include "process-stats.h"
#include "subcommands.h"

namespace moerun::cli {

namespace {

struct RunOptions {
    std::string model, prompt, prompt_file;
    int32_t n_predict = 128;
    int threads = 0;
    uint32_t n_ctx = 4096;
    SamplerParams sampler;
    bool no_special = false, parse_special = false, ignore_eos = false, show_prompt = true;
    MemoryFlags mem;
};

int run(const RunOptions &o) {
    const auto t0 = std::chrono::steady_clock::now();
    std::fprintf(stderr, "moerun: loading %s\n", o.model.c_str());
    const int threads = resolve_threads(o.threads);
    const auto session = open_cli_session(o.model, o.mem, o.n_ctx, threads);
    const Model &model = session->model;
    const Tokenizer tok = Tokenizer::from_gguf(session->file);
    for (const auto &w : tok.warnings()) std::fprintf(stderr, "moerun: tokenizer: %s\n", w.c_str());
    Context ctx(model, session->ctx);
    const auto &hp = model.hparams();
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr,
                 "moerun: %s, %u layers, %u experts (top-%u), backend %s (%d threads), loaded in %.2f s\n",
                 std::string(model.arch().name).c_str(), hp.n_layer, hp.n_expert, hp.n_expert_used,
                 session->backend ? std::string(session->backend->name()).c_str() : "cpu", threads, load_s);

    const std::string text = o.prompt_file.empty() ? o.prompt : read_input_file(o.prompt_file, "prompt file");
    const std::vector<int32_t> prompt = tok.encode(text, !o.no_special, o.parse_special);
    if (prompt.empty())
        throw std::invalid_argument(
            text.empty()
                ? std::string("the prompt is empty and this model adds no BOS token: give a prompt with "
                              "-p or -f")
                : "the prompt (" + std::to_string(text.size()) +
                      " bytes) gives no tokens with this vocabulary and this model adds no BOS token");
    GenerateParams gp;
    gp.n_predict = o.n_predict;
    gp.sampler = o.sampler;
    gp.stop_at_eog = !o.ignore_eos;
    if (prompt.size() + 1 > ctx.n_ctx())  // checked before the prompt is echoed
        throw std::invalid_argument("the prompt has " + std::to_string(prompt.size()) +
                                    " tokens and does not fit the context of " + std::to_string(ctx.n_ctx()) +
                                    " (raise it with -c)");
    if (o.show_prompt) std::cout << text << std::flush;
    const GenerateResult res = generate(ctx, tok, prompt, gp, [](int32_t, std::string_view piece) {
        std::cout << piece << std::flush;
        return true;
    });
    std::cout << std::endl;
    const ContextStats &st = ctx.stats();
    std::fprintf(
        stderr,
        "\nmoerun: prompt %llu tokens in %.3f s (%.2f tok/s); decode %llu tokens in %.3f s (%.2f tok/s)\n",
        static_cast<unsigned long long>(st.n_prompt_tokens), st.prompt_seconds,
        st.prompt_seconds > 0 ? double(st.n_prompt_tokens) / st.prompt_seconds : 0.0,
        static_cast<unsigned long long>(st.n_decode_tokens), st.decode_seconds,
        st.decode_seconds > 0 ? double(st.n_decode_tokens) / st.decode_seconds : 0.0);
    std::fprintf(stderr, "moerun: stopped: %s; seed %u; peak RSS %s\n",
                 std::string(stop_reason_name(res.stop)).c_str(), res.seed,
                 format_bytes(peak_rss_bytes()).c_str());
    print_device_stats(*session, st, stderr);
    if (o.mem.stats) print_cache_stats(*session, stderr);
    close_trace_out(*session, st, o.mem.trace_out);
    return 0;
}

}  // namespace

Subcommand add_run(CLI::App &parent) {
    auto o = std::make_shared<RunOptions>();
    CLI::App *app = parent.add_subcommand("run", "Generate text from a prompt");
    app->add_option("-m,--model", o->model, "GGUF model file")->required();
    app->add_option("-p,--prompt", o->prompt, "prompt text");
    app->add_option("-f,--file", o->prompt_file, "read the prompt from a file");
    app->add_option("-n,--n-predict", o->n_predict, "tokens to generate (-1: until end of generation)")
        ->capture_default_str();
    app->add_option("-t,--threads", o->threads, "CPU threads (0: all)")->capture_default_str();
    app->add_option("-c,--ctx-size", o->n_ctx, "context size in tokens")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1u << 20));
    add_sampling_options(app, o->sampler);
    add_memory_options(app, o->mem);
    app->add_flag("--no-special", o->no_special, "do not add BOS/EOS to the prompt");
    app->add_flag("--parse-special", o->parse_special,
                  "parse special-token text (e.g. <|im_start|>) in the prompt");
    app->add_flag("--ignore-eos", o->ignore_eos, "keep generating past end-of-generation tokens");
    app->add_flag("!--no-display-prompt", o->show_prompt, "do not echo the prompt");
    app->callback([o] {
        if (!o->prompt.empty() && !o->prompt_file.empty())
            throw CLI::ValidationError("give the prompt with -p or -f, not both");
    });
    return {app, [o] { return run(*o); }};
}

}  // namespace moerun::cli
