// cache::DeviceSlots on the CPU backend (device memory = host memory): copies land at aligned
// offsets with the right bytes, replacement is least recently used, the current layer's experts
// are never evicted, and running out of slots or an oversized expert is an error, not a crash.
#include <doctest/doctest.h>

#include <cstring>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "moerun/cache/device-slots.h"

using namespace moerun;
using cache::ExpertId;
using cache::ExpertView;

namespace {

// Host copies of an expert: each tensor filled with a byte derived from (layer, expert, part).
struct HostExpert {
    std::vector<uint8_t> gate, up, down;
    HostExpert(ExpertId id, const cache::SlotLayout &l)
        : gate(l.gate_bytes, static_cast<uint8_t>(id.layer * 31 + id.expert * 3)),
          up(l.up_bytes, static_cast<uint8_t>(id.layer * 31 + id.expert * 3 + 1)),
          down(l.down_bytes, static_cast<uint8_t>(id.layer * 31 + id.expert * 3 + 2)) {}
    ExpertView view() const { return {gate.data(), up.data(), down.data()}; }
};

bool holds(const ExpertView &d, const HostExpert &h) {
    return std::memcmp(d.gate, h.gate.data(), h.gate.size()) == 0 &&
           std::memcmp(d.up, h.up.data(), h.up.size()) == 0 &&
           std::memcmp(d.down, h.down.data(), h.down.size()) == 0;
}

}  // namespace

TEST_CASE("slot layout: tensors at 256-byte boundaries, the slot size covers the largest expert") {
    const cache::SlotLayout l{1000, 1000, 1300};
    CHECK(l.up_offset() == 1024);
    CHECK(l.down_offset() == 2048);
    CHECK(l.bytes() == 2048 + 1536);
    const std::vector<cache::SlotLayout> layers = {{10, 10, 10}, {300, 10, 10}};
    CHECK(cache::slot_bytes_for(layers) == 512 + 256 + 256);
}

TEST_CASE("device slots: copies, hits, LRU replacement, pinning within a layer") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout lay{700, 700, 900};
    cache::DeviceSlots slots(*be, 3, lay.bytes());
    CHECK(slots.n_slots() == 3);
    std::vector<HostExpert> host;
    for (uint32_t e = 0; e < 6; ++e) host.emplace_back(ExpertId{1, e}, lay);

    // Layer of experts 0, 1, 2: three misses, then each is found with its bytes.
    for (uint32_t e = 0; e < 3; ++e) CHECK(holds(slots.load({1, e}, host[e].view(), lay), host[e]));
    CHECK(slots.stats().misses == 3);
    CHECK(slots.stats().bytes_uploaded == 3 * (700 + 700 + 900));
    // All three are pinned by this layer: a fourth cannot come in.
    CHECK_THROWS_AS(slots.load({1, 3}, host[3].view(), lay), std::runtime_error);
    slots.end_layer();

    // Use 0 and 2 (hits): 1 becomes the least recently used and is replaced by 3.
    REQUIRE(slots.find({1, 0}));
    REQUIRE(slots.find({1, 2}));
    CHECK(slots.stats().hits == 2);
    slots.end_layer();
    CHECK(holds(slots.load({1, 3}, host[3].view(), lay), host[3]));
    CHECK(!slots.resident({1, 1}));
    CHECK(slots.resident({1, 0}));
    CHECK(slots.resident({1, 2}));
    CHECK(slots.stats().evictions == 1);
    // 3 is pinned (this layer), 0 was used before 2: 0 goes next.
    CHECK(holds(slots.load({1, 4}, host[4].view(), lay), host[4]));
    CHECK(!slots.resident({1, 0}));
    // Every remaining expert still holds its own bytes after the replacements.
    for (const uint32_t e : {2u, 3u, 4u}) CHECK(holds(*slots.find({1, e}), host[e]));
    slots.end_layer();
    // Same expert id in another layer is another expert.
    CHECK(!slots.find({0, 2}));
}

TEST_CASE("device slots: bad sizes are errors") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout small{256, 256, 256}, big{4096, 256, 256};
    cache::DeviceSlots slots(*be, 2, small.bytes());
    HostExpert h({0, 0}, big);
    CHECK_THROWS_AS(slots.load({0, 0}, h.view(), big), std::invalid_argument);
    CHECK_THROWS_AS(cache::DeviceSlots(*be, 0, 1024), std::invalid_argument);
}
