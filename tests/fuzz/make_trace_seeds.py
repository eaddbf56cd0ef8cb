#!/usr/bin/env python3
"""Writes the trace fuzz seed corpus (tests/fuzz/corpus/trace/).

    python3 tests/fuzz/make_trace_seeds.py        # standard library only

The files are written byte by byte with struct from the layouts in cache/TRACE.md (MRNTRACE
version 1, MOETRC01, CSV), independently of moerun's writer, so they double as a check that the
reader reads what the documentation describes: test-trace reads every seed and checks its
contents. The output is deterministic.
"""
from __future__ import annotations

import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "tests" / "fuzz" / "corpus" / "trace"


def native(n_layers: int, n_experts: int, top_k: int, model: str, sequences: list[dict],
           weights: bool, sections: list[tuple[bytes, int, bytes]] = ()) -> bytes:
    """sequences: dicts with id, domain, prompt_length and tokens = [(token_id, prefill, experts)],
    experts [n_layers][top_k]; weight of (layer, rank) is 1 / (2 + rank) when weights."""
    name = model.encode()
    out = b"MRNTRACE" + struct.pack("<6I", 1, 1 if weights else 0, n_layers, n_experts, top_k, len(name))
    out += name + struct.pack(f"<{n_layers}Q", *[4096 * (l + 1) for l in range(n_layers)])
    out += struct.pack("<I", len(sequences))
    for s in sequences:
        out += struct.pack("<3IQ", s["id"], s["domain"], s["prompt_length"], len(s["tokens"]))
        for token_id, prefill, experts in s["tokens"]:
            out += struct.pack("<iB", token_id, prefill)
            out += b"".join(struct.pack(f"<{top_k}H", *layer) for layer in experts)
            if weights:
                out += b"".join(struct.pack(f"<{top_k}f", *[1 / (2 + r) for r in range(top_k)])
                                for _ in experts)
    out += struct.pack("<I", len(sections))
    for tag, flags, payload in sections:
        out += tag + struct.pack("<IQ", flags, len(payload)) + payload
    return out


def experts(n_layers: int, n_experts: int, top_k: int, t: int) -> list[list[int]]:
    return [[(t * 3 + l * 5 + r * 7) % n_experts for r in range(top_k)] for l in range(n_layers)]


def moetrc(n_layers: int, n_experts: int, top_k: int, seqs: list[tuple[int, int, int, int]]) -> bytes:
    """seqs: (id, domain, prompt_length, n_tokens); weights 0.5 (f16 0x3800)."""
    out = b"MOETRC01" + struct.pack("<4I", n_layers, n_experts, top_k, len(seqs))
    for sid, domain, prompt, n in seqs:
        out += struct.pack("<4I", sid, domain, prompt, n)
        out += struct.pack(f"<{n}i", *[100 + t for t in range(n)])
        for t in range(n):
            out += bytes(e for layer in experts(n_layers, n_experts, top_k, t) for e in layer)
        out += struct.pack("<H", 0x3800) * (n * n_layers * top_k)
    return out


def main() -> None:
    SEEDS.mkdir(parents=True, exist_ok=True)
    seqs = [
        {"id": 0, "domain": 1, "prompt_length": 2,
         "tokens": [(10 + t, 1 if t < 2 else 0, experts(2, 8, 2, t)) for t in range(4)]},
        {"id": 7, "domain": 0, "prompt_length": 0, "tokens": []},
        {"id": 8, "domain": 2, "prompt_length": 1, "tokens": [(-1, 1, experts(2, 8, 2, 9))]},
    ]
    files = {
        "native-weights.trace": native(2, 8, 2, "seed-moe", seqs, True),
        "native-no-weights.trace": native(3, 16, 4, "",
                                          [{"id": 1, "domain": 0, "prompt_length": 3,
                                            "tokens": [(t, 0, experts(3, 16, 4, t)) for t in range(3)]}],
                                          False),
        "native-section.trace": native(2, 8, 2, "s\u00e9ction", seqs[:1], True,
                                       [(b"PRED", 0, b"\x01\x02\x03")]),
        "moetrc-small.bin": moetrc(2, 8, 2, [(0, 0, 5, 3), (1, 1, 9, 2)]),
        "csv-small.csv": b"# seed\nseq,token,layer,e0,e1\n0,0,0,1,2\n0,0,1,3,4\n0,2,1,5,0\n0,2,0,6,7\n1,0,0,2,1\n1,0,1,0,7\n",
    }
    for name, data in files.items():
        (SEEDS / name).write_bytes(data)
        print(f"{SEEDS / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
