// io_uring + O_DIRECT reads of the model file (see nvme-reader.h), with a pread fallback.
#include "moerun/cache/nvme-reader.h"

#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace moerun::cache {

namespace {

std::string errno_text(int err) {
    return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")";
}

struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
};

FileId file_id(const struct stat &st) {
    return {st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

}  // namespace

struct NvmeReader::Impl {
    // One read in flight: the request, how much of its aligned span has arrived, and retries.
    struct Flight {
        ReadRequest req;
        uint64_t base = 0;  // aligned file offset of the span
        uint64_t need = 0;  // bytes of the span that must arrive (lead + size)
        uint64_t span = 0;  // bytes of the span (need rounded up)
        uint64_t done = 0;  // bytes arrived
        int attempt = 0;
        bool busy = false;
    };

    std::string path;
    int fd = -1;
    bool direct = false, uring = false;
    io_uring ring{};
    unsigned depth = 0;
    std::vector<Flight> flights;
    std::vector<unsigned> free_flights;
    // Reads waiting for a free flight: a ring that only grows (no allocation once warm).
    std::vector<ReadRequest> waiting = std::vector<ReadRequest>(64);
    size_t wait_head = 0, wait_count = 0;
    std::vector<uint64_t> finished;  // tags completed synchronously (pread mode)
    size_t in_flight = 0;
    FileId opened;
    uint64_t bytes = 0;
    FaultInjector inject;

    [[noreturn]] void fail(uint64_t offset, const std::string &what) const {
        throw IoError(path + ": offset " + std::to_string(offset) + ": " + what);
    }

    void start(unsigned i) {
        Flight &f = flights[i];
        io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        if (sqe == nullptr) fail(f.req.offset, "io_uring submission queue is full");
        io_uring_prep_read(sqe, fd, f.req.dst + f.done, static_cast<unsigned>(f.span - f.done),
                           f.base + f.done);
        io_uring_sqe_set_data64(sqe, i);
        const int r = io_uring_submit(&ring);
        if (r < 0) fail(f.req.offset, "io_uring_submit: " + errno_text(-r));
    }

    void launch(const ReadRequest &req) {
        const unsigned i = free_flights.back();
        free_flights.pop_back();
        Flight &f = flights[i];
        f = Flight{};
        f.req = req;
        f.base = req.offset - lead(req.offset);
        f.need = lead(req.offset) + req.size;
        f.span = span_bytes(req.offset, req.size);
        f.busy = true;
        ++in_flight;
        start(i);
    }

    // A failed flight leaves the books before the error is thrown (nothing of it is in the kernel).
    [[noreturn]] void drop_and_fail(unsigned i, uint64_t offset, const std::string &what) {
        flights[i].busy = false;
        --in_flight;
        free_flights.push_back(i);
        fail(offset, what);
    }

    // Applies one completion result to flight i; returns true when the request is complete.
    bool advance(unsigned i, int64_t res) {
        Flight &f = flights[i];
        if (inject) {
            const int64_t r = inject(f.base + f.done, f.span - f.done, f.attempt);
            if (r < 0) res = r;
            if (r > 0 && r < res) res = r;
        }
        if (res == -EINTR || res == -EAGAIN) {
            start(i);
            return false;
        }
        if (res < 0) {
            if (++f.attempt > kRetries)
                drop_and_fail(i, f.base + f.done,
                              "read of " + std::to_string(f.span - f.done) + " bytes failed after " +
                                  std::to_string(kRetries) +
                                  " retries: " + errno_text(static_cast<int>(-res)));
            start(i);
            return false;
        }
        if (res == 0) {
            if (f.done >= f.need) return true;
            drop_and_fail(i, f.base + f.done,
                          "unexpected end of file: " + std::to_string(f.need - f.done) +
                              " more bytes expected (the file is " + std::to_string(opened.size) +
                              " bytes; was it truncated?)");
        }
        f.done += static_cast<uint64_t>(res);
        if (f.done >= f.need) return true;
        if (direct) f.done -= f.done % kAlign;  // O_DIRECT continues from an aligned offset
        start(i);
        return false;
    }

    void retire(unsigned i, const std::function<void(uint64_t)> &on_done) {
        Flight &f = flights[i];
        f.busy = false;
        bytes += f.req.size;
        --in_flight;
        free_flights.push_back(i);
        const uint64_t tag = f.req.tag;
        while (wait_count > 0 && !free_flights.empty()) {
            const ReadRequest next = waiting[wait_head];
            wait_head = (wait_head + 1) % waiting.size();
            --wait_count;
            launch(next);
        }
        on_done(tag);
    }

    size_t reap(bool block, const std::function<void(uint64_t)> &on_done) {
        size_t n = 0;
        for (uint64_t tag : finished) on_done(tag), ++n;
        finished.clear();
        if (n > 0 || in_flight == 0) return n;
        for (;;) {
            io_uring_cqe *cqe = nullptr;
            int r = block && n == 0 ? io_uring_wait_cqe(&ring, &cqe) : io_uring_peek_cqe(&ring, &cqe);
            if (r == -EINTR) continue;
            if (r == -EAGAIN || cqe == nullptr) return n;
            if (r < 0) fail(0, "io_uring_wait_cqe: " + errno_text(-r));
            const auto i = static_cast<unsigned>(io_uring_cqe_get_data64(cqe));
            const int64_t res = cqe->res;
            io_uring_cqe_seen(&ring, cqe);
            if (advance(i, res)) {
                retire(i, on_done);
                ++n;
            }
            if (in_flight == 0) return n;
        }
    }

    // pread fallback: the whole span, synchronously, with the same retry and fault rules.
    void read_sync(const ReadRequest &req) {
        Flight f;
        f.req = req;
        f.base = req.offset - lead(req.offset);
        f.need = lead(req.offset) + req.size;
        f.span = span_bytes(req.offset, req.size);
        for (;;) {
            ssize_t r = pread(fd, req.dst + f.done, f.span - f.done, static_cast<off_t>(f.base + f.done));
            int64_t res = r < 0 ? -errno : r;
            if (inject) {
                const int64_t x = inject(f.base + f.done, f.span - f.done, f.attempt);
                if (x < 0) res = x;
                if (x > 0 && x < res) res = x;
            }
            if (res == -EINTR || res == -EAGAIN) continue;
            if (res < 0) {
                if (++f.attempt > kRetries)
                    fail(f.base + f.done, "read of " + std::to_string(f.span - f.done) +
                                              " bytes failed after " + std::to_string(kRetries) +
                                              " retries: " + errno_text(static_cast<int>(-res)));
                continue;
            }
            if (res == 0) {
                if (f.done >= f.need) break;
                fail(f.base + f.done, "unexpected end of file: " + std::to_string(f.need - f.done) +
                                          " more bytes expected (the file is " + std::to_string(opened.size) +
                                          " bytes; was it truncated?)");
            }
            f.done += static_cast<uint64_t>(res);
            if (f.done >= f.need) break;
            if (direct) f.done -= f.done % kAlign;
        }
        bytes += req.size;
        finished.push_back(req.tag);
    }
};

NvmeReader::NvmeReader(const std::string &path, unsigned queue_depth) : impl_(std::make_unique<Impl>()) {
    Impl &m = *impl_;
    m.path = path;
    m.depth = queue_depth == 0 ? 1 : queue_depth;
    m.fd = open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    m.direct = m.fd >= 0;
    if (m.fd < 0) m.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);  // e.g. tmpfs has no O_DIRECT
    if (m.fd < 0) throw IoError(path + ": cannot open for reading: " + errno_text(errno));
    struct stat st {};
    if (fstat(m.fd, &st) != 0) throw IoError(path + ": fstat: " + errno_text(errno));
    m.opened = file_id(st);
    if (!m.direct) posix_fadvise(m.fd, 0, 0, POSIX_FADV_RANDOM);
    m.uring = io_uring_queue_init(m.depth, &m.ring, 0) == 0;
    m.flights.resize(m.depth);
    for (unsigned i = m.depth; i-- > 0;) m.free_flights.push_back(i);
    m.finished.reserve(m.depth);
}

