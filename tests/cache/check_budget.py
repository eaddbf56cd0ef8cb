"""A memory budget is a promise: peak RSS stays within budget + the stated fixed overhead.

Generates a model whose experts are several times the budget, runs `moerun bench --json` (a
prompt batch and decode) at budgets well below the model size, and checks that the cache was
used (experts read through slots, misses happened) and that VmHWM <= budget + fixed overhead.
"""
import argparse
import json
import os
import subprocess
import sys


def generate(args: argparse.Namespace, path: str, shape: list[str]) -> None:
    """Writes a random-block model of `shape` (gen_model.py flags) at path, unless it is there."""
    if not os.path.exists(path):
        subprocess.run([sys.executable, args.gen_model, *shape, "--random-blocks", "--out", path + ".tmp"],
                       check=True, stdout=subprocess.DEVNULL)
        os.replace(path + ".tmp", path)


def bench(args: argparse.Namespace, model: str, n_prompt: int, flags: list[str]) -> dict:
    """`moerun bench --json` of one prompt and 16 decoded tokens, once, on 2 threads."""
    out = subprocess.run([args.moerun, "bench", "-m", model, "-p", str(n_prompt), "-n", "16", "-r", "1", "-t", "2",
                          *flags, "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moerun", required=True)
    ap.add_argument("--gen-model", required=True)
    ap.add_argument("--work-dir", required=True)
    args = ap.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    model = os.path.join(args.work_dir, "olmoe-4x64-q4k.gguf")
    generate(args, model, ["--arch", "olmoe", "--layers", "4", "--experts", "64", "--top-k", "8", "--embd", "512",
                           "--ff", "1024", "--type", "Q4_K"])
    size = os.path.getsize(model)
    print(f"model {model}: {size / 2**20:.1f} MiB")
    failures = 0
    print("| budget | prompt | slots | peak RSS | budget + overhead | hit rate | verdict |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for budget_mib, n_prompt in [(80, 256), (96, 32), (120, 512)]:
        d = bench(args, model, n_prompt, ["--host-mem", f"{budget_mib}MiB"])
        limit = d["budget"] + d["fixed_overhead"]
        ok = d["cached"] and d["peak_rss"] <= limit and d["hit_rate"] < 1.0 and d["budget"] < size / 2
        failures += not ok
        print(f"| {budget_mib} MiB | {n_prompt} | {d['n_slots']} | {d['peak_rss'] / 2**20:.1f} MiB | "
              f"{limit / 2**20:.1f} MiB | {100 * d['hit_rate']:.1f}% | {'ok' if ok else 'FAIL'} |")
    # The device pass on the CPU backend: the host budget holds the dense bytes and the expert
    # cache (the KV cache and workspaces are in the device budget); the device's memory is RAM
    # too, so peak RSS stays within both budgets + the overhead.
    print("| host budget | device budget | host slots | device slots | peak RSS | budgets + overhead | verdict |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for host_mib, dev_mib in [(48, 96), (64, 100)]:
        d = bench(args, model, 64, ["--backend", "cpu-device", "--host-mem", f"{host_mib}MiB", "--device-mem",
                                    f"{dev_mib}MiB"])
        limit = d["budget"] + (dev_mib << 20) + d["fixed_overhead"]
        ok = (d["cached"] and d["budget"] == host_mib << 20 and d["device_bytes"] <= dev_mib << 20
              and d["peak_rss"] <= limit and d["slot_misses"] > 0)
        failures += not ok
        print(f"| {host_mib} MiB | {dev_mib} MiB | {d['n_slots']} | {d['device_slots']} | "
              f"{d['peak_rss'] / 2**20:.1f} MiB | {limit / 2**20:.1f} MiB | {'ok' if ok else 'FAIL'} |")
    # With a device backend the host keeps only the embeddings, norms and header of the dense
    # weights: the mapped pages of the matrices are dropped once uploaded. A model whose attention
    # is most of its dense bytes (F32) runs at a host budget below its dense size, the dropped
    # bytes cover what the plan left out, and peak RSS stays within both budgets (it would not if
    # the pages stayed: they are more than the overhead's slack).
    heavy = os.path.join(args.work_dir, "olmoe-10x16-attn-f32.gguf")
    generate(args, heavy, ["--arch", "olmoe", "--layers", "10", "--experts", "16", "--top-k", "4", "--embd", "1024",
                           "--ff", "512", "--type", "Q4_K", "--attn-type", "F32"])
    print("| model | host budget | device budget | dense (host part) | dropped | peak RSS | budgets + overhead "
          "| verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    host_mib, dev_mib = 64, 260
    d = bench(args, heavy, 64, ["--backend", "cpu-device", "--host-mem", f"{host_mib}MiB", "--device-mem",
                                f"{dev_mib}MiB"])
    limit = d["budget"] + (dev_mib << 20) + d["fixed_overhead"]
    ok = (d["cached"] and d["dense_bytes"] > host_mib << 20 and d["host_dense_bytes"] < host_mib << 20
          and d["host_dropped_bytes"] >= d["dense_bytes"] - d["host_dense_bytes"]
          and d["device_bytes"] <= dev_mib << 20 and d["peak_rss"] <= limit and d["slot_misses"] > 0)
    failures += not ok
    print(f"| {os.path.basename(heavy)} | {host_mib} MiB | {dev_mib} MiB | {d['dense_bytes'] / 2**20:.1f} MiB "
          f"({d['host_dense_bytes'] / 2**20:.1f} MiB) | {d['host_dropped_bytes'] / 2**20:.1f} MiB | "
          f"{d['peak_rss'] / 2**20:.1f} MiB | {limit / 2**20:.1f} MiB | {'ok' if ok else 'FAIL'} |")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
