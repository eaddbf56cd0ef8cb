// `moerun chat`: an interactive conversation with the model's built-in chat template. Each line
// read from standard input is a user turn; the reply streams to standard output. The KV cache
// keeps the conversation: each turn evaluates only the new text. Empty line or EOF ends the chat.
#include <iostream>
#include <string>
#include <thread>

#include "cli-common.h"
#include "model-setup.h"
#include "moerun/runtime/chat.h"
#include "moerun/runtime/generate.h"
#include "moerun/runtime/gguf.h"
#include "subcommands.h"

namespace moerun::cli {

namespace {

struct ChatOptions {
    std::string model, system, chat_template;  // chat_template "": the file's
    int32_t n_predict = 512;
    int threads = 0;
    uint32_t n_ctx = 4096;
    SamplerParams sampler;
    MemoryFlags mem;
};

int chat(const ChatOptions &o) {
    const int threads = resolve_threads(o.threads);
    const auto session = open_cli_session(o.model, o.mem, o.n_ctx, threads);
    const gguf::GgufFile &file = session->file;
    const Model &model = session->model;
    const Tokenizer tok = Tokenizer::from_gguf(file);
    Context ctx(model, session->ctx);
    const ChatTemplate tmpl =
        o.chat_template.empty() ? detect_chat_template(file) : *chat_template_from_name(o.chat_template);
    const std::string eos_text = chat_eos_text(tok);
    std::cerr << "moerun chat: " << model.arch().name << ", template " << chat_template_name(tmpl)
              << ". Type a message; an empty line or end of input quits.\n";

    std::vector<ChatMessage> history;
    if (!o.system.empty()) history.push_back({"system", o.system});
    // Each turn tokenizes the whole conversation, keeps the longest prefix already in the KV
    // cache and evaluates only the rest.
    std::vector<int32_t> cached;
    GenerateParams gp;
    gp.n_predict = o.n_predict;
    gp.sampler = o.sampler;
    std::string line;
    while (std::cerr << "> " << std::flush, std::getline(std::cin, line) && !line.empty()) {
        history.push_back({"user", line});
        const std::vector<int32_t> full = tok.encode(format_chat(tmpl, history, true, eos_text), true, true);
        size_t common = 0;
        while (common < cached.size() && common < full.size() && cached[common] == full[common]) ++common;
        if (common == full.size()) --common;  // at least one token to evaluate
        ctx.truncate(static_cast<uint32_t>(common));
        std::string reply;
        const GenerateResult res = generate(ctx, tok, std::span<const int32_t>(full).subspan(common), gp,
                                            [&](int32_t, std::string_view piece) {
                                                std::cout << piece << std::flush;
                                                reply += piece;
                                                return true;
                                            });
        std::cout << "\n";
        history.push_back({"assistant", reply});
        cached = full;  // the reply's tokens are recomputed next turn only where the template's text differs
        if (!res.tokens.empty()) cached.insert(cached.end(), res.tokens.begin(), res.tokens.end() - 1);
        ctx.truncate(static_cast<uint32_t>(cached.size()));
        if (res.stop == StopReason::context_full) {
            std::cerr << "moerun chat: the context is full (" << ctx.n_ctx()
                      << " tokens); raise it with -c\n";
            break;
        }
    }
    close_trace_out(*session, ctx.stats(), o.mem.trace_out);
    return 0;
}

}  // namespace

Subcommand add_chat(CLI::App &parent) {
    auto o = std::make_shared<ChatOptions>();
    CLI::App *app = parent.add_subcommand("chat", "Chat with the model (its built-in chat template)");
    app->add_option("-m,--model", o->model, "GGUF model file")->required();
    app->add_option("-s,--system", o->system, "system message");
    app->add_option("--chat-template", o->chat_template, "chat template (default: the file's)")
        ->check(CLI::IsMember(chat_template_names()));
    app->add_option("-n,--n-predict", o->n_predict, "max tokens per reply")->capture_default_str();
    app->add_option("-t,--threads", o->threads, "CPU threads (0: all)")->capture_default_str();
    app->add_option("-c,--ctx-size", o->n_ctx, "context size in tokens")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1u << 20));
    add_sampling_options(app, o->sampler);
    add_memory_options(app, o->mem);
    return {app, [o] { return chat(*o); }};
}

}  // namespace moerun::cli
