// Dot products of quantized weight rows with activations, the way llama.cpp's CPU backend
// defines them: the activation row is first converted to the weight type's "vec-dot type"
// (Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants and IQ4_XS, fp16
// for F16, bf16 for BF16, F32 for F32), then each weight block is multiplied with integer arithmetic.
// Matching that definition keeps moerun's logits within float-rounding of llama.cpp's, and the
// integer inner loops are what make quantized products fast.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "moerun/quant/types.h"

namespace moerun::kernels::cpu {

// Activation blocks (our own in-memory layout; never stored in files).
struct ActQ8_0 {
    float d;        // scale, rounded to fp16 precision (as ggml stores it)
    int32_t s128;   // 128 * sum(qs): takes out the +128 of kernels that make the weights unsigned
    int8_t qs[32];  // [32]
};
struct ActQ8_1 {
    float d;        // scale, fp16 precision
    float s;        // d * sum(qs), fp16 precision
    int8_t qs[32];  // [32]
};
struct ActQ8_K {
    float d;            // scale
    int8_t qs[256];     // [256]
    int16_t bsums[16];  // sums of qs in groups of 16
};

// Bytes needed to hold the converted activation of n elements for weights of type t.
size_t act_bytes(quant::Type t, int64_t n);
// Converts x[n] into the vec-dot representation for weights of type t (dst: act_bytes(t, n)).
void quantize_act(quant::Type t, const float *x, void *dst, int64_t n);
// Dot of one weight row (n elements of type t, GGUF blocks) with a converted activation row.
float vec_dot(quant::Type t, const void *w_row, const void *act, int64_t n);
// out[t] = vec_dot(t, w_row, act[t], n) for four activation rows, bit-identical to four calls;
// faster where a kernel reuses each unpacked weight block (see vec_dot_rows).
void vec_dot_x4(quant::Type t, const void *w_row, const void *const act[4], int64_t n, float out[4]);
// The most activation rows vec_dot_rows takes at once.
inline constexpr int kMaxDotRows = 8;
// out[k] = vec_dot(t, w_row, act[k], n) for k < n_act, bit-identical to n_act separate calls;
// each weight block is unpacked once for up to kMaxDotRows rows where a kernel allows it.
void vec_dot_rows(quant::Type t, const void *w_row, const void *const *act, int n_act, int64_t n, float *out);
// y[k * ldy + r] = vec_dot(t, w + r * rb, act + k * ab, n) for rows r < n_rows and activation
// rows k < n_act (consecutive, ab bytes apart), with the results of vec_dot_rows.
void vec_dot_tile(quant::Type t, const void *w, size_t rb, int64_t n_rows, const void *act, size_t ab,
                  int64_t n_act, int64_t n, float *y, int64_t ldy);
// Instruction sets of the kernels. The default is the best the CPU has, or MOERUN_CPU_ISA
// (generic | avx2 | avx512) when set; set_isa (tests) picks one, capped at what the CPU has.
enum class Isa { generic, avx2, avx512 };
Isa best_isa();
Isa active_isa();
void set_isa(Isa isa);
const char *isa_name(Isa isa);
// The portable version of vec_dot (the reference for the ISA-specific kernels).
float vec_dot_generic(quant::Type t, const void *w_row, const void *act, int64_t n);
// vec_dot_generic for n_act activation rows, bit-identical to n_act calls; each weight block is
// unpacked once for up to kMaxDotRows rows.
void vec_dot_generic_rows(quant::Type t, const void *w_row, const void *const *act, int n_act, int64_t n,
                          float *out);

}  // namespace moerun::kernels::cpu
