// Byte-level BPE (GPT-2 style): pre-tokenize, map each word's bytes to GPT-2's printable code
// points, then repeatedly merge the adjacent pair with the lowest merge rank (ties: leftmost) until
// no pair has a rank. Each final symbol is looked up in the vocab; a symbol that is not a token is
// emitted byte by byte as far as single-byte tokens exist (llama.cpp drops the rest silently).
// With ignore_merges (LLaMA 3 and others) a word that is a token as a whole is emitted as such.
#include <queue>
#include <string>
#include <vector>

#include "tokenizer-impl.h"

namespace moerun {

namespace {

struct Symbol {
    size_t off, len;  // bytes in the encoded word; len 0: merged into its left neighbour
    int prev, next;   // -1: none
};

struct Bigram {
    int32_t rank;
    int left, right;
    size_t left_len, right_len;  // at push time: stale if either symbol changed since
};

struct BigramOrder {  // min-heap on (rank, left)
    bool operator()(const Bigram &a, const Bigram &b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

}  // namespace

void Tokenizer::Impl::encode_bpe(std::string_view text, std::vector<int32_t> &out) const {
    std::vector<std::string_view> words;
    pretok->split(text, words);

    std::string word, key;
    std::vector<Symbol> syms;
    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;

    auto add_bigram = [&](int l, int r) {
        if (l < 0 || r < 0) return;
        key.assign(word, syms[l].off, syms[l].len);
        key.push_back('\0');
        key.append(word, syms[r].off, syms[r].len);
        auto it = bpe_ranks.find(std::string_view(key));
        if (it == bpe_ranks.end()) return;
        queue.push({it->second, l, r, syms[l].len, syms[r].len});
    };

    for (std::string_view w : words) {
        word.clear();
        for (char c : w) word += tok::byte_to_unicode(static_cast<uint8_t>(c));
        if (ignore_merges) {
            const int32_t id = lookup(word);
            if (id != kNull) {
                out.push_back(id);
                continue;
            }
        }
        syms.clear();
        for (size_t i = 0; i < word.size();) {
            const size_t n = std::max<size_t>(1, tok::utf8_seq_len(word, i));  // always valid here
            const int idx = static_cast<int>(syms.size());
            syms.push_back({i, n, idx - 1, i + n == word.size() ? -1 : idx + 1});
            i += n;
        }
        queue = {};
        for (size_t i = 1; i < syms.size(); ++i) add_bigram(static_cast<int>(i - 1), static_cast<int>(i));
        while (!queue.empty()) {
            const Bigram b = queue.top();
            queue.pop();
            Symbol &l = syms[b.left];
            Symbol &r = syms[b.right];
            if (l.len != b.left_len || r.len != b.right_len || l.next != b.right) continue;
            l.len += r.len;
            r.len = 0;
            l.next = r.next;
            if (r.next >= 0) syms[r.next].prev = b.left;
            add_bigram(l.prev, b.left);
            add_bigram(b.left, l.next);
        }
        for (int i = 0; i >= 0 && !syms.empty(); i = syms[i].next) {
            const std::string_view s = std::string_view(word).substr(syms[i].off, syms[i].len);
            const int32_t id = lookup(s);
            if (id != kNull) {
                out.push_back(id);
                continue;
            }
            for (char c : s) {
                const int32_t bid = lookup(std::string_view(&c, 1));
                if (bid != kNull) out.push_back(bid);
            }
        }
    }
}

}  // namespace moerun
