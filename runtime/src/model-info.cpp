// Hyperparameters and the expert layout of a GGUF model (see model-info.h).
#include "moerun/runtime/model-info.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <stdexcept>

namespace moerun::runtime {
namespace {

constexpr uint64_t kMaxLayers = 65536;
constexpr uint64_t kMaxExperts = 65536;
constexpr uint64_t kMetadataOffset = 24;  // where the metadata section starts, for "key missing" errors

std::string quoted(std::string_view s) {
    std::string out = "'";
    for (char ch : s.substr(0, 120)) {
        const auto c = static_cast<unsigned char>(ch);
        out += (c >= 0x20 && c < 0x7f) ? ch : '?';
    }
    return out + (s.size() > 120 ? "...'" : "'");
}

// A per-layer hyperparameter stored as one integer or as an array of n_layer integers.
// Returns an empty vector when the key is absent.
std::vector<uint64_t> per_layer(const gguf::GgufFile &f, const std::string &key, uint64_t n_layer) {
    const gguf::Value *v = f.find(key);
    if (v == nullptr) return {};
    if (v->type != gguf::ValueType::ARRAY) return std::vector<uint64_t>(n_layer, f.get_uint(key));
    const gguf::Array &a = std::get<gguf::Array>(v->v);
    if (a.count != n_layer)
        f.fail(v->offset, key,
               "per-layer array has " + std::to_string(a.count) +
                   " values, expected block_count = " + std::to_string(n_layer));
    std::vector<uint64_t> out(n_layer);
    for (uint64_t i = 0; i < n_layer; ++i) {
        int64_t x = 0;
        try {
            x = a.get_int(i);
        } catch (const std::exception &e) {
            f.fail(v->offset, key, std::string("expected an array of integers: ") + e.what());
        }
        if (x < 0)
            f.fail(v->offset, key,
                   "value " + std::to_string(x) + " for layer " + std::to_string(i) + " is negative");
        out[i] = static_cast<uint64_t>(x);
    }
    return out;
}

uint64_t max_of(const std::vector<uint64_t> &v) {
    return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

}  // namespace

ModelInfo ModelInfo::from_gguf(const gguf::GgufFile &f) {
    ModelInfo m;
    m.architecture = std::string(f.get_string("general.architecture"));
    if (m.architecture.empty())
        f.fail(f.find("general.architecture")->offset, "general.architecture", "is empty");
    m.name = std::string(f.get_string_opt("general.name").value_or(""));

    const std::string k_layers = m.key("block_count");
    m.n_layer = f.get_uint(k_layers);
    if (m.n_layer == 0 || m.n_layer > kMaxLayers)
        f.fail(f.find(k_layers)->offset, k_layers,
               std::to_string(m.n_layer) + " layers, expected 1 to " + std::to_string(kMaxLayers));
    m.n_ctx_train = f.get_uint(m.key("context_length"));
    const std::string k_embd = m.key("embedding_length");
    m.n_embd = f.get_uint(k_embd);
    if (m.n_embd == 0) f.fail(f.find(k_embd)->offset, k_embd, "must be at least 1");

    m.n_ff_layer = per_layer(f, m.key("feed_forward_length"), m.n_layer);
    m.n_ff = max_of(m.n_ff_layer);

    const std::string k_head = m.key("attention.head_count");
    if (f.find(k_head) == nullptr) f.get_uint(k_head);  // throws "required key is missing"
    m.n_head_layer = per_layer(f, k_head, m.n_layer);
    m.n_head = max_of(m.n_head_layer);
    if (m.n_head == 0) f.fail(f.find(k_head)->offset, k_head, "must be at least 1");
    m.n_head_kv_layer = per_layer(f, m.key("attention.head_count_kv"), m.n_layer);
    if (m.n_head_kv_layer.empty()) m.n_head_kv_layer = m.n_head_layer;
    m.n_head_kv = max_of(m.n_head_kv_layer);

    const std::string k_klen = m.key("attention.key_length");
    const std::string k_vlen = m.key("attention.value_length");
    if (f.find(k_klen) == nullptr || f.find(k_vlen) == nullptr) {
        if (m.n_embd % m.n_head != 0)
            f.fail(kMetadataOffset, k_klen,
                   "absent, and embedding_length " + std::to_string(m.n_embd) +
                       " is not a multiple of head_count " + std::to_string(m.n_head));
    }
    m.n_embd_head_k = f.get_uint_or(k_klen, m.n_embd / m.n_head);
    m.n_embd_head_v = f.get_uint_or(k_vlen, m.n_embd / m.n_head);

    const std::string k_expert = m.key("expert_count");
    m.n_expert = f.get_uint_or(k_expert, 0);
    if (m.n_expert > kMaxExperts)
        f.fail(f.find(k_expert)->offset, k_expert,
               std::to_string(m.n_expert) + " experts, expected at most " + std::to_string(kMaxExperts));
    if (m.n_expert > 0) {
        const std::string k_used = m.key("expert_used_count");
        m.n_expert_used = f.get_uint(k_used);
        if (m.n_expert_used == 0 || m.n_expert_used > m.n_expert)
            f.fail(f.find(k_used)->offset, k_used,
                   std::to_string(m.n_expert_used) +
                       " experts used per token, expected 1 to expert_count = " + std::to_string(m.n_expert));
    } else {
        m.n_expert_used = f.get_uint_or(m.key("expert_used_count"), 0);
    }
    m.n_ff_exp = f.get_uint_or(m.key("expert_feed_forward_length"), 0);
    m.n_expert_shared = f.get_uint_or(m.key("expert_shared_count"), 0);
    m.n_ff_shexp = f.get_uint_or(m.key("expert_shared_feed_forward_length"), 0);

    m.rope_freq_base = f.get_float_or(m.key("rope.freq_base"), 10000.0);
    m.n_rot = f.get_uint_or(m.key("rope.dimension_count"), m.n_embd_head_k);
    m.rope_scaling.type = std::string(f.get_string_opt(m.key("rope.scaling.type")).value_or(""));
    m.rope_scaling.factor = f.get_float_or(m.key("rope.scaling.factor"), 0.0);
    m.rope_scaling.original_context_length = f.get_uint_or(m.key("rope.scaling.original_context_length"), 0);

    m.rms_eps = f.get_float_or(m.key("attention.layer_norm_rms_epsilon"), 0.0);
    m.norm_eps = f.get_float_or(m.key("attention.layer_norm_epsilon"), 0.0);

    if (const gguf::Array *tokens = f.get_array_opt("tokenizer.ggml.tokens")) {
        if (tokens->elem_type != gguf::ValueType::STRING)
            f.fail(f.find("tokenizer.ggml.tokens")->offset, "tokenizer.ggml.tokens",
                   "expected an array of strings, found an array of " +
                       std::string(gguf::value_type_name(tokens->elem_type)));
        m.n_vocab = tokens->count;
    }
    m.tokenizer_model = std::string(f.get_string_opt("tokenizer.ggml.model").value_or(""));
    m.tokenizer_pre = std::string(f.get_string_opt("tokenizer.ggml.pre").value_or(""));
    return m;
}

namespace {

enum class Part { kGate, kUp, kDown };

// "blk.<N>.ffn_{gate,up,down}_exps.weight" -> layer and part; false for any other name.
// N is canonical decimal (no sign, no leading zeros), so no two names map to one slot.
bool parse_expert_name(std::string_view name, uint64_t &layer, Part &part) {
    constexpr std::string_view kPrefix = "blk.";
    if (!name.starts_with(kPrefix)) return false;
    name.remove_prefix(kPrefix.size());
    const size_t dot = name.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 9) return false;
    const std::string_view digits = name.substr(0, dot);
    if (digits.size() > 1 && digits[0] == '0') return false;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), layer);
    if (ec != std::errc() || ptr != digits.data() + digits.size()) return false;
    const std::string_view rest = name.substr(dot + 1);
    if (rest == "ffn_gate_exps.weight") {
        part = Part::kGate;
    } else if (rest == "ffn_up_exps.weight") {
        part = Part::kUp;
    } else if (rest == "ffn_down_exps.weight") {
        part = Part::kDown;
    } else {
        return false;
    }
    return true;
}

