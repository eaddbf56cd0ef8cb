/* moerun.h -- the C API, for desktop apps (C99 or C++; shaped like llama.cpp's llama.h).
 *
 * A model is a GGUF file opened for its metadata and vocabulary (moerun_model_load); a context
 * (moerun_context_new) runs it with a memory budget: it plans memory, builds the expert cache when
 * the experts do not fit, picks the backend, and holds the KV cache. Each context has its own
 * budget, cache and backend, so two contexts on one model use two budgets.
 *
 * Errors: functions that can fail return a moerun_status; moerun_last_error() gives the message
 * (naming the file, offset and field for a bad GGUF, what was expected, how much memory a budget
 * needs). Nothing is thrown across the API and nothing aborts the process on bad input.
 *
 * Lifetimes: free a model's contexts before the model. The file is memory-mapped once (as
 * llama.cpp maps it; a model's contexts share its mapping): truncating it while a model or context
 * uses it ends the process with SIGBUS.
 *
 * Threads: a context is used by one thread at a time; moerun_cancel() may be called from any
 * thread. Models are read-only once loaded: tokenizing from several threads is safe. The error
 * message is kept per thread.
 *
 * Link with -lmoerun (build/runtime/libmoerun.so), or the static libraries through CMake's
 * moerun_runtime target.
 */
#ifndef MOERUN_H
#define MOERUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MOERUN_API __attribute__((visibility("default")))
#else
#define MOERUN_API
#endif

typedef int32_t moerun_token;

struct moerun_model;
struct moerun_context;

enum moerun_status {
    MOERUN_OK = 0,
    MOERUN_ERR_ARGUMENT = 1,  /* a bad parameter: null pointer, token outside the vocabulary,
                                 prompt longer than the context, unknown policy name */
    MOERUN_ERR_FILE = 2,      /* the file cannot be opened or read */
    MOERUN_ERR_FORMAT = 3,    /* not a valid GGUF, or a model moerun does not run */
    MOERUN_ERR_MEMORY = 4,    /* the budget cannot hold the model's minimum, or allocation failed */
    MOERUN_ERR_BACKEND = 5,   /* the backend asked for is not usable here */
    MOERUN_ERR_CANCELLED = 6, /* moerun_cancel() stopped an evaluation */
    MOERUN_ERR_INTERNAL = 7,
};

/* The message of this thread's last call that failed (a call that can fail clears it when it
 * succeeds); valid until the next call. */
MOERUN_API const char *moerun_last_error(void);
MOERUN_API const char *moerun_status_name(enum moerun_status status);
MOERUN_API const char *moerun_version(void);

/* ---- model ---------------------------------------------------------------------------------- */

struct moerun_model_params {
    /* Read only the metadata and the vocabulary (tokenize a vocabulary-only GGUF such as
     * llama.cpp's ggml-vocab-*.gguf); such a model cannot make a context. Default false. */
    bool vocab_only;
};

MOERUN_API struct moerun_model_params moerun_model_default_params(void);
/* Opens the GGUF at path and checks that moerun can run it (architecture, hyperparameters, tensors,
 * vocabulary). The n_layer ... n_ctx_train queries give 0 for a vocab_only model. */
MOERUN_API enum moerun_status moerun_model_load(const char *path, struct moerun_model_params params,
                                                struct moerun_model **out);
MOERUN_API void moerun_model_free(struct moerun_model *model); /* NULL: nothing */

MOERUN_API const char *moerun_model_arch(const struct moerun_model *model); /* "qwen3moe", "olmoe", ... */
MOERUN_API int32_t moerun_model_n_vocab(const struct moerun_model *model);
MOERUN_API int32_t moerun_model_n_layer(const struct moerun_model *model);
MOERUN_API int32_t moerun_model_n_embd(const struct moerun_model *model);
MOERUN_API int32_t moerun_model_n_expert(const struct moerun_model *model);
MOERUN_API int32_t moerun_model_n_expert_used(const struct moerun_model *model);
MOERUN_API int32_t moerun_model_n_ctx_train(const struct moerun_model *model);
MOERUN_API uint64_t moerun_model_size(const struct moerun_model *model); /* the file's bytes */

/* ---- vocabulary ----------------------------------------------------------------------------- */

#define MOERUN_TOKEN_NULL (-1)
MOERUN_API moerun_token moerun_token_bos(const struct moerun_model *model); /* MOERUN_TOKEN_NULL: none */
MOERUN_API moerun_token moerun_token_eos(const struct moerun_model *model);
MOERUN_API bool moerun_token_is_eog(const struct moerun_model *model, moerun_token token);

