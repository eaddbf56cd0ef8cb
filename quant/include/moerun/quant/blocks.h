// Block layouts of the quantized GGUF types, byte for byte as stored in a file.
//
// Every field is a byte array or a uint16_t; fp16 values are kept as raw uint16_t bits
// (convert with half.h). All fields are naturally aligned, so no packing pragma is needed; the
// sizes are checked here and against the type table (types.cpp). Multi-byte fields are
// little-endian in the file and read as native integers: moerun assumes a little-endian host.
//
// "Legacy" types: 32 elements per block, x = d * q (symmetric) or x = d * q + m (with a min).
// Nibble order in qs: element j is the low nibble of qs[j], element j + 16 the high nibble.
//
// K-quants: a super-block of QK_K = 256 elements split into sub-blocks (16 of 16 or 8 of 32)
// with small integer sub-scales, themselves scaled by one or two fp16 super-scales.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moerun::quant {

inline constexpr int QK4_0 = 32;
inline constexpr int QK4_1 = 32;
inline constexpr int QK5_0 = 32;
inline constexpr int QK5_1 = 32;
inline constexpr int QK8_0 = 32;
inline constexpr int QK_K = 256;
inline constexpr int K_SCALE_SIZE = 12;

// x[j] = d * (q[j] - 8), q in [0, 15].
struct BlockQ4_0 {
    uint16_t d;             // fp16 scale
    uint8_t qs[QK4_0 / 2];  // [16] nibbles: q[j] | q[j + 16] << 4
};

// x[j] = d * q[j] + m, q in [0, 15].
struct BlockQ4_1 {
    uint16_t d;             // fp16 scale
    uint16_t m;             // fp16 min (added)
    uint8_t qs[QK4_1 / 2];  // [16] nibbles: q[j] | q[j + 16] << 4
};

// x[j] = d * (q[j] - 16), q in [0, 31]: 4 low bits in qs, the 5th bit in qh.
struct BlockQ5_0 {
    uint16_t d;             // fp16 scale
    uint8_t qh[4];          // [32] bits, a little-endian uint32: bit j = bit 4 of q[j]
    uint8_t qs[QK5_0 / 2];  // [16] low nibbles: q[j] & 15 | (q[j + 16] & 15) << 4
};

// x[j] = d * q[j] + m, q in [0, 31].
struct BlockQ5_1 {
    uint16_t d;             // fp16 scale
    uint16_t m;             // fp16 min (added)
    uint8_t qh[4];          // [32] bits, a little-endian uint32: bit j = bit 4 of q[j]
    uint8_t qs[QK5_1 / 2];  // [16] low nibbles: q[j] & 15 | (q[j + 16] & 15) << 4
};

// x[j] = d * q[j], q in [-128, 127].
struct BlockQ8_0 {
    uint16_t d;        // fp16 scale
    int8_t qs[QK8_0];  // [32] quants
};

// 16 sub-blocks of 16; x = d * sc * q - dmin * m, q in [0, 3], sc and m 4-bit.
// Element e = 128 * h + 32 * s + l (h in 0..1, s in 0..3, l in 0..31):
//   q = (qs[32 * h + l] >> 2 * s) & 3, sub-block e / 16 = 8 * h + 2 * s + l / 16.
struct BlockQ2_K {
    uint8_t scales[QK_K / 16];  // [16] per sub-block: sc | m << 4
    uint8_t qs[QK_K / 4];       // [64] 2-bit quants, 4 per byte as above
    uint16_t d;                 // fp16 super-scale of sc
    uint16_t dmin;              // fp16 super-scale of m
};

// 16 sub-blocks of 16; x = d * (sc - 32) * (q - 4 * !hbit), q in [0, 3], sc 6-bit.
// Element e = 128 * h + 32 * s + l: q = (qs[32 * h + l] >> 2 * s) & 3,
//   hbit = (hmask[l] >> (4 * h + s)) & 1, sub-block e / 16.
// Scale i (6 bits): low 4 bits = scales[i % 8] >> 4 * (i / 8), high 2 bits =
//   scales[8 + i % 4] >> 2 * (i / 4).
struct BlockQ3_K {
    uint8_t hmask[QK_K / 8];  // [32] high bits, one bit-plane per 32 elements
    uint8_t qs[QK_K / 4];     // [64] low 2 bits, 4 per byte
    uint8_t scales[12];       // [16] 6-bit scales, packed as above
    uint16_t d;               // fp16 super-scale
};

