// fp16 / bf16 <-> fp32 by bit manipulation only (no hardware conversion, no float arithmetic), so
// the result does not depend on the compiler, the flags or the CPU.
#include "moerun/quant/half.h"

#include <bit>

namespace moerun::quant {

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits = 0;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf, or NaN with its payload
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);  // rebias 15 -> 127
    } else if (mant == 0) {
        bits = sign;  // +-0
    } else {
        // Subnormal: mant * 2^-24. Shift the leading 1 up to the implicit bit position.
        uint32_t e = 113;  // exponent field of 2^-14, the value of implicit bit 0x400
        while ((mant & 0x400u) == 0) {
            mant <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    return std::bit_cast<float>(bits);
}

uint16_t fp32_to_fp16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    const uint32_t a = u & 0x7fffffffu;
    uint32_t h = 0;
    if (a > 0x7f800000u) {  // NaN
        h = (a >> 13) & 0x3ffu;
        if (h == 0) h = 1;
        h |= 0x7c00u;
    } else if (a >= 0x477ff000u) {  // >= 65520: rounds (ties to even) past 65504 to inf
        h = 0x7c00u;
    } else if (a >= 0x38800000u) {    // >= 2^-14: a normal half
        h = (a - 0x38000000u) >> 13;  // rebias the exponent, keep the top 10 mantissa bits
        const uint32_t rem = a & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // may carry into the exponent: right
    } else if (a > 0x33000000u) {  // (2^-25, 2^-14): a subnormal half (or 2^-14 after rounding)
        const uint32_t e = a >> 23;
        const uint32_t m = (a & 0x7fffffu) | 0x800000u;
        const uint32_t shift = 126u - e;  // value * 2^24 = m >> shift, shift in [14, 24]
        h = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u);
        const uint32_t halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
    }  // else: |x| <= 2^-25 rounds to zero
    return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t h) {
    return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

uint16_t fp32_to_bf16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
    const uint64_t rounded = (static_cast<uint64_t>(u) + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return static_cast<uint16_t>(rounded);
}

}  // namespace moerun::quant
