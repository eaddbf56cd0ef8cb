// The forward pass on a kernels::Backend: the CUDA backend on a GPU machine; the CPU backend runs
// the same code in tests. The blocks are forward.cpp's; what differs:
//  - the dense weights are copied into the backend's memory once (with the mapped file known, the
//    pages of each uploaded matrix are dropped from host RAM), and the KV cache, the
//    workspaces and the expert slots are allocated there at start (nothing is allocated later);
//  - routing runs on the host over the downloaded router logits ([n, n_expert] floats a layer), so
//    the experts chosen are exactly the CPU pass's and the host knows which experts to bring in;
//  - experts live in cache::DeviceSlots; a miss is read through `experts` (host tier or mapped
//    file) and copied into a slot. The host tier is page-locked (CUDA); out of the expert cache an
//    expert is one transfer, and a host slot goes back to the cache only after the host has waited
//    for the copy out of it (SlotFiller, DeviceState::release_pending). Decode runs the token's
//    experts in one expert_ffn call; a batch runs each selected expert once over its tokens
//    (gathered rows), then combines the rows of every token in rank order;
//  - decode prefetch: once a layer's expert kernel is queued, a predictor (observing the routing)
//    names the likely experts of the next layer, and those not resident are copied into slots on
//    the backend's copy queue while the kernel runs; the next layer's kernels wait for the copies
//    of the experts they read and not for mispredicted ones, and a decode layer's demand copies
//    (compute queue) go beside the prefetch copies still running instead of after them.
//    What a prefetch changes is only where an expert comes from, never which experts run or how,
//    so results do not depend on it;
//  - exclusive tiers (decode, over the expert cache, ContextParams::exclusive_tiers): an expert
//    copied up leaves the host cache (its slot refilled only after the copy has run), and one
//    the slots evict (for a demand copy or a prefetch) is downloaded back into a host slot on the
//    copy queue before its device slot is refilled (DeviceState::evicted);
//  - CPU fallback (decode, cpu-fallback.h): misses the planner gives to the CPU are computed there
//    from host memory while the device runs the resident experts; every expert's output row then
//    goes through one combine_rows in rank order (bit-identical to expert_ffn's sum on the CPU
//    backend).
// Activations are token-major on the device: x is [n, n_embd].
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include "context-impl.h"
#include "moerun/cache/cpu-fallback.h"
#include "moerun/cache/device-slots.h"
#include "moerun/kernels/backend.h"
#include "moerun/kernels/cpu/device-order.h"
#include "moerun/predictor/predictor.h"
#include "moerun/runtime/gguf.h"

namespace moerun {

namespace {

// Logits rows computed per output pass (bounds the logits workspace: rows x n_vocab floats).
constexpr int64_t kLogitRows = 32;

// A weight matrix in the backend's memory: rows x cols of `type`.
struct DevMat {
    quant::Type type = quant::Type::F32;
    const void *w = nullptr;
    int64_t rows = 0, cols = 0;
};

}  // namespace

struct DeviceState {
    kernels::Backend &be;
    std::vector<void *> owned;  // freed at destruction
    uint64_t bytes = 0;         // allocated in be's memory (slots included)

    struct Layer {
        const float *attn_norm = nullptr, *ffn_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr;
        const float *bq = nullptr, *bk = nullptr, *bv = nullptr;
        DevMat wq, wk, wv, wo, router, gate_sh, up_sh, down_sh, gate_inp_sh;
    };
    std::vector<Layer> layers;
    const float *output_norm = nullptr;
    DevMat output;

    uint8_t *k_cache = nullptr, *v_cache = nullptr;  // [n_layer][n_head_kv, n_ctx, head_dim]
    size_t k_layer = 0, v_layer = 0;                 // bytes of one layer's cache
    // Workspaces for up to B tokens and R = B * top_k expert rows.
    float *x = nullptr, *h = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *att = nullptr;
    float *proj = nullptr, *router = nullptr, *acc = nullptr, *shg = nullptr, *shu = nullptr, *shd = nullptr;
    float *shgate = nullptr, *xin = nullptr, *g = nullptr, *u = nullptr, *d = nullptr, *ffn_scratch = nullptr;
    float *logits = nullptr;

    std::optional<cache::DeviceSlots> slots;
    std::vector<cache::SlotLayout> layout;  // [n_layer]

    // Decode prefetch (null when off), its outputs, and the host ranges page-locked for it.
    std::unique_ptr<predictor::Predictor> predictor;
    std::vector<uint16_t> pred_e;  // [2 * top_k]
    std::vector<float> pred_s;
    std::vector<const void *> registered;
    std::vector<uint16_t> host_pf;  // predicted experts to read into the host cache first

    // CPU fallback (null when off): the planner, its per-layer decision, and the copies into
    // slots counted at the start of the token.
    std::optional<cache::MissPlanner> planner;
    std::vector<uint8_t> to_cpu;  // [missing]
    uint64_t copies_mark = 0;
    std::vector<float> fb_g, fb_u;  // [n_ff] each: scratch of a CPU-computed miss

    // Host-side lists, reused.
    std::vector<int32_t> rows, comb_rows;
    std::vector<float> host_gate;
    std::vector<uint16_t> missing;
    std::vector<const void *> fg, fu, fd;  // [top_k] per rank (decode)
    std::vector<const void *> rg, ru, rd;  // a subset of ranks for expert_ffn
    std::vector<float> rw;
    std::vector<float> cpu_rows;  // [ranks on the CPU, n_embd]
    // Experts of layer pending_layer copied out of host cache slots and not handed back yet
    // (done), with the queue their copies went on (pending_async: the copy queue, else compute).
    std::vector<uint16_t> pending;
    uint32_t pending_layer = 0;
    bool pending_async = false;
    // Exclusive tiers (ContextParams::exclusive_tiers; null: off): the host cache the device slots
    // hand their evicted experts back to, while write_back is on (decode), by copies on the copy
    // queue where its slots are page-locked (host_cache_registered), else by waited downloads.
    cache::ExpertCache *exclusive = nullptr;
    bool write_back = false, host_cache_registered = false;
    uint64_t write_backs = 0, prefetch_write_backs = 0, released = 0;

    explicit DeviceState(kernels::Backend &b) : be(b) {}
    ~DeviceState() {
        (void)be.synchronize();  // no copy may still read registered host memory
        slots.reset();
        for (void *p : owned) be.free(p);
        for (const void *p : registered) (void)be.host_unregister(p);
    }