// 8 sub-blocks of 32; x = d * sc * q - dmin * m, q in [0, 15], sc and m 6-bit.
// Element e = 64 * c + l (c in 0..3, l in 0..63): q = (qs[32 * c + l % 32] >> 4 * (l / 32)) & 15,
//   sub-block e / 32 = 2 * c + l / 32.
// sc, m of sub-block j < 4: scales[j] & 63, scales[j + 4] & 63; of j >= 4:
//   sc = scales[j + 4] & 15 | (scales[j - 4] >> 6) << 4, m = scales[j + 4] >> 4 | (scales[j] >> 6) << 4.
struct BlockQ4_K {
    uint16_t d;                    // fp16 super-scale of sc
    uint16_t dmin;                 // fp16 super-scale of m
    uint8_t scales[K_SCALE_SIZE];  // [8 + 8] 6-bit sc and m, packed as above
    uint8_t qs[QK_K / 2];          // [256] nibbles
};

// As Q4_K with a 5th bit: q in [0, 31]; for e = 64 * c + l the 5th bit is
//   (qh[l % 32] >> (2 * c + l / 32)) & 1.
struct BlockQ5_K {
    uint16_t d;                    // fp16 super-scale of sc
    uint16_t dmin;                 // fp16 super-scale of m
    uint8_t scales[K_SCALE_SIZE];  // [8 + 8] 6-bit sc and m, packed as in Q4_K
    uint8_t qh[QK_K / 8];          // [32] 5th bits, one bit-plane per 32 elements
    uint8_t qs[QK_K / 2];          // [256] low nibbles, as Q4_K
};

// 16 sub-blocks of 16; x = d * sc * (q - 32), q in [0, 63], sc int8.
// Element e = 128 * h + 32 * s + l (l in 0..31): low 4 bits = (ql[64 * h + 32 * (s & 1) + l]
//   >> 4 * (s >> 1)) & 15, high 2 bits = (qh[32 * h + l] >> 2 * s) & 3; sub-block e / 16.
struct BlockQ6_K {
    uint8_t ql[QK_K / 2];      // [256] low nibbles
    uint8_t qh[QK_K / 4];      // [256] high 2 bits, 4 per byte
    int8_t scales[QK_K / 16];  // [16] sub-block scales
    uint16_t d;                // fp16 super-scale
};

// The 16 values of a 4-bit index in the non-linear types IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).
inline constexpr int8_t kIQ4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// x[j] = d * kIQ4Values[q[j]], q in [0, 15] packed as in Q4_0.
struct BlockIQ4_NL {
    uint16_t d;      // fp16 scale
    uint8_t qs[16];  // [16] nibbles: q[j] | q[j + 16] << 4
};

// 8 sub-blocks of 32 with a 6-bit scale ls (stored + 32): x = d * (ls - 32) * kIQ4Values[q]. Sub-block
// ib: ls = ((scales_l[ib / 2] >> 4 * (ib % 2)) & 15) | (((scales_h >> 2 * ib) & 3) << 4); its quants
// are qs[16 ib .. 16 ib + 16), packed as in Q4_0.
struct BlockIQ4_XS {
    uint16_t d;            // fp16 super-scale
    uint16_t scales_h;     // high 2 bits of the 8 scales
    uint8_t scales_l[4];   // low 4 bits of the 8 scales
    uint8_t qs[QK_K / 2];  // [256] nibbles
};

// Sub-block scale ib in [0, 8) of an IQ4_XS block as stored (6 bits; the value used is - 32).
inline int iq4_xs_scale(uint16_t scales_h, const uint8_t (&scales_l)[4], int ib) {
    return ((scales_l[ib / 2] >> (4 * (ib % 2))) & 15) | (((scales_h >> (2 * ib)) & 3) << 4);
}

// Sub-block scale i in [0, 16) of a Q3_K block, as stored (6 bits, 0..63; the value used is - 32).
inline int q3_k_scale(const uint8_t (&scales)[12], int i) {
    const int lo = (scales[i % 8] >> (4 * (i / 8))) & 0x0f;
    const int hi = (scales[8 + i % 4] >> (2 * (i / 4))) & 0x03;
    return lo | (hi << 4);
}

// Sub-block scale and min j in [0, 8) of a Q4_K / Q5_K block (6 bits each).
inline void q4_k_scale_min(const uint8_t (&scales)[K_SCALE_SIZE], int j, int &sc, int &m) {
    if (j < 4) {
        sc = scales[j] & 63;
        m = scales[j + 4] & 63;
    } else {
        sc = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
        m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockIQ4_XS) == 136);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

}  // namespace moerun::quant
