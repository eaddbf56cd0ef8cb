// Matrix-vector (and few-token) products over GGUF blocks: one warp per weight row; lane l takes
// the row's 32-element chunks l, l + 32, ... (block-dot.cuh), for up to 8 tokens at once so each
// chunk of weights is decoded once per pass; the lanes' partial sums meet in a warp reduction
// (butterfly, lane 0's sum written). Every rounding is fixed (exact-ops.cuh): the host computes
// the same rows bit for bit in kernels/cpu/device-order.cpp.
#include "block-dot.cuh"
#include "mmv.cuh"

namespace moerun::kernels::cuda {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per thread block
constexpr int kTokens = 8;        // tokens per pass over a row

// Row `row` of W (rows x cols, rb bytes per row) against n_tok <= kTokens activation rows of x;
// the calling warp writes y[t * rows + row]. BS elements per block of BB bytes (block-dot.cuh's BlockType).
template <quant::Type T, int BS, int BB>
__device__ __forceinline__ void mmv_row(const uint8_t *__restrict__ w, uint64_t rb,
                                        const float *__restrict__ x, float *__restrict__ y, int64_t rows,
                                        int64_t cols, int n_tok, int64_t row) {
    const int lane = threadIdx.x;
    const uint8_t *wr = w + static_cast<uint64_t>(row) * rb;
    const int64_t n_chunks = cols / 32;
    const int tail = static_cast<int>(cols % 32);  // F32 / F16 / BF16 rows only (BS == 1)
    float acc[kTokens];
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;
    for (int64_t c = lane; c < n_chunks; c += 32) {
        const int64_t e = 32 * c;  // first element of the chunk
        const uint8_t *blk = wr + static_cast<uint64_t>(e / BS) * BB;
        const int j = static_cast<int>((e % BS) / 32);
#pragma unroll
        for (int t = 0; t < kTokens; ++t)
            if (t < n_tok) acc[t] = add_rn(acc[t], chunk_dot<T>(blk, j, x + t * cols + e));
    }
    if constexpr (BS == 1) {  // the partial chunk n_chunks, in its lane's turn (after its full chunks)
        if (tail != 0 && lane == n_chunks % 32) {
            const int64_t e = 32 * n_chunks;
#pragma unroll
            for (int t = 0; t < kTokens; ++t)
                if (t < n_tok) acc[t] = add_rn(acc[t], dot_tail<T>(wr + e * BB, tail, x + t * cols + e));
        }
    }
    // n_tok is the same for the whole warp, so every lane leaves this loop together.
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
        if (t >= n_tok) break;
        float v = acc[t];
        for (int o = 16; o > 0; o >>= 1) v = add_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (lane == 0) y[t * rows + row] = v;
    }
}

template <quant::Type T, int BS, int BB>
__global__ void mmv_kernel(const uint8_t *__restrict__ w, uint64_t rb, const float *__restrict__ x,
                           float *__restrict__ y, int64_t rows, int64_t cols, int n_tok) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
    if (row < rows) mmv_row<T, BS, BB>(w, rb, x, y, rows, cols, n_tok, row);
}

// Matrix m = blockIdx.y of a batch, one token each.
template <quant::Type T, int BS, int BB>
__global__ void mmv_batch_kernel(MatBatch b, uint64_t rb, int64_t rows, int64_t cols) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y;
    const int m = static_cast<int>(blockIdx.y);
    if (row < rows)
        mmv_row<T, BS, BB>(static_cast<const uint8_t *>(b.w[m]), rb, b.x[m], b.y[m], rows, cols, 1, row);
}

template <quant::Type T, int BS, int BB>
cudaError_t launch_batch(const MatBatch &b, int n, uint64_t rb, int64_t rows, int64_t cols,
                         cudaStream_t stream) {
    const dim3 block(32, kRowsPerBlock);
    const dim3 grid(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock),
                    static_cast<unsigned>(n));
    mmv_batch_kernel<T, BS, BB><<<grid, block, 0, stream>>>(b, rb, rows, cols);
    return cudaGetLastError();
}

template <quant::Type T, int BS, int BB>
cudaError_t launch(const void *w, uint64_t rb, const float *x, float *y, int64_t rows, int64_t cols,
                   int64_t n_tok, cudaStream_t stream) {
    const dim3 block(32, kRowsPerBlock);
    const dim3 grid(static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock));
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTokens) {
        const int nt = static_cast<int>(n_tok - t0 < kTokens ? n_tok - t0 : kTokens);
        mmv_kernel<T, BS, BB><<<grid, block, 0, stream>>>(static_cast<const uint8_t *>(w), rb, x + t0 * cols,
                                                          y + t0 * rows, rows, cols, nt);
        if (const cudaError_t err = cudaGetLastError(); err != cudaSuccess) return err;
    }
    return cudaSuccess;
}

}  // namespace

// Calls f(BlockType<...>{}) for the weight type t (block-dot.cuh's visit_block_type);
// cudaErrorInvalidValue for a type without a kernel.
template <class F>
cudaError_t dispatch(quant::Type t, F &&f) {
    cudaError_t err = cudaErrorInvalidValue;
    visit_block_type(t, [&](auto tag) { err = f(tag); });
    return err;
}

bool has_device_matmul(quant::Type t) {
    return visit_block_type(t, [](auto) {});
}

cudaError_t launch_matmul_batch(quant::Type t, const MatBatch &b, int n, uint64_t rb, int64_t rows,
                                int64_t cols, cudaStream_t stream) {
    if (rows <= 0 || n <= 0) return cudaSuccess;
    if (n > kMaxBatch) return cudaErrorInvalidValue;
    return dispatch(t, [&](auto tag) {
        using Tag = decltype(tag);
        return launch_batch<Tag::type, Tag::bs, Tag::bb>(b, n, rb, rows, cols, stream);
    });
}

cudaError_t launch_matmul(quant::Type t, const void *w, uint64_t rb, const float *x, float *y, int64_t rows,
                          int64_t cols, int64_t n_tok, cudaStream_t stream) {
    if (rows <= 0 || n_tok <= 0) return cudaSuccess;
    return dispatch(t, [&](auto tag) {
        using Tag = decltype(tag);
        return launch<Tag::type, Tag::bs, Tag::bb>(w, rb, x, y, rows, cols, n_tok, stream);
    });
}

}  // namespace moerun::kernels::cuda
