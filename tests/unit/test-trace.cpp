// Routing traces (cache/TRACE.md): moerun's own format round-trips exactly through write_trace
// and the streaming TraceWriter; corrupted files (every truncation, bit flips in the header
// counts, bad ids, repeats, non-finite weights, unknown versions, flags and sections) throw
// TraceError naming the byte offset and field, never crash; hand-built MOETRC01 and CSV files
// import as documented, CSV errors name the line. Also reads the shipped OLMoE trace.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "moerun/cache/trace.h"

using moerun::cache::read_trace;
using moerun::cache::read_trace_bytes;
using moerun::cache::Trace;
using moerun::cache::TraceError;
using moerun::cache::TraceSequence;
using moerun::cache::TraceShape;
using moerun::cache::TraceWriter;
using moerun::cache::write_trace;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

// A fresh directory per test process, removed at exit.
struct TempDir {
    fs::path path = fs::temp_directory_path() / ("moerun-test-trace-" + std::to_string(::getpid()));
    TempDir() { fs::create_directories(path); }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const std::string &name) const { return (path / name).string(); }
};
const TempDir &tmp() {
    static TempDir d;
    return d;
}

Bytes read_bytes(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

uint32_t next_rand(uint64_t &state) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
}

TraceShape make_shape(uint32_t L, uint32_t E, uint32_t K) {
    TraceShape s;
    s.n_layers = L;
    s.n_experts = E;
    s.top_k = K;
    for (uint32_t l = 0; l < L; ++l) s.expert_bytes.push_back(1000003ull * (l + 1));
    s.model = "t\xc3\xa9st-moe \xe2\x9c\x93";  // "tést-moe ✓"
    return s;
}

// Sequences of the given lengths; distinct experts per (token, layer); weights when asked.
Trace make_trace(uint32_t L, uint32_t E, uint32_t K, const std::vector<uint64_t> &lengths, bool weights,
                 uint64_t seed = 1) {
    Trace t;
    t.shape = make_shape(L, E, K);
    std::vector<uint16_t> perm(E);
    for (uint32_t s = 0; s < lengths.size(); ++s) {
        t.sequences.push_back(TraceSequence{100 + s, s % 3, 7 * s + 1, t.n_tokens(), lengths[s]});
        for (uint64_t j = 0; j < lengths[s]; ++j) {
            t.token_ids.push_back(j == 1 ? -1 : static_cast<int32_t>(next_rand(seed) % 50000));
            t.prefill.push_back(j < 3 ? 1 : 0);
            for (uint32_t l = 0; l < L; ++l) {
                for (uint32_t e = 0; e < E; ++e) perm[e] = static_cast<uint16_t>(e);
                for (uint32_t r = 0; r < K; ++r) {
                    std::swap(perm[r], perm[r + next_rand(seed) % (E - r)]);
                    t.experts.push_back(perm[r]);
                    if (weights)
                        t.weights.push_back(static_cast<float>(next_rand(seed) % 1000) / 997.0f - 0.25f);
                }
            }
        }
    }
    return t;
}

void check_same(const Trace &a, const Trace &b) {
    CHECK(a.shape.n_layers == b.shape.n_layers);
    CHECK(a.shape.n_experts == b.shape.n_experts);
    CHECK(a.shape.top_k == b.shape.top_k);
    CHECK(a.shape.expert_bytes == b.shape.expert_bytes);
    CHECK(a.shape.model == b.shape.model);
    REQUIRE(a.sequences.size() == b.sequences.size());
    for (size_t i = 0; i < a.sequences.size(); ++i) {
        CHECK(a.sequences[i].id == b.sequences[i].id);
        CHECK(a.sequences[i].domain == b.sequences[i].domain);
        CHECK(a.sequences[i].prompt_length == b.sequences[i].prompt_length);
        CHECK(a.sequences[i].first == b.sequences[i].first);
        CHECK(a.sequences[i].n_tokens == b.sequences[i].n_tokens);
    }
    CHECK(a.token_ids == b.token_ids);
    CHECK(a.prefill == b.prefill);
    CHECK(a.experts == b.experts);
    REQUIRE(a.weights.size() == b.weights.size());
    if (!a.weights.empty())  // memcmp needs valid pointers even for 0 bytes
        CHECK(std::memcmp(a.weights.data(), b.weights.data(), a.weights.size() * sizeof(float)) == 0);
}

// The TraceError that reading `b` throws (the test fails when it reads or throws anything else).
std::string read_error(const Bytes &b, const std::string &name = "t.trace") {
    try {
        read_trace_bytes(b, name);
    } catch (const TraceError &e) {
        return e.what();
    } catch (const std::exception &e) {
        FAIL("threw a non-TraceError exception: " << e.what());
    }
    FAIL("read a corrupted file");
    return {};
}

