// Internals of the tokenizer (tokenizer.h), shared by its files:
//   tokenizer-vocab.cpp        loading from GGUF metadata, token attributes, special ids, EOG set
//   tokenizer-encode.cpp       special-token partition and the per-model encode driver
//   tokenizer-decode.cpp       token -> piece, sequence -> text
//   tokenizer-bpe.cpp          byte-level BPE merges by rank
//   tokenizer-spm.cpp          SentencePiece-style merges by score, byte fallback
//   tokenizer-wpm.cpp          WordPiece
//   tokenizer-pretokenize.cpp  pre-tokenizer regexes per `tokenizer.ggml.pre` (PCRE2)
//   tokenizer-unicode.cpp      UTF-8, the GPT-2 byte <-> code point map, whitespace
//   tokenizer-unicode-data.cpp generated tables (lower case, NFD, categories) for WordPiece
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "moerun/runtime/tokenizer.h"

namespace moerun::tok {

// ---- unicode helpers (tokenizer-unicode.cpp) ----

// Length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 when ill-formed
// (bad lead byte, truncated, overlong, surrogate, above U+10FFFF).
size_t utf8_seq_len(std::string_view s, size_t i);
// Decodes the well-formed sequence at s[i] of length len.
uint32_t utf8_decode(std::string_view s, size_t i, size_t len);
void utf8_append(std::string &out, uint32_t cpt);
// Code points of s; every byte that does not start a well-formed sequence becomes U+FFFD.
std::vector<uint32_t> utf8_to_cpts(std::string_view s);
// s with every byte that does not start a well-formed sequence replaced by U+FFFD.
std::string utf8_sanitize(std::string_view s);
// SentencePiece's symbol length by lead byte (no validation): 1, 2, 3 or 4.
size_t spm_char_len(uint8_t lead);

// White_Space (as llama.cpp's table): \t-\r, ' ', U+0085, U+00A0, U+1680, U+2000-U+200A,
// U+2028, U+2029, U+202F, U+205F, U+3000.
bool is_whitespace(uint32_t cpt);

// GPT-2's byte <-> printable code point map (bytes '!'-'~', 0xA1-0xAC, 0xAE-0xFF map to
// themselves, the other 68 to U+0100 + n in byte order).
const std::string &byte_to_unicode(uint8_t b);  // UTF-8 of the code point
int unicode_to_byte(uint32_t cpt);              // -1 when cpt is not in the map

// ---- generated tables (tokenizer-unicode-data.cpp) ----
uint32_t unicode_tolower(uint32_t cpt);     // simple lower-case mapping
uint32_t unicode_nfd_first(uint32_t cpt);   // first code point of the canonical decomposition
bool unicode_is_punctuation(uint32_t cpt);  // \p{P}
bool unicode_is_control(uint32_t cpt);      // Cc, Cf, Co, Cs
bool unicode_is_mark(uint32_t cpt);         // \p{M}

// ---- pre-tokenizer (tokenizer-pretokenize.cpp) ----

class PreTokenizer {
  public:
    // The regexes llama.cpp uses for `pre` (canonical names and aliases). Returns nullptr for an
    // unknown name; throws std::runtime_error if a regex fails to compile.
    static std::shared_ptr<const PreTokenizer> create(std::string_view pre);
    ~PreTokenizer();

    // Splits valid UTF-8 `text` into words (views into `text`), appended to `out`.
    void split(std::string_view text, std::vector<std::string_view> &out) const;

    struct Regex;

  private:
    PreTokenizer() = default;
    std::vector<std::unique_ptr<Regex>> regexes_;
};

// Flags a `tokenizer.ggml.pre` value implies (llama.cpp's per-pre settings).
struct PreInfo {
    const char *canonical = nullptr;  // nullptr: unknown
    bool ignore_merges = false;       // a word that is itself a token is emitted whole
    bool add_bos = false;             // default for add_bos_token
    bool clean_spaces = true;
    bool add_sep = false;
    bool no_bos = false;  // the vocab has no BOS token (chatglm)
};
PreInfo pre_info(std::string_view pre);

// ---- string-keyed hash map with heterogeneous lookup ----

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

}  // namespace moerun::tok

namespace moerun {

struct Tokenizer::Impl {
    TokenizerModel model = TokenizerModel::SPM;
    std::string pre = "default";

    std::vector<std::string> token_text;  // [n_vocab] vocab text
    std::vector<float> scores;            // [n_vocab] (SPM merge priority; 0 when absent)
    std::vector<uint32_t> attrs;          // [n_vocab] TokenAttr bits
    std::vector<std::string> pieces;      // [n_vocab] decoded bytes (control tokens: their text)
    tok::TokenMap token_to_id;            // text -> id (the last id wins for duplicate texts)
    tok::TokenMap bpe_ranks;              // "left\0right" -> merge rank (first occurrence wins)
    size_t max_token_len = 0;             // bytes

    int32_t bos = kNull, eos = kNull, eot = kNull, eom = kNull, unk = kNull, sep = kNull, pad = kNull;
    int32_t mask = kNull, fim_pre = kNull, fim_suf = kNull, fim_mid = kNull, fim_pad = kNull;
    int32_t fim_rep = kNull, fim_sep = kNull;

    bool add_bos = false, add_eos = false, add_sep = false, add_space_prefix = false;
    bool ignore_merges = false, clean_spaces = false;
    bool wpm_lowercase = true, wpm_strip_accents = true;  // tokenizer.ggml.normalizer.*

    std::vector<int32_t> eog;                         // sorted
    std::vector<int32_t> special_tokens;              // control/user-defined/unknown ids, longest text first
    std::shared_ptr<const tok::PreTokenizer> pretok;  // BPE only
    std::vector<std::string> warnings;

    int32_t lookup(std::string_view s) const {
        auto it = token_to_id.find(s);
        return it == token_to_id.end() ? kNull : it->second;
    }
    int32_t byte_token(uint8_t b) const;  // SPM byte fallback (<0xNN>, else the byte itself, else unk)

    // Encoders for one run of plain text (tokenizer-bpe.cpp, -spm.cpp, -wpm.cpp).
    void encode_bpe(std::string_view text, std::vector<int32_t> &out) const;
    void encode_spm(std::string_view text, std::vector<int32_t> &out) const;  // text already escaped
    void encode_wpm(std::string_view text, std::vector<int32_t> &out) const;

    std::string make_piece(int32_t id) const;  // tokenizer-decode.cpp
};

}  // namespace moerun
