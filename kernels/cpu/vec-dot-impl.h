// Internal: the ISA-specific vec-dot kernels that vec-dot.cpp dispatches to.
#pragma once
#include <cstdint>

#include "moerun/kernels/cpu/vec-dot.h"

namespace moerun::kernels::cpu::avx2 {
bool supported();  // the CPU has AVX2 and FMA
float dot_q4_k(const void *w, const void *act, int64_t n);
float dot_q6_k(const void *w, const void *act, int64_t n);
float dot_q8_0(const void *w, const void *act, int64_t n);
float dot_q4_0(const void *w, const void *act, int64_t n);
void dot_q4_k_x4(const void *w, const void *const act[4], int64_t n, float out[4]);
void dot_q8_0_x4(const void *w, const void *const act[4], int64_t n, float out[4]);
}  // namespace moerun::kernels::cpu::avx2
