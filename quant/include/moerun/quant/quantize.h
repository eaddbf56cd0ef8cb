// Reference quantization: float -> blocks.
//
// F32 (copy), F16 and BF16 (round to nearest even, half.h), and the legacy types Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0 follow ggml's reference rounding rules exactly (quantize_row_*_ref; gguf-py's
// gguf.quants.quantize implements the same rules and is the oracle: bit-exact there).
//
// Q4_K, Q5_K, Q6_K use moerun's own search (quantize-k.cpp): per sub-block, a scan of candidate
// grids around the min/max (or max-abs) fit, each refined by weighted least squares; then the
// sub-block scales are quantized to the 6-bit (Q4_K, Q5_K) or int8 (Q6_K) layout under fp16
// super-scales, and the quants recomputed against the stored scales. Not bit-identical to
// llama-quantize's output, but of the same kind and quality (see tests/unit/test-quant.cpp for the
// error bounds).
//
// Inputs are expected finite; NaN / inf produce some valid block (no undefined behaviour), not a
// meaningful one. Very large values overflow the fp16 scales (legacy: to inf, as ggml; K-quants:
// clamped to 65504).
//
// `dst` receives row_bytes(t, n) bytes (any alignment); n must be a non-negative multiple of the
// block size, else std::invalid_argument (the message names the type), as for a type that cannot
// be quantized.
#pragma once

#include <cstddef>
#include <cstdint>

#include "moerun/quant/blocks.h"
#include "moerun/quant/types.h"

namespace moerun::quant {

// Returns the number of bytes written.
size_t quantize_row(Type t, const float *src, void *dst, int64_t n);

// Whether quantize_row supports t.
bool can_quantize(Type t);

// Per type, same contract as quantize_row.
void quantize_row_f32(const float *src, void *dst, int64_t n);
void quantize_row_f16(const float *src, void *dst, int64_t n);
void quantize_row_bf16(const float *src, void *dst, int64_t n);
void quantize_row_q4_0(const float *src, void *dst, int64_t n);
void quantize_row_q4_1(const float *src, void *dst, int64_t n);
void quantize_row_q5_0(const float *src, void *dst, int64_t n);
void quantize_row_q5_1(const float *src, void *dst, int64_t n);
void quantize_row_q8_0(const float *src, void *dst, int64_t n);
void quantize_row_q4_k(const float *src, void *dst, int64_t n);
void quantize_row_q5_k(const float *src, void *dst, int64_t n);
void quantize_row_q6_k(const float *src, void *dst, int64_t n);

// One block from x[0 .. block elements).
void quantize_block(const float *x, BlockQ4_0 &b);  // x[32]
void quantize_block(const float *x, BlockQ4_1 &b);  // x[32]
void quantize_block(const float *x, BlockQ5_0 &b);  // x[32]
void quantize_block(const float *x, BlockQ5_1 &b);  // x[32]
void quantize_block(const float *x, BlockQ8_0 &b);  // x[32]
void quantize_block(const float *x, BlockQ4_K &b);  // x[256]
void quantize_block(const float *x, BlockQ5_K &b);  // x[256]
void quantize_block(const float *x, BlockQ6_K &b);  // x[256]

}  // namespace moerun::quant
