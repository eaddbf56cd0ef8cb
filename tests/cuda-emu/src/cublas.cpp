// Emulated cuBLAS: SGEMM as the library defines it (column-major, op(A) m x k, op(B) k x n,
// C = alpha op(A) op(B) + beta C, C not read when beta is 0), queued on the handle's stream as a
// kernel. Arguments are checked as cuBLAS checks them (dimensions, leading dimensions), the
// matrices must be device memory, whole, and the handle must have a workspace of the caller's
// (cublasSetWorkspace after the last cublasSetStream): moerun allocates nothing on the device
// beyond its budget.
#include <string>

#include "cublas_v2.h"
#include "emu.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
    // A workspace of the caller's is set (cublasSetWorkspace). Without one, cuBLAS takes its own
    // pool of device memory, which no budget of the caller's counts; cublasSetStream goes back
    // to that pool ("unconditionally resets the cuBLAS library workspace", cuBLAS's manual).
    bool caller_workspace = false;
};

namespace {

bool whole_device(const void *p, size_t bytes, const char *what) {
    std::string err;
    const moerun_emu::Memory m = moerun_emu::classify(p, bytes, &err);
    if (m == moerun_emu::Memory::device && err.empty()) return true;
    std::fprintf(stderr, "moerun CUDA emulator: cublasSgemm: %s: %s\n", what,
                 err.empty() ? "not device memory" : err.c_str());
    return false;
}

// Bytes a column-major matrix of `rows` x `cols` with leading dimension ld spans.
size_t span(int rows, int cols, int ld) {
    if (rows == 0 || cols == 0) return 0;
    return (static_cast<size_t>(cols - 1) * static_cast<size_t>(ld) + static_cast<size_t>(rows)) *
           sizeof(float);
}

}  // namespace

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
    if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    handle->caller_workspace = false;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t bytes) {
    if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes > 0 && !whole_device(workspace, bytes, "workspace")) return CUBLAS_STATUS_INVALID_VALUE;
    handle->caller_workspace = true;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                              int m, int n, int k, const float *alpha, const float *A, int lda,
                              const float *B, int ldb, const float *beta, float *C, int ldc) {
    if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    const int a_rows = ta ? k : m, b_rows = tb ? n : k;
    if (m < 0 || n < 0 || k < 0 || lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) ||
        ldc < std::max(1, m) || alpha == nullptr || beta == nullptr)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if (!handle->caller_workspace) {
        std::fprintf(stderr,
                     "moerun CUDA emulator: cublasSgemm: the handle has no workspace of the caller's "
                     "(cuBLAS would take device memory of its own; cublasSetStream drops a workspace "
                     "set before it)\n");
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    if ((k > 0 && (!whole_device(A, span(a_rows, ta ? m : k, lda), "A") ||
                   !whole_device(B, span(b_rows, tb ? k : n, ldb), "B"))) ||
        !whole_device(C, span(m, n, ldc), "C"))
        return CUBLAS_STATUS_INVALID_VALUE;
    const float a = *alpha, b = *beta;  // host pointer mode: read now
    moerun_emu::Op op;
    op.kind = moerun_emu::Op::Kind::kernel;
    op.identity = "cublasSgemm";
    op.run = [=] {
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < m; ++i) {
                float acc = 0.0f;
                for (int l = 0; l < k; ++l) {
                    const float av =
                        ta ? A[l + static_cast<size_t>(i) * lda] : A[i + static_cast<size_t>(l) * lda];
                    const float bv =
                        tb ? B[j + static_cast<size_t>(l) * ldb] : B[l + static_cast<size_t>(j) * ldb];
                    acc += av * bv;
                }
                float &c = C[i + static_cast<size_t>(j) * ldc];
                c = b == 0.0f ? a * acc : a * acc + b * c;
            }
    };
    return moerun_emu::enqueue(handle->stream, std::move(op)) == cudaSuccess ? CUBLAS_STATUS_SUCCESS
                                                                             : CUBLAS_STATUS_EXECUTION_FAILED;
}

const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
        case CUBLAS_STATUS_SUCCESS:
            return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED:
            return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_INVALID_VALUE:
            return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_EXECUTION_FAILED:
            return "CUBLAS_STATUS_EXECUTION_FAILED";
        default:
            return "CUBLAS_STATUS_UNKNOWN";
    }
}
