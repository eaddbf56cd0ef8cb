// cache::DeviceSlots on the CPU backend (device memory = host memory): copies land at aligned
// offsets with the right bytes, replacement follows the policy (LRU; least-stale where LRU loops),
// the current layer's experts are never evicted, prefetch copies run on the copy queue and stay
// pinned until their layer, and running out of slots or an oversized expert is an error.
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

// Host copies of experts 0..n-1 of a layer.
std::vector<HostExpert> host_layer(uint32_t layer, uint32_t n, const cache::SlotLayout &l) {
    std::vector<HostExpert> h;
    for (uint32_t e = 0; e < n; ++e) h.emplace_back(ExpertId{layer, e}, l);
    return h;
}

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
    cache::DeviceSlots slots(*be, 3, lay.bytes(), "lru",
                             cache::PolicyParams{.n_layers = 2, .n_experts = 6, .top_k = 3});
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

TEST_CASE("device slots: the eviction hook sees each victim's device copy before its slot is refilled") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout lay{700, 300, 900};
    cache::DeviceSlots slots(*be, 2, lay.bytes(), "lru",
                             cache::PolicyParams{.n_layers = 1, .n_experts = 5, .top_k = 1});
    const std::vector<HostExpert> host = host_layer(0, 5, lay);
    struct Seen {
        const std::vector<HostExpert> *host;
        std::vector<ExpertId> ids;
        std::vector<bool> intact, for_prefetch;
    } seen{&host, {}, {}, {}};
    slots.on_evict(
        [](void *ctx, ExpertId id, const ExpertView &dev, bool pf) {
            auto *s = static_cast<Seen *>(ctx);
            s->ids.push_back(id);
            s->intact.push_back(holds(dev, (*s->host)[id.expert]));
            s->for_prefetch.push_back(pf);
        },
        &seen);
    for (uint32_t e = 0; e < 2; ++e) {  // free slots: nothing evicted
        slots.load({0, e}, host[e].view(), lay);
        slots.end_layer();
    }
    CHECK(seen.ids.empty());
    slots.load({0, 2}, host[2].view(), lay);  // evicts 0 (LRU)
    slots.end_layer();
    REQUIRE(slots.prefetch({0, 3}, host[3].view(), lay, 1));  // evicts 1, on the copy queue
    REQUIRE(be->wait_copies() == kernels::Status::ok);
    REQUIRE(seen.ids.size() == 2);
    CHECK(seen.ids[0] == ExpertId{0, 0});
    CHECK(seen.ids[1] == ExpertId{0, 1});
    CHECK(seen.intact == std::vector<bool>{true, true});
    CHECK(seen.for_prefetch == std::vector<bool>{false, true});
}

TEST_CASE("device slots: bad sizes are errors") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout small{256, 256, 256}, big{4096, 256, 256};
    cache::DeviceSlots slots(*be, 2, small.bytes(), "lru",
                             cache::PolicyParams{.n_layers = 1, .n_experts = 2, .top_k = 1});
    HostExpert h({0, 0}, big);
    CHECK_THROWS_AS(slots.load({0, 0}, h.view(), big), std::invalid_argument);
    CHECK_THROWS_AS(slots.prefetch({0, 0}, h.view(), big, 1), std::invalid_argument);
    CHECK_THROWS_AS(cache::DeviceSlots(*be, 0, 1024, "lru",
                                       cache::PolicyParams{.n_layers = 1, .n_experts = 2, .top_k = 1}),
                    std::invalid_argument);
    CHECK_THROWS_WITH_AS(cache::DeviceSlots(*be, 2, 1024, "fifo",
                                            cache::PolicyParams{.n_layers = 1, .n_experts = 2, .top_k = 1}),
                         doctest::Contains("fifo"), std::invalid_argument);
}

