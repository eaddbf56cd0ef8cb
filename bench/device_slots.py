#!/usr/bin/env python3
"""device_slots.py -- decode with the device expert slots holding 100/50/25/10% of the experts,
with on-demand copies only and with predictor prefetch (--device-prefetch).

Runs `moerun bench --json` on one model with routing forced from a trace (the same expert sequence
in every run), the device forward pass on --backend (cuda on a GPU machine; cpu-device runs the
same code with "device" memory in RAM), and --device-slots set to each fraction of the model's
experts (at least top-k). Reports per fraction: decode tokens/s, the slots' hit rate, the bytes
copied into the slots per token (what crosses PCIe on a GPU), and the decode rate that copying
alone allows at PCIe 4 and 5 x16 (25 and 50 GB/s), with the all-resident rate as the other bound.

With --llama-bench (a CUDA build of llama.cpp's llama-bench on the same machine) it also measures
llama.cpp with the experts of the first layers on the CPU (--n-cpu-moe), as many layers as leave the
same fraction of the experts on the GPU, and prints the ratio and the issue's goal at 25% (at least
2x llama.cpp there and at least half the all-resident rate). The copy rate achieved in decode (bytes
copied per token x tokens/s) is set against the link bandwidth measured at start (--cpu-fallback
runs measure it) and the PCIe 4/5 figures.

Hit rate and bytes per token depend on the routing, the slot policy and the predictor, not on the
machine; the tokens/s column is the machine's. The backend and device name are written into the
table. With prefetch, demand misses are the copies a layer waits for; prefetch copies run on the
copy queue beside the kernels (on a GPU; the CPU backend runs them in line).

  python bench/device_slots.py --model M.gguf --moerun build/tools/moerun --backend cuda \\
      --trace ../shared/data/traces/olmoe-1b-7b-decode-general-coding.bin --out bench/results/X.md
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

PCIE = {"PCIe 4 x16": 25e9, "PCIe 5 x16": 50e9}


def model_shape(moerun: str, model: str) -> tuple[int, int, int]:
    out = subprocess.run([moerun, "inspect", model, "--no-tensors"], capture_output=True, text=True, check=True).stdout
    layers = experts = top_k = 0
    for line in out.splitlines():
        w = line.replace(",", " ").split()
        if w[:1] == ["layers"] and not layers:
            layers = int(w[1])
        if w[:1] == ["experts:"] and w[2:5] == ["used", "per", "token"]:
            experts, top_k = int(w[1]), int(w[5])
    if not (layers and experts and top_k):
        sys.exit(f"device_slots: cannot read the shape of {model} from `moerun inspect`")
    return layers, experts, top_k


def run(a: argparse.Namespace, slots: int, prefetch: str, fallback: str) -> dict:
    cmd = [a.moerun, "bench", "-m", a.model, "--backend", a.backend, "--device-slots", str(slots), "-p", str(a.n_prompt),
           "-n", str(a.n_gen), "-r", str(a.reps), "-t", str(a.threads), "--json", "--routing-trace", a.trace,
           "--device-prefetch", prefetch, "--cache-policy", a.policy, "--cpu-fallback", fallback]
    if a.device_mem:
        cmd += ["--device-mem", a.device_mem]
    if a.host_mem:
        cmd += ["--host-mem", a.host_mem]
    cmd += shlex.split(a.moerun_args)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"device_slots: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["cmd"] = " ".join(cmd)
    return r


def llama_bench(a: argparse.Namespace, n_cpu_moe: int) -> dict:
    """llama.cpp decode with every layer on the GPU and the experts of the first n_cpu_moe layers on
    the CPU (its own routing: llama.cpp cannot replay a trace; with all experts in memory the
    expert sequence changes which weights are read, not how many)."""
    cmd = [a.llama_bench, "-m", a.model, "-p", "0", "-n", str(a.n_gen), "-r", str(a.reps), "-ngl", "99",
           "--n-cpu-moe", str(n_cpu_moe), "-o", "json"]
    if a.threads:
        cmd += ["-t", str(a.threads)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"device_slots: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    tg = [r for r in json.loads(p.stdout) if r.get("n_gen", 0) > 0]
    if not tg:
        sys.exit(f"device_slots: no decode result from {' '.join(cmd)}")
    return {"n_cpu_moe": n_cpu_moe, "tps": tg[0]["avg_ts"], "std": tg[0].get("stddev_ts", 0.0), "cmd": " ".join(cmd)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--moerun", required=True)
    ap.add_argument("--backend", default="cuda", choices=["cuda", "cpu-device"])
    ap.add_argument("--trace", required=True, help="routing trace of the model's shape")
    ap.add_argument("--fractions", default="1,0.5,0.25,0.1")
    ap.add_argument("--prefetch", default="none,transition", help="--device-prefetch values to run at each fraction")
    ap.add_argument("--fallback", default="auto",
                    help="--cpu-fallback values also run with the last --prefetch value (off always runs)")
    ap.add_argument("--policy", default="least-stale", help="--cache-policy (the device slots' policy)")
    ap.add_argument("--n-prompt", type=int, default=16)
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device-mem", default="", help="passed through (the slot count is --device-slots)")
    ap.add_argument("--host-mem", default="",
                    help="passed through: below the experts' size the host tier is the expert cache (NVMe reads "
                         "into that many host slots) instead of the mapped file")
    ap.add_argument("--moerun-args", default="",
                    help="more `moerun bench` flags for every run, e.g. --moerun-args=--device-graphs (named in the table)")
    ap.add_argument("--llama-bench", help="llama.cpp's llama-bench (CUDA build): also measure --n-cpu-moe at each fraction")
    ap.add_argument("--out", help="markdown file to write (else stdout)")
    a = ap.parse_args()

    layers, experts, top_k = model_shape(a.moerun, a.model)
    total = layers * experts
    rows = []
    for f in [float(x) for x in a.fractions.split(",")]:
        slots = max(top_k, round(f * total))
        prefetches = a.prefetch.split(",") if f < 1.0 else ["none"]
        combos = [(pf, "off") for pf in prefetches]
        if f < 1.0:
            combos += [(prefetches[-1], fb) for fb in a.fallback.split(",") if fb and fb != "off"]
        for pf, fb in combos:
            t0 = time.time()
            r = run(a, slots, pf, fb)
            r["fraction"], r["seconds"], r["prefetch"], r["fallback"] = f, time.time() - t0, pf, fb
            rows.append(r)
            print(f"{f:.0%} {pf} fallback {fb}: {slots} slots, {r['tg_tps']:.2f} t/s, "
                  f"{r['slot_bytes_per_token'] / 2**20:.2f} MiB/token", file=sys.stderr)

    llama = {}
    if a.llama_bench:
        for f in sorted({float(x) for x in a.fractions.split(",")}, reverse=True):
            llama[f] = llama_bench(a, round((1.0 - f) * layers))
            print(f"llama.cpp {f:.0%} (--n-cpu-moe {llama[f]['n_cpu_moe']}): {llama[f]['tps']:.2f} t/s", file=sys.stderr)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    full = next((r for r in rows if r["fraction"] >= 1.0), None)
    lines = [
        f"# Device expert slots: decode at a fraction of the experts resident ({Path(a.model).name})",
        "",
        f"- backend `{a.backend}`, device: {rows[0]['device'] or 'n/a'}; commit {commit}; "
        f"{time.strftime('%Y-%m-%d')}",
        f"- model: {rows[0]['desc']}, {total} experts; routing forced from `{Path(a.trace).name}`; "
        f"prompt {a.n_prompt}, decode {a.n_gen} tokens x {a.reps} repetitions after a warm-up",
        f"- command: `{' '.join(sys.argv)}`"
        + (f"; every run with `{a.moerun_args}`" if a.moerun_args else ""),
        f"- slot policy `{a.policy}`; hit rate counts prefetched experts found by their layer as hits; MiB/token "
        "is every copy into the slots (demand and prefetch) over the measured decode phases; 'copy-bound' is the "
        "decode rate if copying were the only cost (bytes/token over the link's bandwidth); 'demand-serial bound' "
        "adds the all-resident time per token to the demand copies alone (prefetch copies hidden behind compute, "
        "demand copies not).",
        "- cpu fallback: a miss computed on the CPU cores from host memory (the rows summed on the device) "
        "instead of copied; 'CPU misses/token' counts them, and they count as misses in the hit rate. On the "
        "cpu-device backend the 'device' is the same CPU, so there it only saves the copy; 'demand-serial "
        "bound' leaves out the CPU misses' time.",
        "",
        "- copy GB/s: the copy rate achieved in decode, MiB copied per token x decode t/s (the link's use, "
        "averaged over the decode time).",
        "",
        "| experts resident | prefetch | cpu fallback | slots | device MiB | decode t/s | slot hit rate | "
        "demand misses/token | CPU misses/token | prefetches/token (used) | MiB copied/token | copy GB/s | "
        + " | ".join(f"copy-bound t/s {k}" for k in PCIE) + " | demand-serial bound t/s PCIe 4 |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(PCIE) + "---:|",
    ]
    if a.host_mem:
        r0 = rows[0]
        tier = (f"the expert cache, {r0['n_slots']} host slots ({r0['n_slots'] / total:.0%} of the experts) read "
                f"with io_uring" if r0["cached"] else "the mapped file (every expert fits)")
        lines.insert(-3, f"- host tier at `--host-mem {a.host_mem}`: {tier}; dense bytes the host keeps "
                     f"{r0.get('host_dense_bytes', 0) / 2**20:.0f} MiB of {r0['dense_bytes'] / 2**20:.0f} MiB; "
                     "'host hit rate' is the cache's over the slot misses it served, 'disk MiB/token' what it read, "
                     "'written back/token' the experts copied back into it on eviction (--exclusive-tiers)")
        lines[-2] = lines[-2].replace("| copy GB/s |", "| copy GB/s | host hit rate | disk MiB/token | written back/token |")
        lines[-1] += "---:|---:|---:|"
    fb_bw = next((r for r in rows if r.get("fallback_h2d", 0) > 0), None)
    if fb_bw:
        lines.insert(-3, f"- bandwidths measured by `--cpu-fallback auto` at start: copy {fb_bw['fallback_h2d'] / 1e9:.2f} GB/s, "
                     f"CPU expert {fb_bw['fallback_cpu'] / 1e9:.2f} GB/s, device expert "
                     f"{fb_bw['fallback_device'] / 1e9:.2f} GB/s (bytes of weights per second, one token)")
    n_dec = a.n_gen * a.reps
    for r in rows:
        cpu_misses = r.get("slot_cpu_misses", 0)
        looked = r["slot_hits"] + r["slot_misses"] + cpu_misses
        hit = r["slot_hits"] / looked if looked else 1.0
        bpt = r["slot_bytes_per_token"]
        copies = r["slot_misses"] + r["slot_prefetches"]
        demand_bpt = bpt * r["slot_misses"] / copies if copies else 0.0  # experts of one size
        bounds = [f"{bw / bpt:.1f}" if bpt > 0 else "-" for bw in PCIE.values()]
        serial = "-"
        if full and full["tg_tps"] > 0:
            serial = f"{1.0 / (1.0 / full['tg_tps'] + demand_bpt / PCIE['PCIe 4 x16']):.1f}"
        lines.append(f"| {r['fraction']:.0%} | {r['prefetch']} | {r['fallback']} | {r['device_slots']} | "
                     f"{r['device_bytes'] / 2**20:.0f} | "
                     f"{r['tg_tps']:.2f} ± {r['tg_std']:.2f} | {hit:.1%} | {r['slot_misses'] / n_dec:.1f} | "
                     f"{cpu_misses / n_dec:.1f} | "
                     f"{r['slot_prefetches'] / n_dec:.1f} ({r['slot_prefetch_used'] / n_dec:.1f}) | {bpt / 2**20:.2f} | "
                     f"{bpt * r['tg_tps'] / 1e9:.2f} | "
                     + (f"{r['hit_rate']:.1%} | {r['bytes_per_token'] / 2**20:.2f} | "
                        f"{r.get('slot_write_backs', 0) / n_dec:.1f} | " if a.host_mem else "")
                     + " | ".join(bounds) + f" | {serial} |")
    if fb_bw:
        best = max(rows, key=lambda r: r["slot_bytes_per_token"] * r["tg_tps"])
        got = best["slot_bytes_per_token"] * best["tg_tps"]
        lines += ["", f"Highest copy rate achieved: {got / 1e9:.2f} GB/s ({best['fraction']:.0%}, {best['prefetch']}, "
                  f"fallback {best['fallback']}), {got / fb_bw['fallback_h2d']:.0%} of the {fb_bw['fallback_h2d'] / 1e9:.2f} "
                  f"GB/s measured at start, {got / PCIE['PCIe 4 x16']:.0%} of PCIe 4 x16, {got / PCIE['PCIe 5 x16']:.0%} of PCIe 5 x16."]
    if llama:
        lines += ["", "## llama.cpp with the experts of the first layers on the CPU (same model file, same machine, same run)",
                  "", f"- command (per fraction): `{next(iter(llama.values()))['cmd']}` with `--n-cpu-moe` as below; "
                  "llama.cpp keeps every other weight and the KV cache on the GPU.",
                  "", "| experts on the GPU | llama.cpp --n-cpu-moe | llama.cpp t/s | moerun best t/s | moerun / llama.cpp |",
                  "|---:|---:|---:|---:|---:|"]
        for f, lb in llama.items():
            mine = max((r["tg_tps"] for r in rows if r["fraction"] == f), default=0.0)
            ratio = f"{mine / lb['tps']:.2f}x" if lb["tps"] > 0 else "-"
            lines.append(f"| {1 - lb['n_cpu_moe'] / layers:.0%} | {lb['n_cpu_moe']} | {lb['tps']:.2f} ± {lb['std']:.2f} | "
                         f"{mine:.2f} | {ratio} |")
        if 0.25 in llama and full and full["tg_tps"] > 0:
            mine = max(r["tg_tps"] for r in rows if r["fraction"] == 0.25)
            lines += ["", f"Goal at 25% resident: moerun {mine:.2f} t/s is {mine / llama[0.25]['tps']:.2f}x llama.cpp "
                      f"(goal 2x) and {mine / full['tg_tps']:.0%} of the all-resident {full['tg_tps']:.2f} t/s (goal 50%)."]
    text = "\n".join(lines) + "\n"
    if a.out:
        Path(a.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
