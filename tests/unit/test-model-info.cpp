// Model hyperparameters and the expert summary: tiny MoE models from the test builder (valid and
// inconsistent ones) and the real vocab GGUFs.
#include <doctest/doctest.h>

#include <filesystem>
#include <optional>

#include "gguf-builder.h"
#include "moerun/runtime/model-info.h"

using moerun::gguf::Error;
using moerun::gguf::GgufFile;
using moerun::quant::Type;
using moerun::runtime::ExpertSummary;
using moerun::runtime::ModelInfo;
using namespace moerun::test;

namespace {

GgufFile parse(const GgufBuilder &b) {
    return GgufFile::from_memory("moe.gguf", b.build());
}

// The gguf::Error from reading the hyperparameters and the expert summary of b's file.
std::optional<Error> model_error(const GgufBuilder &b) {
    const GgufFile f = parse(b);
    try {
        const ModelInfo m = ModelInfo::from_gguf(f);
        (void)ExpertSummary::from_gguf(f, m);
    } catch (const Error &e) {
        return e;
    }
    FAIL("no error");
    return std::nullopt;
}

#define CHECK_MODEL_ERROR(builder, field_text, message_part)                      \
    do {                                                                          \
        const auto err_ = model_error(builder);                                   \
        REQUIRE(err_.has_value());                                                \
        INFO("what(): " << std::string(err_->what()));                            \
        CHECK(err_->field() == (field_text));                                     \
        CHECK(std::string(err_->what()).find(message_part) != std::string::npos); \
    } while (0)

}  // namespace

TEST_CASE("hyperparameters of a tiny MoE model") {
    const GgufFile f = parse(make_moe_model());
    const ModelInfo m = ModelInfo::from_gguf(f);
    CHECK(m.architecture == "qwen3moe");
    CHECK(m.name == "tiny qwen3moe");
    CHECK(m.key("block_count") == "qwen3moe.block_count");
    CHECK(m.n_layer == 2);
    CHECK(m.n_ctx_train == 256);
    CHECK(m.n_embd == 64);
    CHECK(m.n_ff == 96);
    CHECK(m.n_ff_layer == std::vector<uint64_t>{96, 96});
    CHECK(m.n_ff_exp == 32);
    CHECK(m.expert_ff_length(0) == 32);
    CHECK(m.n_expert == 4);
    CHECK(m.n_expert_used == 2);
    CHECK(m.n_expert_shared == 0);
    CHECK(m.n_head == 4);
    CHECK(m.n_head_kv == 2);
    CHECK(m.n_embd_head_k == 16);
    CHECK(m.n_embd_head_v == 16);
    CHECK(m.n_rot == 16);
    CHECK(m.rope_freq_base == 1000000.0);
    CHECK(m.rope_scaling.type.empty());
    CHECK(m.rms_eps == doctest::Approx(1e-6));
    CHECK(m.n_vocab == 8);
    CHECK(m.tokenizer_model == "gpt2");
    CHECK(m.tokenizer_pre == "qwen2");
}

TEST_CASE("expert summary of a tiny MoE model") {
    const GgufFile f = parse(make_moe_model());
    const ModelInfo m = ModelInfo::from_gguf(f);
    const ExpertSummary s = ExpertSummary::from_gguf(f, m);
    REQUIRE(s.layers.size() == 2);
    CHECK(s.n_expert == 4);
    // Q8_0: 64 columns = 2 blocks of 34 bytes; gate/up 32 rows, down 64 rows of 32 columns (1 block).
    const uint64_t gate_up = 2 * 34 * 32;
    const uint64_t down = 1 * 34 * 64;
    CHECK(s.min_bytes_per_expert == 2 * gate_up + down);
    CHECK(s.max_bytes_per_expert == 2 * gate_up + down);
    CHECK(s.expert_bytes == 2 * 4 * (2 * gate_up + down));
    uint64_t total = 0;
    for (const auto &t : f.tensors()) total += t.size;
    CHECK(s.dense_bytes == total - s.expert_bytes);
    for (uint64_t l = 0; l < 2; ++l) {
        const auto &le = s.layers[l];
        CHECK(le.layer == l);
        REQUIRE(le.gate != nullptr);
        CHECK(le.gate->name == "blk." + std::to_string(l) + ".ffn_gate_exps.weight");
        CHECK(le.up->name == "blk." + std::to_string(l) + ".ffn_up_exps.weight");
        CHECK(le.down->name == "blk." + std::to_string(l) + ".ffn_down_exps.weight");
        CHECK(le.n_expert == 4);
        CHECK(le.bytes == 4 * le.bytes_per_expert);
        for (uint32_t e = 0; e < 4; ++e) {
            const auto loc = moerun::runtime::expert_location(f, le, e);
            CHECK(loc.id.layer == l);
            CHECK(loc.id.expert == e);
            CHECK(loc.gate.offset == le.gate->file_offset + e * gate_up);
            CHECK(loc.up.offset == le.up->file_offset + e * gate_up);
            CHECK(loc.down.offset == le.down->file_offset + e * down);
            CHECK(loc.bytes() == le.bytes_per_expert);
        }
    }
}

