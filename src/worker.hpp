// SPDX-License-Identifier: BSD-3-Clause
// A worker lcore and everything it owns. Nothing mutable here is shared with another worker;
// the control core only reads `counters` (relaxed) while running and the rest after the stop.
#pragma once

#include <atomic>
#include <cstdint>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "conn_record.hpp"
#include "counters.hpp"
#include "detector.hpp"
#include "flow_table.hpp"
#include "packet_meta.hpp"
#include "rules.hpp"
#include "tcp_tracker.hpp"

namespace stateline {

inline constexpr uint32_t kMaxBurst = 64;
inline constexpr uint16_t kMaxPorts = 32;

// Where a worker's frames come from, fixed at start.
enum class InputKind : uint8_t {
    ports,  // live: RX queue `queue` of every port; the worker parses, time from the TSC
    ring,   // capture replay: the dispatcher parsed already, time from packet timestamps
};

struct RxQueue {
    uint16_t port;
    uint16_t queue;
    packet::LinkType link;
    uint16_t tx_port = 0;  // inline mode: the paired port the frames leave by (TX queue = worker id)
};

// Shared run state, written by the control core or the dispatcher, read once per loop.
struct RunState {
    std::atomic<bool> stop{false};        // SIGINT/SIGTERM or fatal error: finish now
    std::atomic<bool> input_done{false};  // capture mode: dispatcher delivered everything
};

struct Worker;

// --- Connection lookups for the control socket (src/ctl_server.cpp) ---
// A mailbox per worker, so that no other thread ever reads a worker's table. The control core
// writes the query, then sets `state` to asked (release); the worker sees it in housekeeping()
// (one relaxed load per loop), searches its own table in bounded slices (kSlice entries per loop
// live, kSliceReplay in a replay; one exact lookup first when both endpoints and ports are
// given), writes the answer and
// sets answered (release); the control core reads it and sets idle. Whoever's turn it is owns
// every other field. On its own cache lines: the worker's loop reads `state` and nothing else.
struct alignas(64) ConnQuery {
    enum : uint32_t { idle = 0, asked = 1, answered = 2 };
    static constexpr uint32_t kMaxMatches = 16;  // kept per worker (all are counted)
    static constexpr uint32_t kSlice = 256;      // table entries examined per loop, live
    // A replay's worker loses nothing by pausing (the dispatcher waits on its full ring) but may
    // loop rarely (a sparse capture), so it scans in bigger slices.
    static constexpr uint32_t kSliceReplay = 65536;
    std::atomic<uint32_t> state{idle};
    // The query: endpoint 0 (address, port if has_port[0]); endpoint 1 too if has_peer.
    // Addresses as in flow keys (IPv4 mapped).
    uint8_t addr[2][16]{};
    uint16_t port[2]{};
    bool has_port[2]{};
    bool has_peer = false;
    bool started = false;  // the control core clears it with each query
    uint32_t cursor = 0;   // the worker's progress through its table
    // The answer.
    uint32_t matches = 0;  // connections matching; the first kMaxMatches are in rec
    uint32_t kept = 0;
    uint64_t now_ns = 0;   // the worker's clock when it answered
    connlog::ConnRecord rec[kMaxMatches];  // worker, key, states, counts, history, conn_state
    uint8_t tclass[kMaxMatches];           // flow::TimeoutClass of each
};

// Worker side of the mailbox: called by housekeeping() when query.state is asked.
void answer_conn_query(Worker& w) noexcept;
// --- end connection lookups ---

// --- Mitigation mailbox (src/mitigation.cpp) ---
// The control core builds a worker's rules (WorkerRules: scratch, buckets, counters) and its
// copy of the active alerts' targets (VictimSet) off the hot path and offers them here; the
// worker swaps them in at a burst boundary (housekeeping, one relaxed load each per loop) and
// hands back what it used, for the control core to free. An offer is taken only when the
// previous retiree has been collected, so each retired slot holds at most one.
struct alignas(64) MitigationBox {
    std::atomic<rules::WorkerRules*> rules_offered{nullptr};
    std::atomic<rules::WorkerRules*> rules_retired{nullptr};
    std::atomic<bool> rules_retired_full{false};  // set with rules_retired (which may be null)
    std::atomic<rules::VictimSet*> victims_offered{nullptr};
    std::atomic<rules::VictimSet*> victims_retired{nullptr};
    // 1 + the detection interval after which the set in use was built (0: none yet). A replay's
    // worker waits for it at each interval marker, so victim_of acts from the same frame at any
    // speed and worker count.
    std::atomic<uint64_t> victims_epoch{0};
};

// Worker side: swaps in what the control core offered. Called between bursts only.
void take_mitigation_offers(Worker& w) noexcept;
// --- end mitigation mailbox ---

struct alignas(64) Worker {
    unsigned id = 0;       // 0..workers-1
    unsigned lcore = 0;
    InputKind input = InputKind::ports;
    RxQueue rxq[kMaxPorts];
    uint16_t nb_rxq = 0;
    rte_ring* ring = nullptr;  // InputKind::ring
    uint32_t burst = 32;
    bool yield_when_idle = false;  // capture mode shares cores with the dispatcher: be polite
    RunState* run = nullptr;