    void check(kernels::Status st, const char *what) const {
        if (st != kernels::Status::ok)
            throw std::runtime_error(std::string(what) + " on the " + std::string(be.name()) +
                                     " backend failed (" + std::string(kernels::status_name(st)) +
                                     "): " + be.last_error());
    }
    void *alloc(uint64_t n, const char *what) {
        void *p = be.alloc(static_cast<size_t>(n));
        if (p == nullptr)
            throw std::runtime_error("cannot allocate " + std::to_string(n) + " bytes for " + what +
                                     " on the " + std::string(be.name()) + " backend: " + be.last_error());
        owned.push_back(p);
        bytes += n;
        return p;
    }
    float *floats(int64_t n, const char *what) {
        return static_cast<float *>(
            alloc(static_cast<uint64_t>(std::max<int64_t>(n, 1)) * sizeof(float), what));
    }
    const float *vec(const std::vector<float> &host, const char *what) {
        if (host.empty()) return nullptr;
        float *p = floats(static_cast<int64_t>(host.size()), what);
        check(be.upload(p, host.data(), host.size() * sizeof(float)), what);
        return p;
    }
    // A dense matrix. With the mapped file known, it is read a chunk at a time (read ahead) and
    // each chunk's pages are dropped once uploaded: an upload from memory that is not registered
    // has read its source when it returns (Backend::upload). Dropping never changes what the
    // bytes read (the mapping is a read-only file), so a late reader would only fault them in.
    const gguf::GgufFile *file = nullptr;
    uint64_t dropped = 0;  // bytes of mapped pages dropped
    DevMat mat(const Weight &w, const char *what) {
        if (!w.present()) return {};
        const uint64_t n = w.row_bytes * static_cast<uint64_t>(w.ne[1]) * static_cast<uint64_t>(w.ne[2]);
        auto *p = static_cast<uint8_t *>(alloc(n, what));
        const uint64_t chunk = file != nullptr ? ContextParams::kUploadChunk : std::max<uint64_t>(n, 1);
        for (uint64_t off = 0; off < n; off += chunk) {
            const std::span<const uint8_t> part(w.data + off, static_cast<size_t>(std::min(chunk, n - off)));
            if (file != nullptr) file->advise_willneed(part);
            check(be.upload(p + off, part.data(), part.size()), what);
            if (file != nullptr) dropped += file->drop_pages(part);
        }
        return {w.type, p, w.ne[1], w.ne[0]};
    }
    // Decode: the device copy of expert e for every rank that selected it.
    void put(const std::vector<uint16_t> &sel, uint16_t e, const cache::ExpertView &w) {
        for (size_t j = 0; j < fg.size(); ++j)
            if (sel[j] == e) {
                fg[j] = w.gate;
                fu[j] = w.up;
                fd[j] = w.down;
            }
    }
    // Through the expert cache: copy-queue copies read host cache slots (prefetches) and write
    // them (exclusive tiers' write-backs, whose slots the cache holds meanwhile). A cache call that
    // may refill a slot (begin_layer, prefetch, done) comes after the host has waited for them,
    // and only then: a layer whose experts are all on the device does not wait for them at all.
    bool cache_copies = false;  // copies out of or into host cache slots issued, not waited for
    bool graphs = false;        // decode's dense parts as graphs (ContextParams::device_graphs)
    uint64_t graph_runs = 0;
    void settle_host_cache() {
        if (!cache_copies) return;
        check(be.wait_copies(), "waiting for the copies out of and into the host cache");
        cache_copies = false;
        if (exclusive != nullptr) exclusive->unhold_all();
    }
    // Hands the pending experts back to the host cache once the copies out of their slots have
    // run (a wait that costs nothing after a download, which drains the compute queue). Called
    // before the cache serves another layer, or when it has no ready expert left to hand out.
    // Their done() may issue queued reads into free slots, so the copy queue is settled first.
    void release_pending(ExpertSource &src) {
        settle_host_cache();
        if (pending.empty()) return;
        check(pending_async ? be.wait_copies() : be.wait_compute(),
              "waiting for the copies out of the host cache");
        for (const uint16_t e : pending) {
            src.done(pending_layer, e);
            if (!pending_async) leaves_host(pending_layer, e);  // a decode copy
        }
        pending.clear();
    }
    // Exclusive tiers: an expert copied up into a device slot lives there now.
    void leaves_host(uint32_t layer, uint16_t e) {
        if (exclusive != nullptr && exclusive->release(layer, e)) ++released;
    }
    // Exclusive tiers: the device slots evict `id`, for a demand copy or a prefetch; unless the
    // host cache has it, it goes back into a host cache slot (adopt) before its device slot is
    // refilled. With the host cache page-locked, by downloads on the copy queue (no host wait):
    //  - they follow every copy-queue copy issued before, among them any prefetch copy still
    //    reading the host slot the cache gives and the copy that filled the victim's slot (a
    //    compute-queue fill ran before this layer's router logits were downloaded);
    //  - a prefetch's refill follows on the same queue; a demand copy (compute queue) is made to
    //    wait for them (compute_wait_copy);
    //  - the cache holds the slot (no policy evicts it) until the host has waited for them
    //    (settle_host_cache), which it does before any cache call that may refill a slot; a
    //    prefetch copy out of it, queued later, may still hand it back (leaves_host).
    // Otherwise (CUDA could not page-lock it) by downloads the host waits for, after the copy
    // queue has run.
    static void evicted(void *ctx, cache::ExpertId id, const cache::ExpertView &dev, bool for_prefetch) {
        auto &D = *static_cast<DeviceState *>(ctx);
        const auto e = static_cast<uint16_t>(id.expert);
        if (!D.write_back || D.exclusive->resident(id.layer, e)) return;
        const bool async = D.host_cache_registered;
        if (!async) {
            D.cache_copies = true;  // the victim may still be filling on the copy queue
            D.settle_host_cache();
        }
        struct Back {
            DeviceState *D;
            const cache::ExpertView *dev;
            const cache::SlotLayout *lay;
            bool async;
        } back{&D, &dev, &D.layout[id.layer], async};
        const auto fill = [](void *c, uint8_t *gate, uint8_t *up, uint8_t *down) {
            const auto &b = *static_cast<Back *>(c);
            const uint8_t *src[3] = {b.dev->gate, b.dev->up, b.dev->down};
            uint8_t *dst[3] = {gate, up, down};
            const uint64_t n[3] = {b.lay->gate_bytes, b.lay->up_bytes, b.lay->down_bytes};
            for (int p = 0; p < 3; ++p)
                if (n[p] > 0)
                    b.D->check(b.async ? b.D->be.download_async(dst[p], src[p], static_cast<size_t>(n[p]))
                                       : b.D->be.download(dst[p], src[p], static_cast<size_t>(n[p])),
                               "copy of an evicted expert back to the host cache");
        };
        if (!D.exclusive->adopt(id.layer, e, fill, &back, async)) return;
        ++D.write_backs;
        if (for_prefetch) ++D.prefetch_write_backs;
        if (!async) return;
        D.cache_copies = true;
        if (!for_prefetch)
            D.check(D.be.compute_wait_copy(D.be.copies_issued()),
                    "ordering a demand copy after a write-back");
    }
    // Kernels queued from here on see the copies of the experts handed out since the slots'
    // end_layer(), and do not wait for other copies (prefetches for later layers).
    void wait_slots() { check(be.compute_wait_copy(slots->ready_after()), "waiting for the expert copies"); }
    // y[n, rows] = x[n, cols] . W^T
    void matmul(const DevMat &m, const float *xin_, float *y, int64_t n, const char *what) {
        check(be.matmul(m.type, m.w, xin_, y, m.rows, m.cols, n), what);
    }
};

namespace {

// Copies of a layer's misses out of the host tier (`src`) into device slots. A demand copy goes on
// the compute queue (load()), where the kernels that read it follow, and never behind the
// prefetch copies on the copy queue: demand misses pass mispredicted prefetches. A batch through
// the expert cache is the exception: its copies go on the copy queue (load_async()), so that one
// expert's copy runs beside the products of the one before.
// From the mapped file (which never changes), the host copy is handed back at once. Through the
// expert cache, whose slots later reads refill, an expert is handed back (done) only after the
// host has waited for the copy out of its slot (DeviceState::release_pending): when the cache has
// no ready expert left to hand out (so a batch that streams through a small cache still makes
// progress), or before the cache serves another layer. The host does not wait for the copies of a
// decode layer before queuing its kernels.
struct SlotFiller {
    DeviceState &D;
    ExpertSource &src;
    uint32_t il;
    bool each;  // a batch: use() queues kernels at once

