// Scalar-clear CPU kernels; loops are written so the compiler vectorises them (-O2/-O3).
#include <algorithm>
#include <cmath>
#include <vector>

#include "moerun/kernels/cpu/ops.h"
#include "moerun/kernels/cpu/vec-dot.h"

namespace moerun::kernels::cpu {

float dot(const float *a, const float *b, int64_t n) {
    return vec_dot(quant::Type::F32, a, b, n);
}

void axpy(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void matmul(ThreadPool &pool, quant::Type type, const void *w, const float *x, float *y, int64_t rows,
            int64_t cols, int64_t n_tok) {
    const uint64_t rb = *quant::row_bytes(type, static_cast<uint64_t>(cols));
    const size_t ab = act_bytes(type, cols);
    // Convert every token's activation once to the vec-dot type of the weights.
    thread_local std::vector<uint8_t> act;
    act.resize(ab * static_cast<size_t>(n_tok));
    for (int64_t t = 0; t < n_tok; ++t)
        quantize_act(type, x + t * cols, act.data() + static_cast<size_t>(t) * ab, cols);
    const uint8_t *a = act.data();
    const auto *base = static_cast<const uint8_t *>(w);
    pool.parallel_for(
        rows,
        [&](int64_t r0, int64_t r1, int) {
            for (int64_t r = r0; r < r1; ++r) {
                const uint8_t *row = base + static_cast<uint64_t>(r) * rb;
                int64_t t = 0;
                for (; t + 4 <= n_tok; t += 4) {  // four tokens per pass over the weight row
                    const void *acts[4];
                    float out[4];
                    for (int k = 0; k < 4; ++k) acts[k] = a + static_cast<size_t>(t + k) * ab;
                    vec_dot_x4(type, row, acts, cols, out);
                    for (int k = 0; k < 4; ++k) y[(t + k) * rows + r] = out[k];
                }
                for (; t < n_tok; ++t)
                    y[t * rows + r] = vec_dot(type, row, a + static_cast<size_t>(t) * ab, cols);
            }
        },
        8);
}

void rms_norm(const float *x, const float *weight, float *out, int64_t n, float eps) {
    // Same rounding steps as ggml: squares in float, summed in double; mean and scale in float;
    // x * scale rounded before the weight multiplies it. Normalised activations are quantized to
    // 8 bits next, so a last-bit difference here would move values across rounding steps.
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i] * x[i]);
    const float mean = static_cast<float>(ss / static_cast<double>(n));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n; ++i) {
        const float v = x[i] * scale;
        out[i] = weight ? v * weight[i] : v;
    }
}

void rope(float *x, int n_head, int head_dim, int n_rot, float pos, float freq_base, bool neox) {
    // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication as ggml does, so that
    // angles round identically to llama.cpp's.
    const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
    const int half = n_rot / 2;
    float theta = pos;
    for (int i = 0; i < half; ++i, theta *= theta_scale) {
        const float c = std::cos(theta), s = std::sin(theta);
        for (int h = 0; h < n_head; ++h) {
            float *v = x + static_cast<int64_t>(h) * head_dim;
            const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void softmax(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace moerun::kernels::cpu
