// Weight blocks for the gpu tests of types quant/ cannot quantize (Q2_K, Q3_K, IQ4_NL, IQ4_XS): random bytes,
// so every bit pattern of quants and scales occurs, with the block's f16 scales set to finite values.
#pragma once
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "moerun/quant/half.h"
#include "moerun/quant/types.h"

// True (and `blocks` filled) for a type without a quantizer in quant/; false, untouched, otherwise.
inline bool fill_random_blocks(moerun::quant::Type t, std::vector<uint8_t> &blocks, std::mt19937 &rng) {
    using moerun::quant::Type;
    std::vector<size_t> f16;  // byte offsets of the block's f16 scales
    if (t == Type::Q2_K)
        f16 = {80, 82};
    else if (t == Type::Q3_K)
        f16 = {108};
    else if (t == Type::IQ4_NL || t == Type::IQ4_XS)
        f16 = {0};
    else
        return false;
    const size_t bb = moerun::quant::traits(t).type_size;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto &v : blocks) v = static_cast<uint8_t>(rng());
    for (size_t b = 0; b < blocks.size() / bb; ++b)
        for (const size_t off : f16) {
            const uint16_t h = moerun::quant::fp32_to_fp16(nd(rng) * 0.02f);
            std::memcpy(&blocks[b * bb + off], &h, 2);
        }
    return true;
}
