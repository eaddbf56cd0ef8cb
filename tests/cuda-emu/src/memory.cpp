// Emulated device memory: each cudaMalloc is its own mapping, the allocation placed at the end of
// its pages (256-byte aligned) with an inaccessible guard page after it, and every allocation is
// PROT_NONE except while device work runs (DeviceAccess): host code that touches device memory,
// or a kernel that reads past an allocation, faults, and the fault handler says which. New
// allocations are filled with 0xff bytes (NaN as F32), so reading memory nothing wrote shows.
// Registered host ranges (cudaHostRegister) are kept for the copies' rules: late reads of their
// sources, and no device writes into a range registered read-only.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "emu.h"

namespace moerun_emu {
namespace {

struct Allocation {
    uint8_t *map = nullptr;  // mapping start
    size_t pages = 0;        // bytes of the data pages (the guard page follows)
    size_t bytes = 0;        // asked for
};

struct Memory_ {
    std::map<uintptr_t, Allocation> allocations;  // by the pointer returned
    struct Registered {
        size_t bytes = 0;
        bool read_only = false;
    };
    std::map<uintptr_t, Registered> registered;  // host ranges, by start
    size_t used = 0;
    int access_depth = 0;
};
Memory_ g_mem;

size_t page_size() {
    static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return p;
}

size_t capacity() {
    static const size_t c = [] {
        const char *e = std::getenv("MOERUN_CUDA_EMU_MEMORY_MIB");
        const long mib = e ? std::atol(e) : 0;
        return static_cast<size_t>(mib > 0 ? mib : 4096) << 20;
    }();
    return c;
}

void protect(const Allocation &a, int prot) {
    if (mprotect(a.map, a.pages, prot) != 0) fatal("mprotect of a device allocation failed");
}

// Which allocation holds p (its mapping, guard page included), or null.
const std::pair<const uintptr_t, Allocation> *find_allocation(uintptr_t p) {
    auto it = g_mem.allocations.upper_bound(p);
    if (it == g_mem.allocations.begin()) return nullptr;
    --it;
    const Allocation &a = it->second;
    const auto lo = reinterpret_cast<uintptr_t>(a.map);
    if (p < lo || p >= lo + a.pages + page_size()) return nullptr;
    return &*it;
}

void on_fault(int sig, siginfo_t *info, void *) {
    const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
    const auto *hit = find_allocation(addr);
    const char *kernel = current_kernel();
    char msg[512];
    if (kernel != nullptr) {
        std::snprintf(msg, sizeof msg,
                      "moerun CUDA emulator: invalid memory access at %p in kernel %s (%s)\n", info->si_addr,
                      kernel,
                      hit ? "past the end of a device allocation"
                          : "not device memory: a host pointer, or outside every allocation");
    } else if (hit != nullptr) {
        std::snprintf(msg, sizeof msg,
                      "moerun CUDA emulator: host code accessed device memory at %p (allocation of %zu bytes "
                      "at %p); device memory is not reachable from the host\n",
                      info->si_addr, hit->second.bytes, reinterpret_cast<void *>(hit->first));
    } else {
        signal(sig, SIG_DFL);  // not ours: the usual crash
        return;
    }
    (void)!write(2, msg, std::strlen(msg));
    signal(SIGABRT, SIG_DFL);
    abort();
}

void install_fault_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        static uint8_t alt[64 << 10];
        stack_t ss{};
        ss.ss_sp = alt;
        ss.ss_size = sizeof alt;
        sigaltstack(&ss, nullptr);
        struct sigaction sa {};
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, nullptr);
        sigaction(SIGBUS, &sa, nullptr);
    });
}

}  // namespace