/* Tokenizes text_len bytes of text (as llama.cpp does). Returns the number of tokens written; when
 * n_tokens_max is too small, minus the number needed (nothing written); INT32_MIN on an error. */
MOERUN_API int32_t moerun_tokenize(const struct moerun_model *model, const char *text, int32_t text_len,
                                   moerun_token *tokens, int32_t n_tokens_max, bool add_special,
                                   bool parse_special);
/* The bytes one token stands for (special: control tokens render their text). Returns the byte
 * count (no terminating zero); when length is too small, minus the count needed; INT32_MIN on an
 * error (a token outside the vocabulary). */
MOERUN_API int32_t moerun_token_to_piece(const struct moerun_model *model, moerun_token token, char *buf,
                                         int32_t length, bool special);
/* The text of n_tokens tokens, as moerun_token_to_piece on each but with the leading space of an
 * SPM vocabulary's first token dropped. Same return convention. */
MOERUN_API int32_t moerun_detokenize(const struct moerun_model *model, const moerun_token *tokens,
                                     int32_t n_tokens, char *text, int32_t text_len_max, bool render_special);

/* ---- chat ----------------------------------------------------------------------------------- */

struct moerun_chat_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
};

/* The name of the model's chat template: "chatml", "tulu" or "mistral", chosen as `moerun chat`
 * does (tokenizer.chat_template when it names a known format, else the architecture). */
MOERUN_API const char *moerun_model_chat_template(const struct moerun_model *model);
/* The text of n_msg messages in a chat template (tmpl NULL: the model's, else one of the names
 * above), to be tokenized with add_special and parse_special. With add_assistant it ends with the
 * opening of the assistant's turn. Replies end with the model's EOS text where the template puts
 * one (tulu, mistral). chatml and tulu write any role as given; mistral takes system, user and
 * assistant only. Same return convention as moerun_detokenize; INT32_MIN on an error (NULL model,
 * a NULL role or content, an unknown template name, a role the template has no place for). */
MOERUN_API int32_t moerun_chat_apply_template(const struct moerun_model *model, const char *tmpl,
                                              const struct moerun_chat_message *chat, size_t n_msg,
                                              bool add_assistant, char *buf, int32_t length);

/* ---- context -------------------------------------------------------------------------------- */

typedef void (*moerun_log_callback)(const char *line, void *user_data);

struct moerun_context_params {
    uint32_t n_ctx;      /* KV cache positions (default 4096) */
    uint32_t n_batch;    /* tokens per forward batch (512) */
    int32_t n_threads;   /* CPU threads; 0: all hardware threads */
    bool kv_f32;         /* F32 KV cache instead of F16 */
    const char *backend; /* "auto" (default), "cpu", "cuda"; as moerun's --backend */
    /* The budget in bytes (0: derived from free memory, as the CLI does). On the CPU backend the
     * two add up to one RAM budget; with a device backend device_mem holds the dense weights, the
     * KV cache, workspaces and expert slots, host_mem the host tier of the experts. */
    uint64_t host_mem, device_mem;
    const char *cache_policy; /* the expert cache's replacement policy: "least-stale" (default),
                                 "lru", "slru", "lfu", "segment" */
    const char *cpu_fallback; /* device backends: "off" (default), "auto", "always" */
    /* What the context reports while it opens: the backend chosen and why, the memory plan, the
     * expert cache (one line each, without a trailing newline). NULL: nothing. */
    moerun_log_callback log;
    void *log_user_data;
};

MOERUN_API struct moerun_context_params moerun_context_default_params(void);
MOERUN_API enum moerun_status moerun_context_new(const struct moerun_model *model,
                                                 struct moerun_context_params params,
                                                 struct moerun_context **out);
MOERUN_API void moerun_context_free(struct moerun_context *ctx); /* NULL: nothing */

MOERUN_API uint32_t moerun_n_ctx(const struct moerun_context *ctx);
MOERUN_API uint32_t moerun_n_past(const struct moerun_context *ctx); /* positions evaluated */
/* The backend the context runs on and why, e.g. "cpu (CUDA not compiled in)". */
MOERUN_API const char *moerun_context_backend(const struct moerun_context *ctx);
/* The memory plan in one line: the budget, what it holds, expert slots or in place. */
MOERUN_API const char *moerun_context_memory_plan(const struct moerun_context *ctx);
MOERUN_API void moerun_context_reset(struct moerun_context *ctx);                /* forget the sequence */
MOERUN_API void moerun_context_truncate(struct moerun_context *ctx, uint32_t n); /* keep n positions */

