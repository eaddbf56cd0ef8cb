// GGUF metadata values: type names and sizes, array element access, printable text.
#include <stdexcept>

#include "gguf-impl.h"

namespace moerun::gguf {

std::string_view value_type_name(ValueType t) {
    switch (t) {
        case ValueType::UINT8:
            return "uint8";
        case ValueType::INT8:
            return "int8";
        case ValueType::UINT16:
            return "uint16";
        case ValueType::INT16:
            return "int16";
        case ValueType::UINT32:
            return "uint32";
        case ValueType::INT32:
            return "int32";
        case ValueType::FLOAT32:
            return "float32";
        case ValueType::BOOL:
            return "bool";
        case ValueType::STRING:
            return "string";
        case ValueType::ARRAY:
            return "array";
        case ValueType::UINT64:
            return "uint64";
        case ValueType::INT64:
            return "int64";
        case ValueType::FLOAT64:
            return "float64";
    }
    return "unknown";
}

bool valid_value_type(uint32_t raw) {
    return raw <= static_cast<uint32_t>(ValueType::FLOAT64);
}

uint64_t fixed_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8:
        case ValueType::INT8:
        case ValueType::BOOL:
            return 1;
        case ValueType::UINT16:
        case ValueType::INT16:
            return 2;
        case ValueType::UINT32:
        case ValueType::INT32:
        case ValueType::FLOAT32:
            return 4;
        case ValueType::UINT64:
        case ValueType::INT64:
        case ValueType::FLOAT64:
            return 8;
        case ValueType::STRING:
        case ValueType::ARRAY:
            return 0;
    }
    return 0;
}

bool is_integer(ValueType t) {
    switch (t) {
        case ValueType::UINT8:
        case ValueType::INT8:
        case ValueType::UINT16:
        case ValueType::INT16:
        case ValueType::UINT32:
        case ValueType::INT32:
        case ValueType::UINT64:
        case ValueType::INT64:
            return true;
        default:
            return false;
    }
}

bool is_float(ValueType t) {
    return t == ValueType::FLOAT32 || t == ValueType::FLOAT64;
}

std::string printable(std::string_view s, size_t max) {
    std::string out;
    const size_t n = std::min(s.size(), max);
    out.reserve(n + 3);
    for (size_t i = 0; i < n; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        }
    }
    if (s.size() > max) out += "...";
    return out;
}

namespace {

// Element i of a numeric array, as the widest type of its kind.
struct Scalar {
    enum { U, I, F } kind;
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
};

Scalar element(const Array &a, uint64_t i) {
    if (i >= a.count)
        throw std::out_of_range("array index " + std::to_string(i) + " out of range (" +
                                std::to_string(a.count) + " elements)");
    const uint64_t size = fixed_size(a.elem_type);
    if (size == 0 || a.raw.size() / size < a.count)
        throw std::invalid_argument("array of " + std::string(value_type_name(a.elem_type)) +
                                    " has no numeric elements");
    const uint8_t *p = a.raw.data() + i * size;
    switch (a.elem_type) {
        case ValueType::UINT8:
            return {Scalar::U, load_le<uint8_t>(p)};
        case ValueType::UINT16:
            return {Scalar::U, load_le<uint16_t>(p)};
        case ValueType::UINT32:
            return {Scalar::U, load_le<uint32_t>(p)};
        case ValueType::UINT64:
            return {Scalar::U, load_le<uint64_t>(p)};
        case ValueType::BOOL:
            return {Scalar::U, uint64_t{p[0] != 0}};
        case ValueType::INT8:
            return {Scalar::I, 0, load_le<int8_t>(p)};
        case ValueType::INT16:
            return {Scalar::I, 0, load_le<int16_t>(p)};
        case ValueType::INT32:
            return {Scalar::I, 0, load_le<int32_t>(p)};
        case ValueType::INT64:
            return {Scalar::I, 0, load_le<int64_t>(p)};
        case ValueType::FLOAT32:
            return {Scalar::F, 0, 0, load_le<float>(p)};
        case ValueType::FLOAT64:
            return {Scalar::F, 0, 0, load_le<double>(p)};
        default:
            break;
    }
    throw std::invalid_argument("array of " + std::string(value_type_name(a.elem_type)) +
                                " has no numeric elements");
}

}  // namespace

int64_t Array::get_int(uint64_t i) const {
    const Scalar s = element(*this, i);
    if (elem_type == ValueType::BOOL || s.kind == Scalar::F)
        throw std::invalid_argument("array of " + std::string(value_type_name(elem_type)) +
                                    " read as an integer");
    if (s.kind == Scalar::I) return s.i;
    if (s.u > static_cast<uint64_t>(INT64_MAX))
        throw std::out_of_range("array element " + std::to_string(i) + " = " + std::to_string(s.u) +
                                " does not fit in int64");
    return static_cast<int64_t>(s.u);
}

double Array::get_float(uint64_t i) const {
    const Scalar s = element(*this, i);
    if (elem_type == ValueType::BOOL) throw std::invalid_argument("array of bool read as a float");
    switch (s.kind) {
        case Scalar::U:
            return static_cast<double>(s.u);
        case Scalar::I:
            return static_cast<double>(s.i);
        case Scalar::F:
            return s.f;
    }
    return s.f;
}

}  // namespace moerun::gguf