NvmeReader::~NvmeReader() {
    Impl &m = *impl_;
    if (m.uring) {
        // Let the kernel finish writing into caller buffers before they can be freed.
        while (m.in_flight > 0) {
            io_uring_cqe *cqe = nullptr;
            if (io_uring_wait_cqe(&m.ring, &cqe) != 0 || cqe == nullptr) break;
            io_uring_cqe_seen(&m.ring, cqe);
            --m.in_flight;
        }
        io_uring_queue_exit(&m.ring);
    }
    if (m.fd >= 0) close(m.fd);
}

void NvmeReader::submit(const ReadRequest &req) {
    Impl &m = *impl_;
    if (req.offset + req.size > static_cast<uint64_t>(m.opened.size))
        m.fail(req.offset, "read of " + std::to_string(req.size) + " bytes runs past the end of the file (" +
                               std::to_string(m.opened.size) + " bytes)");
    if (reinterpret_cast<uintptr_t>(req.dst) % kAlign != 0)
        m.fail(req.offset, "destination buffer is not " + std::to_string(kAlign) + "-byte aligned");
    if (!m.uring) return m.read_sync(req);
    if (!m.free_flights.empty()) return m.launch(req);
    if (m.wait_count == m.waiting.size()) {  // full: double it, oldest first
        std::vector<ReadRequest> bigger(m.waiting.size() * 2);
        for (size_t i = 0; i < m.wait_count; ++i) bigger[i] = m.waiting[(m.wait_head + i) % m.waiting.size()];
        m.waiting = std::move(bigger);
        m.wait_head = 0;
    }
    m.waiting[(m.wait_head + m.wait_count) % m.waiting.size()] = req;
    ++m.wait_count;
}

