// cuBLAS, loaded on first use (dlopen) rather than linked: the library and its libcublasLt are
// hundreds of MiB, and a process that never multiplies a prompt on the GPU (the CPU pass, which
// every build carries CUDA for) must not pay their resident pages against its memory budget.
#pragma once
#include <cublas_v2.h>

#include <string>

namespace moerun::kernels::cuda {

struct CublasApi {
    decltype(&cublasCreate_v2) create;
    decltype(&cublasDestroy_v2) destroy;
    decltype(&cublasSetStream_v2) set_stream;
    decltype(&cublasSetWorkspace_v2) set_workspace;
    decltype(&cublasSgemm_v2) sgemm;
    decltype(&cublasGetStatusString) status_string;
};

// The loaded functions, or null with *why set (no libcublas found, a symbol missing). Loads once
// per process; thread-safe.
const CublasApi *cublas_api(std::string *why);

}  // namespace moerun::kernels::cuda
