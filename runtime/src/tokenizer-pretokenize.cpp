// Pre-tokenizer: splits text into words before byte-level BPE, by the regexes llama.cpp uses for
// each `tokenizer.ggml.pre` (llama-vocab.cpp, llm_tokenizer_bpe), run with PCRE2.
//
// How llama.cpp applies them, and so how we do:
//   * the regexes of a pre-tokenizer run in sequence: regex k+1 runs on each piece regex k made,
//     with the piece as the whole subject (a lookahead or `$` sees the piece's end, not the text's);
//   * text between two matches is kept as a piece of its own (nothing is dropped);
//   * \s is the White_Space set (llama.cpp maps non-ASCII white space to \v before std::regex, and
//     its hand-written GPT-2/LLaMA-3 splitters use the same set), so we write it out as a class:
//     PCRE2's own \s differs (it lacks U+0085, for one). Explicit code point ranges therefore must
//     not contain white space either; where llama.cpp's do (deepseek's CJK ranges), those code
//     points never match them there, and we cut them out of the range here;
//   * \p{L}, \p{N}, \p{P}, \p{S}, \p{M} are Unicode general categories (PCRE2's Unicode 14 tables
//     against llama.cpp's newer ones: code points assigned since may differ);
//   * `$` matches only at the very end (PCRE2_DOLLAR_ENDONLY, as ECMAScript).
// Not supported (an error at load): kimi-k2, afmoe (custom splitters), superbpe (zero-width
// matches), youtu (llama.cpp collapses \p{Lu}/\p{Ll} into \p{L}, which we have not reproduced),
// gemma4 (BPE over U+2581-escaped text); names llama.cpp added after this table are unknown.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer-impl.h"

namespace moerun::tok {

namespace {

// The White_Space set as the body of a character class.
constexpr const char *kWsClass =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

// Rewrites \s and \S into explicit classes of kWsClass (inside a class, \s becomes its body).
std::string expand_ws(std::string_view re) {
    std::string out;
    bool in_class = false;
    for (size_t i = 0; i < re.size(); ++i) {
        const char c = re[i];
        if (c == '\\' && i + 1 < re.size()) {
            const char n = re[i + 1];
            ++i;
            if (n == 's') {
                out += in_class ? std::string(kWsClass) : "[" + std::string(kWsClass) + "]";
            } else if (n == 'S') {
                if (in_class) throw std::logic_error("pre-tokenizer regex: \\S inside a class");
                out += "[^" + std::string(kWsClass) + "]";
            } else {
                out += c;
                out += n;
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            out += c;
            if (i + 1 < re.size() && re[i + 1] == '^') out += re[++i];
            if (i + 1 < re.size() && re[i + 1] == ']') out += re[++i];  // literal ']' first
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        out += c;
    }
    return out;
}

// ---- the regexes (PCRE2 syntax; \s / \S as above) ----

// GPT-2 (also the second regex of several others). llama.cpp runs a hand-written splitter for this
// exact string; it behaves as the regex followed by |\s+, which the kept gaps reproduce.
constexpr const char *kGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char *kContractions = R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]))";
// LLaMA 3 (tiktoken cl100k style): letters with one leading non-letter, digits in threes.
const std::string kLlama3 =
    std::string(kContractions) +
    R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: as LLaMA 3, single digits.
const std::string kQwen2 =
    std::string(kContractions) +
    R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen3.5: marks join letters.
const std::string kQwen35 =
    std::string(kContractions) +
    R"(|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kSeedCoder =
    std::string(kContractions) +
    R"(|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kExaoneMoe =
    std::string(kContractions) +
    R"(|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)";
constexpr const char *kBailing =
    R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
// GPT-4o / Tekken: upper-then-lower letter runs.
constexpr const char *kTekken =
    R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const std::string kGpt4o =
    std::string(R"([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+)") + kContractions +
    R"(?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*)" + kContractions +
    R"(?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek LLM: explicit letter ranges (no white space in them).
constexpr const char *kDeepseekLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
// ASCII and full-width punctuation, quotes U+2018-U+201F, U+3001-U+3002 (U+3000 is white space).
constexpr const char *kDeepseekPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3001}-\x{3002}]+)";
// CJK, U+0800-U+4E00 and Hangul, less the white space in U+0800-U+4E00.
constexpr const char *kDeepseekCjk =
    R"([\x{4E00}-\x{9FA5}\x{800}-\x{167F}\x{1681}-\x{1FFF}\x{200B}-\x{2027}\x{202A}-\x{202E}\x{2030}-\x{205E})"
    R"(\x{2060}-\x{2FFF}\x{3001}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr const char *kDeepseek3Cjk = R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)";
