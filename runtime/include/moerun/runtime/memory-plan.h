// The memory budget: how a model is laid out in the RAM it is given (CPU backend).
//
// On a CPU-only machine the device and host tiers are both RAM, so --device-mem and --host-mem
// add up to one budget. The budget holds the dense bytes (every non-expert tensor and the GGUF
// header, kept mapped and resident), the KV cache (n_ctx positions), the workspaces (a batch of
// up to kMaxBatch tokens) and the expert slots. When the experts fit too, they are read in place
// from the mapped file (no cache); otherwise the rest of the budget becomes expert slots and
// experts are read with io_uring + O_DIRECT. Peak RSS stays within budget + kFixedOverhead (the
// executable, libraries, tokenizer tables, thread stacks), which tests measure.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include "moerun/cache/expert-id.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/gguf.h"
#include "moerun/runtime/model.h"

namespace moerun {

struct MemoryOptions {
    uint64_t host_mem = 0;     // bytes; 0: not given
    uint64_t device_mem = 0;   // bytes; 0: not given (CPU: added to host_mem)
    bool force_cache = false;  // use the cache even when every expert fits
    // A device backend runs the pass: the dense matrices, the KV cache and the workspaces live in
    // its --device-mem budget (on the CPU backend that is RAM of its own). The host budget holds
    // the expert slots and what the host keeps of the dense bytes: the GGUF header, the token
    // embeddings and the 1-D tensors (norms, biases), plus one upload chunk in flight; the mapped
    // pages of the uploaded matrices are dropped (ContextParams::weights_file).
    bool state_on_device = false;
};

struct MemoryPlan {
    static constexpr uint64_t kFixedOverhead = 96ull << 20;  // stated; measured by tests/bench
    uint64_t budget = 0;                                     // bytes the model may use
    bool budget_from_free = false;                           // derived from MemAvailable (no flag given)
    uint64_t dense_bytes = 0, expert_bytes = 0, kv_bytes = 0, workspace_bytes = 0;
    uint64_t host_dense_bytes = 0;  // of dense_bytes, what the host budget holds
    uint64_t slot_bytes = 0;        // one expert slot
    uint32_t n_slots = 0;           // 0 when experts are read in place
    uint64_t n_experts_total = 0;   // layers x experts
    bool cached = false;
    bool state_on_device = false;  // kv_bytes, workspace_bytes and the uploaded matrices are not in it
    std::string describe() const;  // one line for the CLI
};

// A budget too small for the model's minimum (the message says how much is needed).
class BudgetError : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

// `locations`: expert_locations(file, model). Throws BudgetError when the budget cannot
// hold the dense weights, KV cache, workspaces and at least `min_slots` expert slots; the message
// says how much is needed.
MemoryPlan plan_memory(const gguf::GgufFile &file, std::span<const cache::ExpertLocation> locations,
                       const Model &model, const ContextParams &ctx, const MemoryOptions &opt,
                       uint32_t min_slots);

// Parses "6GiB", "1.5G", "512MiB", "800M", "4096" (bytes). Throws std::invalid_argument.
uint64_t parse_size(const std::string &text);
std::string format_size(uint64_t bytes);
// MemAvailable from /proc/meminfo in bytes (0 when unknown).
uint64_t available_memory();

}  // namespace moerun
