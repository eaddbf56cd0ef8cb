// The expert cache (see expert-cache.h): slots, partitions, demand reads and prefetches.
#include "moerun/cache/expert-cache.h"

#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace moerun::cache {

LayerCacheStats &LayerCacheStats::operator+=(const LayerCacheStats &o) {
    accesses += o.accesses;
    hits += o.hits;
    late_hits += o.late_hits;
    misses += o.misses;
    bytes_read += o.bytes_read;
    prefetch_issued += o.prefetch_issued;
    prefetch_used += o.prefetch_used;
    prefetch_wasted += o.prefetch_wasted;
    prefetch_cancelled += o.prefetch_cancelled;
    evictions += o.evictions;
    adopted += o.adopted;
    released += o.released;
    wait_seconds += o.wait_seconds;
    return *this;
}

namespace {

enum class SlotState : uint8_t { free, loading, ready };

struct Slot {
    ExpertId owner{};
    SlotState state = SlotState::free;
    bool pinned = false;      // requested by the layer being served and not done yet
    bool wanted = false;      // requested by the current layer and not handed out yet
    bool prefetched = false;  // brought in by a prefetch and not used since
    bool permanent = false;   // pinned for good (pin_permanently); unknown to the policy
    bool held = false;        // written or read by a copy still queued (adopt, hold): not evicted
    uint8_t pending = 0;      // reads outstanding
    uint32_t partition = 0;
};

struct Partition {
    std::unique_ptr<Policy> policy;
    std::vector<uint32_t> free_slots;
};

uint64_t part_span(const ByteRange &r) {
    return r.size == 0 ? 0 : NvmeReader::span_bytes(r.offset, r.size);
}

}  // namespace

struct ExpertCache::Impl {
    std::vector<ExpertLocation> locs;
    uint32_t n_layers, n_experts;
    CacheConfig cfg;
    NvmeReader reader;
    uint64_t part_off[3] = {0, 0, 0}, slot_size = 0;
    uint8_t *arena = nullptr;
    size_t arena_bytes = 0;
    std::vector<Slot> slots;
    std::vector<int32_t> slot_of;  // [n_layers * n_experts] -> slot or -1
    std::vector<Partition> parts;
    std::vector<LayerCacheStats> stats;

    // The layer being served.
    uint32_t layer = 0;
    uint64_t step = 0;
    std::vector<uint16_t> ready, misses;  // ready to hand out; not issued yet (demand)
    size_t miss_head = 0, ready_head = 0;
    size_t outstanding = 0;  // requested experts not handed out yet
    size_t n_pinned = 0;     // slots pinned by the layer being served (done() not called yet)
    // Slots held (adopt with held, hold) until unhold_all; a slot released meanwhile may stay
    // listed. Capacity n_slots: no allocation later.
    std::vector<uint32_t> held;
    // Prefetch queue (FIFO, bounded, no allocation): ids not issued yet.
    std::vector<ExpertId> pf_queue;
    size_t pf_head = 0;
    std::vector<uint8_t> pf_queued;  // [n_layers * n_experts]

    Impl(const std::string &path, std::vector<ExpertLocation> l, uint32_t nl, uint32_t ne, CacheConfig c)
        : locs(std::move(l)), n_layers(nl), n_experts(ne), cfg(std::move(c)), reader(path, cfg.queue_depth) {}

    uint64_t now() const { return step * n_layers + layer; }
    size_t key(ExpertId id) const { return size_t{id.layer} * n_experts + id.expert; }
    uint32_t partition_of(uint32_t l) const { return cfg.per_layer ? l : 0; }
    uint8_t *slot_data(uint32_t s) const { return arena + uint64_t{s} * slot_size; }

    static bool evictable_fn(const void *ctx, ExpertId id) {
        const auto *m = static_cast<const Impl *>(ctx);
        const int32_t s = m->slot_of[m->key(id)];
        if (s < 0) return false;
        const Slot &sl = m->slots[static_cast<size_t>(s)];
        return !sl.pinned && !sl.permanent && !sl.held && sl.state == SlotState::ready;
    }

