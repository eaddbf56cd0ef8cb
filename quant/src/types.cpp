// The GGUF type table: block geometry for every ggml_type id (sizes as in ggml / gguf-py).
#include "moerun/quant/types.h"

#include <array>
#include <cctype>

#include "moerun/quant/blocks.h"

namespace moerun::quant {
namespace {

constexpr std::array kTable = {
    TypeTraits{Type::F32, "F32", 1, 4, true},
    TypeTraits{Type::F16, "F16", 1, 2, true},
    TypeTraits{Type::Q4_0, "Q4_0", 32, 18, true},
    TypeTraits{Type::Q4_1, "Q4_1", 32, 20, true},
    TypeTraits{Type::Q5_0, "Q5_0", 32, 22, true},
    TypeTraits{Type::Q5_1, "Q5_1", 32, 24, true},
    TypeTraits{Type::Q8_0, "Q8_0", 32, 34, true},
    TypeTraits{Type::Q8_1, "Q8_1", 32, 40, false},
    TypeTraits{Type::Q2_K, "Q2_K", 256, 84, true},
    TypeTraits{Type::Q3_K, "Q3_K", 256, 110, true},
    TypeTraits{Type::Q4_K, "Q4_K", 256, 144, true},
    TypeTraits{Type::Q5_K, "Q5_K", 256, 176, true},
    TypeTraits{Type::Q6_K, "Q6_K", 256, 210, true},
    TypeTraits{Type::Q8_K, "Q8_K", 256, 292, false},
    TypeTraits{Type::IQ2_XXS, "IQ2_XXS", 256, 66, false},
    TypeTraits{Type::IQ2_XS, "IQ2_XS", 256, 74, false},
    TypeTraits{Type::IQ3_XXS, "IQ3_XXS", 256, 98, false},
    TypeTraits{Type::IQ1_S, "IQ1_S", 256, 50, false},
    TypeTraits{Type::IQ4_NL, "IQ4_NL", 32, 18, true},
    TypeTraits{Type::IQ3_S, "IQ3_S", 256, 110, false},
    TypeTraits{Type::IQ2_S, "IQ2_S", 256, 82, false},
    TypeTraits{Type::IQ4_XS, "IQ4_XS", 256, 136, true},
    TypeTraits{Type::I8, "I8", 1, 1, false},
    TypeTraits{Type::I16, "I16", 1, 2, false},
    TypeTraits{Type::I32, "I32", 1, 4, false},
    TypeTraits{Type::I64, "I64", 1, 8, false},
    TypeTraits{Type::F64, "F64", 1, 8, false},
    TypeTraits{Type::IQ1_M, "IQ1_M", 256, 56, false},
    TypeTraits{Type::BF16, "BF16", 1, 2, true},
    TypeTraits{Type::TQ1_0, "TQ1_0", 256, 54, false},
    TypeTraits{Type::TQ2_0, "TQ2_0", 256, 66, false},
    TypeTraits{Type::MXFP4, "MXFP4", 32, 17, false},
};

// The block structs of blocks.h must agree with the table.
constexpr bool table_agrees(Type t, size_t block_bytes, int elements) {
    for (const auto &e : kTable)
        if (e.type == t) return e.type_size == block_bytes && e.block_size == static_cast<uint32_t>(elements);
    return false;
}
static_assert(table_agrees(Type::Q4_0, sizeof(BlockQ4_0), QK4_0));
static_assert(table_agrees(Type::Q4_1, sizeof(BlockQ4_1), QK4_1));
static_assert(table_agrees(Type::IQ4_NL, sizeof(BlockIQ4_NL), 32));
static_assert(table_agrees(Type::IQ4_XS, sizeof(BlockIQ4_XS), QK_K));
static_assert(table_agrees(Type::Q5_0, sizeof(BlockQ5_0), QK5_0));
static_assert(table_agrees(Type::Q5_1, sizeof(BlockQ5_1), QK5_1));
static_assert(table_agrees(Type::Q8_0, sizeof(BlockQ8_0), QK8_0));
static_assert(table_agrees(Type::Q2_K, sizeof(BlockQ2_K), QK_K));
static_assert(table_agrees(Type::Q3_K, sizeof(BlockQ3_K), QK_K));
static_assert(table_agrees(Type::Q4_K, sizeof(BlockQ4_K), QK_K));
static_assert(table_agrees(Type::Q5_K, sizeof(BlockQ5_K), QK_K));
static_assert(table_agrees(Type::Q6_K, sizeof(BlockQ6_K), QK_K));

}  // namespace

std::optional<TypeTraits> traits(uint32_t raw_type) {
    for (const auto &t : kTable)
        if (static_cast<uint32_t>(t.type) == raw_type) return t;
    return std::nullopt;
}

const TypeTraits &traits(Type t) {
    for (const auto &e : kTable)
        if (e.type == t) return e;
    return kTable[0];  // unreachable for valid enum values
}

std::optional<uint64_t> row_bytes(Type t, uint64_t n) {
    const auto &tr = traits(t);
    if (n % tr.block_size != 0) return std::nullopt;
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(n / tr.block_size, uint64_t{tr.type_size}, &bytes)) return std::nullopt;
    return bytes;
}

std::optional<Type> type_from_name(std::string_view name) {
    for (const auto &t : kTable) {
        if (t.name.size() != name.size()) continue;
        bool eq = true;
        for (size_t i = 0; i < name.size() && eq; ++i)
            eq = std::toupper(static_cast<unsigned char>(name[i])) == t.name[i];
        if (eq) return t.type;
    }
    return std::nullopt;
}

}  // namespace moerun::quant
