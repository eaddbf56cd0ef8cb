// A model opened for inference with a memory budget: the file and model, the backend (CPU pass or
// a device backend), the memory plan, the expert source (in place, or the expert cache over NVMe),
// routing traces in and out, and the ContextParams that tie them together. The CLI's run, chat
// and bench and the C API (moerun.h) open models through it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "moerun/cache/policy.h"
#include "moerun/cache/trace.h"
#include "moerun/kernels/backend.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/expert-source.h"
#include "moerun/runtime/gguf.h"
#include "moerun/runtime/memory-plan.h"
#include "moerun/runtime/model.h"

namespace moerun {

// What the CLI's memory and cache flags set (model-setup.cpp names each field's flag); the
// error messages name the flags.
struct SessionOptions {
    std::string host_mem, device_mem;  // sizes such as 6GiB (empty: derived from free memory)
    std::string policy = "least-stale";
    std::string prefetch = "auto";  // auto | none | next-layer
    bool per_layer = false;         // one cache partition per layer (default: one for the model)
    bool force_cache = false;       // use the cache even when every expert fits
    unsigned io_depth = 32;
    uint32_t cache_slots = 0;  // > 0: exactly this many slots (tests, experiments)
    std::string routing_trace, trace_out;
    uint32_t pin_hot = 0;     // keep the N most used experts of a profile resident for good
    std::string pin_profile;  // the trace to count uses in (default: routing_trace)
    uint64_t routing_offset = 0;
    bool stats = false;                          // the CLI prints cache statistics
    std::string type_k = "f16", type_v = "f16";  // KV cache element types (f16 | f32)
    // auto | cpu | cuda | cpu-device (the device forward pass on the CPU backend, for tests)
    std::string backend = "auto";
    uint32_t device_slots = 0;  // > 0: exactly this many device expert slots (tests, experiments)
    std::string device_prefetch = "transition";  // none | previous | transition
    std::string cpu_fallback = "off";            // off | auto | always
    bool device_graphs = false;
    bool exclusive_tiers = false;
    uint32_t n_batch = 512;  // ContextParams::n_batch, which the plan sizes workspaces for (the CLI keeps it)
};

// Where open_session reports: one line per event (the backend chosen and why, the memory plan,
// the cache), and the progress of reading the weights in (bytes done of total; called per tensor).
struct SessionLog {
    std::function<void(const std::string &line)> info;
    std::function<void(uint64_t done, uint64_t total)> progress;
};

struct Session {
    gguf::GgufFile file;
    Model model;
    MemoryPlan plan;
    std::unique_ptr<cache::Trace> routing;
    std::unique_ptr<cache::FutureTrace> future;  // belady
    std::unique_ptr<cache::TraceWriter> trace_out;
    std::unique_ptr<ExpertSource> experts;
    std::unique_ptr<kernels::Backend> backend;  // the device forward pass's; null: the CPU pass
    std::string backend_desc;                   // "cpu (2 threads)", "cuda (NVIDIA H100 ...)"
    ContextParams ctx;

    Session(gguf::GgufFile f, Model m) : file(std::move(f)), model(std::move(m)) {}
};

// A backend asked for by name that is not usable here (the message says why).
class BackendError : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

// Opens the model, plans memory, builds the expert source and reads the weights it keeps in RAM;
// n_ctx/threads as given to the Context. Throws gguf::Error for a bad file, BudgetError for a budget too
// small, BackendError for an unusable backend, std::invalid_argument for options that do not fit (a trace of
// another model).
// `mapped`: the file at path, already open (its mapping is shared, not made again).
std::unique_ptr<Session> open_session(const std::string &path, const SessionOptions &opt, uint32_t n_ctx,
                                      int threads, const SessionLog &log = {},
                                      const gguf::GgufFile *mapped = nullptr);

// The values SessionOptions::backend and ::cpu_fallback take (the CLI's choices); open_session
// refuses others.
std::span<const std::string_view> backend_names();
std::span<const std::string_view> cpu_fallback_names();

// The expert cache's statistics summed over its layers (all zero when experts are read in place).
cache::LayerCacheStats cache_totals(const Session &s);

// Whether a and b name one existing file (device and inode), whatever the spelling.
bool same_file(const std::string &a, const std::string &b);

}  // namespace moerun
