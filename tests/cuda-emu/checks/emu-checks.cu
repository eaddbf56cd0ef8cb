// The CUDA emulator's own checks (tests/cuda-emu): small kernels in CUDA syntax, one case per run.
// `emu-checks NAME` runs a case; cases that must work print "ok ..." and exit 0, cases that break
// a CUDA rule must stop with the emulator's message (tests/cuda-emu/CMakeLists.txt has both).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

__device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// out[block] = sum of in[block * blockDim.x ...] (warp shuffles, then shared memory).
__global__ void block_sum(const float *in, float *out) {
    __shared__ float partial[32];
    const float v = warp_sum(in[blockIdx.x * blockDim.x + threadIdx.x]);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0;
        for (unsigned w = 0; w < blockDim.x / 32; ++w) s += partial[w];
        out[blockIdx.x] = s;
    }
}

// Lanes 16..31 leave, then lanes 0..15 shuffle with the full mask: undefined on a GPU.
__global__ void half_warp_shuffle(float *out) {
    if (threadIdx.x >= 16) return;
    out[threadIdx.x] = warp_sum(1.0f);
}

// Thread 0 waits in a shuffle for lanes that wait at the block's barrier: a deadlock.
__global__ void divergent_barrier(float *out) {
    if (threadIdx.x == 0)
        out[0] = warp_sum(1.0f);
    else
        __syncthreads();
}

__global__ void read_at(const float *p, long i, float *out) {
    out[0] = p[i];
}

__global__ void copy_kernel(const float *src, float *dst, int n) {
    const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) dst[i] = src[i];
}

