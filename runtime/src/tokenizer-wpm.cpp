// WordPiece (tokenizer.ggml.model = "bert"), as llama.cpp's WPM:
//   1. with strip_accents (tokenizer.ggml.normalizer.strip_accents, default: as lowercase), each
//      code point is replaced by the first code point of its canonical decomposition and marks
//      (\p{M}) are dropped; with lowercase (tokenizer.ggml.normalizer.lowercase, default true) it is
//      lower-cased; NUL, U+FFFD (ill-formed UTF-8) and control characters are dropped;
//   2. words are split at white space; punctuation, ASCII symbols and CJK ideographs are words of
//      their own;
//   3. each word, prefixed with U+2581 (the GGUF form of a word start; continuation pieces carry no
//      "##"), is cut greedily into the longest vocab tokens from the left; if some position has no
//      token, the whole word becomes the unknown token.
#include <algorithm>
#include <string>
#include <vector>

#include "tokenizer-impl.h"

namespace moerun {

namespace {

bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B920 && c <= 0x2CEAF) ||  // sic: 0x2B820 in Unicode, 0x2B920 in the HF code
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

bool is_ascii_symbol(uint32_t c) {
    return c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '`' || c == '|' ||
           c == '~';
}

}  // namespace

void Tokenizer::Impl::encode_wpm(std::string_view text, std::vector<int32_t> &out) const {
    std::vector<std::string> words(1);
    for (uint32_t cpt : tok::utf8_to_cpts(text)) {
        if (wpm_strip_accents) cpt = tok::unicode_nfd_first(cpt);
        if (tok::is_whitespace(cpt)) {
            if (!words.back().empty()) words.emplace_back();
            continue;
        }
        if (cpt == 0 || cpt == 0xFFFD || tok::unicode_is_control(cpt)) continue;
        if (wpm_strip_accents && tok::unicode_is_mark(cpt)) continue;
        std::string s;
        tok::utf8_append(s, wpm_lowercase ? tok::unicode_tolower(cpt) : cpt);
        if (tok::unicode_is_punctuation(cpt) || is_ascii_symbol(cpt) || is_cjk(cpt)) {
            if (!words.back().empty()) words.emplace_back();
            words.back() = std::move(s);
            words.emplace_back();
        } else {
            words.back() += s;
        }
    }

    for (const std::string &w : words) {
        if (w.empty()) continue;
        const std::string word = "\xE2\x96\x81" + w;
        const size_t n = word.size();
        const size_t start = out.size();
        for (size_t i = 0; i < n; ++i) {
            bool match = false;
            for (size_t j = std::min(n, i + max_token_len + 1); j > i; --j) {
                const int32_t id = lookup(std::string_view(word).substr(i, j - i));
                if (id != kNull) {
                    out.push_back(id);
                    match = true;
                    i = j - 1;
                    break;
                }
            }
            if (!match) {
                out.resize(start);
                break;
            }
        }
        if (out.size() == start && unk != kNull) out.push_back(unk);
    }
}

}  // namespace moerun
