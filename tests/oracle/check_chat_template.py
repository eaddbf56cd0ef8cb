#!/usr/bin/env python3
"""check_chat_template.py -- moerun_chat_apply_template (libmoerun.so, through ctypes) against
llama.cpp's llama_chat_apply_template on random conversations.

  check_chat_template.py --lib build/runtime/libmoerun.so --seed 1 MODEL.gguf [MODEL.gguf ...]

For each model (read vocab-only on both sides):
  chatml   moerun "chatml" = llama.cpp "chatml", any roles (system, user, assistant, tool), with
           and without the assistant's opening;
  mistral  moerun "mistral" = llama.cpp "llama2" (Mixtral-Instruct's template, which llama.cpp
           detects as llama2) on conversations that alternate user / assistant, for the models whose
           EOS text is "</s>" (llama.cpp writes that text; moerun writes the model's). System
           messages are left out: moerun joins them to the first user turn with "\\n\\n" as
           mistral-common does, llama.cpp's llama2 with "\\n";
  file     when the GGUF has tokenizer.chat_template, llama.cpp applied to that text = moerun with
           the model's template (NULL), where llama.cpp knows the format (chatml);
and the buffer convention (minus the size needed when the buffer is short). There is no llama.cpp
oracle for tulu (OLMoE-Instruct): tests/unit/test-chat.cpp checks its text.
"""
from __future__ import annotations

import argparse
import ctypes
import random
import sys

import llama_cpp

INT32_MIN = -(2**31)

CONTENTS = ["hello", "", "two\nlines", "  spaced  ", "ünïcödé 漢字 🙂", "<|im_end|> in the text",
            "[INST] nested [/INST]", "a\tb", "</s>", "trailing newline\n"]


class ChatMessage(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


class ModelParams(ctypes.Structure):
    _fields_ = [("vocab_only", ctypes.c_bool)]


def load_moerun(lib_path):
    lib = ctypes.CDLL(lib_path)
    lib.moerun_model_default_params.restype = ModelParams
    lib.moerun_model_load.argtypes = [ctypes.c_char_p, ModelParams, ctypes.POINTER(ctypes.c_void_p)]
    lib.moerun_model_load.restype = ctypes.c_int
    lib.moerun_model_free.argtypes = [ctypes.c_void_p]
    lib.moerun_last_error.restype = ctypes.c_char_p
    lib.moerun_model_chat_template.argtypes = [ctypes.c_void_p]
    lib.moerun_model_chat_template.restype = ctypes.c_char_p
    lib.moerun_token_eos.argtypes = [ctypes.c_void_p]
    lib.moerun_token_eos.restype = ctypes.c_int32
    lib.moerun_token_to_piece.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_int32,
                                          ctypes.c_bool]
    lib.moerun_token_to_piece.restype = ctypes.c_int32
    lib.moerun_chat_apply_template.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ChatMessage),
                                               ctypes.c_size_t, ctypes.c_bool, ctypes.c_char_p, ctypes.c_int32]
    lib.moerun_chat_apply_template.restype = ctypes.c_int32
    return lib


def moerun_apply(lib, model, tmpl, msgs, add):
    arr = (ChatMessage * max(len(msgs), 1))(*[ChatMessage(r.encode(), c.encode()) for r, c in msgs])
    name = tmpl.encode() if tmpl is not None else None
    need = lib.moerun_chat_apply_template(model, name, arr, len(msgs), add, None, 0)
    if need == INT32_MIN:
        raise RuntimeError(f"moerun_chat_apply_template({tmpl}): {lib.moerun_last_error().decode()}")
    need = -need
    buf = ctypes.create_string_buffer(max(need, 1))
    if need > 0:  # one byte short: minus the size needed, nothing more
        short = lib.moerun_chat_apply_template(model, name, arr, len(msgs), add, buf, need - 1)
        if short != -need:
            raise RuntimeError(f"a buffer of {need - 1} bytes for {need}: returned {short}, expected {-need}")
    n = lib.moerun_chat_apply_template(model, name, arr, len(msgs), add, buf, need)
    if n != need:
        raise RuntimeError(f"moerun_chat_apply_template wrote {n} bytes, said {need}")
    return buf.raw[:n]


