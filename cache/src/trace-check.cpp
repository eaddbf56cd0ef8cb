// Validation shared by every trace reader and writer: the shape limits, one (token, layer) list
// of expert ids, UTF-8 model names, and a whole in-memory Trace before it is written.
#include <cmath>

#include "trace-impl.h"

namespace moerun::cache::trace_detail {

int64_t check_expert_ids(std::span<const uint16_t> ids, uint32_t n_experts, std::vector<uint64_t> &stamp,
                         uint64_t &tick, std::string *why) {
    const uint64_t now = ++tick;
    for (size_t r = 0; r < ids.size(); ++r) {
        const uint16_t e = ids[r];
        if (e >= n_experts) {
            *why = "expert id " + std::to_string(e) +
                   " out of range, expected < n_experts = " + std::to_string(n_experts);
            return static_cast<int64_t>(r);
        }
        if (stamp[e] == now) {
            size_t first = 0;
            while (ids[first] != e) ++first;
            *why = "expert " + std::to_string(e) + " selected twice (ranks " + std::to_string(first) +
                   " and " + std::to_string(r) + "), expected distinct experts";
            return static_cast<int64_t>(r);
        }
        stamp[e] = now;
    }
    return -1;
}

void check_shape(const std::string &name, uint64_t at, uint32_t n_layers, uint32_t n_experts,
                 uint32_t top_k) {
    if (n_layers < 1 || n_layers > kMaxLayers)
        fail_at(name, at, "n_layers",
                "expected 1.." + std::to_string(kMaxLayers) + ", found " + std::to_string(n_layers));
    if (n_experts < 1 || n_experts > kMaxExperts)
        fail_at(name, at + 4, "n_experts",
                "expected 1.." + std::to_string(kMaxExperts) + ", found " + std::to_string(n_experts));
    if (top_k < 1 || top_k > n_experts)
        fail_at(name, at + 8, "top_k",
                "expected 1..n_experts (" + std::to_string(n_experts) + "), found " + std::to_string(top_k));
}

int64_t invalid_utf8_at(std::string_view s) {
    const auto *p = reinterpret_cast<const unsigned char *>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        const unsigned c = p[i];
        if (c == 0) return static_cast<int64_t>(i);
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return static_cast<int64_t>(i);
        }
        if (n - i < len) return static_cast<int64_t>(i);
        for (size_t j = 1; j < len; ++j) {
            if ((p[i + j] & 0xC0) != 0x80) return static_cast<int64_t>(i);
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return static_cast<int64_t>(i);
        i += len;
    }
    return -1;
}

void check_trace_shape(const std::string &name, const TraceShape &s) {
    const auto bad = [&](const std::string &field, const std::string &message) {
        fail(name, "trace to write", field, message);
    };
    if (s.n_layers < 1 || s.n_layers > kMaxLayers)
        bad("n_layers",
            "expected 1.." + std::to_string(kMaxLayers) + ", found " + std::to_string(s.n_layers));
    if (s.n_experts < 1 || s.n_experts > kMaxExperts)
        bad("n_experts",
            "expected 1.." + std::to_string(kMaxExperts) + ", found " + std::to_string(s.n_experts));
    if (s.top_k < 1 || s.top_k > s.n_experts)
        bad("top_k",
            "expected 1..n_experts (" + std::to_string(s.n_experts) + "), found " + std::to_string(s.top_k));
    if (s.expert_bytes.size() != s.n_layers)
        bad("expert_bytes", "expected n_layers = " + std::to_string(s.n_layers) + " entries, found " +
                                std::to_string(s.expert_bytes.size()));
    if (s.model.size() > kMaxModelBytes)
        bad("model", "expected at most " + std::to_string(kMaxModelBytes) + " bytes, found " +
                         std::to_string(s.model.size()));
    if (const int64_t at = invalid_utf8_at(s.model); at >= 0)
        bad("model", "not valid UTF-8 (or a NUL) at byte " + std::to_string(at));
}

