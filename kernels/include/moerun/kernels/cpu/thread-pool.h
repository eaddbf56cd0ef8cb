// A fixed pool of worker threads for the CPU kernels. Created once (no thread creation on the
// decode path); parallel_for splits [0, n) into one contiguous chunk per thread and returns when
// all chunks are done. The calling thread runs chunk 0.
//
// A decode step issues hundreds of short parallel_for calls, so waking sleeping threads through
// the kernel each time would cost a large share of the step: idle workers first spin on an atomic
// job counter for a while (kSpinIterations, about 0.1-0.5 ms) and only then sleep on a condition
// variable; the caller spins until the workers' chunks are done.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace moerun::kernels::cpu {

class ThreadPool {
  public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool &) = delete;
    ThreadPool &operator=(const ThreadPool &) = delete;

    int size() const { return n_threads_; }

    // fn(begin, end, thread_index) over a partition of [0, n); chunks are aligned to `grain`.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)> &fn, int64_t grain = 1);

  private:
    void worker(int index);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable start_cv_;
    std::atomic<uint64_t> generation_{0};  // incremented once per job
    std::atomic<int> pending_{0};          // workers still running the current job
    std::atomic<int> sleeping_{0};         // workers blocked on start_cv_
    std::atomic<bool> stop_{false};
    const std::function<void(int64_t, int64_t, int)> *job_ = nullptr;  // written before generation_
    int64_t job_n_ = 0, job_chunk_ = 0;
};

}  // namespace moerun::kernels::cpu
