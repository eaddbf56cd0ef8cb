#!/usr/bin/env python3
"""llama_oracle.py -- llama.cpp (via llama-cpp-python, CPU) as the reference for moerun's tests.

Modes
  logits    evaluate a token sequence, dump the logits at every position
  greedy    evaluate a prompt, append N greedy (argmax) tokens, dump tokens + logits at every position
  tokenize  tokenize text with the model's vocabulary, write the ids
  quantize  write -o: the model quantized by llama.cpp's quantizer to --ftype (e.g. Q5_K_M, MXFP4_MOE)
  probe     one forward pass over a token sequence; save llama.cpp's per-layer hidden states
            (l_out-N), selected experts (ffn_moe_topk-N) and router probabilities (ffn_moe_probs-N)
            to an .npz (numpy order: [n_tokens, ...]; see Oracle.probe)

  llama_oracle.py logits   -m model.gguf --tokens "1 2 3" -o out.bin
  llama_oracle.py logits   -m model.gguf --prompt "Hello world" --add-special -o out.bin
  llama_oracle.py greedy   -m model.gguf --tokens-file ids.txt -n 16 -o out.bin
  llama_oracle.py tokenize -m vocab.gguf --text "Hello" [--add-special] [--parse-special] [-o ids.txt]
  llama_oracle.py tokenize -m vocab.gguf --vectors ggml-vocab-x.gguf.inp -o x.out
  llama_oracle.py probe    -m model.gguf --prompt "Hello world" -o route.npz
  llama_oracle.py quantize -m model-F32.gguf --ftype Q4_K_M -o model-Q4_K_M.gguf

Logits file format (little-endian; read by tests/oracle/oracle_file.h):
  offset 0   char     magic[8] = "MOELOGIT"
  offset 8   uint32   version = 1
  offset 12  uint32   n_tokens          total tokens (prompt + generated)
  offset 16  uint32   n_vocab
  offset 20  uint32   n_prompt          tokens given as input; tokens[n_prompt:] were generated greedily
  offset 24  int32    tokens[n_tokens]
  then       float32  logits[n_tokens][n_vocab]
             logits[i] = llama.cpp's output after consuming tokens[0..i] (the prediction for token i+1).
In greedy mode tokens[i+1] = argmax(logits[i]) for i >= n_prompt-1 (lowest id on ties); the logits
of the last generated token are included.

Token files (--tokens-file) and tokenize output: ids separated by whitespace; for --vectors one
line per input string, ids separated by single spaces (the format of llama.cpp's *.gguf.out).

llama.cpp settings: CPU only (n_gpu_layers 0), mmap on, embeddings off, per-position logits on,
one sequence, n_batch = n_ubatch = the whole sequence unless --batch is given, seed set (unused by
greedy/argmax), flash attention off.
"""
from __future__ import annotations

import argparse
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

# ggml type ids for the KV cache: f16 is llama.cpp's default; f32 keeps attention exact, which
# moerun's logits tests use so that only the weight products are compared.
KV_TYPES = {"f32": 0, "f16": 1}

MAGIC = b"MOELOGIT"
VERSION = 1
HEADER = struct.Struct("<8sIIII")
VOCAB_TEST_SEPARATOR = "\n__ggml_vocab_test__\n"


def write_logits_file(path, tokens, logits, n_prompt: int) -> None:
    tokens = np.asarray(tokens, dtype="<i4")
    logits = np.ascontiguousarray(logits, dtype="<f4")
    assert logits.shape == (tokens.size, logits.shape[1])
    with open(path, "wb") as f:
        f.write(HEADER.pack(MAGIC, VERSION, tokens.size, logits.shape[1], n_prompt))
        f.write(tokens.tobytes())
        f.write(logits.tobytes())


def read_logits_file(path):
    """-> (tokens int32[n], logits float32[n, n_vocab], n_prompt)"""
    data = Path(path).read_bytes()
    magic, version, n, n_vocab, n_prompt = HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"{path}: not a MOELOGIT v{VERSION} file")
    off = HEADER.size
    tokens = np.frombuffer(data, "<i4", n, off)
    off += 4 * n
    logits = np.frombuffer(data, "<f4", n * n_vocab, off).reshape(n, n_vocab)
    if off + logits.nbytes != len(data):
        raise ValueError(f"{path}: size mismatch")
    return tokens, logits, n_prompt


