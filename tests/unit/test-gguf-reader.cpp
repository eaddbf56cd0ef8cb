// GGUF reader: valid files (v2/v3, every value type, nested arrays, custom alignment, tensors,
// expert slices), typed getters, and corrupted files, each of which must throw gguf::Error
// naming the right field and byte offset, never crash. Also reads the real vocab GGUFs.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>

#include "gguf-builder.h"
#include "moerun/runtime/gguf.h"

using moerun::gguf::Array;
using moerun::gguf::Error;
using moerun::gguf::GgufFile;
using moerun::gguf::ValueType;
using moerun::quant::Type;
using namespace moerun::test;

namespace {

GgufFile parse(const std::vector<uint8_t> &b, std::string name = "t.gguf") {
    return GgufFile::from_memory(std::move(name), b);
}

// The gguf::Error that parsing `b` throws; fails the test when it parses or throws anything else.
std::optional<Error> parse_error(const std::vector<uint8_t> &b) {
    try {
        parse(b);
    } catch (const Error &e) {
        return e;
    } catch (const std::exception &e) {
        FAIL("threw a non-gguf exception: " << e.what());
        return std::nullopt;
    }
    FAIL("parsed a corrupted file");
    return std::nullopt;
}

#define CHECK_GGUF_ERROR(bytes, field_part, at, message_part)                     \
    do {                                                                          \
        const auto err_ = parse_error(bytes);                                     \
        REQUIRE(err_.has_value());                                                \
        INFO("what(): " << std::string(err_->what()));                            \
        CHECK(err_->field().find(field_part) != std::string::npos);               \
        CHECK(err_->offset() == (at));                                            \
        CHECK(std::string(err_->what()).find(message_part) != std::string::npos); \
    } while (0)

// A small file with every value type, a nested array and three tensors of different types.
GgufBuilder every_type_builder(uint32_t version = 3) {
    GgufBuilder b;
    b.version = version;
    b.kv("general.architecture", str("testarch"));
    b.kv("v.u8", u8(200)).kv("v.i8", i8(-100)).kv("v.u16", u16(60000)).kv("v.i16", i16(-30000));
    b.kv("v.u32", u32(4000000000u)).kv("v.i32", i32(-2000000000)).kv("v.f32", f32(1.5f));
    b.kv("v.bool", boolean(true)).kv("v.str", str("h\xc3\xa9llo")).kv("v.u64", u64(UINT64_MAX));
    b.kv("v.i64", i64(INT64_MIN)).kv("v.f64", f64(-2.25));
    b.kv("v.empty_str", str(""));
    b.kv("a.u8", arr(kU8, {u8(1), u8(2), u8(255)}));
    b.kv("a.i16", arr(kI16, {i16(-1), i16(7)}));
    b.kv("a.f32", arr(kF32, {f32(0.5f), f32(-3.0f)}));
    b.kv("a.f64", arr(kF64, {f64(1e300)}));
    b.kv("a.u64", arr(kU64, {u64(UINT64_MAX), u64(5)}));
    b.kv("a.i64", arr(kI64, {i64(-5)}));
    b.kv("a.bool", arr(kBool, {boolean(false), boolean(true)}));
    b.kv("a.str", arr(kString, {str("x"), str(""), str("zz")}));
    b.kv("a.empty", arr(kU32, {}));
    b.kv("a.nested", arr(kArray, {arr(kI32, {i32(1), i32(-2)}), arr(kI32, {}), arr(kI32, {i32(3)})}));
    b.kv("a.nested_str", arr(kArray, {arr(kString, {str("p"), str("q")})}));
    b.tensor("f32.weight", Type::F32, {3, 2});
    b.tensor("q8.weight", Type::Q8_0, {64, 2});
    b.tensor("experts.weight", Type::Q8_0, {64, 32, 4});  // [n_expert=4, rows=32, cols=64]
    return b;
}

void check_every_type(const GgufFile &f) {
    CHECK(f.get_string("general.architecture") == "testarch");
    CHECK(f.get_uint("v.u8") == 200);
    CHECK(f.get_int("v.i8") == -100);
    CHECK(f.get_uint("v.u16") == 60000);
    CHECK(f.get_int("v.i16") == -30000);
    CHECK(f.get_uint("v.u32") == 4000000000u);
    CHECK(f.get_int("v.i32") == -2000000000);
    CHECK(f.get_float("v.f32") == 1.5);
    CHECK(f.get_bool("v.bool"));
    CHECK(f.get_string("v.str") == "h\xc3\xa9llo");
    CHECK(f.get_uint("v.u64") == UINT64_MAX);
    CHECK(f.get_int("v.i64") == INT64_MIN);
    CHECK(f.get_float("v.f64") == -2.25);
    CHECK(f.get_string("v.empty_str").empty());
    CHECK(f.find("v.u8")->type == ValueType::UINT8);
    CHECK(f.find("v.f64")->type == ValueType::FLOAT64);

    const Array &au8 = f.get_array("a.u8");
    CHECK(au8.elem_type == ValueType::UINT8);
    REQUIRE(au8.count == 3);
    CHECK(au8.get_int(2) == 255);
    CHECK(au8.get_float(0) == 1.0);
    CHECK_THROWS_AS(au8.get_int(3), std::out_of_range);
    CHECK(f.get_array("a.i16").get_int(0) == -1);
    CHECK(f.get_array("a.f32").get_float(1) == -3.0);
    CHECK_THROWS_AS(f.get_array("a.f32").get_int(0), std::invalid_argument);
    CHECK(f.get_array("a.f64").get_float(0) == 1e300);
    CHECK_THROWS_AS(f.get_array("a.u64").get_int(0), std::out_of_range);
    CHECK(f.get_array("a.u64").get_int(1) == 5);
    CHECK(f.get_array("a.i64").get_int(0) == -5);
    CHECK(f.get_array("a.bool").raw.size() == 2);
    CHECK(f.get_array("a.bool").raw[1] == 1);
    const Array &as = f.get_array("a.str");
    REQUIRE(as.strings.size() == 3);
    CHECK(as.strings[0] == "x");
    CHECK(as.strings[1].empty());
    CHECK(as.strings[2] == "zz");
    CHECK_THROWS_AS(as.get_int(0), std::invalid_argument);
    CHECK(f.get_array("a.empty").count == 0);
    const Array &nested = f.get_array("a.nested");
    CHECK(nested.elem_type == ValueType::ARRAY);
    REQUIRE(nested.arrays.size() == 3);
    const Array &n0 = std::get<Array>(nested.arrays[0].v);
    CHECK(n0.elem_type == ValueType::INT32);
    CHECK(n0.get_int(1) == -2);
    CHECK(std::get<Array>(nested.arrays[1].v).count == 0);
    CHECK(std::get<Array>(nested.arrays[2].v).get_int(0) == 3);
    const Array &ns = std::get<Array>(f.get_array("a.nested_str").arrays[0].v);
    CHECK(ns.strings.at(1) == "q");

    REQUIRE(f.tensors().size() == 3);
    CHECK(f.metadata().size() == 25);
    CHECK(f.metadata()[0].key == "general.architecture");
}

}  // namespace

