// Prefill products through cuBLAS (gemm.cuh). Column-major view of the row-major operands:
// W [rows, cols] is W^T [cols, rows] (ld cols), x [n_tok, cols] is x^T [cols, n_tok] (ld cols), and
// y [n_tok, rows] is y^T [rows, n_tok] (ld rows), so y^T = (W^T)^T x^T is one SGEMM with op(A) = T;
// a tile of rows r0.. writes y^T's rows r0.., i.e. y + r0 with the same ld.
#include <algorithm>
#include <string>

#include "cuda-check.h"
#include "dequant.cuh"
#include "gemm.cuh"

namespace moerun::kernels::cuda {

namespace {
std::string cublas_error(const CublasApi &api, cublasStatus_t st, const char *what) {
    return std::string("cuBLAS error ") + std::to_string(static_cast<int>(st)) + " (" +
           api.status_string(st) + ") in " + what;
}
}  // namespace

void Gemm::release() {
    if (handle_) api_->destroy(handle_);
    if (tile_) cudaFree(tile_);
    if (cublas_ws_) cudaFree(cublas_ws_);
    handle_ = nullptr, tile_ = nullptr, cublas_ws_ = nullptr;
    bound_ = nullptr, is_bound_ = false;
}

bool Gemm::wanted(quant::Type t, int64_t rows, int64_t cols, int64_t n_tok) {
    constexpr int64_t kIntMax = 0x7fffffff;
    if (n_tok < kMinTokens || !has_device_dequantize(t) ||
        cols > static_cast<int64_t>(kTileBytes / sizeof(float)) || rows > kIntMax || n_tok > kIntMax)
        return false;
    if (!api_tried_) {
        api_tried_ = true;
        api_ = cublas_api(nullptr);
    }
    return api_ != nullptr;
}

bool Gemm::init(std::string *error) {
    if (handle_) return true;
    if (api_ == nullptr) {
        *error = "cuBLAS is not loaded";
        return false;
    }
    cudaError_t err = tile_ ? cudaSuccess : cudaMalloc(reinterpret_cast<void **>(&tile_), kTileBytes);
    if (err == cudaSuccess && !cublas_ws_) err = cudaMalloc(&cublas_ws_, kCublasBytes);
    if (err != cudaSuccess) {
        *error = describe_error(err, "cudaMalloc (cuBLAS workspaces)", __FILE__, __LINE__);
        return false;
    }
    cublasHandle_t h = nullptr;
    if (const cublasStatus_t st = api_->create(&h); st != CUBLAS_STATUS_SUCCESS) {
        *error = cublas_error(*api_, st, "cublasCreate");
        return false;
    }
    handle_ = h;
    return true;
}

bool Gemm::bind(cudaStream_t stream, std::string *error) {
    if (is_bound_ && stream == bound_) return true;
    is_bound_ = false;
    if (const cublasStatus_t st = api_->set_stream(handle_, stream); st != CUBLAS_STATUS_SUCCESS) {
        *error = cublas_error(*api_, st, "cublasSetStream");
        return false;
    }
    if (const cublasStatus_t st = api_->set_workspace(handle_, cublas_ws_, kCublasBytes);
        st != CUBLAS_STATUS_SUCCESS) {
        *error = cublas_error(*api_, st, "cublasSetWorkspace");
        return false;
    }
    bound_ = stream;
    is_bound_ = true;
    return true;
}

bool Gemm::run(quant::Type t, const void *w, uint64_t row_bytes, const float *x, float *y, int64_t rows,
               int64_t cols, int64_t n_tok, cudaStream_t stream, std::string *error) {
    if (rows <= 0 || n_tok <= 0) return true;
    if (!init(error) || !bind(stream, error)) return false;
    const int64_t tile_rows = std::max<int64_t>(1, static_cast<int64_t>(kTileBytes / sizeof(float)) / cols);
    const float one = 1.0f, zero = 0.0f;
    for (int64_t r0 = 0; r0 < rows; r0 += tile_rows) {
        const int64_t m = std::min(tile_rows, rows - r0);
        const auto *src = static_cast<const uint8_t *>(w) + static_cast<uint64_t>(r0) * row_bytes;
        const float *a = tile_;
        if (t == quant::Type::F32) {
            a = reinterpret_cast<const float *>(src);  // used in place
        } else if (const cudaError_t err = launch_dequantize(t, src, tile_, m * cols, stream);
                   err != cudaSuccess) {
            *error = describe_error(err, "launch_dequantize (GEMM tile)", __FILE__, __LINE__);
            return false;
        }
        const cublasStatus_t st =
            api_->sgemm(handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m), static_cast<int>(n_tok),
                        static_cast<int>(cols), &one, a, static_cast<int>(cols), x, static_cast<int>(cols),
                        &zero, y + r0, static_cast<int>(rows));
        if (st != CUBLAS_STATUS_SUCCESS) {
            *error = cublas_error(*api_, st, "cublasSgemm");
            return false;
        }
    }
    return true;
}

}  // namespace moerun::kernels::cuda
