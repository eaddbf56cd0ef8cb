// Cancellation (ContextParams::abort) on a tiny complete model: an eval stops before its next batch
// and keeps the batches done, or between the layers of a prompt batch and drops that batch;
// generate() stopped during the prompt leaves the context as it was, stopped during decoding keeps
// the tokens it streamed.
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "gguf-builder.h"
#include "moerun/kernels/backend.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/generate.h"
#include "moerun/runtime/model.h"
#include "moerun/runtime/tokenizer.h"

using namespace moerun;
using namespace moerun::test;

TEST_CASE("abort stops an eval between batches and generate() where it is") {
    GgufBuilder b = make_complete_moe_model();
    b.kv("tokenizer.ggml.merges", arr(kString, {}));  // a BPE vocabulary without merges
    const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
    const Model model = Model::load(f);
    const Tokenizer tok = Tokenizer::from_gguf(f);
    int polls = 0, cancel_at = 0;  // abort() answers true at poll number cancel_at (0: never)
    ContextParams p;
    p.n_ctx = 64;
    p.n_batch = 4;
    p.n_threads = 1;
    p.abort = [&] { return ++polls == cancel_at; };
    Context ctx(model, p);
    // abort() is polled before each batch and, in a batch of several tokens, before each layer
    // but the first: L polls per prompt batch, 1 per decode token.
    const int L = static_cast<int>(model.hparams().n_layer);
    REQUIRE(L >= 2);
    std::vector<int32_t> prompt(10);  // 3 batches of at most 4
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(i % model.hparams().n_vocab);
    const std::vector<int32_t> head = {1, 2, 3};
    ctx.eval(head);
    REQUIRE(ctx.n_past() == 3);

    SUBCASE("an eval keeps the batches done before the abort") {
        polls = 0;
        cancel_at = L + 1;  // before the second batch
        CHECK_THROWS_WITH_AS(ctx.eval(prompt), doctest::Contains("before a batch"), Cancelled);
        CHECK(ctx.n_past() == 3 + 4);
        CHECK(ctx.n_outputs() == 0);
    }
    SUBCASE("generate: an abort during the prompt leaves the context as before") {
        polls = 0;
        cancel_at = 2 * L + 2;  // in the prompt's third batch, before its second layer
        GenerateParams gp;
        gp.n_predict = 4;
        gp.sampler.temp = 0;
        const GenerateResult r = generate(ctx, tok, prompt, gp, nullptr);
        CHECK(r.stop == StopReason::cancelled);
        CHECK(r.tokens.empty());
        CHECK(ctx.n_past() == 3);
    }
    SUBCASE("generate: an abort while decoding keeps the streamed tokens") {
        polls = 0;
        cancel_at = 3 * L + 3;  // the prompt's 3 batches, then the third decode eval
        GenerateParams gp;
        gp.n_predict = 8;
        gp.stop_at_eog = false;
        gp.sampler.temp = 0;
        int streamed = 0;
        const GenerateResult r = generate(ctx, tok, prompt, gp, [&](int32_t, std::string_view) {
            ++streamed;
            return true;
        });
        CHECK(r.stop == StopReason::cancelled);
        CHECK(r.tokens.size() == 3);
        CHECK(streamed == 3);
        CHECK(ctx.n_past() == 3 + 10 + 2);  // the third token was streamed, not evaluated
    }
}

TEST_CASE(
    "abort between the layers of a prompt batch drops the batch; evaluating it again gives the "
    "uninterrupted logits") {
    GgufBuilder b = make_complete_moe_model();
    b.kv("tokenizer.ggml.merges", arr(kString, {}));
    const auto f = gguf::GgufFile::from_memory("model.gguf", b.build());
    const Model model = Model::load(f);
    const int L = static_cast<int>(model.hparams().n_layer);
    const auto V = static_cast<size_t>(model.hparams().n_vocab);
    std::vector<int32_t> prompt(10);
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((7 * i + 3) % V);
    for (const bool on_backend : {false, true}) {  // the CPU kernels directly, or the backend interface
        CAPTURE(on_backend);
        std::unique_ptr<kernels::Backend> be = on_backend ? kernels::make_backend("cpu") : nullptr;
        ContextParams p;
        p.n_ctx = 64;
        p.n_batch = 4;
        p.n_threads = 1;
        p.backend = be.get();
        Context ref(model, p);
        ref.eval(prompt, true);
        int polls = 0;
        p.abort = [&] { return ++polls == L + 2; };  // the second batch, before its layer 1
        Context ctx(model, p);
        CHECK_THROWS_WITH_AS(ctx.eval(prompt, true), doctest::Contains("before layer 1 of a batch of 4"),
                             Cancelled);
        CHECK(ctx.n_past() == 4);
        CHECK(ctx.n_outputs() == 0);
        ctx.eval(std::span<const int32_t>(prompt).subspan(4), true);
        REQUIRE(ctx.n_outputs() == 6);
        for (size_t i = 0; i < 6; ++i) {
            CAPTURE(i);
            CHECK(std::memcmp(ctx.logits(i), ref.logits(4 + i), V * sizeof(float)) == 0);
        }
    }
}
