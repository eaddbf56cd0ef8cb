// Thread blocks as fibers: every CUDA thread of a block gets a stack and runs until it reaches a
// barrier (__syncthreads, a warp shuffle) or returns; the scheduler then releases the barriers
// whose participants have all arrived, and repeats. Blocks run one after another on the calling
// thread, so __shared__ variables (statics) belong to the running block. A barrier that cannot be
// released (a shuffle whose mask names a lane that exited or waits elsewhere, a __syncthreads some
// threads never reach) ends the process with a description of where each warp stands.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "emu.h"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace moerun_emu {

ThreadContext *g_thread = nullptr;

namespace {

#if defined(__x86_64__)
// moerun_emu_switch(&save, load): saves the callee-saved registers on the current stack, stores
// its pointer in *save, and resumes the stack `load` (saved the same way). The FP control words
// are not switched: kernels do not change them.
extern "C" void moerun_emu_switch(void **save, void *load);
asm(R"(
    .text
    .p2align 4
    .globl moerun_emu_switch
    .type moerun_emu_switch, @function
moerun_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size moerun_emu_switch, .-moerun_emu_switch
)");
#endif

constexpr size_t kStackBytes = 256 << 10;
constexpr int kMaxThreads = 1024;

enum class State { run, shuffle, barrier, done };

struct Fiber {
    ThreadContext ctx{};
    State state = State::run;
    uint8_t *stack = nullptr;  // kStackBytes, a guard page below
#if defined(__x86_64__)
    void *sp = nullptr;
#else
    ucontext_t uc{};
#endif
    // the shuffle this lane waits in
    uint64_t offer = 0, result = 0;
    Shuffle mode = Shuffle::index;
    int arg = 0, width = 32;
    unsigned mask = 0;
};

struct Scheduler {
    std::vector<Fiber> fibers;
    Fiber *current = nullptr;
    const std::function<void()> *body = nullptr;
    const char *kernel = nullptr;
#if defined(__x86_64__)
    void *sp = nullptr;
#else
    ucontext_t uc{};
#endif
};
Scheduler g_sched;

[[noreturn]] void fiber_main() {
    (*g_sched.body)();
    Fiber *f = g_sched.current;
    f->state = State::done;
#if defined(__x86_64__)
    moerun_emu_switch(&f->sp, g_sched.sp);
#else
    swapcontext(&f->uc, &g_sched.uc);
#endif
    __builtin_unreachable();
}

#if !defined(__x86_64__)
void fiber_entry_uc() {
    fiber_main();
}
#endif

void start(Fiber &f) {
    uint8_t *top = f.stack + kStackBytes;
#if defined(__x86_64__)
    // The stack as moerun_emu_switch leaves it: r15..rbp, then the return address (fiber_main)
    // 16-byte aligned, so fiber_main starts as if called.
    auto *slot = reinterpret_cast<uint64_t *>(top) - 8;
    for (int i = 0; i < 6; ++i) slot[i] = 0;
    slot[6] = reinterpret_cast<uint64_t>(&fiber_main);
    slot[7] = 0;
    f.sp = slot;
#else
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = f.stack;
    f.uc.uc_stack.ss_size = kStackBytes;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, fiber_entry_uc, 0);
#endif
    (void)top;
}

void resume(Fiber &f) {
    g_sched.current = &f;
    g_thread = &f.ctx;
#if defined(__x86_64__)
    moerun_emu_switch(&g_sched.sp, f.sp);
#else
    swapcontext(&g_sched.uc, &f.uc);
#endif
}

void yield() {
    Fiber *f = g_sched.current;
#if defined(__x86_64__)
    moerun_emu_switch(&f->sp, g_sched.sp);
#else
    swapcontext(&f->uc, &g_sched.uc);
#endif
}

void ensure_fibers(size_t n) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    while (g_sched.fibers.size() < n) {
        void *m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) fatal("cannot map a fiber stack");
        mprotect(m, page, PROT_NONE);  // the guard: a stack overflow faults
        Fiber f;
        f.stack = static_cast<uint8_t *>(m) + page;
        g_sched.fibers.push_back(f);
    }
}

const char *state_name(State s) {
    switch (s) {
        case State::run:
            return "running";
        case State::shuffle:
            return "in a warp shuffle";
        case State::barrier:
            return "at __syncthreads";
        default:
            return "exited";
    }
}

[[noreturn]] void stuck(size_t n, const dim3 &b) {
    std::string msg;
    char buf[64];
    for (size_t w = 0; w * 32 < n; ++w) {
        std::snprintf(buf, sizeof buf, "\n  warp %zu:", w);
        msg += buf;
        for (size_t i = w * 32; i < n && i < w * 32 + 32; ++i) {
            const Fiber &f = g_sched.fibers[i];
            std::snprintf(buf, sizeof buf, " %zu=%s", i - w * 32, state_name(f.state));
            msg += buf;
            if (f.state == State::shuffle) {
                std::snprintf(buf, sizeof buf, "(mask %08x)", f.mask);
                msg += buf;
            }
        }
    }
    fatal("kernel %s, block (%u, %u, %u): no thread can go on; barriers that cannot be passed:%s",
          g_sched.kernel, b.x, b.y, b.z, msg.c_str());
}

