// The one backend interface. The CPU backend is always built; CUDA registers itself in
// kernels/src/registry.cpp when it was compiled in. Architecture and runtime code talk to
// backends only through this interface (conventions.md: no #ifdef CUDA outside kernels/cuda
// and the registry file).
//
// Kernels take raw pointers with explicit sizes and return a Status; memory passed to a
// backend's kernels lives in that backend's memory space (alloc/upload/download).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "moerun/kernels/cpu/rope.h"
#include "moerun/quant/types.h"

namespace moerun::kernels {

enum class Status : int {
    ok = 0,
    unsupported = 1,       // the backend has no kernel for this type/op
    invalid_argument = 2,  // bad size, null pointer, n not a multiple of the block size
    device_error = 3,      // the device reported an error (message via last_error())
};
std::string_view status_name(Status s);

struct DeviceInfo {
    std::string name;           // "CPU (AVX2, 2 threads)" / "NVIDIA H100 80GB HBM3"
    uint64_t total_memory = 0;  // bytes
    uint64_t free_memory = 0;   // bytes
};

class Backend {
  public:
    virtual ~Backend() = default;
    virtual std::string_view name() const = 0;  // "cpu", "cuda"
    virtual DeviceInfo device_info() const = 0;

    // Memory in this backend's space, 256-byte aligned. alloc returns nullptr on failure.
    virtual void *alloc(size_t bytes) = 0;
    virtual void free(void *ptr) = 0;
    // Memory in this backend's space that it allocates for itself, beside alloc() (CUDA: the
    // prefill products' tiles and cuBLAS's workspace, small staging buffers), counted by callers
    // against a device memory budget. May be allocated on first use.
    virtual uint64_t workspace_bytes() const { return 0; }
    // Sizes that workspace for gather_rows / combine_rows of up to `rows` row indices per call, so
    // that no pass allocates (workspace_bytes() then includes it).
    virtual Status reserve_rows(int64_t rows) {
        (void)rows;
        return Status::ok;
    }
    // The most tokens one batch of kernels may hold (CUDA: attention puts them on a grid's y, at
    // most 65535); callers split longer batches.
    virtual int64_t max_batch_tokens() const { return INT64_MAX; }
    // Host to backend memory on the compute queue. A source in registered memory (host_register)
    // is read when the copy runs, so it must stay unchanged until the host has waited for the
    // compute queue (wait_compute, download, synchronize); any other source may change once the
    // call returns (CUDA stages pageable memory). The CPU backend reads a registered source at
    // the next kernel or wait, so a caller that breaks this computes on the new bytes there too.
    virtual Status upload(void *dst, const void *host_src, size_t bytes) = 0;
    // Several uploads on the compute queue in one call (CUDA: cudaMemcpyBatchAsync, where the
    // runtime has it), e.g. a layer's missing experts; as upload() one by one otherwise. Stricter
    // than upload(): every source, pageable or not, must stay unchanged until the compute queue has
    // run the copies (wait_compute, download, synchronize), since CUDA reads them in stream order.
    struct Upload {
        void *dst;
        const void *src;
        size_t bytes;
    };
    virtual Status upload_batch(const Upload *copies, size_t n) {
        for (size_t i = 0; i < n; ++i)
            if (const Status st = upload(copies[i].dst, copies[i].src, copies[i].bytes); st != Status::ok)
                return st;
        return Status::ok;
    }
    virtual Status download(void *host_dst, const void *src, size_t bytes) = 0;
    // Waits for everything issued on both queues (kernels and copies).
    virtual Status synchronize() = 0;
    // The host waits for the compute queue alone (kernels, upload, upload_batch issued before
    // this call), not for the copy queue below: the host sources of its uploads may then change.
    virtual Status wait_compute() = 0;

