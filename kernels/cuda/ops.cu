// RMSNorm, SwiGLU, router softmax + top-k and RoPE on the device. Each follows the CPU backend's
// definition (kernels/cpu: ops.cpp, rope.cpp); sums are F32 here (the CPU sums some in double).
#include <cmath>

#include "exact-ops.cuh"
#include "ops.cuh"

namespace moerun::kernels::cuda {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// One block of 256 threads per row. y may be x (no __restrict__ on them).
__global__ void rms_norm_kernel(const float *x, const float *__restrict__ w, float *y, int64_t n, float eps) {
    __shared__ float partial[8];
    const float *xr = x + blockIdx.x * n;
    float *yr = y + blockIdx.x * n;
    float ss = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    ss = warp_sum(ss);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
        v = warp_sum(v);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    const float scale = 1.0f / sqrtf(partial[0] / static_cast<float>(n) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = xr[i] * scale;
        yr[i] = w ? v * w[i] : v;
    }
}

// out may be g or u (no __restrict__).
__global__ void swiglu_kernel(const float *g, const float *u, float *out, int64_t n) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) out[i] = swiglu_rn(g[i], u[i]);  // as the host's device-order rows
}

// One warp per token; lane l holds experts l, l + 32, ... (up to 32 each).
__global__ void router_topk_kernel(const float *__restrict__ logits, int n_expert, int k, bool renorm,
                                   int32_t *__restrict__ ids, float *__restrict__ weights) {
    constexpr int kPerLane = 32;
    const int lane = threadIdx.x;
    const float *l = logits + static_cast<int64_t>(blockIdx.x) * n_expert;
    float p[kPerLane];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int e = lane + 32 * j;
        p[j] = e < n_expert ? l[e] : -INFINITY;
        mx = fmaxf(mx, p[j]);
    }
    mx = warp_max(mx);
    float sum = 0;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int e = lane + 32 * j;
        p[j] = e < n_expert ? expf(p[j] - mx) : 0.0f;
        sum += p[j];
    }
    sum = warp_sum(sum);
    const float inv = 1.0f / sum;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) p[j] *= inv;
    // k rounds of a warp argmax (largest probability, then lowest id; a NaN counts as -inf, as in
    // cpu::top_k, so that the order is total and every lane agrees); the winner is taken out.
    bool taken[kPerLane] = {};
    float chosen_sum = 0, my_weight = 0;
    int my_id = -1;
    for (int r = 0; r < k; ++r) {
        float best = -INFINITY, best_p = 0;  // key and probability of the best so far
        int best_e = 0x7fffffff;
#pragma unroll
        for (int j = 0; j < kPerLane; ++j) {
            const int e = lane + 32 * j;
            const float key = p[j] != p[j] ? -INFINITY : p[j];  // NaN: -inf
            if (e < n_expert && !taken[j] && (key > best || (key == best && e < best_e))) {
                best = key;
                best_p = p[j];
                best_e = e;
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float ob = __shfl_xor_sync(0xffffffffu, best, o);
            const float op = __shfl_xor_sync(0xffffffffu, best_p, o);
            const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
            if (ob > best || (ob == best && oe < best_e)) {
                best = ob;
                best_p = op;
                best_e = oe;
            }
        }
        // k <= n_expert (checked by the caller), so some lane always has an expert left.
        if (best_e < n_expert && best_e % 32 == lane) taken[best_e / 32] = true;
        if (lane == r) {
            my_id = best_e;
            my_weight = best_p;
        }
        chosen_sum += best_p;
    }
    if (lane < k) {
        ids[static_cast<int64_t>(blockIdx.x) * k + lane] = my_id;
        weights[static_cast<int64_t>(blockIdx.x) * k + lane] = renorm ? my_weight / chosen_sum : my_weight;
    }
}

