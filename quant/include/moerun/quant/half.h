// Scalar, exact conversions between float and the two 16-bit float formats of GGUF tensors.
//
//   fp16: IEEE binary16 (1 sign, 5 exponent, 10 mantissa bits), the scale type of every block.
//   bf16: bfloat16, the top 16 bits of a binary32.
//
// Widening (16 -> 32) is exact for every bit pattern, NaN payloads included (no quieting), so
// fp32_to_fp16(fp16_to_fp32(h)) == h for all 65536 values of h.
// Narrowing rounds to nearest, ties to even:
//   fp32_to_fp16: subnormal halves produced exactly; |x| >= 65520 gives inf; NaN keeps its sign and
//     the top 10 payload bits, and becomes 0x7c01 (| sign) when those are all zero (as numpy does).
//   fp32_to_bf16: the ggml / gguf-py rule: NaN -> (bits >> 16) | 0x40 (quiet, sign and top payload
//     kept); everything else rounds to nearest even, overflowing to inf.
#pragma once

#include <cstdint>

namespace moerun::quant {

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);

float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

}  // namespace moerun::quant
