// Scalar reference dequantization: blocks -> float.
//
// "Obviously correct" code, one element at a time, in the order of operations of ggml's and
// gguf-py's reference (e.g. Q4_K: (d * sc) * q - (dmin * m), each product rounded to float, no
// fused multiply-add), so that it is bit-exact against gguf.quants.dequantize
// (tests/oracle/test-quant-oracle.cpp). Fast kernels are checked against this.
//
// Rows: `src` holds n / block_size(t) consecutive blocks (any alignment), `dst` receives n floats.
// n must be a non-negative multiple of the block size, else std::invalid_argument is thrown; the
// message names the type. Types without a dequantizer (traits(t).has_dequant == false) throw too.
#pragma once

#include <cstdint>

#include "moerun/quant/blocks.h"
#include "moerun/quant/types.h"

namespace moerun::quant {

// Dispatches on t: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
// IQ4_NL, IQ4_XS.
void dequantize_row(Type t, const void *src, float *dst, int64_t n);

// Per type, same contract as dequantize_row.
void dequantize_row_f32(const void *src, float *dst, int64_t n);
void dequantize_row_f16(const void *src, float *dst, int64_t n);
void dequantize_row_bf16(const void *src, float *dst, int64_t n);
void dequantize_row_q4_0(const void *src, float *dst, int64_t n);
void dequantize_row_q4_1(const void *src, float *dst, int64_t n);
void dequantize_row_q5_0(const void *src, float *dst, int64_t n);
void dequantize_row_q5_1(const void *src, float *dst, int64_t n);
void dequantize_row_q8_0(const void *src, float *dst, int64_t n);
void dequantize_row_q2_k(const void *src, float *dst, int64_t n);
void dequantize_row_q3_k(const void *src, float *dst, int64_t n);
void dequantize_row_q4_k(const void *src, float *dst, int64_t n);
void dequantize_row_q5_k(const void *src, float *dst, int64_t n);
void dequantize_row_q6_k(const void *src, float *dst, int64_t n);
void dequantize_row_iq4_nl(const void *src, float *dst, int64_t n);
void dequantize_row_iq4_xs(const void *src, float *dst, int64_t n);

// One block -> y[0 .. block elements).
void dequantize_block(const BlockQ4_0 &b, float *y);    // y[32]
void dequantize_block(const BlockQ4_1 &b, float *y);    // y[32]
void dequantize_block(const BlockQ5_0 &b, float *y);    // y[32]
void dequantize_block(const BlockQ5_1 &b, float *y);    // y[32]
void dequantize_block(const BlockQ8_0 &b, float *y);    // y[32]
void dequantize_block(const BlockQ2_K &b, float *y);    // y[256]
void dequantize_block(const BlockQ3_K &b, float *y);    // y[256]
void dequantize_block(const BlockQ4_K &b, float *y);    // y[256]
void dequantize_block(const BlockQ5_K &b, float *y);    // y[256]
void dequantize_block(const BlockQ6_K &b, float *y);    // y[256]
void dequantize_block(const BlockIQ4_NL &b, float *y);  // y[32]
void dequantize_block(const BlockIQ4_XS &b, float *y);  // y[256]

}  // namespace moerun::quant