size_t NvmeReader::poll(const std::function<void(uint64_t)> &on_done) {
    return impl_->reap(false, on_done);
}

size_t NvmeReader::wait_one(const std::function<void(uint64_t)> &on_done) {
    return impl_->reap(true, on_done);
}

size_t NvmeReader::outstanding() const {
    return impl_->in_flight + impl_->wait_count + impl_->finished.size();
}

void NvmeReader::check_unchanged() const {
    const Impl &m = *impl_;
    struct stat now {};
    if (stat(m.path.c_str(), &now) != 0)
        throw IoError(m.path + ": the model file vanished during the run: " + errno_text(errno));
    const FileId id = file_id(now);
    if (id.dev != m.opened.dev || id.ino != m.opened.ino)
        throw IoError(m.path + ": the model file was replaced during the run (different inode)");
    if (id.size != m.opened.size)
        throw IoError(m.path + ": the model file changed size during the run (" +
                      std::to_string(m.opened.size) + " -> " + std::to_string(id.size) + " bytes)");
    if (id.mtime.tv_sec != m.opened.mtime.tv_sec || id.mtime.tv_nsec != m.opened.mtime.tv_nsec)
        throw IoError(m.path + ": the model file was modified during the run (mtime changed)");
}

const std::string &NvmeReader::path() const {
    return impl_->path;
}

std::string NvmeReader::mode() const {
    const Impl &m = *impl_;
    return std::string(m.uring ? "io_uring" : "pread") +
           (m.direct ? "+O_DIRECT" : " (buffered, no O_DIRECT)");
}

uint64_t NvmeReader::file_size() const {
    return static_cast<uint64_t>(impl_->opened.size);
}

uint64_t NvmeReader::bytes_read() const {
    return impl_->bytes;
}

void NvmeReader::set_fault_injector(FaultInjector f) {
    impl_->inject = std::move(f);
}

}  // namespace moerun::cache
