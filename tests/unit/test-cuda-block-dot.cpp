// The chunk dot products of the CUDA matrix-vector kernels (kernels/cuda/block-dot.cuh), run on
// the host: every 32-element chunk of random blocks of every type against quant/'s reference
// dequantization (bit-exact with gguf-py) followed by a double-precision dot. The device runs the
// same functions; test-gpu-matmul checks the kernels around them on a GPU.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "block-dot.cuh"
#include "moerun/quant/blocks.h"
#include "moerun/quant/dequant.h"
#include "moerun/quant/half.h"
#include "moerun/quant/types.h"

using namespace moerun;
namespace cuda = kernels::cuda;

namespace {

using ChunkDot = float (*)(const uint8_t *, int, const float *);

struct Case {
    quant::Type t;
    ChunkDot dot;
    std::vector<size_t> f16_fields;  // byte offsets of the block's f16 scales
};

}  // namespace

TEST_CASE("half_bits_to_float equals quant::fp16_to_fp32 for all 65536 halves") {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float a = cuda::half_bits_to_float(static_cast<uint16_t>(h)),
                    b = quant::fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(b))
            CHECK(std::isnan(a));
        else
            CHECK(std::memcmp(&a, &b, 4) == 0);
    }
}

TEST_CASE("CUDA chunk dot products equal the reference dequantization for every expert type") {
    const Case cases[] = {
        {quant::Type::F32, cuda::dot_chunk_f32, {}},
        {quant::Type::F16, cuda::dot_chunk_f16, {}},
        {quant::Type::BF16, cuda::dot_chunk_bf16, {}},
        {quant::Type::Q8_0, cuda::dot_chunk_q8_0, {0}},
        {quant::Type::Q4_0, cuda::dot_chunk_q4_0, {0}},
        {quant::Type::Q4_1, cuda::dot_chunk_q4_1, {0, 2}},
        {quant::Type::Q5_0, cuda::dot_chunk_q5_0, {0}},
        {quant::Type::Q5_1, cuda::dot_chunk_q5_1, {0, 2}},
        {quant::Type::Q4_K, cuda::dot_chunk_q4_k, {0, 2}},
        {quant::Type::Q5_K, cuda::dot_chunk_q5_k, {0, 2}},
        {quant::Type::Q6_K, cuda::dot_chunk_q6_k, {208}},
        {quant::Type::Q2_K, cuda::dot_chunk_q2_k, {80, 82}},
        {quant::Type::Q3_K, cuda::dot_chunk_q3_k, {108}},
        {quant::Type::IQ4_NL, cuda::dot_chunk_iq4_nl, {0}},
        {quant::Type::IQ4_XS, cuda::dot_chunk_iq4_xs, {0}},
    };
    std::mt19937 rng(99);
    std::normal_distribution<float> nd(0, 1);
    for (const Case &c : cases) {
        CAPTURE(quant::type_name(c.t));
        const auto &tr = quant::traits(c.t);
        const int64_t bs = tr.block_size == 1 ? 32 : tr.block_size;  // F32 / F16: one chunk of 32
        const size_t bb = tr.type_size * (tr.block_size == 1 ? 32 : 1);
        for (int trial = 0; trial < 200; ++trial) {
            // Random bytes: every bit pattern of quants and scales; the f16 scales set to finite values.
            std::vector<uint8_t> block(bb);
            for (auto &v : block) v = static_cast<uint8_t>(rng());
            if (tr.block_size == 1)  // F32 / F16 / BF16: finite values
                for (int64_t i = 0; i < bs; ++i) {
                    const float v = nd(rng);
                    if (c.t == quant::Type::F32) {
                        std::memcpy(&block[static_cast<size_t>(4 * i)], &v, 4);
                    } else {
                        uint32_t bits;
                        std::memcpy(&bits, &v, 4);
                        const uint16_t h = c.t == quant::Type::F16 ? quant::fp32_to_fp16(v)
                                                                   : static_cast<uint16_t>(bits >> 16);
                        std::memcpy(&block[static_cast<size_t>(2 * i)], &h, 2);
                    }
                }
            for (const size_t off : c.f16_fields) {
                const uint16_t h = quant::fp32_to_fp16(nd(rng) * 0.05f);
                block[off] = static_cast<uint8_t>(h & 0xff);
                block[off + 1] = static_cast<uint8_t>(h >> 8);
            }
            std::vector<float> w(static_cast<size_t>(bs)), x(static_cast<size_t>(bs));
            quant::dequantize_row(c.t, block.data(), w.data(), bs);
            for (auto &v : x) v = nd(rng);
            for (int j = 0; j < bs / 32; ++j) {
                CAPTURE(j);
                double ref = 0, mag = 0;
                for (int l = 0; l < 32; ++l) {
                    ref += double(w[static_cast<size_t>(32 * j + l)]) * x[static_cast<size_t>(32 * j + l)];
                    mag += std::fabs(double(w[static_cast<size_t>(32 * j + l)]) *
                                     x[static_cast<size_t>(32 * j + l)]);
                }
                const float got = c.dot(block.data(), j, &x[static_cast<size_t>(32 * j)]);
                REQUIRE(std::isfinite(got));
                CHECK(std::fabs(got - ref) <= 1e-4 * mag + 1e-6);
            }
        }
    }
}

