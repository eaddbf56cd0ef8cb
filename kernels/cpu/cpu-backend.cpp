// CPU backend: memory is plain host memory; dequantize runs the scalar reference of quant/.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cpu-backend.h"
#include "moerun/kernels/cpu/ops.h"
#include "moerun/kernels/cpu/rope.h"
#include "moerun/kernels/cpu/thread-pool.h"
#include "moerun/quant/dequant.h"

namespace moerun::kernels {
namespace {

class CpuBackend final : public Backend {
  public:
    std::string_view name() const override { return "cpu"; }

    DeviceInfo device_info() const override {
        DeviceInfo info;
        info.name = "CPU (" + std::to_string(std::thread::hardware_concurrency()) + " threads)";
        return info;
    }

    // 256-byte aligned, as cudaMalloc's memory is.
    void *alloc(size_t bytes) override {
        void *p = bytes > SIZE_MAX - 255
                      ? nullptr
                      : std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
        if (p == nullptr) error_ = "cannot allocate " + std::to_string(bytes) + " bytes of host memory";
        return p;
    }
    void free(void *ptr) override {
        run_uploads();  // copies still queued into this memory land first, as cudaFree waits
        run_queued();
        std::free(ptr);
    }

    // An upload from registered memory (host_register) reads its source late: at the next
    // kernel, download or wait, the latest moment CUDA's copy engine may read page-locked memory.
    // A caller that changes such a source before waiting for it (wait_compute) computes on the
    // new bytes here too. Other sources are copied at once, as CUDA stages pageable memory.
    Status upload(void *dst, const void *src, size_t bytes) override {
        if ((!dst || !src) && bytes) return fail(Status::invalid_argument, "upload: null pointer");
        if (bytes == 0) return Status::ok;
        if (!registered(src, bytes)) return copy(dst, src, bytes);
        uploads_.push_back({dst, src, bytes});
        return Status::ok;
    }
    Status download(void *dst, const void *src, size_t bytes) override {
        if (const Status st = check_download_dst(dst, bytes, "download", false); st != Status::ok) return st;
        run_uploads();
        return copy(dst, src, bytes);
    }
    Status synchronize() override {
        run_uploads();
        return run_queued();
    }
    Status wait_compute() override { return run_uploads(); }  // kernels have run on return

    // The copy queue: copies wait until compute must see them (the latest moment CUDA may run
    // them), so code that forgets a wait computes on stale slots here too, and a copy that no
    // one waited for lands late, over whatever was written there since.
    Status upload_async(void *dst, const void *src, size_t bytes) override {
        if ((!dst || !src) && bytes) return fail(Status::invalid_argument, "upload_async: null pointer");
        queued_.push_back({dst, src, bytes});
        ++issued_;
        return Status::ok;
    }
    // A download on the copy queue writes its destination when it runs, as a copy engine does: a
    // host that reads it before wait_copies sees the old bytes.
    Status download_async(void *dst, const void *src, size_t bytes) override {
        if ((!dst || !src) && bytes) return fail(Status::invalid_argument, "download_async: null pointer");
        if (const Status st = check_download_dst(dst, bytes, "download_async", true); st != Status::ok)
            return st;
        queued_.push_back({dst, src, bytes});
        ++issued_;
        return Status::ok;
    }
    uint64_t copies_issued() const override { return issued_; }
    Status compute_wait_copy(uint64_t upto) override {
        if (upto > issued_) return fail(Status::invalid_argument, "compute_wait_copy: copy not issued yet");
        run_uploads();  // the two queues are not ordered: the copy lands last
        return run_queued(upto);
    }
    Status copies_wait_compute() override { return run_uploads(); }  // kernels have run on return
    Status wait_copies() override {
        run_uploads();
        return run_queued();
    }
    // Nothing to page-lock here; the range is remembered so that uploads from it run late and
    // downloads into it are checked against its access.
    Status host_register(const void *ptr, size_t bytes, HostAccess access) override {
        if (!ptr || bytes == 0) return fail(Status::invalid_argument, "host_register: empty range");
        if (registered(ptr, 1) || registered(static_cast<const uint8_t *>(ptr) + bytes - 1, 1))
            return fail(Status::invalid_argument, "host_register: the range overlaps a registered one");
        ranges_.push_back({static_cast<const uint8_t *>(ptr), bytes, access});
        return Status::ok;
    }
    Status host_unregister(const void *ptr) override {
        run_uploads();  // none may still read it
        const auto it =
            std::find_if(ranges_.begin(), ranges_.end(), [&](const Range &r) { return r.begin == ptr; });
        if (it == ranges_.end())
            return fail(Status::invalid_argument, "host_unregister: not a registered range");
        ranges_.erase(it);
        return Status::ok;
    }

