/* The C API (moerun.h) from C, linked against libmoerun.so: error codes and messages, tokenizing,
 * generation against a token-by-token eval of the same context, streaming, cancellation, stats,
 * and the same tokens when a small budget puts the experts behind the cache.
 * Usage: test-c-api MODEL.gguf BAD.gguf
 * Exit 0 when every check passes, 1 otherwise (each failure printed). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moerun.h"

static int g_failures = 0;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            ++g_failures;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fprintf(stderr, " (last error: %s)\n", moerun_last_error());    \
        }                                                                   \
    } while (0)

enum { N_GEN = 12, MAX_TOK = 256 };

static const char *kPrompt = "The quick brown fox jumps over the lazy dog. Then it";

/* Streaming: the ids and the text as they arrive; cancels itself after cancel_after tokens. */
struct stream {
    moerun_token ids[MAX_TOK];
    int n;
    char text[4096];
    size_t text_len;
    int cancel_after; /* 0: never */
    struct moerun_context *ctx;
};

static bool on_token(moerun_token token, const char *text, size_t len, void *user) {
    struct stream *s = (struct stream *)user;
    if (s->n < MAX_TOK) s->ids[s->n++] = token;
    if (s->text_len + len < sizeof s->text) {
        memcpy(s->text + s->text_len, text, len);
        s->text_len += len;
    }
    if (s->cancel_after > 0 && s->n == s->cancel_after) moerun_cancel(s->ctx); /* as another thread would */
    return true;
}

