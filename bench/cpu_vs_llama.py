#!/usr/bin/env python3
"""cpu_vs_llama.py -- prompt and decode speed of moerun and llama.cpp on one GGUF, same run.

Both engines get the same model file, thread count, prompt length (random token ids) and decode
length; each does one warm-up and --reps timed repetitions. llama.cpp runs through
llama-cpp-python (CPU build, mmap, default settings incl. weight repacking and the F16 KV cache)
with the prompt as one batch and greedy single-token decoding, twice: flash attention off
(llama-cpp-python's default) and on (what llama.cpp's own tools pick on a CPU); moerun runs
`moerun bench` (F16 KV cache, its default). Writes a markdown table with mean +- stddev and the
ratio of moerun to the faster llama.cpp setting of each column.

  cpu_vs_llama.py --model M.gguf --moerun build/tools/moerun [--threads 2] [--n-prompt 512]
                  [--n-gen 128] [--reps 3] [--out bench/results/x.md]
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def llama_bench(model: str, threads: int, n_prompt: int, n_gen: int, reps: int, flash_attn: bool) -> dict:
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model, n_ctx=n_prompt + n_gen + 16, n_batch=max(n_prompt, 1),
                          n_ubatch=max(n_prompt, 1), n_threads=threads, n_threads_batch=threads,
                          use_mmap=True, flash_attn=flash_attn, verbose=False)
    rng = random.Random(1234)
    n_vocab = llm.n_vocab()

    def last_argmax() -> int:  # the logits of the last evaluated token, read in place
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))

    pp, tg = [], []
    for rep in range(reps + 1):
        prompt = [rng.randrange(n_vocab) for _ in range(n_prompt)]
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        nxt = last_argmax()
        for _ in range(n_gen):
            llm.eval([nxt])
            nxt = last_argmax()
        t2 = time.perf_counter()
        if rep == 0:
            continue  # warm-up
        pp.append(n_prompt / (t1 - t0))
        tg.append(n_gen / (t2 - t1))
    return {"pp": pp, "tg": tg, "version": llama_cpp.__version__}


def fmt(v: list[float]) -> str:
    return f"{statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--moerun", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-prompt", type=int, default=512)
    ap.add_argument("--n-gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--label", default="")
    ap.add_argument("--out")
    a = ap.parse_args()

    m = subprocess.run([a.moerun, "bench", "-m", a.model, "-p", str(a.n_prompt), "-n", str(a.n_gen), "-r", str(a.reps),
                        "-t", str(a.threads), "--json"], check=True, capture_output=True, text=True)
    ours = json.loads(m.stdout.strip().splitlines()[-1])
    refs = {fa: llama_bench(a.model, a.threads, a.n_prompt, a.n_gen, a.reps, fa) for fa in (False, True)}
    ref = refs[False]

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or "unknown"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    best_pp = max(statistics.mean(r["pp"]) for r in refs.values())
    best_tg = max(statistics.mean(r["tg"]) for r in refs.values())
    pp_ratio, tg_ratio = ours["pp_tps"] / best_pp, ours["tg_tps"] / best_tg
    lines = [
        f"# CPU speed: moerun vs llama.cpp{(' — ' + a.label) if a.label else ''}",
        "",
        f"- model: `{Path(a.model).name}` ({ours['desc']}), {Path(a.model).stat().st_size / 2**30:.2f} GiB",
        f"- machine: {cpu}, {a.threads} threads; commit {commit}; llama-cpp-python {ref['version']} (CPU build, default settings, F16 KV cache)",
        f"- {a.reps} repetitions after one warm-up; prompt = {a.n_prompt} random token ids as one batch; decode = {a.n_gen} greedy tokens",
        f"- command: `python bench/cpu_vs_llama.py --model {a.model} --moerun {a.moerun} --threads {a.threads} "
        f"--n-prompt {a.n_prompt} --n-gen {a.n_gen} --reps {a.reps}`",
        "",
        "| engine | pp t/s | tg t/s |",
        "|---|---|---|",
        f"| moerun | {ours['pp_tps']:.2f} ± {ours['pp_std']:.2f} | {ours['tg_tps']:.2f} ± {ours['tg_std']:.2f} |",
        f"| llama.cpp, flash attention off | {fmt(refs[False]['pp'])} | {fmt(refs[False]['tg'])} |",
        f"| llama.cpp, flash attention on | {fmt(refs[True]['pp'])} | {fmt(refs[True]['tg'])} |",
        f"| ratio moerun / faster llama.cpp | {pp_ratio:.2f} | {tg_ratio:.2f} |",
        "",
        f"moerun peak RSS: {ours['peak_rss'] / 2**30:.2f} GiB",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
