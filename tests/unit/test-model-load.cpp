// Model::load's metadata checks on a tiny, complete qwen3moe model from the test builder: the
// vocabulary size (the tokenizer's token count, which the embedding and output rows must match),
// the rope base and the RMS norm epsilon. Errors name the tensor or key.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "gguf-builder.h"
#include "moerun/runtime/model.h"

using namespace moerun;
using namespace moerun::test;
using moerun::quant::Type;

namespace {

// make_moe_model() plus the attention and norm tensors it leaves out: Model::load accepts it.
GgufBuilder complete_model() {
    GgufBuilder b = make_moe_model();
    for (int l = 0; l < 2; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        b.tensor(p + "attn_k.weight", Type::F16, {64, 32});
        b.tensor(p + "attn_v.weight", Type::F16, {64, 32});
        b.tensor(p + "attn_output.weight", Type::F16, {64, 64});
        b.tensor(p + "attn_q_norm.weight", Type::F32, {16});
        b.tensor(p + "attn_k_norm.weight", Type::F32, {16});
        b.tensor(p + "ffn_norm.weight", Type::F32, {64});
    }
    return b;
}

struct LoadError {
    std::string field, what;
};

// The gguf::Error from loading b's file ("" field and what when it loads).
LoadError load_error(const GgufBuilder &b) {
    const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
    try {
        (void)Model::load(f);
    } catch (const gguf::Error &e) {
        return {e.field(), e.what()};
    }
    return {};
}

bool has(const std::string &s, const std::string &part) {
    return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("the complete tiny model loads: n_vocab is the tokenizer's token count") {
    const auto f = gguf::GgufFile::from_memory("model.gguf", complete_model().build());
    const Model m = Model::load(f);
    CHECK(m.hparams().n_vocab == 8);
    CHECK(m.hparams().rms_eps == 1e-6f);
    CHECK(m.hparams().rope_freq_base == 1e6f);
}

TEST_CASE("embedding and output rows must match the tokenizer's token count") {
    for (uint64_t rows : {7u, 9u}) {
        CAPTURE(rows);
        GgufBuilder b = complete_model();
        b.remove_tensor("token_embd.weight").tensor("token_embd.weight", Type::F16, {64, rows});
        const LoadError e = load_error(b);
        INFO("what(): " << e.what);
        CHECK(e.field == "token_embd.weight");
        CHECK(has(e.what, "model.gguf: offset "));
        CHECK(has(e.what, std::to_string(rows) + " rows, but tokenizer.ggml.tokens has 8 tokens"));

        // Untied: the faulty embedding is blamed, not the output matrix that matches the tokenizer.
        b.tensor("output.weight", Type::F16, {64, 8});
        CHECK(load_error(b).field == "token_embd.weight");
    }
    GgufBuilder b = complete_model();
    b.tensor("output.weight", Type::F16, {64, 7});
    LoadError e = load_error(b);
    INFO("what(): " << e.what);
    CHECK(e.field == "output.weight");
    CHECK(has(e.what, "7 rows, but tokenizer.ggml.tokens has 8 tokens"));
    b = complete_model();
    b.tensor("output.weight", Type::F16, {64, 8});
    CHECK(load_error(b).what.empty());

    b = complete_model();
    b.remove("tokenizer.ggml.tokens");
    e = load_error(b);
    CHECK(e.field == "tokenizer.ggml.tokens");
    CHECK(has(e.what, "required key is missing"));
}

TEST_CASE("rope.freq_base must be finite and positive") {
    const double inf = std::numeric_limits<double>::infinity();
    for (double v : {0.0, -10000.0, std::nan(""), inf, 1e300}) {
        CAPTURE(v);
        GgufBuilder b = complete_model();
        b.replace("qwen3moe.rope.freq_base", f64(v));
        const LoadError e = load_error(b);
        INFO("what(): " << e.what);
        CHECK(e.field == "qwen3moe.rope.freq_base");
        CHECK(has(e.what, "must be a finite positive number"));
    }
    GgufBuilder b = complete_model();
    b.remove("qwen3moe.rope.freq_base");  // llama.cpp's default, 10000
    const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
    CHECK(Model::load(f).hparams().rope_freq_base == 10000.0f);
}

TEST_CASE("attention.layer_norm_rms_epsilon is required, finite and >= 0") {
    const std::string key = "qwen3moe.attention.layer_norm_rms_epsilon";
    GgufBuilder b = complete_model();
    b.remove(key);
    LoadError e = load_error(b);
    CHECK(e.field == key);
    CHECK(has(e.what, "required key is missing"));
    for (float v : {-1e-6f, std::nanf(""), std::numeric_limits<float>::infinity()}) {
        CAPTURE(v);
        b = complete_model();
        b.replace(key, f32(v));
        e = load_error(b);
        INFO("what(): " << e.what);
        CHECK(e.field == key);
        CHECK(has(e.what, "must be a finite number >= 0"));
    }
    for (float v : {0.0f, 1e-5f}) {  // passed through unchanged (llama.cpp accepts 0)
        CAPTURE(v);
        b = complete_model();
        b.replace(key, f32(v));
        const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
        CHECK(Model::load(f).hparams().rms_eps == v);
    }
}