void check_trace(const std::string &name, const Trace &t) {
    const TraceShape &s = t.shape;
    const auto bad = [&](const std::string &field, const std::string &message) {
        fail(name, "trace to write", field, message);
    };
    check_trace_shape(name, s);

    const uint64_t n = t.token_ids.size();
    const uint64_t per_token = uint64_t{s.n_layers} * s.top_k;
    if (t.prefill.size() != n)
        bad("prefill", "expected " + std::to_string(n) + " entries (one per token), found " +
                           std::to_string(t.prefill.size()));
    if (t.experts.size() / per_token != n || t.experts.size() % per_token != 0)
        bad("experts", "expected n_tokens * n_layers * top_k = " + std::to_string(n * per_token) +
                           " ids, found " + std::to_string(t.experts.size()));
    if (!t.weights.empty() && t.weights.size() != t.experts.size())
        bad("weights", "expected none or " + std::to_string(t.experts.size()) + ", found " +
                           std::to_string(t.weights.size()));
    if (t.sequences.size() >= kOpenSequences)
        bad("sequences", "expected fewer than " + std::to_string(kOpenSequences) + ", found " +
                             std::to_string(t.sequences.size()));
    uint64_t next = 0;
    for (size_t i = 0; i < t.sequences.size(); ++i) {
        const TraceSequence &q = t.sequences[i];
        if (q.first != next || q.n_tokens > n - next)
            bad("sequences[" + std::to_string(i) + "]",
                "expected tokens [" + std::to_string(next) + ", ...) within the " + std::to_string(n) +
                    " tokens, found first " + std::to_string(q.first) + ", n_tokens " +
                    std::to_string(q.n_tokens));
        next += q.n_tokens;
    }
    if (next != n)
        bad("sequences", "cover " + std::to_string(next) + " tokens, expected all " + std::to_string(n));

    ExpertChecker checker(s.n_experts);
    std::string why;
    for (uint64_t tok = 0; tok < n; ++tok) {
        const auto token = [tok] { return "token[" + std::to_string(tok) + "]"; };
        if (t.token_ids[tok] < -1)
            bad(token() + ".token_id", "expected >= -1, found " + std::to_string(t.token_ids[tok]));
        if (t.prefill[tok] > 1)
            bad(token() + ".prefill", "expected 0 or 1, found " + std::to_string(t.prefill[tok]));
        for (uint32_t l = 0; l < s.n_layers; ++l) {
            if (const int64_t r = checker.check(t.experts_at(tok, l), &why); r >= 0)
                bad(token() + ".layer[" + std::to_string(l) + "].expert[" + std::to_string(r) + "]", why);
            const auto w = t.weights_at(tok, l);
            for (size_t r = 0; r < w.size(); ++r)
                if (!std::isfinite(w[r]))
                    bad(token() + ".layer[" + std::to_string(l) + "].weight[" + std::to_string(r) + "]",
                        "expected a finite weight, found " + std::to_string(w[r]));
        }
    }
}

}  // namespace moerun::cache::trace_detail

namespace moerun::cache {

std::string trace_mismatch(const Trace &t, uint32_t n_layers, uint32_t n_experts, uint32_t top_k) {
    const TraceShape &s = t.shape;
    if (s.n_layers != n_layers || s.n_experts != n_experts || (top_k != 0 && s.top_k != top_k))
        return "the trace is " + std::to_string(s.n_layers) + " layers x " + std::to_string(s.n_experts) +
               " experts, top-" + std::to_string(s.top_k) + "; the model is " + std::to_string(n_layers) +
               " layers x " + std::to_string(n_experts) + " experts" +
               (top_k != 0 ? ", top-" + std::to_string(top_k) : std::string()) +
               ": not a trace of this model";
    if (t.n_tokens() == 0) return "the trace has no tokens";
    return {};
}

}  // namespace moerun::cache
