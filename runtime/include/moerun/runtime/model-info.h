// Model hyperparameters and the expert layout of a GGUF model, read and checked once.
//
// ModelInfo holds the `<arch>.*` hyperparameters (named as in gguf-py's constants, e.g.
// `qwen3moe.expert_count`) plus the tokenizer summary. ExpertSummary finds the stacked expert
// tensors of each layer,
//   blk.N.ffn_gate_exps.weight  [n_expert, n_ff_exp, n_embd]   (ne = {n_embd, n_ff_exp, n_expert})
//   blk.N.ffn_up_exps.weight    [n_expert, n_ff_exp, n_embd]   (ne = {n_embd, n_ff_exp, n_expert})
//   blk.N.ffn_down_exps.weight  [n_expert, n_embd, n_ff_exp]   (ne = {n_ff_exp, n_embd, n_expert})
// checks their shapes against the hyperparameters, and splits the file's tensor bytes into
// expert bytes (what the cache moves) and dense bytes (everything else, kept resident).
// Shared experts (ffn_*_shexp) are always active and count as dense.
//
// Both throw gguf::Error naming the key or tensor at fault; a missing required key reads
// "<file>: offset 24: qwen3moe.block_count: required key is missing from the metadata".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moerun/cache/expert-id.h"
#include "moerun/runtime/gguf.h"

namespace moerun::runtime {

struct RopeScaling {
    std::string type;                      // rope.scaling.type ("" when absent): none, linear, yarn, ...
    double factor = 0;                     // rope.scaling.factor (0 when absent)
    uint64_t original_context_length = 0;  // rope.scaling.original_context_length (0 when absent)
};

struct ModelInfo {
    std::string architecture;  // general.architecture, the prefix of every key below
    std::string name;          // general.name ("" when absent)

    // Required: block_count, context_length, embedding_length, attention.head_count.
    uint64_t n_layer = 0;      // block_count, 1..65536
    uint64_t n_ctx_train = 0;  // context_length
    uint64_t n_embd = 0;       // embedding_length

    // Per-layer values may be stored as one scalar or as an array of n_layer values; the
    // scalar fields hold the largest value over the layers.
    uint64_t n_ff = 0;                 // feed_forward_length (dense FFN; 0 when absent)
    std::vector<uint64_t> n_ff_layer;  // [n_layer]
    uint64_t n_head = 0;               // attention.head_count (>= 1)
    std::vector<uint64_t> n_head_layer;
    uint64_t n_head_kv = 0;  // attention.head_count_kv (default: head_count)
    std::vector<uint64_t> n_head_kv_layer;
    uint64_t n_embd_head_k = 0;  // attention.key_length (default n_embd / n_head)
    uint64_t n_embd_head_v = 0;  // attention.value_length (default n_embd / n_head)

    // Mixture of experts (all 0 for a dense model).
    uint64_t n_expert = 0;         // expert_count
    uint64_t n_expert_used = 0;    // expert_used_count (required when expert_count > 0)
    uint64_t n_ff_exp = 0;         // expert_feed_forward_length (0 when absent: experts use n_ff)
    uint64_t n_expert_shared = 0;  // expert_shared_count (0 when absent)
    uint64_t n_ff_shexp = 0;       // expert_shared_feed_forward_length (0 when absent)

    double rope_freq_base = 10000.0;  // rope.freq_base (default 10000, as llama.cpp)
    uint64_t n_rot = 0;               // rope.dimension_count (default n_embd_head_k)
    RopeScaling rope_scaling;

    double rms_eps = 0;   // attention.layer_norm_rms_epsilon (0 when absent)
    double norm_eps = 0;  // attention.layer_norm_epsilon (0 when absent)

    uint64_t n_vocab = 0;         // length of tokenizer.ggml.tokens (0 when absent)
    std::string tokenizer_model;  // tokenizer.ggml.model ("" when absent)
    std::string tokenizer_pre;    // tokenizer.ggml.pre ("" when absent)

    // The full key for a hyperparameter: key("block_count") == "<architecture>.block_count".
    std::string key(std::string_view suffix) const { return architecture + "." + std::string(suffix); }
    // Intermediate size of one expert of `layer`: n_ff_exp, or the dense n_ff when that is absent.
    uint64_t expert_ff_length(uint64_t layer) const {
        return n_ff_exp != 0 ? n_ff_exp : (layer < n_ff_layer.size() ? n_ff_layer[layer] : n_ff);
    }

    static ModelInfo from_gguf(const gguf::GgufFile &file);
};

struct LayerExperts {
    uint64_t layer = 0;
    const gguf::TensorInfo *gate = nullptr;  // [n_expert, n_ff_exp, n_embd]; may be absent (ungated FFN)
    const gguf::TensorInfo *up = nullptr;    // [n_expert, n_ff_exp, n_embd]
    const gguf::TensorInfo *down = nullptr;  // [n_expert, n_embd, n_ff_exp]
    uint64_t n_expert = 0;
    uint64_t bytes_per_expert = 0;  // one expert's gate + up + down bytes
    uint64_t bytes = 0;             // all experts of the layer
};

struct ExpertSummary {
    std::vector<LayerExperts> layers;   // MoE layers, ascending; dense layers have no entry
    uint64_t n_expert = 0;              // experts per MoE layer
    uint64_t min_bytes_per_expert = 0;  // over the MoE layers (quant types may differ per layer)
    uint64_t max_bytes_per_expert = 0;
    uint64_t expert_bytes = 0;  // all stacked expert tensors
    uint64_t dense_bytes = 0;   // every other tensor (attention, norms, embeddings, shared experts)

    // The tensors are those of `file`, which must outlive the summary.
    static ExpertSummary from_gguf(const gguf::GgufFile &file, const ModelInfo &info);
};

// File byte ranges of expert `expert` of one MoE layer (gate left empty when the layer has none).
cache::ExpertLocation expert_location(const gguf::GgufFile &file, const LayerExperts &layer, uint32_t expert);

}  // namespace moerun::runtime