    bool queued() const { return src.cache() != nullptr; }
    // Starts serving the layer's missing experts: the host tier may refill slots from here on, so
    // the copies still reading its slots are waited for first.
    void begin(std::span<const uint16_t> missing) {
        D.release_pending(src);  // settles the copy queue first
        src.begin_layer(il, missing);
    }
    // The next ready expert; blocks on reads only after handing back what was copied so far.
    std::optional<uint16_t> next() {
        if (D.pending.empty()) return src.next();
        if (const auto e = src.try_next()) return e;
        if (D.slots->batching()) {  // issue the copies noted so far before waiting for them
            D.slots->end_batch();
            D.slots->begin_batch();
        }
        D.release_pending(src);
        return src.next();
    }
    cache::ExpertView load(uint16_t e, const cache::SlotLayout &layout) {
        if (!queued() || !each) return D.slots->load({il, e}, src.view(il, e), layout);
        // A batch unpins each expert once its products are queued, so the victim slot may still
        // be read by kernels queued before: the copy waits for them.
        D.check(D.be.copies_wait_compute(), "ordering the copy queue after compute");
        return D.slots->load_async({il, e}, src.view(il, e), layout);
    }
    // The host copy of a loaded expert goes back once the copy from it has run.
    void loaded(uint16_t e) {
        if (!queued()) return src.done(il, e);
        D.pending.push_back(e);
        D.pending_layer = il;
        D.pending_async = each;
    }
};

// Brings the layer's missing experts into device slots in the order the host tier has them
// ready, and hands each device copy to use(expert, view). `each`: use() queues kernels at once
// (a batch); else (decode) use() only notes the copy. Whoever queues kernels on the copies
// waits for them first (DeviceState::wait_slots).
template <class Use>
void copy_in(DeviceState &D, ExpertSource &src, uint32_t il, std::span<const uint16_t> missing,
             const cache::SlotLayout &layout, bool each, Use &&use) {
    if (missing.empty()) return;
    SlotFiller f{D, src, il, each};
    f.begin(missing);
    // Decode: the layer's copies in one call (from the mapped file three tensors an expert, from
    // the cache one span), or one call per group of experts the cache had ready together.
    const bool batch = !each;
    if (batch) D.slots->begin_batch();
    try {
        while (const auto e = f.next()) {
            const cache::ExpertView w = f.load(*e, layout);
            use(*e, w);
            f.loaded(*e);
        }
    } catch (...) {
        if (batch) D.slots->end_batch();
        throw;
    }
    if (batch) D.slots->end_batch();
}

// Issues a layer's dense part (kernels only). In decode with graphs on, it is recorded and run as
// the layer's graph (the backend updates the one of the last token in place). Where the backend
// has no graphs (CPU) or cannot make this one, nothing has run: it is issued directly, as it is
// from then on.
template <class Issue>
void run_dense(DeviceState &D, uint32_t il, int64_t n, Issue &&issue) {
    if (D.graphs && n == 1) {
        if (D.be.begin_graph() == kernels::Status::ok) {
            try {
                issue();
            } catch (...) {
                (void)D.be.discard_graph();
                throw;
            }
            if (D.be.end_graph(il) == kernels::Status::ok) {
                ++D.graph_runs;
                return;
            }
        }
        D.graphs = false;
    }
    issue();
}

}  // namespace

void DeviceStateDeleter::operator()(DeviceState *d) const {
    delete d;
}

// Page-locks the mapped expert tensors so that copies from them (demand and prefetch) run without
// staging (CUDA; the CPU backend only remembers them, see Backend::upload). The ranges are the
// stacked expert tensors, widened to whole pages and merged; a range the backend refuses is
// skipped (its copies are staged, still correct).
void Context::Impl::register_experts(DeviceState &D) {
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [begin, end) addresses
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        const LayerWeights &L = model.layer(il);
        for (const Weight *w : {&L.gate_exps, &L.up_exps, &L.down_exps}) {
            if (!w->present()) continue;
            const uint64_t b = reinterpret_cast<uint64_t>(w->data);
            const uint64_t n =
                w->row_bytes * static_cast<uint64_t>(w->ne[1]) * static_cast<uint64_t>(w->ne[2]);
            ranges.emplace_back(b / page * page, (b + n + page - 1) / page * page);
        }
    }
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<uint64_t, uint64_t>> merged;
    for (const auto &r : ranges)
        if (!merged.empty() && r.first <= merged.back().second)
            merged.back().second = std::max(merged.back().second, r.second);
        else
            merged.push_back(r);
    for (const auto &[b, e] : merged) {
        const void *p = reinterpret_cast<const void *>(b);
        if (D.be.host_register(p, static_cast<size_t>(e - b), kernels::Backend::HostAccess::read_only) !=
            kernels::Status::ok)
            continue;
        D.registered.push_back(p);
        stats.host_registered_bytes += e - b;
    }
}

