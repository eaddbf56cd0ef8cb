#!/usr/bin/env python3
"""Writes gguf-py's dequantization and quantization of test blocks, for test-quant-oracle.cpp.

usage: quant_blocks.py OUTDIR

gguf-py (gguf.quants) is an independent numpy implementation of the ggml block formats; moerun's
C++ reference (quant/) must agree with it bit for bit. For each type this writes:

  OUTDIR/dequant-<TYPE>.bin  blocks (random quant bytes; fp16 scale fields finite, of realistic
                             size, plus edge cases), then gguf.quants.dequantize() of them
  OUTDIR/quant-<TYPE>.bin    float inputs, then gguf.quants.quantize() of them
                             (only for the types gguf-py can quantize)

File format, little-endian:
  offset  0  char[4] magic "MRQO"
          4  u32     version (1)
          8  u32     ggml type id
         12  u32     kind: 0 = dequantize, 1 = quantize
         16  u64     n_blocks
         24  u32     block_size (elements per block)
         28  u32     type_size (bytes per block)
         32  kind 0: n_blocks * type_size bytes of blocks, then n_blocks * block_size float32
             kind 1: n_blocks * block_size float32 inputs, then n_blocks * type_size bytes of blocks

The data is drawn from a fixed seed, so the files are the same on every run.
"""
from __future__ import annotations

import struct
import sys
import warnings
from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf import quants

MAGIC = b"MRQO"
VERSION = 1
KIND_DEQUANT, KIND_QUANT = 0, 1

# Byte offsets of the fp16 scale fields of each block type (see quant/include/moerun/quant/blocks.h).
FP16_FIELDS: dict[T, list[int]] = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0], T.IQ4_XS: [0],
}
DEQUANT_TYPES = [T.F32, T.F16, T.BF16, *FP16_FIELDS]
QUANT_TYPES = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
N_RANDOM_BLOCKS = {32: 4096, 256: 1024}


def write(path: Path, qtype: T, kind: int, n_blocks: int, first: np.ndarray, second: np.ndarray) -> None:
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    header = MAGIC + struct.pack("<IIIQII", VERSION, int(qtype), kind, n_blocks, block_size, type_size)
    with open(path, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(first).tobytes())
        f.write(np.ascontiguousarray(second).tobytes())


def random_scales(rng: np.random.Generator, n: int) -> np.ndarray:
    """fp16 scales of realistic size: |d| = 2^u, u uniform in [-18, 2] (the low end subnormal), either sign."""
    mag = np.exp2(rng.uniform(-18.0, 2.0, n)).astype(np.float32)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    return (mag * sign).astype(np.float16)