    // Copies beside the kernels. upload_async enqueues a host-to-device copy on a copy queue (CUDA:
    // a second stream) that runs concurrently with the compute queue (kernels, upload, download).
    // host_src must stay valid and unchanged until the copy has run (it has after synchronize()).
    // The queues are ordered only by the waits below. The CPU backend runs queued copies when it
    // must: at a wait for them, synchronize or free, so a missing wait reads stale data.
    // Copies run in issue order and are numbered 1, 2, ... as issued; copies_issued() is the
    // number of the last one (0 before any).
    virtual Status upload_async(void *dst, const void *host_src, size_t bytes) = 0;
    virtual uint64_t copies_issued() const = 0;
    // Compute-queue work issued after this call starts after copy number `upto` and those before it
    // (0: none), not after later ones: a layer waits only for the copies it reads, while the
    // rest (e.g. mispredicted prefetches) go on beside its kernels.
    virtual Status compute_wait_copy(uint64_t upto) = 0;
    // compute_wait_copy(copies_issued()): after every copy issued so far.
    Status compute_wait_copies() { return compute_wait_copy(copies_issued()); }
    // upload_async copies issued after this call start after all compute-queue work issued before it.
    virtual Status copies_wait_compute() = 0;
    // download_async enqueues a device-to-host copy on the copy queue, numbered and ordered with
    // the upload_async copies: e.g. an expert evicted from a device slot goes back into a host
    // slot before a later copy on the queue refills the device slot. host_dst lies in memory
    // registered HostAccess::read_write, which the host reads only after wait_copies (or
    // synchronize); the CPU backend refuses any other destination.
    virtual Status download_async(void *host_dst, const void *src, size_t bytes) = 0;
    // The host waits until every copy-queue copy issued before this call has run, so the host
    // sources of the uploads may change (e.g. a host cache slot that is about to be refilled) and
    // the destinations of the downloads hold their bytes.
    virtual Status wait_copies() = 0;
    // Page-locks a host range so that copies from it run without staging (CUDA: cudaHostRegister;
    // the CPU backend only remembers it, see upload). A read_only range (e.g. a read-only file
    // mapping; CUDA's read-only registration) is a copy source only: no download may write into
    // it, and the CPU backend refuses one that would. host_unregister takes the same start pointer.
    enum class HostAccess { read_only, read_write };
    virtual Status host_register(const void *ptr, size_t bytes, HostAccess access) = 0;
    virtual Status host_unregister(const void *ptr) = 0;

    // Graphs of compute-queue work (CUDA graphs). After begin_graph, compute-queue calls (kernels
    // only: no upload, download, synchronize or copy-queue wait) are recorded instead of run;
    // end_graph then runs what was recorded as one graph. The graph made for the same `key` last
    // time is updated in place when only kernel parameters changed (a decode layer's dense part
    // differs from token to token in the position alone), else made anew. Where a graph gains
    // nothing (CPU) or the recorded work cannot be one, begin_graph or end_graph returns
    // Status::unsupported and nothing has run: the caller issues the same work again without a
    // graph. discard_graph ends a recording without running it (after an error in between).
    virtual Status begin_graph() { return Status::unsupported; }
    virtual Status end_graph(uint64_t /*key*/) { return Status::unsupported; }
    virtual Status discard_graph() { return Status::ok; }

    // dst[0..n) = dequantized src (n elements of type t, n a multiple of the block size).
    virtual Status dequantize(quant::Type t, const void *src, float *dst, int64_t n) = 0;

    // y[n_tok, rows] = x[n_tok, cols] . W^T, token-major: W is rows x cols of type t (GGUF blocks,
    // rows row_bytes(t, cols) apart), x and y are float; all three in this backend's memory. cols
    // must be a multiple of 32 and of t's block size, except for F32 / F16 / BF16 (any cols). The CPU backend
    // converts activations to the type's vec-dot type as llama.cpp does; CUDA multiplies with F32 activations
    // (from 32 tokens on, a dequantized F32 tile through cuBLAS's SGEMM).
    virtual Status matmul(quant::Type t, const void *w, const float *x, float *y, int64_t rows, int64_t cols,
                          int64_t n_tok) = 0;

    // The forward pass's other ops; every pointer in this backend's memory, token-major.
    // y[rows, n] = x / sqrt(mean(x^2) + eps) * w per row (w: [n], or null for no scale).
    virtual Status rms_norm(const float *x, const float *w, float *y, int64_t rows, int64_t n, float eps) = 0;
    // out[n] = silu(gate) * up.
    virtual Status swiglu(const float *gate, const float *up, float *out, int64_t n) = 0;
    // The router of n_tok tokens: softmax over n_expert logits, the k largest (ties to the lower
    // id, largest first); weights = their probabilities, renormalised to sum 1 when renorm.
    // logits [n_tok, n_expert]; ids, weights [n_tok, k]. 1 <= k <= min(n_expert, 32), n_expert <= 1024.
    virtual Status router_topk(const float *logits, int64_t n_tok, int n_expert, int k, bool renorm,
                               int32_t *ids, float *weights) = 0;
    // RoPE of x [n_tok, n_head, head_dim] in place, token t at position pos0 + t, as
    // cpu::rope_scaled defines it.
    virtual Status rope(float *x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0,
                        float freq_base, bool neox, const cpu::RopeScaling &s) = 0;

