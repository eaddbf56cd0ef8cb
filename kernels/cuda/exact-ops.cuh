// Float arithmetic with every rounding fixed, the same on the device and on the host: the CUDA
// kernels whose results the host reproduces bit for bit (the decode expert FFN, whose rows the CPU
// fallback computes in the device's order: kernels/cpu/device-order.cpp) use these instead of
// operators that a compiler may fuse into an FMA, and exp_rn instead of a libm expf (CUDA's and
// glibc's differ in the last bit).
//
// Device: the _rn intrinsics, which nvcc never contracts. Host: plain operators, so a host file
// that includes this header must be compiled with -ffp-contract=off (kernels/CMakeLists.txt sets
// it for every file that does); fma_rn is the correctly rounded fmaf on both.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define MOERUN_HD __host__ __device__ __forceinline__
#else
#define MOERUN_HD inline
#endif

namespace moerun::kernels::cuda {

MOERUN_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

MOERUN_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

MOERUN_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

MOERUN_HD float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

// a * b + c rounded once.
MOERUN_HD float fma_rn(float a, float b, float c) {
#ifdef __CUDA_ARCH__
    return __fmaf_rn(a, b, c);
#else
    return __builtin_fmaf(a, b, c);
#endif
}

MOERUN_HD float bits_to_float(uint32_t bits) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(bits);
#else
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
#endif
}

// e^x within 2 ulp of the exact value for normal results, from basic operations only: x = n ln2 + r
// with |r| <= ln2 / 2 (n rounded to nearest), e^r by its Taylor series to degree 7 (truncation
// below 0.05 ulp), times 2^n applied as two exact powers of two so no factor leaves the normal range.
MOERUN_HD float exp_rn(float x) {
    if (x != x) return x;                              // NaN
    if (x > 88.8f) return bits_to_float(0x7f800000u);  // inf (e^88.8 > FLT_MAX)
    if (x < -104.0f) return 0.0f;                      // below half the least subnormal
    const float t = mul_rn(x, 1.44269502f);            // x / ln2
    const int n =
        static_cast<int>(t >= 0 ? add_rn(t, 0.5f) : sub_rn(t, 0.5f));  // about to nearest; |n| <= 150
    const float fn = static_cast<float>(n);
    float r = fma_rn(fn, -0.693145751953125f, x);  // ln2 split: high part exact in 17 bits
    r = fma_rn(fn, -1.42860677e-06f, r);           // low part
    float p = 1.98412698e-04f;                     // 1/7!
    p = fma_rn(p, r, 1.38888889e-03f);             // 1/6!
    p = fma_rn(p, r, 8.33333377e-03f);             // 1/5!
    p = fma_rn(p, r, 4.16666679e-02f);             // 1/4!
    p = fma_rn(p, r, 1.66666672e-01f);             // 1/3!
    p = fma_rn(p, r, 0.5f);
    p = fma_rn(p, r, 1.0f);
    p = fma_rn(p, r, 1.0f);
    const int a = n / 2, b = n - a;  // each in [-75, 75]
    return mul_rn(mul_rn(p, bits_to_float(static_cast<uint32_t>(a + 127) << 23)),
                  bits_to_float(static_cast<uint32_t>(b + 127) << 23));
}

// SwiGLU of one element: silu(g) * u = g / (1 + e^-g) * u.
MOERUN_HD float swiglu_rn(float g, float u) {
    return mul_rn(div_rn(g, add_rn(1.0f, exp_rn(-g))), u);
}

}  // namespace moerun::kernels::cuda
