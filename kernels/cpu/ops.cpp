// Scalar-clear CPU kernels; loops are written so the compiler vectorises them (-O2/-O3).
#include <algorithm>
#include <cmath>
#include <limits>
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

void matmul(ThreadPool &pool, quant::Type type, const void *w, const float *x, float *y, int64_t rows,
            int64_t cols, int64_t n_tok) {
    const MatmulJob job{type, w, x, y, rows, cols, n_tok};
    matmul_group(pool, std::span<const MatmulJob>(&job, 1));
}

void matmul_group(ThreadPool &pool, std::span<const MatmulJob> jobs) {
    // Convert every job's activations once to the vec-dot type of its weights (in parallel when
    // there are several rows).
    // Reused buffers of the calling thread. The workers see them through these references (a
    // lambda naming a thread_local directly would get the worker's own instance).
    thread_local std::vector<size_t> act_off_tls;   // [jobs + 1] byte offsets into act
    thread_local std::vector<int64_t> row_off_tls;  // [jobs + 1] first global row of each job
    thread_local std::vector<uint8_t> act_tls;
    std::vector<size_t> &act_off = act_off_tls;
    std::vector<int64_t> &row_off = row_off_tls;
    std::vector<uint8_t> &act = act_tls;
    act_off.assign(jobs.size() + 1, 0);
    row_off.assign(jobs.size() + 1, 0);
    int64_t act_rows = 0;
    for (size_t j = 0; j < jobs.size(); ++j) {
        act_off[j + 1] =
            act_off[j] + act_bytes(jobs[j].type, jobs[j].cols) * static_cast<size_t>(jobs[j].n_tok);
        row_off[j + 1] = row_off[j] + jobs[j].rows;
        act_rows += jobs[j].n_tok;
    }
    act.resize(act_off.back());
    uint8_t *a = act.data();
    const auto quantize = [&](int64_t r0, int64_t r1, int) {
        // r: the r-th activation row over all jobs in order
        int64_t first = 0;
        for (size_t j = 0; j < jobs.size() && first < r1; first += jobs[j].n_tok, ++j) {
            const MatmulJob &jb = jobs[j];
            const size_t ab = act_bytes(jb.type, jb.cols);
            for (int64_t t = std::max<int64_t>(0, r0 - first); t < std::min(jb.n_tok, r1 - first); ++t)
                quantize_act(jb.type, jb.x + t * jb.cols, a + act_off[j] + static_cast<size_t>(t) * ab,
                             jb.cols);
        }
    };
    if (act_rows >= 4)
        pool.parallel_for(act_rows, quantize, 2);
    else
        quantize(0, act_rows, 0);
    // One pass over the weight rows of all jobs, split evenly between the threads. Tiles of
    // kRowTile weight rows x kTokTile tokens keep both operands in L2; within a tile, each weight
    // row meets up to kMaxDotRows tokens per pass (vec_dot_rows). A row's result does not depend
    // on how rows are split, so grouping never changes a bit.
    constexpr int64_t kRowTile = 16, kTokTile = 64;
    pool.parallel_for(
        row_off.back(),
        [&](int64_t g0, int64_t g1, int) {
            for (size_t j = 0; j < jobs.size(); ++j) {
                const int64_t r0 = std::max(g0, row_off[j]) - row_off[j],
                              r1 = std::min(g1, row_off[j + 1]) - row_off[j];
                if (r0 >= r1) continue;
                const MatmulJob &jb = jobs[j];
                const uint64_t rb = *quant::row_bytes(jb.type, static_cast<uint64_t>(jb.cols));
                const size_t ab = act_bytes(jb.type, jb.cols);
                const auto *base = static_cast<const uint8_t *>(jb.w);
                const int64_t row_tile =
                    jb.n_tok <= kTokTile ? r1 - r0 : kRowTile;  // one call where one tile
                for (int64_t rt = r0; rt < r1; rt += row_tile) {
                    const int64_t re = std::min(r1, rt + row_tile);
                    for (int64_t t0 = 0; t0 < jb.n_tok; t0 += kTokTile)
                        vec_dot_tile(jb.type, base + static_cast<uint64_t>(rt) * rb, rb, re - rt,
                                     a + act_off[j] + static_cast<size_t>(t0) * ab, ab,
                                     std::min(kTokTile, jb.n_tok - t0), jb.cols, jb.y + t0 * jb.rows + rt,
                                     jb.rows);
                }
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

void top_k(const float *p, int64_t n, int64_t k, int64_t *idx, uint16_t *ids) {
    for (int64_t i = 0; i < n; ++i) idx[i] = i;
    // A NaN counts as -inf (a total order, as the CUDA kernel's), ties go to the lower id.
    const auto key = [p](int64_t i) {
        return std::isnan(p[i]) ? -std::numeric_limits<float>::infinity() : p[i];
    };
    std::partial_sort(idx, idx + k, idx + n,
                      [&](int64_t a, int64_t b) { return key(a) > key(b) || (key(a) == key(b) && a < b); });
    for (int64_t j = 0; j < k; ++j) ids[j] = static_cast<uint16_t>(idx[j]);
}

void swiglu(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace moerun::kernels::cpu