TEST_CASE("expert summary with K-quants, mixed types and no gate") {
    MoeSpec spec;
    spec.n_embd = 256;
    spec.n_ff_exp = 512;
    spec.expert_type = Type::Q4_K;
    spec.down_type = Type::Q6_K;
    spec.gate = false;
    spec.n_layer = 1;
    const GgufFile f = parse(make_moe_model(spec));
    const ModelInfo m = ModelInfo::from_gguf(f);
    const ExpertSummary s = ExpertSummary::from_gguf(f, m);
    REQUIRE(s.layers.size() == 1);
    CHECK(s.layers[0].gate == nullptr);
    const uint64_t up = 1 * 144 * 512;    // Q4_K: 256 columns = 1 block of 144 bytes, 512 rows
    const uint64_t down = 2 * 210 * 256;  // Q6_K: 512 columns = 2 blocks of 210 bytes, 256 rows
    CHECK(s.layers[0].bytes_per_expert == up + down);
    const auto loc = moerun::runtime::expert_location(f, s.layers[0], 3);
    CHECK(loc.gate.size == 0);
    CHECK(loc.up.size == up);
    CHECK(loc.down.offset == s.layers[0].down->file_offset + 3 * down);
}

TEST_CASE("a leading dense layer has no entry") {
    GgufBuilder b = make_moe_model();
    b.remove_tensor("blk.0.ffn_gate_exps.weight").remove_tensor("blk.0.ffn_up_exps.weight");
    b.remove_tensor("blk.0.ffn_down_exps.weight");
    b.tensor("blk.0.ffn_up.weight", Type::F16, {64, 96});
    const GgufFile f = parse(b);
    const ModelInfo m = ModelInfo::from_gguf(f);
    const ExpertSummary s = ExpertSummary::from_gguf(f, m);
    REQUIRE(s.layers.size() == 1);
    CHECK(s.layers[0].layer == 1);
}

TEST_CASE("dense model") {
    GgufBuilder b;
    b.kv("general.architecture", str("llama"));
    b.kv("llama.block_count", u32(1))
        .kv("llama.context_length", u32(128))
        .kv("llama.embedding_length", u32(32));
    b.kv("llama.attention.head_count", u32(4));
    b.tensor("blk.0.ffn_up.weight", Type::F32, {32, 64});
    const GgufFile f = parse(b);
    const ModelInfo m = ModelInfo::from_gguf(f);
    CHECK(m.n_expert == 0);
    CHECK(m.n_ff == 0);
    CHECK(m.n_head_kv == 4);
    CHECK(m.rope_freq_base == 10000.0);
    CHECK(m.n_vocab == 0);
    const ExpertSummary s = ExpertSummary::from_gguf(f, m);
    CHECK(s.layers.empty());
    CHECK(s.expert_bytes == 0);
    CHECK(s.dense_bytes == 32 * 64 * 4);
}

