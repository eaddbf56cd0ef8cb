"""Model shapes: tiny test models per architecture, and real-shape presets for benchmarks.

Tiny models come in two size classes because K-quants need rows that are multiples of 256:
  * "small" (F32, F16, BF16, Q8_0, Q4_0): n_embd 64, expert ff 96 -- every matrix non-square,
    rows a multiple of 32;
  * "k" (Q4_K, Q5_K, Q6_K, Q4_K_M): n_embd 256, expert ff 512 (down rows span two super-blocks).
The file size of tiny models is dominated by the real vocabularies (151936 tokens for Qwen).
"""
from __future__ import annotations

from .arch import Config

K_TYPES = ("Q4_K", "Q5_K", "Q6_K", "Q4_K_M")


def size_class(type_name: str) -> str:
    return "k" if type_name in K_TYPES else "small"


def tiny(arch: str, type_name: str) -> Config:
    k = size_class(type_name) == "k"
    D, F = (256, 512) if k else (64, 96)
    if arch == "qwen3moe":
        # free head_dim (q dim != n_embd) and GQA, like Qwen3-30B-A3B; tied embeddings cover the
        # "no output.weight" path of llama.cpp's qwen3moe loader
        return Config("qwen3moe", n_layer=3, n_expert=16, n_expert_used=4, n_embd=D, n_ff_exp=F,
                      n_head=4 if k else 8, n_head_kv=2, head_dim=128 if k else 16,
                      n_ff_dense=3 * F, rope_base=1e6, rms_eps=1e-6, tied=True)
    if arch == "qwen2moe":
        return Config("qwen2moe", n_layer=3, n_expert=8, n_expert_used=2, n_embd=D, n_ff_exp=F,
                      n_ff_shexp=768 if k else 160, n_head=4, n_head_kv=2, head_dim=D // 4,
                      n_ff_dense=768 if k else 160, rope_base=1e6, rms_eps=1e-6, qkv_bias=True)
    if arch == "olmoe":
        return Config("olmoe", n_layer=3, n_expert=16, n_expert_used=4, n_embd=D, n_ff_exp=F,
                      n_head=4, n_head_kv=4, head_dim=D // 4, rope_base=10000.0, rms_eps=1e-5)
    if arch == "llama":
        return Config("llama", n_layer=3, n_expert=8, n_expert_used=2, n_embd=D, n_ff_exp=F,
                      n_head=4, n_head_kv=2, head_dim=D // 4, rope_base=1e6, rms_eps=1e-5)
    raise ValueError(arch)


# Real shapes. Types: experts Q4_K, attention Q8_0, token_embd Q4_K, output Q6_K (all overridable).
PRESETS = {
    "olmoe-1b-7b": dict(
        cfg=Config("olmoe", n_layer=16, n_expert=64, n_expert_used=8, n_embd=2048, n_ff_exp=1024,
                   n_head=16, n_head_kv=16, head_dim=128, n_ctx=4096, rope_base=10000.0, rms_eps=1e-5,
                   name="OLMoE-1B-7B shape (random weights)"),
        types=dict(expert="Q4_K", attn="Q8_0", embd="Q4_K", output="Q6_K")),
    "qwen3-30b-a3b": dict(
        cfg=Config("qwen3moe", n_layer=48, n_expert=128, n_expert_used=8, n_embd=2048, n_ff_exp=768,
                   n_head=32, n_head_kv=4, head_dim=128, n_ctx=40960, n_ff_dense=6144,
                   rope_base=1e6, rms_eps=1e-6, name="Qwen3-30B-A3B shape (random weights)"),
        types=dict(expert="Q4_K", attn="Q8_0", embd="Q4_K", output="Q6_K")),
}

# The oracle test matrix: every architecture x these types.
MATRIX_ARCHES = ("qwen3moe", "qwen2moe", "olmoe", "llama")
MATRIX_TYPES = ("F32", "F16", "Q8_0", "Q4_K", "Q6_K", "Q4_K_M")
MATRIX_SEED = 1234
FILE_STEM = {"qwen3moe": "qwen3moe", "qwen2moe": "qwen2moe", "olmoe": "olmoe", "llama": "mixtral"}
