// The expert cache over a real file: bytes land where the views say, at unaligned offsets;
// streaming through fewer slots than experts; prefetch; faults (EIO, short reads, a file that
// changes) give retries or clear errors, never wrong bytes.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "moerun/cache/expert-cache.h"

using namespace moerun::cache;

// Counts heap allocations, to check that serving experts does not allocate once warm. (GCC sees
// the replaced operator new and the free() in delete as a mismatch; they are a matched pair here.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
static std::atomic<uint64_t> g_allocations{0};
void *operator new(std::size_t n) {
    ++g_allocations;
    if (void *p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void operator delete(void *p) noexcept {
    std::free(p);
}
void operator delete(void *p, std::size_t) noexcept {
    std::free(p);
}

namespace {

// A file of pseudo-random bytes with n_layers x n_experts experts of three parts each, stored
// at unaligned offsets (as GGUF tensors are 32-byte aligned, not 4096).
struct ExpertFile {
    std::string path;
    std::vector<uint8_t> bytes;
    std::vector<ExpertLocation> locs;
    uint32_t n_layers, n_experts;

    ExpertFile(uint32_t layers, uint32_t experts, uint64_t part, const std::string &name)
        : n_layers(layers), n_experts(experts) {
        path = (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(getpid()) + ".bin"))
                   .string();
        uint64_t off = 96;  // header-like prefix
        for (uint32_t l = 0; l < layers; ++l)
            for (uint32_t e = 0; e < experts; ++e) {
                ExpertLocation loc;
                loc.id = {l, e};
                loc.gate = {off, part};
                loc.up = {off + part + 32, part + 64};
                loc.down = {off + 2 * part + 128, part - 32};
                off += 3 * part + 160;
                locs.push_back(loc);
            }
        bytes.resize(off + 1000);
        std::mt19937 rng(7);
        for (auto &b : bytes) b = static_cast<uint8_t>(rng());
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    ~ExpertFile() { std::filesystem::remove(path); }

    bool matches(const ExpertCache &c, uint32_t l, uint16_t e) const {
        const ExpertLocation &loc = locs[size_t{l} * n_experts + e];
        const ExpertView v = c.view(l, e);
        return std::equal(v.gate, v.gate + loc.gate.size,
                          bytes.begin() + static_cast<ptrdiff_t>(loc.gate.offset)) &&
               std::equal(v.up, v.up + loc.up.size, bytes.begin() + static_cast<ptrdiff_t>(loc.up.offset)) &&
               std::equal(v.down, v.down + loc.down.size,
                          bytes.begin() + static_cast<ptrdiff_t>(loc.down.offset));
    }
};

CacheConfig config(uint32_t slots, const char *policy = "lru", bool per_layer = false) {
    CacheConfig c;
    c.n_slots = slots;
    c.policy = policy;
    c.per_layer = per_layer;
    c.queue_depth = 4;
    return c;
}

// Serves one layer and checks every expert's bytes; returns the experts in hand-out order.
std::vector<uint16_t> serve(ExpertCache &c, const ExpertFile &f, uint32_t layer,
                            std::vector<uint16_t> experts) {
    c.begin_layer(layer, experts);
    std::vector<uint16_t> order;
    while (auto e = c.next()) {
        CHECK(f.matches(c, layer, *e));
        order.push_back(*e);
        c.done(layer, *e);
    }
    return order;
}

}  // namespace

TEST_CASE("expert cache: every expert's bytes arrive intact; hits after the first use") {
    ExpertFile f(3, 8, 10000, "moerun-cache-bytes");
    ExpertCache c(f.path, f.locs, 3, 8, config(12));
    CHECK(c.slot_size() % NvmeReader::kAlign == 0);
    c.begin_step(0);
    for (uint32_t l = 0; l < 3; ++l) CHECK(serve(c, f, l, {1, 4, 6, 7}).size() == 4);
    CHECK(c.stats()[0].misses == 4);
    c.begin_step(1);
    for (uint32_t l = 0; l < 3; ++l) serve(c, f, l, {1, 4, 6, 7});
    CHECK(c.stats()[2].hits == 4);
    CHECK(c.stats()[2].misses == 4);
    CHECK(c.stats()[2].accesses == 8);
    CHECK(c.stats()[1].bytes_read == 4 * f.locs[0].bytes());
}

TEST_CASE("expert cache: a batch needing more experts than slots streams through them") {
    ExpertFile f(2, 16, 5000, "moerun-cache-stream");
    for (uint32_t slots : {1u, 2u, 5u}) {
        ExpertCache c(f.path, f.locs, 2, 16, config(slots));
        c.begin_step(0);
        std::vector<uint16_t> all(16);
        for (uint16_t i = 0; i < 16; ++i) all[i] = i;
        auto order = serve(c, f, 0, all);
        std::sort(order.begin(), order.end());
        CHECK(order == all);
        CHECK(c.stats()[0].misses == 16);
        CHECK(c.stats()[0].evictions == 16 - slots);
    }
}

TEST_CASE("expert cache: prefetched experts are hits; stale queued prefetches are cancelled") {
    ExpertFile f(2, 8, 8000, "moerun-cache-prefetch");
    ExpertCache c(f.path, f.locs, 2, 8, config(8));
    c.begin_step(0);
    c.begin_layer(0, std::vector<uint16_t>{0, 1});
    c.prefetch(1, std::vector<uint16_t>{2, 3});
    while (auto e = c.next()) c.done(0, *e);
    auto order = serve(c, f, 1, {2, 3, 5});
    CHECK(order.size() == 3);
    const auto &s = c.stats()[1];
    CHECK(s.prefetch_issued == 2);
    CHECK(s.prefetch_used == 2);
    CHECK(s.hit_total() == 2);
    CHECK(s.misses == 1);
}

TEST_CASE("expert cache: pinned experts are never evicted; too few slots for the partitions is an error") {
    ExpertFile f(2, 8, 4000, "moerun-cache-pin");
    CHECK_THROWS_AS(ExpertCache(f.path, f.locs, 2, 8, config(1, "lru", true)), std::invalid_argument);
    ExpertCache c(f.path, f.locs, 2, 8, config(2, "lru", true));  // one slot per layer
    c.begin_step(0);
    auto order = serve(c, f, 0, {3, 5, 7});  // three experts through one slot
    CHECK(order.size() == 3);
    CHECK(c.resident(0, 7));
    CHECK_FALSE(c.resident(1, 7));
}

TEST_CASE("expert cache: adopt() takes bytes from the caller as a read would; release() frees the slot") {
    ExpertFile f(2, 8, 6000, "moerun-cache-adopt");
    ExpertCache c(f.path, f.locs, 2, 8, config(3));
    c.begin_step(0);
    serve(c, f, 0, {1, 2});
    // The caller's copy of expert (1, 5), written where the view will point.
    struct Src {
        const ExpertFile *f;
        const ExpertLocation *loc;
        int calls = 0;
    } src{&f, &f.locs[1 * 8 + 5]};
    const ExpertCache::Fill fill = [](void *ctx, uint8_t *g, uint8_t *u, uint8_t *d) {
        auto *s = static_cast<Src *>(ctx);
        ++s->calls;
        const auto at = [&](const ByteRange &r) { return s->f->bytes.data() + r.offset; };
        std::copy_n(at(s->loc->gate), s->loc->gate.size, g);
        std::copy_n(at(s->loc->up), s->loc->up.size, u);
        std::copy_n(at(s->loc->down), s->loc->down.size, d);
    };
    const uint64_t read_before = c.stats()[1].bytes_read;
    CHECK(c.adopt(1, 5, fill, &src));
    CHECK(src.calls == 1);
    CHECK(c.resident(1, 5));
    CHECK(f.matches(c, 1, 5));
    CHECK_FALSE(c.adopt(1, 5, fill, &src));  // resident already: fill is not called
    CHECK(src.calls == 1);
    CHECK(c.stats()[1].adopted == 1);
    // A later request is a hit, served without reading.
    serve(c, f, 1, {5});
    CHECK(c.stats()[1].hits == 1);
    CHECK(c.stats()[1].bytes_read == read_before);
    // release(): the slot is free again (no eviction when the next miss comes), and the expert
    // is read again when asked for.
    CHECK(c.release(1, 5));
    CHECK_FALSE(c.resident(1, 5));
    CHECK_FALSE(c.release(1, 5));
    CHECK(c.stats()[1].released == 1);
    const uint64_t evictions = c.stats()[0].evictions + c.stats()[1].evictions;
    serve(c, f, 1, {6});
    CHECK(c.stats()[0].evictions + c.stats()[1].evictions == evictions);
    serve(c, f, 1, {5});
    CHECK(c.stats()[1].misses == 2);
    // An expert the layer being served has requested is neither released nor adopted over.
    c.begin_layer(0, std::vector<uint16_t>{1});
    CHECK_FALSE(c.release(0, 1));
    const auto e = c.next();
    REQUIRE(e);
    CHECK_FALSE(c.release(0, 1));  // handed out, not done
    c.done(0, *e);
    CHECK(c.release(0, 1));
    // A fill that throws leaves the slot free and the expert absent.
    const ExpertCache::Fill bad = [](void *, uint8_t *, uint8_t *, uint8_t *) {
        throw std::runtime_error("x");
    };
    CHECK_THROWS_AS(c.adopt(0, 7, bad, nullptr), std::runtime_error);
    CHECK_FALSE(c.resident(0, 7));
    CHECK(c.adopt(0, 7, fill, &src));  // any bytes: the caller's word is taken
    CHECK(c.resident(0, 7));
    CHECK_THROWS_AS(c.adopt(2, 0, fill, &src), std::out_of_range);
}

TEST_CASE("expert cache: held slots (adopt held, hold) are never taken until unhold_all") {
    // Three slots, one partition. Held slots stand for bytes a queued copy still writes (adopt,
    // held) or reads (hold): no read may refill them, and no layer is served while one is held.
    ExpertFile f(2, 8, 6000, "moerun-cache-held");
    ExpertCache c(f.path, f.locs, 2, 8, config(3));
    c.begin_step(0);
    serve(c, f, 0, {0});
    const ExpertCache::Fill nothing = [](void *, uint8_t *, uint8_t *, uint8_t *) {};
    CHECK(c.adopt(1, 4, nothing, nullptr, true));  // held: its bytes come later
    CHECK(c.resident(1, 4));
    CHECK(c.hold(0, 0));
    CHECK_FALSE(c.hold(1, 7));  // not resident
    CHECK_THROWS_AS(c.begin_layer(1, std::vector<uint16_t>{7}), std::logic_error);
    // Prefetch reads take the one slot left, and no held one: both held experts stay.
    c.prefetch(1, std::vector<uint16_t>{1, 2, 3});
    CHECK(c.resident(1, 4));
    CHECK(c.resident(0, 0));
    CHECK(c.stats()[0].evictions + c.stats()[1].evictions == 0);
    // An adopt needs a slot too: none can be taken while the third is being read or held.
    CHECK(c.adopt(1, 5, nothing, nullptr, true) == false);
    c.unhold_all();
    // Served again: (0, 0) is a hit with its bytes, and the slots can be taken again.
    serve(c, f, 0, {0});
    CHECK(c.stats()[0].hits == 1);
    serve(c, f, 1, {6, 7});
    CHECK(c.stats()[0].evictions + c.stats()[1].evictions >= 2);
    // release() frees a held slot (the caller orders the copies that use it).
    c.begin_step(1);
    serve(c, f, 0, {1});
    CHECK(c.hold(0, 1));
    CHECK(c.release(0, 1));
    CHECK_FALSE(c.resident(0, 1));
    c.unhold_all();
    serve(c, f, 0, {1});
}

TEST_CASE("NVMe reader: EIO is retried; persistent EIO is an error naming the file and offset") {
    ExpertFile f(1, 4, 6000, "moerun-cache-eio");
    {
        ExpertCache c(f.path, f.locs, 1, 4, config(4));
        int failures = 0;
        c.reader().set_fault_injector([&](uint64_t, uint64_t, int attempt) -> int64_t {
            if (attempt < 2) return ++failures, -EIO;  // two failures per read, then success
            return 0;
        });
        c.begin_step(0);
        CHECK(serve(c, f, 0, {0, 1, 2, 3}).size() == 4);
        CHECK(failures > 0);
    }
    {
        ExpertCache c(f.path, f.locs, 1, 4, config(4));
        c.reader().set_fault_injector([](uint64_t, uint64_t, int) -> int64_t { return -EIO; });
        c.begin_step(0);
        c.begin_layer(0, std::vector<uint16_t>{2});
        try {
            (void)c.next();
            FAIL("expected an IoError");
        } catch (const IoError &e) {
            const std::string msg = e.what();
            CHECK(msg.find(f.path) != std::string::npos);
            CHECK(msg.find("offset") != std::string::npos);
            CHECK(msg.find("Input/output error") != std::string::npos);
        }
    }
}

TEST_CASE("NVMe reader: short reads are continued and the bytes are still right") {
    ExpertFile f(1, 4, 20000, "moerun-cache-short");
    ExpertCache c(f.path, f.locs, 1, 4, config(4));
    int shortened = 0;
    c.reader().set_fault_injector([&](uint64_t, uint64_t len, int) -> int64_t {
        if (len > 8192) return ++shortened, 4096;  // deliver one page at a time
        return 0;
    });
    c.begin_step(0);
    CHECK(serve(c, f, 0, {0, 1, 2, 3}).size() == 4);
    CHECK(shortened > 0);
}

TEST_CASE("NVMe reader: a file that changes, shrinks or vanishes during the run is reported") {
    ExpertFile f(1, 4, 4000, "moerun-cache-change");
    ExpertCache c(f.path, f.locs, 1, 4, config(4));
    c.begin_step(0);
    serve(c, f, 0, {0});
    std::filesystem::resize_file(f.path, f.bytes.size() / 2);
    CHECK_THROWS_WITH_AS(c.begin_step(1), doctest::Contains("changed size"), IoError);
    std::filesystem::remove(f.path);
    CHECK_THROWS_WITH_AS(c.begin_step(2), doctest::Contains("vanished"), IoError);
}

TEST_CASE("NVMe reader: ranges past the end of the file are refused") {
    ExpertFile f(1, 2, 4000, "moerun-cache-range");
    NvmeReader r(f.path, 2);
    alignas(4096) static uint8_t buf[3 * 4096];
    CHECK_THROWS_AS(r.submit({f.bytes.size() - 10, 100, buf, 0}), IoError);
    CHECK(r.mode().find("O_DIRECT") != std::string::npos);
}

TEST_CASE(
    "expert cache: permanently pinned experts stay resident and are hits; one slot stays for the policy") {
    ExpertFile f(1, 8, 4000, "moerun-cache-permanent");
    ExpertCache c(f.path, f.locs, 1, 8, config(3));
    const std::vector<ExpertId> hot = {{0, 5}, {0, 6}, {0, 7}};
    CHECK(c.pin_permanently(hot) == 2);  // the third would leave no slot for the policy
    CHECK(c.resident(0, 5));
    CHECK(c.resident(0, 6));
    c.begin_step(0);
    serve(c, f, 0, {0, 1, 2, 3, 5});  // streams 0..3 through the one free slot
    CHECK(c.resident(0, 5));
    CHECK(c.resident(0, 6));
    CHECK(c.stats()[0].hits == 1);
    CHECK(c.stats()[0].misses == 4);
}

TEST_CASE("expert cache: serving layers allocates nothing once warm (misses, evictions, prefetches)") {
    ExpertFile f(4, 16, 3000, "moerun-cache-noalloc");
    ExpertCache c(f.path, f.locs, 4, 16, config(10));
    const std::vector<std::vector<uint16_t>> routes = {
        {1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}, {2, 9, 14}};
    std::vector<uint16_t> next_layer = {3, 4};
    auto step = [&](uint64_t s) {
        c.begin_step(s);
        for (uint32_t l = 0; l < 4; ++l) {
            c.begin_layer(l, routes[(s + l) % routes.size()]);
            if (l + 1 < 4) c.prefetch(l + 1, next_layer);
            while (auto e = c.next()) c.done(l, *e);
        }
    };
    for (uint64_t s = 0; s < 8; ++s) step(s);  // warm: buffers reach their sizes
    const uint64_t before = g_allocations.load();
    for (uint64_t s = 8; s < 40; ++s) step(s);
    const uint64_t allocated = g_allocations.load() - before;
    CHECK(allocated == 0);
    uint64_t misses = 0;
    for (const auto &st : c.stats()) misses += st.misses;
    CHECK(misses > 40);  // the loop really read experts
}
