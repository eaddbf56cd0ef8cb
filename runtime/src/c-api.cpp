// The C API (moerun.h) over Session, Context, Tokenizer and generate(): handles, error codes and
// the per-thread message; no exception crosses it.
#include "moerun.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "moerun/cache/nvme-reader.h"
#include "moerun/cache/policy.h"
#include "moerun/cache/trace.h"
#include "moerun/runtime/chat.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/generate.h"
#include "moerun/runtime/gguf.h"
#include "moerun/runtime/memory-plan.h"
#include "moerun/runtime/model.h"
#include "moerun/runtime/session.h"
#include "moerun/runtime/tokenizer.h"

struct moerun_model {
    std::string path;
    moerun::gguf::GgufFile file;
    std::optional<moerun::Model> model;  // absent with vocab_only
    moerun::Tokenizer tok;
    std::string arch;
    moerun::Hparams hp;
    moerun::ChatTemplate chat = moerun::ChatTemplate::chatml;
};

struct moerun_context {
    const moerun_model *model = nullptr;
    std::unique_ptr<moerun::Session> session;
    std::unique_ptr<moerun::Context> ctx;
    std::atomic<bool> cancel{false};
    std::string plan;
};

namespace {

thread_local std::string g_error;

moerun_status fail(moerun_status s, std::string msg) {
    g_error = std::move(msg);
    return s;
}

// Runs f, mapping what it throws to a status and this thread's message.
template <class F>
moerun_status guarded(F &&f) {
    try {
        g_error.clear();
        f();
        return MOERUN_OK;
    } catch (const moerun::Cancelled &e) {
        return fail(MOERUN_ERR_CANCELLED, e.what());
    } catch (const moerun::BudgetError &e) {
        return fail(MOERUN_ERR_MEMORY, e.what());
    } catch (const moerun::BackendError &e) {
        return fail(MOERUN_ERR_BACKEND, e.what());
    } catch (const moerun::gguf::Error &e) {
        return fail(MOERUN_ERR_FORMAT, e.what());
    } catch (const moerun::cache::TraceError &e) {
        return fail(MOERUN_ERR_FORMAT, e.what());
    } catch (const moerun::cache::IoError &e) {
        return fail(MOERUN_ERR_FILE, e.what());
    } catch (const std::system_error &e) {
        return fail(MOERUN_ERR_FILE, e.what());
    } catch (const std::bad_alloc &) {
        return fail(MOERUN_ERR_MEMORY, "out of memory");
    } catch (const std::invalid_argument &e) {
        return fail(MOERUN_ERR_ARGUMENT, e.what());
    } catch (const std::out_of_range &e) {
        return fail(MOERUN_ERR_ARGUMENT, e.what());
    } catch (const std::exception &e) {
        return fail(MOERUN_ERR_INTERNAL, e.what());
    } catch (...) {
        return fail(MOERUN_ERR_INTERNAL, "unknown error");
    }
}

void require(bool ok, const char *what) {
    if (!ok) throw std::invalid_argument(what);
}

bool valid_token(const moerun_model *m, moerun_token t) {
    return t >= 0 && t < m->tok.n_vocab();
}

void require_token(const moerun_model *m, moerun_token t, const char *fn) {
    if (!valid_token(m, t))
        throw std::invalid_argument(std::string(fn) + ": token " + std::to_string(t) +
                                    " outside the vocabulary [0, " + std::to_string(m->tok.n_vocab()) + ")");
}

// Copies bytes into buf (no terminator): the count, or minus the count needed when it does not fit.
int32_t copy_out(const std::string &s, char *buf, int32_t len) {
    if (s.size() > static_cast<size_t>(INT32_MAX)) {
        g_error = "the text is longer than INT32_MAX bytes";
        return INT32_MIN;
    }
    const auto n = static_cast<int32_t>(s.size());
    if (n > len) return -n;
    if (n > 0) std::memcpy(buf, s.data(), s.size());
    return n;
}

}  // namespace

