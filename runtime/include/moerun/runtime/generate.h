// Text generation over a Context: prompt evaluation (one batch), then token-by-token decoding
// with a Sampler, streaming each token to a callback that may stop the run (cancellation).
// This is the call the CLI makes and the C API will wrap.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "moerun/runtime/context.h"
#include "moerun/runtime/sampler.h"
#include "moerun/runtime/tokenizer.h"

namespace moerun {

struct GenerateParams {
    int32_t n_predict = 128;  // tokens to generate; < 0: until end-of-generation or the context is full
    bool stop_at_eog = true;  // stop at an end-of-generation token (not emitted)
    SamplerParams sampler;
};

enum class StopReason { n_predict, eog, context_full, cancelled };
std::string_view stop_reason_name(StopReason r);

struct GenerateResult {
    std::vector<int32_t> tokens;  // generated ids (without the prompt)
    StopReason stop = StopReason::n_predict;
    uint32_t seed = 0;  // the sampler seed actually used
};

// Called with each new token id and the text it completes (UTF-8; may be empty while a
// multi-byte character is still incomplete). Return false to stop.
using TokenCallback = std::function<bool(int32_t id, std::string_view text)>;

// Evaluates `prompt` (must be non-empty and fit the context with room for one more token) and
// generates. Throws std::invalid_argument for an empty or too long prompt. ContextParams::abort
// stops it as the callback does (StopReason::cancelled); during the prompt, the context is left
// as it was before the call.
GenerateResult generate(Context &ctx, const Tokenizer &tok, std::span<const int32_t> prompt,
                        const GenerateParams &params, const TokenCallback &on_token);

// Streams detokenized text: feeds token ids, returns the newly completed UTF-8 text, holding
// back bytes of an incomplete trailing character.
class TextStream {
  public:
    explicit TextStream(const Tokenizer &tok) : tok_(tok) {}
    std::string push(int32_t id);
    std::string flush();

  private:
    const Tokenizer &tok_;
    std::vector<int32_t> ids_;
    size_t emitted_ = 0;
};

}  // namespace moerun
