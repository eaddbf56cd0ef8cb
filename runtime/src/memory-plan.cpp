// The memory plan of a model under a RAM budget (see memory-plan.h).
#include "moerun/runtime/memory-plan.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "moerun/cache/expert-cache.h"
#include "moerun/runtime/expert-source.h"

namespace moerun {

uint64_t parse_size(const std::string &text) {
    size_t pos = 0;
    double v = 0;
    try {
        v = std::stod(text, &pos);
    } catch (const std::exception &) {
        throw std::invalid_argument("'" + text + "' is not a size (expected e.g. 6GiB, 1.5G, 800MiB, 4096)");
    }
    std::string unit = text.substr(pos);
    for (char &c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    double mul = 0;
    if (unit.empty() || unit == "b") mul = 1;
    if (unit == "k" || unit == "kb" || unit == "kib") mul = 1024.0;
    if (unit == "m" || unit == "mb" || unit == "mib") mul = 1024.0 * 1024;
    if (unit == "g" || unit == "gb" || unit == "gib") mul = 1024.0 * 1024 * 1024;
    if (unit == "t" || unit == "tb" || unit == "tib") mul = 1024.0 * 1024 * 1024 * 1024;
    if (mul == 0 || !(v > 0) || !std::isfinite(v) || v * mul > 1e18)
        throw std::invalid_argument("'" + text + "' is not a size (expected e.g. 6GiB, 1.5G, 800MiB, 4096)");
    return static_cast<uint64_t>(v * mul);
}

std::string format_size(uint64_t b) {
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
    return buf;
}

uint64_t available_memory() {
    std::ifstream f("/proc/meminfo");
    std::string key, unit;
    uint64_t value = 0;
    while (f >> key >> value >> unit)
        if (key == "MemAvailable:") return value * 1024;
    return 0;
}

std::string MemoryPlan::describe() const {
    std::string s = "memory budget " + format_size(budget) +
                    (budget_from_free ? " (90% of available RAM)" : "") + ": dense " +
                    (state_on_device ? format_size(host_dense_bytes) + " of " + format_size(dense_bytes) +
                                           " (embeddings, norms, header; the matrices are uploaded)"
                                     : format_size(dense_bytes)) +
                    (state_on_device ? ", KV cache and workspaces on the device, "
                                     : ", KV cache " + format_size(kv_bytes) + ", workspaces " +
                                           format_size(workspace_bytes) + ", ");
    if (!cached) return s + "experts " + format_size(expert_bytes) + " read in place (all fit)";
    return s + std::to_string(n_slots) + " expert slots of " + format_size(slot_bytes) + " (" +
           std::to_string(n_slots) + "/" + std::to_string(n_experts_total) + " experts, " +
           format_size(uint64_t{n_slots} * slot_bytes) + " of " + format_size(expert_bytes) + ")";
}

MemoryPlan plan_memory(const gguf::GgufFile &file, std::span<const cache::ExpertLocation> locs,
                       const Model &model, const ContextParams &ctx, const MemoryOptions &opt,
                       uint32_t min_slots) {
    const Hparams &hp = model.hparams();
    MemoryPlan p;
    for (const auto &l : locs) p.expert_bytes += l.bytes();
    p.n_experts_total = locs.size();
    p.dense_bytes = file.file_size() - p.expert_bytes;
    p.slot_bytes = cache::ExpertCache::slot_bytes(locs);
    const uint64_t nkv = uint64_t{hp.n_head_kv} * hp.head_dim, nq = uint64_t{hp.n_head} * hp.head_dim;
    p.kv_bytes = uint64_t{hp.n_layer} * ctx.n_ctx * nkv *
                 (quant::traits(ctx.type_k).type_size + quant::traits(ctx.type_v).type_size);
    // Per token of a batch: residual, norm, q/k/v, attention out and projection, router,
    // per-rank expert outputs, expert in/gate/up/down, accumulator; plus one logits row and
    // per-thread attention scores.
    const uint64_t B = std::max<uint64_t>(ctx.n_batch, 64);  // forward.cpp groups up to 64 expert rows
    const uint64_t per_tok = 4 * hp.n_embd + 2 * nq + 2 * nkv + hp.n_expert +
                             uint64_t{hp.n_expert_used} * hp.n_embd + 2 * hp.n_embd +
                             2 * std::max(hp.n_ff_exp, hp.n_ff_shexp);
    p.workspace_bytes = (B * per_tok + hp.n_vocab + 64 * uint64_t{ctx.n_ctx}) * sizeof(float);
    if (opt.host_mem != 0 || opt.device_mem != 0) {
        p.budget = opt.host_mem + opt.device_mem;
    } else {
        p.budget = available_memory() / 10 * 9;
        p.budget_from_free = true;
    }
    p.state_on_device = opt.state_on_device;
    p.host_dense_bytes = p.dense_bytes;
    if (p.state_on_device) {
        // The header, the token embeddings and the 1-D tensors stay; every other dense tensor is
        // a matrix uploaded a chunk at a time (at most one chunk resident), whose pages are
        // dropped but for the two it may share with its neighbours.
        const Weight &te = model.tok_embd();
        const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
        uint64_t kept = file.data_offset() +
                        te.row_bytes * static_cast<uint64_t>(te.ne[1]) * static_cast<uint64_t>(te.ne[2]);
        uint64_t largest = 0;
        for (const gguf::TensorInfo &t : file.tensors()) {
            kept += t.n_dims <= 1 ? t.size : 2 * page;
            if (t.n_dims == 2) largest = std::max(largest, t.size);
        }
        kept += std::min(largest, ContextParams::kUploadChunk);
        p.host_dense_bytes = std::min(p.dense_bytes, kept);
    }
    const uint64_t fixed = p.host_dense_bytes + (p.state_on_device ? 0 : p.kv_bytes + p.workspace_bytes);
    if (!opt.force_cache && fixed + p.expert_bytes <= p.budget) return p;
    p.cached = true;
    const uint64_t room = p.budget > fixed ? p.budget - fixed : 0;
    p.n_slots = static_cast<uint32_t>(std::min<uint64_t>(room / p.slot_bytes, p.n_experts_total));
    if (p.n_slots < min_slots)
        throw BudgetError(file.path() + ": a memory budget of " + format_size(p.budget) +
                          " is too small: dense weights " + format_size(p.host_dense_bytes) +
                          (p.state_on_device ? std::string()
                                             : " + KV cache " + format_size(p.kv_bytes) + " (-c " +
                                                   std::to_string(ctx.n_ctx) + ") + workspaces " +
                                                   format_size(p.workspace_bytes)) +
                          " + " + std::to_string(min_slots) + " expert slots of " +
                          format_size(p.slot_bytes) + " need at least " +
                          format_size(fixed + uint64_t{min_slots} * p.slot_bytes));
    return p;
}

}  // namespace moerun