def quantize(src, dst, ftype: str, n_threads: int = 2) -> None:
    """Writes dst: src quantized by llama.cpp's quantizer (llama-quantize) to LLAMA_FTYPE_MOSTLY_<ftype>,
    e.g. "Q5_K_M", "Q3_K_S", "Q4_1", "BF16"; llama.cpp chooses each tensor's type as for real models."""
    import ctypes
    import llama_cpp
    name = "LLAMA_FTYPE_MOSTLY_" + ftype
    if not hasattr(llama_cpp, name):
        raise RuntimeError(f"llama.cpp has no file type {ftype} ({name})")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = getattr(llama_cpp, name)
    p.nthread = n_threads
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p))
    if rc != 0:
        Path(dst).unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize {src} -> {dst} ({ftype}) failed ({rc})")


class Oracle:
    """A loaded llama.cpp model (CPU)."""

    def __init__(self, model: str, n_ctx: int = 512, n_threads: int | None = None, seed: int = 42,
                 n_batch: int | None = None, vocab_only: bool = False, verbose: bool = False,
                 kv_type: str = "f16"):
        import llama_cpp
        self.llama_cpp = llama_cpp
        n_batch = n_batch or n_ctx
        self.llm = llama_cpp.Llama(
            model_path=str(model), n_gpu_layers=0, vocab_only=vocab_only, use_mmap=True,
            seed=seed, n_ctx=n_ctx, n_batch=n_batch, n_ubatch=n_batch,
            n_threads=n_threads, n_threads_batch=n_threads,
            logits_all=True, embedding=False, flash_attn=False, verbose=verbose,
            type_k=KV_TYPES[kv_type], type_v=KV_TYPES[kv_type])
        self.n_vocab = self.llm.n_vocab()

    # -- tokenizer
    def tokenize(self, text: str | bytes, add_special: bool = False, parse_special: bool = False) -> list[int]:
        if isinstance(text, str):
            text = text.encode("utf-8")
        return self.llm.tokenize(text, add_bos=add_special, special=parse_special)

    def detokenize(self, ids) -> str:
        return self.llm.detokenize(list(ids)).decode("utf-8", errors="replace")

    # -- evaluation
    def logits(self, tokens) -> np.ndarray:
        """float32[n, n_vocab]: logits after each token (fresh sequence)."""
        tokens = [int(t) for t in tokens]
        self._check(tokens)
        self.llm.reset()
        self.llm.eval(tokens)
        return np.array(self.llm.scores[: len(tokens)], dtype=np.float32)

    def greedy(self, prompt, n_new: int) -> tuple[list[int], np.ndarray]:
        """(tokens prompt+generated, logits float32[len, n_vocab]); argmax decoding."""
        toks = [int(t) for t in prompt]
        self._check(toks)
        self.llm.reset()
        self.llm.eval(toks)
        for _ in range(n_new):
            nxt = int(np.argmax(self.llm.scores[len(toks) - 1]))
            toks.append(nxt)
            self.llm.eval([nxt])
        return toks, np.array(self.llm.scores[: len(toks)], dtype=np.float32)

    def probe(self, tokens, prefixes=("l_out", "ffn_moe_topk", "ffn_moe_probs")) -> dict:
        """Intermediate tensors of one forward pass over `tokens`, via llama.cpp's eval callback.

        Returns {name: numpy array} for every graph tensor named "<prefix>-<layer>" with a prefix in
        `prefixes`, in numpy order (outermost first), e.g.
          l_out-3         float32 [n_tokens, n_embd]     hidden state after layer 3
          ffn_moe_topk-3  int32   [n_tokens, top_k]      selected experts, best first
          ffn_moe_probs-3 float32 [n_tokens, n_expert]   router softmax
        Uses a second llama.cpp context with the same model (CPU, one batch).
        """
        import ctypes
        lc = self.llama_cpp
        base = ctypes.CDLL(str(Path(lc.__file__).parent / "lib" / "libggml-base.so"))
        base.ggml_get_name.restype = ctypes.c_char_p
        base.ggml_get_name.argtypes = [ctypes.c_void_p]
        base.ggml_nbytes.restype = ctypes.c_size_t
        base.ggml_nbytes.argtypes = [ctypes.c_void_p]
        base.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        base.ggml_backend_tensor_get.restype = None
        np_types = {0: np.float32, 1: np.float16, 26: np.int32}   # GGML_TYPE_F32, F16, I32
        want = re.compile("(" + "|".join(re.escape(p) for p in prefixes) + r")-\d+")
        got: dict[str, np.ndarray] = {}

        def cb(t, ask, _ud):
            name = base.ggml_get_name(t).decode()
            if not want.fullmatch(name):
                return not ask   # ask: "do you want this one?" -> no; otherwise continue
            if ask:
                return True
            # struct ggml_tensor { enum ggml_type type; void *buffer; int64_t ne[4]; size_t nb[4]; ... }
            ttype = ctypes.c_int32.from_address(t).value
            ne = (ctypes.c_int64 * 4).from_address(t + 16)
            nb = (ctypes.c_size_t * 4).from_address(t + 48)
            if ttype not in np_types:
                return True
            nbytes = base.ggml_nbytes(t)
            buf = np.empty(nbytes, dtype=np.uint8)
            base.ggml_backend_tensor_get(t, buf.ctypes.data, 0, nbytes)
            dt = np.dtype(np_types[ttype])
            shape = tuple(int(x) for x in reversed(list(ne)))
            strides = tuple(int(x) for x in reversed(list(nb)))
            arr = np.array(np.lib.stride_tricks.as_strided(buf.view(dt), shape=shape, strides=strides))
            while arr.ndim > 2 and arr.shape[0] == 1:
                arr = arr[0]
            got[name] = arr
            return True

        tokens = [int(x) for x in tokens]
        self._check(tokens)
        c_cb = lc.ggml_backend_sched_eval_callback(cb)
        params = lc.llama_context_default_params()
        params.n_ctx = max(64, len(tokens))
        params.n_batch = params.n_ubatch = params.n_ctx
        params.n_seq_max = 1
        params.cb_eval = c_cb
        params.cb_eval_user_data = None
        params.embeddings = False
        if self.llm.n_threads:
            params.n_threads = params.n_threads_batch = self.llm.n_threads
        ctx = lc.llama_init_from_model(self.llm._model.model, params)
        if not ctx:
            raise RuntimeError("llama_init_from_model failed")
        try:
            from llama_cpp._internals import LlamaBatch
            batch = LlamaBatch(n_tokens=len(tokens), embd=0, n_seq_max=1, verbose=False)
            batch.set_batch(tokens, n_past=0, logits_all=True)  # every position is an output: no row pruning
            rc = lc.llama_decode(ctx, batch.batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed: {rc}")
        finally:
            lc.llama_free(ctx)
        return got

    def _check(self, tokens):
        if not tokens:
            raise ValueError("empty token sequence")
        bad = [t for t in tokens if not 0 <= t < self.n_vocab]
        if bad:
            raise ValueError(f"token ids out of range [0, {self.n_vocab}): {bad[:5]}")
        if len(tokens) > self.llm.n_ctx():
            raise ValueError(f"{len(tokens)} tokens > n_ctx {self.llm.n_ctx()}")


def logits_hash(logits: np.ndarray) -> str:
    return f"#{zlib.crc32(np.ascontiguousarray(logits, dtype='<f4').tobytes()):08x}"


def read_ids(text: str) -> list[int]:
    return [int(x) for x in text.split()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("mode", choices=["logits", "greedy", "tokenize", "probe", "quantize"])
    ap.add_argument("-m", "--model", required=True)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--tokens", help="token ids, space separated")
    src.add_argument("--tokens-file", help="file of token ids")
    src.add_argument("--prompt", help="text, tokenized with the model's vocab (logits/greedy)")
    src.add_argument("--text", help="tokenize: the text")
    src.add_argument("--text-file", help="tokenize: file whose whole content is the text")
    src.add_argument("--vectors", help="tokenize: llama.cpp vocab-test .inp file (strings separated by __ggml_vocab_test__)")
    ap.add_argument("--add-special", action="store_true", help="add BOS/EOS as the vocab says (tokenize/--prompt)")
    ap.add_argument("--parse-special", action="store_true", help="parse special-token text (tokenize/--prompt)")
    ap.add_argument("-n", "--n-predict", type=int, default=16, help="greedy: tokens to generate")
    ap.add_argument("-o", "--out", help="output file (logits: binary; tokenize: text, default stdout)")
    ap.add_argument("-t", "--threads", type=int, default=None)
    ap.add_argument("-c", "--ctx", type=int, default=None, help="n_ctx (default: just enough)")
    ap.add_argument("--batch", type=int, default=None, help="n_batch/n_ubatch (default: n_ctx)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--kv-type", choices=sorted(KV_TYPES), default="f16", help="KV cache type (default: llama.cpp's f16)")
    ap.add_argument("--ftype", help="quantize: llama.cpp file type (LLAMA_FTYPE_MOSTLY_<FTYPE>)")
    ap.add_argument("-v", "--verbose", action="store_true", help="llama.cpp log on stderr")
    a = ap.parse_args(argv)

    if a.mode == "quantize":
        if not a.ftype or not a.out:
            ap.error("quantize needs --ftype and -o")
        quantize(a.model, a.out, a.ftype)
        return 0

    if a.mode == "tokenize":
        o = Oracle(a.model, n_ctx=64, vocab_only=True, verbose=a.verbose, seed=a.seed)
        if a.vectors:
            texts = Path(a.vectors).read_text(encoding="utf-8").split(VOCAB_TEST_SEPARATOR)
        elif a.text is not None:
            texts = [a.text]
        elif a.text_file:
            texts = [Path(a.text_file).read_text(encoding="utf-8")]
        else:
            ap.error("tokenize needs --text, --text-file or --vectors")
        lines = [" ".join(str(t) for t in o.tokenize(s, a.add_special, a.parse_special)) for s in texts]
        out = "\n".join(lines) + "\n"
        if a.out:
            Path(a.out).write_text(out)
            print(f"{len(lines)} string(s) tokenized -> {a.out}", file=sys.stderr)
        else:
            sys.stdout.write(out)
        return 0

    if not a.out:
        ap.error(f"{a.mode} needs -o")
    if a.tokens is not None:
        prompt = read_ids(a.tokens)
    elif a.tokens_file:
        prompt = read_ids(Path(a.tokens_file).read_text())
    elif a.prompt is not None:
        prompt = None
    else:
        ap.error(f"{a.mode} needs --tokens, --tokens-file or --prompt")
    n_total_max = (len(prompt) if prompt is not None else 4 * len(a.prompt.encode()) + 8) + \
        (a.n_predict if a.mode == "greedy" else 0)
    n_ctx = a.ctx or max(64, -(-n_total_max // 64) * 64)
    o = Oracle(a.model, n_ctx=n_ctx, n_threads=a.threads, seed=a.seed, n_batch=a.batch, verbose=a.verbose,
               kv_type=a.kv_type)
    if prompt is None:
        prompt = o.tokenize(a.prompt, a.add_special, a.parse_special)
    if a.mode == "probe":
        got = o.probe(prompt)
        np.savez(a.out, tokens=np.asarray(prompt, dtype=np.int32), **got)
        print(f"probe: {len(prompt)} tokens, {len(got)} tensors -> {a.out}")
        return 0
    if a.mode == "logits":
        tokens, logits = prompt, o.logits(prompt)
    else:
        tokens, logits = o.greedy(prompt, a.n_predict)
    if not np.all(np.isfinite(logits)):
        print("warning: non-finite logits", file=sys.stderr)
    write_logits_file(a.out, tokens, logits, len(prompt))
    print(f"{a.mode}: {len(tokens)} tokens ({len(prompt)} prompt), n_vocab {o.n_vocab}, logits {logits_hash(logits)} -> {a.out}")
    if a.mode == "greedy":
        print("generated:", " ".join(str(t) for t in tokens[len(prompt):]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
