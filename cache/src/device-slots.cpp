// Device expert slots: one pool allocation, a cache Policy over the unpinned slots, demand copies
// on the compute queue and prefetch copies on the copy queue.
#include <algorithm>
#include <cstdint>
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

DeviceSlots::DeviceSlots(kernels::Backend &backend, uint32_t n_slots, uint64_t slot_bytes,
                         const std::string &policy, PolicyParams params)
    : backend_(backend), n_slots_(n_slots), slot_bytes_(align_up(slot_bytes)), slots_(n_slots) {
    if (n_slots == 0 || slot_bytes == 0)
        throw std::invalid_argument("device slots: need at least one slot of > 0 bytes");
    params.capacity = n_slots;
    policy_ = make_policy(policy, params);
    pool_ = static_cast<uint8_t *>(backend_.alloc(static_cast<size_t>(slot_bytes_ * n_slots_)));
    if (pool_ == nullptr)
        throw std::runtime_error("device slots: cannot allocate " + std::to_string(n_slots_) + " x " +
                                 std::to_string(slot_bytes_) + " bytes on " + std::string(backend_.name()) +
                                 ": " + backend_.last_error());
    free_.reserve(n_slots_);
    for (uint32_t s = n_slots_; s-- > 0;) free_.push_back(s);  // slot 0 first
    pinned_.reserve(n_slots_);
}

DeviceSlots::~DeviceSlots() {
    backend_.free(pool_);
}

ExpertView DeviceSlots::view(uint32_t s) const {
    const uint8_t *base = pool_ + uint64_t{s} * slot_bytes_;
    const uint64_t *off = slots_[s].off;
    return {base + off[0], base + off[1], base + off[2]};
}

void DeviceSlots::begin_layer(uint64_t now) {
    now_ = std::max(now_, now);
}

bool DeviceSlots::evictable(const void *ctx, ExpertId id) {
    const auto &self = *static_cast<const DeviceSlots *>(ctx);
    const auto it = self.where_.find(id);
    return it != self.where_.end() && self.slots_[it->second].pin_until <= self.now_;
}

std::optional<uint32_t> DeviceSlots::take_slot(bool for_prefetch) {
    if (!free_.empty()) {
        const uint32_t s = free_.back();
        free_.pop_back();
        return s;
    }
    const std::optional<ExpertId> v = policy_->victim({&DeviceSlots::evictable, this}, now_);
    if (!v) return std::nullopt;
    const auto it = where_.find(*v);
    if (it == where_.end() || slots_[it->second].pin_until > now_)
        throw std::logic_error("device slots: the policy named a victim that is not resident and unpinned");
    const uint32_t s = it->second;
    if (evicted_ != nullptr) evicted_(evicted_ctx_, *v, view(s), for_prefetch);
    policy_->on_evict(*v);
    where_.erase(it);
    if (slots_[s].prefetched) ++stats_.prefetch_wasted;
    ++stats_.evictions;
    return s;
}

void DeviceSlots::assign(uint32_t s, ExpertId id, uint64_t pin_until) {
    Slot &slot = slots_[s];
    slot.id = id;
    slot.pin_until = pin_until;
    where_[id] = s;
}

std::optional<ExpertView> DeviceSlots::find(ExpertId id) {
    const auto it = where_.find(id);
    if (it == where_.end()) return std::nullopt;
    Slot &s = slots_[it->second];
    if (s.pin_until <= now_) pinned_.push_back(it->second);
    s.pin_until = std::max(s.pin_until, now_ + 1);
    if (s.prefetched) {
        s.prefetched = false;
        ++stats_.prefetch_used;
    }
    policy_->on_hit(id, now_);
    ++stats_.hits;
    ready_after_ = std::max(ready_after_, s.copy_no);
    return view(it->second);
}

namespace {
std::string expert_name(ExpertId id) {
    return "expert " + std::to_string(id.expert) + " of layer " + std::to_string(id.layer);
}
}  // namespace

void DeviceSlots::check_fits(ExpertId id, const SlotLayout &layout) const {
    if (layout.bytes() > slot_bytes_)
        throw std::invalid_argument("device slots: " + expert_name(id) + " needs " +
                                    std::to_string(layout.bytes()) + " bytes, slots hold " +
                                    std::to_string(slot_bytes_));
}

