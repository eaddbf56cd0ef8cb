#!/usr/bin/env python3
"""check_vocab.py -- llama.cpp tokenizes with our vocab GGUFs exactly as its own test vectors say.

  qwen2      a vocab-only GGUF built from qwen3_tokenizer.json by tools/python/moerun_gen/vocab.py
             must reproduce ggml-vocab-qwen2.gguf.out for every string of ggml-vocab-qwen2.gguf.inp
             (add_special=false, parse_special=false), and its special tokens must behave like
             Qwen's (<|im_start|> CONTROL: parsed only with parse_special; <think> USER_DEFINED:
             always matched; bos/pad <|endoftext|>, eos <|im_end|>, no BOS added)
  llama-spm  the shipped vocab GGUF (Mixtral's tokenizer) against its .inp/.out
  gpt-neox   the shipped vocab GGUF (OLMoE's tokenizer) has no .inp/.out vectors in the shared data:
             it must load (n_vocab 50432) and round-trip (detokenize(tokenize(s)) == s) every string
             of all shipped .inp files; so must the olmoe variant the generator writes (pre "olmo")
  others     --all also checks every other shipped ggml-vocab-*.gguf that has .inp/.out vectors
Exits non-zero on any mismatch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "tools" / "python"))
sys.dont_write_bytecode = True
from llama_oracle import Oracle, VOCAB_TEST_SEPARATOR  # noqa: E402
from moerun_gen import build as B  # noqa: E402
from moerun_gen.vocab import qwen2_vocab, write_vocab_only  # noqa: E402


def load_vectors(inp: Path, out: Path) -> tuple[list[str], list[str]]:
    texts = inp.read_text(encoding="utf-8").split(VOCAB_TEST_SEPARATOR)
    lines = out.read_text(encoding="utf-8").split("\n")
    if len(lines) == len(texts) + 1 and lines[-1] == "":
        lines = lines[:-1]
    if len(lines) != len(texts):
        raise ValueError(f"{inp.name}: {len(texts)} strings but {out.name} has {len(lines)} lines")
    return texts, [ln.strip() for ln in lines]


def check_vectors(label: str, gguf_path: Path, inp: Path, out: Path, show: int = 5) -> bool:
    texts, expected = load_vectors(inp, out)
    o = Oracle(gguf_path, n_ctx=64, vocab_only=True)
    bad = []
    for i, (t, e) in enumerate(zip(texts, expected)):
        got = " ".join(str(x) for x in o.tokenize(t, add_special=False, parse_special=False))
        if got != e:
            bad.append((i, t, got, e))
    n_ok = len(texts) - len(bad)
    print(f"{'ok  ' if not bad else 'FAIL'} {label:<12} {n_ok}/{len(texts)} strings match {out.name}  ({gguf_path.name}, n_vocab {o.n_vocab})")
    for i, t, got, e in bad[:show]:
        print(f"     #{i} {t[:40]!r}\n        got      {got[:100]}\n        expected {e[:100]}")
    return not bad


def check_qwen2_specials(path: Path) -> bool:
    import llama_cpp
    o = Oracle(path, n_ctx=64, vocab_only=True)
    v = llama_cpp.llama_model_get_vocab(o.llm._model.model)
    fails = []

    def expect(what, got, want):
        if got != want:
            fails.append(f"{what}: got {got}, expected {want}")

    expect("n_vocab", o.n_vocab, 151936)
    expect("bos", llama_cpp.llama_vocab_bos(v), 151643)
    expect("eos", llama_cpp.llama_vocab_eos(v), 151645)
    expect("pad", llama_cpp.llama_vocab_pad(v), 151643)
    expect("add_bos", bool(llama_cpp.llama_vocab_get_add_bos(v)), False)
    chat = "<|im_start|>user\nhi<|im_end|>"
    expect("parse_special chat", o.tokenize(chat, False, True), [151644, 872, 198, 6023, 151645])
    expect("plain chat (specials as text)", 151644 in o.tokenize(chat, False, False), False)
    expect("<think> (user-defined, always matched)", o.tokenize("<think>x</think>", False, False), [151667, 87, 151668])
    expect("<|fim_prefix|> (control)", o.tokenize("<|fim_prefix|>a", False, True), [151659, 64])
    # attributes: NORMAL 4, CONTROL 8, USER_DEFINED 16, UNUSED 2
    expect("token attrs", [llama_cpp.llama_vocab_get_attr(v, i) for i in (0, 151643, 151657, 151659, 151667, 151935)],
           [4, 8, 16, 8, 16, 2])
    print(f"{'ok  ' if not fails else 'FAIL'} qwen2        special tokens and ids")
    for f in fails:
        print(f"     - {f}")
    return not fails


def check_roundtrip(label: str, path: Path, texts: list[str], n_vocab: int) -> bool:
    o = Oracle(path, n_ctx=64, vocab_only=True)
    bad = [t for t in texts if o.llm.detokenize(o.tokenize(t)).decode("utf-8", errors="replace") != t]
    ok = not bad and o.n_vocab == n_vocab
    print(f"{'ok  ' if ok else 'FAIL'} {label:<12} loads (n_vocab {o.n_vocab}), {len(texts) - len(bad)}/{len(texts)} strings round-trip"
          f"  ({path.name}; no .inp/.out vectors shipped)")
    for t in bad[:5]:
        print(f"     {t[:60]!r}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", type=Path, required=True, help="where the built vocab GGUFs go")
    ap.add_argument("--shared-data", help="default $MOERUN_SHARED_DATA or ../shared/data")
    ap.add_argument("--all", action="store_true", help="also every other shipped vocab with vectors")
    a = ap.parse_args(argv)
    vdir = B.shared_data_dir(a.shared_data) / "vocab"
    a.work_dir.mkdir(parents=True, exist_ok=True)
    ok = True

    qwen = a.work_dir / "moerun-vocab-qwen2.gguf"
    write_vocab_only(qwen2_vocab(vdir / "qwen3_tokenizer.json", with_chat_template=False), qwen, arch="qwen2")
    ok &= check_vectors("qwen2", qwen, vdir / "ggml-vocab-qwen2.gguf.inp", vdir / "ggml-vocab-qwen2.gguf.out")
    ok &= check_qwen2_specials(qwen)

    spm = vdir / "ggml-vocab-llama-spm.gguf"
    ok &= check_vectors("llama-spm", spm, Path(str(spm) + ".inp"), Path(str(spm) + ".out"))

    texts = sorted({t for f in sorted(vdir.glob("*.inp")) for t in f.read_text(encoding="utf-8").split(VOCAB_TEST_SEPARATOR)})
    ok &= check_roundtrip("gpt-neox", vdir / "ggml-vocab-gpt-neox.gguf", texts, 50432)
    olmo = a.work_dir / "moerun-vocab-olmoe.gguf"
    write_vocab_only(B.load_vocab("olmoe", vdir.parent), olmo, arch="olmoe")
    ok &= check_roundtrip("olmoe (olmo)", olmo, texts, 50432)

    if a.all:
        for g in sorted(vdir.glob("ggml-vocab-*.gguf")):
            inp, out = Path(str(g) + ".inp"), Path(str(g) + ".out")
            if g == spm or not inp.exists() or not out.exists():
                continue
            ok &= check_vectors(g.name[len("ggml-vocab-"):-len(".gguf")], g, inp, out)
    print("vocab checks:", "all ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
