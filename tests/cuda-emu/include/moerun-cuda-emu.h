// The CUDA emulator: the part of the CUDA runtime, device language and cuBLAS that kernels/cuda
// uses, executed on the CPU, so the CUDA backend's own code (kernels, launches, streams, events,
// graphs, copies) runs and is tested on machines without a GPU (MOERUN_CUDA=EMULATE).
//
// It is a test tool, not a backend: nothing about speed carries over. What it models:
//   - a thread block as fibers, one per CUDA thread; __syncthreads and warp shuffles are barriers
//     (a shuffle needs every lane its mask names; a barrier nobody can pass is reported);
//   - __shared__ as a static (blocks run one at a time);
//   - streams as queues run as late as the program allows (at a synchronization, a download, an
//     event wait that needs them), so work that is not ordered by events lands late; with
//     MOERUN_CUDA_EMU_COPIES=early, streams that never ran a kernel (copy streams) run as soon as
//     their waits allow instead, so a copy that overwrites memory a queued kernel still reads
//     lands first;
//   - copies from pageable host memory read their source when queued (as CUDA stages them),
//     copies from registered memory when they run;
//   - device memory outside the host's reach (PROT_NONE except while device work runs) with a
//     guard page after each allocation, so host code reading device memory, a kernel reading
//     past an allocation or a kernel handed a host pointer stops with a message;
//   - graph capture: captured work is replayed by cudaGraphLaunch; synchronizing or allocating
//     while capturing invalidates the capture, as in cudaStreamCaptureModeThreadLocal.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define MOERUN_CUDA_EMULATED 1
#define CUDART_VERSION 13000

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __launch_bounds__(...)

enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorHostMemoryAlreadyRegistered = 712,
    cudaErrorHostMemoryNotRegistered = 713,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureUnmatched = 903,
    cudaErrorStreamCaptureIsolation = 905,
    cudaErrorGraphExecUpdateFailure = 910,
};
typedef enum cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};
enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaMemcpySrcAccessOrder {
    cudaMemcpySrcAccessOrderInvalid = 0,
    cudaMemcpySrcAccessOrderStream = 1,
    cudaMemcpySrcAccessOrderDuringApiCall = 2,
    cudaMemcpySrcAccessOrderAny = 3,
};
struct cudaMemcpyAttributes {
    enum cudaMemcpySrcAccessOrder srcAccessOrder;
    unsigned flags;
};
enum cudaGraphExecUpdateResult {
    cudaGraphExecUpdateSuccess = 0,
    cudaGraphExecUpdateError = 1,
    cudaGraphExecUpdateErrorTopologyChanged = 2,
    cudaGraphExecUpdateErrorNodeTypeChanged = 3,
    cudaGraphExecUpdateErrorFunctionChanged = 4,
};
struct cudaGraphExecUpdateResultInfo {
    enum cudaGraphExecUpdateResult result;
    void *errorNode;
    void *errorFromNode;
};
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
    int warpSize;
    int maxThreadsPerBlock;
};

constexpr unsigned cudaStreamDefault = 0, cudaStreamNonBlocking = 1;
constexpr unsigned cudaEventDefault = 0, cudaEventDisableTiming = 2;
constexpr unsigned cudaHostRegisterDefault = 0, cudaHostRegisterPortable = 1, cudaHostRegisterMapped = 2,
                   cudaHostRegisterReadOnly = 8;

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

const char *cudaGetErrorString(cudaError_t err);
const char *cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDevice(int *dev);
cudaError_t cudaSetDevice(int dev);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int dev);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **ptr, size_t bytes);
template <class T>
inline cudaError_t cudaMalloc(T **ptr, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void **>(ptr), bytes);
}
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemcpyBatchAsync(void *const *dsts, const void *const *srcs, const size_t *sizes,
                                 size_t count, cudaMemcpyAttributes *attrs, size_t *attrs_idxs,
                                 size_t num_attrs, cudaStream_t stream);
cudaError_t cudaMemset(void *dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaHostRegister(void *ptr, size_t bytes, unsigned flags);
cudaError_t cudaHostUnregister(void *ptr);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, cudaGraphExecUpdateResultInfo *info);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

// ---- the device language ----
namespace moerun_emu {

struct ThreadContext {
    uint3 thread, block;
    dim3 block_dim, grid_dim;
};
extern ThreadContext *g_thread;  // the fiber running now

// A shuffle: every lane of `mask` offers `bits` and gets the bits of the lane `arg` names under
// `mode`; a barrier for those lanes.
enum class Shuffle { index, up, down, bfly };
uint64_t shuffle(uint64_t bits, Shuffle mode, int arg, unsigned mask, int width);
void sync_block();

// Queues a kernel: `body` runs once per thread of every block; `pointers` are the kernel's pointer
// arguments, each checked to be device memory or registered host memory.
void queue_kernel(const char *name, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                  std::function<void()> body, std::vector<const void *> pointers);

template <class T>
void collect_pointer(const T &v, std::vector<const void *> &out) {
    if constexpr (std::is_pointer_v<T>) out.push_back(static_cast<const void *>(v));
}

template <class... P>
struct Launch {
    const char *name;
    void (*kernel)(P...);
    dim3 grid, block;
    size_t shared_bytes;
    cudaStream_t stream;

    template <class... A>
    void operator()(A &&...args) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel launched with a wrong argument count");
        auto values = std::make_shared<std::tuple<std::decay_t<P>...>>(std::forward<A>(args)...);
        std::vector<const void *> pointers;
        std::apply([&](const auto &...v) { (collect_pointer(v, pointers), ...); }, *values);
        queue_kernel(
            name, grid, block, shared_bytes, stream, [k = kernel, values] { std::apply(k, *values); },
            std::move(pointers));
    }
};

// kernel<<<grid, block, shared, stream>>>(args) is rewritten (tests/cuda-emu/transform.cmake) to
// moerun_emu::launch("kernel", kernel, grid, block, shared, stream)(args).
template <class... P>
Launch<P...> launch(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes = 0,
                    cudaStream_t stream = nullptr) {
    return Launch<P...>{name, kernel, grid, block, shared_bytes, stream};
}

}  // namespace moerun_emu

#define threadIdx (::moerun_emu::g_thread->thread)
#define blockIdx (::moerun_emu::g_thread->block)
#define blockDim (::moerun_emu::g_thread->block_dim)
#define gridDim (::moerun_emu::g_thread->grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() {
    moerun_emu::sync_block();
}

template <class T>
inline T moerun_emu_shuffle(T v, moerun_emu::Shuffle mode, int arg, unsigned mask, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type over 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    bits = moerun_emu::shuffle(bits, mode, arg, mask, width);
    std::memcpy(&v, &bits, sizeof(T));
    return v;
}
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return moerun_emu_shuffle(v, moerun_emu::Shuffle::index, src, mask, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return moerun_emu_shuffle(v, moerun_emu::Shuffle::up, static_cast<int>(delta), mask, width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return moerun_emu_shuffle(v, moerun_emu::Shuffle::down, static_cast<int>(delta), mask, width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return moerun_emu_shuffle(v, moerun_emu::Shuffle::bfly, lane_mask, mask, width);
}

inline float __uint_as_float(unsigned u) {
    return std::bit_cast<float>(u);
}
inline unsigned __float_as_uint(float f) {
    return std::bit_cast<unsigned>(f);
}
inline float __int_as_float(int i) {
    return std::bit_cast<float>(i);
}
inline int __float_as_int(float f) {
    return std::bit_cast<int>(f);
}
