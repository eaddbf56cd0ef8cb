// main() of the gpu-labelled tests: runs doctest where a CUDA device is usable, else prints why
// and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE).
// MOERUN_GPU_TEST_BACKEND=cpu runs the same tests with the CPU backend in the device's place
// (a self-comparison): it checks the tests' own code (sizes, guards, bounds) on a machine
// without a GPU, not CUDA.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <doctest/doctest.h>

#include "moerun/kernels/backend.h"

inline const char *gpu_test_backend_name() {
    const char *env = std::getenv("MOERUN_GPU_TEST_BACKEND");
    return env != nullptr && *env != '\0' ? env : "cuda";
}

// The backend under test (CUDA unless MOERUN_GPU_TEST_BACKEND says otherwise).
inline std::unique_ptr<moerun::kernels::Backend> gpu_backend() {
    return moerun::kernels::make_backend(gpu_test_backend_name());
}

inline int gpu_test_main(int argc, char **argv) {
    std::string why;
    if (!moerun::kernels::make_backend(gpu_test_backend_name(), &why)) {
        std::printf("SKIP: %s\n", why.c_str());
        return 77;
    }
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
