// Tokenizer: text <-> token ids from a GGUF file's `tokenizer.ggml.*` metadata, token for token
// what llama.cpp produces (its conformance vectors are our unit tests, llama.cpp itself the oracle).
//
// Models (`tokenizer.ggml.model`):
//   "gpt2"  byte-level BPE. Text is split into words by the pre-tokenizer regexes named by
//           `tokenizer.ggml.pre` (PCRE2; several regexes apply in sequence, each on the pieces of
//           the previous one, and text between matches is kept as its own piece), each word's bytes
//           are mapped to GPT-2's printable code points, then merged by `tokenizer.ggml.merges` rank.
//           A missing `pre` means "default" (as llama.cpp; noted in warnings()); an unknown one is
//           an error naming the key.
//   "llama" SentencePiece-style BPE: ' ' -> U+2581, a leading space when `add_space_prefix`, pairs
//           merged by `tokenizer.ggml.scores`, pieces not in the vocab emitted as <0xNN> byte tokens.
//   "bert"  WordPiece, as llama.cpp's WPM: lower-casing and accent stripping (first code point of
//           the NFD form, marks dropped; `tokenizer.ggml.normalizer.*`, both on by default), words
//           split at white space and punctuation, greedy longest match with a U+2581 word prefix.
//   Others ("t5", "rwkv", "plamo2", "none") are rejected with a gguf::Error naming the key.
//
// Special tokens: control/unknown tokens are matched in the text only when parse_special is set;
// user-defined tokens are always matched (as Hugging Face and llama.cpp do). Longer token texts
// are matched first, each at its leftmost occurrences; the rest stays text.
//
// Invalid UTF-8 (defined behaviour, never an error; as llama.cpp): BPE and WordPiece replace every
// byte that does not start a well-formed sequence with U+FFFD (WordPiece then drops it). (llama.cpp
// decodes overlong forms and surrogates leniently instead; we replace those too.) SPM works on the
// raw bytes and emits what is no token as <0xNN> byte tokens, so its round trip is exact, except
// that a stray lead byte can absorb part of a following space's U+2581 (which then decodes as
// those bytes, not as the space).
//
// Decoding concatenates pieces. For SPM the first token's leading space (the added space prefix)
// is dropped, as llama.cpp does. decode() never applies llama.cpp's lossy "clean up tokenization
// spaces" unless asked, so decode(encode(s)) == s for valid UTF-8 s with BPE and SPM (BPE: as long
// as the vocab has a symbol for every byte of s; llama.cpp drops bytes it cannot spell, e.g. \v in
// Falcon's vocab, and so do we).
//
// A Tokenizer is immutable after from_gguf(), cheap to copy, and safe to use from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moerun {

namespace gguf {
class GgufFile;
}

enum class TokenizerModel { BPE, SPM, WPM };

// Token attributes (bit flags), from `tokenizer.ggml.token_type` plus llama.cpp's fix-ups.
enum TokenAttr : uint32_t {
    TOKEN_ATTR_UNDEFINED = 0,
    TOKEN_ATTR_UNKNOWN = 1u << 0,
    TOKEN_ATTR_UNUSED = 1u << 1,
    TOKEN_ATTR_NORMAL = 1u << 2,
    TOKEN_ATTR_CONTROL = 1u << 3,
    TOKEN_ATTR_USER_DEFINED = 1u << 4,
    TOKEN_ATTR_BYTE = 1u << 5,
    TOKEN_ATTR_LSTRIP = 1u << 7,
    TOKEN_ATTR_RSTRIP = 1u << 8,
};

class Tokenizer {
  public:
    static constexpr int32_t kNull = -1;  // "no such token"

    // Reads the vocabulary. Throws gguf::Error naming the key on missing or malformed metadata
    // (wrong types, array lengths that disagree, an unknown model or pre-tokenizer).
    static Tokenizer from_gguf(const gguf::GgufFile &f);

    // add_special: BOS/EOS (WordPiece: CLS/SEP) as the metadata says. parse_special: match
    // control-token texts in `text` (user-defined tokens are matched regardless).
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

    // Concatenated pieces (raw bytes: byte tokens may leave incomplete UTF-8 that a later token
    // completes). render_special: include control/unknown tokens' text (else they render empty).
    // clean_spaces: apply llama.cpp's lossy clean-up (" ." -> "." ...) when the vocab asks for it.
    // Throws std::out_of_range for an id outside [0, n_vocab).
    std::string decode(std::span<const int32_t> ids, bool render_special = false,
                       bool clean_spaces = false) const;

    // The bytes token `id` stands for (control tokens: their text). Throws std::out_of_range.
    std::string_view piece(int32_t id) const;
    // The token's text as stored in the vocab (byte-level / U+2581-escaped form).
    std::string_view text(int32_t id) const;
    uint32_t attr(int32_t id) const;
    float score(int32_t id) const;
    // The id whose vocab text is exactly `text`, or kNull.
    int32_t find(std::string_view text) const;

    int32_t n_vocab() const;
    TokenizerModel model() const;
    std::string_view pre() const;  // canonical name of the pre-tokenizer in effect ("default" when absent)
    int32_t bos() const;           // kNull when the vocab has none
    int32_t eos() const;
    int32_t eot() const;
    int32_t unk() const;
    int32_t sep() const;
    int32_t pad() const;
    bool add_bos() const;  // what encode(..., add_special = true, ...) adds
    bool add_eos() const;
    bool add_space_prefix() const;
    bool is_eog(int32_t id) const;  // end-of-generation: eos, eot, eom, <|im_end|>, ...
    bool is_control(int32_t id) const;
    const std::vector<int32_t> &eog_ids() const;
    // Things a careful user should know (missing pre-tokenizer, out-of-range special ids, ...).
    const std::vector<std::string> &warnings() const;

    struct Impl;

  private:
    explicit Tokenizer(std::shared_ptr<const Impl> impl);
    std::shared_ptr<const Impl> impl_;
};

}  // namespace moerun
