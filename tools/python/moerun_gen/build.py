"""Building one model file: vocab + metadata + tensor types + data, and a printed summary.

Two data paths:
  * float  : every tensor drawn as float32 from its own RNG stream (seed, crc32(name)), then encoded
             (F32/F16/BF16 by numpy, Q8_0/Q4_0 by gguf-py). K-quant types (Q4_K, Q5_K, Q6_K, Q4_K_M)
             are produced by writing an F32 model first and running llama.cpp's quantizer on it.
             Same seed + same shape => same underlying weights whatever the type.
  * random : (presets / --random-blocks) quantized blocks are drawn directly as random bytes with
             scales chosen for the target std (blocks.random_blocks): nothing is ever held in
             float, the file streams to disk layer by layer.
"""
from __future__ import annotations

import math
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

from . import blocks, quantize
from .arch import NORM_TOPK, ROPE_TYPE, Config, TensorSpec, metadata, tensor_plan
from .ggufinfo import read_info
from .writer import write_gguf
from .vocab import QWEN_ENDOFTEXT, QWEN_IM_END, Vocab, copy_vocab_gguf, qwen2_vocab

REPO_ROOT = Path(__file__).resolve().parents[3]
LLAMA_QUANT_TYPES = ("Q4_K", "Q5_K", "Q6_K", "Q4_K_M")
ALL_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0") + LLAMA_QUANT_TYPES
FILE_TYPE = {"F32": 0, "F16": 1, "BF16": 32, "Q8_0": 7, "Q4_0": 2, "Q4_K": 15, "Q5_K": 17, "Q6_K": 18}
MATRIX_ROLES = ("token_embd", "output", "attn", "attn_out", "expert", "expert_down", "shexp", "shexp_down")


def shared_data_dir(override: str | None = None) -> Path:
    """../shared/data relative to the repository root; MOERUN_SHARED_DATA or --shared-data override."""
    p = override or os.environ.get("MOERUN_SHARED_DATA") or (REPO_ROOT.parent / "shared" / "data")
    return Path(p)


# ---------------------------------------------------------------------------------------- vocab
_vocab_cache: dict[tuple, Vocab] = {}


def vocab_source(arch: str, shared: Path) -> Path:
    v = shared / "vocab"
    return {"olmoe": v / "ggml-vocab-gpt-neox.gguf", "llama": v / "ggml-vocab-llama-spm.gguf",
            "qwen3moe": v / "qwen3_tokenizer.json", "qwen2moe": v / "qwen3_tokenizer.json"}[arch]


def load_vocab(arch: str, shared: Path, tokenizer_pre: str | None = None) -> Vocab:
    """Tokenizer for an architecture, as the real models of that family ship it.

    olmoe: gpt-neox vocab with tokenizer.ggml.pre = "olmo" (what convert_hf_to_gguf writes for OLMoE;
    the shipped vocab file predates the pre key); llama (Mixtral): llama-spm vocab as is;
    qwen3moe/qwen2moe: qwen2 BPE vocab from qwen3_tokenizer.json, eos <|im_end|> / <|endoftext|>.
    `tokenizer_pre` overrides the pre key ("" removes it).
    """
    src = vocab_source(arch, shared)
    if not src.exists():
        raise FileNotFoundError(f"vocab source {src} not found (set MOERUN_SHARED_DATA or --shared-data)")
    key = (arch, str(src), tokenizer_pre)
    if key in _vocab_cache:
        return _vocab_cache[key]
    if arch in ("qwen3moe", "qwen2moe"):
        v = qwen2_vocab(src, eos_token=QWEN_IM_END if arch == "qwen3moe" else QWEN_ENDOFTEXT)
    else:
        v = copy_vocab_gguf(src)
        if arch == "olmoe" and v.get("tokenizer.ggml.pre") is None:
            v.set("tokenizer.ggml.pre", "olmo", VT.STRING)
    if tokenizer_pre is not None:
        if tokenizer_pre == "":
            v.remove("tokenizer.ggml.pre")
        else:
            v.set("tokenizer.ggml.pre", tokenizer_pre, VT.STRING)
    _vocab_cache[key] = v
    return v


# ------------------------------------------------------------------------------------ type plan
@dataclass
class TypePlan:
    """GGML type per tensor role; norms/biases/routers are always F32."""
    roles: dict = field(default_factory=dict)

    @staticmethod
    def uniform(name: str) -> "TypePlan":
        t = blocks.TYPE_BY_NAME[name]
        return TypePlan({r: t for r in MATRIX_ROLES})

    @staticmethod
    def mixed(expert: str, attn: str, embd: str, output: str, down: str | None = None,
              shexp: str | None = None) -> "TypePlan":
        T = blocks.TYPE_BY_NAME
        return TypePlan({"token_embd": T[embd], "output": T[output], "attn": T[attn], "attn_out": T[attn],
                         "expert": T[expert], "expert_down": T[down or expert],
                         "shexp": T[shexp or attn], "shexp_down": T[shexp or attn]})

    def assign(self, tensors: list[TensorSpec]) -> list[str]:
        notes = []
        for t in tensors:
            if t.always_f32:
                t.qtype = QT.F32
                continue
            q = self.roles[t.role]
            if not blocks.row_compatible(t.row_len, q):
                fb = QT.Q8_0 if blocks.row_compatible(t.row_len, QT.Q8_0) else QT.F16
                notes.append(f"{t.name}: row {t.row_len} not a multiple of {blocks.block_size(q)} -> {fb.name}")
                q = fb
            t.qtype = q
        return notes


