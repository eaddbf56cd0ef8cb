/* The C API against llama.cpp: the logits of a MOELOGIT file (tests/oracle/llama_oracle.py, via
 * check_logits.py) through moerun_eval, and its greedy continuation through moerun_generate.
 *   1. all n_tokens as one moerun_eval with all logits: max |diff| / max |logit| per position <= tol;
 *   2. moerun_generate (temp 0) from the prompt: the same tokens as llama.cpp's continuation.
 * Usage: c-api-compare MODEL.gguf ORACLE.bin --tol T [--threads N] [--kv-type f32|f16]
 * Exit 0 pass, 1 fail, 2 bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moerun.h"

struct oracle {
    uint32_t n_tokens, n_vocab, n_prompt;
    int32_t *tokens;
    float *logits; /* [n_tokens][n_vocab] */
};

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The file is written little-endian; this runs on little-endian hosts (x86-64, arm64). */
static int read_oracle(const char *path, struct oracle *o) {
    FILE *f = fopen(path, "rb");
    unsigned char h[24];
    if (f == NULL || fread(h, 1, sizeof h, f) != sizeof h || memcmp(h, "MOELOGIT", 8) != 0 || le32(h + 8) != 1) {
        fprintf(stderr, "c-api-compare: %s: not a MOELOGIT version 1 file\n", path);
        if (f) fclose(f);
        return 0;
    }
    o->n_tokens = le32(h + 12);
    o->n_vocab = le32(h + 16);
    o->n_prompt = le32(h + 20);
    if (o->n_tokens == 0 || o->n_tokens > 65536 || o->n_vocab == 0 || o->n_vocab > (1u << 20) ||
        o->n_prompt == 0 || o->n_prompt > o->n_tokens) {
        fprintf(stderr, "c-api-compare: %s: bad header\n", path);
        fclose(f);
        return 0;
    }
    const size_t n_logits = (size_t)o->n_tokens * o->n_vocab;
    o->tokens = malloc(sizeof(int32_t) * o->n_tokens);
    o->logits = malloc(sizeof(float) * n_logits);
    const int ok = o->tokens && o->logits && fread(o->tokens, sizeof(int32_t), o->n_tokens, f) == o->n_tokens &&
                   fread(o->logits, sizeof(float), n_logits, f) == n_logits;
    fclose(f);
    if (!ok) fprintf(stderr, "c-api-compare: %s: truncated\n", path);
    return ok;
}

struct collected {
    int32_t *ids;
    int32_t n, max;
};

static bool collect(moerun_token token, const char *text, size_t len, void *user) {
    (void)text;
    (void)len;
    struct collected *c = (struct collected *)user;
    if (c->n < c->max) c->ids[c->n++] = token;
    return true;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: c-api-compare MODEL.gguf ORACLE.bin --tol T [--threads N] [--kv-type f32|f16]\n");
        return 2;
    }
    double tol = -1;
    int threads = 1;
    bool kv_f32 = true;
    for (int i = 3; i < argc; ++i) {
        if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) {
            tol = atof(argv[++i]);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--kv-type") == 0 && i + 1 < argc) {
            ++i;
            kv_f32 = strcmp(argv[i], "f32") == 0;
        } else {
            fprintf(stderr, "c-api-compare: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    struct oracle ref;
    if (tol < 0 || !read_oracle(argv[2], &ref)) return 2;

    struct moerun_model *m = NULL;
    if (moerun_model_load(argv[1], moerun_model_default_params(), &m) != MOERUN_OK) {
        fprintf(stderr, "c-api-compare: %s\n", moerun_last_error());
        return 2;
    }
    if ((uint32_t)moerun_model_n_vocab(m) != ref.n_vocab) {
        fprintf(stderr, "c-api-compare: vocabulary %d, oracle %u\n", moerun_model_n_vocab(m), ref.n_vocab);
        return 2;
    }
    struct moerun_context_params cp = moerun_context_default_params();
    cp.n_ctx = ref.n_tokens + 8;
    cp.n_threads = threads;
    cp.kv_f32 = kv_f32;
    cp.backend = "cpu";
    struct moerun_context *ctx = NULL;
    if (moerun_context_new(m, cp, &ctx) != MOERUN_OK) {
        fprintf(stderr, "c-api-compare: %s\n", moerun_last_error());
        return 2;
    }

    int failed = 0;
    if (moerun_eval(ctx, ref.tokens, (int32_t)ref.n_tokens, true) != MOERUN_OK) {
        fprintf(stderr, "c-api-compare: eval: %s\n", moerun_last_error());
        return 1;
    }
    double worst = 0;
    uint32_t worst_at = 0;
    for (uint32_t i = 0; i < ref.n_tokens; ++i) {
        const float *got = moerun_get_logits(ctx, (int32_t)i);
        const float *want = ref.logits + (size_t)i * ref.n_vocab;
        double diff = 0, scale = 0;
        for (uint32_t v = 0; v < ref.n_vocab; ++v) {
            if (!isfinite(got[v])) diff = INFINITY;
            diff = fmax(diff, fabs((double)got[v] - (double)want[v]));
            scale = fmax(scale, fabs((double)want[v]));
        }
        const double rel = diff / (scale > 0 ? scale : 1);
        if (!(rel <= worst)) {
            worst = rel;
            worst_at = i;
        }
    }
    printf("c-api-compare: %u positions, max |diff| / max |logit| = %.3g at position %u (tol %g)\n", ref.n_tokens,
           worst, worst_at, tol);
    if (!(worst <= tol)) failed = 1;

    const int32_t n_gen = (int32_t)(ref.n_tokens - ref.n_prompt);
    struct moerun_generate_params gp = moerun_generate_default_params();
    gp.n_predict = n_gen;
    gp.stop_at_eog = false;
    gp.sampler.temp = 0.0f;
    moerun_context_reset(ctx);
    struct collected got = {malloc(sizeof(int32_t) * (size_t)n_gen), 0, n_gen};
    struct moerun_generate_result res;
    if (got.ids == NULL || moerun_generate(ctx, ref.tokens, (int32_t)ref.n_prompt, &gp, collect, &got, &res) != MOERUN_OK) {
        fprintf(stderr, "c-api-compare: generate: %s\n", moerun_last_error());
        return 1;
    }
    int32_t same = 0;
    while (same < got.n && got.ids[same] == ref.tokens[ref.n_prompt + (uint32_t)same]) ++same;
    printf("c-api-compare: greedy continuation: %d of %d tokens as llama.cpp's (stop %d)\n", same, n_gen, (int)res.stop);
    if (same != n_gen || got.n != n_gen) failed = 1;
    free(got.ids);
    free(ref.tokens);
    free(ref.logits);
    moerun_context_free(ctx);
    moerun_model_free(m);
    printf("c-api-compare: %s\n", failed ? "FAIL" : "pass");
    return failed;
}
