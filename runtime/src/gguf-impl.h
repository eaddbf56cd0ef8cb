// Private parts of the GGUF reader shared by gguf-parser.cpp, gguf-file.cpp and gguf-value.cpp.
//
// GgufFile::Impl owns the bytes (a read-only private mapping, or a copy for from_memory) and
// the parsed tables, whose string_views point into those bytes. parse() fills the tables and
// throws gguf::Error on the first problem; it reads only through Cursor, which checks every
// read against the end of the file before touching memory.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "moerun/runtime/gguf.h"

namespace moerun::gguf {

// Limits on untrusted input (the format itself allows more; no real file comes near these).
inline constexpr uint64_t kMaxKeyBytes = 65535;    // keys and tensor names (gguf spec: keys <= 2^16 - 1)
inline constexpr uint32_t kMaxArrayDepth = 8;      // array of array of ... (real files: 1)
inline constexpr uint32_t kMaxDims = 4;            // GGML_MAX_DIMS
inline constexpr uint32_t kDefaultAlignment = 32;  // GGUF_DEFAULT_ALIGNMENT
inline constexpr uint64_t kHeaderBytes = 24;       // magic, version, n_tensors, n_kv
// Smallest encodings, used to bound counts by the bytes that remain before allocating anything.
inline constexpr uint64_t kMinKvBytes = 8 + 4 + 1;  // key length, type, 1-byte value
inline constexpr uint64_t kMinTensorInfoBytes =
    8 + 4 + 8 + 4 + 8;  // name length, n_dims, ne[0], type, offset

struct GgufFile::Impl {
    std::string path;
    const uint8_t *base = nullptr;  // the whole file
    uint64_t size = 0;
    void *map = nullptr;  // mmap'ed region (open), or nullptr
    size_t map_len = 0;
    std::vector<uint8_t> owned;  // copy (from_memory)

    uint32_t version = 0;
    uint32_t alignment = kDefaultAlignment;
    uint64_t data_offset = 0;
    std::vector<KeyValue> kv;
    std::vector<TensorInfo> tensors;
    std::unordered_map<std::string_view, size_t> kv_index;
    std::unordered_map<std::string_view, size_t> tensor_index;

    Impl() = default;
    Impl(const Impl &) = delete;
    Impl &operator=(const Impl &) = delete;
    ~Impl();

    [[noreturn]] void fail(uint64_t offset, std::string_view field, const std::string &message) const;
    // Parses base[0, size) into the tables above.
    void parse();
};

// Byte size of one element of a fixed-size value type; 0 for STRING and ARRAY.
uint64_t fixed_size(ValueType t);
bool is_integer(ValueType t);
bool is_float(ValueType t);
bool valid_value_type(uint32_t raw);

// Little-endian loads from possibly unaligned bytes (the caller has checked the bounds).
template <typename T>
T load_le(const uint8_t *p) {
    static_assert(sizeof(T) <= 8);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t{p[i]} << (8 * i);
    if constexpr (std::is_same_v<T, float>) {
        return std::bit_cast<float>(static_cast<uint32_t>(v));
    } else if constexpr (std::is_same_v<T, double>) {
        return std::bit_cast<double>(v);
    } else {
        return static_cast<T>(v);
    }
}

// Printable, bounded rendering of untrusted text for error messages: control and non-ASCII bytes as
// \xNN, cut at `max` bytes with "...".
std::string printable(std::string_view s, size_t max = 80);

}  // namespace moerun::gguf
