// SentencePiece-style BPE (tokenizer.ggml.model = "llama"): the text (spaces already U+2581) is cut
// into characters by UTF-8 lead byte, then the adjacent pair whose concatenation is a vocab token
// with the highest score is merged (ties: leftmost), until no pair is a token. A final symbol that
// is not a token is split back along the merges that built it, and what is left is emitted as
// byte tokens <0xNN> (byte fallback).
#include <map>
#include <queue>
#include <string>
#include <vector>

#include "tokenizer-impl.h"

namespace moerun {

namespace {

struct Symbol {
    size_t off, len;  // bytes; len 0: merged into its left neighbour
    int prev, next;
};

struct Bigram {
    float score;
    int left, right;
    size_t size;  // bytes of the merged text
};

struct BigramOrder {  // max-heap on score, then leftmost
    bool operator()(const Bigram &a, const Bigram &b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

struct Span {
    size_t off, len;
};

}  // namespace

void Tokenizer::Impl::encode_spm(std::string_view text, std::vector<int32_t> &out) const {
    std::vector<Symbol> syms;
    for (size_t i = 0; i < text.size();) {
        const size_t n = std::min(tok::spm_char_len(static_cast<uint8_t>(text[i])), text.size() - i);
        const int idx = static_cast<int>(syms.size());
        syms.push_back({i, n, idx - 1, i + n == text.size() ? -1 : idx + 1});
        i += n;
    }
    if (syms.empty()) return;

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    std::map<std::string_view, std::pair<Span, Span>> rev_merge;  // merged text -> its two parts

    auto add_bigram = [&](int l, int r) {
        if (l < 0 || r < 0) return;
        const std::string_view s = text.substr(syms[l].off, syms[l].len + syms[r].len);
        const int32_t id = lookup(s);
        if (id == kNull) return;
        queue.push({scores[id], l, r, s.size()});
        rev_merge[s] = {{syms[l].off, syms[l].len}, {syms[r].off, syms[r].len}};
    };

    for (size_t i = 1; i < syms.size(); ++i) add_bigram(static_cast<int>(i - 1), static_cast<int>(i));
    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol &l = syms[b.left];
        Symbol &r = syms[b.right];
        if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) syms[r.next].prev = b.left;
        add_bigram(l.prev, b.left);
        add_bigram(b.left, l.next);
    }

    // Emit a symbol: a token, else its merge parts (each strictly shorter), else its bytes.
    auto emit = [&](auto &&self, Span sp) -> void {
        const std::string_view s = text.substr(sp.off, sp.len);
        if (const int32_t id = lookup(s); id != kNull) {
            out.push_back(id);
            return;
        }
        if (auto it = rev_merge.find(s);
            it != rev_merge.end() && it->second.first.len < sp.len && it->second.second.len < sp.len) {
            self(self, it->second.first);
            self(self, it->second.second);
            return;
        }
        for (char c : s) {
            const int32_t id = byte_token(static_cast<uint8_t>(c));
            if (id != kNull) out.push_back(id);
        }
    };
    for (int i = 0; i >= 0; i = syms[i].next) emit(emit, Span{syms[i].off, syms[i].len});
}

}  // namespace moerun
