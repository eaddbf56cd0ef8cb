// A small GGUF writer for tests: valid files, and corrupted ones by patching the bytes it
// reports the positions of.
//
//   GgufBuilder b;                                   // v3, alignment 32
//   b.kv("general.architecture", str("qwen3moe"));
//   b.kv("tokenizer.ggml.tokens", arr(kString, {str("a"), str("b")}));
//   b.tensor("blk.0.ffn_up_exps.weight", Type::Q8_0, {64, 32, 4});   // ne = {cols, rows, n_expert}
//   Layout at;
//   std::vector<uint8_t> bytes = b.build(&at);
//   put_u64(bytes, at["tensor_count"], UINT64_MAX);  // corrupt: raw overrides by position
//
// Layout names: version, tensor_count, kv_count, kv[i].key, kv[i].type, kv[i].value,
// tensor[i].name, tensor[i].n_dims, tensor[i].ne[j], tensor[i].type, tensor[i].offset,
// tensor[i].data (absolute), data (the data section). Tensor data bytes are a pattern that
// depends on the tensor index and byte position (pattern_byte), so tests can check slices.
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "moerun/quant/types.h"

namespace moerun::test {

enum VType : uint32_t {
    kU8 = 0,
    kI8 = 1,
    kU16 = 2,
    kI16 = 3,
    kU32 = 4,
    kI32 = 5,
    kF32 = 6,
    kBool = 7,
    kString = 8,
    kArray = 9,
    kU64 = 10,
    kI64 = 11,
    kF64 = 12,
};

// An encoded value: its type tag and its payload (everything after the tag).
struct GVal {
    uint32_t type = kU8;
    std::vector<uint8_t> payload;
};

inline void append_le(std::vector<uint8_t> &out, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
inline void put_u32(std::vector<uint8_t> &b, size_t at, uint32_t v) {
    for (size_t i = 0; i < 4; ++i) b.at(at + i) = static_cast<uint8_t>(v >> (8 * i));
}
inline void put_u64(std::vector<uint8_t> &b, size_t at, uint64_t v) {
    for (size_t i = 0; i < 8; ++i) b.at(at + i) = static_cast<uint8_t>(v >> (8 * i));
}

template <typename T>
GVal scalar(uint32_t type, T v) {
    GVal g{type, {}};
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    append_le(g.payload, bits, sizeof(T));
    return g;
}
inline GVal u8(uint8_t v) {
    return scalar(kU8, v);
}
inline GVal i8(int8_t v) {
    return scalar(kI8, v);
}
inline GVal u16(uint16_t v) {
    return scalar(kU16, v);
}
inline GVal i16(int16_t v) {
    return scalar(kI16, v);
}
inline GVal u32(uint32_t v) {
    return scalar(kU32, v);
}
inline GVal i32(int32_t v) {
    return scalar(kI32, v);
}
inline GVal u64(uint64_t v) {
    return scalar(kU64, v);
}
inline GVal i64(int64_t v) {
    return scalar(kI64, v);
}
inline GVal f32(float v) {
    return scalar(kF32, v);
}
inline GVal f64(double v) {
    return scalar(kF64, v);
}
inline GVal boolean(bool v) {
    return scalar(kBool, static_cast<uint8_t>(v));
}
inline GVal str(std::string_view s) {
    GVal g{kString, {}};
    append_le(g.payload, s.size(), 8);
    g.payload.insert(g.payload.end(), s.begin(), s.end());
    return g;
}
// Array of elements that must all have type elem_type (not checked: corruptions welcome).
inline GVal arr(uint32_t elem_type, const std::vector<GVal> &elems) {
    GVal g{kArray, {}};
    append_le(g.payload, elem_type, 4);
    append_le(g.payload, elems.size(), 8);
    for (const auto &e : elems) g.payload.insert(g.payload.end(), e.payload.begin(), e.payload.end());
    return g;
}
inline GVal raw(uint32_t type, std::vector<uint8_t> payload) {
    return GVal{type, std::move(payload)};
}

inline uint8_t pattern_byte(size_t tensor_index, uint64_t i) {
    return static_cast<uint8_t>((tensor_index * 131 + i * 7 + (i >> 8)) & 0xff);
}

struct Layout {
    std::map<std::string, size_t> at;
    size_t operator[](const std::string &name) const {
        auto it = at.find(name);
        if (it == at.end()) throw std::out_of_range("no layout entry " + name);
        return it->second;
    }
};

class GgufBuilder {
  public:
    struct Tensor {
        std::string name;
        uint32_t type = 0;  // raw ggml type id
        std::vector<uint64_t> ne;
        std::optional<uint32_t> n_dims;      // written instead of ne.size()
        std::optional<uint64_t> offset;      // written instead of the packed offset
        std::optional<uint64_t> data_bytes;  // bytes of data written (default: the computed size, or 0)
    };

    uint32_t version = 3;
    uint32_t alignment = 32;  // used for padding; set_alignment() also writes general.alignment

    GgufBuilder &kv(std::string key, GVal v) {
        kvs_.push_back({std::move(key), std::move(v)});
        return *this;
    }
    // Replaces the value of `key` (appending it when absent) / removes `key`.
    GgufBuilder &replace(const std::string &key, GVal v) {
        for (auto &kv : kvs_)
            if (kv.first == key) {
                kv.second = std::move(v);
                return *this;
            }
        return kv(key, std::move(v));
    }
    GgufBuilder &remove(const std::string &key) {
        std::erase_if(kvs_, [&](const auto &kv) { return kv.first == key; });
        return *this;
    }
    // Removes the tensor named `name`.
    GgufBuilder &remove_tensor(const std::string &name) {
        std::erase_if(tensors_, [&](const Tensor &t) { return t.name == name; });
        return *this;
    }
    GgufBuilder &set_alignment(uint32_t a) {
        alignment = a;
        return kv("general.alignment", u32(a));
    }
    Tensor &tensor(std::string name, quant::Type type, std::vector<uint64_t> ne) {
        return tensor_raw(std::move(name), static_cast<uint32_t>(type), std::move(ne));
    }
    Tensor &tensor_raw(std::string name, uint32_t type, std::vector<uint64_t> ne) {
        tensors_.push_back(Tensor{std::move(name), type, std::move(ne), {}, {}, {}});
        return tensors_.back();
    }

    // Byte size of a tensor from its type and shape; 0 when that cannot be computed.
    static uint64_t tensor_size(const Tensor &t) {
        const auto tr = quant::traits(t.type);
        if (!tr || t.ne.empty()) return 0;
        auto row = quant::row_bytes(tr->type, t.ne[0]);
        if (!row) return 0;
        uint64_t size = *row;
        for (size_t j = 1; j < t.ne.size(); ++j)
            if (__builtin_mul_overflow(size, t.ne[j], &size)) return 0;
        return size;
    }

    std::vector<uint8_t> build(Layout *layout = nullptr) const {
        Layout l;
        std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
        l.at["version"] = b.size();
        append_le(b, version, 4);
        l.at["tensor_count"] = b.size();
        append_le(b, tensors_.size(), 8);
        l.at["kv_count"] = b.size();
        append_le(b, kvs_.size(), 8);
        for (size_t i = 0; i < kvs_.size(); ++i) {
            const std::string p = "kv[" + std::to_string(i) + "].";
            l.at[p + "key"] = b.size();
            append_le(b, kvs_[i].first.size(), 8);
            b.insert(b.end(), kvs_[i].first.begin(), kvs_[i].first.end());
            l.at[p + "type"] = b.size();
            append_le(b, kvs_[i].second.type, 4);
            l.at[p + "value"] = b.size();
            b.insert(b.end(), kvs_[i].second.payload.begin(), kvs_[i].second.payload.end());
        }
        uint64_t next = 0;
        std::vector<uint64_t> offsets, sizes;
        for (size_t i = 0; i < tensors_.size(); ++i) {
            const Tensor &t = tensors_[i];
            const std::string p = "tensor[" + std::to_string(i) + "].";
            l.at[p + "name"] = b.size();
            append_le(b, t.name.size(), 8);
            b.insert(b.end(), t.name.begin(), t.name.end());
            l.at[p + "n_dims"] = b.size();
            append_le(b, t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())), 4);
            for (size_t j = 0; j < t.ne.size(); ++j) {
                l.at[p + "ne[" + std::to_string(j) + "]"] = b.size();
                append_le(b, t.ne[j], 8);
            }
            l.at[p + "type"] = b.size();
            append_le(b, t.type, 4);
            l.at[p + "offset"] = b.size();
            const uint64_t size = t.data_bytes.value_or(tensor_size(t));
            offsets.push_back(t.offset.value_or(next));
            sizes.push_back(size);
            append_le(b, offsets.back(), 8);
            next += (size + alignment - 1) / alignment * alignment;
        }
        b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
        const size_t data = b.size();
        l.at["data"] = data;
        for (size_t i = 0; i < tensors_.size(); ++i) {
            l.at["tensor[" + std::to_string(i) + "].data"] = data + offsets[i];
            if (tensors_[i].offset) continue;  // overridden offsets get no data written
            b.resize(data + offsets[i], 0);
            for (uint64_t k = 0; k < sizes[i]; ++k) b.push_back(pattern_byte(i, k));
            b.resize((b.size() + alignment - 1) / alignment * alignment, 0);
        }
        if (layout) *layout = std::move(l);
        return b;
    }