// Page-locks the expert cache's slots (the pinned host tier): copies out of them then run on the
// copy engine straight from host RAM, at full link speed and beside the kernels; the device pass
// hands a slot back to the cache only after waiting for the copies out of it
// (DeviceState::release_pending). Writable: exclusive tiers download evicted experts into it.
// The CPU backend only remembers the range (Backend::upload).
void Context::Impl::register_host_cache(DeviceState &D, const cache::ExpertCache &c) {
    const std::span<const uint8_t> a = c.arena();
    if (a.empty() || D.be.host_register(a.data(), a.size(), kernels::Backend::HostAccess::read_write) !=
                         kernels::Status::ok)
        return;
    D.host_cache_registered = true;
    D.registered.push_back(a.data());
    stats.host_registered_bytes += a.size();
}

// The cost model's bandwidths, measured on layer 0's expert 0 (read through `experts`, whose
// statistics are then cleared).
cache::TierBandwidths Context::Impl::measure_fallback(DeviceState &D) {
    const LayerWeights &L = model.layer(0);
    cache::ExpertSample smp{
        L.gate_exps.type, L.up_exps.type, L.down_exps.type, hp.n_embd, hp.n_ff_exp, D.layout[0], {}, {}};
    smp.bytes.assign(static_cast<size_t>(smp.layout.bytes()), 0);
    const uint16_t first[] = {0};
    experts->begin_layer(0, first);
    while (const auto e = experts->next()) {
        const cache::ExpertView w = experts->view(0, *e);
        std::copy_n(w.gate, smp.layout.gate_bytes, smp.bytes.data());
        std::copy_n(w.up, smp.layout.up_bytes, smp.bytes.data() + smp.layout.up_offset());
        std::copy_n(w.down, smp.layout.down_bytes, smp.bytes.data() + smp.layout.down_offset());
        experts->done(0, *e);
    }
    if (cache::ExpertCache *c = experts->cache()) {
        c->reset_stats();
    } else {
        // Read in place: time the CPU over up to 16 distinct experts of the layer (tens of MiB,
        // beyond the CPU's caches, as decode meets them).
        const uint32_t n = std::min<uint32_t>(16, hp.n_expert);
        for (uint16_t e = 0; e < n; ++e) smp.cpu_views.push_back(experts->view(0, e));
    }
    const cache::TierBandwidths bw = cache::measure_tiers(D.be, pool, smp, D.h, D.acc, D.ffn_scratch);
    stats.fallback_h2d = bw.h2d;
    stats.fallback_cpu = bw.cpu;
    stats.fallback_device = bw.gpu;
    return bw;
}