void DeviceSlots::copy(uint32_t s, ExpertId id, const ExpertView &host, const SlotLayout &layout,
                       bool async) {
    const uint8_t *src[3] = {host.gate, host.up, host.down};
    const uint64_t n[3] = {layout.gate_bytes, layout.up_bytes, layout.down_bytes};
    // The host span [lo, hi) that holds all three tensors, lo rounded down to kAlign so that the
    // device copies keep the host's alignment.
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int p = 0; p < 3; ++p) {
        const auto a = reinterpret_cast<uintptr_t>(src[p]);
        lo = std::min(lo, a / kAlign * kAlign);
        hi = std::max(hi, static_cast<uintptr_t>(a + n[p]));
    }
    uint64_t *off = slots_[s].off;
    uint8_t *base = pool_ + uint64_t{s} * slot_bytes_;
    if (!async && slots_[s].copy_no != 0 &&
        backend_.compute_wait_copy(slots_[s].copy_no) !=
            kernels::Status::ok)  // a late copy would land over it
        throw std::runtime_error("device slots: ordering the upload of " + expert_name(id) +
                                 " after the slot's last copy failed: " + backend_.last_error());
    const auto issue = [&](uint8_t *dst, const void *from, uint64_t bytes) {
        const size_t m = static_cast<size_t>(bytes);
        ++stats_.transfers;
        if (!async && batching_) {
            batch_.push_back({dst, from, m});
            return;
        }
        const kernels::Status st =
            async ? backend_.upload_async(dst, from, m) : backend_.upload(dst, from, m);
        if (st != kernels::Status::ok)
            throw std::runtime_error(std::string("device slots: ") + (async ? "queued copy" : "upload") +
                                     " of " + expert_name(id) + " failed: " + backend_.last_error());
    };
    if (hi - lo <= slot_bytes_) {
        for (int p = 0; p < 3; ++p) off[p] = reinterpret_cast<uintptr_t>(src[p]) - lo;
        issue(base, reinterpret_cast<const void *>(lo), hi - lo);
    } else {
        off[0] = 0, off[1] = layout.up_offset(), off[2] = layout.down_offset();
        for (int p = 0; p < 3; ++p) issue(base + off[p], src[p], n[p]);
    }
    stats_.bytes_uploaded += n[0] + n[1] + n[2];
    slots_[s].copy_no = async ? backend_.copies_issued() : 0;
}

ExpertView DeviceSlots::load(ExpertId id, const ExpertView &host, const SlotLayout &layout) {
    return load_on(id, host, layout, false);
}

ExpertView DeviceSlots::load_async(ExpertId id, const ExpertView &host, const SlotLayout &layout) {
    return load_on(id, host, layout, true);
}

ExpertView DeviceSlots::load_on(ExpertId id, const ExpertView &host, const SlotLayout &layout, bool async) {
    check_fits(id, layout);
    if (where_.count(id) != 0) throw std::logic_error("device slots: expert loaded twice");
    const std::optional<uint32_t> s = take_slot(false);
    if (!s)
        throw std::runtime_error("device slots: all " + std::to_string(n_slots_) +
                                 " slots are pinned by the current layer or prefetches; layer " +
                                 std::to_string(id.layer) + " needs more");
    assign(*s, id, now_ + 1);
    slots_[*s].prefetched = false;
    pinned_.push_back(*s);
    policy_->on_insert(id, now_, false);
    copy(*s, id, host, layout, async);
    ++stats_.misses;
    ready_after_ = std::max(ready_after_, slots_[*s].copy_no);
    return view(*s);
}

bool DeviceSlots::prefetch(ExpertId id, const ExpertView &host, const SlotLayout &layout, uint64_t until) {
    check_fits(id, layout);
    if (where_.count(id) != 0) return false;
    const std::optional<uint32_t> s = take_slot(true);
    if (!s) return false;
    assign(*s, id, std::max(until, now_) + 1);
    slots_[*s].prefetched = true;
    policy_->on_insert(id, now_, true);
    copy(*s, id, host, layout, true);
    ++stats_.prefetch_issued;
    return true;
}

void DeviceSlots::end_batch() {
    batching_ = false;
    if (batch_.empty()) return;
    const size_t n = batch_.size();
    const kernels::Backend::Upload one = batch_[0];
    const kernels::Status st = n == 1 ? backend_.upload(one.dst, one.src, one.bytes)  // not a batch
                                      : backend_.upload_batch(batch_.data(), n);
    batch_.clear();
    if (n > 1) {
        ++stats_.batches;
        stats_.batched += n;
    }
    if (st != kernels::Status::ok)
        throw std::runtime_error("device slots: the batch of " + std::to_string(n) +
                                 " uploads failed: " + backend_.last_error());
}

void DeviceSlots::end_layer() {
    for (const uint32_t s : pinned_)
        if (slots_[s].pin_until == now_ + 1) slots_[s].pin_until = 0;
    pinned_.clear();
    ready_after_ = 0;
}

}  // namespace moerun::cache