std::string tensor_field(const gguf::TensorInfo &t) {
    return "tensor " + quoted(t.name);
}

std::string ne_text(const gguf::TensorInfo &t) {
    std::string s = "{";
    for (uint32_t j = 0; j < t.n_dims; ++j) s += (j ? ", " : "") + std::to_string(t.ne[j]);
    return s + "}";
}

// t must be ne = {cols, rows, n_expert}.
void check_shape(const gguf::GgufFile &f, const ModelInfo &m, const gguf::TensorInfo &t, uint64_t cols,
                 std::string_view cols_name, uint64_t rows, std::string_view rows_name) {
    const std::string expected = "{" + std::string(cols_name) + " = " + std::to_string(cols) + ", " +
                                 std::string(rows_name) + " = " + std::to_string(rows) +
                                 ", expert_count = " + std::to_string(m.n_expert) + "}";
    if (t.n_dims != 3)
        f.fail(t.info_offset, tensor_field(t),
               "stacked expert tensor has shape " + ne_text(t) + " (ne), expected 3 dimensions " + expected);
    if (t.ne[2] != m.n_expert)
        f.fail(t.info_offset, tensor_field(t),
               "holds " + std::to_string(t.ne[2]) + " experts (ne[2]) but " + m.key("expert_count") + " = " +
                   std::to_string(m.n_expert));
    if (t.ne[0] != cols || t.ne[1] != rows)
        f.fail(t.info_offset, tensor_field(t), "shape " + ne_text(t) + " (ne), expected " + expected);
}

}  // namespace