# ------------------------------------------------------------------------------------ producers
def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _chunks(t: TensorSpec):
    """Split a tensor in chunks of whole rows: one expert for 3-D tensors, ~16M values otherwise."""
    if len(t.shape) == 3:
        per = t.shape[1] * t.shape[2]
        for _ in range(t.shape[0]):
            yield per
        return
    rows, row = (t.shape[0], t.shape[-1]) if len(t.shape) == 2 else (1, t.shape[0])
    step = max(1, (16 << 20) // row)
    for r in range(0, rows, step):
        yield min(step, rows - r) * row


class Producer:
    """Yields the bytes of each tensor; keeps layer-0 router/ffn_norm values for routing stats."""

    def __init__(self, seed: int, random_blocks: bool):
        self.seed = seed
        self.random_blocks = random_blocks
        self.keep: dict[str, np.ndarray] = {}

    def float_values(self, t: TensorSpec, rng, n: int) -> np.ndarray:
        v = rng.standard_normal(n, dtype=np.float32) * np.float32(t.std)
        if t.mean:
            v += np.float32(t.mean)
        return v

    def __call__(self, t: TensorSpec):
        rng = _rng(self.seed, t.name)
        keep = t.name in ("blk.0.ffn_gate_inp.weight", "blk.0.ffn_norm.weight")
        for n in _chunks(t):
            if self.random_blocks and t.qtype not in (QT.F32, QT.F16, QT.BF16):
                yield blocks.random_blocks(n, t.qtype, t.std, rng)
                continue
            v = self.float_values(t, rng, n)
            if keep:
                self.keep[t.name] = v.reshape(t.shape)
            yield blocks.encode(v.reshape(-1, t.row_len), t.qtype)


def routing_stats(router: np.ndarray, ffn_norm: np.ndarray, top_k: int, seed: int = 0, n: int = 1024) -> dict:
    """Router behaviour of layer 0 on random unit-RMS hidden states (a proxy for real activations)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, router.shape[1])).astype(np.float32)
    x = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True)) * ffn_norm
    logits = x @ router.T
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    top = np.argsort(-p, axis=1)[:, :top_k]
    sets = {tuple(sorted(r)) for r in top.tolist()}
    load = np.bincount(top.reshape(-1), minlength=router.shape[0]) / top.size
    return {
        "logit_std": float(logits.std()),
        "top1_prob": float(np.take_along_axis(p, top[:, :1], 1).mean()),
        "topk_mass": float(np.take_along_axis(p, top, 1).sum(1).mean()),
        # share of the possible top-k sets (at most n) that occur
        "distinct_topk_sets": len(sets) / min(n, math.comb(router.shape[0], top_k)),
        "expert_load_min": float(load.min() * router.shape[0]),
        "expert_load_max": float(load.max() * router.shape[0]),
    }


# ---------------------------------------------------------------------------------------- build
@dataclass
class Result:
    path: Path
    size: int
    seconds: float
    n_vocab: int
    type_counts: dict
    routing: dict | None
    notes: list


def general_kv(cfg: Config, vocab: Vocab, file_type: int | None, quantized: bool, seed: int,
               type_label: str) -> list[tuple]:
    kv = [("general.type", "model", VT.STRING, None),
          ("general.name", cfg.name or f"moerun-test {cfg.arch} {type_label}", VT.STRING, None)]
    kv += metadata(cfg)
    if cfg.arch == "llama":
        kv.append(("llama.vocab_size", vocab.n_vocab, VT.UINT32, None))
    if file_type is not None:
        kv.append(("general.file_type", file_type, VT.UINT32, None))
    if quantized:
        kv.append(("general.quantization_version", 2, VT.UINT32, None))
    kv += vocab.entries
    # provenance (llama.cpp ignores unknown keys)
    kv.append(("moerun.generator.seed", seed, VT.UINT32, None))
    kv.append(("moerun.generator.note", "random weights, not a trained model", VT.STRING, None))
    return kv


def build(cfg: Config, vocab: Vocab, out: Path, seed: int, plan: TypePlan, type_label: str,
          random_blocks: bool = False, file_type: int | None = None, log=print) -> Result:
    """Write one model whose tensor types come from `plan` (no llama.cpp involved)."""
    cfg.validate()
    t0 = time.time()
    tensors = tensor_plan(cfg, vocab.n_vocab)
    notes = plan.assign(tensors)
    quantized = any(t.qtype not in (QT.F32, QT.F16, QT.BF16) for t in tensors)
    prod = Producer(seed, random_blocks)
    kv = general_kv(cfg, vocab, file_type, quantized, seed, type_label)
    total = sum(blocks.nbytes(t.n_elements, t.qtype) for t in tensors)
    done = [0, time.time()]

    def progress(t, nb):
        done[0] += nb
        if total > (1 << 30) and (time.time() - done[1] > 5 or done[0] == total):
            done[1] = time.time()
            log(f"  {done[0] / total * 100:5.1f}%  {done[0] / 2**30:.2f} / {total / 2**30:.2f} GiB  ({t.name})")

    out.parent.mkdir(parents=True, exist_ok=True)
    size = write_gguf(out, cfg.arch, kv, tensors, prod, progress)
    routing = None
    r, nw = prod.keep.get("blk.0.ffn_gate_inp.weight"), prod.keep.get("blk.0.ffn_norm.weight")
    if r is not None and nw is not None:
        routing = routing_stats(r, nw, cfg.n_expert_used)
    counts: dict[str, list] = {}
    for t in tensors:
        c = counts.setdefault(t.qtype.name, [0, 0])
        c[0] += 1
        c[1] += blocks.nbytes(t.n_elements, t.qtype)
    return Result(out, size, time.time() - t0, vocab.n_vocab, counts, routing, notes)


def build_with_llama_quant(cfg: Config, vocab: Vocab, out: Path, seed: int, qtype: str,
                           src: Path | None = None, nthread: int = 0, verbose: bool = False, log=print) -> Result:
    """K-quant model: F32 model (or an existing F32 `src` of the same config/seed) + llama.cpp quantizer."""
    t0 = time.time()
    own_src = src is None
    if own_src:
        src = out.with_name(out.name + ".f32-src.gguf")
        build(cfg, vocab, src, seed, TypePlan.uniform("F32"), "F32", file_type=0, log=log)
    tmp = out.with_name(out.name + ".tmp")
    try:
        quantize.quantize(src, tmp, qtype, nthread=nthread, verbose=verbose)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        if own_src:
            src.unlink(missing_ok=True)
    counts: dict[str, list] = {}
    for t in read_info(out).tensors:
        c = counts.setdefault(t.qtype.name, [0, 0])
        c[0] += 1
        c[1] += t.nbytes
    # routing stats from the float weights (same seed => same router, routers stay F32)
    tensors = tensor_plan(cfg, vocab.n_vocab)
    byname = {t.name: t for t in tensors}
    prod = Producer(seed, False)
    for name in ("blk.0.ffn_gate_inp.weight", "blk.0.ffn_norm.weight"):
        t = byname[name]
        t.qtype = QT.F32
        for _ in prod(t):
            pass
    routing = routing_stats(prod.keep["blk.0.ffn_gate_inp.weight"], prod.keep["blk.0.ffn_norm.weight"], cfg.n_expert_used)
    return Result(out, out.stat().st_size, time.time() - t0, vocab.n_vocab, counts, routing, [])


def summary(cfg: Config, res: Result, type_label: str, vocab: Vocab) -> str:
    c = cfg
    lines = [
        f"wrote {res.path}  ({res.size / 2**20:.1f} MiB, {res.seconds:.1f} s)",
        f"  arch {c.arch} [{type_label}]  layers {c.n_layer}  experts {c.n_expert} top-{c.n_expert_used}"
        f" ({'renormalised' if NORM_TOPK[c.arch] else 'not renormalised'})  rope {ROPE_TYPE[c.arch]}",
        f"  n_embd {c.n_embd}  expert ff {c.n_ff_exp}" + (f"  shared ff {c.n_ff_shexp}" if c.n_ff_shexp else "")
        + f"  heads {c.n_head}/{c.n_head_kv} x {c.head_dim}  ctx {c.n_ctx}  n_vocab {res.n_vocab}"
        + ("  tied embeddings" if c.tied else "") + ("  qkv bias" if c.qkv_bias else ""),
        f"  tokenizer {Path(vocab.source).name}: model {vocab.get('tokenizer.ggml.model')}"
        f" pre {vocab.get('tokenizer.ggml.pre')} bos {vocab.get('tokenizer.ggml.bos_token_id')}"
        f" eos {vocab.get('tokenizer.ggml.eos_token_id')}",
        "  tensors: " + ", ".join(f"{k} x{v[0]} ({v[1] / 2**20:.1f} MiB)" for k, v in sorted(res.type_counts.items())),
    ]
    if res.routing:
        r = res.routing
        lines.append(f"  routing (layer 0, random unit-RMS inputs): router logit std {r['logit_std']:.2f},"
                     f" top-1 p {r['top1_prob']:.3f}, top-k mass {r['topk_mass']:.3f},"
                     f" distinct top-k sets {r['distinct_topk_sets'] * 100:.0f}%,"
                     f" expert load {r['expert_load_min']:.2f}..{r['expert_load_max']:.2f} x uniform")
    for n in res.notes:
        lines.append("  note: " + n)
    return "\n".join(lines)
