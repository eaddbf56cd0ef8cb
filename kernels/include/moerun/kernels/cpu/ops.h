// CPU kernels of the forward pass. Raw pointers, explicit sizes; weights are GGUF blocks read
// in place (no dequantized copy of a matrix is ever made).
//
// A weight matrix W of GGUF shape ne = {cols, rows} is `rows` rows of `cols` elements, each row
// row_bytes(type, cols) bytes; matmul computes Y = X W^T.
#pragma once

#include <cstdint>
#include <span>

#include "moerun/kernels/cpu/thread-pool.h"
#include "moerun/quant/types.h"

namespace moerun::kernels::cpu {

// Y[n_tok, rows] = X[n_tok, cols] . W^T, token-major. Activations are converted once per token
// (in parallel); rows x tokens are tiled, and each weight row meets up to kMaxDotRows tokens per
// pass (vec_dot_rows).
void matmul(ThreadPool &pool, quant::Type type, const void *w, const float *x, float *y, int64_t rows,
            int64_t cols, int64_t n_tok);

// One product of a group: Y[n_tok, rows] = X[n_tok, cols] . W^T (W: rows x cols of `type`).
struct MatmulJob {
    quant::Type type;
    const void *w;
    const float *x;
    float *y;
    int64_t rows, cols, n_tok;
};
// Every job of the group in one parallel pass over all their weight rows (the pool synchronises
// twice for the whole group instead of twice per product: what decode, with many small products
// per layer, needs). Results are bit-identical to one matmul per job.
void matmul_group(ThreadPool &pool, std::span<const MatmulJob> jobs);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]; weight may be null (no scale). In place allowed.
void rms_norm(const float *x, const float *weight, float *out, int64_t n, float eps);

// Rotary embedding of one token: x is [n_head, head_dim]; the first n_rot dims of each head
// rotate by pos * freq_scale * freq_base^(-2i/n_rot). neox: pairs (i, i + n_rot/2); else (2i, 2i+1).
void rope(float *x, int n_head, int head_dim, int n_rot, float pos, float freq_base, bool neox);

void softmax(float *x, int64_t n);
// ids[0..k) = the indices of the k largest of p[0..n), largest first, ties to the lower index
// (the router's top-k). idx: scratch [n].
void top_k(const float *p, int64_t n, int64_t k, int64_t *idx, uint16_t *ids);
// x[i] = silu(gate[i]) * up[i]
void swiglu(const float *gate, const float *up, float *out, int64_t n);
// The F32 vec-dot kernel (vec_dot with quant::Type::F32).
float dot(const float *a, const float *b, int64_t n);
// y += a * x
void axpy(float a, const float *x, float *y, int64_t n);

// KV cache rows hold F32 or F16 (llama.cpp's -ctk / -ctv f32 and f16).
bool kv_type_supported(quant::Type t);
// dst[n] = src in KV type t (F16: rounded to nearest, ties to even).
void store_kv_row(quant::Type t, const float *src, void *dst, int64_t n);

// One query head against n_pos cached positions: k and v are [n_pos, hd] rows of type_k / type_v
// (F32 or F16). scores[p] = dot(q, K[p]) * scale, softmax, then out[hd] += sum_p scores[p] V[p] in
// position order. As llama.cpp computes an F16 cache (its KQ and KQV products take F16 operands):
// with F16 keys the query is rounded to F16 first, with F16 values the probabilities are.
// Products and sums are F32. scores: scratch [n_pos].
void attention_head(const float *q, const void *k, quant::Type type_k, const void *v, quant::Type type_v,
                    int64_t n_pos, int64_t hd, float scale, float *scores, float *out);

}  // namespace moerun::kernels::cpu
