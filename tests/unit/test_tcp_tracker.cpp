// SPDX-License-Identifier: BSD-3-Clause
// The TCP tracker, through the same path as the worker: frames from the packet builder (or a
// capture), parse_frame, a real FlowTable, on_first/on_segment, touch, restart, and finish from the
// table's remove hook. Each scenario reads like the sequence chart it checks; the RFC 9293 figure
// numbers are those of section 3.5 and 3.6.
//
// The second half replays Zeek's own test traces (../shared/captures/zeek) and compares with the
// baselines Zeek's authors recorded.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "conn_record.hpp"
#include "flow_table.hpp"
#include "packet_builder.hpp"
#include "parser.hpp"
#include "tcp_fsm.hpp"
#include "tcp_layout.hpp"
#include "tcp_tracker.hpp"

#ifndef STATELINE_CAPTURES_DIR
#error "STATELINE_CAPTURES_DIR must name ../shared/captures"
#endif

namespace stateline::tcp {
namespace {

using connlog::CloseKind;
using connlog::ConnRecord;
using flow::FlowEntry;
using flow::FlowTable;
using flow::FlowTableConfig;
using flow::RemoveReason;
using flow::Side;
using flow::TimeoutClass;
using packet::PacketMeta;
using test::ACK;
using test::FIN;
using test::PacketBuilder;
using test::PSH;
using test::RST;
using test::SYN;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000 * kMs;

struct FreeDeleter {
    void operator()(void* p) const noexcept { std::free(p); }
};

FlowTableConfig small_table(uint32_t capacity = 256) {
    FlowTableConfig cfg;
    cfg.capacity = capacity;
    cfg.expiry_batch = capacity;  // one expire_step() looks at every entry
    cfg.timeout_ms[static_cast<unsigned>(TimeoutClass::time_wait)] = 2 * 30'000;  // 2 * MSL
    return cfg;
}

// The worker's tracking stage in miniature (src/worker.cpp, stage_track and worker_on_remove).
class Monitor {
public:
    explicit Monitor(const FlowTableConfig& cfg = small_table())
        : mem_(std::aligned_alloc(64, FlowTable::memory_size(cfg.capacity))),
          table_(cfg, mem_.get(), &Monitor::on_remove, this) {}

    // Returns false when the frame is not a tracked TCP segment.
    bool feed(const uint8_t* frame, uint32_t len, uint64_t ts_ns,
              packet::LinkType link = packet::LinkType::ethernet) {
        PacketMeta m{};
        if (packet::parse_frame(frame, len, link, m) != packet::Outcome::tcp) return false;
        m.ts_ns = ts_ns;
        if (ts_ns / kMs > table_.now()) table_.set_now(static_cast<uint32_t>(ts_ns / kMs));
        uint32_t e = flow::kNoEntry;
        bool created = false;
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (e == flow::kNoEntry) {
                e = table_.find_or_insert(m.key, m.hash, TimeoutClass::half_open, &created);
                if (e == flow::kNoEntry) return false;
            }
            const Verdict v =
                created ? tracker_.on_first(table_.entry(e), table_.cold(e), m, counters)
                        : tracker_.on_segment(table_.entry(e), table_.cold(e), m, counters);
            if (v.restart && !created) {
                ++restarts;
                table_.remove(e, RemoveReason::closed);
                e = flow::kNoEntry;
                continue;
            }
            table_.touch(e, v.tclass);
            last_ = e;
            key_ = m.key;
            hash_ = m.hash;
            break;
        }
        return true;
    }
    bool feed(const std::vector<uint8_t>& f, uint64_t ts_ns) {
        return feed(f.data(), static_cast<uint32_t>(f.size()), ts_ns);
    }

    // The entry of the last segment's connection, or nullptr once it has left the table.
    const FlowEntry* entry() {
        const uint32_t i = table_.lookup(key_, hash_);
        return i == flow::kNoEntry ? nullptr : &table_.entry(i);
    }
    void advance_clock(uint64_t ts_ns) {
        table_.set_now(static_cast<uint32_t>(ts_ns / kMs));
        table_.expire_step();
    }
    void flush() { table_.flush(); }
    uint64_t n(Counter c) const { return counters[static_cast<unsigned>(c)]; }
    FlowTable& table() { return table_; }

    std::vector<ConnRecord> records;
    std::vector<RemoveReason> reasons;
    uint64_t counters[kCounterCount] = {};
    unsigned restarts = 0;

private:
    static void on_remove(void* ctx, uint32_t idx, RemoveReason why) {
        auto* self = static_cast<Monitor*>(ctx);
        ConnRecord r;
        std::memset(&r, 0xa5, sizeof r);  // finish must fill every field but worker and uid_seq
        self->tracker_.finish(self->table_.entry(idx), self->table_.cold(idx), why, r,
                              self->counters);
        self->records.push_back(r);
        self->reasons.push_back(why);
    }

    std::unique_ptr<void, FreeDeleter> mem_;
    FlowTable table_;
    Tracker tracker_;
    uint32_t last_ = flow::kNoEntry;
    flow::FlowKey key_{};
    uint32_t hash_ = 0;
};

// What a segment carries besides its flags and numbers.
struct Opt {
    size_t data = 0;
    uint16_t window = 65535;
    int wscale = -1;  // RFC 7323 option when >= 0
};

// A client (10.0.0.1:40000, side lo of the key) and a server (10.0.0.2:80, side hi). Each call is
// one arrow of a sequence chart, 1 ms after the previous one.
class Chart {
public:
    explicit Chart(const FlowTableConfig& cfg = small_table()) : mon(cfg) {}

    void c2s(uint8_t flags, uint32_t seq, uint32_t ack, Opt o = {}) {
        send("10.0.0.1", "10.0.0.2", 40000, 80, flags, seq, ack, o);
    }
    void s2c(uint8_t flags, uint32_t seq, uint32_t ack, Opt o = {}) {
        send("10.0.0.2", "10.0.0.1", 80, 40000, flags, seq, ack, o);
    }
    void wait(uint64_t ns) { now += ns; }

    State client() { return Tracker::state_of(*must_entry(), Side::lo); }
    State server() { return Tracker::state_of(*must_entry(), Side::hi); }
    TimeoutClass tclass() { return must_entry()->tclass; }
    bool gone() { return mon.entry() == nullptr; }
    uint64_t n(Counter c) const { return mon.n(c); }

    // Ends the capture (flush) and returns the last connection's record.
    ConnRecord end() {
        mon.flush();
        EXPECT_FALSE(mon.records.empty());
        return mon.records.empty() ? ConnRecord{} : mon.records.back();
    }

