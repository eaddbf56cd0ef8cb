// Detokenization: token -> piece (the bytes it stands for) and sequence -> text, as llama.cpp's
// token_to_piece / detokenize:
//   * control, unknown and user-defined tokens are their own text (control and unknown ones render
//     empty unless render_special);
//   * SPM / WordPiece: U+2581 -> ' '; byte tokens <0xNN> (any model) -> the byte;
//   * byte-level BPE: each code point of the token maps back to one byte (GPT-2's table); a code
//     point outside it is rendered as "[UNK_BYTE_0x<hex>...]" as llama.cpp does;
//   * tokens of no other kind (unused, undefined) render empty;
//   * SPM (add_space_prefix): the first token of a sequence loses one leading space, so that
//     decode(encode(s)) == s. (llama.cpp does the same, also after an unrendered BOS.)
#include <stdexcept>
#include <string>

#include "tokenizer-impl.h"

namespace moerun {

namespace {

void replace_all(std::string &s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size());
    size_t pos = 0;
    for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
        out.append(s, pos, hit - pos);
        out.append(to);
    }
    out.append(s, pos, std::string::npos);
    s = std::move(out);
}

// llama.cpp's "clean_up_tokenization_spaces": " ?" " !" " ." " ," lose the space, " ' " loses
// both, " 's" " 'm" " 're" " 've" lose the space. Lossy; only on request.
std::string clean_up_spaces(std::string text) {
    auto pass = [](std::string &s, auto &&step) {
        if (s.empty()) return;
        std::string out;
        out.reserve(s.size());
        out.push_back(s.front());
        for (size_t i = 1; i < s.size(); ++i) step(s, i, out);
        s = std::move(out);
    };
    pass(text, [](std::string &s, size_t i, std::string &out) {
        const char x = s[i];
        if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) out.pop_back();
        out.push_back(x);
    });
    pass(text, [](std::string &s, size_t &i, std::string &out) {
        const char x = s[i];
        if (x == '\'' && i + 1 < s.size() && s[i - 1] == ' ' && s[i + 1] == ' ') {
            out.pop_back();  // the space before
            s[++i] = '\0';   // and the one after (skipped)
        }
        out.push_back(x);
    });
    pass(text, [](std::string &s, size_t i, std::string &out) {
        const char x = s[i];
        if (s[i - 1] == ' ' && x == '\'' && i + 1 < s.size()) {
            const char x1 = s[i + 1];
            if (x1 == 's' || x1 == 'm') {
                out.pop_back();
            } else if (x1 != 't' && x1 != 'd' && i + 2 < s.size()) {
                const char x2 = s[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) out.pop_back();
            }
        }
        out.push_back(x);
    });
    return text;
}

}  // namespace

std::string Tokenizer::Impl::make_piece(int32_t id) const {
    const uint32_t a = attrs[id];
    const std::string &t = token_text[id];
    if (a & (TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED)) return t;
    if (model == TokenizerModel::BPE && (a & TOKEN_ATTR_NORMAL)) {
        std::string out;
        const std::vector<uint32_t> cpts = tok::utf8_to_cpts(t);
        for (uint32_t c : cpts) {
            const int b = tok::unicode_to_byte(c);
            if (b >= 0) {
                out.push_back(static_cast<char>(static_cast<uint8_t>(b)));
                continue;
            }
            std::string utf8;
            tok::utf8_append(utf8, c);
            out += "[UNK_BYTE_0x";
            for (char ch : utf8) {
                char hex[3];
                std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned>(static_cast<uint8_t>(ch)));
                out += hex;
            }
            out += t + "]";
        }
        return out;
    }
    if (a & TOKEN_ATTR_NORMAL) {
        std::string out = t;
        replace_all(out, "\xE2\x96\x81", " ");
        return out;
    }
    if ((a & TOKEN_ATTR_BYTE) && t.size() >= 5) {  // "<0xNN>"
        const auto hex = [](char c) -> int {
            return c >= '0' && c <= '9'   ? c - '0'
                   : c >= 'A' && c <= 'F' ? c - 'A' + 10
                   : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : -1;
        };
        const int hi = hex(t[3]), lo = hex(t[4]);
        if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
    }
    return {};
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special, bool clean_spaces) const {
    const Impl &t = *impl_;
    std::string out;
    bool strip_space = t.add_space_prefix;
    for (const int32_t id : ids) {
        if (id < 0 || static_cast<size_t>(id) >= t.token_text.size())
            throw std::out_of_range("decode: token id " + std::to_string(id) + " is outside the vocab (" +
                                    std::to_string(t.token_text.size()) + " tokens)");
        std::string_view p = t.pieces[id];
        if (!render_special && (t.attrs[id] & (TOKEN_ATTR_UNKNOWN | TOKEN_ATTR_CONTROL))) p = {};
        if (strip_space && !p.empty() && p[0] == ' ') p.remove_prefix(1);
        strip_space = false;
        out.append(p);
    }
    if (clean_spaces && t.clean_spaces) out = clean_up_spaces(std::move(out));
    return out;
}

}  // namespace moerun