// Releases warp w's shuffle when every lane its mask names waits in it with the same mask.
bool release_shuffle(size_t w, size_t n) {
    const size_t lo = w * 32, hi = std::min(n, lo + 32);
    unsigned mask = 0;
    bool any = false;
    for (size_t i = lo; i < hi; ++i)
        if (g_sched.fibers[i].state == State::shuffle) {
            if (any && g_sched.fibers[i].mask != mask) return false;
            mask = g_sched.fibers[i].mask;
            any = true;
        }
    if (!any) return false;
    for (int l = 0; l < 32; ++l) {
        if (!(mask >> l & 1u)) continue;
        const size_t i = lo + static_cast<size_t>(l);
        if (i >= hi || g_sched.fibers[i].state != State::shuffle) return false;
    }
    for (int l = 0; l < 32; ++l) {
        if (!(mask >> l & 1u)) continue;
        Fiber &f = g_sched.fibers[lo + static_cast<size_t>(l)];
        const int w_ = f.width, seg = l / w_ * w_, in = l % w_;
        int src = l;
        switch (f.mode) {
            case Shuffle::index:
                src = seg + ((f.arg % w_) + w_) % w_;
                break;
            case Shuffle::up:
                src = in - f.arg >= 0 ? l - f.arg : l;
                break;
            case Shuffle::down:
                src = in + f.arg < w_ ? l + f.arg : l;
                break;
            case Shuffle::bfly:  // a later segment's lane gives the lane its own value
                src = (l ^ (f.arg & 31)) < seg + w_ ? l ^ (f.arg & 31) : l;
                break;
        }
        if (!(mask >> src & 1u))
            fatal(
                "kernel %s: lane %d of warp %zu shuffles from lane %d, which its mask %08x leaves out "
                "(the value is undefined on a GPU)",
                g_sched.kernel, l, w, src, mask);
        f.result = g_sched.fibers[lo + static_cast<size_t>(src)].offer;
    }
    for (int l = 0; l < 32; ++l)
        if (mask >> l & 1u) g_sched.fibers[lo + static_cast<size_t>(l)].state = State::run;
    return true;
}

}  // namespace

const char *current_kernel() {
    return g_sched.kernel;
}

uint64_t shuffle(uint64_t bits, Shuffle mode, int arg, unsigned mask, int width) {
    Fiber *f = g_sched.current;
    if (f == nullptr) fatal("a warp shuffle outside a kernel");
    if (width <= 0 || width > 32 || (width & (width - 1)) != 0)
        fatal("kernel %s: shuffle width %d is not a power of two up to 32", g_sched.kernel, width);
    const unsigned lane = static_cast<unsigned>(f - g_sched.fibers.data()) % 32;
    if (!(mask >> lane & 1u))
        fatal("kernel %s: lane %u shuffles with mask %08x, which leaves it out", g_sched.kernel, lane, mask);
    f->offer = bits;
    f->mode = mode;
    f->arg = arg;
    f->mask = mask;
    f->width = width;
    f->state = State::shuffle;
    yield();
    return f->result;
}

void sync_block() {
    Fiber *f = g_sched.current;
    if (f == nullptr) fatal("__syncthreads outside a kernel");
    f->state = State::barrier;
    yield();
}

void run_grid(const char *name, dim3 grid, dim3 block, const std::function<void()> &body) {
    const size_t n = static_cast<size_t>(block.x) * block.y * block.z;
    if (n == 0 || n > kMaxThreads) fatal("kernel %s: %zu threads per block", name, n);
    if (g_sched.current != nullptr) fatal("kernel %s launched from device code", name);
    ensure_fibers(n);
    g_sched.body = &body;
    g_sched.kernel = name;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                for (size_t i = 0; i < n; ++i) {
                    Fiber &f = g_sched.fibers[i];
                    const auto t = static_cast<unsigned>(i);
                    f.ctx.thread = {t % block.x, t / block.x % block.y, t / (block.x * block.y)};
                    f.ctx.block = {bx, by, bz};
                    f.ctx.block_dim = block;
                    f.ctx.grid_dim = grid;
                    f.state = State::run;
                    start(f);
                }
                // Warp by warp: its lanes run until each waits or exits, its shuffles are released
                // at once; then the block's barrier, when every live thread waits at it.
                size_t live = n;
                while (live > 0) {
                    for (size_t w = 0; w * 32 < n; ++w) {
                        const size_t hi = std::min(n, w * 32 + 32);
                        do {
                            for (size_t i = w * 32; i < hi; ++i) {
                                Fiber &f = g_sched.fibers[i];
                                if (f.state != State::run) continue;
                                resume(f);
                                if (f.state == State::done) --live;
                            }
                        } while (release_shuffle(w, n));
                    }
                    if (live == 0) break;
                    size_t at_barrier = 0;
                    for (size_t i = 0; i < n; ++i) at_barrier += g_sched.fibers[i].state == State::barrier;
                    if (at_barrier != live) stuck(n, dim3(bx, by, bz));
                    for (size_t i = 0; i < n; ++i)
                        if (g_sched.fibers[i].state == State::barrier) g_sched.fibers[i].state = State::run;
                }
            }
    g_sched.current = nullptr;
    g_sched.kernel = nullptr;
    g_thread = nullptr;
}

}  // namespace moerun_emu
