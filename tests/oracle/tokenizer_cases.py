#!/usr/bin/env python3
"""tokenizer_cases.py -- llama.cpp's tokenization of random and adversarial strings, for moerun's
tokenizer to match (tests/oracle/tokenize-vectors.cpp, mode `cases`).

  tokenizer_cases.py --out-dir DIR [--count N] [--seed S] [--pre-variants-of BASE.gguf] MODEL.gguf...

For each GGUF (vocab-only or a full model; loaded with vocab_only=True) writes DIR/<stem>.tsv:

  model<TAB><absolute path of the GGUF>
  <add_special><TAB><parse_special><TAB><hex text><TAB><ids><TAB><hex detok><TAB><hex detok special>

With --pre-variants-of, BASE's tokenizer (a big byte-level BPE vocab: Qwen's) is also written to
DIR/variants/pre-<name>.gguf once for each pre-tokenizer name in PRE_VARIANTS and checked the same
way, so that every pre-tokenizer's regexes meet llama.cpp's even without a real vocab of that kind.

One line per case: the text's bytes in hex, llama.cpp's ids (llama_tokenize, space-separated, maybe
empty), and llama_detokenize of those ids with remove_special=false and unparse_special=false /
true (llama.cpp applies the vocab's clean-up of spaces there; moerun does with clean_spaces=true).

Strings (deterministic for a seed): fragments of many scripts, white space of every kind (incl.
U+0085, U+00A0, U+2000-U+200A, U+3000, CR LF, long runs), digits of several scripts and long runs,
contractions in both cases, emoji with ZWJ / skin tones / flags / variation selectors, code, random
assigned code points (Unicode categories as of Python's unicodedata; unassigned ones are left out
because llama.cpp's tables are newer than PCRE2's), the vocab's own control and user-defined token
texts (with and without surrounding spaces), and ill-formed UTF-8 of the kinds both sides turn into
one U+FFFD per byte (stray continuation bytes, truncated sequences, F5-FF). Overlong forms,
surrogates and code points above U+10FFFF are left out: llama.cpp decodes those leniently (or
throws), moerun replaces them (documented in tokenizer.h).
"""
from __future__ import annotations

import argparse
import ctypes
import random
import sys
import unicodedata
from pathlib import Path

import gguf
import llama_cpp

# One name per distinct (regexes, flags) combination moerun supports.
PRE_VARIANTS = ["default", "gpt-2", "llama3", "dbrx", "chatglm-bpe", "qwen2", "stablelm2", "qwen35", "deepseek-llm",
                "deepseek-coder", "deepseek-v3", "falcon", "starcoder", "command-r", "bloom", "poro-chat", "viking",
                "tekken", "gpt-4o", "chameleon", "bailingmoe", "seed-coder", "exaone-moe", "roberta-bpe", "trillion"]

WS = [" ", " ", " ", "  ", "\t", "\n", "\r", "\r\n", "\v", "\f", "\u0085", "\u00a0", "\u1680", "\u2000", "\u2003",
      "\u2009", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u200b", "\x1c", "\x1f", " \n", "\n ",
      "\t\t", " \t", "\n\n\n"]
WORDS = ["Hello", "hello", "world", "World", " the", "quick", " brown", "fox", "llama", "I", "can't", "it's", "DON'T",
         "we'Ve", "a'lL", "über", "naïve", "Cửa", "Việt", "Äpfel", "straße", "ﬁne", "İstanbul", "ΣΊΣΥΦΟΣ", "ǅ",
         "нещо", "Български", "Ελληνικά", "مرحبا", "नमस्ते", "สวัสดี", "ကြည့်", "កាន់តែពិសេស", "我想在", "工作",
         "天～", "你好，世界。", "日本語のテキスト", "ひらがな", "カタカナ", "한국어", "ﾊﾝｶｸ", "Ｆｕｌｌ", "ｗｉｄｔｈ"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "!!!", "???", "--", "==", "->", "=>", "''", "``",
                                                      "«»", "¿¡", "…", "—", "“”", "‘’", "、。", "！？", "·", "§¶"]
