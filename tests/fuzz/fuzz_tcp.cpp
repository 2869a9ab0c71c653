// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: the TCP state machine (tcp::Tracker) on a real flow::FlowTable, fed a
// sequence of crafted segments the way src/worker.cpp stage_track() does: lookup (a match idle
// past its timeout expires), find_or_insert, on_first/on_segment, restart (remove + track
// afresh), touch, an expiry step per segment, the remove hook calling Tracker::finish, and a
// final flush.
//
// Input: byte 0 sets the table capacity (1..16, so eviction and bucket-full paths are reached),
// then 8 bytes per segment:
//   b0  bit 0 direction (0 client -> server), bits 1-3 which of 8 connections (IPv4, IPv6,
//       VLAN-tagged), bit 4 TCP options (MSS, window scale from b6, SACK-permitted, timestamps),
//       bits 5-7 how far the clock advances (0 to past the established timeout)
//   b1  TCP flags
//   b2-3 seq: signed delta from the sender's next sequence number (-32768: a jump of 2^31)
//   b4-5 ack: signed delta from the other side's next sequence number
//   b6  window (high and low byte), window scale (low nibble) with options
//   b7  payload length (x 4 when bit 0 of b6 is set)
// Invariants (abort on failure):
//   after every segment: the verdict's timeout class is valid; the entry the segment went to
//     (the only one on_first/on_segment write) has a valid state_of() on both sides and a valid
//     timeout class; active == inserted - removed (all reasons) == the sum of active_by_class,
//     <= capacity; the hook ran once per removal;
//   every kWalkEvery segments and at the end of the input, also a walk of the whole table:
//     every live entry's class and states valid, live entries seen by for_each == active.
//   At the end flush() leaves the table empty.
// The walk used to run after every segment: it was a tenth of the time of an execution (with the
// coverage callbacks of its comparisons). Nothing but the segment's own entry changes state
// between two walks (the tracker writes only the entry it is given; the table only frees and
// inserts, which the counts above follow), so a bad state is still caught, at the latest at the
// next walk. The checks are not instrumented for coverage (no_sanitize("coverage")): their
// branches are not code under test and guide nothing; ASan and UBSan still apply to them.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "flow_key.hpp"
#include "flow_table.hpp"
#include "packet_meta.hpp"
#include "tcp_tracker.hpp"

using namespace stateline;
using flow::FlowTable;
using flow::kNoEntry;
using flow::TimeoutClass;

#define FUZZ_CHECK(cond)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            std::fprintf(stderr, "fuzz_tcp: invariant failed: %s (line %d)\n", #cond, __LINE__);  \
            std::abort();                                                                         \
        }                                                                                         \
    } while (0)

