// An inference context over a Model: the KV cache, workspaces, the thread pool and the logits.
// eval() runs a batch of tokens at the next positions (prefill when many, decode when one);
// experts are grouped per layer so that each selected expert's weights are read once per batch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "moerun/runtime/model.h"

namespace moerun::cache {
struct Trace;
class TraceWriter;
}  // namespace moerun::cache

namespace moerun::kernels {
class Backend;
}  // namespace moerun::kernels

namespace moerun::gguf {
class GgufFile;
}  // namespace moerun::gguf

namespace moerun {

class ExpertSource;

struct ContextParams {
    uint32_t n_ctx = 4096;   // KV cache positions
    int n_threads = 0;       // 0: all hardware threads
    uint32_t n_batch = 512;  // tokens per forward batch: longer evals are split (workspaces sized for it;
                             // a device backend may lower it: Backend::max_batch_tokens)
    // KV cache element types, F16 (llama.cpp's default) or F32. F16 halves the cache and the bytes
    // decode attention reads; F32 keeps attention exact.
    quant::Type type_k = quant::Type::F16, type_v = quant::Type::F16;
    // Where expert weights come from (not owned); nullptr: in place from the mapped file.
    ExpertSource *experts = nullptr;
    // Routing forced from a trace (not owned): token i of the context (counting every evaluated
    // token, prompt and decode) uses the experts of trace token (routing_offset + i) % n_tokens; the
    // gate weights are the model's router probabilities of those experts. The trace's layers,
    // experts and top-k must match the model's.
    const cache::Trace *routing = nullptr;
    uint64_t routing_offset = 0;
    // Records the routing of every evaluated token (not owned).
    cache::TraceWriter *trace_out = nullptr;
    // Decode: predict layer l+1's experts from layer l's residual with layer l+1's router and
    // prefetch them while layer l computes (with a cache).
    bool prefetch_next_layer = false;
    // Runs the forward pass on this backend (not owned; e.g. CUDA) instead of calling the CPU
    // kernels directly. The dense weights are copied into its memory once, the KV cache and the
    // workspaces live there, and experts are kept in device slots filled from `experts` on a miss.
    // The slots are device_slots when given, else what device_mem leaves after the rest (bytes;
    // 0: a slot for every expert). At least n_expert_used slots are needed.
    kernels::Backend *backend = nullptr;
    uint64_t device_mem = 0;
    uint32_t device_slots = 0;
    // With a backend: the file the model's weights are mapped from (not owned). Each dense matrix
    // is then uploaded a chunk at a time and the chunk's pages are dropped from RAM once copied,
    // so the host holds at most one chunk of them (kUploadChunk) besides what it reads itself
    // (token embedding rows, norms). nullptr: the pages stay mapped as the file left them.
    const gguf::GgufFile *weights_file = nullptr;
    static constexpr uint64_t kUploadChunk = 16ull << 20;
    // The device slots' replacement policy (cache::policy_names(); not belady).
    std::string device_policy = "least-stale";
    // Decode with a backend: the predictor (predictor::predictor_names()) whose likely next-layer
    // experts are copied into device slots on the backend's copy queue while the current layer
    // computes; "" for none. Only when not every expert has a slot. Through the expert cache,
    // predicted experts not in host memory are read from NVMe ahead instead, and copied once read.
    std::string device_prefetch = "transition";
    // Decode with a backend, a slot miss: copy it into a slot ("off"), run it on the CPU cores
    // from host memory while the device runs the resident experts ("always"), or let the miss
    // cost model decide per miss with bandwidths measured at start ("auto"). On CUDA a row the
    // CPU computes rounds differently from the GPU's, so tokens can depend on the budget when
    // this is not "off"; on the CPU backend they do not.
    std::string cpu_fallback = "off";
    // Decode with a backend: record each layer's dense part (attention and router logits) and run
    // it as one graph (CUDA graphs, updated from token to token); the CPU backend has none and
    // runs it directly. Off by default until measured on a GPU.
    bool device_graphs = false;
    // Decode with a backend over the expert cache: keep the two tiers exclusive. An expert copied
    // up into a device slot leaves the host cache, and one the device slots evict to make room for
    // a miss is copied back into it (a download) unless it is there, so host RAM holds experts the
    // device does not and fewer are read from disk. Results do not change.
    bool exclusive_tiers = false;
    // Polled before each batch of an eval (a long prompt is several) and between the layers of a
    // batch of several tokens; when it returns true the eval stops there and throws Cancelled:
    // the batches already done stay evaluated, a batch stopped part way is not (n_past stays at
    // its start), and there are no logits.
    std::function<bool()> abort;
};

// An eval stopped by ContextParams::abort.
class Cancelled : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct ContextStats {
    uint64_t n_prompt_tokens = 0, n_decode_tokens = 0;
    double prompt_seconds = 0, decode_seconds = 0;
    // With a backend: bytes allocated in its memory (weights, KV cache, workspaces, slots), the
    // expert slots, and how experts were served from them.
    uint64_t device_bytes = 0;
    uint32_t device_slots = 0;
    uint64_t slot_hits = 0, slot_misses = 0, slot_bytes_uploaded = 0;
    uint64_t slot_transfers = 0;  // host-to-device copies (one per expert from a host cache slot)
    // Of those, the ones issued together (a decode layer's misses, 2 copies or more a call), and
    // the calls that issued them (Backend::upload_batch).
    uint64_t slot_batched_transfers = 0, slot_batches = 0;
    // Device prefetch: copies issued, and those used by their layer / evicted unused. Prefetched
    // experts that were used are counted in slot_hits as well.
    uint64_t slot_prefetches = 0, slot_prefetch_used = 0, slot_prefetch_wasted = 0;
    uint64_t host_registered_bytes = 0;  // host memory page-locked for the copies (CUDA)
    uint64_t host_dropped_bytes = 0;     // mapped dense pages dropped after the upload (weights_file)
    // exclusive_tiers: experts copied back into the host cache on eviction from a device slot (of
    // them, those a prefetch evicted), and experts released from it when copied up.
    uint64_t slot_write_backs = 0, slot_prefetch_write_backs = 0, host_released = 0;
    uint64_t device_graph_runs = 0;  // layers' dense parts run as one graph (device_graphs)
    // CPU fallback: slot misses computed on the CPU instead of copied (not in slot_misses), and
    // the bandwidths measured for the cost model (bytes/s; 0 unless cpu_fallback is "auto").
    uint64_t slot_cpu_misses = 0;
    double fallback_h2d = 0, fallback_cpu = 0, fallback_device = 0;
    // trace_out: router weights that were not finite (a model with NaN/inf weights), recorded as 0.
    uint64_t trace_nonfinite_weights = 0;
};

// Which of stats()' counters an eval's tokens and time go to. by_size: a batch of more than one
// token is prompt, one token is decode; a caller that knows (generate) says which, so that a
// one-token prompt counts as a prompt.
enum class EvalPhase { by_size, prompt, decode };

class Context {
  public:
    Context(const Model &model, ContextParams params);
    ~Context();
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    // Evaluates tokens at positions [n_past, n_past + n). Logits are kept for every token when
    // all_logits, else for the last one. Throws std::invalid_argument for an empty batch, a token
    // id outside the vocabulary, or a batch that does not fit the context.
    void eval(std::span<const int32_t> tokens, bool all_logits = false, EvalPhase phase = EvalPhase::by_size);

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
