// GGUF parser: header, metadata, tensor infos and the data layout, from untrusted bytes.
//
// Everything is read through Cursor, which checks each read against the end of the file
// before touching memory. Counts and lengths are bounded by the bytes that remain (each
// element has a smallest encoding) before anything is allocated, arithmetic on file values
// uses __builtin_*_overflow, and every failure throws gguf::Error with the byte offset and a
// field path such as `kv[12] 'tokenizer.ggml.tokens'[4017]` or `tensor[3] 'blk.0.ffn_up_exps.weight' ne[0]`.
//
// What is checked, beyond "every read is in bounds":
//   header   magic "GGUF"; version 2 or 3 (1 and big-endian files are named as such);
//            n_tensors and n_kv fit in the remaining bytes
//   metadata keys <= 65535 bytes, unique; value types 0..12; bools 0 or 1; strings and arrays fit
//            in the file; arrays nested at most 8 deep; general.alignment a u32 power of two
//   tensors  names unique; n_dims 1..4; each ne >= 1 and < 2^63; element count < 2^63; type id
//            known; ne[0] a multiple of the type's block size; byte size representable; offset a
//            multiple of the alignment; data inside the file; no two tensors' data overlap
// ggml accepts n_dims 0 and ne 0 (empty tensors); no model file uses them and the runtime has
// no use for them, so they are rejected here. ggml further requires the tensors' data to be
// packed in info order; we only require in-bounds, aligned and non-overlapping data.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "gguf-impl.h"

namespace moerun::gguf {
namespace {

// A field path, rendered only when an error is thrown: parent's text + text + "[index]".
struct Field {
    const Field *parent = nullptr;
    std::string_view text;
    uint64_t index = kNoIndex;

    static constexpr uint64_t kNoIndex = UINT64_MAX;

    std::string str() const {
        std::string s = parent ? parent->str() : std::string();
        s += text;
        if (index != kNoIndex) s += "[" + std::to_string(index) + "]";
        return s;
    }
};

class Cursor {
  public:
    explicit Cursor(const GgufFile::Impl &f) : f_(f) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return f_.size - pos_; }

    // n bytes at the cursor, which then advances past them.
    const uint8_t *take(uint64_t n, const Field &field, std::string_view what) {
        if (n > remaining())
            f_.fail(pos_, field.str(),
                    "unexpected end of file: " + std::string(what) + " needs " + std::to_string(n) +
                        " bytes but only " + std::to_string(remaining()) + " remain (file size " +
                        std::to_string(f_.size) + ")");
        const uint8_t *p = f_.base + pos_;
        pos_ += n;
        return p;
    }

    template <typename T>
    T read(const Field &field, std::string_view what) {
        return load_le<T>(take(sizeof(T), field, what));
    }

    // string = u64 length + bytes; the length must be <= max_len (when limited) and fit in the file.
    std::string_view read_string(const Field &field, uint64_t max_len) {
        const uint64_t at = pos_;
        const auto len = read<uint64_t>(field, "string length");
        if (max_len != UINT64_MAX && len > max_len)
            f_.fail(at, field.str(),
                    "string length " + std::to_string(len) + " exceeds the limit of " +
                        std::to_string(max_len) + " bytes");
        if (len > remaining())
            f_.fail(at, field.str(),
                    "string length " + std::to_string(len) + " exceeds the " + std::to_string(remaining()) +
                        " remaining bytes");
        const uint8_t *p = take(len, field, "string");
        return {reinterpret_cast<const char *>(p), static_cast<size_t>(len)};
    }

  private:
    const GgufFile::Impl &f_;
    uint64_t pos_ = 0;
};

// Smallest encoding of one array element of type t: fixed scalars their size, a string its
// length prefix, an array its element type and count.
uint64_t min_element_bytes(ValueType t) {
    if (t == ValueType::STRING) return 8;
    if (t == ValueType::ARRAY) return 4 + 8;
    return fixed_size(t);
}

std::string type_list_hint() {
    return "expected 0..12 (uint8 .. float64)";
}

class Parser {
  public:
    explicit Parser(GgufFile::Impl &f) : f_(f), c_(f) {}