    Status dequantize(quant::Type t, const void *src, float *dst, int64_t n) override {
        run_uploads();
        const auto &tr = quant::traits(t);
        if (!src || !dst || n < 0 || n % tr.block_size != 0)
            return fail(Status::invalid_argument, "dequantize: bad arguments");
        if (!tr.has_dequant)
            return fail(Status::unsupported, "dequantize: no kernel for " + std::string(tr.name));
        try {
            quant::dequantize_row(t, src, dst, n);
        } catch (const std::exception &e) {
            return fail(Status::invalid_argument, e.what());
        }
        return Status::ok;
    }

    Status matmul(quant::Type t, const void *w, const float *x, float *y, int64_t rows, int64_t cols,
                  int64_t n_tok) override {
        run_uploads();
        const auto &tr = quant::traits(t);
        if (!w || !x || !y || rows < 0 || n_tok < 0 || cols <= 0 || cols % tr.block_size != 0)
            return fail(Status::invalid_argument, "matmul: bad arguments");
        if (!tr.has_dequant)
            return fail(Status::unsupported, "matmul: no kernel for " + std::string(tr.name));
        if (rows == 0 || n_tok == 0) return Status::ok;
        try {
            cpu::matmul(pool(), t, w, x, y, rows, cols, n_tok);
        } catch (const std::exception &e) {
            return fail(Status::invalid_argument, e.what());
        }
        return Status::ok;
    }

    Status rms_norm(const float *x, const float *w, float *y, int64_t rows, int64_t n, float eps) override {
        run_uploads();
        if (!x || !y || rows < 0 || n <= 0) return fail(Status::invalid_argument, "rms_norm: bad arguments");
        for (int64_t r = 0; r < rows; ++r) cpu::rms_norm(x + r * n, w, y + r * n, n, eps);
        return Status::ok;
    }

    Status swiglu(const float *gate, const float *up, float *out, int64_t n) override {
        run_uploads();
        if (!gate || !up || !out || n < 0) return fail(Status::invalid_argument, "swiglu: bad arguments");
        cpu::swiglu(gate, up, out, n);
        return Status::ok;
    }

    Status router_topk(const float *logits, int64_t n_tok, int n_expert, int k, bool renorm, int32_t *ids,
                       float *weights) override {
        run_uploads();
        if (!logits || !ids || !weights || n_tok < 0 || n_expert <= 0 || n_expert > 1024 || k < 1 ||
            k > std::min(n_expert, 32))
            return fail(Status::invalid_argument, "router_topk: bad arguments");
        std::vector<float> p(static_cast<size_t>(n_expert));
        std::vector<int64_t> idx(static_cast<size_t>(n_expert));
        std::vector<uint16_t> sel(static_cast<size_t>(k));
        for (int64_t t = 0; t < n_tok; ++t) {
            std::copy_n(logits + t * n_expert, n_expert, p.data());
            cpu::softmax(p.data(), n_expert);
            cpu::top_k(p.data(), n_expert, k, idx.data(), sel.data());
            float sum = 0;
            for (int j = 0; j < k; ++j) sum += p[sel[static_cast<size_t>(j)]];
            for (int j = 0; j < k; ++j) {
                const float pj = p[sel[static_cast<size_t>(j)]];
                ids[t * k + j] = sel[static_cast<size_t>(j)];
                weights[t * k + j] = renorm ? pj / sum : pj;
            }
        }
        return Status::ok;
    }

    Status rope(float *x, int64_t n_tok, int n_head, int head_dim, int n_rot, int64_t pos0, float freq_base,
                bool neox, const cpu::RopeScaling &s) override {
        run_uploads();
        if (!x || n_tok < 0 || n_head <= 0 || head_dim <= 0 || n_rot <= 0 || n_rot > head_dim ||
            n_rot % 2 != 0)
            return fail(Status::invalid_argument, "rope: bad arguments");
        for (int64_t t = 0; t < n_tok; ++t)
            cpu::rope_scaled(x + t * n_head * head_dim, n_head, head_dim, n_rot, static_cast<float>(pos0 + t),
                             freq_base, neox, s);
        return Status::ok;
    }

