// libFuzzer target for the routing-trace readers (cache/TRACE.md): MRNTRACE, MOETRC01 and CSV,
// through read_trace_bytes, the function read_trace uses on the file's bytes.
//
// The only exception allowed out of the reader is TraceError; anything else escapes this
// function, which libFuzzer reports as a crash, as it does any sanitizer finding. On what
// parses, the trace's invariants are checked (sizes consistent, sequences cover the tokens in
// order, ids < n_experts and distinct per (token, layer), prefill 0/1, finite weights); a
// violation traps. Built as `fuzz-trace` (clang, -fsanitize=fuzzer) and as `fuzz-trace-replay`
// (any compiler, with replay-main.cpp), which runs the seed corpus as a unit test.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "moerun/cache/trace.h"

namespace {

namespace cache = moerun::cache;

void check(const cache::Trace &t) {
    const cache::TraceShape &s = t.shape;
    if (s.n_layers < 1 || s.n_experts < 1 || s.top_k < 1 || s.top_k > s.n_experts) __builtin_trap();
    if (s.expert_bytes.size() != s.n_layers) __builtin_trap();
    const uint64_t n = t.n_tokens(), ids = uint64_t{s.n_layers} * s.top_k;
    if (t.prefill.size() != n || t.experts.size() != n * ids) __builtin_trap();
    if (!t.weights.empty() && t.weights.size() != t.experts.size()) __builtin_trap();
    uint64_t next = 0;
    for (const auto &q : t.sequences) {
        if (q.first != next) __builtin_trap();
        next += q.n_tokens;
    }
    if (next != n) __builtin_trap();
    std::vector<uint64_t> seen(s.n_experts, 0);
    uint64_t tick = 0;
    for (uint64_t tok = 0; tok < n; ++tok) {
        if (t.prefill[tok] > 1 || t.token_ids[tok] < -1) __builtin_trap();
        for (uint32_t l = 0; l < s.n_layers; ++l) {
            ++tick;
            for (uint16_t e : t.experts_at(tok, l)) {
                if (e >= s.n_experts || seen[e] == tick) __builtin_trap();
                seen[e] = tick;
            }
            for (float w : t.weights_at(tok, l))
                if (!std::isfinite(w)) __builtin_trap();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        check(cache::read_trace_bytes(std::span<const uint8_t>(data, size), "fuzz.trace"));
    } catch (const cache::TraceError &) {
    }
    return 0;
}
