// libFuzzer target for the GGUF reader: parse arbitrary bytes, and on whatever parses, run every
// typed getter, array accessor, tensor view, expert_slice, and the model info and expert summary.
//
// The only exceptions allowed out of the reader are gguf::Error (and, from Array::get_int /
// get_float, the documented std::out_of_range / std::invalid_argument); anything else escapes
// this function, which libFuzzer reports as a crash, as it does any sanitizer finding.
// Built as `fuzz-gguf` (clang, -fsanitize=fuzzer) and as `fuzz-gguf-replay` (any compiler, with
// replay-main.cpp) which runs the corpus and the saved crashes as a unit test.
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

#include "moerun/runtime/gguf.h"
#include "moerun/runtime/model-info.h"

namespace {

namespace gguf = moerun::gguf;

volatile uint64_t g_sink = 0;  // keeps reads from being optimised away

template <typename F>
void expect_gguf_error(F &&f) {
    try {
        f();
    } catch (const gguf::Error &) {
    }
}

void touch_array(const gguf::Array &a, int depth) {
    g_sink = g_sink + a.count + a.raw.size() + a.strings.size();
    const uint64_t n = a.count < 64 ? a.count : 64;
    for (uint64_t i = 0; i <= n; ++i) {  // one past the end on purpose
        try {
            g_sink = g_sink + static_cast<uint64_t>(a.get_int(i));
        } catch (const std::out_of_range &) {
        } catch (const std::invalid_argument &) {
        }
        try {
            g_sink = g_sink + static_cast<uint64_t>(a.get_float(i) != 0);
        } catch (const std::out_of_range &) {
        } catch (const std::invalid_argument &) {
        }
    }
    for (auto s : a.strings)
        if (!s.empty()) g_sink = g_sink + static_cast<uint8_t>(s.front()) + static_cast<uint8_t>(s.back());
    if (depth < 16)
        for (const auto &v : a.arrays) touch_array(std::get<gguf::Array>(v.v), depth + 1);
}

void exercise(const gguf::GgufFile &f) {
    g_sink = g_sink + f.version() + f.alignment() + f.data_offset() + f.file_size();
    for (const auto &kv : f.metadata()) {
        const std::string_view key = kv.key;
        if (f.find(key) != &kv.value) __builtin_trap();  // keys are unique: lookup finds this one
        expect_gguf_error([&] { g_sink = g_sink + f.get_string(key).size(); });
        expect_gguf_error([&] { g_sink = g_sink + f.get_uint(key); });
        expect_gguf_error([&] { g_sink = g_sink + static_cast<uint64_t>(f.get_int(key)); });
        expect_gguf_error([&] { g_sink = g_sink + static_cast<uint64_t>(f.get_float(key) != 0); });
        expect_gguf_error([&] { g_sink = g_sink + f.get_bool(key); });
        expect_gguf_error([&] { touch_array(f.get_array(key), 0); });
        expect_gguf_error([&] { g_sink = g_sink + f.get_string_opt(key).has_value(); });
        expect_gguf_error([&] { g_sink = g_sink + f.get_uint_or(key, 1); });
        expect_gguf_error([&] { g_sink = g_sink + static_cast<uint64_t>(f.get_float_or(key, 1.0) != 0); });
        expect_gguf_error([&] { g_sink = g_sink + f.get_bool_or(key, true); });
        expect_gguf_error([&] { g_sink = g_sink + (f.get_array_opt(key) != nullptr); });
    }
    for (const auto &t : f.tensors()) {
        if (f.find_tensor(t.name) != &t) __builtin_trap();
        const auto data = f.tensor_data(t);  // in bounds by construction: must not throw
        if (data.size() != t.size || t.file_offset < f.data_offset()) __builtin_trap();
        if (!data.empty()) g_sink = g_sink + data.front() + data.back();  // ASan checks these reads
        if (t.n_dims == 3) {
            const auto first = f.expert_slice(t, 0);
            const auto last = f.expert_slice(t, t.ne[2] - 1);
            if (first.file_offset != t.file_offset || last.file_offset + last.size != t.file_offset + t.size)
                __builtin_trap();
        }
        expect_gguf_error([&] { (void)f.expert_slice(t, t.ne[2]); });  // out of range (or not 3-D)
    }
    try {
        const auto info = moerun::runtime::ModelInfo::from_gguf(f);
        const auto summary = moerun::runtime::ExpertSummary::from_gguf(f, info);
        g_sink = g_sink + summary.expert_bytes + summary.dense_bytes;
        for (const auto &layer : summary.layers) {
            const auto loc =
                moerun::runtime::expert_location(f, layer, static_cast<uint32_t>(layer.n_expert - 1));
            g_sink = g_sink + loc.bytes();
        }
    } catch (const gguf::Error &) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        const auto f = gguf::GgufFile::from_memory("fuzz.gguf", std::span<const uint8_t>(data, size));
        exercise(f);
    } catch (const gguf::Error &) {
    }
    return 0;
}
