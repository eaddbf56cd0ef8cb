// RoPE with frequency scaling: linear (position interpolation) and YaRN, as ggml defines them.
//
// For pair i of a head (dims 2i, 2i+1, or i, i + n_rot/2 for NeoX), with theta_e = pos * base^(-2i/n_rot)
// (built by repeated multiplication, as ggml does):
//   theta_i = freq_scale * theta_e                                          (interpolated)
//   with YaRN (ext_factor != 0): mix = ramp(i) * ext_factor,
//     theta = theta_i * (1 - mix) + theta_e * mix, ramp(i) = 1 - clamp((i - low) / max(0.001, high - low), 0,
//     1) and the rotation is scaled by mscale = attn_factor * (1 + 0.1 ln(1 / freq_scale))
//   without: the rotation is scaled by attn_factor.
// low/high are the correction dims of yarn_corr_dims().
#pragma once

namespace moerun::kernels::cpu {

struct RopeScaling {
    float freq_scale = 1.0f;   // 1 / rope.scaling.factor
    float ext_factor = 0.0f;   // YaRN extrapolation mix: 1 for YaRN, 0 for linear scaling
    float attn_factor = 1.0f;  // magnitude scale of the rotation
    float corr_low = 0.0f, corr_high = 0.0f;
};

// YaRN correction dims for n_rot rotated dims, trained context n_ctx_orig, beta_fast/beta_slow
// (ggml's defaults 32 and 1): [max(0, floor(d(beta_fast))), min(n_rot - 1, ceil(d(beta_slow)))],
// d(b) = n_rot * ln(n_ctx_orig / (2 pi b)) / (2 ln base).
void yarn_corr_dims(int n_rot, int n_ctx_orig, float freq_base, float beta_fast, float beta_slow,
                    float dims[2]);

// Rotates x [n_head, head_dim] in place at position pos.
void rope_scaled(float *x, int n_head, int head_dim, int n_rot, float pos, float freq_base, bool neox,
                 const RopeScaling &s);

}  // namespace moerun::kernels::cpu
