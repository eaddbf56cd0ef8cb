// moerun: run Mixture-of-Experts GGUF models whose experts do not fit in fast memory.
//
// The executable is a thin client of runtime/: main() builds the CLI11 app from the
// subcommands (subcommands.h), runs the selected one, and turns every exception into
// "moerun: error: <message>" on stderr and exit status 1. It never lets one escape.
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "model-setup.h"
#include "subcommands.h"

#ifndef MOERUN_VERSION
#define MOERUN_VERSION "0.1.0"
#endif

namespace {

int run(int argc, char **argv) {
    CLI::App app{"moerun: run Mixture-of-Experts GGUF models with the experts cached across memory tiers",
                 "moerun"};
    app.set_version_flag("--version", "moerun " MOERUN_VERSION);
    app.require_subcommand(1);
    std::vector<moerun::cli::Subcommand> commands;
    commands.push_back(moerun::cli::add_inspect(app));
    commands.push_back(moerun::cli::add_run(app));
    commands.push_back(moerun::cli::add_chat(app));
    commands.push_back(moerun::cli::add_tokenize(app));
    commands.push_back(moerun::cli::add_bench(app));
    commands.push_back(moerun::cli::add_profile(app));

    // llama.cpp's multi-letter short flags, which CLI11 cannot declare, as their long names.
    std::vector<std::string> args;
    for (int i = argc - 1; i > 0; --i) {
        const char *a = argv[i];
        const bool after_text =
            std::strcmp(argv[i - 1], "-p") == 0 || std::strcmp(argv[i - 1], "--prompt") == 0;
        if (!after_text && std::strcmp(a, "-ctk") == 0) a = "--cache-type-k";
        if (!after_text && std::strcmp(a, "-ctv") == 0) a = "--cache-type-v";
        args.emplace_back(a);
    }
    try {
        app.parse(std::move(args));
    } catch (const CLI::CallForHelp &e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp &e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion &e) {
        return app.exit(e);
    } catch (const CLI::ParseError &e) {
        std::cerr << "moerun: error: " << e.what() << "\n"
                  << "Run with --help for more information.\n";
        return 1;
    }
    for (const auto &c : commands)
        if (c.app->parsed()) return c.run();
    return 1;  // unreachable: require_subcommand(1)
}

}  // namespace

int main(int argc, char **argv) {
    moerun::cli::install_sigbus_handler();
    try {
        return run(argc, argv);
    } catch (const std::exception &e) {
        std::cout.flush();
        std::cerr << "moerun: error: " << e.what() << "\n";
    } catch (...) {
        std::cout.flush();
        std::cerr << "moerun: error: unknown exception\n";
    }
    return 1;
}
