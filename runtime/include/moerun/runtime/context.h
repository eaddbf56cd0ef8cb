// An inference context over a Model: the KV cache, workspaces, the thread pool and the logits.
// eval() runs a batch of tokens at the next positions (prefill when many, decode when one);
// experts are grouped per layer so that each selected expert's weights are read once per batch.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "moerun/runtime/model.h"

namespace moerun {

struct ContextParams {
    uint32_t n_ctx = 4096;  // KV cache positions
    int n_threads = 0;      // 0: all hardware threads
};

struct ContextStats {
    uint64_t n_prompt_tokens = 0, n_decode_tokens = 0;
    double prompt_seconds = 0, decode_seconds = 0;
};

class Context {
  public:
    Context(const Model &model, ContextParams params);
    ~Context();
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    // Evaluates tokens at positions [n_past, n_past + n). Logits are kept for every token when
    // all_logits, else for the last one. Throws std::invalid_argument for an empty batch, a token
    // id outside the vocabulary, or a batch that does not fit the context.
    void eval(std::span<const int32_t> tokens, bool all_logits = false);

    // Logits of output row i (0 .. n_outputs()-1), [n_vocab] each.
    const float *logits(size_t i = 0) const;
    size_t n_outputs() const;
    uint32_t n_past() const;
    uint32_t n_ctx() const;
    uint32_t n_vocab() const;  // width of a logits row
    const Model &model() const;
    void reset();  // forget the sequence (KV cache positions)
    // Keeps the first n positions and forgets the rest (n <= n_past), e.g. to rewind a chat.
    void truncate(uint32_t n);
    const ContextStats &stats() const;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace moerun
