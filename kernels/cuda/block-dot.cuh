// Dot products of one 32-element chunk of a GGUF weight block with 32 F32 activations: the
// inner step of the CUDA matrix-vector kernels (mmv.cu), one chunk per warp lane.
//
// Plain C++ with MOERUN_HD (__host__ __device__ under nvcc, nothing otherwise), so the host unit
// test (tests/unit/test-cuda-block-dot.cpp) checks exactly this code against quant/'s reference
// dequantization on machines without a GPU.
//
// Chunk c of a block covers its elements [32c, 32c + 32); for F32 / F16 (blocks of one element)
// a chunk is 32 consecutive elements. Layouts (quant/include/moerun/quant/blocks.h,
// ggml's block_*); f16 = IEEE half, little-endian:
//   Q8_0 [34]:  d | qs[32] (int8)                                  x = d * q
//   Q4_0 [18]:  d | qs[16]                                         x[l] = d * ((qs[l] & 15) - 8), x[l+16]:
//   high nibble Q4_K [144]: d | dmin | scales[12] | qs[128]                    x = d * sc_j * q - dmin * m_j
//   (6-bit sc/m, chunk j) Q5_K [176]: d | dmin | scales[12] | qh[32] | qs[128]           q += 16 * ((qh[l] >>
//   j) & 1) Q6_K [210]: ql[128] | qh[64] | scales[16] (int8) | d           x = d * sc * (q6 - 32) Q2_K [84]:
//   scales[16] (4-bit sc | 4-bit m) | qs[64] | d | dmin  x = d * sc * q2 - dmin * m Q3_K [110]: hmask[32] |
//   qs[64] | scales[12] (16 x 6-bit) | d   x = d * (sc - 32) * (q2 - 4 * !hbit)
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define MOERUN_HD __host__ __device__ __forceinline__
#else
#define MOERUN_HD inline
#endif

namespace moerun::kernels::cuda {

// IEEE half -> float by bit manipulation (the same on host and device; exact for every input).
MOERUN_HD float half_bits_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (man << 13);  // inf / NaN
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {  // subnormal: normalise
        exp = 113u;
        while ((man & 0x400u) == 0) {
            man <<= 1;
            --exp;
        }
        bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
#ifdef __CUDA_ARCH__
    return __uint_as_float(bits);
#else
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
#endif
}

MOERUN_HD float load_f16(const uint8_t *p) {
    return half_bits_to_float(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block's 12 scale bytes.
MOERUN_HD void k4_scale_min(int j, const uint8_t *s, int &sc, int &m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// The signed 6-bit scale i (0..15) of a Q3_K block's 12 scale bytes.
MOERUN_HD int k3_scale(int i, const uint8_t *s) {
    const int low = i < 8 ? (s[i] & 15) : (s[i - 8] >> 4);
    const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | (high << 4)) - 32;
}

MOERUN_HD float dot_chunk_f32(const uint8_t *b, int, const float *x) {
    float s = 0;
    for (int l = 0; l < 32; ++l) {
#ifdef __CUDA_ARCH__
        const float w = reinterpret_cast<const float *>(b)[l];  // F32 rows are 4-byte aligned
#else
        float w;
        __builtin_memcpy(&w, b + 4 * l, 4);
#endif
        s += w * x[l];
    }
    return s;
}

MOERUN_HD float dot_chunk_f16(const uint8_t *b, int, const float *x) {
    float s = 0;
    for (int l = 0; l < 32; ++l) s += load_f16(b + 2 * l) * x[l];
    return s;
}

MOERUN_HD float dot_chunk_q8_0(const uint8_t *b, int, const float *x) {
    const auto *q = reinterpret_cast<const int8_t *>(b + 2);
    float s = 0;
    for (int l = 0; l < 32; ++l) s += static_cast<float>(q[l]) * x[l];
    return load_f16(b) * s;
}

MOERUN_HD float dot_chunk_q4_0(const uint8_t *b, int, const float *x) {
    const uint8_t *q = b + 2;
    float s = 0;
    for (int l = 0; l < 16; ++l)
        s += static_cast<float>((q[l] & 15) - 8) * x[l] + static_cast<float>((q[l] >> 4) - 8) * x[l + 16];
    return load_f16(b) * s;
}

MOERUN_HD float dot_chunk_q4_k(const uint8_t *b, int j, const float *x) {
    int sc, m;
    k4_scale_min(j, b + 4, sc, m);
    const uint8_t *q = b + 16 + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    float sq = 0, sx = 0;
    for (int l = 0; l < 32; ++l) {
        sq += static_cast<float>((q[l] >> shift) & 15) * x[l];
        sx += x[l];
    }
    return load_f16(b) * static_cast<float>(sc) * sq - load_f16(b + 2) * static_cast<float>(m) * sx;
}

MOERUN_HD float dot_chunk_q5_k(const uint8_t *b, int j, const float *x) {
    int sc, m;
    k4_scale_min(j, b + 4, sc, m);
    const uint8_t *qh = b + 16, *q = b + 48 + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    float sq = 0, sx = 0;
    for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 15) | (((qh[l] >> j) & 1) << 4);
        sq += static_cast<float>(v) * x[l];
        sx += x[l];
    }
    return load_f16(b) * static_cast<float>(sc) * sq - load_f16(b + 2) * static_cast<float>(m) * sx;
}

MOERUN_HD float dot_chunk_q6_k(const uint8_t *b, int j, const float *x) {
    const uint8_t *ql = b, *qh = b + 128;
    const auto *scales = reinterpret_cast<const int8_t *>(b + 192);
    const int h = j / 4, k = j % 4;
    const uint8_t *lo = ql + 64 * h + 32 * (k & 1);
    const int lo_shift = k >= 2 ? 4 : 0, hi_shift = 2 * k;
    float s[2] = {0, 0};
    for (int l = 0; l < 32; ++l) {
        const int v = (((lo[l] >> lo_shift) & 15) | (((qh[32 * h + l] >> hi_shift) & 3) << 4)) - 32;
        s[l / 16] += static_cast<float>(v) * x[l];
    }
    const int is = 8 * h + 2 * k;
    return load_f16(b + 208) *
           (static_cast<float>(scales[is]) * s[0] + static_cast<float>(scales[is + 1]) * s[1]);
}

MOERUN_HD float dot_chunk_q2_k(const uint8_t *b, int j, const float *x) {
    const uint8_t *scales = b, *q = b + 16 + 32 * (j / 4);
    const int shift = 2 * (j % 4), is = 8 * (j / 4) + 2 * (j % 4);
    float sq[2] = {0, 0}, sx[2] = {0, 0};
    for (int l = 0; l < 32; ++l) {
        sq[l / 16] += static_cast<float>((q[l] >> shift) & 3) * x[l];
        sx[l / 16] += x[l];
    }
    const float d = load_f16(b + 80), dmin = load_f16(b + 82);
    float r = 0;
    for (int i = 0; i < 2; ++i)
        r += d * static_cast<float>(scales[is + i] & 15) * sq[i] -
             dmin * static_cast<float>(scales[is + i] >> 4) * sx[i];
    return r;
}

MOERUN_HD float dot_chunk_q3_k(const uint8_t *b, int j, const float *x) {
    const uint8_t *hmask = b, *q = b + 32 + 32 * (j / 4), *scales = b + 96;
    const int shift = 2 * (j % 4), is = 8 * (j / 4) + 2 * (j % 4);
    const int hbit = 1 << j;  // chunk j's bit of hmask (j = 4 * half + pair)
    float s[2] = {0, 0};
    for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 3) - ((hmask[l] & hbit) ? 0 : 4);
        s[l / 16] += static_cast<float>(v) * x[l];
    }
    return load_f16(b + 108) * (static_cast<float>(k3_scale(is, scales)) * s[0] +
                                static_cast<float>(k3_scale(is + 1, scales)) * s[1]);
}

