// Dot products of one 32-element chunk of a GGUF weight block with 32 F32 activations: the
// inner step of the CUDA matrix-vector kernels (mmv.cu), one chunk per warp lane. Every rounding
// is fixed (exact-ops.cuh, dot8 below), so the host reproduces the device's products bit for bit.
//
// Plain C++ with MOERUN_HD (__host__ __device__ under nvcc, nothing otherwise), so the host unit
// test (tests/unit/test-cuda-block-dot.cpp) checks exactly this code against quant/'s reference
// dequantization on machines without a GPU, and the CPU fallback runs it (device-order.cpp).
//
// Chunk c of a block covers its elements [32c, 32c + 32); for F32 / F16 (blocks of one element)
// a chunk is 32 consecutive elements. Layouts (quant/include/moerun/quant/blocks.h, ggml's
// block_*); f16 = IEEE half, little-endian:
// clang-format off
//   Q8_0 [34]:  d | qs[32] (int8)                            x = d * q
//   Q4_0 [18]:  d | qs[16]                                   x[l] = d * ((qs[l] & 15) - 8), x[l+16]: high nibble
//   Q4_1 [20]:  d | m | qs[16]                               x = d * q4 + m (q4 as Q4_0's, unsigned)
//   Q5_0 [22]:  d | qh[4] (u32) | qs[16]                     x = d * (q4 | 16 * bit l of qh - 16)
//   Q5_1 [24]:  d | m | qh[4] (u32) | qs[16]                 x = d * (q4 | 16 * bit l of qh) + m
//   BF16 [2]:   the high half of an IEEE float
//   IQ4_NL [18]:  d | qs[16]                                 x = d * v(q4), v: 16 fixed values (iq4_value)
//   IQ4_XS [136]: d | scales_h (u16) | scales_l[4] | qs[128] x = d * (ls_j - 32) * v(q4), 6-bit ls per chunk
//   Q4_K [144]: d | dmin | scales[12] | qs[128]              x = d * sc_j * q - dmin * m_j (6-bit sc/m, chunk j)
//   Q5_K [176]: d | dmin | scales[12] | qh[32] | qs[128]     as Q4_K, q += 16 * ((qh[l] >> j) & 1)
//   Q6_K [210]: ql[128] | qh[64] | scales[16] (int8) | d     x = d * sc * (q6 - 32)
//   Q2_K [84]:  scales[16] (4-bit sc | 4-bit m) | qs[64] | d | dmin     x = d * sc * q2 - dmin * m
//   Q3_K [110]: hmask[32] | qs[64] | scales[12] (16 x 6-bit) | d       x = d * (sc - 32) * (q2 - 4 * !hbit)
// clang-format on
#pragma once

#include <cstdint>

#include "exact-ops.cuh"
#include "moerun/quant/types.h"

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
    return bits_to_float(bits);
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

// The device order of a dot product over n = 16 or 32 elements, fixed so the host reproduces it
// bit for bit (kernels/cpu/device-order.cpp, with AVX2 lanes k): eight partial sums p[k] over the
// elements l = 8i + k, each an fma, i ascending, then ((p0 + p4) + (p2 + p6)) + ((p1 + p5) + (p3 + p7)).
// q(l) is weight l as an exact float (a quant's integer, or an F32 / F16 element).
MOERUN_HD float sum8(const float *p) {
    return add_rn(add_rn(add_rn(p[0], p[4]), add_rn(p[2], p[6])),
                  add_rn(add_rn(p[1], p[5]), add_rn(p[3], p[7])));
}

template <int N, class Q>
MOERUN_HD float dot8(const Q &q, const float *x) {
    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < N / 8; ++i)
        for (int k = 0; k < 8; ++k) p[k] = fma_rn(q(8 * i + k), x[8 * i + k], p[k]);
    return sum8(p);
}

// The sum of x[0..N) in the same order (what dot8 gives for weights of 1).
template <int N>
MOERUN_HD float sum_x8(const float *x) {
    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < N / 8; ++i)
        for (int k = 0; k < 8; ++k) p[k] = add_rn(p[k], x[8 * i + k]);
    return sum8(p);
}

// Element l of a row of a type with one element per block (F32, F16, BF16).
template <quant::Type T>
MOERUN_HD float element(const uint8_t *b, int64_t l) {
    if constexpr (T == quant::Type::F32) {
#ifdef __CUDA_ARCH__
        return reinterpret_cast<const float *>(b)[l];  // F32 rows are 4-byte aligned
#else
        float w;
        __builtin_memcpy(&w, b + 4 * l, 4);
        return w;
#endif
    } else if constexpr (T == quant::Type::F16) {
        return load_f16(b + 2 * l);
    } else {
        static_assert(T == quant::Type::BF16, "element: not a one-element-per-block type");
        return bits_to_float(static_cast<uint32_t>(b[2 * l] | (b[2 * l + 1] << 8)) << 16);
    }
}

