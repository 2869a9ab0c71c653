// SPDX-License-Identifier: BSD-3-Clause
// FlowTable behaviour: lookup/insert/remove, expiry (lazy and by clock hand, across the 32-bit
// ms wrap), the recycling policy at capacity (SYN flood), full buckets, the remove hook.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <unordered_map>
#include <vector>

#include "flow_key.hpp"
#include "flow_table.hpp"

namespace stateline::flow {
namespace {

constexpr uint32_t kHalfOpenMs = FlowTableConfig{}.timeout_ms[1];
constexpr uint32_t kEstablishedMs = FlowTableConfig{}.timeout_ms[2];

struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

// Owns the table's memory: 64-byte aligned, filled with garbage first because the constructor
// must not rely on zeroed memory.
std::unique_ptr<void, FreeDeleter> table_memory(uint32_t capacity) {
    const size_t size = FlowTable::memory_size(capacity);
    void* p = std::aligned_alloc(64, size);
    if (p) std::memset(p, 0xa5, size);
    return std::unique_ptr<void, FreeDeleter>(p);
}

struct Table {
    explicit Table(const FlowTableConfig& cfg, RemoveHook hook = nullptr, void* ctx = nullptr)
        : mem(table_memory(cfg.capacity)), t(cfg, mem.get(), hook, ctx) {}
    std::unique_ptr<void, FreeDeleter> mem;
    FlowTable t;
};

FlowTableConfig config(uint32_t capacity) {
    FlowTableConfig cfg;
    cfg.capacity = capacity;
    return cfg;
}

// Distinct key per n: 10.x.y.z:(1024 + n>>24) <-> 192.0.2.1:443.
FlowKey key_n(uint32_t n) {
    const uint8_t a[4] = {10, static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8),
                          static_cast<uint8_t>(n)};
    const uint8_t b[4] = {192, 0, 2, 1};
    uint8_t src[16], dst[16];
    map_ipv4(src, a);
    map_ipv4(dst, b);
    FlowKey k;
    make_key(k, src, static_cast<uint16_t>(1024 + (n >> 24)), dst, 443, 0, 0);
    return k;
}

uint32_t insert(FlowTable& t, const FlowKey& k, TimeoutClass c, bool* created = nullptr) {
    bool c_out = false;
    const uint32_t idx = t.find_or_insert(k, flow_hash(k), c, &c_out);
    if (created) *created = c_out;
    return idx;
}

uint32_t find(FlowTable& t, const FlowKey& k) { return t.lookup(k, flow_hash(k)); }

uint64_t removed(const FlowTable& t, RemoveReason r) {
    return t.stats().removed[static_cast<unsigned>(r)];
}
uint64_t failed(const FlowTable& t, InsertFailure f) {
    return t.stats().insert_failed[static_cast<unsigned>(f)];
}
uint64_t removed_total(const FlowTable& t) {
    uint64_t n = 0;
    for (uint64_t r : t.stats().removed) n += r;
    return n;
}
uint64_t live_count(const FlowTable& t) {
    uint64_t n = 0;
    t.for_each([&](uint32_t, const FlowEntry&) { ++n; });
    return n;
}

// Counters add up and agree with the entries actually live.
void expect_consistent(const FlowTable& t) {
    EXPECT_EQ(t.stats().inserted - removed_total(t), t.stats().active);
    EXPECT_EQ(live_count(t), t.stats().active);
    EXPECT_LE(t.stats().active, t.capacity());
}

struct Removal {
    uint32_t idx;
    RemoveReason reason;
    FlowKey key;
    TimeoutClass tclass;
    uint32_t pkts0;
};

// Remove hook that snapshots what it can read of the entry about to be freed.
struct Recorder {
    FlowTable* table = nullptr;
    std::vector<Removal> log;

