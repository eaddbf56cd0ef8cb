// The forward pass of every supported MoE family, built from shared blocks:
//   x -> [RMSNorm -> attention (q/k/v, optional biases and q/k norm, RoPE, KV cache, GQA) -> + x]
//     -> [RMSNorm -> router softmax + top-k -> SwiGLU experts (grouped by expert) (+ shared expert) -> + x]
//     -> RMSNorm -> output projection -> logits
// Activations are token-major: X is [n_tok, n_embd].
#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "context-impl.h"
#include "moerun/cache/trace.h"
#include "moerun/kernels/cpu/rope.h"
#include "moerun/quant/dequant.h"

namespace moerun {

Context::Impl::Impl(const Model &m, ContextParams p)
    : model(m),
      hp(m.hparams()),
      params(p),
      pool(p.n_threads > 0 ? p.n_threads
                           : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {
    for (const quant::Type t : {params.type_k, params.type_v})
        if (!ops::kv_type_supported(t))
            throw std::invalid_argument("KV cache type " + std::string(quant::type_name(t)) +
                                        " is not supported (f32 or f16)");
    k_elt = quant::traits(params.type_k).type_size;  // F32 and F16 blocks are one element
    v_elt = quant::traits(params.type_v).type_size;
    if (params.backend == nullptr) {  // else the cache lives in the backend's memory
        const size_t kv = size_t{hp.n_layer} * params.n_ctx * hp.n_head_kv * hp.head_dim;
        k_cache.reset(new uint8_t[kv * k_elt]);
        v_cache.reset(new uint8_t[kv * v_elt]);
    }
    experts = params.experts;
    if (experts == nullptr) {
        own_experts = make_mapped_experts(m);
        experts = own_experts.get();
    }
    by_expert.resize(hp.n_expert);
    idx.resize(hp.n_expert);
    needed.reserve(hp.n_expert);
    pred_e.reserve(hp.n_expert_used);
    if (params.routing != nullptr) {
        const std::string why =
            cache::trace_mismatch(*params.routing, hp.n_layer, hp.n_expert, hp.n_expert_used);
        if (!why.empty()) throw std::invalid_argument("routing trace: " + why);
    }
    if (params.backend != nullptr) init_device();
}

namespace {

// The most token rows of experts computed in one group (decode groups all its experts; prefill
// experts with many tokens run alone). The memory plan sizes workspaces for max(n_batch, this).
constexpr int64_t kGroupRows = 64;

void matmul(ops::ThreadPool &pool, const Weight &w, const float *x, float *y, int64_t n_tok) {
    ops::matmul(pool, w.type, w.data, x, y, w.ne[1], w.ne[0], n_tok);
}

}  // namespace

void Context::Impl::attention(uint32_t il, std::vector<float> &xs, int64_t n) {
    const LayerWeights &L = model.layer(il);
    const int64_t E = hp.n_embd, hd = hp.head_dim, nh = hp.n_head, nkvh = hp.n_head_kv;
    const int64_t nq = nh * hd, nkv = nkvh * hd;
    h.resize(static_cast<size_t>(n * E));
    q.resize(static_cast<size_t>(n * nq));
    k.resize(static_cast<size_t>(n * nkv));
    v.resize(static_cast<size_t>(n * nkv));
    for (int64_t t = 0; t < n; ++t) ops::rms_norm(&xs[t * E], L.attn_norm.data(), &h[t * E], E, hp.rms_eps);
    const ops::MatmulJob qkv[] = {{L.wq.type, L.wq.data, h.data(), q.data(), L.wq.ne[1], L.wq.ne[0], n},
                                  {L.wk.type, L.wk.data, h.data(), k.data(), L.wk.ne[1], L.wk.ne[0], n},
                                  {L.wv.type, L.wv.data, h.data(), v.data(), L.wv.ne[1], L.wv.ne[0], n}};
    ops::matmul_group(pool, qkv);
    const bool neox = model.arch().rope == RopeMode::neox;
    for (int64_t t = 0; t < n; ++t) {
        float *qt = &q[t * nq], *kt = &k[t * nkv], *vt = &v[t * nkv];
        if (!L.bq.empty()) ops::axpy(1.0f, L.bq.data(), qt, nq);
        if (!L.bk.empty()) ops::axpy(1.0f, L.bk.data(), kt, nkv);
        if (!L.bv.empty()) ops::axpy(1.0f, L.bv.data(), vt, nkv);
        if (model.arch().qk_norm == QkNorm::full) {
            ops::rms_norm(qt, L.q_norm.data(), qt, nq, hp.rms_eps);
            ops::rms_norm(kt, L.k_norm.data(), kt, nkv, hp.rms_eps);
        } else if (model.arch().qk_norm == QkNorm::per_head) {
            for (int64_t hh = 0; hh < nh; ++hh)
                ops::rms_norm(qt + hh * hd, L.q_norm.data(), qt + hh * hd, hd, hp.rms_eps);
            for (int64_t hh = 0; hh < nkvh; ++hh)
                ops::rms_norm(kt + hh * hd, L.k_norm.data(), kt + hh * hd, hd, hp.rms_eps);
        }
        const float pos = static_cast<float>(n_past + t);
        ops::rope_scaled(qt, static_cast<int>(nh), static_cast<int>(hd), static_cast<int>(hp.n_rot), pos,
                         hp.rope_freq_base, neox, hp.rope);
        ops::rope_scaled(kt, static_cast<int>(nkvh), static_cast<int>(hd), static_cast<int>(hp.n_rot), pos,
                         hp.rope_freq_base, neox, hp.rope);
        for (int64_t hh = 0; hh < nkvh; ++hh) {
            const size_t at = kv_row(il, hh, n_past + static_cast<uint32_t>(t));
            ops::store_kv_row(params.type_k, kt + hh * hd, &k_cache[at * k_elt], hd);
            ops::store_kv_row(params.type_v, vt + hh * hd, &v_cache[at * v_elt], hd);
        }
    }
    // Causal GQA attention: token t attends to positions [0, n_past + t].
    att.assign(static_cast<size_t>(n * nq), 0.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    // Jobs interleave first and last tokens (0, n-1, 1, n-2, ...) so that the pool's contiguous
    // chunks get about equal causal work.
    pool.parallel_for(n * nh, [&](int64_t b0, int64_t b1, int) {
        thread_local std::vector<float> scores;
        scores.resize(n_past + static_cast<size_t>(n));
        for (int64_t job = b0; job < b1; ++job) {
            const int64_t i = job / nh, hh = job % nh, kvh = hh / (nh / nkvh);
            const int64_t t = i % 2 == 0 ? i / 2 : n - 1 - i / 2;
            const int64_t n_kv_pos = n_past + t + 1;
            const size_t at = kv_row(il, kvh, 0);
            ops::attention_head(&q[t * nq + hh * hd], &k_cache[at * k_elt], params.type_k,
                                &v_cache[at * v_elt], params.type_v, n_kv_pos, hd, scale, scores.data(),
                                &att[t * nq + hh * hd]);
        }
    });
    proj.resize(static_cast<size_t>(n * E));
    matmul(pool, L.wo, att.data(), proj.data(), n);
    for (size_t i = 0; i < proj.size(); ++i) xs[i] += proj[i];
}

void Context::Impl::moe(uint32_t il, std::vector<float> &xs, int64_t n) {
    const LayerWeights &L = model.layer(il);
    const int64_t E = hp.n_embd, X = hp.n_expert, K = hp.n_expert_used;
    h.resize(static_cast<size_t>(n * E));
    router.resize(static_cast<size_t>(n * X));
    for (int64_t t = 0; t < n; ++t) ops::rms_norm(&xs[t * E], L.ffn_norm.data(), &h[t * E], E, hp.rms_eps);
    matmul(pool, L.gate_inp, h.data(), router.data(), n);

    route(il, n);

    // Tokens per expert: slot t * K + j of the outputs, for every (token, rank) routed to it.
    for (auto &list : by_expert) list.clear();
    for (int64_t i = 0; i < n * K; ++i) by_expert[sel_e[static_cast<size_t>(i)]].push_back(i);
    needed.clear();
    for (int64_t e = 0; e < X; ++e)
        if (!by_expert[static_cast<size_t>(e)].empty()) needed.push_back(static_cast<uint16_t>(e));

    ExpertSource &src = *experts;
    src.begin_layer(il, needed);
    if (params.prefetch_next_layer && n == 1 && il + 1 < hp.n_layer && params.routing == nullptr)
        predict_next(il, xs);

    // Each expert runs once over its tokens, in groups: the first ready expert (waiting for its
    // read if none is) and whatever else is ready now, up to kGroupRows token rows, computed in
    // one parallel pass per product. Each expert writes its own rows of y, so neither the order
    // nor the grouping (which depend on the cache) changes a bit.
    y.resize(static_cast<size_t>(n * K * E));
    std::optional<uint16_t> pending = src.next();
    while (pending) {
        group.assign(1, *pending);
        pending.reset();
        int64_t rows = static_cast<int64_t>(by_expert[group[0]].size());
        while (const auto more = src.try_next()) {
            const int64_t m = static_cast<int64_t>(by_expert[*more].size());
            if (rows + m > kGroupRows) {
                pending = more;
                break;
            }
            group.push_back(*more);
            rows += m;
        }
        run_experts(il, rows);
        for (const uint16_t e : group) src.done(il, e);
        if (!pending) pending = src.next();
    }
    // Weighted sum in rank order (as llama.cpp adds its expert views).
    acc.assign(static_cast<size_t>(n * E), 0.0f);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < K; ++j)
            ops::axpy(sel_w[static_cast<size_t>(t * K + j)], &y[(t * K + j) * E], &acc[t * E], E);

    if (model.arch().shared_expert) {
        const int64_t S = hp.n_ff_shexp;
        g.resize(static_cast<size_t>(n * S));
        u.resize(static_cast<size_t>(n * S));
        d.resize(static_cast<size_t>(n * E));
        const ops::MatmulJob gate_up[] = {
            {L.gate_shexp.type, L.gate_shexp.data, h.data(), g.data(), L.gate_shexp.ne[1], L.gate_shexp.ne[0],
             n},
            {L.up_shexp.type, L.up_shexp.data, h.data(), u.data(), L.up_shexp.ne[1], L.up_shexp.ne[0], n}};
        ops::matmul_group(pool, gate_up);
        ops::swiglu(g.data(), u.data(), g.data(), n * S);
        matmul(pool, L.down_shexp, g.data(), d.data(), n);
        gate.resize(static_cast<size_t>(n));
        matmul(pool, L.gate_inp_shexp, h.data(), gate.data(), n);  // [n, 1]
        for (int64_t t = 0; t < n; ++t)
            ops::axpy(1.0f / (1.0f + std::exp(-gate[t])), &d[t * E], &acc[t * E], E);
    }
    for (size_t i = 0; i < acc.size(); ++i) xs[i] += acc[i];
}

// Routing: softmax over all experts, top-k (or the trace's experts), optional renormalisation.
// sel_e/sel_w: [n, K] in rank order.
void Context::Impl::route(uint32_t il, int64_t n) {
    const int64_t X = hp.n_expert, K = hp.n_expert_used;
    for (int64_t t = 0; t < n; ++t) {
        float *r = &router[t * X];
        ops::softmax(r, X);
        uint16_t *se = &sel_e[static_cast<size_t>(t * K)];
        if (params.routing != nullptr) {
            const cache::Trace &tr = *params.routing;
            const uint64_t at =
                (params.routing_offset + route_step + static_cast<uint64_t>(t)) % tr.n_tokens();
            const auto forced = tr.experts_at(at, il);
            std::copy(forced.begin(), forced.end(), se);
        } else {
            ops::top_k(r, X, K, idx.data(), se);
        }
        float sum = 0;
        for (int64_t j = 0; j < K; ++j) sum += r[se[j]];
        for (int64_t j = 0; j < K; ++j)
            sel_w[static_cast<size_t>(t * K + j)] = model.arch().norm_topk ? r[se[j]] / sum : r[se[j]];
        if (params.trace_out != nullptr)
            for (int64_t j = 0; j < K; ++j) {
                const size_t o = static_cast<size_t>((t * hp.n_layer + il) * K + j);
                trace_e[o] = se[j];
                trace_w[o] = sel_w[static_cast<size_t>(t * K + j)];
            }
    }
}

// The experts of `group` (resident; rows token rows in all) over their tokens: gate and up
// products of all of them in one pass, SwiGLU, down products in one pass; outputs to their rows of y.
void Context::Impl::run_experts(uint32_t il, int64_t rows) {
    const LayerWeights &L = model.layer(il);
    const int64_t E = hp.n_embd, K = hp.n_expert_used, F = hp.n_ff_exp;
    xin.resize(static_cast<size_t>(rows * E));  // [rows, E]
    g.resize(static_cast<size_t>(rows * F));    // [rows, F]
    u.resize(static_cast<size_t>(rows * F));    // [rows, F]
    d.resize(static_cast<size_t>(rows * E));    // [rows, E]
    jobs.clear();
    int64_t r = 0;
    for (const uint16_t e : group) {
        const auto &list = by_expert[e];
        const int64_t m = static_cast<int64_t>(list.size());
        const cache::ExpertView w = experts->view(il, e);
        for (int64_t i = 0; i < m; ++i)
            std::copy_n(&h[list[static_cast<size_t>(i)] / K * E], E, &xin[(r + i) * E]);
        jobs.push_back({L.gate_exps.type, w.gate, &xin[r * E], &g[r * F], F, E, m});
        jobs.push_back({L.up_exps.type, w.up, &xin[r * E], &u[r * F], F, E, m});
        r += m;
    }
    ops::matmul_group(pool, jobs);
    ops::swiglu(g.data(), u.data(), g.data(), rows * F);
    jobs.clear();
    r = 0;
    for (const uint16_t e : group) {
        const int64_t m = static_cast<int64_t>(by_expert[e].size());
        jobs.push_back({L.down_exps.type, experts->view(il, e).down, &g[r * F], &d[r * E], E, F, m});
        r += m;
    }
    ops::matmul_group(pool, jobs);
    r = 0;
    for (const uint16_t e : group)
        for (const int64_t slot : by_expert[e]) std::copy_n(&d[(r++) * E], E, &y[slot * E]);
}

// Next-layer prefetch: layer il+1's router applied to layer il's residual (one token).
// A wrong prefetch costs a read and evicts an expert that may be used soon; measured on the
// OLMoE-shape test model, predictions 70% right still made decode slower (more bytes read than
// saved). So a layer whose judged prefetches (used, or evicted unused) are less than 80% used only
// prefetches every 16th token, to keep measuring, and resumes when the predictions improve.
void Context::Impl::predict_next(uint32_t il, const std::vector<float> &xs) {
    if (const cache::ExpertCache *c = experts->cache()) {
        const cache::LayerCacheStats &st = c->stats()[il + 1];
        const uint64_t judged = st.prefetch_used + st.prefetch_wasted;
        if (judged >= 32 && 5 * st.prefetch_used < 4 * judged && route_step % 16 != 0) return;
    }
    const LayerWeights &N = model.layer(il + 1);
    const int64_t E = hp.n_embd, X = hp.n_expert, K = hp.n_expert_used;
    pred_h.resize(static_cast<size_t>(E));
    pred_r.resize(static_cast<size_t>(X));
    ops::rms_norm(xs.data(), N.ffn_norm.data(), pred_h.data(), E, hp.rms_eps);
    matmul(pool, N.gate_inp, pred_h.data(), pred_r.data(), 1);
    pred_e.resize(static_cast<size_t>(K));
    ops::top_k(pred_r.data(), X, K, idx.data(), pred_e.data());
    experts->prefetch(il + 1, pred_e);
}

void Context::Impl::eval(std::span<const int32_t> tokens, bool all_logits, EvalPhase phase) {
    const int64_t n_all = static_cast<int64_t>(tokens.size()), V = hp.n_vocab;
    if (n_all == 0) throw std::invalid_argument("eval: empty batch");
    if (n_past + static_cast<uint64_t>(n_all) > params.n_ctx)
        throw std::invalid_argument("eval: " + std::to_string(n_past + static_cast<uint64_t>(n_all)) +
                                    " tokens exceed the context size " + std::to_string(params.n_ctx));
    for (int64_t t = 0; t < n_all; ++t)
        if (tokens[t] < 0 || tokens[t] >= static_cast<int64_t>(V))
            throw std::invalid_argument("eval: token id " + std::to_string(tokens[t]) +
                                        " outside the vocabulary [0, " + std::to_string(V) + ")");
    const auto start = std::chrono::steady_clock::now();
    n_outputs = all_logits ? static_cast<size_t>(n_all) : 1;
    logits.resize(n_outputs * static_cast<size_t>(V));
    const int64_t B = std::max<int64_t>(1, params.n_batch);
    for (int64_t b0 = 0; b0 < n_all; b0 += B) {
        const auto cancelled = [&](const std::string &where) {
            n_outputs = 0;  // no logits from a cancelled eval
            return Cancelled("eval: cancelled " + where + "; " + std::to_string(b0) + " of " +
                             std::to_string(n_all) + " tokens evaluated");
        };
        if (params.abort && params.abort()) throw cancelled("before a batch");
        const int64_t n = std::min(B, n_all - b0);
        const bool last = b0 + n == n_all;
        float *out = all_logits ? &logits[static_cast<size_t>(b0 * V)] : logits.data();
        try {
            eval_batch(tokens.subspan(static_cast<size_t>(b0), static_cast<size_t>(n)),
                       all_logits ? n : (last ? 1 : 0), out, n_all > 1);
        } catch (const LayerCancelled &e) {
            throw cancelled("before layer " + std::to_string(e.layer) + " of a batch of " +
                            std::to_string(n));
        }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (phase == EvalPhase::prompt || (phase == EvalPhase::by_size && n_all > 1)) {
        stats.n_prompt_tokens += static_cast<uint64_t>(n_all);
        stats.prompt_seconds += secs;
    } else {
        stats.n_decode_tokens += 1;
        stats.decode_seconds += secs;
    }
}

void Context::Impl::poll_abort_in_batch(int64_t n, uint32_t il) const {
    if (n > 1 && il > 0 && params.abort && params.abort()) throw LayerCancelled{il};
}

// One batch of n tokens at positions [n_past, n_past + n); logits of its last n_out tokens.
void Context::Impl::eval_batch(std::span<const int32_t> tokens, int64_t n_out, float *out, bool prefill) {
    const int64_t n = static_cast<int64_t>(tokens.size()), E = hp.n_embd, K = hp.n_expert_used;
    experts->begin_step(route_step);
    x.resize(static_cast<size_t>(n * E));
    sel_e.resize(static_cast<size_t>(n * K));
    sel_w.resize(static_cast<size_t>(n * K));
    if (params.trace_out != nullptr) {
        trace_e.resize(static_cast<size_t>(n * hp.n_layer * K));
        trace_w.resize(trace_e.size());
    }
    const Weight &emb = model.tok_embd();
    for (int64_t t = 0; t < n; ++t)
        quant::dequantize_row(emb.type, emb.data + static_cast<uint64_t>(tokens[t]) * emb.row_bytes,
                              &x[t * E], E);
    if (dev) {
        eval_batch_device(tokens, n_out, out);
    } else {
        for (uint32_t il = 0; il < hp.n_layer; ++il) {
            poll_abort_in_batch(n, il);
            attention(il, x, n);
            moe(il, x, n);
        }
        if (n_out > 0) {
            const int64_t first = n - n_out;
            h.resize(static_cast<size_t>(n_out * E));
            for (int64_t t = first; t < n; ++t)
                ops::rms_norm(&x[t * E], model.output_norm().data(), &h[(t - first) * E], E, hp.rms_eps);
            matmul(pool, model.output(), h.data(), out, n_out);
        }
    }
    if (params.trace_out != nullptr) {
        const size_t per_tok = size_t{hp.n_layer} * static_cast<size_t>(K);
        for (float &w : trace_w)  // a trace holds finite weights; the run goes on regardless
            if (!std::isfinite(w)) {
                w = 0;
                ++stats.trace_nonfinite_weights;
            }
        for (int64_t t = 0; t < n; ++t)
            params.trace_out->add_token(
                tokens[t], prefill,
                std::span<const uint16_t>(&trace_e[static_cast<size_t>(t) * per_tok], per_tok),
                std::span<const float>(&trace_w[static_cast<size_t>(t) * per_tok], per_tok));
    }
    n_past += static_cast<uint32_t>(n);
    route_step += static_cast<uint64_t>(n);
}

Context::Context(const Model &model, ContextParams params) : impl_(std::make_unique<Impl>(model, params)) {}
Context::~Context() = default;
void Context::eval(std::span<const int32_t> tokens, bool all_logits, EvalPhase phase) {
    impl_->eval(tokens, all_logits, phase);
}
const float *Context::logits(size_t i) const {
    return impl_->logits.data() + i * impl_->hp.n_vocab;
}
size_t Context::n_outputs() const {
    return impl_->n_outputs;
}
uint32_t Context::n_past() const {
    return impl_->n_past;
}
uint32_t Context::n_ctx() const {
    return impl_->params.n_ctx;
}
uint32_t Context::n_vocab() const {
    return impl_->hp.n_vocab;
}
const Model &Context::model() const {
    return impl_->model;
}
void Context::reset() {
    impl_->n_past = 0;
}
void Context::truncate(uint32_t n) {
    impl_->n_past = std::min(n, impl_->n_past);
}
const ContextStats &Context::stats() const {
    return impl_->stats;
}

}  // namespace moerun