TEST_CASE("device slots: least-stale keeps part of a loop that LRU always misses") {
    // Four layers of two experts each, the same every token, six slots for the eight: LRU evicts
    // the experts used longest ago, the next layers' (each just before its use); least-stale
    // evicts the layer just served, the furthest from its next use.
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout lay{256, 256, 256};
    uint64_t hits[2] = {0, 0};
    int i = 0;
    for (const char *policy : {"lru", "least-stale"}) {
        cache::DeviceSlots slots(*be, 6, lay.bytes(), policy,
                                 cache::PolicyParams{.n_layers = 4, .n_experts = 2, .top_k = 2});
        for (uint64_t now = 0; now < 80; ++now) {
            slots.begin_layer(now);
            const uint32_t l = static_cast<uint32_t>(now % 4);
            // As the device pass serves a layer: hits first (pinning them), then the misses.
            std::vector<uint32_t> missing;
            for (const uint32_t e : {0u, 1u})
                if (const auto d = slots.find({l, e}))
                    CHECK(holds(*d, HostExpert({l, e}, lay)));
                else
                    missing.push_back(e);
            for (const uint32_t e : missing) {
                HostExpert h({l, e}, lay);
                CHECK(holds(slots.load({l, e}, h.view(), lay), h));
            }
            slots.end_layer();
        }
        hits[i++] = slots.stats().hits;
        CHECK(slots.policy() == policy);
    }
    MESSAGE("hits of 160 uses: lru ", hits[0], ", least-stale ", hits[1]);
    CHECK(hits[0] == 0);
    CHECK(hits[1] >= 60);
}

TEST_CASE(
    "device slots: prefetch copies on the copy queue, pinned until their layer, counted used or wasted") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout lay{512, 512, 768};
    cache::DeviceSlots slots(*be, 4, lay.bytes(), "least-stale",
                             cache::PolicyParams{.n_layers = 2, .n_experts = 8, .top_k = 2});
    const std::vector<HostExpert> h0 = host_layer(0, 8, lay), h1 = host_layer(1, 8, lay);
    // Clock 0 (layer 0): two demand loads, then prefetches for layer 1 (clock 1).
    slots.begin_layer(0);
    slots.load({0, 0}, h0[0].view(), lay);
    slots.load({0, 1}, h0[1].view(), lay);
    CHECK(slots.prefetch({1, 2}, h1[2].view(), lay, 1));
    CHECK(slots.prefetch({1, 3}, h1[3].view(), lay, 1));
    CHECK(!slots.prefetch({1, 2}, h1[2].view(), lay, 1));  // resident already
    CHECK(!slots.prefetch({1, 4}, h1[4].view(), lay, 1));  // every slot pinned
    CHECK(slots.stats().prefetch_issued == 2);
    CHECK(slots.stats().bytes_uploaded == 4 * (512 + 512 + 768));
    slots.end_layer();

    // Clock 1 (layer 1): the prefetched expert is found, but its bytes are there only once compute
    // has waited for its copy on the copy queue (the CPU backend runs queued copies at that wait).
    slots.begin_layer(1);
    const auto d2 = slots.find({1, 2});
    REQUIRE(d2);
    CHECK(slots.ready_after() > 0);
    REQUIRE(be->compute_wait_copy(slots.ready_after()) == kernels::Status::ok);
    CHECK(holds(*d2, h1[2]));
    CHECK(slots.stats().prefetch_used == 1);
    // A demand load at layer 1 may not take the other prefetched slot (pinned for this layer).
    slots.load({1, 5}, h1[5].view(), lay);
    CHECK(slots.resident({1, 3}));
    CHECK(slots.resident({1, 2}));
    slots.end_layer();

    // Later layers: the unused prefetch becomes evictable and is counted wasted when it goes.
    for (uint64_t now = 2; now < 12 && slots.resident({1, 3}); ++now) {
        slots.begin_layer(now);
        const uint32_t l = static_cast<uint32_t>(now % 2), e = static_cast<uint32_t>(6 + now / 2 % 2);
        const auto &h = l == 0 ? h0 : h1;
        if (!slots.find({l, e})) slots.load({l, e}, h[e].view(), lay);
        slots.end_layer();
    }
    CHECK(!slots.resident({1, 3}));
    CHECK(slots.stats().prefetch_wasted == 1);
    CHECK(slots.stats().prefetch_used == 1);
}