    // A slot of partition p for a new entry: a free one, else the policy's victim. -1 if none.
    int32_t take_slot(uint32_t p) {
        Partition &part = parts[p];
        if (!part.free_slots.empty()) {
            const uint32_t s = part.free_slots.back();
            part.free_slots.pop_back();
            return static_cast<int32_t>(s);
        }
        const auto victim = part.policy->victim(Evictable{&evictable_fn, this}, now());
        if (!victim) return -1;
        const int32_t s = slot_of[key(*victim)];
        if (s < 0 || !evictable_fn(this, *victim))
            throw std::logic_error("cache policy " + std::string(part.policy->name()) +
                                   " chose a victim that is not evictable");
        Slot &sl = slots[static_cast<size_t>(s)];
        part.policy->on_evict(sl.owner);
        LayerCacheStats &st = stats[sl.owner.layer];
        ++st.evictions;
        if (sl.prefetched) ++st.prefetch_wasted;
        slot_of[key(sl.owner)] = -1;
        sl = Slot{};
        sl.partition = p;
        return s;
    }

    void load(uint32_t s, ExpertId id) {
        Slot &sl = slots[s];
        sl.owner = id;
        sl.state = SlotState::loading;
        slot_of[key(id)] = static_cast<int32_t>(s);
        const ExpertLocation &loc = locs[key(id)];
        const ByteRange *r[3] = {&loc.gate, &loc.up, &loc.down};
        sl.pending = 0;
        for (int p = 0; p < 3; ++p)
            if (r[p]->size > 0) ++sl.pending;
        for (uint32_t p = 0; p < 3; ++p)
            if (r[p]->size > 0)
                reader.submit({r[p]->offset, r[p]->size, slot_data(s) + part_off[p], uint64_t{s} * 4 + p});
        stats[id.layer].bytes_read += loc.bytes();
        if (sl.pending == 0) sl.state = SlotState::ready;
    }

    void on_read_done(uint64_t tag) {
        Slot &sl = slots[static_cast<size_t>(tag / 4)];
        if (--sl.pending > 0) return;
        sl.state = SlotState::ready;
        if (sl.wanted && sl.owner.layer == layer) ready.push_back(static_cast<uint16_t>(sl.owner.expert));
    }