TEST_CASE("the partial last chunk of F32 / F16 / BF16 rows reads n elements, in dot8's order") {
    std::mt19937 rng(17);
    std::normal_distribution<float> nd(0, 1);
    for (const quant::Type t : {quant::Type::F32, quant::Type::F16, quant::Type::BF16}) {
        CAPTURE(quant::type_name(t));
        const size_t es = quant::traits(t).type_size;
        for (int n = 1; n < 32; ++n) {
            CAPTURE(n);
            std::vector<float> w(32, 0.0f), x(32, 0.0f);
            std::vector<uint8_t> row(32 * es, 0);
            for (int l = 0; l < n; ++l) {
                w[l] = nd(rng), x[l] = nd(rng);
                if (t == quant::Type::F32) {
                    std::memcpy(&row[4 * l], &w[l], 4);
                } else {
                    uint32_t bits;
                    std::memcpy(&bits, &w[l], 4);
                    const uint16_t h =
                        t == quant::Type::F16 ? quant::fp32_to_fp16(w[l]) : static_cast<uint16_t>(bits >> 16);
                    std::memcpy(&row[2 * l], &h, 2);
                }
            }
            quant::dequantize_row(t, row.data(), w.data(), 32);  // the stored values
            // Only n elements of row and x exist: a copy of that length, so ASan sees a read past it.
            const std::vector<uint8_t> part(row.begin(), row.begin() + static_cast<std::ptrdiff_t>(n * es));
            const std::vector<float> xp(x.begin(), x.begin() + n);
            float got = 0;
            if (t == quant::Type::F32) got = cuda::dot_tail<quant::Type::F32>(part.data(), n, xp.data());
            if (t == quant::Type::F16) got = cuda::dot_tail<quant::Type::F16>(part.data(), n, xp.data());
            if (t == quant::Type::BF16) got = cuda::dot_tail<quant::Type::BF16>(part.data(), n, xp.data());
            // the full chunk over the zero-padded row: the same partial sums (fma with 0 * 0 adds nothing)
            const float padded =
                cuda::chunk_dot<quant::Type::F32>(reinterpret_cast<const uint8_t *>(w.data()), 0, x.data());
            CHECK(got == padded);
        }
    }
}

TEST_CASE("iq4_value holds the 16 values of IQ4_NL / IQ4_XS") {
    for (int i = 0; i < 16; ++i) CHECK(cuda::iq4_value(i) == quant::kIQ4Values[i]);
}