DIGITS = ["0", "7", "42", "123", "3333", "1234567", "3.14", "1,000", "٠١٢٣", "४५६", "１２３", "²³", "½", "Ⅻ", "①"]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'x"]
EMOJI = ["🦙", "🚀", "😁", "😶‍🌫️", "✅", "👍🏽", "🇺🇸", "❤️", "👨‍👩‍👧‍👦", "🙂", "☃", "🤖", "⭐️"]
CODE = ["def f(x):\n    return x**2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "<div class=\"x\">&amp;</div>", "SELECT * FROM t WHERE id=42;", "#include <stdio.h>\n",
        "    if x:\n        pass\n", "a_b = c->d[0] || e && !f;", "x = {'k': [1, 2, 3]}", "// comment\n/* block */",
        "$ ls -la | grep foo > out.txt", "\\n\\t\\\\", "0x1F 0b1010 1e-9"]
MARKS = ["\u0301", "\u0308", "\u0323", "\u20dd", "\u0903", "\u093f", "\ufe0f", "\u200d"]
INVALID = [b"\x80", b"\xbf", b"\x80\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\xa6", b"\xf5", b"\xfe", b"\xff",
           b"\xe4\xbd", b"\xc3(", b"\xe2(\xa1"]


def random_cpt(rng: random.Random) -> str:
    while True:
        r = rng.random()
        if r < 0.5:
            c = rng.randint(0x20, 0x2FFF)
        elif r < 0.75:
            c = rng.randint(0x3000, 0xFFFD)
        elif r < 0.9:
            c = rng.randint(0x1F000, 0x1FAFF)
        else:
            c = rng.randint(0x10000, 0x3134F)
        if 0xD800 <= c <= 0xDFFF:
            continue
        if unicodedata.category(chr(c)) in ("Cn", "Cs"):
            continue
        return chr(c)


def fragment(rng: random.Random, specials: list[str]) -> str:
    kind = rng.choices(["ws", "word", "punct", "digit", "contr", "emoji", "code", "cpt", "mark", "run", "special"],
                       [14, 20, 10, 8, 6, 5, 4, 10, 3, 4, 6])[0]
    if kind == "ws":
        return rng.choice(WS)
    if kind == "word":
        return rng.choice(WORDS)
    if kind == "punct":
        return rng.choice(PUNCT)
    if kind == "digit":
        return rng.choice(DIGITS)
    if kind == "contr":
        return rng.choice(CONTRACTIONS)
    if kind == "emoji":
        return rng.choice(EMOJI)
    if kind == "code":
        return rng.choice(CODE)
    if kind == "cpt":
        return "".join(random_cpt(rng) for _ in range(rng.randint(1, 6)))
    if kind == "mark":
        return rng.choice(["a", "e", "क", "ก", " "]) + rng.choice(MARKS)
    if kind == "run":
        return rng.choice([" ", "\n", "\t", "3", "!", "a", "\u3000", "-", "=", " \n"]) * rng.randint(2, 40)
    if specials:
        s = rng.choice(specials)
        return rng.choice(["", " ", "\n", "  "]) + s + rng.choice(["", " ", "\n", " \t "])
    return "<|x|>"


def make_text(rng: random.Random, specials: list[str]) -> bytes:
    parts = [fragment(rng, specials).encode("utf-8") for _ in range(rng.randint(1, 12))]
    if rng.random() < 0.12:  # ill-formed UTF-8 somewhere
        parts.insert(rng.randint(0, len(parts)), rng.choice(INVALID))
    return b"".join(parts)


FIXED = [b"", b" ", b"  ", b"\n", b" \n", b"\n ", b"\t\n", b"Hello world", b" Hello world", b"   Hello",
         b"3333333333", b"' era", b"\xe3\x80\x80\xe3\x80\x80x", b"a\xc2\x85b", b"x \xc2\xa0 y", b"\xef\xbf\xbd",
         "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～".encode(), b"\x80abc\xff", b"abc\xe2\x82"]


