#!/usr/bin/env python3
"""Writes the GGUF fuzz seed corpus and the corrupted files of the CLI tests.

    python tests/fuzz/make_seeds.py        # needs gguf-py (pip install gguf numpy)

Seeds (tests/fuzz/corpus/gguf/, each < 8 KiB) are written by gguf-py, the reference writer,
so they double as a check that moerun reads what gguf-py writes (the replay unit test parses
them all). They cover every metadata value type, nested arrays, tensors of several types
including K-quants, stacked 3-D expert tensors, GGUF v2 and v3, and a custom alignment.

Model seeds (tests/fuzz/corpus/model/, each < 32 KiB) are complete one-layer models of the four
architectures with small BPE and SentencePiece vocabularies, for fuzz-model (Model::load and the
tokenizer).

Corrupted files (tests/data/bad-gguf/) are written byte by byte with struct, so the
corruption is exact; tests/cli.cmake expects `moerun inspect` to reject each of them with the
message listed in BAD below. The output is deterministic: rerunning the script rewrites the
same bytes.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "fuzz" / "corpus" / "gguf"
BAD = ROOT / "tests" / "data" / "bad-gguf"
MODELS = ROOT / "tests" / "fuzz" / "corpus" / "model"


def quant_bytes(rng: np.random.Generator, qtype: Q, shape: tuple[int, ...]) -> np.ndarray:
    """Random block bytes for a tensor of numpy shape `shape` (outermost first) and type qtype."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    *outer, cols = shape
    assert cols % block == 0
    return rng.integers(0, 256, size=(*outer, cols // block * size), dtype=np.uint8)


def write(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def set_version(path: Path, version: int) -> None:
    """GGUF v2 and v3 differ only in v3 allowing big-endian files: patch the version field."""
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", version)
    path.write_bytes(bytes(data))


def all_types(path: Path, version: int) -> None:
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(str(path), "testarch")
    w.add_uint8("v.u8", 200)
    w.add_int8("v.i8", -100)
    w.add_uint16("v.u16", 60000)
    w.add_int16("v.i16", -30000)
    w.add_uint32("v.u32", 4000000000)
    w.add_int32("v.i32", -2000000000)
    w.add_float32("v.f32", 1.5)
    w.add_bool("v.bool", True)
    w.add_string("v.str", "h\u00e9llo \u2603")
    w.add_uint64("v.u64", 2**64 - 1)
    w.add_int64("v.i64", -(2**63))
    w.add_float64("v.f64", -2.25)
    for vtype, vals in [(V.UINT8, [1, 2, 255]), (V.INT8, [-1, 5]), (V.UINT16, [7]), (V.INT16, [-7, 8]),
                        (V.UINT32, [1, 2]), (V.INT32, [-3]), (V.FLOAT32, [0.5, -1.0]), (V.BOOL, [True, False]),
                        (V.UINT64, [2**64 - 1]), (V.INT64, [-5, 5]), (V.FLOAT64, [1e300]),
                        (V.STRING, ["a", "", "bc"])]:
        w.add_key_value(f"a.{vtype.name.lower()}", vals, V.ARRAY, sub_type=vtype)
    w.add_key_value("a.nested", [[1, 2], [3]], V.ARRAY)
    w.add_key_value("a.nested_str", [["x", "y"], ["z"]], V.ARRAY)
    w.add_key_value("a.deep", [[[[1]]]], V.ARRAY)
    w.add_tensor("f32.weight", rng.standard_normal((2, 3), dtype=np.float32))
    w.add_tensor("f16.weight", rng.standard_normal((2, 8)).astype(np.float16))
    w.add_tensor("i8.weight", rng.integers(-128, 127, size=(5,), dtype=np.int8))
    w.add_tensor("q8_0.weight", quant_bytes(rng, Q.Q8_0, (2, 64)), raw_dtype=Q.Q8_0)
    w.add_tensor("q4_k.weight", quant_bytes(rng, Q.Q4_K, (2, 256)), raw_dtype=Q.Q4_K)
    w.add_tensor("q6_k.weight", quant_bytes(rng, Q.Q6_K, (1, 256)), raw_dtype=Q.Q6_K)
    w.add_tensor("experts.weight", quant_bytes(rng, Q.Q4_0, (4, 2, 32)), raw_dtype=Q.Q4_0)  # [4, 2, 32]
    write(w)
    set_version(path, version)


def moe(path: Path, arch: str, *, n_layer: int, n_embd: int, n_ff: int, n_expert: int, n_used: int,
        qtype: Q | None, alignment: int | None = None, shared: bool = False, seed: int = 2,
        expert_count_kv: int | None = None) -> None:
    """A tiny MoE model: per layer attention, router and stacked experts.

    Experts: gate/up [n_expert, n_ff, n_embd], down [n_expert, n_embd, n_ff] (numpy order;
    GGUF ne is the reverse)."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    if alignment is not None:
        w.data_alignment = alignment
        w.add_custom_alignment(alignment)
    w.add_name(f"tiny {arch}")
    w.add_block_count(n_layer)
    w.add_context_length(128)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff * 2)
    w.add_expert_feed_forward_length(n_ff)
    w.add_expert_count(n_expert if expert_count_kv is None else expert_count_kv)
    w.add_expert_used_count(n_used)
    if shared:
        w.add_expert_shared_count(1)
        w.add_expert_shared_feed_forward_length(n_ff)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_freq_base(1e6)
    w.add_rope_dimension_count(n_embd // 2)
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(4.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(["a", "b", "ab", "<s>"])
    w.add_token_types([1, 1, 1, 3])
    w.add_token_merges(["a b"])

    def weight(name: str, shape: tuple[int, ...], quant: Q | None) -> None:
        if quant is None:
            w.add_tensor(name, rng.standard_normal(shape).astype(np.float16))
        else:
            w.add_tensor(name, quant_bytes(rng, quant, shape), raw_dtype=quant)

    weight("token_embd.weight", (4, n_embd), None)
    for l in range(n_layer):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        weight(p + "attn_q.weight", (n_embd, n_embd), None)
        w.add_tensor(p + "ffn_gate_inp.weight", rng.standard_normal((n_expert, n_embd), dtype=np.float32))
        weight(p + "ffn_gate_exps.weight", (n_expert, n_ff, n_embd), qtype)
        weight(p + "ffn_up_exps.weight", (n_expert, n_ff, n_embd), qtype)
        weight(p + "ffn_down_exps.weight", (n_expert, n_embd, n_ff), qtype)
        if shared:
            weight(p + "ffn_up_shexp.weight", (n_ff, n_embd), None)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    write(w)


def vocab(path: Path) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_context_length(64)
    w.add_embedding_length(16)
    w.add_feed_forward_length(32)
    w.add_head_count(4)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(["<unk>", "<s>", "</s>", "\u2581a", "\u2581b", "<0x0A>"])
    w.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, -3.0])
    w.add_token_types([2, 3, 3, 1, 1, 6])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_chat_template("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    write(w)


def complete(path: Path, arch: str, *, n_embd: int, qtype: Q | None, spm: bool, seed: int) -> None:
    """A complete one-layer model that Model::load and Tokenizer::from_gguf accept (the fuzz-model
    seeds): attention with the architecture's norms and biases, router, stacked experts, qwen2moe's
    shared expert, and a small byte-level BPE (gpt2) or SentencePiece (llama) vocabulary with merges
    or scores, special tokens and a chat template."""
    rng = np.random.default_rng(seed)
    n_head, n_ff, n_expert = 2, 4 if qtype is None else 32, 4
    n_kv = n_head if arch == "olmoe" else 1  # llama.cpp sizes OLMoE's k norm by n_embd
    hd = n_embd // n_head
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"complete {arch}")
    w.add_block_count(1)
    w.add_context_length(64)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff if arch in ("llama", "olmoe") else n_ff * 2)  # there: the experts' width
    w.add_expert_feed_forward_length(n_ff)
    w.add_expert_count(n_expert)
    w.add_expert_used_count(2)
    if arch == "qwen2moe":
        w.add_expert_shared_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(1e4)
    w.add_layer_norm_rms_eps(1e-6)
    if spm:
        tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + ["\u2581a", "\u2581b", "\u2581ab", "ab"]
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_scores([0.0] * 259 + [-1.0, -2.0, -0.5, -3.0])
        w.add_token_types([2, 3, 3] + [6] * 256 + [1] * 4)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_add_bos_token(True)
        w.add_chat_template("{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}")
    else:
        # byte-level BPE: printable ASCII and U+0120 (the space), a few merges, control tokens
        chars = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a"]
        merged = ["ab", "\u0120a", "\u0120ab", "He", "ll", "llo"]
        tokens = chars + merged + ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("olmo" if arch == "olmoe" else "qwen2")
        w.add_token_list(tokens)
        w.add_token_types([1] * (len(chars) + len(merged)) + [3, 3, 3])
        w.add_token_merges(["a b", "\u0120 a", "\u0120a b", "H e", "l l", "ll o"])
        w.add_eos_token_id(len(tokens) - 3)
        w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
    n_vocab = len(tokens)

    def weight(name: str, shape: tuple[int, ...], quant: Q | None = None) -> None:
        if quant is None:
            w.add_tensor(name, (0.3 * rng.standard_normal(shape)).astype(np.float16))
        else:
            w.add_tensor(name, quant_bytes(rng, quant, shape), raw_dtype=quant)

    def vec(name: str, n: int) -> None:
        w.add_tensor(name, (1 + 0.1 * rng.standard_normal(n)).astype(np.float32))

    weight("token_embd.weight", (n_vocab, n_embd), qtype)
    p = "blk.0."
    vec(p + "attn_norm.weight", n_embd)
    weight(p + "attn_q.weight", (n_embd, n_embd), qtype)
    weight(p + "attn_k.weight", (n_kv * hd, n_embd))
    weight(p + "attn_v.weight", (n_kv * hd, n_embd))
    weight(p + "attn_output.weight", (n_embd, n_embd), qtype)
    if arch == "qwen3moe":
        vec(p + "attn_q_norm.weight", hd)
        vec(p + "attn_k_norm.weight", hd)
    if arch == "olmoe":
        vec(p + "attn_q_norm.weight", n_embd)
        vec(p + "attn_k_norm.weight", n_kv * hd)
    if arch == "qwen2moe":
        vec(p + "attn_q.bias", n_embd)
        vec(p + "attn_k.bias", n_kv * hd)
        vec(p + "attn_v.bias", n_kv * hd)
        weight(p + "ffn_gate_shexp.weight", (n_ff, n_embd))
        weight(p + "ffn_up_shexp.weight", (n_ff, n_embd))
        weight(p + "ffn_down_shexp.weight", (n_embd, n_ff))
        w.add_tensor(p + "ffn_gate_inp_shexp.weight", rng.standard_normal(n_embd).astype(np.float32))
    vec(p + "ffn_norm.weight", n_embd)
    w.add_tensor(p + "ffn_gate_inp.weight", rng.standard_normal((n_expert, n_embd)).astype(np.float32))
    weight(p + "ffn_gate_exps.weight", (n_expert, n_ff, n_embd), qtype)
    weight(p + "ffn_up_exps.weight", (n_expert, n_ff, n_embd), qtype)
    weight(p + "ffn_down_exps.weight", (n_expert, n_embd, n_ff), qtype)
    vec("output_norm.weight", n_embd)
    if arch != "qwen3moe":  # qwen3moe: tied to token_embd
        weight("output.weight", (n_vocab, n_embd), qtype)
    write(w)


# ---- corrupted files for the CLI tests -------------------------------------------------------

def gguf_bytes(*, magic: bytes = b"GGUF", version: int = 3, n_tensors: int | None = None,
               n_kv: int | None = None, kvs: list[bytes] | None = None,
               tensors: list[tuple[str, list[int], int, int]] | None = None, data: int = 64) -> bytes:
    """A GGUF image written field by field; counts default to the real ones."""
    kvs = kvs if kvs is not None else [kv_str("general.architecture", "llama")]
    tensors = tensors if tensors is not None else [("t.weight", [4], 0, 0)]
    out = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                              len(kvs) if n_kv is None else n_kv)
    out += b"".join(kvs)
    for name, ne, ggml_type, offset in tensors:
        out += struct.pack("<Q", len(name)) + name.encode() + struct.pack("<I", len(ne))
        out += b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", ggml_type, offset)
    out += b"\0" * (-len(out) % 32)
    return out + bytes(range(data))


def kv_str(key: str, value: str) -> bytes:
    return struct.pack("<Q", len(key)) + key.encode() + struct.pack("<IQ", 8, len(value)) + value.encode()


def write_bad(moe_seed: Path) -> dict[str, bytes]:
    good = moe_seed.read_bytes()
    return {
        "empty.gguf": b"",
        "truncated.gguf": good[:1000],
        "truncated-data.gguf": good[:2000],
        "bad-magic.gguf": b"GGML" + gguf_bytes()[4:],
        "version-1.gguf": gguf_bytes(version=1),
        "big-endian.gguf": gguf_bytes()[:4] + struct.pack(">I", 3) + gguf_bytes()[8:],
        "huge-tensor-count.gguf": gguf_bytes(n_tensors=2**64 - 1),
        "huge-kv-count.gguf": gguf_bytes(n_kv=2**62),
        "huge-string.gguf": gguf_bytes(kvs=[struct.pack("<Q", 12) + b"general.name" + struct.pack("<IQ", 8, 2**60)]),
        "tensor-offset-out-of-file.gguf": gguf_bytes(tensors=[("t.weight", [4], 0, 1 << 30)]),
        "tensor-offset-misaligned.gguf": gguf_bytes(tensors=[("t.weight", [4], 0, 3)]),
        "unknown-tensor-type.gguf": gguf_bytes(tensors=[("t.weight", [4], 4, 0)]),
        "bad-block-size.gguf": gguf_bytes(tensors=[("t.weight", [33], 8, 0)]),
        "five-dims.gguf": gguf_bytes(tensors=[("t.weight", [1, 1, 1, 1, 1], 0, 0)]),
        "duplicate-tensor.gguf": gguf_bytes(tensors=[("t.weight", [4], 0, 0), ("t.weight", [4], 0, 32)]),
        "element-overflow.gguf": gguf_bytes(tensors=[("t.weight", [2**32, 2**32], 0, 0)]),
    }


def main() -> int:
    SEEDS.mkdir(parents=True, exist_ok=True)
    BAD.mkdir(parents=True, exist_ok=True)
    all_types(SEEDS / "all-types-v3.gguf", 3)
    all_types(SEEDS / "all-types-v2.gguf", 2)
    moe(SEEDS / "moe-qwen3moe-f16.gguf", "qwen3moe", n_layer=2, n_embd=8, n_ff=4, n_expert=4, n_used=2, qtype=None)
    moe(SEEDS / "moe-olmoe-q4_0.gguf", "olmoe", n_layer=1, n_embd=32, n_ff=32, n_expert=2, n_used=1, qtype=Q.Q4_0)
    moe(SEEDS / "moe-qwen2moe-align64.gguf", "qwen2moe", n_layer=1, n_embd=8, n_ff=4, n_expert=3, n_used=2,
        qtype=None, alignment=64, shared=True, seed=3)
    set_version(SEEDS / "moe-qwen2moe-align64.gguf", 2)
    vocab(SEEDS / "vocab-llama.gguf")
    for p in SEEDS.iterdir():
        assert p.stat().st_size < 8192, f"{p} is {p.stat().st_size} bytes, seeds must stay < 8 KiB"
    MODELS.mkdir(parents=True, exist_ok=True)
    complete(MODELS / "qwen3moe-f16-bpe.gguf", "qwen3moe", n_embd=8, qtype=None, spm=False, seed=4)
    complete(MODELS / "qwen2moe-f16-bpe.gguf", "qwen2moe", n_embd=8, qtype=None, spm=False, seed=5)
    complete(MODELS / "olmoe-q8_0-bpe.gguf", "olmoe", n_embd=32, qtype=Q.Q8_0, spm=False, seed=6)
    complete(MODELS / "llama-f16-spm.gguf", "llama", n_embd=8, qtype=None, spm=True, seed=7)
    for p in MODELS.iterdir():
        assert p.stat().st_size < 32768, f"{p} is {p.stat().st_size} bytes, model seeds must stay < 32 KiB"
    for name, data in write_bad(SEEDS / "moe-qwen3moe-f16.gguf").items():
        (BAD / name).write_bytes(data)
    # Structurally valid, but the expert tensors hold 4 experts where the metadata says 8.
    moe(BAD / "expert-count-mismatch.gguf", "qwen3moe", n_layer=1, n_embd=8, n_ff=4, n_expert=4, n_used=2,
        qtype=None, expert_count_kv=8)
    print(f"wrote {len(list(SEEDS.iterdir()))} seeds to {SEEDS} and {len(list(BAD.iterdir()))} files to {BAD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
