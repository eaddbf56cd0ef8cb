// The CPU thread pool: every index of every job runs exactly once, across thousands of short
// jobs (the decode pattern), after the workers have gone to sleep, and at shutdown.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "moerun/kernels/cpu/thread-pool.h"

using moerun::kernels::cpu::ThreadPool;

TEST_CASE("parallel_for covers [0, n) exactly once, job after job") {
    for (int threads : {1, 2, 3, 4}) {
        ThreadPool pool(threads);
        std::vector<std::atomic<int>> hits(1000);
        std::atomic<int> bad_thread{0};
        for (int job = 0; job < 2000; ++job) {
            const int64_t n = 1 + job % 997, grain = 1 + job % 7;
            pool.parallel_for(
                n,
                [&](int64_t b, int64_t e, int t) {
                    CHECK(t < threads);
                    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
                },
                grain);
            int64_t once = 0;
            for (int64_t i = 0; i < n; ++i) once += hits[static_cast<size_t>(i)].exchange(0) == 1;
            REQUIRE(once == n);
        }
        CHECK(bad_thread.load() == 0);
    }
}

TEST_CASE("sleeping workers wake up for the next job") {
    ThreadPool pool(3);
    std::atomic<int64_t> sum{0};
    for (int round = 0; round < 3; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // long past the spin phase
        pool.parallel_for(300, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) sum += i;
        });
    }
    CHECK(sum.load() == 3 * (299 * 300 / 2));
}
