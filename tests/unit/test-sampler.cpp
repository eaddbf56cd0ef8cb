#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <vector>

#include "moerun/runtime/sampler.h"

using moerun::Sampler;
using moerun::SamplerParams;

TEST_CASE("greedy picks the argmax, lowest id on ties") {
    SamplerParams p;
    p.temp = 0;
    Sampler s(p);
    std::vector<float> l = {0.1f, 3.0f, -2.0f, 3.0f, 1.0f};
    CHECK(s.sample(l) == 1);
    l[4] = 5.0f;
    CHECK(s.sample(l) == 4);
}

TEST_CASE("top-k 1 is greedy at any temperature") {
    SamplerParams p;
    p.temp = 5.0f;
    p.top_k = 1;
    p.seed = 7;
    Sampler s(p);
    std::vector<float> l = {0.1f, 0.2f, 0.3f, 0.25f};
    for (int i = 0; i < 50; ++i) CHECK(s.sample(l) == 2);
}

TEST_CASE("same seed, same draws; different seed, different draws") {
    SamplerParams p;
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    std::vector<float> l(100);
    for (size_t i = 0; i < l.size(); ++i) l[i] = std::sin(float(i));
    auto run = [&](uint32_t seed) {
        p.seed = seed;
        Sampler s(p);
        std::vector<int32_t> out;
        for (int i = 0; i < 64; ++i) out.push_back(s.sample(l));
        return out;
    };
    CHECK(run(42) == run(42));
    CHECK(run(42) != run(43));
}

TEST_CASE("temperature 1 draws follow the softmax") {
    SamplerParams p;
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    Sampler s(p);
    std::vector<float> l = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};  // p = 0.1 0.2 0.3 0.4
    std::map<int32_t, int> counts;
    const int n = 20000;
    for (int i = 0; i < n; ++i) counts[s.sample(l)]++;
    for (int i = 0; i < 4; ++i) CHECK(std::abs(double(counts[i]) / n - 0.1 * (i + 1)) < 0.015);
}

TEST_CASE("top-p and min-p cut the tail") {
    SamplerParams p;
    p.temp = 1.0f;
    p.top_k = 0;
    p.seed = 5;
    std::vector<float> l = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
    p.top_p = 0.7f;  // keeps 0.5 + 0.3
    p.min_p = 0.0f;
    Sampler a(p);
    for (int i = 0; i < 500; ++i) CHECK(a.sample(l) <= 1);
    p.top_p = 1.0f;
    p.min_p = 0.2f;  // keeps p >= 0.1: ids 0, 1, 2
    Sampler b(p);
    for (int i = 0; i < 500; ++i) CHECK(b.sample(l) <= 2);
}

TEST_CASE("repetition penalty demotes recent tokens") {
    SamplerParams p;
    p.temp = 0;
    p.repeat_penalty = 2.0f;
    Sampler s(p);
    std::vector<float> l = {1.0f, 1.5f, 0.5f};
    CHECK(s.sample(l) == 1);
    s.accept(1);  // 1.5 / 2 = 0.75 < 1.0
    CHECK(s.sample(l) == 0);
}
