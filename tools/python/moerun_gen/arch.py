"""Model shapes, GGUF metadata and tensor lists for the MoE architectures llama.cpp runs.

Facts taken from llama.cpp (src/models/<arch>.cpp load_arch_hparams/load_arch_tensors and
src/llama-model.cpp load_hparams); the code here is our own.

  arch      llama.cpp graph notes                                   routing (build_moe_ffn)
  qwen3moe  per-head RMS q/k norm ({head_dim}), head_dim free        softmax, top-k, weights renormalised
            (attention.key_length), output.weight optional (tied)
  qwen2moe  q/k/v biases (optional), shared expert gated by          softmax, top-k, NOT renormalised
            sigmoid(ffn_gate_inp_shexp . x) ({n_embd} vector)
  olmoe     RMS q/k norm over the full projection ({n_embd}),         softmax, top-k, NOT renormalised
            needs n_head_kv == n_head, expert ff = feed_forward_length
  llama     Mixtral: llama + expert_count/expert_used_count,          softmax, top-k, renormalised
            expert ff = feed_forward_length, output optional
All four: RMSNorm pre-norm, SwiGLU experts (silu(gate) * up -> down), NEOX rope for the Qwen models
and OLMoE, NORM (GPT-J style interleaved) rope for llama.

Tensor shapes are numpy order (outermost first) = reversed GGML ne; experts are stacked with the
expert index outermost: ffn_{gate,up}_exps [n_expert, n_ff_exp, n_embd], ffn_down_exps [n_expert, n_embd, n_ff_exp].
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from gguf import GGUFValueType as VT

ARCHES = ("qwen3moe", "qwen2moe", "olmoe", "llama")
ROPE_TYPE = {"qwen3moe": "neox", "qwen2moe": "neox", "olmoe": "neox", "llama": "norm"}
NORM_TOPK = {"qwen3moe": True, "qwen2moe": False, "olmoe": False, "llama": True}


@dataclass
class Config:
    arch: str
    n_layer: int
    n_expert: int
    n_expert_used: int
    n_embd: int
    n_ff_exp: int                 # expert FFN width
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ctx: int = 4096
    n_ff_shexp: int = 0           # qwen2moe shared expert width
    n_ff_dense: int = 0           # written as feed_forward_length where the arch does not use it (qwen*)
    rope_base: float = 10000.0
    rope_scaling: str = ""        # "", "linear" or "yarn": rope.scaling.* metadata
    rope_factor: float = 0.0
    rope_orig_ctx: int = 0        # rope.scaling.original_context_length (0: not written)
    rms_eps: float = 1e-5
    qkv_bias: bool = False        # qwen2moe
    tied: bool = False            # no output.weight: token_embd is the LM head (qwen3moe, llama)
    name: str = ""
    # weight scales (see tensor_plan)
    router_scale: float = 1.5     # std of router logits for a unit-RMS input
    logit_scale: float = 3.0      # std of output logits for a unit-RMS input
    extra: dict = field(default_factory=dict)

    def replace(self, **kw) -> "Config":
        return dataclasses.replace(self, **kw)

    def validate(self) -> None:
        a = self.arch
        if a not in ARCHES:
            raise ValueError(f"unknown arch {a!r} (known: {', '.join(ARCHES)})")
        if not (0 < self.n_expert_used <= self.n_expert):
            raise ValueError("need 0 < top-k <= experts")
        if self.n_head % self.n_head_kv:
            raise ValueError("heads must be a multiple of kv-heads")
        if a != "qwen3moe" and self.head_dim * self.n_head != self.n_embd:
            raise ValueError(f"{a}: head_dim * heads must equal embd (only qwen3moe has a free head_dim)")
        if a == "olmoe" and self.n_head_kv != self.n_head:
            raise ValueError("olmoe: llama.cpp's k-norm is {n_embd}, so kv-heads must equal heads")
        if a == "qwen2moe" and self.n_ff_shexp <= 0:
            raise ValueError("qwen2moe needs a shared expert width (--ff-shexp)")
        if a in ("qwen2moe", "olmoe") and self.tied:
            raise ValueError(f"{a}: llama.cpp requires output.weight (no tied embeddings)")
        if self.head_dim % 2:
            raise ValueError("head_dim must be even (rope)")


@dataclass
class TensorSpec:
    name: str
    shape: tuple[int, ...]        # numpy order
    role: str                     # token_embd, output, attn, attn_out, bias, norm, router, shexp_gate,
                                  # expert, expert_down, shexp, shexp_down
    std: float
    mean: float = 0.0
    qtype: object = None          # GGMLQuantizationType, filled in by the type plan

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def row_len(self) -> int:
        return self.shape[-1]

    @property
    def always_f32(self) -> bool:
        # llama.cpp keeps norms, biases, 1-D tensors and routers in F32 (convert and quantize alike)
        return self.role in ("norm", "bias", "router", "shexp_gate") or len(self.shape) < 2


def tensor_plan(c: Config, n_vocab: int) -> list[TensorSpec]:
    """Tensors of the model in file order, with the std of their random init.

    Scales keep activations O(1) through the network: projections use 1/sqrt(fan_in), norms ~1
    (mean 1, std 0.1, so a runtime that ignores them is caught), the router gives logits of std
    `router_scale` (top-k changes from token to token, softmax far from one-hot) and the LM head
    logits of std `logit_scale`.
    """
    E, D, F = c.n_expert, c.n_embd, c.n_ff_exp
    q_dim, kv_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
    s_in = 1.0 / math.sqrt(D)
    t: list[TensorSpec] = []
    # tied: token_embd doubles as the LM head, so it carries the logit scale
    emb_std = c.logit_scale * s_in if c.tied else 1.0
    t.append(TensorSpec("token_embd.weight", (n_vocab, D), "token_embd", emb_std))
    for i in range(c.n_layer):
        p = f"blk.{i}."
        t.append(TensorSpec(p + "attn_norm.weight", (D,), "norm", 0.1, 1.0))
        t.append(TensorSpec(p + "attn_q.weight", (q_dim, D), "attn", s_in))
        t.append(TensorSpec(p + "attn_k.weight", (kv_dim, D), "attn", s_in))
        t.append(TensorSpec(p + "attn_v.weight", (kv_dim, D), "attn", s_in))
        if c.qkv_bias:
            t.append(TensorSpec(p + "attn_q.bias", (q_dim,), "bias", 0.2))
            t.append(TensorSpec(p + "attn_k.bias", (kv_dim,), "bias", 0.2))
            t.append(TensorSpec(p + "attn_v.bias", (kv_dim,), "bias", 0.2))
        if c.arch == "qwen3moe":
            t.append(TensorSpec(p + "attn_q_norm.weight", (c.head_dim,), "norm", 0.1, 1.0))
            t.append(TensorSpec(p + "attn_k_norm.weight", (c.head_dim,), "norm", 0.1, 1.0))
        elif c.arch == "olmoe":
            t.append(TensorSpec(p + "attn_q_norm.weight", (q_dim,), "norm", 0.1, 1.0))
            t.append(TensorSpec(p + "attn_k_norm.weight", (kv_dim,), "norm", 0.1, 1.0))
        t.append(TensorSpec(p + "attn_output.weight", (D, q_dim), "attn_out", 1.0 / math.sqrt(q_dim)))
        t.append(TensorSpec(p + "ffn_norm.weight", (D,), "norm", 0.1, 1.0))
        t.append(TensorSpec(p + "ffn_gate_inp.weight", (E, D), "router", c.router_scale * s_in))
        t.append(TensorSpec(p + "ffn_gate_exps.weight", (E, F, D), "expert", s_in))
        t.append(TensorSpec(p + "ffn_up_exps.weight", (E, F, D), "expert", s_in))
        t.append(TensorSpec(p + "ffn_down_exps.weight", (E, D, F), "expert_down", 1.0 / math.sqrt(F)))
        if c.arch == "qwen2moe":
            S = c.n_ff_shexp
            t.append(TensorSpec(p + "ffn_gate_inp_shexp.weight", (D,), "shexp_gate", s_in))
            t.append(TensorSpec(p + "ffn_gate_shexp.weight", (S, D), "shexp", s_in))
            t.append(TensorSpec(p + "ffn_up_shexp.weight", (S, D), "shexp", s_in))
            t.append(TensorSpec(p + "ffn_down_shexp.weight", (D, S), "shexp_down", 1.0 / math.sqrt(S)))
    t.append(TensorSpec("output_norm.weight", (D,), "norm", 0.1, 1.0))
    if not c.tied:
        t.append(TensorSpec("output.weight", (n_vocab, D), "output", c.logit_scale * s_in))
    return t


def metadata(c: Config) -> list[tuple]:
    """Model hyper-parameter KV entries (no tokenizer, no general.*)."""
    a = c.arch
    kv: list[tuple] = []

    def u32(key, v):
        kv.append((f"{a}.{key}", int(v), VT.UINT32, None))

    def f32(key, v):
        kv.append((f"{a}.{key}", float(v), VT.FLOAT32, None))

    u32("context_length", c.n_ctx)
    u32("embedding_length", c.n_embd)
    u32("block_count", c.n_layer)
    if a in ("olmoe", "llama"):
        u32("feed_forward_length", c.n_ff_exp)   # these archs read the expert width from here
    else:
        u32("feed_forward_length", c.n_ff_dense or c.n_ff_exp * c.n_expert_used)
        u32("expert_feed_forward_length", c.n_ff_exp)
    if a == "qwen2moe":
        u32("expert_shared_feed_forward_length", c.n_ff_shexp)
    u32("attention.head_count", c.n_head)
    u32("attention.head_count_kv", c.n_head_kv)
    if a == "qwen3moe":
        u32("attention.key_length", c.head_dim)
        u32("attention.value_length", c.head_dim)
    if a == "llama":
        u32("rope.dimension_count", c.head_dim)
    f32("rope.freq_base", c.rope_base)
    if c.rope_scaling:
        kv.append((f"{a}.rope.scaling.type", c.rope_scaling, VT.STRING, None))
        f32("rope.scaling.factor", c.rope_factor)
        if c.rope_orig_ctx:
            u32("rope.scaling.original_context_length", c.rope_orig_ctx)
    f32("attention.layer_norm_rms_epsilon", c.rms_eps)
    u32("expert_count", c.n_expert)
    u32("expert_used_count", c.n_expert_used)
    return kv