void Context::Impl::init_device() {
    kernels::Backend &be = *params.backend;
    dev.reset(new DeviceState(be));
    DeviceState &D = *dev;
    D.graphs = params.device_graphs;
    D.file = params.weights_file;
    const int64_t E = hp.n_embd, hd = hp.head_dim, nq = int64_t{hp.n_head} * hd,
                  nkv = int64_t{hp.n_head_kv} * hd;
    const int64_t X = hp.n_expert, K = hp.n_expert_used, F = hp.n_ff_exp, S = hp.n_ff_shexp;
    // Longer evals are split into batches the backend can hold (eval reads params.n_batch).
    params.n_batch = static_cast<uint32_t>(std::clamp<int64_t>(params.n_batch, 1, be.max_batch_tokens()));
    const int64_t B = params.n_batch, R = B * K;

    // Dense weights, resident.
    D.layers.resize(hp.n_layer);
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        const LayerWeights &L = model.layer(il);
        DeviceState::Layer &DL = D.layers[il];
        DL.attn_norm = D.vec(L.attn_norm, "attn_norm");
        DL.ffn_norm = D.vec(L.ffn_norm, "ffn_norm");
        DL.q_norm = D.vec(L.q_norm, "attn_q_norm");
        DL.k_norm = D.vec(L.k_norm, "attn_k_norm");
        DL.bq = D.vec(L.bq, "attn_q bias");
        DL.bk = D.vec(L.bk, "attn_k bias");
        DL.bv = D.vec(L.bv, "attn_v bias");
        DL.wq = D.mat(L.wq, "attn_q");
        DL.wk = D.mat(L.wk, "attn_k");
        DL.wv = D.mat(L.wv, "attn_v");
        DL.wo = D.mat(L.wo, "attn_output");
        DL.router = D.mat(L.gate_inp, "ffn_gate_inp");
        DL.gate_sh = D.mat(L.gate_shexp, "ffn_gate_shexp");
        DL.up_sh = D.mat(L.up_shexp, "ffn_up_shexp");
        DL.down_sh = D.mat(L.down_shexp, "ffn_down_shexp");
        DL.gate_inp_sh = D.mat(L.gate_inp_shexp, "ffn_gate_inp_shexp");
    }
    D.output_norm = D.vec(model.output_norm(), "output_norm");
    D.output = D.mat(model.output(), "output");
    stats.host_dropped_bytes = D.dropped;

    // KV cache and workspaces.
    D.k_layer = static_cast<size_t>(params.n_ctx) * static_cast<size_t>(nkv) * k_elt;
    D.v_layer = static_cast<size_t>(params.n_ctx) * static_cast<size_t>(nkv) * v_elt;
    D.k_cache = static_cast<uint8_t *>(D.alloc(uint64_t{hp.n_layer} * D.k_layer, "the K cache"));
    D.v_cache = static_cast<uint8_t *>(D.alloc(uint64_t{hp.n_layer} * D.v_layer, "the V cache"));
    D.x = D.floats(B * E, "workspace x");
    D.h = D.floats(B * E, "workspace h");
    D.q = D.floats(B * nq, "workspace q");
    D.k = D.floats(B * nkv, "workspace k");
    D.v = D.floats(B * nkv, "workspace v");
    D.att = D.floats(B * nq, "workspace attention");
    D.proj = D.floats(B * E, "workspace proj");
    D.router = D.floats(B * X, "workspace router");
    D.acc = D.floats(B * E, "workspace acc");
    if (model.arch().shared_expert) {
        D.shg = D.floats(B * S, "workspace shared gate");
        D.shu = D.floats(B * S, "workspace shared up");
        D.shd = D.floats(B * E, "workspace shared down");
        D.shgate = D.floats(B, "workspace shared expert gate");
    }
    D.xin = D.floats(R * E, "workspace expert rows");
    D.g = D.floats(R * F, "workspace expert gate");
    D.u = D.floats(R * F, "workspace expert up");
    D.d = D.floats(R * E, "workspace expert down");
    D.ffn_scratch = D.floats(2 * K * F + K * E, "workspace expert_ffn");
    D.logits = D.floats(std::min(B, kLogitRows) * int64_t{hp.n_vocab}, "workspace logits");
    D.check(be.reserve_rows(R), "staging for row indices");  // so that no pass allocates
    D.bytes += be.workspace_bytes();  // the backend's own (prefill GEMM tiles, staging)

    // Expert slots: what is left of device_mem, or device_slots, or one per expert.
    D.layout.resize(hp.n_layer);
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        const LayerWeights &L = model.layer(il);
        D.layout[il] = {L.gate_exps.expert_bytes(), L.up_exps.expert_bytes(), L.down_exps.expert_bytes()};
    }
    // Through the expert cache, a slot also holds a host cache slot's whole span (one transfer).
    cache::ExpertCache *host_cache = experts->cache();
    const uint64_t slot_bytes =
        std::max(cache::slot_bytes_for(D.layout), host_cache != nullptr ? host_cache->slot_size() : 0);
    D.pending.reserve(static_cast<size_t>(X));
    const uint64_t total = uint64_t{hp.n_layer} * static_cast<uint64_t>(X);
    const cache::FallbackMode fallback = cache::parse_fallback(params.cpu_fallback);
    cache::TierBandwidths bw;
    if (fallback == cache::FallbackMode::automatic)
        bw = measure_fallback(D);  // before the slots: its buffer is freed
    uint64_t n_slots = total;
    if (params.device_slots > 0) {
        n_slots = std::min<uint64_t>(params.device_slots, total);
    } else if (params.device_mem > 0) {
        const uint64_t left = params.device_mem > D.bytes ? params.device_mem - D.bytes : 0;
        n_slots = std::min(total, left / slot_bytes);
        if (n_slots < static_cast<uint64_t>(K))
            throw std::invalid_argument(
                "device memory " + std::to_string(params.device_mem >> 20) +
                " MiB holds the dense weights, KV cache and workspaces (" + std::to_string(D.bytes >> 20) +
                " MiB) but not " + std::to_string(K) + " expert slots of " +
                std::to_string(slot_bytes >> 10) + " KiB; at least " +
                std::to_string((D.bytes + static_cast<uint64_t>(K) * slot_bytes + (1 << 20) - 1) >> 20) +
                " MiB are needed");
    }
    if (n_slots < static_cast<uint64_t>(K))
        throw std::invalid_argument("device slots: " + std::to_string(n_slots) + " slots cannot hold the " +
                                    std::to_string(K) + " experts a token uses");
    D.slots.emplace(be, static_cast<uint32_t>(n_slots), slot_bytes, params.device_policy,
                    cache::PolicyParams{.n_layers = hp.n_layer,
                                        .n_experts = static_cast<uint32_t>(X),
                                        .top_k = static_cast<uint32_t>(K)});
    D.bytes += D.slots->slot_bytes() * n_slots;
    if (params.exclusive_tiers && host_cache != nullptr && n_slots < total) {
        D.exclusive = host_cache;
        D.slots->on_evict(&DeviceState::evicted, &D);
    }
    if (!params.device_prefetch.empty() && n_slots < total) {
        predictor::PredictorParams qp;
        qp.max_distance = 1;
        D.predictor = predictor::make_predictor(
            params.device_prefetch, {hp.n_layer, static_cast<uint32_t>(X), static_cast<uint32_t>(K)}, qp);
        D.pred_e.resize(static_cast<size_t>(2 * K));
        D.pred_s.resize(static_cast<size_t>(2 * K));
        D.host_pf.reserve(static_cast<size_t>(2 * K));
    }
    // Page-lock the host tier the slots are filled from (demand copies and prefetches).
    if (n_slots < total) {
        if (host_cache != nullptr)
            register_host_cache(D, *host_cache);
        else
            register_experts(D);
    }
    if (fallback != cache::FallbackMode::off && n_slots < total) {
        D.planner.emplace(fallback, bw, hp.n_layer, static_cast<uint32_t>(X), static_cast<uint32_t>(n_slots));
        if (be.host_math() == kernels::Backend::HostMath::device_order) {
            for (uint32_t il = 0; il < hp.n_layer; ++il) {  // a model's layers may mix types
                const LayerWeights &L = model.layer(il);
                for (const quant::Type t : {L.gate_exps.type, L.up_exps.type, L.down_exps.type})
                    if (!kernels::cpu::device_order_supported(t))
                        throw std::invalid_argument(
                            "cpu fallback: the " + std::string(be.name()) +
                            " backend's expert rows cannot be computed on the CPU for " +
                            std::string(quant::type_name(t)) + " weights (layer " + std::to_string(il) + ")");
            }
        }
        D.fb_g.resize(static_cast<size_t>(hp.n_ff_exp));
        D.fb_u.resize(static_cast<size_t>(hp.n_ff_exp));
    }
    if (n_slots == total) {
        // Every expert fits: copy them all in now, as a fully offloaded llama.cpp model loads,
        // rather than on first use during generation.
        std::vector<uint16_t> all(static_cast<size_t>(X));
        for (int64_t e = 0; e < X; ++e) all[static_cast<size_t>(e)] = static_cast<uint16_t>(e);
        for (uint32_t il = 0; il < hp.n_layer; ++il) {
            copy_in(D, *experts, il, all, D.layout[il], false, [](uint16_t, const cache::ExpertView &) {});
            D.slots->end_layer();
        }
        D.check(be.synchronize(), "synchronize after copying the experts in");
        D.release_pending(*experts);
    }
    stats.device_bytes = D.bytes;
    stats.device_slots = static_cast<uint32_t>(n_slots);
}

