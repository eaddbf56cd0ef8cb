// Subcommands of the `moerun` executable, one file each (cmd-<name>.cpp).
//
// Each add_<name>() registers a CLI11 subcommand with its options on the parent app and
// returns the function that runs it once the command line has been parsed; main() runs the
// one that was selected. A runner returns the process exit code and may throw: main() prints
// any exception as "moerun: error: <message>" and exits 1.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace moerun::cli {

struct Subcommand {
    CLI::App *app = nullptr;
    std::function<int()> run;
};

// `moerun inspect FILE [--tensors/--no-tensors] [--metadata]`: header, hyperparameters, tensor
// table and expert summary of a GGUF file.
Subcommand add_inspect(CLI::App &parent);

// `moerun run -m FILE -p PROMPT [-n N] [-t T] [-c CTX] [sampling]`: generate text, report speed and memory.
Subcommand add_run(CLI::App &parent);

// `moerun chat -m FILE [-s SYSTEM] [sampling]`: interactive chat with the built-in template of the family.
Subcommand add_chat(CLI::App &parent);

// `moerun tokenize -m FILE (-p TEXT | -f FILE) [--add-special] [--parse-special] [--pieces]`: token ids, one
// line.
Subcommand add_tokenize(CLI::App &parent);

// `moerun bench -m FILE [-p 512] [-n 128] [-r 3] [-t T] [--json]`: prompt and decode tokens/s.
Subcommand add_bench(CLI::App &parent);

// `moerun profile replay|stats TRACE [...]`: cache hit rates per policy and size (with Belady's bound),
// SRP/SCH locality, popularity; table, --json or --html. See cmd-profile.cpp.
Subcommand add_profile(CLI::App &parent);

}  // namespace moerun::cli