    flow::FlowTable* table = nullptr;
    const tcp::Tracker* tracker = nullptr;
    counters::WorkerCounters counters{};
    // What the control core reads while the worker runs (null: nobody reads). Refreshed every
    // publish_tsc cycles at a loop boundary.
    counters::PublishedCounters* published = nullptr;
    uint64_t publish_tsc = 0;
    uint64_t next_publish_tsc = 0;

    // Connection records leave through this SPSC ring (elements are ConnRecords by value) to
    // the control core. Null when no connection log is asked for: records are still counted.
    rte_ring* conn_ring = nullptr;
    uint32_t conn_seq = 0;             // uid sequence
    // Set by the control core once the worker has stopped: it then flushes the table itself
    // and drains the ring when full instead of dropping (shutdown loses nothing).
    void (*drain_when_full)(Worker&) = nullptr;

    // Detection (null when disabled): counts signals into sketches published every interval.
    // Capture replay: the dispatcher's in-band markers close intervals, and the worker waits for
    // the control core to take the previous one (no interval folds into another, so results do
    // not depend on speed or worker count). Live: the worker's clock closes them, never waiting.
    detect::WorkerDetector* detector = nullptr;
    uint64_t interval_ns = 0;
    uint64_t next_boundary_ns = 0;  // live
    uint64_t* interval_counters = nullptr;  // replay: scratch for the counters of each interval

    // Time: the table clock (ms) follows packet timestamps in capture mode and the TSC live.
    uint64_t now_ns = 0;
    uint64_t tsc_hz = 0;
    uint64_t tsc_base = 0;
    uint64_t ns_base = 0;

    // Mitigation (src/mitigation.hpp). Null rules: none; every frame passes.
    rules::WorkerRules* rules = nullptr;
    const rules::VictimSet* victims = nullptr;          // targets of active alerts
    const detect::VerifiedSources* verified = nullptr;  // sources that completed handshakes
    bool inline_mode = false;  // forward what passes to the paired port; otherwise free it
    uint16_t tx_queue = 0;
    MitigationBox mit;

    // --- Connection lookups for the control socket (src/ctl_server.cpp) ---
    ConnQuery query;
};

// Interval markers of a capture replay, between frames in the worker rings: odd pointers, which
// no mbuf (cache-line aligned) ever is. `open`: the first interval starts here; otherwise the
// interval ends here.
inline void* make_interval_marker(uint64_t interval, bool open) {
    return reinterpret_cast<void*>(static_cast<uintptr_t>(interval << 2 | (open ? 2u : 0u) | 1u));
}
inline bool is_interval_marker(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 1u) != 0; }

// The lcore entry point (rte_eal_remote_launch); arg is a Worker*.
int worker_main(void* arg);

// The per-burst pipeline on frames whose PacketMeta is filled (exposed for tests and bench).
// `rq`: the RX queue they came from (inline mode forwards to its tx_port); null in a replay.
void worker_process_burst(Worker& w, rte_mbuf** pkts, uint16_t n, const RxQueue* rq = nullptr);

// FlowTable removal hook (ctx = Worker*): turns the leaving connection into a ConnRecord.
void worker_on_remove(void* ctx, uint32_t idx, flow::RemoveReason why);

// PacketMeta lives in the mbuf private area (see mbuf pool creation in ports.cpp).
inline packet::PacketMeta* meta_of(rte_mbuf* m) {
    return static_cast<packet::PacketMeta*>(rte_mbuf_to_priv(m));
}

}  // namespace stateline
