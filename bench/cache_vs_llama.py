#!/usr/bin/env python3
"""cache_vs_llama.py -- decode speed when the model does not fit: moerun's expert cache against
llama.cpp under the same memory limit, measured in the same run.

For each memory limit (a fraction of the GGUF's size) both engines run in a memory cgroup with
that limit (page cache counts against it; caches are dropped before each run when allowed):
  - moerun: `moerun bench` with --host-mem = limit - moerun's stated fixed overhead, routing forced
    by the routing trace (--trace), and again with the model's own router;
  - llama.cpp (llama-cpp-python, mmap, weight repacking off so the mapping is the only copy),
    with the model's own router (llama.cpp cannot take a routing trace).
It also runs both without a limit, measures the NVMe tier (`moerun bench --io`: O_DIRECT reads of
random experts), and computes the physical bound of each moerun run: misses per token x expert
bytes / measured bandwidth. Writes a markdown table.

  cache_vs_llama.py --model M.gguf --moerun build/tools/moerun --trace T.bin [--threads 2]
                    [--fractions 0.33,0.5,0.25] [--n-gen 48] [--llama-n-gen 8] [--out bench/results/x.md]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


# --- memory cgroup (v1 or v2) ---------------------------------------------------------------

def cgroup_dir() -> Path | None:
    """A child of this process's memory cgroup that we may create, or None."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hid, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            return base / f"moerun-bench-{os.getpid()}"
        if hid == "0" and ctrls == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            base = Path("/sys/fs/cgroup") / path.lstrip("/")
            if "memory" in (base / "cgroup.controllers").read_text():
                return base / f"moerun-bench-{os.getpid()}"
    return None


class MemoryLimit:
    def __init__(self, limit: int | None):
        self.limit, self.dir = limit, None
        if limit is None:
            return
        d = cgroup_dir()
        if d is None:
            raise SystemExit("no memory cgroup available: cannot impose the limit")
        d.mkdir()
        self.dir = d
        self.v1 = (d / "memory.limit_in_bytes").exists()
        (d / ("memory.limit_in_bytes" if self.v1 else "memory.max")).write_text(str(limit))
        if self.v1 and (d / "memory.memsw.limit_in_bytes").exists():
            try:
                (d / "memory.memsw.limit_in_bytes").write_text(str(limit))
            except OSError:
                pass

    def enter(self) -> None:  # preexec_fn of the child
        if self.dir is not None:
            (self.dir / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self) -> int | None:
        if self.dir is None:
            return None
        f = self.dir / ("memory.max_usage_in_bytes" if self.v1 else "memory.peak")
        return int(f.read_text()) if f.exists() else None

    def close(self) -> None:
        if self.dir is not None:
            for _ in range(50):
                try:
                    self.dir.rmdir()
                    return
                except OSError:
                    time.sleep(0.1)


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=False)
        Path("/proc/sys/vm/drop_caches").write_text("3")
        return True
    except OSError:
        return False


# --- engines ----------------------------------------------------------------------------------

LLAMA_SNIPPET = r"""
import json, sys, time, random
import numpy as np
import llama_cpp
import llama_cpp.llama_cpp as lib  # llama.py calls lib.llama_model_default_params()
model, threads, n_gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
_default = lib.llama_model_default_params
def _params():
    p = _default()
    p.use_extra_bufts = False  # no repacked copy of the weights: the mapping is the only copy
    return p
lib.llama_model_default_params = _params
llm = llama_cpp.Llama(model_path=model, n_ctx=64, n_batch=16, n_threads=threads, n_threads_batch=threads,
                      use_mmap=True, verbose=False)
n_vocab = llm.n_vocab()
def argmax():
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))
rng = random.Random(1234)
llm.eval([rng.randrange(n_vocab) for _ in range(8)])
nxt = argmax()
llm.eval([nxt]); nxt = argmax()  # first decode token: warm-up
t0 = time.perf_counter()
for _ in range(n_gen):
    llm.eval([nxt]); nxt = argmax()
dt = time.perf_counter() - t0
print(json.dumps({"tg_tps": n_gen / dt, "seconds": dt, "version": llama_cpp.__version__}))
"""