    // The gate and up products of all experts in one parallel pass, SwiGLU, the down products in
    // another, then the weighted sum in expert order.
    Status expert_ffn(const ExpertFfn &f, const float *x, float *y, float *scratch) override {
        run_uploads();
        if (!x || !(y || f.rows_out) || !scratch || !f.gate || !f.up || !f.down || !f.weights ||
            f.n_experts < 1 || f.n_experts > kMaxFfnExperts || f.n_embd <= 0 || f.n_ff <= 0)
            return fail(Status::invalid_argument, "expert_ffn: bad arguments");
        const int n = f.n_experts;
        float *g = scratch, *u = g + n * f.n_ff;              // [n, F], [n, F]
        float *d = f.rows_out ? f.rows_out : u + n * f.n_ff;  // [n, E]
        std::vector<cpu::MatmulJob> jobs;
        for (int j = 0; j < n; ++j) {
            jobs.push_back({f.gate_type, f.gate[j], x, g + j * f.n_ff, f.n_ff, f.n_embd, 1});
            jobs.push_back({f.up_type, f.up[j], x, u + j * f.n_ff, f.n_ff, f.n_embd, 1});
        }
        try {
            cpu::matmul_group(pool(), jobs);
            cpu::swiglu(g, u, g, n * f.n_ff);
            jobs.clear();
            for (int j = 0; j < n; ++j)
                jobs.push_back(
                    {f.down_type, f.down[j], g + j * f.n_ff, d + j * f.n_embd, f.n_embd, f.n_ff, 1});
            cpu::matmul_group(pool(), jobs);
        } catch (const std::exception &e) {
            return fail(Status::invalid_argument, e.what());
        }
        if (y == nullptr) return Status::ok;
        std::fill_n(y, f.n_embd, 0.0f);
        for (int j = 0; j < n; ++j) cpu::axpy(f.weights[j], d + j * f.n_embd, y, f.n_embd);
        return Status::ok;
    }

    Status add(float *y, const float *a, int64_t n) override {
        run_uploads();
        if (!y || !a || n < 0) return fail(Status::invalid_argument, "add: bad arguments");
        for (int64_t i = 0; i < n; ++i) y[i] += a[i];
        return Status::ok;
    }

    Status add_bias(float *x, const float *b, int64_t rows, int64_t n) override {
        run_uploads();
        if (!x || !b || rows < 0 || n < 0) return fail(Status::invalid_argument, "add_bias: bad arguments");
        for (int64_t r = 0; r < rows; ++r) cpu::axpy(1.0f, b, x + r * n, n);
        return Status::ok;
    }

    Status gather_rows(const float *src, const int32_t *rows, int64_t m, int64_t n, float *dst) override {
        run_uploads();
        if (!src || !rows || !dst || m < 0 || n < 0)
            return fail(Status::invalid_argument, "gather_rows: bad arguments");
        for (int64_t i = 0; i < m; ++i) {
            if (rows[i] < 0) return fail(Status::invalid_argument, "gather_rows: negative row index");
            std::copy_n(src + int64_t{rows[i]} * n, n, dst + i * n);
        }
        return Status::ok;
    }

    Status combine_rows(const float *src, const int32_t *rows, const float *w, int64_t n_tok, int k,
                        int64_t n, float *dst, bool accumulate) override {
        run_uploads();
        if (!src || !rows || !w || !dst || n_tok < 0 || k < 1 || n < 0)
            return fail(Status::invalid_argument, "combine_rows: bad arguments");
        for (int64_t t = 0; t < n_tok; ++t) {
            float *d = dst + t * n;
            if (!accumulate) std::fill_n(d, n, 0.0f);
            for (int j = 0; j < k; ++j) {
                const int32_t r = rows[t * k + j];
                if (r < 0) return fail(Status::invalid_argument, "combine_rows: negative row index");
                cpu::axpy(w[t * k + j], src + int64_t{r} * n, d, n);
            }
        }
        return Status::ok;
    }

    Status kv_store(const float *x, int64_t n_tok, int n_head_kv, int head_dim, quant::Type type, void *cache,
                    int64_t n_ctx, int64_t pos0) override {
        run_uploads();
        if (!x || !cache || n_tok < 0 || n_head_kv <= 0 || head_dim <= 0 || pos0 < 0 || pos0 + n_tok > n_ctx)
            return fail(Status::invalid_argument, "kv_store: bad arguments");
        if (!cpu::kv_type_supported(type))
            return fail(Status::unsupported, "kv_store: KV type " + std::string(quant::type_name(type)));
        const size_t elt = quant::traits(type).type_size;
        auto *c = static_cast<uint8_t *>(cache);
        for (int64_t t = 0; t < n_tok; ++t)
            for (int h = 0; h < n_head_kv; ++h) {
                const size_t at =
                    (static_cast<size_t>(h) * static_cast<size_t>(n_ctx) + static_cast<size_t>(pos0 + t)) *
                    static_cast<size_t>(head_dim);
                cpu::store_kv_row(type, x + (t * n_head_kv + h) * head_dim, c + at * elt, head_dim);
            }
        return Status::ok;
    }

