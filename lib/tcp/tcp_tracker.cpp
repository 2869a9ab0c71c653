// SPDX-License-Identifier: BSD-3-Clause
// The TCP tracker: one pass per segment that (1) walks each endpoint through the RFC 9293 states
// with the table of tcp_fsm.hpp and counts what it sees, and (2) emulates Zeek's TCP analyzer
// closely enough that conn_state, history and the byte counts of the connection log mean what
// Zeek's mean. The two views are kept apart on purpose: Zeek trusts every RST (its conn_state
// says so), our RFC view accepts only in-window ones (RFC 5961).
//
// See lib/tcp/README.md for the storage budget and docs/tcp-state-machine.md for the machine.
#include "tcp_tracker.hpp"

#include <cstring>

#include "tcp_fsm.hpp"
#include "tcp_layout.hpp"

namespace stateline::tcp {

using flow::FlowCold;
using flow::FlowEntry;
using flow::RemoveReason;
using flow::Side;
using flow::TimeoutClass;
using packet::PacketMeta;

const CounterInfo kCounterInfo[kCounterCount] = {
#define STATELINE_X(name, help) {#name, help},
    STATELINE_TCP_COUNTERS(STATELINE_X)
#undef STATELINE_X
};

const char* state_name(State s) noexcept {
    static constexpr const char* kNames[kStateCount] = {
        "CLOSED",     "SYN-SENT",   "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1",
        "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING",      "LAST-ACK",    "TIME-WAIT"};
    const auto i = static_cast<unsigned>(s);
    return i < kStateCount ? kNames[i] : "?";
}

const char* anomaly_name(unsigned bit) noexcept {
    static constexpr const char* kNames[kAnomalyCount] = {
        "bad_synack_ack",   "bad_handshake_ack",     "syn_new_isn",      "rst_out_of_window",
        "rst_no_handshake", "rst_after_data_no_fin", "fin_no_handshake", "data_after_fin",
        "syn_in_time_wait", "half_close_stuck",      "fin_out_of_window"};
    return bit < kAnomalyCount ? kNames[bit] : "?";
}

namespace {

using layout::ColdTcp;
using layout::HotTcp;
using layout::is_reset;
using layout::reset_from;
using layout::SideBits;
using layout::Z;
namespace fl = layout::fl;
static_assert(kAnomalyCount <= 11, "anomaly bits must fit ColdTcp::anomalies");

struct Conn {
    HotTcp h;
    ColdTcp k;
    uint8_t flags;
    State rfc[2];
    Z z[2];
    uint16_t sig;  // signal::* of the segment being processed (not stored)
};

inline Conn load(const FlowEntry& e, const FlowCold& c) noexcept {
    Conn k;
    std::memcpy(&k.h, e.tcp, sizeof k.h);
    std::memcpy(&k.k, c.tcp, sizeof k.k);
    k.flags = e.flags;
    k.sig = 0;
    for (unsigned i = 0; i < 2; ++i) {
        const unsigned rfc = e.state[i] & 0x0fu;
        k.rfc[i] = rfc < kStateCount ? static_cast<State>(rfc) : State::closed;
        k.z[i] = static_cast<Z>(e.state[i] >> 4);
    }
    return k;
}

inline void store(const Conn& k, FlowEntry& e, FlowCold& c) noexcept {
    std::memcpy(e.tcp, &k.h, sizeof k.h);
    std::memcpy(c.tcp, &k.k, sizeof k.k);
    e.flags = k.flags;
    for (unsigned i = 0; i < 2; ++i)
        e.state[i] = static_cast<uint8_t>(static_cast<unsigned>(k.rfc[i]) |
                                          static_cast<unsigned>(k.z[i]) << 4);
}

inline bool orig_is_hi(uint8_t flags) noexcept {
    return (flags & flow::flow_flag::orig_is_hi) != 0;
}
inline bool side_is_orig(uint8_t flags, unsigned side) noexcept {
    return (side == 1) == orig_is_hi(flags);
}

inline void count(uint64_t* counters, Counter c) noexcept { ++counters[static_cast<unsigned>(c)]; }

// ---- Sequence arithmetic (RFC 9293 section 3.4: modulo 2^32) -------------------------------
inline int32_t sdiff(uint32_t a, uint32_t b) noexcept { return static_cast<int32_t>(a - b); }
inline bool covers(uint32_t v, uint32_t lo, uint32_t hi) noexcept {  // lo <= v <= hi
    return sdiff(v, lo) >= 0 && sdiff(hi, v) >= 0;
}
// Zeek's TOO_LARGE_SEQ_DELTA: SYN and RST sequence numbers further than this are not trusted.
constexpr int32_t kTooLargeSeqDelta = 1 << 20;
// The largest window an endpoint can advertise, 65535 << wscale: our RST and FIN window. We do
// not keep the last advertised window (no room); bounding by the largest possible one is looser
// than RFC 5961's RCV.WND but still rejects the blind guesses it is about.
inline int32_t max_window(const SideBits& receiver) noexcept {
    return static_cast<int32_t>(65535u << receiver.wscale);
}

// ---- History (Zeek's Conn::history) --------------------------------------------------------
using layout::kHistSlots;
constexpr unsigned kEscape = 15;
constexpr char kCommon[15] = {'\0', 'S', 'h', 'A', 'a', 'D', 'd', 'F',
                              'f',  'R', 'r', 'T', 't', '^', 'W'};
constexpr char kRare[16] = {'H', 's', 'w', 'I', 'i', 'Q', 'q', 'G',
                            'g', 'C', 'c', 'X', 'x', '?', '?', '?'};

inline unsigned slot(const ColdTcp& k, unsigned i) noexcept {
    return i < 16 ? static_cast<unsigned>(k.hist_lo >> (4 * i)) & 15u
                  : static_cast<unsigned>(k.hist_hi >> (4 * (i - 16))) & 15u;
}
inline void set_slot(ColdTcp& k, unsigned i, unsigned v) noexcept {
    if (i < 16) {
        k.hist_lo = (k.hist_lo & ~(uint64_t{15} << (4 * i))) | (uint64_t{v} << (4 * i));
    } else {
        const unsigned sh = 4 * (i - 16);
        k.hist_hi = (k.hist_hi & ~(15u << sh)) | (v << sh);
    }
}

// Writes the letters (NUL-terminated, at most kHistSlots) and returns the first free slot
// (kHistSlots when full).
unsigned hist_decode(const ColdTcp& k, char* out) noexcept {
    unsigned i = 0, n = 0;
    while (i < kHistSlots) {
        const unsigned c = slot(k, i);
        if (c == 0) break;
        if (c == kEscape) {
            if (i + 1 >= kHistSlots) {
                i = kHistSlots;  // full mark
                break;
            }
            out[n++] = kRare[slot(k, i + 1)];
            i += 2;
        } else {
            out[n++] = kCommon[c];
            ++i;
        }
    }
    out[n] = '\0';
    return i;
}

bool hist_has(const ColdTcp& k, char a, char b = '\0') noexcept {
    char buf[kHistSlots + 1];
    hist_decode(k, buf);
    for (const char* p = buf; *p; ++p)
        if (*p == a || (b != '\0' && *p == b)) return true;
    return false;
}

void hist_add(ColdTcp& k, char letter) noexcept {
    char buf[kHistSlots + 1];
    const unsigned end = hist_decode(k, buf);
    if (end >= kHistSlots) return;
    for (unsigned c = 1; c < kEscape; ++c)
        if (kCommon[c] == letter) {
            set_slot(k, end, c);
            return;
        }
    for (unsigned r = 0; r < 16; ++r)
        if (kRare[r] == letter) {
            set_slot(k, end, kEscape);  // alone in the last slot: marks the history full
            if (end + 1 < kHistSlots) set_slot(k, end + 1, r);
            return;
        }
}

inline char side_letter(char upper, bool is_orig) noexcept {
    return is_orig ? upper : static_cast<char>(upper - 'A' + 'a');
}

// ---- One segment ---------------------------------------------------------------------------
struct Seg {
    unsigned s, r;  // sender and receiver, as flow::Side indexes
    bool is_orig;
    bool syn, ack, fin, rst;
    uint32_t seq, ackno, len;
    uint16_t window;
    bool has_wscale;
    uint8_t wscale;
};

inline Seg segment(const PacketMeta& m, uint8_t flags) noexcept {
    Seg g;
    g.s = m.sender == Side::hi ? 1u : 0u;
    g.r = 1u - g.s;
    g.is_orig = side_is_orig(flags, g.s);
    g.syn = (m.tcp_flags & packet::tcp_flag::syn) != 0;
    g.ack = (m.tcp_flags & packet::tcp_flag::ack) != 0;
    g.fin = (m.tcp_flags & packet::tcp_flag::fin) != 0;
    g.rst = (m.tcp_flags & packet::tcp_flag::rst) != 0;
    g.seq = m.seq;
    g.ackno = m.ack;
    g.len = m.payload_len;
    g.window = m.window;
    g.has_wscale = (m.info & packet::info_bit::has_wscale) != 0;
    g.wscale = m.wscale;
    return g;
}

// What the connection looked like before this segment: the RFC view classifies a segment against
// it, while the Zeek emulation updates the live copy.
struct Pre {
    uint32_t top[2];
    uint32_t isn[2];
    State rfc[2];
    Z z[2];
    uint32_t pkts[2];
};

inline Pre snapshot(const Conn& k, const FlowCold& c) noexcept {
    Pre p;
    for (unsigned i = 0; i < 2; ++i) {
        p.top[i] = k.h.top[i];
        p.isn[i] = k.h.isn[i];
        p.rfc[i] = k.rfc[i];
        p.z[i] = k.z[i];
        p.pkts[i] = c.pkts[i];
    }
    return p;
}

inline void add_missed(Conn& k, uint32_t n) noexcept {
    k.k.missed = k.k.missed > UINT32_MAX - n ? UINT32_MAX : k.k.missed + n;
}

// ---- Zeek emulation (src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc, TCP_Endpoint.cc) --

inline void z_init(Conn& k, unsigned side, uint32_t start, uint32_t top) noexcept {
    k.h.isn[side] = start;
    k.h.top[side] = top;
    k.k.side[side].wraps = 0;
}

inline void z_advance(Conn& k, unsigned side, uint32_t v, uint64_t* counters) noexcept {
    SideBits& sb = k.k.side[side];
    const uint32_t isn = k.h.isn[side];
    uint32_t& top = k.h.top[side];
    if (v - isn < top - isn && sb.wraps < 7) sb.wraps = sb.wraps + 1;
    if (v < top && sdiff(v, top) > 0) count(counters, Counter::seq_wrapped);
    top = v;
}

// Zeek's logarithmic letters (Connection::ScaledHistoryEntry): at the 1st, 10th, 100th event.
inline bool scaled_hit(unsigned n) noexcept { return n == 1 || n == 10 || n == 100; }

void z_history(Conn& k, const Seg& g, uint32_t rel) noexcept {
    SideBits& sb = k.k.side[g.s];
    ColdTcp& h = k.k;
    const bool o = g.is_orig;
    const int bits = int{g.syn} + int{g.fin} + int{g.rst};
    if (bits > 1) {  // 'I' (FIN+RST) and 'Q' (other multi-flag) once per direction
        const char l = side_letter(g.fin && g.rst ? 'I' : 'Q', o);
        if (!hist_has(h, l)) hist_add(h, l);
        return;
    }
    if (bits == 1) {
        // 'S'/'H', 'F', 'R': the first one always, later ones only with a new sequence number
        // (for a FIN, the one after its data). 'S' and 'H' share Zeek's "SYN seen" bit.
        if (g.syn) {
            const unsigned fp = rel & 3u;
            const bool seen = hist_has(h, side_letter('S', o), side_letter('H', o));
            if (!seen || fp != sb.fp_syn) hist_add(h, side_letter(g.ack ? 'H' : 'S', o));
            sb.fp_syn = fp;
        } else if (g.fin) {
            const unsigned fp = (rel + g.len) & 15u;
            if (!hist_has(h, side_letter('F', o)) || fp != sb.fp_fin)
                hist_add(h, side_letter('F', o));
            sb.fp_fin = fp;
        } else {
            const unsigned fp = rel & 15u;
            if (!hist_has(h, side_letter('R', o)) || fp != sb.fp_rst)
                hist_add(h, side_letter('R', o));
            sb.fp_rst = fp;
        }
        return;
    }
    if (g.len > 0) {
        if (!sb.seen_data) {
            sb.seen_data = 1;
            hist_add(h, side_letter('D', o));
        }
    } else if (g.ack && !sb.seen_ack) {
        sb.seen_ack = 1;
        hist_add(h, side_letter('A', o));
    }
}

// Zeek's UpdateStateMachine and its Update*State helpers. `do_close`: Zeek would call
// ConnectionClosed for this endpoint (a FIN or RST it processed).
void z_transition(Conn& k, const Seg& g, bool& do_close) noexcept {
    Z& ze = k.z[g.s];
    Z& zp = k.z[g.r];
    switch (ze) {
        case Z::inactive:
            if (g.syn) {
                if (g.is_orig) {
                    ze = g.ack ? Z::syn_ack_sent : Z::syn_sent;
                } else {
                    // Zeek flips the roles here when a SYN answers an originator's SYN-ACK
                    // (reordered capture); we decide the originator on the first segment only.
                    if (zp == Z::syn_sent) zp = Z::established;
                    ze = Z::established;
                }
            }
            if (g.fin) {
                ze = Z::closed;
                do_close = true;
            }
            if (g.rst) {
                ze = reset_from(ze);
                do_close = true;
            }
            if (ze == Z::inactive) {
                if (!g.is_orig && g.len == 0 && zp == Z::syn_sent) {
                    // An ACK to a SYN before the SYN-ACK: Zeek keeps the responder inactive.
                } else if (g.ack && zp == Z::established) {
                    ze = Z::established;  // missed SYN, but the peer's SYN-ACK was seen
                } else {
                    ze = Z::partial;
                }
            }
            break;
        case Z::syn_sent:
        case Z::syn_ack_sent:
            if (g.fin) {
                ze = Z::closed;
                do_close = true;
            }
            if (g.rst) {
                ze = reset_from(ze);
                do_close = true;
            }
            break;
        case Z::established:
        case Z::partial:
            if (g.syn && ze == Z::partial && zp == Z::inactive && !g.ack) ze = Z::syn_sent;
            if (g.fin && !g.rst) {
                ze = Z::closed;
                if (zp == Z::reset_was_closed) zp = Z::closed;  // FIN then RST, then our FIN: SF
                do_close = true;
            }
            if (g.rst) {
                ze = reset_from(ze);
                do_close = true;
            }
            break;
        case Z::closed:
            if (g.rst && zp != Z::closed) {
                ze = reset_from(ze);
                if (!(k.flags & (fl::did_close0 << g.s))) do_close = true;
            }
            break;
        default:  // reset: Zeek only reports weirds from here
            break;
    }
}

// Zeek's per-segment processing (TCPSessionAdapter::Process), minus events and reassembly.
void z_segment(Conn& k, const Seg& g, uint64_t* counters) noexcept {
    const unsigned s = g.s, r = g.r;
    SideBits& sb = k.k.side[s];
    SideBits& pb = k.k.side[r];

    uint32_t seg_len = g.len + (g.syn ? 1u : 0u) + (g.fin ? 1u : 0u);
    if (g.rst) seg_len -= g.len;  // RST data is not part of the stream
    const uint32_t seq_end = g.seq + seg_len;

    // init_endpoint: a SYN (re)starts the sequence space; a first non-SYN segment starts it as if
    // there had been a SYN just before it.
    bool syn_init = false;
    switch (k.z[s]) {
        case Z::inactive:
            syn_init = g.syn;
            if (g.syn)
                z_init(k, s, g.seq, seq_end);
            else
                z_init(k, s, g.seq - 1, g.seq);
            break;
        case Z::syn_sent:
        case Z::syn_ack_sent:
            syn_init = g.syn && g.seq != k.h.isn[s];
            break;
        case Z::established:
        case Z::partial:
        case Z::reset_was_inactive:
            syn_init = g.syn;
            break;
        default:
            break;
    }
    if (syn_init && k.z[s] != Z::inactive) z_init(k, s, g.seq, seq_end);

    z_history(k, g, g.seq - k.h.isn[s]);

    // A zero window is news unless a RST is involved or the peer already closed.
    if (g.window == 0 && !g.rst && k.z[r] != Z::closed && !is_reset(k.z[s])) {
        if (sb.win0 < 15) sb.win0 = sb.win0 + 1;
        if (scaled_hit(sb.win0)) hist_add(k.k, side_letter('W', g.is_orig));
    }

    if (g.syn) {  // RFC 7323: no option in the SYN-ACK means no scaling either way
        if (g.has_wscale) {
            sb.wscale = g.wscale > 14 ? 14 : g.wscale;
        } else {
            sb.wscale = 0;
            if (g.ack) pb.wscale = 0;
        }
    }
    if (g.fin) k.flags |= static_cast<uint8_t>(fl::fin0 << s);

    if (g.ack) {
        if (k.z[r] == Z::inactive) {
            z_init(k, r, g.ackno - 1, g.ackno - 1);  // the peer's numbering, from what is acked
        } else if (!g.rst && (pb.wraps > 0 || sdiff(g.ackno, k.h.isn[r]) >= 0)) {
            // ACKs in RSTs are not trusted; nor an ack of 0 far ahead (a broken stack).
            const int32_t d = sdiff(g.ackno, k.h.top[r]);
            if (d > 0 && !(g.ackno == 0 && d > kTooLargeSeqDelta)) {
                add_missed(k, static_cast<uint32_t>(d));  // acknowledged, never seen
                z_advance(k, r, g.ackno, counters);
            }
        }
    }

    // update_last_seq
    const int32_t dl = sdiff(seq_end, k.h.top[s]);
    if ((g.syn || g.rst) && (dl > kTooLargeSeqDelta || dl < -kTooLargeSeqDelta)) {
        // far-off SYN/RST sequence numbers are not trusted
    } else if (g.fin && k.h.top[s] == k.h.isn[s] + 1) {
        k.h.top[s] = seq_end;  // only SYN and FIN seen: trust the FIN, even past 2 GiB
    } else if (is_reset(k.z[s])) {
        // after a RST, nothing this side sends moves its numbers
    } else if (dl > 0) {
        z_advance(k, s, seq_end, counters);
    } else if (g.len > 0) {
        // A SYN with data lands here too (Zeek starts last_seq past it, then finds nothing new):
        // Zeek records a 'T' for TCP Fast Open; our counter does not count it.
        if (!syn_init) count(counters, Counter::retransmission);
        if (sb.rxmt < 127) sb.rxmt = sb.rxmt + 1;
        if (scaled_hit(sb.rxmt)) hist_add(k.k, side_letter('T', g.is_orig));
    }

    bool do_close = false;
    z_transition(k, g, do_close);
    if (do_close) k.flags |= static_cast<uint8_t>(fl::did_close0 << s);
}

// Zeek's TCP_Endpoint::Size(): payload bytes by sequence numbers, SYN and FIN octets excluded.
uint64_t z_size(const Conn& k, const FlowCold& c, unsigned side) noexcept {
    const unsigned peer = 1u - side;
    // A half-open attempt the peer acknowledged something of, then aborted: Zeek reports 0
    // (its NoDataAcked test, approximated: the silent peer sent a bare ACK).
    if (k.z[side] == Z::reset_was_syn_sent && k.z[peer] == Z::inactive && c.pkts[peer] > 0 &&
        k.h.top[side] - k.h.isn[side] > 1)
        return 0;
    uint64_t size =
        (uint64_t{k.k.side[side].wraps} << 32) | uint64_t{k.h.top[side] - k.h.isn[side]};
    if (size != 0) --size;
    if ((k.flags & (fl::fin0 << side)) && size != 0) --size;
    return size;
}

// base/protocols/conn/main.zeek: the history test of RSTOS0, /^\^?S[^HAFGIQ]*R.*/.
bool syn_then_rst(const char* h) noexcept {
    if (*h == '^') ++h;
    if (*h++ != 'S') return false;
    for (; *h && *h != 'R'; ++h)
        if (std::strchr("HAFGIQ", *h) != nullptr) return false;
    return *h == 'R';
}

// base/protocols/conn/main.zeek, function conn_state, for TCP.
const char* z_conn_state(Z os, Z rs, uint64_t osize, uint64_t rsize, const char* history) noexcept {
    const bool o_inactive = os == Z::inactive || os == Z::partial;
    const bool r_inactive = rs == Z::inactive || rs == Z::partial;
    if (is_reset(rs)) {
        if (os == Z::syn_sent || os == Z::syn_ack_sent ||
            (is_reset(os) && osize == 0 && rsize == 0))
            return "REJ";
        return o_inactive ? "RSTRH" : "RSTR";
    }
    if (is_reset(os)) {
        if (r_inactive) return syn_then_rst(history) ? "RSTOS0" : "OTH";
        return "RSTO";
    }
    if (rs == Z::closed && os == Z::closed) return "SF";
    if (os == Z::closed) return r_inactive ? "SH" : "S2";
    if (rs == Z::closed) return o_inactive ? "SHR" : "S3";
    if (os == Z::syn_sent && rs == Z::inactive) return "S0";
    if (os == Z::established && rs == Z::established) return "S1";
    return "OTH";
}

// ---- RFC view ------------------------------------------------------------------------------

void run_actions(Conn& k, uint16_t a, uint64_t* counters) noexcept {
    if (a == fsm::act::none) return;
    if ((a & fsm::act::handshake_completed) && !(k.flags & fl::implied_syn)) {
        count(counters, Counter::handshake_completed);
        k.sig |= signal::handshake;
        k.k.side[0].aux = 1;
    }
    if (a & fsm::act::simultaneous_open) count(counters, Counter::simultaneous_open);
    if (a & fsm::act::syn_retransmitted) count(counters, Counter::syn_retransmitted);
    if (a & fsm::act::syn_new_isn) {
        count(counters, Counter::syn_new_isn);
        k.k.anomalies |= anomaly::syn_new_isn;
    }
    if (a & fsm::act::synack_retransmitted) count(counters, Counter::synack_retransmitted);
    if (a & fsm::act::bad_synack) {
        count(counters, Counter::handshake_failed_bad_synack_ack);
        k.k.anomalies |= anomaly::bad_synack_ack;
    }
    if (a & fsm::act::bad_handshake_ack) {
        count(counters, Counter::handshake_failed_bad_ack);
        k.k.anomalies |= anomaly::bad_handshake_ack;
    }
    if (a & fsm::act::fin_retransmitted) count(counters, Counter::fin_retransmitted);
    if (a & fsm::act::fin_no_handshake) k.k.anomalies |= anomaly::fin_no_handshake;
    if (a & fsm::act::data_after_fin) {
        count(counters, Counter::data_after_fin);
        k.k.anomalies |= anomaly::data_after_fin;
    }
    if (a & fsm::act::half_close_data) count(counters, Counter::half_close_data);
    if (a & fsm::act::refused) {
        count(counters, Counter::handshake_failed_refused);
        k.sig |= signal::refused;
    }
}

inline void apply(Conn& k, unsigned side, fsm::Event ev, uint64_t* counters) noexcept {
    const fsm::Step st = fsm::step(k.rfc[side], ev);
    k.rfc[side] = st.next;
    run_actions(k, st.actions, counters);
}

// RFC 9293 section 3.10.7.3 (SYN-SENT: a RST is acceptable if it acknowledges our SYN) and RFC 5961
// section 3 (elsewhere: only a sequence number in the window). From outside, the receiver's
// RCV.NXT lies between what it acknowledged and what the sender sent (both at most `top`).
bool rst_in_window(const Conn& k, const Seg& g, const Pre& p) noexcept {
    if (p.rfc[g.r] == State::syn_sent) return g.ack && covers(g.ackno, p.isn[g.r] + 1, p.top[g.r]);
    const bool sender_known = p.z[g.s] != Z::inactive || p.pkts[g.r] > 0;
    if (!sender_known) return true;  // nothing to judge it by
    const int32_t w = max_window(k.k.side[g.r]);
    const int32_t d = sdiff(g.seq, p.top[g.s]);
    return d >= -w && d <= w;
}

// Classifies the segment into events for its sender and receiver (RST, SYN, ACK, data, FIN, in
// RFC 9293's processing order) and runs them through the table.
void rfc_segment(Conn& k, const Seg& g, const Pre& p, bool first, uint64_t* counters) noexcept {
    using fsm::Event;
    const unsigned s = g.s, r = g.r;

    if (g.syn && g.len > 0) count(counters, Counter::syn_with_data);
    if (g.rst && g.len > 0) count(counters, Counter::rst_with_data);

    // After an accepted RST both ends are CLOSED: stragglers change nothing (a new SYN opens a
    // new connection before we get here). Repeated RSTs are still counted.
    if (k.flags & fl::reset) {
        if (g.rst) {
            const bool in = rst_in_window(k, g, p);
            count(counters, in ? Counter::rst_in_window : Counter::rst_out_of_window);
            if (!in) k.sig |= signal::rst_stray;
        } else if (!g.syn && g.len > 0 && (s == 1) == ((k.flags & fl::reset_by_hi) != 0) &&
                   sdiff(g.seq + g.len, p.top[s]) > 0 && !k.k.side[1].aux) {
            // The endpoint that "reset" the connection sends new data past its own RST: it never
            // sent that RST (a reordered segment from before the RST ends at or below it).
            k.sig |= signal::rst_injection;
            k.k.side[1].aux = 1;
        }
        return;
    }

    if (g.rst) {
        if (first) {
            // A RST opening an entry resets nothing we know of: no window to check it against.
            k.k.anomalies |= anomaly::rst_no_handshake;
            k.sig |= signal::rst_stray;
        } else if (!rst_in_window(k, g, p)) {
            count(counters, Counter::rst_out_of_window);
            k.k.anomalies |= anomaly::rst_out_of_window;
            k.sig |= signal::rst_stray;
            return;  // suspect: the connection is left alone
        } else {
            count(counters, Counter::rst_in_window);
            const bool fin_seen = (k.flags & (fl::fin0 | fl::fin0 << 1)) != 0 ||
                                  fsm::in_state(p.rfc[s], fsm::kClosingStates) ||
                                  fsm::in_state(p.rfc[r], fsm::kClosingStates);
            if (fin_seen) count(counters, Counter::rst_after_fin);
            const bool synced = fsm::in_state(p.rfc[s], fsm::kSynchronized) ||
                                fsm::in_state(p.rfc[r], fsm::kSynchronized);
            if (!synced && p.rfc[r] != State::syn_sent) k.k.anomalies |= anomaly::rst_no_handshake;
            const bool data = k.k.side[0].seen_data || k.k.side[1].seen_data;
            if (synced && data && !fin_seen) k.k.anomalies |= anomaly::rst_after_data_no_fin;
        }
        k.flags |= fl::reset;
        if (s == 1) k.flags |= fl::reset_by_hi;
        if (!first)
            count(counters, g.is_orig ? Counter::teardown_rst_orig : Counter::teardown_rst_resp);
        apply(k, s, Event::snd_rst, counters);
        apply(k, r, Event::rcv_rst, counters);
        return;
    }

    if (g.syn) {
        Event es;
        if (!g.ack)
            es = p.rfc[s] == State::closed && p.z[s] == Z::inactive ? Event::snd_syn
                 : g.seq == p.isn[s]                                ? Event::snd_syn_again
                                                                    : Event::snd_syn_new_isn;
        else
            es = !k.k.side[s].synack_sent ? Event::snd_synack
                 : g.seq == p.isn[s]      ? Event::snd_synack_again
                                          : Event::snd_synack_new_isn;
        if (g.ack) k.k.side[s].synack_sent = 1;
        k.sig |= !g.ack ? signal::syn : first ? signal::synack_stray : signal::synack;
        apply(k, s, es, counters);
        // TCP Fast Open: the SYN-ACK may acknowledge the SYN's data too.
        const Event er = !g.ack                                    ? Event::rcv_syn
                         : covers(g.ackno, p.isn[r] + 1, p.top[r]) ? Event::rcv_synack
                                                                   : Event::rcv_synack_bad;
        apply(k, r, er, counters);
    } else if (g.ack) {
        const State sender_before = k.rfc[s];
        apply(k, s, Event::snd_ack, counters);
        const State y = k.rfc[r];
        if (y == State::syn_received) {
            apply(k, r,
                  covers(g.ackno, p.isn[r] + 1, p.top[r]) ? Event::rcv_ack_syn : Event::rcv_ack_bad,
                  counters);
        } else if (fsm::in_state(y, fsm::kFinUnacked) && sdiff(g.ackno, p.top[r]) >= 0) {
            apply(k, r, Event::rcv_ack_fin, counters);
        } else if (y == State::closed && sender_before == State::syn_sent) {
            apply(k, r, Event::rcv_ack_implied, counters);
        }
    }

    if (g.len > 0 && !g.syn) {
        const bool known = p.z[s] != Z::inactive && !is_reset(p.z[s]);
        if (known && sdiff(g.seq, p.top[s]) > 0) {
            // A hole before this segment: sequence space the monitor did not see (yet).
            count(counters, Counter::out_of_order);
            add_missed(k, g.seq - p.top[s]);
        }
        if (sdiff(g.seq + g.len, p.top[s]) > 0) apply(k, s, Event::snd_data, counters);
    }

    if (g.fin) {
        const bool known = p.z[s] != Z::inactive && !is_reset(p.z[s]);
        const int32_t w = max_window(k.k.side[r]);
        const int32_t d = sdiff(g.seq, p.top[s]);
        if (known && (d < -w || d > w)) {
            k.k.anomalies |= anomaly::fin_out_of_window;  // dropped, as a receiver would
            k.sig |= signal::fin_stray;
        } else {
            // A FIN from CLOSE-WAIT that does not cover the peer's FIN was sent before that FIN
            // arrived: the FINs crossed (simultaneous close, RFC 9293 figure 13).
            const bool again =
                (k.flags & (fl::fin0 << s)) != 0 &&
                fsm::in_state(k.rfc[s], fsm::kFinSent | fsm::kClosed | fsm::kSynSent);
            const bool crossed =
                k.rfc[s] == State::close_wait && (!g.ack || sdiff(g.ackno, p.top[r]) < 0);
            apply(k, s,
                  again     ? Event::snd_fin_again
                  : crossed ? Event::snd_fin_crossed
                            : Event::snd_fin,
                  counters);
            apply(k, r, Event::rcv_fin, counters);
        }
    }
}

inline TimeoutClass tclass_of(const Conn& k) noexcept {
    return fsm::timeout_class(k.rfc[0], k.rfc[1], (k.flags & fl::reset) != 0);
}

// A side has been heard from once it sent a segment other than a RST: Zeek's endpoint state
// leaves INACTIVE with any segment and never goes back, and RESET-from-INACTIVE means the side's
// only word was a RST. An accepted RST makes the class `closed` anyway; an out-of-window one is
// suspect (RFC 5961) and answers nothing. No sequence test beyond that: a reply a real peer sends
// to a stray ACK is a RST (RFC 9293 sections 3.10.7.1-2), and a flood that spoofs both directions
// can make any test pass. Both states are on the hot line: no extra storage, no cold read.
inline bool heard(Z z) noexcept { return z != Z::inactive && z != Z::reset_was_inactive; }

// What the table is told (fsm::table_class): tclass_of, except that a one-sided "established"
// connection stays half_open until the peer answers. Everything else in the tracker (counters,
// signals, the record) keeps using tclass_of.
inline TimeoutClass table_class_of(const Conn& k) noexcept {
    return fsm::table_class(tclass_of(k), heard(k.z[0]) && heard(k.z[1]));
}

// Everything but the decision of the originator (on_first) and the reuse test (on_segment).
Verdict process(Conn& k, FlowCold& c, const Seg& g, const PacketMeta& m, const Pre& p, bool first,
                uint64_t* counters) noexcept {
    const TimeoutClass before = first ? TimeoutClass::half_open : tclass_of(k);
    const uint32_t anomalies_before = k.k.anomalies;

    ++c.pkts[g.s];
    c.ip_bytes[g.s] += m.ip_len;
    // Zeek stops the clock once both sides have closed: the final ACK is not in the duration.
    const uint8_t both_closed = fl::did_close0 | fl::did_close0 << 1;
    if ((k.flags & both_closed) != both_closed) c.last_ts_ns = m.ts_ns;

    rfc_segment(k, g, p, first, counters);
    z_segment(k, g, counters);

    const TimeoutClass after = tclass_of(k);
    if (k.k.side[0].aux) {  // a handshake completed: a real connection
        if (!(anomalies_before & anomaly::kAbnormalTeardown) && (k.k.anomalies & anomaly::kAbnormalTeardown))
            k.sig |= signal::abnormal_teardown;
        const bool over = after == TimeoutClass::time_wait || after == TimeoutClass::closed;
        if (over && before != TimeoutClass::time_wait && before != TimeoutClass::closed)
            k.sig |= signal::closed;
    }
    if (k.k.half_open && after != TimeoutClass::half_open) {
        k.k.half_open = 0;
        k.sig |= signal::half_open_resolved;
    }
    if (after == TimeoutClass::time_wait && before != TimeoutClass::time_wait)
        count(counters, k.rfc[0] == State::time_wait && k.rfc[1] == State::time_wait
                            ? Counter::teardown_simultaneous
                            : Counter::teardown_fin);
    return Verdict{table_class_of(k), false, k.sig};
}

}  // namespace

Verdict Tracker::on_first(FlowEntry& e, FlowCold& c, const PacketMeta& m,
                          uint64_t* counters) const noexcept {
    Conn k = load(e, c);
    k.flags = m.sender == Side::hi ? flow::flow_flag::orig_is_hi : uint8_t{0};
    c.first_ts_ns = m.ts_ns;
    c.last_ts_ns = m.ts_ns;

    Seg g = segment(m, k.flags);
    Pre p = snapshot(k, c);
    if (g.syn && g.ack && !g.rst) {
        // The SYN was missed: its sender, the receiver of this SYN-ACK, is the originator. Zeek
        // flips such connections (for server ports) and says so with '^' first in the history.
        k.flags = m.sender == Side::hi ? uint8_t{0} : flow::flow_flag::orig_is_hi;
        k.flags |= fl::implied_syn;
        hist_add(k.k, '^');
        g.is_orig = false;
        apply(k, g.r, fsm::Event::implied_syn, counters);
        p.rfc[g.r] = k.rfc[g.r];
        p.isn[g.r] = g.ackno - 1;  // what the SYN-ACK acknowledges is x + 1
        p.top[g.r] = g.ackno;
    } else if (!g.syn && !g.rst) {
        // No connection for this segment: what it is tells a flood or a probe from a pickup.
        k.sig |= !g.ack ? signal::stealth_probe : g.fin ? signal::fin_stray : signal::ack_stray;
        count(counters, Counter::midstream_pickup);
        apply(k, 0, fsm::Event::midstream, counters);
        apply(k, 1, fsm::Event::midstream, counters);
        p.rfc[0] = k.rfc[0];
        p.rfc[1] = k.rfc[1];
    }

    if (g.syn && !g.ack && !g.rst) {
        k.k.half_open = 1;
        k.sig |= signal::syn_open;
    }
    const Verdict v = process(k, c, g, m, p, true, counters);
    store(k, e, c);
    return v;
}

Verdict Tracker::on_segment(FlowEntry& e, FlowCold& c, const PacketMeta& m,
                            uint64_t* counters) const noexcept {
    Conn k = load(e, c);
    const Seg g = segment(m, k.flags);
    const Pre p = snapshot(k, c);

    // A new SYN on a connection that is over (TIME-WAIT, or reset) opens a new connection on the
    // same tuple (RFC 9293 section 3.6.1; RFC 6191). An old duplicate of the SYN that opened this
    // one, same ISN, is absorbed by TIME-WAIT instead.
    const TimeoutClass now = tclass_of(k);
    if (g.syn && !g.ack && !g.rst) {
        const bool reset = (k.flags & fl::reset) != 0;
        if (reset || (now == TimeoutClass::time_wait && g.seq != p.isn[g.s])) {
            uint16_t sig = 0;
            if (!reset) {
                count(counters, Counter::syn_in_time_wait);
                // Reuse as RFC 1122 4.2.2.13 and RFC 6191 allow it (an ISN past the old
                // connection's sequence space) is how busy clients and NATs work: the per-host
                // detector counts only a reuse a strict server would refuse.
                const bool allowed = sdiff(g.seq, p.top[g.s]) > 0;
                if (!allowed && k.k.side[0].aux && !(k.k.anomalies & anomaly::kAbnormalTeardown))
                    sig = signal::abnormal_teardown;
                k.k.anomalies |= anomaly::syn_in_time_wait;
                std::memcpy(c.tcp, &k.k, sizeof k.k);
            }
            return Verdict{now, true, sig};
        }
    }

    const Verdict v = process(k, c, g, m, p, false, counters);
    store(k, e, c);
    return v;
}

void Tracker::finish(const FlowEntry& e, const FlowCold& c, RemoveReason why,
                     connlog::ConnRecord& r, uint64_t* counters) const noexcept {
    const Conn k = load(e, c);
    const unsigned o = orig_is_hi(k.flags) ? 1u : 0u;
    const unsigned p = 1u - o;

    r.key = e.key;
    r.orig_is_hi = o == 1;
    r.first_ts_ns = c.first_ts_ns;
    r.last_ts_ns = c.last_ts_ns;
    r.orig_bytes = z_size(k, c, o);
    r.resp_bytes = z_size(k, c, p);
    r.missed_bytes = k.k.missed;
    r.orig_ip_bytes = c.ip_bytes[o];
    r.resp_ip_bytes = c.ip_bytes[p];
    r.orig_pkts = c.pkts[o];
    r.resp_pkts = c.pkts[p];
    r.orig_state = static_cast<uint8_t>(k.rfc[o]);
    r.resp_state = static_cast<uint8_t>(k.rfc[p]);
    r.detect = static_cast<uint8_t>((k.k.half_open ? connlog::detect_flag::half_open : 0) |
                                    (k.k.side[0].aux ? connlog::detect_flag::handshake_done : 0));

    const bool reset = (k.flags & fl::reset) != 0;
    const bool fin_o = (k.flags & (fl::fin0 << o)) != 0;
    const bool fin_p = (k.flags & (fl::fin0 << p)) != 0;
    uint32_t anomalies = k.k.anomalies;
    if (!reset && fin_o != fin_p) anomalies |= anomaly::half_close_stuck;
    r.anomalies = anomalies;

    const TimeoutClass tc = tclass_of(k);
    if (reset) {
        r.close = ((k.flags & fl::reset_by_hi) != 0) == (o == 1) ? connlog::CloseKind::rst_orig
                                                                 : connlog::CloseKind::rst_resp;
    } else if (tc == TimeoutClass::time_wait) {
        r.close = k.rfc[0] == State::time_wait && k.rfc[1] == State::time_wait
                      ? connlog::CloseKind::simultaneous_close
                      : connlog::CloseKind::fin;
    } else {
        switch (why) {
            case RemoveReason::evicted_table_full:
            case RemoveReason::evicted_bucket_full:
                r.close = connlog::CloseKind::evicted;
                break;
            case RemoveReason::flushed:
                r.close = connlog::CloseKind::open_at_exit;
                break;
            default:
                r.close = connlog::CloseKind::timeout;
                break;
        }
    }

    std::memset(r.history, 0, sizeof r.history);
    static_assert(sizeof r.history > kHistSlots);
    hist_decode(k.k, r.history);
    std::memset(r.conn_state, 0, sizeof r.conn_state);
    const char* cs = z_conn_state(k.z[o], k.z[p], r.orig_bytes, r.resp_bytes, r.history);
    std::memcpy(r.conn_state, cs, std::strlen(cs));

    if (why == RemoveReason::expired && !reset && tc != TimeoutClass::time_wait) {
        count(counters, tc == TimeoutClass::half_open ? Counter::handshake_failed_timeout
                                                      : Counter::teardown_timeout);
    }
    if (c.pkts[0] == 0 || c.pkts[1] == 0) count(counters, Counter::one_sided);
}

State Tracker::state_of(const FlowEntry& e, Side side) noexcept {
    const unsigned v = e.state[static_cast<unsigned>(side)] & 0x0fu;
    return v < kStateCount ? static_cast<State>(v) : State::closed;
}

uint32_t Tracker::stream_offset(const FlowEntry& e, Side side, uint32_t seq) noexcept {
    layout::HotTcp h;
    std::memcpy(&h, e.tcp, sizeof h);
    return seq - h.isn[static_cast<unsigned>(side)] - 1;
}

}  // namespace stateline::tcp
