// Quantization to the K-quant super-blocks Q4_K, Q5_K (affine: x ~ s * q - m) and Q6_K
// (symmetric: x ~ s * q), with moerun's own scale search.
//
// 1. Importance weights per element: w = rms(block) + |x| (larger values matter more; the idea
//    llama.cpp's reference uses when no importance matrix is given).
// 2. Per sub-block, fit_affine / fit_symmetric scan candidate grids: the plain min/max
//    (max-abs) grid stretched by -1 .. +1 levels in steps of 0.1; for each, round x onto the
//    grid, refit the scale (and min) by weighted least squares for those quants, and keep the
//    candidate with the least weighted squared error.
// 3. The sub-block scales and mins are quantized to 6 bits (Q4_K, Q5_K) or int8 (Q6_K) under an
//    fp16 super-scale taken from their maximum, and every quant is recomputed against the scales
//    as stored, so the block is the best rounding for what dequantization will actually use.
#include <algorithm>
#include <cmath>

#include "moerun/quant/half.h"
#include "moerun/quant/quantize.h"
#include "row-blocks.h"
#include "strict-fp.h"

namespace moerun::quant {
namespace {

constexpr int kSteps = 10;  // candidates at nmax + k / 10 levels, k in [-kSteps, kSteps]
constexpr float kStep = 0.1f;

// round-half-away(v) clamped to [lo, hi]; NaN gives lo.
int round_clamped(float v, int lo, int hi) {
    if (!(v >= static_cast<float>(lo))) return lo;
    if (v >= static_cast<float>(hi)) return hi;
    return static_cast<int>(std::lround(v));
}

// fp16 bits of a super-scale, kept finite (|d| <= 65504) and nonzero when v is (|d| >= 2^-24), so
// that very large or very small blocks degrade by clipping / coarse scales instead of becoming
// inf or all zero.
uint16_t super_scale_fp16(float v) {
    const uint16_t h = fp32_to_fp16(v);
    if ((h & 0x7fffu) >= 0x7c00u) return static_cast<uint16_t>((h & 0x8000u) | 0x7bffu);
    if ((h & 0x7fffu) == 0 && v != 0.0f) return static_cast<uint16_t>(h | 1u);
    return h;
}

void importance(const float *x, int n, float *w) {
    double sum2 = 0.0;
    for (int i = 0; i < n; ++i) sum2 += static_cast<double>(x[i]) * x[i];
    const float rms = static_cast<float>(std::sqrt(sum2 / n));
    for (int i = 0; i < n; ++i) w[i] = rms + std::fabs(x[i]);
}

struct AffineFit {
    float scale;  // s >= 0
    float min;    // m >= 0: x ~ s * q - m
};

// Best (s, m) for x[0..n) ~ s * q - m, q in [0, nmax], s >= 0, m >= 0 (the grid starts at or
// below zero: the layouts store m unsigned).
AffineFit fit_affine(const float *x, const float *w, int n, int nmax) {
    float lo = 0.0f, hi = x[0];
    for (int i = 0; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
    }
    if (!(hi > lo)) return {0.0f, -lo};  // all x equal to lo <= 0 (or all zero)

    AffineFit best{(hi - lo) / static_cast<float>(nmax), -lo};
    double best_err = 0.0;
    for (int i = 0; i < n; ++i) {
        const int q = round_clamped((x[i] - lo) / best.scale, 0, nmax);
        const double r = static_cast<double>(best.scale) * q - best.min - x[i];
        best_err += w[i] * r * r;
    }
    for (int k = -kSteps; k <= kSteps; ++k) {
        const float iscale = (static_cast<float>(nmax) + kStep * static_cast<float>(k)) / (hi - lo);
        // Weighted least squares of x ~ s * q + b for these q.
        double sw = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;
        for (int i = 0; i < n; ++i) {
            const double q = round_clamped(iscale * (x[i] - lo), 0, nmax);
            sw += w[i];
            sq += w[i] * q;
            sqq += w[i] * q * q;
            sx += w[i] * x[i];
            sqx += w[i] * q * x[i];
        }
        const double det = sw * sqq - sq * sq;
        if (!(det > 0.0)) continue;
        double s = (sw * sqx - sq * sx) / det;
        double b = (sqq * sx - sq * sqx) / det;
        if (b > 0.0) {  // the offset must be <= 0
            b = 0.0;
            s = sqx / sqq;
        }
        if (!(s > 0.0)) continue;
        double err = 0.0;
        for (int i = 0; i < n; ++i) {
            const int q = round_clamped(iscale * (x[i] - lo), 0, nmax);
            const double r = s * q + b - x[i];
            err += w[i] * r * r;
        }
        if (err < best_err) {
            best_err = err;
            best = {static_cast<float>(s), static_cast<float>(-b)};
        }
    }
    return best;
}

// Best s for x[0..n) ~ s * q, q in [-nmax, nmax - 1] (the largest |x| may take the extra
// negative level).
float fit_symmetric(const float *x, const float *w, int n, int nmax) {
    float amax = 0.0f, vmax = 0.0f;
    for (int i = 0; i < n; ++i) {
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            vmax = x[i];
        }
    }
    if (amax == 0.0f) return 0.0f;
    float best_s = vmax / -static_cast<float>(nmax);
    double best_err = -1.0;
    for (int k = -kSteps; k <= kSteps; ++k) {
        const float iscale = -(static_cast<float>(nmax) + kStep * static_cast<float>(k)) / vmax;
        double sqq = 0, sqx = 0;
        for (int i = 0; i < n; ++i) {
            const double q = round_clamped(iscale * x[i], -nmax, nmax - 1);
            sqq += w[i] * q * q;
            sqx += w[i] * q * x[i];
        }
        if (!(sqq > 0.0)) continue;
        const double s = sqx / sqq;
        double err = 0.0;
        for (int i = 0; i < n; ++i) {
            const int q = round_clamped(iscale * x[i], -nmax, nmax - 1);
            const double r = s * q - x[i];
            err += w[i] * r * r;
        }
        if (best_err < 0.0 || err < best_err) {
            best_err = err;
            best_s = static_cast<float>(s);
        }
    }
    return best_s;
}

// The 8 sub-blocks of 32 of a Q4_K / Q5_K block: fp16 d, dmin, the packed 6-bit scales and the
// quants q[256] in [0, nmax] against the stored values.
void quantize_affine_superblock(const float *x, int nmax, uint16_t &d16, uint16_t &dmin16,
                                uint8_t (&scales)[K_SCALE_SIZE], int *q) {
    float w[QK_K];
    importance(x, QK_K, w);
    AffineFit fit[8];
    float max_s = 0.0f, max_m = 0.0f;
    for (int j = 0; j < 8; ++j) {
        fit[j] = fit_affine(x + 32 * j, w + 32 * j, 32, nmax);
        max_s = std::max(max_s, fit[j].scale);
        max_m = std::max(max_m, fit[j].min);
    }
    d16 = super_scale_fp16(max_s / 63.0f);
    dmin16 = super_scale_fp16(max_m / 63.0f);
    const float d = fp16_to_fp32(d16);
    const float dmin = fp16_to_fp32(dmin16);

    int ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = d > 0.0f ? round_clamped(fit[j].scale / d, 0, 63) : 0;
        lm[j] = dmin > 0.0f ? round_clamped(fit[j].min / dmin, 0, 63) : 0;
    }
    for (int j = 0; j < 4; ++j) {
        scales[j] = static_cast<uint8_t>(ls[j] | ((ls[j + 4] >> 4) << 6));
        scales[j + 4] = static_cast<uint8_t>(lm[j] | ((lm[j + 4] >> 4) << 6));
        scales[j + 8] = static_cast<uint8_t>((ls[j + 4] & 0x0f) | ((lm[j + 4] & 0x0f) << 4));
    }
    for (int j = 0; j < 8; ++j) {
        const float s = d * static_cast<float>(ls[j]);
        const float m = dmin * static_cast<float>(lm[j]);
        for (int i = 32 * j; i < 32 * j + 32; ++i)
            q[i] = s > 0.0f ? round_clamped((x[i] + m) / s, 0, nmax) : 0;
    }
}

}  // namespace