MOERUN_HD float dot_chunk_f32(const uint8_t *b, int, const float *x) {
    return dot8<32>([b](int l) { return element<quant::Type::F32>(b, l); }, x);
}

MOERUN_HD float dot_chunk_f16(const uint8_t *b, int, const float *x) {
    return dot8<32>([b](int l) { return element<quant::Type::F16>(b, l); }, x);
}

MOERUN_HD float dot_chunk_bf16(const uint8_t *b, int, const float *x) {
    return dot8<32>([b](int l) { return element<quant::Type::BF16>(b, l); }, x);
}

// The last chunk of a row of F32 / F16 / BF16 whose length is not a multiple of 32: its n < 32
// elements in dot8's order (partial sum l % 8 takes element l); nothing past element n is read.
template <quant::Type T>
MOERUN_HD float dot_tail(const uint8_t *b, int n, const float *x) {
    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int l = 0; l < n; ++l) p[l % 8] = fma_rn(element<T>(b, l), x[l], p[l % 8]);
    return sum8(p);
}

MOERUN_HD float dot_chunk_q8_0(const uint8_t *b, int, const float *x) {
    const auto *q = reinterpret_cast<const int8_t *>(b + 2);
    return mul_rn(load_f16(b), dot8<32>([q](int l) { return static_cast<float>(q[l]); }, x));
}

// Element l (0..31) of a 32-element block's 4-bit quants qs[16]: the low nibble of qs[l] for
// l < 16, the high nibble of qs[l - 16] otherwise (Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS).
MOERUN_HD int nibble32(const uint8_t *qs, int l) {
    return (qs[l & 15] >> (l & 16 ? 4 : 0)) & 15;
}

MOERUN_HD float dot_chunk_q4_0(const uint8_t *b, int, const float *x) {
    const uint8_t *q = b + 2;
    return mul_rn(load_f16(b), dot8<32>([q](int l) { return static_cast<float>(nibble32(q, l) - 8); }, x));
}

