// The CUDA backend: device memory via cudaMalloc, a compute stream and a copy stream, device
// dequantization and matrix-product kernels; products of many tokens (prefill) through cuBLAS.
// Everything is checked; a machine without a GPU or driver gets a clear reason from probe().
#include <cuda_runtime.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda-check.h"
#include "dequant.cuh"
#include "gemm.cuh"
#include "mmv.cuh"
#include "moerun/kernels/cuda-backend.h"
#include "ops.cuh"
#include "rows.cuh"

namespace moerun::kernels::cuda {
namespace {

class CudaBackend final : public Backend {
  public:
    CudaBackend() {
        if (cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking) != cudaSuccess) stream_ = nullptr;
        if (cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking) != cudaSuccess)
            copy_stream_ = nullptr;
        for (cudaEvent_t &ev : copy_done_)
            if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) ev = nullptr;
        if (cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming) != cudaSuccess)
            compute_done_ = nullptr;
    }
    ~CudaBackend() override {
        // Work still queued first, then cuBLAS's handle while the stream it is bound to exists.
        if (stream_) cudaStreamSynchronize(stream_);
        if (copy_stream_) cudaStreamSynchronize(copy_stream_);
        gemm_.release();
        for (auto &[key, exec] : graphs_)
            if (exec) cudaGraphExecDestroy(exec);
        if (staging_) cudaFree(staging_);
        if (compute_done_) cudaEventDestroy(compute_done_);
        for (cudaEvent_t ev : copy_done_)
            if (ev) cudaEventDestroy(ev);
        if (copy_stream_) cudaStreamDestroy(copy_stream_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    std::string_view name() const override { return "cuda"; }
    HostMath host_math() const override { return HostMath::device_order; }

    DeviceInfo device_info() const override {
        DeviceInfo info;
        int dev = 0;
        cudaDeviceProp prop{};
        if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&prop, dev) == cudaSuccess) {
            info.name = prop.name;
            size_t free_b = 0, total_b = 0;
            if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
                info.free_memory = free_b;
                info.total_memory = total_b;
            }
        }
        return info;
    }

    void *alloc(size_t bytes) override {
        void *p = nullptr;
        cudaError_t err = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
        if (err != cudaSuccess) {
            error_ = describe_error(err, "cudaMalloc", __FILE__, __LINE__);
            return nullptr;
        }
        return p;
    }
    void free(void *ptr) override {
        if (ptr) cudaFree(ptr);
    }
    uint64_t workspace_bytes() const override {
        return Gemm::kDeviceBytes + std::max<uint64_t>(staging_bytes_, kStagingBytes);
    }
    Status reserve_rows(int64_t rows) override {
        if (rows < 0) return fail("reserve_rows: negative count");
        return grow_staging(2 * round256(static_cast<size_t>(rows) * 4));  // indices and weights
    }
    int64_t max_batch_tokens() const override { return kMaxGridY; }

    Status upload(void *dst, const void *src, size_t bytes) override {
        MOERUN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), error_,
                        Status::device_error);
        return Status::ok;
    }
    // One cudaMemcpyBatchAsync for all (CUDA 12.8 on), sources read in stream order; where the
    // runtime or driver refuses it, the copies go one by one (re-issuing a copy is harmless).
    Status upload_batch(const Upload *copies, size_t n) override {
        if (n == 0) return Status::ok;
#if CUDART_VERSION >= 12080
        if (n > 1 && batch_ok_) {
            batch_dst_.clear(), batch_src_.clear(), batch_size_.clear();
            for (size_t i = 0; i < n; ++i) {
                const Upload &c = copies[i];
                if ((!c.dst || !c.src) && c.bytes) return fail("upload_batch: null pointer");
                batch_dst_.push_back(c.dst), batch_src_.push_back(const_cast<void *>(c.src)),
                    batch_size_.push_back(c.bytes);
            }
            cudaMemcpyAttributes attr{};
            attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
            size_t first = 0;
#if CUDART_VERSION >= 13000
            const cudaError_t err = cudaMemcpyBatchAsync(batch_dst_.data(), batch_src_.data(),
                                                         batch_size_.data(), n, &attr, &first, 1, stream_);
#else  // CUDA 12.8 and 12.9: non-const arrays and an index of the copy that failed
            size_t failed = 0;
            const cudaError_t err =
                cudaMemcpyBatchAsync(batch_dst_.data(), batch_src_.data(), batch_size_.data(), n, &attr,
                                     &first, 1, &failed, stream_);
#endif
            if (err == cudaSuccess) return Status::ok;
            (void)cudaGetLastError();
            batch_ok_ = false;  // not here: one by one from now on
        }
#endif
        return Backend::upload_batch(copies, n);
    }
    Status download(void *dst, const void *src, size_t bytes) override {
        MOERUN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), error_,
                        Status::device_error);
        MOERUN_CUDA_TRY(cudaStreamSynchronize(stream_), error_, Status::device_error);
        return Status::ok;
    }
    Status synchronize() override {
        MOERUN_CUDA_TRY(cudaStreamSynchronize(copy_stream_), error_, Status::device_error);
        MOERUN_CUDA_TRY(cudaStreamSynchronize(stream_), error_, Status::device_error);
        compute_after_ = issued_;
        return Status::ok;
    }

    Status wait_compute() override {
        MOERUN_CUDA_TRY(cudaStreamSynchronize(stream_), error_, Status::device_error);
        return Status::ok;
    }

    // The copy stream, ordered against the compute stream by events: copy number t records
    // copy_done_[t % kCopyEvents] after it. An event slot reused by a later copy makes a wait for
    // an old number wait for that later one too: later, never wrong.
    Status upload_async(void *dst, const void *src, size_t bytes) override {
        return copy_async(dst, src, bytes, cudaMemcpyHostToDevice, "upload_async");
    }
    Status download_async(void *dst, const void *src, size_t bytes) override {
        return copy_async(dst, src, bytes, cudaMemcpyDeviceToHost, "download_async");
    }
    Status copy_async(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, const char *what) {
        if ((!dst || !src) && bytes) return fail(std::string(what) + ": null pointer");
        MOERUN_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, kind, copy_stream_), error_, Status::device_error);
        ++issued_;
        MOERUN_CUDA_TRY(cudaEventRecord(copy_done_[issued_ % kCopyEvents], copy_stream_), error_,
                        Status::device_error);
        return Status::ok;
    }
    uint64_t copies_issued() const override {
        return issued_;
    }
    Status compute_wait_copy(uint64_t upto) override {
        if (upto > issued_) return fail("compute_wait_copy: copy not issued yet");
        if (upto <= compute_after_) return Status::ok;  // the compute stream is ordered after it already
        MOERUN_CUDA_TRY(cudaStreamWaitEvent(stream_, copy_done_[upto % kCopyEvents], 0), error_,
                        Status::device_error);
        compute_after_ = upto;
        return Status::ok;
    }
    Status copies_wait_compute() override {
        MOERUN_CUDA_TRY(cudaEventRecord(compute_done_, stream_), error_, Status::device_error);
        MOERUN_CUDA_TRY(cudaStreamWaitEvent(copy_stream_, compute_done_, 0), error_, Status::device_error);
        return Status::ok;
    }
    Status wait_copies() override {
        MOERUN_CUDA_TRY(cudaStreamSynchronize(copy_stream_), error_, Status::device_error);
        compute_after_ = issued_;  // done: whatever compute does next comes after them
        return Status::ok;
    }
    // Graphs: stream capture of the compute stream; one executable graph per key, updated with
    // cudaGraphExecUpdate when the new recording has the same nodes, else made again.
    Status begin_graph() override {
        if (capturing_) return fail("begin_graph: a graph is being recorded already");
        MOERUN_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), error_,
                        Status::device_error);
        capturing_ = true;
        return Status::ok;
    }
    Status end_graph(uint64_t key) override {
        if (!capturing_) return fail("end_graph: no graph is being recorded");
        capturing_ = false;
        cudaGraph_t g = nullptr;
        if (cudaStreamEndCapture(stream_, &g) != cudaSuccess || g == nullptr) {
            error_ = std::string("end_graph: the recorded work cannot be a CUDA graph (") +
                     cudaGetErrorString(cudaGetLastError()) + ")";
            if (g) cudaGraphDestroy(g);
            return Status::unsupported;
        }
        cudaGraphExec_t &exec = graphs_[key];
        if (exec != nullptr) {
            cudaGraphExecUpdateResultInfo info{};
            if (cudaGraphExecUpdate(exec, g, &info) != cudaSuccess) {
                (void)cudaGetLastError();
                cudaGraphExecDestroy(exec);
                exec = nullptr;
            }
        }
        if (exec == nullptr && cudaGraphInstantiate(&exec, g, 0) != cudaSuccess) {
            error_ = std::string("end_graph: cudaGraphInstantiate failed (") +
                     cudaGetErrorString(cudaGetLastError()) + ")";
            cudaGraphDestroy(g);
            graphs_.erase(key);
            return Status::unsupported;
        }
        cudaGraphDestroy(g);
        MOERUN_CUDA_TRY(cudaGraphLaunch(exec, stream_), error_, Status::device_error);
        return Status::ok;
    }
    Status discard_graph() override {
        if (!capturing_) return Status::ok;
        capturing_ = false;
        cudaGraph_t g = nullptr;
        (void)cudaStreamEndCapture(stream_, &g);
        if (g) cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return Status::ok;
    }

    Status host_register(const void *ptr, size_t bytes, HostAccess access) override {
        if (!ptr || bytes == 0) return fail("host_register: empty range");
        // A read-only range read-only first (a read-only file mapping needs it); a range that
        // downloads write into must stay writable for the copy engine.
        if (access == HostAccess::read_only &&
            cudaHostRegister(const_cast<void *>(ptr), bytes, cudaHostRegisterReadOnly) == cudaSuccess)
            return Status::ok;
        (void)cudaGetLastError();
        MOERUN_CUDA_TRY(cudaHostRegister(const_cast<void *>(ptr), bytes, cudaHostRegisterDefault), error_,
                        Status::device_error);
        return Status::ok;
    }
    Status host_unregister(const void *ptr) override {
        MOERUN_CUDA_TRY(cudaHostUnregister(const_cast<void *>(ptr)), error_, Status::device_error);
        return Status::ok;
    }

    Status dequantize(quant::Type t, const void *src, float *dst, int64_t n) override {
        const auto &tr = quant::traits(t);
        if (!src || !dst || n < 0 || n % tr.block_size != 0) {
            error_ = "dequantize: bad arguments";
            return Status::invalid_argument;
        }
        if (!has_device_dequantize(t)) {
            error_ = "dequantize: no CUDA kernel for " + std::string(tr.name);
            return Status::unsupported;
        }
        MOERUN_CUDA_TRY(launch_dequantize(t, src, dst, n, stream_), error_, Status::device_error);
        return Status::ok;
    }

    Status matmul(quant::Type t, const void *w, const float *x, float *y, int64_t rows, int64_t cols,
                  int64_t n_tok) override {
        const auto &tr = quant::traits(t);
        if (!w || !x || !y || rows < 0 || n_tok < 0 || cols <= 0 ||
            (tr.block_size != 1 && (cols % 32 != 0 || cols % tr.block_size != 0))) {
            error_ = "matmul: bad arguments";
            return Status::invalid_argument;
        }
        if (!has_device_matmul(t)) {
            error_ = "matmul: no CUDA kernel for " + std::string(tr.name);
            return Status::unsupported;
        }
        const uint64_t rb = static_cast<uint64_t>(cols) / tr.block_size * tr.type_size;
        if (gemm_.wanted(t, rows, cols, n_tok)) {
            if (!gemm_.run(t, w, rb, x, y, rows, cols, n_tok, stream_, &error_)) return Status::device_error;
            return Status::ok;
        }
        MOERUN_CUDA_TRY(launch_matmul(t, w, rb, x, y, rows, cols, n_tok, stream_), error_,
                        Status::device_error);
        return Status::ok;
    }

    Status rms_norm(const float *x, const float *w, float *y, int64_t rows, int64_t n, float eps) override {
        if (!x || !y || rows < 0 || n <= 0) return fail("rms_norm: bad arguments");
        MOERUN_CUDA_TRY(launch_rms_norm(x, w, y, rows, n, eps, stream_), error_, Status::device_error);
        return Status::ok;
    }

    Status swiglu(const float *gate, const float *up, float *out, int64_t n) override {
        if (!gate || !up || !out || n < 0) return fail("swiglu: bad arguments");
        MOERUN_CUDA_TRY(launch_swiglu(gate, up, out, n, stream_), error_, Status::device_error);
        return Status::ok;
    }

    Status router_topk(const float *logits, int64_t n_tok, int n_expert, int k, bool renorm, int32_t *ids,
                       float *weights) override {
        if (!logits || !ids || !weights || n_tok < 0 || n_expert <= 0 || n_expert > 1024 || k < 1 || k > 32 ||
            k > n_expert)
            return fail("router_topk: bad arguments");
        MOERUN_CUDA_TRY(launch_router_topk(logits, n_tok, n_expert, k, renorm, ids, weights, stream_), error_,
                        Status::device_error);
        return Status::ok;
    }

    Status rope(float *x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0, float freq_base,
                bool neox, const cpu::RopeScaling &s) override {
        if (!x || n_tok < 0 || n_head <= 0 || head_dim <= 0 || n_rot <= 0 || n_rot > head_dim ||
            n_rot % 2 != 0)
            return fail("rope: bad arguments");
        MOERUN_CUDA_TRY(launch_rope(x, n_tok, n_head, head_dim, n_rot, pos0, freq_base, neox, s, stream_),
                        error_, Status::device_error);
        return Status::ok;
    }

    // Three launches of batched products (gate and up together when they share a type, down) with
    // SwiGLU between them, then the weighted sum: all experts of the token at once.
    Status expert_ffn(const ExpertFfn &f, const float *x, float *y, float *scratch) override {
        if (!x || !(y || f.rows_out) || !scratch || !f.gate || !f.up || !f.down || !f.weights ||
            f.n_experts < 1 || f.n_experts > kMaxFfnExperts || f.n_embd <= 0 || f.n_ff <= 0)
            return fail("expert_ffn: bad arguments");
        for (const quant::Type t : {f.gate_type, f.up_type, f.down_type}) {
            if (!has_device_matmul(t)) {
                error_ = "expert_ffn: no CUDA kernel for " + std::string(quant::type_name(t));
                return Status::unsupported;
            }
            const int64_t bs = quant::traits(t).block_size;  // 1: rows of any length
            if (bs != 1 && (f.n_embd % 32 != 0 || f.n_ff % 32 != 0 || f.n_embd % bs != 0 || f.n_ff % bs != 0))
                return fail("expert_ffn: sizes are not a multiple of the block size");
        }
        const int n = f.n_experts;
        const int64_t E = f.n_embd, F = f.n_ff;
        const auto rb = [](quant::Type t, int64_t cols) {
            return static_cast<uint64_t>(cols) / quant::traits(t).block_size * quant::traits(t).type_size;
        };
        float *g = scratch, *u = g + n * F;              // [n, F], [n, F]
        float *d = f.rows_out ? f.rows_out : u + n * F;  // [n, E]
        MatBatch b{};
        int m = 0;
        for (int j = 0; j < n; ++j) b.w[m] = f.gate[j], b.x[m] = x, b.y[m++] = g + j * F;
        if (f.up_type != f.gate_type) {
            MOERUN_CUDA_TRY(launch_matmul_batch(f.gate_type, b, m, rb(f.gate_type, E), F, E, stream_), error_,
                            Status::device_error);
            m = 0;
        }
        for (int j = 0; j < n; ++j) b.w[m] = f.up[j], b.x[m] = x, b.y[m++] = u + j * F;
        MOERUN_CUDA_TRY(launch_matmul_batch(f.up_type, b, m, rb(f.up_type, E), F, E, stream_), error_,
                        Status::device_error);
        MOERUN_CUDA_TRY(launch_swiglu(g, u, g, n * F, stream_), error_, Status::device_error);
        for (int j = 0; j < n; ++j) b.w[j] = f.down[j], b.x[j] = g + j * F, b.y[j] = d + j * E;
        MOERUN_CUDA_TRY(launch_matmul_batch(f.down_type, b, n, rb(f.down_type, F), E, F, stream_), error_,
                        Status::device_error);
        if (y != nullptr)
            MOERUN_CUDA_TRY(launch_weighted_sum(d, n, E, f.weights, y, stream_), error_,
                            Status::device_error);
        return Status::ok;
    }

    Status add(float *y, const float *a, int64_t n) override {
        if (!y || !a || n < 0) return fail("add: bad arguments");
        MOERUN_CUDA_TRY(launch_add(y, a, n, stream_), error_, Status::device_error);
        return Status::ok;
    }

    Status add_bias(float *x, const float *b, int64_t rows, int64_t n) override {
        if (!x || !b || rows < 0 || n < 0) return fail("add_bias: bad arguments");
        MOERUN_CUDA_TRY(launch_add_bias(x, b, rows, n, stream_), error_, Status::device_error);
        return Status::ok;
    }

    Status gather_rows(const float *src, const int32_t *rows, int64_t m, int64_t n, float *dst) override {
        if (!src || !rows || !dst || m < 0 || n < 0) return fail("gather_rows: bad arguments");
        for (int64_t i = 0; i < m; ++i)
            if (rows[i] < 0) return fail("gather_rows: negative row index");
        void *d_rows = nullptr;
        if (const Status st = stage({{rows, static_cast<size_t>(m) * sizeof(int32_t)}}, &d_rows, nullptr);
            st != Status::ok)
            return st;
        MOERUN_CUDA_TRY(launch_gather_rows(src, static_cast<const int32_t *>(d_rows), m, n, dst, stream_),
                        error_, Status::device_error);
        return Status::ok;
    }

    Status combine_rows(const float *src, const int32_t *rows, const float *w, int64_t n_tok, int k,
                        int64_t n, float *dst, bool accumulate) override {
        if (!src || !rows || !w || !dst || n_tok < 0 || k < 1 || n < 0)
            return fail("combine_rows: bad arguments");
        const size_t m = static_cast<size_t>(n_tok) * static_cast<size_t>(k);
        for (size_t i = 0; i < m; ++i)
            if (rows[i] < 0) return fail("combine_rows: negative row index");
        void *d_rows = nullptr, *d_w = nullptr;
        if (const Status st = stage({{rows, m * sizeof(int32_t)}, {w, m * sizeof(float)}}, &d_rows, &d_w);
            st != Status::ok)
            return st;
        MOERUN_CUDA_TRY(
            launch_combine_rows(src, static_cast<const int32_t *>(d_rows), static_cast<const float *>(d_w),
                                n_tok, k, n, dst, accumulate, stream_),
            error_, Status::device_error);
        return Status::ok;
    }

    Status kv_store(const float *x, int64_t n_tok, int n_head_kv, int head_dim, quant::Type type, void *cache,
                    int64_t n_ctx, int64_t pos0) override {
        if (!x || !cache || n_tok < 0 || n_head_kv <= 0 || head_dim <= 0 || pos0 < 0 || pos0 + n_tok > n_ctx)
            return fail("kv_store: bad arguments");
        if (type != quant::Type::F32 && type != quant::Type::F16) {
            error_ = "kv_store: KV type " + std::string(quant::type_name(type));
            return Status::unsupported;
        }
        MOERUN_CUDA_TRY(launch_kv_store(x, n_tok, n_head_kv, head_dim, type, cache, n_ctx, pos0, stream_),
                        error_, Status::device_error);
        return Status::ok;
    }

    Status attention(const Attention &a, const float *q, float *out) override {
        if (!q || !out || !a.k_cache || !a.v_cache || a.n_tok < 0 || a.pos0 < 0 ||
            a.pos0 + a.n_tok > a.n_ctx || a.n_head <= 0 || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0 ||
            a.head_dim <= 0 || a.n_tok > kMaxGridY)
            return fail("attention: bad arguments");
        const auto kv_ok = [](quant::Type t) { return t == quant::Type::F32 || t == quant::Type::F16; };
        if (!kv_ok(a.type_k) || !kv_ok(a.type_v) || a.head_dim > kMaxHeadDim) {
            error_ = "attention: KV types must be F32 or F16 and head_dim <= " + std::to_string(kMaxHeadDim);
            return Status::unsupported;
        }
        const AttentionArgs args{a.k_cache,
                                 a.v_cache,
                                 a.type_k == quant::Type::F16,
                                 a.type_v == quant::Type::F16,
                                 a.n_ctx,
                                 a.n_tok,
                                 a.pos0,
                                 a.n_head,
                                 a.n_head_kv,
                                 a.head_dim,
                                 a.scale};
        MOERUN_CUDA_TRY(launch_attention(args, q, out, stream_), error_, Status::device_error);
        return Status::ok;
    }

    std::string last_error() const override {
        return error_;
    }

  private:
    Status fail(std::string msg) {
        error_ = std::move(msg);
        return Status::invalid_argument;
    }

    // Copies small host arrays (indices, weights) into a device buffer on the stream; the host
    // arrays may be reused on return (pageable copies are staged before cudaMemcpyAsync returns),
    // and later kernels on the stream see the data in order. Up to two arrays, 256-byte aligned.
    struct HostArray {
        const void *data;
        size_t bytes;
    };
    static size_t round256(size_t b) {
        return (b + 255) / 256 * 256;
    }
    // At least `need` bytes of staging. reserve_rows sizes it at start; growing here, mid-pass,
    // happens only past what the caller reserved.
    Status grow_staging(size_t need) {
        if (need <= staging_bytes_) return Status::ok;
        if (staging_) cudaFree(staging_);  // cudaFree waits for kernels still reading it
        staging_ = nullptr;
        staging_bytes_ = 0;
        const size_t grow = std::max<size_t>(need, kStagingBytes);
        MOERUN_CUDA_TRY(cudaMalloc(&staging_, grow), error_, Status::device_error);
        staging_bytes_ = grow;
        return Status::ok;
    }
    Status stage(std::initializer_list<HostArray> arrays, void **first, void **second) {
        size_t need = 0;
        for (const HostArray &h : arrays) need += round256(h.bytes);
        if (const Status st = grow_staging(need); st != Status::ok) return st;
        size_t at = 0;
        void **out[2] = {first, second};
        int i = 0;
        for (const HostArray &h : arrays) {
            char *d = static_cast<char *>(staging_) + at;
            if (h.bytes)
                MOERUN_CUDA_TRY(cudaMemcpyAsync(d, h.data, h.bytes, cudaMemcpyHostToDevice, stream_), error_,
                                Status::device_error);
            if (out[i]) *out[i] = d;
            ++i;
            at += round256(h.bytes);
        }
        return Status::ok;
    }

    static constexpr size_t kStagingBytes = 64 << 10;  // at least; reserve_rows sizes it for a batch
    static constexpr int64_t kMaxGridY = 65535;
    Gemm gemm_;
    void *staging_ = nullptr;
    size_t staging_bytes_ = 0;
    cudaStream_t stream_ = nullptr;       // kernels, upload, download
    cudaStream_t copy_stream_ = nullptr;  // upload_async
    static constexpr uint64_t kCopyEvents = 64;
    cudaEvent_t copy_done_[kCopyEvents] = {};  // [t % kCopyEvents]: after copy number t
    cudaEvent_t compute_done_ = nullptr;
    std::unordered_map<uint64_t, cudaGraphExec_t> graphs_;  // end_graph's, by key
    bool capturing_ = false;
    bool batch_ok_ = true;  // cudaMemcpyBatchAsync works here (until it fails once)
    std::vector<void *> batch_dst_;
    std::vector<void *> batch_src_;  // not const: CUDA 12.8's cudaMemcpyBatchAsync takes void **
    std::vector<size_t> batch_size_;
    uint64_t issued_ = 0;         // copies numbered so far
    uint64_t compute_after_ = 0;  // the compute stream runs after copies up to this number
    std::string error_;
};

}  // namespace

bool probe(std::string *reason) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        if (reason)
            *reason = std::string("no usable CUDA device (") +
                      (err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0") + ")";
        return false;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        if (reason) *reason = "CUDA device 0 could not be queried";
        return false;
    }
    const std::string sm = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
    if (prop.major < 8) {  // the kernels are built for sm_80 and sm_90 (and their PTX)
        if (reason)
            *reason = std::string(prop.name) + " is " + sm +
                      ", and moerun's CUDA kernels need sm_80 (Ampere) or newer";
        return false;
    }
    if (reason)
        *reason =
            std::string(prop.name) + ", " + sm + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB";
    return true;
}

std::unique_ptr<Backend> make_backend() {
    return std::make_unique<CudaBackend>();
}

}  // namespace moerun::kernels::cuda