void Context::Impl::eval_batch_device(std::span<const int32_t> tokens, int64_t n_out, float *out) {
    DeviceState &D = *dev;
    kernels::Backend &be = D.be;
    const int64_t n = static_cast<int64_t>(tokens.size());
    const int64_t E = hp.n_embd, hd = hp.head_dim, nh = hp.n_head, nkvh = hp.n_head_kv;
    const int64_t nq = nh * hd, nkv = nkvh * hd, X = hp.n_expert, K = hp.n_expert_used, F = hp.n_ff_exp;
    const float eps = hp.rms_eps;
    D.check(be.upload(D.x, x.data(), static_cast<size_t>(n * E) * sizeof(float)), "upload of the embeddings");
    router.resize(static_cast<size_t>(n * X));
    D.write_back = D.exclusive != nullptr && n == 1;

    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        poll_abort_in_batch(n, il);  // between layers: no slot is pinned, the queued kernels may finish
        const DeviceState::Layer &L = D.layers[il];
        // Attention, then the router logits: the dense part, the same kernels for every token
        // (a CUDA graph per layer in decode with --device-graphs; see run_dense).
        const auto dense = [&] {
            D.check(be.rms_norm(D.x, L.attn_norm, D.h, n, E, eps), "attn_norm");
            D.matmul(L.wq, D.h, D.q, n, "attn_q");
            D.matmul(L.wk, D.h, D.k, n, "attn_k");
            D.matmul(L.wv, D.h, D.v, n, "attn_v");
            if (L.bq) D.check(be.add_bias(D.q, L.bq, n, nq), "attn_q bias");
            if (L.bk) D.check(be.add_bias(D.k, L.bk, n, nkv), "attn_k bias");
            if (L.bv) D.check(be.add_bias(D.v, L.bv, n, nkv), "attn_v bias");
            if (model.arch().qk_norm == QkNorm::full) {
                D.check(be.rms_norm(D.q, L.q_norm, D.q, n, nq, eps), "attn_q_norm");
                D.check(be.rms_norm(D.k, L.k_norm, D.k, n, nkv, eps), "attn_k_norm");
            } else if (model.arch().qk_norm == QkNorm::per_head) {
                D.check(be.rms_norm(D.q, L.q_norm, D.q, n * nh, hd, eps), "attn_q_norm");
                D.check(be.rms_norm(D.k, L.k_norm, D.k, n * nkvh, hd, eps), "attn_k_norm");
            }
            const bool neox = model.arch().rope == RopeMode::neox;
            D.check(be.rope(D.q, n, static_cast<int>(nh), static_cast<int>(hd), static_cast<int>(hp.n_rot),
                            n_past, hp.rope_freq_base, neox, hp.rope),
                    "rope q");
            D.check(be.rope(D.k, n, static_cast<int>(nkvh), static_cast<int>(hd), static_cast<int>(hp.n_rot),
                            n_past, hp.rope_freq_base, neox, hp.rope),
                    "rope k");
            uint8_t *kc = D.k_cache + il * D.k_layer, *vc = D.v_cache + il * D.v_layer;
            D.check(be.kv_store(D.k, n, static_cast<int>(nkvh), static_cast<int>(hd), params.type_k, kc,
                                params.n_ctx, n_past),
                    "K cache store");
            D.check(be.kv_store(D.v, n, static_cast<int>(nkvh), static_cast<int>(hd), params.type_v, vc,
                                params.n_ctx, n_past),
                    "V cache store");
            const kernels::Backend::Attention a{kc,
                                                vc,
                                                params.type_k,
                                                params.type_v,
                                                params.n_ctx,
                                                n,
                                                n_past,
                                                static_cast<int>(nh),
                                                static_cast<int>(nkvh),
                                                static_cast<int>(hd),
                                                1.0f / std::sqrt(static_cast<float>(hd))};
            D.check(be.attention(a, D.q, D.att), "attention");
            D.matmul(L.wo, D.att, D.proj, n, "attn_output");
            D.check(be.add(D.x, D.proj, n * E), "attention residual");

            // Router logits (on the device); routing is on the host, below.
            D.check(be.rms_norm(D.x, L.ffn_norm, D.h, n, E, eps), "ffn_norm");
            D.matmul(L.router, D.h, D.router, n, "ffn_gate_inp");
        };
        run_dense(D, il, n, dense);
        D.check(be.download(router.data(), D.router, router.size() * sizeof(float)),
                "download of the router logits");
        route(il, n);

        // Experts.
        const LayerWeights &HL = model.layer(il);
        cache::DeviceSlots &slots = *D.slots;
        const cache::SlotLayout &lay = D.layout[il];
        const uint64_t now = route_step * hp.n_layer + il;
        slots.begin_layer(now);
        if (D.predictor) {
            // Prefetch copies issued from here on overwrite only unpinned slots, which no kernel
            // issued before this point reads any more. This layer's kernels wait only for the
            // prefetch copies they read (wait_slots), so kernels and demand copies are not held
            // up by mispredicted ones (a demand read into the host cache is: settle_host_cache).
            D.check(be.copies_wait_compute(), "ordering the copy queue after compute");
        }
        for (auto &list : by_expert) list.clear();
        for (int64_t i = 0; i < n * K; ++i) by_expert[sel_e[static_cast<size_t>(i)]].push_back(i);
        if (n == 1) {
            // Decode: every expert of the token resident at once, then one expert_ffn call (or,
            // with misses on the CPU, decode_with_fallback).
            D.fg.assign(static_cast<size_t>(K), nullptr);
            D.fu.assign(static_cast<size_t>(K), nullptr);
            D.fd.assign(static_cast<size_t>(K), nullptr);
            const auto put = [&](uint16_t e, const cache::ExpertView &w) { D.put(sel_e, e, w); };
            D.missing.clear();
            for (int64_t j = 0; j < K; ++j) {
                const uint16_t e = sel_e[static_cast<size_t>(j)];
                if (std::find(sel_e.begin(), sel_e.begin() + j, e) != sel_e.begin() + j)
                    continue;  // listed twice
                if (const auto w = slots.find({il, e}))
                    put(e, *w);
                else
                    D.missing.push_back(e);
            }
            bool fallback = false;
            if (D.planner) {
                if (il == 0) D.copies_mark = slots.stats().misses + slots.stats().prefetch_issued;
                D.planner->observe(il, std::span<const uint16_t>(sel_e.data(), static_cast<size_t>(K)));
                const uint64_t eb = lay.gate_bytes + lay.up_bytes + lay.down_bytes;
                D.planner->plan(il, D.missing, eb, eb * (static_cast<uint64_t>(K) - D.missing.size()),
                                D.to_cpu);
                fallback = std::find(D.to_cpu.begin(), D.to_cpu.end(), 1) != D.to_cpu.end();
            }
            if (fallback) {
                decode_with_fallback(il);
            } else {
                copy_in(D, *experts, il, D.missing, lay, false, put);
                D.wait_slots();
                const kernels::Backend::ExpertFfn f{
                    HL.gate_exps.type, HL.up_exps.type, HL.down_exps.type,   D.fg.data(), D.fu.data(),
                    D.fd.data(),       sel_w.data(),    static_cast<int>(K), E,           F};
                D.check(be.expert_ffn(f, D.h, D.acc, D.ffn_scratch), "expert_ffn");
            }
            if (D.predictor) prefetch_next(il, now);
            slots.end_layer();
            if (D.planner && il + 1 == hp.n_layer) {
                const uint64_t copies = slots.stats().misses + slots.stats().prefetch_issued;
                D.planner->end_token(copies - D.copies_mark);
                D.copies_mark = copies;
            }
        } else {
            // A batch: the rows of every (token, rank) pair, grouped by expert, in one gather;
            // each expert then runs once over its rows; combine_rows sums each token's rows in
            // rank order.
            D.rows.clear();
            D.comb_rows.assign(static_cast<size_t>(n * K), 0);
            for (int64_t e = 0; e < X; ++e)
                for (const int64_t i : by_expert[static_cast<size_t>(e)]) {
                    D.comb_rows[static_cast<size_t>(i)] = static_cast<int32_t>(D.rows.size());
                    D.rows.push_back(static_cast<int32_t>(i / K));
                }
            idx.assign(static_cast<size_t>(X), 0);  // first row of each expert
            for (int64_t e = 0, r = 0; e < X; ++e) {
                idx[static_cast<size_t>(e)] = r;
                r += static_cast<int64_t>(by_expert[static_cast<size_t>(e)].size());
            }
            D.check(be.gather_rows(D.h, D.rows.data(), n * K, E, D.xin), "gather of the expert rows");
            const auto run = [&](uint16_t e, const cache::ExpertView &w) {
                const int64_t r0 = idx[e], m = static_cast<int64_t>(by_expert[e].size());
                D.wait_slots();
                D.check(be.matmul(HL.gate_exps.type, w.gate, D.xin + r0 * E, D.g + r0 * F, F, E, m),
                        "ffn_gate_exps");
                D.check(be.matmul(HL.up_exps.type, w.up, D.xin + r0 * E, D.u + r0 * F, F, E, m),
                        "ffn_up_exps");
                D.check(be.swiglu(D.g + r0 * F, D.u + r0 * F, D.g + r0 * F, m * F), "swiglu");
                D.check(be.matmul(HL.down_exps.type, w.down, D.g + r0 * F, D.d + r0 * E, E, F, m),
                        "ffn_down_exps");
                slots.end_layer();  // later copies on the backend's stream run after these products
            };
            D.missing.clear();
            for (int64_t e = 0; e < X; ++e) {
                if (by_expert[static_cast<size_t>(e)].empty()) continue;
                const uint16_t ex = static_cast<uint16_t>(e);
                if (const auto w = slots.find({il, ex}))
                    run(ex, *w);
                else
                    D.missing.push_back(ex);
            }
            copy_in(D, *experts, il, D.missing, lay, true, run);
            D.check(be.combine_rows(D.d, D.comb_rows.data(), sel_w.data(), n, static_cast<int>(K), E, D.acc,
                                    false),
                    "combine of the expert rows");
        }

        if (model.arch().shared_expert) {
            const int64_t S = hp.n_ff_shexp;
            D.matmul(L.gate_sh, D.h, D.shg, n, "ffn_gate_shexp");
            D.matmul(L.up_sh, D.h, D.shu, n, "ffn_up_shexp");
            D.check(be.swiglu(D.shg, D.shu, D.shg, n * S), "swiglu (shared expert)");
            D.matmul(L.down_sh, D.shg, D.shd, n, "ffn_down_shexp");
            D.host_gate.resize(static_cast<size_t>(n));
            D.matmul(L.gate_inp_sh, D.h, D.shgate, n, "ffn_gate_inp_shexp");
            D.check(be.download(D.host_gate.data(), D.shgate, static_cast<size_t>(n) * sizeof(float)),
                    "download of the shared expert gate");
            for (float &s : D.host_gate) s = 1.0f / (1.0f + std::exp(-s));
            D.rows.resize(static_cast<size_t>(n));
            for (int64_t t = 0; t < n; ++t) D.rows[static_cast<size_t>(t)] = static_cast<int32_t>(t);
            D.check(be.combine_rows(D.shd, D.rows.data(), D.host_gate.data(), n, 1, E, D.acc, true),
                    "shared expert sum");
        }
        D.check(be.add(D.x, D.acc, n * E), "expert residual");
    }

    // Output: the last n_out tokens, kLogitRows at a time.
    const int64_t V = hp.n_vocab;
    for (int64_t t0 = n - n_out; t0 < n; t0 += kLogitRows) {
        const int64_t m = std::min(kLogitRows, n - t0);
        D.check(be.rms_norm(D.x + t0 * E, D.output_norm, D.h, m, E, eps), "output_norm");
        D.matmul(D.output, D.h, D.logits, m, "output");
        D.check(
            be.download(out + (t0 - (n - n_out)) * V, D.logits, static_cast<size_t>(m * V) * sizeof(float)),
            "download of the logits");
    }
    D.check(be.synchronize(), "synchronize");
    D.release_pending(*experts);  // no wait: the queues are drained
    const cache::DeviceSlotStats &ss = D.slots->stats();
    stats.slot_hits = ss.hits;
    stats.slot_misses = ss.misses;
    stats.slot_bytes_uploaded = ss.bytes_uploaded;
    stats.slot_transfers = ss.transfers;
    stats.slot_batched_transfers = ss.batched;
    stats.slot_batches = ss.batches;
    stats.device_graph_runs = D.graph_runs;
    stats.slot_prefetches = ss.prefetch_issued;
    stats.slot_prefetch_used = ss.prefetch_used;
    stats.slot_prefetch_wasted = ss.prefetch_wasted;
    stats.slot_write_backs = D.write_backs;
    stats.slot_prefetch_write_backs = D.prefetch_write_backs;
    stats.host_released = D.released;
}