    static void hook(void* ctx, uint32_t idx, RemoveReason reason) {
        auto* self = static_cast<Recorder*>(ctx);
        const FlowEntry& e = self->table->entry(idx);
        self->log.push_back({idx, reason, e.key, e.tclass, self->table->cold(idx).pkts[0]});
    }
    size_t count(RemoveReason r) const {
        size_t n = 0;
        for (const Removal& x : log) n += x.reason == r;
        return n;
    }
    void expect_matches_stats() const {
        for (unsigned r = 0; r < kRemoveReasonCount; ++r)
            EXPECT_EQ(count(static_cast<RemoveReason>(r)), table->stats().removed[r])
                << kRemoveReasonInfo[r].name;
    }
};

// Keys that all have base's hash, hence the same two buckets and the same signature.
// flow_hash is a CRC32-C over a fixed-length key, affine over GF(2): h(k ^ d) == h(k) when the
// per-bit hash differences of d's bits XOR to zero. Gaussian elimination over the 128 bits of
// addr[1] finds at least 96 such d.
std::vector<FlowKey> colliding_keys(const FlowKey& base, size_t want) {
    const uint32_t h0 = flow_hash(base);
    struct Row {
        uint32_t v = 0;
        std::vector<unsigned> bits;
    };
    Row basis[32];
    std::vector<FlowKey> out{base};
    for (unsigned j = 0; j < 128 && out.size() < want; ++j) {
        FlowKey k = base;
        k.addr[1][j / 8] ^= static_cast<uint8_t>(1u << (j % 8));
        Row r{flow_hash(k) ^ h0, {j}};
        while (r.v) {
            Row& b = basis[31 - std::countl_zero(r.v)];
            if (!b.v) {
                b = r;
                break;
            }
            r.v ^= b.v;
            for (unsigned bit : b.bits) {  // symmetric difference of the bit sets
                auto it = std::find(r.bits.begin(), r.bits.end(), bit);
                if (it != r.bits.end())
                    r.bits.erase(it);
                else
                    r.bits.push_back(bit);
            }
        }
        if (r.v) continue;
        FlowKey c = base;
        for (unsigned bit : r.bits) c.addr[1][bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
        out.push_back(c);
    }
    return out;
}

std::vector<FlowKey> checked_colliding_keys(size_t want) {
    const std::vector<FlowKey> keys = colliding_keys(key_n(7), want);
    EXPECT_EQ(keys.size(), want);
    for (const FlowKey& k : keys)
        EXPECT_EQ(flow_hash(k), flow_hash(keys[0]))
            << "flow_hash is documented as a CRC32-C of the key; these tests build collisions "
               "from that linearity";
    return keys;
}

TEST(FlowTableLayout, MemoryBudgetAndBucketCount) {
    EXPECT_EQ(FlowTable::bucket_count(0), 1u);
    EXPECT_EQ(FlowTable::bucket_count(1), 1u);
    EXPECT_EQ(FlowTable::bucket_count(6), 1u);
    EXPECT_EQ(FlowTable::bucket_count(7), 2u);
    EXPECT_EQ(FlowTable::bucket_count(1u << 20), 174763u);
    EXPECT_EQ(FlowTable::bucket_count(UINT32_MAX - 1), 715827883u);  // no 32-bit wrap
    for (uint32_t cap : {0u, 1u, 5u, 6u, 7u, 100u, 4096u, 1u << 20}) {
        // At most 6 of a bucket's 8 slots used at capacity: load <= 0.75.
        EXPECT_LE(cap, 6ull * FlowTable::bucket_count(cap)) << cap;
        EXPECT_EQ(FlowTable::memory_size(cap) % 64, 0u) << cap;
        EXPECT_GE(FlowTable::memory_size(cap),
                  64ull * FlowTable::bucket_count(cap) + (64ull + 64ull) * cap);
    }
    const uint32_t cap = 1u << 20;
    const double per_conn = static_cast<double>(FlowTable::memory_size(cap)) / cap;
    // Hot line + cold line + the bucket share at load 0.75 (docs/performance.md has the budget).
    EXPECT_LE(per_conn, 64.0 + 64.0 + 64.0 / 6 + 0.01);
    EXPECT_GE(per_conn, 64.0 + 64.0);
}

TEST(FlowTableLayout, NamesAndHelp) {
    EXPECT_STREQ(kRemoveReasonInfo[static_cast<unsigned>(RemoveReason::expired)].name, "expired");
    EXPECT_STREQ(kRemoveReasonInfo[static_cast<unsigned>(RemoveReason::flushed)].name, "flushed");
    EXPECT_STREQ(kInsertFailureInfo[static_cast<unsigned>(InsertFailure::bucket_full)].name,
                 "bucket_full");
    for (const NamedHelp& x : kRemoveReasonInfo) EXPECT_GT(std::strlen(x.help), 0u);
    for (const NamedHelp& x : kInsertFailureInfo) EXPECT_GT(std::strlen(x.help), 0u);
    EXPECT_STREQ(timeout_class_name(TimeoutClass::half_open), "half_open");
    EXPECT_STREQ(timeout_class_name(TimeoutClass::time_wait), "time_wait");
    EXPECT_STREQ(timeout_class_name(TimeoutClass::count_), "unknown");
}

TEST(FlowTable, InsertFindRemoveRoundTrip) {
    Table tb(config(1024));
    FlowTable& t = tb.t;
    t.set_now(5000);
    EXPECT_EQ(t.stats().active, 0u);
    EXPECT_EQ(find(t, key_n(1)), kNoEntry);

    bool created = false;
    const FlowKey k = key_n(1);
    const uint32_t idx = insert(t, k, TimeoutClass::half_open, &created);
    ASSERT_NE(idx, kNoEntry);
    EXPECT_TRUE(created);
    // Every field initialised although the memory started as garbage.
    const FlowEntry& e = t.entry(idx);
    EXPECT_TRUE(e.key == k);
    EXPECT_EQ(e.last_seen, 5000u);
    EXPECT_EQ(e.tclass, TimeoutClass::half_open);
    EXPECT_EQ(e.flags, 0u);
    EXPECT_EQ(e.state[0] | e.state[1], 0);
    for (uint8_t b : e.tcp) EXPECT_EQ(b, 0);
    const FlowCold& c = t.cold(idx);
    EXPECT_EQ(c.first_ts_ns | c.last_ts_ns | c.ip_bytes[0] | c.ip_bytes[1], 0u);
    EXPECT_EQ(c.pkts[0] | c.pkts[1], 0u);
    for (uint8_t b : c.tcp) EXPECT_EQ(b, 0);

    EXPECT_EQ(find(t, k), idx);
    EXPECT_EQ(find(t, key_n(2)), kNoEntry);
    EXPECT_EQ(t.stats().inserted, 1u);
    EXPECT_EQ(t.stats().active, 1u);

    t.set_now(6000);
    t.touch(idx, TimeoutClass::established);
    EXPECT_EQ(t.entry(idx).last_seen, 6000u);
    EXPECT_EQ(t.entry(idx).tclass, TimeoutClass::established);

    t.remove(idx, RemoveReason::closed);
    EXPECT_EQ(find(t, k), kNoEntry);
    EXPECT_EQ(t.stats().active, 0u);
    EXPECT_EQ(removed(t, RemoveReason::closed), 1u);
    EXPECT_EQ(t.entry(idx).tclass, TimeoutClass::free);
    // A second remove of a free entry is refused (it would corrupt the free list).
#ifdef NDEBUG
    t.remove(idx, RemoveReason::closed);
    EXPECT_EQ(removed(t, RemoveReason::closed), 1u);
#endif

    // Re-inserting gets an entry again, freshly initialised.
    const uint32_t idx2 = insert(t, k, TimeoutClass::half_open, &created);
    ASSERT_NE(idx2, kNoEntry);
    EXPECT_TRUE(created);
    EXPECT_EQ(find(t, k), idx2);
    expect_consistent(t);
}

TEST(FlowTable, DuplicateInsertReturnsExisting) {
    Table tb(config(64));
    FlowTable& t = tb.t;
    bool created = false;
    const uint32_t a = insert(t, key_n(3), TimeoutClass::half_open, &created);
    ASSERT_NE(a, kNoEntry);
    EXPECT_TRUE(created);
    t.entry(a).state[0] = 7;
    t.cold(a).pkts[0] = 3;
    // Same key again, even with another class: the existing entry, untouched.
    const uint32_t b = insert(t, key_n(3), TimeoutClass::established, &created);
    EXPECT_EQ(b, a);
    EXPECT_FALSE(created);
    EXPECT_EQ(t.entry(a).tclass, TimeoutClass::half_open);
    EXPECT_EQ(t.entry(a).state[0], 7);
    EXPECT_EQ(t.cold(a).pkts[0], 3u);
    EXPECT_EQ(t.stats().inserted, 1u);
    EXPECT_EQ(t.stats().active, 1u);
    expect_consistent(t);
}

TEST(FlowTable, BothDirectionsHitTheSameEntry) {
    Table tb(config(64));
    FlowTable& t = tb.t;
    uint8_t client[16], server[16];
    const uint8_t c4[4] = {198, 51, 100, 7}, s4[4] = {203, 0, 113, 9};
    map_ipv4(client, c4);
    map_ipv4(server, s4);
    FlowKey fwd, rev;
    const Side sf = make_key(fwd, client, 40000, server, 443, 12 | kVlanPresent, 0);
    const Side sr = make_key(rev, server, 443, client, 40000, 12 | kVlanPresent, 0);
    EXPECT_NE(sf, sr);
    ASSERT_TRUE(fwd == rev);
    ASSERT_EQ(flow_hash(fwd), flow_hash(rev));

    bool created = false;
    const uint32_t idx = insert(t, fwd, TimeoutClass::half_open, &created);
    ASSERT_NE(idx, kNoEntry);
    EXPECT_TRUE(created);
    EXPECT_EQ(insert(t, rev, TimeoutClass::half_open, &created), idx);
    EXPECT_FALSE(created);
    EXPECT_EQ(find(t, rev), idx);

    // Another VLAN is another connection.
    FlowKey other;
    make_key(other, server, 443, client, 40000, 13 | kVlanPresent, 0);
    EXPECT_EQ(find(t, other), kNoEntry);
    const FlowKey* keys[3] = {&fwd, &rev, &other};
    const uint32_t hashes[3] = {flow_hash(fwd), flow_hash(rev), flow_hash(other)};
    uint32_t out[3];
    t.lookup_bulk(keys, hashes, 3, out);
    EXPECT_EQ(out[0], idx);
    EXPECT_EQ(out[1], idx);
    EXPECT_EQ(out[2], kNoEntry);
}

TEST(FlowTable, LookupBulkHitsAndMisses) {
    constexpr uint32_t kKeys = 20000;
    Table tb(config(16384));
    FlowTable& t = tb.t;
    std::vector<FlowKey> keys(kKeys);
    std::vector<uint32_t> hashes(kKeys);
    std::vector<uint32_t> expect(kKeys, kNoEntry);
    for (uint32_t n = 0; n < kKeys; ++n) {
        keys[n] = key_n(n);
        hashes[n] = flow_hash(keys[n]);
    }
    for (uint32_t n = 0; n < kKeys; n += 2) {  // even keys present, odd ones absent
        expect[n] = insert(t, keys[n], TimeoutClass::established);
        ASSERT_NE(expect[n], kNoEntry) << n;
    }
    EXPECT_EQ(t.stats().active, kKeys / 2);

    uint32_t none = 12345;
    t.lookup_bulk(nullptr, nullptr, 0, &none);  // an empty burst touches nothing
    EXPECT_EQ(none, 12345u);

    for (uint32_t burst : {1u, 7u, 32u, FlowTable::kMaxBurst}) {
        std::vector<const FlowKey*> ptrs(burst);
        std::vector<uint32_t> out(burst);
        for (uint32_t base = 0; base < kKeys; base += burst) {
            const uint32_t n = std::min(burst, kKeys - base);
            for (uint32_t i = 0; i < n; ++i) ptrs[i] = &keys[base + i];
            t.lookup_bulk(ptrs.data(), &hashes[base], n, out.data());
            for (uint32_t i = 0; i < n; ++i) {
                ASSERT_EQ(out[i], expect[base + i]) << "key " << base + i << " burst " << burst;
                ASSERT_EQ(t.lookup(keys[base + i], hashes[base + i]), expect[base + i]);
            }
        }
    }

    // The same key many times in one burst (a train of packets of one flow).
    const FlowKey* same[FlowTable::kMaxBurst];
    uint32_t same_h[FlowTable::kMaxBurst], out[FlowTable::kMaxBurst];
    for (uint32_t i = 0; i < FlowTable::kMaxBurst; ++i) {
        same[i] = &keys[(i % 4) * 2 + (i % 3 == 0)];
        same_h[i] = flow_hash(*same[i]);
    }
    t.lookup_bulk(same, same_h, FlowTable::kMaxBurst, out);
    for (uint32_t i = 0; i < FlowTable::kMaxBurst; ++i)
        EXPECT_EQ(out[i], expect[(i % 4) * 2 + (i % 3 == 0)]) << i;
    EXPECT_EQ(removed_total(t), 0u);
    expect_consistent(t);
}

TEST(FlowTableExpiry, EachClassUsesItsTimeout) {
    const FlowTableConfig cfg = config(64);
    for (unsigned c = 1; c < kTimeoutClassCount; ++c) {
        const auto tclass = static_cast<TimeoutClass>(c);
        const uint32_t timeout = cfg.timeout_ms[c];
        SCOPED_TRACE(timeout_class_name(tclass));
        Table tb(cfg);
        FlowTable& t = tb.t;
        t.set_now(1000);
        const uint32_t idx = insert(t, key_n(c), tclass);
        ASSERT_NE(idx, kNoEntry);
        t.set_now(1000 + timeout);  // idle exactly the timeout: still alive
        EXPECT_FALSE(t.expired(t.entry(idx)));
        EXPECT_EQ(find(t, key_n(c)), idx);
        t.set_now(1000 + timeout + 1);
        EXPECT_TRUE(t.expired(t.entry(idx)));
        EXPECT_EQ(find(t, key_n(c)), kNoEntry);
        EXPECT_EQ(removed(t, RemoveReason::expired), 1u);
        EXPECT_EQ(t.stats().active, 0u);
    }
}

TEST(FlowTableExpiry, ClockWrapsAround) {
    Table tb(config(64));
    FlowTable& t = tb.t;
    const uint32_t t0 = UINT32_MAX - 5000;
    t.set_now(t0);
    const uint32_t a = insert(t, key_n(1), TimeoutClass::half_open);
    const uint32_t b = insert(t, key_n(2), TimeoutClass::established);
    ASSERT_NE(a, kNoEntry);
    ASSERT_NE(b, kNoEntry);

    t.set_now(t0 + 20000);  // wrapped past 0
    ASSERT_LT(t.now(), t0);
    EXPECT_EQ(find(t, key_n(1)), a);
    t.touch(a, TimeoutClass::half_open);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(t.expire_step(), 0u);  // nothing is old yet

    t.set_now(t0 + 20000 + kHalfOpenMs);
    EXPECT_EQ(find(t, key_n(1)), a);
    t.set_now(t0 + 20000 + kHalfOpenMs + 1);
    EXPECT_EQ(find(t, key_n(1)), kNoEntry);
    EXPECT_EQ(find(t, key_n(2)), b);  // inserted before the wrap, well within its timeout
    t.set_now(t0 + kEstablishedMs + 1);
    EXPECT_EQ(find(t, key_n(2)), kNoEntry);
    EXPECT_EQ(removed(t, RemoveReason::expired), 2u);
    expect_consistent(t);
}

TEST(FlowTableExpiry, LazyExpiryOnLookupBulk) {
    Recorder rec;
    Table tb(config(64), &Recorder::hook, &rec);
    FlowTable& t = tb.t;
    rec.table = &t;
    t.set_now(0);
    const FlowKey k1 = key_n(1), k2 = key_n(2), k3 = key_n(3), absent = key_n(4);
    insert(t, k1, TimeoutClass::half_open);
    insert(t, k2, TimeoutClass::closed);
    const uint32_t i3 = insert(t, k3, TimeoutClass::established);
    t.set_now(kHalfOpenMs + 1);
    // k1 twice: the first occurrence expires it, the second must see the emptied slot.
    const FlowKey* keys[5] = {&k1, &k3, &k1, &k2, &absent};
    uint32_t hashes[5], out[5];
    for (int i = 0; i < 5; ++i) hashes[i] = flow_hash(*keys[i]);
    t.lookup_bulk(keys, hashes, 5, out);
    EXPECT_EQ(out[0], kNoEntry);
    EXPECT_EQ(out[1], i3);
    EXPECT_EQ(out[2], kNoEntry);
    EXPECT_EQ(out[3], kNoEntry);
    EXPECT_EQ(out[4], kNoEntry);
    EXPECT_EQ(removed(t, RemoveReason::expired), 2u);
    ASSERT_EQ(rec.log.size(), 2u);
    EXPECT_TRUE(rec.log[0].key == k1);
    EXPECT_TRUE(rec.log[1].key == k2);
    // An expired flow seen again is a new connection.
    bool created = false;
    EXPECT_NE(insert(t, k1, TimeoutClass::half_open, &created), kNoEntry);
    EXPECT_TRUE(created);
    expect_consistent(t);
}

TEST(FlowTableExpiry, ResultsDoNotDependOnScanSpeed) {
    // Two tables see the same packets; one runs the expiry clock hard, the other never.
    Table fast_tb(config(512)), lazy_tb(config(512));
    FlowTable& fast = fast_tb.t;
    FlowTable& lazy = lazy_tb.t;
    std::mt19937 rng(42);
    uint32_t now = 0;
    for (int step = 0; step < 20000; ++step) {
        now += rng() % 50;
        fast.set_now(now);
        lazy.set_now(now);
        for (int i = 0; i < 8; ++i) fast.expire_step();
        const FlowKey k = key_n(rng() % 300);
        const auto c = (rng() % 4) ? TimeoutClass::closed : TimeoutClass::half_open;
        bool cf = false, cl = false;
        const uint32_t a = insert(fast, k, c, &cf);
        const uint32_t b = insert(lazy, k, c, &cl);
        ASSERT_NE(a, kNoEntry);
        ASSERT_NE(b, kNoEntry);
        ASSERT_EQ(cf, cl) << "step " << step;
        fast.touch(a, c);
        lazy.touch(b, c);
    }
    EXPECT_GT(removed(fast, RemoveReason::expired), 0u);
    EXPECT_EQ(fast.stats().inserted, lazy.stats().inserted);
    expect_consistent(fast);
    expect_consistent(lazy);
}

TEST(FlowTableExpiry, ClockHandExaminesABoundedBatch) {
    FlowTableConfig cfg = config(1024);
    cfg.expiry_batch = 64;
    Table tb(cfg);
    FlowTable& t = tb.t;
    for (uint32_t n = 0; n < 1000; ++n) ASSERT_NE(insert(t, key_n(n), TimeoutClass::half_open), kNoEntry);
    for (uint32_t n = 1000; n < 1024; ++n)
        ASSERT_NE(insert(t, key_n(n), TimeoutClass::established), kNoEntry);
    EXPECT_EQ(t.expire_step(), 0u);  // nothing idle yet

    t.set_now(kHalfOpenMs + 1);
    uint32_t total = 0;
    for (int call = 0; call < 16; ++call) {  // 16 x 64 = every entry once, whatever the start
        const uint32_t n = t.expire_step();
        EXPECT_LE(n, 64u);
        total += n;
    }
    EXPECT_EQ(total, 1000u);
    EXPECT_EQ(t.expire_step(), 0u);
    EXPECT_EQ(t.stats().active, 24u);
    EXPECT_EQ(removed(t, RemoveReason::expired), 1000u);
    for (uint32_t n = 1000; n < 1024; ++n) EXPECT_NE(find(t, key_n(n)), kNoEntry);
    expect_consistent(t);

    // A batch larger than the table examines each entry at most once per call.
    FlowTableConfig small = config(16);
    small.expiry_batch = 1000;
    Table tb2(small);
    for (uint32_t n = 0; n < 10; ++n) ASSERT_NE(insert(tb2.t, key_n(n), TimeoutClass::closed), kNoEntry);
    tb2.t.set_now(small.timeout_ms[static_cast<unsigned>(TimeoutClass::closed)] + 1);
    EXPECT_EQ(tb2.t.expire_step(), 10u);
    EXPECT_EQ(tb2.t.stats().active, 0u);
}

TEST(FlowTableCapacity, FullOfEstablishedRefusesNewFlows) {
    constexpr uint32_t kCap = 600;
    Recorder rec;
    Table tb(config(kCap), &Recorder::hook, &rec);
    FlowTable& t = tb.t;
    rec.table = &t;
    std::vector<FlowKey> in;
    // Fill to capacity (a key whose two buckets are already full is skipped: bucket_full).
    for (uint32_t n = 0; t.stats().active < kCap; ++n) {
        ASSERT_LT(n, 10 * kCap);
        if (insert(t, key_n(n), TimeoutClass::established) != kNoEntry) in.push_back(key_n(n));
    }
    const uint64_t bucket_failures = failed(t, InsertFailure::bucket_full);
    for (uint32_t n = 0; n < 100; ++n)
        EXPECT_EQ(insert(t, key_n(1'000'000 + n), TimeoutClass::half_open), kNoEntry);
    EXPECT_EQ(failed(t, InsertFailure::table_full), 100u);
    EXPECT_EQ(failed(t, InsertFailure::bucket_full), bucket_failures);
    EXPECT_TRUE(rec.log.empty());
    for (const FlowKey& k : in) ASSERT_NE(find(t, k), kNoEntry);
    EXPECT_EQ(t.stats().active, kCap);

    // Established flows idle past their timeout are dead, not protected: they make room.
    t.set_now(kEstablishedMs + 1);
    bool created = false;
    EXPECT_NE(insert(t, key_n(2'000'000), TimeoutClass::half_open, &created), kNoEntry);
    EXPECT_TRUE(created);
    EXPECT_GE(removed(t, RemoveReason::expired), 1u);
    EXPECT_EQ(removed(t, RemoveReason::evicted_table_full), 0u);
    rec.expect_matches_stats();
    expect_consistent(t);
}

TEST(FlowTableCapacity, SynFloodRecyclesHalfOpenAndKeepsEstablished) {
    constexpr uint32_t kCap = 4096, kEstablished = 1000, kFlood = 100000;
    Recorder rec;
    Table tb(config(kCap), &Recorder::hook, &rec);
    FlowTable& t = tb.t;
    rec.table = &t;
    std::vector<uint32_t> est_idx;
    for (uint32_t n = 0; n < kEstablished; ++n) {
        est_idx.push_back(insert(t, key_n(n), TimeoutClass::established));
        ASSERT_NE(est_idx.back(), kNoEntry);
    }
    uint32_t ok = 0;
    for (uint32_t n = 0; n < kFlood; ++n) {
        t.set_now(n / 10);  // 10 SYNs per ms: none expires during the flood
        ok += insert(t, key_n(kEstablished + n), TimeoutClass::half_open) != kNoEntry;
    }
    const uint64_t failures =
        failed(t, InsertFailure::table_full) + failed(t, InsertFailure::bucket_full);
    EXPECT_EQ(ok + failures, kFlood);
    // The clock walk can meet only established entries (they sit together, inserted first); the
    // key's own 16 bucket slots are then searched, and with 1 in 4 entries established some
    // slot there is always half-open: no flood SYN is refused.
    EXPECT_EQ(failures, 0u);
    EXPECT_EQ(t.stats().inserted, kEstablished + ok);
    EXPECT_EQ(t.stats().active, kCap);
    EXPECT_GT(removed(t, RemoveReason::evicted_table_full), kFlood / 2);
    EXPECT_EQ(removed(t, RemoveReason::expired), 0u);

    for (uint32_t n = 0; n < kEstablished; ++n) {
        ASSERT_EQ(find(t, key_n(n)), est_idx[n]) << n;
        EXPECT_EQ(t.entry(est_idx[n]).tclass, TimeoutClass::established);
    }
    for (const Removal& r : rec.log) ASSERT_EQ(r.tclass, TimeoutClass::half_open);
    // The newest SYNs are tracked: recycling goes round the table, not to the latest arrival.
    EXPECT_NE(find(t, key_n(kEstablished + kFlood - 1)), kNoEntry);
    rec.expect_matches_stats();
    expect_consistent(t);
}

TEST(FlowTableCapacity, BucketFullRefusesWhenAllEstablished) {
    const std::vector<FlowKey> keys = checked_colliding_keys(17);
    ASSERT_FALSE(HasFailure());
    Table tb(config(256));
    FlowTable& t = tb.t;
    std::vector<uint32_t> idx;
    for (int i = 0; i < 16; ++i) {  // 2 buckets x 8 slots
        idx.push_back(insert(t, keys[i], TimeoutClass::established));
        ASSERT_NE(idx.back(), kNoEntry) << i;
    }
    EXPECT_EQ(insert(t, keys[16], TimeoutClass::established), kNoEntry);
    EXPECT_EQ(failed(t, InsertFailure::bucket_full), 1u);
    EXPECT_EQ(failed(t, InsertFailure::table_full), 0u);
    EXPECT_EQ(t.stats().active, 16u);
    // Same signature everywhere: every lookup sees 16 candidates and must pick the right one.
    for (int i = 0; i < 16; ++i) EXPECT_EQ(find(t, keys[i]), idx[i]);
    const FlowKey* ptrs[17];
    uint32_t hashes[17], out[17];
    for (int i = 0; i < 17; ++i) {
        ptrs[i] = &keys[i];
        hashes[i] = flow_hash(keys[i]);
    }
    t.lookup_bulk(ptrs, hashes, 17, out);
    for (int i = 0; i < 16; ++i) EXPECT_EQ(out[i], idx[i]);
    EXPECT_EQ(out[16], kNoEntry);
    // The refused insert leaked no entry: other keys still get in, a freed slot is reusable.
    EXPECT_NE(insert(t, key_n(100), TimeoutClass::half_open), kNoEntry);
    t.remove(idx[3], RemoveReason::closed);
    bool created = false;
    EXPECT_NE(insert(t, keys[16], TimeoutClass::established, &created), kNoEntry);
    EXPECT_TRUE(created);
    expect_consistent(t);
}

TEST(FlowTableCapacity, BucketFullRecyclesOldestNonEstablished) {
    const std::vector<FlowKey> keys = checked_colliding_keys(17);
    ASSERT_FALSE(HasFailure());
    Recorder rec;
    Table tb(config(256), &Recorder::hook, &rec);
    FlowTable& t = tb.t;
    rec.table = &t;
    t.set_now(100);
    for (int i = 0; i < 13; ++i) ASSERT_NE(insert(t, keys[i], TimeoutClass::established), kNoEntry);
    t.set_now(300);
    const uint32_t newer = insert(t, keys[13], TimeoutClass::half_open);
    t.set_now(200);
    const uint32_t older = insert(t, keys[14], TimeoutClass::closing);
    t.set_now(250);
    ASSERT_NE(insert(t, keys[15], TimeoutClass::established), kNoEntry);
    t.set_now(400);
    bool created = false;
    const uint32_t fresh = insert(t, keys[16], TimeoutClass::half_open, &created);
    ASSERT_NE(fresh, kNoEntry);
    EXPECT_TRUE(created);
    EXPECT_EQ(removed(t, RemoveReason::evicted_bucket_full), 1u);
    ASSERT_EQ(rec.log.size(), 1u);
    EXPECT_EQ(rec.log[0].idx, older);
    EXPECT_TRUE(rec.log[0].key == keys[14]);
    EXPECT_EQ(rec.log[0].reason, RemoveReason::evicted_bucket_full);
    EXPECT_EQ(find(t, keys[14]), kNoEntry);
    EXPECT_EQ(find(t, keys[13]), newer);
    EXPECT_EQ(find(t, keys[16]), fresh);
    for (int i = 0; i < 13; ++i) EXPECT_NE(find(t, keys[i]), kNoEntry);
    EXPECT_EQ(t.stats().active, 16u);
    expect_consistent(t);
}

TEST(FlowTableCapacity, BucketFullTakesAnExpiredEntryFirst) {
    const std::vector<FlowKey> keys = checked_colliding_keys(17);
    ASSERT_FALSE(HasFailure());
    FlowTableConfig cfg = config(256);
    cfg.timeout_ms[static_cast<unsigned>(TimeoutClass::established)] = 1000;
    Table tb(cfg);
    FlowTable& t = tb.t;
    t.set_now(0);
    ASSERT_NE(insert(t, keys[0], TimeoutClass::established), kNoEntry);
    t.set_now(5000);
    for (int i = 1; i < 15; ++i) ASSERT_NE(insert(t, keys[i], TimeoutClass::established), kNoEntry);
    const uint32_t half = insert(t, keys[15], TimeoutClass::half_open);
    t.set_now(5500);  // keys[0] idle 5500 ms > 1000: dead; the rest are fine
    ASSERT_NE(insert(t, keys[16], TimeoutClass::half_open), kNoEntry);
    EXPECT_EQ(removed(t, RemoveReason::expired), 1u);
    EXPECT_EQ(removed(t, RemoveReason::evicted_bucket_full), 0u);
    EXPECT_EQ(t.entry(half).tclass, TimeoutClass::half_open);
    EXPECT_EQ(find(t, keys[15]), half);
    EXPECT_EQ(find(t, keys[0]), kNoEntry);
    expect_consistent(t);
}

TEST(FlowTableHook, SeesEveryRemovalWithReasonAndKey) {
    FlowTableConfig cfg = config(4);  // one bucket, four entries
    Recorder rec;
    Table tb(cfg, &Recorder::hook, &rec);
    FlowTable& t = tb.t;
    rec.table = &t;

    // closed, with state and cold data readable in the hook
    uint32_t i = insert(t, key_n(0), TimeoutClass::established);
    t.cold(i).pkts[0] = 42;
    t.remove(i, RemoveReason::closed);
    ASSERT_EQ(rec.log.size(), 1u);
    EXPECT_EQ(rec.log[0].idx, i);
    EXPECT_EQ(rec.log[0].reason, RemoveReason::closed);
    EXPECT_TRUE(rec.log[0].key == key_n(0));
    EXPECT_EQ(rec.log[0].tclass, TimeoutClass::established);
    EXPECT_EQ(rec.log[0].pkts0, 42u);

    // expired, found by a lookup
    t.set_now(0);
    i = insert(t, key_n(1), TimeoutClass::half_open);
    t.set_now(kHalfOpenMs + 1);
    EXPECT_EQ(find(t, key_n(1)), kNoEntry);
    ASSERT_EQ(rec.log.size(), 2u);
    EXPECT_EQ(rec.log[1].reason, RemoveReason::expired);
    EXPECT_TRUE(rec.log[1].key == key_n(1));
    EXPECT_EQ(rec.log[1].tclass, TimeoutClass::half_open);

    // expired, found by the clock hand
    i = insert(t, key_n(2), TimeoutClass::closed);
    t.set_now(t.now() + cfg.timeout_ms[static_cast<unsigned>(TimeoutClass::closed)] + 1);
    EXPECT_EQ(t.expire_step(), 1u);
    ASSERT_EQ(rec.log.size(), 3u);
    EXPECT_EQ(rec.log[2].idx, i);
    EXPECT_EQ(rec.log[2].reason, RemoveReason::expired);
    EXPECT_TRUE(rec.log[2].key == key_n(2));

    // evicted_table_full: four half-open entries, a fifth flow
    std::vector<uint32_t> idx;
    for (uint32_t n = 10; n < 14; ++n) idx.push_back(insert(t, key_n(n), TimeoutClass::half_open));
    ASSERT_EQ(t.stats().active, 4u);
    const uint32_t fifth = insert(t, key_n(14), TimeoutClass::half_open);
    ASSERT_NE(fifth, kNoEntry);
    ASSERT_EQ(rec.log.size(), 4u);
    EXPECT_EQ(rec.log[3].reason, RemoveReason::evicted_table_full);
    EXPECT_EQ(rec.log[3].idx, fifth);  // its entry was recycled for the newcomer
    bool which = false;
    for (uint32_t n = 10; n < 14; ++n) which |= rec.log[3].key == key_n(n);
    EXPECT_TRUE(which);
    EXPECT_EQ(find(t, rec.log[3].key), kNoEntry);

    // flushed
    t.flush();
    EXPECT_EQ(t.stats().active, 0u);
    EXPECT_EQ(rec.log.size(), 8u);
    EXPECT_EQ(rec.count(RemoveReason::flushed), 4u);
    rec.expect_matches_stats();
    expect_consistent(t);

    // evicted_bucket_full, on a table large enough to have two buckets
    const std::vector<FlowKey> keys = checked_colliding_keys(17);
    ASSERT_FALSE(HasFailure());
    Recorder rec2;
    Table tb2(config(64), &Recorder::hook, &rec2);
    rec2.table = &tb2.t;
    for (int k = 0; k < 15; ++k) ASSERT_NE(insert(tb2.t, keys[k], TimeoutClass::established), kNoEntry);
    const uint32_t victim = insert(tb2.t, keys[15], TimeoutClass::half_open);
    ASSERT_NE(insert(tb2.t, keys[16], TimeoutClass::half_open), kNoEntry);
    ASSERT_EQ(rec2.log.size(), 1u);
    EXPECT_EQ(rec2.log[0].reason, RemoveReason::evicted_bucket_full);
    EXPECT_EQ(rec2.log[0].idx, victim);
    EXPECT_TRUE(rec2.log[0].key == keys[15]);
    rec2.expect_matches_stats();
}

TEST(FlowTable, FlushEmptiesTheTableForReuse) {
    Recorder rec;
    Table tb(config(4096), &Recorder::hook, &rec);
    FlowTable& t = tb.t;
    rec.table = &t;
    for (uint32_t n = 0; n < 1000; ++n)
        ASSERT_NE(insert(t, key_n(n), n % 2 ? TimeoutClass::established : TimeoutClass::closing),
                  kNoEntry);
    t.flush();
    EXPECT_EQ(t.stats().active, 0u);
    EXPECT_EQ(removed(t, RemoveReason::flushed), 1000u);
    EXPECT_EQ(rec.log.size(), 1000u);
    EXPECT_EQ(live_count(t), 0u);
    for (uint32_t n = 0; n < 1000; ++n) EXPECT_EQ(find(t, key_n(n)), kNoEntry);
    t.flush();  // idempotent
    EXPECT_EQ(removed(t, RemoveReason::flushed), 1000u);
    // Every entry went back to the free list: the whole capacity is usable again.
    uint32_t ok = 0;
    for (uint32_t n = 0; n < 4096; ++n)
        ok += insert(t, key_n(5000 + n), TimeoutClass::established) != kNoEntry;
    EXPECT_EQ(ok + failed(t, InsertFailure::bucket_full), 4096u);
    EXPECT_EQ(failed(t, InsertFailure::table_full), 0u);
    expect_consistent(t);
}

TEST(FlowTable, ZeroCapacityTracksNothing) {
    Table tb(config(0));
    FlowTable& t = tb.t;
    EXPECT_EQ(insert(t, key_n(1), TimeoutClass::half_open), kNoEntry);
    EXPECT_EQ(failed(t, InsertFailure::table_full), 1u);
    EXPECT_EQ(find(t, key_n(1)), kNoEntry);
    EXPECT_EQ(t.expire_step(), 0u);
    t.flush();
    expect_consistent(t);
}

TEST(FlowTable, ChurnAgreesWithAModel) {
    constexpr uint32_t kCap = 2048, kLiveMax = 1500, kPool = 10000;
    Recorder rec;
    Table tb(config(kCap), &Recorder::hook, &rec);
    FlowTable& t = tb.t;
    rec.table = &t;
    std::unordered_map<uint32_t, uint32_t> model;  // key number -> entry index
    std::vector<uint32_t> live;
    std::mt19937 rng(7);
    uint64_t refused = 0;
    for (int op = 0; op < 300000; ++op) {
        if (live.size() < kLiveMax && rng() % 10 < 6) {
            const uint32_t n = rng() % kPool;
            bool created = false;
            const uint32_t idx = insert(t, key_n(n), TimeoutClass::established, &created);
            auto it = model.find(n);
            if (it != model.end()) {
                ASSERT_EQ(idx, it->second);
                ASSERT_FALSE(created);
            } else if (idx == kNoEntry) {
                ++refused;
            } else {
                ASSERT_TRUE(created);
                model.emplace(n, idx);
                live.push_back(n);
            }
        } else if (!live.empty()) {
            const size_t pos = rng() % live.size();
            const uint32_t n = live[pos];
            live[pos] = live.back();
            live.pop_back();
            t.remove(model.at(n), RemoveReason::closed);
            model.erase(n);
        }
        if (op % 20000 == 0) {
            for (const auto& [n, idx] : model) ASSERT_EQ(find(t, key_n(n)), idx);
            ASSERT_EQ(t.stats().active, model.size());
        }
    }
    for (uint32_t n = 0; n < kPool; ++n) {
        auto it = model.find(n);
        ASSERT_EQ(find(t, key_n(n)), it == model.end() ? kNoEntry : it->second) << n;
    }
    EXPECT_EQ(failed(t, InsertFailure::bucket_full), refused);
    EXPECT_EQ(rec.log.size(), removed(t, RemoveReason::closed));
    EXPECT_EQ(removed_total(t), removed(t, RemoveReason::closed));
    rec.expect_matches_stats();
    expect_consistent(t);
}


// The per-state gauges (exported as connections by state) follow every way an entry changes
// class or leaves: insert, touch to another class, remove, expiry, recycling, flush.
TEST(FlowTable, ActiveByClassFollowsEveryChange) {
    Table tb(config(256));
    FlowTable& t = tb.t;
    auto by = [&](TimeoutClass c) { return t.stats().active_by_class[static_cast<unsigned>(c)]; };
    auto sum = [&] {
        uint64_t s = 0;
        for (unsigned c = 1; c < kTimeoutClassCount; ++c) s += t.stats().active_by_class[c];
        return s;
    };
    std::vector<uint32_t> idx;
    for (uint32_t n = 0; n < 100; ++n) idx.push_back(insert(t, key_n(n), TimeoutClass::half_open));
    EXPECT_EQ(by(TimeoutClass::half_open), 100u);
    for (uint32_t n = 0; n < 60; ++n) t.touch(idx[n], TimeoutClass::established);
    for (uint32_t n = 60; n < 70; ++n) t.touch(idx[n], TimeoutClass::closed);
    t.touch(idx[0], TimeoutClass::established);  // same class: no change
    EXPECT_EQ(by(TimeoutClass::half_open), 30u);
    EXPECT_EQ(by(TimeoutClass::established), 60u);
    EXPECT_EQ(by(TimeoutClass::closed), 10u);
    EXPECT_EQ(sum(), t.stats().active);
    for (uint32_t n = 0; n < 5; ++n) t.remove(idx[n], RemoveReason::closed);
    EXPECT_EQ(by(TimeoutClass::established), 55u);
    // Idle past the half-open timeout: the expiry clock takes the 30 half-open entries.
    t.set_now(kHalfOpenMs + 1000);
    for (int i = 0; i < 100; ++i) t.expire_step();
    EXPECT_EQ(by(TimeoutClass::half_open), 0u);
    EXPECT_EQ(sum(), t.stats().active);
    t.flush();
    EXPECT_EQ(sum(), 0u);
    EXPECT_EQ(t.stats().active, 0u);
}
}  // namespace
}  // namespace stateline::flow
