// moerun's own trace format, MRNTRACE version 1 (layout and rules: cache/TRACE.md): the reader,
// the streaming TraceWriter and write_trace.
//
// The reader makes two passes over the bytes. The first reads the header, every sequence header
// and the section table, checking each count against the bytes that remain and the end of the
// file; only then are the token arrays allocated (their sizes are now bounded by the file size),
// and the second pass fills and checks them (token ids, prefill flags, expert ids, weights).
//
// The writer streams: header first (n_sequences = 0xffffffff, "not closed"), then per sequence a
// header with n_tokens = UINT64_MAX, patched when the sequence ends, and on close the section
// table (none in version 1), the flags (has_weights is known after the first token) and
// n_sequences.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>

#include "trace-impl.h"

namespace moerun::cache {

using namespace trace_detail;

namespace {

std::string seq_field(uint64_t i, std::string_view rest) {
    return "sequence[" + std::to_string(i) + "]" + std::string(rest);
}

std::string fourcc(uint32_t tag) {
    const char c[4] = {static_cast<char>(tag & 0xff), static_cast<char>((tag >> 8) & 0xff),
                       static_cast<char>((tag >> 16) & 0xff), static_cast<char>(tag >> 24)};
    return quoted(std::string_view(c, 4));
}

struct NativeHeader {
    uint32_t flags = 0;
    uint64_t record_bytes = 0;  // one token record
    uint64_t sequences_at = 0;  // offset of the first sequence header
    uint32_t n_sequences = 0;
};

NativeHeader read_header(ByteReader &r, TraceShape &shape) {
    NativeHeader h;
    r.take(8, "magic", "magic");
    const auto version = r.read<uint32_t>("version");
    if (version != kNativeVersion)
        r.fail(8, "version",
               "unsupported version " + std::to_string(version) + ", expected " +
                   std::to_string(kNativeVersion) +
                   (version > kNativeVersion ? " (written by a newer moerun?)" : ""));
    h.flags = r.read<uint32_t>("flags");
    if (h.flags & ~kKnownFlags) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "0x%08x", h.flags & ~kKnownFlags);
        r.fail(12, "flags",
               std::string("unknown flag bits ") + buf +
                   ": version 1 knows only bit 0 (has_weights); a flag this reader does not know changes "
                   "the layout, so the file cannot be read");
    }
    shape.n_layers = r.read<uint32_t>("n_layers");
    shape.n_experts = r.read<uint32_t>("n_experts");
    shape.top_k = r.read<uint32_t>("top_k");
    check_shape(r.name(), 16, shape.n_layers, shape.n_experts, shape.top_k);

    const auto model_bytes = r.read<uint32_t>("model_bytes");
    if (model_bytes > kMaxModelBytes)
        r.fail(
            28, "model_bytes",
            "expected at most " + std::to_string(kMaxModelBytes) + ", found " + std::to_string(model_bytes));
    const auto *m = r.take(model_bytes, "model", "model name");
    shape.model.assign(reinterpret_cast<const char *>(m), model_bytes);
    if (const int64_t bad = invalid_utf8_at(shape.model); bad >= 0)
        r.fail(32 + static_cast<uint64_t>(bad), "model",
               "expected UTF-8 text without NUL, found byte 0x" + hex_bytes({m + bad, 1}) + " at byte " +
                   std::to_string(bad) + " of \"" + printable(shape.model) + "\"");

    const auto *eb = r.take(uint64_t{8} * shape.n_layers, "expert_bytes", "expert_bytes[n_layers]");
    shape.expert_bytes.resize(shape.n_layers);
    for (uint32_t l = 0; l < shape.n_layers; ++l) shape.expert_bytes[l] = load_le<uint64_t>(eb + 8 * l);