    Monitor mon;
    uint64_t now = 1'600'000'000 * kSec;

private:
    const FlowEntry* must_entry() {
        const FlowEntry* e = mon.entry();
        EXPECT_NE(e, nullptr);
        static const FlowEntry kNone{};
        return e ? e : &kNone;
    }
    void send(const char* src, const char* dst, uint16_t sp, uint16_t dp, uint8_t flags,
              uint32_t seq, uint32_t ack, const Opt& o) {
        PacketBuilder b;
        b.eth().ipv4(src, dst).tcp(sp, dp, flags, seq, ack, o.window);
        if (o.wscale >= 0) b.wscale(static_cast<uint8_t>(o.wscale));
        if (o.data > 0) b.payload(o.data);
        now += kMs;
        ASSERT_TRUE(mon.feed(b.build(), now));
    }
};

// The handshake of RFC 9293 figure 6, with ISNs x and y.
constexpr uint32_t x = 1000, y = 5000;
void handshake(Chart& h) {
    h.c2s(SYN, x, 0);
    h.s2c(SYN | ACK, y, x + 1);
    h.c2s(ACK, x + 1, y + 1);
}

bool has_anomaly(const ConnRecord& r, uint32_t bit) { return (r.anomalies & bit) != 0; }

// ---- The table -------------------------------------------------------------------------------

TEST(TcpFsm, EveryStateResetsToClosedOnAnAcceptedRst) {
    for (unsigned s = 0; s < kStateCount; ++s) {
        EXPECT_EQ(fsm::step(static_cast<State>(s), fsm::Event::snd_rst).next, State::closed);
        EXPECT_EQ(fsm::step(static_cast<State>(s), fsm::Event::rcv_rst).next, State::closed);
    }
    EXPECT_EQ(fsm::step(State::syn_sent, fsm::Event::rcv_rst).actions, fsm::act::refused);
}

TEST(TcpFsm, UnlistedPairsStayPut) {
    // An ACK in ESTABLISHED, data in ESTABLISHED: nothing to do.
    EXPECT_EQ(fsm::step(State::established, fsm::Event::snd_ack).next, State::established);
    EXPECT_EQ(fsm::step(State::established, fsm::Event::snd_data).actions, fsm::act::none);
    // A SYN in a synchronized state is not a reopening (RFC 5961 section 4).
    EXPECT_EQ(fsm::step(State::established, fsm::Event::snd_syn_new_isn).next, State::established);
}

TEST(TcpFsm, TimeoutClassFollowsBothEndpoints) {
    using fsm::timeout_class;
    EXPECT_EQ(timeout_class(State::syn_sent, State::closed, false), TimeoutClass::half_open);
    EXPECT_EQ(timeout_class(State::established, State::syn_received, false),
              TimeoutClass::half_open);
    EXPECT_EQ(timeout_class(State::established, State::established, false),
              TimeoutClass::established);
    EXPECT_EQ(timeout_class(State::fin_wait_1, State::close_wait, false), TimeoutClass::closing);
    EXPECT_EQ(timeout_class(State::time_wait, State::last_ack, false), TimeoutClass::closing);
    EXPECT_EQ(timeout_class(State::time_wait, State::closed, false), TimeoutClass::time_wait);
    EXPECT_EQ(timeout_class(State::time_wait, State::time_wait, false), TimeoutClass::time_wait);
    EXPECT_EQ(timeout_class(State::established, State::established, true), TimeoutClass::closed);
}

TEST(TcpNames, StatesAnomaliesCounters) {
    EXPECT_STREQ(state_name(State::syn_sent), "SYN-SENT");
    EXPECT_STREQ(state_name(State::time_wait), "TIME-WAIT");
    EXPECT_STREQ(anomaly_name(3), "rst_out_of_window");
    EXPECT_EQ(anomaly::fin_out_of_window, 1u << (kAnomalyCount - 1));
    EXPECT_STREQ(anomaly_name(kAnomalyCount - 1), "fin_out_of_window");
    std::set<std::string> names;
    for (const CounterInfo& c : kCounterInfo) {
        ASSERT_NE(c.name, nullptr);
        ASSERT_NE(c.help, nullptr);
        EXPECT_TRUE(names.insert(c.name).second) << c.name;
    }
    EXPECT_STREQ(kCounterInfo[static_cast<unsigned>(Counter::syn_in_time_wait)].name,
                 "syn_in_time_wait");
}

// ---- 3-way handshake -------------------------------------------------------------------------

TEST(Handshake, ThreeWay) {
    Chart h;
    h.c2s(SYN, x, 0);  // SYN seq=x
    EXPECT_EQ(h.client(), State::syn_sent);
    EXPECT_EQ(h.server(), State::closed);  // LISTEN is invisible
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    h.s2c(SYN | ACK, y, x + 1);  // SYN-ACK seq=y ack=x+1
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.server(), State::syn_received);
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    h.c2s(ACK, x + 1, y + 1);  // ACK seq=x+1 ack=y+1
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.server(), State::established);
    EXPECT_EQ(h.tclass(), TimeoutClass::established);
    EXPECT_EQ(h.n(Counter::handshake_completed), 1u);

    const ConnRecord r = h.end();
    EXPECT_FALSE(r.orig_is_hi);  // the client sent the SYN
    EXPECT_STREQ(r.history, "ShA");
    EXPECT_STREQ(r.conn_state, "S1");
    EXPECT_EQ(r.close, CloseKind::open_at_exit);
    EXPECT_EQ(r.orig_state, static_cast<uint8_t>(State::established));
    EXPECT_EQ(r.resp_state, static_cast<uint8_t>(State::established));
    EXPECT_EQ(r.orig_pkts, 2u);
    EXPECT_EQ(r.resp_pkts, 1u);
    EXPECT_EQ(r.orig_ip_bytes, 40u + 40u);
    EXPECT_EQ(r.orig_bytes, 0u);
    EXPECT_EQ(r.resp_bytes, 0u);
    EXPECT_EQ(r.anomalies, 0u);
}

TEST(Handshake, SynAckWithWrongAckDoesNotEstablish) {
    Chart h;
    h.c2s(SYN, x, 0);
    h.s2c(SYN | ACK, y, x + 7);  // must ack x+1
    EXPECT_EQ(h.client(), State::syn_sent);
    EXPECT_EQ(h.n(Counter::handshake_failed_bad_synack_ack), 1u);
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    EXPECT_TRUE(has_anomaly(h.end(), anomaly::bad_synack_ack));
}

TEST(Handshake, AckWithWrongAckDoesNotEstablish) {
    Chart h;
    h.c2s(SYN, x, 0);
    h.s2c(SYN | ACK, y, x + 1);
    h.c2s(ACK, x + 1, y + 9);  // must ack y+1
    EXPECT_EQ(h.server(), State::syn_received);
    EXPECT_EQ(h.n(Counter::handshake_failed_bad_ack), 1u);
    EXPECT_EQ(h.n(Counter::handshake_completed), 0u);
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    h.c2s(ACK, x + 1, y + 1);  // the right one completes it
    EXPECT_EQ(h.server(), State::established);
    EXPECT_EQ(h.n(Counter::handshake_completed), 1u);
    EXPECT_TRUE(has_anomaly(h.end(), anomaly::bad_handshake_ack));
}

TEST(Handshake, RetransmittedSynAndSynAck) {
    Chart h;
    h.c2s(SYN, x, 0);
    h.wait(1 * kSec);
    h.c2s(SYN, x, 0);  // RTO: same ISN
    h.s2c(SYN | ACK, y, x + 1);
    h.s2c(SYN | ACK, y, x + 1);  // the ACK took too long
    h.c2s(ACK, x + 1, y + 1);
    EXPECT_EQ(h.n(Counter::syn_retransmitted), 1u);
    EXPECT_EQ(h.n(Counter::synack_retransmitted), 1u);
    EXPECT_EQ(h.n(Counter::syn_new_isn), 0u);
    EXPECT_EQ(h.n(Counter::handshake_completed), 1u);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.history, "ShA");  // Zeek repeats S/H only for a new sequence number
    EXPECT_EQ(r.orig_pkts, 3u);
}

TEST(Handshake, SecondSynWithNewIsn) {
    Chart h;
    h.c2s(SYN, x, 0);
    h.c2s(SYN, x + 100000, 0);  // the client gave up on x and started over
    EXPECT_EQ(h.n(Counter::syn_new_isn), 1u);
    h.s2c(SYN | ACK, y, x + 100001);  // answers the second SYN
    EXPECT_EQ(h.client(), State::established);
    h.c2s(ACK, x + 100001, y + 1);
    EXPECT_EQ(h.server(), State::established);
    EXPECT_EQ(h.n(Counter::handshake_completed), 1u);
    const ConnRecord r = h.end();
    EXPECT_TRUE(has_anomaly(r, anomaly::syn_new_isn));
    EXPECT_STREQ(r.history, "ShA");  // Zeek restarts the sequence space: relative seq 0 again
}

TEST(Handshake, SimultaneousOpen) {
    // RFC 9293 figure 7: the SYNs cross, each end answers with a SYN-ACK.
    Chart h;
    h.c2s(SYN, x, 0);
    h.s2c(SYN, y, 0);
    EXPECT_EQ(h.client(), State::syn_received);
    EXPECT_EQ(h.server(), State::syn_sent);
    EXPECT_EQ(h.n(Counter::simultaneous_open), 1u);
    h.c2s(SYN | ACK, x, y + 1);
    h.s2c(SYN | ACK, y, x + 1);
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.server(), State::established);
    EXPECT_EQ(h.tclass(), TimeoutClass::established);
    EXPECT_EQ(h.n(Counter::synack_retransmitted), 0u);
    EXPECT_EQ(h.n(Counter::simultaneous_open), 1u);
}

TEST(Handshake, SynCarryingData) {
    // TCP Fast Open (RFC 7413): 10 bytes in the SYN, acknowledged by the SYN-ACK.
    Chart h;
    h.c2s(SYN, x, 0, {.data = 10});
    h.s2c(SYN | ACK, y, x + 11);
    h.c2s(ACK, x + 11, y + 1);
    EXPECT_EQ(h.n(Counter::syn_with_data), 1u);
    EXPECT_EQ(h.n(Counter::handshake_failed_bad_synack_ack), 0u);
    EXPECT_EQ(h.n(Counter::handshake_completed), 1u);
    const ConnRecord r = h.end();
    EXPECT_EQ(r.orig_bytes, 10u);
    // Data in a SYN is an 'S', not a 'D'. Zeek then adds a 'T': it starts the sequence space past
    // the SYN's data, so the same segment finds nothing new in it. Our counter knows better.
    EXPECT_STREQ(r.history, "SThA");
    EXPECT_EQ(h.n(Counter::retransmission), 0u);
}

