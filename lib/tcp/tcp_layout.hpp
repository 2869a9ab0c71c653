// SPDX-License-Identifier: BSD-3-Clause
// How the tracker packs a connection into the bytes the flow table lends it: FlowEntry::tcp[16],
// FlowCold::tcp[24], FlowEntry::state[2] and seven bits of FlowEntry::flags. Private to lib/tcp;
// the unit tests read it to check Zeek's endpoint states against Zeek's own baselines.
//
// Both lines are read and written for every segment anyway (the tracker owns the per-side packet
// counts in the cold line), so the split is by meaning, not by heat. Each side is indexed by
// flow::Side (key order), never by role: flipping the originator is one flag bit. Access goes
// through memcpy into these types: the byte arrays are not objects of them.
//
// Thread safety: types and constants only.
#pragma once

#include <cstdint>
#include <type_traits>

#include "flow_table.hpp"

namespace stateline::tcp::layout {

// FlowEntry::tcp. Per side, Zeek's TCP_Endpoint sequence numbers. Zeek keeps last_seq (highest
// sequence sent) and ack_seq (highest acknowledged by the peer) apart; we keep their maximum,
// which is all its size computation needs. The price: a segment whose bytes were acknowledged
// before the monitor saw them counts as a retransmission (a tap reordering a data segment behind
// the ACK for it). RST, SYN-ACK and FIN checks only need the maximum.
struct HotTcp {
    uint32_t top[2];  // max(last_seq, ack_seq): one past the highest sequence sent or acknowledged
    uint32_t isn[2];  // Zeek's start_seq: the ISN, or seq - 1 / ack - 1 when the SYN was not seen
};
static_assert(sizeof(HotTcp) == sizeof(flow::FlowEntry::tcp));
static_assert(std::is_trivially_copyable_v<HotTcp>);

struct SideBits {
    uint32_t wscale : 4;  // RFC 7323 shift from this side's SYN (0..14)
    uint32_t wraps : 3;   // times top - isn wrapped past 2^32 (size beyond 4 GiB), saturating
    uint32_t rxmt : 7;    // retransmissions, saturating: Zeek's 'T' at 1, 10, 100
    uint32_t win0 : 4;    // zero windows, saturating: Zeek's 'W' at 1, 10
    uint32_t fp_syn : 2;  // low bits of the relative seq of the last SYN, FIN (+ data), RST:
    uint32_t fp_fin : 4;  //   Zeek repeats 'S', 'F', 'R' only for a new sequence number
    uint32_t fp_rst : 4;
    uint32_t seen_ack : 1;     // 'A' recorded (once per direction)
    uint32_t seen_data : 1;    // 'D' recorded (once per direction)
    uint32_t synack_sent : 1;  // tells a SYN-ACK retransmission from the first SYN-ACK
    uint32_t aux : 1;          // per connection, for the detectors: side[0] = a handshake
                               // completed; side[1] = an RST injection was signalled
};
static_assert(sizeof(SideBits) == 4);

// FlowCold::tcp. The history is a string of 4-bit slots: the 14 common letters take one slot,
// the others an escape and a second slot. 21 slots hold the histories seen in practice; a full
// history keeps its first letters (an escape in the last slot marks it full).
struct ColdTcp {
    uint64_t hist_lo;         // slots 0..15
    uint32_t missed;          // sequence space skipped, both sides, saturating
    uint32_t hist_hi : 20;    // slots 16..20
    uint32_t anomalies : 11;  // tcp::anomaly::*
    uint32_t half_open : 1;   // opened by a SYN and counted half-open until signal::half_open_resolved
    SideBits side[2];
};
static_assert(sizeof(ColdTcp) == sizeof(flow::FlowCold::tcp));
static_assert(std::is_trivially_copyable_v<ColdTcp>);

inline constexpr unsigned kHistSlots = 21;

// FlowEntry::flags. Bit 0 is flow::flow_flag::orig_is_hi.
namespace fl {
inline constexpr uint8_t did_close0 = 0x02;   // << side: Zeek's did_close (FIN or RST processed)
inline constexpr uint8_t fin0 = 0x08;         // << side: Zeek's FIN_cnt > 0
inline constexpr uint8_t reset = 0x20;        // an in-window RST was accepted
inline constexpr uint8_t reset_by_hi = 0x40;  // ... sent by side hi
inline constexpr uint8_t implied_syn = 0x80;  // first segment was a SYN-ACK: roles flipped
}  // namespace fl
static_assert(flow::flow_flag::orig_is_hi == 0x01);

// Zeek's endpoint states (TCP_ENDPOINT_*), which conn_state is computed from. Zeek also keeps
// the previous state; it only ever matters for RESET, so RESET comes in variants that remember
// where they came from. FlowEntry::state[side]: low nibble tcp::State, high nibble this.
enum class Z : uint8_t {
    inactive = 0,
    syn_sent = 1,
    syn_ack_sent = 2,
    partial = 3,
    established = 4,
    closed = 5,
    reset_was_inactive = 6,
    reset_was_syn_sent = 7,
    reset_was_established = 8,
    reset_was_closed = 9,
    reset_was_other = 10,
};
constexpr bool is_reset(Z z) noexcept { return z >= Z::reset_was_inactive; }
// Zeek's numbering, as printed in its endpoint records (TCP_ENDPOINT_RESET is 6).
constexpr unsigned zeek_number(Z z) noexcept { return is_reset(z) ? 6u : static_cast<unsigned>(z); }
constexpr Z reset_from(Z z) noexcept {
    switch (z) {
        case Z::inactive:
            return Z::reset_was_inactive;
        case Z::syn_sent:
            return Z::reset_was_syn_sent;
        case Z::established:
            return Z::reset_was_established;
        case Z::closed:
            return Z::reset_was_closed;
        default:
            return is_reset(z) ? z : Z::reset_was_other;
    }
}

inline Z zeek_state(const flow::FlowEntry& e, flow::Side side) noexcept {
    return static_cast<Z>(e.state[static_cast<unsigned>(side)] >> 4);
}

}  // namespace stateline::tcp::layout
