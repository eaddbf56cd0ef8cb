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
    const auto f = gguf::GgufFile::from_memory("model.gguf", make_complete_moe_model().build());
    const Model m = Model::load(f);
    CHECK(m.hparams().n_vocab == 8);
    CHECK(m.hparams().rms_eps == 1e-6f);
    CHECK(m.hparams().rope_freq_base == 1e6f);
}

TEST_CASE("embedding and output rows must match the tokenizer's token count") {
    for (uint64_t rows : {7u, 9u}) {
        CAPTURE(rows);
        GgufBuilder b = make_complete_moe_model();
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
    GgufBuilder b = make_complete_moe_model();
    b.tensor("output.weight", Type::F16, {64, 7});
    LoadError e = load_error(b);
    INFO("what(): " << e.what);
    CHECK(e.field == "output.weight");
    CHECK(has(e.what, "7 rows, but tokenizer.ggml.tokens has 8 tokens"));
    b = make_complete_moe_model();
    b.tensor("output.weight", Type::F16, {64, 8});
    CHECK(load_error(b).what.empty());

    b = make_complete_moe_model();
    b.remove("tokenizer.ggml.tokens");
    e = load_error(b);
    CHECK(e.field == "tokenizer.ggml.tokens");
    CHECK(has(e.what, "required key is missing"));
}

TEST_CASE("rope.freq_base must be finite and positive") {
    const double inf = std::numeric_limits<double>::infinity();
    for (double v : {0.0, -10000.0, std::nan(""), inf, 1e300}) {
        CAPTURE(v);
        GgufBuilder b = make_complete_moe_model();
        b.replace("qwen3moe.rope.freq_base", f64(v));
        const LoadError e = load_error(b);
        INFO("what(): " << e.what);
        CHECK(e.field == "qwen3moe.rope.freq_base");
        CHECK(has(e.what, "must be a finite positive number"));
    }
    GgufBuilder b = make_complete_moe_model();
    b.remove("qwen3moe.rope.freq_base");  // llama.cpp's default, 10000
    const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
    CHECK(Model::load(f).hparams().rope_freq_base == 10000.0f);
}

TEST_CASE("attention.layer_norm_rms_epsilon is required, finite and >= 0") {
    const std::string key = "qwen3moe.attention.layer_norm_rms_epsilon";
    GgufBuilder b = make_complete_moe_model();
    b.remove(key);
    LoadError e = load_error(b);
    CHECK(e.field == key);
    CHECK(has(e.what, "required key is missing"));
    for (float v : {-1e-6f, std::nanf(""), std::numeric_limits<float>::infinity()}) {
        CAPTURE(v);
        b = make_complete_moe_model();
        b.replace(key, f32(v));
        e = load_error(b);
        INFO("what(): " << e.what);
        CHECK(e.field == key);
        CHECK(has(e.what, "must be a finite number >= 0"));
    }
    for (float v : {0.0f, 1e-5f}) {  // passed through unchanged (llama.cpp accepts 0)
        CAPTURE(v);
        b = make_complete_moe_model();
        b.replace(key, f32(v));
        const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
        CHECK(Model::load(f).hparams().rms_eps == v);
    }
}

TEST_CASE("YaRN keys must be finite; beta and attention factors positive; a negative mix means 1") {
    GgufBuilder yarn = make_complete_moe_model();
    yarn.kv("qwen3moe.rope.scaling.type", str("yarn")).kv("qwen3moe.rope.scaling.factor", f32(4.0f));
    {
        const auto f = gguf::GgufFile::from_memory("model.gguf", yarn.build());
        const Model m = Model::load(f);
        CHECK(m.hparams().rope.ext_factor == 1.0f);
        CHECK(m.hparams().rope.attn_factor == 1.0f);
        CHECK(m.hparams().rope.freq_scale == 0.25f);
    }
    const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
    for (const char *name : {"attn_factor", "yarn_beta_fast", "yarn_beta_slow"})
        for (float v : {0.0f, -1.0f, nan, inf}) {
            CAPTURE(name);
            CAPTURE(v);
            GgufBuilder b = yarn;
            const std::string key = std::string("qwen3moe.rope.scaling.") + name;
            b.kv(key, f32(v));
            const LoadError e = load_error(b);
            INFO("what(): " << e.what);
            CHECK(e.field == key);
            CHECK(has(e.what, "must be a finite positive number"));
        }
    const std::string k_ext = "qwen3moe.rope.scaling.yarn_ext_factor";
    for (float v : {nan, inf}) {
        GgufBuilder b = yarn;
        b.kv(k_ext, f32(v));
        CHECK(load_error(b).field == k_ext);
    }
    for (float v : {-1.0f, 0.0f, 0.5f}) {  // negative: "not set", llama.cpp's 1 for yarn
        CAPTURE(v);
        GgufBuilder b = yarn;
        b.kv(k_ext, f32(v));
        const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
        CHECK(Model::load(f).hparams().rope.ext_factor == (v < 0 ? 1.0f : v));
    }
}

TEST_CASE("output.weight: required by olmoe and qwen2moe (as llama.cpp), else tied to token_embd") {
    for (const std::string arch : {"olmoe", "qwen2moe"}) {
        CAPTURE(arch);
        GgufBuilder b = make_complete_moe_model(arch);
        {
            const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
            const Model m = Model::load(f);
            CHECK(m.output().data != m.tok_embd().data);
        }
        b.remove_tensor("output.weight");
        const LoadError e = load_error(b);
        INFO("what(): " << e.what);
        CHECK(e.field == "output.weight");
        CHECK(has(e.what, "tensor missing (required by " + arch + ")"));
    }
    for (const std::string arch : {"qwen3moe", "llama"}) {
        CAPTURE(arch);
        const auto f = gguf::GgufFile::from_memory("model.gguf", make_complete_moe_model(arch).build());
        const Model m = Model::load(f);
        CHECK(m.output().data == m.tok_embd().data);
    }
}

TEST_CASE("qwen2moe: the shared expert's gate is required, as llama.cpp requires it") {
    GgufBuilder b = make_complete_moe_model("qwen2moe");
    {
        const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
        CHECK(Model::load(f).hparams().n_ff_shexp == 48);
    }
    b.remove_tensor("blk.1.ffn_gate_inp_shexp.weight");
    const LoadError e = load_error(b);
    INFO("what(): " << e.what);
    CHECK(e.field == "blk.1.ffn_gate_inp_shexp.weight");
    CHECK(has(e.what, "tensor missing"));
}

TEST_CASE("qwen2moe: the shared expert's width is the metadata's, as llama.cpp checks it") {
    // expert_shared_feed_forward_length when present, else feed_forward_length.
    GgufBuilder b = make_complete_moe_model("qwen2moe");
    b.replace("qwen2moe.expert_shared_feed_forward_length", u32(40));
    LoadError e = load_error(b);
    INFO("what(): " << e.what);
    CHECK(e.field == "blk.0.ffn_gate_shexp.weight");
    CHECK(has(e.what, "expected [64, 40]: qwen2moe.expert_shared_feed_forward_length is 40"));
    b.replace("qwen2moe.expert_shared_feed_forward_length", u32(48));
    b.replace("qwen2moe.feed_forward_length", u32(40));
    {
        const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
        CHECK(Model::load(f).hparams().n_ff_shexp == 48);  // the shared key wins
    }
    b.remove("qwen2moe.expert_shared_feed_forward_length");
    e = load_error(b);
    INFO("what(): " << e.what);
    CHECK(e.field == "blk.0.ffn_gate_shexp.weight");
    CHECK(has(e.what, "qwen2moe.feed_forward_length is 40, the shared expert's width"));
}

TEST_CASE("a layer without stacked experts says what it has instead") {
    // Layer 1 with a dense FFN.
    GgufBuilder b = make_complete_moe_model();
    for (const char *t : {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"})
        b.remove_tensor(std::string("blk.1.") + t + ".weight");
    b.tensor("blk.1.ffn_gate.weight", Type::F16, {64, 96});
    b.tensor("blk.1.ffn_up.weight", Type::F16, {64, 96});
    b.tensor("blk.1.ffn_down.weight", Type::F16, {96, 64});
    LoadError e = load_error(b);
    INFO("what(): " << e.what);
    CHECK(e.field == "blk.1.ffn_gate_exps.weight");
    CHECK(has(e.what, "layer 1 has a dense FFN, 1 of 2 layers have experts"));

    // No layer with experts: not a MoE model.
    b = make_complete_moe_model();
    for (int l = 0; l < 2; ++l) b.remove_tensor("blk." + std::to_string(l) + ".ffn_gate_exps.weight");
    e = load_error(b);
    CHECK(e.field == "blk.0.ffn_gate_exps.weight");
    CHECK(has(e.what, "no layer has stacked experts"));

    // One tensor per expert (the old Mixtral layout).
    b = make_complete_moe_model();
    b.remove_tensor("blk.0.ffn_gate_exps.weight");
    for (int x = 0; x < 4; ++x)
        b.tensor("blk.0.ffn_gate." + std::to_string(x) + ".weight", Type::Q8_0, {64, 32});
    e = load_error(b);
    CHECK(e.field == "blk.0.ffn_gate_exps.weight");
    CHECK(has(e.what, "old Mixtral layout"));
}
