// CPU backend: memory is plain host memory; dequantize runs the scalar reference of quant/.
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "cpu-backend.h"
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

    std::string last_error() const override { return error_; }

  private:
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