ExpertSummary ExpertSummary::from_gguf(const gguf::GgufFile &f, const ModelInfo &m) {
    ExpertSummary s;
    std::map<uint64_t, LayerExperts> layers;
    for (const gguf::TensorInfo &t : f.tensors()) {
        uint64_t layer = 0;
        Part part{};
        if (!parse_expert_name(t.name, layer, part)) {
            s.dense_bytes += t.size;  // sizes are bounded by the file size: no overflow
            continue;
        }
        s.expert_bytes += t.size;
        if (layer >= m.n_layer)
            f.fail(t.info_offset, tensor_field(t),
                   "layer " + std::to_string(layer) + " but " + m.key("block_count") + " = " +
                       std::to_string(m.n_layer));
        LayerExperts &le = layers[layer];
        le.layer = layer;
        (part == Part::kGate ? le.gate : part == Part::kUp ? le.up : le.down) = &t;
    }
    if (layers.empty()) return s;

    if (m.n_expert == 0)
        f.fail(kMetadataOffset, m.key("expert_count"),
               "required key is missing from the metadata: the file has stacked expert tensors (" +
                   std::string(layers.begin()->second.up     ? layers.begin()->second.up->name
                               : layers.begin()->second.down ? layers.begin()->second.down->name
                                                             : layers.begin()->second.gate->name) +
                   ")");
    s.n_expert = m.n_expert;
    s.min_bytes_per_expert = UINT64_MAX;
    for (auto &[layer, le] : layers) {
        const std::string prefix = "blk." + std::to_string(layer) + ".";
        const gguf::TensorInfo *any = le.up ? le.up : le.down ? le.down : le.gate;
        if (le.up == nullptr || le.down == nullptr)
            f.fail(any->info_offset, prefix + (le.up ? "ffn_down_exps.weight" : "ffn_up_exps.weight"),
                   "missing: layer " + std::to_string(layer) + " has " + std::string(any->name) +
                       " but every MoE layer needs ffn_up_exps and ffn_down_exps");
        const uint64_t n_ff_exp = m.expert_ff_length(layer);
        if (n_ff_exp == 0)
            f.fail(kMetadataOffset, m.key("expert_feed_forward_length"),
                   "required key is missing from the metadata (and " + m.key("feed_forward_length") +
                       " gives no size for layer " + std::to_string(layer) + ")");
        if (le.gate) check_shape(f, m, *le.gate, m.n_embd, "embedding_length", n_ff_exp, "expert_ff_length");
        check_shape(f, m, *le.up, m.n_embd, "embedding_length", n_ff_exp, "expert_ff_length");
        check_shape(f, m, *le.down, n_ff_exp, "expert_ff_length", m.n_embd, "embedding_length");

        le.n_expert = m.n_expert;
        for (const gguf::TensorInfo *t : {le.gate, le.up, le.down}) {
            if (t == nullptr) continue;
            le.bytes_per_expert += f.expert_slice(*t, 0).size;
            le.bytes += t->size;
        }
        s.min_bytes_per_expert = std::min(s.min_bytes_per_expert, le.bytes_per_expert);
        s.max_bytes_per_expert = std::max(s.max_bytes_per_expert, le.bytes_per_expert);
        s.layers.push_back(le);
    }
    return s;
}

cache::ExpertLocation expert_location(const gguf::GgufFile &f, const LayerExperts &layer, uint32_t expert) {
    cache::ExpertLocation loc;
    loc.id = cache::ExpertId{static_cast<uint32_t>(layer.layer), expert};
    auto range = [&](const gguf::TensorInfo *t) {
        if (t == nullptr) return cache::ByteRange{};
        const gguf::ExpertSlice s = f.expert_slice(*t, expert);
        return cache::ByteRange{s.file_offset, s.size};
    };
    loc.gate = range(layer.gate);
    loc.up = range(layer.up);
    loc.down = range(layer.down);
    return loc;
}

}  // namespace moerun::runtime
