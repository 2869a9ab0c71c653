// SPDX-License-Identifier: BSD-3-Clause
// The TCP state tracker: an observer in the middle follows both endpoints of a connection
// through the RFC 9293 states, with a table-driven state machine (state x event -> next state,
// action), and keeps what Zeek's conn.log needs (endpoint states for conn_state, history).
//
// Storage: it owns FlowEntry::state[2], FlowEntry::tcp[16], the FlowEntry::flags bits other
// than flow_flag::orig_is_hi... (it sets that one too), and FlowCold::tcp[24]. Layouts are
// private to tcp_tracker.cpp and checked there with static_asserts.
//
// Thread safety: a Tracker is immutable after construction and may be shared by workers;
// the entries and counters it is given belong to the calling worker.
#pragma once

#include <cstdint>

#include "conn_record.hpp"
#include "flow_table.hpp"
#include "packet_meta.hpp"

namespace stateline::tcp {

// RFC 9293 section 3.3.2 states, as seen from outside (LISTEN is not observable).
enum class State : uint8_t {
    closed = 0,
    syn_sent,
    syn_received,
    established,
    fin_wait_1,
    fin_wait_2,
    close_wait,
    closing,
    last_ack,
    time_wait,
    count_
};
inline constexpr unsigned kStateCount = static_cast<unsigned>(State::count_);
const char* state_name(State s) noexcept;  // "SYN-SENT", "ESTABLISHED", ...

// Every case the tracker recognises, counted. X(name, help)
#define STATELINE_TCP_COUNTERS(X)                                                                 \
    X(handshake_completed, "3-way handshakes completed (SYN, SYN-ACK acking x+1, ACK acking y+1)")\
    X(handshake_failed_bad_synack_ack, "SYN-ACKs whose ack is not the SYN's seq+1")              \
    X(handshake_failed_bad_ack, "Handshake ACKs whose ack is not the SYN-ACK's seq+1")           \
    X(handshake_failed_refused, "SYNs answered by RST (connection refused)")                     \
    X(handshake_failed_timeout, "Half-open connections that timed out")                          \
    X(syn_retransmitted, "SYNs retransmitted with the same ISN")                                 \
    X(synack_retransmitted, "SYN-ACKs retransmitted")                                            \
    X(syn_new_isn, "A second SYN with a new ISN before the handshake completed")                \
    X(simultaneous_open, "Simultaneous opens (SYNs crossing)")                                   \
    X(syn_with_data, "SYNs carrying data (TCP Fast Open)")                                        \
    X(teardown_fin, "4-way FIN teardowns completed")                                             \
    X(teardown_simultaneous, "Simultaneous closes (FINs crossing)")                              \
    X(teardown_rst_orig, "Connections reset by the originator")                                  \
    X(teardown_rst_resp, "Connections reset by the responder")                                   \
    X(teardown_timeout, "Connections that ended by timeout")                                     \
    X(fin_retransmitted, "FINs retransmitted")                                                   \
    X(half_close_data, "Segments with data after the other side's FIN (half-close)")            \
    X(syn_in_time_wait, "New SYNs on a tuple still in TIME-WAIT (a new connection)")             \
    X(rst_in_window, "RSTs in window (accepted)")                                                 \
    X(rst_out_of_window, "RSTs out of window: suspect, connection left alone (RFC 5961)")       \
    X(rst_after_fin, "RSTs after a FIN")                                                          \
    X(rst_with_data, "RSTs carrying data")                                                        \
    X(midstream_pickup, "Connections picked up mid-stream (no SYN seen)")                        \
    X(one_sided, "Connections with traffic in one direction only, at their end")                \
    X(retransmission, "Segments retransmitting data already seen")                              \
    X(out_of_order, "Segments arriving beyond a gap (data missing before them)")                \
    X(seq_wrapped, "Sequence numbers that wrapped around 2^32")                                   \
    X(data_after_fin, "Data sent by an endpoint after its own FIN")

enum class Counter : uint16_t {
#define STATELINE_X(name, help) name,
    STATELINE_TCP_COUNTERS(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kCounterCount = static_cast<unsigned>(Counter::count_);
struct CounterInfo {
    const char* name;
    const char* help;
};
extern const CounterInfo kCounterInfo[kCounterCount];

// Per-connection anomaly bits (ConnRecord::anomalies), for the log and the detectors.
namespace anomaly {
inline constexpr uint32_t bad_synack_ack = 1u << 0;
inline constexpr uint32_t bad_handshake_ack = 1u << 1;
inline constexpr uint32_t syn_new_isn = 1u << 2;
inline constexpr uint32_t rst_out_of_window = 1u << 3;
inline constexpr uint32_t rst_no_handshake = 1u << 4;
inline constexpr uint32_t rst_after_data_no_fin = 1u << 5;
inline constexpr uint32_t fin_no_handshake = 1u << 6;
inline constexpr uint32_t data_after_fin = 1u << 7;
inline constexpr uint32_t syn_in_time_wait = 1u << 8;
inline constexpr uint32_t half_close_stuck = 1u << 9;
inline constexpr uint32_t fin_out_of_window = 1u << 10;
// What makes the end of a real connection (one with a handshake) abnormal, per host.
// half_close_stuck is only known when the connection times out.
inline constexpr uint32_t kAbnormalTeardown = rst_out_of_window | rst_after_data_no_fin |
                                              fin_out_of_window | data_after_fin |
                                              syn_in_time_wait | half_close_stuck;
}  // namespace anomaly
// Names for the anomaly bits, in bit order, for logs ("rst_out_of_window,data_after_fin").
const char* anomaly_name(unsigned bit) noexcept;
inline constexpr unsigned kAnomalyCount = 11;

// What a segment meant, for the flood and scan detectors (lib/detect): a few bits the tracker
// knows anyway, so the detectors never look at a connection themselves. "Receiver" is the
// segment's destination, "sender" its source.
namespace signal {
inline constexpr uint16_t syn = 1u << 0;            // a SYN without ACK
inline constexpr uint16_t syn_open = 1u << 1;       // ... that opened a connection (now half-open)
inline constexpr uint16_t synack = 1u << 2;         // a SYN-ACK answering a SYN seen
inline constexpr uint16_t synack_stray = 1u << 3;   // a SYN-ACK answering no SYN seen
inline constexpr uint16_t handshake = 1u << 4;      // completed a 3-way handshake (sender: client)
inline constexpr uint16_t refused = 1u << 5;        // a RST answering a SYN (sender: the server)
inline constexpr uint16_t ack_stray = 1u << 6;      // an ACK (no SYN, FIN, RST) for no connection
inline constexpr uint16_t rst_stray = 1u << 7;      // a RST for no connection, or out of window
inline constexpr uint16_t fin_stray = 1u << 8;      // a FIN-ACK for no connection, or out of window
inline constexpr uint16_t stealth_probe = 1u << 9;  // FIN, NULL or XMAS without ACK, no connection
inline constexpr uint16_t rst_injection = 1u << 10; // new data from an RST's sender after its RST:
                                                    // someone else sent that RST (once per conn)
inline constexpr uint16_t half_open_resolved = 1u << 11;  // a syn_open connection left half-open
// Teardowns of connections that completed a handshake, as they happen (once per connection):
inline constexpr uint16_t closed = 1u << 12;             // FINs acknowledged, or an accepted RST
inline constexpr uint16_t abnormal_teardown = 1u << 13;  // anomaly::kAbnormalTeardown first set
}  // namespace signal

// What the worker must do after a segment.
struct Verdict {
    flow::TimeoutClass tclass;  // the entry's new timeout class
    bool restart;               // a new connection reuses the tuple (SYN in TIME-WAIT): close
                                // this entry (reason closed) and track the segment afresh
    uint16_t signals = 0;       // signal::* bits
};

class Tracker {
public:
    // First segment of a new entry (the table just inserted it; hot and cold are zeroed except
    // the key). Decides the originator, initialises both sides.
    Verdict on_first(flow::FlowEntry& e, flow::FlowCold& c, const packet::PacketMeta& m,
                     uint64_t* counters) const noexcept;
    // Every later segment.
    Verdict on_segment(flow::FlowEntry& e, flow::FlowCold& c, const packet::PacketMeta& m,
                       uint64_t* counters) const noexcept;
    // The connection leaves the table: fill the record (everything but worker and uid_seq) and
    // count its ending (timeout, one-sided, ...).
    void finish(const flow::FlowEntry& e, const flow::FlowCold& c, flow::RemoveReason why,
                connlog::ConnRecord& r, uint64_t* counters) const noexcept;

    // RFC state of each side, for the gauges and lookups.
    static State state_of(const flow::FlowEntry& e, flow::Side side) noexcept;
    // Offset of sequence number `seq` in the byte stream `side` sends: 0 for its first data byte
    // (relative to the ISN, or to the first segment seen when the SYN was not). Modulo 2^32.
    static uint32_t stream_offset(const flow::FlowEntry& e, flow::Side side, uint32_t seq) noexcept;
};

}  // namespace stateline::tcp
