// Tokenizer loading: the vocabulary, merges, token attributes, special ids and the set of
// end-of-generation tokens from `tokenizer.ggml.*`, with llama.cpp's defaults and fix-ups
// (llama-vocab.cpp, llama_vocab::impl::load), so that our ids match its ids:
//   * default special ids per model (SPM: bos 1, eos 2, unk 0; WPM: cls 101, unk 100, sep 102,
//     pad 0, mask 103; BPE: bos = eos = 11), overridden by the metadata; an id outside the vocab
//     (negative ones included) keeps the default (and is noted in warnings());
//   * a merge that is not "left right" (no space after the first byte) is an error (llama.cpp
//     pairs "" with "" there);
//   * tokens whose text marks the end of a turn (<|eot_id|>, <|im_end|>, <|endoftext|>, ...) are
//     made control tokens and end-of-generation tokens; control tokens named "unused" are unused;
//   * phi-3 (by general.name) right-strips spaces after its special tokens;
//   * empty token texts become "[EMPTY_<id>]"; a text that occurs twice is an error;
//   * "</s>" ends generation, except next to Gemma 4's <|tool_response> or PLaMo's <|plamo:eos|>,
//     where it is a normal token.
// Where llama.cpp picks among several candidates in hash-map order (which EOT-like token is
// `eot`), we take the lowest id.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>

#include "gguf-impl.h"
#include "moerun/runtime/gguf.h"
#include "tokenizer-impl.h"

