// Residual, bias, gather/combine and KV-cache ops on the device (rows.cu) and attention
// (attention.cu); definitions as the CPU backend's. Index and weight arrays are device copies.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "moerun/quant/types.h"

namespace moerun::kernels::cuda {

cudaError_t launch_add(float *y, const float *a, int64_t n, cudaStream_t stream);
cudaError_t launch_add_bias(float *x, const float *b, int64_t rows, int64_t n, cudaStream_t stream);
// rows: device [m].
cudaError_t launch_gather_rows(const float *src, const int32_t *rows, int64_t m, int64_t n, float *dst,
                               cudaStream_t stream);
// rows, w: device [n_tok * k].
cudaError_t launch_combine_rows(const float *src, const int32_t *rows, const float *w, int64_t n_tok, int k,
                                int64_t n, float *dst, bool accumulate, cudaStream_t stream);
// type F32 or F16.
cudaError_t launch_kv_store(const float *x, int64_t n_tok, int n_head_kv, int head_dim, quant::Type type,
                            void *cache, int64_t n_ctx, int64_t pos0, cudaStream_t stream);

struct AttentionArgs {
    const void *k_cache, *v_cache;
    bool k16, v16;  // F16 (else F32) caches
    int64_t n_ctx, n_tok, pos0;
    int n_head, n_head_kv, head_dim;  // head_dim <= kMaxHeadDim
    float scale;
};
constexpr int kMaxHeadDim = 256;
cudaError_t launch_attention(const AttentionArgs &a, const float *q, float *out, cudaStream_t stream);

}  // namespace moerun::kernels::cuda