TEST(Handshake, FastOpenDataNotAccepted) {
    Chart h;
    h.c2s(SYN, x, 0, {.data = 10});
    h.s2c(SYN | ACK, y, x + 1);  // cookie refused: only the SYN is acknowledged
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.n(Counter::handshake_failed_bad_synack_ack), 0u);
}

// ---- 4-way teardown --------------------------------------------------------------------------

// Handshake, 100 bytes each way, then the client closes: RFC 9293 figure 12.
TEST(Teardown, FourWay) {
    Chart h(small_table());
    handshake(h);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 100});
    h.s2c(ACK, y + 1, x + 101);
    h.s2c(ACK | PSH, y + 1, x + 101, {.data = 100});
    h.c2s(ACK, x + 101, y + 101);
    const uint32_t u = x + 101, w = y + 101;

    h.c2s(FIN | ACK, u, w);  // FIN seq=u
    EXPECT_EQ(h.client(), State::fin_wait_1);
    EXPECT_EQ(h.server(), State::close_wait);
    EXPECT_EQ(h.tclass(), TimeoutClass::closing);
    h.s2c(ACK, w, u + 1);  // ACK u+1: the FIN took one sequence number
    EXPECT_EQ(h.client(), State::fin_wait_2);
    EXPECT_EQ(h.tclass(), TimeoutClass::closing);
    h.s2c(FIN | ACK, w, u + 1);  // FIN seq=w
    EXPECT_EQ(h.client(), State::time_wait);
    EXPECT_EQ(h.server(), State::last_ack);
    EXPECT_EQ(h.tclass(), TimeoutClass::closing);
    const uint64_t last_fin = h.now;
    h.c2s(ACK, u + 1, w + 1);  // ACK w+1
    EXPECT_EQ(h.client(), State::time_wait);
    EXPECT_EQ(h.server(), State::closed);
    EXPECT_EQ(h.tclass(), TimeoutClass::time_wait);
    EXPECT_EQ(h.n(Counter::teardown_fin), 1u);

    // TIME-WAIT lasts 2 * MSL (60 s here), then the connection is gone.
    h.mon.advance_clock(h.now + 59 * kSec);
    EXPECT_FALSE(h.gone());
    h.mon.advance_clock(h.now + 61 * kSec);
    ASSERT_EQ(h.mon.records.size(), 1u);
    const ConnRecord& r = h.mon.records[0];
    EXPECT_EQ(h.mon.reasons[0], RemoveReason::expired);
    EXPECT_EQ(r.close, CloseKind::fin);
    EXPECT_STREQ(r.conn_state, "SF");
    EXPECT_STREQ(r.history, "ShADadFf");
    EXPECT_EQ(r.orig_bytes, 100u);
    EXPECT_EQ(r.resp_bytes, 100u);
    EXPECT_EQ(r.orig_state, static_cast<uint8_t>(State::time_wait));
    EXPECT_EQ(r.resp_state, static_cast<uint8_t>(State::closed));
    // Zeek's duration ends with the second FIN: the last ACK is not part of it.
    EXPECT_EQ(r.last_ts_ns, last_fin);
    EXPECT_EQ(r.orig_pkts, 6u);
    EXPECT_EQ(r.resp_pkts, 5u);
    EXPECT_EQ(h.n(Counter::teardown_timeout), 0u);
}

TEST(Teardown, FinAckCombined) {
    // The server's FIN carries the ACK of the client's FIN: a 3-segment close.
    Chart h;
    handshake(h);
    h.c2s(FIN | ACK, x + 1, y + 1);
    h.s2c(FIN | ACK, y + 1, x + 2);
    EXPECT_EQ(h.client(), State::time_wait);
    EXPECT_EQ(h.server(), State::last_ack);
    h.c2s(ACK, x + 2, y + 2);
    EXPECT_EQ(h.server(), State::closed);
    EXPECT_EQ(h.tclass(), TimeoutClass::time_wait);
    EXPECT_EQ(h.n(Counter::teardown_fin), 1u);
    EXPECT_EQ(h.n(Counter::teardown_simultaneous), 0u);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.conn_state, "SF");
    EXPECT_STREQ(r.history, "ShAFf");
    EXPECT_EQ(r.close, CloseKind::fin);
}

TEST(Teardown, SimultaneousClose) {
    // RFC 9293 figure 13: both FINs leave before either arrives, both ends pass through CLOSING.
    Chart h;
    handshake(h);
    h.c2s(FIN | ACK, x + 1, y + 1);
    h.s2c(FIN | ACK, y + 1, x + 1);  // does not ack the client's FIN: they crossed
    EXPECT_EQ(h.client(), State::closing);
    EXPECT_EQ(h.server(), State::closing);
    h.c2s(ACK, x + 2, y + 2);
    EXPECT_EQ(h.server(), State::time_wait);
    EXPECT_EQ(h.tclass(), TimeoutClass::closing);
    h.s2c(ACK, y + 2, x + 2);
    EXPECT_EQ(h.client(), State::time_wait);
    EXPECT_EQ(h.tclass(), TimeoutClass::time_wait);
    EXPECT_EQ(h.n(Counter::teardown_simultaneous), 1u);
    EXPECT_EQ(h.n(Counter::teardown_fin), 0u);
    const ConnRecord r = h.end();
    EXPECT_EQ(r.close, CloseKind::simultaneous_close);
    EXPECT_STREQ(r.conn_state, "SF");
    EXPECT_STREQ(r.history, "ShAFfa");
}

TEST(Teardown, HalfCloseWithDataStillFlowing) {
    Chart h;
    handshake(h);
    h.c2s(FIN | ACK, x + 1, y + 1);  // the client is done sending
    h.s2c(ACK, y + 1, x + 2);
    h.s2c(ACK | PSH, y + 1, x + 2, {.data = 500});  // the server is not
    h.c2s(ACK, x + 2, y + 501);
    h.s2c(ACK | PSH, y + 501, x + 2, {.data = 500});
    h.c2s(ACK, x + 2, y + 1001);
    EXPECT_EQ(h.client(), State::fin_wait_2);
    EXPECT_EQ(h.server(), State::close_wait);
    EXPECT_EQ(h.n(Counter::half_close_data), 2u);
    EXPECT_EQ(h.n(Counter::data_after_fin), 0u);
    h.s2c(FIN | ACK, y + 1001, x + 2);
    h.c2s(ACK, x + 2, y + 1002);
    EXPECT_EQ(h.tclass(), TimeoutClass::time_wait);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.conn_state, "SF");
    EXPECT_EQ(r.resp_bytes, 1000u);
    EXPECT_EQ(r.orig_bytes, 0u);
    EXPECT_EQ(r.anomalies, 0u);
}

TEST(Teardown, FinRetransmitted) {
    Chart h;
    handshake(h);
    h.c2s(FIN | ACK, x + 1, y + 1);
    h.c2s(FIN | ACK, x + 1, y + 1);  // no ACK came back in time
    EXPECT_EQ(h.n(Counter::fin_retransmitted), 1u);
    EXPECT_EQ(h.client(), State::fin_wait_1);
    h.s2c(ACK, y + 1, x + 2);
    h.s2c(FIN | ACK, y + 1, x + 2);
    h.s2c(FIN | ACK, y + 1, x + 2);  // the last ACK was lost: the server retransmits
    EXPECT_EQ(h.n(Counter::fin_retransmitted), 2u);
    h.c2s(ACK, x + 2, y + 2);
    EXPECT_EQ(h.tclass(), TimeoutClass::time_wait);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.history, "ShAFaf");  // one F per direction: same sequence number
    EXPECT_STREQ(r.conn_state, "SF");
}

TEST(Teardown, FinRetransmittedAfterTheLastAck) {
    // The client's last ACK is lost after the monitor: the server (already CLOSED for us) sends
    // its FIN again, and the client in TIME-WAIT acknowledges it again.
    Chart h;
    handshake(h);
    h.c2s(FIN | ACK, x + 1, y + 1);
    h.s2c(FIN | ACK, y + 1, x + 2);
    h.c2s(ACK, x + 2, y + 2);
    ASSERT_EQ(h.server(), State::closed);
    h.s2c(FIN | ACK, y + 1, x + 2);
    h.c2s(ACK, x + 2, y + 2);
    EXPECT_EQ(h.n(Counter::fin_retransmitted), 1u);
    EXPECT_EQ(h.tclass(), TimeoutClass::time_wait);
    EXPECT_EQ(h.n(Counter::teardown_fin), 1u);
    EXPECT_EQ(h.end().anomalies, 0u);
}