    // The routed experts of one token in one call: y[n_embd] = sum over j (in order) of
    // weights[j] * down_j(silu(gate_j x) * up_j(x)), x [n_embd]. gate/up are n_ff x n_embd, down
    // n_embd x n_ff, of one type each (the layer's stacked tensors), weights on the host.
    // 1 <= n_experts <= kMaxFfnExperts; scratch (this backend's memory): 2 * n_experts * n_ff + n_experts *
    // n_embd floats. rows_out (optional, this backend's memory): each expert's unweighted output
    // down_j(...) is written there as well, [n_experts, n_embd], for a caller that sums them with
    // rows computed elsewhere (combine_rows); y may then be null (no weighted sum).
    static constexpr int kMaxFfnExperts = 32;
    struct ExpertFfn {
        quant::Type gate_type, up_type, down_type;
        const void *const *gate;  // [n_experts] weight pointers
        const void *const *up;
        const void *const *down;
        const float *weights;  // [n_experts], host
        int n_experts;
        int64_t n_embd, n_ff;
        float *rows_out = nullptr;  // [n_experts, n_embd] or null
    };
    virtual Status expert_ffn(const ExpertFfn &f, const float *x, float *y, float *scratch) = 0;
    // How the host computes an expert_ffn row that this backend's own rows equal bit for bit (the
    // CPU fallback): with the CPU kernels (the CPU backend: they are its kernels), or in the device's
    // order (cpu/device-order.h: the CUDA kernels' arithmetic, F32 activations).
    enum class HostMath { cpu_kernels, device_order };
    virtual HostMath host_math() const { return HostMath::cpu_kernels; }

    // Element-wise and row ops of the residual stream and the expert dispatch.
    // y[n] += a[n].
    virtual Status add(float *y, const float *a, int64_t n) = 0;
    // x[rows, n] += b[n] (a bias added to every row).
    virtual Status add_bias(float *x, const float *b, int64_t rows, int64_t n) = 0;
    // dst[i, :] = src[rows[i], :] for i < m, rows of n floats; rows on the host.
    virtual Status gather_rows(const float *src, const int32_t *rows, int64_t m, int64_t n, float *dst) = 0;
    // dst[t, :] = (dst[t, :] when accumulate, else 0) + sum over j < k, in order, of
    // w[t * k + j] * src[rows[t * k + j], :], for t < n_tok; rows of n floats; rows and w on the host.
    virtual Status combine_rows(const float *src, const int32_t *rows, const float *w, int64_t n_tok, int k,
                                int64_t n, float *dst, bool accumulate) = 0;

    // The KV cache of one layer is [n_head_kv, n_ctx, head_dim] of type F32 or F16 (each head's
    // positions contiguous). kv_store writes x [n_tok, n_head_kv, head_dim] at positions
    // pos0 .. pos0 + n_tok - 1 (F16 rounded to nearest even).
    virtual Status kv_store(const float *x, int64_t n_tok, int n_head_kv, int head_dim, quant::Type type,
                            void *cache, int64_t n_ctx, int64_t pos0) = 0;
    // Causal GQA attention: q [n_tok, n_head, head_dim], token t at position pos0 + t attends to
    // positions [0, pos0 + t] of one layer's caches; out [n_tok, n_head * head_dim] (overwritten).
    // Head h reads kv head h / (n_head / n_head_kv). Defined as cpu::attention_head (with an F16
    // cache, q and the probabilities are rounded to F16 as llama.cpp does).
    struct Attention {
        const void *k_cache, *v_cache;
        quant::Type type_k, type_v;
        int64_t n_ctx, n_tok, pos0;
        int n_head, n_head_kv, head_dim;
        float scale;
    };
    virtual Status attention(const Attention &a, const float *q, float *out) = 0;

    // Message of the last failed call on this backend (empty when none).
    virtual std::string last_error() const = 0;
};

// What the registry knows about a backend on this machine.
struct BackendProbe {
    std::string name;  // "cpu", "cuda"
    bool compiled = false;
    bool available = false;
    std::string reason;  // why it is (not) available: "no CUDA device: ..." / device name
};

// All backends compiled into this build, in order of preference (CUDA first when usable).
std::vector<BackendProbe> probe_backends();
// Creates a backend by name; nullptr (and *why filled) when it is not compiled or not usable.
std::unique_ptr<Backend> make_backend(std::string_view name, std::string *why = nullptr);

}  // namespace moerun::kernels