TEST_CASE("per-layer hyperparameter arrays") {
    GgufBuilder b = make_moe_model();
    b.replace("qwen3moe.attention.head_count_kv", arr(kU32, {u32(2), u32(1)}));
    b.replace("qwen3moe.feed_forward_length", arr(kI32, {i32(0), i32(96)}));
    const ModelInfo m = ModelInfo::from_gguf(parse(b));
    CHECK(m.n_head_kv_layer == std::vector<uint64_t>{2, 1});
    CHECK(m.n_head_kv == 2);
    CHECK(m.n_ff_layer == std::vector<uint64_t>{0, 96});

    b.replace("qwen3moe.attention.head_count_kv", arr(kU32, {u32(2)}));
    CHECK_MODEL_ERROR(b, "qwen3moe.attention.head_count_kv",
                      "per-layer array has 1 values, expected block_count = 2");
    b.replace("qwen3moe.attention.head_count_kv", arr(kF32, {f32(2), f32(2)}));
    CHECK_MODEL_ERROR(b, "qwen3moe.attention.head_count_kv", "expected an array of integers");
    b.replace("qwen3moe.attention.head_count_kv", arr(kI8, {i8(2), i8(-1)}));
    CHECK_MODEL_ERROR(b, "qwen3moe.attention.head_count_kv", "negative");
}

TEST_CASE("missing and invalid hyperparameters name the key") {
    for (const char *key :
         {"qwen3moe.block_count", "qwen3moe.context_length", "qwen3moe.embedding_length",
          "qwen3moe.attention.head_count", "qwen3moe.expert_used_count", "general.architecture"}) {
        CAPTURE(key);
        GgufBuilder b = make_moe_model();
        b.remove(key);
        CHECK_MODEL_ERROR(b, key, "required key is missing");
    }
    GgufBuilder b = make_moe_model();
    b.replace("qwen3moe.block_count", u32(0));
    CHECK_MODEL_ERROR(b, "qwen3moe.block_count", "0 layers, expected 1 to 65536");
    b = make_moe_model();
    b.replace("qwen3moe.block_count", u64(uint64_t{1} << 40));
    CHECK_MODEL_ERROR(b, "qwen3moe.block_count", "expected 1 to 65536");
    b = make_moe_model();
    b.replace("qwen3moe.block_count", str("2"));
    CHECK_MODEL_ERROR(b, "qwen3moe.block_count", "expected an integer, found a string");
    b = make_moe_model();
    b.replace("qwen3moe.embedding_length", i32(-64));
    CHECK_MODEL_ERROR(b, "qwen3moe.embedding_length", "non-negative");
    b = make_moe_model();
    b.replace("qwen3moe.expert_used_count", u32(5));
    CHECK_MODEL_ERROR(b, "qwen3moe.expert_used_count", "expected 1 to expert_count = 4");
    b = make_moe_model();
    b.replace("qwen3moe.attention.head_count", u32(0));
    CHECK_MODEL_ERROR(b, "qwen3moe.attention.head_count", "at least 1");
    b = make_moe_model();
    b.replace("qwen3moe.attention.head_count", u32(5));  // 64 % 5 != 0 and no key_length
    CHECK_MODEL_ERROR(b, "qwen3moe.attention.key_length", "not a multiple of head_count 5");
    b = make_moe_model();
    b.replace("qwen3moe.rope.freq_base", str("1e6"));
    CHECK_MODEL_ERROR(b, "qwen3moe.rope.freq_base", "expected a number");
    b = make_moe_model();
    b.replace("tokenizer.ggml.tokens", arr(kU32, {u32(1)}));
    CHECK_MODEL_ERROR(b, "tokenizer.ggml.tokens", "expected an array of strings");
}

