// Cancellation (ContextParams::abort) on a tiny complete model: an eval stops before its next batch
// and keeps the batches done; generate() stopped during the prompt leaves the context as it was,
// stopped during decoding keeps the tokens it streamed.
#include <doctest/doctest.h>

#include <vector>

#include "gguf-builder.h"
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
    std::vector<int32_t> prompt(10);  // 3 batches of at most 4
    for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(i % model.hparams().n_vocab);
    const std::vector<int32_t> head = {1, 2, 3};
    ctx.eval(head);
    REQUIRE(ctx.n_past() == 3);

    SUBCASE("an eval keeps the batches done before the abort") {
        polls = 0;
        cancel_at = 2;
        CHECK_THROWS_AS(ctx.eval(prompt), Cancelled);
        CHECK(ctx.n_past() == 3 + 4);
        CHECK(ctx.n_outputs() == 0);
    }
    SUBCASE("generate: an abort during the prompt leaves the context as before") {
        polls = 0;
        cancel_at = 3;  // before the prompt's third batch
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
        cancel_at = 3 + 3;  // the prompt's 3 polls, then the third decode eval
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