    const uint64_t n_seq_at = r.pos();
    h.n_sequences = r.read<uint32_t>("n_sequences");
    if (h.n_sequences == kOpenSequences)
        r.fail(n_seq_at, "n_sequences",
               "found 0xffffffff, the mark of a file whose writer was not closed (interrupted); the trace "
               "is incomplete");
    if (h.n_sequences > r.remaining() / kNativeSequenceHeaderBytes)
        r.fail(n_seq_at, "n_sequences",
               std::to_string(h.n_sequences) + " sequences cannot fit in the " +
                   std::to_string(r.remaining()) + " remaining bytes (a sequence header takes " +
                   std::to_string(kNativeSequenceHeaderBytes) + ")");
    const uint64_t ids = uint64_t{shape.n_layers} * shape.top_k;  // <= 2^28: no overflow below
    h.record_bytes = 4 + 1 + 2 * ids + ((h.flags & kFlagHasWeights) ? 4 * ids : 0);
    h.sequences_at = r.pos();
    return h;
}

// First pass: sequence headers (token data skipped) and the section table, up to the end of the
// file. Fills trace.sequences; returns the total token count.
uint64_t scan_sequences(ByteReader &r, const NativeHeader &h, Trace &trace) {
    trace.sequences.resize(h.n_sequences);
    uint64_t total = 0;
    for (uint32_t i = 0; i < h.n_sequences; ++i) {
        const uint64_t at = r.pos();
        const auto *p = r.take(kNativeSequenceHeaderBytes, seq_field(i, ""), "sequence header");
        TraceSequence &q = trace.sequences[i];
        q.id = load_le<uint32_t>(p);
        q.domain = load_le<uint32_t>(p + 4);
        q.prompt_length = load_le<uint32_t>(p + 8);
        q.n_tokens = load_le<uint64_t>(p + 12);
        q.first = total;
        if (q.n_tokens == kOpenTokens)
            r.fail(at + 12, seq_field(i, ".n_tokens"),
                   "found 0xffffffffffffffff, the mark of a sequence whose writer was not closed "
                   "(interrupted); the trace is incomplete");
        if (q.n_tokens > r.remaining() / h.record_bytes)
            r.fail(at + 12, seq_field(i, ".n_tokens"),
                   std::to_string(q.n_tokens) + " tokens of " + std::to_string(h.record_bytes) +
                       " bytes each cannot fit in the " + std::to_string(r.remaining()) + " remaining bytes");
        r.seek(r.pos() + q.n_tokens * h.record_bytes);
        total += q.n_tokens;
    }

    const uint64_t n_sections_at = r.pos();
    const auto n_sections = r.read<uint32_t>("n_sections");
    if (n_sections > r.remaining() / kNativeSectionHeaderBytes)
        r.fail(n_sections_at, "n_sections",
               std::to_string(n_sections) + " sections cannot fit in the " + std::to_string(r.remaining()) +
                   " remaining bytes (a section header takes " + std::to_string(kNativeSectionHeaderBytes) +
                   ")");
    for (uint32_t i = 0; i < n_sections; ++i) {
        const uint64_t at = r.pos();
        std::string field = "section[";
        field += std::to_string(i) + "]";
        const auto *p = r.take(kNativeSectionHeaderBytes, field, "section header");
        const auto tag = load_le<uint32_t>(p);
        const auto flags = load_le<uint32_t>(p + 4);
        const auto length = load_le<uint64_t>(p + 8);
        if (length > r.remaining())
            r.fail(at + 8, field + ".length",
                   "section of " + std::to_string(length) + " bytes exceeds the " +
                       std::to_string(r.remaining()) + " remaining bytes");
        if (flags & kSectionRequired)
            r.fail(at, field + ".tag",
                   "required section " + fourcc(tag) +
                       " is unknown to this reader (version 1 defines none); the file cannot be read");
        r.seek(r.pos() + length);  // an optional section this version does not know: skipped
    }
    if (r.remaining() != 0)
        r.fail(r.pos(), "end of file",
               std::to_string(r.remaining()) +
                   " bytes of trailing data after the section table, expected the end of the file");
    return total;
}

