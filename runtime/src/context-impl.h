// Context's state, shared by the CPU forward pass (forward.cpp) and the backend forward pass
// (forward-device.cpp).
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "moerun/cache/miss-cost.h"
#include "moerun/cache/trace.h"
#include "moerun/kernels/cpu/ops.h"
#include "moerun/runtime/context.h"
#include "moerun/runtime/expert-source.h"

namespace moerun {

namespace ops = kernels::cpu;

// The forward pass on a Backend: device copies of the dense weights, the KV cache, workspaces
// and the expert slots (forward-device.cpp).
struct DeviceState;
// Thrown between the layers of a batch by poll_abort_in_batch; eval turns it into Cancelled.
struct LayerCancelled {
    uint32_t layer;
};
struct DeviceStateDeleter {
    void operator()(DeviceState *d) const;
};

struct Context::Impl {
    const Model &model;
    const Hparams &hp;
    ContextParams params;
    ops::ThreadPool pool;
    std::unique_ptr<ExpertSource> own_experts;  // in place, when params.experts is null
    ExpertSource *experts = nullptr;
    uint32_t n_past = 0;
    uint64_t route_step = 0;  // tokens evaluated (the routing clock)
    // [n_layer, n_head_kv, n_ctx, head_dim] of params.type_k / type_v: each head's positions are
    // contiguous, so decode attention streams them. Not zeroed: a position is written before it is read.
    std::unique_ptr<uint8_t[]> k_cache, v_cache;
    size_t k_elt = 0, v_elt = 0;  // bytes per element
    std::vector<float> logits;    // [n_outputs, n_vocab]
    size_t n_outputs = 0;
    ContextStats stats;

    // Workspaces, reused across calls (no allocation once they have grown to the batch size).
    std::vector<float> x, h, q, k, v, att, proj;            // [n, n_embd] / [n, n_head*hd] / [n, n_kv*hd]
    std::vector<float> router, acc, xin, g, u, d, y, gate;  // router [n, n_expert]; y [n, top_k, n_embd]
    std::vector<uint16_t> sel_e, needed, pred_e;            // sel_e [n, top_k] in rank order
    std::vector<float> sel_w, pred_h, pred_r;               // sel_w [n, top_k]
    std::vector<std::vector<int64_t>> by_expert;            // [n_expert] -> (token * top_k + rank)
    std::vector<int64_t> idx;                               // [n_expert]
    std::vector<uint16_t> group;                            // experts computed together
    std::vector<ops::MatmulJob> jobs;
    std::vector<uint16_t> trace_e;  // [n, n_layer, top_k] (trace_out)
    std::vector<float> trace_w;

    std::unique_ptr<DeviceState, DeviceStateDeleter> dev;  // when params.backend is set

    Impl(const Model &m, ContextParams p);

    // Element index of the KV cache row of (layer, kv head, position).
    size_t kv_row(uint32_t il, int64_t kvh, uint32_t pos) const {
        return ((size_t{il} * hp.n_head_kv + static_cast<size_t>(kvh)) * params.n_ctx + pos) * hp.head_dim;
    }

    void eval(std::span<const int32_t> tokens, bool all_logits, EvalPhase phase);
    void eval_batch(std::span<const int32_t> tokens, int64_t n_out, float *out, bool prefill);
    // Between the layers of a batch of n > 1 tokens (a prompt's): throws LayerCancelled when
    // params.abort says so. The batch's positions are not kept (n_past stays); a decode token is
    // only polled before it (eval).
    void poll_abort_in_batch(int64_t n, uint32_t il) const;
    // Selects the experts of n tokens at layer il from their router logits (router [n, n_expert],
    // softmaxed in place): top-k or the forced trace, weights into sel_e / sel_w, and the trace.
    void route(uint32_t il, int64_t n);
    // forward-device.cpp: the state on params.backend, and eval_batch on it.
    void init_device();
    void register_experts(DeviceState &d);
    void register_host_cache(DeviceState &d, const cache::ExpertCache &c);
    void prefetch_next(uint32_t il, uint64_t now);
    cache::TierBandwidths measure_fallback(DeviceState &d);
    void decode_with_fallback(uint32_t il);
    void eval_batch_device(std::span<const int32_t> tokens, int64_t n_out, float *out);
    void attention(uint32_t il, std::vector<float> &x, int64_t n);
    void moe(uint32_t il, std::vector<float> &x, int64_t n);
    void run_experts(uint32_t il, int64_t rows);
    void predict_next(uint32_t il, const std::vector<float> &x);
};

}  // namespace moerun