    Status attention(const Attention &a, const float *q, float *out) override {
        run_uploads();
        if (!q || !out || !a.k_cache || !a.v_cache || a.n_tok < 0 || a.pos0 < 0 ||
            a.pos0 + a.n_tok > a.n_ctx || a.n_head <= 0 || a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0 ||
            a.head_dim <= 0)
            return fail(Status::invalid_argument, "attention: bad arguments");
        if (!cpu::kv_type_supported(a.type_k) || !cpu::kv_type_supported(a.type_v))
            return fail(Status::unsupported, "attention: KV types must be F32 or F16");
        const int64_t hd = a.head_dim, nq = int64_t{a.n_head} * hd, group = a.n_head / a.n_head_kv;
        const size_t ek = quant::traits(a.type_k).type_size, ev = quant::traits(a.type_v).type_size;
        const auto *kc = static_cast<const uint8_t *>(a.k_cache);
        const auto *vc = static_cast<const uint8_t *>(a.v_cache);
        std::fill_n(out, a.n_tok * nq, 0.0f);
        pool().parallel_for(a.n_tok * a.n_head, [&](int64_t b0, int64_t b1, int) {
            std::vector<float> scores(static_cast<size_t>(a.pos0 + a.n_tok));
            for (int64_t job = b0; job < b1; ++job) {
                const int64_t t = job / a.n_head, h = job % a.n_head;
                const size_t at = static_cast<size_t>(h / group) * static_cast<size_t>(a.n_ctx * hd);
                cpu::attention_head(q + t * nq + h * hd, kc + at * ek, a.type_k, vc + at * ev, a.type_v,
                                    a.pos0 + t + 1, hd, a.scale, scores.data(), out + t * nq + h * hd);
            }
        });
        return Status::ok;
    }

    std::string last_error() const override { return error_; }

  private:
    cpu::ThreadPool &pool() {
        if (!pool_)
            pool_ = std::make_unique<cpu::ThreadPool>(
                static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
        return *pool_;
    }
    std::unique_ptr<cpu::ThreadPool> pool_;  // made by the first matmul
    struct Queued {
        void *dst;
        const void *src;
        size_t bytes;
    };
    std::deque<Queued> uploads_;  // upload copies not run yet (the compute queue), in issue order
    std::deque<Queued> queued_;   // upload_async copies not run yet, in issue order
    uint64_t issued_ = 0;         // copies numbered so far; queued_ holds the last queued_.size()
    // Runs the queued copies numbered up to `upto` (all by default).
    Status run_queued(uint64_t upto = UINT64_MAX) {
        uint64_t first = issued_ - queued_.size() + 1;  // number of queued_.front()
        for (; !queued_.empty() && first <= upto; ++first) {
            const Queued &q = queued_.front();
            if (q.bytes) std::memcpy(q.dst, q.src, q.bytes);
            queued_.pop_front();
        }
        return Status::ok;
    }
    struct Range {
        const uint8_t *begin;
        size_t bytes;
        HostAccess access;
    };
    std::vector<Range> ranges_;  // host_register's
    // The registered range that holds [p, p + bytes), or null.
    const Range *range_of(const void *p, size_t bytes) const {
        const auto *b = static_cast<const uint8_t *>(p);
        for (const Range &r : ranges_)
            if (b >= r.begin && b < r.begin + r.bytes)
                return bytes <= static_cast<size_t>(r.begin + r.bytes - b) ? &r : nullptr;
        return nullptr;
    }
    bool registered(const void *p, size_t bytes) const { return range_of(p, bytes) != nullptr; }
    // A device write into host memory: never into a read-only registered range (CUDA may map it
    // read-only for the copy engine); a queued one (async) only into a read_write range, which
    // CUDA writes without staging.
    Status check_download_dst(const void *dst, size_t bytes, const char *what, bool async) {
        if (bytes == 0) return Status::ok;
        const auto *b = static_cast<const uint8_t *>(dst);
        const Range *r = range_of(dst, bytes);
        if (r == nullptr && (registered(b, 1) || registered(b + bytes - 1, 1)))
            return fail(Status::invalid_argument,
                        std::string(what) + ": the destination runs past a registered range");
        if (r != nullptr && r->access == HostAccess::read_only)
            return fail(
                Status::invalid_argument,
                std::string(what) + ": the destination is host memory registered read-only (host_register)");
        if (async && r == nullptr)
            return fail(Status::invalid_argument,
                        std::string(what) +
                            ": the destination is not host memory registered read_write (host_register)");
        return Status::ok;
    }
    Status run_uploads() {
        for (; !uploads_.empty(); uploads_.pop_front()) {
            const Queued &q = uploads_.front();
            std::memcpy(q.dst, q.src, q.bytes);
        }
        return Status::ok;
    }
    Status copy(void *dst, const void *src, size_t bytes) {
        if ((!dst || !src) && bytes) return fail(Status::invalid_argument, "copy: null pointer");
        if (bytes) std::memcpy(dst, src, bytes);
        return Status::ok;
    }
    Status fail(Status s, std::string msg) {
        error_ = std::move(msg);
        return s;
    }
    std::string error_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
    return std::make_unique<CpuBackend>();
}

}  // namespace moerun::kernels
