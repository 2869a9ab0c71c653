// SPDX-License-Identifier: BSD-3-Clause
// The worker burst loop, as named stages:
//   rx -> [parse] -> classify -> lookup (bulk, prefetched) -> track + rules -> emit (TX or free)
// then a bounded housekeeping slice: one expiry step, publications, mailboxes.
// No locks, allocation, syscalls or logging per packet; the only syscall is sched_yield() after
// a run of empty polls in capture mode, where workers share cores with the dispatcher.
#include "worker.hpp"

#include <sched.h>

#include <algorithm>
#include <cstring>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_pause.h>
#include <rte_prefetch.h>

#include "parser.hpp"

namespace stateline {

using flow::FlowTable;
using flow::kNoEntry;
using flow::TimeoutClass;
using packet::Outcome;
using packet::PacketMeta;
namespace tf = packet::tcp_flag;

namespace {

inline uint32_t to_table_ms(uint64_t ns) { return static_cast<uint32_t>(ns / 1'000'000); }

// Stage: account each frame under its outcome and gather the tracked TCP segments.
inline uint16_t stage_classify(Worker& w, rte_mbuf** pkts, uint16_t n, PacketMeta** tcp,
                               const flow::FlowKey** keys, uint32_t* hashes, uint16_t* pos) {
    uint16_t nt = 0;
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < n; ++i) {
        PacketMeta* m = meta_of(pkts[i]);
        bytes += pkts[i]->pkt_len;
        w.counters.add(m->outcome);
        if (m->outcome != Outcome::tcp) continue;
        if (m->info & (packet::info_bit::payload_truncated | packet::info_bit::bad_tcp_options |
                       packet::info_bit::ip_first_fragment)) [[unlikely]] {
            if (m->info & packet::info_bit::payload_truncated) w.counters.add(counters::Scalar::tcp_payload_truncated);
            if (m->info & packet::info_bit::bad_tcp_options) w.counters.add(counters::Scalar::tcp_bad_options);
            if (m->info & packet::info_bit::ip_first_fragment) w.counters.add(counters::Scalar::ip_first_fragments);
        }
        if (m->vlan_depth > 2) [[unlikely]] w.counters.add(counters::Scalar::vlan_deeper_than_key);
        tcp[nt] = m;
        pos[nt] = i;
        keys[nt] = &m->key;
        hashes[nt] = m->hash;
        ++nt;
    }
    w.counters.add(counters::Scalar::rx_packets, n);
    w.counters.add(counters::Scalar::rx_bytes, bytes);
    return nt;
}

bool is_verified(const void* ctx, const uint8_t* addr) noexcept {
    return static_cast<const detect::VerifiedSources*>(ctx)->contains(addr);
}

// The rules on one segment, once the tracker has seen it (e: its entry, kNoEntry when the table
// had no room; created: this segment made it). Every segment is tracked, dropped or not, so
// detection keeps seeing the attack that mitigation stops. Returns true to drop the frame.
inline bool rules_step(Worker& w, rte_mbuf* mb, const PacketMeta& m, uint32_t e, bool created) {
    rules::PacketView pv = rules::view_of(m);
    if (e != kNoEntry) {
        const flow::FlowEntry& fe = w.table->entry(e);
        pv.state = rules::state_class(created, tcp::Tracker::state_of(fe, flow::Side::lo),
                                      tcp::Tracker::state_of(fe, flow::Side::hi));
        pv.stream_offset = tcp::Tracker::stream_offset(fe, m.sender, m.seq);
    } else {
        pv.state = rules::state_bit::new_conn;
    }
    pv.victims = w.victims;
    if (w.verified) {
        pv.verified = is_verified;
        pv.verified_ctx = w.verified;
    }
    if (m.payload_len) {
        // The captured payload in the first segment of the mbuf (a jumbo chain's tail is not scanned).
        const uint32_t off = m.payload_off();
        if (off < mb->data_len) {
            pv.payload = rte_pktmbuf_mtod(mb, const uint8_t*) + off;
            pv.payload_len = std::min<uint32_t>(m.payload_len, mb->data_len - off);
        }
    }
    const rules::Decision d = w.rules->evaluate(pv);
    if (d.verdict == rules::Verdict::pass) [[likely]] return false;
    if (d.verdict == rules::Verdict::alert) {
        w.counters.add(counters::Scalar::rules_alerted);
        return false;
    }
    if (!w.inline_mode) {
        w.counters.add(counters::Scalar::rules_would_drop);
        return false;
    }
    w.counters.add(counters::Scalar::rules_dropped);
    return true;
}

// Stage: advance each connection with the TCP tracker, then run the rules on the segment (while
// its entry is certainly still its own: a later insert in the burst may recycle it). Misses
// insert; what cannot be inserted is counted. A SYN reusing a tuple in TIME-WAIT closes the old
// connection and opens a new one.
// `with_rules`: the burst runs the rules (drop[] cleared); returns whether any frame is to drop.
inline bool stage_track(Worker& w, PacketMeta** tcp, const uint32_t* idx, uint16_t nt, rte_mbuf** pkts,
                        const uint16_t* pos, uint8_t* drop, bool with_rules) {
    bool any_drop = false;
    FlowTable& t = *w.table;
    const tcp::Tracker& tr = *w.tracker;
    for (uint16_t i = 0; i < nt; ++i) {
        PacketMeta& m = *tcp[i];
        // Capture time drives the table clock, so replays give the same results at any speed.
        // (Live, stage_parse stamped the burst with the TSC clock: never ahead of it.)
        if (m.ts_ns > w.now_ns) {
            w.now_ns = m.ts_ns;
            t.set_now(to_table_ms(w.now_ns));
        }
        uint32_t e = idx[i];
        bool created = false;
        for (int attempt = 0; attempt < 2; ++attempt) {
            if (e == kNoEntry) {
                e = t.find_or_insert(m.key, m.hash, TimeoutClass::half_open, &created);
                if (e == kNoEntry) [[unlikely]] {
                    w.counters.add(counters::Scalar::untracked_no_room);
                    if (with_rules) any_drop |= (drop[pos[i]] = rules_step(w, pkts[pos[i]], m, kNoEntry, true));
                    break;
                }
            }
            tcp::Verdict v = created ? tr.on_first(t.entry(e), t.cold(e), m, w.counters.tcp)
                                     : tr.on_segment(t.entry(e), t.cold(e), m, w.counters.tcp);
            if (v.restart && !created) [[unlikely]] {
                if (w.detector && v.signals) {  // the old connection's abnormal end
                    const bool orig_hi = (t.entry(e).flags & flow::flow_flag::orig_is_hi) != 0;
                    w.detector->on_segment(m, v.signals, orig_hi ? flow::Side::lo : flow::Side::hi);
                }
                w.counters.add(counters::Scalar::tuple_reused);
                t.remove(e, flow::RemoveReason::closed);
                e = kNoEntry;
                continue;
            }
            t.touch(e, v.tclass);
            if (w.detector) {
                const bool orig_hi = (t.entry(e).flags & flow::flow_flag::orig_is_hi) != 0;
                w.detector->on_segment(m, v.signals, orig_hi ? flow::Side::lo : flow::Side::hi);
            }
            if (with_rules) any_drop |= (drop[pos[i]] = rules_step(w, pkts[pos[i]], m, e, created));
            break;
        }
    }
    return any_drop;
}

inline void stage_parse(Worker& w, rte_mbuf** pkts, uint16_t n, packet::LinkType link) {
    for (uint16_t i = 0; i < n; ++i) {
        if (i + 2 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 2], void*));
        PacketMeta* m = meta_of(pkts[i]);
        packet::parse_frame(rte_pktmbuf_mtod(pkts[i], const uint8_t*), pkts[i]->data_len, link, *m);
        m->ts_ns = w.now_ns;
    }
}

