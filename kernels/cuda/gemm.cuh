// Prefill products through cuBLAS: y[n_tok, rows] = x[n_tok, cols] . W^T with W in GGUF blocks,
// dequantized to F32 a tile of rows at a time into a fixed workspace, one SGEMM per tile. The
// workspaces are allocated on first use and their size is fixed (Gemm::kDeviceBytes), so a
// device memory budget can count them.
#pragma once
#include <cuda_runtime.h>

#include "cublas-api.h"

#include <cstdint>
#include <string>

#include "moerun/quant/types.h"

namespace moerun::kernels::cuda {

class Gemm {
  public:
    static constexpr int64_t kMinTokens = 32;         // fewer tokens: the matrix-vector kernels
    static constexpr size_t kTileBytes = 32u << 20;   // dequantized F32 rows per SGEMM
    static constexpr size_t kCublasBytes = 4u << 20;  // cuBLAS's own workspace (cublasSetWorkspace)
    static constexpr size_t kDeviceBytes = kTileBytes + kCublasBytes;

    Gemm() = default;
    ~Gemm() { release(); }
    // Destroys the cuBLAS handle and frees the workspaces (again: nothing). The owner calls it
    // while the stream the handle is bound to still exists.
    void release();
    Gemm(const Gemm &) = delete;
    Gemm &operator=(const Gemm &) = delete;

    // True when this product goes through cuBLAS here: enough tokens, a type with a device
    // dequantization, and a row that fits the tile (sizes within cuBLAS's int); and cuBLAS
    // loads (else the matrix-vector kernels do every product).
    bool wanted(quant::Type t, int64_t rows, int64_t cols, int64_t n_tok);
    // Queues the product on `stream`; false with *error set when a CUDA or cuBLAS call fails.
    bool run(quant::Type t, const void *w, uint64_t row_bytes, const float *x, float *y, int64_t rows,
             int64_t cols, int64_t n_tok, cudaStream_t stream, std::string *error);

  private:
    bool init(std::string *error);
    // Points the handle at `stream` with our workspace: cublasSetStream puts the handle back on
    // cuBLAS's own workspace pool (device memory outside the budget), so the workspace is set
    // again after it, each time the stream changes.
    bool bind(cudaStream_t stream, std::string *error);
    const CublasApi *api_ = nullptr;
    bool api_tried_ = false;
    cublasHandle_t handle_ = nullptr;
    cudaStream_t bound_ = nullptr;
    bool is_bound_ = false;
    float *tile_ = nullptr;
    void *cublas_ws_ = nullptr;
};

}  // namespace moerun::kernels::cuda