TEST(Teardown, DataAfterOwnFinIsAnAnomaly) {
    Chart h;
    handshake(h);
    h.c2s(FIN | ACK, x + 1, y + 1);
    h.c2s(ACK | PSH, x + 2, y + 1, {.data = 10});
    EXPECT_EQ(h.n(Counter::data_after_fin), 1u);
    EXPECT_TRUE(has_anomaly(h.end(), anomaly::data_after_fin));
}

TEST(Teardown, NewSynInTimeWaitStartsANewConnection) {
    Chart h;
    handshake(h);
    h.c2s(FIN | ACK, x + 1, y + 1);
    h.s2c(FIN | ACK, y + 1, x + 2);
    h.c2s(ACK, x + 2, y + 2);
    ASSERT_EQ(h.tclass(), TimeoutClass::time_wait);

    h.c2s(SYN, x, 0);  // an old duplicate of the first SYN: TIME-WAIT absorbs it
    EXPECT_EQ(h.mon.restarts, 0u);
    EXPECT_EQ(h.tclass(), TimeoutClass::time_wait);

    h.c2s(SYN, x + 200000, 0);  // a new incarnation (RFC 6191: a larger ISN)
    EXPECT_EQ(h.mon.restarts, 1u);
    EXPECT_EQ(h.n(Counter::syn_in_time_wait), 1u);
    ASSERT_EQ(h.mon.records.size(), 1u);
    EXPECT_EQ(h.mon.reasons[0], RemoveReason::closed);
    EXPECT_EQ(h.mon.records[0].close, CloseKind::fin);
    EXPECT_STREQ(h.mon.records[0].conn_state, "SF");
    EXPECT_TRUE(has_anomaly(h.mon.records[0], anomaly::syn_in_time_wait));
    // SYN, ACK, FIN, ACK and the absorbed duplicate; the new SYN belongs to the new connection.
    EXPECT_EQ(h.mon.records[0].orig_pkts, 5u);

    EXPECT_EQ(h.client(), State::syn_sent);  // the new one
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    h.s2c(SYN | ACK, y + 300000, x + 200001);
    h.c2s(ACK, x + 200001, y + 300001);
    EXPECT_EQ(h.tclass(), TimeoutClass::established);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.history, "ShA");
    EXPECT_EQ(r.orig_pkts, 2u);
}

TEST(Teardown, IdleConnectionTimesOut) {
    Chart h;
    handshake(h);
    h.mon.advance_clock(h.now + 3 * 3600 * kSec);  // past the 2 h established timeout
    ASSERT_EQ(h.mon.records.size(), 1u);
    EXPECT_EQ(h.mon.records[0].close, CloseKind::timeout);
    EXPECT_EQ(h.n(Counter::teardown_timeout), 1u);
}

TEST(Teardown, HalfOpenTimesOut) {
    Chart h;
    h.c2s(SYN, x, 0);
    h.mon.advance_clock(h.now + 31 * kSec);
    ASSERT_EQ(h.mon.records.size(), 1u);
    EXPECT_STREQ(h.mon.records[0].conn_state, "S0");
    EXPECT_STREQ(h.mon.records[0].history, "S");
    EXPECT_EQ(h.n(Counter::handshake_failed_timeout), 1u);
    EXPECT_EQ(h.n(Counter::one_sided), 1u);
}

// ---- RST -------------------------------------------------------------------------------------

TEST(Reset, RstAnsweringSynIsARefusal) {
    Chart h;
    h.c2s(SYN, x, 0);
    h.s2c(RST | ACK, 0, x + 1);  // RFC 9293 section 3.10.7.1: <SEQ=0><ACK=x+1><CTL=RST,ACK>
    EXPECT_EQ(h.client(), State::closed);
    EXPECT_EQ(h.tclass(), TimeoutClass::closed);
    EXPECT_EQ(h.n(Counter::handshake_failed_refused), 1u);
    EXPECT_EQ(h.n(Counter::rst_in_window), 1u);
    EXPECT_EQ(h.n(Counter::teardown_rst_resp), 1u);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.conn_state, "REJ");
    EXPECT_STREQ(r.history, "Sr");
    EXPECT_EQ(r.close, CloseKind::rst_resp);
    EXPECT_FALSE(has_anomaly(r, anomaly::rst_no_handshake));
}

TEST(Reset, RstToSynThatDoesNotAckItIsSuspect) {
    Chart h;
    h.c2s(SYN, x, 0);
    h.s2c(RST | ACK, 0, x + 77);  // a SYN-SENT end accepts a RST only if it acks the SYN
    EXPECT_EQ(h.client(), State::syn_sent);
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    EXPECT_EQ(h.n(Counter::rst_out_of_window), 1u);
    EXPECT_EQ(h.n(Counter::handshake_failed_refused), 0u);
}

TEST(Reset, InWindowRstEndsTheConnection) {
    Chart h;
    handshake(h);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 50});
    h.c2s(RST | ACK, x + 51, y + 1);
    EXPECT_EQ(h.client(), State::closed);
    EXPECT_EQ(h.server(), State::closed);
    EXPECT_EQ(h.tclass(), TimeoutClass::closed);
    EXPECT_EQ(h.n(Counter::rst_in_window), 1u);
    EXPECT_EQ(h.n(Counter::teardown_rst_orig), 1u);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.conn_state, "RSTO");
    EXPECT_STREQ(r.history, "ShADR");
    EXPECT_EQ(r.close, CloseKind::rst_orig);
    EXPECT_TRUE(has_anomaly(r, anomaly::rst_after_data_no_fin));
    EXPECT_EQ(r.orig_bytes, 50u);
}

TEST(Reset, OutOfWindowRstLeavesTheConnectionAlone) {
    Chart h;
    handshake(h);
    h.s2c(RST, y + 1 + 10'000'000, 0);  // a blind guess, far outside any window
    EXPECT_EQ(h.n(Counter::rst_out_of_window), 1u);
    EXPECT_EQ(h.n(Counter::rst_in_window), 0u);
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.server(), State::established);
    EXPECT_EQ(h.tclass(), TimeoutClass::established);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 10});  // the connection goes on
    EXPECT_EQ(h.tclass(), TimeoutClass::established);
    const ConnRecord r = h.end();
    EXPECT_TRUE(has_anomaly(r, anomaly::rst_out_of_window));
    EXPECT_EQ(r.close, CloseKind::open_at_exit);
    // conn_state is Zeek's, and Zeek believes every RST.
    EXPECT_STREQ(r.conn_state, "RSTR");
}

TEST(Reset, RstAfterFin) {
    Chart h;
    handshake(h);
    h.c2s(FIN | ACK, x + 1, y + 1);
    h.s2c(ACK, y + 1, x + 2);
    h.s2c(RST | ACK, y + 1, x + 2);  // the server aborts instead of closing
    EXPECT_EQ(h.n(Counter::rst_after_fin), 1u);
    EXPECT_EQ(h.tclass(), TimeoutClass::closed);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.conn_state, "RSTR");
    EXPECT_STREQ(r.history, "ShAFar");
    EXPECT_EQ(r.close, CloseKind::rst_resp);
    EXPECT_FALSE(has_anomaly(r, anomaly::rst_after_data_no_fin));
}

TEST(Reset, RstCarryingData) {
    // RFC 9293 section 3.5.3 allows diagnostic data in a RST; it is not part of the stream.
    Chart h;
    handshake(h);
    h.s2c(RST | ACK, y + 1, x + 1, {.data = 20});
    EXPECT_EQ(h.n(Counter::rst_with_data), 1u);
    EXPECT_EQ(h.n(Counter::rst_in_window), 1u);
    const ConnRecord r = h.end();
    EXPECT_EQ(r.resp_bytes, 0u);
    EXPECT_STREQ(r.conn_state, "RSTR");
}

TEST(Reset, StragglersAfterAResetChangeNothing) {
    Chart h;
    handshake(h);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 10});
    h.s2c(RST | ACK, y + 1, x + 11);
    h.s2c(RST | ACK, y + 1, x + 11);                // the same RST again
    h.c2s(ACK | PSH, x + 11, y + 1, {.data = 10});  // the client had not heard yet
    h.c2s(FIN | ACK, x + 21, y + 1);
    EXPECT_EQ(h.client(), State::closed);
    EXPECT_EQ(h.server(), State::closed);
    EXPECT_EQ(h.tclass(), TimeoutClass::closed);
    EXPECT_EQ(h.n(Counter::rst_in_window), 2u);
    EXPECT_EQ(h.n(Counter::teardown_rst_resp), 1u);
    EXPECT_EQ(h.n(Counter::data_after_fin), 0u);
    const ConnRecord r = h.end();
    EXPECT_EQ(r.close, CloseKind::rst_resp);
    EXPECT_EQ(r.anomalies, anomaly::rst_after_data_no_fin);
}