TEST_CASE("device slots: an expert whose tensors share one host span goes in one transfer") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout lay{700, 700, 900};
    // A host cache slot: the tensors at unaligned places (as O_DIRECT reads leave them) in one
    // span a little larger than the layout; device slots sized for that span.
    const uint64_t span = 4096;
    std::vector<uint8_t> host_slot(span + 256, 0);
    uint8_t *base = host_slot.data() + (256 - reinterpret_cast<uintptr_t>(host_slot.data()) % 256);
    const uint64_t at[3] = {40, 1000, 2900};
    const uint64_t n[3] = {lay.gate_bytes, lay.up_bytes, lay.down_bytes};
    for (int p = 0; p < 3; ++p)
        for (uint64_t i = 0; i < n[p]; ++i) base[at[p] + i] = static_cast<uint8_t>(p * 50 + i % 47);
    const ExpertView host{base + at[0], base + at[1], base + at[2]};
    cache::DeviceSlots slots(*be, 2, span, "lru",
                             cache::PolicyParams{.n_layers = 1, .n_experts = 4, .top_k = 2});

    const ExpertView d = slots.load({0, 1}, host, lay);
    CHECK(slots.stats().transfers == 1);
    CHECK(slots.stats().bytes_uploaded == n[0] + n[1] + n[2]);
    // Same bytes, same offsets from each other, same alignment as on the host.
    CHECK(std::memcmp(d.gate, host.gate, n[0]) == 0);
    CHECK(std::memcmp(d.up, host.up, n[1]) == 0);
    CHECK(std::memcmp(d.down, host.down, n[2]) == 0);
    CHECK(d.up - d.gate == host.up - host.gate);
    CHECK(d.down - d.gate == host.down - host.gate);
    CHECK(reinterpret_cast<uintptr_t>(d.gate) % 256 == at[0] % 256);
    REQUIRE(slots.find({0, 1}));  // the view found later is the same
    CHECK(slots.find({0, 1})->up == d.up);

    // Tensors far apart (the mapped file: one stacked tensor each) go one by one, aligned.
    std::vector<uint8_t> far(3 * 10000);
    for (size_t i = 0; i < far.size(); ++i) far[i] = static_cast<uint8_t>(i % 251);
    const ExpertView spread{far.data(), far.data() + 10000, far.data() + 20000};
    const ExpertView d2 = slots.load({0, 2}, spread, lay);
    CHECK(slots.stats().transfers == 4);
    CHECK(reinterpret_cast<uintptr_t>(d2.up) - reinterpret_cast<uintptr_t>(d2.gate) == lay.up_offset());
    CHECK(std::memcmp(d2.down, spread.down, n[2]) == 0);

    // A batch of one transfer is issued as a plain upload, not counted as a batched call.
    slots.end_layer();
    slots.begin_layer(1);
    slots.begin_batch();
    const ExpertView d3 = slots.load({0, 3}, host, lay);
    slots.end_batch();
    CHECK(std::memcmp(d3.down, host.down, n[2]) == 0);
    CHECK(slots.stats().transfers == 5);
    CHECK(slots.stats().batches == 0);
    CHECK(slots.stats().batched == 0);
}

TEST_CASE("device slots: load_async copies on the copy queue; the bytes are there after the wait") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout lay{512, 512, 768};
    cache::DeviceSlots slots(*be, 2, lay.bytes(), "lru",
                             cache::PolicyParams{.n_layers = 1, .n_experts = 4, .top_k = 2});
    HostExpert h(ExpertId{0, 3}, lay);
    const ExpertView d = slots.load_async({0, 3}, h.view(), lay);
    CHECK(slots.stats().misses == 1);
    CHECK(slots.resident({0, 3}));
    CHECK(!holds(d, h));  // queued, not run (the CPU backend runs copies at a wait)
    REQUIRE(be->wait_copies() == kernels::Status::ok);
    CHECK(holds(d, h));
}

