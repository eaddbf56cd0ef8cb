// CPU backend: memory is plain host memory; dequantize runs the scalar reference of quant/.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>

#include "cpu-backend.h"
#include "moerun/kernels/cpu/ops.h"
#include "moerun/kernels/cpu/thread-pool.h"
#include "moerun/quant/dequant.h"

namespace moerun::kernels {
namespace {

class CpuBackend final : public Backend {
  public:
    std::string_view name() const override { return "cpu"; }

    DeviceInfo device_info() const override {
        DeviceInfo info;
        info.name = "CPU (" + std::to_string(std::thread::hardware_concurrency()) + " threads)";
        return info;
    }

    void *alloc(size_t bytes) override { return std::malloc(bytes == 0 ? 1 : bytes); }
    void free(void *ptr) override { std::free(ptr); }

    Status upload(void *dst, const void *src, size_t bytes) override { return copy(dst, src, bytes); }
    Status download(void *dst, const void *src, size_t bytes) override { return copy(dst, src, bytes); }
    Status synchronize() override { return Status::ok; }

    Status dequantize(quant::Type t, const void *src, float *dst, int64_t n) override {
        const auto &tr = quant::traits(t);
        if (!src || !dst || n < 0 || n % tr.block_size != 0)
            return fail(Status::invalid_argument, "dequantize: bad arguments");
        if (!tr.has_dequant)
            return fail(Status::unsupported, "dequantize: no kernel for " + std::string(tr.name));
        try {
            quant::dequantize_row(t, src, dst, n);
        } catch (const std::exception &e) {
            return fail(Status::invalid_argument, e.what());
        }
        return Status::ok;
    }

    Status matmul(quant::Type t, const void *w, const float *x, float *y, int64_t rows, int64_t cols,
                  int64_t n_tok) override {
        const auto &tr = quant::traits(t);
        if (!w || !x || !y || rows < 0 || n_tok < 0 || cols <= 0 || cols % 32 != 0 ||
            cols % tr.block_size != 0)
            return fail(Status::invalid_argument, "matmul: bad arguments");
        if (!tr.has_dequant)
            return fail(Status::unsupported, "matmul: no kernel for " + std::string(tr.name));
        if (rows == 0 || n_tok == 0) return Status::ok;
        try {
            if (!pool_)
                pool_ = std::make_unique<cpu::ThreadPool>(
                    static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
            cpu::matmul(*pool_, t, w, x, y, rows, cols, n_tok);
        } catch (const std::exception &e) {
            return fail(Status::invalid_argument, e.what());
        }
        return Status::ok;
    }

    std::string last_error() const override { return error_; }

  private:
    std::unique_ptr<cpu::ThreadPool> pool_;  // made by the first matmul
    Status copy(void *dst, const void *src, size_t bytes) {
        if ((!dst || !src) && bytes) return fail(Status::invalid_argument, "copy: null pointer");
        if (bytes) std::memcpy(dst, src, bytes);
        return Status::ok;
    }
    Status fail(Status s, std::string msg) {
        error_ = std::move(msg);
        return s;
    }
    std::string error_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
    return std::make_unique<CpuBackend>();
}

}  // namespace moerun::kernels