#define CHECK_CUDA(x)                                                \
    do {                                                             \
        const cudaError_t e_ = (x);                                  \
        if (e_ != cudaSuccess) {                                     \
            std::printf("FAIL: %s: %s\n", #x, cudaGetErrorName(e_)); \
            std::exit(1);                                            \
        }                                                            \
    } while (0)

int sums() {
    const int blocks = 3, threads = 256;
    std::vector<float> in(blocks * threads), out(blocks);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 7);
    float *din = nullptr, *dout = nullptr;
    CHECK_CUDA(cudaMalloc(&din, in.size() * 4));
    CHECK_CUDA(cudaMalloc(&dout, out.size() * 4));
    CHECK_CUDA(cudaMemcpy(din, in.data(), in.size() * 4, cudaMemcpyHostToDevice));
    block_sum<<<blocks, threads>>>(din, dout);
    CHECK_CUDA(cudaGetLastError());
    CHECK_CUDA(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
    for (int b = 0; b < blocks; ++b) {
        float want = 0;
        for (int t = 0; t < threads; ++t) want += in[b * threads + t];
        if (out[b] != want) {
            std::printf("FAIL: block %d sums to %g, not %g\n", b, out[b], want);
            return 1;
        }
    }
    std::printf("ok: block sums through shuffles and __syncthreads\n");
    return 0;
}

// A copy on a second stream that the compute stream does not wait for has not landed when the
// kernel reads (late), and has once an event orders it.
int ordering(bool wait) {
    const int n = 64;
    std::vector<float> fresh(n, 7.0f), got(n);
    float *src = nullptr, *dst = nullptr;
    CHECK_CUDA(cudaMalloc(&src, n * 4));
    CHECK_CUDA(cudaMalloc(&dst, n * 4));
    CHECK_CUDA(cudaMemset(src, 0, n * 4));
    CHECK_CUDA(cudaHostRegister(fresh.data(), n * 4, cudaHostRegisterDefault));
    cudaStream_t compute = nullptr, copy = nullptr;
    cudaEvent_t done = nullptr;
    CHECK_CUDA(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
    CHECK_CUDA(cudaStreamCreateWithFlags(&copy, cudaStreamNonBlocking));
    CHECK_CUDA(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    CHECK_CUDA(cudaMemcpyAsync(src, fresh.data(), n * 4, cudaMemcpyHostToDevice, copy));
    CHECK_CUDA(cudaEventRecord(done, copy));
    if (wait) CHECK_CUDA(cudaStreamWaitEvent(compute, done, 0));
    copy_kernel<<<1, n, 0, compute>>>(src, dst, n);
    CHECK_CUDA(cudaMemcpyAsync(got.data(), dst, n * 4, cudaMemcpyDeviceToHost, compute));
    std::printf("ok: the kernel read %g (%s)\n", got[0], wait ? "after an event wait" : "no wait");
    CHECK_CUDA(cudaStreamSynchronize(copy));
    CHECK_CUDA(cudaHostUnregister(fresh.data()));
    return 0;
}

// A copy from the device into host memory registered read-only fails (the host keeps its zeros);
// registered writable, the device's bytes land.
int download_into(unsigned flags) {
    const int n = 64;
    std::vector<float> host(n, 0.0f);
    float *d = nullptr;
    CHECK_CUDA(cudaMalloc(&d, n * 4));  // fresh: NaN
    CHECK_CUDA(cudaHostRegister(host.data(), n * 4, flags));
    cudaStream_t s = nullptr;
    CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    const cudaError_t e = cudaMemcpyAsync(host.data(), d, n * 4, cudaMemcpyDeviceToHost, s);
    CHECK_CUDA(cudaStreamSynchronize(s));
    (void)cudaGetLastError();
    std::printf("ok: download into %s memory: %s, reads %g\n",
                flags & cudaHostRegisterReadOnly ? "read-only" : "writable", cudaGetErrorName(e),
                static_cast<double>(host[0]));
    CHECK_CUDA(cudaHostUnregister(host.data()));
    return 0;
}

int capture() {
    cudaStream_t s = nullptr;
    CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float *p = nullptr;
    CHECK_CUDA(cudaMalloc(&p, 256 * 4));
    CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    copy_kernel<<<1, 256, 0, s>>>(p, p, 256);
    const cudaError_t sync = cudaStreamSynchronize(s);
    cudaGraph_t g = nullptr;
    const cudaError_t end = cudaStreamEndCapture(s, &g);
    std::printf("ok: synchronize while capturing: %s; end capture: %s\n", cudaGetErrorName(sync),
                cudaGetErrorName(end));
    return 0;
}

int uninitialized() {
    float *p = nullptr, *out = nullptr, host = 0;
    CHECK_CUDA(cudaMalloc(&p, 1024));
    CHECK_CUDA(cudaMalloc(&out, 4));
    read_at<<<1, 1>>>(p, 3, out);
    CHECK_CUDA(cudaMemcpy(&host, out, 4, cudaMemcpyDeviceToHost));
    std::printf("ok: fresh device memory reads as %s\n", std::isnan(host) ? "NaN" : "a number");
    return 0;
}

// cublasSetStream drops the workspace set before it: an SGEMM then has none of the caller's.
int cublas_workspace() {
    float *a = nullptr, *ws = nullptr;
    CHECK_CUDA(cudaMalloc(&a, 3 * 16 * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&ws, 1 << 20));
    cudaStream_t s = nullptr;
    CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cublasHandle_t h = nullptr;
    if (cublasCreate_v2(&h) != CUBLAS_STATUS_SUCCESS) return 1;
    const float one = 1.0f, zero = 0.0f;
    float *b = a + 16, *c = a + 32;
    const auto gemm = [&] {
        return cublasSgemm_v2(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, a, 4, b, 4, &zero, c, 4);
    };
    cublasSetWorkspace_v2(h, ws, 1 << 20);
    cublasSetStream_v2(h, s);
    const cublasStatus_t after_stream = gemm();
    cublasSetWorkspace_v2(h, ws, 1 << 20);
    const cublasStatus_t after_workspace = gemm();
    CHECK_CUDA(cudaStreamSynchronize(s));
    std::printf("ok: SGEMM after cublasSetStream: %s; with the workspace set after it: %s\n",
                cublasGetStatusString(after_stream), cublasGetStatusString(after_workspace));
    cublasDestroy_v2(h);
    return 0;
}

}  // namespace

int main(int argc, char **argv) {
    const std::string c = argc > 1 ? argv[1] : "";
    float *d = nullptr;
    if (c == "sums") return sums();
    if (c == "ordering-no-wait") return ordering(false);
    if (c == "ordering-wait") return ordering(true);
    if (c == "capture-sync") return capture();
    if (c == "uninitialized") return uninitialized();
    if (c == "cublas-workspace") return cublas_workspace();
    if (c == "download-read-only") return download_into(cudaHostRegisterReadOnly);
    if (c == "download-writable") return download_into(cudaHostRegisterDefault);
    CHECK_CUDA(cudaMalloc(&d, 1000 * sizeof(float)));
    if (c == "half-warp-shuffle") {
        half_warp_shuffle<<<1, 32>>>(d);
    } else if (c == "divergent-barrier") {
        divergent_barrier<<<1, 64>>>(d);
    } else if (c == "read-past-allocation") {
        read_at<<<1, 1>>>(d, 1024, d);  // 4096 bytes in: the guard page after 4000
    } else if (c == "host-pointer-argument") {
        static float host[16];
        read_at<<<1, 1>>>(host, 0, d);
    } else if (c == "host-reads-device") {
        std::printf("%g\n", static_cast<double>(d[0]));
    } else {
        std::printf("unknown case %s\n", c.c_str());
        return 2;
    }
    CHECK_CUDA(cudaDeviceSynchronize());
    std::printf("FAIL: case %s ran to the end\n", c.c_str());
    return 1;
}
