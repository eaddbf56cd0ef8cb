// Loading a model for the subcommands that run one (run, chat, bench): the memory budget and
// expert cache flags, the memory plan, the expert source, routing traces in and out.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "moerun/cache/policy.h"
#include "moerun/cache/trace.h"
#include "moerun/kernels/backend.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/expert-source.h"
#include "moerun/runtime/gguf.h"
#include "moerun/runtime/memory-plan.h"
#include "moerun/runtime/model.h"

namespace moerun::cli {

struct MemoryFlags {
    std::string host_mem, device_mem;  // sizes such as 6GiB (empty: derived from free memory)
    std::string policy = "least-stale";
    std::string prefetch = "auto";  // auto | none | next-layer
    bool per_layer = false;         // one cache partition per layer (default: one for the model)
    bool force_cache = false;       // use the cache even when every expert fits
    unsigned io_depth = 32;
    uint32_t cache_slots = 0;  // > 0: exactly this many slots (tests, experiments)
    std::string routing_trace, trace_out;
    uint32_t pin_hot = 0;     // keep the N most used experts of a profile resident for good
    std::string pin_profile;  // the trace to count uses in (default: --routing-trace)
    uint64_t routing_offset = 0;
    bool stats = false;
    std::string type_k = "f16", type_v = "f16";  // KV cache element types (f16 | f32)
    // auto | cpu | cuda | cpu-device (the device forward pass on the CPU backend, for tests)
    std::string backend = "auto";
    uint32_t device_slots = 0;  // > 0: exactly this many device expert slots (tests, experiments)
    std::string device_prefetch = "transition";  // none | previous | transition
    std::string cpu_fallback = "off";            // off | auto | always
    bool device_graphs = false;
    bool exclusive_tiers = false;
};

// Whether a and b name one existing file (device and inode), whatever the spelling.
bool same_file(const std::string &a, const std::string &b);

// The file named by the SIGBUS handler (main.cpp): a mapped model truncated by another process
// while in use ends the run with an error naming it instead of a crash.
void set_mapped_file_for_errors(const std::string &path);
void install_sigbus_handler();  // main(), once

// --host-mem --device-mem --cache-policy --cache-per-layer --force-cache --cache-slots --prefetch --io-depth
// --routing-trace --routing-offset --trace-out --pin-hot --pin-profile --stats -ctk -ctv --backend
void add_memory_options(CLI::App *app, MemoryFlags &f);

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

// Opens the model, plans memory, builds the expert source; prints the plan and a load progress
// line to stderr. n_ctx/threads as given to the Context.
std::unique_ptr<Session> open_session(const std::string &path, const MemoryFlags &f, uint32_t n_ctx,
                                      int threads);

// --trace-out: closes the trace (errors throw) and warns when router weights were recorded as 0
// because they were not finite. Nothing without --trace-out.
void close_trace_out(Session &s, const ContextStats &st, const std::string &path);

// With a device backend: its memory use and how the expert slots served (one line); else nothing.
void print_device_stats(const Session &s, const ContextStats &st, std::FILE *out);

// The cache statistics (per layer and total) as a table; nothing when experts are read in place.
void print_cache_stats(const Session &s, std::FILE *out);

}  // namespace moerun::cli
