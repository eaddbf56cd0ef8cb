// Private parts of the trace readers and writers (trace-read.cpp, trace-check.cpp,
// trace-native.cpp, trace-moetrc.cpp, trace-csv.cpp).
//
// Every reader works on the whole file in memory and reads it only through ByteReader, which
// checks each read against the end of the buffer and throws TraceError
// "<name>: offset N: <field>: <message>". Counts are bounded by the bytes that remain before
// anything is allocated; ExpertChecker validates one (token, layer) list of expert ids.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "moerun/cache/trace.h"

namespace moerun::cache::trace_detail {

// Limits on untrusted input, shared by every format.
inline constexpr uint32_t kMaxLayers = 4096;
inline constexpr uint32_t kMaxExperts = 65536;  // ids are u16
inline constexpr uint32_t kMaxModelBytes = 4096;

// moerun's own format (cache/TRACE.md).
inline constexpr char kNativeMagic[8] = {'M', 'R', 'N', 'T', 'R', 'A', 'C', 'E'};
inline constexpr uint32_t kNativeVersion = 1;
inline constexpr uint32_t kFlagHasWeights = 1u << 0;
inline constexpr uint32_t kKnownFlags = kFlagHasWeights;
inline constexpr uint32_t kOpenSequences = UINT32_MAX;  // n_sequences while the writer is open
inline constexpr uint64_t kOpenTokens = UINT64_MAX;     // n_tokens of a sequence being written
inline constexpr uint64_t kNativeSequenceHeaderBytes = 4 + 4 + 4 + 8;
inline constexpr uint64_t kNativeSectionHeaderBytes = 4 + 4 + 8;
inline constexpr uint32_t kSectionRequired = 1u << 0;

// The MOETRC01 format of ../shared/data/traces (shared/data/README.md).
inline constexpr char kMoetrcMagic[8] = {'M', 'O', 'E', 'T', 'R', 'C', '0', '1'};

// "<name>: <where>: <field>: <message>", thrown as TraceError.
[[noreturn]] void fail(const std::string &name, const std::string &where, std::string_view field,
                       const std::string &message);
[[noreturn]] inline void fail_at(const std::string &name, uint64_t offset, std::string_view field,
                                 const std::string &message) {
    fail(name, "offset " + std::to_string(offset), field, message);
}

// Little-endian load from possibly unaligned bytes (bounds checked by the caller).
template <typename T>
T load_le(const uint8_t *p) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8);
    if constexpr (std::endian::native == std::endian::little) {
        T v;
        std::memcpy(&v, p, sizeof(T));
        return v;
    } else {
        uint64_t u = 0;
        for (size_t i = 0; i < sizeof(T); ++i) u |= uint64_t{p[i]} << (8 * i);
        if constexpr (std::is_same_v<T, float>) return std::bit_cast<float>(static_cast<uint32_t>(u));
        return static_cast<T>(u);
    }
}

// Little-endian store to possibly unaligned bytes.
template <typename T>
void store_le(uint8_t *p, T v) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8);
    if constexpr (std::endian::native == std::endian::little) {
        std::memcpy(p, &v, sizeof(T));
    } else {
        uint64_t u;
        if constexpr (std::is_same_v<T, float>)
            u = std::bit_cast<uint32_t>(v);
        else
            u = static_cast<uint64_t>(v);
        for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(u >> (8 * i));
    }
}

// Reads an untrusted buffer front to back; every read is bounds-checked.
class ByteReader {
  public:
    ByteReader(std::span<const uint8_t> bytes, const std::string &name) : bytes_(bytes), name_(name) {}

    uint64_t pos() const { return pos_; }
    uint64_t size() const { return bytes_.size(); }
    uint64_t remaining() const { return bytes_.size() - pos_; }
    const std::string &name() const { return name_; }
    void seek(uint64_t pos) { pos_ = pos; }  // pos <= size(), an offset already read past

    // n bytes at the cursor, which then advances past them; `what` names them in the error.
    const uint8_t *take(uint64_t n, std::string_view field, std::string_view what);
    template <typename T>
    T read(std::string_view field) {
        return load_le<T>(take(sizeof(T), field, field));
    }
    [[noreturn]] void fail(uint64_t offset, std::string_view field, const std::string &message) const {
        fail_at(name_, offset, field, message);
    }

  private:
    std::span<const uint8_t> bytes_;
    const std::string &name_;
    uint64_t pos_ = 0;
};

// Checks the expert ids of one (token, layer): each < n_experts, none repeated. O(top_k) per
// call: stamp[e] holds the tick of the last list that used expert e ([n_experts], allocated
// once), and each call takes a new tick. Returns the rank of the first bad id, or -1 when all
// are fine; *why then says what is wrong.
int64_t check_expert_ids(std::span<const uint16_t> ids, uint32_t n_experts, std::vector<uint64_t> &stamp,
                         uint64_t &tick, std::string *why);

class ExpertChecker {
  public:
    explicit ExpertChecker(uint32_t n_experts) : n_experts_(n_experts), stamp_(n_experts, 0) {}
    int64_t check(std::span<const uint16_t> ids, std::string *why) {
        return check_expert_ids(ids, n_experts_, stamp_, tick_, why);
    }

  private:
    uint32_t n_experts_;
    std::vector<uint64_t> stamp_;
    uint64_t tick_ = 0;
};

// Checks n_layers, n_experts and top_k of a binary header, three consecutive u32 starting at
// byte `at`: 1 <= n_layers <= kMaxLayers, 1 <= n_experts <= kMaxExperts, 1 <= top_k <= n_experts.
void check_shape(const std::string &name, uint64_t at, uint32_t n_layers, uint32_t n_experts, uint32_t top_k);

// Bytes needed for `count` records of `bytes` each, or UINT64_MAX when that overflows.
inline uint64_t mul_or_max(uint64_t count, uint64_t bytes) {
    uint64_t r;
    return __builtin_mul_overflow(count, bytes, &r) ? UINT64_MAX : r;
}

// Byte index of the first invalid UTF-8 sequence in s, or -1 when s is valid UTF-8 (no
// overlongs, no surrogates, <= U+10FFFF) and has no NUL.
int64_t invalid_utf8_at(std::string_view s);

// Printable, bounded rendering of untrusted bytes for error messages.
std::string printable(std::string_view s, size_t max = 40);
std::string quoted(std::string_view s);  // printable(s) in double quotes
std::string hex_bytes(std::span<const uint8_t> b);

// Validates a shape to write (limits, expert_bytes size, model name); errors name `name`.
void check_trace_shape(const std::string &name, const TraceShape &s);
// Validates an in-memory trace before writing it (sizes consistent, ids, duplicates, weights,
// prefill flags, token ids, model name). Errors name `name` and the token.
void check_trace(const std::string &name, const Trace &t);

// The readers, each on a whole file in memory (magic already identified by read_trace_bytes).
Trace read_native(std::span<const uint8_t> bytes, const std::string &name);
Trace read_moetrc(std::span<const uint8_t> bytes, const std::string &name);
Trace read_csv(std::span<const uint8_t> bytes, const std::string &name);

}  // namespace moerun::cache::trace_detail