namespace {

struct Harness {
    FlowTable* table = nullptr;
    tcp::Tracker tracker;
    uint64_t counters[tcp::kCounterCount] = {};
    uint64_t hook_calls = 0;
};

void on_remove(void* ctx, uint32_t idx, flow::RemoveReason why) {
    auto& h = *static_cast<Harness*>(ctx);
    FUZZ_CHECK(static_cast<unsigned>(why) < flow::kRemoveReasonCount);
    const flow::FlowEntry& e = h.table->entry(idx);
    FUZZ_CHECK(e.tclass != TimeoutClass::free);
    connlog::ConnRecord r;
    std::memset(&r, 0xa5, sizeof r);
    h.tracker.finish(e, h.table->cold(idx), why, r, h.counters);
    ++h.hook_calls;
}

uint64_t removed_total(const flow::FlowTableStats& s) {
    uint64_t n = 0;
    for (uint64_t r : s.removed) n += r;
    return n;
}

// Counts only: O(1), after every segment.
__attribute__((no_sanitize("coverage"))) void check_counts(const Harness& h) {
    const FlowTable& t = *h.table;
    const flow::FlowTableStats& s = t.stats();
    const uint64_t removed = removed_total(s);
    FUZZ_CHECK(s.inserted >= removed);
    FUZZ_CHECK(s.active == s.inserted - removed);
    FUZZ_CHECK(h.hook_calls == removed);
    FUZZ_CHECK(s.active <= t.capacity());
    uint64_t by_class = 0;
    for (unsigned c = 1; c < flow::kTimeoutClassCount; ++c) by_class += s.active_by_class[c];
    FUZZ_CHECK(by_class == s.active);
}

__attribute__((no_sanitize("coverage"))) void check_entry(const flow::FlowEntry& e) {
    FUZZ_CHECK(e.tclass != TimeoutClass::free);
    FUZZ_CHECK(static_cast<unsigned>(e.tclass) < flow::kTimeoutClassCount);
    FUZZ_CHECK(static_cast<unsigned>(tcp::Tracker::state_of(e, flow::Side::lo)) < tcp::kStateCount);
    FUZZ_CHECK(static_cast<unsigned>(tcp::Tracker::state_of(e, flow::Side::hi)) < tcp::kStateCount);
    FUZZ_CHECK(tcp::state_name(tcp::Tracker::state_of(e, flow::Side::lo)) != nullptr);
}

// The counts and a walk of every live entry.
__attribute__((no_sanitize("coverage"))) void check_table(const Harness& h) {
    check_counts(h);
    uint64_t live = 0;
    h.table->for_each([&](uint32_t, const flow::FlowEntry& e) {
        ++live;
        check_entry(e);
    });
    FUZZ_CHECK(live == h.table->stats().active);
}

// Segments between two walks of the whole table (see the top of the file).
constexpr unsigned kWalkEvery = 16;

struct Conn {
    uint8_t addr[2][16];  // [0] client, [1] server
    uint16_t port[2];
    uint16_t vlan;
    bool v6;
    uint32_t nxt[2];      // next sequence number each side would send
};

constexpr uint32_t kClockMs[8] = {0, 1, 20, 500, 5'000, 31'000, 125'000, 7'300'000};

struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    flow::FlowTableConfig cfg;
    cfg.capacity = 1 + (data[0] & 15);
    cfg.expiry_batch = 4;
    cfg.evict_search = 8;
    const size_t bytes = (FlowTable::memory_size(cfg.capacity) + 63) / 64 * 64;
    std::unique_ptr<void, FreeDeleter> mem(std::aligned_alloc(64, bytes));
    Harness h;
    FlowTable table(cfg, mem.get(), on_remove, &h);
    h.table = &table;

    Conn conns[8];
    for (unsigned i = 0; i < 8; ++i) {
        Conn& c = conns[i];
        std::memset(&c, 0, sizeof c);
        c.v6 = i == 5 || i == 6;
        if (c.v6) {
            c.addr[0][0] = 0x20, c.addr[0][1] = 0x01, c.addr[0][2] = 0x0d, c.addr[0][3] = 0xb8;
            std::memcpy(c.addr[1], c.addr[0], 16);
            c.addr[0][15] = static_cast<uint8_t>(1 + i);
            c.addr[1][15] = 0x80;
        } else {
            const uint8_t cli[4] = {10, 0, 0, static_cast<uint8_t>(1 + (i % 3))};
            const uint8_t srv[4] = {10, 0, 1, static_cast<uint8_t>(i == 4 ? 1 : 200)};
            flow::map_ipv4(c.addr[0], cli);
            flow::map_ipv4(c.addr[1], srv);
        }
        c.port[0] = static_cast<uint16_t>(40000 + (i % 4));  // 0 and 4 share the tuple but the VLAN
        c.port[1] = i == 3 ? 40000 : 80;  // same port both sides: the key's tie-break
        c.vlan = i == 7 || i == 4 ? static_cast<uint16_t>(flow::kVlanPresent | 100) : 0;
        c.nxt[0] = 0x1000'0000u * (i + 1) - 5000;  // some near a wrap
        c.nxt[1] = 0xfff0'0000u + i * 77777u;
    }

    uint64_t now_ns = 1'700'000'000'000'000'000ull;
    table.set_now(static_cast<uint32_t>(now_ns / 1'000'000));
    uint32_t tsval = 1000;
    unsigned segments = 0;

    for (size_t off = 1; off + 8 <= size; off += 8) {
        const uint8_t* s = data + off;
        const unsigned dir = s[0] & 1;
        Conn& c = conns[(s[0] >> 1) & 7];
        const bool opts = (s[0] & 0x10) != 0;
        now_ns += uint64_t{kClockMs[s[0] >> 5]} * 1'000'000 + 1000;

        packet::PacketMeta m;
        std::memset(&m, 0, sizeof m);
        m.outcome = packet::Outcome::tcp;
        m.sender = flow::make_key(m.key, c.addr[dir], c.port[dir], c.addr[1 - dir], c.port[1 - dir], c.vlan, 0);
        m.hash = flow::flow_hash(m.key);
        m.tcp_flags = s[1];
        const int16_t dseq = static_cast<int16_t>(s[2] << 8 | s[3]);
        const int16_t dack = static_cast<int16_t>(s[4] << 8 | s[5]);
        m.seq = dseq == INT16_MIN ? c.nxt[dir] + 0x8000'0000u : c.nxt[dir] + static_cast<uint32_t>(int32_t{dseq});
        m.ack = c.nxt[1 - dir] + static_cast<uint32_t>(int32_t{dack});
        m.window = static_cast<uint16_t>(s[6] << 8 | s[6]);
        m.payload_len = (s[6] & 1) ? uint32_t{s[7]} * 4 : s[7];
        if (opts) {
            m.info |= packet::info_bit::has_mss | packet::info_bit::has_wscale | packet::info_bit::has_sack_permitted |
                      packet::info_bit::has_timestamp;
            m.mss = 1460;
            m.wscale = s[6] & 15;  // above 14 on purpose (RFC 7323 clamps)
            m.tsval = tsval++;
            m.tsecr = tsval / 2;
        }
        if (c.v6) m.info |= packet::info_bit::ipv6;
        const uint32_t hdr = (c.v6 ? 40 : 20) + (opts ? 40 : 20);
        m.ip_len = hdr + m.payload_len;
        m.l3_off = c.vlan ? 18 : 14;
        m.wire_len = static_cast<uint16_t>(std::min<uint32_t>(0xffff, m.l3_off + m.ip_len));
        m.vlan_depth = c.vlan ? 1 : 0;
        m.ts_ns = now_ns;
        // The sender's next sequence number moves on with what it sent (SYN and FIN count one).
        const uint32_t used = m.payload_len + ((m.tcp_flags & packet::tcp_flag::syn) ? 1 : 0) +
                              ((m.tcp_flags & packet::tcp_flag::fin) ? 1 : 0);
        if (static_cast<int32_t>(m.seq + used - c.nxt[dir]) > 0) c.nxt[dir] = m.seq + used;

        // As stage_track: capture time drives the table clock.
        table.set_now(static_cast<uint32_t>(now_ns / 1'000'000));
        uint32_t e = table.lookup(m.key, m.hash);
        bool created = false;
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (e == kNoEntry) {
                e = table.find_or_insert(m.key, m.hash, TimeoutClass::half_open, &created);
                if (e == kNoEntry) break;  // untracked_no_room
                FUZZ_CHECK(e < table.capacity());
                FUZZ_CHECK(table.entry(e).key == m.key);
            }
            const tcp::Verdict v = created ? h.tracker.on_first(table.entry(e), table.cold(e), m, h.counters)
                                           : h.tracker.on_segment(table.entry(e), table.cold(e), m, h.counters);
            FUZZ_CHECK(static_cast<unsigned>(v.tclass) > 0 &&
                       static_cast<unsigned>(v.tclass) < flow::kTimeoutClassCount);
            if (v.restart && !created) {
                table.remove(e, flow::RemoveReason::closed);
                e = kNoEntry;
                continue;
            }
            // A restart on a fresh entry is ignored by the worker too (no loop).
            table.touch(e, v.tclass);
            check_entry(table.entry(e));
            (void)tcp::Tracker::stream_offset(table.entry(e), m.sender, m.seq);
            break;
        }
        table.expire_step();
        if (++segments % kWalkEvery == 0)
            check_table(h);
        else
            check_counts(h);
    }

    check_table(h);
    table.flush();
    check_table(h);
    FUZZ_CHECK(table.stats().active == 0);
    return 0;
}