TEST(Reset, RefusedThenRetriedIsTwoConnections) {
    Chart h;
    h.c2s(SYN, x, 0);
    h.s2c(RST | ACK, 0, x + 1);
    h.c2s(SYN, x, 0);  // Windows retries the SYN after a RST
    EXPECT_EQ(h.mon.restarts, 1u);
    h.s2c(RST | ACK, 0, x + 1);
    h.mon.flush();
    ASSERT_EQ(h.mon.records.size(), 2u);
    for (const ConnRecord& r : h.mon.records) {
        EXPECT_STREQ(r.conn_state, "REJ");
        EXPECT_STREQ(r.history, "Sr");
    }
    EXPECT_EQ(h.n(Counter::handshake_failed_refused), 2u);
}

// ---- Mid-stream and one-sided ----------------------------------------------------------------

TEST(Pickup, MidStream) {
    Chart h;
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 100});  // no SYN seen
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.server(), State::established);
    // Only one direction heard: recyclable, short timeout (fsm::table_class).
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    EXPECT_EQ(h.n(Counter::midstream_pickup), 1u);
    h.s2c(ACK | PSH, y + 1, x + 101, {.data = 200});
    EXPECT_EQ(h.tclass(), TimeoutClass::established);  // the peer answered
    h.c2s(ACK, x + 101, y + 201);
    EXPECT_EQ(h.tclass(), TimeoutClass::established);
    const ConnRecord r = h.end();
    EXPECT_FALSE(r.orig_is_hi);  // the first sender
    EXPECT_STREQ(r.conn_state, "OTH");
    EXPECT_STREQ(r.history, "DdA");
    EXPECT_EQ(r.orig_bytes, 100u);
    EXPECT_EQ(r.resp_bytes, 200u);
}

TEST(Pickup, SynAckFirstFlipsTheRoles) {
    // The SYN was missed: Zeek makes the SYN-ACK's receiver the originator and records '^'.
    Chart h;
    h.s2c(SYN | ACK, y, x + 1);
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.server(), State::syn_received);
    h.c2s(ACK, x + 1, y + 1);
    EXPECT_EQ(h.server(), State::established);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 10});
    h.s2c(ACK | PSH, y + 1, x + 11, {.data = 20});
    EXPECT_EQ(h.n(Counter::handshake_completed), 0u);  // we did not see it all
    const ConnRecord r = h.end();
    EXPECT_FALSE(r.orig_is_hi);  // the client, side lo, although the server spoke first
    EXPECT_STREQ(r.history, "^hADd");
    EXPECT_STREQ(r.conn_state, "S1");
    EXPECT_EQ(r.orig_bytes, 10u);
    EXPECT_EQ(r.resp_bytes, 20u);
    EXPECT_EQ(r.orig_pkts, 2u);
    EXPECT_EQ(r.resp_pkts, 2u);
}

TEST(Pickup, OneSidedClientOnly) {
    // Asymmetric routing: only the client's half of the conversation passes the monitor.
    Chart h;
    h.c2s(SYN, x, 0);
    h.c2s(ACK, x + 1, y + 1);  // acks a SYN-ACK we never saw
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.server(), State::established);
    // The server has never been heard: as recyclable as a pickup (a spoofed SYN then ACK must
    // not buy an entry that outlives a flood).
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 30});
    h.c2s(ACK, x + 31, y + 1001);  // the server's 1000 bytes, acknowledged
    h.c2s(FIN | ACK, x + 31, y + 1001);
    EXPECT_EQ(h.client(), State::fin_wait_1);
    EXPECT_EQ(h.tclass(), TimeoutClass::closing);
    const ConnRecord r = h.end();
    EXPECT_EQ(h.n(Counter::one_sided), 1u);
    EXPECT_STREQ(r.history, "SADF");
    EXPECT_STREQ(r.conn_state, "SH");  // Zeek: a SYN, then a FIN, never a SYN-ACK
    EXPECT_EQ(r.orig_bytes, 30u);
    EXPECT_EQ(r.resp_pkts, 0u);
    EXPECT_TRUE(has_anomaly(r, anomaly::half_close_stuck));
}

TEST(Pickup, OneSidedServerOnly) {
    Chart h;
    h.s2c(SYN | ACK, y, x + 1);
    h.s2c(ACK | PSH, y + 1, x + 1, {.data = 300});
    EXPECT_EQ(h.server(), State::established);
    h.s2c(FIN | ACK, y + 301, x + 1);
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.history, "^hdf");
    EXPECT_STREQ(r.conn_state, "SHR");
    EXPECT_EQ(r.orig_pkts, 0u);
    EXPECT_EQ(r.resp_bytes, 300u);
}

// One-sided connections and the table (docs/reliability.md, "Floods (soak)"): a stray segment on
// an unknown tuple must not take an entry the table can never recycle.

TEST(Pickup, OneSidedAckPickupStaysHalfOpenUntilThePeerAnswers) {
    Chart h;
    h.c2s(ACK, x + 1, y + 1);  // a bare ACK, no handshake
    EXPECT_EQ(h.client(), State::established);
    EXPECT_EQ(h.server(), State::established);
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 10});  // more from the same side: still one-sided
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    h.s2c(ACK, y + 1, x + 11);  // the peer answers
    EXPECT_EQ(h.tclass(), TimeoutClass::established);
    h.c2s(ACK, x + 11, y + 1);
    EXPECT_EQ(h.tclass(), TimeoutClass::established);  // and it stays so
    const ConnRecord r = h.end();
    EXPECT_STREQ(r.conn_state, "OTH");
    EXPECT_STREQ(r.history, "ADa");
}

TEST(Pickup, OneSidedPickupTimesOutAfterTheHalfOpenTimeout) {
    Chart h;
    h.c2s(ACK, x + 1, y + 1);
    h.mon.advance_clock(h.now + 29 * kSec);
    EXPECT_TRUE(h.mon.records.empty());
    h.mon.advance_clock(h.now + 31 * kSec);  // 30 s, not the 2 h of an established connection
    ASSERT_EQ(h.mon.records.size(), 1u);
    const ConnRecord& r = h.mon.records[0];
    EXPECT_EQ(h.mon.reasons[0], RemoveReason::expired);
    EXPECT_EQ(r.close, CloseKind::timeout);
    EXPECT_STREQ(r.conn_state, "OTH");
    EXPECT_STREQ(r.history, "A");
    EXPECT_EQ(r.orig_state, static_cast<uint8_t>(State::established));  // the record is as before
    EXPECT_EQ(r.resp_state, static_cast<uint8_t>(State::established));
    // Counted as the established connection it claims to be, not as a failed handshake.
    EXPECT_EQ(h.n(Counter::teardown_timeout), 1u);
    EXPECT_EQ(h.n(Counter::handshake_failed_timeout), 0u);
    EXPECT_EQ(h.n(Counter::one_sided), 1u);
}

TEST(Pickup, AnsweredPickupKeepsTheEstablishedTimeout) {
    Chart h;
    h.c2s(ACK, x + 1, y + 1);
    h.s2c(ACK, y + 1, x + 1);
    h.mon.advance_clock(h.now + 3600 * kSec);
    EXPECT_TRUE(h.mon.records.empty());
    EXPECT_EQ(h.tclass(), TimeoutClass::established);
}

TEST(Pickup, OutOfWindowRstFromThePeerIsNoAnswer) {
    Chart h;
    h.c2s(ACK, x + 1, y + 1);
    h.s2c(RST, y + 1 + (1u << 24), 0);  // far from anything the client acknowledged
    EXPECT_EQ(h.client(), State::established);  // suspect: left alone (RFC 5961)
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
    h.c2s(ACK, x + 1, y + 1);
    EXPECT_EQ(h.tclass(), TimeoutClass::half_open);
}

TEST(Pickup, InWindowRstFromThePeerClosesThePickup) {
    // What a real host answers to a stray ACK: a RST with seq = the ACK's ack (RFC 9293
    // sections 3.10.7.1-2).
    Chart h;
    h.c2s(ACK, x + 1, y + 1);
    h.s2c(RST, y + 1, 0);
    EXPECT_EQ(h.tclass(), TimeoutClass::closed);
}

// A flood of segments from spoofed sources (each a new tuple) against a table holding real
// connections: what src/tools' soak does, at a size a unit test can afford.
struct FloodResult {
    uint64_t refused = 0;              // insert_failed, both reasons
    uint64_t evicted = 0;              // evicted_table_full + evicted_bucket_full
    uint64_t evicted_handshake = 0;    // ... of connections that completed a handshake
    unsigned established_kept = 0;     // real connections found ESTABLISHED on both sides
    uint64_t half_open_at_end = 0;     // table occupancy by class at the end
    uint64_t established_at_end = 0;
};