// Second pass: every token record.
void read_tokens(ByteReader &r, const NativeHeader &h, Trace &t) {
    const uint32_t L = t.shape.n_layers, K = t.shape.top_k;
    const uint64_t ids = uint64_t{L} * K;
    const bool has_weights = (h.flags & kFlagHasWeights) != 0;
    ExpertChecker checker(t.shape.n_experts);
    std::string why;
    r.seek(h.sequences_at);
    for (size_t s = 0; s < t.sequences.size(); ++s) {
        const TraceSequence &q = t.sequences[s];
        r.take(kNativeSequenceHeaderBytes, seq_field(s, ""), "sequence header");
        for (uint64_t j = 0; j < q.n_tokens; ++j) {
            const uint64_t at = r.pos();
            const uint64_t tok = q.first + j;
            const auto token = [&](std::string_view rest) {
                return seq_field(s, ".token[" + std::to_string(j) + "]" + std::string(rest));
            };
            const uint8_t *p = r.take(h.record_bytes, token(""), "token record");
            const auto token_id = load_le<int32_t>(p);
            if (token_id < -1)
                r.fail(at, token(".token_id"),
                       "expected a token id >= 0 or -1 (unknown), found " + std::to_string(token_id));
            t.token_ids[tok] = token_id;
            if (p[4] > 1) r.fail(at + 4, token(".prefill"), "expected 0 or 1, found " + std::to_string(p[4]));
            t.prefill[tok] = p[4];

            uint16_t *e = t.experts.data() + tok * ids;
            for (uint64_t i = 0; i < ids; ++i) e[i] = load_le<uint16_t>(p + 5 + 2 * i);
            for (uint32_t l = 0; l < L; ++l)
                if (const int64_t bad = checker.check({e + uint64_t{l} * K, K}, &why); bad >= 0)
                    r.fail(at + 5 + 2 * (uint64_t{l} * K + static_cast<uint64_t>(bad)),
                           token(".layer[" + std::to_string(l) + "].expert[" + std::to_string(bad) + "]"),
                           why);
            if (!has_weights) continue;
            float *w = t.weights.data() + tok * ids;
            const uint8_t *pw = p + 5 + 2 * ids;
            for (uint64_t i = 0; i < ids; ++i) {
                w[i] = load_le<float>(pw + 4 * i);
                if (!std::isfinite(w[i]))
                    r.fail(
                        at + 5 + 2 * ids + 4 * i,
                        token(".layer[" + std::to_string(i / K) + "].weight[" + std::to_string(i % K) + "]"),
                        "expected a finite weight, found " + std::to_string(w[i]));
            }
        }
    }
}

}  // namespace

namespace trace_detail {

Trace read_native(std::span<const uint8_t> bytes, const std::string &name) {
    ByteReader r(bytes, name);
    Trace t;
    const NativeHeader h = read_header(r, t.shape);
    const uint64_t total = scan_sequences(r, h, t);
    // total * record_bytes <= file size, so these sizes are bounded by the file.
    const uint64_t ids = uint64_t{t.shape.n_layers} * t.shape.top_k;
    t.token_ids.resize(total);
    t.prefill.resize(total);
    t.experts.resize(total * ids);
    if (h.flags & kFlagHasWeights) t.weights.resize(total * ids);
    read_tokens(r, h, t);
    return t;
}

}  // namespace trace_detail

// ---- writer ----

