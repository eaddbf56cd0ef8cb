#include "moerun/kernels/cpu/thread-pool.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#define MOERUN_CPU_RELAX() _mm_pause()
#else
#define MOERUN_CPU_RELAX() std::this_thread::yield()
#endif

namespace moerun::kernels::cpu {

namespace {
constexpr int kSpinIterations = 20000;  // _mm_pause is ~10-40 cycles: roughly 0.1-0.5 ms
}

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
    }
    start_cv_.notify_all();
    for (auto &t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)> &fn,
                              int64_t grain) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    const int64_t units = (n + grain - 1) / grain;
    const int64_t chunk = (units + n_threads_ - 1) / n_threads_ * grain;
    if (n_threads_ == 1 || n <= grain) {
        fn(0, n, 0);
        return;
    }
    job_ = &fn;
    job_n_ = n;
    job_chunk_ = chunk;
    pending_.store(n_threads_ - 1);
    generation_.fetch_add(1);  // publishes the job (seq_cst: pairs with the sleepers' check)
    if (sleeping_.load() > 0) {
        std::lock_guard<std::mutex> lock(mu_);  // a sleeper is either before its check or waiting
        start_cv_.notify_all();
    }
    fn(0, std::min(n, chunk), 0);
    while (pending_.load(std::memory_order_acquire) != 0) MOERUN_CPU_RELAX();
}

void ThreadPool::worker(int index) {
    uint64_t seen = 0;
    for (;;) {
        // Wait for the next job: spin first, then sleep.
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen && !stop_.load() &&
               spins < kSpinIterations) {
            MOERUN_CPU_RELAX();
            ++spins;
        }
        if (generation_.load() == seen && !stop_.load()) {
            std::unique_lock<std::mutex> lock(mu_);
            sleeping_.fetch_add(1);
            start_cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
            sleeping_.fetch_sub(1);
        }
        if (stop_.load()) return;
        seen = generation_.load(std::memory_order_acquire);
        const int64_t begin = std::min(job_n_, job_chunk_ * index),
                      end = std::min(job_n_, begin + job_chunk_);
        if (begin < end) (*job_)(begin, end, index);
        pending_.fetch_sub(1, std::memory_order_release);
    }
}

}  // namespace moerun::kernels::cpu