static int g_log_lines = 0, g_log_backend = 0;
static void on_log(const char *line, void *user) {
    (void)user;
    ++g_log_lines;
    if (strstr(line, "backend") != NULL) ++g_log_backend;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Greedy generation through moerun_generate from an empty context. */
static int generate_greedy(struct moerun_context *ctx, const moerun_token *prompt, int n_prompt,
                           struct stream *out) {
    struct moerun_generate_params gp = moerun_generate_default_params();
    gp.n_predict = N_GEN;
    gp.stop_at_eog = false;
    gp.sampler.temp = 0.0f;
    struct moerun_generate_result res;
    memset(out, 0, sizeof *out);
    out->ctx = ctx;
    moerun_context_reset(ctx);
    enum moerun_status st = moerun_generate(ctx, prompt, n_prompt, &gp, on_token, out, &res);
    CHECK(st == MOERUN_OK, "moerun_generate returned %d", (int)st);
    CHECK(res.n_generated == N_GEN && res.stop == MOERUN_STOP_N_PREDICT, "generated %d, stop %d",
          res.n_generated, (int)res.stop);
    return res.n_generated;
}

static void check_errors(const char *bad_path) {
    struct moerun_model *m = (struct moerun_model *)1;
    CHECK(moerun_model_load(NULL, moerun_model_default_params(), &m) == MOERUN_ERR_ARGUMENT && m == NULL,
          "NULL path");
    CHECK(strstr(moerun_last_error(), "NULL") != NULL, "message '%s'", moerun_last_error());
    const char *missing = "/nonexistent/moerun-c-api.gguf";
    CHECK(moerun_model_load(missing, moerun_model_default_params(), &m) == MOERUN_ERR_FILE, "missing file");
    CHECK(strstr(moerun_last_error(), missing) != NULL, "message names the file: '%s'", moerun_last_error());
    CHECK(moerun_model_load(bad_path, moerun_model_default_params(), &m) == MOERUN_ERR_FORMAT, "bad GGUF");
    const char *base = strrchr(bad_path, '/');
    CHECK(strstr(moerun_last_error(), base ? base + 1 : bad_path) != NULL, "message names the file: '%s'",
          moerun_last_error());
    CHECK(strcmp(moerun_status_name(MOERUN_ERR_MEMORY), "out of memory or budget too small") == 0, "name");
    CHECK(moerun_version()[0] != '\0', "version");
}

static void check_vocab(struct moerun_model *m, const char *model_path) {
    moerun_token ids[MAX_TOK];
    const char *text = "Hello world, this is moerun's C API: 123 + 4.5 = \xc3\xa9t\xc3\xa9!";
    const int len = (int)strlen(text);
    const int32_t need = moerun_tokenize(m, text, len, ids, 1, false, false);
    CHECK(need < -1, "a 1-token buffer: minus the count needed, got %d", need);
    const int32_t n = moerun_tokenize(m, text, len, ids, MAX_TOK, false, false);
    CHECK(n == -need, "tokens %d, needed %d", n, -need);
    char back[512];
    const int32_t nb = moerun_detokenize(m, ids, n, back, (int32_t)sizeof back, false);
    CHECK(nb == len && memcmp(back, text, (size_t)len) == 0, "detokenize round trip: %d bytes '%.*s'", nb,
          nb > 0 ? nb : 0, back);
    CHECK(moerun_detokenize(m, ids, n, back, 3, false) == -len, "short buffer");
    /* Pieces concatenate to the text (the first token of an SPM vocabulary carries a leading space
     * that detokenize drops). */
    char cat[512];
    int at = 0;
    for (int i = 0; i < n; ++i) {
        const int32_t k =
            moerun_token_to_piece(m, ids[i], cat + at, (int32_t)(sizeof cat - (size_t)at), false);
        CHECK(k >= 0, "piece of %d: %d", ids[i], k);
        if (k > 0) at += k;
    }
    CHECK(at >= len && memcmp(cat + (at - len), text, (size_t)len) == 0, "pieces '%.*s'", at, cat);
    CHECK(moerun_token_to_piece(m, moerun_model_n_vocab(m), cat, 8, false) == INT32_MIN, "token past vocab");
    CHECK(strstr(moerun_last_error(), "outside the vocabulary") != NULL, "message '%s'", moerun_last_error());
    if (moerun_token_bos(m) >= 0) {
        CHECK(moerun_token_to_piece(m, moerun_token_bos(m), cat, 64, false) == 0, "BOS renders empty");
        CHECK(moerun_token_to_piece(m, moerun_token_bos(m), cat, 64, true) > 0, "BOS text with special");
    }
    CHECK(moerun_token_is_eog(m, moerun_token_eos(m)), "EOS ends generation");

    /* vocab_only: the same tokens, no context. */
    struct moerun_model_params vp = moerun_model_default_params();
    vp.vocab_only = true;
    struct moerun_model *v = NULL;
    CHECK(moerun_model_load(model_path, vp, &v) == MOERUN_OK, "vocab_only load");
    if (v == NULL) return;
    moerun_token ids2[MAX_TOK];
    CHECK(moerun_tokenize(v, text, len, ids2, MAX_TOK, false, false) == n &&
              memcmp(ids, ids2, sizeof(moerun_token) * (size_t)n) == 0,
          "vocab_only tokens");
    CHECK(moerun_model_n_layer(v) == 0 && moerun_model_n_vocab(v) == moerun_model_n_vocab(m),
          "vocab_only info");
    struct moerun_context *c = (struct moerun_context *)1;
    CHECK(moerun_context_new(v, moerun_context_default_params(), &c) == MOERUN_ERR_ARGUMENT && c == NULL,
          "a vocab_only model makes no context");
    CHECK(strstr(moerun_last_error(), "vocab_only") != NULL, "message '%s'", moerun_last_error());
    moerun_model_free(v);
}

static void check_bad_params(struct moerun_model *m) {
    struct moerun_context *c = NULL;
    struct moerun_context_params p = moerun_context_default_params();
    p.backend = "gpu";
    CHECK(moerun_context_new(m, p, &c) == MOERUN_ERR_ARGUMENT, "backend gpu");
    p = moerun_context_default_params();
    p.cache_policy = "belady";
    CHECK(moerun_context_new(m, p, &c) == MOERUN_ERR_ARGUMENT, "policy belady");
    CHECK(strstr(moerun_last_error(), "belady") != NULL, "message '%s'", moerun_last_error());
    p = moerun_context_default_params();
    p.host_mem = 1 << 20; /* 1 MiB: less than the dense weights of any model */
    CHECK(moerun_context_new(m, p, &c) == MOERUN_ERR_MEMORY, "1 MiB budget");
    CHECK(strstr(moerun_last_error(), "memory budget") != NULL, "message '%s'", moerun_last_error());
    p = moerun_context_default_params();
    p.backend = "cuda";
    enum moerun_status st = moerun_context_new(m, p, &c);
    if (st == MOERUN_OK) {
        moerun_context_free(c); /* a machine with a GPU */
    } else {
        CHECK(st == MOERUN_ERR_BACKEND, "cuda without a GPU: %d", (int)st);
        CHECK(strstr(moerun_last_error(), "not usable here") != NULL, "message '%s'", moerun_last_error());
    }
}

/* How many mappings of the file named `path` this process has (/proc/self/maps lines ending in its
 * base name); -1 where that cannot be read. */
static int count_mappings(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, (int)sizeof line, maps) != NULL) {
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\n') line[--len] = '\0';
        const size_t bl = strlen(base);
        if (len > bl && line[len - bl - 1] == '/' && strcmp(line + len - bl, base) == 0) ++n;
    }
    fclose(maps);
    return n;
}