// Decode of one layer with some misses on the CPU (D.to_cpu, in D.missing's order). The device
// runs the resident experts first (queued before the host computes anything), the host brings
// in the misses, copying some into slots and computing the others on its cores meanwhile, the
// device runs the copied ones, and the CPU rows are uploaded after them. D.d collects every
// rank's unweighted output row; one combine_rows sums them in rank order into D.acc.
void Context::Impl::decode_with_fallback(uint32_t il) {
    DeviceState &D = *dev;
    kernels::Backend &be = D.be;
    const int64_t E = hp.n_embd, K = hp.n_expert_used;
    const LayerWeights &HL = model.layer(il);
    D.comb_rows.assign(static_cast<size_t>(K), -1);
    int32_t rows = 0;
    // The ranks whose device copy is known and that have no row yet, in one expert_ffn.
    const auto run_on_device = [&] {
        D.rg.clear(), D.ru.clear(), D.rd.clear(), D.rw.clear();
        const int32_t first = rows;
        for (int64_t j = 0; j < K; ++j) {
            const size_t r = static_cast<size_t>(j);
            if (D.fg[r] == nullptr || D.comb_rows[r] >= 0) continue;
            D.rg.push_back(D.fg[r]), D.ru.push_back(D.fu[r]), D.rd.push_back(D.fd[r]),
                D.rw.push_back(sel_w[r]);
            D.comb_rows[r] = rows++;
        }
        if (rows == first) return;
        D.wait_slots();
        kernels::Backend::ExpertFfn f{
            HL.gate_exps.type, HL.up_exps.type, HL.down_exps.type, D.rg.data(), D.ru.data(),
            D.rd.data(),       D.rw.data(),     rows - first,      E,           hp.n_ff_exp};
        f.rows_out = D.d + int64_t{first} * E;
        D.check(be.expert_ffn(f, D.h, nullptr, D.ffn_scratch), "expert_ffn (resident experts)");
    };
    // The expert input first: a download waits for the compute queue, which must not hold the
    // resident experts yet (the host computes its misses while the device runs those).
    h.resize(static_cast<size_t>(E));
    D.check(be.download(h.data(), D.h, static_cast<size_t>(E) * sizeof(float)),
            "download of the expert input (CPU fallback)");
    run_on_device();
    y.resize(static_cast<size_t>(K * E));
    SlotFiller f{D, *experts, il, false};
    f.begin(D.missing);
    while (const auto e = f.next()) {
        const size_t i =
            static_cast<size_t>(std::find(D.missing.begin(), D.missing.end(), *e) - D.missing.begin());
        if (D.to_cpu[i] != 0) {
            // The row as the backend computes it (Backend::host_math); one token: every rank of
            // *e has the same row.
            const cache::ExpertView w = experts->view(il, *e);
            const kernels::cpu::HostExpert he{
                HL.gate_exps.type, HL.up_exps.type, HL.down_exps.type, w.gate, w.up, w.down, E, hp.n_ff_exp};
            const auto &ranks = by_expert[*e];
            float *row = &y[static_cast<size_t>(ranks[0] * E)];
            kernels::cpu::host_expert_row(pool, be.host_math(), he, h.data(), D.fb_g.data(), D.fb_u.data(),
                                          row);
            for (size_t r = 1; r < ranks.size(); ++r)
                std::copy_n(row, E, &y[static_cast<size_t>(ranks[r] * E)]);
            ++stats.slot_cpu_misses;
            experts->done(il, *e);
        } else {
            D.put(sel_e, *e, f.load(*e, D.layout[il]));
            f.loaded(*e);
        }
    }
    run_on_device();

    D.cpu_rows.clear();
    const int32_t first_cpu = rows;
    for (int64_t j = 0; j < K; ++j)
        if (D.comb_rows[static_cast<size_t>(j)] < 0) {
            D.cpu_rows.insert(D.cpu_rows.end(), y.begin() + j * E, y.begin() + (j + 1) * E);
            D.comb_rows[static_cast<size_t>(j)] = rows++;
        }
    D.check(be.upload(D.d + int64_t{first_cpu} * E, D.cpu_rows.data(), D.cpu_rows.size() * sizeof(float)),
            "upload of the CPU-computed expert rows");
    D.check(be.combine_rows(D.d, D.comb_rows.data(), sel_w.data(), 1, static_cast<int>(K), E, D.acc, false),
            "combine of the expert rows");
}

