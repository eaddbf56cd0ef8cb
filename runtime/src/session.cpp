// Opening a model with a memory budget (see session.h).
#include "moerun/runtime/session.h"

#include <sys/stat.h>

#include <algorithm>
#include <stdexcept>

#include "moerun/cache/policy.h"
#include "moerun/kernels/backend.h"
#include "moerun/runtime/model-info.h"

namespace moerun {

bool same_file(const std::string &a, const std::string &b) {
    struct stat sa {
    }, sb{};
    return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

std::span<const std::string_view> backend_names() {
    static constexpr std::string_view names[] = {"auto", "cpu", "cuda", "cpu-device"};
    return names;
}

std::span<const std::string_view> cpu_fallback_names() {
    static constexpr std::string_view names[] = {"off", "auto", "always"};
    return names;
}

cache::LayerCacheStats cache_totals(const Session &s) {
    cache::LayerCacheStats t;
    if (const cache::ExpertCache *c = s.experts ? s.experts->cache() : nullptr)
        for (const auto &l : c->stats()) t += l;
    return t;
}

namespace {

// Throws unless value is one of names: "<flag> <value>: expected a, b or c".
void check_choice(const std::string &flag, const std::string &value,
                  std::span<const std::string_view> names) {
    if (std::find(names.begin(), names.end(), value) != names.end()) return;
    std::string list;
    for (size_t i = 0; i < names.size(); ++i)
        list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + std::string(names[i]);
    throw std::invalid_argument(flag + " " + value + ": expected " + list);
}

void say(const SessionLog &log, const std::string &line) {
    if (log.info) log.info(line);
}

// Picks the backend for --backend and says why. Returns null for the CPU forward pass (which calls
// the CPU kernels directly); throws when the backend asked for by name is not usable.
std::unique_ptr<kernels::Backend> choose_backend(const std::string &want, std::string *desc) {
    std::string cuda_why = "CUDA not compiled in";
    bool cuda_ok = false;
    for (const kernels::BackendProbe &p : kernels::probe_backends())
        if (p.name == "cuda" && p.compiled) {
            cuda_ok = p.available;
            cuda_why = p.available ? "CUDA device " + p.reason : "CUDA compiled, " + p.reason;
        }
    // auto stays on the CPU pass until the CUDA pass has run its gpu tests on a GPU (it has not:
    // no GPU machine has been available); --backend cuda runs it.
    if (want == "auto" && cuda_ok)
        cuda_why += "; the CUDA pass is not yet validated on a GPU, --backend cuda runs it";
    if (want == "cuda") {
        std::string why;
        auto b = kernels::make_backend("cuda", &why);
        if (!b) throw BackendError("--backend cuda: not usable here: " + (why.empty() ? cuda_why : why));
        *desc = "cuda (" + cuda_why + ")";
        return b;
    }
    if (want == "cpu-device") {
        *desc = "cpu-device (the device forward pass on the CPU backend; " + cuda_why + ")";
        return kernels::make_backend("cpu");
    }
    *desc = "cpu (" + cuda_why + ")";
    return nullptr;
}

// Reads every page of the dense tensors (`dense`) and of the experts (`experts`: read in place) so the
// first tokens do not pay for page faults; reports progress per tensor.
void prefault(const gguf::GgufFile &file, bool dense, bool experts, const SessionLog &log) {
    const runtime::ModelInfo info = runtime::ModelInfo::from_gguf(file);
    const runtime::ExpertSummary sum = runtime::ExpertSummary::from_gguf(file, info);
    auto is_expert = [&](const gguf::TensorInfo &t) {
        for (const auto &l : sum.layers)
            if (&t == l.gate || &t == l.up || &t == l.down) return true;
        return false;
    };
    uint64_t total = 0, done = 0;
    for (const auto &t : file.tensors())
        if (is_expert(t) ? experts : dense) total += file.tensor_data(t).size();
    volatile uint8_t sink = 0;
    for (const auto &t : file.tensors()) {
        if (!(is_expert(t) ? experts : dense)) continue;
        const auto bytes = file.tensor_data(t);
        file.advise_willneed(file.data_offset() + t.offset, bytes.size());
        for (size_t i = 0; i < bytes.size(); i += 4096) sink = static_cast<uint8_t>(sink + bytes[i]);
        done += bytes.size();
        if (log.progress) log.progress(done, total);
    }
}

// A trace this run reads must be of this model: same layers and experts (and top-k when it
// drives the routing) and at least one token. Checked before any of its rows is indexed.
void check_trace_shape(const cache::Trace &t, const std::string &flag, const std::string &path,
                       const Hparams &hp, bool need_top_k) {
    const std::string why =
        cache::trace_mismatch(t, hp.n_layer, hp.n_expert, need_top_k ? hp.n_expert_used : 0);
    if (!why.empty()) throw std::invalid_argument(flag + " " + path + ": " + why);
}

// --pin-hot: counts each expert's uses in the profile trace and pins the most used ones.
void pin_hot_experts(Session &s, const SessionOptions &f, const SessionLog &log) {
    const Hparams &hp = s.model.hparams();
    std::unique_ptr<cache::Trace> own;
    const cache::Trace *profile = s.routing.get();
    if (!f.pin_profile.empty()) {
        own = std::make_unique<cache::Trace>(cache::read_trace(f.pin_profile));
        check_trace_shape(*own, "--pin-profile", f.pin_profile, hp, false);
        profile = own.get();
    }
    if (profile == nullptr)
        throw std::invalid_argument("--pin-hot needs a profile: give --pin-profile or --routing-trace");
    std::vector<uint64_t> uses(size_t{hp.n_layer} * hp.n_expert, 0);
    for (uint64_t t = 0; t < profile->n_tokens(); ++t)
        for (uint32_t l = 0; l < hp.n_layer; ++l)
            for (uint16_t e : profile->experts_at(t, l)) ++uses[size_t{l} * hp.n_expert + e];
    std::vector<uint32_t> order(uses.size());
    for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return uses[a] > uses[b]; });
    std::vector<cache::ExpertId> hot;
    for (uint32_t i = 0; i < std::min<uint32_t>(f.pin_hot, static_cast<uint32_t>(order.size())); ++i)
        hot.push_back({order[i] / hp.n_expert, order[i] % hp.n_expert});
    cache::ExpertCache *cache = s.experts->cache();
    const uint32_t n = cache->pin_permanently(hot);
    say(log, "pinned the " + std::to_string(n) + " most used experts of the profile for good (" +
                 std::to_string(f.pin_hot) + " asked)");
}

}  // namespace

