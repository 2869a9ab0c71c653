// SPDX-License-Identifier: BSD-3-Clause
// The endpoint state machine of the tracker, as data: RFC 9293 states as bit flags, the events an
// observer can infer from one segment, and a constexpr table (state x event -> next state,
// actions) expanded at compile time from a short list of rules. Private to lib/tcp; the unit
// tests include it to check the table, docs/tcp-state-machine.md draws it.
//
// An observer cannot see an endpoint's state, only the segments it sends and receives. Each
// segment therefore yields one event for its sender (snd_*) and up to one for its receiver
// (rcv_*), in the order RFC 9293 section 3.10.7 processes a segment: RST, SYN, ACK, data, FIN.
// A transition happens when the segment that causes it is seen on the wire (we assume it is
// delivered), with one exception: LISTEN is invisible, so a passive endpoint leaves CLOSED only
// when its SYN-ACK shows it received the SYN.
//
// Thread safety: constants only.
#pragma once

#include <array>
#include <cstdint>

#include "flow_table.hpp"
#include "tcp_tracker.hpp"

namespace stateline::tcp::fsm {

// States as bit flags: `in_state(s, kFinSent | kCloseWait)` is one shift and one AND.
using Mask = uint16_t;
constexpr Mask bit(State s) noexcept { return static_cast<Mask>(1u << static_cast<unsigned>(s)); }
constexpr bool in_state(State s, Mask m) noexcept { return (bit(s) & m) != 0; }

inline constexpr Mask kClosed = bit(State::closed);
inline constexpr Mask kSynSent = bit(State::syn_sent);
inline constexpr Mask kSynReceived = bit(State::syn_received);
inline constexpr Mask kEstablished = bit(State::established);
inline constexpr Mask kFinWait1 = bit(State::fin_wait_1);
inline constexpr Mask kFinWait2 = bit(State::fin_wait_2);
inline constexpr Mask kCloseWait = bit(State::close_wait);
inline constexpr Mask kClosing = bit(State::closing);
inline constexpr Mask kLastAck = bit(State::last_ack);
inline constexpr Mask kTimeWait = bit(State::time_wait);
inline constexpr Mask kAny = static_cast<Mask>((1u << kStateCount) - 1);
// This endpoint has sent its FIN.
inline constexpr Mask kFinSent = kFinWait1 | kFinWait2 | kClosing | kLastAck | kTimeWait;
// This endpoint's FIN is not yet acknowledged: an ACK covering it moves the endpoint on.
inline constexpr Mask kFinUnacked = kFinWait1 | kClosing | kLastAck;
// RFC 9293's synchronized states: the handshake is behind this endpoint.
inline constexpr Mask kSynchronized =
    kEstablished | kFinWait1 | kFinWait2 | kCloseWait | kClosing | kLastAck | kTimeWait;
// A FIN has been seen on the connection, from either side (with kFinSent of the other side).
inline constexpr Mask kClosingStates = kFinSent | kCloseWait;

// X(name, help)
#define STATELINE_TCP_EVENTS(X)                                                              \
    X(snd_syn, "sends its first SYN")                                                        \
    X(snd_syn_again, "sends a SYN again, same ISN (retransmission)")                         \
    X(snd_syn_new_isn, "sends a SYN with another ISN")                                       \
    X(snd_synack, "sends its first SYN-ACK (so it received a SYN)")                          \
    X(snd_synack_again, "sends a SYN-ACK again, same ISN (retransmission)")                  \
    X(snd_synack_new_isn, "sends a SYN-ACK with another ISN")                                \
    X(snd_ack, "sends an ACK: it has what it acknowledges, a SYN-ACK or the handshake ACK")  \
    X(snd_data, "sends payload beyond anything it sent before")                              \
    X(snd_fin, "sends a FIN (covering the peer's FIN if there was one)")                     \
    X(snd_fin_crossed, "sends a FIN that does not cover the peer's FIN: the FINs crossed")   \
    X(snd_fin_again, "sends its FIN again (retransmission)")                                 \
    X(snd_rst, "sends a RST that is in window")                                              \
    X(rcv_syn, "receives a SYN")                                                             \
    X(rcv_synack, "receives a SYN-ACK acknowledging its SYN (x+1)")                          \
    X(rcv_synack_bad, "receives a SYN-ACK with another ack number")                          \
    X(rcv_ack_syn, "receives the handshake ACK, acknowledging its SYN (y+1)")                \
    X(rcv_ack_bad, "receives an ACK in SYN-RECEIVED that does not acknowledge its SYN")      \
    X(rcv_ack_fin, "receives an ACK covering its FIN")                                       \
    X(rcv_ack_implied, "peer ACKs a SYN-ACK we never saw: both ends are past the handshake") \
    X(rcv_fin, "receives a FIN")                                                             \
    X(rcv_rst, "receives a RST that is in window")                                           \
    X(midstream, "connection picked up without its SYN")                                     \
    X(implied_syn, "first segment seen is a SYN-ACK: this end sent the SYN we missed")

enum class Event : uint8_t {
#define STATELINE_X(name, help) name,
    STATELINE_TCP_EVENTS(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kEventCount = static_cast<unsigned>(Event::count_);

struct EventInfo {
    const char* name;
    const char* help;
};
inline constexpr EventInfo kEventInfo[kEventCount] = {
#define STATELINE_X(name, help) {#name, help},
    STATELINE_TCP_EVENTS(STATELINE_X)
#undef STATELINE_X
};

// What a transition asks the tracker to do besides changing state (bits, several may apply).
namespace act {
inline constexpr uint16_t none = 0;
inline constexpr uint16_t handshake_completed = 1u << 0;
inline constexpr uint16_t simultaneous_open = 1u << 1;
inline constexpr uint16_t syn_retransmitted = 1u << 2;
inline constexpr uint16_t syn_new_isn = 1u << 3;
inline constexpr uint16_t synack_retransmitted = 1u << 4;
inline constexpr uint16_t bad_synack = 1u << 5;
inline constexpr uint16_t bad_handshake_ack = 1u << 6;
inline constexpr uint16_t fin_retransmitted = 1u << 7;
inline constexpr uint16_t fin_no_handshake = 1u << 8;
inline constexpr uint16_t data_after_fin = 1u << 9;
inline constexpr uint16_t half_close_data = 1u << 10;
inline constexpr uint16_t refused = 1u << 11;
}  // namespace act

struct Step {
    State next;
    uint16_t actions;
};

// One rule: in any state of `from`, `ev` leads to `to` (kStay: the state does not change).
inline constexpr State kStay = State::count_;
struct Rule {
    Mask from;
    Event ev;
    State to;
    uint16_t actions;
};

using E = Event;
using S = State;
// Anything not listed leaves the state alone and does nothing: a segment that RFC 9293 would
// drop, or one that only confirms what we know (an ACK in ESTABLISHED).
inline constexpr Rule kRules[] = {
    // -- opening -----------------------------------------------------------------------------
    {kClosed, E::snd_syn, S::syn_sent, act::none},
    {kSynSent | kSynReceived, E::snd_syn_again, kStay, act::syn_retransmitted},
    {kSynSent | kSynReceived, E::snd_syn_new_isn, kStay, act::syn_new_isn},
    {kClosed | kSynSent, E::snd_synack, S::syn_received, act::none},  // passive / simultaneous
    {kSynReceived | kEstablished, E::snd_synack, kStay, act::none},   // simultaneous, 2nd half
    {kSynReceived | kEstablished, E::snd_synack_again, kStay, act::synack_retransmitted},
    {kSynReceived | kEstablished, E::snd_synack_new_isn, kStay, act::syn_new_isn},
    {kSynSent, E::rcv_syn, S::syn_received, act::simultaneous_open},  // SYNs crossed
    {kSynSent | kSynReceived, E::rcv_synack, S::established, act::none},
    {kSynSent, E::rcv_synack_bad, kStay, act::bad_synack},
    {kSynReceived, E::rcv_ack_syn, S::established, act::handshake_completed},
    {kSynReceived, E::rcv_ack_bad, kStay, act::bad_handshake_ack},
    // An endpoint that ACKs is past the handshake even if we missed the segment that got it
    // there (the SYN-ACK or the handshake ACK lost to the capture, asymmetric routing).
    {kSynSent | kSynReceived, E::snd_ack, S::established, act::none},
    {kClosed, E::rcv_ack_implied, S::established, act::none},
    {kClosed, E::midstream, S::established, act::none},
    {kClosed, E::implied_syn, S::syn_sent, act::none},
    // -- data --------------------------------------------------------------------------------
    {kCloseWait, E::snd_data, kStay, act::half_close_data},
    {kFinSent, E::snd_data, kStay, act::data_after_fin},
    // -- closing (RFC 9293 section 3.6) -----------------------------------------------------
    {kEstablished | kSynReceived, E::snd_fin, S::fin_wait_1, act::none},
    {kCloseWait, E::snd_fin, S::last_ack, act::none},
    {kCloseWait, E::snd_fin_crossed, S::closing, act::none},
    {kClosed | kSynSent, E::snd_fin, kStay, act::fin_no_handshake},
    {kFinSent | kClosed | kSynSent, E::snd_fin_again, kStay, act::fin_retransmitted},
    {kEstablished | kSynReceived, E::rcv_fin, S::close_wait, act::none},
    {kFinWait1, E::rcv_fin, S::closing, act::none},
    {kFinWait2, E::rcv_fin, S::time_wait, act::none},
    {kFinWait1, E::rcv_ack_fin, S::fin_wait_2, act::none},
    {kClosing, E::rcv_ack_fin, S::time_wait, act::none},
    {kLastAck, E::rcv_ack_fin, S::closed, act::none},
    // -- reset (accepted only in window; RFC 5961 section 3) ---------------------------------
    {kAny, E::snd_rst, S::closed, act::none},
    {kAny & ~kSynSent, E::rcv_rst, S::closed, act::none},
    {kSynSent, E::rcv_rst, S::closed, act::refused},
};

namespace detail {
using Table = std::array<std::array<Step, kEventCount>, kStateCount>;

constexpr Table build() noexcept {
    Table t{};
    for (unsigned s = 0; s < kStateCount; ++s)
        for (unsigned e = 0; e < kEventCount; ++e) t[s][e] = Step{static_cast<State>(s), act::none};
    for (const Rule& r : kRules)
        for (unsigned s = 0; s < kStateCount; ++s)
            if (r.from & (1u << s))
                t[s][static_cast<unsigned>(r.ev)] =
                    Step{r.to == kStay ? static_cast<State>(s) : r.to, r.actions};
    return t;
}

// Two rules for the same (state, event) would make the table depend on rule order.
constexpr bool rules_disjoint() noexcept {
    for (unsigned i = 0; i < std::size(kRules); ++i)
        for (unsigned j = i + 1; j < std::size(kRules); ++j)
            if (kRules[i].ev == kRules[j].ev && (kRules[i].from & kRules[j].from) != 0)
                return false;
    return true;
}
static_assert(rules_disjoint(), "each (state, event) pair has at most one rule");
}  // namespace detail

inline constexpr detail::Table kTable = detail::build();

constexpr Step step(State s, Event e) noexcept {
    return kTable[static_cast<unsigned>(s)][static_cast<unsigned>(e)];
}

// The sequence charts of RFC 9293 sections 3.5 and 3.6 (figures 6, 7, 12, 13), checked at compile
// time.
static_assert(step(S::closed, E::snd_syn).next == S::syn_sent);
static_assert(step(S::closed, E::snd_synack).next == S::syn_received);
static_assert(step(S::syn_sent, E::rcv_synack).next == S::established);
static_assert(step(S::syn_received, E::rcv_ack_syn).next == S::established);
static_assert(step(S::established, E::snd_fin).next == S::fin_wait_1);
static_assert(step(S::established, E::rcv_fin).next == S::close_wait);
static_assert(step(S::fin_wait_1, E::rcv_ack_fin).next == S::fin_wait_2);
static_assert(step(S::close_wait, E::snd_fin).next == S::last_ack);
static_assert(step(S::fin_wait_2, E::rcv_fin).next == S::time_wait);
static_assert(step(S::last_ack, E::rcv_ack_fin).next == S::closed);
static_assert(step(S::fin_wait_1, E::rcv_fin).next == S::closing);
static_assert(step(S::closing, E::rcv_ack_fin).next == S::time_wait);
static_assert(step(S::syn_sent, E::rcv_syn).next == S::syn_received);

// The timeout class of a connection from its two endpoint states. `reset`: an in-window RST
// was accepted.
constexpr flow::TimeoutClass timeout_class(State a, State b, bool reset) noexcept {
    using flow::TimeoutClass;
    if (reset) return TimeoutClass::closed;
    const Mask both = bit(a) | bit(b);
    if ((both & ~(kTimeWait | kClosed)) == 0 && (both & kTimeWait) != 0)
        return TimeoutClass::time_wait;  // both FINs acknowledged: 2 * MSL
    if ((both & kClosingStates) != 0) return TimeoutClass::closing;
    if (both == kEstablished) return TimeoutClass::established;
    return TimeoutClass::half_open;
}

// The class the flow table is given, from timeout_class() and whether both ends have been heard
// from (each has sent at least one segment other than a RST). Two ESTABLISHED ends one of which
// has never spoken are a one-sided connection: a mid-stream pickup from one stray segment, or a
// SYN and ACKs with no SYN-ACK. Nothing tells such an "established" connection from a spoofed
// ACK flood, where every segment is a new 5-tuple whose peer never answers; in the established
// class those entries are never recycled and live 2 h, so the flood fills the table in a second
// and every new connection is refused (docs/reliability.md, "Floods (soak)"). They stay
// half_open (the short timeout, recyclable when the table is full) until the peer answers; only
// the table's class changes: the RFC states, counters, signals and the conn.log are those of
// timeout_class().
constexpr flow::TimeoutClass table_class(flow::TimeoutClass c, bool both_heard) noexcept {
    return c == flow::TimeoutClass::established && !both_heard ? flow::TimeoutClass::half_open
                                                               : c;
}
static_assert(table_class(flow::TimeoutClass::established, false) == flow::TimeoutClass::half_open);
static_assert(table_class(flow::TimeoutClass::established, true) ==
              flow::TimeoutClass::established);
static_assert(table_class(flow::TimeoutClass::closing, false) == flow::TimeoutClass::closing);

}  // namespace stateline::tcp::fsm