FloodResult flood(uint8_t flags, size_t data, unsigned real, unsigned spoofed) {
    constexpr uint32_t kCapacity = 512;
    Monitor mon(small_table(kCapacity));
    uint64_t now = 1'600'000'000 * kSec;
    auto send = [&](uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp, uint8_t f, uint32_t seq,
                    uint32_t ack, size_t len) {
        char s[16], d[16];
        std::snprintf(s, sizeof s, "%u.%u.%u.%u", src >> 24, (src >> 16) & 255, (src >> 8) & 255,
                      src & 255);
        std::snprintf(d, sizeof d, "%u.%u.%u.%u", dst >> 24, (dst >> 16) & 255, (dst >> 8) & 255,
                      dst & 255);
        PacketBuilder b;
        b.eth().ipv4(s, d).tcp(sp, dp, f, seq, ack);
        if (len > 0) b.payload(len);
        now += kMs / 16;  // 16 segments per ms: the flood lasts well under the 30 s timeout
        return mon.feed(b.build(), now);
    };
    constexpr uint32_t kClient = 0x0a000000, kServer = 0xc0000201, kSpoofed = 0x0b000000,
                       kVictim = 0xc6336401;
    for (unsigned i = 0; i < real; ++i) {
        const auto sp = static_cast<uint16_t>(10000 + i);
        EXPECT_TRUE(send(kClient + i, kServer, sp, 80, SYN, x, 0, 0));
        EXPECT_TRUE(send(kServer, kClient + i, 80, sp, SYN | ACK, y, x + 1, 0));
        EXPECT_TRUE(send(kClient + i, kServer, sp, 80, ACK, x + 1, y + 1, 0));
    }
    for (unsigned i = 0; i < spoofed; ++i) {
        send(kSpoofed + i, kVictim + (i & 3), static_cast<uint16_t>(1024 + i * 7919 % 60000), 80,
             flags, i * 2654435761u, i * 40503u, data);
        if (i % 64 == 63) {  // the real connections keep talking, as in the soak
            const unsigned c = (i / 64) % real;
            send(kClient + c, kServer, static_cast<uint16_t>(10000 + c), 80, ACK, x + 1, y + 1, 0);
        }
    }
    FloodResult r;
    const flow::FlowTableStats& st = mon.table().stats();
    for (uint64_t v : st.insert_failed) r.refused += v;
    r.evicted = st.removed[static_cast<unsigned>(RemoveReason::evicted_table_full)] +
                st.removed[static_cast<unsigned>(RemoveReason::evicted_bucket_full)];
    for (size_t i = 0; i < mon.records.size(); ++i) {
        const bool evicted = mon.reasons[i] == RemoveReason::evicted_table_full ||
                             mon.reasons[i] == RemoveReason::evicted_bucket_full;
        if (evicted && (mon.records[i].detect & connlog::detect_flag::handshake_done))
            ++r.evicted_handshake;
    }
    r.half_open_at_end = st.active_by_class[static_cast<unsigned>(TimeoutClass::half_open)];
    r.established_at_end = st.active_by_class[static_cast<unsigned>(TimeoutClass::established)];
    mon.table().for_each([&](uint32_t, const FlowEntry& e) {
        if (e.key.addr[0][12] != 10) return;  // ::ffff:10.x.y.z, a real client (side lo)
        const bool real_conn = Tracker::state_of(e, Side::lo) == State::established &&
                               Tracker::state_of(e, Side::hi) == State::established &&
                               e.tclass == TimeoutClass::established;
        if (real_conn) ++r.established_kept;
    });
    return r;
}

TEST(Flood, AckPickupsAreRecycledAndRealConnectionsKept) {
    constexpr unsigned kReal = 128, kSpoofed = 20'000;  // 40 times the table's capacity
    const FloodResult r = flood(ACK, 0, kReal, kSpoofed);
    // Before the fix the pickups were `established`: the table filled with 384 of them and every
    // later spoofed tuple (and any new real connection) was refused.
    EXPECT_EQ(r.refused, 0u);
    EXPECT_GT(r.evicted, kSpoofed - 512u);
    EXPECT_EQ(r.evicted_handshake, 0u);
    EXPECT_EQ(r.established_kept, kReal);
    EXPECT_EQ(r.established_at_end, kReal);  // the pickups are all half_open
    EXPECT_EQ(r.half_open_at_end, 512u - kReal);
}

TEST(Flood, DataPickupsAndNullProbesAreRecycledToo) {
    // A one-sided segment with data, and a NULL probe (no flags): both make ESTABLISHED pickups.
    for (const auto& [flags, data] : {std::pair<uint8_t, size_t>{ACK | PSH, 64}, {0, 0}}) {
        const FloodResult r = flood(flags, data, 128, 10'000);
        EXPECT_EQ(r.refused, 0u) << int{flags};
        EXPECT_EQ(r.evicted_handshake, 0u) << int{flags};
        EXPECT_EQ(r.established_kept, 128u) << int{flags};
    }
}

TEST(Flood, SynFinAndRstFloodsStillRecycle) {
    // Their entries were never `established` (half_open, closing, closed): unchanged, checked
    // here so the four soak floods have a unit test each.
    for (const uint8_t flags : {uint8_t{SYN}, uint8_t{FIN | ACK}, uint8_t{RST}}) {
        const FloodResult r = flood(flags, 0, 128, 10'000);
        EXPECT_EQ(r.refused, 0u) << int{flags};
        EXPECT_EQ(r.evicted_handshake, 0u) << int{flags};
        EXPECT_EQ(r.established_kept, 128u) << int{flags};
    }
}

TEST(Flood, NewRealConnectionsAreTrackedDuringAnAckFlood) {
    // The point of recycling: a connection opened after the table filled is still tracked.
    Monitor mon(small_table(256));
    uint64_t now = 1'600'000'000 * kSec;
    auto frame = [&](const char* s, const char* d, uint16_t sp, uint16_t dp, uint8_t f,
                     uint32_t seq, uint32_t ack) {
        PacketBuilder b;
        b.eth().ipv4(s, d).tcp(sp, dp, f, seq, ack);
        now += kMs;
        return mon.feed(b.build(), now);
    };
    for (unsigned i = 0; i < 2'000; ++i)
        frame("11.0.0.1", "198.51.100.1", static_cast<uint16_t>(1024 + i), 80, ACK, i, i);
    ASSERT_TRUE(frame("10.0.0.1", "192.0.2.1", 40000, 80, SYN, x, 0));
    ASSERT_TRUE(frame("192.0.2.1", "10.0.0.1", 80, 40000, SYN | ACK, y, x + 1));
    ASSERT_TRUE(frame("10.0.0.1", "192.0.2.1", 40000, 80, ACK, x + 1, y + 1));
    const FlowEntry* e = mon.entry();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->tclass, TimeoutClass::established);
    EXPECT_EQ(mon.n(Counter::handshake_completed), 1u);
}

// ---- Sequence numbers ------------------------------------------------------------------------

TEST(Sequence, WrapAround) {
    Chart h;
    const uint32_t isn = 0xffffff00u;
    h.c2s(SYN, isn, 0);
    h.s2c(SYN | ACK, y, isn + 1);
    h.c2s(ACK, isn + 1, y + 1);
    uint32_t seq = isn + 1;
    for (int i = 0; i < 4; ++i) {  // 4 x 100 bytes, across 2^32
        h.c2s(ACK | PSH, seq, y + 1, {.data = 100});
        seq += 100;
    }
    h.s2c(ACK, y + 1, seq);
    EXPECT_EQ(seq, 0x00000091u);
    EXPECT_EQ(h.n(Counter::seq_wrapped), 1u);
    EXPECT_EQ(h.n(Counter::retransmission), 0u);
    EXPECT_EQ(h.n(Counter::out_of_order), 0u);
    h.c2s(RST | ACK, seq, y + 1);  // in window, although numerically below the ISN
    EXPECT_EQ(h.n(Counter::rst_in_window), 1u);
    EXPECT_EQ(h.end().orig_bytes, 400u);
}

TEST(Sequence, WindowScaleFromTheSynWidensTheRstWindow) {
    // A RST 5 MB ahead: beyond 65535, within 65535 << 7.
    for (const bool scaled : {false, true}) {
        Chart h;
        h.c2s(SYN, x, 0, {.wscale = scaled ? 7 : -1});
        h.s2c(SYN | ACK, y, x + 1, {.wscale = scaled ? 7 : -1});
        h.c2s(ACK, x + 1, y + 1);
        h.s2c(RST, y + 1 + 5'000'000, 0);
        EXPECT_EQ(h.n(Counter::rst_in_window), scaled ? 1u : 0u) << scaled;
        EXPECT_EQ(h.n(Counter::rst_out_of_window), scaled ? 0u : 1u) << scaled;
    }
}

TEST(Sequence, NoScalingUnlessBothSynsOfferIt) {
    // RFC 7323 section 2.2: the SYN-ACK without the option turns scaling off both ways.
    Chart h;
    h.c2s(SYN, x, 0, {.wscale = 7});
    h.s2c(SYN | ACK, y, x + 1);
    h.c2s(ACK, x + 1, y + 1);
    h.c2s(RST, x + 1 + 5'000'000, 0);
    EXPECT_EQ(h.n(Counter::rst_out_of_window), 1u);
}

TEST(Sequence, RetransmissionAndOutOfOrder) {
    Chart h;
    handshake(h);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 100});    // 1..100
    h.c2s(ACK | PSH, x + 201, y + 1, {.data = 100});  // 201..300: 101..200 is missing
    EXPECT_EQ(h.n(Counter::out_of_order), 1u);
    h.c2s(ACK | PSH, x + 101, y + 1, {.data = 100});  // the hole, late
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 100});    // a real retransmission
    EXPECT_EQ(h.n(Counter::retransmission), 2u);
    h.s2c(ACK, y + 1, x + 301);
    const ConnRecord r = h.end();
    EXPECT_EQ(r.orig_bytes, 300u);
    EXPECT_EQ(r.missed_bytes, 100u);  // skipped when it was skipped (no reassembly to know better)
    EXPECT_STREQ(r.history, "ShADTa");
}

