// The device tier: expert slots in a backend's memory (GPU VRAM; host RAM on the CPU backend).
//
// One allocation of n_slots x slot_bytes made at start (the --device-mem budget's expert part).
// An expert occupies one slot: its gate, up and down tensors at 256-byte aligned offsets. Slots
// are filled from host memory (the host tier, or the mapped file) and replaced least recently
// used; the experts of the layer being computed are pinned until end_layer(), so a layer needs
// at least as many slots as it uses distinct experts at once.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "moerun/cache/expert-cache.h"
#include "moerun/cache/expert-id.h"
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
};

class DeviceSlots {
  public:
    // Allocates the pool; throws std::runtime_error (with the backend's message) when it cannot.
    DeviceSlots(kernels::Backend &backend, uint32_t n_slots, uint64_t slot_bytes);
    ~DeviceSlots();
    DeviceSlots(const DeviceSlots &) = delete;
    DeviceSlots &operator=(const DeviceSlots &) = delete;

    // The expert's device copy when resident (counts a hit, marks it used and pins it).
    std::optional<ExpertView> find(ExpertId id);
    // Copies the expert from host memory into a free or least recently used unpinned slot, pins
    // it and returns its device copy (counts a miss). Throws std::runtime_error when every slot
    // is pinned or the copy fails.
    ExpertView load(ExpertId id, const ExpertView &host, const SlotLayout &layout);
    bool resident(ExpertId id) const { return where_.count(id) != 0; }
    // Unpins every slot (the layer's experts are no longer in use).
    void end_layer();

    uint32_t n_slots() const { return n_slots_; }
    uint64_t slot_bytes() const { return slot_bytes_; }
    const DeviceSlotStats &stats() const { return stats_; }

  private:
    struct Slot {
        ExpertId id{};
        SlotLayout layout;
        bool pinned = false;
        std::list<uint32_t>::iterator lru;  // position in lru_ (front: most recent)
    };
    ExpertView view(uint32_t slot) const;

    kernels::Backend &backend_;
    uint32_t n_slots_;
    uint64_t slot_bytes_;
    uint8_t *pool_ = nullptr;
    std::vector<Slot> slots_;
    std::list<uint32_t> lru_;                       // used slots, most recent first
    std::vector<uint32_t> free_;                    // never-used slots
    std::unordered_map<ExpertId, uint32_t> where_;  // resident expert -> slot
    std::vector<uint32_t> pinned_;                  // slots pinned in this layer
    DeviceSlotStats stats_;
};

}  // namespace moerun::cache