constexpr const char *kDeepseek3 =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// BLOOM / Poro: anything up to white space or . , ! ? … 。 ， 、 । ۔ ، ( | ).
constexpr const char *kBloom = R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{964}\x{6D4}\x{60C})]+)";

struct PreDef {
    const char *canonical;
    std::vector<std::string> regexes;
};

// Each canonical pre-tokenizer and its regexes; aliases map onto these in pre_info().
const std::vector<PreDef> &pre_defs() {
    static const std::vector<PreDef> defs = {
        {"default", {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}},
        {"gpt-2", {kGpt2}},
        {"llama3", {kLlama3}},
        {"qwen2", {kQwen2}},
        {"qwen35", {kQwen35}},
        {"deepseek-llm",
         {"[\\r\\n]", kDeepseekLetters, kDeepseekPunct, R"(\s+$)", kDeepseekCjk, R"(\p{N}+)"}},
        {"deepseek-coder", {"[\\r\\n]", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})"}},
        {"deepseek-v3", {R"(\p{N}{1,3})", kDeepseek3Cjk, kDeepseek3}},
        {"falcon", {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}},
        {"starcoder", {R"(\p{N})", kGpt2}},
        {"bloom", {kBloom}},
        {"viking", {kBloom, R"(\p{N})"}},
        {"tekken", {kTekken}},
        {"gpt-4o", {kGpt4o}},
        {"chameleon",
         {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", R"(\p{N})",
          R"([\p{P}!-/:-@\[-`{-~])", kGpt2}},
        {"bailingmoe", {kBailing}},
        {"seed-coder", {kSeedCoder}},
        {"exaone-moe", {kExaoneMoe}},
    };
    return defs;
}

}  // namespace