  private:
    std::vector<std::pair<std::string, GVal>> kvs_;
    std::deque<Tensor> tensors_;
};

// A tiny MoE model in the shape of Qwen3-MoE / OLMoE: per layer attention, norms, a router and
// the three stacked expert tensors.
struct MoeSpec {
    std::string arch = "qwen3moe";
    uint32_t n_layer = 2;
    uint32_t n_embd = 64;
    uint32_t n_ff_exp = 32;
    uint32_t n_expert = 4;
    uint32_t n_expert_used = 2;
    uint32_t n_head = 4;
    uint32_t n_head_kv = 2;
    uint32_t n_vocab = 8;
    quant::Type expert_type = quant::Type::Q8_0;
    quant::Type down_type = quant::Type::Q8_0;
    bool gate = true;
};

inline GgufBuilder make_moe_model(const MoeSpec &s = {}) {
    using quant::Type;
    GgufBuilder b;
    const std::string a = s.arch;
    b.kv("general.architecture", str(a));
    std::string name = "tiny ";  // (not "tiny " + a: GCC 12 -Wrestrict false positive)
    name += a;
    b.kv("general.name", str(name));
    b.kv(a + ".block_count", u32(s.n_layer));
    b.kv(a + ".context_length", u32(256));
    b.kv(a + ".embedding_length", u32(s.n_embd));
    b.kv(a + ".feed_forward_length", u32(s.n_ff_exp * 3));
    b.kv(a + ".expert_feed_forward_length", u32(s.n_ff_exp));
    b.kv(a + ".expert_count", u32(s.n_expert));
    b.kv(a + ".expert_used_count", u32(s.n_expert_used));
    b.kv(a + ".attention.head_count", u32(s.n_head));
    b.kv(a + ".attention.head_count_kv", u32(s.n_head_kv));
    b.kv(a + ".rope.freq_base", f32(1000000.0f));
    b.kv(a + ".attention.layer_norm_rms_epsilon", f32(1e-6f));
    b.kv("tokenizer.ggml.model", str("gpt2"));
    b.kv("tokenizer.ggml.pre", str("qwen2"));
    std::vector<GVal> tokens;
    for (uint32_t i = 0; i < s.n_vocab; ++i) tokens.push_back(str(std::to_string(i).insert(0, 1, 't')));
    b.kv("tokenizer.ggml.tokens", arr(kString, tokens));
    const uint64_t e = s.n_embd, f = s.n_ff_exp, x = s.n_expert;
    b.tensor("token_embd.weight", Type::F16, {e, s.n_vocab});
    for (uint32_t l = 0; l < s.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        b.tensor(p + "attn_norm.weight", Type::F32, {e});
        b.tensor(p + "attn_q.weight", Type::F16, {e, e});
        b.tensor(p + "ffn_gate_inp.weight", Type::F32, {e, x});  // router [n_expert, n_embd]
        if (s.gate)
            b.tensor(p + "ffn_gate_exps.weight", s.expert_type, {e, f, x});  // [n_expert, n_ff, n_embd]
        b.tensor(p + "ffn_up_exps.weight", s.expert_type, {e, f, x});        // [n_expert, n_ff, n_embd]
        b.tensor(p + "ffn_down_exps.weight", s.down_type, {f, e, x});        // [n_expert, n_embd, n_ff]
    }
    b.tensor("output_norm.weight", Type::F32, {e});
    return b;
}