TEST_CASE("inconsistent expert tensors") {
    GgufBuilder b = make_moe_model();
    b.replace("qwen3moe.expert_count", u32(8));
    CHECK_MODEL_ERROR(b, "tensor 'blk.0.ffn_gate_exps.weight'",
                      "holds 4 experts (ne[2]) but qwen3moe.expert_count = 8");

    b = make_moe_model();
    b.remove("qwen3moe.expert_count").remove("qwen3moe.expert_used_count");
    CHECK_MODEL_ERROR(b, "qwen3moe.expert_count",
                      "required key is missing from the metadata: the file has stacked");

    b = make_moe_model();
    b.replace("qwen3moe.expert_feed_forward_length", u32(64));
    CHECK_MODEL_ERROR(b, "tensor 'blk.0.ffn_gate_exps.weight'",
                      "expected {embedding_length = 64, expert_ff_length = 64");

    b = make_moe_model();
    b.remove("qwen3moe.expert_feed_forward_length").remove("qwen3moe.feed_forward_length");
    CHECK_MODEL_ERROR(b, "qwen3moe.expert_feed_forward_length", "required key is missing");

    b = make_moe_model();
    b.remove_tensor("blk.1.ffn_down_exps.weight");
    CHECK_MODEL_ERROR(b, "blk.1.ffn_down_exps.weight", "missing: layer 1 has blk.1.ffn_up_exps.weight");

    b = make_moe_model();
    b.replace("qwen3moe.block_count", u32(1));
    CHECK_MODEL_ERROR(b, "tensor 'blk.1.ffn_gate_exps.weight'", "layer 1 but qwen3moe.block_count = 1");

    b = make_moe_model();
    b.tensor("blk.0.ffn_norm_exps.weight", Type::F32, {64});  // not an expert weight: dense
    b.tensor("blk.01.ffn_up_exps.weight", Type::F32, {64});   // not canonical: dense
    CHECK_NOTHROW(ExpertSummary::from_gguf(parse(b), ModelInfo::from_gguf(parse(b))));

    b = make_moe_model();
    b.remove_tensor("blk.0.ffn_down_exps.weight");
    b.tensor("blk.0.ffn_down_exps.weight", Type::Q8_0, {32, 64});  // 2-D
    CHECK_MODEL_ERROR(b, "tensor 'blk.0.ffn_down_exps.weight'", "expected 3 dimensions");
}

TEST_CASE("hyperparameters of the real vocab GGUFs") {
    const std::filesystem::path dir = std::filesystem::path(MOERUN_SHARED_DATA) / "vocab";
    if (!std::filesystem::is_directory(dir)) {
        MESSAGE("skipped: no " << dir.string());
        return;
    }
    int files = 0;
    for (const auto &entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".gguf") continue;
        CAPTURE(entry.path().string());
        ++files;
        const GgufFile f = GgufFile::open(entry.path().string());
        const ModelInfo m = ModelInfo::from_gguf(f);
        CHECK(m.n_layer > 0);
        CHECK(m.n_embd > 0);
        CHECK(m.n_vocab == f.get_array("tokenizer.ggml.tokens").count);
        CHECK(!m.tokenizer_model.empty());
        CHECK(m.n_expert == 0);
        CHECK((m.rms_eps > 0 || m.norm_eps > 0));
        CHECK(ExpertSummary::from_gguf(f, m).layers.empty());
    }
    CHECK(files >= 10);

    if (std::filesystem::exists(dir / "ggml-vocab-deepseek-coder.gguf")) {
        const GgufFile f = GgufFile::open((dir / "ggml-vocab-deepseek-coder.gguf").string());
        const ModelInfo m = ModelInfo::from_gguf(f);
        CHECK(m.architecture == "llama");
        CHECK(m.n_layer == 32);
        CHECK(m.n_ctx_train == 16384);
        CHECK(m.n_embd == 4096);
        CHECK(m.n_ff == 11008);
        CHECK(m.n_head == 32);
        CHECK(m.n_embd_head_k == 128);
        CHECK(m.n_rot == 128);
        CHECK(m.rope_freq_base == 100000.0);
        CHECK(m.rope_scaling.type == "linear");
        CHECK(m.rope_scaling.factor == 4.0);
        CHECK(m.n_vocab == 32256);
        CHECK(m.tokenizer_model == "gpt2");
        CHECK(m.tokenizer_pre == "deepseek-coder");
    }
    if (std::filesystem::exists(dir / "ggml-vocab-gpt-2.gguf")) {
        const ModelInfo m = ModelInfo::from_gguf(GgufFile::open((dir / "ggml-vocab-gpt-2.gguf").string()));
        CHECK(m.architecture == "gpt2");
        CHECK(m.n_vocab == 50257);
        CHECK(m.n_head_kv == 12);  // absent: defaults to head_count
        CHECK(m.norm_eps == doctest::Approx(1e-5));
        CHECK(m.rms_eps == 0);
    }
}