    void run() {
        header();
        metadata();
        alignment();
        tensor_infos();
        layout();
    }

  private:
    GgufFile::Impl &f_;
    Cursor c_;
    uint64_t n_tensors_ = 0;
    uint64_t n_kv_ = 0;
    std::vector<uint64_t> offset_field_at_;  // per tensor: file offset of its `offset` field

    void header() {
        const Field magic_field{nullptr, "magic"};
        if (f_.size < 4)
            f_.fail(0, "magic",
                    "file is " + std::to_string(f_.size) + " bytes, too short for a GGUF header (" +
                        std::to_string(kHeaderBytes) + " bytes)");
        const uint8_t *m = c_.take(4, magic_field, "magic");
        if (std::memcmp(m, "GGUF", 4) != 0) {
            if (std::memcmp(m, "FUGG", 4) == 0)
                f_.fail(
                    0, "magic",
                    "found \"FUGG\": this is a big-endian GGUF file; only little-endian files are supported");
            char hex[64];
            std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", m[0], m[1], m[2], m[3]);
            f_.fail(0, "magic",
                    std::string("expected \"GGUF\" (47 47 55 46), found ") + hex + " (\"" +
                        printable(std::string_view(reinterpret_cast<const char *>(m), 4)) +
                        "\"): not a GGUF file");
        }

        const auto version = c_.read<uint32_t>(Field{nullptr, "version"}, "version");
        if (version == 1)
            f_.fail(4, "version",
                    "GGUF v1 is not supported (it used 32-bit counts and lengths); convert the model again "
                    "with a current llama.cpp or gguf-py");
        const uint32_t swapped = __builtin_bswap32(version);
        if (version != 0 && (version & 0xFFFFu) == 0 && swapped >= 1 && swapped <= 3)
            f_.fail(4, "version",
                    "reads " + std::to_string(version) + ", which is version " + std::to_string(swapped) +
                        " byte-swapped: this is a big-endian GGUF file; only little-endian files are "
                        "supported");
        if (version != 2 && version != 3)
            f_.fail(4, "version", "unsupported version " + std::to_string(version) + ", expected 2 or 3");
        f_.version = version;

        n_tensors_ = c_.read<uint64_t>(Field{nullptr, "tensor_count"}, "tensor_count");
        n_kv_ = c_.read<uint64_t>(Field{nullptr, "kv_count"}, "kv_count");
        const uint64_t rest = c_.remaining();
        if (n_tensors_ > rest / kMinTensorInfoBytes)
            f_.fail(8, "tensor_count",
                    std::to_string(n_tensors_) + " tensors cannot fit in the " + std::to_string(rest) +
                        " remaining bytes (a tensor info takes at least " +
                        std::to_string(kMinTensorInfoBytes) + ")");
        if (n_kv_ > rest / kMinKvBytes)
            f_.fail(16, "kv_count",
                    std::to_string(n_kv_) + " key-value pairs cannot fit in the " + std::to_string(rest) +
                        " remaining bytes (a pair takes at least " + std::to_string(kMinKvBytes) + ")");
        // Both bounded above, so neither product overflows.
        if (n_tensors_ * kMinTensorInfoBytes + n_kv_ * kMinKvBytes > rest)
            f_.fail(16, "kv_count",
                    std::to_string(n_kv_) + " key-value pairs and " + std::to_string(n_tensors_) +
                        " tensors cannot fit in the " + std::to_string(rest) + " remaining bytes");
    }

    void metadata() {
        f_.kv.reserve(static_cast<size_t>(std::min<uint64_t>(n_kv_, 4096)));
        for (uint64_t i = 0; i < n_kv_; ++i) {
            const uint64_t entry_at = c_.pos();
            const std::string index_text = "kv[" + std::to_string(i) + "]";
            const std::string_view key = c_.read_string(Field{nullptr, index_text + ".key"}, kMaxKeyBytes);
            const std::string name = index_text + " '" + printable(key) + "'";
            const Field field{nullptr, name};
            if (auto it = f_.kv_index.find(key); it != f_.kv_index.end())
                f_.fail(entry_at, name,
                        "duplicate key (first defined by kv[" + std::to_string(it->second) + "])");

            const uint64_t type_at = c_.pos();
            const auto raw_type = c_.read<uint32_t>(Field{&field, " type"}, "value type");
            if (!valid_value_type(raw_type))
                f_.fail(type_at, name + " type",
                        "unknown value type " + std::to_string(raw_type) + ", " + type_list_hint());
            Value v = value(static_cast<ValueType>(raw_type), field, 0);
            f_.kv_index.emplace(key, f_.kv.size());
            f_.kv.push_back(KeyValue{key, std::move(v)});
        }
    }