extern "C" {

const char *moerun_last_error(void) {
    return g_error.c_str();
}

const char *moerun_status_name(moerun_status status) {
    switch (status) {
        case MOERUN_OK:
            return "ok";
        case MOERUN_ERR_ARGUMENT:
            return "invalid argument";
        case MOERUN_ERR_FILE:
            return "file error";
        case MOERUN_ERR_FORMAT:
            return "bad or unsupported model file";
        case MOERUN_ERR_MEMORY:
            return "out of memory or budget too small";
        case MOERUN_ERR_BACKEND:
            return "backend not usable";
        case MOERUN_ERR_CANCELLED:
            return "cancelled";
        case MOERUN_ERR_INTERNAL:
            return "internal error";
    }
    return "unknown status";
}

const char *moerun_version(void) {
    return MOERUN_VERSION;
}

// ---- model

moerun_model_params moerun_model_default_params(void) {
    moerun_model_params p{};
    p.vocab_only = false;
    return p;
}

moerun_status moerun_model_load(const char *path, moerun_model_params params, moerun_model **out) {
    if (out != nullptr) *out = nullptr;
    return guarded([&] {
        require(path != nullptr && out != nullptr, "moerun_model_load: path and out must not be NULL");
        auto file = moerun::gguf::GgufFile::open(path);
        std::optional<moerun::Model> model;
        if (!params.vocab_only) model.emplace(moerun::Model::load(file));
        moerun::Tokenizer tok = moerun::Tokenizer::from_gguf(file);
        const std::string arch(file.get_string_opt("general.architecture").value_or(""));
        auto m = std::unique_ptr<moerun_model>(
            new moerun_model{path, std::move(file), std::move(model), std::move(tok), arch, {}});
        if (m->model) m->hp = m->model->hparams();
        m->chat = moerun::detect_chat_template(m->file);
        *out = m.release();
    });
}

void moerun_model_free(moerun_model *model) {
    delete model;
}

const char *moerun_model_arch(const moerun_model *m) {
    return m != nullptr ? m->arch.c_str() : "";
}
int32_t moerun_model_n_vocab(const moerun_model *m) {
    return m != nullptr ? m->tok.n_vocab() : 0;
}
int32_t moerun_model_n_layer(const moerun_model *m) {
    return m != nullptr ? static_cast<int32_t>(m->hp.n_layer) : 0;
}
int32_t moerun_model_n_embd(const moerun_model *m) {
    return m != nullptr ? static_cast<int32_t>(m->hp.n_embd) : 0;
}
int32_t moerun_model_n_expert(const moerun_model *m) {
    return m != nullptr ? static_cast<int32_t>(m->hp.n_expert) : 0;
}
int32_t moerun_model_n_expert_used(const moerun_model *m) {
    return m != nullptr ? static_cast<int32_t>(m->hp.n_expert_used) : 0;
}
int32_t moerun_model_n_ctx_train(const moerun_model *m) {
    return m != nullptr ? static_cast<int32_t>(m->hp.n_ctx_train) : 0;
}
uint64_t moerun_model_size(const moerun_model *m) {
    return m != nullptr ? m->file.file_size() : 0;
}

// ---- vocabulary

moerun_token moerun_token_bos(const moerun_model *m) {
    return m != nullptr ? m->tok.bos() : MOERUN_TOKEN_NULL;
}
moerun_token moerun_token_eos(const moerun_model *m) {
    return m != nullptr ? m->tok.eos() : MOERUN_TOKEN_NULL;
}
bool moerun_token_is_eog(const moerun_model *m, moerun_token token) {
    return m != nullptr && valid_token(m, token) && m->tok.is_eog(token);
}

int32_t moerun_tokenize(const moerun_model *m, const char *text, int32_t text_len, moerun_token *tokens,
                        int32_t n_tokens_max, bool add_special, bool parse_special) {
    int32_t result = INT32_MIN;
    guarded([&] {
        require(m != nullptr && (text != nullptr || text_len == 0) && text_len >= 0 && n_tokens_max >= 0 &&
                    (tokens != nullptr || n_tokens_max == 0),
                "moerun_tokenize: model and text must not be NULL, lengths not negative");
        const std::vector<int32_t> ids =
            m->tok.encode(std::string_view(text != nullptr ? text : "", static_cast<size_t>(text_len)),
                          add_special, parse_special);
        require(ids.size() <= static_cast<size_t>(INT32_MAX), "moerun_tokenize: more than INT32_MAX tokens");
        const auto n = static_cast<int32_t>(ids.size());
        if (n > n_tokens_max) {
            result = -n;
            return;
        }
        std::copy(ids.begin(), ids.end(), tokens);
        result = n;
    });
    return result;
}

int32_t moerun_token_to_piece(const moerun_model *m, moerun_token token, char *buf, int32_t length,
                              bool special) {
    int32_t result = INT32_MIN;
    guarded([&] {
        require(m != nullptr && length >= 0 && (buf != nullptr || length == 0),
                "moerun_token_to_piece: model must not be NULL, buf NULL only with length 0");
        require_token(m, token, "moerun_token_to_piece");
        // Without special, control and unknown tokens render empty (as decode() renders them).
        const uint32_t hidden = moerun::TOKEN_ATTR_CONTROL | moerun::TOKEN_ATTR_UNKNOWN;
        const std::string s =
            !special && (m->tok.attr(token) & hidden) != 0 ? std::string() : std::string(m->tok.piece(token));
        result = copy_out(s, buf, length);
    });
    return result;
}

int32_t moerun_detokenize(const moerun_model *m, const moerun_token *tokens, int32_t n_tokens, char *text,
                          int32_t text_len_max, bool render_special) {
    int32_t result = INT32_MIN;
    guarded([&] {
        require(m != nullptr && n_tokens >= 0 && (tokens != nullptr || n_tokens == 0) && text_len_max >= 0 &&
                    (text != nullptr || text_len_max == 0),
                "moerun_detokenize: model must not be NULL, lengths not negative");
        for (int32_t i = 0; i < n_tokens; ++i) require_token(m, tokens[i], "moerun_detokenize");
        result = copy_out(m->tok.decode({tokens, static_cast<size_t>(n_tokens)}, render_special), text,
                          text_len_max);
    });
    return result;
}

// ---- chat

const char *moerun_model_chat_template(const moerun_model *m) {
    return m != nullptr ? moerun::chat_template_name(m->chat).data() : "";
}

int32_t moerun_chat_apply_template(const moerun_model *m, const char *tmpl, const moerun_chat_message *chat,
                                   size_t n_msg, bool add_assistant, char *buf, int32_t length) {
    int32_t result = INT32_MIN;
    guarded([&] {
        require(
            m != nullptr && (chat != nullptr || n_msg == 0) && (buf != nullptr || length == 0) && length >= 0,
            "moerun_chat_apply_template: model must not be NULL, chat NULL only with n_msg 0, buf NULL "
            "only with length 0");
        std::optional<moerun::ChatTemplate> t = m->chat;
        if (tmpl != nullptr) t = moerun::chat_template_from_name(tmpl);
        if (!t) {
            std::string known;
            for (const std::string &name : moerun::chat_template_names())
                known += (known.empty() ? "" : ", ") + name;
            throw std::invalid_argument(std::string("moerun_chat_apply_template: unknown template '") + tmpl +
                                        "' (expected one of " + known + ")");
        }
        std::vector<moerun::ChatMessage> messages;
        messages.reserve(n_msg);
        for (size_t i = 0; i < n_msg; ++i) {
            if (chat[i].role == nullptr || chat[i].content == nullptr)
                throw std::invalid_argument("moerun_chat_apply_template: message " + std::to_string(i) +
                                            " has a NULL role or content");
            messages.push_back({chat[i].role, chat[i].content});
        }
        result = copy_out(moerun::format_chat(*t, messages, add_assistant, moerun::chat_eos_text(m->tok)),
                          buf, length);
    });
    return result;
}

// ---- context

moerun_context_params moerun_context_default_params(void) {
    const moerun::ContextParams d;
    moerun_context_params p{};
    p.n_ctx = d.n_ctx;
    p.n_batch = d.n_batch;
    p.n_threads = 0;
    p.kv_f32 = false;
    p.backend = "auto";
    p.host_mem = 0;
    p.device_mem = 0;
    p.cache_policy = "least-stale";
    p.cpu_fallback = "off";
    p.log = nullptr;
    p.log_user_data = nullptr;
    return p;
}

moerun_status moerun_context_new(const moerun_model *model, moerun_context_params p, moerun_context **out) {
    if (out != nullptr) *out = nullptr;
    return guarded([&] {
        require(model != nullptr && out != nullptr, "moerun_context_new: model and out must not be NULL");
        if (!model->model)
            throw std::invalid_argument("moerun_context_new: " + model->path +
                                        " was loaded with vocab_only; load it without to run it");
        require(p.n_ctx >= 1 && p.n_ctx <= (1u << 20), "moerun_context_new: n_ctx must be in [1, 1048576]");
        require(p.n_batch >= 1, "moerun_context_new: n_batch must be at least 1");
        require(p.n_threads >= 0, "moerun_context_new: n_threads must not be negative (0: all)");
        require(p.backend != nullptr && p.cpu_fallback != nullptr,
                "moerun_context_new: backend and cpu_fallback must not be NULL");
        const auto &names = moerun::cache::policy_names();
        if (p.cache_policy == nullptr || std::string_view(p.cache_policy) == "belady" ||
            std::find(names.begin(), names.end(), std::string_view(p.cache_policy)) == names.end())
            throw std::invalid_argument(std::string("moerun_context_new: cache_policy ") +
                                        (p.cache_policy ? "'" + std::string(p.cache_policy) + "'" : "NULL") +
                                        " is not one of lru, slru, lfu, segment, least-stale");
        moerun::SessionOptions o;
        if (p.host_mem > 0) o.host_mem = std::to_string(p.host_mem);
        if (p.device_mem > 0) o.device_mem = std::to_string(p.device_mem);
        o.policy = p.cache_policy;
        o.backend = p.backend;
        o.cpu_fallback = p.cpu_fallback;
        o.type_k = o.type_v = p.kv_f32 ? "f32" : "f16";
        o.n_batch = p.n_batch;
        moerun::SessionLog log;
        if (p.log != nullptr)
            log.info = [cb = p.log, user = p.log_user_data](const std::string &line) {
                cb(line.c_str(), user);
            };
        auto c = std::make_unique<moerun_context>();
        c->model = model;
        // 0 threads: all; the model's mapping is shared, not made again
        c->session = moerun::open_session(model->path, o, p.n_ctx, p.n_threads, log, &model->file);
        c->session->ctx.abort = [raw = c.get()] { return raw->cancel.exchange(false); };
        c->ctx = std::make_unique<moerun::Context>(c->session->model, c->session->ctx);
        c->plan = c->session->plan.describe();
        *out = c.release();
    });
}

void moerun_context_free(moerun_context *ctx) {
    delete ctx;
}

uint32_t moerun_n_ctx(const moerun_context *ctx) {
    return ctx != nullptr ? ctx->ctx->n_ctx() : 0;
}
uint32_t moerun_n_past(const moerun_context *ctx) {
    return ctx != nullptr ? ctx->ctx->n_past() : 0;
}
const char *moerun_context_backend(const moerun_context *ctx) {
    return ctx != nullptr ? ctx->session->backend_desc.c_str() : "";
}
const char *moerun_context_memory_plan(const moerun_context *ctx) {
    return ctx != nullptr ? ctx->plan.c_str() : "";
}
void moerun_context_reset(moerun_context *ctx) {
    if (ctx != nullptr) ctx->ctx->reset();
}
void moerun_context_truncate(moerun_context *ctx, uint32_t n) {
    if (ctx != nullptr) ctx->ctx->truncate(n);
}

moerun_status moerun_eval(moerun_context *ctx, const moerun_token *tokens, int32_t n, bool all_logits) {
    return guarded([&] {
        require(ctx != nullptr && tokens != nullptr && n > 0,
                "moerun_eval: ctx and tokens must not be NULL, n at least 1");
        ctx->ctx->eval({tokens, static_cast<size_t>(n)}, all_logits);
    });
}

const float *moerun_get_logits(moerun_context *ctx, int32_t i) {
    if (ctx == nullptr || i < 0 || static_cast<size_t>(i) >= ctx->ctx->n_outputs()) return nullptr;
    return ctx->ctx->logits(static_cast<size_t>(i));
}

int32_t moerun_n_outputs(const moerun_context *ctx) {
    return ctx != nullptr ? static_cast<int32_t>(ctx->ctx->n_outputs()) : 0;
}

// ---- generation

moerun_sampler_params moerun_sampler_default_params(void) {
    const moerun::SamplerParams d;
    moerun_sampler_params p{};
    p.temp = d.temp;
    p.top_k = d.top_k;
    p.top_p = d.top_p;
    p.min_p = d.min_p;
    p.repeat_penalty = d.repeat_penalty;
    p.repeat_last_n = d.repeat_last_n;
    p.seed = d.seed;
    return p;
}

moerun_generate_params moerun_generate_default_params(void) {
    const moerun::GenerateParams d;
    moerun_generate_params p{};
    p.n_predict = d.n_predict;
    p.stop_at_eog = d.stop_at_eog;
    p.sampler = moerun_sampler_default_params();
    return p;
}

moerun_status moerun_generate(moerun_context *ctx, const moerun_token *prompt, int32_t n_prompt,
                              const moerun_generate_params *params, moerun_token_callback on_token,
                              void *user_data, moerun_generate_result *result) {
    if (result != nullptr) *result = moerun_generate_result{0, MOERUN_STOP_N_PREDICT, 0};
    return guarded([&] {
        require(ctx != nullptr && prompt != nullptr && n_prompt > 0,
                "moerun_generate: ctx and prompt must not be NULL, n_prompt at least 1");
        const moerun_generate_params p = params != nullptr ? *params : moerun_generate_default_params();
        moerun::GenerateParams gp;
        gp.n_predict = p.n_predict;
        gp.stop_at_eog = p.stop_at_eog;
        gp.sampler = {p.sampler.temp,           p.sampler.top_k,         p.sampler.top_p, p.sampler.min_p,
                      p.sampler.repeat_penalty, p.sampler.repeat_last_n, p.sampler.seed};
        const moerun::GenerateResult r = moerun::generate(
            *ctx->ctx, ctx->model->tok, {prompt, static_cast<size_t>(n_prompt)}, gp,
            [&](int32_t id, std::string_view text) {
                if (on_token != nullptr && !on_token(id, text.data(), text.size(), user_data)) return false;
                return !ctx->cancel.exchange(false);
            });
        if (result != nullptr) {
            result->n_generated = static_cast<int32_t>(r.tokens.size());
            result->seed = r.seed;
            switch (r.stop) {
                case moerun::StopReason::n_predict:
                    result->stop = MOERUN_STOP_N_PREDICT;
                    break;
                case moerun::StopReason::eog:
                    result->stop = MOERUN_STOP_EOG;
                    break;
                case moerun::StopReason::context_full:
                    result->stop = MOERUN_STOP_CONTEXT_FULL;
                    break;
                case moerun::StopReason::cancelled:
                    result->stop = MOERUN_STOP_CANCELLED;
                    break;
            }
        }
    });
}

void moerun_cancel(moerun_context *ctx) {
    if (ctx != nullptr) ctx->cancel.store(true);
}

// ---- statistics

moerun_status moerun_get_stats(const moerun_context *ctx, moerun_stats *out) {
    return guarded([&] {
        require(ctx != nullptr && out != nullptr, "moerun_get_stats: ctx and out must not be NULL");
        const moerun::ContextStats &st = ctx->ctx->stats();
        const moerun::Session &s = *ctx->session;
        moerun_stats r{};
        r.n_prompt_tokens = st.n_prompt_tokens;
        r.n_decode_tokens = st.n_decode_tokens;
        r.prompt_seconds = st.prompt_seconds;
        r.decode_seconds = st.decode_seconds;
        r.budget_bytes = s.plan.budget;
        r.expert_cache = s.plan.cached;
        if (s.plan.cached) r.cache_slots = s.plan.n_slots;
        const moerun::cache::LayerCacheStats total = moerun::cache_totals(s);
        r.cache_accesses = total.accesses;
        r.cache_hits = total.hit_total();
        r.cache_misses = total.misses;
        r.cache_bytes_read = total.bytes_read;
        r.prefetch_issued = total.prefetch_issued;
        r.prefetch_used = total.prefetch_used;
        r.prefetch_wasted = total.prefetch_wasted;
        r.io_wait_seconds = total.wait_seconds;
        r.device_bytes = st.device_bytes;
        r.device_slots = st.device_slots;
        r.slot_hits = st.slot_hits;
        r.slot_misses = st.slot_misses;
        r.slot_cpu_misses = st.slot_cpu_misses;
        r.slot_bytes_uploaded = st.slot_bytes_uploaded;
        *out = r;
    });
}

}  // extern "C"