TEST_CASE("valid v3 file with every value type, nested arrays and tensors") {
    const auto bytes = every_type_builder(3).build();
    const GgufFile f = parse(bytes, "every.gguf");
    CHECK(f.version() == 3);
    CHECK(f.path() == "every.gguf");
    CHECK(f.alignment() == 32);
    CHECK(f.file_size() == bytes.size());
    check_every_type(f);
}

TEST_CASE("valid v2 file") {
    const GgufFile f = parse(every_type_builder(2).build());
    CHECK(f.version() == 2);
    check_every_type(f);
}

TEST_CASE("value offsets point at the value bytes") {
    Layout at;
    const auto bytes = every_type_builder().build(&at);
    const GgufFile f = parse(bytes);
    CHECK(f.find("general.architecture")->offset == at["kv[0].value"]);
    CHECK(f.find("v.u8")->offset == at["kv[1].value"]);
}

TEST_CASE("tensor infos, lookup and data") {
    Layout at;
    const auto bytes = every_type_builder().build(&at);
    const GgufFile f = parse(bytes);
    CHECK(f.data_offset() == at["data"]);
    CHECK(f.data_offset() % 32 == 0);
    CHECK(f.find_tensor("nope") == nullptr);

    const auto *t = f.find_tensor("f32.weight");
    REQUIRE(t != nullptr);
    CHECK(t->n_dims == 2);
    CHECK(t->ne[0] == 3);
    CHECK(t->ne[1] == 2);
    CHECK(t->ne[2] == 1);
    CHECK(t->ne[3] == 1);
    CHECK(t->type == Type::F32);
    CHECK(t->n_elements() == 6);
    CHECK(t->size == 24);
    CHECK(t->offset == 0);
    CHECK(t->file_offset == f.data_offset());
    CHECK(t->info_offset == at["tensor[0].name"]);

    const auto *q = f.find_tensor("q8.weight");
    REQUIRE(q != nullptr);
    CHECK(q->type == Type::Q8_0);
    CHECK(q->size == 2 * 34 * 2);
    CHECK(q->offset == 32);  // f32.weight's 24 bytes padded to 32
    CHECK(q->file_offset == at["tensor[1].data"]);
    const auto data = f.tensor_data(*q);
    REQUIRE(data.size() == q->size);
    for (size_t i = 0; i < data.size(); ++i) REQUIRE(data[i] == pattern_byte(1, i));
    CHECK(data.data() == f.tensor_data(*q).data());  // a view, not a copy
}