    Value value(ValueType t, const Field &field, uint32_t depth) {
        Value v;
        v.type = t;
        v.offset = c_.pos();
        switch (t) {
            case ValueType::UINT8:
                v.v = uint64_t{c_.read<uint8_t>(field, "uint8")};
                break;
            case ValueType::UINT16:
                v.v = uint64_t{c_.read<uint16_t>(field, "uint16")};
                break;
            case ValueType::UINT32:
                v.v = uint64_t{c_.read<uint32_t>(field, "uint32")};
                break;
            case ValueType::UINT64:
                v.v = c_.read<uint64_t>(field, "uint64");
                break;
            case ValueType::INT8:
                v.v = int64_t{c_.read<int8_t>(field, "int8")};
                break;
            case ValueType::INT16:
                v.v = int64_t{c_.read<int16_t>(field, "int16")};
                break;
            case ValueType::INT32:
                v.v = int64_t{c_.read<int32_t>(field, "int32")};
                break;
            case ValueType::INT64:
                v.v = c_.read<int64_t>(field, "int64");
                break;
            case ValueType::FLOAT32:
                v.v = double{c_.read<float>(field, "float32")};
                break;
            case ValueType::FLOAT64:
                v.v = c_.read<double>(field, "float64");
                break;
            case ValueType::BOOL: {
                const auto b = c_.read<uint8_t>(field, "bool");
                if (b > 1)
                    f_.fail(v.offset, field.str(), "bool value " + std::to_string(b) + ", expected 0 or 1");
                v.v = b != 0;
                break;
            }
            case ValueType::STRING:
                v.v = c_.read_string(field, UINT64_MAX);
                break;
            case ValueType::ARRAY:
                v.v = array(field, depth + 1);
                break;
        }
        return v;
    }

    Array array(const Field &field, uint32_t depth) {
        if (depth > kMaxArrayDepth)
            f_.fail(c_.pos(), field.str(),
                    "arrays nested more than " + std::to_string(kMaxArrayDepth) + " levels deep");
        Array a;
        const uint64_t type_at = c_.pos();
        const auto raw_type = c_.read<uint32_t>(field, "array element type");
        if (!valid_value_type(raw_type))
            f_.fail(type_at, field.str(),
                    "unknown array element type " + std::to_string(raw_type) + ", " + type_list_hint());
        a.elem_type = static_cast<ValueType>(raw_type);
        const uint64_t count_at = c_.pos();
        a.count = c_.read<uint64_t>(field, "array count");
        const uint64_t min_bytes = min_element_bytes(a.elem_type);
        if (a.count > c_.remaining() / min_bytes)
            f_.fail(count_at, field.str(),
                    std::to_string(a.count) + " elements of type " +
                        std::string(value_type_name(a.elem_type)) + " cannot fit in the " +
                        std::to_string(c_.remaining()) + " remaining bytes");

        if (a.elem_type == ValueType::STRING) {
            a.strings.reserve(static_cast<size_t>(std::min<uint64_t>(a.count, 1u << 16)));
            for (uint64_t i = 0; i < a.count; ++i)
                a.strings.push_back(c_.read_string(Field{&field, {}, i}, UINT64_MAX));
        } else if (a.elem_type == ValueType::ARRAY) {
            a.arrays.reserve(static_cast<size_t>(std::min<uint64_t>(a.count, 1u << 12)));
            for (uint64_t i = 0; i < a.count; ++i) {
                Value ev;
                ev.type = ValueType::ARRAY;
                ev.offset = c_.pos();
                ev.v = array(Field{&field, {}, i}, depth + 1);
                a.arrays.push_back(std::move(ev));
            }
        } else {
            const uint64_t bytes = a.count * min_bytes;  // bounded by remaining() above
            const uint64_t at = c_.pos();
            const uint8_t *p = c_.take(bytes, field, "array data");
            a.raw = std::span<const uint8_t>(p, static_cast<size_t>(bytes));
            if (a.elem_type == ValueType::BOOL) {
                for (uint64_t i = 0; i < a.count; ++i)
                    if (p[i] > 1)
                        f_.fail(at + i, Field{&field, {}, i}.str(),
                                "bool value " + std::to_string(p[i]) + ", expected 0 or 1");
            }
        }
        return a;
    }