TEST(Sequence, AckedButNeverSeenIsMissed) {
    Chart h;
    handshake(h);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 100});
    h.s2c(ACK, y + 1, x + 1001);  // 900 bytes the monitor never saw
    const ConnRecord r = h.end();
    EXPECT_EQ(r.missed_bytes, 900u);
    EXPECT_EQ(r.orig_bytes, 1000u);  // Zeek's size counts what was acknowledged
}

TEST(Sequence, RetransmissionLettersAreLogarithmic) {
    Chart h;
    handshake(h);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 10});
    for (int i = 0; i < 12; ++i) h.c2s(ACK | PSH, x + 1, y + 1, {.data = 10});
    EXPECT_EQ(h.n(Counter::retransmission), 12u);
    EXPECT_STREQ(h.end().history, "ShADTT");  // the 1st and the 10th
}

// Past what fuzz_tcp's inputs (64 segments) reach: the 100th retransmission's letter, and the
// 7-bit per-side count saturating at 127 instead of wrapping (a wrap would restart the letters).
TEST(Sequence, RetransmissionCountSaturates) {
    Chart h;
    handshake(h);
    h.c2s(ACK | PSH, x + 1, y + 1, {.data = 10});
    for (int i = 0; i < 300; ++i) h.c2s(ACK | PSH, x + 1, y + 1, {.data = 10});
    EXPECT_EQ(h.n(Counter::retransmission), 300u);
    EXPECT_STREQ(h.end().history, "ShADTTT");  // the 1st, the 10th and the 100th; no 1000th
}

TEST(Sequence, ZeroWindow) {
    Chart h;
    handshake(h);
    h.s2c(ACK, y + 1, x + 1, {.window = 0});
    h.s2c(ACK, y + 1, x + 1, {.window = 0});
    EXPECT_STREQ(h.end().history, "ShAaw");
}

TEST(History, LongHistoriesKeepTheirBeginning) {
    Chart h;
    handshake(h);
    // RSTs with ever new sequence numbers: Zeek adds an 'R' for each.
    for (uint32_t i = 0; i < 40; ++i) h.c2s(RST, x + 1 + i, 0);
    const ConnRecord r = h.end();
    const std::string hist = r.history;
    EXPECT_LE(hist.size(), sizeof r.history - 1);
    EXPECT_EQ(hist.substr(0, 4), "ShAR");
    EXPECT_EQ(hist.find_first_not_of('R', 3), std::string::npos);
}

// ---- Robustness -------------------------------------------------------------------------------

TEST(Robustness, RandomSegmentsKeepTheInvariants) {
    // Any flags, any numbers, a few tuples: states stay valid, records stay well formed, and the
    // sanitizer build checks the arithmetic.
    static const std::set<std::string> kConnStates = {
        "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH"};
    const std::string letters = "ShAaDdFfRrTt^WHswIiQqGgCcXx";
    Monitor mon(small_table(64));
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    auto next = [&rng] {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
    };
    uint64_t now = 1'600'000'000 * kSec;
    uint32_t base[4] = {1000, 5000, 0xfffff000u, 0x7fffff00u};
    for (int i = 0; i < 20000; ++i) {
        const uint64_t v = next();
        const bool fwd = v & 1;
        const unsigned tuple = static_cast<unsigned>(v >> 1) % 4;
        const uint8_t flags = static_cast<uint8_t>(v >> 8);
        const uint32_t jitter = static_cast<uint32_t>(v >> 16) % 3000;
        const uint32_t seq =
            (v >> 40) % 8 == 0 ? static_cast<uint32_t>(v >> 20) : base[tuple] + jitter;
        const uint32_t ack = base[(tuple + 1) % 4] + static_cast<uint32_t>(v >> 32) % 3000;
        const size_t data = (v >> 48) % 4 == 0 ? (v >> 50) % 200 : 0;
        PacketBuilder b;
        const std::string a = "10.1.0." + std::to_string(tuple + 1);
        if (fwd)
            b.eth()
                .ipv4(a, "10.2.0.1")
                .tcp(1234, 443, flags, seq, ack, static_cast<uint16_t>(v >> 56));
        else
            b.eth()
                .ipv4("10.2.0.1", a)
                .tcp(443, 1234, flags, seq, ack, static_cast<uint16_t>(v >> 56));
        if ((flags & SYN) && (v >> 60) % 2) b.wscale(static_cast<uint8_t>((v >> 52) % 16));
        if (data) b.payload(data);
        now += ((v >> 44) % 64 == 0 ? 40 * kSec : kMs);
        ASSERT_TRUE(mon.feed(b.build(), now));
        if (const FlowEntry* e = mon.entry()) {
            ASSERT_LT(static_cast<unsigned>(Tracker::state_of(*e, Side::lo)), kStateCount);
            ASSERT_LT(static_cast<unsigned>(Tracker::state_of(*e, Side::hi)), kStateCount);
            ASSERT_LT(static_cast<unsigned>(e->tclass), flow::kTimeoutClassCount);
            ASSERT_NE(e->tclass, TimeoutClass::free);
        }
        if (i % 1000 == 999) mon.advance_clock(now);
    }
    mon.flush();
    ASSERT_FALSE(mon.records.empty());
    for (const ConnRecord& r : mon.records) {
        ASSERT_TRUE(kConnStates.count(r.conn_state)) << r.conn_state;
        const size_t n = strnlen(r.history, sizeof r.history);
        ASSERT_LT(n, sizeof r.history);
        for (size_t j = 0; j < n; ++j) ASSERT_NE(letters.find(r.history[j]), std::string::npos);
        ASSERT_LT(r.orig_state, kStateCount);
        ASSERT_LT(r.resp_state, kStateCount);
        ASSERT_LT(static_cast<unsigned>(r.close), connlog::kCloseKindCount);
        ASSERT_EQ(r.anomalies >> kAnomalyCount, 0u);
        ASSERT_GE(r.last_ts_ns, r.first_ts_ns);
    }
}

// ---- Zeek's own traces -----------------------------------------------------------------------

std::string zeek_dir() { return std::string(STATELINE_CAPTURES_DIR) + "/zeek"; }

bool exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

#define REQUIRE_CAPTURES()                                                 \
    do {                                                                   \
        if (!exists(zeek_dir()))                                           \
            GTEST_SKIP() << "Zeek test traces not found at " << zeek_dir() \
                         << " (../shared/captures beside the checkout)";   \
    } while (0)

// Replays a capture through a monitor and keeps what it produced.
struct Replay {
    Monitor mon;
    std::vector<std::pair<uint8_t, uint8_t>> zeek_states;  // (orig, resp) just before the flush
    int tracked = 0;
};

