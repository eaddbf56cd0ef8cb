"""llama.cpp's own quantizer (through llama-cpp-python) for the K-quant test models.

  --type Q4_K   -> LLAMA_FTYPE_MOSTLY_Q4_K_S with pure=true: every quantizable tensor Q4_K
  --type Q5_K   -> LLAMA_FTYPE_MOSTLY_Q5_K_S, pure
  --type Q6_K   -> LLAMA_FTYPE_MOSTLY_Q6_K,   pure
  --type Q4_K_M -> LLAMA_FTYPE_MOSTLY_Q4_K_M, llama.cpp's mix (Q6_K output, Q6_K on some
                   attn_v/ffn_down layers, Q4_K elsewhere, Q8_0 attn_v for 8-expert models ...)
llama.cpp never quantizes norms, biases or routers (ffn_gate_inp): they stay F32.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

FTYPES = {  # name -> (llama_ftype, pure)
    "Q4_K": (14, True),
    "Q5_K": (16, True),
    "Q6_K": (18, True),
    "Q8_0": (7, True),
    "Q4_0": (2, True),
    "Q4_K_M": (15, False),
    "Q4_K_S": (14, False),
    "Q5_K_M": (17, False),
}


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
        return True
    except ImportError:
        return False


def quantize(src: str | Path, dst: str | Path, kind: str, nthread: int = 0, verbose: bool = False) -> None:
    try:
        import llama_cpp
        from llama_cpp._logger import set_verbose
    except ImportError as e:
        raise RuntimeError(f"--type {kind} needs llama-cpp-python (llama.cpp's quantizer): {e}") from e
    if kind not in FTYPES:
        raise ValueError(f"no llama.cpp ftype for {kind}")
    ftype, pure = FTYPES[kind]
    set_verbose(verbose)
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.pure = pure
    params.nthread = nthread
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src} -> {dst}, {kind}) failed with {rc}")
