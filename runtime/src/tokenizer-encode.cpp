// Encoding driver: special-token partition, then the model's encoder on each run of plain text,
// with BOS/EOS (WordPiece: CLS/SEP) around it when add_special is requested.
//
// Partition (llama.cpp's tokenizer_st_partition): for each special token, longest text first,
// every occurrence in the still-plain fragments, leftmost first, becomes that token. Control and
// unknown tokens take part only with parse_special; user-defined ones always do. A token with
// LSTRIP/RSTRIP also swallows the ASCII white space to its left/right.
//
// SPM adds the space prefix to a text fragment at the start or right after a special token, then
// writes spaces as U+2581 (raw bytes, no UTF-8 validation: pieces that are no token become byte
// tokens).
// BPE and WordPiece first replace ill-formed UTF-8 with U+FFFD.
#include <string>
#include <vector>

#include "tokenizer-impl.h"

namespace moerun {

namespace {

struct Fragment {
    int32_t token;  // kNull: plain text [off, off + len)
    size_t off, len;
};

bool c_isspace(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r');
}

std::vector<Fragment> partition(const Tokenizer::Impl &t, std::string_view text, bool parse_special) {
    std::vector<Fragment> frags, next;
    if (text.empty()) return frags;
    frags.push_back({Tokenizer::kNull, 0, text.size()});
    for (const int32_t id : t.special_tokens) {
        const uint32_t attr = t.attrs[id];
        if (!parse_special && (attr & (TOKEN_ATTR_CONTROL | TOKEN_ATTR_UNKNOWN))) continue;
        const std::string_view tok = t.token_text[id];
        next.clear();
        bool changed = false;
        for (const Fragment &f : frags) {
            if (f.token != Tokenizer::kNull) {
                next.push_back(f);
                continue;
            }
            size_t base = f.off, len = f.len;
            while (len > 0) {
                const size_t hit = text.substr(0, base + len).find(tok, base);
                if (hit == std::string_view::npos) break;
                changed = true;
                size_t left = hit - base;
                if (attr & TOKEN_ATTR_LSTRIP)
                    while (left > 0 && c_isspace(text[base + left - 1])) --left;
                if (left > 0) next.push_back({Tokenizer::kNull, base, left});
                next.push_back({id, 0, 0});
                size_t r_off = hit + tok.size();
                size_t r_len = base + len - r_off;
                if (attr & TOKEN_ATTR_RSTRIP)
                    while (r_len > 0 && c_isspace(text[r_off])) ++r_off, --r_len;
                base = r_off;
                len = r_len;
            }
            if (len > 0) next.push_back({Tokenizer::kNull, base, len});
        }
        if (changed) std::swap(frags, next);
    }
    return frags;
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    const Impl &t = *impl_;
    std::vector<int32_t> out;
    const std::vector<Fragment> frags = partition(t, text, parse_special);
    switch (t.model) {
        case TokenizerModel::SPM: {
            if (add_special && t.add_bos) out.push_back(t.bos);
            bool prev_special = true;  // a space prefix before the first text
            std::string buf;
            for (const Fragment &f : frags) {
                if (f.token != kNull) {
                    out.push_back(f.token);
                    prev_special = true;
                    continue;
                }
                buf.clear();
                if (t.add_space_prefix && prev_special) buf += "\xE2\x96\x81";
                for (char c : text.substr(f.off, f.len)) {
                    if (c == ' ')
                        buf += "\xE2\x96\x81";
                    else
                        buf.push_back(c);
                }
                t.encode_spm(buf, out);
                prev_special = false;
            }
            if (add_special && t.add_eos) out.push_back(t.eos);
            break;
        }
        case TokenizerModel::BPE: {
            if (add_special && t.add_bos) out.push_back(t.bos);
            for (const Fragment &f : frags) {
                if (f.token != kNull)
                    out.push_back(f.token);
                else
                    t.encode_bpe(tok::utf8_sanitize(text.substr(f.off, f.len)), out);
            }
            if (add_special && t.add_eos) out.push_back(t.eos);
            break;
        }
        case TokenizerModel::WPM: {
            if (add_special && t.bos != kNull) out.push_back(t.bos);  // CLS
            for (const Fragment &f : frags) {
                if (f.token != kNull)
                    out.push_back(f.token);
                else
                    t.encode_wpm(text.substr(f.off, f.len), out);
            }
            if (add_special) out.push_back(t.sep);  // checked at load
            break;
        }
    }
    return out;
}

}  // namespace moerun