TraceWriter::TraceWriter(const std::string &path, TraceShape shape) : path_(path), shape_(std::move(shape)) {
    check_trace_shape(path_, shape_);
    file_ = std::fopen(path_.c_str(), "wb");
    if (!file_) throw TraceError(path_ + ": cannot create: " + std::strerror(errno));
    std::setvbuf(file_, nullptr, _IOFBF, size_t{1} << 20);
    const uint64_t ids = uint64_t{shape_.n_layers} * shape_.top_k;
    record_.resize(4 + 1 + 6 * ids);
    stamp_.assign(shape_.n_experts, 0);

    uint8_t h[32];
    std::memcpy(h, kNativeMagic, 8);
    store_le<uint32_t>(h + 8, kNativeVersion);
    store_le<uint32_t>(h + 12, 0);  // flags: patched after the first token
    store_le<uint32_t>(h + 16, shape_.n_layers);
    store_le<uint32_t>(h + 20, shape_.n_experts);
    store_le<uint32_t>(h + 24, shape_.top_k);
    store_le<uint32_t>(h + 28, static_cast<uint32_t>(shape_.model.size()));
    flags_at_ = 12;
    try {
        write(h, sizeof h);
        write(shape_.model.data(), shape_.model.size());
        for (uint64_t b : shape_.expert_bytes) {
            uint8_t le[8];
            store_le<uint64_t>(le, b);
            write(le, 8);
        }
        n_sequences_at_ = size_;
        uint8_t ns[4];
        store_le<uint32_t>(ns, kOpenSequences);
        write(ns, 4);
    } catch (...) {
        std::fclose(file_);
        file_ = nullptr;
        throw;
    }
}

TraceWriter::~TraceWriter() {
    try {
        close();
    } catch (const std::exception &e) {
        // Unwinding from another exception (often the same I/O error): that one is reported.
        if (std::uncaught_exceptions() == 0) std::fprintf(stderr, "moerun: %s\n", e.what());
    }
}

void TraceWriter::fail(const std::string &where, std::string_view field, const std::string &message) {
    trace_detail::fail(path_, where, field, message);
}

void TraceWriter::write(const void *data, size_t n) {
    if (std::fwrite(data, 1, n, file_) != n)
        fail("offset " + std::to_string(size_), "write", std::strerror(errno));
    size_ += n;
}

void TraceWriter::write_at(uint64_t offset, const void *data, size_t n) {
    if (std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0 || std::fwrite(data, 1, n, file_) != n ||
        std::fseek(file_, 0, SEEK_END) != 0)
        fail("offset " + std::to_string(offset), "write", std::strerror(errno));
}

void TraceWriter::end_sequence() {
    if (!in_sequence_) return;
    uint8_t b[8];
    store_le<uint64_t>(b, seq_tokens_);
    write_at(seq_tokens_at_, b, 8);
    in_sequence_ = false;
}

void TraceWriter::begin_sequence(uint32_t id, uint32_t prompt_length, uint32_t domain) {
    if (closed_) fail("sequence " + std::to_string(n_sequences_), "begin_sequence", "the writer is closed");
    if (n_sequences_ == kOpenSequences - 1)
        fail("sequence " + std::to_string(n_sequences_), "n_sequences",
             "the format holds at most " + std::to_string(kOpenSequences - 1) + " sequences");
    end_sequence();
    uint8_t h[kNativeSequenceHeaderBytes];
    store_le<uint32_t>(h, id);
    store_le<uint32_t>(h + 4, domain);
    store_le<uint32_t>(h + 8, prompt_length);
    store_le<uint64_t>(h + 12, kOpenTokens);
    seq_tokens_at_ = size_ + 12;
    write(h, sizeof h);
    seq_tokens_ = 0;
    in_sequence_ = true;
    ++n_sequences_;
}

