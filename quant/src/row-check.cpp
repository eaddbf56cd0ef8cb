#include "row-check.h"

#include <stdexcept>
#include <string>

namespace moerun::quant::detail {

int64_t row_blocks(Type t, int64_t n, const char *what) {
    const int64_t bs = block_size(t);
    if (n < 0 || n % bs != 0) {
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(n) + " elements of " +
                                    std::string(type_name(t)) + " (block size " + std::to_string(bs) +
                                    ") is not a whole number of blocks");
    }
    return n / bs;
}

}  // namespace moerun::quant::detail
