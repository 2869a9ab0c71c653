// SPDX-License-Identifier: BSD-3-Clause
// One closed (or expired, or still open at exit) connection, as it leaves a worker for the
// control core, which formats it as a Zeek conn.log line. Plain data, trivially copyable, so it
// travels through an rte_ring by value.
#pragma once

#include <cstdint>
#include <type_traits>

#include "flow_key.hpp"

namespace stateline::connlog {

// How a connection ended, from the observer's point of view.
#define STATELINE_CLOSE_KINDS(X)                                                                  \
    X(fin, "4-way FIN teardown: both FINs seen and acknowledged")                                 \
    X(simultaneous_close, "Both FINs crossed (CLOSING on both sides)")                            \
    X(rst_orig, "Reset by the originator")                                                        \
    X(rst_resp, "Reset by the responder")                                                         \
    X(timeout, "Idle past the timeout of its state")                                              \
    X(evicted, "Recycled to make room in a full table")                                           \
    X(open_at_exit, "Still open when Stateline stopped")

enum class CloseKind : uint8_t {
#define STATELINE_X(name, help) name,
    STATELINE_CLOSE_KINDS(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kCloseKindCount = static_cast<unsigned>(CloseKind::count_);

// What the detectors learn from a connection's end (ConnRecord::detect).
namespace detect_flag {
inline constexpr uint8_t half_open = 0x01;       // opened by a SYN, still half-open at the end
inline constexpr uint8_t handshake_done = 0x02;  // a 3-way handshake completed
}  // namespace detect_flag

struct ConnRecord {
    flow::FlowKey key;        // canonical key; orig_is_hi says which side originated
    uint64_t first_ts_ns;     // ts: first packet
    uint64_t last_ts_ns;      // duration = last - first
    uint64_t orig_bytes;      // payload bytes by sequence space, as Zeek computes them
    uint64_t resp_bytes;
    uint64_t missed_bytes;    // sequence space skipped (content gaps)
    uint64_t orig_ip_bytes;
    uint64_t resp_ip_bytes;
    uint32_t orig_pkts;
    uint32_t resp_pkts;
    uint32_t anomalies;       // tcp::anomaly bits
    uint32_t uid_seq;         // per-worker sequence number, with worker and first_ts makes the uid
    uint8_t worker;
    bool orig_is_hi;
    CloseKind close;
    uint8_t orig_state;       // RFC 9293 state of each endpoint at the end (tcp::State)
    uint8_t resp_state;
    uint8_t detect;           // detect_flag bits, for the detectors (not logged)
    char conn_state[7];       // Zeek conn_state: S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH
    char history[25];         // Zeek history letters, NUL-terminated
};
static_assert(std::is_trivially_copyable_v<ConnRecord>);
static_assert(sizeof(ConnRecord) % 4 == 0, "rte_ring element sizes are multiples of 4");

}  // namespace stateline::connlog
