#!/usr/bin/env python3
"""gen_model.py -- random-weight MoE GGUF models that llama.cpp loads and runs.

Architectures: qwen3moe, qwen2moe, olmoe, llama (= Mixtral; alias "mixtral"), with the tensor
names, shapes and metadata llama.cpp expects and a real tokenizer (see moerun_gen/vocab.py).

  # one tiny model (shape defaults depend on the type class, see moerun_gen/presets.py)
  gen_model.py --arch qwen3moe --type Q8_0 --out build/models/q3.gguf
  gen_model.py --arch mixtral --type Q4_K_M --layers 4 --experts 8 --top-k 2 --out m.gguf
  # real shapes, streamed as random quantized blocks (experts Q4_K, attention Q8_0 by default)
  gen_model.py --preset olmoe-1b-7b --out build/models/olmoe-1b-7b-synth.gguf
  gen_model.py --preset qwen3-30b-a3b --expert-type Q6_K --out ...
  # the oracle test matrix (every arch x F32 F16 Q8_0 Q4_K Q6_K Q4_K_M), skipping up-to-date files
  gen_model.py --matrix --out-dir build/test-models
  # a vocab-only GGUF (qwen2 vocab from qwen3_tokenizer.json)
  gen_model.py --vocab-only qwen2 --out qwen2-vocab.gguf

Weights: float path (default for tiny models) draws every tensor from its own RNG stream
(seed, tensor name), so equal seed and shape give equal weights in every type; K-quant types are
made by llama.cpp's quantizer from an F32 model. --random-blocks (default for presets) draws
quantized blocks directly and never holds the model in memory.

Shared data (vocabularies) is read from ../shared/data relative to the repository root, or from
$MOERUN_SHARED_DATA / --shared-data.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.dont_write_bytecode = True

from moerun_gen import build as B  # noqa: E402
from moerun_gen import presets as P  # noqa: E402
from moerun_gen.arch import ARCHES, NORM_TOPK, ROPE_TYPE  # noqa: E402
from moerun_gen.ggufinfo import read_info  # noqa: E402
from moerun_gen.vocab import write_vocab_only, qwen2_vocab  # noqa: E402

ARCH_ALIASES = {"mixtral": "llama"}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    mode = ap.add_argument_group("what to write")
    mode.add_argument("--arch", choices=list(ARCHES) + list(ARCH_ALIASES), help="architecture of a single model")
    mode.add_argument("--preset", choices=sorted(P.PRESETS), help="real-shape model (random quantized blocks)")
    mode.add_argument("--matrix", action="store_true", help="the oracle test-model matrix into --out-dir")
    mode.add_argument("--vocab-only", choices=["qwen2", "olmoe", "mixtral"], help="vocab-only GGUF of a tokenizer")
    mode.add_argument("--out", type=Path, help="output .gguf (single model / preset / vocab-only)")
    mode.add_argument("--out-dir", type=Path, help="output folder for --matrix")
    mode.add_argument("--force", action="store_true", help="--matrix: regenerate even if up to date")

    shape = ap.add_argument_group("shape (defaults: tiny model of the type's size class, or the preset)")
    shape.add_argument("--layers", type=int)
    shape.add_argument("--experts", type=int)
    shape.add_argument("--top-k", type=int)
    shape.add_argument("--embd", type=int)
    shape.add_argument("--ff", type=int, help="expert FFN width")
    shape.add_argument("--ff-shexp", type=int, help="qwen2moe shared-expert FFN width")
    shape.add_argument("--heads", type=int)
    shape.add_argument("--kv-heads", type=int)
    shape.add_argument("--head-dim", type=int, help="qwen3moe only (others use embd/heads)")
    shape.add_argument("--ctx", type=int, help="context_length metadata")
    shape.add_argument("--rope-scaling", choices=["linear", "yarn"], help="rope.scaling.type metadata")
    shape.add_argument("--rope-factor", type=float, help="rope.scaling.factor (with --rope-scaling)")
    shape.add_argument("--rope-orig-ctx", type=int, help="rope.scaling.original_context_length")
    tie = shape.add_mutually_exclusive_group()
    tie.add_argument("--tied", dest="tied", action="store_true", default=None, help="no output.weight (qwen3moe, llama)")
    tie.add_argument("--untied", dest="tied", action="store_false")
    bias = shape.add_mutually_exclusive_group()
    bias.add_argument("--qkv-bias", dest="qkv_bias", action="store_true", default=None)
    bias.add_argument("--no-qkv-bias", dest="qkv_bias", action="store_false")
    shape.add_argument("--router-scale", type=float, help="std of router logits (default 1.5)")
    shape.add_argument("--logit-scale", type=float, help="std of output logits (default 3)")

    ty = ap.add_argument_group("tensor types")
    ty.add_argument("--type", choices=B.ALL_TYPES, help="weight-matrix type (default F32; presets: mixed)")
    ty.add_argument("--random-blocks", action="store_true",
                    help="draw quantized blocks directly (streaming, no llama.cpp); default for presets")
    for role in ("expert", "down", "attn", "embd", "output", "shexp"):
        ty.add_argument(f"--{role}-type", choices=sorted(B.blocks.TYPE_BY_NAME),
                        help=f"with --random-blocks: type of {role} tensors")

    misc = ap.add_argument_group("other")
    misc.add_argument("--seed", type=int, default=None, help="RNG seed (default 1234)")
    misc.add_argument("--shared-data", help="shared data folder (default $MOERUN_SHARED_DATA or ../shared/data)")
    misc.add_argument("--tokenizer-pre", help="override tokenizer.ggml.pre ('' removes it)")
    misc.add_argument("--threads", type=int, default=0, help="llama.cpp quantizer threads (0 = all)")
    misc.add_argument("-v", "--verbose", action="store_true", help="show llama.cpp's quantizer log")
    a = ap.parse_args(argv)
    n_modes = sum(bool(x) for x in (a.arch, a.preset, a.matrix, a.vocab_only))
    if n_modes != 1:
        ap.error("give exactly one of --arch, --preset, --matrix, --vocab-only")
    if a.matrix and not a.out_dir:
        ap.error("--matrix needs --out-dir")
    if not a.matrix and not a.out:
        ap.error("--out is required")
    if a.arch:
        a.arch = ARCH_ALIASES.get(a.arch, a.arch)
    return a


def apply_overrides(cfg, a):
    kw = {}
    for arg, fld in (("layers", "n_layer"), ("experts", "n_expert"), ("top_k", "n_expert_used"), ("embd", "n_embd"),
                     ("ff", "n_ff_exp"), ("ff_shexp", "n_ff_shexp"), ("heads", "n_head"), ("kv_heads", "n_head_kv"),
                     ("head_dim", "head_dim"), ("ctx", "n_ctx"), ("tied", "tied"), ("qkv_bias", "qkv_bias"),
                     ("router_scale", "router_scale"), ("logit_scale", "logit_scale"),
                     ("rope_scaling", "rope_scaling"), ("rope_factor", "rope_factor"),
                     ("rope_orig_ctx", "rope_orig_ctx")):
        v = getattr(a, arg)
        if v is not None:
            kw[fld] = v
    cfg = cfg.replace(**kw)
    if cfg.arch != "qwen3moe" and a.head_dim is None:
        cfg = cfg.replace(head_dim=cfg.n_embd // cfg.n_head)
    if cfg.arch == "olmoe" and a.kv_heads is None:
        cfg = cfg.replace(n_head_kv=cfg.n_head)
    return cfg


ROLE_FLAGS = ("expert", "down", "attn", "embd", "output", "shexp")


def direct_types(type_name: str) -> dict:
    """Role -> type for --random-blocks; "Q4_K_M" means the preset mix (Q4_K experts, Q8_0 attention,
    Q4_K token_embd, Q6_K output)."""
    if type_name == "Q4_K_M":
        return dict(expert="Q4_K", attn="Q8_0", embd="Q4_K", output="Q6_K")
    return dict(expert=type_name, attn=type_name, embd=type_name, output=type_name)


def run_single(a) -> int:
    seed = P.MATRIX_SEED if a.seed is None else a.seed
    shared = B.shared_data_dir(a.shared_data)
    role_flags = {r: getattr(a, f"{r}_type") for r in ROLE_FLAGS if getattr(a, f"{r}_type")}
    if a.preset:
        pr = P.PRESETS[a.preset]
        cfg = apply_overrides(pr["cfg"], a)
        types = direct_types(a.type) if a.type else dict(pr["types"])
        random_blocks = True
        label = f"preset {a.preset}"
    else:
        type_name = a.type or "F32"
        cfg = apply_overrides(P.tiny(a.arch, type_name), a)
        random_blocks = a.random_blocks or bool(role_flags)
        types = direct_types(type_name) if random_blocks else None
        label = type_name
    cfg.validate()
    vocab = B.load_vocab(cfg.arch, shared, a.tokenizer_pre)
    print(f"generating {a.out} ...", flush=True)
    if random_blocks:
        types.update(role_flags)
        plan = B.TypePlan.mixed(types["expert"], types["attn"], types["embd"], types["output"],
                                types.get("down"), types.get("shexp"))
        if not a.preset:
            label = "random blocks " + " ".join(f"{k}={v}" for k, v in types.items())
        res = B.build(cfg, vocab, a.out, seed, plan, label, random_blocks=True,
                      file_type=B.FILE_TYPE.get(types["expert"]))
    elif label in B.LLAMA_QUANT_TYPES:
        res = B.build_with_llama_quant(cfg, vocab, a.out, seed, label, nthread=a.threads, verbose=a.verbose)
    else:
        res = B.build(cfg, vocab, a.out, seed, B.TypePlan.uniform(label), label, file_type=B.FILE_TYPE[label])
    print(B.summary(cfg, res, label, vocab))
    return 0


# ------------------------------------------------------------------------------------- matrix
def generator_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for f in [here / "gen_model.py"] + sorted((here / "moerun_gen").glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def model_key(cfg, type_name: str, seed: int, vocab_src: Path, gen_hash: str) -> str:
    st = vocab_src.stat()
    extra = ""
    if type_name in B.LLAMA_QUANT_TYPES:
        try:
            import llama_cpp
            extra = llama_cpp.__version__
        except ImportError:
            extra = "no-llama_cpp"
    blob = json.dumps({"cfg": cfg.__dict__, "type": type_name, "seed": seed, "gen": gen_hash,
                       "vocab": [str(vocab_src.resolve()), st.st_size, st.st_mtime_ns], "llama_cpp": extra},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def manifest_entry(cfg, type_name, path: Path, seed) -> dict:
    """Facts about one test model; tokenizer facts are read back from the file itself."""
    kv = read_info(path).kv
    add_bos = kv.get("tokenizer.ggml.add_bos_token")
    return {
        "file": path.name, "arch": cfg.arch, "type": type_name, "seed": seed,
        "n_vocab": kv["tokenizer.ggml.tokens"][2], "n_layer": cfg.n_layer, "n_expert": cfg.n_expert,
        "n_expert_used": cfg.n_expert_used, "n_embd": cfg.n_embd, "n_ff_exp": cfg.n_ff_exp,
        "n_ff_shexp": cfg.n_ff_shexp, "n_head": cfg.n_head, "n_head_kv": cfg.n_head_kv,
        "head_dim": cfg.head_dim, "n_ctx_train": cfg.n_ctx, "tied": cfg.tied, "qkv_bias": cfg.qkv_bias,
        "rope": ROPE_TYPE[cfg.arch], "norm_topk": NORM_TOPK[cfg.arch],
        "tokenizer_model": kv.get("tokenizer.ggml.model"), "tokenizer_pre": kv.get("tokenizer.ggml.pre"),
        "add_bos": None if add_bos is None else bool(add_bos),
        "bos": kv.get("tokenizer.ggml.bos_token_id"), "eos": kv.get("tokenizer.ggml.eos_token_id"),
        "size": path.stat().st_size,
    }


def run_matrix(a) -> int:
    t_start = time.time()
    out_dir: Path = a.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    shared = B.shared_data_dir(a.shared_data)
    seed = P.MATRIX_SEED if a.seed is None else a.seed
    gen_hash = generator_hash()
    manifest = []
    n_built = n_skipped = 0
    for arch in P.MATRIX_ARCHES:
        vocab_src = B.vocab_source(arch, shared)
        todo = []
        for type_name in P.MATRIX_TYPES:
            cfg = P.tiny(arch, type_name)
            path = out_dir / f"{P.FILE_STEM[arch]}-{type_name}.gguf"
            key = model_key(cfg, type_name, seed, vocab_src, gen_hash)
            stamp = path.with_name(path.name + ".stamp")
            up_to_date = (not a.force and path.exists() and stamp.exists() and stamp.read_text().strip() == key)
            todo.append((type_name, cfg, path, stamp, key, up_to_date))
        vocab = None
        ksrc = None
        try:
            for type_name, cfg, path, stamp, key, up_to_date in todo:
                if vocab is None and not up_to_date:
                    vocab = B.load_vocab(arch, shared)
                if up_to_date:
                    n_skipped += 1
                    print(f"up to date: {path.name}")
                else:
                    stamp.unlink(missing_ok=True)
                    if type_name in B.LLAMA_QUANT_TYPES:
                        if ksrc is None:  # one F32 source per arch for all K types (same config + seed)
                            ksrc = out_dir / f".{P.FILE_STEM[arch]}-ksrc-F32.gguf"
                            B.build(cfg, vocab, ksrc, seed, B.TypePlan.uniform("F32"), "F32", file_type=0)
                        res = B.build_with_llama_quant(cfg, vocab, path, seed, type_name, src=ksrc,
                                                       nthread=a.threads, verbose=a.verbose)
                    else:
                        res = B.build(cfg, vocab, path, seed, B.TypePlan.uniform(type_name), type_name,
                                      file_type=B.FILE_TYPE[type_name])
                    print(B.summary(cfg, res, type_name, vocab), flush=True)
                    stamp.write_text(key + "\n")
                    n_built += 1
                manifest.append(manifest_entry(cfg, type_name, path, seed))
        finally:
            if ksrc is not None:
                ksrc.unlink(missing_ok=True)
    (out_dir / "manifest.json").write_text(json.dumps({"models": manifest}, indent=1) + "\n")
    total = sum(m["size"] for m in manifest)
    print(f"test-model matrix: {len(manifest)} models in {out_dir} ({total / 2**20:.0f} MiB),"
          f" {n_built} built, {n_skipped} up to date, {time.time() - t_start:.1f} s")
    return 0


def run_vocab_only(a) -> int:
    shared = B.shared_data_dir(a.shared_data)
    if a.vocab_only == "qwen2":
        v = qwen2_vocab(shared / "vocab" / "qwen3_tokenizer.json", with_chat_template=False)
        write_vocab_only(v, a.out, arch="qwen2", name="qwen2 vocab (moerun, from qwen3_tokenizer.json)")
    else:
        arch = "olmoe" if a.vocab_only == "olmoe" else "llama"
        v = B.load_vocab(arch, shared, a.tokenizer_pre)
        write_vocab_only(v, a.out, arch=arch, name=f"{a.vocab_only} vocab (moerun)")
    print(f"wrote {a.out}: n_vocab {v.n_vocab}, pre {v.get('tokenizer.ggml.pre')}")
    return 0


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        if a.matrix:
            return run_matrix(a)
        if a.vocab_only:
            return run_vocab_only(a)
        return run_single(a)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"gen_model.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
