// oracle_file.h -- reader for the logits files written by tests/oracle/llama_oracle.py (header-only).
//
// Layout (little-endian):
//   char    magic[8] = "MOELOGIT"
//   uint32  version = 1
//   uint32  n_tokens            prompt + generated
//   uint32  n_vocab
//   uint32  n_prompt            tokens[n_prompt:] were generated greedily by llama.cpp
//   int32   tokens[n_tokens]
//   float32 logits[n_tokens][n_vocab]   logits[i]: llama.cpp's output after tokens[0..i]
//
// Usage:
//   moerun::test::OracleLogits ref = moerun::test::read_oracle_logits("x.bin");   // throws on error
//                                    (read_logits_file is the same function)
//   const float * row = ref.row(i);                                              // [n_vocab]
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace moerun::test {

struct OracleLogits {
    uint32_t n_tokens = 0;
    uint32_t n_vocab = 0;
    uint32_t n_prompt = 0;
    std::vector<int32_t> tokens;  // [n_tokens]
    std::vector<float> logits;    // [n_tokens * n_vocab], row-major

    const float *row(size_t i) const { return logits.data() + i * size_t(n_vocab); }

    // index of the largest logit of row i (lowest index on ties, like llama_oracle.py's greedy)
    int32_t argmax(size_t i) const {
        const float *r = row(i);
        uint32_t best = 0;
        for (uint32_t v = 1; v < n_vocab; ++v) {
            if (r[v] > r[best]) best = v;
        }
        return int32_t(best);
    }
};

namespace detail {
inline uint32_t load_u32_le(const unsigned char *p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline bool host_is_little_endian() {
    const uint32_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
}
}  // namespace detail

inline OracleLogits read_oracle_logits(const std::string &path) {
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f) throw std::runtime_error("oracle file: cannot open " + path);
    const std::streamoff size = f.tellg();
    f.seekg(0);
    constexpr size_t header_size = 24;
    unsigned char h[header_size];
    if (size < std::streamoff(header_size) || !f.read(reinterpret_cast<char *>(h), header_size)) {
        throw std::runtime_error("oracle file: truncated header in " + path);
    }
    if (std::memcmp(h, "MOELOGIT", 8) != 0) throw std::runtime_error("oracle file: bad magic in " + path);
    const uint32_t version = detail::load_u32_le(h + 8);
    if (version != 1)
        throw std::runtime_error("oracle file: unsupported version " + std::to_string(version) + " in " +
                                 path);
    if (!detail::host_is_little_endian())
        throw std::runtime_error("oracle file: big-endian hosts not supported");

    OracleLogits r;
    r.n_tokens = detail::load_u32_le(h + 12);
    r.n_vocab = detail::load_u32_le(h + 16);
    r.n_prompt = detail::load_u32_le(h + 20);
    const uint64_t n_logits = uint64_t(r.n_tokens) * r.n_vocab;
    const uint64_t expect = header_size + 4ull * r.n_tokens + 4ull * n_logits;
    if (r.n_prompt > r.n_tokens || uint64_t(size) != expect) {
        throw std::runtime_error("oracle file: size " + std::to_string(size) +
                                 " does not match header (expected " + std::to_string(expect) + ") in " +
                                 path);
    }
    r.tokens.resize(r.n_tokens);
    r.logits.resize(n_logits);
    if (!f.read(reinterpret_cast<char *>(r.tokens.data()), std::streamsize(4ull * r.n_tokens)) ||
        !f.read(reinterpret_cast<char *>(r.logits.data()), std::streamsize(4ull * n_logits))) {
        throw std::runtime_error("oracle file: short read in " + path);
    }
    return r;
}

// Same as read_oracle_logits (the name some tests use).
inline OracleLogits read_logits_file(const std::string &path) {
    return read_oracle_logits(path);
}

}  // namespace moerun::test