    void alignment() {
        auto it = f_.kv_index.find("general.alignment");
        if (it == f_.kv_index.end()) return;
        const Value &v = f_.kv[it->second].value;
        if (v.type != ValueType::UINT32)
            f_.fail(v.offset, "general.alignment",
                    "expected a uint32, found a " + std::string(value_type_name(v.type)));
        const uint64_t a = std::get<uint64_t>(v.v);
        if (a == 0 || (a & (a - 1)) != 0)
            f_.fail(v.offset, "general.alignment", std::to_string(a) + " is not a nonzero power of two");
        f_.alignment = static_cast<uint32_t>(a);
    }

    void tensor_infos() {
        const size_t reserve = static_cast<size_t>(std::min<uint64_t>(n_tensors_, 1u << 14));
        f_.tensors.reserve(reserve);
        offset_field_at_.reserve(reserve);
        for (uint64_t i = 0; i < n_tensors_; ++i) {
            TensorInfo t;
            t.info_offset = c_.pos();
            const std::string index_text = "tensor[" + std::to_string(i) + "]";
            t.name = c_.read_string(Field{nullptr, index_text + ".name"}, kMaxKeyBytes);
            const std::string name = index_text + " '" + printable(t.name) + "'";
            const Field tf{nullptr, name};
            if (auto it = f_.tensor_index.find(t.name); it != f_.tensor_index.end())
                f_.fail(t.info_offset, name,
                        "duplicate tensor name (first used by tensor[" + std::to_string(it->second) + "])");

            const uint64_t dims_at = c_.pos();
            t.n_dims = c_.read<uint32_t>(Field{&tf, " n_dims"}, "n_dims");
            if (t.n_dims == 0 || t.n_dims > kMaxDims)
                f_.fail(dims_at, name + " n_dims",
                        std::to_string(t.n_dims) + " dimensions, expected 1 to " + std::to_string(kMaxDims));
            uint64_t ne0_at = 0;
            for (uint32_t j = 0; j < t.n_dims; ++j) {
                const uint64_t at = c_.pos();
                if (j == 0) ne0_at = at;
                const Field nf{&tf, " ne", j};
                t.ne[j] = c_.read<uint64_t>(nf, "dimension");
                if (t.ne[j] == 0) f_.fail(at, nf.str(), "0 elements: every dimension must be at least 1");
                if (t.ne[j] > static_cast<uint64_t>(INT64_MAX))
                    f_.fail(at, nf.str(),
                            std::to_string(t.ne[j]) + " is negative as int64 (" +
                                std::to_string(static_cast<int64_t>(t.ne[j])) + ")");
            }
            uint64_t n = 1;
            for (uint32_t j = 0; j < kMaxDims; ++j) {
                if (__builtin_mul_overflow(n, t.ne[j], &n) || n > static_cast<uint64_t>(INT64_MAX))
                    f_.fail(dims_at, name + " shape",
                            "element count of " + shape_text(t) + " overflows int64");
            }

            const uint64_t type_at = c_.pos();
            const auto raw_type = c_.read<uint32_t>(Field{&tf, " type"}, "tensor type");
            const auto traits = quant::traits(raw_type);
            if (!traits)
                f_.fail(type_at, name + " type", "unknown tensor type id " + std::to_string(raw_type));
            t.type = traits->type;
            if (t.ne[0] % traits->block_size != 0)
                f_.fail(ne0_at, name + " ne[0]",
                        std::to_string(t.ne[0]) + " is not a multiple of the " + std::string(traits->name) +
                            " block size " + std::to_string(traits->block_size));
            const auto row = quant::row_bytes(t.type, t.ne[0]);
            uint64_t size = row.value_or(0);
            bool overflow = !row;
            for (uint32_t j = 1; j < kMaxDims; ++j)
                overflow = overflow || __builtin_mul_overflow(size, t.ne[j], &size);
            if (overflow)
                f_.fail(type_at, name + " size",
                        "byte size of " + shape_text(t) + " " + std::string(traits->name) + " overflows");
            t.size = size;

            const uint64_t offset_at = c_.pos();
            t.offset = c_.read<uint64_t>(Field{&tf, " offset"}, "tensor data offset");
            if (t.offset % f_.alignment != 0)
                f_.fail(offset_at, name + " offset",
                        std::to_string(t.offset) + " is not a multiple of the alignment " +
                            std::to_string(f_.alignment));

            f_.tensor_index.emplace(t.name, f_.tensors.size());
            f_.tensors.push_back(t);
            offset_field_at_.push_back(offset_at);
        }
    }