void quantize_block(const float *x, BlockQ4_K &b) {
    int q[QK_K];
    quantize_affine_superblock(x, 15, b.d, b.dmin, b.scales, q);
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l)
            b.qs[32 * c + l] = static_cast<uint8_t>(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
}

void quantize_block(const float *x, BlockQ5_K &b) {
    int q[QK_K];
    quantize_affine_superblock(x, 31, b.d, b.dmin, b.scales, q);
    for (int l = 0; l < 32; ++l) b.qh[l] = 0;
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) {
            const int q0 = q[64 * c + l], q1 = q[64 * c + 32 + l];
            b.qs[32 * c + l] = static_cast<uint8_t>((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            b.qh[l] = static_cast<uint8_t>(b.qh[l] | ((q0 >> 4) << (2 * c)) | ((q1 >> 4) << (2 * c + 1)));
        }
    }
}

void quantize_block(const float *x, BlockQ6_K &b) {
    float w[QK_K];
    importance(x, QK_K, w);
    float s[16];
    float smax = 0.0f;  // the sub-scale of largest magnitude, signed
    for (int j = 0; j < 16; ++j) {
        s[j] = fit_symmetric(x + 16 * j, w + 16 * j, 16, 32);
        if (std::fabs(s[j]) > std::fabs(smax)) smax = s[j];
    }
    // smax maps to -128, the int8 level with no positive twin.
    b.d = super_scale_fp16(smax / -128.0f);
    const float d = fp16_to_fp32(b.d);
    int q[QK_K];
    for (int j = 0; j < 16; ++j) {
        const int ls = d != 0.0f ? round_clamped(s[j] / d, -128, 127) : 0;
        b.scales[j] = static_cast<int8_t>(ls);
        const float sj = d * static_cast<float>(ls);
        for (int i = 16 * j; i < 16 * j + 16; ++i)
            q[i] = (sj != 0.0f ? round_clamped(x[i] / sj, -32, 31) : 0) + 32;
    }
    for (int h = 0; h < 2; ++h) {
        for (int l = 0; l < 32; ++l) {
            const int *qq = q + 128 * h + l;  // qq[32 * s] for s = 0..3
            b.ql[64 * h + l] = static_cast<uint8_t>((qq[0] & 0x0f) | ((qq[64] & 0x0f) << 4));
            b.ql[64 * h + 32 + l] = static_cast<uint8_t>((qq[32] & 0x0f) | ((qq[96] & 0x0f) << 4));
            b.qh[32 * h + l] = static_cast<uint8_t>((qq[0] >> 4) | ((qq[32] >> 4) << 2) |
                                                    ((qq[64] >> 4) << 4) | ((qq[96] >> 4) << 6));
        }
    }
}

void quantize_row_q4_k(const float *src, void *dst, int64_t n) {
    detail::quantize_blocks<BlockQ4_K>(Type::Q4_K, src, dst, n);
}
void quantize_row_q5_k(const float *src, void *dst, int64_t n) {
    detail::quantize_blocks<BlockQ5_K>(Type::Q5_K, src, dst, n);
}
void quantize_row_q6_k(const float *src, void *dst, int64_t n) {
    detail::quantize_blocks<BlockQ6_K>(Type::Q6_K, src, dst, n);
}

}  // namespace moerun::quant
