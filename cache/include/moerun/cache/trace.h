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

// Reads any of the three formats (chosen by the magic; CSV otherwise). Throws TraceError.
Trace read_trace(const std::string &path);
// Writes moerun's own format. Throws TraceError on an I/O error.
void write_trace(const std::string &path, const Trace &trace);

// Streaming writer for `moerun run --trace-out`: tokens are appended as they are decoded and the
// file is complete after close() (or the destructor).
class TraceWriter {
  public:
    TraceWriter(const std::string &path, TraceShape shape);
    ~TraceWriter();
    TraceWriter(const TraceWriter &) = delete;
    TraceWriter &operator=(const TraceWriter &) = delete;
    void begin_sequence(uint32_t id, uint32_t prompt_length);
    // experts/weights: [n_layers][top_k] for one token.
    void add_token(int32_t token_id, bool prefill, std::span<const uint16_t> experts,
                   std::span<const float> weights);
    void close();

  private:
    std::string path_;
    Trace trace_;
    bool closed_ = false;
};

}  // namespace moerun::cache