#define CHECK_TRACE_ERROR(bytes, ...)                                                    \
    do {                                                                                 \
        const std::string what_ = read_error(bytes);                                     \
        INFO("what(): " << what_);                                                       \
        for (const std::string &part_ : std::initializer_list<std::string>{__VA_ARGS__}) \
            CHECK(what_.find(part_) != what_.npos);                                      \
    } while (0)

void put_u32(Bytes &b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(Bytes &b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const Bytes &b, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{b[at + i]} << (8 * i);
    return v;
}

// Byte offsets in a native file (cache/TRACE.md).
struct NativeLayout {
    size_t n_sequences, first_sequence, first_record, record;
    NativeLayout(const TraceShape &s, bool weights) {
        n_sequences = 32 + s.model.size() + 8 * s.n_layers;
        first_sequence = n_sequences + 4;
        first_record = first_sequence + 20;
        record = 5 + (weights ? 6 : 2) * size_t{s.n_layers} * s.top_k;
    }
};

Bytes native_bytes(const Trace &t, const std::string &name) {
    const std::string path = tmp().file(name);
    write_trace(path, t);
    return read_bytes(path);
}

// A MOETRC01 file: 2 layers, 4 experts, top-2; sequences of 2 and 1 tokens.
Bytes moetrc_bytes() {
    Bytes b;
    const auto u32 = [&](uint32_t v) {
        for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    const auto f16 = [&](uint16_t v) {
        b.push_back(static_cast<uint8_t>(v)), b.push_back(static_cast<uint8_t>(v >> 8));
    };
    for (char c : std::string("MOETRC01")) b.push_back(static_cast<uint8_t>(c));
    u32(2), u32(4), u32(2), u32(2);
    u32(5), u32(1), u32(90), u32(2);  // id 5, domain 1, prompt 90, 2 tokens
    u32(11), u32(12);
    for (int e : {3, 1, 0, 2, 2, 3, 1, 0}) b.push_back(static_cast<uint8_t>(e));
    for (int h : {0x3800, 0x3400, 0x3c00, 0x0000, 0x3a00, 0x2e66, 0x3555, 0x3000})
        f16(static_cast<uint16_t>(h));
    u32(6), u32(0), u32(7), u32(1);
    u32(13);
    for (int e : {0, 1, 3, 2}) b.push_back(static_cast<uint8_t>(e));
    for (int h : {0x3800, 0x3800, 0x3800, 0x3800}) f16(static_cast<uint16_t>(h));
    return b;
}

Bytes text(const std::string &s) {
    return Bytes(s.begin(), s.end());
}

}  // namespace

TEST_CASE("native format: write_trace then read_trace round-trips exactly") {
    for (const bool weights : {true, false}) {
        CAPTURE(weights);
        const Trace t = make_trace(3, 16, 4, {5, 0, 9, 1}, weights);
        const std::string path = tmp().file("round-trip.trace");
        write_trace(path, t);
        check_same(read_trace(path), t);
        check_same(read_trace_bytes(read_bytes(path), "mem"), t);
        // Size: header, 4 sequence headers, 15 token records, empty section table.
        const NativeLayout at(t.shape, weights);
        CHECK(read_bytes(path).size() == at.first_sequence + 4 * 20 + 15 * at.record + 4);
    }
    // Extremes: one layer, top_k = n_experts, the largest ids, an empty trace.
    const Trace wide = make_trace(1, 65536, 3, {2}, true, 7);
    check_same(read_trace_bytes(native_bytes(wide, "wide.trace"), "wide"), wide);
    Trace empty;
    empty.shape = make_shape(2, 8, 8);
    empty.shape.model.clear();
    check_same(read_trace_bytes(native_bytes(empty, "empty.trace"), "empty"), empty);
}

TEST_CASE("trace_mismatch: a trace fits a model of its layers and experts (and top-k when asked)") {
    const Trace t = make_trace(3, 16, 4, {2, 1}, false);
    CHECK(trace_mismatch(t, 3, 16, 4).empty());
    CHECK(trace_mismatch(t, 3, 16, 0).empty());  // top-k not asked
    CHECK(trace_mismatch(t, 3, 16, 2) ==
          "the trace is 3 layers x 16 experts, top-4; the model is 3 layers x 16 experts, top-2: "
          "not a trace of this model");
    CHECK(trace_mismatch(t, 2, 16, 0) ==
          "the trace is 3 layers x 16 experts, top-4; the model is 2 layers x 16 experts: "
          "not a trace of this model");
    CHECK(trace_mismatch(t, 3, 17, 4).find("not a trace of this model") != std::string::npos);
    Trace empty;
    empty.shape = make_shape(3, 16, 4);
    CHECK(trace_mismatch(empty, 3, 16, 4) == "the trace has no tokens");
}

TEST_CASE("TraceWriter streams sequences and tokens; close() and the destructor finish the file") {
    const Trace want = make_trace(4, 32, 3, {6, 2, 0, 3}, true, 3);
    const uint64_t ids = 4 * 3;
    const auto stream = [&](const std::string &path, bool explicit_close) {
        TraceWriter w(path, want.shape);
        for (const TraceSequence &q : want.sequences) {
            w.begin_sequence(q.id, q.prompt_length, q.domain);
            for (uint64_t t = q.first; t < q.first + q.n_tokens; ++t)
                w.add_token(want.token_ids[t], want.prefill[t] != 0, {want.experts.data() + t * ids, ids},
                            {want.weights.data() + t * ids, ids});
        }
        CHECK(w.n_tokens() == want.n_tokens());
        if (explicit_close) {
            w.close();
            w.close();  // a second close does nothing
        }
    };
    stream(tmp().file("writer-close.trace"), true);
    check_same(read_trace(tmp().file("writer-close.trace")), want);
    stream(tmp().file("writer-dtor.trace"), false);
    check_same(read_trace(tmp().file("writer-dtor.trace")), want);
    CHECK(read_bytes(tmp().file("writer-close.trace")) == native_bytes(want, "writer-ref.trace"));

    // No sequence at all, and a file without weights.
    { TraceWriter w(tmp().file("writer-none.trace"), want.shape); }
    const Trace none = read_trace(tmp().file("writer-none.trace"));
    CHECK(none.sequences.empty());
    CHECK(none.n_tokens() == 0);
    {
        TraceWriter w(tmp().file("writer-noweights.trace"), want.shape);
        w.begin_sequence(9, 2);
        w.add_token(1, true, {want.experts.data(), ids}, {});
        w.add_token(2, false, {want.experts.data() + ids, ids}, {});
    }
    const Trace nw = read_trace(tmp().file("writer-noweights.trace"));
    CHECK(nw.weights.empty());
    REQUIRE(nw.sequences.size() == 1);
    CHECK(nw.sequences[0].n_tokens == 2);
    CHECK(nw.sequences[0].domain == 0);
    CHECK(nw.prefill == std::vector<uint8_t>{1, 0});
}

TEST_CASE("TraceWriter and write_trace reject bad input and I/O errors with TraceError") {
    const TraceShape shape = make_shape(2, 8, 2);
    const std::vector<uint16_t> ok = {0, 1, 2, 3};
    const std::vector<float> w = {0.5f, 0.25f, 0.5f, 0.25f};
    const auto expect = [](auto &&f, std::initializer_list<const char *> parts) {
        try {
            f();
            FAIL("no TraceError");
        } catch (const TraceError &e) {
            INFO("what(): " << e.what());
            for (const char *p : parts) CHECK(std::string(e.what()).find(p) != std::string::npos);
        }
    };
    const std::string path = tmp().file("writer-errors.trace");
    {
        TraceWriter wr(path, shape);
        expect([&] { wr.add_token(0, false, ok, w); }, {"writer-errors.trace", "begin_sequence"});
        wr.begin_sequence(0, 0);
        expect([&] { wr.add_token(0, false, std::span(ok).first(3), w); },
               {"experts", "expected n_layers * top_k = 4"});
        expect([&] { wr.add_token(0, false, ok, std::span(w).first(1)); }, {"weights"});
        const std::vector<uint16_t> out = {0, 1, 2, 8}, dup = {0, 1, 5, 5};
        expect([&] { wr.add_token(0, false, out, w); }, {"token 0: layer[1].expert[1]", "out of range", "8"});
        expect([&] { wr.add_token(0, false, dup, w); }, {"layer[1].expert[1]", "selected twice"});
        const std::vector<float> nan = {0.5f, std::numeric_limits<float>::quiet_NaN(), 0.f, 0.f};
        expect([&] { wr.add_token(0, false, ok, nan); }, {"layer[0].weight[1]", "finite"});
        expect([&] { wr.add_token(-2, false, ok, w); }, {"token_id"});
        wr.add_token(3, false, ok, w);  // the writer is still usable after rejected tokens
        expect([&] { wr.add_token(4, false, ok, {}); }, {"expected weights"});
        wr.close();
        expect([&] { wr.add_token(4, false, ok, w); }, {"closed"});
        expect([&] { wr.begin_sequence(1, 0); }, {"closed"});
    }
    const Trace back = read_trace(path);
    CHECK(back.n_tokens() == 1);
    CHECK(back.token_ids == std::vector<int32_t>{3});

    expect([&] { TraceWriter wr("/nonexistent-dir/x.trace", shape); },
           {"/nonexistent-dir/x.trace", "cannot create"});
    expect([&] { write_trace("/nonexistent-dir/x.trace", make_trace(2, 8, 2, {1}, false)); },
           {"/nonexistent-dir/x.trace"});
    if (fs::exists("/dev/full"))
        expect([&] { write_trace("/dev/full", make_trace(2, 8, 2, {1}, false)); }, {"/dev/full", "write"});
    TraceShape bad = shape;
    bad.expert_bytes.pop_back();
    expect([&] { TraceWriter wr(tmp().file("bad-shape.trace"), bad); }, {"expert_bytes"});
    bad = shape;
    bad.top_k = 9;
    expect([&] { TraceWriter wr(tmp().file("bad-shape.trace"), bad); }, {"top_k"});
    bad = shape;
    bad.model = "bad \xff utf-8";
    expect([&] { TraceWriter wr(tmp().file("bad-shape.trace"), bad); }, {"model", "UTF-8"});

    // write_trace checks the whole trace first and leaves no file behind.
    Trace t = make_trace(2, 8, 2, {3, 2}, true);
    t.experts[7] = 9;
    const std::string p2 = tmp().file("invalid.trace");
    expect([&] { write_trace(p2, t); }, {"token[1].layer[1].expert[1]", "out of range"});
    CHECK(!fs::exists(p2));
    t = make_trace(2, 8, 2, {3, 2}, true);
    t.sequences[1].first = 2;
    expect([&] { write_trace(p2, t); }, {"sequences[1]"});
    t = make_trace(2, 8, 2, {3, 2}, true);
    t.weights.pop_back();
    expect([&] { write_trace(p2, t); }, {"weights"});
}

TEST_CASE("native format: every truncation and any trailing byte is a TraceError, never a crash") {
    const Bytes full = native_bytes(make_trace(2, 8, 2, {3, 0, 2}, true), "truncate.trace");
    for (size_t n = 0; n < full.size(); ++n) {
        CAPTURE(n);
        const std::string what = read_error(Bytes(full.begin(), full.begin() + static_cast<long>(n)));
        CHECK(what.rfind("t.trace: offset ", 0) == 0);
    }
    Bytes longer = full;
    longer.push_back(0);
    CHECK_TRACE_ERROR(longer, "offset " + std::to_string(full.size()), "trailing data");
    CHECK_TRACE_ERROR(Bytes(full.begin(), full.end() - 1), "n_sections", "unexpected end of file");
    CHECK_TRACE_ERROR(Bytes(full.begin(), full.begin() + 5), "offset 0: magic", "truncated magic");
    CHECK_TRACE_ERROR(Bytes{}, "offset 0: magic", "empty file");
}

TEST_CASE("native format: bit flips in the header counts are TraceErrors") {
    const Trace t = make_trace(2, 8, 2, {3, 2}, true);
    const Bytes good = native_bytes(t, "flip.trace");
    const NativeLayout at(t.shape, true);
    struct Field {
        const char *name;
        size_t offset, bytes;
    };
    const Field fields[] = {{"version", 8, 4},
                            {"flags", 12, 4},
                            {"n_layers", 16, 4},
                            {"n_experts", 20, 4},
                            {"top_k", 24, 4},
                            {"model_bytes", 28, 4},
                            {"n_sequences", at.n_sequences, 4},
                            {"n_tokens", at.first_sequence + 12, 8}};
    for (const Field &f : fields)
        for (size_t bit = 0; bit < 8 * f.bytes; ++bit) {
            CAPTURE(f.name);
            CAPTURE(bit);
            Bytes b = good;
            b[f.offset + bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
            if (std::string(f.name) == "n_experts") {
                // A larger n_experts is still consistent with every id (nothing can tell); smaller
                // than an id used, or beyond the limit, it is an error.
                const uint32_t n = get_u32(b, 20);
                if (n > 8 && n <= 65536) {
                    CHECK(read_trace_bytes(b, "t").shape.n_experts == n);
                    continue;
                }
            }
            read_error(b);
        }
}

TEST_CASE("native format: header, id, weight and section errors name the offset and the field") {
    const Trace t = make_trace(2, 8, 2, {3, 2}, true);
    const Bytes good = native_bytes(t, "errors.trace");
    const NativeLayout at(t.shape, true);
    Bytes b;

    b = good, b[0] = 'X';
    CHECK_TRACE_ERROR(b, "t.trace: offset 0: magic: found \"XRNTRACE\"", "not a trace");
    b = good, put_u32(b, 8, 2);
    CHECK_TRACE_ERROR(b, "offset 8: version: unsupported version 2, expected 1", "newer moerun");
    b = good, put_u32(b, 12, 1u << 5 | 1u);
    CHECK_TRACE_ERROR(b, "offset 12: flags: unknown flag bits 0x00000020");
    b = good, put_u32(b, 16, 5000);
    CHECK_TRACE_ERROR(b, "offset 16: n_layers: expected 1..4096, found 5000");
    b = good, put_u32(b, 20, 70000);
    CHECK_TRACE_ERROR(b, "offset 20: n_experts: expected 1..65536, found 70000");
    b = good, put_u32(b, 24, 0);
    CHECK_TRACE_ERROR(b, "offset 24: top_k: expected 1..n_experts (8), found 0");
    b = good, put_u32(b, 28, 100000);
    CHECK_TRACE_ERROR(b, "offset 28: model_bytes: expected at most 4096, found 100000");
    b = good, b[33] = 0xff;
    CHECK_TRACE_ERROR(b, "offset 33: model: expected UTF-8");
    b = good, put_u32(b, at.n_sequences, 0xffffffffu);
    CHECK_TRACE_ERROR(b, "n_sequences: found 0xffffffff", "not closed");
    b = good, put_u32(b, at.n_sequences, 1u << 30);
    CHECK_TRACE_ERROR(b, "offset " + std::to_string(at.n_sequences) + ": n_sequences", "cannot fit");
    b = good, put_u64(b, at.first_sequence + 12, UINT64_MAX);
    CHECK_TRACE_ERROR(b, "sequence[0].n_tokens: found 0xffffffffffffffff", "not closed");
    b = good, put_u64(b, at.first_sequence + 12, 1ull << 60);
    CHECK_TRACE_ERROR(b, "sequence[0].n_tokens: 1152921504606846976 tokens of 29 bytes each cannot fit");

    // Token 1 of sequence 0, layer 1, rank 0: its id is at record + 5 + 2 * (1 * 2 + 0).
    const size_t rec1 = at.first_record + at.record, id_at = rec1 + 5 + 2 * 2;
    b = good, b[id_at] = 8, b[id_at + 1] = 0;
    CHECK_TRACE_ERROR(b,
                      "t.trace: offset " + std::to_string(id_at) +
                          ": sequence[0].token[1].layer[1].expert[0]: expert id 8 out of range, expected < "
                          "n_experts = 8");
    b = good, b[id_at + 2] = b[id_at], b[id_at + 3] = b[id_at + 1];
    CHECK_TRACE_ERROR(b, "offset " + std::to_string(id_at + 2) + ": sequence[0].token[1].layer[1].expert[1]",
                      "selected twice (ranks 0 and 1)");
    const size_t w_at = rec1 + 5 + 2 * 4 + 4 * 3;  // layer 1, rank 1
    b = good, put_u32(b, w_at, 0x7f800000u);
    CHECK_TRACE_ERROR(b, "offset " + std::to_string(w_at) + ": sequence[0].token[1].layer[1].weight[1]",
                      "expected a finite weight, found inf");
    b = good, b[rec1 + 4] = 2;
    CHECK_TRACE_ERROR(b, "offset " + std::to_string(rec1 + 4) + ": sequence[0].token[1].prefill",
                      "expected 0 or 1, found 2");
    b = good, put_u32(b, rec1, static_cast<uint32_t>(-7));
    CHECK_TRACE_ERROR(b, "sequence[0].token[1].token_id", "found -7");

    // Sections: an optional one is skipped, a required one is refused.
    const auto with_section = [&](uint32_t flags) {
        Bytes s = good;
        put_u32(s, s.size() - 4, 1);
        for (uint8_t c : {'P', 'R', 'E', 'D'}) s.push_back(c);
        for (int i = 0; i < 4; ++i) s.push_back(static_cast<uint8_t>(flags >> (8 * i)));
        for (int i = 0; i < 8; ++i) s.push_back(i == 0 ? 3 : 0);
        for (int i = 0; i < 3; ++i) s.push_back(0xab);
        return s;
    };
    check_same(read_trace_bytes(with_section(0), "t"), t);
    CHECK_TRACE_ERROR(with_section(1), "section[0].tag: required section \"PRED\" is unknown");
    b = with_section(0), b.pop_back();
    CHECK_TRACE_ERROR(b, "section[0].length: section of 3 bytes exceeds the 2 remaining bytes");
}

TEST_CASE("MOETRC01: a hand-built file imports as documented") {
    const Bytes b = moetrc_bytes();
    const Trace t = read_trace_bytes(b, "small.moetrc");
    CHECK(t.shape.n_layers == 2);
    CHECK(t.shape.n_experts == 4);
    CHECK(t.shape.top_k == 2);
    CHECK(t.shape.expert_bytes == std::vector<uint64_t>{0, 0});
    CHECK(t.shape.model.empty());
    REQUIRE(t.sequences.size() == 2);
    CHECK(t.sequences[0].id == 5);
    CHECK(t.sequences[0].domain == 1);
    CHECK(t.sequences[0].prompt_length == 90);
    CHECK(t.sequences[0].first == 0);
    CHECK(t.sequences[0].n_tokens == 2);
    CHECK(t.sequences[1].id == 6);
    CHECK(t.sequences[1].prompt_length == 7);
    CHECK(t.sequences[1].first == 2);
    CHECK(t.token_ids == std::vector<int32_t>{11, 12, 13});
    CHECK(t.prefill == std::vector<uint8_t>{0, 0, 0});
    CHECK(t.experts == std::vector<uint16_t>{3, 1, 0, 2, 2, 3, 1, 0, 0, 1, 3, 2});
    REQUIRE(t.weights.size() == 12);
    CHECK(t.weights[0] == 0.5f);
    CHECK(t.weights[1] == 0.25f);
    CHECK(t.weights[2] == 1.0f);
    CHECK(t.weights[3] == 0.0f);
    CHECK(t.weights[4] == 0.75f);
    CHECK(t.weights[5] == doctest::Approx(0.1).epsilon(1e-3));
    CHECK(t.experts_at(1, 1)[1] == 0);
    CHECK(t.weights_at(2, 1)[0] == 0.5f);

    // Converted to moerun's format, it reads back the same.
    const std::string path = tmp().file("from-moetrc.trace");
    write_trace(path, t);
    check_same(read_trace(path), t);

    for (size_t n = 0; n < b.size(); ++n) read_error(Bytes(b.begin(), b.begin() + static_cast<long>(n)));
    Bytes x = b;
    x.push_back(1);
    CHECK_TRACE_ERROR(x, "offset 104: end of file", "1 bytes of trailing data");
    x = b, x[24 + 16 + 8 + 2] = 4;  // sequence 0 token 0 layer 1 rank 0
    CHECK_TRACE_ERROR(x, "offset 50: sequence[0].token[0].layer[1].expert[0]: expert id 4 out of range");
    x = b, x[24 + 16 + 8 + 1] = 3;
    CHECK_TRACE_ERROR(x, "offset 49: sequence[0].token[0].layer[0].expert[1]", "selected twice");
    x = b, x[24 + 16 + 8 + 8 + 2] = 0x00, x[24 + 16 + 8 + 8 + 3] = 0x7c;
    CHECK_TRACE_ERROR(x, "offset 58: sequence[0].token[0].layer[0].weight[1]", "finite");
    x = b, put_u32(x, 20, 1u << 31);
    CHECK_TRACE_ERROR(x, "offset 20: n_seqs", "cannot fit");
    x = b, put_u32(x, 24 + 12, 1000);
    CHECK_TRACE_ERROR(x, "offset 36: sequence[0].n_tokens: 1000 tokens of 16 bytes each cannot fit");
    x = b, put_u32(x, 16, 5);
    CHECK_TRACE_ERROR(x, "offset 16: top_k: expected 1..n_experts (4), found 5");
    x = b, x[7] = '2';
    CHECK_TRACE_ERROR(x, "offset 0: magic: found \"MOETRC02\"", "unsupported MOETRC version");
}

TEST_CASE("CSV: rows import with header, comments, CRLF and any layer order") {
    const std::string csv =
        "# exported by some tool\r\n"
        "seq,token,layer,e0,e1\r\n"
        "3,0,1,4,5\r\n"
        "3,0,0,1,2\n"
        "\n"
        "3, 2 ,0,0,7\n"
        "3,2,1,6,1\n"
        "# n_experts=10\n"
        "1,0,0,9,8\n"
        "1,0,1,8,9";
    const Trace t = read_trace_bytes(text(csv), "t.csv");
    CHECK(t.shape.n_layers == 2);
    CHECK(t.shape.n_experts == 10);
    CHECK(t.shape.top_k == 2);
    CHECK(t.shape.expert_bytes == std::vector<uint64_t>{0, 0});
    REQUIRE(t.sequences.size() == 2);
    CHECK(t.sequences[0].id == 3);
    CHECK(t.sequences[0].n_tokens == 2);
    CHECK(t.sequences[1].id == 1);
    CHECK(t.sequences[1].first == 2);
    CHECK(t.experts == std::vector<uint16_t>{1, 2, 4, 5, 0, 7, 6, 1, 9, 8, 8, 9});
    CHECK(t.token_ids == std::vector<int32_t>{-1, -1, -1});
    CHECK(t.prefill == std::vector<uint8_t>{0, 0, 0});
    CHECK(t.weights.empty());
    // Without the directive n_experts = max id + 1; no header needed; a file path works too.
    const std::string path = tmp().file("plain.csv");
    std::ofstream(path) << "0,0,0,2,0,1\n0,1,0,1,3,0\n";
    const Trace p = read_trace(path);
    CHECK(p.shape.n_experts == 4);
    CHECK(p.shape.top_k == 3);
    CHECK(p.shape.n_layers == 1);
    CHECK(p.n_tokens() == 2);
}

TEST_CASE("CSV: errors name the line") {
    CHECK_TRACE_ERROR(text("0,0,0,1,2\n0,0,1,1\n"),
                      "t.trace: line 2: row: found 1 experts, expected top_k = 2");
    CHECK_TRACE_ERROR(text("0,0,0,1,2\n0,0,1,1,2,3\n"), "line 2: e2: more experts than top_k = 2");
    CHECK_TRACE_ERROR(text("0,0,0,1,2\n0,0,1,3,4\n0,1,0,1,2\n"), "line 3: layer",
                      "sequence 0 token 1 (rows from line 3) has no row for layer 1");
    CHECK_TRACE_ERROR(text("0,0,0,1,2\n0,0,0,3,4\n"),
                      "line 2: layer: layer 0 of sequence 0 token 0 already given at line 1");
    CHECK_TRACE_ERROR(text("0,5,0,1,2\n0,4,0,1,2\n"), "line 2: token: found 4 after token 5 of sequence 0");
    CHECK_TRACE_ERROR(text("0,0,0,1,2\n1,0,0,1,2\n0,1,0,1,2\n"), "line 3: seq: rows of sequence 0 resume");
    CHECK_TRACE_ERROR(text("h\n0,0,0,1,x\n"), "line 2: e1: expected a non-negative integer, found \"x\"");
    CHECK_TRACE_ERROR(text("0,0,0,1,2\n0,1,0,1,-2\n"), "line 2: e1: expected a non-negative integer");
    CHECK_TRACE_ERROR(text("0,0,0,1,1\n"), "line 1: e1: expert 1 selected twice (ranks 0 and 1)");
    CHECK_TRACE_ERROR(text("0,0,0,1,70000\n"), "line 1: e1: expected at most 65535");
    CHECK_TRACE_ERROR(text("0,0,4096,1\n"), "line 1: layer: expected at most 4095");
    CHECK_TRACE_ERROR(text("0,0,0\n"), "line 1: row: found 3 fields");
    CHECK_TRACE_ERROR(text("0,0,4095,1\n0,1,4095,1\n"), "line 1: layer", "has no row for layer 0");
    CHECK_TRACE_ERROR(text("# n_experts=4\n0,0,0,1,2\n0,1,0,3,4\n"),
                      "line 3: expert: expert id 4 out of range, expected < n_experts = 4 (line 1)");
    CHECK_TRACE_ERROR(text("# n_experts=1\n0,0,0,0,1\n"), "n_experts");
    CHECK_TRACE_ERROR(text("# n_experts=0\n0,0,0,1\n"), "line 1: n_experts: expected 1..65536, found 0");
    CHECK_TRACE_ERROR(text("# only a comment\nseq,token,layer,e0\n"), "line 3: end of file: no data rows");
    CHECK_TRACE_ERROR(text("0,0,0,1\nseq,token,layer,e0\n"), "line 2: seq: expected a non-negative integer");
    CHECK_TRACE_ERROR(text("4294967296,0,0,1\n"), "line 1: seq: expected at most 4294967295");
}

TEST_CASE("OLMoE MOETRC01 trace: reads fast; shape, tokens and consecutive-token overlap") {
    const fs::path file = fs::path(MOERUN_SHARED_DATA) / "traces" / "olmoe-1b-7b-decode-general-coding.bin";
    if (!fs::exists(file)) {
        MESSAGE("skipped: no " << file.string());
        return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const Trace t = read_trace(file.string());
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("read " << file.filename().string() << " (" << fs::file_size(file) << " bytes) in " << ms
                    << " ms");
    CHECK(ms < 5000);  // Release: a few tens of ms; loose for Debug and sanitizer builds
    CHECK(t.shape.n_layers == 16);
    CHECK(t.shape.n_experts == 64);
    CHECK(t.shape.top_k == 8);
    CHECK(t.sequences.size() == 200);
    CHECK(t.n_tokens() > 24000);
    CHECK(t.n_tokens() <= 25600);
    CHECK(t.weights.size() == t.experts.size());
    CHECK(t.prefill == std::vector<uint8_t>(t.n_tokens(), 0));

    // Mean over sequences' consecutive token pairs and layers of |E(t-1) ∩ E(t)| / top_k.
    const uint32_t L = t.shape.n_layers, K = t.shape.top_k;
    double sum = 0, pairs = 0, domain_sum[2] = {0, 0}, domain_pairs[2] = {0, 0}, weight_sum = 0;
    for (const TraceSequence &q : t.sequences)
        for (uint64_t tok = q.first + 1; tok < q.first + q.n_tokens; ++tok)
            for (uint32_t l = 0; l < L; ++l) {
                const auto a = t.experts_at(tok - 1, l), b = t.experts_at(tok, l);
                int shared = 0;
                for (uint16_t x : a)
                    for (uint16_t y : b) shared += x == y;
                const double o = static_cast<double>(shared) / K;
                sum += o, pairs += 1;
                if (q.domain < 2) domain_sum[q.domain] += o, domain_pairs[q.domain] += 1;
                for (float w : t.weights_at(tok, l)) weight_sum += w;
            }
    double seq_mean = 0;  // the same, averaged per sequence first
    for (const TraceSequence &q : t.sequences) {
        double s = 0;
        for (uint64_t tok = q.first + 1; tok < q.first + q.n_tokens; ++tok)
            for (uint32_t l = 0; l < L; ++l)
                for (uint16_t x : t.experts_at(tok - 1, l))
                    for (uint16_t y : t.experts_at(tok, l)) s += x == y;
        if (q.n_tokens > 1) seq_mean += s / (K * L * static_cast<double>(q.n_tokens - 1));
    }
    seq_mean /= static_cast<double>(t.sequences.size());
    const double overlap = sum / pairs;
    MESSAGE("tokens " << t.n_tokens() << ", consecutive-token top-8 overlap " << overlap * 100
                      << "% (domain 0: " << 100 * domain_sum[0] / domain_pairs[0]
                      << "%, domain 1: " << 100 * domain_sum[1] / domain_pairs[1] << "%), per-sequence mean "
                      << 100 * seq_mean << "%, mean top-8 weight mass " << weight_sum / pairs);
    CHECK(overlap > 0.35);
    CHECK(overlap < 0.50);
    const double mass = weight_sum / pairs;  // softmax over 64 experts, top 8 of it: in (0, 1]
    CHECK(mass > 0.1);
    CHECK(mass <= 1.0);

    // And through moerun's own format, unchanged.
    const std::string path = tmp().file("olmoe.trace");
    write_trace(path, t);
    check_same(read_trace(path), t);
}

TEST_CASE("fuzz seeds, written from cache/TRACE.md by make_trace_seeds.py, read as documented") {
    const fs::path dir = fs::path(MOERUN_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "trace";
    const Trace w = read_trace((dir / "native-weights.trace").string());
    CHECK(w.shape.n_layers == 2);
    CHECK(w.shape.n_experts == 8);
    CHECK(w.shape.top_k == 2);
    CHECK(w.shape.model == "seed-moe");
    CHECK(w.shape.expert_bytes == std::vector<uint64_t>{4096, 8192});
    REQUIRE(w.sequences.size() == 3);
    CHECK(w.sequences[1].id == 7);
    CHECK(w.sequences[1].n_tokens == 0);
    CHECK(w.sequences[2].domain == 2);
    CHECK(w.token_ids == std::vector<int32_t>{10, 11, 12, 13, -1});
    CHECK(w.prefill == std::vector<uint8_t>{1, 1, 0, 0, 1});
    // token t, layer l, rank r: (3t + 5l + 7r) % 8; weight 1 / (2 + r)
    CHECK(w.experts_at(3, 1)[1] == (9 + 5 + 7) % 8);
    CHECK(w.weights_at(3, 1)[1] == 1.0f / 3);

    const Trace nw = read_trace((dir / "native-no-weights.trace").string());
    CHECK(nw.weights.empty());
    CHECK(nw.shape.model.empty());
    CHECK(nw.n_tokens() == 3);
    CHECK(nw.experts_at(2, 2)[3] == (6 + 10 + 21) % 16);

    const Trace sec = read_trace((dir / "native-section.trace").string());
    CHECK(sec.shape.model ==
          "s\xc3\xa9"
          "ction");
    CHECK(sec.n_tokens() == 4);

    const Trace m = read_trace((dir / "moetrc-small.bin").string());
    CHECK(m.sequences.size() == 2);
    CHECK(m.sequences[1].prompt_length == 9);
    CHECK(m.n_tokens() == 5);
    CHECK(m.token_ids[4] == 101);
    CHECK(m.weights_at(4, 1)[1] == 0.5f);

    const Trace c = read_trace((dir / "csv-small.csv").string());
    CHECK(c.n_tokens() == 3);
    CHECK(c.experts == std::vector<uint16_t>{1, 2, 3, 4, 6, 7, 5, 0, 2, 1, 0, 7});
}