    // Issues the current layer's demand reads while slots can be found.
    // The next ready expert of the current layer (hits first, then reads as they land), marked
    // handed out; when none is ready, waits for a read if `wait`, else returns nullopt.
    std::optional<uint16_t> take_ready(bool wait) {
        if (outstanding == 0) return std::nullopt;
        auto on_done = [this](uint64_t tag) { on_read_done(tag); };
        reader.poll(on_done);
        while (ready_head == ready.size()) {
            issue_misses();
            if (ready_head < ready.size()) break;
            if (!wait) return std::nullopt;
            if (reader.outstanding() == 0)
                throw std::logic_error(
                    "expert cache: no slot can be freed (call done() for handed-out experts)");
            const auto t0 = std::chrono::steady_clock::now();
            reader.wait_one(on_done);
            stats[layer].wait_seconds +=
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        const uint16_t e = ready[ready_head++];
        slots[static_cast<size_t>(slot_of[key({layer, e})])].wanted = false;
        --outstanding;
        return e;
    }

    void issue_misses() {
        while (miss_head < misses.size()) {
            const ExpertId id{layer, misses[miss_head]};
            const int32_t s = take_slot(partition_of(layer));
            if (s < 0) return;
            ++miss_head;
            Slot &sl = slots[static_cast<size_t>(s)];
            sl.pinned = sl.wanted = true;
            ++n_pinned;
            sl.prefetched = false;
            load(static_cast<uint32_t>(s), id);
            parts[sl.partition].policy->on_insert(id, now(), false);
            if (sl.state == SlotState::ready) ready.push_back(static_cast<uint16_t>(id.expert));
        }
    }

    // Issues queued prefetches when no demand read waits and the queue has room.
    void pump_prefetch() {
        while (pf_head < pf_queue.size() && miss_head == misses.size() &&
               reader.outstanding() < cfg.queue_depth) {
            const ExpertId id = pf_queue[pf_head];
            if (slot_of[key(id)] >= 0) {  // arrived meanwhile (demand)
                pf_queued[key(id)] = 0;
                ++pf_head;
                continue;
            }
            const int32_t s = take_slot(partition_of(id.layer));
            if (s < 0) return;
            ++pf_head;
            pf_queued[key(id)] = 0;
            Slot &sl = slots[static_cast<size_t>(s)];
            sl.prefetched = true;
            load(static_cast<uint32_t>(s), id);
            parts[sl.partition].policy->on_insert(id, now(), true);
            ++stats[id.layer].prefetch_issued;
        }
        if (pf_head == pf_queue.size()) pf_queue.clear(), pf_head = 0;
    }

    void cancel_stale_prefetches() {
        // Everything still queued for this layer or an earlier one is stale: the routing is known.
        size_t keep = pf_head;
        for (size_t i = pf_head; i < pf_queue.size(); ++i) {
            const ExpertId id = pf_queue[i];
            if (id.layer <= layer) {
                pf_queued[key(id)] = 0;
                ++stats[id.layer].prefetch_cancelled;
            } else {
                pf_queue[keep++] = id;
            }
        }
        pf_queue.resize(keep);
    }
};

uint64_t ExpertCache::slot_bytes(std::span<const ExpertLocation> locations) {
    uint64_t m[3] = {0, 0, 0};
    for (const ExpertLocation &l : locations) {
        m[0] = std::max(m[0], part_span(l.gate));
        m[1] = std::max(m[1], part_span(l.up));
        m[2] = std::max(m[2], part_span(l.down));
    }
    return m[0] + m[1] + m[2];
}

ExpertCache::ExpertCache(const std::string &path, std::vector<ExpertLocation> locations, uint32_t n_layers,
                         uint32_t n_experts, CacheConfig config)
    : impl_(std::make_unique<Impl>(path, std::move(locations), n_layers, n_experts, std::move(config))) {
    Impl &m = *impl_;
    if (m.locs.size() != size_t{n_layers} * n_experts)
        throw std::invalid_argument("expert cache: " + std::to_string(m.locs.size()) + " locations for " +
                                    std::to_string(n_layers) + " layers x " + std::to_string(n_experts) +
                                    " experts");
    const uint32_t n_parts = m.cfg.per_layer ? n_layers : 1;
    if (m.cfg.n_slots < n_parts)
        throw std::invalid_argument("expert cache: " + std::to_string(m.cfg.n_slots) +
                                    " slots cannot serve " + std::to_string(n_parts) +
                                    " partitions (at least one slot each)");
    for (const ExpertLocation &l : m.locs) {
        m.part_off[1] = std::max(m.part_off[1], part_span(l.gate));
        m.part_off[2] = std::max(m.part_off[2], part_span(l.up));
    }
    m.part_off[2] += m.part_off[1];
    m.slot_size = slot_bytes(m.locs);
    m.arena_bytes = std::max<uint64_t>(m.slot_size * m.cfg.n_slots, NvmeReader::kAlign);
    void *p = mmap(nullptr, m.arena_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
    if (p == MAP_FAILED)
        throw std::runtime_error("expert cache: cannot allocate " + std::to_string(m.arena_bytes) +
                                 " bytes for " + std::to_string(m.cfg.n_slots) + " slots");
    m.arena = static_cast<uint8_t *>(p);
    m.slots.resize(m.cfg.n_slots);
    m.held.reserve(m.cfg.n_slots);
    m.slot_of.assign(m.locs.size(), -1);
    m.pf_queued.assign(m.locs.size(), 0);
    m.pf_queue.reserve(m.locs.size());
    m.ready.reserve(n_experts);
    m.misses.reserve(n_experts);
    m.stats.resize(n_layers);
    m.parts.resize(n_parts);
    for (uint32_t pi = 0; pi < n_parts; ++pi) {
        // Per-layer: slots split evenly (the first n_slots % n_layers partitions get one more).
        const uint32_t cap = m.cfg.n_slots / n_parts + (pi < m.cfg.n_slots % n_parts ? 1 : 0);
        PolicyParams pp = m.cfg.policy_params;
        pp.capacity = cap;
        pp.n_layers = n_layers;
        pp.n_experts = n_experts;
        m.parts[pi].policy = make_policy(m.cfg.policy, pp);
        m.parts[pi].free_slots.reserve(cap);
    }
    std::vector<uint32_t> count(n_parts, 0);
    for (uint32_t s = m.cfg.n_slots; s-- > 0;) {
        const uint32_t pi = s % n_parts;
        m.slots[s].partition = pi;
        m.parts[pi].free_slots.push_back(s);
    }
}

ExpertCache::~ExpertCache() {
    Impl &m = *impl_;
    // Drain reads into the arena before unmapping it.
    while (m.reader.outstanding() > 0) {
        try {
            if (m.reader.wait_one([](uint64_t) {}) == 0) break;
        } catch (...) {
            // a failed read: keep draining the others
        }
    }
    if (m.arena != nullptr) munmap(m.arena, m.arena_bytes);
}

void ExpertCache::begin_step(uint64_t step) {
    impl_->step = step;
    impl_->reader.check_unchanged();
}

void ExpertCache::begin_layer(uint32_t layer, std::span<const uint16_t> experts) {
    Impl &m = *impl_;
    if (m.outstanding != 0)
        throw std::logic_error("expert cache: begin_layer before the previous layer finished");
    if (m.n_pinned != 0) throw std::logic_error("expert cache: begin_layer while an expert is still in use");
    if (!m.held.empty())
        throw std::logic_error("expert cache: begin_layer while slots are held (unhold_all first)");
    m.layer = layer;
    m.ready.clear();
    m.misses.clear();
    m.ready_head = m.miss_head = 0;
    m.cancel_stale_prefetches();
    LayerCacheStats &st = m.stats[layer];
    Policy &policy = *m.parts[m.partition_of(layer)].policy;
    for (uint16_t e : experts) {
        if (e >= m.n_experts)
            throw std::out_of_range("expert cache: expert " + std::to_string(e) + " of layer " +
                                    std::to_string(layer) + " is out of range");
        ++st.accesses;
        ++m.outstanding;
        const int32_t s = m.slot_of[m.key({layer, e})];
        if (s < 0) {
            ++st.misses;
            m.misses.push_back(e);
            continue;
        }
        Slot &sl = m.slots[static_cast<size_t>(s)];
        if (sl.pinned) throw std::invalid_argument("expert cache: expert requested twice in one layer");
        sl.pinned = sl.wanted = true;
        ++m.n_pinned;
        if (sl.prefetched) ++st.prefetch_used;
        sl.prefetched = false;
        if (!sl.permanent) policy.on_hit({layer, e}, m.now());
        if (sl.state == SlotState::ready) {
            ++st.hits;
            m.ready.push_back(e);
        } else {
            ++st.late_hits;
        }
    }
    m.issue_misses();
}

std::optional<uint16_t> ExpertCache::next() {
    return impl_->take_ready(true);
}

std::optional<uint16_t> ExpertCache::try_next() {
    return impl_->take_ready(false);
}

ExpertView ExpertCache::view(uint32_t layer, uint16_t expert) const {
    const Impl &m = *impl_;
    const int32_t s = m.slot_of[m.key({layer, expert})];
    if (s < 0 || m.slots[static_cast<size_t>(s)].state != SlotState::ready)
        throw std::logic_error("expert cache: view of an expert that is not resident");
    const ExpertLocation &loc = m.locs[m.key({layer, expert})];
    const uint8_t *base = m.slot_data(static_cast<uint32_t>(s));
    return {base + m.part_off[0] + NvmeReader::lead(loc.gate.offset),
            base + m.part_off[1] + NvmeReader::lead(loc.up.offset),
            base + m.part_off[2] + NvmeReader::lead(loc.down.offset)};
}

void ExpertCache::done(uint32_t layer, uint16_t expert) {
    Impl &m = *impl_;
    const int32_t s = m.slot_of[m.key({layer, expert})];
    if (s < 0) throw std::logic_error("expert cache: done() for an expert that is not resident");
    Slot &sl = m.slots[static_cast<size_t>(s)];
    if (sl.pinned) {
        sl.pinned = false;
        --m.n_pinned;
    }
    m.issue_misses();
    m.pump_prefetch();
}

void ExpertCache::prefetch(uint32_t layer, std::span<const uint16_t> experts) {
    Impl &m = *impl_;
    for (uint16_t e : experts) {
        if (layer >= m.n_layers || e >= m.n_experts) continue;
        const size_t k = m.key({layer, e});
        if (m.slot_of[k] >= 0 || m.pf_queued[k] != 0 || m.pf_queue.size() == m.pf_queue.capacity()) continue;
        m.pf_queued[k] = 1;
        m.pf_queue.push_back({layer, e});
    }
    m.pump_prefetch();
}

uint32_t ExpertCache::pin_permanently(std::span<const ExpertId> experts) {
    Impl &m = *impl_;
    uint32_t pinned = 0;
    for (const ExpertId id : experts) {
        if (id.layer >= m.n_layers || id.expert >= m.n_experts || m.slot_of[m.key(id)] >= 0) continue;
        Partition &part = m.parts[m.partition_of(id.layer)];
        if (part.free_slots.size() <= 1) continue;  // keep one slot for the policy
        const uint32_t s = part.free_slots.back();
        part.free_slots.pop_back();
        m.slots[s].permanent = true;
        m.load(s, id);
        ++pinned;
    }
    while (m.reader.outstanding() > 0) m.reader.wait_one([&m](uint64_t tag) { m.on_read_done(tag); });
    return pinned;
}

bool ExpertCache::adopt(uint32_t layer, uint16_t expert, Fill fill, void *ctx, bool held) {
    Impl &m = *impl_;
    if (layer >= m.n_layers || expert >= m.n_experts)
        throw std::out_of_range("expert cache: adopt of expert " + std::to_string(expert) + " of layer " +
                                std::to_string(layer) + ", out of range");
    const ExpertId id{layer, expert};
    if (m.slot_of[m.key(id)] >= 0) return false;
    const uint32_t p = m.partition_of(layer);
    const int32_t s = m.take_slot(p);
    if (s < 0) return false;
    Slot &sl = m.slots[static_cast<size_t>(s)];
    const ExpertLocation &loc = m.locs[m.key(id)];
    uint8_t *base = m.slot_data(static_cast<uint32_t>(s));
    try {
        fill(ctx, base + m.part_off[0] + NvmeReader::lead(loc.gate.offset),
             base + m.part_off[1] + NvmeReader::lead(loc.up.offset),
             base + m.part_off[2] + NvmeReader::lead(loc.down.offset));
    } catch (...) {
        m.parts[p].free_slots.push_back(static_cast<uint32_t>(s));
        throw;
    }
    sl.owner = id;
    sl.state = SlotState::ready;
    sl.held = held;
    if (held) m.held.push_back(static_cast<uint32_t>(s));
    m.slot_of[m.key(id)] = s;
    m.parts[p].policy->on_insert(id, m.now(), false);
    ++m.stats[layer].adopted;
    return true;
}

bool ExpertCache::hold(uint32_t layer, uint16_t expert) {
    Impl &m = *impl_;
    if (layer >= m.n_layers || expert >= m.n_experts) return false;
    const int32_t s = m.slot_of[m.key({layer, expert})];
    if (s < 0 || m.slots[static_cast<size_t>(s)].state != SlotState::ready) return false;
    Slot &sl = m.slots[static_cast<size_t>(s)];
    if (!sl.held) m.held.push_back(static_cast<uint32_t>(s));
    sl.held = true;
    return true;
}

void ExpertCache::unhold_all() {
    Impl &m = *impl_;
    for (const uint32_t s : m.held) m.slots[s].held = false;
    m.held.clear();
}

bool ExpertCache::release(uint32_t layer, uint16_t expert) {
    Impl &m = *impl_;
    if (layer >= m.n_layers || expert >= m.n_experts) return false;
    const ExpertId id{layer, expert};
    const int32_t s = m.slot_of[m.key(id)];
    if (s < 0) return false;
    Slot &sl = m.slots[static_cast<size_t>(s)];
    if (sl.state != SlotState::ready || sl.pinned || sl.wanted || sl.permanent) return false;
    Partition &part = m.parts[sl.partition];
    part.policy->on_evict(id);
    m.slot_of[m.key(id)] = -1;
    const uint32_t p = sl.partition;
    sl = Slot{};
    sl.partition = p;
    part.free_slots.push_back(static_cast<uint32_t>(s));
    ++m.stats[layer].released;
    return true;
}

bool ExpertCache::resident(uint32_t layer, uint16_t expert) const {
    const int32_t s = impl_->slot_of[impl_->key({layer, expert})];
    return s >= 0 && impl_->slots[static_cast<size_t>(s)].state == SlotState::ready;
}
uint32_t ExpertCache::n_slots() const {
    return impl_->cfg.n_slots;
}
uint64_t ExpertCache::slot_size() const {
    return impl_->slot_size;
}

std::span<const uint8_t> ExpertCache::arena() const {
    return {impl_->arena, impl_->arena_bytes};
}
const std::vector<LayerCacheStats> &ExpertCache::stats() const {
    return impl_->stats;
}
void ExpertCache::reset_stats() {
    for (LayerCacheStats &s : impl_->stats) s = LayerCacheStats{};
}
const NvmeReader &ExpertCache::reader() const {
    return impl_->reader;
}
NvmeReader &ExpertCache::reader() {
    return impl_->reader;
}

}  // namespace moerun::cache
