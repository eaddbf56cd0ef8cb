// Unit tests of quant/: fp16 / bf16 conversions, the type table, the reference quantizers'
// error, exact round trips on the quant grid, and argument checks. (Bit-exactness against gguf-py
// is tests/oracle/test-quant-oracle.cpp.)
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "moerun/quant/blocks.h"
#include "moerun/quant/dequant.h"
#include "moerun/quant/half.h"
#include "moerun/quant/quantize.h"
#include "moerun/quant/types.h"

namespace mq = moerun::quant;
using mq::Type;

namespace {

uint32_t bits(float f) {
    return std::bit_cast<uint32_t>(f);
}
float from_bits(uint32_t u) {
    return std::bit_cast<float>(u);
}

// Value of a half by its definition, in double (independent of the conversion under test).
double half_value(uint16_t h) {
    const int sign = (h >> 15) ? -1 : 1;
    const int exp = (h >> 10) & 31;
    const int mant = h & 1023;
    if (exp == 0) return sign * std::ldexp(static_cast<double>(mant), -24);
    if (exp == 31) return mant ? std::nan("") : sign * HUGE_VAL;
    return sign * std::ldexp(static_cast<double>(1024 + mant), exp - 25);
}

double rms(const std::vector<float> &v) {
    double s = 0;
    for (float x : v) s += static_cast<double>(x) * x;
    return std::sqrt(s / static_cast<double>(v.size()));
}

double rel_rms_error(const std::vector<float> &x, const std::vector<float> &y) {
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i)
        s += (static_cast<double>(x[i]) - y[i]) * (static_cast<double>(x[i]) - y[i]);
    return std::sqrt(s / static_cast<double>(x.size())) / rms(x);
}

std::vector<float> roundtrip(Type t, const std::vector<float> &x) {
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<unsigned char> q(*mq::row_bytes(t, x.size()));
    REQUIRE(mq::quantize_row(t, x.data(), q.data(), n) == q.size());
    std::vector<float> y(x.size());
    mq::dequantize_row(t, q.data(), y.data(), n);
    return y;
}

// Gaussian rows with a per-256 scale varying over orders of magnitude, and 1% outliers.
std::vector<float> test_data(size_t n, uint32_t seed, bool outliers) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::uniform_real_distribution<float> u(-6.0f, 3.0f);
    std::uniform_real_distribution<float> p(0.0f, 1.0f);
    std::vector<float> x(n);
    float scale = 1.0f;
    for (size_t i = 0; i < n; ++i) {
        if (i % 256 == 0) scale = std::exp2(u(rng));
        x[i] = g(rng) * scale;
        if (outliers && p(rng) < 0.01f) x[i] *= 8.0f;
    }
    return x;
}

}  // namespace

TEST_CASE("fp16: every half converts to float exactly and back to itself") {
    int n_nan = 0;
    for (uint32_t i = 0; i < 65536; ++i) {
        const auto h = static_cast<uint16_t>(i);
        const float f = mq::fp16_to_fp32(h);
        const double v = half_value(h);
        if (std::isnan(v)) {
            ++n_nan;
            REQUIRE(std::isnan(f));
        } else {
            REQUIRE(static_cast<double>(f) == v);
            REQUIRE(std::signbit(f) == ((h >> 15) != 0));
        }
        REQUIRE(mq::fp32_to_fp16(f) == h);  // NaN payloads included
    }
    CHECK(n_nan == 2 * 1023);
}