// A marker from the dispatcher (capture replay).
void on_marker(Worker& w, void* marker) {
    const uintptr_t v = reinterpret_cast<uintptr_t>(marker);
    const uint64_t interval = v >> 2;
    auto& buf = w.detector->buffer();
    if (v & 2u) {
        buf.start_at(interval);
        return;
    }
    // Wait for the control core to take the previous interval: a replay must not fold two
    // intervals into one publication. The dispatcher meanwhile waits on our full ring.
    while (!buf.ready()) {
        if (w.run->stop.load(std::memory_order_relaxed)) return;
        // Replay threads share cores: spinning would starve the control core we wait for.
        if (w.yield_when_idle) sched_yield();
        else rte_pause();
    }
    // With the interval, its counters: a replay's aggregates are per interval of capture time.
    if (w.interval_counters) {
        counters::collect_into(w.counters, w.table->stats(), w.interval_counters);
        w.detector->publish(interval, w.interval_counters);
    } else {
        w.detector->publish(interval);
    }
    // Rules that read the active alerts wait for the targets judged from this interval, so the
    // next frame sees them whatever the replay speed or worker count (live never waits).
    if (w.rules && w.rules->set().has_victim_rules()) {
        while (w.mit.victims_epoch.load(std::memory_order_acquire) < interval + 1) {
            if (w.run->stop.load(std::memory_order_relaxed)) return;
            take_mitigation_offers(w);
            if (w.yield_when_idle) sched_yield();
            else rte_pause();
        }
    }
}

