// The CUDA backend loads cuBLAS with dlopen on first use (kernels/cuda/cublas-api.h) instead of
// linking it, so that the CPU pass does not carry its pages. This checks, without a GPU, that the
// library this build was compiled against is found and has every function the prefill products
// call, and that the moerun binary itself does not link it.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "cublas-api.h"

TEST_CASE("cuBLAS loads on demand with every function the prefill products use") {
    std::string why;
    const moerun::kernels::cuda::CublasApi *api = moerun::kernels::cuda::cublas_api(&why);
    INFO(why);
    REQUIRE(api != nullptr);
    CHECK((api->create != nullptr));
    CHECK((api->sgemm != nullptr));
    CHECK(std::string(api->status_string(CUBLAS_STATUS_SUCCESS)).size() > 0);
    CHECK(moerun::kernels::cuda::cublas_api(nullptr) == api);  // loaded once
}

TEST_CASE("the moerun binary does not link cuBLAS") {
    const std::string cmd = "ldd " MOERUN_BINARY_DIR "/tools/moerun 2>&1";
    std::FILE *p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[512];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    const int rc = pclose(p);
    INFO(out);
    if (rc != 0 || out.find("not a dynamic") != std::string::npos) return;  // nothing to look at
    CHECK(out.find("libcublas") == std::string::npos);
}