void fatal(const char *fmt, ...) {
    std::fputs("moerun CUDA emulator: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::fflush(stderr);
    std::abort();
}

DeviceAccess::DeviceAccess() {
    if (g_mem.access_depth++ == 0)
        for (auto &[p, a] : g_mem.allocations) protect(a, PROT_READ | PROT_WRITE);
}
DeviceAccess::~DeviceAccess() {
    if (--g_mem.access_depth == 0)
        for (auto &[p, a] : g_mem.allocations) protect(a, PROT_NONE);
}

Memory classify(const void *ptr, size_t bytes, std::string *error) {
    const auto p = reinterpret_cast<uintptr_t>(ptr);
    char buf[256];
    if (const auto *hit = find_allocation(p)) {
        const uintptr_t lo = hit->first, hi = lo + hit->second.bytes;
        if (p < lo || p > hi || (p == hi && bytes > 0)) {
            std::snprintf(buf, sizeof buf, "%p is outside the device allocation of %zu bytes at %p", ptr,
                          hit->second.bytes, reinterpret_cast<void *>(lo));
            *error = buf;
        } else if (bytes > hi - p) {
            std::snprintf(buf, sizeof buf,
                          "%zu bytes at %p run %zu bytes past the device allocation of %zu bytes", bytes, ptr,
                          bytes - (hi - p), hit->second.bytes);
            *error = buf;
        }
        return Memory::device;
    }
    auto it = g_mem.registered.upper_bound(p);
    if (it != g_mem.registered.begin()) {
        --it;
        const size_t n = it->second.bytes;
        if (p < it->first + n) {
            if (bytes > it->first + n - p) {
                std::snprintf(buf, sizeof buf,
                              "%zu bytes at %p run past the registered host range of %zu bytes", bytes, ptr,
                              n);
                *error = buf;
            }
            return it->second.read_only ? Memory::registered_read_only : Memory::registered;
        }
    }
    return Memory::host;
}

size_t memory_used() {
    return g_mem.used;
}
size_t memory_capacity() {
    return capacity();
}

cudaError_t allocate(void **out, size_t bytes) {
    install_fault_handler();
    *out = nullptr;
    if (bytes == 0) return cudaSuccess;
    const size_t pg = page_size(), pages = (bytes + pg - 1) / pg * pg, span = (bytes + 255) / 256 * 256;
    if (g_mem.used + pages > capacity()) return cudaErrorMemoryAllocation;
    void *m =
        mmap(nullptr, pages + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return cudaErrorMemoryAllocation;
    Allocation a{static_cast<uint8_t *>(m), pages, bytes};
    uint8_t *p = a.map + (pages - span);
    std::memset(p, 0xff, span);
    mprotect(a.map + pages, pg, PROT_NONE);
    if (g_mem.access_depth == 0) protect(a, PROT_NONE);
    g_mem.allocations[reinterpret_cast<uintptr_t>(p)] = a;
    g_mem.used += pages;
    *out = p;
    return cudaSuccess;
}

cudaError_t release(void *ptr) {
    auto it = g_mem.allocations.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == g_mem.allocations.end()) return cudaErrorInvalidValue;
    munmap(it->second.map, it->second.pages + page_size());
    g_mem.used -= it->second.pages;
    g_mem.allocations.erase(it);
    return cudaSuccess;
}

cudaError_t register_host(void *ptr, size_t bytes, bool read_only) {
    const auto p = reinterpret_cast<uintptr_t>(ptr);
    if (ptr == nullptr || bytes == 0 || find_allocation(p) != nullptr) return cudaErrorInvalidValue;
    auto it = g_mem.registered.upper_bound(p);
    if (it != g_mem.registered.end() && it->first < p + bytes) return cudaErrorHostMemoryAlreadyRegistered;
    if (it != g_mem.registered.begin() && std::prev(it)->first + std::prev(it)->second.bytes > p)
        return cudaErrorHostMemoryAlreadyRegistered;
    g_mem.registered[p] = {bytes, read_only};
    return cudaSuccess;
}

cudaError_t unregister_host(void *ptr) {
    return g_mem.registered.erase(reinterpret_cast<uintptr_t>(ptr)) ? cudaSuccess
                                                                    : cudaErrorHostMemoryNotRegistered;
}

}  // namespace moerun_emu
