// The NVMe tier: byte ranges of the model file read into caller buffers with io_uring and
// O_DIRECT, so expert reads bypass the page cache (the page cache must not be a hidden cache).
//
// O_DIRECT needs aligned offsets, lengths and buffers: a range [offset, offset + size) is read as
// the covering aligned span [align_down(offset), align_up(offset + size)) into a kAlign-aligned
// buffer of span_bytes(offset, size) bytes; the data starts lead(offset) bytes into it.
//
// Several reads are in flight at once (queue depth > 1). A short read is continued, an EIO is
// retried kRetries times and then reported as IoError naming the file, the offset and the error.
// check_unchanged() detects the file being replaced, truncated, modified or removed.
// Where io_uring or O_DIRECT is unavailable (old kernels, seccomp, tmpfs) the reader falls back
// to synchronous pread (and says so in mode()).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace moerun::cache {

class IoError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct ReadRequest {
    uint64_t offset = 0;     // file offset of the wanted bytes
    uint64_t size = 0;       // wanted bytes
    uint8_t *dst = nullptr;  // kAlign-aligned buffer of span_bytes(offset, size) bytes
    uint64_t tag = 0;        // returned on completion
};

// Test hook: called for each completed read (attempt counts retries from 0). Return 0 to keep the
// real result, a negative errno to fail it, or a positive byte count to shorten it.
using FaultInjector = std::function<int64_t(uint64_t offset, uint64_t len, int attempt)>;

class NvmeReader {
  public:
    static constexpr uint64_t kAlign = 4096;
    static constexpr int kRetries = 3;
    static uint64_t lead(uint64_t offset) { return offset % kAlign; }
    static uint64_t span_bytes(uint64_t offset, uint64_t size) {
        return (lead(offset) + size + kAlign - 1) / kAlign * kAlign;
    }

    // Opens `path` for reading; queue_depth reads in flight at most. Throws IoError.
    NvmeReader(const std::string &path, unsigned queue_depth = 32);
    ~NvmeReader();
    NvmeReader(const NvmeReader &) = delete;
    NvmeReader &operator=(const NvmeReader &) = delete;

    // Queues a read; it is submitted at once when the queue has room.
    void submit(const ReadRequest &req);
    // Completes what has finished without blocking; calls on_done(tag) for each. Returns the count.
    size_t poll(const std::function<void(uint64_t tag)> &on_done);
    // Blocks until at least one read completes (when any is outstanding), then as poll().
    size_t wait_one(const std::function<void(uint64_t tag)> &on_done);
    size_t outstanding() const;

    // Throws IoError when the file at `path` is no longer the file opened (removed, replaced,
    // resized, or modified since open).
    void check_unchanged() const;

    const std::string &path() const;
    std::string mode() const;  // "io_uring+O_DIRECT", "io_uring (buffered)", "pread+O_DIRECT", ...
    uint64_t file_size() const;
    uint64_t bytes_read() const;  // payload bytes delivered (aligned spans)
    void set_fault_injector(FaultInjector f);

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace moerun::cache