TEST_CASE("fp16: float -> half rounds to nearest, ties to even, at every boundary") {
    // For every pair of neighbouring finite halves (a, a+1): the exact midpoint goes to the even one,
    // one float ulp either side goes to the nearer one.
    for (uint32_t i = 0; i < 0x7bff; ++i) {
        for (uint32_t sign : {0u, 0x8000u}) {
            const auto a = static_cast<uint16_t>(sign | i), b = static_cast<uint16_t>(sign | (i + 1));
            const float mid = static_cast<float>((half_value(a) + half_value(b)) / 2);  // exact in float
            const uint16_t even = (a & 1) ? b : a;
            REQUIRE(mq::fp32_to_fp16(mid) == even);
            REQUIRE(mq::fp32_to_fp16(std::nextafter(mid, 0.0f)) == a);
            REQUIRE(mq::fp32_to_fp16(std::nextafter(mid, sign ? -INFINITY : INFINITY)) == b);
        }
    }
    CHECK(mq::fp32_to_fp16(1.0f) == 0x3c00);
    CHECK(mq::fp32_to_fp16(-2.0f) == 0xc000);
    CHECK(mq::fp32_to_fp16(0.0f) == 0x0000);
    CHECK(mq::fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(mq::fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(mq::fp32_to_fp16(65519.99f) == 0x7bff);
    CHECK(mq::fp32_to_fp16(65520.0f) == 0x7c00);  // the tie above 65504 rounds to "even" inf
    CHECK(mq::fp32_to_fp16(-1e10f) == 0xfc00);
    CHECK(mq::fp32_to_fp16(INFINITY) == 0x7c00);
    CHECK(mq::fp32_to_fp16(-INFINITY) == 0xfc00);
    CHECK(mq::fp32_to_fp16(std::ldexp(1.0f, -24)) == 0x0001);  // smallest subnormal
    CHECK(mq::fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);  // tie to even: 0
    CHECK(mq::fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
    CHECK(mq::fp32_to_fp16(3 * std::ldexp(1.0f, -25)) == 0x0002);  // tie 1.5 ulp -> 2
    CHECK(mq::fp32_to_fp16(std::ldexp(1.0f, -14)) == 0x0400);      // smallest normal
    CHECK(mq::fp32_to_fp16(1e-30f) == 0x0000);
    CHECK(mq::fp32_to_fp16(from_bits(0x7fc00000)) == 0x7e00);  // quiet NaN
    CHECK(mq::fp32_to_fp16(from_bits(0xff800001)) == 0xfc01);  // payload below fp16: still NaN
    CHECK(std::isnan(mq::fp16_to_fp32(mq::fp32_to_fp16(std::nanf("")))));
}

TEST_CASE("bf16: conversions") {
    for (uint32_t i = 0; i < 65536; ++i) {
        const auto h = static_cast<uint16_t>(i);
        const float f = mq::bf16_to_fp32(h);
        REQUIRE(bits(f) == i << 16);
        const bool nan = (i & 0x7fffu) > 0x7f80u;
        REQUIRE(mq::fp32_to_bf16(f) == (nan ? (h | 0x40) : h));  // NaN forced quiet, else identity
    }
    CHECK(mq::fp32_to_bf16(from_bits(0x3f808000)) == 0x3f80);  // tie, even below
    CHECK(mq::fp32_to_bf16(from_bits(0x3f818000)) == 0x3f82);  // tie, even above
    CHECK(mq::fp32_to_bf16(from_bits(0x3f808001)) == 0x3f81);
    CHECK(mq::fp32_to_bf16(from_bits(0x3f807fff)) == 0x3f80);
    CHECK(mq::fp32_to_bf16(from_bits(0x7f7fffff)) == 0x7f80);  // overflow to inf
    CHECK(mq::fp32_to_bf16(from_bits(0xff800000)) == 0xff80);
    CHECK(mq::fp32_to_bf16(from_bits(0x7f800001)) == 0x7fc0);  // signalling NaN -> quiet, stays NaN
    CHECK(mq::fp32_to_bf16(from_bits(0x80000001)) == 0x8000);  // tiny -> -0
}

TEST_CASE("type table: sizes, names and has_dequant agree with what quant/ implements") {
    int known = 0;
    for (uint32_t id = 0; id < 64; ++id) {
        const auto tr = mq::traits(id);
        if (!tr) continue;
        ++known;
        CAPTURE(tr->name);
        CHECK(static_cast<uint32_t>(tr->type) == id);
        CHECK(mq::traits(tr->type).name == tr->name);
        CHECK(mq::type_from_name(tr->name) == tr->type);
        CHECK(tr->block_size > 0);
        CHECK(tr->type_size > 0);
        CHECK(mq::row_bytes(tr->type, tr->block_size * 3) == uint64_t{tr->type_size} * 3);
        if (tr->block_size > 1) CHECK_FALSE(mq::row_bytes(tr->type, tr->block_size * 3 + 1).has_value());
        // has_dequant <=> dequantize_row accepts the type.
        std::vector<unsigned char> zeros(tr->type_size, 0);
        std::vector<float> out(tr->block_size);
        bool ok = true;
        try {
            mq::dequantize_row(tr->type, zeros.data(), out.data(), tr->block_size);
        } catch (const std::invalid_argument &e) {
            ok = false;
            CHECK(std::string(e.what()).find(std::string(tr->name)) != std::string::npos);
        }
        CHECK(ok == tr->has_dequant);
        if (ok) {
            for (float v : out) CHECK(v == 0.0f);  // an all-zero block is zero for every type
        }
    }
    CHECK(known == 32);
    CHECK(mq::type_from_name("q4_k") == Type::Q4_K);
    CHECK_FALSE(mq::type_from_name("Q4_X").has_value());
    CHECK(mq::block_size(Type::Q4_K) == mq::QK_K);
    CHECK(mq::type_size(Type::Q6_K) == sizeof(mq::BlockQ6_K));
}

TEST_CASE("quantize -> dequantize error on random data is within the bound of each type") {
    struct Case {
        Type t;
        double bound, bound_outliers;  // RMS(error) / RMS(x)
    };
    // Bounds: about 15-25% above what these quantizers reach on this data (printed below).
    const Case cases[] = {
        {Type::F32, 0.0, 0.0},       {Type::F16, 3e-4, 3e-4},    {Type::BF16, 2.5e-3, 2.5e-3},
        {Type::Q8_0, 0.0075, 0.011}, {Type::Q6_K, 0.022, 0.03},  {Type::Q5_1, 0.045, 0.055},
        {Type::Q5_0, 0.05, 0.08},    {Type::Q5_K, 0.045, 0.055}, {Type::Q4_1, 0.09, 0.11},
        {Type::Q4_0, 0.10, 0.16},    {Type::Q4_K, 0.085, 0.105},
    };
    for (bool outliers : {false, true}) {
        const std::vector<float> x = test_data(256 * 64, outliers ? 7u : 3u, outliers);
        for (const Case &c : cases) {
            CAPTURE(mq::type_name(c.t));
            CAPTURE(outliers);
            const double err = rel_rms_error(x, roundtrip(c.t, x));
            MESSAGE((std::string(mq::type_name(c.t)) + (outliers ? " with outliers" : "") +
                     ": relative RMS error " + std::to_string(err)));
            CHECK(err <= (outliers ? c.bound_outliers : c.bound));
        }
    }
}

TEST_CASE("K-quants: blocks with zero, constant, one-signed and tiny data") {
    for (Type t : {Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
        CAPTURE(mq::type_name(t));
        std::vector<float> zero(256, 0.0f);
        for (float v : roundtrip(t, zero)) CHECK(v == 0.0f);

        std::vector<float> pos(256), neg(256), tiny(256);
        for (int i = 0; i < 256; ++i) {
            pos[i] = 1.0f + static_cast<float>(i % 37) / 10.0f;
            neg[i] = -pos[i];
            tiny[i] =
                1e-3f * std::sin(static_cast<float>(i));  // block max ~1e-3: fp16 subnormal super-scales
        }
        const double tol = t == Type::Q4_K ? 0.1 : 0.05;
        CHECK(rel_rms_error(pos, roundtrip(t, pos)) < tol);
        CHECK(rel_rms_error(neg, roundtrip(t, neg)) < tol);
        CHECK(rel_rms_error(tiny, roundtrip(t, tiny)) < tol);

        std::vector<float> constant(256, -2.5f);
        CHECK(rel_rms_error(constant, roundtrip(t, constant)) < 0.01);
    }
}

TEST_CASE("values already on the quant grid survive quantize -> dequantize exactly") {
    std::mt19937 rng(11);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> mag(-10.0f, 2.0f);
    for (int rep = 0; rep < 200; ++rep) {
        const float d = (rep % 2 ? -1.0f : 1.0f) * std::exp2(mag(rng));
        // Q8_0: any quants with one at +-127 (so max|x| / 127 is d again).
        {
            mq::BlockQ8_0 b{};
            b.d = mq::fp32_to_fp16(d);
            for (auto &q : b.qs) q = static_cast<int8_t>(byte(rng) - 128);
            for (auto &q : b.qs)
                if (q == -128) q = -127;
            b.qs[byte(rng) % 32] = rep % 4 < 2 ? 127 : -127;
            float x[32], y[32];
            mq::dequantize_block(b, x);
            mq::BlockQ8_0 b2{};
            mq::quantize_block(x, b2);
            mq::dequantize_block(b2, y);
            for (int j = 0; j < 32; ++j)
                CHECK(x[j] == y[j]);  // the scale comes back positive: -0 may become 0
        }
        // Q4_0 / Q5_0: any quants with one at the lowest level, -8 * d / -16 * d, the largest |x|.
        {
            mq::BlockQ4_0 b{};
            b.d = mq::fp32_to_fp16(d);
            for (auto &q : b.qs) q = static_cast<uint8_t>(byte(rng));
            const int k = byte(rng) % 32;
            b.qs[k % 16] = static_cast<uint8_t>(k < 16 ? (b.qs[k % 16] & 0xf0) : (b.qs[k % 16] & 0x0f));
            float x[32], y[32];
            mq::dequantize_block(b, x);
            mq::BlockQ4_0 b2{};
            mq::quantize_block(x, b2);
            mq::dequantize_block(b2, y);
            CHECK(std::memcmp(x, y, sizeof x) == 0);
        }
        {
            mq::BlockQ5_0 b{};
            b.d = mq::fp32_to_fp16(d);
            for (auto &q : b.qs) q = static_cast<uint8_t>(byte(rng));
            for (auto &q : b.qh) q = static_cast<uint8_t>(byte(rng));
            const int k = byte(rng) % 32;  // quant k = 0: low nibble and high bit clear
            b.qs[k % 16] = static_cast<uint8_t>(k < 16 ? (b.qs[k % 16] & 0xf0) : (b.qs[k % 16] & 0x0f));
            b.qh[k / 8] = static_cast<uint8_t>(b.qh[k / 8] & ~(1u << (k % 8)));
            float x[32], y[32];
            mq::dequantize_block(b, x);
            mq::BlockQ5_0 b2{};
            mq::quantize_block(x, b2);
            mq::dequantize_block(b2, y);
            CHECK(std::memcmp(x, y, sizeof x) == 0);
        }
    }
    // F16 / BF16: representable values are kept.
    std::vector<float> x;
    for (uint32_t h = 0; h < 0x7c00; h += 7) x.push_back(mq::fp16_to_fp32(static_cast<uint16_t>(h)));
    x.resize(x.size() / 2 * 2);
    CHECK(roundtrip(Type::F16, x) == x);
    for (float &v : x) v = mq::bf16_to_fp32(mq::fp32_to_bf16(v * 1e20f));
    CHECK(roundtrip(Type::BF16, x) == x);
}

TEST_CASE("K-quants: requantizing a dequantized block loses little") {
    // Not exact (the search may pick other scales), but close to the grid it came from.
    std::mt19937 rng(5);
    std::vector<float> x = test_data(256 * 16, 9u, false);
    for (Type t : {Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
        CAPTURE(mq::type_name(t));
        const std::vector<float> once = roundtrip(t, x);
        const std::vector<float> twice = roundtrip(t, once);
        const double e1 = rel_rms_error(x, once), e2 = rel_rms_error(once, twice);
        MESSAGE(mq::type_name(t), ": first pass ", e1, ", second pass ", e2);
        CHECK(e2 < e1 / 2);
    }
}

TEST_CASE("layout: quantizers fill the bits where the dequantizers read them") {
    // A ramp puts distinct values at every position, so a permuted packing shows as a large error.
    std::vector<float> x(512);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 256) / 16.0f - 7.0f;
    for (Type t :
         {Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q8_0, Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
        CAPTURE(mq::type_name(t));
        const std::vector<float> y = roundtrip(t, x);
        double max_err = 0;
        for (size_t i = 0; i < x.size(); ++i) max_err = std::fmax(max_err, std::fabs(x[i] - y[i]));
        CHECK(max_err < 0.6);
    }
}

TEST_CASE("rows may be unaligned and are dequantized block by block") {
    const std::vector<float> x = test_data(512, 21u, false);
    for (Type t : {Type::F16, Type::BF16, Type::Q4_0, Type::Q8_0, Type::Q4_K, Type::Q6_K}) {
        CAPTURE(mq::type_name(t));
        const size_t bytes = *mq::row_bytes(t, x.size());
        std::vector<unsigned char> buf(bytes + 1);
        REQUIRE(mq::quantize_row(t, x.data(), buf.data() + 1, 512) == bytes);  // odd address
        std::vector<float> a(512), b(512);
        mq::dequantize_row(t, buf.data() + 1, a.data(), 512);
        // The same bytes one block at a time.
        const size_t bs = mq::block_size(t), ts = mq::type_size(t);
        for (size_t i = 0; i < 512 / bs; ++i)
            mq::dequantize_row(t, buf.data() + 1 + i * ts, b.data() + i * bs, static_cast<int64_t>(bs));
        CHECK(std::memcmp(a.data(), b.data(), 512 * sizeof(float)) == 0);
    }
}

TEST_CASE("bad arguments are rejected with a message naming the type") {
    std::vector<unsigned char> buf(4096);
    std::vector<float> f(1024);
    auto message_of = [](auto &&fn) -> std::string {
        try {
            fn();
        } catch (const std::invalid_argument &e) {
            return e.what();
        }
        return "no exception";
    };
    CHECK(message_of([&] { mq::dequantize_row(Type::Q4_0, buf.data(), f.data(), 33); }).find("Q4_0") !=
          std::string::npos);
    CHECK(message_of([&] { mq::dequantize_row(Type::Q4_K, buf.data(), f.data(), 128); }).find("Q4_K") !=
          std::string::npos);
    CHECK(message_of([&] { mq::dequantize_row(Type::Q8_0, buf.data(), f.data(), -32); }).find("Q8_0") !=
          std::string::npos);
    CHECK(message_of([&] { mq::dequantize_row(Type::Q8_K, buf.data(), f.data(), 256); }).find("Q8_K") !=
          std::string::npos);
    CHECK(message_of([&] { mq::dequantize_row(Type::IQ2_XXS, buf.data(), f.data(), 256); }).find("IQ2_XXS") !=
          std::string::npos);
    CHECK(message_of([&] { mq::dequantize_row_q6_k(buf.data(), f.data(), 100); }).find("Q6_K") !=
          std::string::npos);
    CHECK(message_of([&] { mq::quantize_row(Type::Q4_0, f.data(), buf.data(), 31); }).find("Q4_0") !=
          std::string::npos);
    CHECK(message_of([&] { mq::quantize_row(Type::Q6_K, f.data(), buf.data(), 512 + 16); }).find("Q6_K") !=
          std::string::npos);
    CHECK(message_of([&] { mq::quantize_row(Type::Q2_K, f.data(), buf.data(), 256); }).find("Q2_K") !=
          std::string::npos);
    CHECK(message_of([&] { mq::quantize_row(Type::F16, f.data(), buf.data(), -1); }).find("F16") !=
          std::string::npos);
    CHECK_FALSE(mq::can_quantize(Type::Q2_K));
    CHECK(mq::can_quantize(Type::Q4_K));
    // n = 0 is an empty row.
    CHECK(mq::quantize_row(Type::Q4_K, f.data(), buf.data(), 0) == 0);
    mq::dequantize_row(Type::Q4_K, buf.data(), f.data(), 0);
}

TEST_CASE("non-finite and huge inputs give some valid block, without undefined behaviour") {
    // Run under -fsanitize=undefined this also checks that no float -> int conversion overflows.
    std::vector<float> x(512);
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
    x[3] = NAN;
    x[40] = INFINITY;
    x[300] = -INFINITY;
    for (size_t i = 256 + 64; i < 256 + 128; ++i) x[i] = 1e30f * x[i - 256];
    std::vector<unsigned char> q(4096);
    std::vector<float> y(512);
    for (Type t : {Type::F16, Type::BF16, Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q8_0,
                   Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
        CAPTURE(mq::type_name(t));
        CHECK(mq::quantize_row(t, x.data(), q.data(), 512) == *mq::row_bytes(t, 512));
        mq::dequantize_row(t, q.data(), y.data(), 512);
    }
    // Huge but finite blocks keep finite K-quant scales (clamped to 65504).
    std::vector<float> big(256);
    for (size_t i = 0; i < big.size(); ++i) big[i] = 1e9f * std::cos(static_cast<float>(i));
    for (Type t : {Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
        CAPTURE(mq::type_name(t));
        for (float v : roundtrip(t, big)) CHECK(std::isfinite(v));
    }
}