TEST_CASE("CUDA chunk dequantization equals the reference for Q5_K, Q6_K, Q2_K, Q3_K and IQ4_XS") {
    using ChunkDequant = void (*)(const uint8_t *, int, float *);
    const struct {
        quant::Type t;
        ChunkDequant f;
        std::vector<size_t> f16_fields;
    } cases[] = {{quant::Type::Q5_K, cuda::dequant_chunk_q5_k, {0, 2}},
                 {quant::Type::Q6_K, cuda::dequant_chunk_q6_k, {208}},
                 {quant::Type::Q2_K, cuda::dequant_chunk_q2_k, {80, 82}},
                 {quant::Type::Q3_K, cuda::dequant_chunk_q3_k, {108}},
                 {quant::Type::IQ4_XS, cuda::dequant_chunk_iq4_xs, {0}}};
    std::mt19937 rng(5);
    std::normal_distribution<float> nd(0, 1);
    for (const auto &c : cases) {
        CAPTURE(quant::type_name(c.t));
        const auto &tr = quant::traits(c.t);
        for (int trial = 0; trial < 200; ++trial) {
            std::vector<uint8_t> block(tr.type_size);
            for (auto &v : block) v = static_cast<uint8_t>(rng());
            for (const size_t off : c.f16_fields) {
                const uint16_t h = quant::fp32_to_fp16(nd(rng) * 0.05f);
                block[off] = static_cast<uint8_t>(h & 0xff);
                block[off + 1] = static_cast<uint8_t>(h >> 8);
            }
            std::vector<float> ref(tr.block_size), got(tr.block_size);
            quant::dequantize_row(c.t, block.data(), ref.data(), static_cast<int64_t>(tr.block_size));
            for (int j = 0; j < static_cast<int>(tr.block_size / 32); ++j) c.f(block.data(), j, &got[32 * j]);
            for (size_t i = 0; i < ref.size(); ++i) {
                CAPTURE(i);
                REQUIRE(std::isfinite(got[i]));
                CHECK(std::fabs(got[i] - ref[i]) <= 1e-6f * std::fabs(ref[i]) + 1e-9f);
            }
        }
    }
}

TEST_CASE("exp_rn is within 2 ulp of e^x over the float range, and SwiGLU follows it") {
    const auto ulp_err = [](float got, double want) {
        const float w = static_cast<float>(want);
        if (w == 0.0f || std::isinf(w)) return got == w ? 0.0 : 1e9;
        const double ulp = std::nextafter(std::fabs(w), INFINITY) - std::fabs(w);
        return std::fabs(double(got) - want) / ulp;
    };
    double worst = 0;
    for (float x = -87.0f; x < 88.7f; x += 0.00137f)
        worst = std::max(worst, ulp_err(cuda::exp_rn(x), std::exp(double(x))));
    CHECK(worst <= 2.0);
    for (const float x : {-1e-7f, 0.0f, -0.0f, 1e-7f, 0.5f * 0.6931472f, -0.5f * 0.6931472f})
        CHECK(ulp_err(cuda::exp_rn(x), std::exp(double(x))) <= 1.0);
    CHECK(cuda::exp_rn(89.0f) == INFINITY);
    CHECK(cuda::exp_rn(INFINITY) == INFINITY);
    CHECK(cuda::exp_rn(-INFINITY) == 0.0f);
    CHECK(cuda::exp_rn(-105.0f) == 0.0f);
    CHECK(std::isnan(cuda::exp_rn(NAN)));
    // subnormal results: e^-100 = 3.7e-44, a few ulp of the smallest subnormal
    CHECK(std::fabs(double(cuda::exp_rn(-100.0f)) - std::exp(-100.0)) <= 2 * 1.4013e-45);
    for (const float g : {-30.0f, -3.5f, -0.25f, 0.0f, 0.7f, 4.0f, 50.0f}) {
        const double want = double(g) / (1.0 + std::exp(-double(g))) * 1.5;
        CHECK(std::fabs(double(cuda::swiglu_rn(g, 1.5f)) - want) <= 4e-7 * std::fabs(want) + 1e-38);
    }
}