// One thread per (token, head, rotated pair i).
__global__ void rope_kernel(float *x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0,
                            float theta_scale, bool neox, float freq_scale, float ext_factor, float mscale,
                            float corr_low, float corr_high) {
    const int half = n_rot / 2;
    const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (g >= n_tok * n_head * half) return;
    const int i = static_cast<int>(g % half);
    const int64_t th = g / half;  // token * n_head + head
    const int64_t t = th / n_head;
    // theta_e = pos * theta_scale^i by repeated multiplication, as the CPU (and ggml) builds it.
    float theta_e = static_cast<float>(pos0 + t);
    for (int j = 0; j < i; ++j) theta_e *= theta_scale;
    const float theta_i = freq_scale * theta_e;
    float theta = theta_i;
    if (ext_factor != 0.0f) {
        const float y = (static_cast<float>(i) - corr_low) / fmaxf(0.001f, corr_high - corr_low);
        const float mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * ext_factor;
        theta = theta_i * (1.0f - mix) + theta_e * mix;
    }
    const float c = cosf(theta) * mscale, sn = sinf(theta) * mscale;
    float *v = x + th * head_dim;
    const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * sn;
    v[b] = x0 * sn + x1 * c;
}

struct Weights32 {
    float w[32];
};

__global__ void weighted_sum_kernel(const float *__restrict__ d, int n, int64_t n_embd, Weights32 w,
                                    float *__restrict__ y) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n_embd) return;
    float acc = 0.0f;
    for (int j = 0; j < n; ++j) acc = fma_rn(w.w[j], d[j * n_embd + i], acc);  // as combine_rows
    y[i] = acc;
}

unsigned blocks_for(int64_t n, int threads) {
    return static_cast<unsigned>((n + threads - 1) / threads);
}

}  // namespace

cudaError_t launch_rms_norm(const float *x, const float *w, float *y, int64_t rows, int64_t n, float eps,
                            cudaStream_t stream) {
    if (rows <= 0) return cudaSuccess;
    rms_norm_kernel<<<static_cast<unsigned>(rows), 256, 0, stream>>>(x, w, y, n, eps);
    return cudaGetLastError();
}

cudaError_t launch_swiglu(const float *gate, const float *up, float *out, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    swiglu_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(gate, up, out, n);
    return cudaGetLastError();
}

cudaError_t launch_router_topk(const float *logits, int64_t n_tok, int n_expert, int k, bool renorm,
                               int32_t *ids, float *weights, cudaStream_t stream) {
    if (n_tok <= 0) return cudaSuccess;
    router_topk_kernel<<<static_cast<unsigned>(n_tok), 32, 0, stream>>>(logits, n_expert, k, renorm, ids,
                                                                        weights);
    return cudaGetLastError();
}

cudaError_t launch_rope(float *x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0,
                        float freq_base, bool neox, const cpu::RopeScaling &s, cudaStream_t stream) {
    const int64_t n = n_tok * n_head * (n_rot / 2);
    if (n <= 0) return cudaSuccess;
    // Host-side constants computed as rope.cpp computes them.
    const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
    float mscale = s.attn_factor;
    if (s.ext_factor != 0.0f) mscale *= 1.0f + 0.1f * std::log(1.0f / s.freq_scale);
    rope_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(x, n_tok, n_head, head_dim, n_rot, pos0, theta_scale,
                                                        neox, s.freq_scale, s.ext_factor, mscale, s.corr_low,
                                                        s.corr_high);
    return cudaGetLastError();
}

cudaError_t launch_weighted_sum(const float *d, int n, int64_t n_embd, const float *weights, float *y,
                                cudaStream_t stream) {
    if (n_embd <= 0) return cudaSuccess;
    if (n < 0 || n > 32) return cudaErrorInvalidValue;
    Weights32 w{};
    for (int j = 0; j < n; ++j) w.w[j] = weights[j];
    weighted_sum_kernel<<<blocks_for(n_embd, 256), 256, 0, stream>>>(d, n, n_embd, w, y);
    return cudaGetLastError();
}

}  // namespace moerun::kernels::cuda
