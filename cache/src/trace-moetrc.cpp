// Importer for the flat "MOETRC01" traces of ../shared/data/traces (layout: shared/data/README.md,
// mapping: cache/TRACE.md).
//
//   "MOETRC01" | u32 n_layers | u32 n_experts | u32 top_k | u32 n_seqs
//   per sequence: u32 id | u32 domain | u32 prompt_length | u32 n_tokens
//                 i32 token_id[n_tokens] | u8 expert[n_tokens][n_layers][top_k]
//                 | f16 weight[n_tokens][n_layers][top_k]
//
// Only decoded tokens are recorded: every token gets prefill = 0. Weights (softmax over all
// experts, not renormalised) widen exactly to f32. expert_bytes is unknown (0), the model "".
// Two passes like the native reader: sequence headers and sizes first (against the end of the
// file), then allocation and the token data.
#include <cmath>

#include "moerun/quant/half.h"
#include "trace-impl.h"

namespace moerun::cache::trace_detail {

namespace {

constexpr uint64_t kHeaderBytes = 8 + 4 * 4;
constexpr uint64_t kSequenceHeaderBytes = 4 * 4;

std::string seq_field(uint64_t i, const std::string &rest) {
    return "sequence[" + std::to_string(i) + "]" + rest;
}

}  // namespace

Trace read_moetrc(std::span<const uint8_t> bytes, const std::string &name) {
    ByteReader r(bytes, name);
    Trace t;
    TraceShape &shape = t.shape;
    r.take(8, "magic", "magic");
    shape.n_layers = r.read<uint32_t>("n_layers");
    shape.n_experts = r.read<uint32_t>("n_experts");
    shape.top_k = r.read<uint32_t>("top_k");
    check_shape(name, 8, shape.n_layers, shape.n_experts, shape.top_k);
    shape.expert_bytes.assign(shape.n_layers, 0);
    const auto n_seqs = r.read<uint32_t>("n_seqs");
    if (n_seqs > r.remaining() / kSequenceHeaderBytes)
        r.fail(20, "n_seqs",
               std::to_string(n_seqs) + " sequences cannot fit in the " + std::to_string(r.remaining()) +
                   " remaining bytes (a sequence header takes " + std::to_string(kSequenceHeaderBytes) + ")");

    const uint32_t L = shape.n_layers, K = shape.top_k;
    const uint64_t ids = uint64_t{L} * K;      // <= 2^28
    const uint64_t token_bytes = 4 + 3 * ids;  // token id, u8 ids, f16 weights

    // Pass 1: sequence headers; token data skipped; the file must end after the last sequence.
    t.sequences.resize(n_seqs);
    uint64_t total = 0;
    for (uint32_t s = 0; s < n_seqs; ++s) {
        const uint64_t at = r.pos();
        const auto *p = r.take(kSequenceHeaderBytes, seq_field(s, ""), "sequence header");
        TraceSequence &q = t.sequences[s];
        q.id = load_le<uint32_t>(p);
        q.domain = load_le<uint32_t>(p + 4);
        q.prompt_length = load_le<uint32_t>(p + 8);
        q.n_tokens = load_le<uint32_t>(p + 12);
        q.first = total;
        if (q.n_tokens > r.remaining() / token_bytes)
            r.fail(at + 12, seq_field(s, ".n_tokens"),
                   std::to_string(q.n_tokens) + " tokens of " + std::to_string(token_bytes) +
                       " bytes each cannot fit in the " + std::to_string(r.remaining()) + " remaining bytes");
        r.seek(r.pos() + q.n_tokens * token_bytes);
        total += q.n_tokens;
    }
    if (r.remaining() != 0)
        r.fail(r.pos(), "end of file",
               std::to_string(r.remaining()) +
                   " bytes of trailing data after the last sequence, expected the end of the file");

    // Pass 2: bounded by the file size now.
    t.token_ids.resize(total);
    t.prefill.assign(total, 0);
    t.experts.resize(total * ids);
    t.weights.resize(total * ids);
    ExpertChecker checker(shape.n_experts);
    std::string why;
    r.seek(kHeaderBytes);
    for (uint32_t s = 0; s < n_seqs; ++s) {
        const TraceSequence &q = t.sequences[s];
        r.take(kSequenceHeaderBytes, seq_field(s, ""), "sequence header");
        const uint64_t n = q.n_tokens;
        const uint64_t tokens_at = r.pos(), experts_at = tokens_at + 4 * n, weights_at = experts_at + n * ids;
        const uint8_t *p = r.take(n * token_bytes, seq_field(s, ".tokens"), "token data");
        const auto token = [&](uint64_t j, const std::string &rest) {
            return seq_field(s, ".token[" + std::to_string(j) + "]" + rest);
        };
        for (uint64_t j = 0; j < n; ++j) {
            const auto id = load_le<int32_t>(p + 4 * j);
            if (id < -1)
                r.fail(tokens_at + 4 * j, token(j, ".token_id"),
                       "expected a token id >= 0 or -1 (unknown), found " + std::to_string(id));
            t.token_ids[q.first + j] = id;
        }
        const uint8_t *pe = p + 4 * n;
        uint16_t *e = t.experts.data() + q.first * ids;
        for (uint64_t i = 0; i < n * ids; ++i) e[i] = pe[i];
        for (uint64_t j = 0; j < n; ++j)
            for (uint32_t l = 0; l < L; ++l) {
                const uint64_t base = j * ids + uint64_t{l} * K;
                if (const int64_t bad = checker.check({e + base, K}, &why); bad >= 0)
                    r.fail(experts_at + base + static_cast<uint64_t>(bad),
                           token(j, ".layer[" + std::to_string(l) + "].expert[" + std::to_string(bad) + "]"),
                           why);
            }
        const uint8_t *pw = pe + n * ids;
        float *w = t.weights.data() + q.first * ids;
        for (uint64_t i = 0; i < n * ids; ++i) {
            w[i] = quant::fp16_to_fp32(load_le<uint16_t>(pw + 2 * i));
            if (!std::isfinite(w[i]))
                r.fail(weights_at + 2 * i,
                       token(i / ids, ".layer[" + std::to_string(i % ids / K) + "].weight[" +
                                          std::to_string(i % K) + "]"),
                       "expected a finite f16 weight, found " + std::to_string(w[i]));
        }
    }
    return t;
}

}  // namespace moerun::cache::trace_detail