std::unique_ptr<Session> open_session(const std::string &path, const SessionOptions &f, uint32_t n_ctx,
                                      int threads, const SessionLog &log, const gguf::GgufFile *mapped) {
    check_choice("--backend", f.backend, backend_names());
    check_choice("--cpu-fallback", f.cpu_fallback, cpu_fallback_names());
    // --trace-out truncates its file: never one this run reads (the model is mapped: truncating it
    // would destroy it and end the run with SIGBUS).
    if (!f.trace_out.empty())
        for (const std::string &in : {path, f.routing_trace, f.pin_profile})
            if (!in.empty() && same_file(f.trace_out, in))
                throw std::invalid_argument("--trace-out " + f.trace_out + ": is the same file as " + in +
                                            ", which this run reads; give another path");
    auto file = mapped != nullptr ? mapped->share() : gguf::GgufFile::open(path);
    Model model = Model::load(file);
    auto s = std::make_unique<Session>(std::move(file), std::move(model));
    const Hparams &hp = s->model.hparams();
    s->ctx.n_ctx = n_ctx;
    s->ctx.n_threads = threads;
    s->ctx.n_batch = f.n_batch;
    s->ctx.type_k = f.type_k == "f32" ? quant::Type::F32 : quant::Type::F16;
    s->ctx.type_v = f.type_v == "f32" ? quant::Type::F32 : quant::Type::F16;
    s->backend = choose_backend(f.backend, &s->backend_desc);
    MemoryOptions mo;
    if (!f.host_mem.empty()) mo.host_mem = parse_size(f.host_mem);
    if (s->backend) {
        // The device budget holds dense weights, KV cache, workspaces and expert slots (the
        // Context allocates them at start); host RAM holds the experts' host tier.
        const kernels::DeviceInfo di = s->backend->device_info();
        s->ctx.backend = s->backend.get();
        mo.state_on_device = true;
        s->ctx.device_slots = f.device_slots;
        s->ctx.device_mem = !f.device_mem.empty() ? parse_size(f.device_mem)
                            : di.free_memory > 0  ? di.free_memory / 10 * 9
                                                  : 0;
        if (f.policy == "belady")
            throw std::invalid_argument("--cache-policy belady is not available for device slots");
        s->ctx.device_policy = f.policy;  // the device slots are replaced by the cache's policy
        s->ctx.device_prefetch = f.device_prefetch == "none" ? "" : f.device_prefetch;
        s->ctx.cpu_fallback = f.cpu_fallback;
        s->ctx.device_graphs = f.device_graphs;
        s->ctx.exclusive_tiers = f.exclusive_tiers;
        s->ctx.weights_file = &s->file;
    } else {
        if (!f.device_mem.empty()) mo.device_mem = parse_size(f.device_mem);
        if (f.device_slots > 0)
            throw std::invalid_argument("--device-slots needs a device backend (--backend)");
        if (f.cpu_fallback != "off")
            throw std::invalid_argument(
                "--cpu-fallback needs a device backend (--backend); the CPU forward "
                "pass computes every expert on the CPU already");
    }
    mo.force_cache = f.force_cache || f.cache_slots > 0;
    if (!f.routing_trace.empty()) {
        s->routing = std::make_unique<cache::Trace>(cache::read_trace(f.routing_trace));
        check_trace_shape(*s->routing, "--routing-trace", f.routing_trace, hp, true);
        s->ctx.routing = s->routing.get();
        s->ctx.routing_offset = f.routing_offset;
    }
    const uint32_t min_slots = f.per_layer ? hp.n_layer : 1;
    // The experts' byte ranges, computed once for the plan, the cache and the trace header.
    std::vector<cache::ExpertLocation> locs = expert_locations(s->file, s->model);
    s->plan = plan_memory(s->file, locs, s->model, s->ctx, mo, f.cache_slots > 0 ? 0 : min_slots);
    if (f.cache_slots > 0) {
        s->plan.n_slots = static_cast<uint32_t>(std::min<uint64_t>(f.cache_slots, s->plan.n_experts_total));
        s->plan.budget_from_free = false;
    }
    say(log, "backend " + s->backend_desc);
    say(log, s->plan.describe());
    if (s->plan.cached) {
        s->file.advise_random();
        cache::CacheConfig cc;
        cc.n_slots = s->plan.n_slots;
        cc.per_layer = f.per_layer;
        cc.policy = f.policy;
        cc.queue_depth = f.io_depth;
        if (f.policy == "belady") {
            if (!s->routing)
                throw std::invalid_argument("--cache-policy belady needs the future: give --routing-trace");
            s->future = std::make_unique<cache::FutureTrace>(hp.n_layer, hp.n_expert);
            std::vector<std::span<const uint16_t>> per_layer(hp.n_layer);
            for (uint64_t step = 0; step < n_ctx; ++step) {
                const uint64_t at = (f.routing_offset + step) % s->routing->n_tokens();
                for (uint32_t l = 0; l < hp.n_layer; ++l) per_layer[l] = s->routing->experts_at(at, l);
                s->future->push_step(per_layer);
            }
            cc.policy_params.future = s->future.get();
        }
        cc.policy_params.top_k = hp.n_expert_used;
        s->experts = make_cached_experts(s->file, s->model, locs, cc);
        say(log, "expert cache: " + f.policy + " policy, " +
                     (f.per_layer ? "per-layer partitions" : "one partition") + ", reads via " +
                     s->experts->cache()->reader().mode());
        s->ctx.prefetch_next_layer = f.prefetch == "next-layer" || (f.prefetch == "auto" && !s->routing);
        if (f.pin_hot > 0) pin_hot_experts(*s, f, log);
    } else {
        s->experts = make_mapped_experts(s->model);
    }
    s->ctx.experts = s->experts.get();
    // With a backend the dense matrices are read once, for their upload (ContextParams::weights_file).
    prefault(s->file, !s->backend, !s->plan.cached, log);
    if (!f.trace_out.empty()) {
        cache::TraceShape shape;
        shape.n_layers = hp.n_layer;
        shape.n_experts = hp.n_expert;
        shape.top_k = hp.n_expert_used;
        for (const auto &loc : locs)
            if (loc.id.expert == 0) shape.expert_bytes.push_back(loc.bytes());
        shape.model = path;
        s->trace_out = std::make_unique<cache::TraceWriter>(f.trace_out, shape);
        s->trace_out->begin_sequence(0, 0);
        s->ctx.trace_out = s->trace_out.get();
    }
    return s;
}

}  // namespace moerun
