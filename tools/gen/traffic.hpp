// SPDX-License-Identifier: BSD-3-Clause
// The event-driven traffic generator. Every traffic source (a client population's arrivals, an
// attack) and every live connection is an actor with one pending event - the time of its next
// packet at the capture point - in one time-ordered 4-ary heap, so the pcap comes out in
// timestamp order with no sorting. Connections are 64-byte state machines in a pooled array
// (no thread, no allocation per packet); what can be derived from a connection's identity
// (RTT, bottleneck, OS profile, TTL) is recomputed from a hash instead of stored.
//
// The capture point is the server-side segment: client packets show up there one way after the
// client sent them, server packets when the server sends them. Timing model, per connection:
//   handshake   SYN at t; SYN-ACK at t + d_s (server stack delay); ACK at + RTT
//   transfer    in rounds (slow start: 10 segments, doubling, capped by the bandwidth-delay
//               product and 128 segments); the receiver ACKs every second segment; the ACKs of
//               round r release round r+1 (ACK clock), so data and ACKs interleave as on a real
//               link; one segment of ~1% of connections is lost after the capture point and
//               retransmitted after an RTO; two segments of ~0.5% of connections arrive swapped,
//               answered by a duplicate ACK
//   teardown    4-way FIN (client or server first), RST (~5%), simultaneous close (~1%)
//   servers     a SYN backlog per listening port, with SYN cookies or without: when it is full
//               and cookies are off, SYNs are dropped and clients retransmit theirs (1, 3, 7 s)
//
// Thread safety: a Generator runs on one thread; nothing is shared.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "pcap_out.hpp"
#include "scenario.hpp"

namespace stateline::gen {

// Packet classes, counted in the labels. Legitimate packets (baseline and flash crowd) by role;
// attack packets (including the victims' answers) by attack type. X(name, help)
#define STATELINE_GEN_LEGIT_CLASSES(X)                                                            \
    X(legit_syn, "client SYNs (first transmission)")                                              \
    X(legit_synack, "server SYN-ACKs")                                                            \
    X(legit_ack, "pure ACKs (including duplicate ACKs)")                                          \
    X(legit_data, "segments carrying new data")                                                   \
    X(legit_fin, "FINs")                                                                          \
    X(legit_rst, "RSTs ending a connection")                                                      \
    X(legit_retransmit, "retransmitted data segments and SYNs")                                   \
    X(legit_out_of_order, "data segments that arrived after a later one")

enum class LegitClass : uint8_t {
#define STATELINE_X(name, help) name,
    STATELINE_GEN_LEGIT_CLASSES(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kLegitClassCount = static_cast<unsigned>(LegitClass::count_);
// Class ids: legit classes first, then attack_<type> for every attack type (the flash crowd's
// class stays empty: its packets are legitimate and counted by role).
inline constexpr unsigned kClassCount = kLegitClassCount + kAttackTypeCount;
std::string class_name(unsigned cls);

// Ground truth of one attack entry of the scenario, as generated.
struct AttackStats {
    uint64_t packets = 0;            // all packets of this entry
    uint64_t attacker_packets = 0;   // sent by the attacker (or the crowd's clients)
    uint64_t response_packets = 0;   // sent by victims in answer
    uint64_t first_ns = UINT64_MAX;  // capture time of the first and last packet
    uint64_t last_ns = 0;
    uint64_t distinct_sources = 0;   // spoofed sources / reflectors / clients / injected flows
    std::vector<IpAddr> sample;      // the first few sources
    uint64_t connections = 0;        // flash crowd: connections opened; connect_scan: probes
    uint64_t probes = 0;             // scans: probes sent
    uint64_t missed = 0;             // rst_injection: moments with no live connection to hit
    uint64_t dropped_syns = 0;       // SYNs of this entry the victim's full backlog dropped
    uint64_t last_attacker_ns = 0;   // capture time of the attacker's last packet
    bool completed = false;          // a scan that probed everything before its window closed
};

struct RunStats {
    uint64_t packets = 0;
    uint64_t wire_bytes = 0;
    uint64_t class_packets[kClassCount] = {};
    uint64_t legit_connections = 0;       // opened (SYN sent) by the baseline and crowds
    uint64_t legit_syn_dropped = 0;       // legit SYNs dropped by a full backlog
    uint64_t legit_gave_up = 0;           // legit connections abandoned after SYN retries
    uint64_t peak_live_actors = 0;        // connections (and half-open entries) alive at once
    uint64_t events = 0;
    std::vector<AttackStats> attacks;     // one per Scenario::attacks entry
    uint64_t baseline_distinct_hosts = 0;
};

struct Progress {
    uint64_t packets;
    double capture_seconds;   // capture time reached
    double capture_total;
};

struct GenerateOptions {
    uint64_t seed = 1;
    std::FILE* packet_labels = nullptr;  // optional: 2 bytes per packet {label, class}, label 0 =
                                         // baseline, 1 + i = attacks[i]
    std::function<void(const Progress&)> progress;  // called about every 2^20 events
};

// Generates the scenario's traffic into `out` (opened by the caller) and returns the ground
// truth.
RunStats generate(const Scenario& sc, PcapWriter& out, const GenerateOptions& opt);

}  // namespace stateline::gen
