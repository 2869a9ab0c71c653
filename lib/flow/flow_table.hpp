// SPDX-License-Identifier: BSD-3-Clause
// Per-worker connection table: fixed capacity, preallocated, built for churn.
//
// Layout (see lib/flow/README.md for the why):
//   buckets  64 B each: 8 x (16-bit signature, 32-bit entry index); two candidate buckets per key
//   entries  64 B each: the hot line a packet touches, key first, then state
//   colds    64 B each: what only the connection log reads
// Memory per tracked connection, all included: 64 + 64 + 64/(8 * 0.75) ~= 139 B at capacity.
//
// Free entries are chained through their first word; a full table recycles a non-established
// entry found by a bounded clock hand (or, when the hand meets only established entries, among
// the new key's own 16 bucket slots), so a SYN flood recycles half-open entries and never
// evicts an established connection.
//
// Thread safety: none. One table belongs to one worker lcore; the control core reads only the
// published counters (see stats()).
#pragma once

#include <cstddef>
#include <cstdint>

#include "flow_key.hpp"

namespace stateline::flow {

inline constexpr uint32_t kNoEntry = UINT32_MAX;

// Timeout class of an entry: what the state machine says it is waiting for. The table knows
// only the class's timeout and whether it may be recycled under pressure (all but established).
enum class TimeoutClass : uint8_t {
    free = 0,     // slot unused
    half_open,    // handshake not complete (SYN or SYN-ACK seen), or only one side heard from
    established,  // both directions past the handshake (or picked up mid-stream), both heard
    closing,      // a FIN seen, waiting for the rest of the close
    time_wait,    // both FINs acknowledged: 2 * MSL
    closed,       // RST seen: kept briefly to absorb retransmitted RSTs and stragglers
    count_
};
inline constexpr unsigned kTimeoutClassCount = static_cast<unsigned>(TimeoutClass::count_);
const char* timeout_class_name(TimeoutClass c) noexcept;

// Why an entry left the table. Each has its own counter.
#define STATELINE_FLOW_REMOVE_REASONS(X)                                                          \
    X(expired, "Idle past the timeout of its state")                                              \
    X(evicted_table_full, "Recycled (not established) to make room: table at capacity")          \
    X(evicted_bucket_full, "Recycled (not established) to make room: both buckets full")         \
    X(closed, "Removed by the state machine (connection over)")                                   \
    X(flushed, "Still open when the table was flushed at shutdown")

enum class RemoveReason : uint8_t {
#define STATELINE_X(name, help) name,
    STATELINE_FLOW_REMOVE_REASONS(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kRemoveReasonCount = static_cast<unsigned>(RemoveReason::count_);

// Why a new connection could not be tracked. Each has its own counter.
#define STATELINE_FLOW_INSERT_FAILURES(X)                                                         \
    X(table_full, "Table at capacity and the clock hand found nothing to recycle")              \
    X(bucket_full, "Both candidate buckets hold established connections only")

enum class InsertFailure : uint8_t {
#define STATELINE_X(name, help) name,
    STATELINE_FLOW_INSERT_FAILURES(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kInsertFailureCount = static_cast<unsigned>(InsertFailure::count_);

struct NamedHelp {
    const char* name;
    const char* help;
};
extern const NamedHelp kRemoveReasonInfo[kRemoveReasonCount];
extern const NamedHelp kInsertFailureInfo[kInsertFailureCount];

// The line a packet touches. Key first (compared on lookup), state after (advanced by the
// state machine): one cache line, one miss per packet once the bucket is in cache.
struct alignas(64) FlowEntry {
    FlowKey key;             // 40: while free, key.addr[0][0..3] chains the free list
    uint32_t last_seen;      // table clock (ms) of the last packet; wrap-safe comparisons
    TimeoutClass tclass;     // free / half_open / established / ...
    uint8_t flags;           // flow_flag::*
    uint8_t state[2];        // per-side TCP state, owned by the state machine
    uint8_t tcp[16];         // per-side sequence tracking, owned by the state machine
};
static_assert(sizeof(FlowEntry) == 64, "the per-packet line must stay one cache line");

namespace flow_flag {
inline constexpr uint8_t orig_is_hi = 0x01;  // the originator is side hi of the key
}

// What only the connection log needs, kept off the per-packet line. Exactly one line, aligned,
// so reading or updating it is one miss, never two (a 48-byte element straddles lines half the
// time).
struct alignas(64) FlowCold {
    uint64_t first_ts_ns;    // capture time of the first packet
    uint64_t last_ts_ns;     // capture time of the last packet
    uint64_t ip_bytes[2];    // per side, IP header + payload
    uint32_t pkts[2];        // per side
    uint8_t tcp[24];         // owned by the TCP tracker: ISNs, Zeek history, anomaly bits
};
static_assert(sizeof(FlowCold) == 64, "cold data is one cache line per connection");

struct FlowTableConfig {
    uint32_t capacity = 1u << 20;        // connections per worker
    uint32_t expiry_batch = 64;          // entries the expiry clock examines per call
    uint32_t evict_search = 64;          // entries the recycling clock examines per insert
    uint32_t timeout_ms[kTimeoutClassCount] = {0, 30'000, 7'200'000, 120'000, 60'000, 10'000};
};

struct FlowTableStats {
    uint64_t inserted = 0;
    uint64_t removed[kRemoveReasonCount] = {};
    uint64_t insert_failed[kInsertFailureCount] = {};
    uint64_t active = 0;  // entries in use now
    uint64_t active_by_class[kTimeoutClassCount] = {};  // ... by timeout class ([free] unused)
};

// Called for each entry just before it is freed (expiry, eviction, close, flush), while its
// key, hot and cold data are still readable. `ctx` is the pointer given at construction.
using RemoveHook = void (*)(void* ctx, uint32_t idx, RemoveReason reason);

class FlowTable {
public:
    // Bytes of memory for `capacity` connections, everything included.
    static size_t memory_size(uint32_t capacity) noexcept;
    // Number of buckets for `capacity` (load factor at capacity <= 0.75).
    static uint32_t bucket_count(uint32_t capacity) noexcept;

    // `mem`: memory_size(cfg.capacity) bytes, 64-byte aligned, owned by the caller and kept
    // alive as long as the table. Need not be zeroed.
    FlowTable(const FlowTableConfig& cfg, void* mem, RemoveHook hook = nullptr,
              void* hook_ctx = nullptr) noexcept;

    // Finds n keys at once. Prefetches all buckets, then compares signatures and prefetches the
    // matching entries, then compares keys: the misses of one key overlap with the others'.
    // idx_out[i] = entry index or kNoEntry. A match idle past its timeout is removed (reason
    // expired) and reported as a miss, so results never depend on how fast expiry runs.
    // n <= kMaxBurst.
    static constexpr uint32_t kMaxBurst = 64;
    void lookup_bulk(const FlowKey* const* keys, const uint32_t* hashes, uint32_t n,
                     uint32_t* idx_out) noexcept;

    // Single-key lookup with the same semantics.
    uint32_t lookup(const FlowKey& key, uint32_t hash) noexcept;

    // Returns the entry for key, inserting it (class tclass, last_seen now) when absent.
    // *created says which. kNoEntry when the connection cannot be tracked (counted by reason).
    uint32_t find_or_insert(const FlowKey& key, uint32_t hash, TimeoutClass tclass,
                            bool* created) noexcept;

    // Removes an entry (the hook runs first).
    void remove(uint32_t idx, RemoveReason reason) noexcept;

    // Advances the expiry clock over up to cfg.expiry_batch entries; returns how many expired.
    uint32_t expire_step() noexcept;

    // Removes every entry with reason `flushed` (shutdown).
    void flush() noexcept;

    // The table clock, in ms. The owner sets it from packet time (replay) or the TSC (live).
    void set_now(uint32_t now_ms) noexcept { now_ = now_ms; }
    uint32_t now() const noexcept { return now_; }

    // Marks an entry used now, with (possibly new) timeout class.
    void touch(uint32_t idx, TimeoutClass tclass) noexcept {
        FlowEntry& e = entries_[idx];
        e.last_seen = now_;
        if (e.tclass != tclass) [[unlikely]] {
            --stats_.active_by_class[static_cast<unsigned>(e.tclass)];
            ++stats_.active_by_class[static_cast<unsigned>(tclass)];
            e.tclass = tclass;
        }
    }

    FlowEntry& entry(uint32_t idx) noexcept { return entries_[idx]; }
    const FlowEntry& entry(uint32_t idx) const noexcept { return entries_[idx]; }
    FlowCold& cold(uint32_t idx) noexcept { return colds_[idx]; }
    const FlowCold& cold(uint32_t idx) const noexcept { return colds_[idx]; }

    bool expired(const FlowEntry& e) const noexcept {
        return now_ - e.last_seen > cfg_.timeout_ms[static_cast<unsigned>(e.tclass)];
    }

    const FlowTableStats& stats() const noexcept { return stats_; }
    uint32_t capacity() const noexcept { return cfg_.capacity; }
    const FlowTableConfig& config() const noexcept { return cfg_; }

    // Visits every live entry (control-plane use: tests, flow dumps). Not for the data path.
    template <class F>
    void for_each(F&& f) const {
        for (uint32_t i = 0; i < cfg_.capacity; ++i)
            if (entries_[i].tclass != TimeoutClass::free) f(i, entries_[i]);
    }

private:
    struct alignas(64) Bucket {
        uint16_t sig[8];
        uint32_t idx[8];  // kNoEntry when the slot is empty
        uint8_t pad[16];
    };
    static_assert(sizeof(Bucket) == 64, "a bucket is one cache line");

    uint32_t primary(uint32_t hash) const noexcept;
    uint32_t secondary(uint32_t hash) const noexcept;
    static uint16_t signature(uint32_t hash) noexcept;
    uint32_t find_in(uint32_t b, const FlowKey& key, uint16_t sig) const noexcept;
    uint32_t alloc_entry() noexcept;
    uint32_t recycle_by_clock() noexcept;
    void prefetch_next_victim() noexcept;
    bool recycle_from_buckets(uint32_t p, uint32_t s, RemoveReason reason) noexcept;
    bool unlink(uint32_t idx) noexcept;
    void free_entry(uint32_t idx, RemoveReason reason) noexcept;

    FlowTableConfig cfg_;
    Bucket* buckets_;
    FlowEntry* entries_;
    FlowCold* colds_;
    uint32_t nbuckets_;
    uint32_t free_head_;
    uint32_t expiry_hand_ = 0;
    uint32_t evict_hand_ = 0;
    uint32_t now_ = 0;
    // The next recycling victim's hash, computed once when its lines were prefetched and reused
    // by its unlink. Invalid (kNoEntry) once that entry is freed by any path.
    uint32_t lookahead_idx_ = kNoEntry;
    uint32_t lookahead_hash_ = 0;
    RemoveHook hook_;
    void* hook_ctx_;
    FlowTableStats stats_;
};

}  // namespace stateline::flow
