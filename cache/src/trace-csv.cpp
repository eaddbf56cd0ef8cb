// Importer for CSV routing traces of other tools (format and rules: cache/TRACE.md):
//
//   # comment                           ('#' lines anywhere; "# n_experts=N" sets n_experts)
//   seq,token,layer,e0,e1,...           (optional header: the first row, starting with a non-digit)
//   0,0,0,12,3,40,7
//
// One row per (sequence, token, layer), experts in rank order. top_k comes from the first row,
// n_layers = max layer + 1, n_experts = max id + 1 unless given. Rows of one token are together
// (layers in any order, each exactly once), tokens of a sequence in increasing order, a
// sequence's rows together. Token ids are unknown (-1), every token is prefill = 0, no weights.
// Errors name the line: "<path>: line N: <field>: <message>".
#include <algorithm>
#include <charconv>
#include <unordered_set>

#include "trace-impl.h"

namespace moerun::cache::trace_detail {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

// "e<rank>", the name of an expert column (appended: GCC 12 warns, -Wrestrict, on "e" + string).
std::string expert_field(uint64_t rank) {
    std::string s = "e";
    return s += std::to_string(rank);
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

class CsvReader {
  public:
    CsvReader(std::span<const uint8_t> bytes, const std::string &name)
        : text_(reinterpret_cast<const char *>(bytes.data()), bytes.size()), name_(name) {}

    Trace run() {
        size_t pos = 0;
        while (pos < text_.size()) {
            size_t end = text_.find('\n', pos);
            if (end == std::string_view::npos) end = text_.size();
            ++line_;
            line(trim(text_.substr(pos, end - pos)));
            pos = end + 1;
        }
        return finish();
    }

  private:
    struct Token {  // one (seq, token): its rows are rows_[first_row, first_row + n_rows)
        uint32_t seq;
        uint64_t first_row, n_rows;
        uint64_t line;  // of its first row
    };
    struct Row {
        uint64_t line;
        uint32_t layer;
    };

    std::string_view text_;
    const std::string &name_;
    uint64_t line_ = 0;
    bool seen_data_ = false, seen_first_line_ = false;
    uint32_t top_k_ = 0;
    uint64_t top_k_line_ = 0;
    uint32_t given_experts_ = 0;  // "# n_experts=N", 0 when not given
    uint64_t given_experts_line_ = 0;
    uint32_t max_layer_ = 0;
    uint32_t max_id_ = 0;
    uint64_t max_id_line_ = 0;
    std::vector<Token> tokens_;
    std::vector<uint64_t> token_index_;  // per token: its index within the sequence
    std::vector<Row> rows_;
    std::vector<uint16_t> ids_;  // [rows][top_k]
    std::unordered_set<uint32_t> finished_seqs_;
    std::vector<uint64_t> stamp_ = std::vector<uint64_t>(kMaxExperts, 0);
    uint64_t tick_ = 0;

    [[noreturn]] void fail(uint64_t line, std::string_view field, const std::string &message) const {
        trace_detail::fail(name_, "line " + std::to_string(line), field, message);
    }

    // The field as an integer <= max; `field` names it in the error (built only then).
    template <typename Field>
    uint64_t parse_uint(std::string_view field_text, const Field &field, uint64_t max) const {
        const std::string_view s = trim(field_text);
        uint64_t v = 0;
        const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || ec == std::errc::invalid_argument || p != s.data() + s.size())
            fail(line_, field(), "expected a non-negative integer, found \"" + printable(s) + "\"");
        if (ec == std::errc::result_out_of_range || v > max)
            fail(line_, field(), "expected at most " + std::to_string(max) + ", found " + printable(s));
        return v;
    }
    static auto named(std::string_view name) {
        return [name] { return std::string(name); };
    }

    void comment(std::string_view c) {
        c = trim(c.substr(1));
        constexpr std::string_view kKey = "n_experts";
        if (c.substr(0, kKey.size()) != kKey) return;
        std::string_view rest = trim(c.substr(kKey.size()));
        if (rest.empty() || rest.front() != '=') return;
        if (given_experts_)
            fail(line_, "n_experts",
                 "given twice (first at line " + std::to_string(given_experts_line_) + "), expected once");
        const auto n = parse_uint(rest.substr(1), named("n_experts"), kMaxExperts);
        if (n == 0) fail(line_, "n_experts", "expected 1.." + std::to_string(kMaxExperts) + ", found 0");
        given_experts_ = static_cast<uint32_t>(n);
        given_experts_line_ = line_;
    }

    void line(std::string_view s) {
        if (s.empty()) return;
        if (s.front() == '#') return comment(s);
        const bool first = !seen_first_line_;
        seen_first_line_ = true;
        if (first && !is_digit(s.front())) return;  // header
        row(s);
    }

    void row(std::string_view s) {
        // Split into fields without allocating: seq, token, layer, then the experts.
        uint64_t seq = 0, token = 0, layer = 0;
        size_t n_fields = 0;
        const size_t row_ids_at = ids_.size();
        size_t pos = 0;
        for (;;) {
            const size_t comma = s.find(',', pos);
            const std::string_view f = s.substr(pos, comma == std::string_view::npos ? s.npos : comma - pos);
            switch (n_fields) {
                case 0:
                    seq = parse_uint(f, named("seq"), UINT32_MAX);
                    break;
                case 1:
                    token = parse_uint(f, named("token"), UINT64_MAX);
                    break;
                case 2:
                    layer = parse_uint(f, named("layer"), kMaxLayers - 1);
                    break;
                default: {
                    const auto e = n_fields - 3;
                    if (seen_data_ && e >= top_k_)
                        fail(line_, expert_field(e),
                             "more experts than top_k = " + std::to_string(top_k_) + " (from line " +
                                 std::to_string(top_k_line_) + "); top_k must be the same on every row");
                    const auto name = [e] { return expert_field(e); };
                    ids_.push_back(static_cast<uint16_t>(parse_uint(f, name, kMaxExperts - 1)));
                }
            }
            ++n_fields;
            if (comma == std::string_view::npos) break;
            pos = comma + 1;
        }
        if (n_fields < 4)
            fail(line_, "row",
                 "found " + std::to_string(n_fields) + " fields, expected seq,token,layer,e0[,e1,...]");
        const auto k = static_cast<uint32_t>(n_fields - 3);
        if (!seen_data_) {
            seen_data_ = true;
            top_k_ = k;
            top_k_line_ = line_;
        } else if (k != top_k_) {
            fail(line_, "row",
                 "found " + std::to_string(k) + " experts, expected top_k = " + std::to_string(top_k_) +
                     " (from line " + std::to_string(top_k_line_) + "); top_k must be the same on every row");
        }
        std::string why;
        const std::span<const uint16_t> row_ids(ids_.data() + row_ids_at, k);
        if (const int64_t bad = check_expert_ids(row_ids, kMaxExperts, stamp_, tick_, &why); bad >= 0)
            fail(line_, expert_field(static_cast<uint64_t>(bad)), why);
        for (uint16_t e : row_ids)
            if (max_id_line_ == 0 || e > max_id_) {
                max_id_ = e;
                max_id_line_ = line_;
            }

        const auto seq32 = static_cast<uint32_t>(seq);
        if (tokens_.empty() || tokens_.back().seq != seq32 || token_index_.back() != token) {
            if (!tokens_.empty() && tokens_.back().seq == seq32) {
                if (token <= token_index_.back())
                    fail(line_, "token",
                         "found " + std::to_string(token) + " after token " +
                             std::to_string(token_index_.back()) + " of sequence " + std::to_string(seq) +
                             ", expected increasing token indices with each token's rows together");
            } else {
                if (!tokens_.empty()) finished_seqs_.insert(tokens_.back().seq);
                if (finished_seqs_.count(seq32))
                    fail(line_, "seq",
                         "rows of sequence " + std::to_string(seq) +
                             " resume after other sequences, expected each sequence's rows together");
            }
            tokens_.push_back(Token{seq32, rows_.size(), 0, line_});
            token_index_.push_back(token);
        }
        ++tokens_.back().n_rows;
        rows_.push_back(Row{line_, static_cast<uint32_t>(layer)});
        if (layer > max_layer_) max_layer_ = static_cast<uint32_t>(layer);
    }

    Trace finish() {
        if (!seen_data_)
            fail(line_ + 1, "end of file", "no data rows, expected rows seq,token,layer,e0[,e1,...]");
        Trace t;
        TraceShape &s = t.shape;
        s.n_layers = max_layer_ + 1;
        s.top_k = top_k_;
        s.n_experts = given_experts_ ? given_experts_ : max_id_ + 1u;
        s.expert_bytes.assign(s.n_layers, 0);
        if (given_experts_ && max_id_ >= given_experts_)
            fail(max_id_line_, "expert",
                 "expert id " + std::to_string(max_id_) + " out of range, expected < n_experts = " +
                     std::to_string(given_experts_) + " (line " + std::to_string(given_experts_line_) + ")");
        if (top_k_ > s.n_experts)
            fail(given_experts_line_, "n_experts",
                 std::to_string(s.n_experts) + " is less than top_k = " + std::to_string(top_k_));

        const uint64_t n = tokens_.size(), L = s.n_layers, K = s.top_k;
        t.token_ids.assign(n, -1);
        t.prefill.assign(n, 0);
        // Every token has each layer exactly once (checked before the experts are allocated:
        // then rows = n_tokens * n_layers, and the array is no larger than the ids already read).
        std::vector<uint64_t> filled_by(L, 0);  // per layer: line that gave it, for the current token
        for (uint64_t i = 0; i < n; ++i) {
            const Token &tok = tokens_[i];
            std::fill(filled_by.begin(), filled_by.end(), 0);
            for (uint64_t r = tok.first_row; r < tok.first_row + tok.n_rows; ++r) {
                const Row &row = rows_[r];
                if (filled_by[row.layer])
                    fail(row.line, "layer",
                         "layer " + std::to_string(row.layer) + " of sequence " + std::to_string(tok.seq) +
                             " token " + std::to_string(token_index_[i]) + " already given at line " +
                             std::to_string(filled_by[row.layer]) + ", expected each layer once per token");
                filled_by[row.layer] = row.line;
            }
            for (uint32_t l = 0; l < L; ++l)
                if (!filled_by[l])
                    fail(tok.line, "layer",
                         "sequence " + std::to_string(tok.seq) + " token " + std::to_string(token_index_[i]) +
                             " (rows from line " + std::to_string(tok.line) + ") has no row for layer " +
                             std::to_string(l) + ", expected every layer 0.." + std::to_string(L - 1) +
                             " once per token");
            if (t.sequences.empty() || t.sequences.back().id != tok.seq)
                t.sequences.push_back(TraceSequence{tok.seq, 0, 0, i, 0});
            ++t.sequences.back().n_tokens;
        }
        t.experts.resize(n * L * K);
        for (uint64_t i = 0; i < n; ++i)
            for (uint64_t r = tokens_[i].first_row; r < tokens_[i].first_row + tokens_[i].n_rows; ++r)
                std::copy_n(ids_.data() + r * K, K, t.experts.data() + (i * L + rows_[r].layer) * K);
        return t;
    }
};

}  // namespace

Trace read_csv(std::span<const uint8_t> bytes, const std::string &name) {
    return CsvReader(bytes, name).run();
}

}  // namespace moerun::cache::trace_detail
