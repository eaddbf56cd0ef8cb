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
#include "moerun/runtime/session.h"

namespace moerun::cli {

// The memory and cache flags (add_memory_options) fill the runtime's session options.
using MemoryFlags = SessionOptions;

// The file named by the SIGBUS handler (main.cpp): a mapped model truncated by another process
// while in use ends the run with an error naming it instead of a crash.
void set_mapped_file_for_errors(const std::string &path);
void install_sigbus_handler();  // main(), once

// --host-mem --device-mem --cache-policy --cache-per-layer --force-cache --cache-slots --prefetch --io-depth
// --routing-trace --routing-offset --trace-out --pin-hot --pin-profile --stats -ctk -ctv --backend
void add_memory_options(CLI::App *app, MemoryFlags &f);

// moerun::open_session, printing what it reports and a load progress line to stderr; a truncated
// model file is named by the SIGBUS handler.
std::unique_ptr<Session> open_cli_session(const std::string &path, const MemoryFlags &f, uint32_t n_ctx,
                                          int threads);

// --trace-out: closes the trace (errors throw) and warns when router weights were recorded as 0
// because they were not finite. Nothing without --trace-out.
void close_trace_out(Session &s, const ContextStats &st, const std::string &path);

// With a device backend: its memory use and how the expert slots served (one line); else nothing.
void print_device_stats(const Session &s, const ContextStats &st, std::FILE *out);

// The cache statistics (per layer and total) as a table; nothing when experts are read in place.
void print_cache_stats(const Session &s, std::FILE *out);

}  // namespace moerun::cli
