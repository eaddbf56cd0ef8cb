// Device expert slots: one pool allocation, LRU replacement among unpinned slots.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "moerun/cache/device-slots.h"

namespace moerun::cache {

namespace {
constexpr uint64_t kAlign = 256;  // device loads of a tensor start at a 256-byte boundary
uint64_t align_up(uint64_t n) {
    return (n + kAlign - 1) / kAlign * kAlign;
}
}  // namespace

uint64_t SlotLayout::up_offset() const {
    return align_up(gate_bytes);
}
uint64_t SlotLayout::down_offset() const {
    return up_offset() + align_up(up_bytes);
}
uint64_t SlotLayout::bytes() const {
    return down_offset() + align_up(down_bytes);
}

uint64_t slot_bytes_for(std::span<const SlotLayout> layouts) {
    uint64_t most = 0;
    for (const SlotLayout &l : layouts) most = std::max(most, l.bytes());
    return most;
}

DeviceSlots::DeviceSlots(kernels::Backend &backend, uint32_t n_slots, uint64_t slot_bytes)
    : backend_(backend), n_slots_(n_slots), slot_bytes_(align_up(slot_bytes)), slots_(n_slots) {
    if (n_slots == 0 || slot_bytes == 0)
        throw std::invalid_argument("device slots: need at least one slot of > 0 bytes");
    pool_ = static_cast<uint8_t *>(backend_.alloc(static_cast<size_t>(slot_bytes_ * n_slots_)));
    if (pool_ == nullptr)
        throw std::runtime_error("device slots: cannot allocate " + std::to_string(n_slots_) + " x " +
                                 std::to_string(slot_bytes_) + " bytes on " + std::string(backend_.name()) +
                                 ": " + backend_.last_error());
    free_.reserve(n_slots_);
    for (uint32_t s = n_slots_; s-- > 0;) free_.push_back(s);  // slot 0 first
}

DeviceSlots::~DeviceSlots() {
    backend_.free(pool_);
}

ExpertView DeviceSlots::view(uint32_t s) const {
    const uint8_t *base = pool_ + uint64_t{s} * slot_bytes_;
    const SlotLayout &l = slots_[s].layout;
    return {base, base + l.up_offset(), base + l.down_offset()};
}

std::optional<ExpertView> DeviceSlots::find(ExpertId id) {
    const auto it = where_.find(id);
    if (it == where_.end()) return std::nullopt;
    Slot &s = slots_[it->second];
    lru_.splice(lru_.begin(), lru_, s.lru);
    if (!s.pinned) {
        s.pinned = true;
        pinned_.push_back(it->second);
    }
    ++stats_.hits;
    return view(it->second);
}

ExpertView DeviceSlots::load(ExpertId id, const ExpertView &host, const SlotLayout &layout) {
    if (layout.bytes() > slot_bytes_)
        throw std::invalid_argument("device slots: expert of layer " + std::to_string(id.layer) + " needs " +
                                    std::to_string(layout.bytes()) + " bytes, slots hold " +
                                    std::to_string(slot_bytes_));
    if (where_.count(id) != 0) throw std::logic_error("device slots: expert loaded twice");
    uint32_t s = 0;
    if (!free_.empty()) {
        s = free_.back();
        free_.pop_back();
    } else {
        // The least recently used slot that is not pinned by the current layer.
        auto victim = std::find_if(lru_.rbegin(), lru_.rend(), [&](uint32_t v) { return !slots_[v].pinned; });
        if (victim == lru_.rend())
            throw std::runtime_error("device slots: all " + std::to_string(n_slots_) +
                                     " slots hold experts of the current layer; layer " +
                                     std::to_string(id.layer) + " needs more");
        s = *victim;
        lru_.erase(std::next(victim).base());
        where_.erase(slots_[s].id);
        ++stats_.evictions;
    }
    Slot &slot = slots_[s];
    slot.id = id;
    slot.layout = layout;
    slot.pinned = true;
    pinned_.push_back(s);
    lru_.push_front(s);
    slot.lru = lru_.begin();
    where_[id] = s;
    const ExpertView d = view(s);
    const struct {
        uint8_t *dst;
        const uint8_t *src;
        uint64_t bytes;
    } parts[] = {{const_cast<uint8_t *>(d.gate), host.gate, layout.gate_bytes},
                 {const_cast<uint8_t *>(d.up), host.up, layout.up_bytes},
                 {const_cast<uint8_t *>(d.down), host.down, layout.down_bytes}};
    for (const auto &p : parts)
        if (backend_.upload(p.dst, p.src, static_cast<size_t>(p.bytes)) != kernels::Status::ok)
            throw std::runtime_error("device slots: upload of expert " + std::to_string(id.expert) +
                                     " of layer " + std::to_string(id.layer) +
                                     " failed: " + backend_.last_error());
    stats_.bytes_uploaded += layout.gate_bytes + layout.up_bytes + layout.down_bytes;
    ++stats_.misses;
    return d;
}

void DeviceSlots::end_layer() {
    for (const uint32_t s : pinned_) slots_[s].pinned = false;
    pinned_.clear();
}

}  // namespace moerun::cache