TEST_CASE("custom alignment") {
    for (uint32_t a : {1u, 8u, 64u, 4096u}) {
        CAPTURE(a);
        GgufBuilder b;
        b.set_alignment(a);
        b.tensor("a", Type::F32, {3});
        b.tensor("b", Type::F32, {5});
        Layout at;
        const GgufFile f = parse(b.build(&at));
        CHECK(f.alignment() == a);
        CHECK(f.data_offset() % a == 0);
        CHECK(f.data_offset() == at["data"]);
        CHECK(f.find_tensor("b")->offset == (12 + a - 1) / a * a);
        CHECK(f.find_tensor("b")->file_offset == at["tensor[1].data"]);
    }
}

TEST_CASE("expert_slice") {
    Layout at;
    const auto bytes = every_type_builder().build(&at);
    const GgufFile f = parse(bytes);
    const auto &t = *f.find_tensor("experts.weight");  // ne = {64, 32, 4}, Q8_0
    const uint64_t per_expert = 64 / 32 * 34 * 32;     // row bytes * rows
    CHECK(t.size == per_expert * 4);
    for (uint64_t e = 0; e < 4; ++e) {
        const auto s = f.expert_slice(t, e);
        CHECK(s.size == per_expert);
        CHECK(s.file_offset == at["tensor[2].data"] + e * per_expert);
        // The slice holds the bytes of expert e inside the tensor's data.
        CHECK(bytes[s.file_offset] == pattern_byte(2, e * per_expert));
        CHECK(bytes[s.file_offset + s.size - 1] == pattern_byte(2, (e + 1) * per_expert - 1));
    }
    try {
        (void)f.expert_slice(t, 4);
        FAIL("no throw");
    } catch (const Error &e) {
        CHECK(std::string(e.what()).find("expert 4 out of range") != std::string::npos);
        CHECK(e.offset() == t.info_offset);
    }
    CHECK_THROWS_AS((void)f.expert_slice(*f.find_tensor("q8.weight"), 0), Error);  // 2-D
}

TEST_CASE("expert_slice with K-quant types") {
    GgufBuilder b;
    b.tensor("blk.0.ffn_down_exps.weight", Type::Q6_K, {512, 256, 3});  // [3, 256, 512]
    Layout at;
    const GgufFile f = parse(b.build(&at));
    const auto &t = f.tensors()[0];
    const uint64_t per = 512 / 256 * 210 * 256;
    CHECK(f.expert_slice(t, 2).file_offset == at["tensor[0].data"] + 2 * per);
    CHECK(f.expert_slice(t, 2).size == per);
}