// Live: the TSC clock closes intervals; a late control core folds them (never waited for).
inline void live_interval(Worker& w) {
    const uint64_t k = w.now_ns / w.interval_ns;
    w.detector->publish(k - 1);
    w.next_boundary_ns = (k + 1) * w.interval_ns;
}

void housekeeping(Worker& w) {
    w.table->expire_step();
    if (w.published) {
        const uint64_t now = rte_rdtsc();
        if (now >= w.next_publish_tsc) [[unlikely]] {
            w.published->publish(w.counters, w.table->stats(), w.now_ns);
            w.next_publish_tsc = now + w.publish_tsc;
        }
    }
    // A connection lookup from the control socket (see ConnQuery in worker.hpp).
    if (w.query.state.load(std::memory_order_relaxed) == ConnQuery::asked) [[unlikely]]
        answer_conn_query(w);
    // New rules (a reload) or new alert targets from the control core.
    if (w.mit.rules_offered.load(std::memory_order_relaxed) || w.mit.victims_offered.load(std::memory_order_relaxed))
        [[unlikely]] take_mitigation_offers(w);
}

void live_clock(Worker& w) {
    // 128-bit product: cycles * 1e9 overflows 64 bits after a few seconds at GHz rates.
    const unsigned __int128 cycles = rte_rdtsc() - w.tsc_base;
    w.now_ns = w.ns_base + static_cast<uint64_t>(cycles * 1'000'000'000u / w.tsc_hz);
    w.table->set_now(to_table_ms(w.now_ns));
}

}  // namespace

void take_mitigation_offers(Worker& w) noexcept {
    MitigationBox& b = w.mit;
    // Each swap only when the control core has collected the previous retiree.
    if (b.rules_offered.load(std::memory_order_relaxed) && !b.rules_retired_full.load(std::memory_order_acquire)) {
        if (rules::WorkerRules* n = b.rules_offered.exchange(nullptr, std::memory_order_acq_rel)) {
            b.rules_retired.store(w.rules, std::memory_order_relaxed);
            b.rules_retired_full.store(true, std::memory_order_release);
            w.rules = n;
            w.counters.add(counters::Scalar::rules_swaps);
        }
    }
    if (b.victims_offered.load(std::memory_order_relaxed) && !b.victims_retired.load(std::memory_order_acquire)) {
        if (rules::VictimSet* v = b.victims_offered.exchange(nullptr, std::memory_order_acq_rel)) {
            // The first set replaces none: nothing to hand back.
            if (w.victims) b.victims_retired.store(const_cast<rules::VictimSet*>(w.victims), std::memory_order_release);
            w.victims = v;
            b.victims_epoch.store(v->epoch() + 1, std::memory_order_release);
        }
    }
}

void worker_on_remove(void* ctx, uint32_t idx, flow::RemoveReason why) {
    Worker& w = *static_cast<Worker*>(ctx);
    connlog::ConnRecord r;
    w.tracker->finish(w.table->entry(idx), w.table->cold(idx), why, r, w.counters.tcp);
    // The final flush is not traffic: what is still open at the stop is no teardown to judge.
    if (w.detector && why != flow::RemoveReason::flushed) w.detector->on_close(r);
    r.worker = static_cast<uint8_t>(w.id);
    r.uid_seq = w.conn_seq++;
    if (!w.conn_ring) return;
    while (rte_ring_sp_enqueue_elem(w.conn_ring, &r, sizeof r) != 0) {
        if (!w.drain_when_full) [[unlikely]] {
            // Never block the data path for the log: count the loss instead.
            w.counters.add(counters::Scalar::conn_records_dropped);
            return;
        }
        w.drain_when_full(w);
    }
    w.counters.add(counters::Scalar::conn_records_sent);
}

namespace {

// Stage: the frames leave. Monitor mode (and a replay): all are freed. Inline: what the rules
// did not drop goes out of the paired port in one TX burst, in arrival order; what the TX queue
// does not take is freed and counted, so rx_packets = tx_packets + rules_dropped + tx_failed.
inline void stage_emit(Worker& w, rte_mbuf** pkts, uint16_t n, const uint8_t* drop, bool any_drop, const RxQueue* rq) {
    if (!w.inline_mode || rq == nullptr) {
        rte_pktmbuf_free_bulk(pkts, n);
        return;
    }
    rte_mbuf* out[kMaxBurst];
    rte_mbuf* gone[kMaxBurst];
    uint16_t no = 0, ng = 0;
    if (!any_drop) {
        for (uint16_t i = 0; i < n; ++i) out[i] = pkts[i];
        no = n;
    } else {
        for (uint16_t i = 0; i < n; ++i) {
            if (drop[i]) gone[ng++] = pkts[i];
            else out[no++] = pkts[i];
        }
    }
    uint16_t sent = no ? rte_eth_tx_burst(rq->tx_port, w.tx_queue, out, no) : 0;
    w.counters.add(counters::Scalar::tx_packets, sent);
    if (sent < no) [[unlikely]] {
        w.counters.add(counters::Scalar::tx_failed, static_cast<uint64_t>(no - sent));
        rte_pktmbuf_free_bulk(out + sent, static_cast<unsigned>(no - sent));
    }
    if (ng) rte_pktmbuf_free_bulk(gone, ng);
}

}  // namespace

