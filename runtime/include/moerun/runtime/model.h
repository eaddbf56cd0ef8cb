// A loaded MoE model: hyperparameters and weight views bound from a GGUF, in place.
//
// Architecture files (runtime/src/arch-*.cpp) declare what differs between families in an
// ArchSpec; the forward pass (forward.cpp) builds every family from the same blocks: RMSNorm,
// attention with RoPE and a KV cache, router softmax + top-k, SwiGLU experts, shared expert.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moerun/kernels/cpu/rope.h"
#include "moerun/runtime/gguf.h"

namespace moerun {

enum class RopeMode { normal, neox };  // normal: pairs (2i, 2i+1); neox: pairs (i, i + n_rot/2)
enum class QkNorm {
    none,
    per_head,
    full
};  // RMSNorm of q/k per head (Qwen3) or over the whole projection (OLMoE)

struct ArchSpec {
    std::string_view name;  // general.architecture
    RopeMode rope = RopeMode::neox;
    QkNorm qk_norm = QkNorm::none;
    bool norm_topk = false;        // renormalise the selected experts' weights to sum to 1
    bool shared_expert = false;    // ffn_*_shexp with a sigmoid gate (Qwen2-MoE)
    bool requires_experts = true;  // refuse a file without expert tensors
    // output.weight may be absent, the token embedding then doubles as the output matrix (tied
    // embeddings); where llama.cpp requires it (OLMoE, Qwen2-MoE), a file without it is refused.
    bool tied_output = true;
};

// The architecture registry: nullptr for an architecture moerun does not support.
const ArchSpec *find_arch(std::string_view name);
std::string supported_archs();  // "llama (Mixtral), olmoe, qwen2moe, qwen3moe"

struct Hparams {
    uint32_t n_layer = 0, n_embd = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0;
    uint32_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0, n_ff_shexp = 0;
    uint32_t n_vocab = 0, n_ctx_train = 0;  // n_vocab: tokenizer.ggml.tokens (= embedding rows)
    float rms_eps = 1e-6f, rope_freq_base = 10000.0f, rope_freq_scale = 1.0f;
    kernels::cpu::RopeScaling rope;  // its parameters (freq_scale, YaRN mix and correction dims)
};

// A view of one weight tensor inside the mapped file. ne as in GGUF: ne[0] is the row length.
struct Weight {
    quant::Type type = quant::Type::F32;
    const uint8_t *data = nullptr;
    int64_t ne[3] = {1, 1, 1};
    uint64_t row_bytes = 0;  // bytes of one row of ne[0] elements
    uint64_t expert_bytes() const {
        return row_bytes * static_cast<uint64_t>(ne[1]);
    }  // one [ne1, ne0] slice
    bool present() const { return data != nullptr; }
};

struct LayerWeights {
    std::vector<float> attn_norm;          // [n_embd]
    Weight wq, wk, wv, wo;                 // [n_head*hd, n_embd], [n_kv*hd, n_embd] x2, [n_embd, n_head*hd]
    std::vector<float> bq, bk, bv;         // optional biases
    std::vector<float> q_norm, k_norm;     // [hd] (per head) or [n_head*hd]/[n_kv*hd] (full)
    std::vector<float> ffn_norm;           // [n_embd]
    Weight gate_inp;                       // router [n_expert, n_embd]
    Weight gate_exps, up_exps, down_exps;  // [n_expert, n_ff_exp, n_embd] x2, [n_expert, n_embd, n_ff_exp]
    Weight gate_shexp, up_shexp, down_shexp;  // [n_ff_shexp, n_embd] x2, [n_embd, n_ff_shexp]
    Weight gate_inp_shexp;                    // [1, n_embd]
};

class Model {
  public:
    // Binds every tensor the architecture needs; throws gguf::Error naming the missing or
    // mis-shaped tensor / key, or the unsupported architecture.
    static Model load(const gguf::GgufFile &file);

    const ArchSpec &arch() const { return *arch_; }
    const Hparams &hparams() const { return hp_; }
    const Weight &tok_embd() const { return tok_embd_; }  // [n_vocab, n_embd]
    const std::vector<float> &output_norm() const { return output_norm_; }
    const Weight &output() const { return output_; }  // [n_vocab, n_embd] (tied to tok_embd when absent)
    const LayerWeights &layer(uint32_t i) const { return layers_[i]; }

  private:
    const ArchSpec *arch_ = nullptr;
    Hparams hp_;
    Weight tok_embd_, output_;
    std::vector<float> output_norm_;
    std::vector<LayerWeights> layers_;
};

}  // namespace moerun