@llama_cpp.llama_log_callback
def _quiet(level, text, user_data):  # noqa: ARG001
    pass


class Vocab:
    def __init__(self, path: Path):
        self.llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        self.v = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self.n = llama_cpp.llama_vocab_n_tokens(self.v)

    def specials(self) -> list[str]:
        out = []
        for i in range(self.n):
            attr = llama_cpp.llama_vocab_get_attr(self.v, i)
            if attr & (8 | 16):  # CONTROL | USER_DEFINED
                t = llama_cpp.llama_vocab_get_text(self.v, i)
                if t:
                    out.append(t.decode("utf-8", errors="replace"))
        return out

    def tokenize(self, text: bytes, add_special: bool, parse_special: bool) -> list[int]:
        cap = len(text) * 2 + 16
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self.v, text, len(text), buf, cap, add_special, parse_special)
        if n < 0:
            raise RuntimeError(f"llama_tokenize failed ({n})")
        return list(buf[:n])

    def detokenize(self, ids: list[int], special: bool) -> bytes:
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        cap = 64 + 64 * len(ids)
        while True:
            out = ctypes.create_string_buffer(cap)
            n = llama_cpp.llama_detokenize(self.v, arr, len(ids), out, cap, False, special)
            if n >= 0:
                return out.raw[:n]
            cap = -n + 16


def tokenizer_fields(base: Path) -> list[tuple[str, gguf.GGUFValueType, object]]:
    r = gguf.GGUFReader(str(base))
    return [(key, f.types[0], f.contents()) for key, f in r.fields.items()
            if key.startswith("tokenizer.") and key not in ("tokenizer.ggml.pre", "tokenizer.chat_template")]


def write_pre_variant(fields: list[tuple[str, gguf.GGUFValueType, object]], pre: str, out: Path) -> None:
    w = gguf.GGUFWriter(str(out), "qwen2")
    w.add_name(f"pre-{pre}")
    for key, vtype, value in fields:
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_array(key, value)
        else:
            w.add_key_value(key, value, vtype)
    w.add_string("tokenizer.ggml.pre", pre)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--count", type=int, default=300, help="random strings per vocab (each with 2 flag sets)")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--pre-variants-of", type=Path, help="write and check one vocab per pre-tokenizer from this GGUF")
    ap.add_argument("models", type=Path, nargs="*")
    a = ap.parse_args()
    a.out_dir.mkdir(parents=True, exist_ok=True)
    for old in a.out_dir.glob("*.tsv"):
        old.unlink()
    llama_cpp.llama_log_set(_quiet, ctypes.c_void_p(0))
    models = list(a.models)
    if a.pre_variants_of:
        vdir = a.out_dir / "variants"
        vdir.mkdir(exist_ok=True)
        fields = tokenizer_fields(a.pre_variants_of)
        for pre in PRE_VARIANTS:
            out = vdir / f"pre-{pre}.gguf"
            write_pre_variant(fields, pre, out)
            models.append(out)
    for path in models:
        path = path.resolve()
        try:
            voc = Vocab(path)
        except Exception as e:  # noqa: BLE001 - a name this llama.cpp does not know
            print(f"{path.name}: llama.cpp cannot load it ({e}); skipped")
            continue
        rng = random.Random(f"{a.seed}:{path.name}")
        specials = voc.specials()
        rng.shuffle(specials)
        specials = specials[:64]
        texts = FIXED + [s.encode() for s in specials[:8]] + [make_text(rng, specials) for _ in range(a.count)]
        lines = [f"model\t{path}"]
        for text in texts:
            for add_special, parse_special in ((False, False), (rng.random() < 0.5, True)):
                ids = voc.tokenize(text, add_special, parse_special)
                d0, d1 = voc.detokenize(ids, False), voc.detokenize(ids, True)
                lines.append(f"{int(add_special)}\t{int(parse_special)}\t{text.hex()}\t{' '.join(map(str, ids))}"
                             f"\t{d0.hex()}\t{d1.hex()}")
        out = a.out_dir / (path.stem + ".tsv")
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{path.name}: {len(lines) - 1} cases -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
