"""Streaming GGUF writer: header, KV and tensor infos first, then tensor data one chunk at a time.

gguf-py's GGUFWriter lays out the header/KV/tensor-info sections (add_tensor_info + write_*_to_file);
the data section is written here chunk by chunk (e.g. one expert at a time) so that a model of
any size streams through a few hundred MB of memory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import gguf

from .arch import TensorSpec
from .blocks import nbytes


def write_gguf(path: str | Path, arch: str, kv: list[tuple], tensors: list[TensorSpec],
               produce: Callable[[TensorSpec], Iterable[np.ndarray]],
               progress: Callable[[TensorSpec, int], None] | None = None) -> int:
    """Write a GGUF file. `produce(spec)` yields uint8 chunks whose total is the tensor's size.

    Writes to `path`.tmp and renames at the end, so an interrupted run never leaves a
    truncated model behind. Returns the file size.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    w = gguf.GGUFWriter(str(tmp), arch)
    for key, value, vtype, sub in kv:
        w.add_key_value(key, value, vtype, sub)
    for t in tensors:
        w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), nbytes(t.n_elements, t.qtype), raw_dtype=t.qtype)
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        fout = w.fout[0]
        align = w.data_alignment
        for t in tensors:
            pad = -fout.tell() % align
            if pad:
                fout.write(b"\0" * pad)
            want = nbytes(t.n_elements, t.qtype)
            got = 0
            for chunk in produce(t):
                chunk = np.ascontiguousarray(chunk).view(np.uint8)
                chunk.tofile(fout)
                got += chunk.size
            if got != want:
                raise RuntimeError(f"{t.name}: produced {got} bytes, expected {want}")
            if progress:
                progress(t, want)
        pad = -fout.tell() % align
        if pad:
            fout.write(b"\0" * pad)
        w.close()
        os.replace(tmp, path)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size