PreInfo pre_info(std::string_view pre) {
    // name, canonical, ignore_merges, add_bos, clean_spaces, add_sep, no_bos (llama.cpp's load())
    struct Alias {
        const char *name, *canonical;
        bool ignore_merges, add_bos, clean_spaces, add_sep, no_bos;
    };
    static constexpr Alias kAliases[] = {
        {"default", "default", false, false, true, false, false},
        {"llama3", "llama3", true, true, true, false, false},
        {"llama-v3", "llama3", true, true, true, false, false},
        {"llama-bpe", "llama3", true, true, true, false, false},
        {"falcon3", "llama3", true, true, true, false, false},
        {"falcon-h1", "llama3", true, true, true, false, false},
        {"pixtral", "llama3", true, true, true, false, false},
        {"midm-2.0", "llama3", true, true, true, false, false},
        {"lfm2", "llama3", true, true, true, false, false},
        {"dbrx", "llama3", false, false, true, false, false},
        {"smaug-bpe", "llama3", false, false, true, false, false},
        {"glm4", "llama3", false, false, true, false, true},
        {"chatglm-bpe", "llama3", false, false, true, false, true},
        {"deepseek-llm", "deepseek-llm", false, false, false, false, false},
        {"deepseek-coder", "deepseek-coder", false, false, false, false, false},
        {"deepseek-v3", "deepseek-v3", false, false, false, false, false},
        {"hunyuan-dense", "deepseek-v3", false, false, false, false, false},
        {"falcon", "falcon", false, false, true, false, false},
        {"gpt-2", "gpt-2", false, false, true, false, false},
        {"phi-2", "gpt-2", false, false, true, false, false},
        {"jina-es", "gpt-2", false, false, true, false, false},
        {"jina-de", "gpt-2", false, false, true, false, false},
        {"gigachat", "gpt-2", false, false, true, false, false},
        {"jina-v2-es", "gpt-2", false, false, true, false, false},
        {"jina-v2-de", "gpt-2", false, false, true, false, false},
        {"a.x-4.0", "gpt-2", false, false, true, false, false},
        {"mellum", "gpt-2", false, false, true, false, false},
        {"modern-bert", "gpt-2", false, false, true, false, false},
        {"mpt", "gpt-2", false, false, true, false, false},
        {"olmo", "gpt-2", false, false, true, false, false},
        {"jais", "gpt-2", false, false, true, false, false},
        {"exaone4", "gpt-2", false, false, true, false, false},
        {"jina-v1-en", "gpt-2", false, false, true, true, false},
        {"jina-v2-code", "gpt-2", false, false, true, true, false},
        {"roberta-bpe", "gpt-2", false, false, true, true, false},
        {"trillion", "gpt-2", false, false, false, false, false},
        {"granite-docling", "gpt-2", false, false, false, false, false},
        {"starcoder", "starcoder", false, false, true, false, false},
        {"refact", "starcoder", false, false, true, false, false},
        {"codeshell", "starcoder", false, false, true, false, false},
        {"exaone", "starcoder", false, false, true, false, false},
        {"minerva-7b", "starcoder", false, false, true, false, false},
        {"mellum2", "starcoder", false, false, true, false, false},
        {"command-r", "starcoder", false, false, false, false, false},
        {"smollm", "starcoder", false, false, false, false, false},
        {"qwen2", "qwen2", false, false, false, false, false},
        {"deepseek-r1-qwen", "qwen2", false, false, false, false, false},
        {"kormo", "qwen2", false, false, false, false, false},
        {"f2llmv2", "qwen2", false, false, false, false, false},
        {"hunyuan", "qwen2", false, false, false, false, false},
        {"solar-open", "qwen2", false, false, false, false, false},
        {"grok-2", "qwen2", false, false, false, false, false},
        {"stablelm2", "qwen2", false, false, true, false, false},
        {"megrez", "qwen2", false, false, true, false, false},
        {"qwen35", "qwen35", false, false, false, false, false},
        {"poro-chat", "bloom", false, false, false, false, false},
        {"bloom", "bloom", false, false, true, false, false},
        {"gpt3-finnish", "bloom", false, false, true, false, false},
        {"viking", "viking", false, false, false, false, false},
        {"tekken", "tekken", true, true, false, false, false},
        {"gpt-4o", "gpt-4o", false, false, false, false, false},
        {"llama4", "gpt-4o", false, false, false, false, false},
        {"minimax-m2", "gpt-4o", false, false, false, false, false},
        {"chameleon", "chameleon", false, true, false, false, false},
        {"bailingmoe", "bailingmoe", false, false, false, false, false},
        {"bailingmoe2", "bailingmoe", false, false, false, false, false},
        {"llada-moe", "bailingmoe", false, false, false, false, false},
        {"seed-coder", "seed-coder", false, false, false, false, false},
        {"exaone-moe", "exaone-moe", false, false, true, false, false},
    };
    for (const auto &a : kAliases)
        if (pre == a.name)
            return {a.canonical, a.ignore_merges, a.add_bos, a.clean_spaces, a.add_sep, a.no_bos};
    return {};
}

struct PreTokenizer::Regex {
    pcre2_code *code = nullptr;
    ~Regex() { pcre2_code_free(code); }
};

PreTokenizer::~PreTokenizer() = default;

std::shared_ptr<const PreTokenizer> PreTokenizer::create(std::string_view pre) {
    const PreDef *def = nullptr;
    for (const auto &d : pre_defs())
        if (pre == d.canonical) def = &d;
    if (!def) return nullptr;
    std::shared_ptr<PreTokenizer> p(new PreTokenizer());
    for (const auto &src : def->regexes) {
        const std::string re = expand_ws(src);
        int err = 0;
        PCRE2_SIZE err_off = 0;
        auto rx = std::make_unique<Regex>();
        rx->code =
            pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                          PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NO_AUTO_CAPTURE, &err, &err_off, nullptr);
        if (!rx->code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof msg);
            throw std::runtime_error("pre-tokenizer '" + std::string(pre) + "': regex /" + re + "/ at " +
                                     std::to_string(err_off) + ": " + reinterpret_cast<const char *>(msg));
        }
        pcre2_jit_compile(rx->code, PCRE2_JIT_COMPLETE);  // optional: interpreted when JIT is unavailable
        p->regexes_.push_back(std::move(rx));
    }
    return p;
}

