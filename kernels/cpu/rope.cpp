// RoPE with linear or YaRN frequency scaling (see rope.h).
#include "moerun/kernels/cpu/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace moerun::kernels::cpu {

namespace {

float corr_dim(int n_rot, int n_ctx_orig, float beta, float base) {
    return static_cast<float>(n_rot) *
           std::log(static_cast<float>(n_ctx_orig) / (beta * 2.0f * std::numbers::pi_v<float>)) /
           (2.0f * std::log(base));
}

float ramp(float low, float high, int i) {
    const float y = (static_cast<float>(i) - low) / std::max(0.001f, high - low);
    return 1.0f - std::min(1.0f, std::max(0.0f, y));
}

}  // namespace

void yarn_corr_dims(int n_rot, int n_ctx_orig, float freq_base, float beta_fast, float beta_slow,
                    float dims[2]) {
    const float start = std::floor(corr_dim(n_rot, n_ctx_orig, beta_fast, freq_base));
    const float end = std::ceil(corr_dim(n_rot, n_ctx_orig, beta_slow, freq_base));
    dims[0] = std::max(0.0f, start);
    dims[1] = std::min(static_cast<float>(n_rot - 1), end);
}

void rope_scaled(float *x, int n_head, int head_dim, int n_rot, float pos, float freq_base, bool neox,
                 const RopeScaling &s) {
    const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
    const int half = n_rot / 2;
    float mscale = s.attn_factor;
    if (s.ext_factor != 0.0f) mscale *= 1.0f + 0.1f * std::log(1.0f / s.freq_scale);
    // theta_e = pos * base^(-2i/n_rot), built by repeated multiplication as ggml does, so that
    // angles round identically to llama.cpp's.
    float theta_e = pos;
    for (int i = 0; i < half; ++i, theta_e *= theta_scale) {
        const float theta_i = s.freq_scale * theta_e;
        float theta = theta_i;
        if (s.ext_factor != 0.0f) {
            const float mix = ramp(s.corr_low, s.corr_high, i) * s.ext_factor;
            theta = theta_i * (1.0f - mix) + theta_e * mix;
        }
        const float c = std::cos(theta) * mscale, sn = std::sin(theta) * mscale;
        for (int h = 0; h < n_head; ++h) {
            float *v = x + static_cast<long>(h) * head_dim;
            const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * sn;
            v[b] = x0 * sn + x1 * c;
        }
    }
}

}  // namespace moerun::kernels::cpu