    static std::string shape_text(const TensorInfo &t) {
        std::string s = "[";
        for (uint32_t j = 0; j < t.n_dims; ++j) s += (j ? ", " : "") + std::to_string(t.ne[j]);
        return s + "]";
    }

    std::string tensor_name(size_t i) const {
        return "tensor[" + std::to_string(i) + "] '" + printable(f_.tensors[i].name) + "'";
    }

    void layout() {
        // Data section: first multiple of the alignment at or after the end of the tensor infos.
        // pos <= size, so adding alignment - 1 cannot overflow unless the file is near 2^64 bytes.
        uint64_t start = 0;
        if (__builtin_add_overflow(c_.pos(), uint64_t{f_.alignment} - 1, &start))
            f_.fail(c_.pos(), "data_offset", "data section offset overflows");
        f_.data_offset = start / f_.alignment * f_.alignment;

        for (size_t i = 0; i < f_.tensors.size(); ++i) {
            TensorInfo &t = f_.tensors[i];
            uint64_t end = 0;
            if (__builtin_add_overflow(f_.data_offset, t.offset, &t.file_offset) ||
                __builtin_add_overflow(t.file_offset, t.size, &end))
                f_.fail(offset_field_at_[i], tensor_name(i) + " offset",
                        "data offset " + std::to_string(t.offset) + " + size " + std::to_string(t.size) +
                            " overflows");
            if (end > f_.size)
                f_.fail(offset_field_at_[i], tensor_name(i) + " offset",
                        "data [" + std::to_string(t.file_offset) + ", " + std::to_string(end) +
                            ") lies outside the file (" + std::to_string(f_.size) +
                            " bytes; data section at " + std::to_string(f_.data_offset) + ", tensor offset " +
                            std::to_string(t.offset) + ", size " + std::to_string(t.size) + ")");
        }

        std::vector<size_t> order(f_.tensors.size());
        std::iota(order.begin(), order.end(), size_t{0});
        std::sort(order.begin(), order.end(),
                  [&](size_t a, size_t b) { return f_.tensors[a].file_offset < f_.tensors[b].file_offset; });
        for (size_t k = 1; k < order.size(); ++k) {
            const TensorInfo &prev = f_.tensors[order[k - 1]];
            const TensorInfo &cur = f_.tensors[order[k]];
            if (cur.file_offset < prev.file_offset + prev.size)
                f_.fail(offset_field_at_[order[k]], tensor_name(order[k]) + " offset",
                        "data [" + std::to_string(cur.file_offset) + ", " +
                            std::to_string(cur.file_offset + cur.size) + ") overlaps " +
                            tensor_name(order[k - 1]) + " [" + std::to_string(prev.file_offset) + ", " +
                            std::to_string(prev.file_offset + prev.size) + ")");
        }
    }
};

}  // namespace

void GgufFile::Impl::parse() {
    Parser(*this).run();
}

}  // namespace moerun::gguf