namespace moerun {

namespace {

namespace gguf = moerun::gguf;

constexpr uint32_t kSpecialAttrs = TOKEN_ATTR_CONTROL | TOKEN_ATTR_USER_DEFINED | TOKEN_ATTR_UNKNOWN;

uint32_t attr_from_type(int64_t type) {
    switch (type) {  // llama.cpp's LLAMA_TOKEN_TYPE_*
        case 1:
            return TOKEN_ATTR_NORMAL;
        case 2:
            return TOKEN_ATTR_UNKNOWN;
        case 3:
            return TOKEN_ATTR_CONTROL;
        case 4:
            return TOKEN_ATTR_USER_DEFINED;
        case 5:
            return TOKEN_ATTR_UNUSED;
        case 6:
            return TOKEN_ATTR_BYTE;
        default:
            return TOKEN_ATTR_UNDEFINED;
    }
}

// A numeric per-token array (scores: numbers; token types: integers) that must have one element
// per token.
const gguf::Array *per_token_array(const gguf::GgufFile &f, const char *key, size_t n, bool integers) {
    const gguf::Array *a = f.get_array_opt(key);
    if (!a) return nullptr;
    if (!gguf::is_integer(a->elem_type) && (integers || !gguf::is_float(a->elem_type)))
        f.fail(f.find(key)->offset, key,
               std::string(integers ? "expected an array of integers" : "expected an array of numbers") +
                   ", found an array of " + std::string(gguf::value_type_name(a->elem_type)));
    if (a->count != n)
        f.fail(
            f.find(key)->offset, key,
            "has " + std::to_string(a->count) + " elements, tokenizer.ggml.tokens has " + std::to_string(n));
    return a;
}

bool contains(std::string_view s, std::string_view sub) {
    return s.find(sub) != std::string_view::npos;
}

}  // namespace

int32_t Tokenizer::Impl::byte_token(uint8_t b) const {
    static constexpr char kHex[] = "0123456789ABCDEF";
    const char name[6] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    int32_t id = lookup(std::string_view(name, 6));
    if (id == kNull) id = lookup(std::string_view(reinterpret_cast<const char *>(&b), 1));
    return id == kNull ? unk : id;
}

Tokenizer::Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Tokenizer Tokenizer::from_gguf(const gguf::GgufFile &f) {
    auto v = std::make_shared<Impl>();
    Impl &t = *v;
    auto offset_of = [&](const char *key) { return f.find(key) ? f.find(key)->offset : 0; };

    // ---- model and its defaults ----
    const std::string_view model = f.get_string("tokenizer.ggml.model");
    int32_t def_bos = kNull, def_eos = kNull, def_unk = kNull, def_sep = kNull, def_pad = kNull,
            def_mask = kNull;
    tok::PreInfo pre;
    if (model == "llama") {
        t.model = TokenizerModel::SPM;
        def_bos = 1, def_eos = 2, def_unk = 0;
        t.add_space_prefix = true;
        t.add_bos = true;
    } else if (model == "bert") {
        t.model = TokenizerModel::WPM;
        def_bos = 101, def_unk = 100, def_sep = 102, def_pad = 0, def_mask = 103;
        t.add_bos = true;
        t.add_sep = true;
        t.clean_spaces = true;
    } else if (model == "gpt2") {
        t.model = TokenizerModel::BPE;
        def_bos = 11, def_eos = 11;
        const std::optional<std::string_view> p = f.get_string_opt("tokenizer.ggml.pre");
        if (!p || p->empty()) {
            t.warnings.push_back(
                "tokenizer.ggml.pre is missing: using the 'default' pre-tokenizer "
                "(as llama.cpp; tokenization may differ from the original model's)");
            pre = tok::pre_info("default");
        } else {
            pre = tok::pre_info(*p);
            if (!pre.canonical) {
                const bool known =
                    *p == "kimi-k2" || *p == "afmoe" || *p == "superbpe" || *p == "youtu" || *p == "gemma4";
                f.fail(offset_of("tokenizer.ggml.pre"), "tokenizer.ggml.pre",
                       (known ? "pre-tokenizer '" + std::string(*p) + "' is not supported"
                              : "unknown pre-tokenizer '" + std::string(*p) + "'"));
            }
        }
        t.pre = pre.canonical;
        t.ignore_merges = pre.ignore_merges;
        t.add_bos = pre.add_bos;
        t.clean_spaces = pre.clean_spaces;
        t.add_sep = pre.add_sep;
        if (pre.no_bos) def_bos = kNull;
        t.pretok = tok::PreTokenizer::create(t.pre);
        if (!t.pretok) throw std::logic_error("tokenizer: no regexes for pre-tokenizer " + t.pre);
    } else {
        f.fail(offset_of("tokenizer.ggml.model"), "tokenizer.ggml.model",
               "unsupported tokenizer model '" + std::string(model) + "' (supported: gpt2, llama, bert)");
    }
    t.add_space_prefix = f.get_bool_or("tokenizer.ggml.add_space_prefix", t.add_space_prefix);

    // ---- tokens, scores, types ----
    const gguf::Array &tokens = f.get_array("tokenizer.ggml.tokens");
    if (tokens.elem_type != gguf::ValueType::STRING)
        f.fail(offset_of("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens", "expected an array of strings");
    if (tokens.count == 0 || tokens.count > static_cast<uint64_t>(INT32_MAX))
        f.fail(offset_of("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens",
               "bad token count " + std::to_string(tokens.count));
    const size_t n = tokens.strings.size();
    const gguf::Array *scores = per_token_array(f, "tokenizer.ggml.scores", n, false);
    const gguf::Array *types = per_token_array(f, "tokenizer.ggml.token_type", n, true);
    t.token_text.resize(n);
    t.scores.assign(n, 0.0f);
    t.attrs.assign(n, TOKEN_ATTR_NORMAL);
    t.token_to_id.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        std::string word(tokens.strings[i]);
        if (word.empty()) word = "[EMPTY_" + std::to_string(i) + "]";
        if (auto [it, fresh] = t.token_to_id.emplace(word, static_cast<int32_t>(i)); !fresh)
            f.fail(offset_of("tokenizer.ggml.tokens"), "tokenizer.ggml.tokens",
                   "duplicate token '" + word + "' has ids " + std::to_string(it->second) + " and " +
                       std::to_string(i));
        t.max_token_len = std::max(t.max_token_len, word.size());
        t.token_text[i] = std::move(word);
        if (scores) t.scores[i] = static_cast<float>(scores->get_float(i));
        if (types) t.attrs[i] = attr_from_type(types->get_int(i));
    }

    // ---- merges (BPE) ----
    if (t.model == TokenizerModel::BPE) {
        const gguf::Array &merges = f.get_array("tokenizer.ggml.merges");
        if (merges.elem_type != gguf::ValueType::STRING)
            f.fail(offset_of("tokenizer.ggml.merges"), "tokenizer.ggml.merges",
                   "expected an array of strings");
        t.bpe_ranks.reserve(merges.strings.size());
        std::string key;
        for (size_t i = 0; i < merges.strings.size(); ++i) {
            const std::string_view m = merges.strings[i];
            // "left right", split at the first space after the first byte (as llama.cpp, which
            // pairs "" with "" where there is none; such a merge is malformed, so we refuse it)
            const size_t sp = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
            if (sp == std::string_view::npos)
                f.fail(offset_of("tokenizer.ggml.merges"), "tokenizer.ggml.merges",
                       "merge " + std::to_string(i) + " '" + std::string(m.substr(0, 64)) +
                           (m.size() > 64 ? "...'" : "'") + " is not two tokens separated by a space");
            key.clear();
            key.append(m.substr(0, sp));
            key.push_back('\0');
            key.append(m.substr(sp + 1));
            t.bpe_ranks.emplace(key, static_cast<int32_t>(i));
        }
    }

    // ---- special ids ----
    auto valid = [&](int32_t id) { return id >= 0 && static_cast<size_t>(id) < n ? id : kNull; };
    t.bos = valid(def_bos), t.eos = valid(def_eos), t.unk = valid(def_unk), t.sep = valid(def_sep);
    t.pad = valid(def_pad), t.mask = valid(def_mask);
    const std::pair<const char *, int32_t *> id_keys[] = {
        {"tokenizer.ggml.bos_token_id", &t.bos},         {"tokenizer.ggml.eos_token_id", &t.eos},
        {"tokenizer.ggml.eot_token_id", &t.eot},         {"tokenizer.ggml.eom_token_id", &t.eom},
        {"tokenizer.ggml.unknown_token_id", &t.unk},     {"tokenizer.ggml.seperator_token_id", &t.sep},
        {"tokenizer.ggml.padding_token_id", &t.pad},     {"tokenizer.ggml.mask_token_id", &t.mask},
        {"tokenizer.ggml.fim_pre_token_id", &t.fim_pre}, {"tokenizer.ggml.fim_suf_token_id", &t.fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &t.fim_mid}, {"tokenizer.ggml.fim_pad_token_id", &t.fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &t.fim_rep}, {"tokenizer.ggml.fim_sep_token_id", &t.fim_sep},
        {"tokenizer.ggml.prefix_token_id", &t.fim_pre},  {"tokenizer.ggml.suffix_token_id", &t.fim_suf},
        {"tokenizer.ggml.middle_token_id", &t.fim_mid},
    };
    for (const auto &[key, id] : id_keys) {
        if (!f.find(key)) continue;
        const int64_t value = f.get_int(key);
        if (value < 0 || static_cast<uint64_t>(value) >= n) {
            t.warnings.push_back(std::string(key) + " = " + std::to_string(value) +
                                 " is outside the vocab (" + std::to_string(n) + " tokens): ignored");
            continue;
        }
        *id = static_cast<int32_t>(value);
    }
    t.add_bos = f.get_bool_or("tokenizer.ggml.add_bos_token", t.add_bos);
    t.add_eos = f.get_bool_or("tokenizer.ggml.add_eos_token", t.add_eos);
    t.add_sep = f.get_bool_or("tokenizer.ggml.add_sep_token", t.add_sep);
    if (t.add_bos && t.bos == kNull)
        f.fail(offset_of("tokenizer.ggml.add_bos_token"), "tokenizer.ggml.bos_token_id",
               "add_bos_token is true but the vocab has no BOS token");
    if (t.add_eos && t.eos == kNull)
        f.fail(offset_of("tokenizer.ggml.add_eos_token"), "tokenizer.ggml.eos_token_id",
               "add_eos_token is true but the vocab has no EOS token");
    if (t.model == TokenizerModel::WPM && t.sep == kNull)
        f.fail(offset_of("tokenizer.ggml.seperator_token_id"), "tokenizer.ggml.seperator_token_id",
               "a WordPiece vocab needs a SEP token");
    t.wpm_lowercase = f.get_bool_or("tokenizer.ggml.normalizer.lowercase", true);
    t.wpm_strip_accents = f.get_bool_or("tokenizer.ggml.normalizer.strip_accents", t.wpm_lowercase);

    // ---- text-based fix-ups (lowest id first) ----
    auto make_control = [&](int32_t id) { t.attrs[id] |= TOKEN_ATTR_CONTROL; };
    auto detect = [&](int32_t &slot, std::initializer_list<std::string_view> texts) {
        if (slot != kNull) return;
        for (size_t i = 0; i < n && slot == kNull; ++i)
            for (auto s : texts)
                if (t.token_text[i] == s) {
                    slot = static_cast<int32_t>(i);
                    make_control(slot);
                    break;
                }
    };
    detect(t.eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                   "<EOT>", "_<EOT>", "[EOT]",
                   "<\xEF\xBD\x9C"
                   "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                   "<end_of_utterance>"});
    detect(t.eom, {"<|eom_id|>"});
    detect(t.fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
                       "<\xEF\xBD\x9C"
                       "fim\xE2\x96\x81"
                       "begin\xEF\xBD\x9C>",
                       "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"});
    detect(t.fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
                       "<\xEF\xBD\x9C"
                       "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
                       "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"});
    detect(t.fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
                       "<\xEF\xBD\x9C"
                       "fim\xE2\x96\x81"
                       "end\xEF\xBD\x9C>",
                       "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"});
    detect(t.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
    detect(t.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
    detect(t.fim_sep, {"<|file_sep|>"});

    for (size_t i = 0; i < n; ++i)
        if ((t.attrs[i] & TOKEN_ATTR_CONTROL) && contains(t.token_text[i], "unused"))
            t.attrs[i] |= TOKEN_ATTR_UNUSED;

    // end-of-generation tokens
    std::vector<int32_t> eog;
    for (int32_t id : {t.fim_pad, t.fim_rep, t.fim_sep})
        if (id != kNull) eog.push_back(id);
    static constexpr std::string_view kEogTexts[] = {"<|eot_id|>",
                                                     "<|im_end|>",
                                                     "<|end|>",
                                                     "<|return|>",
                                                     "<|call|>",
                                                     "<|flush|>",
                                                     "<|calls|>",
                                                     "<end_of_turn>",
                                                     "<|endoftext|>",
                                                     "</s>",
                                                     "<|eom_id|>",
                                                     "<EOT>",
                                                     "_<EOT>",
                                                     "[EOT]",
                                                     "[EOS]",
                                                     "<|end_of_text|>",
                                                     "<end_of_utterance>",
                                                     "<eos>",
                                                     "<turn|>",
                                                     "<|tool_response>",
                                                     "<\xEF\xBD\x9C"
                                                     "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                                     "[e~["};
    for (size_t i = 0; i < n; ++i)
        for (auto s : kEogTexts)
            if (t.token_text[i] == s) {
                eog.push_back(static_cast<int32_t>(i));
                make_control(static_cast<int32_t>(i));
            }
    // gpt-oss: always rendered
    for (size_t i = 0; i < n; ++i)
        if (t.token_text[i] == "<|channel|>" || t.token_text[i] == "<|message|>" ||
            t.token_text[i] == "<|start|>" || t.token_text[i] == "<|constrain|>")
            t.attrs[i] = TOKEN_ATTR_USER_DEFINED;
    for (int32_t id : {t.eos, t.eot, t.eom})
        if (id != kNull) eog.push_back(id);
    std::sort(eog.begin(), eog.end());
    eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
    {  // o200k_harmony / solar-open: <|end|> ends a message, not the generation
        bool has_return = false, has_call = false, has_flush = false;
        int32_t end_id = kNull;
        for (int32_t id : eog) {
            const std::string &s = t.token_text[id];
            if (s == "<|return|>")
                has_return = true;
            else if (s == "<|call|>" || s == "<|calls|>")
                has_call = true;
            else if (s == "<|flush|>")
                has_flush = true;
            else if (s == "<|end|>")
                end_id = id;
        }
        if (end_id != kNull && ((has_return && has_call) || (has_call && has_flush))) {
            eog.erase(std::find(eog.begin(), eog.end(), end_id));
            t.attrs[end_id] = TOKEN_ATTR_USER_DEFINED;
        }
    }
    {  // Gemma 4, PLaMo: "</s>" is a normal token (an HTML tag) there
        bool other_end = false;
        int32_t s_id = kNull;
        for (int32_t id : eog) {
            const std::string &s = t.token_text[id];
            if (s == "<|tool_response>" || s == "<|plamo:eos|>")
                other_end = true;
            else if (s == "</s>")
                s_id = id;
        }
        if (other_end && s_id != kNull) {
            eog.erase(std::find(eog.begin(), eog.end(), s_id));
            t.attrs[s_id] = TOKEN_ATTR_NORMAL;
        }
    }
    t.eog = std::move(eog);

    // ---- special tokens, longest text first (ties: lower id first) ----
    for (size_t i = 0; i < n; ++i)
        if (t.attrs[i] & kSpecialAttrs) t.special_tokens.push_back(static_cast<int32_t>(i));
    std::stable_sort(t.special_tokens.begin(), t.special_tokens.end(),
                     [&](int32_t a, int32_t b) { return t.token_text[a].size() > t.token_text[b].size(); });

    // ---- pieces ----
    t.pieces.resize(n);
    for (size_t i = 0; i < n; ++i) t.pieces[i] = t.make_piece(static_cast<int32_t>(i));

    // ---- per-model strip attributes (after the caches, as llama.cpp) ----
    std::string name(f.get_string_opt("general.name").value_or(""));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
    const std::string_view pre_key = f.get_string_opt("tokenizer.ggml.pre").value_or("");
    const std::string_view arch = f.get_string_opt("general.architecture").value_or("");
    auto set_attr = [&](std::string_view text, uint32_t a, bool on) {
        const int32_t id = t.lookup(text);
        if (id == kNull) return;
        t.attrs[id] = on ? (t.attrs[id] | a) : (t.attrs[id] & ~a);
    };
    if (pre_key == "jina-v2-de" || pre_key == "jina-v2-es" || pre_key == "jina-v2-code" ||
        contains(arch, "nomic-bert-moe") || contains(arch, "jina-bert-v3")) {
        set_attr("<mask>", TOKEN_ATTR_LSTRIP, true);
    } else if (contains(name, "phi-3") || contains(name, "phi3")) {
        for (int32_t id : t.special_tokens) t.attrs[id] |= TOKEN_ATTR_RSTRIP;
        set_attr("</s>", TOKEN_ATTR_RSTRIP, true);
        for (auto s : {"<unk>", "<s>", "<|endoftext|>"}) set_attr(s, TOKEN_ATTR_RSTRIP, false);
    } else if (contains(name, "modern-bert")) {
        set_attr("[MASK]", TOKEN_ATTR_LSTRIP, true);
    }

    return Tokenizer(std::move(v));
}

// ---- accessors ----

namespace {
void check_id(const Tokenizer::Impl &t, int32_t id) {
    if (id < 0 || static_cast<size_t>(id) >= t.token_text.size())
        throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocab (" +
                                std::to_string(t.token_text.size()) + " tokens)");
}
}  // namespace

std::string_view Tokenizer::piece(int32_t id) const {
    check_id(*impl_, id);
    return impl_->pieces[id];
}
std::string_view Tokenizer::text(int32_t id) const {
    check_id(*impl_, id);
    return impl_->token_text[id];
}
uint32_t Tokenizer::attr(int32_t id) const {
    check_id(*impl_, id);
    return impl_->attrs[id];
}
float Tokenizer::score(int32_t id) const {
    check_id(*impl_, id);
    return impl_->scores[id];
}
int32_t Tokenizer::find(std::string_view s) const {
    return impl_->lookup(s);
}
int32_t Tokenizer::n_vocab() const {
    return static_cast<int32_t>(impl_->token_text.size());
}
TokenizerModel Tokenizer::model() const {
    return impl_->model;
}
std::string_view Tokenizer::pre() const {
    return impl_->pre;
}
int32_t Tokenizer::bos() const {
    return impl_->bos;
}
int32_t Tokenizer::eos() const {
    return impl_->eos;
}
int32_t Tokenizer::eot() const {
    return impl_->eot;
}
int32_t Tokenizer::unk() const {
    return impl_->unk;
}
int32_t Tokenizer::sep() const {
    return impl_->sep;
}
int32_t Tokenizer::pad() const {
    return impl_->pad;
}
bool Tokenizer::add_bos() const {
    return impl_->add_bos;
}
bool Tokenizer::add_eos() const {
    return impl_->add_eos;
}
bool Tokenizer::add_space_prefix() const {
    return impl_->add_space_prefix;
}
bool Tokenizer::is_eog(int32_t id) const {
    return std::binary_search(impl_->eog.begin(), impl_->eog.end(), id);
}
bool Tokenizer::is_control(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < impl_->attrs.size() &&
           (impl_->attrs[id] & TOKEN_ATTR_CONTROL);
}
const std::vector<int32_t> &Tokenizer::eog_ids() const {
    return impl_->eog;
}
const std::vector<std::string> &Tokenizer::warnings() const {
    return impl_->warnings;
}

}  // namespace moerun
