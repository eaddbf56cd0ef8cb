// Causal GQA attention over one layer's KV cache, one block of kWarps warps per (head, token).
// Two passes over the keys so that the probabilities are exactly softmax's (then rounded to F16
// with an F16 V cache, as cpu::attention_head and llama.cpp do):
//   pass 1: each warp takes positions warp, warp + kWarps, ...: running max and sum of exp;
//           the warps' (max, sum) pairs are merged;
//   pass 2: the scores again, p = exp(s - max) / sum, out += p * V[p] per warp, warps summed.
// Lane l holds elements l, l + 32, ... of q and of the output (head_dim <= kMaxHeadDim).
#include <cuda_fp16.h>

#include <cmath>

#include "rows.cuh"

namespace moerun::kernels::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kPerLane = kMaxHeadDim / 32;

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float load(const void *base, bool f16, int64_t at) {
    return f16 ? __half2float(static_cast<const __half *>(base)[at]) : static_cast<const float *>(base)[at];
}

__global__ void attention_kernel(AttentionArgs a, const float *__restrict__ q, float *__restrict__ out) {
    __shared__ float red_m[kWarps], red_l[kWarps];
    __shared__ float red_o[kWarps][kMaxHeadDim];
    const int h = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t t = blockIdx.y, hd = a.head_dim, n_pos = a.pos0 + t + 1;
    const int64_t kvh = h / (a.n_head / a.n_head_kv);
    const int64_t base = kvh * a.n_ctx * hd;  // element offset of this kv head's position 0
    const float *qh = q + (t * a.n_head + h) * hd;
    float qr[kPerLane];
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int64_t i = lane + 32 * j;
        const float v = i < hd ? qh[i] : 0.0f;
        qr[j] = a.k16 ? __half2float(__float2half_rn(v)) : v;
    }
    auto score = [&](int64_t p) {
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) {
            const int64_t i = lane + 32 * j;
            if (i < hd) s += qr[j] * load(a.k_cache, a.k16, base + p * hd + i);
        }
        return warp_sum(s) * a.scale;
    };
    float m = -INFINITY, l = 0.0f;
    for (int64_t p = warp; p < n_pos; p += kWarps) {
        const float s = score(p);
        const float nm = fmaxf(m, s);
        l = l * expf(m - nm) + expf(s - nm);
        m = nm;
    }
    if (lane == 0) {
        red_m[warp] = m;
        red_l[warp] = l;
    }
    __syncthreads();
    float mx = -INFINITY, sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, red_m[w]);
    for (int w = 0; w < kWarps; ++w)
        if (red_l[w] > 0.0f) sum += red_l[w] * expf(red_m[w] - mx);
    const float inv = 1.0f / sum;
    float o[kPerLane] = {};
    for (int64_t p = warp; p < n_pos; p += kWarps) {
        float w = expf(score(p) - mx) * inv;
        if (a.v16) w = __half2float(__float2half_rn(w));
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) {
            const int64_t i = lane + 32 * j;
            if (i < hd) o[j] += w * load(a.v_cache, a.v16, base + p * hd + i);
        }
    }
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) red_o[warp][lane + 32 * j] = o[j];
    __syncthreads();
    float *oh = out + (t * a.n_head + h) * hd;
    for (int64_t i = threadIdx.x; i < hd; i += blockDim.x) {
        float v = 0.0f;
        for (int w = 0; w < kWarps; ++w) v += red_o[w][i];
        oh[i] = v;
    }
}

}  // namespace

cudaError_t launch_attention(const AttentionArgs &a, const float *q, float *out, cudaStream_t stream) {
    if (a.n_tok <= 0) return cudaSuccess;
    if (a.head_dim > kMaxHeadDim || a.n_tok > 65535) return cudaErrorInvalidValue;
    const dim3 grid(static_cast<unsigned>(a.n_head), static_cast<unsigned>(a.n_tok));
    attention_kernel<<<grid, 32 * kWarps, 0, stream>>>(a, q, out);
    return cudaGetLastError();
}

}  // namespace moerun::kernels::cuda
