// SPDX-License-Identifier: BSD-3-Clause
// stateline-bench: the appliance's real worker loop (src/worker.cpp: rx_burst, parse, bulk
// lookup, TCP tracker, free, expiry) fed through the DPDK RX path from traffic held in memory
// (net_pcap with infinite_rx), for named workloads. For each it measures, on the same core in
// the same run, the bare RX rate (rx_burst + free, nothing else) and the pipeline rate, with
// detection off and on (as the appliance runs by default: a WorkerDetector on the worker, the
// Aggregator polled on this control thread), and so what detection costs per packet.
//
// A benchmark reports; it never fails on a speed. The test suite runs it briefly (--quick) for
// correctness: the counts add up, no established connection is lost, the SYN flood raises a
// syn_flood alert on its victim and the established traffic none.
//
// --rules FILE: the rules: list of a configuration file (lib/config), installed in the worker
// through Mitigation::install as the appliance does, evaluated on every tracked segment in
// monitor mode (counted, nothing dropped: the bench has no port to forward to), so that the
// cost of rule evaluation is measured by comparing runs with and without it. Victim sets are
// not fed (rules with victim_of take their cheap path: no alert active) unless --victims.
//
// `stateline-bench soak --flood syn|rst|ack|fin|all ...`: the flood soak (opt-in, minutes, not in
// the test suite; see run_soak below and docs/reliability.md), with pass/fail checks.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include "aggregator.hpp"
#include "config.hpp"
#include "conn_sink.hpp"
#include "frame_writer.hpp"
#include "mitigation.hpp"
#include "parser.hpp"
#include "pcap_out.hpp"
#include "rng.hpp"
#include "ports.hpp"
#include "tcp_tracker.hpp"
#include "worker.hpp"

using namespace stateline;
namespace tf = gen::tcpf;

namespace {

constexpr uint32_t kPayload = 64;  // data segments: small, so the pipeline, not memcpy, is measured

struct Conn {
    uint8_t cip[4], sip[4];
    uint16_t cport, sport;
    uint32_t cseq, sseq;  // next sequence number of each side
};

const uint8_t kMacC[6] = {0x02, 0, 0, 0, 0, 1};
const uint8_t kMacS[6] = {0x02, 0, 0, 0, 0, 2};

// One frame of a connection, from the client (to_server) or the server.
uint32_t write_seg(uint8_t* out, const Conn& c, bool to_server, uint8_t flags, uint32_t seq, uint32_t ack,
                   uint32_t payload) {
    gen::Frame f;
    f.src_mac = to_server ? kMacC : kMacS;
    f.dst_mac = to_server ? kMacS : kMacC;
    f.src_ip = to_server ? c.cip : c.sip;
    f.dst_ip = to_server ? c.sip : c.cip;
    f.sport = to_server ? c.cport : c.sport;
    f.dport = to_server ? c.sport : c.cport;
    f.seq = seq;
    f.ack = ack;
    f.flags = flags;
    f.window = 64240;
    f.payload_len = payload;
    f.options = (flags & tf::syn) ? gen::TcpOptions::mss : gen::TcpOptions::none;
    return gen::write_frame(f, out);
}

Conn make_conn(uint32_t i, std::mt19937_64& rng) {
    Conn c;
    uint32_t client = 0x0a000000u | (i & 0x00ffffffu);  // 10.x.y.z, one client per connection
    uint32_t server = 0xc0000200u | (i % 64);          // 192.0.2.0/26
    for (int b = 0; b < 4; ++b) {
        c.cip[b] = uint8_t(client >> (24 - 8 * b));
        c.sip[b] = uint8_t(server >> (24 - 8 * b));
    }
    c.cport = uint16_t(1024 + (i >> 24) * 7 + (rng() % 60000));
    c.sport = 80;
    c.cseq = uint32_t(rng());
    c.sseq = uint32_t(rng());
    return c;
}

// Frames in memory, for the warm-up (pushed straight through the pipeline).
struct FrameList {
    std::vector<uint8_t> bytes;
    std::vector<uint32_t> off, len;
    uint8_t* slot() {
        bytes.resize(bytes.size() + gen::kMaxFrameLen);
        return bytes.data() + bytes.size() - gen::kMaxFrameLen;
    }
    void commit(uint32_t n) {
        bytes.resize(bytes.size() - gen::kMaxFrameLen + n);
        off.push_back(uint32_t(bytes.size() - n));
        len.push_back(n);
    }
    size_t size() const { return off.size(); }
};

void handshake(FrameList& fl, Conn& c) {
    fl.commit(write_seg(fl.slot(), c, true, tf::syn, c.cseq, 0, 0));
    fl.commit(write_seg(fl.slot(), c, false, tf::syn | tf::ack, c.sseq, c.cseq + 1, 0));
    ++c.cseq;
    ++c.sseq;
    fl.commit(write_seg(fl.slot(), c, true, tf::ack, c.cseq, c.sseq, 0));
}

struct Workload {
    std::string name;
    std::string description;
    uint32_t capacity = 0;          // flow table capacity for the run
    FrameList warmup;               // pushed through the pipeline before measuring
    std::string pcap;               // the looped traffic
    std::string vdev;               // its net_pcap port (infinite_rx), created at EAL init
    uint64_t pcap_packets = 0;
    std::vector<Conn> established;  // must all still be tracked, established, at the end
    // What detection must make of it (--quick checks): a syn_flood alert on this victim
    // ("192.0.2.10:80"), or no alert at all (quiet); neither: not checked.
    std::string flood_victim;
    bool quiet = false;
};

bool write_pcap(Workload& wl, const std::string& dir, const std::vector<std::vector<uint8_t>>& frames, std::string& err) {
    wl.pcap = dir + "/" + wl.name + ".pcap";
    gen::PcapWriter pw;
    if (!pw.open(wl.pcap, gen::TsResolution::micro, 65535, err)) return false;
    uint64_t ts = 1'700'000'000'000'000'000ull;
    for (const auto& f : frames) {
        std::memcpy(pw.frame_slot(), f.data(), f.size());
        pw.commit(ts += 1000, uint32_t(f.size()));
    }
    wl.pcap_packets = frames.size();
    return pw.close(err);
}

std::vector<uint8_t> frame_of(const Conn& c, bool to_server, uint8_t flags, uint32_t seq, uint32_t ack, uint32_t payload) {
    std::vector<uint8_t> v(gen::kMaxFrameLen);
    v.resize(write_seg(v.data(), c, to_server, flags, seq, ack, payload));
    return v;
}

// `established`: n connections past the handshake; one data segment each, alternating
// directions, in random order.
void build_established(Workload& wl, uint32_t n, const std::string& dir, std::mt19937_64& rng, std::string& err) {
    wl.capacity = n + n / 4;
    std::vector<std::vector<uint8_t>> frames;
    frames.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
        Conn c = make_conn(i, rng);
        handshake(wl.warmup, c);
        bool up = i & 1;
        frames.push_back(frame_of(c, up, tf::ack | tf::psh, up ? c.cseq : c.sseq, up ? c.sseq : c.cseq, kPayload));
        wl.established.push_back(c);
    }
    std::shuffle(frames.begin(), frames.end(), rng);
    write_pcap(wl, dir, frames, err);
}

// `synflood`: est connections keep flowing (1 packet in 10) under new spoofed SYNs (9 in 10),
// more distinct SYNs than the table holds, so every SYN inserts and recycles a half-open entry.
void build_synflood(Workload& wl, uint32_t est, uint32_t syns, uint32_t capacity, const std::string& dir,
                    std::mt19937_64& rng, std::string& err) {
    wl.capacity = capacity;
    std::vector<Conn> conns;
    for (uint32_t i = 0; i < est; ++i) {
        Conn c = make_conn(i, rng);
        handshake(wl.warmup, c);
        conns.push_back(c);
        wl.established.push_back(c);
    }
    std::vector<std::vector<uint8_t>> frames;
    frames.reserve(syns + syns / 9 + 1);
    uint32_t k = 0;
    for (uint32_t s = 0; s < syns; ++s) {
        Conn f{};
        uint32_t src = uint32_t(rng());
        std::memcpy(f.cip, &src, 4);
        f.sip[0] = 192, f.sip[1] = 0, f.sip[2] = 2, f.sip[3] = 10;
        f.cport = uint16_t(rng());
        f.sport = 80;
        frames.push_back(frame_of(f, true, tf::syn, uint32_t(rng()), 0, 0));
        if (s % 9 == 8) {
            const Conn& c = conns[k++ % conns.size()];
            bool up = k & 1;
            frames.push_back(frame_of(c, up, tf::ack | tf::psh, up ? c.cseq : c.sseq, up ? c.sseq : c.cseq, kPayload));
        }
    }
    write_pcap(wl, dir, frames, err);
}

// One short connection, about 10 packets: handshake, request, response, 4-way close.
void lifecycle_frames(const Conn& c0, std::vector<std::vector<uint8_t>>& out) {
    Conn c = c0;
    out.push_back(frame_of(c, true, tf::syn, c.cseq, 0, 0));
    out.push_back(frame_of(c, false, tf::syn | tf::ack, c.sseq, c.cseq + 1, 0));
    ++c.cseq, ++c.sseq;
    out.push_back(frame_of(c, true, tf::ack, c.cseq, c.sseq, 0));
    out.push_back(frame_of(c, true, tf::ack | tf::psh, c.cseq, c.sseq, kPayload));
    c.cseq += kPayload;
    out.push_back(frame_of(c, false, tf::ack | tf::psh, c.sseq, c.cseq, 2 * kPayload));
    c.sseq += 2 * kPayload;
    out.push_back(frame_of(c, true, tf::ack, c.cseq, c.sseq, 0));
    out.push_back(frame_of(c, true, tf::fin | tf::ack, c.cseq, c.sseq, 0));
    out.push_back(frame_of(c, false, tf::ack, c.sseq, c.cseq + 1, 0));
    out.push_back(frame_of(c, false, tf::fin | tf::ack, c.sseq, c.cseq + 1, 0));
    out.push_back(frame_of(c, true, tf::ack, c.cseq + 1, c.sseq + 1, 0));
}