/* Chat templates: the model's name, one rendering, errors. (The texts themselves are checked
 * against llama.cpp by oracle-c-api-chat-template.) */
static void check_chat(struct moerun_model *m) {
    const char *name = moerun_model_chat_template(m);
    const char *arch = moerun_model_arch(m);
    const char *expect = strcmp(arch, "olmoe") == 0   ? "tulu"
                         : strcmp(arch, "llama") == 0 ? "mistral"
                                                      : "chatml";
    CHECK(strcmp(name, expect) == 0, "%s: template '%s', expected '%s'", arch, name, expect);

    const struct moerun_chat_message conv[] = {{"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
    char buf[256];
    const char *chatml =
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye"
        "<|im_end|>\n<|im_start|>assistant\n";
    const int32_t n = moerun_chat_apply_template(m, "chatml", conv, 3, true, buf, (int32_t)sizeof buf);
    CHECK(n == (int32_t)strlen(chatml) && memcmp(buf, chatml, (size_t)n) == 0, "chatml: %d '%.*s'", n,
          n > 0 ? n : 0, buf);
    CHECK(moerun_chat_apply_template(m, "chatml", conv, 3, true, buf, 10) == -n, "short buffer");
    CHECK(moerun_chat_apply_template(m, "chatml", conv, 3, false, NULL, 0) == -(n - 22),
          "no assistant opening");
    CHECK(moerun_chat_apply_template(m, NULL, NULL, 0, false, NULL, 0) == 0, "no messages");

    /* The model's template, tokenized with parse_special: its markers are single special tokens. */
    const int32_t k = moerun_chat_apply_template(m, NULL, conv, 3, true, buf, (int32_t)sizeof buf);
    CHECK(k > 0, "the model's template: %d (%s)", k, moerun_last_error());
    if (k > 0 && strcmp(name, "mistral") != 0) {
        moerun_token plain[MAX_TOK], special[MAX_TOK];
        const int32_t np = moerun_tokenize(m, buf, k, plain, MAX_TOK, false, false);
        const int32_t ns = moerun_tokenize(m, buf, k, special, MAX_TOK, false, true);
        CHECK(ns > 0 && np > ns, "%s markers as special tokens: %d tokens, %d as plain text", name, ns, np);
    }

    CHECK(moerun_chat_apply_template(m, "llama3", conv, 3, true, buf, (int32_t)sizeof buf) == INT32_MIN,
          "unknown template");
    CHECK(strstr(moerun_last_error(), "llama3") != NULL, "message '%s'", moerun_last_error());
    const struct moerun_chat_message null_content[] = {{"user", NULL}};
    CHECK(
        moerun_chat_apply_template(m, "chatml", null_content, 1, true, buf, (int32_t)sizeof buf) == INT32_MIN,
        "NULL content");
    const struct moerun_chat_message tool[] = {{"user", "Hi"}, {"tool", "{}"}};
    CHECK(moerun_chat_apply_template(m, "mistral", tool, 2, true, buf, (int32_t)sizeof buf) == INT32_MIN,
          "mistral has no tool role");
    CHECK(strstr(moerun_last_error(), "tool") != NULL, "message '%s'", moerun_last_error());
    CHECK(moerun_chat_apply_template(m, "chatml", tool, 2, true, buf, (int32_t)sizeof buf) > 0,
          "chatml writes any role");
    CHECK(moerun_chat_apply_template(NULL, "chatml", conv, 3, true, buf, (int32_t)sizeof buf) == INT32_MIN,
          "NULL model");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: test-c-api MODEL.gguf BAD.gguf\n");
        return 2;
    }
    check_errors(argv[2]);
    struct moerun_model *m = NULL;
    if (moerun_model_load(argv[1], moerun_model_default_params(), &m) != MOERUN_OK) {
        fprintf(stderr, "FAIL: cannot load %s: %s\n", argv[1], moerun_last_error());
        return 1;
    }
    CHECK(moerun_model_arch(m)[0] != '\0' && moerun_model_n_layer(m) > 0 && moerun_model_n_expert(m) > 0 &&
              moerun_model_n_expert_used(m) > 0 && moerun_model_n_vocab(m) > 0 && moerun_model_size(m) > 0,
          "model info");
    check_vocab(m, argv[1]);
    check_chat(m);
    check_bad_params(m);

    struct moerun_context_params cp = moerun_context_default_params();
    cp.n_ctx = 128;
    cp.n_threads = 2;
    cp.backend = "cpu";
    cp.log = on_log;
    struct moerun_context *ctx = NULL;
    const int maps_model = count_mappings(argv[1]);
    if (moerun_context_new(m, cp, &ctx) != MOERUN_OK) {
        fprintf(stderr, "FAIL: context: %s\n", moerun_last_error());
        return 1;
    }
    CHECK(g_log_lines >= 2 && g_log_backend == 1, "log lines %d, backend lines %d", g_log_lines,
          g_log_backend);
    CHECK(strncmp(moerun_context_backend(ctx), "cpu", 3) == 0, "backend '%s'", moerun_context_backend(ctx));
    CHECK(moerun_context_memory_plan(ctx)[0] != '\0', "plan");
    /* The context shares its model's mapping of the file. */
    const int maps_ctx = count_mappings(argv[1]);
    CHECK(maps_model < 0 || (maps_model >= 1 && maps_ctx == maps_model),
          "mappings of the model file: %d with the model, %d with a context too", maps_model, maps_ctx);
    CHECK(moerun_n_ctx(ctx) == 128, "n_ctx");

    moerun_token prompt[MAX_TOK];
    const int n_prompt = moerun_tokenize(m, kPrompt, (int32_t)strlen(kPrompt), prompt, MAX_TOK, true, false);
    CHECK(n_prompt > 4, "prompt tokens %d", n_prompt);

    /* 1. generate == eval + argmax token by token; the stream's text is the tokens' text. */
    struct stream g;
    generate_greedy(ctx, prompt, n_prompt, &g);
    struct moerun_stats st;
    CHECK(moerun_get_stats(ctx, &st) == MOERUN_OK, "stats");
    CHECK(st.n_prompt_tokens == (uint64_t)n_prompt && st.n_decode_tokens == N_GEN - 1,
          "stats count %" PRIu64 " prompt and %" PRIu64 " decode tokens", st.n_prompt_tokens,
          st.n_decode_tokens);
    CHECK(st.budget_bytes > 0, "budget");
    CHECK(moerun_n_past(ctx) == (uint32_t)(n_prompt + N_GEN - 1), "n_past %u", moerun_n_past(ctx));
    char text[4096];
    const int32_t nt = moerun_detokenize(m, g.ids, g.n, text, (int32_t)sizeof text, false);
    CHECK(nt >= 0 && (size_t)nt == g.text_len && memcmp(text, g.text, g.text_len) == 0, "streamed text");

    moerun_context_reset(ctx);
    CHECK(moerun_eval(ctx, prompt, n_prompt, true) == MOERUN_OK, "eval prompt");
    CHECK(moerun_n_outputs(ctx) == n_prompt && moerun_get_logits(ctx, n_prompt) == NULL, "all logits");
    const int n_vocab = moerun_model_n_vocab(m);
    for (int i = 0; i < N_GEN; ++i) {
        const float *lg = moerun_get_logits(ctx, moerun_n_outputs(ctx) - 1);
        const moerun_token next = (moerun_token)argmax(lg, n_vocab);
        CHECK(next == g.ids[i], "token %d: eval gives %d, generate %d", i, next, g.ids[i]);
        if (next != g.ids[i]) break;
        CHECK(moerun_eval(ctx, &next, 1, false) == MOERUN_OK, "eval token");
    }

    /* 2. Bad input to eval: the context is unchanged. */
    const uint32_t past = moerun_n_past(ctx);
    const moerun_token bad = (moerun_token)n_vocab;
    CHECK(moerun_eval(ctx, &bad, 1, false) == MOERUN_ERR_ARGUMENT, "token past the vocabulary");
    CHECK(strstr(moerun_last_error(), "outside the vocabulary") != NULL, "message '%s'", moerun_last_error());
    moerun_token many[200];
    for (int i = 0; i < 200; ++i) many[i] = prompt[i % n_prompt];
    CHECK(moerun_eval(ctx, many, 200, false) == MOERUN_ERR_ARGUMENT, "past the context");
    CHECK(moerun_n_past(ctx) == past, "n_past kept");

    /* 3. Cancellation: from the callback after 3 tokens; before a call (it stops the prompt and
     * leaves the context as it was); of an eval. */
    struct stream c;
    memset(&c, 0, sizeof c);
    c.cancel_after = 3;
    c.ctx = ctx;
    struct moerun_generate_params gp = moerun_generate_default_params();
    gp.n_predict = N_GEN;
    gp.sampler.temp = 0.0f;
    gp.stop_at_eog = false;
    struct moerun_generate_result res;
    moerun_context_reset(ctx);
    CHECK(moerun_generate(ctx, prompt, n_prompt, &gp, on_token, &c, &res) == MOERUN_OK, "generate");
    CHECK(res.stop == MOERUN_STOP_CANCELLED && res.n_generated == 3 && c.n == 3,
          "cancelled after %d, stop %d", res.n_generated, (int)res.stop);
    CHECK(memcmp(c.ids, g.ids, 3 * sizeof(moerun_token)) == 0, "the same first tokens");
    const uint32_t before = moerun_n_past(ctx);
    moerun_cancel(ctx);
    CHECK(moerun_generate(ctx, prompt, n_prompt, &gp, NULL, NULL, &res) == MOERUN_OK, "generate");
    CHECK(res.stop == MOERUN_STOP_CANCELLED && res.n_generated == 0, "cancelled before: %d, stop %d",
          res.n_generated, (int)res.stop);
    CHECK(moerun_n_past(ctx) == before, "context as before: %u, was %u", moerun_n_past(ctx), before);
    moerun_cancel(ctx);
    CHECK(moerun_eval(ctx, prompt, n_prompt, false) == MOERUN_ERR_CANCELLED, "eval cancelled");
    CHECK(moerun_eval(ctx, prompt, 1, false) == MOERUN_OK, "the cancel was consumed");

    /* 4. The same tokens when a small budget puts the experts behind the cache: the smallest budget
     * the plan accepts (bisected to 64 KiB between a refused and an accepted one). */
    struct moerun_context_params sp = cp;
    sp.log = NULL;
    sp.cache_policy = "lru";
    uint64_t lo = 1u << 20, hi = 4 * moerun_model_size(m) + (64u << 20), budget = 0;
    struct moerun_context *small = NULL;
    while (hi - lo > (64u << 10)) {
        struct moerun_context *t = NULL;
        const uint64_t b = lo + (hi - lo) / 2;
        sp.host_mem = b;
        enum moerun_status s = moerun_context_new(m, sp, &t);
        if (s == MOERUN_OK) {
            moerun_context_free(small);
            small = t;
            budget = hi = b;
        } else {
            CHECK(s == MOERUN_ERR_MEMORY, "budget %" PRIu64 ": status %d", b, (int)s);
            if (s != MOERUN_ERR_MEMORY) break;
            lo = b;
        }
    }
    CHECK(small != NULL, "no budget accepted");
    if (small != NULL) {
        struct stream g2;
        CHECK(moerun_get_stats(small, &st) == MOERUN_OK && st.expert_cache && st.cache_slots > 0,
              "budget %" PRIu64 " puts the experts behind the cache (plan: %s)", budget,
              moerun_context_memory_plan(small));
        /* The plan sizes the workspaces for n_batch: a larger one does not fit the same budget. */
        struct moerun_context *big = NULL;
        sp.host_mem = budget;
        sp.n_batch = 8192;
        CHECK(moerun_context_new(m, sp, &big) == MOERUN_ERR_MEMORY, "n_batch 8192 at budget %" PRIu64,
              budget);
        moerun_context_free(big);
        generate_greedy(small, prompt, n_prompt, &g2);
        CHECK(g2.n == g.n && memcmp(g2.ids, g.ids, sizeof(moerun_token) * (size_t)g.n) == 0,
              "same tokens at budget %" PRIu64, budget);
        CHECK(moerun_get_stats(small, &st) == MOERUN_OK && st.cache_accesses > 0 && st.cache_misses > 0 &&
                  st.cache_bytes_read > 0,
              "cache stats: %" PRIu64 " accesses, %" PRIu64 " misses", st.cache_accesses, st.cache_misses);
        printf("c-api: %d tokens the same at the full budget and at %" PRIu64 " bytes (%u slots, %" PRIu64
               " of %" PRIu64 " expert uses hit)\n",
               g.n, budget, st.cache_slots, st.cache_hits, st.cache_accesses);
        moerun_context_free(small);
    }
    moerun_context_free(ctx);
    moerun_model_free(m);
    moerun_context_free(NULL);
    moerun_model_free(NULL);
    if (g_failures > 0) {
        fprintf(stderr, "%d checks failed\n", g_failures);
        return 1;
    }
    printf("c-api: all checks passed\n");
    return 0;
}
