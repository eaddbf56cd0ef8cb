// main() of the gpu-labelled tests: runs doctest where a CUDA device is usable, else prints why
// and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE).
#pragma once
#include <cstdio>
#include <string>

#include <doctest/doctest.h>

#include "moerun/kernels/backend.h"

inline int gpu_test_main(int argc, char **argv) {
    std::string why;
    if (!moerun::kernels::make_backend("cuda", &why)) {
        std::printf("SKIP: %s\n", why.c_str());
        return 77;
    }
    doctest::Context ctx(argc, argv);
    return ctx.run();
}
