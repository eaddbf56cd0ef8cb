#!/usr/bin/env python3
"""check_models_load.py -- every generated test model loads and runs sensibly in llama.cpp.

For each model of <models-dir>/manifest.json (written by tools/python/gen_model.py --matrix):
  file     tensor types are the requested ones (norms/routers F32), experts are stacked 3-D
           [n_expert, n_ff, n_embd] / [n_expert, n_embd, n_ff] (numpy order)
  load     llama.cpp loads it (CPU, mmap); n_vocab and the MoE hyper-parameters match the manifest
  logits   a short prompt gives finite logits at every position, with a sane spread, changing
           from position to position (not all equal, more than one argmax)
  probe    (llama.cpp eval callback) hidden states stay O(1) through the layers (no explosion or
           vanishing), routing is not degenerate: several distinct top-k sets per layer, more experts
           used than top-k, router softmax not one-hot
  greedy   16 greedy tokens are produced, in range, and the prompt logits are reproducible
Exits non-zero if any check of any model fails (or if there are no models).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "tools" / "python"))
sys.dont_write_bytecode = True
from llama_oracle import Oracle  # noqa: E402
from moerun_gen.ggufinfo import read_info  # noqa: E402

PROMPT = "The quick brown fox jumps over the lazy dog. 1234 + 5678 = 6912; naïve café 你好 🙂\n    def f(x):"

EXPECTED_TYPES = {  # matrix type -> allowed GGML types for quantizable (2-D+, non-router) tensors
    "F32": {"F32"}, "F16": {"F16"}, "BF16": {"BF16"}, "Q8_0": {"Q8_0"}, "Q4_0": {"Q4_0"},
    "Q4_K": {"Q4_K"}, "Q5_K": {"Q5_K"}, "Q6_K": {"Q6_K"},
    "Q4_K_M": {"Q4_K", "Q5_K", "Q6_K", "Q8_0"},  # llama.cpp's mix (Q8_0/Q5_K for attn_v/k of 8-expert models)
}


class Failures:
    def __init__(self):
        self.items: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.items.append(what)
        return ok


def check_file(path: Path, m: dict, F: Failures) -> None:
    info = read_info(path)
    types = {t.name: t.qtype.name for t in info.tensors}
    shapes = {t.name: t.shape for t in info.tensors}  # numpy order
    allowed = EXPECTED_TYPES.get(m["type"])
    for name, ty in types.items():
        two_d = len(shapes[name]) >= 2
        if not two_d or "ffn_gate_inp" in name or name.endswith(".bias"):
            F.check(ty == "F32", f"{name}: {ty}, expected F32")
        elif allowed is not None:
            F.check(ty in allowed, f"{name}: {ty}, expected one of {sorted(allowed)}")
    if m["type"] == "Q4_K_M":
        F.check({"Q4_K", "Q6_K"} <= set(types.values()), f"Q4_K_M mix lacks Q4_K or Q6_K: {sorted(set(types.values()))}")
    E, D, Fe = m["n_expert"], m["n_embd"], m["n_ff_exp"]
    for i in range(m["n_layer"]):
        for w, shp in (("gate", (E, Fe, D)), ("up", (E, Fe, D)), ("down", (E, D, Fe))):
            n = f"blk.{i}.ffn_{w}_exps.weight"
            F.check(shapes.get(n) == shp, f"{n}: shape {shapes.get(n)}, expected {shp}")
        F.check(shapes.get(f"blk.{i}.ffn_gate_inp.weight") == (E, D), f"blk.{i}.ffn_gate_inp shape")
    F.check(("output.weight" in types) != m["tied"], f"output.weight presence vs tied={m['tied']}")


def check_model(path: Path, m: dict, threads: int, n_greedy: int, verbose: bool) -> tuple[list[str], dict]:
    F = Failures()
    info: dict = {}
    check_file(path, m, F)
    o = Oracle(path, n_ctx=128, n_threads=threads, seed=1)
    F.check(o.n_vocab == m["n_vocab"], f"n_vocab {o.n_vocab} != {m['n_vocab']}")
    md = o.llm.metadata
    a = m["arch"]
    for key, want in (("expert_count", m["n_expert"]), ("expert_used_count", m["n_expert_used"]),
                      ("block_count", m["n_layer"]), ("embedding_length", m["n_embd"])):
        got = md.get(f"{a}.{key}")
        F.check(got is not None and int(got) == want, f"metadata {a}.{key} = {got}, expected {want}")

    toks = o.tokenize(PROMPT, add_special=True, parse_special=False)
    info["n_prompt"] = len(toks)
    F.check(len(toks) >= 8, f"prompt tokenized to only {len(toks)} tokens")
    if m.get("add_bos"):
        F.check(toks[0] == m["bos"], f"add_bos vocab but first token {toks[0]} != bos {m['bos']}")

    logits = o.logits(toks)
    F.check(logits.shape == (len(toks), m["n_vocab"]), f"logits shape {logits.shape}")
    finite = bool(np.all(np.isfinite(logits)))
    F.check(finite, "non-finite logits")
    if finite:
        std = logits.std(axis=1)
        info["logit_std"] = (float(std.min()), float(std.max()))
        F.check(bool(np.all((std > 0.5) & (std < 20))), f"logit std per position out of [0.5, 20]: {std.min():.3g}..{std.max():.3g}")
        F.check(bool(np.all(logits.max(1) - logits.min(1) > 1.0)), "a position has (nearly) all-equal logits")
        step = np.abs(np.diff(logits, axis=0)).max(axis=1)
        F.check(bool(np.all(step > 1e-2)), f"logits do not change between positions (min max-diff {step.min():.3g})")
        n_argmax = len(set(np.argmax(logits, axis=1).tolist()))
        info["distinct_argmax"] = n_argmax
        F.check(n_argmax >= 2, "the same argmax at every position")

    g = o.probe(toks)
    rms_first = rms_last = None
    used_all = set()
    min_sets = None
    top1 = []
    for il in range(m["n_layer"]):
        h, topk, probs = g.get(f"l_out-{il}"), g.get(f"ffn_moe_topk-{il}"), g.get(f"ffn_moe_probs-{il}")
        if not F.check(h is not None and topk is not None and probs is not None, f"probe: layer {il} tensors missing"):
            continue
        F.check(h.shape == (len(toks), m["n_embd"]), f"probe: l_out-{il} shape {h.shape}")
        F.check(topk.shape == (len(toks), m["n_expert_used"]), f"probe: ffn_moe_topk-{il} shape {topk.shape}")
        rms = float(np.sqrt(np.mean(h.astype(np.float64) ** 2)))
        F.check(np.isfinite(rms) and 0.1 < rms < 100, f"layer {il}: hidden RMS {rms:.3g} out of (0.1, 100)")
        rms_first = rms if rms_first is None else rms_first
        rms_last = rms
        sets = {tuple(sorted(r)) for r in topk.tolist()}
        min_sets = len(sets) if min_sets is None else min(min_sets, len(sets))
        F.check(len(sets) >= 2, f"layer {il}: every token routed to the same experts {sorted(sets)[0]}")
        used = set(topk.reshape(-1).tolist())
        used_all |= {(il, e) for e in used}
        F.check(len(used) > m["n_expert_used"], f"layer {il}: only {len(used)} experts used")
        F.check(bool(np.allclose(probs.sum(1), 1, atol=1e-3)), f"layer {il}: router probs do not sum to 1")
        top1.append(float(probs.max(1).mean()))
    if rms_first and rms_last:
        info["hidden_rms"] = (round(rms_first, 2), round(rms_last, 2))
        F.check(0.2 < rms_last / rms_first < 10, f"hidden RMS grows {rms_first:.3g} -> {rms_last:.3g}")
    if top1:
        info["router_top1"] = round(float(np.mean(top1)), 3)
        F.check(max(top1) < 0.9, f"router softmax nearly one-hot (mean top-1 p up to {max(top1):.3f})")
    info["min_topk_sets"] = min_sets

    seq, glogits = o.greedy(toks, n_greedy)
    new = seq[len(toks):]
    F.check(len(new) == n_greedy, f"greedy produced {len(new)} tokens")
    F.check(all(0 <= t < m["n_vocab"] for t in new), "greedy token out of range")
    F.check(bool(np.all(np.isfinite(glogits))), "non-finite logits during greedy decoding")
    if finite:
        d = float(np.abs(glogits[: len(toks)] - logits).max())
        F.check(d < 1e-4, f"prompt logits not reproducible: max diff {d:.3g}")
    info["greedy"] = new
    if verbose:
        info["greedy_text"] = o.detokenize(new)
    del o
    return F.items, info


def entry_from_file(path: Path) -> dict:
    """Manifest-like entry from a GGUF's own metadata (for --model: presets, user files)."""
    info = read_info(path)
    kv = info.kv
    a = kv["general.architecture"]
    names = {t.name for t in info.tensors}
    up = next(t for t in info.tensors if t.name == "blk.0.ffn_up_exps.weight")
    return {"file": path.name, "arch": a, "type": "any", "n_vocab": kv["tokenizer.ggml.tokens"][2],
            "n_layer": kv[f"{a}.block_count"], "n_expert": kv[f"{a}.expert_count"],
            "n_expert_used": kv[f"{a}.expert_used_count"], "n_embd": kv[f"{a}.embedding_length"],
            "n_ff_exp": up.shape[1], "tied": "output.weight" not in names,
            "add_bos": kv.get("tokenizer.ggml.add_bos_token"), "bos": kv.get("tokenizer.ggml.bos_token_id")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--models-dir", type=Path, help="folder with manifest.json (gen_model.py --matrix)")
    src.add_argument("--model", type=Path, action="append", help="a GGUF file (repeatable), facts from its metadata")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--greedy", type=int, default=16)
    ap.add_argument("--filter", default="", help="only models whose file name contains this")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)

    if a.model:
        models = [dict(entry_from_file(p), path=str(p)) for p in a.model]
    else:
        mf = a.models_dir / "manifest.json"
        if not mf.exists():
            print(f"FAIL: {mf} not found (run tools/python/gen_model.py --matrix --out-dir {a.models_dir})")
            return 1
        models = [dict(m, path=str(a.models_dir / m["file"])) for m in json.loads(mf.read_text())["models"]]
    models = [m for m in models if a.filter in m["file"]]
    if not models:
        print("FAIL: no models to check")
        return 1
    n_fail = 0
    t0 = time.time()
    for m in models:
        path = Path(m["path"])
        t = time.time()
        try:
            fails, info = check_model(path, m, a.threads, a.greedy, a.verbose)
        except Exception as e:  # a load failure is a test failure, keep checking the others
            fails, info = [f"exception: {type(e).__name__}: {e}"], {}
        status = "ok  " if not fails else "FAIL"
        n_fail += bool(fails)
        print(f"{status} {m['file']:<24} {time.time() - t:5.1f}s  prompt {info.get('n_prompt')} tok,"
              f" logit std {tuple(round(x, 2) for x in info.get('logit_std', ()))},"
              f" hidden rms {info.get('hidden_rms')}, router top-1 p {info.get('router_top1')},"
              f" min distinct top-k sets {info.get('min_topk_sets')}, distinct argmax {info.get('distinct_argmax')}")
        if a.verbose and "greedy" in info:
            print(f"     greedy: {info['greedy']} {info.get('greedy_text')!r}")
        for f in fails:
            print(f"     - {f}")
    print(f"{len(models) - n_fail}/{len(models)} models ok ({time.time() - t0:.1f} s)")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
