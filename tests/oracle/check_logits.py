#!/usr/bin/env python3
"""check_logits.py -- moerun's logits against llama.cpp's on one GGUF (oracle test driver).

Makes a fixed 64-token sequence (seeded ids spread over the vocabulary), asks llama.cpp for the
logits at every position and a 32-token greedy continuation -- token by token (--batch 1) with an
KV cache of --kv-type (F32 by default, so that only the weight products are compared; F16 checks
moerun's F16 cache against llama.cpp's) -- token by token, so both sides compute the same
definition (llama.cpp's batched K-quant products round differently from its per-token ones) --
then runs the C++ comparer (logits-compare) with the same cache type.

  check_logits.py --model M.gguf --compare BIN --work DIR [--kv-type f32|f16] [--generate "GEN ARGS"]
                  [--llama-quantize FTYPE] -- [logits-compare options]

With --generate, the model is first written by tools/python/gen_model.py with those arguments
(plus --out M.gguf) unless it exists with the same arguments (a .args file beside it). With
--llama-quantize too, gen_model.py writes M.base.gguf and llama.cpp's own quantizer
(llama_model_quantize, e.g. Q5_K_M, Q3_K_S, Q4_1) makes M.gguf from it: the type mix of the files
users download (llama.cpp picks the type per tensor, e.g. Q6_K for output, fallbacks for rows that
are not a multiple of 256).
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import llama_oracle  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--compare", required=True, help="the logits-compare executable")
    ap.add_argument("--work", required=True, help="folder for the oracle file")
    ap.add_argument("--n-prompt", type=int, default=64)
    ap.add_argument("--n-predict", type=int, default=32)
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--kv-type", choices=["f32", "f16"], default="f32", help="KV cache type on both sides")
    ap.add_argument("--generate", help="gen_model.py arguments to write the model first")
    ap.add_argument("--llama-quantize", metavar="FTYPE", help="with --generate: quantize with llama.cpp (LLAMA_FTYPE_MOSTLY_<FTYPE>)")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- then options for logits-compare")
    a = ap.parse_args()
    model = Path(a.model)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    if a.generate:
        args_file = model.with_suffix(".args")
        args = a.generate + (f" | llama-quantize {a.llama_quantize}" if a.llama_quantize else "")
        if not model.exists() or not args_file.exists() or args_file.read_text() != args:
            model.parent.mkdir(parents=True, exist_ok=True)
            gen = HERE.parent.parent / "tools" / "python" / "gen_model.py"
            out = model.with_suffix(".base.gguf") if a.llama_quantize else model
            rc = subprocess.call([sys.executable, str(gen), *a.generate.split(), "--out", str(out)], stdout=subprocess.DEVNULL)
            if rc != 0:
                print(f"check_logits: gen_model.py {a.generate} failed ({rc})", file=sys.stderr)
                return 2
            if a.llama_quantize:
                try:
                    llama_oracle.quantize(out, model, a.llama_quantize)
                except RuntimeError as e:
                    print(f"check_logits: {e}", file=sys.stderr)
                    return 2
                out.unlink()
            args_file.write_text(args)
    oracle = llama_oracle.Oracle(model, n_ctx=a.n_prompt + a.n_predict + 8, n_threads=1, n_batch=1, kv_type=a.kv_type)
    rng = random.Random(a.seed)
    # Ids from the whole vocabulary except its last 1%, where control / unused tokens usually sit.
    top = max(2, int(oracle.n_vocab * 0.99))
    prompt = [rng.randrange(0, top) for _ in range(a.n_prompt)]
    tokens, logits = oracle.greedy(prompt, a.n_predict)
    # One file per run: tests of the same model name (3- and 1-layer folders, other backends) run
    # in parallel and must not read each other's half-written oracle.
    out = work / f"{model.parent.name}-{model.stem}-kv{a.kv_type}-{os.getpid()}.logits"
    llama_oracle.write_logits_file(out, tokens, logits, len(prompt))
    rest = a.rest[1:] if a.rest[:1] == ["--"] else a.rest
    try:
        return subprocess.call([a.compare, str(model), str(out), *rest, "--kv-type", a.kv_type])
    finally:
        out.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
