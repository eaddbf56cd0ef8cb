"""Tokenizer metadata (tokenizer.ggml.*) for generated models.

Two sources:
  * copy_vocab_gguf(path): every tokenizer.* key of one of llama.cpp's vocab-only GGUFs
    (ggml-vocab-gpt-neox.gguf for OLMoE, ggml-vocab-llama-spm.gguf for Mixtral), types preserved.
  * qwen2_vocab(tokenizer_json, ...): a Qwen2/Qwen3 byte-level BPE vocabulary built from a
    Hugging Face tokenizer.json the way llama.cpp's converter lays it out:
      - ids 0..N-1 from model.vocab (NORMAL), then the added tokens at their ids: CONTROL when
        marked special or when they look special (<|...|>), USER_DEFINED otherwise (<think>, <tool_call>);
      - padded up to the model's vocab_size (151936 for the Qwen MoE models) with "[PAD<i>]"
        tokens of type UNUSED;
      - merges as "left right" strings in rank order; tokenizer.ggml.pre = "qwen2";
      - bos = pad = <|endoftext|> (151643); eos = <|im_end|> (151645) for Qwen3 (instruct/hybrid
        releases), <|endoftext|> for Qwen1.5/Qwen2-MoE base; add_bos_token = false.

Entries are returned as a list of KV tuples (key, value, GGUFValueType, array_subtype_or_None) that
writer.ModelWriter adds verbatim.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFValueType as VT

TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = 1, 2, 3, 4, 5, 6

QWEN_VOCAB_SIZE = 151936
QWEN_ENDOFTEXT = "<|endoftext|>"
QWEN_IM_END = "<|im_end|>"

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class Vocab:
    """Tokenizer KV entries plus the facts a model needs (n_vocab, special ids)."""

    def __init__(self, entries: list[tuple], n_vocab: int, source: str):
        self.entries = entries
        self.n_vocab = n_vocab
        self.source = source

    def get(self, key: str):
        for k, v, *_ in self.entries:
            if k == key:
                return v
        return None

    def set(self, key: str, value, vtype: VT, sub_type: VT | None = None) -> None:
        self.entries = [e for e in self.entries if e[0] != key]
        self.entries.append((key, value, vtype, sub_type))

    def remove(self, key: str) -> None:
        self.entries = [e for e in self.entries if e[0] != key]


def copy_vocab_gguf(path: str | Path) -> Vocab:
    reader = gguf.GGUFReader(str(path))
    entries = []
    n_vocab = None
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == VT.ARRAY:
            sub = field.types[1]
            if sub == VT.STRING:
                value = [bytes(field.parts[i]) for i in field.data]
            elif sub == VT.ARRAY:
                raise ValueError(f"{path}: nested array {key} not supported")
            else:
                value = np.concatenate([field.parts[i] for i in field.data]).tolist()
            entries.append((key, value, VT.ARRAY, sub))
            if key == "tokenizer.ggml.tokens":
                n_vocab = len(value)
        elif vtype == VT.STRING:
            entries.append((key, bytes(field.parts[field.data[0]]).decode("utf-8"), VT.STRING, None))
        else:
            value = field.parts[field.data[0]][0]
            value = bool(value) if vtype == VT.BOOL else (float(value) if vtype in (VT.FLOAT32, VT.FLOAT64) else int(value))
            entries.append((key, value, vtype, None))
    if n_vocab is None:
        raise ValueError(f"{path}: no tokenizer.ggml.tokens")
    return Vocab(entries, n_vocab, str(path))


def _looks_special(text: str) -> bool:
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def qwen2_vocab(tokenizer_json: str | Path, vocab_size: int = QWEN_VOCAB_SIZE,
                eos_token: str = QWEN_IM_END, with_chat_template: bool = True) -> Vocab:
    with open(tokenizer_json, encoding="utf-8") as f:
        tj = json.load(f)
    model = tj["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"{tokenizer_json}: not a BPE tokenizer")
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    types: dict[int, int] = {i: TOKEN_NORMAL for i in by_id}
    for at in tj.get("added_tokens", []):
        i, text = int(at["id"]), at["content"]
        by_id[i] = text
        types[i] = TOKEN_CONTROL if (at.get("special") or _looks_special(text)) else TOKEN_USER_DEFINED
    if max(by_id) >= vocab_size:
        raise ValueError(f"{tokenizer_json}: token id {max(by_id)} >= vocab_size {vocab_size}")

    tokens: list[str] = []
    toktypes: list[int] = []
    for i in range(vocab_size):
        if i in by_id:
            tokens.append(by_id[i])
            toktypes.append(types[i])
        else:
            tokens.append(f"[PAD{i}]")
            toktypes.append(TOKEN_UNUSED)

    merges = []
    for m in model["merges"]:
        if isinstance(m, str):
            merges.append(m)
        else:
            a, b = m
            merges.append(f"{a} {b}")

    ids = {t: i for i, t in by_id.items()}
    eot = ids[QWEN_ENDOFTEXT]
    entries = [
        ("tokenizer.ggml.model", "gpt2", VT.STRING, None),
        ("tokenizer.ggml.pre", "qwen2", VT.STRING, None),
        ("tokenizer.ggml.tokens", tokens, VT.ARRAY, VT.STRING),
        ("tokenizer.ggml.token_type", toktypes, VT.ARRAY, VT.INT32),
        ("tokenizer.ggml.merges", merges, VT.ARRAY, VT.STRING),
        ("tokenizer.ggml.eos_token_id", ids[eos_token], VT.UINT32, None),
        ("tokenizer.ggml.padding_token_id", eot, VT.UINT32, None),
        ("tokenizer.ggml.bos_token_id", eot, VT.UINT32, None),
        ("tokenizer.ggml.add_bos_token", False, VT.BOOL, None),
    ]
    if with_chat_template:
        entries.append(("tokenizer.chat_template", CHATML_TEMPLATE, VT.STRING, None))
    return Vocab(entries, vocab_size, str(tokenizer_json))


def write_vocab_only(vocab: Vocab, out: str | Path, arch: str = "qwen2", name: str = "qwen2-vocab") -> None:
    """A vocab-only GGUF (no tensors), like llama.cpp's models/ggml-vocab-*.gguf."""
    w = gguf.GGUFWriter(str(out), arch)
    w.add_name(name)
    for key, value, vtype, sub in vocab.entries:
        w.add_key_value(key, value, vtype, sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
