// Argument checks shared by the row functions of dequant / quantize (internal).
#pragma once

#include <cstdint>

#include "moerun/quant/types.h"

namespace moerun::quant::detail {

// Blocks in a row of n elements of type t. Throws std::invalid_argument naming `what` and the type
// when n is negative or not a multiple of the block size.
int64_t row_blocks(Type t, int64_t n, const char *what);

}  // namespace moerun::quant::detail