TEST_CASE("typed getters") {
    GgufBuilder b;
    b.kv("neg", i32(-3)).kv("pos", i8(7)).kv("big", u64(UINT64_MAX)).kv("s", str("x")).kv("f", f32(0.25f));
    b.kv("b", boolean(false)).kv("a", arr(kU8, {u8(1)}));
    const GgufFile f = parse(b.build());
    CHECK(f.get_int("neg") == -3);
    CHECK(f.get_uint("pos") == 7);
    CHECK(f.get_float("pos") == 7.0);
    CHECK(f.get_float("f") == 0.25);
    CHECK_FALSE(f.get_bool("b"));
    CHECK(f.get_uint_or("missing", 42) == 42);
    CHECK(f.get_float_or("missing", 0.5) == 0.5);
    CHECK(f.get_bool_or("missing", true));
    CHECK(f.get_array_opt("missing") == nullptr);
    CHECK(f.get_array_opt("a") != nullptr);
    CHECK_FALSE(f.get_string_opt("missing").has_value());
    CHECK(f.get_string_opt("s") == "x");

    auto expect = [](auto fn, const std::string &field, const std::string &part) {
        try {
            fn();
            FAIL("no throw");
        } catch (const Error &e) {
            CHECK(e.field() == field);
            CHECK(std::string(e.what()).find(part) != std::string::npos);
        }
    };
    expect([&] { (void)f.get_uint("neg"); }, "neg", "non-negative");
    expect([&] { (void)f.get_int("big"); }, "big", "does not fit in int64");
    expect([&] { (void)f.get_string("pos"); }, "pos", "expected a string, found a int8");
    expect([&] { (void)f.get_uint("s"); }, "s", "expected an integer");
    expect([&] { (void)f.get_float("s"); }, "s", "expected a number");
    expect([&] { (void)f.get_bool("pos"); }, "pos", "expected a bool");
    expect([&] { (void)f.get_array("s"); }, "s", "expected an array");
    expect([&] { (void)f.get_uint("missing"); }, "missing", "required key is missing");
    expect([&] { (void)f.get_uint_or("s", 1); }, "s", "expected an integer");  // present, wrong type
    expect([&] { (void)f.get_string_opt("a"); }, "a", "found a array of uint8");
}