namespace {

// Deep backtracking (long runs through nested repeats: gpt-4o's letter-case groups, exaone-moe's
// word groups) can exhaust PCRE2's default 32 KiB JIT stack. Such a match is retried with a larger
// JIT stack, then with the interpreter and a large heap limit; only if all fail is it an error.
class Matcher {
  public:
    explicit Matcher(const pcre2_code *code)
        : code_(code), md_(pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free) {
        if (!md_) throw std::bad_alloc();
    }

    // Returns false when there is no match from `pos` on; else [begin, end) of the match.
    bool find(std::string_view subject, size_t pos, size_t &begin, size_t &end) {
        const auto *s = reinterpret_cast<PCRE2_SPTR>(subject.data());
        int rc = pcre2_match(code_, s, subject.size(), pos, PCRE2_NO_UTF_CHECK, md_.get(), ctx_.get());
        for (size_t mib = 1; rc == PCRE2_ERROR_JIT_STACKLIMIT && mib <= 256; mib *= 16) {
            grow_jit_stack(mib << 20);
            rc = pcre2_match(code_, s, subject.size(), pos, PCRE2_NO_UTF_CHECK, md_.get(), ctx_.get());
        }
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
            pcre2_set_heap_limit(context(), 4u << 20);  // KiB: 4 GiB
            rc = pcre2_match(code_, s, subject.size(), pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md_.get(),
                             ctx_.get());
        }
        if (rc == PCRE2_ERROR_NOMATCH) return false;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            throw std::runtime_error(std::string("pre-tokenizer: regex match failed: ") +
                                     reinterpret_cast<const char *>(msg));
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md_.get());
        begin = ov[0];
        end = ov[1];
        return true;
    }

  private:
    pcre2_match_context *context() {
        if (!ctx_) ctx_.reset(pcre2_match_context_create(nullptr));
        if (!ctx_) throw std::bad_alloc();
        return ctx_.get();
    }
    void grow_jit_stack(size_t bytes) {
        pcre2_jit_stack *js = pcre2_jit_stack_create(32 << 10, bytes, nullptr);
        if (!js) throw std::bad_alloc();
        pcre2_jit_stack_assign(context(), nullptr, js);  // the context now uses the new stack
        stack_.reset(js);
    }

    const pcre2_code *code_;
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md_;
    std::unique_ptr<pcre2_match_context, decltype(&pcre2_match_context_free)> ctx_{nullptr,
                                                                                   &pcre2_match_context_free};
    std::unique_ptr<pcre2_jit_stack, decltype(&pcre2_jit_stack_free)> stack_{nullptr, &pcre2_jit_stack_free};
};

}  // namespace

void PreTokenizer::split(std::string_view text, std::vector<std::string_view> &out) const {
    std::vector<std::string_view> cur{text}, next;
    if (text.empty()) return;
    for (const auto &rx : regexes_) {
        Matcher m(rx->code);
        next.clear();
        for (std::string_view piece : cur) {
            size_t pos = 0;   // search start
            size_t kept = 0;  // end of the last piece emitted
            size_t b = 0, e = 0;
            while (pos < piece.size() && m.find(piece, pos, b, e)) {
                if (e == b) {  // an empty match splits nothing; go on after the next code point
                    pos = b + std::max<size_t>(1, utf8_seq_len(piece, b));
                    continue;
                }
                if (b > kept) next.push_back(piece.substr(kept, b - kept));
                next.push_back(piece.substr(b, e - b));
                kept = pos = e;
            }
            if (kept < piece.size()) next.push_back(piece.substr(kept));
        }
        std::swap(cur, next);
    }
    out.insert(out.end(), cur.begin(), cur.end());
}

}  // namespace moerun::tok
