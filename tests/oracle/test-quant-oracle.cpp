// Checks moerun's reference dequantization and quantization (quant/) bit for bit against gguf-py
// (gguf.quants), an independent implementation of the ggml block formats.
//
// The files come from tests/oracle/quant_blocks.py (format documented there), in the directory
// named by the environment variable MOERUN_QUANT_ORACLE_DIR. A missing or malformed file fails
// the test: it never skips.
//
// Exactness: every value must have the same bits as gguf-py's, with one exception: F16 -> F32 of
// a NaN only has to be a NaN of the same sign (numpy quiets NaN payloads or not depending on
// whether its conversion runs in software or on F16C hardware). No 1-ulp tolerance is needed:
// both sides round after every float operation, in the same order.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "moerun/quant/dequant.h"
#include "moerun/quant/quantize.h"
#include "moerun/quant/types.h"

namespace mq = moerun::quant;

namespace {

constexpr uint32_t kKindDequant = 0, kKindQuant = 1;

struct OracleFile {
    mq::Type type{};
    uint64_t n_blocks = 0;
    std::vector<unsigned char> blocks;  // [n_blocks * type_size]
    std::vector<float> values;          // [n_blocks * block_size]
};

std::string oracle_dir() {
    const char *dir = std::getenv("MOERUN_QUANT_ORACLE_DIR");
    return dir != nullptr ? std::string(dir) : std::string();
}

template <class T>
T read_le(const unsigned char *p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// Reads and validates one file; REQUIREs (fails the test) on any problem.
OracleFile load(mq::Type t, uint32_t kind) {
    const std::string dir = oracle_dir();
    REQUIRE_MESSAGE(!dir.empty(),
                    "MOERUN_QUANT_ORACLE_DIR is not set (run quant_blocks.py, see quant.cmake)");
    const std::string path =
        dir + "/" + (kind == kKindDequant ? "dequant-" : "quant-") + std::string(mq::type_name(t)) + ".bin";
    INFO("file ", path);
    std::ifstream f(path, std::ios::binary);
    REQUIRE_MESSAGE(f.good(), "oracle file missing: ", path);
    std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    REQUIRE(bytes.size() >= 32);
    REQUIRE(std::memcmp(bytes.data(), "MRQO", 4) == 0);
    REQUIRE(read_le<uint32_t>(&bytes[4]) == 1u);
    REQUIRE(read_le<uint32_t>(&bytes[8]) == static_cast<uint32_t>(t));
    REQUIRE(read_le<uint32_t>(&bytes[12]) == kind);
    OracleFile o;
    o.type = t;
    o.n_blocks = read_le<uint64_t>(&bytes[16]);
    REQUIRE(read_le<uint32_t>(&bytes[24]) == mq::block_size(t));
    REQUIRE(read_le<uint32_t>(&bytes[28]) == mq::type_size(t));
    REQUIRE(o.n_blocks > 0);
    const size_t nb = static_cast<size_t>(o.n_blocks);
    const size_t block_bytes = nb * mq::type_size(t);
    const size_t n_values = nb * mq::block_size(t);
    REQUIRE(bytes.size() == 32 + block_bytes + n_values * sizeof(float));
    o.blocks.resize(block_bytes);
    o.values.resize(n_values);
    const unsigned char *p = bytes.data() + 32;
    if (kind == kKindDequant) {
        std::memcpy(o.blocks.data(), p, block_bytes);
        std::memcpy(o.values.data(), p + block_bytes, n_values * sizeof(float));
    } else {
        std::memcpy(o.values.data(), p, n_values * sizeof(float));
        std::memcpy(o.blocks.data(), p + n_values * sizeof(float), block_bytes);
    }
    return o;
}

bool same_value(mq::Type t, float ours, float ref) {
    const uint32_t a = std::bit_cast<uint32_t>(ours), b = std::bit_cast<uint32_t>(ref);
    if (a == b) return true;
    return t == mq::Type::F16 && std::isnan(ours) && std::isnan(ref) && (a >> 31) == (b >> 31);
}

struct Totals {
    int types = 0;
    uint64_t blocks = 0;
};
Totals g_dequant, g_quant;

void check_dequant(mq::Type t) {
    const OracleFile o = load(t, kKindDequant);
    const int64_t n = static_cast<int64_t>(o.values.size());
    std::vector<float> ours(o.values.size());
    mq::dequantize_row(t, o.blocks.data(), ours.data(), n);
    const uint32_t bs = mq::block_size(t);
    uint64_t bad_blocks = 0;
    for (uint64_t b = 0; b < o.n_blocks; ++b) {
        bool bad = false;
        for (uint32_t j = 0; j < bs; ++j) {
            const size_t i = b * bs + j;
            if (same_value(t, ours[i], o.values[i])) continue;
            if (bad_blocks < 5 && !bad) {
                char msg[160];
                std::snprintf(msg, sizeof msg,
                              "%s block %llu element %u: ours %.9g (0x%08x), gguf-py %.9g (0x%08x)",
                              std::string(mq::type_name(t)).c_str(), static_cast<unsigned long long>(b), j,
                              static_cast<double>(ours[i]), std::bit_cast<uint32_t>(ours[i]),
                              static_cast<double>(o.values[i]), std::bit_cast<uint32_t>(o.values[i]));
                MESSAGE(msg);
            }
            bad = true;
        }
        bad_blocks += bad ? 1 : 0;
    }
    CHECK_MESSAGE(bad_blocks == 0, mq::type_name(t), ": ", bad_blocks, " of ", o.n_blocks, " blocks differ");
    std::printf("dequant %-5s %7llu blocks, %llu differ\n", std::string(mq::type_name(t)).c_str(),
                static_cast<unsigned long long>(o.n_blocks), static_cast<unsigned long long>(bad_blocks));
    g_dequant.types += 1;
    g_dequant.blocks += o.n_blocks - bad_blocks;
}

void check_quant(mq::Type t) {
    const OracleFile o = load(t, kKindQuant);
    const int64_t n = static_cast<int64_t>(o.values.size());
    std::vector<unsigned char> ours(o.blocks.size());
    const size_t written = mq::quantize_row(t, o.values.data(), ours.data(), n);
    REQUIRE(written == ours.size());
    const uint32_t ts = mq::type_size(t);
    uint64_t bad_blocks = 0;
    for (uint64_t b = 0; b < o.n_blocks; ++b) {
        if (std::memcmp(&ours[b * ts], &o.blocks[b * ts], ts) == 0) continue;
        if (bad_blocks < 5) {
            std::string a, r;
            char hex[4];
            for (uint32_t k = 0; k < ts; ++k) {
                std::snprintf(hex, sizeof hex, "%02x", ours[b * ts + k]);
                a += hex;
                std::snprintf(hex, sizeof hex, "%02x", o.blocks[b * ts + k]);
                r += hex;
            }
            MESSAGE(mq::type_name(t), " block ", b, " (first input ", o.values[b * mq::block_size(t)],
                    "):\n  ours    ", a, "\n  gguf-py ", r);
        }
        ++bad_blocks;
    }
    CHECK_MESSAGE(bad_blocks == 0, mq::type_name(t), ": ", bad_blocks, " of ", o.n_blocks, " blocks differ");
    std::printf("quant   %-5s %7llu blocks, %llu differ\n", std::string(mq::type_name(t)).c_str(),
                static_cast<unsigned long long>(o.n_blocks), static_cast<unsigned long long>(bad_blocks));
    g_quant.types += 1;
    g_quant.blocks += o.n_blocks - bad_blocks;
}

}  // namespace

TEST_CASE("dequantize_row is bit-exact against gguf-py") {
    using T = mq::Type;
    for (T t : {T::F32, T::F16, T::BF16, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1, T::Q8_0, T::Q2_K, T::Q3_K,
                T::Q4_K, T::Q5_K, T::Q6_K, T::IQ4_NL, T::IQ4_XS}) {
        CAPTURE(mq::type_name(t));
        check_dequant(t);
    }
    std::printf("dequant: %d types, %llu blocks bit-exact against gguf-py\n", g_dequant.types,
                static_cast<unsigned long long>(g_dequant.blocks));
    CHECK(g_dequant.types == 15);
}

TEST_CASE("quantize_row is bit-exact against gguf-py") {
    using T = mq::Type;
    for (T t : {T::F32, T::F16, T::BF16, T::Q8_0, T::Q4_0, T::Q4_1, T::Q5_0, T::Q5_1}) {
        CAPTURE(mq::type_name(t));
        check_quant(t);
    }
    std::printf("quant: %d types, %llu blocks bit-exact against gguf-py\n", g_quant.types,
                static_cast<unsigned long long>(g_quant.blocks));
    CHECK(g_quant.types == 8);
}
