// Routing traces: per token and layer, the selected experts (and their gate weights).
//
// One in-memory form, three file formats:
//   - moerun's own format (MRNTRACE, written by `moerun run --trace-out`, documented in
//     cache/TRACE.md): model shape incl. bytes per expert per layer, sequences, prefill/decode,
//     token ids, experts, gate weights;
//   - the flat "MOETRC01" format of ../shared/data/traces (decode only);
//   - CSV: `seq,token,layer,e0,e1,...` rows (header optional), for traces of other tools.
// Traces are untrusted input: every count, size and id is checked; errors are TraceError with
// the file, the byte offset (or CSV line) and what was expected.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace moerun::cache {

class TraceError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct TraceShape {
    uint32_t n_layers = 0, n_experts = 0, top_k = 0;
    std::vector<uint64_t> expert_bytes;  // [n_layers] bytes of one expert per layer (0: unknown)
    std::string model;                   // model name or file ("" when unknown)
};

struct TraceSequence {
    uint32_t id = 0, domain = 0;
    uint32_t prompt_length = 0;  // tokens of the prompt (recorded or not)
    uint64_t first = 0;          // index of the sequence's first token in Trace
    uint64_t n_tokens = 0;
};

struct Trace {
    TraceShape shape;
    std::vector<TraceSequence> sequences;
    std::vector<int32_t> token_ids;  // [n_tokens] (-1 when unknown)
    std::vector<uint8_t> prefill;    // [n_tokens] 1 for a prompt token, 0 for a decoded one
    std::vector<uint16_t> experts;   // [n_tokens][n_layers][top_k] in rank order
    std::vector<float> weights;      // same shape as experts, or empty when not recorded

    uint64_t n_tokens() const { return token_ids.size(); }
    std::span<const uint16_t> experts_at(uint64_t token, uint32_t layer) const {
        const size_t k = shape.top_k;
        return {experts.data() + (token * shape.n_layers + layer) * k, k};
    }
    std::span<const float> weights_at(uint64_t token, uint32_t layer) const {
        if (weights.empty()) return {};
        const size_t k = shape.top_k;
        return {weights.data() + (token * shape.n_layers + layer) * k, k};
    }
};

// Whether a trace can be used with a model of n_layers x n_experts (and top-k when it drives the
// routing; top_k 0 accepts any): "" when it can, else why not (shapes of both sides, or no tokens).
// Callers check this before indexing any of its rows.
std::string trace_mismatch(const Trace &trace, uint32_t n_layers, uint32_t n_experts, uint32_t top_k);

// Reads any of the three formats (chosen by the magic; CSV otherwise). Throws TraceError.
Trace read_trace(const std::string &path);
// The same on bytes in memory; `name` stands for the path in error messages (fuzzing, tests).
Trace read_trace_bytes(std::span<const uint8_t> bytes, const std::string &name);
// Writes moerun's own format. Checks the whole trace first (TraceError naming the bad field,
// nothing written); throws TraceError on an I/O error and then leaves no partial file.
void write_trace(const std::string &path, const Trace &trace);

// Streaming writer for `moerun run --trace-out`: tokens are appended as they are decoded and the
// file is complete after close() (or the destructor). Each token goes to the file at once (a
// buffered FILE); a sequence's token count is patched when the next sequence begins or on close,
// the sequence count on close. Until then the file reads as "not closed" (cache/TRACE.md).
// Weights are recorded when the first token has them; then every token must have them.
// Every token is checked (ids < n_experts, no repeats, finite weights); errors and I/O errors
// throw TraceError (a rejected token writes nothing: the writer stays usable). add_token does not
// allocate.
class TraceWriter {
  public:
    TraceWriter(const std::string &path, TraceShape shape);
    ~TraceWriter();  // closes; an error there is printed to stderr (a destructor cannot throw)
    TraceWriter(const TraceWriter &) = delete;
    TraceWriter &operator=(const TraceWriter &) = delete;
    void begin_sequence(uint32_t id, uint32_t prompt_length, uint32_t domain = 0);
    // experts/weights: [n_layers][top_k] for one token; weights empty when not recorded.
    void add_token(int32_t token_id, bool prefill, std::span<const uint16_t> experts,
                   std::span<const float> weights);
    void close();
    uint64_t n_tokens() const { return n_tokens_; }  // tokens written so far

  private:
    std::string path_;
    TraceShape shape_;
    std::FILE *file_ = nullptr;
    bool closed_ = false;
    bool in_sequence_ = false;
    int has_weights_ = -1;         // -1 until the first token decides
    uint64_t flags_at_ = 0;        // byte offset of the header's flags
    uint64_t n_sequences_at_ = 0;  // byte offset of the header's n_sequences
    uint64_t seq_tokens_at_ = 0;   // byte offset of the open sequence's n_tokens
    uint64_t seq_tokens_ = 0;      // tokens of the open sequence
    uint32_t n_sequences_ = 0;
    uint64_t n_tokens_ = 0;
    uint64_t size_ = 0;            // bytes written so far: the file's end
    std::vector<uint8_t> record_;  // one token record, sized once
    std::vector<uint64_t> stamp_;  // [n_experts] duplicate check (see ExpertChecker)
    uint64_t tick_ = 0;

    void write_at(uint64_t offset, const void *data, size_t n);
    void write(const void *data, size_t n);
    void end_sequence();
    [[noreturn]] void fail(const std::string &where, std::string_view field, const std::string &message);
};

}  // namespace moerun::cache