void worker_process_burst(Worker& w, rte_mbuf** pkts, uint16_t n, const RxQueue* rq) {
    PacketMeta* tcp[kMaxBurst];
    const flow::FlowKey* keys[kMaxBurst];
    uint32_t hashes[kMaxBurst];
    uint32_t idx[kMaxBurst];
    uint16_t pos[kMaxBurst];
    uint8_t drop[kMaxBurst];
    const bool with_rules = w.rules != nullptr && w.rules->set().size() != 0;
    if (with_rules) std::memset(drop, 0, n);
    bool any_drop = false;
    uint16_t nt = stage_classify(w, pkts, n, tcp, keys, hashes, pos);
    if (nt) {
        w.table->lookup_bulk(keys, hashes, nt, idx);
        // The tracker writes each connection's cold line (counts, times, history): start those
        // misses for the whole burst now, so they overlap instead of stalling one by one.
        for (uint16_t i = 0; i < nt; ++i)
            if (idx[i] != kNoEntry) rte_prefetch0(&w.table->cold(idx[i]));
        if (w.detector)
            for (uint16_t i = 0; i < nt; ++i) w.detector->prefetch(*tcp[i]);
        any_drop = stage_track(w, tcp, idx, nt, pkts, pos, drop, with_rules);
    }
    stage_emit(w, pkts, n, drop, any_drop, rq);
}

int worker_main(void* arg) {
    Worker& w = *static_cast<Worker*>(arg);
    rte_mbuf* pkts[kMaxBurst];
    unsigned idle = 0;

    if (w.input == InputKind::ring) {
        for (;;) {
            if (w.run->stop.load(std::memory_order_relaxed)) [[unlikely]]
                break;
            // Read input_done before draining: once set, an empty ring means the end.
            bool done = w.run->input_done.load(std::memory_order_acquire);
            uint16_t n = static_cast<uint16_t>(rte_ring_sc_dequeue_burst(w.ring, reinterpret_cast<void**>(pkts), w.burst, nullptr));
            if (n == 0) {
                w.counters.add(counters::Scalar::polls_idle);
                if (done) break;
                // An idle replay worker still answers the control socket's lookups.
                if (w.query.state.load(std::memory_order_relaxed) == ConnQuery::asked) [[unlikely]]
                    answer_conn_query(w);
                if (++idle >= 64 && w.yield_when_idle) {
                    idle = 0;
                    sched_yield();
                }
                continue;
            }
            idle = 0;
            w.counters.add(counters::Scalar::polls_busy);
            if (w.detector) {
                // Frames between markers go through the pipeline as one burst each.
                uint16_t from = 0;
                for (uint16_t i = 0; i < n; ++i) {
                    if (!is_interval_marker(pkts[i])) continue;
                    if (i > from) worker_process_burst(w, pkts + from, static_cast<uint16_t>(i - from));
                    on_marker(w, pkts[i]);
                    from = static_cast<uint16_t>(i + 1);
                }
                if (from < n) worker_process_burst(w, pkts + from, static_cast<uint16_t>(n - from));
            } else {
                worker_process_burst(w, pkts, n);
            }
            housekeeping(w);
        }
    } else {
        while (!w.run->stop.load(std::memory_order_relaxed)) {
            live_clock(w);
            if (w.detector && w.now_ns >= w.next_boundary_ns) [[unlikely]]
                live_interval(w);
            bool any = false;
            for (uint16_t q = 0; q < w.nb_rxq; ++q) {
                const RxQueue& rq = w.rxq[q];
                uint16_t n = rte_eth_rx_burst(rq.port, rq.queue, pkts, static_cast<uint16_t>(w.burst));
                if (n == 0) continue;
                any = true;
                stage_parse(w, pkts, n, rq.link);
                worker_process_burst(w, pkts, n, &rq);
            }
            w.counters.add(any ? counters::Scalar::polls_busy : counters::Scalar::polls_idle);
            housekeeping(w);
        }
    }
    return 0;
}

}  // namespace stateline