TEST_CASE("device slots: a layer waits only for the copies it reads; a load waits for its slot's copy") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout lay{512, 512, 768};
    cache::DeviceSlots slots(*be, 3, lay.bytes(), "lru",
                             cache::PolicyParams{.n_layers = 2, .n_experts = 8, .top_k = 1});
    const std::vector<HostExpert> h0 = host_layer(0, 8, lay), h1 = host_layer(1, 8, lay);
    // Clock 0: experts 5, 6, 7 of layer 0 fill the three slots, so that every slot holds known
    // bytes (a queued copy not run yet leaves them there).
    slots.begin_layer(0);
    for (uint32_t e = 5; e < 8; ++e) slots.load({0, e}, h0[e].view(), lay);
    slots.end_layer();
    // Clock 1 (layer 0): expert 0 on demand, then prefetches of experts 1 and 2 for layer 1 (three
    // copies each: a HostExpert's tensors are three vectors).
    slots.begin_layer(1);
    slots.load({0, 0}, h0[0].view(), lay);
    CHECK(slots.ready_after() == 0);  // a compute-queue copy
    REQUIRE(slots.prefetch({1, 1}, h1[1].view(), lay, 2));
    const uint64_t first = be->copies_issued();
    REQUIRE(slots.prefetch({1, 2}, h1[2].view(), lay, 2));
    const uint64_t second = be->copies_issued();
    CHECK(first > 0);
    CHECK(second > first);
    slots.end_layer();

    // Clock 2 (layer 1) uses expert 1 only: it waits for the first prefetch, not the second
    // (mispredicted), whose slot still holds the bytes of expert 7 of layer 0.
    slots.begin_layer(2);
    const auto d1 = slots.find({1, 1});
    REQUIRE(d1);
    CHECK(slots.ready_after() == first);
    REQUIRE(be->compute_wait_copy(slots.ready_after()) == kernels::Status::ok);
    CHECK(holds(*d1, h1[1]));
    CHECK(holds(slots.find({1, 2}).value(), h0[7]));  // still queued on the CPU backend
    slots.end_layer();
    CHECK(slots.ready_after() == 0);

    // Later, expert 2's slot is the LRU victim of a demand load; that load first makes compute wait
    // for the slot's queued copy, which therefore cannot land over the new expert afterwards.
    slots.begin_layer(3);
    (void)slots.find({0, 0});
    (void)slots.find({1, 1});
    const ExpertView d = slots.load({0, 5}, h0[5].view(), lay);
    CHECK(!slots.resident({1, 2}));
    REQUIRE(be->synchronize() == kernels::Status::ok);
    CHECK(holds(d, h0[5]));
}

TEST_CASE("device slots: loads between begin_batch and end_batch go in one upload_batch call") {
    auto be = kernels::make_backend("cpu");
    const cache::SlotLayout lay{512, 512, 768};
    cache::DeviceSlots slots(*be, 3, lay.bytes(), "lru",
                             cache::PolicyParams{.n_layers = 1, .n_experts = 8, .top_k = 2});
    const std::vector<HostExpert> h = host_layer(0, 8, lay);
    slots.begin_layer(0);
    for (uint32_t e = 5; e < 8; ++e) slots.load({0, e}, h[e].view(), lay);  // known bytes everywhere
    slots.end_layer();
    CHECK(slots.stats().batches == 0);
    const uint64_t before = slots.stats().transfers;

    slots.begin_layer(1);
    slots.begin_batch();
    const ExpertView d0 = slots.load({0, 0}, h[0].view(), lay), d1 = slots.load({0, 1}, h[1].view(), lay);
    CHECK(holds(d0, h[5]));  // noted, not issued yet: the victims' bytes are still there
    CHECK(holds(d1, h[6]));
    slots.end_batch();
    CHECK(holds(d0, h[0]));
    CHECK(holds(d1, h[1]));
    CHECK(slots.stats().batches == 1);
    CHECK(slots.stats().batched == slots.stats().transfers - before);
    CHECK(slots.stats().batched >= 2);
    slots.end_batch();  // nothing noted: no call
    CHECK(slots.stats().batches == 1);
    // Out of batch mode, a load is issued at once again.
    slots.end_layer();
    slots.begin_layer(2);
    CHECK(holds(slots.load({0, 2}, h[2].view(), lay), h[2]));
    CHECK(slots.stats().batches == 1);
}

TEST_CASE("cpu backend: copy-queue copies are numbered and a wait runs them up to its number") {
    auto be = kernels::make_backend("cpu");
    std::vector<uint8_t> src(3, 7), dst(3, 0);
    CHECK(be->copies_issued() == 0);
    for (int i = 0; i < 3; ++i) REQUIRE(be->upload_async(&dst[i], &src[i], 1) == kernels::Status::ok);
    CHECK(be->copies_issued() == 3);
    REQUIRE(be->compute_wait_copy(0) == kernels::Status::ok);
    CHECK(dst == std::vector<uint8_t>{0, 0, 0});
    REQUIRE(be->compute_wait_copy(2) == kernels::Status::ok);
    CHECK(dst == std::vector<uint8_t>{7, 7, 0});
    CHECK(be->compute_wait_copy(4) == kernels::Status::invalid_argument);  // not issued
    REQUIRE(be->compute_wait_copies() == kernels::Status::ok);
    CHECK(dst == std::vector<uint8_t>{7, 7, 7});
}