// make_moe_model() (default spec) plus the attention and norm tensors it leaves out (and qwen2moe's
// shared expert): Model::load accepts it, and a Context runs it.
inline GgufBuilder make_complete_moe_model(const std::string &arch = "qwen3moe") {
    MoeSpec spec;
    spec.arch = arch;
    GgufBuilder b = make_moe_model(spec);
    for (int l = 0; l < 2; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        b.tensor(p + "attn_k.weight", quant::Type::F16, {64, 32});
        b.tensor(p + "attn_v.weight", quant::Type::F16, {64, 32});
        b.tensor(p + "attn_output.weight", quant::Type::F16, {64, 64});
        if (arch == "qwen3moe") {
            b.tensor(p + "attn_q_norm.weight", quant::Type::F32, {16});
            b.tensor(p + "attn_k_norm.weight", quant::Type::F32, {16});
        }
        if (arch == "olmoe") {  // RMSNorm of the whole q and k projections
            b.tensor(p + "attn_q_norm.weight", quant::Type::F32, {64});
            b.tensor(p + "attn_k_norm.weight", quant::Type::F32, {32});
        }
        if (arch == "qwen2moe") {
            b.tensor(p + "ffn_gate_shexp.weight", quant::Type::F16, {64, 48});
            b.tensor(p + "ffn_up_shexp.weight", quant::Type::F16, {64, 48});
            b.tensor(p + "ffn_down_shexp.weight", quant::Type::F16, {48, 64});
            b.tensor(p + "ffn_gate_inp_shexp.weight", quant::Type::F32, {64});
        }
        b.tensor(p + "ffn_norm.weight", quant::Type::F32, {64});
    }
    if (arch == "qwen2moe") b.kv("qwen2moe.expert_shared_feed_forward_length", u32(48));
    // The architectures whose output matrix llama.cpp requires (the others tie it to token_embd).
    if (arch == "olmoe" || arch == "qwen2moe")
        b.tensor("output.weight", quant::Type::F16, {64, spec.n_vocab});
    return b;
}

}  // namespace moerun::test
