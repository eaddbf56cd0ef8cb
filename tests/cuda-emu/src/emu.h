// Internals of the CUDA emulator shared by its files: the work a stream queues, device memory
// lookups, and fatal errors (a device fault ends the process with a message, as a real fault
// ends the CUDA context).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "moerun-cuda-emu.h"

struct CUevent_st;

namespace moerun_emu {

[[noreturn]] void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// One piece of queued work.
struct Op {
    enum class Kind { kernel, copy, record, wait } kind = Kind::kernel;
    std::function<void()> run;       // kernel or copy
    const void *identity = nullptr;  // the kernel, for graph updates
    CUevent_st *event = nullptr;     // record / wait
    uint64_t generation = 0;         // the record this op makes or waits for
};

// Queues `op` on `stream` (or into the graph it is capturing). cudaSuccess or the capture error.
cudaError_t enqueue(cudaStream_t stream, Op op);
void set_last_error(cudaError_t err);

// Where a pointer range lies (registered_read_only: cudaHostRegisterReadOnly, a copy source only).
enum class Memory { device, registered, registered_read_only, host };
// The kind of memory [p, p + bytes) lies in; a range that starts in a device allocation or a
// registered range but runs past its end is an error (*error set).
Memory classify(const void *p, size_t bytes, std::string *error);
// Runs grid work: the device memory is reachable from the host while this is alive.
struct DeviceAccess {
    DeviceAccess();
    ~DeviceAccess();
    DeviceAccess(const DeviceAccess &) = delete;
    DeviceAccess &operator=(const DeviceAccess &) = delete;
};

// Device allocations and registered host ranges (memory.cpp).
cudaError_t allocate(void **out, size_t bytes);
cudaError_t release(void *ptr);
size_t memory_used();
size_t memory_capacity();
cudaError_t register_host(void *ptr, size_t bytes, bool read_only);
cudaError_t unregister_host(void *ptr);

// Runs every thread of every block of a launch (fibers.cpp).
void run_grid(const char *name, dim3 grid, dim3 block, const std::function<void()> &body);
// The kernel running now, or null (for fault messages).
const char *current_kernel();

}  // namespace moerun_emu
