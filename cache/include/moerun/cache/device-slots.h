// The device tier: expert slots in a backend's memory (GPU VRAM; host RAM on the CPU backend).
//
// One allocation of n_slots x slot_bytes made at start (the --device-mem budget's expert part).
// An expert occupies one slot: its gate, up and down tensors at 256-byte aligned offsets, or, when
// its three host tensors lie in one span that fits a slot (a host cache slot), that whole span
// copied in one transfer at the same offsets (alignment mod 256 kept). Slots
// are filled from host memory (the host tier, or the mapped file) and replaced by a cache Policy
// (one partition over every slot; least-stale by default in the runtime). The routing clock is
// the cache's: now = step * n_layers + layer, set by begin_layer().
//
// Pins: the experts the current layer uses (find, load) are pinned until end_layer(), so a layer
// needs at least as many slots as it uses distinct experts at once. A prefetch pins its slot
// until the end of the layer it was made for. Pinned slots are never chosen as victims.
//
// Copies: load() copies on the backend's compute queue (ordered with the kernels that follow).
// load_async() and prefetch() copy on its copy queue, beside the kernels; each slot remembers the
// number of the copy that filled it. Before a kernel reads the experts handed out since
// end_layer() (find, load, load_async), the caller makes compute wait for copy number
// ready_after() (Backend::compute_wait_copy): only for the copies the layer reads, so a demand
// copy never waits behind a mispredicted prefetch. The host waits for the copies before their
// host source changes (Backend::wait_compute for load(), wait_copies for the copy queue). A
// load() into a slot whose queued copy may not have run yet first makes compute wait for that
// copy, so it cannot land later over the new expert. A prefetch's victim is never pinned, so no
// kernel still queued reads it when the caller has synchronised with every earlier layer (the
// device pass does, when it downloads the router logits).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "moerun/cache/expert-cache.h"
#include "moerun/cache/expert-id.h"
#include "moerun/cache/policy.h"
#include "moerun/kernels/backend.h"

namespace moerun::cache {

// Where an expert's tensors lie in a slot.
struct SlotLayout {
    uint64_t gate_bytes = 0, up_bytes = 0, down_bytes = 0;
    uint64_t up_offset() const;
    uint64_t down_offset() const;
    uint64_t bytes() const;  // the slot size this expert needs
};

// The slot size that holds every one of these experts (e.g. one layout per layer).
uint64_t slot_bytes_for(std::span<const SlotLayout> layouts);

struct DeviceSlotStats {
    uint64_t hits = 0, misses = 0, evictions = 0, bytes_uploaded = 0;
    uint64_t transfers = 0;  // host-to-device copies issued (1 per expert from one span, else 3)
    uint64_t batches = 0;    // upload_batch calls (end_batch, 2 copies or more) that issued some of them,
    uint64_t batched = 0;    // and the transfers they issued
    uint64_t prefetch_issued = 0;  // prefetch copies (their bytes are in bytes_uploaded)
    uint64_t prefetch_used = 0;    // prefetched experts found by their layer (counted as hits too)
    uint64_t prefetch_wasted = 0;  // prefetched experts evicted before any use
};

class DeviceSlots {
  public:
    // Allocates the pool; throws std::runtime_error (with the backend's message) when it cannot,
    // std::invalid_argument for an unknown policy or a shape the policy cannot serve. `params`
    // gives n_layers, n_experts and top_k (capacity is n_slots).
    DeviceSlots(kernels::Backend &backend, uint32_t n_slots, uint64_t slot_bytes, const std::string &policy,
                PolicyParams params);
    ~DeviceSlots();
    DeviceSlots(const DeviceSlots &) = delete;
    DeviceSlots &operator=(const DeviceSlots &) = delete;

