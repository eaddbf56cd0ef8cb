// The expert cache: a fixed pool of RAM slots over the NVMe tier (the GGUF file).
//
// Slots are allocated once, at construction (one anonymous mapping, pre-faulted so the memory
// it promises is the memory it uses); nothing is allocated on the decode path. Each slot holds
// one expert: its gate, up and down slices at kAlign-aligned places. Slots belong to partitions
// (one per layer, or one for the model) and a Policy per partition picks victims.
//
// Serving one layer (decode: one token; prefill: every expert a batch needs, streamed):
//   cache.begin_layer(layer, experts);       // pins hits, queues misses (demand reads first)
//   while (auto e = cache.next())             // a ready expert: hits first, then misses as they land
//       { compute(*e, cache.view(layer, *e)); cache.done(layer, *e); }   // done() unpins it
//   cache.prefetch(layer + 1, predicted);     // any time: low priority, never evicts pinned slots
// Reads of one layer's misses are issued together (queue depth > 1) as slots free up, so a batch
// that needs more experts than there are slots streams through them. Prefetches wait behind
// demand reads; prefetches still queued when their layer begins are cancelled (stale).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "moerun/cache/expert-id.h"
#include "moerun/cache/nvme-reader.h"
#include "moerun/cache/policy.h"

namespace moerun::cache {

struct ExpertView {
    const uint8_t *gate = nullptr, *up = nullptr, *down = nullptr;
};

struct CacheConfig {
    uint32_t n_slots = 0;    // total slots (per-layer partitions split them evenly)
    bool per_layer = false;  // one partition per layer (else one for the whole model)
    std::string policy = "lru";
    PolicyParams policy_params;  // capacity, n_layers, n_experts are filled in by the cache
    unsigned queue_depth = 32;   // NVMe reads in flight
};

struct LayerCacheStats {
    uint64_t accesses = 0;    // expert uses requested
    uint64_t hits = 0;        // resident and ready when requested
    uint64_t late_hits = 0;   // being prefetched when requested (counted as hits, waited for)
    uint64_t misses = 0;      // read on demand
    uint64_t bytes_read = 0;  // from the NVMe tier (demand + prefetch)
    uint64_t prefetch_issued = 0, prefetch_used = 0, prefetch_wasted = 0, prefetch_cancelled = 0;
    uint64_t evictions = 0;
    uint64_t adopted = 0;     // experts written into slots by the caller (adopt), not read
    uint64_t released = 0;    // experts dropped at the caller's word (release)
    double wait_seconds = 0;  // time blocked waiting for reads
    uint64_t hit_total() const { return hits + late_hits; }
    LayerCacheStats &operator+=(const LayerCacheStats &o);
};

class ExpertCache {
  public:
    // locations: [n_layers * n_experts], index layer * n_experts + expert. Throws
    // std::invalid_argument when the slot count cannot serve a layer (fewer than one slot per
    // partition) and IoError when the file cannot be opened.
    ExpertCache(const std::string &path, std::vector<ExpertLocation> locations, uint32_t n_layers,
                uint32_t n_experts, CacheConfig config);
    ~ExpertCache();
    ExpertCache(const ExpertCache &) = delete;
    ExpertCache &operator=(const ExpertCache &) = delete;

    // Bytes of one slot and of the whole pool, for a slot count (to size it from a budget).
    static uint64_t slot_bytes(std::span<const ExpertLocation> locations);

    // The routing clock advances: one step per token. Also checks that the file is unchanged.
    void begin_step(uint64_t step);
    // Starts serving `experts` (distinct ids) of `layer`. The previous layer must be finished.
    void begin_layer(uint32_t layer, std::span<const uint16_t> experts);
    // The next expert of the current layer that is ready to compute (blocking on reads), or
    // nullopt when every requested expert has been handed out.
    std::optional<uint16_t> next();
    // Like next() without waiting: an expert that is resident now, or nullopt when none is (reads
    // may still be under way: next() waits for them).
    std::optional<uint16_t> try_next();
    ExpertView view(uint32_t layer, uint16_t expert) const;  // valid until done()
    void done(uint32_t layer, uint16_t expert);
    // Low-priority reads of experts predicted for a later layer (or step).
    void prefetch(uint32_t layer, std::span<const uint16_t> experts);
    // Reads `experts` now and keeps them resident for good (e.g. the hottest ones of a profile):
    // they take slots of their partition that the policy never sees. At most all but one slot of
    // a partition can be pinned; the rest are skipped. Returns how many were pinned.
    uint32_t pin_permanently(std::span<const ExpertId> experts);

    // Exclusive tiers (a device tier above this cache): the caller keeps an expert's bytes
    // elsewhere and hands them back when it drops them there.
    // adopt() takes a slot of the expert's partition (a free one, else the policy's victim) and
    // has fill(gate, up, down) write the expert's three tensors at the places its view will give;
    // the expert is then resident as if read. Returns false (and calls nothing) when the expert is
    // resident or being read already, or no slot can be taken; when fill throws, the slot is left
    // free and the exception passes on. Slots are taken as reads take them, so the caller makes
    // sure no copy still reads a slot the policy may choose (as before begin_layer).
    // held: fill only queued the copies that write the slot (a device-to-host copy on a queue):
    // the slot is resident (resident() is true, its view valid for copies queued after those)
    // but no policy evicts it until unhold_all(), which the caller calls once it has waited
    // for the copies, and before begin_layer (which refuses held slots). A release() meanwhile
    // frees it (for copies queued after those: the caller orders them).
    using Fill = void (*)(void *ctx, uint8_t *gate, uint8_t *up, uint8_t *down);
    bool adopt(uint32_t layer, uint16_t expert, Fill fill, void *ctx, bool held = false);
    // Holds a resident expert's slot the same way: e.g. the source of a copy about to be queued,
    // which an adopt() for that copy's victim must not take. False when it is not resident.
    bool hold(uint32_t layer, uint16_t expert);
    // Ends every hold (adopt with held, hold): the slots are the policy's again.
    void unhold_all();
    // Frees the expert's slot (its bytes now live elsewhere). Returns false, and keeps it, when it
    // is not resident and read, or is requested by the layer being served, or pinned for good.
    bool release(uint32_t layer, uint16_t expert);

    // Resident and read (its view is valid until a later call of this cache refills the slot).
    bool resident(uint32_t layer, uint16_t expert) const;
    uint32_t n_slots() const;
    uint64_t slot_size() const;
    // The slots' memory (one page-aligned range, for the lifetime of the cache): a device backend
    // page-locks it so that copies out of slots run without staging.
    std::span<const uint8_t> arena() const;
    const std::vector<LayerCacheStats> &stats() const;  // [n_layers]
    void reset_stats();
    const NvmeReader &reader() const;
    NvmeReader &reader();

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace moerun::cache
