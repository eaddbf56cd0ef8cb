#include "moerun/runtime/generate.h"

#include <stdexcept>

namespace moerun {

std::string_view stop_reason_name(StopReason r) {
    switch (r) {
        case StopReason::n_predict:
            return "n_predict";
        case StopReason::eog:
            return "end of generation";
        case StopReason::context_full:
            return "context full";
        case StopReason::cancelled:
            return "cancelled";
    }
    return "?";
}

namespace {

// Length of the longest prefix of s that ends on a UTF-8 character boundary.
size_t complete_utf8_prefix(std::string_view s) {
    size_t n = s.size();
    // Look back at most 3 bytes for the start of a trailing multi-byte sequence.
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const auto c = static_cast<unsigned char>(s[n - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte
        size_t need = 1;
        if ((c & 0xE0) == 0xC0)
            need = 2;
        else if ((c & 0xF0) == 0xE0)
            need = 3;
        else if ((c & 0xF8) == 0xF0)
            need = 4;
        return back < need ? n - back : n;
    }
    return n;
}

}  // namespace

std::string TextStream::push(int32_t id) {
    ids_.push_back(id);
    const std::string all = tok_.decode(ids_);
    const size_t ready = complete_utf8_prefix(all);
    if (ready <= emitted_) return {};
    std::string out = all.substr(emitted_, ready - emitted_);
    emitted_ = ready;
    return out;
}

std::string TextStream::flush() {
    const std::string all = tok_.decode(ids_);
    std::string out = all.size() > emitted_ ? all.substr(emitted_) : std::string();
    emitted_ = all.size();
    return out;
}

GenerateResult generate(Context &ctx, const Tokenizer &tok, std::span<const int32_t> prompt,
                        const GenerateParams &params, const TokenCallback &on_token) {
    if (prompt.empty()) throw std::invalid_argument("the prompt is empty (no tokens to evaluate)");
    if (ctx.n_past() + prompt.size() + 1 > ctx.n_ctx())
        throw std::invalid_argument("the prompt has " + std::to_string(prompt.size()) +
                                    " tokens and does not fit the context of " + std::to_string(ctx.n_ctx()) +
                                    " (raise it with -c)");
    Sampler sampler(params.sampler);
    GenerateResult res;
    res.seed = sampler.seed();
    for (int32_t t : prompt) sampler.accept(t);
    const uint32_t start = ctx.n_past();
    try {
        ctx.eval(prompt, false, EvalPhase::prompt);
    } catch (const Cancelled &) {
        ctx.truncate(start);  // as before the call
        res.stop = StopReason::cancelled;
        return res;
    }
    TextStream stream(tok);
    for (int32_t i = 0; params.n_predict < 0 || i < params.n_predict; ++i) {
        const int32_t id = sampler.sample({ctx.logits(0), ctx.n_vocab()});
        if (params.stop_at_eog && tok.is_eog(id)) {
            res.stop = StopReason::eog;
            return res;
        }
        res.tokens.push_back(id);
        sampler.accept(id);
        if (on_token && !on_token(id, stream.push(id))) {
            res.stop = StopReason::cancelled;
            return res;
        }
        if (ctx.n_past() + 1 > ctx.n_ctx()) {
            res.stop = StopReason::context_full;
            return res;
        }
        if (params.n_predict >= 0 && i + 1 >= params.n_predict) break;
        try {
            ctx.eval(std::span<const int32_t>(&id, 1), false, EvalPhase::decode);
        } catch (const Cancelled &) {
            res.stop = StopReason::cancelled;  // as when the callback stops: id is not evaluated
            return res;
        }
    }
    res.stop = StopReason::n_predict;
    return res;
}

}  // namespace moerun
