// Walks a row of packed blocks (internal). Each block is copied out of / into the byte buffer,
// so the buffer may have any alignment.
#pragma once

#include <cstring>

#include "moerun/quant/dequant.h"
#include "moerun/quant/quantize.h"
#include "row-check.h"

namespace moerun::quant::detail {

template <class Block>
void dequantize_blocks(Type t, const void *src, float *dst, int64_t n) {
    const int64_t nb = row_blocks(t, n, "dequantize_row");
    const int64_t bs = block_size(t);
    const auto *p = static_cast<const unsigned char *>(src);
    for (int64_t i = 0; i < nb; ++i) {
        Block b;
        std::memcpy(&b, p + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
        dequantize_block(b, dst + i * bs);
    }
}

template <class Block>
void quantize_blocks(Type t, const float *src, void *dst, int64_t n) {
    const int64_t nb = row_blocks(t, n, "quantize_row");
    const int64_t bs = block_size(t);
    auto *p = static_cast<unsigned char *>(dst);
    for (int64_t i = 0; i < nb; ++i) {
        Block b{};
        quantize_block(src + i * bs, b);
        std::memcpy(p + i * static_cast<int64_t>(sizeof(Block)), &b, sizeof(Block));
    }
}

}  // namespace moerun::quant::detail