def run_limited(cmd: list[str], limit: int | None, timeout: float) -> tuple[dict | None, int | None, str]:
    lim = MemoryLimit(limit)
    try:
        p = subprocess.run(cmd, preexec_fn=lim.enter, capture_output=True, text=True, timeout=timeout)
        peak = lim.peak()
        if p.returncode != 0:
            return None, peak, (p.stderr or p.stdout).strip().splitlines()[-1:][0] if (p.stderr or p.stdout) else f"exit {p.returncode}"
        return json.loads(p.stdout.strip().splitlines()[-1]), peak, ""
    except subprocess.TimeoutExpired:
        return None, lim.peak(), f"no result within {timeout:.0f} s"
    finally:
        lim.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--moerun", required=True)
    ap.add_argument("--trace", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fractions", default="0.33,0.5,0.25")
    ap.add_argument("--n-gen", type=int, default=128)
    ap.add_argument("--llama-n-gen", type=int, default=8)
    ap.add_argument("--llama-timeout", type=float, default=240)
    ap.add_argument("--policy", default="least-stale")
    ap.add_argument("--out")
    args = ap.parse_args()
    size = os.path.getsize(args.model)
    gib = 2**30
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    ios = [json.loads(subprocess.run([args.moerun, "bench", "--io", "--json", "-m", args.model, "--io-seconds", "3"],
                                     check=True, capture_output=True, text=True).stdout) for _ in range(3)]
    ios.sort(key=lambda r: r["gb_per_s"])
    io = ios[1]  # the median of three 3-second runs
    bw = io["gb_per_s"] * 1e9
    overhead = 96 * 2**20  # MemoryPlan::kFixedOverhead, checked against the JSON below

    def moerun(limit: int | None, trace: bool) -> tuple[dict | None, int | None, str]:
        cmd = [args.moerun, "bench", "-m", args.model, "-p", "16", "-n", str(args.n_gen), "-r", "1", "-t",
               str(args.threads), "--json", "--cache-policy", args.policy]
        if limit is not None:
            cmd += ["--host-mem", str(limit - overhead)]
        if trace:
            cmd += ["--routing-trace", args.trace]
        dropped = drop_caches()
        r, peak, err = run_limited(cmd, limit, 1800)
        if r is not None:
            r["dropped_caches"] = dropped
        return r, peak, err

    def llama(limit: int | None, n_gen: int) -> tuple[dict | None, int | None, str]:
        drop_caches()
        return run_limited([sys.executable, "-c", LLAMA_SNIPPET, args.model, str(args.threads), str(n_gen)], limit,
                           args.llama_timeout)

    say(f"# Expert cache vs llama.cpp under a memory limit ({Path(args.model).name})")
    say()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or "unknown"
    say(f"- commit {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average before: "
        f"{Path('/proc/loadavg').read_text().split()[0]}")
    say(f"- model: `{args.model}`, {size / gib:.2f} GiB; {args.threads} threads; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    say(f"- NVMe tier ({io['mode']}): {io['gb_per_s']:.2f} GB/s reading random experts of "
        f"{io['expert_bytes'] / 2**20:.2f} MiB, {io['experts_in_flight']} in flight (median of three 3 s runs: "
        + ", ".join(f"{r['gb_per_s']:.2f}" for r in ios) + ")")
    say(f"- moerun: decode {args.n_gen} tokens after a 16-token prompt and a warm-up run, policy {args.policy}, "
        f"routing from `{Path(args.trace).name}` (trace) or the model's router (own); "
        f"--host-mem = limit - {overhead >> 20} MiB fixed overhead")
    say(f"- llama.cpp: llama-cpp-python, mmap, repacking off, decode {args.llama_n_gen} tokens "
        f"(model's own router); each run in a memory cgroup with the limit, page caches dropped before each run")
    say()
    say("| limit | engine | routing | decode tok/s | hit rate | misses/token | MiB read/token | I/O wait | "
        "I/O bound tok/s | bound tok/s | share of bound | cgroup peak | vs llama.cpp |")
    say("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    resident: dict[str, float] = {}  # routing -> all-resident decode tok/s (the compute bound)
    fractions = [None] + [float(f) for f in args.fractions.split(",")]
    for frac in fractions:
        limit = None if frac is None else int(size * frac)
        label = "none (fits)" if limit is None else f"{frac:.2f} x = {limit / gib:.2f} GiB"
        ll, ll_peak, ll_err = llama(limit, args.n_gen if limit is None else args.llama_n_gen)
        ll_tps = ll["tg_tps"] if ll else None
        for trace in (True, False):
            r, peak, err = moerun(limit, trace)
            routing = "trace" if trace else "own"
            if r is None:
                say(f"| {label} | moerun | {routing} | failed: {err} | | | | | | | | | |")
                continue
            assert r["fixed_overhead"] == overhead, "bench script out of date with MemoryPlan::kFixedOverhead"
            tps = r["tg_tps"]
            if r["cached"]:
                bytes_tok = r["bytes_per_token"]
                io_bound = bw / bytes_tok if bytes_tok > 0 else float("inf")
                bound = min(io_bound, resident.get(routing, float("inf")))
                cols = (f"{100 * r['hit_rate']:.1f}% | {r['misses_per_token']:.1f} | {bytes_tok / 2**20:.1f} | "
                        f"{100 * r['io_wait_share']:.0f}% | {io_bound:.2f} | {bound:.2f} | {100 * tps / bound:.0f}%")
            else:
                resident[routing] = tps
                cols = "all resident | 0 | 0 | 0% | - | - | -"
            ratio = f"{tps / ll_tps:.1f}x" if ll_tps else "-"
            pk = f"{peak / gib:.2f} GiB" if peak else "-"
            say(f"| {label} | moerun | {routing} | {tps:.2f} | {cols} | {pk} | {ratio} |")
        if ll is None:
            say(f"| {label} | llama.cpp | own | failed: {ll_err} | | | | | | | | {ll_peak / gib if ll_peak else 0:.2f} GiB | |")
        else:
            pk = f"{ll_peak / gib:.2f} GiB" if ll_peak else "-"
            say(f"| {label} | llama.cpp {ll['version']} | own | {ll_tps:.2f} | | | | | | | | {pk} | 1.0x |")
    say()
    say("I/O bound: the decode rate if reading each token's missed experts at the measured NVMe bandwidth were the "
        "only cost (bandwidth / (misses/token x expert bytes)). Bound: the lower of the I/O bound and the "
        "all-resident decode rate with the same routing (compute), measured above in the same run; share of "
        "bound = measured / bound. The NVMe bandwidth of this machine varies from run to run (see the three "
        "measurements), so shares near or above 100% mean the disk was faster during that run than the median. "
        "Routing 'trace' replays the real OLMoE routing (its locality is what a real model would give); "
        "'own' is the synthetic model's router, whose random weights happen to pick a few experts again and "
        "again during decode (far more reuse than a real model), so its hit rates flatter the cache.")
    say()
    say("Command: `" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]) + "`")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