MOERUN_HD uint32_t load_u32(const uint8_t *p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
           (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

// Element l of a Q5_0 / Q5_1 block: its nibble and bit l of qh as the fifth bit (0..31).
MOERUN_HD int q5(const uint8_t *qs, uint32_t qh, int l) {
    return nibble32(qs, l) | (static_cast<int>((qh >> l) & 1u) << 4);
}

// d * sq + m * sx: the chunk of a 32-element type with a minimum (Q4_1, Q5_1).
MOERUN_HD float scale_plus_min(float d, float sq, float m, float sx) {
    return add_rn(mul_rn(d, sq), mul_rn(m, sx));
}

MOERUN_HD float dot_chunk_q4_1(const uint8_t *b, int, const float *x) {
    const uint8_t *q = b + 4;
    const float sq = dot8<32>([q](int l) { return static_cast<float>(nibble32(q, l)); }, x);
    return scale_plus_min(load_f16(b), sq, load_f16(b + 2), sum_x8<32>(x));
}

MOERUN_HD float dot_chunk_q5_0(const uint8_t *b, int, const float *x) {
    const uint32_t qh = load_u32(b + 2);
    const uint8_t *q = b + 6;
    return mul_rn(load_f16(b), dot8<32>([q, qh](int l) { return static_cast<float>(q5(q, qh, l) - 16); }, x));
}

MOERUN_HD float dot_chunk_q5_1(const uint8_t *b, int, const float *x) {
    const uint32_t qh = load_u32(b + 4);
    const uint8_t *q = b + 8;
    const float sq = dot8<32>([q, qh](int l) { return static_cast<float>(q5(q, qh, l)); }, x);
    return scale_plus_min(load_f16(b), sq, load_f16(b + 2), sum_x8<32>(x));
}

// Value i (0..15) of IQ4_NL / IQ4_XS (quant::kIQ4Values) from two packed constants, so the
// device needs no table in memory.
MOERUN_HD int iq4_value(int i) {
    const uint64_t packed = i < 8 ? 0xf6eaddcfbfad9881ull : 0x7159453526190d01ull;
    return static_cast<int8_t>(static_cast<uint8_t>(packed >> (8 * (i & 7))));
}

MOERUN_HD float dot_chunk_iq4_nl(const uint8_t *b, int, const float *x) {
    const uint8_t *q = b + 2;
    return mul_rn(load_f16(b),
                  dot8<32>([q](int l) { return static_cast<float>(iq4_value(nibble32(q, l))); }, x));
}

// The 6-bit scale of chunk (sub-block) j of an IQ4_XS block, as stored.
MOERUN_HD int iq4_xs_scale_of(const uint8_t *b, int j) {
    const int h = b[2] | (b[3] << 8);
    return ((b[4 + j / 2] >> (4 * (j % 2))) & 15) | (((h >> (2 * j)) & 3) << 4);
}

MOERUN_HD float dot_chunk_iq4_xs(const uint8_t *b, int j, const float *x) {
    const uint8_t *q = b + 8 + 16 * j;
    const float dl = mul_rn(load_f16(b), static_cast<float>(iq4_xs_scale_of(b, j) - 32));
    return mul_rn(dl, dot8<32>([q](int l) { return static_cast<float>(iq4_value(nibble32(q, l))); }, x));
}

// d * sc * sq - dmin * m * sx, the K-quants' chunk with a minimum.
MOERUN_HD float scale_min(float d, int sc, float sq, float dmin, int m, float sx) {
    return sub_rn(mul_rn(mul_rn(d, static_cast<float>(sc)), sq),
                  mul_rn(mul_rn(dmin, static_cast<float>(m)), sx));
}

MOERUN_HD float dot_chunk_q4_k(const uint8_t *b, int j, const float *x) {
    int sc, m;
    k4_scale_min(j, b + 4, sc, m);
    const uint8_t *q = b + 16 + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    const float sq = dot8<32>([q, shift](int l) { return static_cast<float>((q[l] >> shift) & 15); }, x);
    return scale_min(load_f16(b), sc, sq, load_f16(b + 2), m, sum_x8<32>(x));
}

MOERUN_HD float dot_chunk_q5_k(const uint8_t *b, int j, const float *x) {
    int sc, m;
    k4_scale_min(j, b + 4, sc, m);
    const uint8_t *qh = b + 16, *q = b + 48 + 32 * (j / 2);
    const int shift = 4 * (j % 2);
    const float sq = dot8<32>(
        [q, qh, shift, j](int l) {
            return static_cast<float>(((q[l] >> shift) & 15) | (((qh[l] >> j) & 1) << 4));
        },
        x);
    return scale_min(load_f16(b), sc, sq, load_f16(b + 2), m, sum_x8<32>(x));
}

// Q6_K and Q3_K: a scale per 16 elements, d * (sc0 * s0 + sc1 * s1).
MOERUN_HD float two_scales(float d, int sc0, float s0, int sc1, float s1) {
    return mul_rn(d, add_rn(mul_rn(static_cast<float>(sc0), s0), mul_rn(static_cast<float>(sc1), s1)));
}

MOERUN_HD float dot_chunk_q6_k(const uint8_t *b, int j, const float *x) {
    const uint8_t *ql = b, *qh = b + 128;
    const auto *scales = reinterpret_cast<const int8_t *>(b + 192);
    const int h = j / 4, k = j % 4;
    const uint8_t *lo = ql + 64 * h + 32 * (k & 1), *hi = qh + 32 * h;
    const int lo_shift = k >= 2 ? 4 : 0, hi_shift = 2 * k;
    const auto q = [lo, hi, lo_shift, hi_shift](int l) {
        return static_cast<float>((((lo[l] >> lo_shift) & 15) | (((hi[l] >> hi_shift) & 3) << 4)) - 32);
    };
    const float s0 = dot8<16>(q, x);
    const float s1 = dot8<16>([q](int l) { return q(16 + l); }, x + 16);
    const int is = 8 * h + 2 * k;
    return two_scales(load_f16(b + 208), scales[is], s0, scales[is + 1], s1);
}

MOERUN_HD float dot_chunk_q2_k(const uint8_t *b, int j, const float *x) {
    const uint8_t *scales = b, *q = b + 16 + 32 * (j / 4);
    const int shift = 2 * (j % 4), is = 8 * (j / 4) + 2 * (j % 4);
    const float d = load_f16(b + 80), dmin = load_f16(b + 82);
    float r = 0;
    for (int i = 0; i < 2; ++i) {
        const uint8_t *qi = q + 16 * i;
        const float sq =
            dot8<16>([qi, shift](int l) { return static_cast<float>((qi[l] >> shift) & 3); }, x + 16 * i);
        r = add_rn(r,
                   scale_min(d, scales[is + i] & 15, sq, dmin, scales[is + i] >> 4, sum_x8<16>(x + 16 * i)));
    }
    return r;
}

MOERUN_HD float dot_chunk_q3_k(const uint8_t *b, int j, const float *x) {
    const uint8_t *hmask = b, *q = b + 32 + 32 * (j / 4), *scales = b + 96;
    const int shift = 2 * (j % 4), is = 8 * (j / 4) + 2 * (j % 4);
    const int hbit = 1 << j;  // chunk j's bit of hmask (j = 4 * half + pair)
    const auto v = [q, hmask, shift, hbit](int l) {
        return static_cast<float>(((q[l] >> shift) & 3) - ((hmask[l] & hbit) ? 0 : 4));
    };
    const float s0 = dot8<16>(v, x);
    const float s1 = dot8<16>([v](int l) { return v(16 + l); }, x + 16);
    return two_scales(load_f16(b + 108), k3_scale(is, scales), s0, k3_scale(is + 1, scales), s1);
}

// The chunk dot product of weight type T (a type of visit_block_type below).
template <quant::Type T>
MOERUN_HD float chunk_dot(const uint8_t *b, int j, const float *x) {
    if constexpr (T == quant::Type::F32)
        return dot_chunk_f32(b, j, x);
    else if constexpr (T == quant::Type::F16)
        return dot_chunk_f16(b, j, x);
    else if constexpr (T == quant::Type::BF16)
        return dot_chunk_bf16(b, j, x);
    else if constexpr (T == quant::Type::Q8_0)
        return dot_chunk_q8_0(b, j, x);
    else if constexpr (T == quant::Type::Q4_0)
        return dot_chunk_q4_0(b, j, x);
    else if constexpr (T == quant::Type::Q4_1)
        return dot_chunk_q4_1(b, j, x);
    else if constexpr (T == quant::Type::Q5_0)
        return dot_chunk_q5_0(b, j, x);
    else if constexpr (T == quant::Type::Q5_1)
        return dot_chunk_q5_1(b, j, x);
    else if constexpr (T == quant::Type::Q4_K)
        return dot_chunk_q4_k(b, j, x);
    else if constexpr (T == quant::Type::Q5_K)
        return dot_chunk_q5_k(b, j, x);
    else if constexpr (T == quant::Type::Q6_K)
        return dot_chunk_q6_k(b, j, x);
    else if constexpr (T == quant::Type::Q2_K)
        return dot_chunk_q2_k(b, j, x);
    else if constexpr (T == quant::Type::IQ4_NL)
        return dot_chunk_iq4_nl(b, j, x);
    else if constexpr (T == quant::Type::IQ4_XS)
        return dot_chunk_iq4_xs(b, j, x);
    else {
        static_assert(T == quant::Type::Q3_K, "chunk_dot: not a device weight type");
        return dot_chunk_q3_k(b, j, x);
    }
}

// A device weight type at compile time: BS elements per block of BB bytes (F32 / F16 / BF16: 1;
// their rows may have any length, the others' a multiple of BS and of 32).
template <quant::Type T, int BS, int BB>
struct BlockType {
    static constexpr quant::Type type = T;
    static constexpr int bs = BS, bb = BB;
};

// Calls f(BlockType<...>{}) for the weight type t and returns true; false for a type without
// device products. The one list of the types of the device's products (CUDA kernels, mmv.cu) and
// of their host replica (kernels/cpu/device-order.cpp).
template <class F>
bool visit_block_type(quant::Type t, F &&f) {
    using T = quant::Type;
    switch (t) {
        case T::F32:
            return f(BlockType<T::F32, 1, 4>{}), true;
        case T::F16:
            return f(BlockType<T::F16, 1, 2>{}), true;
        case T::BF16:
            return f(BlockType<T::BF16, 1, 2>{}), true;
        case T::Q8_0:
            return f(BlockType<T::Q8_0, 32, 34>{}), true;
        case T::Q4_0:
            return f(BlockType<T::Q4_0, 32, 18>{}), true;
        case T::Q4_1:
            return f(BlockType<T::Q4_1, 32, 20>{}), true;
        case T::Q5_0:
            return f(BlockType<T::Q5_0, 32, 22>{}), true;
        case T::Q5_1:
            return f(BlockType<T::Q5_1, 32, 24>{}), true;
        case T::Q4_K:
            return f(BlockType<T::Q4_K, 256, 144>{}), true;
        case T::Q5_K:
            return f(BlockType<T::Q5_K, 256, 176>{}), true;
        case T::Q6_K:
            return f(BlockType<T::Q6_K, 256, 210>{}), true;
        case T::Q2_K:
            return f(BlockType<T::Q2_K, 256, 84>{}), true;
        case T::Q3_K:
            return f(BlockType<T::Q3_K, 256, 110>{}), true;
        case T::IQ4_NL:
            return f(BlockType<T::IQ4_NL, 32, 18>{}), true;
        case T::IQ4_XS:
            return f(BlockType<T::IQ4_XS, 256, 136>{}), true;
        default:
            return false;
    }
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

MOERUN_HD void dequant_chunk_iq4_xs(const uint8_t *b, int j, float *y) {
    const uint8_t *q = b + 8 + 16 * j;
    const float dl = load_f16(b) * static_cast<float>(iq4_xs_scale_of(b, j) - 32);
    for (int l = 0; l < 32; ++l) y[l] = dl * static_cast<float>(iq4_value(nibble32(q, l)));
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
