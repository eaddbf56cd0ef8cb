// Scalar-clear CPU kernels; loops are written so the compiler vectorises them (-O2/-O3).
#include <algorithm>
#include <cmath>
#include <vector>

#include "moerun/kernels/cpu/ops.h"
#include "moerun/kernels/cpu/rope.h"
#include "moerun/kernels/cpu/vec-dot.h"
#include "vec-dot-impl.h"

namespace moerun::kernels::cpu {

float dot(const float *a, const float *b, int64_t n) {
    return vec_dot(quant::Type::F32, a, b, n);
}

void axpy(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void attention_head(const float *q, const float *k, const float *v, int64_t stride, int64_t n_pos, int64_t hd,
                    float scale, float *scores, float *out) {
    if (active_isa() == Isa::avx512 && avx512::attention_head(q, k, v, stride, n_pos, hd, scale, scores, out))
        return;
    for (int64_t p = 0; p < n_pos; ++p) scores[p] = dot(q, k + p * stride, hd) * scale;
    softmax(scores, n_pos);
    for (int64_t p = 0; p < n_pos; ++p) axpy(scores[p], v + p * stride, out, hd);
}

void matmul(ThreadPool &pool, quant::Type type, const void *w, const float *x, float *y, int64_t rows,
            int64_t cols, int64_t n_tok) {
    const uint64_t rb = *quant::row_bytes(type, static_cast<uint64_t>(cols));
    const size_t ab = act_bytes(type, cols);
    // Convert every token's activation once to the vec-dot type of the weights (in parallel
    // when there are several tokens).
    thread_local std::vector<uint8_t> act;
    act.resize(ab * static_cast<size_t>(n_tok));
    uint8_t *a = act.data();
    const auto quantize = [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t)
            quantize_act(type, x + t * cols, a + static_cast<size_t>(t) * ab, cols);
    };
    if (n_tok >= 4)
        pool.parallel_for(n_tok, quantize, 2);
    else
        quantize(0, n_tok, 0);
    const auto *base = static_cast<const uint8_t *>(w);
    // Tiles of kRowTile weight rows x kTokTile tokens keep both operands in L2; within a tile,
    // each weight row meets up to kMaxDotRows tokens per pass (vec_dot_rows).
    constexpr int64_t kRowTile = 16, kTokTile = 64;
    pool.parallel_for(
        rows,
        [&](int64_t r0, int64_t r1, int) {
            const int64_t row_tile = n_tok <= kTokTile ? r1 - r0 : kRowTile;  // one call where one tile
            for (int64_t rt = r0; rt < r1; rt += row_tile) {
                const int64_t re = std::min(r1, rt + row_tile);
                for (int64_t t0 = 0; t0 < n_tok; t0 += kTokTile)
                    vec_dot_tile(type, base + static_cast<uint64_t>(rt) * rb, rb, re - rt,
                                 a + static_cast<size_t>(t0) * ab, ab, std::min(kTokTile, n_tok - t0), cols,
                                 y + t0 * rows + rt, rows);
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
    // Unscaled: freq_scale 1 and attn_factor 1 multiply exactly, so this is the plain rotation.
    rope_scaled(x, n_head, head_dim, n_rot, pos, freq_base, neox, RopeScaling{});
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