TEST_CASE("open() maps a file and reads the same as from_memory") {
    const auto bytes = every_type_builder().build();
    const std::filesystem::path p = std::filesystem::path(MOERUN_BINARY_DIR) / "test-gguf-reader-open.gguf";
    {
        std::ofstream out(p, std::ios::binary);
        out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    GgufFile f = GgufFile::open(p.string());
    CHECK(f.path() == p.string());
    check_every_type(f);
    const auto *q = f.find_tensor("q8.weight");
    CHECK(f.tensor_data(*q)[5] == pattern_byte(1, 5));
    GgufFile moved = std::move(f);
    CHECK(moved.get_string("general.architecture") == "testarch");
    std::filesystem::remove(p);

    CHECK_THROWS_AS(GgufFile::open((std::filesystem::path(MOERUN_BINARY_DIR) / "no-such-file.gguf").string()),
                    std::system_error);
    CHECK_THROWS_AS(GgufFile::open(MOERUN_BINARY_DIR), std::system_error);  // a directory
}

TEST_CASE("drop_pages() drops whole pages inside the mapping only, and the bytes read back the same") {
    GgufBuilder b = every_type_builder();
    b.tensor("big.weight", Type::F32, {4096, 8});  // 128 KiB: whole pages inside it
    const auto bytes = b.build();
    const std::filesystem::path p = std::filesystem::path(MOERUN_BINARY_DIR) / "test-gguf-reader-drop.gguf";
    {
        std::ofstream out(p, std::ios::binary);
        out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    const GgufFile f = GgufFile::open(p.string());
    const auto *t = f.find_tensor("big.weight");
    REQUIRE(t != nullptr);
    const std::span<const uint8_t> data = f.tensor_data(*t);
    const size_t index = static_cast<size_t>(t - f.tensors().data());
    uint64_t sum = 0;
    for (const uint8_t v : data) sum += v;  // faults the pages in
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    const uint64_t dropped = f.drop_pages(data);
    CHECK(dropped % page == 0);
    CHECK(dropped + 2 * page >= data.size());  // all but the pages shared with the neighbours
    CHECK(dropped <= data.size());
    uint64_t again = 0;
    for (const uint8_t v : data) again += v;
    CHECK(again == sum);
    CHECK(data[5] == pattern_byte(index, 5));
    CHECK(data[data.size() - 1] == pattern_byte(index, data.size() - 1));
    CHECK(f.drop_pages(data.subspan(1, 100)) == 0);  // no whole page inside
    CHECK(f.drop_pages({}) == 0);
    // Memory outside the mapping (here: the builder's copy) is never touched.
    CHECK(f.drop_pages(std::span<const uint8_t>(bytes)) == 0);
    CHECK(bytes[0] == 'G');
    // An in-memory file has no mapping: nothing is dropped.
    const GgufFile m = GgufFile::from_memory("mem.gguf", bytes);
    CHECK(m.drop_pages(m.tensor_data(*m.find_tensor("big.weight"))) == 0);
    std::filesystem::remove(p);
}

TEST_CASE("error message format names file, offset and field") {
    Layout at;
    auto bytes = GgufBuilder().build(&at);
    put_u64(bytes, at["tensor_count"], UINT64_MAX);
    try {
        GgufFile::from_memory("model.gguf", bytes);
        FAIL("no throw");
    } catch (const Error &e) {
        CHECK(e.file() == "model.gguf");
        CHECK(e.offset() == 8);
        CHECK(e.field() == "tensor_count");
        CHECK(
            std::string(e.what()) ==
            "model.gguf: offset 8: tensor_count: 18446744073709551615 tensors cannot fit in the 8 remaining "
            "bytes (a tensor info takes at least 32)");
    }
}

TEST_CASE("every truncation of a valid file throws cleanly") {
    Layout at;
    const auto bytes = every_type_builder().build(&at);
    const GgufFile full = parse(bytes);
    uint64_t data_end = 0;  // prefixes that keep all tensor data are still valid files
    for (const auto &t : full.tensors()) data_end = std::max(data_end, t.file_offset + t.size);
    for (size_t n = 0; n < bytes.size(); ++n) {
        const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        if (n >= data_end) {
            CHECK_NOTHROW(parse(prefix));
            continue;
        }
        try {
            parse(prefix);
            FAIL("prefix of " << n << " bytes parsed");
        } catch (const Error &e) {
            REQUIRE_MESSAGE(e.offset() <= n, e.what());
        }
    }
}

TEST_CASE("header corruptions") {
    Layout at;
    const auto good = every_type_builder().build(&at);
    SUBCASE("empty and tiny files") {
        CHECK_GGUF_ERROR(std::vector<uint8_t>{}, "magic", 0u, "too short");
        CHECK_GGUF_ERROR((std::vector<uint8_t>{'G', 'G', 'U'}), "magic", 0u, "too short");
        CHECK_GGUF_ERROR((std::vector<uint8_t>{'G', 'G', 'U', 'F', 3, 0}), "version", 4u,
                         "unexpected end of file");
    }
    SUBCASE("bad magic") {
        auto b = good;
        b[0] = 'X';
        CHECK_GGUF_ERROR(b, "magic", 0u, "expected \"GGUF\"");
        std::memcpy(b.data(), "FUGG", 4);
        CHECK_GGUF_ERROR(b, "magic", 0u, "big-endian");
    }
    SUBCASE("version 1") {
        auto b = good;
        put_u32(b, 4, 1);
        CHECK_GGUF_ERROR(b, "version", 4u, "v1 is not supported");
    }
    SUBCASE("big-endian version") {
        auto b = good;
        put_u32(b, 4, 0x03000000u);
        CHECK_GGUF_ERROR(b, "version", 4u, "big-endian");
    }
    SUBCASE("unknown versions") {
        for (uint32_t v : {0u, 4u, 0xFFFFFFFFu}) {
            auto b = good;
            put_u32(b, 4, v);
            CHECK_GGUF_ERROR(b, "version", 4u, "expected 2 or 3");
        }
    }
    SUBCASE("huge tensor count") {
        auto b = good;
        put_u64(b, at["tensor_count"], UINT64_MAX);
        CHECK_GGUF_ERROR(b, "tensor_count", 8u, "cannot fit");
        put_u64(b, at["tensor_count"], b.size() / 32 + 1);
        CHECK_GGUF_ERROR(b, "tensor_count", 8u, "cannot fit");
    }
    SUBCASE("huge kv count") {
        auto b = good;
        put_u64(b, at["kv_count"], uint64_t{1} << 62);
        CHECK_GGUF_ERROR(b, "kv_count", 16u, "cannot fit");
    }
    SUBCASE("kv count too large by one runs into the tensor infos") {
        auto b = good;
        put_u64(b, at["kv_count"], 26);
        const auto err = parse_error(b);
        REQUIRE(err);
        CHECK(err->offset() >= at["tensor[0].name"]);
    }
}

TEST_CASE("metadata corruptions") {
    GgufBuilder base;
    base.kv("general.architecture", str("x"));
    base.kv("tokenizer.ggml.tokens", arr(kString, {str("a"), str("bb")}));
    base.kv("flag", boolean(true));
    base.tensor("t", Type::F32, {4});
    Layout at;
    const auto good = base.build(&at);
    REQUIRE_NOTHROW(parse(good));

    SUBCASE("huge key length") {
        auto b = good;
        put_u64(b, at["kv[1].key"], UINT64_MAX);
        CHECK_GGUF_ERROR(b, "kv[1].key", at["kv[1].key"], "exceeds the limit of 65535");
    }
    SUBCASE("key longer than 65535 bytes") {
        GgufBuilder g;
        g.kv(std::string(65536, 'k'), u8(1));
        CHECK_GGUF_ERROR(g.build(), "kv[0].key", 24u, "exceeds the limit of 65535");
        GgufBuilder ok;
        ok.kv(std::string(65535, 'k'), u8(1));
        CHECK_NOTHROW(parse(ok.build()));
    }
    SUBCASE("huge string value length") {
        auto b = good;
        put_u64(b, at["kv[0].value"], uint64_t{1} << 40);
        CHECK_GGUF_ERROR(b, "kv[0] 'general.architecture'", at["kv[0].value"], "remaining bytes");
    }
    SUBCASE("huge array count") {
        auto b = good;
        put_u64(b, at["kv[1].value"] + 4, UINT64_MAX / 2);
        CHECK_GGUF_ERROR(b, "kv[1] 'tokenizer.ggml.tokens'", at["kv[1].value"] + 4, "cannot fit");
    }
    SUBCASE("huge string length inside an array") {
        auto b = good;
        put_u64(b, at["kv[1].value"] + 12 + 8 + 1, UINT64_MAX);  // second element's length
        CHECK_GGUF_ERROR(b, "kv[1] 'tokenizer.ggml.tokens'[1]", at["kv[1].value"] + 21, "string length");
    }
    SUBCASE("unknown value type") {
        auto b = good;
        put_u32(b, at["kv[2].type"], 13);
        CHECK_GGUF_ERROR(b, "kv[2] 'flag' type", at["kv[2].type"], "unknown value type 13");
    }
    SUBCASE("unknown array element type") {
        auto b = good;
        put_u32(b, at["kv[1].value"], 99);
        CHECK_GGUF_ERROR(b, "kv[1] 'tokenizer.ggml.tokens'", at["kv[1].value"],
                         "unknown array element type 99");
    }
    SUBCASE("bool other than 0 or 1") {
        auto b = good;
        b[at["kv[2].value"]] = 2;
        CHECK_GGUF_ERROR(b, "kv[2] 'flag'", at["kv[2].value"], "bool value 2");
        GgufBuilder g;
        g.kv("bools", arr(kBool, {boolean(true), u8(7)}));
        Layout gl;
        const auto gb = g.build(&gl);
        CHECK_GGUF_ERROR(gb, "kv[0] 'bools'[1]", gl["kv[0].value"] + 12 + 1, "bool value 7");
    }
    SUBCASE("duplicate key") {
        GgufBuilder g;
        g.kv("a", u8(1)).kv("b", u8(2)).kv("a", u8(3));
        Layout gl;
        CHECK_GGUF_ERROR(g.build(&gl), "kv[2] 'a'", gl["kv[2].key"],
                         "duplicate key (first defined by kv[0])");
    }
    SUBCASE("arrays nested 8 deep are fine, 9 deep are not") {
        auto nest = [](int depth) {
            GVal v = arr(kU8, {u8(1)});
            for (int d = 1; d < depth; ++d) v = arr(kArray, {v});
            GgufBuilder g;
            g.kv("deep", v);
            return g.build();
        };
        const GgufFile f = parse(nest(8));
        CHECK(f.get_array("deep").elem_type == ValueType::ARRAY);
        const auto err = parse_error(nest(9));
        REQUIRE(err);
        CHECK(std::string(err->what()).find("nested more than 8 levels") != std::string::npos);
        CHECK(err->field() == "kv[0] 'deep'[0][0][0][0][0][0][0][0]");
    }
    SUBCASE("a deeply nested bomb of empty arrays stays bounded") {
        // 1000 x 1000 would need 12 MB of file; the count check stops it at once.
        GgufBuilder g;
        g.kv("bomb", raw(kArray, [] {
                 std::vector<uint8_t> p;
                 append_le(p, kArray, 4);
                 append_le(p, 1000000, 8);
                 return p;
             }()));
        CHECK_GGUF_ERROR(g.build(), "kv[0] 'bomb'", 24u + 8 + 4 + 4 + 4, "cannot fit");
    }
    SUBCASE("control bytes in keys are escaped in messages") {
        GgufBuilder g;
        g.kv(std::string("a\nb\x1b[31m", 8), u8(1)).kv(std::string("a\nb\x1b[31m", 8), u8(1));
        const auto err = parse_error(g.build());
        REQUIRE(err);
        CHECK(std::string(err->what()).find('\n') == std::string::npos);
        CHECK(std::string(err->what()).find('\x1b') == std::string::npos);
        CHECK(err->field() == "kv[1] 'a\\x0ab\\x1b[31m'");
    }
}

TEST_CASE("alignment corruptions") {
    auto with_alignment = [](GVal v) {
        GgufBuilder g;
        g.kv("general.alignment", std::move(v));
        g.tensor("t", Type::F32, {4});
        Layout at;
        auto b = g.build(&at);
        return std::make_pair(b, at["kv[0].value"]);
    };
    for (uint32_t a : {0u, 3u, 48u, 0xFFFFFFFFu}) {
        CAPTURE(a);
        const auto [b, at] = with_alignment(u32(a));
        CHECK_GGUF_ERROR(b, "general.alignment", at, "not a nonzero power of two");
    }
    const auto [b64, at64] = with_alignment(u64(32));
    CHECK_GGUF_ERROR(b64, "general.alignment", at64, "expected a uint32, found a uint64");
    const auto [bs, ats] = with_alignment(str("32"));
    CHECK_GGUF_ERROR(bs, "general.alignment", ats, "expected a uint32");
    // 2^31 is a valid alignment; the data section then starts past the end of this file.
    GgufBuilder g;
    g.kv("general.alignment", u32(0x80000000u));
    g.tensor("t", Type::F32, {4});
    Layout gl;
    const auto big = g.build(&gl);
    CHECK_GGUF_ERROR(big, "tensor[0] 't' offset", gl["tensor[0].offset"], "outside the file");
}

TEST_CASE("tensor info corruptions") {
    GgufBuilder base;
    base.kv("general.architecture", str("x"));
    base.tensor("a.weight", Type::F32, {4, 2});
    base.tensor("b.weight", Type::Q8_0, {32, 3});
    Layout at;
    const auto good = base.build(&at);
    REQUIRE_NOTHROW(parse(good));

    SUBCASE("n_dims 0 and 5") {
        for (uint32_t n : {0u, 5u, 0xFFFFFFFFu}) {
            auto b = good;
            put_u32(b, at["tensor[1].n_dims"], n);
            CHECK_GGUF_ERROR(b, "tensor[1] 'b.weight' n_dims", at["tensor[1].n_dims"], "expected 1 to 4");
        }
    }
    SUBCASE("dimension 0") {
        auto b = good;
        put_u64(b, at["tensor[0].ne[1]"], 0);
        CHECK_GGUF_ERROR(b, "tensor[0] 'a.weight' ne[1]", at["tensor[0].ne[1]"], "at least 1");
    }
    SUBCASE("negative dimension") {
        auto b = good;
        put_u64(b, at["tensor[0].ne[0]"], uint64_t{1} << 63);
        CHECK_GGUF_ERROR(b, "tensor[0] 'a.weight' ne[0]", at["tensor[0].ne[0]"], "negative as int64");
    }
    SUBCASE("element count overflow") {
        GgufBuilder g;
        g.tensor("big", Type::F32, {uint64_t{1} << 32, uint64_t{1} << 31});
        Layout gl;
        CHECK_GGUF_ERROR(g.build(&gl), "tensor[0] 'big' shape", gl["tensor[0].n_dims"], "overflows int64");
        GgufBuilder g4;
        g4.tensor("big4", Type::F32, {1u << 16, 1u << 16, 1u << 16, 1u << 16});
        CHECK_GGUF_ERROR(g4.build(), "tensor[0] 'big4' shape", 24u + 8 + 4, "overflows int64");
    }
    SUBCASE("byte size overflow") {
        GgufBuilder g;
        g.tensor("wide", Type::F64, {uint64_t{1} << 62});
        Layout gl;
        CHECK_GGUF_ERROR(g.build(&gl), "tensor[0] 'wide' size", gl["tensor[0].type"], "overflows");
    }
    SUBCASE("ne[0] not a multiple of the block size") {
        GgufBuilder g;
        g.tensor("q", Type::Q4_K, {255, 2});
        Layout gl;
        CHECK_GGUF_ERROR(g.build(&gl), "tensor[0] 'q' ne[0]", gl["tensor[0].ne[0]"],
                         "255 is not a multiple of the Q4_K block size 256");
    }
    SUBCASE("unknown type ids") {
        for (uint32_t id : {4u, 5u, 31u, 40u, 1000u, 0xFFFFFFFFu}) {
            auto b = good;
            put_u32(b, at["tensor[0].type"], id);
            CHECK_GGUF_ERROR(b, "tensor[0] 'a.weight' type", at["tensor[0].type"],
                             "unknown tensor type id " + std::to_string(id));
        }
    }
    SUBCASE("duplicate tensor names") {
        GgufBuilder g;
        g.tensor("w", Type::F32, {4});
        g.tensor("v", Type::F32, {4});
        g.tensor("w", Type::F32, {4});
        Layout gl;
        CHECK_GGUF_ERROR(g.build(&gl), "tensor[2] 'w'", gl["tensor[2].name"], "duplicate tensor name");
    }
    SUBCASE("huge tensor name length") {
        auto b = good;
        put_u64(b, at["tensor[1].name"], uint64_t{1} << 33);
        CHECK_GGUF_ERROR(b, "tensor[1].name", at["tensor[1].name"], "exceeds the limit");
    }
    SUBCASE("tensor offset outside the file") {
        for (uint64_t off : {uint64_t{1} << 20, UINT64_MAX - 31, uint64_t{64}}) {
            auto b = good;
            put_u64(b, at["tensor[1].offset"], off);
            const auto err = parse_error(b);
            REQUIRE(err);
            CHECK(err->field() == "tensor[1] 'b.weight' offset");
            CHECK(err->offset() == at["tensor[1].offset"]);
            const std::string what = err->what();
            CHECK((what.find("outside the file") != std::string::npos ||
                   what.find("overflows") != std::string::npos));
        }
    }
    SUBCASE("misaligned tensor offset") {
        auto b = good;
        put_u64(b, at["tensor[1].offset"], 33);
        CHECK_GGUF_ERROR(b, "tensor[1] 'b.weight' offset", at["tensor[1].offset"],
                         "33 is not a multiple of the alignment 32");
    }
    SUBCASE("overlapping tensor data") {
        auto b = good;
        put_u64(b, at["tensor[1].offset"], 0);
        CHECK_GGUF_ERROR(b, "tensor[1] 'b.weight' offset", at["tensor[1].offset"],
                         "overlaps tensor[0] 'a.weight'");
    }
    SUBCASE("file cut inside the tensor data") {
        auto b = good;
        b.resize(at["tensor[1].data"] + 10);
        CHECK_GGUF_ERROR(b, "tensor[1] 'b.weight' offset", at["tensor[1].offset"], "outside the file");
    }
}

TEST_CASE("real vocab GGUFs from llama.cpp") {
    const std::filesystem::path dir = std::filesystem::path(MOERUN_SHARED_DATA) / "vocab";
    if (!std::filesystem::is_directory(dir)) {
        MESSAGE("skipped: no " << dir.string());
        return;
    }
    int files = 0;
    for (const auto &entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() != ".gguf") continue;
        CAPTURE(entry.path().string());
        ++files;
        const GgufFile f = GgufFile::open(entry.path().string());
        CHECK((f.version() == 2 || f.version() == 3));
        CHECK(f.tensors().empty());
        const Array &tokens = f.get_array("tokenizer.ggml.tokens");
        CHECK(tokens.elem_type == ValueType::STRING);
        CHECK(tokens.strings.size() == tokens.count);
        CHECK(tokens.count > 1000);
        CHECK(tokens.count < 300000);
        if (const Array *types = f.get_array_opt("tokenizer.ggml.token_type"))
            CHECK(types->count == tokens.count);
        if (const Array *scores = f.get_array_opt("tokenizer.ggml.scores")) {
            CHECK(scores->count == tokens.count);
            CHECK(std::isfinite(scores->get_float(0)));
        }
        const std::string arch(f.get_string("general.architecture"));
        CHECK(f.get_uint(arch + ".block_count") > 0);
        if (f.find(arch + ".vocab_size") != nullptr) CHECK(f.get_uint(arch + ".vocab_size") == tokens.count);
        (void)f.get_string("tokenizer.ggml.model");
        if (const Array *merges = f.get_array_opt("tokenizer.ggml.merges")) {
            REQUIRE(merges->count > 0);
            CHECK(merges->strings.front().find(' ') != std::string_view::npos);
        }
    }
    CHECK(files >= 10);
}
