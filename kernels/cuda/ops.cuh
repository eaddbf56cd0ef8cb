// The forward pass's smaller device ops (ops.cu); definitions as the CPU backend's.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "moerun/kernels/cpu/rope.h"

namespace moerun::kernels::cuda {

cudaError_t launch_rms_norm(const float *x, const float *w, float *y, int64_t rows, int64_t n, float eps,
                            cudaStream_t stream);
cudaError_t launch_swiglu(const float *gate, const float *up, float *out, int64_t n, cudaStream_t stream);
// n_expert <= 1024, k <= 32.
cudaError_t launch_router_topk(const float *logits, int64_t n_tok, int n_expert, int k, bool renorm,
                               int32_t *ids, float *weights, cudaStream_t stream);
cudaError_t launch_rope(float *x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0,
                        float freq_base, bool neox, const cpu::RopeScaling &s, cudaStream_t stream);

// y[n_embd] = sum over j < n (in order, from 0) of weights[j] * d[j * n_embd + i]; n <= 32,
// weights on the host.
cudaError_t launch_weighted_sum(const float *d, int n, int64_t n_embd, const float *weights, float *y,
                                cudaStream_t stream);

}  // namespace moerun::kernels::cuda