// Interleaves `conns` connections, `live` at a time, so each is open a while, as on a link.
void interleave(std::vector<std::vector<std::vector<uint8_t>>>& per_conn, uint32_t live,
                std::vector<std::vector<uint8_t>>& frames, std::mt19937_64& rng) {
    std::vector<size_t> pos(per_conn.size(), 0);
    std::vector<uint32_t> active;
    uint32_t next = 0;
    while (next < per_conn.size() || !active.empty()) {
        while (active.size() < live && next < per_conn.size()) active.push_back(next++);
        size_t pick = rng() % active.size();
        uint32_t c = active[pick];
        frames.push_back(std::move(per_conn[c][pos[c]++]));
        if (pos[c] == per_conn[c].size()) {
            active[pick] = active.back();
            active.pop_back();
        }
    }
}

// `lifecycle`: `conns` short connections on conns / 4 tuples, each tuple opened four times in
// the file. The file loops byte for byte: with one connection per tuple, each would meet its own
// TIME-WAIT entry with the same ISN on the next loop, which the tracker rightly absorbs as an old
// duplicate of the SYN (RFC 9293 3.6.1), so after the first loop nothing would open or close.
// With four generations whose client ISNs step by 2^30, every SYN, every loop (the fourth step
// wraps to the first), reopens its tuple from TIME-WAIT past the old sequence space, as RFC 6191
// clients do, and the old connection closes. Generations of a tuple start conns / 4 connections
// apart, >= 2x as many as are open at once: they never overlap.
void build_lifecycle(Workload& wl, uint32_t conns, uint32_t flood_pct, const std::string& dir,
                     std::mt19937_64& rng, std::string& err) {
    wl.capacity = conns + conns / 4 + 65536;
    constexpr uint32_t kGenerations = 4;
    const uint32_t tuples = std::max<uint32_t>(1, conns / kGenerations);
    std::vector<std::vector<std::vector<uint8_t>>> per(kGenerations * tuples);
    for (uint32_t i = 0; i < tuples; ++i) {
        Conn c = make_conn(i, rng);
        for (uint32_t g = 0; g < kGenerations; ++g) {
            if (g) c.cseq += 1u << 30, c.sseq = uint32_t(rng());
            lifecycle_frames(c, per[g * tuples + i]);
        }
    }
    std::vector<std::vector<uint8_t>> frames;
    interleave(per, std::clamp<uint32_t>(tuples / 4, 1, 4096), frames, rng);
    if (flood_pct) {
        // Spread new spoofed SYNs so that they make flood_pct % of all packets.
        std::vector<std::vector<uint8_t>> mixed;
        size_t syns = frames.size() * flood_pct / (100 - flood_pct);
        mixed.reserve(frames.size() + syns);
        size_t acc = 0;
        for (auto& f : frames) {
            mixed.push_back(std::move(f));
            acc += flood_pct;
            while (acc >= 100 - flood_pct) {
                acc -= 100 - flood_pct;
                Conn s{};
                uint32_t src = uint32_t(rng());
                std::memcpy(s.cip, &src, 4);
                s.sip[0] = 192, s.sip[1] = 0, s.sip[2] = 2, s.sip[3] = 10;
                s.cport = uint16_t(rng());
                s.sport = 443;
                mixed.push_back(frame_of(s, true, tf::syn, uint32_t(rng()), 0, 0));
            }
        }
        frames.swap(mixed);
    }
    write_pcap(wl, dir, frames, err);
}

// Which pipeline runs to measure: detection off, on (the appliance's default), or both.
enum class DetectMode { off, on, both };

struct Result {
    std::string workload;
    // The appliance's configuration: detection on when measured, else off.
    double mpps = 0, bare_mpps = 0, ratio = 0, ns_per_packet = 0, cycles_per_packet = 0;
    double bare_ns_per_packet = 0;
    double bytes_per_connection = 0;
    uint64_t packets = 0, bare_packets = 0;
    uint64_t total_packets = 0;  // through the pipeline after the warm-up: settling and every slice
    // Per detection mode (index 0 off, 1 on), over all of that mode's slices.
    bool measured[2] = {false, false};
    uint64_t mode_packets[2] = {0, 0};
    double mode_seconds[2] = {0, 0};
    double mode_mpps[2] = {0, 0};
    double mode_ns[2] = {0, 0};  // ns per packet = 1000 / Mpps
    // Detection's cost: ns on - ns off (= 1000/Mpps_on - 1000/Mpps_off) and relative to off.
    double detect_ns = 0, detect_rel = 0;
    uint64_t established_checked = 0, established_lost = 0;
    uint64_t connections_created = 0, untracked = 0, conn_records = 0, records_dropped = 0;
    uint64_t outcome_sum = 0;
    uint32_t capacity = 0;
    // Detection's findings over the whole workload (warm-up, settle and the "on" slices).
    bool detect = false;
    detect::AlertCounts alert_counts;
    std::vector<std::pair<std::string, std::string>> alerts;  // started: (type, target)
    uint64_t publications = 0, publish_late = 0;
    double judge_seconds = 0;  // the control core's time in the polls that judged an interval
    uint64_t judged = 0;       // ... and those intervals
    // Rules (--rules): per rule over the whole workload, and the worker's counters.
    std::vector<RuleStat> rule_stats;
    uint64_t rules_would_drop = 0, rules_alerted = 0;
};

struct BareArgs {
    uint16_t port;
    RunState* run;
    uint64_t packets = 0;
};

int bare_rx_main(void* arg) {
    auto& a = *static_cast<BareArgs*>(arg);
    rte_mbuf* pkts[kMaxBurst];
    uint64_t n = 0;
    while (!a.run->stop.load(std::memory_order_relaxed)) {
        uint16_t k = rte_eth_rx_burst(a.port, 0, pkts, 32);
        rte_pktmbuf_free_bulk(pkts, k);
        n += k;
    }
    a.packets = n;
    return 0;
}