    // The routing clock of the layer about to be served (non-decreasing).
    void begin_layer(uint64_t now);
    // The expert's device copy when resident (counts a hit, tells the policy, pins it).
    std::optional<ExpertView> find(ExpertId id);
    // Copies the expert from host memory into a free slot or the policy's victim, pins it and
    // returns its device copy (counts a miss). Throws std::runtime_error when every slot is
    // pinned or the copy fails.
    ExpertView load(ExpertId id, const ExpertView &host, const SlotLayout &layout);
    // Between begin_batch() and end_batch(), load() only notes its copies (the views it returns
    // are valid for work queued after end_batch), and end_batch() issues them all in one
    // Backend::upload_batch call: a decode layer's misses go in one call. end_batch() throws
    // std::runtime_error when the copies cannot be issued.
    void begin_batch() { batching_ = true; }
    bool batching() const { return batching_; }
    void end_batch();
    // load() on the backend's copy queue: returns at once; see Copies above for the two waits.
    ExpertView load_async(ExpertId id, const ExpertView &host, const SlotLayout &layout);
    // Starts copying the expert for the layer at clock `until` (> now) on the copy queue, and pins
    // it until that layer ends. `host` must stay valid until the copy has run. Returns false (and
    // copies nothing) when it is resident already or every slot is pinned; throws
    // std::runtime_error when the copy cannot be issued.
    bool prefetch(ExpertId id, const ExpertView &host, const SlotLayout &layout, uint64_t until);
    bool resident(ExpertId id) const { return where_.count(id) != 0; }
    // Called when the policy evicts an expert, before its slot is refilled, with its device copy
    // (whose copy into the slot the caller must have waited for before reading it) and whether a
    // prefetch() evicts it: an exclusive host tier takes the expert back (ExpertCache::adopt).
    using Evicted = void (*)(void *ctx, ExpertId id, const ExpertView &device, bool for_prefetch);
    void on_evict(Evicted f, void *ctx) { evicted_ = f, evicted_ctx_ = ctx; }
    // Unpins the current layer's experts (prefetches for later layers stay pinned).
    void end_layer();
    // The copy-queue number that compute must wait for before reading the experts handed out
    // since the last end_layer() (0: none of them was copied on the copy queue).
    uint64_t ready_after() const { return ready_after_; }

    uint32_t n_slots() const { return n_slots_; }
    uint64_t slot_bytes() const { return slot_bytes_; }
    std::string_view policy() const { return policy_->name(); }
    const DeviceSlotStats &stats() const { return stats_; }

  private:
    struct Slot {
        ExpertId id{};
        uint64_t off[3] = {};     // gate, up, down offsets in the slot
        uint64_t pin_until = 0;   // pinned while now_ < pin_until (clock + 1 of the last layer it serves)
        bool prefetched = false;  // copied by prefetch() and not used yet
        uint64_t copy_no = 0;     // the copy-queue copy that filled it (0: the compute queue's)
    };
    ExpertView view(uint32_t slot) const;
    // A free slot, or the policy's victim among the unpinned ones (evicted); nullopt when none.
    std::optional<uint32_t> take_slot(bool for_prefetch);
    void assign(uint32_t s, ExpertId id, uint64_t pin_until);
    // std::invalid_argument when the expert does not fit a slot.
    void check_fits(ExpertId id, const SlotLayout &layout) const;
    // Places the expert in slot s (offsets) and copies it there: one transfer of its host span when
    // that fits a slot, else one per tensor; on the compute queue, or the copy queue (async).
    void copy(uint32_t s, ExpertId id, const ExpertView &host, const SlotLayout &layout, bool async);
    ExpertView load_on(ExpertId id, const ExpertView &host, const SlotLayout &layout, bool async);
    static bool evictable(const void *ctx, ExpertId id);

    kernels::Backend &backend_;
    uint32_t n_slots_;
    uint64_t slot_bytes_;
    uint8_t *pool_ = nullptr;
    std::unique_ptr<Policy> policy_;
    std::vector<Slot> slots_;
    std::vector<uint32_t> free_;                    // never-used slots
    std::unordered_map<ExpertId, uint32_t> where_;  // resident expert -> slot
    std::vector<uint32_t> pinned_;                  // slots pinned by the current layer
    uint64_t now_ = 0;
    uint64_t ready_after_ = 0;
    bool batching_ = false;
    std::vector<kernels::Backend::Upload> batch_;  // load()'s copies noted since begin_batch()
    DeviceSlotStats stats_;
    Evicted evicted_ = nullptr;
    void *evicted_ctx_ = nullptr;
};

}  // namespace moerun::cache
