// The emulated runtime API: errors, the device, streams and events, copies, graphs.
//
// A stream is a queue of work that runs as late as the program allows: when the host waits for it
// (cudaStreamSynchronize, cudaDeviceSynchronize, a copy to pageable memory, cudaFree), or when a
// stream that is made to run reaches a wait on an event recorded by another stream, which then runs
// up to that record. So work that no event orders before a reader has not happened when the reader
// runs. MOERUN_CUDA_EMU_COPIES=early runs the streams that never queued a kernel (copy streams)
// as soon as their waits allow instead. All calls hold one lock.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "emu.h"

struct CUgraph_st {
    std::vector<moerun_emu::Op> ops;
    bool invalid = false;
};
struct CUgraphExec_st {
    std::vector<moerun_emu::Op> ops;
};
struct CUstream_st {
    std::deque<moerun_emu::Op> queue;
    bool ran_kernel = false;
    CUgraph_st *capture = nullptr;
};
struct CUevent_st {
    uint64_t last = 0, next = 0;                // latest record issued; generations
    std::map<uint64_t, CUstream_st *> pending;  // records queued, not run yet
    CUgraph_st *captured_in = nullptr;          // recorded inside this capture
};

namespace moerun_emu {
namespace {

std::recursive_mutex g_lock;
cudaError_t g_last = cudaSuccess;
CUstream_st g_null_stream;
std::vector<CUstream_st *> g_streams = {&g_null_stream};  // in creation order: runs are deterministic
int g_captures = 0;

using Lock = std::lock_guard<std::recursive_mutex>;

bool copies_early() {
    static const bool early = [] {
        const char *e = std::getenv("MOERUN_CUDA_EMU_COPIES");
        return e != nullptr && std::string(e) == "early";
    }();
    return early;
}

CUstream_st *stream_of(cudaStream_t s) {
    return s ? s : &g_null_stream;
}

cudaError_t fail(cudaError_t err) {
    if (err != cudaSuccess) g_last = err;
    return err;
}

void complain(const char *call, const std::string &what) {
    std::fprintf(stderr, "moerun CUDA emulator: %s: %s\n", call, what.c_str());
}

void run_op(Op &op) {
    if (op.kind == Op::Kind::record) {
        op.event->pending.erase(op.generation);
    } else if (op.run) {
        DeviceAccess access;  // nested in the caller's: the protection changes once per sync
        op.run();
    }
}

void step(CUstream_st *s);

// Runs streams until the record `generation` of `ev` has run.
void force(CUevent_st *ev, uint64_t generation) {
    DeviceAccess access;
    for (auto it = ev->pending.find(generation); it != ev->pending.end(); it = ev->pending.find(generation))
        step(it->second);
}

void step(CUstream_st *s) {
    Op &front = s->queue.front();
    if (front.kind == Op::Kind::wait) force(front.event, front.generation);
    Op op = std::move(s->queue.front());
    s->queue.pop_front();
    run_op(op);
}

bool ready(const CUstream_st *s) {
    const Op &front = s->queue.front();
    return front.kind != Op::Kind::wait || !front.event->pending.count(front.generation);
}

void drain(CUstream_st *s) {
    DeviceAccess access;
    while (!s->queue.empty()) step(s);
}

void drain_all() {
    DeviceAccess access;
    for (bool again = true; again;) {
        again = false;
        for (CUstream_st *s : g_streams)
            if (!s->queue.empty()) {
                drain(s);
                again = true;
            }
    }
}

// A call CUDA forbids while a stream is captured (thread-local mode): every capture is spoilt.
cudaError_t unsafe_in_capture() {
    if (g_captures == 0) return cudaSuccess;
    for (CUstream_st *s : g_streams)
        if (s->capture) s->capture->invalid = true;
    return fail(cudaErrorStreamCaptureUnsupported);
}

}  // namespace

cudaError_t enqueue(cudaStream_t stream, Op op) {
    Lock lock(g_lock);
    CUstream_st *s = stream_of(stream);
    if (s->capture) {
        if (s->capture->invalid) return fail(cudaErrorStreamCaptureInvalidated);
        if (op.kind == Op::Kind::wait) {
            if (op.event->captured_in != s->capture) {
                s->capture->invalid = true;
                return fail(cudaErrorStreamCaptureIsolation);
            }
            return cudaSuccess;  // ordered within the capture already (one stream)
        }
        if (op.kind == Op::Kind::record) {
            op.event->captured_in = s->capture;
            return cudaSuccess;
        }
        s->capture->ops.push_back(std::move(op));
        return cudaSuccess;
    }
    if (op.kind == Op::Kind::kernel) s->ran_kernel = true;
    if (op.kind == Op::Kind::record) {
        op.generation = ++op.event->next;
        op.event->last = op.generation;
        op.event->pending[op.generation] = s;
        op.event->captured_in = nullptr;
    }
    s->queue.push_back(std::move(op));
    if (copies_early() && !s->ran_kernel && ready(s)) {
        DeviceAccess access;
        while (!s->queue.empty() && ready(s)) step(s);
    }
    return cudaSuccess;
}

void set_last_error(cudaError_t err) {
    fail(err);
}

void queue_kernel(const char *name, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                  std::function<void()> body, std::vector<const void *> pointers) {
    Lock lock(g_lock);
    const uint64_t threads = uint64_t{block.x} * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535 || shared_bytes > (48u << 10)) {
        complain(name, "invalid launch configuration grid (" + std::to_string(grid.x) + ", " +
                           std::to_string(grid.y) + ", " + std::to_string(grid.z) + "), block (" +
                           std::to_string(block.x) + ", " + std::to_string(block.y) + ", " +
                           std::to_string(block.z) + ")");
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    for (size_t i = 0; i < pointers.size(); ++i) {
        if (pointers[i] == nullptr) continue;
        std::string err;
        const Memory m = classify(pointers[i], 0, &err);
        if (m == Memory::host || !err.empty())
            fatal("kernel %s: pointer argument %zu (%p) is %s", name, i + 1, pointers[i],
                  err.empty() ? "host memory that is not registered" : err.c_str());
    }
    Op op;
    op.kind = Op::Kind::kernel;
    op.identity = name;
    op.run = [name, grid, block, body = std::move(body)] { run_grid(name, grid, block, body); };
    fail(enqueue(stream, std::move(op)));
}

}  // namespace moerun_emu