/* Evaluates n tokens at the next positions. all_logits: keep logits for each of them, else for the
 * last one. MOERUN_ERR_CANCELLED when moerun_cancel() stopped it before a batch (n_batch tokens)
 * or between two layers of a batch of several tokens: the batches done before stay evaluated, the
 * one stopped part way does not (moerun_n_past says where it stands). */
MOERUN_API enum moerun_status moerun_eval(struct moerun_context *ctx, const moerun_token *tokens, int32_t n,
                                          bool all_logits);
/* Logits [n_vocab] of output row i of the last eval (0 .. n_outputs-1); NULL when out of range. */
MOERUN_API const float *moerun_get_logits(struct moerun_context *ctx, int32_t i);
MOERUN_API int32_t moerun_n_outputs(const struct moerun_context *ctx);

/* ---- generation ----------------------------------------------------------------------------- */

/* In llama.cpp's default order: repetition penalty, top-k, top-p, min-p, temperature, draw. */
struct moerun_sampler_params {
    float temp;            /* 0.8; <= 0: greedy (argmax, the lowest id on ties) */
    int32_t top_k;         /* 40; <= 0: off */
    float top_p;           /* 0.95; >= 1: off */
    float min_p;           /* 0.05; <= 0: off */
    float repeat_penalty;  /* 1: off */
    int32_t repeat_last_n; /* 64 */
    uint32_t seed;         /* MOERUN_SEED_RANDOM: a random seed */
};
#define MOERUN_SEED_RANDOM 0xFFFFFFFFu

struct moerun_generate_params {
    int32_t n_predict; /* tokens to generate (128); < 0: until end of generation or a full context */
    bool stop_at_eog;  /* stop at an end-of-generation token, not passed on (true) */
    struct moerun_sampler_params sampler;
};

enum moerun_stop_reason {
    MOERUN_STOP_N_PREDICT = 0,
    MOERUN_STOP_EOG = 1,
    MOERUN_STOP_CONTEXT_FULL = 2,
    MOERUN_STOP_CANCELLED = 3, /* the callback returned false, or moerun_cancel() */
};

/* Each generated token and the UTF-8 text it completes (text_len may be 0 while a multi-byte
 * character is incomplete; text is not zero-terminated). Return false to stop. */
typedef bool (*moerun_token_callback)(moerun_token token, const char *text, size_t text_len, void *user_data);

MOERUN_API struct moerun_sampler_params moerun_sampler_default_params(void);
MOERUN_API struct moerun_generate_params moerun_generate_default_params(void);

/* Evaluates the prompt at the context's next positions (so a chat continues a sequence) and
 * generates, streaming each token to on_token (may be NULL). The result's fields may be NULL.
 * A cancel during the prompt leaves the context as it was before the call. Returns MOERUN_OK for
 * every stop reason, cancelled included. */
struct moerun_generate_result {
    int32_t n_generated;
    enum moerun_stop_reason stop;
    uint32_t seed; /* the seed the sampler used */
};
MOERUN_API enum moerun_status moerun_generate(struct moerun_context *ctx, const moerun_token *prompt,
                                              int32_t n_prompt, const struct moerun_generate_params *params,
                                              moerun_token_callback on_token, void *user_data,
                                              struct moerun_generate_result *result);

/* Asks the running (or, if none runs, the next) moerun_eval or moerun_generate on ctx to stop: in a
 * prompt at the next layer, in decoding before the next token. Safe from any thread; the call it
 * stops consumes it. */
MOERUN_API void moerun_cancel(struct moerun_context *ctx);

/* ---- statistics ----------------------------------------------------------------------------- */

struct moerun_stats {
    uint64_t n_prompt_tokens, n_decode_tokens;
    double prompt_seconds, decode_seconds;
    uint64_t budget_bytes; /* the memory plan's budget */
    bool expert_cache;     /* experts go through the cache (false: read in place) */
    uint32_t cache_slots;  /* the cache's expert slots (0 without it) */
    uint64_t cache_accesses, cache_hits, cache_misses; /* hits include late (prefetched) ones */
    uint64_t cache_bytes_read;                         /* read from disk */
    uint64_t prefetch_issued, prefetch_used, prefetch_wasted;
    double io_wait_seconds; /* time decode waited for reads */
    /* With a device backend: its memory and slots, and how the slots served. */
    uint64_t device_bytes;
    uint32_t device_slots;
    uint64_t slot_hits, slot_misses, slot_cpu_misses, slot_bytes_uploaded;
};

MOERUN_API enum moerun_status moerun_get_stats(const struct moerun_context *ctx, struct moerun_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* MOERUN_H */