bool replay(const std::string& path, Replay& out) {
    char err[PCAP_ERRBUF_SIZE];
    pcap_t* p = pcap_open_offline(path.c_str(), err);
    if (p == nullptr) {
        ADD_FAILURE() << path << ": " << err;
        return false;
    }
    const packet::LinkType link = pcap_datalink(p) == DLT_LINUX_SLL ? packet::LinkType::linux_sll
                                                                    : packet::LinkType::ethernet;
    pcap_pkthdr* hdr;
    const u_char* data;
    while (pcap_next_ex(p, &hdr, &data) == 1) {
        const uint64_t ts = static_cast<uint64_t>(hdr->ts.tv_sec) * kSec +
                            static_cast<uint64_t>(hdr->ts.tv_usec) * 1000;
        if (out.mon.feed(data, hdr->caplen, ts, link)) ++out.tracked;
    }
    pcap_close(p);
    if (const FlowEntry* e = out.mon.entry()) {
        const bool hi = (e->flags & flow::flow_flag::orig_is_hi) != 0;
        out.zeek_states.emplace_back(
            layout::zeek_number(layout::zeek_state(*e, hi ? Side::hi : Side::lo)),
            layout::zeek_number(layout::zeek_state(*e, hi ? Side::lo : Side::hi)));
    }
    out.mon.flush();
    return true;
}

// scripts.base.protocols.conn.conn_state-RST-behavior/out: "history, conn_state" per trace.
TEST(ZeekBaseline, ConnStateRstBehavior) {
    REQUIRE_CAPTURES();
    struct Case {
        const char* trace;
        const char* history;
        const char* conn_state;
    };
    const Case cases[] = {
        {"single-rst", "R", "OTH"},
        {"syn-then-rst", "SR", "RSTOS0"},
        {"syn-then-ack-then-rst", "SaR", "RSTOS0"},
        {"syn-then-stuff-then-rst", "SaFR", "OTH"},
    };
    for (const Case& c : cases) {
        Replay r;
        ASSERT_TRUE(replay(zeek_dir() + "/traces/tcp/" + c.trace + ".pcap", r));
        ASSERT_EQ(r.mon.records.size(), 1u) << c.trace;
        EXPECT_STREQ(r.mon.records[0].history, c.history) << c.trace;
        EXPECT_STREQ(r.mon.records[0].conn_state, c.conn_state) << c.trace;
    }
}

// The baseline file itself, so that a change of Zeek's expectations shows up here.
TEST(ZeekBaseline, RstBehaviorBaselineIsWhatWeCheck) {
    REQUIRE_CAPTURES();
    const std::string path =
        zeek_dir() + "/baselines/scripts.base.protocols.conn.conn_state-RST-behavior/out";
    std::FILE* f = std::fopen(path.c_str(), "r");
    ASSERT_NE(f, nullptr) << path;
    std::vector<std::string> lines;
    char buf[256];
    while (std::fgets(buf, sizeof buf, f))
        if (buf[0] != '#') lines.emplace_back(buf);
    std::fclose(f);
    const std::vector<std::string> want = {"R, OTH\n", "SR, RSTOS0\n", "SaR, RSTOS0\n",
                                           "SaFR, OTH\n"};
    EXPECT_EQ(lines, want);
}

// core.tcp.fin-retransmit/out: the endpoint records of tcp/fin_retransmission.pcap.
//   [size=0, state=5, num_pkts=3, num_bytes_ip=156, ...]   orig: CLOSED
//   [size=0, state=6, num_pkts=2, num_bytes_ip=92, ...]    resp: RESET
TEST(ZeekBaseline, FinRetransmit) {
    REQUIRE_CAPTURES();
    Replay r;
    ASSERT_TRUE(replay(zeek_dir() + "/traces/tcp/fin_retransmission.pcap", r));
    ASSERT_EQ(r.mon.records.size(), 1u);
    const ConnRecord& c = r.mon.records[0];
    ASSERT_EQ(r.zeek_states.size(), 1u);
    EXPECT_EQ(r.zeek_states[0].first, 5u);
    EXPECT_EQ(r.zeek_states[0].second, 6u);
    EXPECT_EQ(c.orig_bytes, 0u);
    EXPECT_EQ(c.resp_bytes, 0u);
    EXPECT_EQ(c.orig_pkts, 3u);
    EXPECT_EQ(c.orig_ip_bytes, 156u);
    EXPECT_EQ(c.resp_pkts, 2u);
    EXPECT_EQ(c.resp_ip_bytes, 92u);
    // Not in the baseline, but what Zeek's rules give: a SYN, a FIN, the SYN-ACK, the FIN again
    // (same sequence number: no new letter), the responder's RST.
    EXPECT_STREQ(c.history, "SFhr");
    EXPECT_STREQ(c.conn_state, "RSTR");
}

// core.tcp.truncated-header: the first SYN is cut short by the snaplen, so the SYN-ACK opens the
// connection; Zeek ends with the SYN's sender as originator, and so do we.
TEST(ZeekBaseline, TruncatedHeaderKeepsTheRealOriginator) {
    REQUIRE_CAPTURES();
    Replay r;
    ASSERT_TRUE(replay(zeek_dir() + "/traces/tcp/truncated-header.pcap", r));
    ASSERT_EQ(r.mon.records.size(), 1u);
    const ConnRecord& c = r.mon.records[0];
    char buf[64];
    flow::format_endpoint(c.key, c.orig_is_hi ? Side::hi : Side::lo, buf, sizeof buf);
    EXPECT_STREQ(buf, "201.186.157.67:60827");
    flow::format_endpoint(c.key, c.orig_is_hi ? Side::lo : Side::hi, buf, sizeof buf);
    EXPECT_STREQ(buf, "128.3.26.249:25");
}

// Other published captures whose Zeek reading is not in doubt.
TEST(Captures, ChrisSanders) {
    const std::string dir = std::string(STATELINE_CAPTURES_DIR) + "/chrissanders";
    if (!exists(dir)) GTEST_SKIP() << "captures not found at " << dir;
    {
        Replay r;  // SYN, SYN-ACK, ACK
        ASSERT_TRUE(replay(dir + "/tcp_handshake.pcapng", r));
        ASSERT_EQ(r.mon.records.size(), 1u);
        EXPECT_STREQ(r.mon.records[0].history, "ShA");
        EXPECT_STREQ(r.mon.records[0].conn_state, "S1");
        EXPECT_EQ(r.mon.n(Counter::handshake_completed), 1u);
    }
    {
        Replay r;  // picked up at the server's FIN: FIN, ACK, FIN, ACK
        ASSERT_TRUE(replay(dir + "/tcp_teardown.pcapng", r));
        ASSERT_EQ(r.mon.records.size(), 1u);
        EXPECT_STREQ(r.mon.records[0].history, "FafA");
        EXPECT_STREQ(r.mon.records[0].conn_state, "SF");
        EXPECT_EQ(r.mon.records[0].close, CloseKind::fin);
        EXPECT_EQ(r.mon.n(Counter::teardown_fin), 1u);
        EXPECT_EQ(r.mon.n(Counter::midstream_pickup), 1u);
    }
    {
        Replay r;  // SYN, RST-ACK
        ASSERT_TRUE(replay(dir + "/tcp_refuseconnection.pcapng", r));
        ASSERT_EQ(r.mon.records.size(), 1u);
        EXPECT_STREQ(r.mon.records[0].history, "Sr");
        EXPECT_STREQ(r.mon.records[0].conn_state, "REJ");
        EXPECT_EQ(r.mon.n(Counter::handshake_failed_refused), 1u);
    }
    {
        Replay r;  // three times SYN, RST-ACK on the same tuple
        ASSERT_TRUE(replay(dir + "/nowebaccess2.pcapng", r));
        std::vector<ConnRecord> tcp;
        for (const ConnRecord& c : r.mon.records)
            if (c.key.port[0] == 80 || c.key.port[1] == 80) tcp.push_back(c);
        ASSERT_EQ(tcp.size(), 3u);
        for (const ConnRecord& c : tcp) {
            EXPECT_STREQ(c.history, "Sr");
            EXPECT_STREQ(c.conn_state, "REJ");
        }
    }
}

TEST(Captures, SplitHandshake) {
    // suricata-verify tcp-split-handshake-01-4whs: SYN, SYN, SYN-ACK, ACK, data, ACK, RST.
    const std::string path =
        std::string(STATELINE_CAPTURES_DIR) +
        "/suricata-verify/tcp-split-handshake-01-4whs/split-handshake-4whs.pcap";
    if (!exists(path)) GTEST_SKIP() << "capture not found at " << path;
    Replay r;
    ASSERT_TRUE(replay(path, r));
    EXPECT_EQ(r.mon.n(Counter::simultaneous_open), 1u);
    EXPECT_EQ(r.mon.n(Counter::rst_in_window), 1u);
    ASSERT_EQ(r.mon.records.size(), 1u);
    EXPECT_EQ(r.mon.records[0].close, CloseKind::rst_orig);
}

}  // namespace
}  // namespace stateline::tcp
