// Quantized matrix products on the device, reading GGUF blocks in place (mmv.cu).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "moerun/quant/types.h"

namespace moerun::kernels::cuda {

// True for the weight types launch_matmul takes: F32, F16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K.
bool has_device_matmul(quant::Type t);

// y[n_tok, rows] = x[n_tok, cols] . W^T, W = rows x cols of type t (row_bytes apart), all in device
// memory; cols a multiple of 32 and of the block size. One warp per weight row and up to 8 tokens
// per pass over it; F32 activations (no activation quantization).
cudaError_t launch_matmul(quant::Type t, const void *w, uint64_t row_bytes, const float *x, float *y,
                          int64_t rows, int64_t cols, int64_t n_tok, cudaStream_t stream);

// Up to kMaxBatch single-token products of same-shape, same-type matrices in one launch
// (y_m[rows] = W_m x_m; the matrices of one layer's experts). Passed by value to the kernel.
inline constexpr int kMaxBatch = 64;
struct MatBatch {
    const void *w[kMaxBatch];
    const float *x[kMaxBatch];
    float *y[kMaxBatch];
};
cudaError_t launch_matmul_batch(quant::Type t, const MatBatch &b, int n, uint64_t row_bytes, int64_t rows,
                                int64_t cols, cudaStream_t stream);

}  // namespace moerun::kernels::cuda
