// The CUDA backend: device memory via cudaMalloc, one stream, device dequantization and
// matrix-product kernels.
// Everything is checked; a machine without a GPU or driver gets a clear reason from probe().
#include <cuda_runtime.h>

#include <memory>
#include <string>

#include "cuda-check.h"
#include "dequant.cuh"
#include "mmv.cuh"
#include "moerun/kernels/cuda-backend.h"

namespace moerun::kernels::cuda {
namespace {

class CudaBackend final : public Backend {
  public:
    CudaBackend() {
        if (cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) != cudaSuccess) stream_ = nullptr;
    }
    ~CudaBackend() override {
        if (stream_) cudaStreamDestroy(stream_);
    }

    std::string_view name() const override { return "cuda"; }

    DeviceInfo device_info() const override {
        DeviceInfo info;
        int dev = 0;
        cudaDeviceProp prop{};
        if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess) {
            info.name = prop.name;
            size_t free_b = 0, total_b = 0;
            if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
                info.free_memory = free_b;
                info.total_memory = total_b;
            }
        }
        return info;
    }

    void *alloc(size_t bytes) override {
        void *p = nullptr;
        cudaError_t err = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
        if (err != cudaSuccess) {
            error_ = describe_error(err, "cudaMalloc", __FILE__, __LINE__);
            return nullptr;
        }
        return p;
    }
    void free(void *ptr) override {
        if (ptr) cudaFree(ptr);
    }

    Status upload(void *dst, const void *src, size_t bytes) override {
        MOERUN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), error_,
                        Status::device_error);
        return Status::ok;
    }
    Status download(void *dst, const void *src, size_t bytes) override {
        MOERUN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), error_,
                        Status::device_error);
        MOERUN_CUDA_TRY(cudaStreamSynchronize(stream_), error_, Status::device_error);
        return Status::ok;
    }
    Status synchronize() override {
        MOERUN_CUDA_TRY(cudaStreamSynchronize(stream_), error_, Status::device_error);
        return Status::ok;
    }

    Status dequantize(quant::Type t, const void *src, float *dst, int64_t n) override {
        const auto &tr = quant::traits(t);
        if (!src || !dst || n < 0 || n % tr.block_size != 0) {
            error_ = "dequantize: bad arguments";
            return Status::invalid_argument;
        }
        if (!has_device_dequantize(t)) {
            error_ = "dequantize: no CUDA kernel for " + std::string(tr.name);
            return Status::unsupported;
        }
        MOERUN_CUDA_TRY(launch_dequantize(t, src, dst, n, stream_), error_, Status::device_error);
        return Status::ok;
    }

    Status matmul(quant::Type t, const void *w, const float *x, float *y, int64_t rows, int64_t cols,
                  int64_t n_tok) override {
        const auto &tr = quant::traits(t);
        if (!w || !x || !y || rows < 0 || n_tok < 0 || cols <= 0 || cols % 32 != 0 ||
            cols % tr.block_size != 0) {
            error_ = "matmul: bad arguments";
            return Status::invalid_argument;
        }
        if (!has_device_matmul(t)) {
            error_ = "matmul: no CUDA kernel for " + std::string(tr.name);
            return Status::unsupported;
        }
        const uint64_t rb = static_cast<uint64_t>(cols) / tr.block_size * tr.type_size;
        MOERUN_CUDA_TRY(launch_matmul(t, w, rb, x, y, rows, cols, n_tok, stream_), error_,
                        Status::device_error);
        return Status::ok;
    }

    std::string last_error() const override { return error_; }

  private:
    cudaStream_t stream_ = nullptr;
    std::string error_;
};

}  // namespace

bool probe(std::string *reason) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        if (reason)
            *reason = std::string("no usable CUDA device (") +
                      (err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0") + ")";
        return false;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        if (reason) *reason = "CUDA device 0 could not be queried";
        return false;
    }
    if (reason)
        *reason = std::string(prop.name) + ", sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
                  ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB";
    return true;
}

std::unique_ptr<Backend> make_backend() {
    return std::make_unique<CudaBackend>();
}

}  // namespace moerun::kernels::cuda