// After layer il's expert kernel of one token is queued: the predictor learns layer il's
// selection and names the next position's likely experts (the next layer, or layer 0 of the next
// token); those not resident are copied into slots on the copy queue, pinned for that layer.
// Through the expert cache: those not in host memory either are first queued as NVMe prefetch
// reads (they arrive for a later use, or as late hits), and only experts already read are copied;
// no cache call that reads is made before the host has waited for these copies (settle_host_cache).
void Context::Impl::prefetch_next(uint32_t il, uint64_t now) {
    DeviceState &D = *dev;
    const int64_t K = hp.n_expert_used;
    D.predictor->observe(il, std::span<const uint16_t>(sel_e.data(), static_cast<size_t>(K)));
    const size_t n =
        predictor::predict_likely(*D.predictor, 1, predictor::kPrefetchMinScore, D.pred_e, D.pred_s);
    const uint32_t tl = D.predictor->target_layer(1);
    const cache::ExpertCache *host = experts->cache();
    if (host != nullptr) {
        D.host_pf.clear();
        for (size_t i = 0; i < n; ++i)
            if (!D.slots->resident({tl, D.pred_e[i]}) && !host->resident(tl, D.pred_e[i]))
                D.host_pf.push_back(D.pred_e[i]);
        if (!D.host_pf.empty()) {
            D.settle_host_cache();
            experts->prefetch(tl, D.host_pf);
        }
    }
    for (size_t i = 0; i < n; ++i) {
        const uint16_t e = D.pred_e[i];
        if (D.slots->resident({tl, e})) continue;
        if (host != nullptr && !host->resident(tl, e)) continue;
        // Exclusive tiers: the prefetch's victim goes back into a host slot by a copy queued
        // before this one, so the cache holds this one's source slot until the copies have run.
        if (D.exclusive != nullptr) {
            D.exclusive->hold(tl, e);
            D.cache_copies = true;
        }
        if (!D.slots->prefetch({tl, e}, experts->view(tl, e), D.layout[tl], now + 1)) break;  // all pinned
        if (host != nullptr) D.cache_copies = true;
        // Exclusive tiers: its host slot is free at once, as only a write-back queued after this
        // copy or a cache call made after the host has settled the copies refills it.
        D.leaves_host(tl, e);
    }
}

}  // namespace moerun
