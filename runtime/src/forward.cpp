// The forward pass of every supported MoE family, built from shared blocks:
//   x -> [RMSNorm -> attention (q/k/v, optional biases and q/k norm, RoPE, KV cache, GQA) -> + x]
//     -> [RMSNorm -> router softmax + top-k -> SwiGLU experts (grouped by expert) (+ shared expert) -> + x]
//     -> RMSNorm -> output projection -> logits
// Activations are token-major: X is [n_tok, n_embd].
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>

#include "moerun/kernels/cpu/ops.h"
#include "moerun/quant/dequant.h"
#include "moerun/runtime/context.h"

namespace moerun {

namespace ops = kernels::cpu;

struct Context::Impl {
    const Model &model;
    const Hparams &hp;
    ContextParams params;
    ops::ThreadPool pool;
    uint32_t n_past = 0;
    std::vector<float> k_cache, v_cache;  // [n_layer, n_ctx, n_head_kv * head_dim]
    std::vector<float> logits;            // [n_outputs, n_vocab]
    size_t n_outputs = 0;
    ContextStats stats;

    Impl(const Model &m, ContextParams p)
        : model(m),
          hp(m.hparams()),
          params(p),
          pool(p.n_threads > 0 ? p.n_threads
                               : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {
        const size_t kv = size_t{hp.n_layer} * params.n_ctx * hp.n_head_kv * hp.head_dim;
        k_cache.assign(kv, 0.0f);
        v_cache.assign(kv, 0.0f);
    }

    void eval(std::span<const int32_t> tokens, bool all_logits);
    void attention(uint32_t il, std::vector<float> &x, int64_t n);
    void moe(uint32_t il, std::vector<float> &x, int64_t n);
};

namespace {

void matmul(ops::ThreadPool &pool, const Weight &w, const float *x, float *y, int64_t n_tok) {
    ops::matmul(pool, w.type, w.data, x, y, w.ne[1], w.ne[0], n_tok);
}

// The [rows, cols] slice of expert e inside a stacked expert tensor.
Weight expert_slice(const Weight &w, int64_t e) {
    Weight s = w;
    s.data = w.data + static_cast<uint64_t>(e) * w.expert_bytes();
    s.ne[2] = 1;
    return s;
}

}  // namespace

void Context::Impl::attention(uint32_t il, std::vector<float> &x, int64_t n) {
    const LayerWeights &L = model.layer(il);
    const int64_t E = hp.n_embd, hd = hp.head_dim, nh = hp.n_head, nkvh = hp.n_head_kv;
    const int64_t nq = nh * hd, nkv = nkvh * hd;
    std::vector<float> h(static_cast<size_t>(n * E)), q(static_cast<size_t>(n * nq)),
        k(static_cast<size_t>(n * nkv)), v(static_cast<size_t>(n * nkv));
    for (int64_t t = 0; t < n; ++t) ops::rms_norm(&x[t * E], L.attn_norm.data(), &h[t * E], E, hp.rms_eps);
    matmul(pool, L.wq, h.data(), q.data(), n);
    matmul(pool, L.wk, h.data(), k.data(), n);
    matmul(pool, L.wv, h.data(), v.data(), n);
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
        const float pos = static_cast<float>(n_past + t) * hp.rope_freq_scale;
        ops::rope(qt, static_cast<int>(nh), static_cast<int>(hd), static_cast<int>(hp.n_rot), pos,
                  hp.rope_freq_base, neox);
        ops::rope(kt, static_cast<int>(nkvh), static_cast<int>(hd), static_cast<int>(hp.n_rot), pos,
                  hp.rope_freq_base, neox);
        const size_t slot =
            (size_t{il} * params.n_ctx + n_past + static_cast<size_t>(t)) * static_cast<size_t>(nkv);
        std::copy(kt, kt + nkv, k_cache.begin() + static_cast<ptrdiff_t>(slot));
        std::copy(vt, vt + nkv, v_cache.begin() + static_cast<ptrdiff_t>(slot));
    }
    // Causal GQA attention: token t attends to positions [0, n_past + t].
    std::vector<float> out(static_cast<size_t>(n * nq), 0.0f);
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const float *kc = &k_cache[size_t{il} * params.n_ctx * static_cast<size_t>(nkv)];
    const float *vc = &v_cache[size_t{il} * params.n_ctx * static_cast<size_t>(nkv)];
    pool.parallel_for(n * nh, [&](int64_t b0, int64_t b1, int) {
        std::vector<float> scores(n_past + static_cast<size_t>(n));
        for (int64_t job = b0; job < b1; ++job) {
            const int64_t t = job / nh, hh = job % nh, kvh = hh / (nh / nkvh);
            const int64_t n_kv_pos = n_past + t + 1;
            const float *qh = &q[t * nq + hh * hd];
            for (int64_t p = 0; p < n_kv_pos; ++p)
                scores[p] = ops::dot(qh, kc + p * nkv + kvh * hd, hd) * scale;
            ops::softmax(scores.data(), n_kv_pos);
            float *o = &out[t * nq + hh * hd];
            for (int64_t p = 0; p < n_kv_pos; ++p) ops::axpy(scores[p], vc + p * nkv + kvh * hd, o, hd);
        }
    });
    std::vector<float> proj(static_cast<size_t>(n * E));
    matmul(pool, L.wo, out.data(), proj.data(), n);
    for (size_t i = 0; i < proj.size(); ++i) x[i] += proj[i];
}

void Context::Impl::moe(uint32_t il, std::vector<float> &x, int64_t n) {
    const LayerWeights &L = model.layer(il);
    const int64_t E = hp.n_embd, X = hp.n_expert, K = hp.n_expert_used, F = hp.n_ff_exp;
    std::vector<float> h(static_cast<size_t>(n * E)), router(static_cast<size_t>(n * X));
    for (int64_t t = 0; t < n; ++t) ops::rms_norm(&x[t * E], L.ffn_norm.data(), &h[t * E], E, hp.rms_eps);
    matmul(pool, L.gate_inp, h.data(), router.data(), n);

    // Routing: softmax over all experts, top-k, optional renormalisation.
    std::vector<std::vector<std::pair<int64_t, float>>> by_expert(static_cast<size_t>(X));  // (token, weight)
    std::vector<int64_t> idx(static_cast<size_t>(X));
    for (int64_t t = 0; t < n; ++t) {
        float *r = &router[t * X];
        ops::softmax(r, X);
        std::iota(idx.begin(), idx.end(), 0);
        std::partial_sort(idx.begin(), idx.begin() + K, idx.end(),
                          [&](int64_t a, int64_t b) { return r[a] > r[b] || (r[a] == r[b] && a < b); });
        float sum = 0;
        for (int64_t j = 0; j < K; ++j) sum += r[idx[j]];
        for (int64_t j = 0; j < K; ++j) {
            const float w = model.arch().norm_topk ? r[idx[j]] / sum : r[idx[j]];
            by_expert[static_cast<size_t>(idx[j])].push_back({t, w});
        }
    }

    // Experts, grouped: each selected expert runs once over all its tokens.
    std::vector<float> xin, g, u, d;
    std::vector<float> acc(static_cast<size_t>(n * E), 0.0f);
    for (int64_t e = 0; e < X; ++e) {
        const auto &sel = by_expert[static_cast<size_t>(e)];
        if (sel.empty()) continue;
        const int64_t m = static_cast<int64_t>(sel.size());
        xin.resize(static_cast<size_t>(m * E));
        g.resize(static_cast<size_t>(m * F));
        u.resize(static_cast<size_t>(m * F));
        d.resize(static_cast<size_t>(m * E));
        for (int64_t i = 0; i < m; ++i) std::copy_n(&h[sel[i].first * E], E, &xin[i * E]);
        matmul(pool, expert_slice(L.gate_exps, e), xin.data(), g.data(), m);
        matmul(pool, expert_slice(L.up_exps, e), xin.data(), u.data(), m);
        ops::swiglu(g.data(), u.data(), g.data(), m * F);
        matmul(pool, expert_slice(L.down_exps, e), g.data(), d.data(), m);
        for (int64_t i = 0; i < m; ++i) ops::axpy(sel[i].second, &d[i * E], &acc[sel[i].first * E], E);
    }

    if (model.arch().shared_expert) {
        const int64_t S = hp.n_ff_shexp;
        g.resize(static_cast<size_t>(n * S));
        u.resize(static_cast<size_t>(n * S));
        d.resize(static_cast<size_t>(n * E));
        matmul(pool, L.gate_shexp, h.data(), g.data(), n);
        matmul(pool, L.up_shexp, h.data(), u.data(), n);
        ops::swiglu(g.data(), u.data(), g.data(), n * S);
        matmul(pool, L.down_shexp, g.data(), d.data(), n);
        std::vector<float> gate(static_cast<size_t>(n), 0.0f);
        if (L.gate_inp_shexp.present()) matmul(pool, L.gate_inp_shexp, h.data(), gate.data(), n);
        for (int64_t t = 0; t < n; ++t) {
            const float s = L.gate_inp_shexp.present() ? 1.0f / (1.0f + std::exp(-gate[t])) : 1.0f;
            ops::axpy(s, &d[t * E], &acc[t * E], E);
        }
    }
    for (size_t i = 0; i < acc.size(); ++i) x[i] += acc[i];
}

void Context::Impl::eval(std::span<const int32_t> tokens, bool all_logits) {
    const auto start = std::chrono::steady_clock::now();
    const int64_t n = static_cast<int64_t>(tokens.size()), E = hp.n_embd, V = hp.n_vocab;
    if (n == 0) throw std::invalid_argument("eval: empty batch");
    if (n_past + static_cast<uint64_t>(n) > params.n_ctx)
        throw std::invalid_argument("eval: " + std::to_string(n_past + static_cast<uint64_t>(n)) +
                                    " tokens exceed the context size " + std::to_string(params.n_ctx));
    std::vector<float> x(static_cast<size_t>(n * E));
    const Weight &emb = model.tok_embd();
    for (int64_t t = 0; t < n; ++t) {
        if (tokens[t] < 0 || tokens[t] >= static_cast<int64_t>(V))
            throw std::invalid_argument("eval: token id " + std::to_string(tokens[t]) +
                                        " outside the vocabulary [0, " + std::to_string(V) + ")");
        quant::dequantize_row(emb.type, emb.data + static_cast<uint64_t>(tokens[t]) * emb.row_bytes,
                              &x[t * E], E);
    }
    for (uint32_t il = 0; il < hp.n_layer; ++il) {
        attention(il, x, n);
        moe(il, x, n);
    }
    const int64_t first = all_logits ? 0 : n - 1;
    n_outputs = static_cast<size_t>(n - first);
    std::vector<float> h(n_outputs * static_cast<size_t>(E));
    for (int64_t t = first; t < n; ++t)
        ops::rms_norm(&x[t * E], model.output_norm().data(), &h[(t - first) * E], E, hp.rms_eps);
    logits.resize(n_outputs * static_cast<size_t>(V));
    matmul(pool, model.output(), h.data(), logits.data(), static_cast<int64_t>(n_outputs));
    n_past += static_cast<uint32_t>(n);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (n > 1) {
        stats.n_prompt_tokens += static_cast<uint64_t>(n);
        stats.prompt_seconds += secs;
    } else {
        stats.n_decode_tokens += 1;
        stats.decode_seconds += secs;
    }
}

Context::Context(const Model &model, ContextParams params) : impl_(std::make_unique<Impl>(model, params)) {}
Context::~Context() = default;
void Context::eval(std::span<const int32_t> tokens, bool all_logits) {
    impl_->eval(tokens, all_logits);
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
