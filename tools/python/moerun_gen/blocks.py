"""Tensor data for generated models: float conversions and random quantized blocks.

Two ways to get bytes for a tensor of a given GGML type:
  * encode(values, type)       float32 values -> bytes of that type (F32, F16, BF16, Q8_0, Q4_0).
                                Q8_0/Q4_0 use gguf-py's reference quantizer.
  * random_blocks(n, type, std) random *already quantized* blocks whose dequantized values are
                                zero-mean with roughly the requested std. No float tensor is ever
                                materialised, so a multi-GiB model streams to disk quickly.
                                Supported: F32, F16, BF16, Q8_0, Q4_0, Q2_K, Q3_K, Q4_K, Q5_K,
                                Q6_K, IQ4_NL, IQ4_XS.

Block layouts (little-endian, one block = QK elements; facts from ggml's block format):
  Q8_0  (32, 34 B):  f16 d | i8 qs[32]                       y = d*q
  Q4_0  (32, 18 B):  f16 d | u8 qs[16] (nibbles)             y = d*(q-8)
  Q4_K (256,144 B):  f16 d | f16 dmin | u8 scales[12] | u8 qs[128]
                     y = d*sc[j]*q - dmin*m[j]   (8 sub-blocks of 32, 6-bit sc/m packed in scales)
  Q5_K (256,176 B):  f16 d | f16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]     (q has 5 bits)
  Q6_K (256,210 B):  u8 ql[128] | u8 qh[64] | i8 scales[16] | f16 d   y = d*scales[j]*(q-32)
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf.constants import GGML_QUANT_SIZES
import gguf.quants

# Types this generator knows by name (CLI spelling -> GGML type).
TYPE_BY_NAME = {
    "F32": QT.F32, "F16": QT.F16, "BF16": QT.BF16,
    "Q8_0": QT.Q8_0, "Q4_0": QT.Q4_0,
    "Q4_K": QT.Q4_K, "Q5_K": QT.Q5_K, "Q6_K": QT.Q6_K,
    "Q2_K": QT.Q2_K, "Q3_K": QT.Q3_K, "IQ4_NL": QT.IQ4_NL, "IQ4_XS": QT.IQ4_XS,
}

# Types whose blocks we can produce from float values in Python (others go through llama.cpp).
PY_ENCODABLE = {QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0}
RANDOM_BLOCK_TYPES = {QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K,
                      QT.Q6_K, QT.IQ4_NL, QT.IQ4_XS}


def block_size(qtype: QT) -> int:
    return GGML_QUANT_SIZES[qtype][0]


def nbytes(n_elements: int, qtype: QT) -> int:
    blk, size = GGML_QUANT_SIZES[qtype]
    assert n_elements % blk == 0, (n_elements, qtype)
    return n_elements // blk * size


def row_compatible(row_len: int, qtype: QT) -> bool:
    return row_len % block_size(qtype) == 0


def _bf16_bytes(x: np.ndarray) -> np.ndarray:
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16  # round to nearest even (no NaNs in our data)
    return u.astype(np.uint16).view(np.uint8)


def encode(values: np.ndarray, qtype: QT) -> np.ndarray:
    """float32 array (last axis = row) -> flat uint8 bytes of the tensor in `qtype`."""
    v = np.ascontiguousarray(values, dtype=np.float32)
    if qtype == QT.F32:
        return v.reshape(-1).view(np.uint8)
    if qtype == QT.F16:
        return v.astype(np.float16).reshape(-1).view(np.uint8)
    if qtype == QT.BF16:
        return _bf16_bytes(v.reshape(-1))
    if qtype in (QT.Q8_0, QT.Q4_0):
        return gguf.quants.quantize(v, qtype).reshape(-1)
    raise ValueError(f"encode: type {qtype.name} must be produced by llama.cpp's quantizer")


def _f16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float16).view(np.uint8).reshape(-1, 2)


def _pack_k_scales(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sc, m: [nb, 8] ints in 0..63 -> [nb, 12] packed bytes (Q4_K / Q5_K scale layout)."""
    sc = sc.astype(np.uint8)
    m = m.astype(np.uint8)
    out = np.empty((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    out[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    return out


# std of a discrete uniform variable on 0..n-1
def _ustd(n: int) -> float:
    return float(np.sqrt((n * n - 1) / 12.0))


def random_blocks(n_elements: int, qtype: QT, std: float, rng: np.random.Generator,
                  mean: float = 0.0) -> np.ndarray:
    """Random tensor data of `n_elements` values in `qtype` as flat uint8 bytes.

    Values are zero-mean (plus `mean`, float types only) with std close to `std`;
    scales vary per block (+-25%) so that no two blocks are alike.
    """
    if qtype in (QT.F32, QT.F16, QT.BF16):
        v = rng.standard_normal(n_elements, dtype=np.float32) * np.float32(std) + np.float32(mean)
        return encode(v, qtype)
    if mean != 0.0:
        raise ValueError("random quantized blocks are zero-mean")
    blk, size = GGML_QUANT_SIZES[qtype]
    assert n_elements % blk == 0
    nb = n_elements // blk
    buf = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)  # uniform quants everywhere
    jitter = rng.uniform(0.75, 1.25, size=nb).astype(np.float32)
    if qtype == QT.Q8_0:
        # uniform int8 in [-128, 127]: std ~73.9, mean -0.5 (d's random sign makes it zero-mean)
        jitter *= rng.choice(np.array([-1, 1], dtype=np.float32), size=nb)
        buf[:, 0:2] = _f16(jitter * (std / _ustd(256)))
    elif qtype == QT.Q4_0:
        # nibbles uniform on 1..15 so that q-8 is symmetric (zero-mean)
        lo = rng.integers(1, 16, size=(nb, 16), dtype=np.uint8)
        hi = rng.integers(1, 16, size=(nb, 16), dtype=np.uint8)
        buf[:, 2:18] = lo | (hi << 4)
        buf[:, 0:2] = _f16(jitter * (std / _ustd(15)))
    elif qtype in (QT.Q4_K, QT.Q5_K):
        nq = 16 if qtype == QT.Q4_K else 32
        sc = rng.integers(32, 64, size=(nb, 8))                     # 6-bit sub-block scales
        d = jitter * (std / (_ustd(nq) * 47.5))                     # 47.5 = mean of sc
        # subtract the mean of q: dmin*m = d*sc*(nq-1)/2 with dmin = d*(nq/2) -> m ~ sc*(nq-1)/nq
        dmin = d * (nq / 2)
        m = np.clip(np.rint(sc * ((nq - 1) / nq)), 0, 63)
        buf[:, 0:2] = _f16(d)
        buf[:, 2:4] = _f16(dmin)
        buf[:, 4:16] = _pack_k_scales(sc, m)
    elif qtype == QT.Q6_K:
        # q - 32 with q uniform on 0..63 has mean -0.5: d's random sign makes the values zero-mean
        scales = rng.integers(32, 64, size=(nb, 16)).astype(np.int8)
        jitter *= rng.choice(np.array([-1, 1], dtype=np.float32), size=nb)
        d = jitter * (std / (_ustd(64) * 47.5))
        buf[:, 192:208] = scales.view(np.uint8)
        buf[:, 208:210] = _f16(d)
    elif qtype == QT.Q2_K:
        # scales[16]: low nibble sc in 1..15, high nibble m = sc; dmin = 1.5 d, so x = d*sc*(q - 1.5)
        # with q uniform on 0..3 (zero-mean; E[sc^2] = 82.67, var(q - 1.5) = 1.25)
        sc = rng.integers(1, 16, size=(nb, 16), dtype=np.uint8)
        d = jitter * (std / np.sqrt(82.67 * 1.25))
        buf[:, 0:16] = sc | (sc << 4)
        buf[:, 80:82] = _f16(d)
        buf[:, 82:84] = _f16(d * 1.5)
    elif qtype == QT.Q3_K:
        # uniform hmask / qs / 6-bit scales: x = d * (sc - 32) * q, q on -4..3 (E[q^2] = 5.5),
        # sc - 32 on -32..31 (E[(sc - 32)^2] = 341.5); d's random sign makes the values zero-mean
        jitter *= rng.choice(np.array([-1, 1], dtype=np.float32), size=nb)
        buf[:, 108:110] = _f16(jitter * (std / np.sqrt(341.5 * 5.5)))
    elif qtype in (QT.IQ4_NL, QT.IQ4_XS):
        # uniform indices into the non-linear table kIQ4Values (std ~68.6, mean -0.6: d's random
        # sign makes the values zero-mean)
        jitter *= rng.choice(np.array([-1, 1], dtype=np.float32), size=nb)
        if qtype == QT.IQ4_NL:
            buf[:, 0:2] = _f16(jitter * (std / 68.6))
        else:
            ls = rng.integers(40, 64, size=(nb, 8))                 # 6-bit scales, ls - 32 in 8..31
            d = jitter * (std / (68.6 * 19.5))                      # 19.5 = mean of ls - 32
            buf[:, 0:2] = _f16(d)
            hi = (ls >> 4).astype(np.uint16)
            buf[:, 2:4] = (hi << (2 * np.arange(8, dtype=np.uint16))).sum(axis=1, dtype=np.uint16)[:, None].view(np.uint8)
            lo = (ls & 15).astype(np.uint8)
            buf[:, 4:8] = lo[:, 0::2] | (lo[:, 1::2] << 4)
    else:
        raise ValueError(f"random_blocks: unsupported type {qtype.name}")
    return buf.reshape(-1)


def dequantize(data: np.ndarray, qtype: QT, n_elements: int) -> np.ndarray:
    """Flat bytes -> float32 values (gguf-py's reference dequantizer); for self-checks."""
    if qtype == QT.F32:
        return data.view(np.float32)[:n_elements]
    if qtype == QT.F16:
        return data.view(np.float16).astype(np.float32)[:n_elements]
    if qtype == QT.BF16:
        return (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32)[:n_elements]
    blk, size = GGML_QUANT_SIZES[qtype]
    rows = data.reshape(-1, size)
    return gguf.quants.dequantize(rows, qtype).reshape(-1)[:n_elements]