using namespace moerun_emu;

const char *cudaGetErrorName(cudaError_t err) {
    switch (err) {
#define MOERUN_EMU_NAME(e) \
    case e:                \
        return #e;
        MOERUN_EMU_NAME(cudaSuccess)
        MOERUN_EMU_NAME(cudaErrorInvalidValue)
        MOERUN_EMU_NAME(cudaErrorMemoryAllocation)
        MOERUN_EMU_NAME(cudaErrorInvalidConfiguration)
        MOERUN_EMU_NAME(cudaErrorInvalidDevicePointer)
        MOERUN_EMU_NAME(cudaErrorInvalidMemcpyDirection)
        MOERUN_EMU_NAME(cudaErrorNoDevice)
        MOERUN_EMU_NAME(cudaErrorInvalidDevice)
        MOERUN_EMU_NAME(cudaErrorInvalidResourceHandle)
        MOERUN_EMU_NAME(cudaErrorNotReady)
        MOERUN_EMU_NAME(cudaErrorHostMemoryAlreadyRegistered)
        MOERUN_EMU_NAME(cudaErrorHostMemoryNotRegistered)
        MOERUN_EMU_NAME(cudaErrorStreamCaptureUnsupported)
        MOERUN_EMU_NAME(cudaErrorStreamCaptureInvalidated)
        MOERUN_EMU_NAME(cudaErrorStreamCaptureUnmatched)
        MOERUN_EMU_NAME(cudaErrorStreamCaptureIsolation)
        MOERUN_EMU_NAME(cudaErrorGraphExecUpdateFailure)
#undef MOERUN_EMU_NAME
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t err) {
    switch (err) {
        case cudaSuccess:
            return "no error";
        case cudaErrorInvalidValue:
            return "invalid argument";
        case cudaErrorMemoryAllocation:
            return "out of memory (emulated device)";
        case cudaErrorInvalidConfiguration:
            return "invalid configuration argument";
        case cudaErrorStreamCaptureUnsupported:
            return "operation not permitted when stream is capturing";
        case cudaErrorStreamCaptureInvalidated:
            return "operation failed due to a previous error during capture";
        case cudaErrorStreamCaptureIsolation:
            return "dependency created on uncaptured work in another stream";
        default:
            return cudaGetErrorName(err);
    }
}

cudaError_t cudaGetLastError() {
    Lock lock(g_lock);
    const cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() {
    Lock lock(g_lock);
    return g_last;
}

cudaError_t cudaGetDeviceCount(int *count) {
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *dev) {
    *dev = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int dev) {
    return dev == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev) {
    if (dev != 0) return fail(cudaErrorInvalidDevice);
    *prop = cudaDeviceProp{};
    std::snprintf(prop->name, sizeof prop->name, "moerun CUDA emulator (on the CPU, not a GPU)");
    prop->totalGlobalMem = memory_capacity();
    prop->major = 9;
    prop->minor = 0;
    // MOERUN_CUDA_EMU_SM=75: the compute capability reported (tests of the backend's checks)
    if (const char *sm = std::getenv("MOERUN_CUDA_EMU_SM"); sm != nullptr && std::strlen(sm) >= 2) {
        prop->major = std::atoi(std::string(sm, std::strlen(sm) - 1).c_str());
        prop->minor = sm[std::strlen(sm) - 1] - '0';
    }
    prop->multiProcessorCount = 1;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    Lock lock(g_lock);
    *total_bytes = memory_capacity();
    *free_bytes = memory_capacity() - memory_used();
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    Lock lock(g_lock);
    if (ptr == nullptr) return fail(cudaErrorInvalidValue);
    if (cudaError_t e = unsafe_in_capture(); e != cudaSuccess) return e;
    return fail(allocate(ptr, bytes));
}
cudaError_t cudaFree(void *ptr) {
    Lock lock(g_lock);
    if (ptr == nullptr) return cudaSuccess;
    if (cudaError_t e = unsafe_in_capture(); e != cudaSuccess) return e;
    drain_all();  // cudaFree waits for the device
    return fail(release(ptr));
}

namespace {

// Checks a copy's two ranges against its direction; the direction (cudaMemcpyDefault resolved).
cudaError_t check_copy(const char *call, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                       Memory *dk_out, Memory *sk_out) {
    std::string err;
    const Memory dk = classify(dst, bytes, &err),
                 sk = err.empty() ? classify(src, bytes, &err) : Memory::host;
    if (!err.empty()) {
        complain(call, err);
        return cudaErrorInvalidValue;
    }
    if ((dst == nullptr || src == nullptr) && bytes) {
        complain(call, "null pointer");
        return cudaErrorInvalidValue;
    }
    const bool d_dev = dk == Memory::device, s_dev = sk == Memory::device;
    const bool ok = kind == cudaMemcpyDefault || (kind == cudaMemcpyHostToDevice && d_dev && !s_dev) ||
                    (kind == cudaMemcpyDeviceToHost && !d_dev && s_dev) ||
                    (kind == cudaMemcpyDeviceToDevice && d_dev && s_dev) ||
                    (kind == cudaMemcpyHostToHost && !d_dev && !s_dev);
    if (!ok) {
        complain(call, "the pointers do not match the copy's direction " + std::to_string(kind));
        return cudaErrorInvalidValue;
    }
    // The device may map such a range read-only: a copy into it may fault or fail on a GPU.
    if (dk == Memory::registered_read_only && s_dev) {
        complain(call, "the device writes into host memory registered with cudaHostRegisterReadOnly");
        return cudaErrorInvalidValue;
    }
    *dk_out = dk;
    *sk_out = sk;
    return cudaSuccess;
}

// Queues a copy; `late` reads the source when the copy runs, else now (a pageable source is
// staged by the call, as CUDA does).
cudaError_t queue_copy(cudaStream_t stream, void *dst, const void *src, size_t bytes, bool late) {
    Op op;
    op.kind = Op::Kind::copy;
    if (late) {
        op.run = [dst, src, bytes] { std::memcpy(dst, src, bytes); };
    } else {
        auto staged = std::make_shared<std::vector<uint8_t>>(static_cast<const uint8_t *>(src),
                                                             static_cast<const uint8_t *>(src) + bytes);
        op.run = [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); };
    }
    return enqueue(stream, std::move(op));
}

}  // namespace

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
    Lock lock(g_lock);
    if (bytes == 0) return cudaSuccess;
    Memory dk{}, sk{};
    if (cudaError_t e = check_copy("cudaMemcpyAsync", dst, src, bytes, kind, &dk, &sk); e != cudaSuccess)
        return fail(e);
    CUstream_st *s = stream_of(stream);
    const bool to_pageable = dk == Memory::host;
    if (to_pageable && s->capture) return unsafe_in_capture();
    if (cudaError_t e = queue_copy(stream, dst, src, bytes, sk != Memory::host || s->capture);
        e != cudaSuccess)
        return fail(e);
    if (to_pageable) drain(s);  // a copy into pageable memory returns when it is done
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    Lock lock(g_lock);
    if (cudaError_t e = unsafe_in_capture(); e != cudaSuccess) return e;
    if (bytes == 0) return cudaSuccess;
    Memory dk{}, sk{};
    if (cudaError_t e = check_copy("cudaMemcpy", dst, src, bytes, kind, &dk, &sk); e != cudaSuccess)
        return fail(e);
    drain_all();
    DeviceAccess access;
    std::memcpy(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyBatchAsync(void *const *dsts, const void *const *srcs, const size_t *sizes,
                                 size_t count, cudaMemcpyAttributes *attrs, size_t *attrs_idxs,
                                 size_t num_attrs, cudaStream_t stream) {
    Lock lock(g_lock);
    if (count == 0 || !dsts || !srcs || !sizes || !attrs || !attrs_idxs || num_attrs == 0 ||
        num_attrs > count || attrs_idxs[0] != 0)
        return fail(cudaErrorInvalidValue);
    for (size_t a = 0; a < num_attrs; ++a)
        if (attrs[a].srcAccessOrder == cudaMemcpySrcAccessOrderInvalid || attrs[a].srcAccessOrder > 3)
            return fail(cudaErrorInvalidValue);
    std::vector<bool> late(count);
    for (size_t i = 0; i < count; ++i) {
        Memory dk{}, sk{};
        if (cudaError_t e =
                check_copy("cudaMemcpyBatchAsync", dsts[i], srcs[i], sizes[i], cudaMemcpyDefault, &dk, &sk);
            e != cudaSuccess)
            return fail(e);
        if (dk == Memory::host) {
            complain("cudaMemcpyBatchAsync", "a copy into pageable host memory");
            return fail(cudaErrorInvalidValue);
        }
        size_t a = 0;
        while (a + 1 < num_attrs && attrs_idxs[a + 1] <= i) ++a;
        // Stream order: the source is read when the copy runs; during the call: now.
        late[i] = attrs[a].srcAccessOrder == cudaMemcpySrcAccessOrderStream || sk != Memory::host;
    }
    for (size_t i = 0; i < count; ++i)
        if (sizes[i])
            if (cudaError_t e = queue_copy(stream, dsts[i], srcs[i], sizes[i], late[i]); e != cudaSuccess)
                return fail(e);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream) {
    Lock lock(g_lock);
    if (bytes == 0) return cudaSuccess;
    std::string err;
    if (classify(dst, bytes, &err) != Memory::device || !err.empty()) {
        complain("cudaMemsetAsync", err.empty() ? "not device memory" : err);
        return fail(cudaErrorInvalidValue);
    }
    Op op;
    op.kind = Op::Kind::copy;
    op.run = [dst, value, bytes] { std::memset(dst, value, bytes); };
    return fail(enqueue(stream, std::move(op)));
}
cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
    Lock lock(g_lock);
    if (cudaError_t e = cudaMemsetAsync(dst, value, bytes, nullptr); e != cudaSuccess) return e;
    drain_all();
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
    Lock lock(g_lock);
    if (cudaError_t e = unsafe_in_capture(); e != cudaSuccess) return e;
    drain_all();
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned) {
    Lock lock(g_lock);
    if (stream == nullptr) return fail(cudaErrorInvalidValue);
    *stream = new CUstream_st;
    g_streams.push_back(*stream);
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *stream) {
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    Lock lock(g_lock);
    const auto it = std::find(g_streams.begin(), g_streams.end(), stream);
    if (stream == nullptr || it == g_streams.end()) return fail(cudaErrorInvalidResourceHandle);
    drain(stream);  // CUDA finishes the queued work, then frees the stream
    if (stream->capture) {
        delete stream->capture;
        --g_captures;
    }
    g_streams.erase(std::find(g_streams.begin(), g_streams.end(), stream));
    delete stream;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    Lock lock(g_lock);
    CUstream_st *s = stream_of(stream);
    if (s->capture) {
        s->capture->invalid = true;
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    drain(s);
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
    Lock lock(g_lock);
    if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
    if (event->last == 0 && event->captured_in == nullptr) return cudaSuccess;  // never recorded: no wait
    Op op;
    op.kind = Op::Kind::wait;
    op.event = event;
    op.generation = event->last;
    return fail(enqueue(stream, std::move(op)));
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned) {
    if (event == nullptr) return fail(cudaErrorInvalidValue);
    *event = new CUevent_st;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *event) {
    return cudaEventCreateWithFlags(event, cudaEventDefault);
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
    Lock lock(g_lock);
    if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
    // Queued records and waits still name it: run them first (CUDA defers the release).
    while (!event->pending.empty()) force(event, event->pending.begin()->first);
    std::vector<CUstream_st *> waiting;
    for (CUstream_st *s : g_streams)
        for (const Op &op : s->queue)
            if (op.event == event) {
                waiting.push_back(s);
                break;
            }
    for (CUstream_st *s : waiting) drain(s);
    delete event;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    Lock lock(g_lock);
    if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
    Op op;
    op.kind = Op::Kind::record;
    op.event = event;
    return fail(enqueue(stream, std::move(op)));
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    Lock lock(g_lock);
    if (event == nullptr) return fail(cudaErrorInvalidResourceHandle);
    if (cudaError_t e = unsafe_in_capture(); e != cudaSuccess) return e;
    force(event, event->last);
    return cudaSuccess;
}

cudaError_t cudaHostRegister(void *ptr, size_t bytes, unsigned flags) {
    Lock lock(g_lock);
    return fail(register_host(ptr, bytes, (flags & cudaHostRegisterReadOnly) != 0));
}
cudaError_t cudaHostUnregister(void *ptr) {
    Lock lock(g_lock);
    drain_all();  // copies still reading the range run first (on a GPU that would be a race)
    return fail(unregister_host(ptr));
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
    Lock lock(g_lock);
    if (stream == nullptr) return fail(cudaErrorStreamCaptureUnsupported);  // not the legacy stream
    if (stream->capture) return fail(cudaErrorStreamCaptureUnsupported);
    stream->capture = new CUgraph_st;
    ++g_captures;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    Lock lock(g_lock);
    if (graph) *graph = nullptr;
    if (stream == nullptr || stream->capture == nullptr) return fail(cudaErrorStreamCaptureUnmatched);
    CUgraph_st *g = stream->capture;
    stream->capture = nullptr;
    --g_captures;
    if (g->invalid) {
        delete g;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    if (graph == nullptr) {
        delete g;
        return fail(cudaErrorInvalidValue);
    }
    *graph = g;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long) {
    if (exec == nullptr || graph == nullptr) return fail(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{graph->ops};
    return cudaSuccess;
}
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph,
                                cudaGraphExecUpdateResultInfo *info) {
    if (exec == nullptr || graph == nullptr) return fail(cudaErrorInvalidValue);
    bool same = exec->ops.size() == graph->ops.size();
    for (size_t i = 0; same && i < graph->ops.size(); ++i)
        same = exec->ops[i].kind == graph->ops[i].kind && exec->ops[i].identity == graph->ops[i].identity;
    if (info)
        *info = {same ? cudaGraphExecUpdateSuccess : cudaGraphExecUpdateErrorTopologyChanged, nullptr,
                 nullptr};
    if (!same) return fail(cudaErrorGraphExecUpdateFailure);
    exec->ops = graph->ops;
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    Lock lock(g_lock);
    if (exec == nullptr) return fail(cudaErrorInvalidValue);
    if (stream_of(stream)->capture) return fail(cudaErrorStreamCaptureUnsupported);
    for (const Op &op : exec->ops)
        if (cudaError_t e = enqueue(stream, op); e != cudaSuccess) return fail(e);
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;  // launched work holds copies of its ops
    return cudaSuccess;
}