uint64_t wall_ns() {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

// Live interval boundary, as worker_main does it (src/worker.cpp, live_interval): the interval
// that ended is published; a control core still holding the last one makes it fold in.
void interval_boundary(Worker& w) {
    if (!w.detector || w.now_ns < w.next_boundary_ns) return;
    const uint64_t k = w.now_ns / w.interval_ns;
    w.detector->publish(k - 1);
    w.next_boundary_ns = (k + 1) * w.interval_ns;
}

// Pushes the warm-up frames through the worker's own pipeline, burst by burst, on this thread
// (which is then also the detector's writer: publications are taken by `agg` right away).
void run_warmup(Worker& w, rte_mempool* pool, const FrameList& fl, detect::Aggregator* agg) {
    rte_mbuf* m[kMaxBurst];
    for (size_t i = 0; i < fl.size();) {
        uint16_t n = uint16_t(std::min<size_t>(32, fl.size() - i));
        if (rte_pktmbuf_alloc_bulk(pool, m, n) != 0) {
            std::fprintf(stderr, "stateline-bench: mbuf pool exhausted during warm-up\n");
            std::exit(1);
        }
        w.now_ns = wall_ns();
        w.table->set_now(uint32_t(w.now_ns / 1'000'000));
        if (w.detector && w.now_ns >= w.next_boundary_ns) {
            interval_boundary(w);
            if (agg) agg->poll();
        }
        for (uint16_t k = 0; k < n; ++k, ++i) {
            std::memcpy(rte_pktmbuf_mtod(m[k], void*), fl.bytes.data() + fl.off[i], fl.len[i]);
            m[k]->data_len = uint16_t(fl.len[i]);
            m[k]->pkt_len = fl.len[i];
            packet::PacketMeta* meta = meta_of(m[k]);
            packet::parse_frame(rte_pktmbuf_mtod(m[k], const uint8_t*), fl.len[i], packet::LinkType::ethernet, *meta);
            meta->ts_ns = w.now_ns;
        }
        worker_process_burst(w, m, n);
    }
}

// The worker as the appliance builds it (src/main.cpp), for one bench or soak run: its flow
// table in rte_malloc memory (hugepages when there are some), its connection-record ring and its
// clocks. Owns what it allocates. `hook_ctx` null: the removal hook's context is the Worker
// itself, as worker_on_remove expects. `name` keeps the DPDK object names of runs apart.
struct BenchWorker {
    std::unique_ptr<Worker> w = std::make_unique<Worker>();
    RunState run;
    void* mem = nullptr;
    size_t table_bytes = 0;
    std::unique_ptr<flow::FlowTable> table;

    BenchWorker(const std::string& name, uint32_t capacity, unsigned lcore, const tcp::Tracker& tracker,
                flow::RemoveHook hook, void* hook_ctx) {
        flow::FlowTableConfig tcfg;
        tcfg.capacity = capacity;
        table_bytes = flow::FlowTable::memory_size(tcfg.capacity);
        mem = rte_malloc((name + "_table").c_str(), table_bytes, 64);
        if (!mem) {
            std::fprintf(stderr, "stateline-bench: cannot allocate %zu MiB for the flow table\n", table_bytes >> 20);
            std::exit(1);
        }
        w->run = &run;
        w->burst = 32;
        w->lcore = lcore;
        w->tracker = &tracker;
        table = std::make_unique<flow::FlowTable>(tcfg, mem, hook, hook_ctx ? hook_ctx : w.get());
        w->table = table.get();
        w->conn_ring = rte_ring_create_elem((name + "_conn").c_str(), sizeof(connlog::ConnRecord), 65536,
                                            int(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
        w->tsc_hz = rte_get_tsc_hz();
        w->tsc_base = rte_rdtsc();
        w->ns_base = wall_ns();
    }
    ~BenchWorker() {
        rte_ring_free(w->conn_ring);
        table.reset();
        rte_free(mem);
    }
    BenchWorker(const BenchWorker&) = delete;
    BenchWorker& operator=(const BenchWorker&) = delete;
};

// Detection as the appliance builds it (src/main.cpp) with the default settings (sketch width
// 8192, top 128): the sources seen completing handshakes, the worker's detector, and the
// aggregator, polled by the caller's thread (the control core). The bench's clock is the live
// worker's: an interval boundary every interval_ms of wall-clock time, where worker_main
// publishes (the copy of the half-open gauges included). Declare it after the BenchWorker it
// attaches to, so that it is destroyed first.
struct BenchDetection {
    std::unique_ptr<detect::VerifiedSources> verified;
    std::unique_ptr<detect::WorkerDetector> detector;
    std::unique_ptr<detect::Aggregator> agg;

    void attach(Worker& w, uint32_t interval_ms, detect::Aggregator::Sink sink) {
        detect::Settings ds;
        ds.interval_ms = interval_ms;
        sketch::SketchGeometry geo;
        geo.width = ds.sketch_width;
        const uint64_t interval_ns = uint64_t{ds.interval_ms} * 1'000'000;
        verified = std::make_unique<detect::VerifiedSources>();
        detector = std::make_unique<detect::WorkerDetector>(geo, ds.top, verified.get(), w.ns_base / interval_ns,
                                                             geo.seed ^ (w.id + 1));
        w.detector = detector.get();
        w.interval_ns = interval_ns;
        w.next_boundary_ns = (w.ns_base / interval_ns + 1) * interval_ns;
        agg = std::make_unique<detect::Aggregator>(ds, geo, std::vector<detect::WorkerDetector*>{detector.get()},
                                                   verified.get(), std::move(sink));
    }
};

uint64_t counter_sum(const std::vector<uint64_t>& v, const std::string& group) {
    const auto& d = counters::descriptors();
    uint64_t s = 0;
    for (size_t i = 0; i < d.size(); ++i)
        if (d[i].group == group) s += v[i];
    return s;
}

uint64_t counter(const std::vector<uint64_t>& v, const std::string& group, const std::string& name) {
    const auto& d = counters::descriptors();
    for (size_t i = 0; i < d.size(); ++i)
        if (d[i].group == group && d[i].name == name) return v[i];
    return 0;
}

struct Options {
    double seconds = 3.0;     // per measurement: bare RX, and each detection mode in total
    unsigned rounds = 3;      // the modes alternate in this many rounds (off on, on off, ...)
    double settle = 1.0;      // unmeasured pipeline run before the rounds (tables fill)
    DetectMode detect = DetectMode::both;
    uint32_t interval_ms = 1000;
    bool tty = false;         // progress updated in place
    std::ofstream* alerts_out = nullptr;  // --alerts: every alert event, JSON lines
    std::shared_ptr<const rules::RuleSet> rules;  // --rules: installed in monitor mode; null: none
    bool victims = false;  // --victims: the active alerts' targets are handed to the worker
};

Result run_workload(Workload& wl, unsigned lcore, const Options& o, const tcp::Tracker& tracker) {
    Result r;
    r.workload = wl.name;
    r.capacity = wl.capacity;
    std::string err;

    // The pool holds the whole looped file (net_pcap's infinite_rx keeps it in mbufs) plus
    // what is in flight.
    const uint32_t nmbufs = uint32_t(wl.pcap_packets + 16384);
    static int seq = 0;
    std::string pname = "bench_pool" + std::to_string(seq);
    constexpr uint16_t priv = uint16_t(RTE_ALIGN_CEIL(sizeof(packet::PacketMeta), RTE_MBUF_PRIV_ALIGN));
    rte_mempool* pool = rte_pktmbuf_pool_create(pname.c_str(), nmbufs, 256, priv, 512 + RTE_PKTMBUF_HEADROOM, int(rte_socket_id()));
    if (!pool) {
        std::fprintf(stderr, "stateline-bench: cannot create a pool of %u mbufs: %s\n", nmbufs, rte_strerror(rte_errno));
        std::exit(1);
    }
    ++seq;
    uint16_t port;
    if (rte_eth_dev_get_port_by_name(wl.vdev.c_str(), &port) != 0) {
        std::fprintf(stderr, "stateline-bench: %s did not probe (see the EAL messages above)\n", wl.vdev.c_str());
        std::exit(1);
    }
    PortInfo pi;
    if (!setup_port(port, 1, 1, 1024, pool, false, pi, err)) {
        std::fprintf(stderr, "stateline-bench: %s\n", err.c_str());
        std::exit(1);
    }

    // The worker, as the appliance builds it.
    BenchWorker bw("bench" + std::to_string(seq), wl.capacity, lcore, tracker, worker_on_remove, nullptr);
    const std::unique_ptr<Worker>& w = bw.w;
    flow::FlowTable& table = *bw.table;
    w->input = InputKind::ports;
    w->rxq[w->nb_rxq++] = RxQueue{port, 0, packet::LinkType::ethernet};
    r.bytes_per_connection = double(bw.table_bytes) / wl.capacity;

    // Detection (BenchDetection), polled on this thread with the connection records.
    // Detection is attached to the worker for the "on" slices and detached for the "off" ones,
    // on the same table in the same state; warm-up and settling run with it on, as the
    // appliance would. (Half-open connections opened with it off and closed with it on leave
    // the gauges off by that many: the alerts here are for the checks, not for reading.)
    const bool want_on = o.detect != DetectMode::off, want_off = o.detect != DetectMode::on;
    BenchDetection det;
    if (want_on) {
        det.attach(*w, o.interval_ms, [&r, &o, &wl](const nlohmann::json& ev) {
            if (ev["event"] == "start") r.alerts.emplace_back(ev["type"].get<std::string>(), ev["target"].get<std::string>());
            if (o.alerts_out) {
                nlohmann::json e = ev;
                e["workload"] = wl.name;
                *o.alerts_out << e.dump() << '\n';
            }
        });
        r.detect = true;
    }
    // Rules, as the appliance installs them (src/main.cpp): one WorkerRules on the worker,
    // monitor mode. Declared after the worker: destroyed first, it frees what the worker holds.
    std::unique_ptr<Mitigation> mit;
    if (o.rules) {
        mit = std::make_unique<Mitigation>(std::vector<Worker*>{w.get()}, det.verified.get(), false);
        mit->install(o.rules);
    }

    // Progress: one line per phase; on a terminal, updated in place with the time spent.
    std::string phase;
    auto phase_begin = [&](const std::string& text) {
        phase = text;
        std::fprintf(stderr, o.tty ? "  %-12s %s" : "  %-12s %s\n", wl.name.c_str(), text.c_str());
    };
    auto phase_end = [&] {
        if (o.tty) std::fprintf(stderr, "\r\033[K  %-12s %s\n", wl.name.c_str(), phase.c_str());
    };

    ConnSink sink;
    phase_begin(std::to_string(wl.warmup.size()) + " warm-up frames through the pipeline" +
                (want_on ? ", detection on" : ""));
    run_warmup(*w, pool, wl.warmup, det.agg.get());
    sink.drain(*w);
    phase_end();
    const auto before = counters::collect(w->counters, table.stats());

    // The aggregator's poll, timed when it judged an interval (merge, judge, clear: the control
    // core's share of detection).
    auto poll = [&] {
        if (!det.agg) return;
        const auto t0 = std::chrono::steady_clock::now();
        if (const unsigned n = det.agg->poll()) {
            r.judge_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            r.judged += n;
        }
    };
    // One timed run on the lcore, while this thread does the control core's work. `status`:
    // what the progress line says meanwhile on a terminal.
    auto timed = [&](auto launch, double secs, const std::string& status) {
        bw.run.stop = false;
        launch();
        auto t0 = std::chrono::steady_clock::now();
        double shown = -1;
        for (;;) {
            const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (el >= secs) break;
            if (o.tty && el - shown >= 0.1) {
                shown = el;
                std::fprintf(stderr, "\r\033[K  %-12s %s: %.1f / %.1f s", wl.name.c_str(), status.c_str(), el, secs);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            sink.drain(*w);  // the control core's job, as in the appliance
            poll();
            if (mit) mit->poll(o.victims ? det.agg.get() : nullptr);
        }
        bw.run.stop = true;
        rte_eal_wait_lcore(lcore);
        sink.drain(*w);
        poll();
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    auto rx_packets = [&] { return counter(counters::collect(w->counters, table.stats()), "rx", "rx_packets"); };
    // The pipeline (worker_main, live) for secs, detection on or off; its packets and seconds.
    auto pipeline = [&](bool on, double secs, const std::string& status) {
        w->detector = on ? det.detector.get() : nullptr;
        const uint64_t p0 = rx_packets();
        const double t = timed([&] { rte_eal_remote_launch(worker_main, w.get(), lcore); }, secs, status);
        return std::make_pair(rx_packets() - p0, t);
    };

    // Bare RX, then the pipeline, on the same lcore, for the same time.
    char buf[160];
    BareArgs ba{port, &bw.run};
    std::snprintf(buf, sizeof buf, "bare RX for %.1f s", o.seconds);
    phase_begin(buf);
    double tb = timed([&] { rte_eal_remote_launch(bare_rx_main, &ba, lcore); }, o.seconds, "bare RX");
    phase_end();
    if (o.settle > 0) {
        std::snprintf(buf, sizeof buf, "pipeline settling for %.1f s (not measured)%s", o.settle,
                      want_on ? ", detection on" : "");
        phase_begin(buf);
        pipeline(want_on, o.settle, "pipeline settling");
        phase_end();
    }
    // The modes alternate, off on, on off, ..., so that drift (the table filling, the neighbours
    // of this shared machine) falls on both alike.
    const double slice = o.seconds / o.rounds;
    if (want_on && want_off)
        std::snprintf(buf, sizeof buf, "pipeline, detection off and on alternating, %u round%s of %.2f s each", o.rounds,
                      o.rounds == 1 ? "" : "s", slice);
    else
        std::snprintf(buf, sizeof buf, "pipeline, detection %s, for %.1f s", want_on ? "on" : "off", o.seconds);
    phase_begin(buf);
    for (unsigned k = 0; k < o.rounds; ++k) {
        const bool order[2] = {k % 2 == 1, k % 2 == 0};  // round 0: off, on; round 1: on, off
        for (bool on : order) {
            if (on ? !want_on : !want_off) continue;
            std::snprintf(buf, sizeof buf, "pipeline round %u/%u, detection %s", k + 1, o.rounds, on ? "on" : "off");
            auto [n, t] = pipeline(on, slice, buf);
            r.measured[on] = true;
            r.mode_packets[on] += n;
            r.mode_seconds[on] += t;
        }
    }
    phase_end();
    w->detector = det.detector.get();

    const auto after = counters::collect(w->counters, table.stats());
    for (int m = 0; m < 2; ++m) {
        if (!r.measured[m]) continue;
        r.mode_mpps[m] = r.mode_packets[m] / r.mode_seconds[m] / 1e6;
        r.mode_ns[m] = r.mode_packets[m] ? r.mode_seconds[m] * 1e9 / double(r.mode_packets[m]) : 0;
    }
    if (r.measured[0] && r.measured[1] && r.mode_ns[0] > 0) {
        r.detect_ns = r.mode_ns[1] - r.mode_ns[0];
        r.detect_rel = r.mode_ns[1] / r.mode_ns[0] - 1;
    }
    const int primary = r.measured[1] ? 1 : 0;
    const double tp = r.mode_seconds[primary];
    r.bare_packets = ba.packets;
    r.packets = r.mode_packets[primary];
    r.total_packets = counter(after, "rx", "rx_packets") - counter(before, "rx", "rx_packets");
    r.bare_mpps = ba.packets / tb / 1e6;
    r.mpps = r.mode_mpps[primary];
    r.ratio = r.bare_mpps > 0 ? r.mpps / r.bare_mpps : 0;
    r.ns_per_packet = r.mode_ns[primary];
    r.bare_ns_per_packet = ba.packets ? tb * 1e9 / double(ba.packets) : 0;
    r.cycles_per_packet = r.packets ? tp * double(rte_get_tsc_hz()) / double(r.packets) : 0;
    r.outcome_sum = counter_sum(after, "outcomes") - counter_sum(before, "outcomes");
    r.connections_created = counter(after, "flows", "created");
    r.untracked = counter(after, "rx", "untracked_no_room");
    r.conn_records = sink.records;
    r.records_dropped = counter(after, "rx", "conn_records_dropped");
    if (det.agg) {
        // What the worker counted since its last publication is judged too; the alerts end.
        det.agg->finish("shutdown");
        r.alert_counts = det.agg->counts();
        r.publications = det.detector->buffer().published();
        r.publish_late = det.detector->buffer().publish_late();
    }

    // Every established connection of the workload must still be tracked and established.
    for (const Conn& c : wl.established) {
        uint8_t src[16], dst[16];
        flow::map_ipv4(src, c.cip);
        flow::map_ipv4(dst, c.sip);
        flow::FlowKey key;
        flow::make_key(key, src, c.cport, dst, c.sport, 0, 0);
        uint32_t idx = table.lookup(key, flow::flow_hash(key));
        ++r.established_checked;
        if (idx == flow::kNoEntry || tcp::Tracker::state_of(table.entry(idx), flow::Side::lo) != tcp::State::established ||
            tcp::Tracker::state_of(table.entry(idx), flow::Side::hi) != tcp::State::established)
            ++r.established_lost;
    }

    if (mit) {
        mit->poll(nullptr);
        r.rule_stats = mit->stats();
        r.rules_would_drop = w->counters.get(counters::Scalar::rules_would_drop);
        r.rules_alerted = w->counters.get(counters::Scalar::rules_alerted);
        mit.reset();  // frees the worker's rules before the worker goes
    }
    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
    rte_mempool_free(pool);  // the worker, its table and ring go with `bw`
    return r;
}


// ---------------------------------------------------------------------------------------------
// soak: `stateline-bench soak --flood syn|rst|ack|fin|all ...` (issue 8, "Floods"). Opt-in, not
// in the test suite: minutes of a spoofed flood from millions of sources, at full speed on this
// thread, on top of established connections that keep sending data, through the real worker
// pipeline (worker_process_burst on a Worker with its FlowTable, Tracker and detector; frames
// written straight into mbufs of a pool, no port). Its checks are pass/fail (exit status 1):
//   - every established connection is still in the table, ESTABLISHED on both sides (all of them
//     looked up once a second and at the end), and no established entry was evicted;
//   - memory stays flat: RSS (/proc/self/statm) max - min after the warm-up within a bound;
//   - half-open entries are recycled by the documented policy (lib/flow/README.md): the table
//     evicts only non-established entries (counted by class and reason in the remove hook);
//   - accounting to the packet: frames fed = rx_packets = the sum of every outcome counter;
//   - SYN flood with detection on: a syn_flood alert is raised.

struct SoakOptions {
    std::vector<std::string> floods;
    uint64_t sources = 10'000'000;
    uint32_t established = 100'000;
    double seconds = 120;
    uint32_t capacity = 1u << 20;
    uint32_t data_every = 10;      // one data segment on an established connection per this many frames
    double rss_warmup = 5;         // seconds of flood before RSS is judged
    double rss_bound_mib = 4;      // max - min after the warm-up
    bool detect = true;
    uint32_t interval_ms = 1000;
    uint64_t seed = 1;
    std::string json;
};

struct SoakHook {
    Worker* w = nullptr;
    // Removals by the entry's timeout class at removal time and the reason.
    uint64_t by[flow::kTimeoutClassCount][flow::kRemoveReasonCount] = {};
};

void soak_on_remove(void* ctx, uint32_t idx, flow::RemoveReason why) {
    auto& h = *static_cast<SoakHook*>(ctx);
    ++h.by[unsigned(h.w->table->entry(idx).tclass)][unsigned(why)];
    worker_on_remove(h.w, idx, why);
}

struct SoakResult {
    std::string flood;
    double seconds = 0, mpps = 0;
    uint64_t setup_frames = 0, flood_frames = 0, data_frames = 0, fed = 0;
    uint64_t rx_packets = 0, outcome_sum = 0, outcome_tcp = 0;
    uint32_t established = 0, established_kept = 0, worst_kept = 0;  // worst: lowest once-a-second count
    uint64_t checks_run = 0;
    uint64_t est_removed = 0;  // established-class entries removed by eviction (must be 0)
    uint64_t removed[flow::kRemoveReasonCount] = {};
    uint64_t half_open_removed[flow::kRemoveReasonCount] = {};
    uint64_t est_class_removed[flow::kRemoveReasonCount] = {};
    uint64_t insert_failed[flow::kInsertFailureCount] = {};
    uint64_t active = 0, active_by_class[flow::kTimeoutClassCount] = {};
    uint64_t untracked = 0, created = 0, records = 0, records_dropped = 0;
    double rss_first_mib = 0, rss_min_mib = 0, rss_max_mib = 0;
    bool syn_alert = false;
    std::vector<std::pair<std::string, std::string>> alerts;
    std::vector<std::string> failed;
};

double rss_mib() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, res = 0;
    if (std::fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    std::fclose(f);
    return double(res) * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

SoakResult run_soak(const std::string& flood, const SoakOptions& o, const tcp::Tracker& tracker, [[maybe_unused]] bool tty) {
    SoakResult r;
    r.flood = flood;
    r.established = o.established;
    static int seq = 0;
    ++seq;
    constexpr uint16_t priv = uint16_t(RTE_ALIGN_CEIL(sizeof(packet::PacketMeta), RTE_MBUF_PRIV_ALIGN));
    const std::string pname = "soak_pool" + std::to_string(seq);
    rte_mempool* pool = rte_pktmbuf_pool_create(pname.c_str(), 4095, 256, priv, 512 + RTE_PKTMBUF_HEADROOM, int(rte_socket_id()));
    if (!pool) {
        std::fprintf(stderr, "stateline-bench: cannot create the mbuf pool: %s\n", rte_strerror(rte_errno));
        std::exit(1);
    }
    SoakHook hook;
    BenchWorker bw("soak" + std::to_string(seq), o.capacity, rte_lcore_id(), tracker, soak_on_remove, &hook);
    hook.w = bw.w.get();
    const std::unique_ptr<Worker>& w = bw.w;
    flow::FlowTable& table = *bw.table;

    // Detection as run_workload builds it (default settings), polled on this same thread.
    BenchDetection det;
    if (o.detect) {
        det.attach(*w, o.interval_ms, [&r](const nlohmann::json& ev) {
            if (ev["event"] == "start") r.alerts.emplace_back(ev["type"].get<std::string>(), ev["target"].get<std::string>());
        });
    }
    ConnSink sink;

    // The established connections: real handshakes through the pipeline.
    std::mt19937_64 srng(o.seed);
    std::vector<Conn> conns;
    conns.reserve(o.established);
    FrameList fl;
    for (uint32_t i = 0; i < o.established; ++i) {
        Conn c = make_conn(i, srng);
        handshake(fl, c);
        conns.push_back(c);
    }
    std::vector<flow::FlowKey> keys(o.established);
    std::vector<uint32_t> hashes(o.established);
    for (uint32_t i = 0; i < o.established; ++i) {
        uint8_t src[16], dst[16];
        flow::map_ipv4(src, conns[i].cip);
        flow::map_ipv4(dst, conns[i].sip);
        flow::make_key(keys[i], src, conns[i].cport, dst, conns[i].sport, 0, 0);
        hashes[i] = flow::flow_hash(keys[i]);
    }
    std::fprintf(stderr, "  %-4s %u connections: %zu handshake frames through the pipeline\n", flood.c_str(),
                 o.established, fl.size());
    run_warmup(*w, pool, fl, det.agg.get());
    sink.drain(*w);
    r.setup_frames = fl.size();
    fl = FrameList{};
    auto count_kept = [&] {
        uint32_t ok = 0;
        for (uint32_t i = 0; i < o.established; ++i) {
            const uint32_t idx = table.lookup(keys[i], hashes[i]);
            ok += idx != flow::kNoEntry &&
                  tcp::Tracker::state_of(table.entry(idx), flow::Side::lo) == tcp::State::established &&
                  tcp::Tracker::state_of(table.entry(idx), flow::Side::hi) == tcp::State::established;
        }
        return ok;
    };
    const uint32_t kept0 = count_kept();
    if (kept0 != o.established)
        r.failed.push_back("setup: only " + std::to_string(kept0) + " of " + std::to_string(o.established) +
                           " handshakes ended ESTABLISHED");
    r.worst_kept = kept0;

    // The flood. Spoofed sources 11.0.0.0 + (i mod sources), random source ports, to four
    // victims 198.51.100.1-4 port 80; stray RST / ACK / FIN-ACK with random sequence numbers.
    uint8_t tflags = tf::syn;
    if (flood == "rst") tflags = tf::rst;
    else if (flood == "ack") tflags = tf::ack;
    else if (flood == "fin") tflags = tf::fin | tf::ack;
    gen::Rng rng(o.seed * 7919 + seq);
    uint64_t src_i = 0;
    uint32_t next_conn = 0, round = 0;
    uint64_t frame_no = 0;
    rte_mbuf* m[32];
    const uint64_t t0 = wall_ns();
    const uint64_t end_ns = t0 + uint64_t(o.seconds * 1e9);
    uint64_t next_tick = t0 + 1'000'000'000ull;
    uint64_t tick_frames = 0, tick_ns = t0;
    bool rss_any = false;
    r.rss_first_mib = rss_mib();
    auto counters_now = [&] { return counters::collect(w->counters, table.stats()); };
    const uint64_t fed_setup = r.setup_frames;
    for (;;) {
        const uint64_t now = wall_ns();
        if (now >= next_tick) {
            // Once a second: RSS, every established connection, a progress line.
            sink.drain(*w);
            const double el = double(now - t0) / 1e9;
            const double rss = rss_mib();
            if (el >= o.rss_warmup + 0.5) {
                if (!rss_any || rss < r.rss_min_mib) r.rss_min_mib = rss;
                if (!rss_any || rss > r.rss_max_mib) r.rss_max_mib = rss;
                rss_any = true;
            }
            const uint32_t kept = count_kept();
            ++r.checks_run;
            r.worst_kept = std::min(r.worst_kept, kept);
            const auto& st = table.stats();
            uint64_t est_ev = 0, ev = 0;
            for (unsigned c = 0; c < flow::kTimeoutClassCount; ++c) {
                const uint64_t n = hook.by[c][unsigned(flow::RemoveReason::evicted_table_full)] +
                                   hook.by[c][unsigned(flow::RemoveReason::evicted_bucket_full)];
                ev += n;
                if (c == unsigned(flow::TimeoutClass::established)) est_ev += n;
            }
            const double mpps = double(tick_frames) / (double(now - tick_ns) / 1e3);
            std::fprintf(stderr,
                         "  %-4s %6.1f s %6.2f Mpps %8.1f M frames  RSS %7.1f MiB  table %7llu/%u (half-open %llu, est %llu)  "
                         "evicted %.2f M (est %llu)  refused %llu  kept %u/%u\n",
                         flood.c_str(), el, mpps, double(frame_no) / 1e6, rss, (unsigned long long)st.active, o.capacity,
                         (unsigned long long)st.active_by_class[unsigned(flow::TimeoutClass::half_open)],
                         (unsigned long long)st.active_by_class[unsigned(flow::TimeoutClass::established)], double(ev) / 1e6,
                         (unsigned long long)est_ev,
                         (unsigned long long)(st.insert_failed[0] + st.insert_failed[1]), kept, o.established);
            tick_frames = 0;
            tick_ns = wall_ns();
            next_tick = tick_ns + 1'000'000'000ull;
            if (now >= end_ns) break;
            continue;
        }
        if (rte_pktmbuf_alloc_bulk(pool, m, 32) != 0) {
            std::fprintf(stderr, "stateline-bench: mbuf pool exhausted (mbufs leaked by the pipeline?)\n");
            r.failed.push_back("mbuf pool exhausted: the pipeline did not free every frame");
            break;
        }
        w->now_ns = now;
        table.set_now(uint32_t(now / 1'000'000));
        if (w->detector && now >= w->next_boundary_ns) {
            interval_boundary(*w);
            det.agg->poll();
        }
        for (unsigned k = 0; k < 32; ++k, ++frame_no) {
            uint8_t* out = rte_pktmbuf_mtod(m[k], uint8_t*);
            uint32_t len;
            if (frame_no % o.data_every == o.data_every - 1) {
                // Round robin: every connection in turn, each turn the other direction.
                Conn& c = conns[next_conn];
                const bool up = ((next_conn & 1) ^ round) != 0;
                if (++next_conn == conns.size()) next_conn = 0, round ^= 1;
                if (up) {
                    len = write_seg(out, c, true, tf::ack | tf::psh, c.cseq, c.sseq, kPayload);
                    c.cseq += kPayload;
                } else {
                    len = write_seg(out, c, false, tf::ack | tf::psh, c.sseq, c.cseq, kPayload);
                    c.sseq += kPayload;
                }
                ++r.data_frames;
            } else {
                Conn f{};
                const uint32_t src = 0x0b000000u + uint32_t(src_i);
                if (++src_i == o.sources) src_i = 0;
                const uint64_t x = rng.next();
                for (int b = 0; b < 4; ++b) f.cip[b] = uint8_t(src >> (24 - 8 * b));
                f.sip[0] = 198, f.sip[1] = 51, f.sip[2] = 100, f.sip[3] = uint8_t(1 + (x & 3));
                f.cport = uint16_t(1024 + (x >> 8) % 64512);
                f.sport = 80;
                len = write_seg(out, f, true, tflags, uint32_t(x >> 32), tflags & tf::ack ? uint32_t(x >> 24) : 0, 0);
                ++r.flood_frames;
            }
            m[k]->data_len = uint16_t(len);
            m[k]->pkt_len = len;
            packet::PacketMeta* meta = meta_of(m[k]);
            packet::parse_frame(out, len, packet::LinkType::ethernet, *meta);
            meta->ts_ns = now;
        }
        worker_process_burst(*w, m, 32);
        table.expire_step();  // the worker's housekeeping slice
        if ((frame_no & 4095) == 0) sink.drain(*w);
        tick_frames += 32;
    }
    r.seconds = double(wall_ns() - t0) / 1e9;
    sink.drain(*w);
    if (det.agg) det.agg->finish("shutdown");
    r.fed = fed_setup + frame_no;
    r.mpps = double(frame_no) / r.seconds / 1e6;
    r.established_kept = count_kept();
    const auto after = counters_now();
    r.rx_packets = counter(after, "rx", "rx_packets");
    r.outcome_sum = counter_sum(after, "outcomes");
    r.outcome_tcp = counter(after, "outcomes", "tcp");
    r.untracked = counter(after, "rx", "untracked_no_room");
    r.created = counter(after, "flows", "created");
    r.records = sink.records;
    r.records_dropped = counter(after, "rx", "conn_records_dropped");
    const auto& st = table.stats();
    for (unsigned k = 0; k < flow::kRemoveReasonCount; ++k) {
        r.removed[k] = st.removed[k];
        r.half_open_removed[k] = hook.by[unsigned(flow::TimeoutClass::half_open)][k];
        r.est_class_removed[k] = hook.by[unsigned(flow::TimeoutClass::established)][k];
    }
    for (unsigned k = 0; k < flow::kInsertFailureCount; ++k) r.insert_failed[k] = st.insert_failed[k];
    r.active = st.active;
    for (unsigned c = 0; c < flow::kTimeoutClassCount; ++c) r.active_by_class[c] = st.active_by_class[c];
    r.est_removed = r.est_class_removed[unsigned(flow::RemoveReason::evicted_table_full)] +
                    r.est_class_removed[unsigned(flow::RemoveReason::evicted_bucket_full)];
    for (const auto& [type, target] : r.alerts)
        r.syn_alert = r.syn_alert || (type == "syn_flood" && target.rfind("198.51.100.", 0) == 0);

    // The checks.
    auto fail = [&](const std::string& s) { r.failed.push_back(s); };
    if (r.established_kept != o.established)
        fail("established kept at the end: " + std::to_string(r.established_kept) + " of " + std::to_string(o.established));
    if (r.worst_kept != o.established)
        fail("established kept, worst once-a-second check: " + std::to_string(r.worst_kept) + " of " +
             std::to_string(o.established));
    if (r.est_removed) fail("established entries evicted: " + std::to_string(r.est_removed));
    // Policy: evictions only of non-established entries (hook sees the class before removal).
    if (!(r.fed == r.rx_packets && r.rx_packets == r.outcome_sum))
        fail("accounting: fed " + std::to_string(r.fed) + ", rx_packets " + std::to_string(r.rx_packets) +
             ", sum of outcomes " + std::to_string(r.outcome_sum));
    if (r.outcome_tcp != r.fed) fail("accounting: outcome tcp " + std::to_string(r.outcome_tcp) + " != fed " + std::to_string(r.fed));
    if (!rss_any) fail("RSS: no sample after the warm-up (run longer than --rss-warmup)");
    else if (r.rss_max_mib - r.rss_min_mib > o.rss_bound_mib) {
        char b[128];
        std::snprintf(b, sizeof b, "RSS grew: max - min %.1f MiB > %.1f MiB", r.rss_max_mib - r.rss_min_mib, o.rss_bound_mib);
        fail(b);
    }
    if (flood == "syn" && o.detect && !r.syn_alert) fail("detection: no syn_flood alert on 198.51.100.x");

    rte_mempool_free(pool);  // the worker, its table and ring go with `bw`
    return r;
}

int soak_main(int argc, char** argv) {
    CLI::App cli{"stateline-bench soak: a spoofed flood from millions of sources over established connections, "
                 "through the worker pipeline at full speed, with pass/fail checks",
                 "stateline-bench soak"};
    SoakOptions o;
    std::string flood = "syn", detect = "on";
    cli.add_option("--flood", flood, "syn, rst, ack, fin or all (one after the other, a fresh table each)")
        ->check(CLI::IsMember({"syn", "rst", "ack", "fin", "all"}));
    cli.add_option("--sources", o.sources, "Distinct spoofed source addresses, cycled (11.0.0.0 + i)")
        ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 24));
    cli.add_option("--established", o.established, "Established connections set up first (real handshakes)")
        ->check(CLI::Range(1u, 16'000'000u));
    cli.add_option("-t,--seconds", o.seconds, "Seconds of flood (each, with --flood all)")->check(CLI::PositiveNumber);
    cli.add_option("--capacity", o.capacity, "Flow table capacity (per worker; the appliance's default 1048576)")
        ->check(CLI::Range(1024u, 1u << 28));
    cli.add_option("--data-every", o.data_every, "One data segment on an established connection every N frames")
        ->check(CLI::Range(2u, 1'000'000u));
    cli.add_option("--rss-warmup", o.rss_warmup, "Seconds of flood before RSS is judged");
    cli.add_option("--rss-bound-mib", o.rss_bound_mib, "Largest RSS max - min after the warm-up, MiB");
    cli.add_option("--detect", detect, "Detection on the worker (the appliance's default: on)")
        ->check(CLI::IsMember({"on", "off"}));
    cli.add_option("--seed", o.seed, "Random seed");
    cli.add_option("--json", o.json, "Write one JSON line per flood to this file");
    cli.footer("Example: build/tools/stateline-bench soak --flood all --sources 10000000 --established 100000 --seconds 60");
    CLI11_PARSE(cli, argc, argv);
    o.detect = detect == "on";
    o.floods = flood == "all" ? std::vector<std::string>{"syn", "rst", "ack", "fin"} : std::vector<std::string>{flood};
    if (o.established >= o.capacity) {
        std::fprintf(stderr, "stateline-bench soak: --established must be below --capacity\n");
        return 1;
    }

    const uint64_t mem_mb = flow::FlowTable::memory_size(o.capacity) / (1 << 20) + 256;
    std::vector<std::string> eal = {argv[0], "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                                    "--file-prefix=stateline-soak-" + std::to_string(getpid()), "-m", std::to_string(mem_mb),
                                    "-l", "0", "--log-level=warning"};
    std::vector<char*> eargv;
    for (auto& s : eal) eargv.push_back(s.data());
    if (rte_eal_init(int(eargv.size()), eargv.data()) < 0) {
        std::fprintf(stderr, "stateline-bench: EAL init failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    const tcp::Tracker tracker;
    const bool tty = isatty(STDERR_FILENO);
    std::vector<SoakResult> results;
    for (const auto& f : o.floods) results.push_back(run_soak(f, o, tracker, tty));

    // The final table.
    std::printf("\n%-5s %7s %10s %6s %15s %12s %10s %10s %10s %17s %s\n", "flood", "seconds", "frames", "Mpps",
                "est. kept", "est.evicted", "evicted", "ho.expired", "refused", "RSS min/max MiB", "accounting");
    for (const auto& r : results) {
        const uint64_t ev = r.removed[unsigned(flow::RemoveReason::evicted_table_full)] +
                            r.removed[unsigned(flow::RemoveReason::evicted_bucket_full)];
        char kept[32], rss[40];
        std::snprintf(kept, sizeof kept, "%u/%u", r.established_kept, r.established);
        std::snprintf(rss, sizeof rss, "%.1f/%.1f", r.rss_min_mib, r.rss_max_mib);
        const bool acc = r.fed == r.rx_packets && r.rx_packets == r.outcome_sum;
        std::printf("%-5s %7.1f %10llu %6.2f %15s %12llu %10llu %10llu %10llu %17s %s (%llu = %llu = %llu)\n", r.flood.c_str(),
                    r.seconds, (unsigned long long)r.fed, r.mpps, kept, (unsigned long long)r.est_removed,
                    (unsigned long long)ev, (unsigned long long)r.half_open_removed[unsigned(flow::RemoveReason::expired)],
                    (unsigned long long)r.untracked, rss, acc ? "ok" : "OFF", (unsigned long long)r.fed,
                    (unsigned long long)r.rx_packets, (unsigned long long)r.outcome_sum);
    }
    for (const auto& r : results) {
        std::printf("%-5s table at the end: %llu/%u (half_open %llu, established %llu, closing %llu, time_wait %llu, closed "
                    "%llu); removed:",
                    r.flood.c_str(), (unsigned long long)r.active, o.capacity,
                    (unsigned long long)r.active_by_class[unsigned(flow::TimeoutClass::half_open)],
                    (unsigned long long)r.active_by_class[unsigned(flow::TimeoutClass::established)],
                    (unsigned long long)r.active_by_class[unsigned(flow::TimeoutClass::closing)],
                    (unsigned long long)r.active_by_class[unsigned(flow::TimeoutClass::time_wait)],
                    (unsigned long long)r.active_by_class[unsigned(flow::TimeoutClass::closed)]);
        for (unsigned k = 0; k < flow::kRemoveReasonCount; ++k)
            std::printf(" %s %llu", flow::kRemoveReasonInfo[k].name, (unsigned long long)r.removed[k]);
        std::printf(" (of them half-open:");
        for (unsigned k = 0; k < flow::kRemoveReasonCount; ++k)
            std::printf(" %s %llu", flow::kRemoveReasonInfo[k].name, (unsigned long long)r.half_open_removed[k]);
        std::printf("); insert failed: table_full %llu, bucket_full %llu; flood %llu + data %llu + setup %llu frames; "
                    "alerts:",
                    (unsigned long long)r.insert_failed[0], (unsigned long long)r.insert_failed[1],
                    (unsigned long long)r.flood_frames, (unsigned long long)r.data_frames,
                    (unsigned long long)r.setup_frames);
        std::map<std::string, unsigned> types;
        for (const auto& a : r.alerts) ++types[a.first];
        if (types.empty()) std::printf(" none");
        for (const auto& [t, n] : types) std::printf(" %s %u", t.c_str(), n);
        std::printf("\n");
    }
    int failures = 0;
    for (const auto& r : results) {
        for (const auto& f : r.failed) std::printf("%-5s FAIL: %s\n", r.flood.c_str(), f.c_str());
        failures += int(r.failed.size());
        if (r.failed.empty()) std::printf("%-5s all checks passed\n", r.flood.c_str());
    }
    if (!o.json.empty()) {
        std::ofstream out(o.json);
        for (const auto& r : results) {
            nlohmann::ordered_json removed = nlohmann::ordered_json::object(), ho = removed, est = removed, failed_ins = removed,
                                   by_class = removed;
            for (unsigned k = 0; k < flow::kRemoveReasonCount; ++k) {
                removed[flow::kRemoveReasonInfo[k].name] = r.removed[k];
                ho[flow::kRemoveReasonInfo[k].name] = r.half_open_removed[k];
                est[flow::kRemoveReasonInfo[k].name] = r.est_class_removed[k];
            }
            for (unsigned k = 0; k < flow::kInsertFailureCount; ++k) failed_ins[flow::kInsertFailureInfo[k].name] = r.insert_failed[k];
            for (unsigned c = 1; c < flow::kTimeoutClassCount; ++c)
                by_class[flow::timeout_class_name(flow::TimeoutClass(c))] = r.active_by_class[c];
            nlohmann::ordered_json j = {
                {"flood", r.flood}, {"seconds", r.seconds}, {"mpps", r.mpps}, {"sources", o.sources},
                {"capacity", o.capacity}, {"established", r.established}, {"established_kept", r.established_kept},
                {"established_worst_check", r.worst_kept}, {"checks_run", r.checks_run},
                {"established_evicted", r.est_removed}, {"frames_fed", r.fed}, {"setup_frames", r.setup_frames},
                {"flood_frames", r.flood_frames}, {"data_frames", r.data_frames}, {"rx_packets", r.rx_packets},
                {"outcome_sum", r.outcome_sum}, {"removed", removed}, {"removed_half_open", ho},
                {"removed_established_class", est}, {"insert_failed", failed_ins}, {"untracked_no_room", r.untracked},
                {"active", r.active}, {"active_by_class", by_class}, {"created", r.created},
                {"conn_records", r.records}, {"conn_records_dropped", r.records_dropped},
                {"rss_first_mib", r.rss_first_mib}, {"rss_min_mib", r.rss_min_mib}, {"rss_max_mib", r.rss_max_mib},
                {"syn_flood_alert", r.syn_alert}, {"failed", r.failed}};
            nlohmann::ordered_json alerts = nlohmann::ordered_json::object();
            for (const auto& a : r.alerts) alerts[a.first] = alerts.value(a.first, 0) + 1;
            j["alerts_started"] = alerts;
            j["detect"] = o.detect;
            j["data_every"] = o.data_every;
            out << j.dump() << "\n";
        }
    }
    rte_eal_cleanup();
    return failures ? 1 : 0;
}
}  // namespace

int main(int argc, char** argv) {
    // `stateline-bench soak ...`: the flood soak (opt-in, minutes), its own options.
    if (argc >= 2 && std::strcmp(argv[1], "soak") == 0) return soak_main(argc - 1, argv + 1);
    CLI::App cli{"stateline-bench: the Stateline worker pipeline against bare DPDK RX, traffic held in memory",
                 "stateline-bench"};
    std::vector<std::string> names;
    Options o;
    uint32_t scale = 1'000'000;
    std::string json_path, alerts_path, rules_path;
    bool quick = false;
    bool no_detect = false;
    std::string detect_mode = "both";
    uint64_t seed = 1;
    cli.add_option("workloads", names, "established, synflood, lifecycle, mixed (default: all)")
        ->check(CLI::IsMember({"established", "synflood", "lifecycle", "mixed"}));
    cli.add_option("-t,--seconds", o.seconds,
                   "Seconds of each measurement: bare RX, and the pipeline with detection off and on, each")
        ->check(CLI::PositiveNumber);
    cli.add_option("-n,--connections", scale, "Connections of the established workload (synflood keeps 1/10 of it)");
    cli.add_option("--detect", detect_mode, "Pipeline runs with detection off, on (the appliance's default) or both")
        ->check(CLI::IsMember({"off", "on", "both"}));
    cli.add_flag("--no-detect", no_detect, "Same as --detect off");
    auto* rounds_opt = cli.add_option("--rounds", o.rounds,
                                      "Detection off and on alternate in this many rounds of seconds/rounds each")
                           ->check(CLI::Range(1u, 1000u));
    auto* interval_opt = cli.add_option("--interval-ms", o.interval_ms,
                                        "Detection interval: the worker publishes, the aggregator judges (default 1000, "
                                        "as the appliance; --quick: 100)")
                             ->check(CLI::Range(10u, 60000u));
    cli.add_option("--json", json_path, "Write one JSON object per workload to this file");
    cli.add_option("--alerts", alerts_path, "Write the alert events (start, update, end; docs/alerts.md) to this file");
    cli.add_option("--seed", seed, "Random seed of the traffic");
    cli.add_option("--rules", rules_path,
                   "A configuration file whose rules: list is installed in the worker, monitor mode (counted, "
                   "never dropped), to measure rule evaluation")
        ->check(CLI::ExistingFile);
    cli.add_flag("--victims", o.victims,
                 "With --rules and detection on: hand the active alerts' targets to the worker after each judged "
                 "interval, as the appliance does (default: no victim set, victim_of rules take their cheap path)");
    cli.add_flag("--quick", quick,
                 "Small and short: a correctness run for the test suite (10k connections, 0.3 s, one round)");
    cli.footer(
        "Runs on EAL lcore 1 (the measuring core) with lcore 0 draining connection records and\n"
        "polling the detection aggregator, as the control core does. Ratio = pipeline Mpps / bare RX\n"
        "Mpps, both measured in this run, with detection on when measured. Detection cost per packet\n"
        "= 1000/Mpps(on) - 1000/Mpps(off) ns, from alternating slices on the same table.\n"
        "Example: build/tools/stateline-bench established synflood --seconds 5 --json bench.json\n"
        "The flood soak (minutes, pass/fail): build/tools/stateline-bench soak --help");
    CLI11_PARSE(cli, argc, argv);
    o.detect = no_detect || detect_mode == "off" ? DetectMode::off : detect_mode == "on" ? DetectMode::on : DetectMode::both;
    o.settle = std::min(1.0, o.seconds / 3);
    if (quick) {
        scale = 10'000;
        o.seconds = 0.3;
        o.settle = 0.1;
        if (rounds_opt->count() == 0) o.rounds = 1;
        // Intervals short enough that the runs of 0.3 s are judged several times.
        if (interval_opt->count() == 0) o.interval_ms = 100;
    }
    o.tty = isatty(STDERR_FILENO);
    if (!rules_path.empty()) {
        auto lr = config::load_file(rules_path);
        if (!lr.ok()) {
            std::fprintf(stderr, "%s", config::format_errors(lr.errors).c_str());
            return 1;
        }
        o.rules = lr.config.rules ? lr.config.rules : rules::RuleSet::build({}).set;
        if (lr.config.inline_mode)
            std::fprintf(stderr, "stateline-bench: %s asks for inline mode; the bench runs the rules in monitor mode\n",
                         rules_path.c_str());
        std::fprintf(stderr, "stateline-bench: %zu rules from %s (monitor mode%s)\n", o.rules->size(), rules_path.c_str(),
                     o.victims ? ", victim sets fed" : "");
    }
    std::ofstream alerts_out;
    if (!alerts_path.empty()) {
        alerts_out.open(alerts_path);
        if (!alerts_out) {
            std::fprintf(stderr, "stateline-bench: cannot write %s\n", alerts_path.c_str());
            return 1;
        }
        o.alerts_out = &alerts_out;
    }
    if (names.empty()) names = {"established", "synflood", "lifecycle", "mixed"};

    char dir[] = "/tmp/stateline-bench.XXXXXX";
    if (!mkdtemp(dir)) {
        std::perror("stateline-bench: mkdtemp");
        return 1;
    }
    std::mt19937_64 rng(seed);
    std::vector<Workload> wls;
    std::string err;
    std::fprintf(stderr, "stateline-bench: building workloads in %s\n", dir);
    for (const auto& n : names) {
        Workload wl;
        wl.name = n;
        if (n == "established") {
            wl.description = std::to_string(scale) + " established connections, data in random order";
            build_established(wl, scale, dir, rng, err);
            wl.quiet = true;
        } else if (n == "synflood") {
            wl.description = "new spoofed SYNs to 192.0.2.10:80 (9 in 10) over " + std::to_string(scale / 10) + " established connections";
            build_synflood(wl, scale / 10, scale, scale / 2, dir, rng, err);
            wl.flood_victim = "192.0.2.10:80";
        } else if (n == "lifecycle") {
            wl.description = std::to_string(scale / 10) + " connections of 10 packets, full open and close, on " +
                             std::to_string(scale / 40) + " tuples reopened from TIME-WAIT";
            build_lifecycle(wl, scale / 10, 0, dir, rng, err);
        } else {
            wl.description = "lifecycle traffic plus 20% spoofed SYNs to 192.0.2.10:443";
            build_lifecycle(wl, scale / 10, 20, dir, rng, err);
        }
        if (!err.empty()) {
            std::fprintf(stderr, "stateline-bench: %s\n", err.c_str());
            return 1;
        }
        wls.push_back(std::move(wl));
    }

    uint64_t mem_mb = 512;
    for (const auto& wl : wls)
        mem_mb = std::max<uint64_t>(mem_mb, (flow::FlowTable::memory_size(wl.capacity) + (wl.pcap_packets + 16384) * 1100) / (1 << 20) + 256);
    std::vector<std::string> eal = {argv[0], "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
                                    "--file-prefix=stateline-bench-" + std::to_string(getpid()), "-m", std::to_string(mem_mb),
                                    "-l", "0-1", "--log-level=warning"};
    std::vector<char*> eargv;
    for (auto& wl : wls) {
        wl.vdev = "net_pcap_" + wl.name;
        eal.push_back("--vdev=" + wl.vdev + ",rx_pcap=" + wl.pcap + ",infinite_rx=1");
    }
    for (auto& s : eal) eargv.push_back(s.data());
    if (rte_eal_init(int(eargv.size()), eargv.data()) < 0) {
        std::fprintf(stderr, "stateline-bench: EAL init failed: %s (needs 2 lcores)\n", rte_strerror(rte_errno));
        return 1;
    }
    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    const tcp::Tracker tracker;
    std::vector<Result> results;
    for (auto& wl : wls) {
        results.push_back(run_workload(wl, lcore, o, tracker));
        unlink(wl.pcap.c_str());
    }
    rmdir(dir);

    // The table. ratio and cyc/pkt are those of the appliance's configuration (detection on
    // when measured); "det" is what detection adds per packet, and relative to off.
    auto num = [](bool ok, const char* f, double v) -> std::string {
        if (!ok) return "-";
        char b[32];
        std::snprintf(b, sizeof b, f, v);
        return b;
    };
    std::printf("%-12s %9s %8s %8s %6s %10s %10s %10s %7s %7s %8s %8s %6s %s\n", "workload", "bare Mpps", "Mpps off",
                "Mpps on", "ratio", "ns/pkt off", "ns/pkt on", "det ns/pkt", "det %", "cyc/pkt", "B/conn", "est.lost",
                "alerts", "description");
    for (size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        const bool both = r.measured[0] && r.measured[1];
        std::printf("%-12s %9.2f %8s %8s %6.2f %10s %10s %10s %7s %7.0f %8.1f %8s %6s %s\n", r.workload.c_str(), r.bare_mpps,
                    num(r.measured[0], "%.2f", r.mode_mpps[0]).c_str(), num(r.measured[1], "%.2f", r.mode_mpps[1]).c_str(),
                    r.ratio, num(r.measured[0], "%.1f", r.mode_ns[0]).c_str(), num(r.measured[1], "%.1f", r.mode_ns[1]).c_str(),
                    num(both, "%+.1f", r.detect_ns).c_str(), num(both, "%+.1f%%", 100 * r.detect_rel).c_str(),
                    r.cycles_per_packet, r.bytes_per_connection,
                    r.established_checked ? std::to_string(r.established_lost).c_str() : "-",
                    r.detect ? std::to_string(r.alerts.size()).c_str() : "-", wls[i].description.c_str());
    }
    // What detection made of each workload: the alerts it started.
    for (const Result& r : results) {
        if (!r.detect) continue;
        std::map<std::string, std::vector<std::string>> by_type;
        for (const auto& [type, target] : r.alerts) by_type[type].push_back(target);
        std::string text;
        for (const auto& [type, targets] : by_type) {
            text += (text.empty() ? "" : "; ") + type + " on";
            for (size_t k = 0; k < targets.size() && k < 3; ++k) text += (k ? ", " : " ") + targets[k];
            if (targets.size() > 3) text += " and " + std::to_string(targets.size() - 3) + " more";
        }
        std::printf("%-12s alerts: %s (%llu intervals judged, %.2f ms each on the control core; %llu publications, %llu "
                    "late)\n",
                    r.workload.c_str(), text.empty() ? "none" : text.c_str(), (unsigned long long)r.alert_counts.intervals,
                    r.judged ? 1e3 * r.judge_seconds / double(r.judged) : 0.0, (unsigned long long)r.publications,
                    (unsigned long long)r.publish_late);
    }

    // The rules (--rules): what each matched over the whole workload (warm-up included).
    if (o.rules)
        for (const Result& r : results) {
            uint64_t total = 0;
            std::string text;
            for (const auto& rs : r.rule_stats) {
                total += rs.hits;
                if (rs.hits) text += (text.empty() ? "" : ", ") + rs.name + " " + std::to_string(rs.hits);
            }
            std::printf("%-12s rules: %zu, %llu hits (%s); would drop %llu, alerted %llu\n", r.workload.c_str(),
                        o.rules->size(), (unsigned long long)total, text.empty() ? "none" : text.c_str(),
                        (unsigned long long)r.rules_would_drop, (unsigned long long)r.rules_alerted);
        }

    // --quick is the test suite's correctness run: counts must add up, nothing may be lost, and
    // detection must see the SYN flood (and nothing in the established traffic).
    int failures = 0, checks = 0;
    if (quick) {
        auto check = [&](bool ok, const Result& r, const std::string& what) {
            std::printf("%-12s %-64s %s\n", r.workload.c_str(), what.c_str(), ok ? "ok" : "FAIL");
            failures += !ok;
            ++checks;
        };
        for (size_t i = 0; i < results.size(); ++i) {
            const Result& r = results[i];
            const Workload& wl = wls[i];
            check(r.packets > 0 && r.bare_packets > 0 && (!r.measured[0] || r.mode_packets[0] > 0), r,
                  "packets flowed through bare RX and the pipeline");
            check(r.outcome_sum == r.total_packets, r, "every packet has exactly one outcome");
            check(r.established_lost == 0, r, "no established connection lost or mis-stated");
            check(r.untracked == 0, r, "no connection refused by the table");
            check(r.records_dropped == 0, r, "no connection record dropped");
            check(r.connections_created > 0, r, "connections were tracked");
            if (o.rules) {
                uint64_t hits = 0, drops = 0;
                for (const auto& rs : r.rule_stats) hits += rs.hits, drops += rs.drops;
                check(drops == r.rules_would_drop && hits >= drops, r, "rules: per-rule drops add up to rules_would_drop");
            }
            if (!r.detect) continue;
            check(r.alert_counts.intervals > 0, r, "detection: intervals published and judged");
            if (!wl.flood_victim.empty()) {
                const std::string addr = wl.flood_victim.substr(0, wl.flood_victim.rfind(':'));
                bool seen = false;
                for (const auto& [type, target] : r.alerts)
                    seen = seen || (type == "syn_flood" && (target == wl.flood_victim || target == addr));
                check(seen && r.alert_counts.started[unsigned(detect::AlertType::syn_flood)] > 0, r,
                      "detection: syn_flood alert on " + wl.flood_victim);
            }
            if (wl.quiet) check(r.alerts.empty(), r, "detection: no alert");
        }
        std::printf("%d passed, %d failed\n", checks - failures, failures);
    }
    if (!json_path.empty()) {
        std::ofstream out(json_path);
        auto opt = [](bool ok, double v) { return ok ? nlohmann::json(v) : nlohmann::json(nullptr); };
        for (const auto& r : results) {
            const bool both = r.measured[0] && r.measured[1];
            nlohmann::ordered_json j = {
                {"workload", r.workload}, {"mpps", r.mpps}, {"bare_rx_mpps", r.bare_mpps}, {"ratio", r.ratio},
                {"ns_per_packet", r.ns_per_packet}, {"bare_rx_ns_per_packet", r.bare_ns_per_packet},
                {"cycles_per_packet", r.cycles_per_packet}, {"bytes_per_connection", r.bytes_per_connection},
                {"table_capacity", r.capacity}, {"packets", r.packets}, {"bare_rx_packets", r.bare_packets},
                {"detect", r.measured[0] && r.measured[1] ? "both" : r.measured[1] ? "on" : "off"},
                {"mpps_detect_off", opt(r.measured[0], r.mode_mpps[0])},
                {"mpps_detect_on", opt(r.measured[1], r.mode_mpps[1])},
                {"ns_per_packet_detect_off", opt(r.measured[0], r.mode_ns[0])},
                {"ns_per_packet_detect_on", opt(r.measured[1], r.mode_ns[1])},
                {"detect_ns_per_packet", opt(both, r.detect_ns)},
                {"detect_relative_cost", opt(both, r.detect_rel)},
                {"packets_detect_off", r.mode_packets[0]}, {"packets_detect_on", r.mode_packets[1]},
                {"seconds_detect_off", r.mode_seconds[0]}, {"seconds_detect_on", r.mode_seconds[1]},
                {"rounds", o.rounds}, {"interval_ms", o.interval_ms},
                {"outcome_sum", r.outcome_sum}, {"pipeline_packets", r.total_packets},
                {"established_checked", r.established_checked},
                {"established_lost", r.established_lost}, {"connections_created", r.connections_created},
                {"untracked_no_room", r.untracked}, {"conn_records", r.conn_records},
                {"conn_records_dropped", r.records_dropped}};
            if (o.rules) {
                nlohmann::ordered_json list = nlohmann::ordered_json::array();
                for (const auto& rs : r.rule_stats)
                    list.push_back({{"name", rs.name}, {"action", rs.action}, {"hits", rs.hits}, {"drops", rs.drops}});
                j["rules_file"] = rules_path;
                j["rules"] = list;
                j["rules_would_drop"] = r.rules_would_drop;
                j["rules_alerted"] = r.rules_alerted;
                j["victims_fed"] = o.victims;
            }
            if (r.detect) {
                nlohmann::ordered_json started = nlohmann::ordered_json::object();
                for (unsigned t = 0; t < detect::kAlertTypeCount; ++t)
                    if (r.alert_counts.started[t])
                        started[detect::alert_type_name(detect::AlertType(t))] = r.alert_counts.started[t];
                nlohmann::ordered_json list = nlohmann::ordered_json::array();
                for (const auto& [type, target] : r.alerts) list.push_back({{"type", type}, {"target", target}});
                j["alerts_started"] = started;
                j["alerts"] = list;
                j["intervals_judged"] = r.alert_counts.intervals;
                j["late_intervals"] = r.alert_counts.late_intervals;
                j["publications"] = r.publications;
                j["publish_late"] = r.publish_late;
                j["control_ms_per_interval"] = r.judged ? 1e3 * r.judge_seconds / double(r.judged) : 0.0;
            }
            out << j.dump() << "\n";
        }
        if (!out) {
            std::fprintf(stderr, "stateline-bench: cannot write %s\n", json_path.c_str());
            return 1;
        }
    }
    rte_eal_cleanup();
    return failures ? 1 : 0;
}