def llama_apply(tmpl: bytes, msgs, add):
    arr = (llama_cpp.llama_chat_message * max(len(msgs), 1))(
        *[llama_cpp.llama_chat_message(r.encode(), c.encode()) for r, c in msgs])
    need = llama_cpp.llama_chat_apply_template(tmpl, arr, len(msgs), add, None, 0)
    if need < 0:
        return None  # llama.cpp does not know the template
    buf = ctypes.create_string_buffer(max(need, 1))
    n = llama_cpp.llama_chat_apply_template(tmpl, arr, len(msgs), add, buf, need)
    return buf.raw[:n]


def conversation(rng, alternate):
    n = rng.randint(0 if not alternate else 1, 7)
    msgs = []
    if not alternate and rng.random() < 0.5:
        msgs.append(("system", rng.choice(CONTENTS)))
    for i in range(n):
        role = ("user" if i % 2 == 0 else "assistant") if alternate else rng.choice(
            ["user", "assistant", "system", "tool"])
        msgs.append((role, rng.choice(CONTENTS) + (str(rng.randint(0, 99)) if rng.random() < 0.5 else "")))
    return msgs


@llama_cpp.llama_log_callback
def _quiet(level, text, user_data):  # noqa: ARG001
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    lib = load_moerun(a.lib)
    llama_cpp.llama_log_set(_quiet, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    rng = random.Random(a.seed)
    failures, counts = 0, {"chatml": 0, "mistral": 0, "file": 0}

    def compare(what, path, tmpl, ours, theirs, msgs, add):
        nonlocal failures
        counts[what] += 1
        if ours != theirs:
            failures += 1
            if failures <= 5:
                print(f"FAIL {what} {path} ({tmpl}, add_assistant={add}) {msgs}\n  moerun:    {ours!r}\n"
                      f"  llama.cpp: {theirs!r}")

    for path in a.models:
        params = lib.moerun_model_default_params()
        params.vocab_only = True
        model = ctypes.c_void_p()
        if lib.moerun_model_load(path.encode(), params, ctypes.byref(model)) != 0:
            sys.exit(f"moerun_model_load {path}: {lib.moerun_last_error().decode()}")
        buf = ctypes.create_string_buffer(256)
        n = lib.moerun_token_to_piece(model, lib.moerun_token_eos(model), buf, 256, True)
        eos = buf.raw[:n] if n >= 0 else b""
        ours_name = lib.moerun_model_chat_template(model).decode()

        lp = llama_cpp.llama_model_default_params()
        lp.vocab_only = True
        lm = llama_cpp.llama_model_load_from_file(path.encode(), lp)
        if not lm:
            sys.exit(f"llama.cpp could not load {path}")
        file_tmpl = llama_cpp.llama_model_chat_template(lm, None)

        for _ in range(a.cases):
            add = rng.random() < 0.5
            msgs = conversation(rng, alternate=False)
            compare("chatml", path, "chatml", moerun_apply(lib, model, "chatml", msgs, add),
                    llama_apply(b"chatml", msgs, add), msgs, add)
            if eos == b"</s>":
                msgs = conversation(rng, alternate=True)
                compare("mistral", path, "mistral", moerun_apply(lib, model, "mistral", msgs, add),
                        llama_apply(b"llama2", msgs, add), msgs, add)
            if file_tmpl and ours_name == "chatml":
                msgs = conversation(rng, alternate=False)
                compare("file", path, "the file's", moerun_apply(lib, model, None, msgs, add),
                        llama_apply(file_tmpl, msgs, add), msgs, add)
        print(f"{path}: template {ours_name}, EOS {eos!r}, tokenizer.chat_template "
              f"{'present' if file_tmpl else 'absent'}")
        llama_cpp.llama_model_free(lm)
        lib.moerun_model_free(model)

    print(f"compared: {counts}; mismatches: {failures}")
    if counts["chatml"] == 0 or counts["mistral"] == 0 or counts["file"] == 0:
        sys.exit("check_chat_template: not every comparison ran (need a model with EOS </s> and one with a "
                 "chatml tokenizer.chat_template)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
