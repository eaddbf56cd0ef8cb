// Tensor element types as numbered in GGUF (the ggml_type ids), with their block geometry.
//
// A row of `n` elements of type `t` occupies n / block_size(t) blocks of type_size(t) bytes;
// n must be a multiple of block_size(t). The table covers every id a GGUF may carry, so a
// file can be sized and inspected even where moerun cannot yet compute with the type
// (`has_dequant` says which it can).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace moerun::quant {

enum class Type : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
};

struct TypeTraits {
    Type type;
    std::string_view name;
    uint32_t block_size;  // elements per block
    uint32_t type_size;   // bytes per block
    bool has_dequant;     // moerun has a reference dequantizer for it
};

// Traits for a raw GGUF type id; nullopt for ids that are unknown or retired.
std::optional<TypeTraits> traits(uint32_t raw_type);
const TypeTraits &traits(Type t);

inline std::string_view type_name(Type t) {
    return traits(t).name;
}
inline uint32_t block_size(Type t) {
    return traits(t).block_size;
}
inline uint32_t type_size(Type t) {
    return traits(t).type_size;
}

// Bytes of a row of n elements; nullopt when n is not a multiple of the block size or the size overflows.
std::optional<uint64_t> row_bytes(Type t, uint64_t n);

// Parses a type name as written by llama.cpp ("Q4_K", "f16", ...); case-insensitive.
std::optional<Type> type_from_name(std::string_view name);

}  // namespace moerun::quant
