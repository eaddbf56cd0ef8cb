#!/usr/bin/env python3
"""shape_sweep.py -- random model shapes against llama.cpp: each case writes a random-weight model
with gen_model.py and runs tests/oracle/check_logits.py on it (llama.cpp's logits and greedy tokens
against moerun's logits-compare), with the strict criteria of the oracle suite.

  tools/python/shape_sweep.py --compare build/tests/logits-compare --seed 1 --count 40

What it draws per case: the architecture (qwen3moe, qwen2moe, olmoe, mixtral); the file type (F32
with 1-3 layers, or Q8_0 / Q4_K / Q6_K / Q4_K_M with one layer, where llama.cpp's quantizer makes
the blocks); 2-64 experts and top-k 1-8; 2-12 heads with any divisor as KV heads (MQA to MHA;
OLMoE: KV heads = heads, as llama.cpp's k-norm requires); head size (qwen3moe: 32-128, free of
embd; others embd / heads); expert and shared-expert widths; tied outputs where the architecture
allows them; RoPE linear / YaRN scaling; qwen2moe without qkv bias; an F32 or F16 KV cache on both
sides; and, with --backend-share (default 0.5), the forward pass on the backend interface (CPU
backend, device slots min or few: experts copied into slots every layer).

Criteria (the oracle suite's): F32 with an F32 KV cache 1e-4 of the largest logit, F16 KV 1e-3;
quantized one-layer 2e-2; position 0 within 1e-4; top-1 and the 32-token greedy continuation
identical. The same seed draws the same cases. Exit status 1 when a case fails. This is a tool,
not a CTest test: 40 cases take about 8 minutes on one core.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def draw(rng: random.Random, backend_share: float):
    typ = rng.choice(["F32", "F32", "Q8_0", "Q4_K", "Q6_K", "Q4_K_M"])
    layers = rng.randint(1, 3) if typ == "F32" else 1
    arch = rng.choice(["qwen3moe", "qwen2moe", "olmoe", "mixtral"])
    heads = rng.choice([2, 4, 6, 8, 12])
    kv = heads if arch == "olmoe" else rng.choice([d for d in range(1, heads + 1) if heads % d == 0])
    if arch == "qwen3moe":
        head_dim, embd = rng.choice([32, 64, 128]), rng.choice([64, 96, 128, 192, 256])
    else:
        head_dim = rng.choice([16, 32, 64])
        embd = heads * head_dim
    experts = rng.choice([2, 4, 8, 16, 60, 64])
    gen = ["--arch", arch, "--type", typ, "--layers", str(layers), "--experts", str(experts),
           "--top-k", str(rng.randint(1, min(8, experts))), "--embd", str(embd),
           "--ff", str(rng.choice([32, 64, 96, 128, 160])), "--heads", str(heads), "--kv-heads", str(kv),
           "--seed", str(rng.randint(1, 10**6))]
    if arch == "qwen3moe":
        gen += ["--head-dim", str(head_dim)]
    if arch == "qwen2moe":
        gen += ["--ff-shexp", str(rng.choice([32, 64, 128, 256]))]
        if rng.random() < 0.3:
            gen += ["--no-qkv-bias"]
    if arch in ("qwen3moe", "mixtral") and rng.random() < 0.5:
        gen += ["--tied"]
    if rng.random() < 0.3:
        gen += ["--rope-scaling", rng.choice(["linear", "yarn"]), "--rope-factor", str(rng.choice([2.0, 4.0])),
                "--rope-orig-ctx", "256"]
    kv_type = rng.choice(["f32", "f16"])
    tol = ("1e-3" if kv_type == "f16" else "1e-4") if typ == "F32" else "2e-2"
    criteria = ["--tol", tol, "--first-tol", "1e-4", "--min-top1", "1.0", "--greedy", "require"]
    if rng.random() < backend_share:
        criteria += ["--backend", "cpu", "--device-slots", rng.choice(["min", "few"])]
    return gen, kv_type, criteria


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--compare", required=True, type=Path, help="the logits-compare executable")
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "shape-sweep", help="models and oracle files")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--backend-share", type=float, default=0.5, help="fraction of cases on the backend interface")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.seed)
    failed = 0
    for i in range(a.count):
        gen, kv_type, criteria = draw(rng, a.backend_share)
        model = a.work / f"case-{a.seed}-{i}.gguf"
        cmd = [sys.executable, str(ROOT / "tests" / "oracle" / "check_logits.py"), "--model", str(model),
               "--compare", str(a.compare), "--work", str(a.work), "--generate", " ".join(gen),
               "--kv-type", kv_type, "--", *criteria, "--threads", "1"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        where = "backend" if "--backend" in criteria else "native"
        print(f"{'PASS' if p.returncode == 0 else 'FAIL'} {i}: kv {kv_type}, {where}: {' '.join(gen)}", flush=True)
        if p.returncode != 0:
            failed += 1
            print((p.stdout + p.stderr)[-2000:], flush=True)
        model.unlink(missing_ok=True)
    print(f"shape_sweep: {a.count - failed} of {a.count} cases pass (seed {a.seed})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
