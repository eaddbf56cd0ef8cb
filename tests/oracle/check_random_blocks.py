#!/usr/bin/env python3
"""The generator's random quantized blocks (tools/python/moerun_gen/blocks.py random_blocks, used by
presets and --random-blocks) decode, through gguf-py's reference dequantizer, to values with the
requested standard deviation and zero mean, for every type it draws. Exit status 1 on a failure."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "python"))
from moerun_gen import blocks  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402
import gguf.quants  # noqa: E402


def main() -> int:
    rng = np.random.default_rng(3)
    n = 256 * 2048
    failures = 0
    for qt in sorted(blocks.RANDOM_BLOCK_TYPES, key=lambda t: t.name):
        for std in (0.02, 1.5):
            data = blocks.random_blocks(n, qt, std, rng)
            v = gguf.quants.dequantize(data, qt).reshape(-1).astype(np.float64)
            ok = v.size == n and np.isfinite(v).all()
            ok = ok and abs(v.mean()) <= 0.02 * std and abs(v.std() / std - 1) <= 0.15
            print(f"{qt.name:7s} std {std:5.2f}: mean {v.mean():+.2e} std {v.std():.4f} "
                  f"{'ok' if ok else 'FAIL'}")
            failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
