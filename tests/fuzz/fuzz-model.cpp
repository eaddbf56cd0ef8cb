// libFuzzer target for what a run does with a GGUF after parsing it: Model::load (hyperparameters,
// tensor names, shapes and types, the norm and bias vectors it converts), Tokenizer::from_gguf
// (vocabulary, scores, types, merges, special ids), encoding and decoding a few fixed texts with
// that vocabulary, and the chat template's detection.
//
// Model::load and Tokenizer::from_gguf may only throw gguf::Error (naming the field); encoding and
// decoding the ids encode returned may not throw at all. Anything else escapes this function,
// which libFuzzer reports as a crash, as it does any sanitizer finding. Seeds: complete tiny
// models (corpus/model/, written by make_seeds.py). Built as `fuzz-model` (clang,
// -fsanitize=fuzzer) and `fuzz-model-replay` (any compiler, replay-main.cpp), as fuzz-gguf.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "moerun/runtime/chat.h"
#include "moerun/runtime/gguf.h"
#include "moerun/runtime/model.h"
#include "moerun/runtime/tokenizer.h"

namespace {

namespace gguf = moerun::gguf;

volatile uint64_t g_sink = 0;  // keeps results from being optimised away

void exercise_tokenizer(const moerun::Tokenizer &tok) {
    constexpr std::string_view texts[] = {"",
                                          "a b ab",
                                          "Hello, world! 123",
                                          " \n\t  x",
                                          "\xE2\x98\x83 \xF0\x9F\x98\x80 \xC3",
                                          "<s>ab</s><|im_start|>"};
    for (std::string_view t : texts)
        for (int mode = 0; mode < 4; ++mode) {
            const auto ids = tok.encode(t, (mode & 1) != 0, (mode & 2) != 0);
            g_sink = g_sink + ids.size() + tok.decode(ids, mode & 1, mode & 2).size();
            for (int32_t id : ids) g_sink = g_sink + tok.piece(id).size() + tok.attr(id);
        }
    g_sink = g_sink + static_cast<uint64_t>(tok.bos() + tok.eos() + tok.eot() + tok.unk() + tok.n_vocab());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        const auto f = gguf::GgufFile::from_memory("fuzz.gguf", std::span<const uint8_t>(data, size));
        try {
            const moerun::Model m = moerun::Model::load(f);
            g_sink = g_sink + m.hparams().n_layer + m.hparams().n_vocab;
        } catch (const gguf::Error &) {
        }
        try {
            const moerun::Tokenizer tok = moerun::Tokenizer::from_gguf(f);
            exercise_tokenizer(tok);
        } catch (const gguf::Error &) {
        }
        g_sink = g_sink + static_cast<uint64_t>(moerun::detect_chat_template(f));
    } catch (const gguf::Error &) {
    }
    return 0;
}
