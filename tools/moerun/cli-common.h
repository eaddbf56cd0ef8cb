// Options and helpers shared by the subcommands that run a model (run, chat, bench).
#pragma once

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <string>
#include <thread>

#include "moerun/runtime/sampler.h"

namespace moerun::cli {

// The llama.cpp-style sampling flags: --temp --top-k --top-p --min-p --repeat-penalty
// --repeat-last-n --seed.
// Their ranges are llama.cpp's (a temperature <= 0 is greedy, top-p >= 1 and min-p <= 0 are off);
// NaN and infinities are refused, and a repetition penalty must be > 0 (it divides).
inline void add_sampling_options(CLI::App *app, SamplerParams &s) {
    // A finite number (and > 0 with `positive`).
    const auto number = [](bool positive) {
        return CLI::Validator(
            [positive](const std::string &v) {
                float x = 0;
                return CLI::detail::lexical_cast(v, x) && std::isfinite(x) && (!positive || x > 0)
                           ? std::string()
                           : std::string(positive ? "expected a finite number > 0, found "
                                                  : "expected a finite number, found ") +
                                 v;
            },
            positive ? "POSITIVE" : "FINITE");
    };
    const CLI::Validator finite = number(false), positive = number(true);
    app->add_option("--temp", s.temp, "temperature (<= 0: greedy)")->capture_default_str()->check(finite);
    app->add_option("--top-k", s.top_k, "top-k (0: off)")->capture_default_str();
    app->add_option("--top-p", s.top_p, "top-p (1: off)")->capture_default_str()->check(finite);
    app->add_option("--min-p", s.min_p, "min-p (0: off)")->capture_default_str()->check(finite);
    app->add_option("--repeat-penalty", s.repeat_penalty, "repetition penalty (1: off)")
        ->capture_default_str()
        ->check(positive);
    app->add_option("--repeat-last-n", s.repeat_last_n, "tokens the penalty looks back")
        ->capture_default_str();
    app->add_option("--seed", s.seed, "sampling seed (default: random)");
}

// -t: 0 means every hardware thread.
inline int resolve_threads(int requested) {
    return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace moerun::cli
