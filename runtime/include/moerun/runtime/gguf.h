// GGUF reader: a hardened, memory-mapped, read-only view of a GGUF v2/v3 file.
//
// Layout (little-endian), as in ggml's docs/gguf.md:
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 type | u64 offset }
//   padding to general.alignment (default 32) | tensor data
//   string = u64 length + bytes (no terminator); array = u32 elem_type + u64 count + elems
//
// The file is untrusted: every count, length, offset and dimension is checked before use,
// and every failure throws gguf::Error naming the file, the byte offset and the field.
// Nothing is copied at open: strings and tensor data are views into the mapping, which
// lives as long as the GgufFile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "moerun/quant/types.h"

namespace moerun::gguf {

// An error in a GGUF file: what() reads "<file>: offset <N>: <field>: <message>".
class Error : public std::runtime_error {
  public:
    Error(std::string file, uint64_t offset, std::string field, const std::string &message);
    const std::string &file() const { return file_; }
    uint64_t offset() const { return offset_; }
    const std::string &field() const { return field_; }

  private:
    std::string file_;
    uint64_t offset_;
    std::string field_;
};

enum class ValueType : uint32_t {
    UINT8 = 0,
    INT8 = 1,
    UINT16 = 2,
    INT16 = 3,
    UINT32 = 4,
    INT32 = 5,
    FLOAT32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    UINT64 = 10,
    INT64 = 11,
    FLOAT64 = 12,
};
std::string_view value_type_name(ValueType t);

struct Value;

// An array value. Scalars of numeric/bool element type are kept as a view of the raw
// little-endian bytes in the file (`raw`, count * element size bytes, possibly unaligned);
// strings as views; nested arrays as values.
struct Array {
    ValueType elem_type = ValueType::UINT8;
    uint64_t count = 0;
    std::span<const uint8_t> raw;           // numeric / bool elements
    std::vector<std::string_view> strings;  // elem_type == STRING
    std::vector<Value> arrays;              // elem_type == ARRAY

    // Element i converted to the requested type; throws std::out_of_range / std::invalid_argument.
    int64_t get_int(uint64_t i) const;
    double get_float(uint64_t i) const;
};

struct Value {
    ValueType type = ValueType::UINT8;
    uint64_t offset = 0;  // file offset of the value (after the key and type)
    std::variant<uint64_t, int64_t, double, bool, std::string_view, Array> v;
};

struct KeyValue {
    std::string_view key;
    Value value;
};

struct TensorInfo {
    std::string_view name;
    uint32_t n_dims = 0;
    uint64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the innermost (row) dimension, as in ggml
    quant::Type type = quant::Type::F32;
    uint64_t offset = 0;       // relative to the data section, as stored
    uint64_t file_offset = 0;  // absolute byte offset of the data in the file
    uint64_t size = 0;         // bytes
    uint64_t info_offset = 0;  // file offset of this tensor's info record (for error messages)

    uint64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

// Byte range of one expert inside a stacked expert tensor [n_expert, rows, cols] (ne = {cols, rows,
// n_expert}).
struct ExpertSlice {
    uint64_t file_offset = 0;
    uint64_t size = 0;
};

class GgufFile {
  public:
    // Maps and parses `path`. Throws gguf::Error (bad content) or std::system_error (I/O).
    static GgufFile open(const std::string &path);
    // Parses an in-memory image (fuzzing, tests). The bytes are copied once.
    static GgufFile from_memory(std::string name, std::span<const uint8_t> bytes);
    // Another handle to this file's mapping and parse, not a second mapping (a C API context
    // shares its model's); the mapping lives while any handle does.
    GgufFile share() const { return GgufFile(impl_); }

    GgufFile(GgufFile &&) noexcept;
    GgufFile &operator=(GgufFile &&) noexcept;
    ~GgufFile();

    const std::string &path() const;
    uint32_t version() const;
    uint32_t alignment() const;
    uint64_t data_offset() const;  // absolute offset of the tensor data section
    uint64_t file_size() const;

    const std::vector<KeyValue> &metadata() const;
    const std::vector<TensorInfo> &tensors() const;

    // Lookups; nullptr when absent.
    const Value *find(std::string_view key) const;
    const TensorInfo *find_tensor(std::string_view name) const;

    // Typed metadata access. `get_*` throw gguf::Error naming the key when the key is
    // missing or has an incompatible type/range; `get_*_or` return the fallback when absent
    // (but still throw on a present value of the wrong type).
    std::string_view get_string(std::string_view key) const;
    uint64_t get_uint(std::string_view key) const;  // any integer type, must be >= 0
    int64_t get_int(std::string_view key) const;    // any integer type
    double get_float(std::string_view key) const;   // float32/float64 or any integer
    bool get_bool(std::string_view key) const;
    const Array &get_array(std::string_view key) const;
    std::optional<std::string_view> get_string_opt(std::string_view key) const;
    uint64_t get_uint_or(std::string_view key, uint64_t fallback) const;
    double get_float_or(std::string_view key, double fallback) const;
    bool get_bool_or(std::string_view key, bool fallback) const;
    const Array *get_array_opt(std::string_view key) const;

    // Tensor data as a view into the mapping (bounds were checked at open).
    std::span<const uint8_t> tensor_data(const TensorInfo &t) const;
    // Expert e of a stacked 3-D expert tensor; throws gguf::Error when t is not 3-D or e is out of range.
    ExpertSlice expert_slice(const TensorInfo &t, uint64_t expert) const;

    // Page-cache advice for the mapping (no-ops for in-memory files): random access for the whole
    // file (no readahead into expert bytes the cache reads itself), and read-ahead of a range.
    void advise_random() const;
    void advise_willneed(uint64_t offset, uint64_t size) const;
    void advise_willneed(std::span<const uint8_t> bytes) const;  // bytes inside the mapping
    // Drops the mapping's pages that lie wholly inside `bytes` from this process's memory (the
    // file is read-only, so a later read faults them in again from the file). Pages shared with
    // bytes outside the range are kept. Returns the bytes dropped; 0 for an in-memory file or a
    // range outside the mapping (nothing else is touched).
    uint64_t drop_pages(std::span<const uint8_t> bytes) const;

    // Throws a gguf::Error for this file at `offset` (for callers validating semantics).
    [[noreturn]] void fail(uint64_t offset, std::string_view field, const std::string &message) const;

    struct Impl;

  private:
    explicit GgufFile(std::shared_ptr<Impl> impl);
    std::shared_ptr<Impl> impl_;  // shared by share()'s handles
};

}  // namespace moerun::gguf