TEST_CASE(
    "cpu backend: download_async lands at the wait, in order with the copy queue; read-only ranges refuse "
    "writes") {
    using Access = kernels::Backend::HostAccess;
    auto be = kernels::make_backend("cpu");
    auto *dev = static_cast<uint8_t *>(be->alloc(64));
    REQUIRE(dev != nullptr);
    std::vector<uint8_t> old_bytes(64, 5), new_bytes(64, 6), back(64, 0), ro(64, 0), pageable(64, 0);
    REQUIRE(be->upload(dev, old_bytes.data(), 64) == kernels::Status::ok);
    REQUIRE(be->host_register(back.data(), back.size(), Access::read_write) == kernels::Status::ok);
    REQUIRE(be->host_register(ro.data(), ro.size(), Access::read_only) == kernels::Status::ok);
    // The device's bytes go back, then the slot is refilled: the host gets the old bytes.
    const uint64_t before = be->copies_issued();
    REQUIRE(be->download_async(back.data(), dev, 64) == kernels::Status::ok);
    REQUIRE(be->upload_async(dev, new_bytes.data(), 64) == kernels::Status::ok);
    CHECK(be->copies_issued() == before + 2);
    CHECK(back[0] == 0);  // not run yet
    REQUIRE(be->wait_copies() == kernels::Status::ok);
    CHECK(back == old_bytes);
    std::vector<uint8_t> now(64);
    REQUIRE(be->download(now.data(), dev, 64) == kernels::Status::ok);
    CHECK(now == new_bytes);
    // Device writes into a read-only range, and queued ones into memory that is not registered
    // read_write (or past its end), are refused.
    CHECK(be->download(ro.data(), dev, 64) == kernels::Status::invalid_argument);
    CHECK(be->last_error().find("read-only") != std::string::npos);
    CHECK(be->download_async(ro.data(), dev, 64) == kernels::Status::invalid_argument);
    CHECK(be->download_async(pageable.data(), dev, 64) == kernels::Status::invalid_argument);
    CHECK(be->download_async(back.data() + 32, dev, 64) == kernels::Status::invalid_argument);
    CHECK(be->download(pageable.data(), dev, 64) == kernels::Status::ok);  // a waited download may
    CHECK(ro[0] == 0);
    be->free(dev);
    CHECK(be->host_unregister(back.data()) == kernels::Status::ok);
    CHECK(be->host_unregister(ro.data()) == kernels::Status::ok);
}

TEST_CASE("cpu backend: an upload from registered memory reads its source late, others at once") {
    auto be = kernels::make_backend("cpu");
    std::vector<uint8_t> pinned(64, 1), pageable(64, 2), dst(128, 0);
    REQUIRE(be->host_register(pinned.data(), pinned.size(), kernels::Backend::HostAccess::read_only) ==
            kernels::Status::ok);
    CHECK(be->host_register(pinned.data() + 8, 8, kernels::Backend::HostAccess::read_only) ==
          kernels::Status::invalid_argument);  // overlaps
    REQUIRE(be->upload(dst.data(), pinned.data(), 64) == kernels::Status::ok);
    REQUIRE(be->upload(dst.data() + 64, pageable.data(), 64) == kernels::Status::ok);
    CHECK(dst[64] == 2);  // staged at the call
    CHECK(dst[0] == 0);   // not read yet
    std::fill(pinned.begin(), pinned.end(), 9);
    std::fill(pageable.begin(), pageable.end(), 9);
    REQUIRE(be->wait_compute() == kernels::Status::ok);
    CHECK(dst[0] == 9);  // read at the wait: the source changed too early
    CHECK(dst[64] == 2);
    // A kernel reads what was uploaded before it.
    std::fill(pinned.begin(), pinned.end(), 3);
    float *out = static_cast<float *>(be->alloc(16 * sizeof(float)));
    REQUIRE(out != nullptr);
    REQUIRE(be->upload(dst.data(), pinned.data(), 64) == kernels::Status::ok);
    REQUIRE(be->add(out, out, 0) == kernels::Status::ok);
    std::fill(pinned.begin(), pinned.end(), 5);
    CHECK(dst[0] == 3);
    be->free(out);
    REQUIRE(be->host_unregister(pinned.data()) == kernels::Status::ok);
    CHECK(be->host_unregister(pinned.data()) == kernels::Status::invalid_argument);
    REQUIRE(be->upload(dst.data(), pinned.data(), 64) == kernels::Status::ok);
    CHECK(dst[0] == 5);  // no longer registered: at once
}
