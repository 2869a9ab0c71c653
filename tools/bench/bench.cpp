// SPDX-License-Identifier: BSD-3-Clause
// stateline-bench: the appliance's real worker loop (src/worker.cpp: rx_burst, parse, bulk
// lookup, TCP tracker, free, expiry) fed through the DPDK RX path from traffic held in memory
// (net_pcap with infinite_rx), for named workloads. For each it measures, on the same core in
// the same run, the bare RX rate (rx_burst + free, nothing else) and the pipeline rate.
//
// A benchmark reports; it never fails on a speed. The test suite runs it briefly (--quick) for
// correctness: the counts add up and no established connection is lost.
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
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

#include "conn_sink.hpp"
#include "frame_writer.hpp"
#include "parser.hpp"
#include "pcap_out.hpp"
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

void build_lifecycle(Workload& wl, uint32_t conns, uint32_t flood_pct, const std::string& dir,
                     std::mt19937_64& rng, std::string& err) {
    wl.capacity = conns + conns / 4 + 65536;
    std::vector<std::vector<std::vector<uint8_t>>> per(conns);
    for (uint32_t i = 0; i < conns; ++i) lifecycle_frames(make_conn(i, rng), per[i]);
    std::vector<std::vector<uint8_t>> frames;
    interleave(per, 4096, frames, rng);
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

struct Result {
    std::string workload;
    double mpps = 0, bare_mpps = 0, ratio = 0, ns_per_packet = 0, cycles_per_packet = 0;
    double bare_ns_per_packet = 0;
    double bytes_per_connection = 0;
    uint64_t packets = 0, bare_packets = 0;
    uint64_t established_checked = 0, established_lost = 0;
    uint64_t connections_created = 0, untracked = 0, conn_records = 0, records_dropped = 0;
    uint64_t outcome_sum = 0;
    uint32_t capacity = 0;
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

// Pushes the warm-up frames through the worker's own pipeline, burst by burst.
void run_warmup(Worker& w, rte_mempool* pool, const FrameList& fl) {
    rte_mbuf* m[kMaxBurst];
    for (size_t i = 0; i < fl.size();) {
        uint16_t n = uint16_t(std::min<size_t>(32, fl.size() - i));
        if (rte_pktmbuf_alloc_bulk(pool, m, n) != 0) {
            std::fprintf(stderr, "stateline-bench: mbuf pool exhausted during warm-up\n");
            std::exit(1);
        }
        w.now_ns = wall_ns();
        w.table->set_now(uint32_t(w.now_ns / 1'000'000));
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

Result run_workload(Workload& wl, unsigned lcore, double seconds, const tcp::Tracker& tracker) {
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
    if (!setup_port(port, 1, 1024, pool, false, pi, err)) {
        std::fprintf(stderr, "stateline-bench: %s\n", err.c_str());
        std::exit(1);
    }

    // The worker, as the appliance builds it.
    flow::FlowTableConfig tcfg;
    tcfg.capacity = wl.capacity;
    const size_t tbytes = flow::FlowTable::memory_size(tcfg.capacity);
    void* mem = rte_malloc("bench_table", tbytes, 64);
    if (!mem) {
        std::fprintf(stderr, "stateline-bench: cannot allocate %zu MiB for the flow table\n", tbytes >> 20);
        std::exit(1);
    }
    auto w = std::make_unique<Worker>();
    RunState run;
    w->run = &run;
    w->burst = 32;
    w->lcore = lcore;
    w->tracker = &tracker;
    flow::FlowTable table(tcfg, mem, worker_on_remove, w.get());
    w->table = &table;
    std::string rname = "bench_conn" + std::to_string(seq);
    w->conn_ring = rte_ring_create_elem(rname.c_str(), sizeof(connlog::ConnRecord), 65536, int(rte_socket_id()),
                                        RING_F_SP_ENQ | RING_F_SC_DEQ);
    w->tsc_hz = rte_get_tsc_hz();
    w->tsc_base = rte_rdtsc();
    w->ns_base = wall_ns();
    w->input = InputKind::ports;
    w->rxq[w->nb_rxq++] = RxQueue{port, 0, packet::LinkType::ethernet};
    r.bytes_per_connection = double(tbytes) / tcfg.capacity;

    ConnSink sink;
    std::fprintf(stderr, "  %-12s warm-up: %zu frames through the pipeline\n", wl.name.c_str(), wl.warmup.size());
    run_warmup(*w, pool, wl.warmup);
    sink.drain(*w);
    const auto before = counters::collect(w->counters, table.stats());

    // Bare RX, then the pipeline, on the same lcore, for the same time.
    auto timed = [&](auto launch) {
        run.stop = false;
        launch();
        auto t0 = std::chrono::steady_clock::now();
        while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            sink.drain(*w);  // the control core's job, as in the appliance
        }
        run.stop = true;
        rte_eal_wait_lcore(lcore);
        sink.drain(*w);
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    BareArgs ba{port, &run};
    std::fprintf(stderr, "  %-12s bare RX for %.1f s\n", wl.name.c_str(), seconds);
    double tb = timed([&] { rte_eal_remote_launch(bare_rx_main, &ba, lcore); });
    std::fprintf(stderr, "  %-12s pipeline for %.1f s\n", wl.name.c_str(), seconds);
    double tp = timed([&] { rte_eal_remote_launch(worker_main, w.get(), lcore); });

    const auto after = counters::collect(w->counters, table.stats());
    r.bare_packets = ba.packets;
    r.packets = counter(after, "rx", "rx_packets") - counter(before, "rx", "rx_packets");
    r.bare_mpps = ba.packets / tb / 1e6;
    r.mpps = r.packets / tp / 1e6;
    r.ratio = r.bare_mpps > 0 ? r.mpps / r.bare_mpps : 0;
    r.ns_per_packet = r.packets ? tp * 1e9 / double(r.packets) : 0;
    r.bare_ns_per_packet = ba.packets ? tb * 1e9 / double(ba.packets) : 0;
    r.cycles_per_packet = r.packets ? tp * double(rte_get_tsc_hz()) / double(r.packets) : 0;
    r.outcome_sum = counter_sum(after, "outcomes") - counter_sum(before, "outcomes");
    r.connections_created = counter(after, "flows", "created");
    r.untracked = counter(after, "rx", "untracked_no_room");
    r.conn_records = sink.records;
    r.records_dropped = counter(after, "rx", "conn_records_dropped");

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

    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
    rte_ring_free(w->conn_ring);
    rte_free(mem);
    rte_mempool_free(pool);
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App cli{"stateline-bench: the Stateline worker pipeline against bare DPDK RX, traffic held in memory",
                 "stateline-bench"};
    std::vector<std::string> names;
    double seconds = 3.0;
    uint32_t scale = 1'000'000;
    std::string json_path;
    bool quick = false;
    uint64_t seed = 1;
    cli.add_option("workloads", names, "established, synflood, lifecycle, mixed (default: all)")
        ->check(CLI::IsMember({"established", "synflood", "lifecycle", "mixed"}));
    cli.add_option("-t,--seconds", seconds, "Seconds of each measurement (bare RX, then pipeline)");
    cli.add_option("-n,--connections", scale, "Connections of the established workload (synflood keeps 1/10 of it)");
    cli.add_option("--json", json_path, "Write one JSON object per workload to this file");
    cli.add_option("--seed", seed, "Random seed of the traffic");
    cli.add_flag("--quick", quick, "Small and short: a correctness run for the test suite (10k connections, 0.3 s)");
    cli.footer(
        "Runs on EAL lcore 1 (the measuring core) with lcore 0 draining connection records, as the\n"
        "control core does. Ratio = pipeline Mpps / bare RX Mpps, both measured in this run.\n"
        "Example: build/tools/stateline-bench established synflood --seconds 5 --json bench.json");
    CLI11_PARSE(cli, argc, argv);
    if (quick) {
        scale = 10'000;
        seconds = 0.3;
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
        } else if (n == "synflood") {
            wl.description = "new spoofed SYNs (9 in 10) over " + std::to_string(scale / 10) + " established connections";
            build_synflood(wl, scale / 10, scale, scale / 2, dir, rng, err);
        } else if (n == "lifecycle") {
            wl.description = "short connections of 10 packets, full open and close";
            build_lifecycle(wl, scale / 10, 0, dir, rng, err);
        } else {
            wl.description = "lifecycle traffic plus 20% spoofed SYNs";
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
        results.push_back(run_workload(wl, lcore, seconds, tracker));
        unlink(wl.pcap.c_str());
    }
    rmdir(dir);

    std::printf("%-12s %9s %9s %6s %8s %8s %9s %9s %s\n", "workload", "Mpps", "bare Mpps", "ratio", "ns/pkt", "cyc/pkt",
                "B/conn", "est.lost", "description");
    for (size_t i = 0; i < results.size(); ++i) {
        const Result& r = results[i];
        std::printf("%-12s %9.2f %9.2f %6.2f %8.1f %8.0f %9.1f %9s %s\n", r.workload.c_str(), r.mpps, r.bare_mpps, r.ratio,
                    r.ns_per_packet, r.cycles_per_packet, r.bytes_per_connection,
                    r.established_checked ? std::to_string(r.established_lost).c_str() : "-", wls[i].description.c_str());
    }
    // --quick is the test suite's correctness run: counts must add up, nothing may be lost.
    int failures = 0;
    if (quick) {
        auto check = [&](bool ok, const Result& r, const char* what) {
            std::printf("%-12s %-58s %s\n", r.workload.c_str(), what, ok ? "ok" : "FAIL");
            failures += !ok;
        };
        for (const auto& r : results) {
            check(r.packets > 0 && r.bare_packets > 0, r, "packets flowed through bare RX and the pipeline");
            check(r.outcome_sum == r.packets, r, "every packet has exactly one outcome");
            check(r.established_lost == 0, r, "no established connection lost or mis-stated");
            check(r.untracked == 0, r, "no connection refused by the table");
            check(r.records_dropped == 0, r, "no connection record dropped");
            check(r.connections_created > 0, r, "connections were tracked");
        }
        std::printf("%d passed, %d failed\n", int(results.size()) * 6 - failures, failures);
    }
    if (!json_path.empty()) {
        std::ofstream out(json_path);
        for (const auto& r : results) {
            nlohmann::ordered_json j = {
                {"workload", r.workload}, {"mpps", r.mpps}, {"bare_rx_mpps", r.bare_mpps}, {"ratio", r.ratio},
                {"ns_per_packet", r.ns_per_packet}, {"bare_rx_ns_per_packet", r.bare_ns_per_packet},
                {"cycles_per_packet", r.cycles_per_packet}, {"bytes_per_connection", r.bytes_per_connection},
                {"table_capacity", r.capacity}, {"packets", r.packets}, {"bare_rx_packets", r.bare_packets},
                {"outcome_sum", r.outcome_sum}, {"established_checked", r.established_checked},
                {"established_lost", r.established_lost}, {"connections_created", r.connections_created},
                {"untracked_no_room", r.untracked}, {"conn_records", r.conn_records},
                {"conn_records_dropped", r.records_dropped}};
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