def dequant_blocks(rng: np.random.Generator, qtype: T) -> np.ndarray:
    """Blocks as uint8 [n_blocks, type_size]: edge cases first, then random ones."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if qtype in (T.F16, T.BF16):  # every bit pattern, NaNs and infinities included
        return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.uint8).reshape(-1, 2)
    if qtype == T.F32:
        bits = rng.integers(0, 2**32, 8192, dtype=np.uint64).astype(np.uint32)
        special = np.array([0, 0x80000000, 1, 0x807fffff, 0x00800000, 0x3f800000, 0x7f7fffff,
                            0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff], dtype=np.uint32)
        return np.concatenate([special, bits]).view(np.uint8).reshape(-1, 4)

    fields = FP16_FIELDS[qtype]
    edge_scales = [  # (scale value for every fp16 field, payload byte or None for random)
        (0.0, 0x00), (0.0, None), (1.0, 0x00), (1.0, 0xFF), (-1.0, 0xFF), (-1.0, 0x00),
        (1.0, 0x88), (1.0, 0x77), (0.5, 0x55), (-2.0, 0xAA), (65504.0, 0xFF), (-65504.0, 0xFF),
        (2.0**-24, 0xFF), (-(2.0**-24), None), (2.0**-14, None), (1.0, None),
    ]
    n_edge = len(edge_scales)
    n = n_edge + N_RANDOM_BLOCKS[block_size]
    blocks = rng.integers(0, 256, (n, type_size), dtype=np.uint8)
    for i, (scale, fill) in enumerate(edge_scales):
        if fill is not None:
            blocks[i, :] = fill
        for off in fields:
            blocks[i, off:off + 2] = np.array([scale], dtype=np.float16).view(np.uint8)
    for off in fields:  # random blocks: independent random scales per field
        blocks[n_edge:, off:off + 2] = random_scales(rng, n - n_edge).view(np.uint8).reshape(-1, 2)
    # a few random blocks with the second scale field zero (dmin = 0 / m = 0)
    if len(fields) > 1:
        blocks[n_edge:n_edge + 32, fields[1]:fields[1] + 2] = 0
    return blocks


def quant_inputs(rng: np.random.Generator, qtype: T) -> np.ndarray:
    """Float inputs as float32 [n_blocks, block_size]."""
    block_size, _ = GGML_QUANT_SIZES[qtype]
    if qtype in (T.F32, T.F16, T.BF16):
        # random bit patterns over the whole float range, concentrated around the fp16 range
        exps = rng.integers(90, 160, 16384).astype(np.uint32)  # 2^-37 .. 2^32
        mant = rng.integers(0, 2**23, 16384, dtype=np.uint32)
        sign = rng.integers(0, 2, 16384, dtype=np.uint32) << 31
        vals = (sign | (exps << 23) | mant).view(np.float32)
        # exact midpoints between neighbouring fp16 values (ties), and their neighbours
        halves = rng.integers(0, 0x7bff, 4096, dtype=np.uint32).astype(np.uint16)
        lo = halves.view(np.float16).astype(np.float32)
        hi = (halves + 1).astype(np.uint16).view(np.float16).astype(np.float32)
        mid = (lo + hi) / 2  # exact in float32
        ties = np.concatenate([mid, np.nextafter(mid, np.float32(0)), np.nextafter(mid, np.float32(np.inf))])
        special = np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65519.996, 65520.0, -65520.0, 1e10, np.inf, -np.inf,
                            2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 3 * 2.0**-25, 2.0**-14, 1e-30],
                           dtype=np.float32)
        parts = [special, vals, ties.astype(np.float32)]
        if qtype != T.F16:  # NaN -> fp16 payload handling differs between numpy builds; bf16 is defined by gguf-py
            bf16_nan = np.array([0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0xff812345], dtype=np.uint32)
            parts.append(bf16_nan.view(np.float32))
        if qtype == T.BF16:  # ties for bf16 rounding: low 16 bits exactly 0x8000, either parity
            b = rng.integers(0, 2**32, 4096, dtype=np.uint64).astype(np.uint32)
            b = (b & np.uint32(0x7f7f0000)) | np.uint32(0x8000)
            parts.append(b.view(np.float32))
        return np.concatenate(parts).astype(np.float32).reshape(-1, 1)

    edge = [
        np.zeros(block_size),                                 # all zero: d = 0
        np.full(block_size, 3.25),                            # constant
        np.full(block_size, -3.25),
        np.where(np.arange(block_size) % 2 == 0, 1.0, -1.0),  # +-max ties: the first wins
        np.where(np.arange(block_size) % 2 == 0, -1.0, 1.0),
        np.arange(block_size) - 16.0,                         # integers
        (np.arange(block_size) - 16.0) + 0.5,                 # halfway values
        np.linspace(-127.0, 127.0, block_size),
        np.linspace(-8.0, 7.0, block_size),
        rng.standard_normal(block_size) * 1e-6,               # subnormal fp16 scales
        rng.standard_normal(block_size) * 1e-9,               # scale rounds to fp16 zero
        rng.standard_normal(block_size) * 1e7,                # scale overflows fp16 to inf
    ]
    n_random = N_RANDOM_BLOCKS[block_size]
    scale = np.exp2(rng.uniform(-12.0, 6.0, (n_random, 1)))
    gauss = rng.standard_normal((n_random, block_size)) * scale
    outliers = rng.random((n_random, block_size)) < 0.02
    gauss = np.where(outliers, gauss * 20.0, gauss)
    unif = rng.uniform(-1.0, 1.0, (n_random // 4, block_size)) * np.exp2(rng.uniform(-8.0, 8.0, (n_random // 4, 1)))
    skewed = rng.uniform(0.1, 2.0, (n_random // 8, block_size))  # all positive: Q4_1 mins > 0
    return np.concatenate([np.array(edge), gauss, unif, skewed]).astype(np.float32)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    warnings.simplefilter("ignore", RuntimeWarning)  # fp16 overflow of deliberately huge scales

    n_files = 0
    for qtype in DEQUANT_TYPES:
        blocks = dequant_blocks(rng, qtype)
        ref = quants.dequantize(blocks.reshape(-1), qtype).astype(np.float32, copy=False)
        write(out / f"dequant-{qtype.name}.bin", qtype, KIND_DEQUANT, blocks.shape[0], blocks, ref)
        print(f"dequant-{qtype.name}.bin: {blocks.shape[0]} blocks")
        n_files += 1
    for qtype in QUANT_TYPES:
        x = quant_inputs(rng, qtype)
        q = quants.quantize(x.reshape(-1), qtype)
        q = np.ascontiguousarray(q).view(np.uint8)
        write(out / f"quant-{qtype.name}.bin", qtype, KIND_QUANT, x.shape[0], x, q)
        print(f"quant-{qtype.name}.bin: {x.shape[0]} blocks")
        n_files += 1
    print(f"wrote {n_files} files to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
