// Model::load: reads hyperparameters from `<arch>.*` metadata and binds every weight tensor
// in place, checking each one's presence, rank and shape against the hyperparameters.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "moerun/kernels/cpu/rope.h"
#include "moerun/quant/dequant.h"
#include "moerun/runtime/model-info.h"
#include "moerun/runtime/model.h"

namespace moerun {
namespace {

std::string shape_str(const gguf::TensorInfo &t) {
    std::string s = "[";
    for (uint32_t i = 0; i < t.n_dims; ++i) s += (i ? ", " : "") + std::to_string(t.ne[i]);
    return s + "]";
}

class Binder {
  public:
    explicit Binder(const gguf::GgufFile &f) : f_(f) {}

    const gguf::TensorInfo *find(const std::string &name) const { return f_.find_tensor(name); }

    // A weight of GGUF shape `ne` (ne[0] innermost); dims beyond `ne.size()` must be 1.
    Weight weight(const std::string &name, std::vector<int64_t> ne, bool required = true) const {
        const gguf::TensorInfo *t = find(name);
        if (!t) {
            if (required) f_.fail(0, name, "tensor missing (required by " + arch_ + ")");
            return {};
        }
        check_shape(*t, ne);
        if (!quant::traits(t->type).has_dequant)
            f_.fail(t->info_offset, name,
                    "tensor type " + std::string(quant::type_name(t->type)) + " is not supported yet");
        Weight w;
        w.type = t->type;
        w.data = f_.tensor_data(*t).data();
        for (size_t i = 0; i < 3; ++i) w.ne[i] = i < ne.size() ? ne[i] : 1;
        w.row_bytes = *quant::row_bytes(t->type, static_cast<uint64_t>(ne[0]));
        return w;
    }

    // A small vector (norm weight, bias) converted to float at load.
    std::vector<float> vec(const std::string &name, int64_t n, bool required = true) const {
        Weight w = weight(name, {n}, required);
        if (!w.present()) return {};
        std::vector<float> out(static_cast<size_t>(n));
        quant::dequantize_row(w.type, w.data, out.data(), n);
        return out;
    }

    void check_shape(const gguf::TensorInfo &t, const std::vector<int64_t> &ne) const {
        bool ok = t.n_dims >= 1;
        for (size_t i = 0; i < 4 && ok; ++i) {
            const int64_t want = i < ne.size() ? ne[i] : 1;
            ok = static_cast<int64_t>(t.ne[i]) == want;
        }
        if (!ok) {
            std::string want = "[";
            for (size_t i = 0; i < ne.size(); ++i) want += (i ? ", " : "") + std::to_string(ne[i]);
            f_.fail(t.info_offset, std::string(t.name), "shape " + shape_str(t) + ", expected " + want + "]");
        }
    }

    std::string arch_;

