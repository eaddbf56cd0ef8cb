// CUDA error checking: every runtime call is checked, and a failure is reported with the
// statement, file, line and device (conventions.md), as a Status + message, never an abort.
#pragma once
#include <cuda_runtime.h>

#include <string>

namespace moerun::kernels::cuda {

inline std::string describe_error(cudaError_t err, const char *stmt, const char *file, int line) {
    int dev = -1;
    cudaGetDevice(&dev);
    return std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") in `" +
           stmt + "` at " + file + ":" + std::to_string(line) + " on device " + std::to_string(dev);
}

}  // namespace moerun::kernels::cuda

// Evaluates a CUDA runtime call; on failure stores the message in `err_out` (std::string&)
// and returns `ret` from the enclosing function.
#define MOERUN_CUDA_TRY(stmt, err_out, ret)                                                              \
    do {                                                                                                 \
        cudaError_t moerun_err_ = (stmt);                                                                \
        if (moerun_err_ != cudaSuccess) {                                                                \
            (err_out) = ::moerun::kernels::cuda::describe_error(moerun_err_, #stmt, __FILE__, __LINE__); \
            return (ret);                                                                                \
        }                                                                                                \
    } while (0)
