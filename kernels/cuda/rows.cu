// Element-wise and row ops: residual add, bias, the expert dispatch's gather and weighted
// combine, and KV-cache stores (F16 rounded to nearest even, as the CPU's fp32_to_fp16).
#include <cuda_fp16.h>

#include <algorithm>

#include "exact-ops.cuh"
#include "rows.cuh"

namespace moerun::kernels::cuda {
namespace {

unsigned blocks_for(int64_t n, int threads) {
    return static_cast<unsigned>((n + threads - 1) / threads);
}

__global__ void add_kernel(float *__restrict__ y, const float *__restrict__ a, int64_t n) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < n) y[i] += a[i];
}

__global__ void add_bias_kernel(float *__restrict__ x, const float *__restrict__ b, int64_t total,
                                int64_t n) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i < total) x[i] += b[i % n];
}

// One block per destination row.
__global__ void gather_rows_kernel(const float *__restrict__ src, const int32_t *__restrict__ rows, int64_t n,
                                   float *__restrict__ dst) {
    const float *s = src + static_cast<int64_t>(rows[blockIdx.x]) * n;
    float *d = dst + static_cast<int64_t>(blockIdx.x) * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) d[i] = s[i];
}

// grid (column blocks, n_tok): dst[t, i] (+)= sum_j w[t, j] * src[rows[t, j], i], j in order.
__global__ void combine_rows_kernel(const float *__restrict__ src, const int32_t *__restrict__ rows,
                                    const float *__restrict__ w, int k, int64_t n, float *__restrict__ dst,
                                    bool accumulate) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (i >= n) return;
    const int64_t t = blockIdx.y;
    float acc = accumulate ? dst[t * n + i] : 0.0f;
    for (int j = 0; j < k; ++j)  // as weighted_sum_kernel
        acc = fma_rn(w[t * k + j], src[static_cast<int64_t>(rows[t * k + j]) * n + i], acc);
    dst[t * n + i] = acc;
}

// One thread per element of x [n_tok, n_head_kv, head_dim].
__global__ void kv_store_kernel(const float *__restrict__ x, int64_t total, int n_head_kv, int head_dim,
                                bool f16, void *cache, int64_t n_ctx, int64_t pos0) {
    const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (g >= total) return;
    const int64_t i = g % head_dim, h = (g / head_dim) % n_head_kv, t = g / (int64_t{head_dim} * n_head_kv);
    const int64_t at = (h * n_ctx + pos0 + t) * head_dim + i;
    if (f16)
        static_cast<__half *>(cache)[at] = __float2half_rn(x[g]);
    else
        static_cast<float *>(cache)[at] = x[g];
}

}  // namespace

cudaError_t launch_add(float *y, const float *a, int64_t n, cudaStream_t stream) {
    if (n <= 0) return cudaSuccess;
    add_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(y, a, n);
    return cudaGetLastError();
}

cudaError_t launch_add_bias(float *x, const float *b, int64_t rows, int64_t n, cudaStream_t stream) {
    if (rows <= 0 || n <= 0) return cudaSuccess;
    add_bias_kernel<<<blocks_for(rows * n, 256), 256, 0, stream>>>(x, b, rows * n, n);
    return cudaGetLastError();
}

cudaError_t launch_gather_rows(const float *src, const int32_t *rows, int64_t m, int64_t n, float *dst,
                               cudaStream_t stream) {
    if (m <= 0 || n <= 0) return cudaSuccess;
    gather_rows_kernel<<<static_cast<unsigned>(m), 256, 0, stream>>>(src, rows, n, dst);
    return cudaGetLastError();
}

cudaError_t launch_combine_rows(const float *src, const int32_t *rows, const float *w, int64_t n_tok, int k,
                                int64_t n, float *dst, bool accumulate, cudaStream_t stream) {
    if (n_tok <= 0 || n <= 0) return cudaSuccess;
    constexpr int64_t kMaxGridY = 65535;  // tokens on grid.y: launched in chunks of at most that
    for (int64_t t0 = 0; t0 < n_tok; t0 += kMaxGridY) {
        const int64_t nt = std::min(kMaxGridY, n_tok - t0);
        const dim3 grid(blocks_for(n, 256), static_cast<unsigned>(nt));
        combine_rows_kernel<<<grid, 256, 0, stream>>>(src, rows + t0 * k, w + t0 * k, k, n, dst + t0 * n,
                                                      accumulate);
        if (const cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

cudaError_t launch_kv_store(const float *x, int64_t n_tok, int n_head_kv, int head_dim, quant::Type type,
                            void *cache, int64_t n_ctx, int64_t pos0, cudaStream_t stream) {
    const int64_t total = n_tok * n_head_kv * head_dim;
    if (total <= 0) return cudaSuccess;
    kv_store_kernel<<<blocks_for(total, 256), 256, 0, stream>>>(x, total, n_head_kv, head_dim,
                                                                type == quant::Type::F16, cache, n_ctx, pos0);
    return cudaGetLastError();
}

}  // namespace moerun::kernels::cuda