  private:
    const gguf::GgufFile &f_;
};

// A hyperparameter ModelInfo read, narrowed to uint32 with the range this runtime supports.
uint32_t narrow(const gguf::GgufFile &f, const std::string &key, uint64_t v, uint64_t min, uint64_t max) {
    if (v < min || v > max) {
        const gguf::Value *at = f.find(key);
        f.fail(at ? at->offset : 0, key,
               "value " + std::to_string(v) + " outside the supported range [" + std::to_string(min) + ", " +
                   std::to_string(max) + "]");
    }
    return static_cast<uint32_t>(v);
}

// A float for an error message ("nan", "inf", "-2", "1e-06").
std::string num_str(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

// True when a per-layer array is absent or holds the same value for every layer.
bool uniform(const std::vector<uint64_t> &per_layer, uint64_t v) {
    return std::all_of(per_layer.begin(), per_layer.end(), [v](uint64_t x) { return x == v; });
}

}  // namespace

Model Model::load(const gguf::GgufFile &f) {
    Model m;
    const std::string arch(f.get_string("general.architecture"));
    m.arch_ = find_arch(arch);
    if (!m.arch_)
        f.fail(f.find("general.architecture")->offset, "general.architecture",
               "architecture '" + arch + "' is not supported (supported: " + supported_archs() + ")");
    // The keys are read and range-checked once, by ModelInfo; what follows are the limits of this
    // forward pass (uniform layers, grouped-query attention, even head and rotary dimensions).
    const runtime::ModelInfo info = runtime::ModelInfo::from_gguf(f);
    const std::string p = arch + ".";
    Hparams &hp = m.hp_;
    hp.n_layer = narrow(f, p + "block_count", info.n_layer, 1, 4096);
    hp.n_embd = narrow(f, p + "embedding_length", info.n_embd, 1, 1u << 20);
    hp.n_head = narrow(f, p + "attention.head_count", info.n_head, 1, 4096);
    hp.n_head_kv = narrow(f, p + "attention.head_count_kv", info.n_head_kv, 1, hp.n_head);
    if (!uniform(info.n_head_layer, hp.n_head) || !uniform(info.n_head_kv_layer, hp.n_head_kv))
        f.fail(0, p + "attention.head_count", "per-layer head counts that differ are not supported");
    if (hp.n_head % hp.n_head_kv != 0)
        f.fail(0, p + "attention.head_count_kv",
               std::to_string(hp.n_head_kv) + " must divide head_count " + std::to_string(hp.n_head));
    hp.head_dim = narrow(f, p + "attention.key_length", info.n_embd_head_k, 2, 1u << 16);
    if (info.n_embd_head_v != hp.head_dim || hp.head_dim % 2 != 0)
        f.fail(0, p + "attention.key_length",
               "key_length " + std::to_string(hp.head_dim) + " and value_length " +
                   std::to_string(info.n_embd_head_v) + " must be equal and even");
    hp.n_rot = narrow(f, p + "rope.dimension_count", info.n_rot, 2, hp.head_dim);
    if (hp.n_rot % 2 != 0) f.fail(0, p + "rope.dimension_count", "must be even");
    if (info.n_expert == 0)
        f.fail(0, p + "expert_count", "missing or 0: " + arch + " files without experts are not MoE models");
    hp.n_expert = narrow(f, p + "expert_count", info.n_expert, 1, 1u << 16);
    hp.n_expert_used = narrow(f, p + "expert_used_count", info.n_expert_used, 1, hp.n_expert);
    hp.n_ctx_train = static_cast<uint32_t>(std::min<uint64_t>(info.n_ctx_train, 1u << 30));
    // As llama.cpp: the RMS norm epsilon is required (0 is accepted), the rope base defaults to
    // 10000; both must be finite as float.
    const std::string k_eps = p + "attention.layer_norm_rms_epsilon";
    const gguf::Value *eps_at = f.find(k_eps);
    if (!eps_at) (void)f.get_float(k_eps);  // throws "required key is missing"
    if (!(info.rms_eps >= 0) || !std::isfinite(static_cast<float>(info.rms_eps)))
        f.fail(eps_at->offset, k_eps, "must be a finite number >= 0, found " + num_str(info.rms_eps));
    hp.rms_eps = static_cast<float>(info.rms_eps);
    const std::string k_base = p + "rope.freq_base";
    if (!(info.rope_freq_base > 0) || !std::isfinite(static_cast<float>(info.rope_freq_base))) {
        const gguf::Value *at = f.find(k_base);
        f.fail(at ? at->offset : 0, k_base,
               "must be a finite positive number, found " + num_str(info.rope_freq_base));
    }
    hp.rope_freq_base = static_cast<float>(info.rope_freq_base);
    if (const std::string &type = info.rope_scaling.type; !type.empty() && type != "none") {
        if (type != "linear" && type != "yarn")
            f.fail(f.find(p + "rope.scaling.type")->offset, p + "rope.scaling.type",
                   "rope scaling '" + type + "' is not supported (none, linear, yarn)");
        const double factor = info.rope_scaling.factor;
        if (!(factor > 0) || !std::isfinite(static_cast<float>(factor)))
            f.fail(0, p + "rope.scaling.factor", "must be a positive number for '" + type + "' scaling");
        hp.rope_freq_scale = static_cast<float>(1.0 / factor);
        hp.rope.freq_scale = hp.rope_freq_scale;
        // A float key that must be finite and > 0 as float (defaults as llama.cpp).
        const auto positive = [&](const std::string &key, double def) {
            const double v = f.get_float_or(key, def);
            if (!(v > 0) || !std::isfinite(static_cast<float>(v))) {
                const gguf::Value *at = f.find(key);
                f.fail(at ? at->offset : 0, key, "must be a finite positive number, found " + num_str(v));
            }
            return static_cast<float>(v);
        };
        hp.rope.attn_factor = positive(p + "rope.scaling.attn_factor", 1.0);
        if (type == "yarn") {
            // llama.cpp's defaults: extrapolation mix 1, beta_fast 32, beta_slow 1, the original
            // context from metadata (else the trained context). A negative mix means "not set".
            const std::string k_ext = p + "rope.scaling.yarn_ext_factor";
            const double ext = f.get_float_or(k_ext, 1.0);
            if (!std::isfinite(static_cast<float>(ext)))
                f.fail(f.find(k_ext)->offset, k_ext, "must be a finite number, found " + num_str(ext));
            hp.rope.ext_factor = ext < 0 ? 1.0f : static_cast<float>(ext);
            const float beta_fast = positive(p + "rope.scaling.yarn_beta_fast", 32.0);
            const float beta_slow = positive(p + "rope.scaling.yarn_beta_slow", 1.0);
            const uint64_t orig = info.rope_scaling.original_context_length != 0
                                      ? info.rope_scaling.original_context_length
                                      : info.n_ctx_train;
            if (orig == 0 || orig > (1u << 30))
                f.fail(0, p + "rope.scaling.original_context_length",
                       "yarn needs the original context length");
            float dims[2];
            kernels::cpu::yarn_corr_dims(static_cast<int>(hp.n_rot), static_cast<int>(orig),
                                         hp.rope_freq_base, beta_fast, beta_slow, dims);
            hp.rope.corr_low = dims[0];
            hp.rope.corr_high = dims[1];
            if (hp.rope.ext_factor != 0.0f) {
                // The rotation kernels scale by attn_factor * (1 + 0.1 ln factor) as ggml's do; llama.cpp
                // divides that back out at context creation and applies YaRN's magnitude scale instead:
                // 1 + 0.1 ln factor above 1, else 1. The same float steps here. (llama.cpp reads
                // rope.scaling.yarn_log_multiplier for DeepSeek-2 only; none of these architectures.)
                const float fac = 1.0f / hp.rope_freq_scale;
                float a = fac <= 1.0f ? 1.0f : 0.1f * std::log(fac) + 1.0f;
                a *= 1.0f / (1.0f + 0.1f * std::log(fac));
                hp.rope.attn_factor = a * hp.rope.attn_factor;
            }
        }
    }

    Binder b(f);
    b.arch_ = arch;
    const gguf::TensorInfo *embd = b.find("token_embd.weight");
    if (!embd) f.fail(0, "token_embd.weight", "tensor missing");
    if (embd->n_dims != 2) f.fail(embd->info_offset, "token_embd.weight", "expected 2 dimensions");
    // The vocabulary size is the tokenizer's token count (as llama.cpp); the embedding and the
    // output matrix must have one row per token.
    if (info.n_vocab == 0) (void)f.get_array("tokenizer.ggml.tokens");  // throws "required key is missing"
    hp.n_vocab = narrow(f, "tokenizer.ggml.tokens", info.n_vocab, 1, INT32_MAX);
    for (const char *name : {"token_embd.weight", "output.weight"}) {
        const gguf::TensorInfo *t = b.find(name);
        if (t && t->n_dims == 2 && t->ne[1] != hp.n_vocab)
            f.fail(t->info_offset, name,
                   "shape " + shape_str(*t) + ": " + std::to_string(t->ne[1]) +
                       " rows, but tokenizer.ggml.tokens has " + std::to_string(hp.n_vocab) +
                       " tokens (expected one row per token)");
    }
    const int64_t E = hp.n_embd, V = hp.n_vocab, hd = hp.head_dim;
    const int64_t nq = int64_t{hp.n_head} * hd, nkv = int64_t{hp.n_head_kv} * hd;
    m.tok_embd_ = b.weight("token_embd.weight", {E, V});
    m.output_norm_ = b.vec("output_norm.weight", E);
    m.output_ = b.weight("output.weight", {E, V}, !m.arch_->tied_output);
    if (!m.output_.present()) m.output_ = m.tok_embd_;  // tied embeddings

    // Every layer needs stacked experts; say why when a layer has something else instead.
    uint32_t n_moe_layers = 0;
    for (uint32_t il = 0; il < hp.n_layer; ++il)
        n_moe_layers += b.find("blk." + std::to_string(il) + ".ffn_gate_exps.weight") != nullptr;
    for (uint32_t il = 0; il < hp.n_layer && n_moe_layers < hp.n_layer; ++il) {
        const std::string blk = "blk." + std::to_string(il) + ".";
        if (b.find(blk + "ffn_gate_exps.weight")) continue;
        std::string why = "tensor missing (required by " + arch + ")";
        if (b.find(blk + "ffn_gate.0.weight"))
            why += ": this file stores one tensor per expert (" + blk +
                   "ffn_gate.0.weight, the old Mixtral layout); re-convert it with a current llama.cpp";
        else if (n_moe_layers == 0)
            why += ": no layer has stacked experts; " + arch + " files without them are not MoE models";
        else if (b.find(blk + "ffn_gate.weight") || b.find(blk + "ffn_up.weight"))
            why += ": layer " + std::to_string(il) + " has a dense FFN, " + std::to_string(n_moe_layers) +
                   " of " + std::to_string(hp.n_layer) +
                   " layers have experts; models that mix dense and MoE layers are not supported";
        f.fail(0, blk + "ffn_gate_exps.weight", why);
    }
    // Expert FFN width from the first layer's stacked gate tensor.
    const gguf::TensorInfo *g0 = b.find("blk.0.ffn_gate_exps.weight");
    if (g0->n_dims != 3)
        f.fail(g0->info_offset, "blk.0.ffn_gate_exps.weight",
               "shape " + shape_str(*g0) + ", expected 3 dimensions");
    hp.n_ff_exp = static_cast<uint32_t>(g0->ne[1]);
    if (m.arch_->shared_expert) {
        const gguf::TensorInfo *s0 = b.find("blk.0.ffn_gate_shexp.weight");
        if (!s0) f.fail(0, "blk.0.ffn_gate_shexp.weight", "tensor missing (required by " + arch + ")");
        hp.n_ff_shexp = static_cast<uint32_t>(s0->ne[1]);
        // The metadata's width, where it gives one, must be the tensors' (as llama.cpp:
        // expert_shared_feed_forward_length, else feed_forward_length).
        const bool own = info.n_ff_shexp != 0;
        const uint64_t want = own ? info.n_ff_shexp : info.n_ff;
        if (want != 0 && s0->n_dims == 2 && s0->ne[1] != want)
            f.fail(s0->info_offset, "blk.0.ffn_gate_shexp.weight",
                   "shape " + shape_str(*s0) + ", expected [" + std::to_string(E) + ", " +
                       std::to_string(want) + "]: " + p +
                       (own ? "expert_shared_feed_forward_length" : "feed_forward_length") + " is " +
                       std::to_string(want) + ", the shared expert's width");
    }
    const int64_t F = hp.n_ff_exp, X = hp.n_expert;

    m.layers_.resize(hp.n_layer);
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        const std::string blk = "blk." + std::to_string(il) + ".";
        LayerWeights &L = m.layers_[il];
        L.attn_norm = b.vec(blk + "attn_norm.weight", E);
        L.wq = b.weight(blk + "attn_q.weight", {E, nq});
        L.wk = b.weight(blk + "attn_k.weight", {E, nkv});
        L.wv = b.weight(blk + "attn_v.weight", {E, nkv});
        L.wo = b.weight(blk + "attn_output.weight", {nq, E});
        L.bq = b.vec(blk + "attn_q.bias", nq, false);
        L.bk = b.vec(blk + "attn_k.bias", nkv, false);
        L.bv = b.vec(blk + "attn_v.bias", nkv, false);
        if (m.arch_->qk_norm == QkNorm::per_head) {
            L.q_norm = b.vec(blk + "attn_q_norm.weight", hd);
            L.k_norm = b.vec(blk + "attn_k_norm.weight", hd);
        } else if (m.arch_->qk_norm == QkNorm::full) {
            L.q_norm = b.vec(blk + "attn_q_norm.weight", nq);
            L.k_norm = b.vec(blk + "attn_k_norm.weight", nkv);
        }
        L.ffn_norm = b.vec(blk + "ffn_norm.weight", E);
        L.gate_inp = b.weight(blk + "ffn_gate_inp.weight", {E, X});
        L.gate_exps = b.weight(blk + "ffn_gate_exps.weight", {E, F, X});
        L.up_exps = b.weight(blk + "ffn_up_exps.weight", {E, F, X});
        L.down_exps = b.weight(blk + "ffn_down_exps.weight", {F, E, X});
        if (m.arch_->shared_expert) {
            const int64_t S = hp.n_ff_shexp;
            L.gate_shexp = b.weight(blk + "ffn_gate_shexp.weight", {E, S});
            L.up_shexp = b.weight(blk + "ffn_up_shexp.weight", {E, S});
            L.down_shexp = b.weight(blk + "ffn_down_shexp.weight", {S, E});
            L.gate_inp_shexp = b.weight(blk + "ffn_gate_inp_shexp.weight", {E});  // required, as llama.cpp
        }
    }
    return m;
}

}  // namespace moerun