// Dequantization of chunk j of a K-quant block into y[32] (the device dequantize kernels of the
// types without an element-wise one, and the prefill products' tiles): the same formulas as the
// dot products above, element by element.
MOERUN_HD void dequant_chunk_q5_k(const uint8_t *b, int j, float *y) {
    int sc, m;
    k4_scale_min(j, b + 4, sc, m);
    const uint8_t *qh = b + 16, *q = b + 48 + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    const float d = load_f16(b) * static_cast<float>(sc), mn = load_f16(b + 2) * static_cast<float>(m);
    for (int l = 0; l < 32; ++l)
        y[l] = d * static_cast<float>(((q[l] >> shift) & 15) | (((qh[l] >> j) & 1) << 4)) - mn;
}

MOERUN_HD void dequant_chunk_q6_k(const uint8_t *b, int j, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const auto *scales = reinterpret_cast<const int8_t *>(b + 192);
    const int h = j / 4, k = j % 4;
    const uint8_t *lo = ql + 64 * h + 32 * (k & 1);
    const int lo_shift = k >= 2 ? 4 : 0, hi_shift = 2 * k, is = 8 * h + 2 * k;
    const float d = load_f16(b + 208);
    for (int l = 0; l < 32; ++l) {
        const int v = (((lo[l] >> lo_shift) & 15) | (((qh[32 * h + l] >> hi_shift) & 3) << 4)) - 32;
        y[l] = d * static_cast<float>(scales[is + l / 16]) * static_cast<float>(v);
    }
}

MOERUN_HD void dequant_chunk_q2_k(const uint8_t *b, int j, float *y) {
    const uint8_t *scales = b, *q = b + 16 + 32 * (j / 4);
    const int shift = 2 * (j % 4), is = 8 * (j / 4) + 2 * (j % 4);
    const float d = load_f16(b + 80), dmin = load_f16(b + 82);
    for (int l = 0; l < 32; ++l) {
        const uint8_t s = scales[is + l / 16];
        y[l] = d * static_cast<float>(s & 15) * static_cast<float>((q[l] >> shift) & 3) -
               dmin * static_cast<float>(s >> 4);
    }
}

MOERUN_HD void dequant_chunk_q3_k(const uint8_t *b, int j, float *y) {
    const uint8_t *hmask = b, *q = b + 32 + 32 * (j / 4), *scales = b + 96;
    const int shift = 2 * (j % 4), is = 8 * (j / 4) + 2 * (j % 4), hbit = 1 << j;
    const float d = load_f16(b + 108);
    for (int l = 0; l < 32; ++l) {
        const int v = ((q[l] >> shift) & 3) - ((hmask[l] & hbit) ? 0 : 4);
        y[l] = d * static_cast<float>(k3_scale(is + l / 16, scales)) * static_cast<float>(v);
    }
}

}  // namespace moerun::kernels::cuda