void TraceWriter::add_token(int32_t token_id, bool prefill, std::span<const uint16_t> experts,
                            std::span<const float> weights) {
    const auto where = [&] { return "token " + std::to_string(n_tokens_); };
    if (closed_) fail(where(), "add_token", "the writer is closed");
    if (!in_sequence_) fail(where(), "add_token", "no sequence: call begin_sequence first");
    const uint32_t L = shape_.n_layers, K = shape_.top_k;
    const uint64_t ids = uint64_t{L} * K;
    if (experts.size() != ids)
        fail(where(), "experts",
             "expected n_layers * top_k = " + std::to_string(ids) + " ids, found " +
                 std::to_string(experts.size()));
    if (!weights.empty() && weights.size() != ids)
        fail(where(), "weights",
             "expected none or " + std::to_string(ids) + " weights, found " + std::to_string(weights.size()));
    const bool with_weights = !weights.empty();
    if (has_weights_ >= 0 && with_weights != (has_weights_ == 1))
        fail(where(), "weights",
             has_weights_ ? "expected weights (the first token had them), found none"
                          : "expected no weights (the first token had none), found some");
    if (token_id < -1)
        fail(where(), "token_id",
             "expected a token id >= 0 or -1 (unknown), found " + std::to_string(token_id));
    std::string why;
    for (uint32_t l = 0; l < L; ++l) {
        const int64_t bad =
            check_expert_ids(experts.subspan(uint64_t{l} * K, K), shape_.n_experts, stamp_, tick_, &why);
        if (bad >= 0)
            fail(where(), "layer[" + std::to_string(l) + "].expert[" + std::to_string(bad) + "]", why);
    }
    for (size_t i = 0; i < weights.size(); ++i)
        if (!std::isfinite(weights[i]))
            fail(where(), "layer[" + std::to_string(i / K) + "].weight[" + std::to_string(i % K) + "]",
                 "expected a finite weight, found " + std::to_string(weights[i]));

    if (has_weights_ < 0) {
        has_weights_ = with_weights ? 1 : 0;
        uint8_t b[4];
        store_le<uint32_t>(b, with_weights ? kFlagHasWeights : 0);
        write_at(flags_at_, b, 4);
    }
    uint8_t *p = record_.data();
    store_le<int32_t>(p, token_id);
    p[4] = prefill ? 1 : 0;
    for (uint64_t i = 0; i < ids; ++i) store_le<uint16_t>(p + 5 + 2 * i, experts[i]);
    for (uint64_t i = 0; i < weights.size(); ++i) store_le<float>(p + 5 + 2 * ids + 4 * i, weights[i]);
    write(p, 5 + (with_weights ? 6 : 2) * ids);
    ++seq_tokens_;
    ++n_tokens_;
}

void TraceWriter::close() {
    if (closed_) return;
    closed_ = true;
    try {
        end_sequence();
        const uint8_t no_sections[4] = {0, 0, 0, 0};
        write(no_sections, 4);
        uint8_t b[4];
        store_le<uint32_t>(b, n_sequences_);
        write_at(n_sequences_at_, b, 4);
        if (std::fflush(file_) != 0) fail("offset " + std::to_string(size_), "write", std::strerror(errno));
    } catch (...) {
        std::fclose(file_);
        file_ = nullptr;
        throw;
    }
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) fail("offset " + std::to_string(size_), "close", std::strerror(errno));
}

void write_trace(const std::string &path, const Trace &trace) {
    check_trace(path, trace);
    const TraceShape &s = trace.shape;
    const uint64_t ids = uint64_t{s.n_layers} * s.top_k;
    bool created = false;
    try {
        TraceWriter w(path, s);
        created = true;
        for (const TraceSequence &q : trace.sequences) {
            w.begin_sequence(q.id, q.prompt_length, q.domain);
            for (uint64_t t = q.first; t < q.first + q.n_tokens; ++t) {
                const std::span<const uint16_t> e(trace.experts.data() + t * ids, ids);
                std::span<const float> wt;
                if (!trace.weights.empty()) wt = {trace.weights.data() + t * ids, ids};
                w.add_token(trace.token_ids[t], trace.prefill[t] != 0, e, wt);
            }
        }
        w.close();
    } catch (...) {
        // No partial file that would read as complete (only a regular file: never /dev/...).
        std::error_code ec;
        if (created && std::filesystem::is_regular_file(path, ec)) std::filesystem::remove(path, ec);
        throw;
    }
}

}  // namespace moerun::cache
