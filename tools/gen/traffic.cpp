// SPDX-License-Identifier: BSD-3-Clause
#include "traffic.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "frame_writer.hpp"
#include "rng.hpp"

namespace stateline::gen {

std::string class_name(unsigned cls) {
    static const char* const kLegit[] = {
#define STATELINE_X(name, help) #name,
        STATELINE_GEN_LEGIT_CLASSES(STATELINE_X)
#undef STATELINE_X
    };
    if (cls < kLegitClassCount) return kLegit[cls];
    if (cls < kClassCount) return std::string("attack_") + attack_type_name(static_cast<AttackType>(cls - kLegitClassCount));
    return "?";
}

namespace {

constexpr uint64_t kMs = 1000000ull;
constexpr uint64_t kUs = 1000ull;
constexpr uint64_t kSec = 1000000000ull;
constexpr uint64_t kNever = UINT64_MAX;

// Serialisation time of a full-size frame (1514 bytes + preamble and gap, ~1538 bytes).
constexpr uint32_t kNicGap = 1230;    // 10 Gb/s: the server's NIC
constexpr uint32_t kLanGap = 12300;   // 1 Gb/s: a LAN client
constexpr uint16_t kInitialWindow = 10;  // segments (RFC 6928)
constexpr uint16_t kMaxRound = 128;      // server segments per round: below the clients' windows
constexpr uint16_t kMaxUploadRound = 43; // client segments per round: below the server's 64256 B
constexpr uint32_t kMinRto = 200 * kMs;  // Linux TCP_RTO_MIN
constexpr uint64_t kSynRetry = 1 * kSec; // RFC 6298 initial RTO; doubled per retry
constexpr unsigned kSynRetries = 3;      // then the client gives up (Linux: 6, ~127 s)
constexpr unsigned kSynAckRetries = 5;   // Linux tcp_synack_retries: 1, 2, 4, 8, 16 s

// ------------------------------------------------------------------------------ event heap

struct Event {
    uint64_t t;
    uint32_t id;
    uint32_t pad;
};
inline bool before(const Event& a, const Event& b) { return a.t < b.t || (a.t == b.t && a.id < b.id); }

// 4-ary: the four children of a node are 64 contiguous bytes (one cache line when aligned), and
// the tree is half as deep as a binary heap: fewer cache misses per sift when it holds
// millions of connections. Ties are broken by actor id, so the order is a pure function of
// the event times.
class EventHeap {
public:
    void reserve(size_t n) { h_.reserve(n); }
    bool empty() const { return h_.empty(); }
    size_t size() const { return h_.size(); }
    const Event& top() const { return h_[0]; }
    void push(Event e) {
        h_.push_back(e);
        sift_up(h_.size() - 1);
    }
    void pop() {
        const Event last = h_.back();
        h_.pop_back();
        if (!h_.empty()) {
            h_[0] = last;
            sift_down(0);
        }
    }
    void replace_top(Event e) {
        h_[0] = e;
        sift_down(0);
    }

private:
    void sift_up(size_t i) {
        const Event e = h_[i];
        while (i > 0) {
            const size_t p = (i - 1) / 4;
            if (!before(e, h_[p])) break;
            h_[i] = h_[p];
            i = p;
        }
        h_[i] = e;
    }
    void sift_down(size_t i) {
        const Event e = h_[i];
        const size_t n = h_.size();
        for (;;) {
            const size_t c = 4 * i + 1;
            if (c >= n) break;
            size_t best = c;
            const size_t end = std::min(c + 4, n);
            for (size_t k = c + 1; k < end; ++k)
                if (before(h_[k], h_[best])) best = k;
            if (!before(h_[best], e)) break;
            h_[i] = h_[best];
            i = best;
        }
        h_[i] = e;
    }
    std::vector<Event> h_;
};

// ------------------------------------------------------------------------------ connections

enum Phase : uint8_t {
    // Legitimate connections.
    ph_syn,        // client SYN next (step = retries so far)
    ph_synack,     // server SYN-ACK next
    ph_ack,        // client ACK completing the handshake next
    ph_request,    // a client -> server transfer (the request), or waiting to start one
    ph_response,   // a server -> client transfer
    ph_close,      // teardown; step = packet index within it
    ph_rst_reply,  // after an injected RST: the server answers the client's next packet with RST
    // Attack-side entries.
    ph_halfopen,   // a spoofed SYN in the victim's backlog: SYN-ACK and its retransmissions
    ph_scan_open,  // a SYN scan hit an open port: SYN-ACK, then the scanner's kernel RST
    ph_connect,    // a connect() scan probe
};

enum ConnFlag : uint8_t {
    f_v6 = 0x01,
    f_loss = 0x02,      // one segment still to be lost (then retransmitted)
    f_reorder = 0x04,   // two segments still to be swapped
    f_halfopen = 0x08,  // counted in the service's SYN backlog
    f_killed = 0x10,    // an injected RST tore the server side down
    f_live = 0x20,      // established and listed for RST injection
    f_server_acked = 0x40,  // the server has sent a segment after its SYN-ACK
};

enum RoundFlag : uint8_t {
    r_seg_lost = 0x01,  // the last segment of the current round is lost after the capture point
    r_seg_swap = 0x02,  // the first two segments of the current round arrive swapped
    r_ack_same = 0x04,  // the ACK stream belongs to the current round (else to the previous)
    r_ack_dup = 0x08,   // a duplicate ACK is due before the next regular one
};

enum CloseKind : uint8_t { close_client_fin, close_server_fin, close_rst, close_simultaneous };

// One connection (or attack-side half-open entry). 64 bytes, one cache line: 10 million of them
// are 640 MB. Times are u32 nanosecond offsets from the connection's own next event (the heap
// key), which always lies within a few seconds.
struct Conn {
    uint32_t host;        // client host index (legit); source pool index (attack entries)
    uint16_t cport;       // client / attacker / scanner port
    uint16_t svc;         // service index; 0xffff: none (attack entry to a closed port)
    uint8_t phase;
    uint8_t step;
    uint8_t flags;        // ConnFlag
    uint8_t rflags;       // RoundFlag
    uint8_t pop;          // population (legit) / attack index (attack entries)
    uint8_t reqs_left;    // requests still to make
    uint8_t close_kind;   // CloseKind
    uint8_t injector;     // attack that injected an RST into this connection
    uint32_t c_nxt;       // client's next sequence number (its ISN during the handshake)
    uint32_t s_nxt;       // server's
    uint32_t xfer_end;    // sequence number ending the current transfer (attack: victim offset)
    uint32_t ack_val;     // receiver's last ACK value
    uint32_t ack_end;     // ACK value that ends the ACK stream's round
    uint32_t round_seq;   // first byte of the current round
    uint32_t seg_gap;     // ns between this round's segments
    uint32_t ack_gap;     // ns between the ACK stream's ACKs
    uint32_t t_seg_off;   // next segment, ns after the heap key
    uint32_t t_ack_off;   // next ACK, ns after the heap key
    uint16_t seg_left;    // segments of the round still to send
    uint16_t ack_left;    // regular ACKs still to send
    uint16_t round_n;     // segments in the current round
    uint16_t port2;       // attack entries: victim port
};
// One cache line per connection: the pool of 10M is 640 MB and a step touches one line.
static_assert(sizeof(Conn) == 64, "Conn is one cache line");

class ConnPool {
public:
    static constexpr unsigned kChunkBits = 16;
    static constexpr uint32_t kChunk = 1u << kChunkBits;

    uint32_t alloc() {
        uint32_t id;
        if (!free_.empty()) {
            id = free_.back();
            free_.pop_back();
        } else {
            if (next_ == chunks_.size() * kChunk) chunks_.push_back(std::make_unique<Conn[]>(kChunk));
            id = next_++;
        }
        ++live_;
        if (live_ > peak_) peak_ = live_;
        return id;
    }
    void release(uint32_t id) {
        free_.push_back(id);
        --live_;
    }
    Conn& operator[](uint32_t id) { return chunks_[id >> kChunkBits][id & (kChunk - 1)]; }
    uint64_t live() const { return live_; }
    uint64_t peak() const { return peak_; }

private:
    std::vector<std::unique_ptr<Conn[]>> chunks_;
    std::vector<uint32_t> free_;
    uint32_t next_ = 0;
    uint64_t live_ = 0, peak_ = 0;
};

constexpr uint32_t kSourceBit = 0x80000000u;

// ------------------------------------------------------------------------------ runtime state

struct ServerRt {
    uint8_t mac[6];
    uint16_t vlan;
    bool has_v4, has_v6;
    uint8_t v4[4];
    uint8_t v6[16];
};

struct LiveRef {
    uint32_t id;
    uint32_t host;
    uint16_t cport;
    uint8_t pop;
};

struct SvcRt {
    uint32_t server;
    uint16_t port;
    uint32_t backlog;
    bool cookies;
    uint32_t half_open = 0;
    bool track_live = false;
    std::vector<LiveRef> live;
    uint64_t live_count = 0;
};

// What is derived, not stored, for a legitimate connection.
struct ConnParams {
    uint32_t rtt;       // ns
    uint32_t link_gap;  // ns per full segment at the client's bottleneck
    uint32_t d_s;       // server stack delay, ns
    uint32_t app;       // client application delay, ns
    uint32_t mss;       // payload per full segment (MSS minus the timestamp option)
    uint32_t ts_c, ts_s;  // timestamp clock offsets
    uint32_t flow_c, flow_s;
    uint16_t client_win;
    uint8_t client_wscale;
    uint8_t ttl;
    bool ts;            // timestamps (Linux-like client); else a Windows-like client
    bool lan;
};

struct Population {
    const ClientSpec* spec = nullptr;
    int attack = -1;       // flash crowd: its attack index; baseline: -1
    uint8_t label = 0;     // 0 baseline; 1 + attack index
    uint64_t seed = 0;
    Rng rng;
    uint32_t hosts = 0, lan_hosts = 0;
    std::vector<uint8_t> v4;          // 4 bytes per host
    std::vector<uint16_t> next_port;  // ephemeral port counter per host
    std::vector<uint64_t> used;       // bitset: hosts that opened a connection
    uint64_t distinct = 0;
    std::vector<IpAddr> sample;
    unsigned v6_bits = 64;
    uint64_t v6_key = 0;
    uint32_t rtt_lan[4096], rtt_wan[4096];
    uint32_t wan_gap[16];
    std::vector<double> cum_weights;
    double geo_log = 0;               // log(1 - 1/mean) for the geometric request count
    // arrivals
    double peak_rate = 0;
    uint64_t start_ns = 0, end_ns = 0, next_ns = 0;
    double ramp_ns = 0;
};

struct Pending {
    uint64_t t;
    uint32_t peer;        // source pool index of the peer (spoofed source, reflector)
    uint32_t victim_off;  // victim = target.at(victim_off)
    uint32_t seq, ack;
    uint16_t victim_port, peer_port;
    uint8_t flags;
    uint8_t options;      // TcpOptions
    uint16_t pad;
};

struct AttackRt {
    const AttackSpec* spec = nullptr;
    uint32_t idx = 0;
    AttackType type{};
    uint8_t cls = 0;
    Rng rng;
    uint64_t start_ns = 0, end_ns = 0, next_ns = 0;
    double mean_gap_ns = 0;
    bool v6 = false;
    bool done = false;               // no more attacker packets
    // spoofed sources / reflectors
    unsigned src_bits = 0;
    uint64_t src_key = 0;
    uint32_t pool = 0;
    std::vector<uint64_t> seen;
    // targets
    unsigned dst_bits = 0;
    std::unordered_map<uint64_t, int> dst_server;  // target offset -> server
    // scans
    uint64_t probes_total = 0, probe_next = 0, perm_key = 0;
    uint16_t scan_sport = 0;
    uint16_t ephemeral = 0;
    uint32_t scanner_rtt = 0;
    uint8_t scanner_ttl = 64;
    // rst injection
    std::unordered_set<uint64_t> injected_hosts;
    // victims' answers with a constant delay: a FIFO is already in time order
    std::vector<Pending> ring;
    size_t ring_head = 0, ring_count = 0;
    uint32_t d_s = 0;
    // flash crowd
    int pop = -1;
};

struct SourceRef {
    bool attack;
    uint32_t index;
};

const uint8_t kRouterMac[6] = {0x00, 0x00, 0x5e, 0x00, 0x53, 0x01};
const uint8_t kUnknownMac[6] = {0x00, 0x00, 0x5e, 0x00, 0x53, 0xfe};

inline bool seq_lt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

// ------------------------------------------------------------------------------ engine

class Engine {
public:
    Engine(const Scenario& sc, PcapWriter& out, const GenerateOptions& opt);
    RunStats run();

private:
    // setup
    void setup_population(Population& p, const ClientSpec& spec, uint64_t seed);
    void setup_attack(AttackRt& a, uint32_t idx);

    // actors
    uint64_t step_source(uint32_t k, uint64_t now);
    uint64_t step_population(Population& p, uint64_t now);
    uint64_t step_attack(AttackRt& a, uint64_t now);
    uint64_t step_conn(uint32_t id, Conn& c, uint64_t now);
    void finish_conn(uint32_t id, Conn& c);

    // legitimate connections
    void open_connection(Population& p, uint64_t now);
    ConnParams params(const Conn& c) const;
    uint64_t legit_step(uint32_t id, Conn& c, uint64_t now, const ConnParams& cp);
    uint64_t start_xfer(Conn& c, uint64_t start, bool server_sends, uint32_t bytes, const ConnParams& cp);
    uint64_t xfer_step(Conn& c, uint64_t now, const ConnParams& cp);
    void arm_acks(Conn& c, uint64_t ts, uint64_t& ta, bool srv, const ConnParams& cp);
    void next_round(Conn& c, uint64_t now, uint64_t& ts, uint64_t ta, bool srv, const ConnParams& cp);
    void round_faults(Conn& c, uint16_t n);
    uint64_t xfer_done(Conn& c, uint64_t now, const ConnParams& cp);
    uint64_t close_step(Conn& c, uint64_t now, const ConnParams& cp);
    void legit_emit(Conn& c, const ConnParams& cp, uint64_t t, bool from_client, uint32_t seq,
                    uint32_t ack, uint8_t flags, uint32_t payload, bool syn_options, LegitClass cls);
    void client_addr(const Population& p, uint32_t host, bool v6, uint8_t out[16]) const;
    void live_add(uint32_t id, Conn& c);
    void live_remove(Conn& c);

    // attacks
    void attack_emit(AttackRt& a, uint64_t t, const Frame& f, bool response);
    void src_addr(const AttackRt& a, uint32_t idx, uint8_t out[16]) const;
    void note_source(AttackRt& a, uint32_t idx);
    int server_at(const AttackRt& a, uint64_t off) const;
    int service_of(int server, uint16_t port) const;
    void ring_push(AttackRt& a, const Pending& p);
    void emit_pending(AttackRt& a, const Pending& p);
    void flood_packet(AttackRt& a, uint64_t now);
    void scan_packet(AttackRt& a, uint64_t now);
    void inject_packet(AttackRt& a, uint64_t now);
    uint64_t attack_entry_step(uint32_t id, Conn& c, uint64_t now);
    void fill_victim(const AttackRt& a, const Conn& c, Frame& f, uint8_t vaddr[16]) const;
    const uint8_t* server_addr(uint32_t server, bool v6) const {
        return v6 ? servers_[server].v6 : servers_[server].v4;
    }

    // Actors created during a step are queued here and pushed after the stepping actor is
    // rescheduled: a push before replace_top() could move a new event to the top.
    void spawn(uint64_t t, uint32_t id) { spawned_.push_back({t, id, 0}); }

    // output
    void emit(uint64_t t, const Frame& f, unsigned cls, unsigned label);
    void flush_labels();

    const Scenario& sc_;
    PcapWriter& out_;
    GenerateOptions opt_;
    uint64_t epoch_;
    uint64_t dur_ns_;
    uint32_t snaplen_;
    RunStats st_;
    EventHeap heap_;
    ConnPool pool_;
    std::vector<ServerRt> servers_;
    std::vector<SvcRt> svcs_;
    std::unordered_map<uint32_t, int> svc_by_port_;  // server << 16 | port -> service
    std::vector<Population> pops_;
    std::vector<AttackRt> attacks_;
    std::vector<SourceRef> sources_;
    std::vector<uint8_t> label_buf_;
    std::vector<Event> spawned_;
    // Set by legit_emit for a connection whose server side was reset by an injected RST.
    bool killed_suppressed_ = false;
    bool killed_client_sent_ = false;
    uint32_t killed_client_ack_ = 0;
};

Engine::Engine(const Scenario& sc, PcapWriter& out, const GenerateOptions& opt)
    : sc_(sc), out_(out), opt_(opt) {
    epoch_ = sc.start_epoch_ns;
    dur_ns_ = static_cast<uint64_t>(std::llround(sc.duration * 1e9));
    snaplen_ = out.snaplen();
    st_.attacks.resize(sc.attacks.size());
    if (opt_.packet_labels) label_buf_.reserve(1 << 20);

    servers_.resize(sc.servers.size());
    for (size_t i = 0; i < sc.servers.size(); ++i) {
        const auto& s = sc.servers[i];
        auto& r = servers_[i];
        std::memcpy(r.mac, kRouterMac, 6);
        r.mac[5] = static_cast<uint8_t>(0x10 + i);
        r.vlan = s.vlan;
        r.has_v4 = s.has_v4;
        r.has_v6 = s.has_v6;
        std::memcpy(r.v4, s.v4.b.data(), 4);
        std::memcpy(r.v6, s.v6.b.data(), 16);
    }
    svcs_.resize(sc.services.size());
    for (size_t i = 0; i < sc.services.size(); ++i) {
        auto& v = svcs_[i];
        v.server = sc.services[i].server;
        v.port = sc.services[i].port;
        v.backlog = sc.servers[v.server].backlog;
        v.cookies = sc.servers[v.server].syncookies;
        svc_by_port_[v.server << 16 | v.port] = static_cast<int>(i);
    }

    // Every source has its own random stream: SplitMix64 of (seed, source number).
    uint64_t stream = 0;
    if (sc.clients.rate > 0 && !sc.clients.targets.empty()) {
        pops_.emplace_back();
        setup_population(pops_.back(), sc.clients, mix64(opt.seed, ++stream));
        pops_.back().start_ns = 0;
        pops_.back().end_ns = dur_ns_;
    }
    attacks_.resize(sc.attacks.size());
    for (size_t i = 0; i < sc.attacks.size(); ++i) {
        attacks_[i].rng.reseed(mix64(opt.seed, 1000 + i));
        setup_attack(attacks_[i], static_cast<uint32_t>(i));
    }
    for (size_t i = 0; i < attacks_.size(); ++i) {
        if (attacks_[i].type != AttackType::flash_crowd) continue;
        const auto& spec = sc.attacks[i];
        pops_.emplace_back();
        Population& p = pops_.back();
        setup_population(p, spec.crowd, mix64(opt.seed, 2000 + i));
        p.attack = static_cast<int>(i);
        p.label = static_cast<uint8_t>(1 + i);
        p.start_ns = attacks_[i].start_ns;
        p.end_ns = attacks_[i].end_ns;
        p.ramp_ns = spec.ramp * 1e9;
        attacks_[i].pop = static_cast<int>(pops_.size() - 1);
    }
    for (size_t i = 0; i < pops_.size(); ++i) sources_.push_back({false, static_cast<uint32_t>(i)});
    for (size_t i = 0; i < attacks_.size(); ++i)
        if (attacks_[i].type != AttackType::flash_crowd) sources_.push_back({true, static_cast<uint32_t>(i)});
}

void Engine::setup_population(Population& p, const ClientSpec& spec, uint64_t seed) {
    p.spec = &spec;
    p.seed = seed;
    p.rng.reseed(seed);
    // Hosts must fit their prefixes (less network and broadcast addresses).
    const uint64_t lan_room = spec.lan_prefix.size() > 2 ? spec.lan_prefix.size() - 2 : 1;
    const uint64_t wan_room = spec.wan_prefix.size() > 2 ? spec.wan_prefix.size() - 2 : 1;
    uint64_t lan = static_cast<uint64_t>(std::llround(spec.hosts * spec.lan_share));
    uint64_t wan = spec.hosts - std::min<uint64_t>(lan, spec.hosts);
    lan = std::min(lan, lan_room);
    wan = std::min(wan, wan_room);
    if (lan + wan == 0) wan = 1;
    p.lan_hosts = static_cast<uint32_t>(lan);
    p.hosts = static_cast<uint32_t>(lan + wan);
    p.v4.resize(4ull * p.hosts);
    const uint64_t key_lan = mix64(seed, 11), key_wan = mix64(seed, 12);
    for (uint32_t h = 0; h < p.hosts; ++h) {
        const bool is_lan = h < p.lan_hosts;
        const Prefix& px = is_lan ? spec.lan_prefix : spec.wan_prefix;
        const uint64_t room = is_lan ? lan_room : wan_room;
        const uint64_t idx = is_lan ? h : h - p.lan_hosts;
        const IpAddr a = px.at(1 + permute_below(idx, room, is_lan ? key_lan : key_wan));
        std::memcpy(&p.v4[4ull * h], a.b.data(), 4);
    }
    p.next_port.resize(p.hosts);
    for (uint32_t h = 0; h < p.hosts; ++h) p.next_port[h] = static_cast<uint16_t>(32768 + mix64(seed ^ h) % 28232);
    p.used.assign((p.hosts + 63) / 64, 0);
    p.v6_bits = std::min(64u, spec.v6_prefix.host_bits());
    p.v6_key = mix64(seed, 13);
    // Per-host RTT and bottleneck drawn once into tables indexed by a hash of the host.
    Rng r(mix64(seed, 14));
    for (auto& v : p.rtt_lan)
        v = static_cast<uint32_t>(std::clamp(r.lognormal(spec.rtt_lan_ms, spec.rtt_sigma), 0.05, 20.0) * 1e6);
    for (auto& v : p.rtt_wan)
        v = static_cast<uint32_t>(std::clamp(r.lognormal(spec.rtt_wan_ms, spec.rtt_sigma), 2.0, 1000.0) * 1e6);
    static constexpr double kWanMbps[16] = {4, 8, 10, 16, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200, 300, 500};
    for (unsigned i = 0; i < 16; ++i) p.wan_gap[i] = static_cast<uint32_t>(1538.0 * 8 / kWanMbps[i] * 1e3);
    double sum = 0;
    for (double w : spec.weights) p.cum_weights.push_back(sum += w);
    p.geo_log = spec.requests_mean > 1.0 ? std::log(1.0 - 1.0 / spec.requests_mean) : 0;
    p.peak_rate = spec.rate;
}

void Engine::setup_attack(AttackRt& a, uint32_t idx) {
    const AttackSpec& s = sc_.attacks[idx];
    a.spec = &s;
    a.idx = idx;
    a.type = s.type;
    a.cls = static_cast<uint8_t>(kLegitClassCount + static_cast<unsigned>(s.type));
    a.v6 = s.target.base.v6;
    a.start_ns = static_cast<uint64_t>(std::llround(s.start * 1e9));
    const double end_s = s.duration < 0 ? sc_.duration : std::min(sc_.duration, s.start + s.duration);
    a.end_ns = static_cast<uint64_t>(std::llround(end_s * 1e9));
    a.mean_gap_ns = 1e9 / s.rate;
    a.dst_bits = s.target.host_bits();
    for (size_t i = 0; i < sc_.servers.size(); ++i) {
        const auto& sv = sc_.servers[i];
        const IpAddr* addr = a.v6 ? (sv.has_v6 ? &sv.v6 : nullptr) : (sv.has_v4 ? &sv.v4 : nullptr);
        if (!addr || !s.target.contains(*addr)) continue;
        // Offset of the server inside the target prefix (its low 64 bits).
        uint64_t off = 0;
        const unsigned n = a.v6 ? 16 : 4;
        for (unsigned b = (n > 8 ? n - 8 : 0); b < n; ++b) off = off << 8 | addr->b[b];
        uint64_t base = 0;
        for (unsigned b = (n > 8 ? n - 8 : 0); b < n; ++b) base = base << 8 | s.target.base.b[b];
        a.dst_server[off - base] = static_cast<int>(i);
    }
    a.src_bits = s.sources.host_bits();
    a.src_key = mix64(a.rng.next());
    a.pool = s.source_count ? s.source_count : 1;
    a.seen.assign((a.pool + 63) / 64, 0);
    a.d_s = 20000 + static_cast<uint32_t>(a.rng.below(30000));
    a.scanner_rtt = static_cast<uint32_t>(std::clamp(a.rng.lognormal(30, 0.5), 5.0, 300.0) * 1e6);
    a.scanner_ttl = static_cast<uint8_t>(64 - 8 - a.rng.below(10));
    a.scan_sport = static_cast<uint16_t>(33000 + a.rng.below(30000));
    a.ephemeral = static_cast<uint16_t>(32768 + a.rng.below(20000));
    a.perm_key = a.rng.next();
    a.probes_total = (1ull << std::min(a.dst_bits, 20u)) * s.ports.size();
    a.ring.resize(1024);
    if (s.type == AttackType::rst_injection && s.service >= 0) svcs_[static_cast<size_t>(s.service)].track_live = true;
    // First packet: scans start on time, the rest after one exponential gap.
    const bool scan = s.type == AttackType::syn_scan || s.type == AttackType::stealth_scan ||
                      s.type == AttackType::connect_scan;
    a.next_ns = a.start_ns + (scan ? 0 : static_cast<uint64_t>(a.rng.exponential(a.mean_gap_ns)));
}

// ------------------------------------------------------------------------------ output

void Engine::emit(uint64_t t, const Frame& f, unsigned cls, unsigned label) {
    uint8_t* p = out_.frame_slot();
    const uint32_t wire = write_frame(f, p, snaplen_);
    out_.commit(epoch_ + t, wire);
    ++st_.packets;
    st_.wire_bytes += wire;
    ++st_.class_packets[cls];
    if (label) {
        AttackStats& a = st_.attacks[label - 1];
        ++a.packets;
        if (t < a.first_ns) a.first_ns = t;
        a.last_ns = t;
    }
    if (opt_.packet_labels) {
        label_buf_.push_back(static_cast<uint8_t>(label));
        label_buf_.push_back(static_cast<uint8_t>(cls));
        if (label_buf_.size() >= (1u << 20)) flush_labels();
    }
}

void Engine::flush_labels() {
    if (!label_buf_.empty()) std::fwrite(label_buf_.data(), 1, label_buf_.size(), opt_.packet_labels);
    label_buf_.clear();
}

// ------------------------------------------------------------------------------ run loop

RunStats Engine::run() {
    heap_.reserve(1024);
    for (size_t k = 0; k < sources_.size(); ++k) {
        uint64_t t;
        if (sources_[k].attack) {
            t = attacks_[sources_[k].index].next_ns;
        } else {
            Population& p = pops_[sources_[k].index];
            p.next_ns = p.start_ns + static_cast<uint64_t>(p.rng.exponential(1e9 / p.peak_rate));
            t = p.next_ns;
        }
        if (t < dur_ns_) heap_.push({t, kSourceBit | static_cast<uint32_t>(k), 0});
    }
    uint64_t events = 0;
    while (!heap_.empty()) {
        const Event e = heap_.top();
        if (e.t >= dur_ns_) break;
        uint64_t next;
        if (e.id & kSourceBit) {
            next = step_source(e.id & ~kSourceBit, e.t);
        } else {
            Conn& c = pool_[e.id];
            next = step_conn(e.id, c, e.t);
            if (next == kNever) finish_conn(e.id, c);
        }
        if (next == kNever || next >= dur_ns_) heap_.pop();
        else heap_.replace_top({next, e.id, 0});
        if (!spawned_.empty()) {
            for (const Event& s : spawned_) heap_.push(s);
            spawned_.clear();
        }
        if ((++events & 0xfffff) == 0 && opt_.progress)
            opt_.progress({st_.packets, static_cast<double>(e.t) / 1e9, sc_.duration});
    }
    if (opt_.packet_labels) flush_labels();
    st_.events = events;
    st_.peak_live_actors = pool_.peak();
    for (size_t i = 0; i < attacks_.size(); ++i) {
        AttackRt& a = attacks_[i];
        AttackStats& s = st_.attacks[i];
        if (a.type == AttackType::flash_crowd) {
            const Population& p = pops_[static_cast<size_t>(a.pop)];
            s.distinct_sources = p.distinct;
            s.sample = p.sample;
        }
    }
    if (!pops_.empty() && pops_[0].attack < 0) st_.baseline_distinct_hosts = pops_[0].distinct;
    return st_;
}

uint64_t Engine::step_source(uint32_t k, uint64_t now) {
    const SourceRef& s = sources_[k];
    return s.attack ? step_attack(attacks_[s.index], now) : step_population(pops_[s.index], now);
}

uint64_t Engine::step_conn(uint32_t id, Conn& c, uint64_t now) {
    if (c.phase >= ph_halfopen) return attack_entry_step(id, c, now);
    const ConnParams cp = params(c);
    killed_suppressed_ = killed_client_sent_ = false;
    uint64_t next = legit_step(id, c, now, cp);
    if (c.flags & f_killed) {
        if (killed_suppressed_) return kNever;  // the server has no connection left to send from
        if (killed_client_sent_) {
            if (!attacks_[c.injector].spec->responses) return kNever;
            // RFC 9293 section 3.10.7.1: no connection, ACK set -> <SEQ=SEG.ACK><CTL=RST>.
            c.phase = ph_rst_reply;
            c.s_nxt = killed_client_ack_;
            return now + cp.d_s;
        }
    }
    return next;
}

void Engine::finish_conn(uint32_t id, Conn& c) {
    if (c.flags & f_halfopen) --svcs_[c.svc].half_open;
    if (c.flags & f_live) live_remove(c);
    c.flags = 0;
    pool_.release(id);
}

// ------------------------------------------------------------------------------ legit clients

uint64_t Engine::step_population(Population& p, uint64_t now) {
    bool accept = true;
    if (p.attack >= 0 && p.ramp_ns > 0) {
        // Thinning (Lewis & Shedler): candidates at the peak rate, kept with probability
        // rate(t) / peak; the rate ramps up linearly, holds, and ramps down.
        const double t = static_cast<double>(now - p.start_ns);
        const double left = static_cast<double>(p.end_ns - now);
        const double f = std::min({1.0, t / p.ramp_ns, left / p.ramp_ns});
        accept = p.rng.uniform() < f;
    }
    if (accept) open_connection(p, now);
    p.next_ns = now + 1 + static_cast<uint64_t>(p.rng.exponential(1e9 / p.peak_rate));
    return p.next_ns < p.end_ns ? p.next_ns : kNever;
}

void Engine::open_connection(Population& p, uint64_t now) {
    const ClientSpec& s = *p.spec;
    Rng& r = p.rng;
    const uint32_t host = static_cast<uint32_t>(r.below(p.hosts));
    const double pick = r.uniform() * p.cum_weights.back();
    size_t ti = static_cast<size_t>(std::upper_bound(p.cum_weights.begin(), p.cum_weights.end(), pick) -
                                    p.cum_weights.begin());
    if (ti >= s.targets.size()) ti = s.targets.size() - 1;
    const uint32_t svc = s.targets[ti];
    const ServerRt& srv = servers_[svcs_[svc].server];
    const bool v6 = srv.has_v6 && (!srv.has_v4 || r.chance(s.ipv6_share));

    const uint32_t id = pool_.alloc();
    Conn& c = pool_[id];
    std::memset(&c, 0, sizeof(c));
    c.host = host;
    uint16_t& port = p.next_port[host];
    c.cport = port;
    port = static_cast<uint16_t>(port >= 60999 ? 32768 : port + 1);  // Linux ip_local_port_range
    c.svc = static_cast<uint16_t>(svc);
    c.phase = ph_syn;
    c.pop = static_cast<uint8_t>(&p - pops_.data());
    c.flags = v6 ? f_v6 : 0;
    if (r.chance(s.retransmit_share)) c.flags |= f_loss;
    if (r.chance(s.reorder_share)) c.flags |= f_reorder;
    uint64_t reqs = 1;
    if (p.geo_log < 0) reqs += static_cast<uint64_t>(std::floor(std::log(r.uniform_pos()) / p.geo_log));
    c.reqs_left = static_cast<uint8_t>(std::min<uint64_t>(reqs, 255));
    const double u = r.uniform();
    if (u < s.rst_share) c.close_kind = close_rst;
    else if (u < s.rst_share + s.simultaneous_close_share) c.close_kind = close_simultaneous;
    else if (r.chance(s.server_close_share)) c.close_kind = close_server_fin;
    else c.close_kind = close_client_fin;
    c.c_nxt = r.u32();
    c.s_nxt = r.u32();
    c.svc = static_cast<uint16_t>(svc);
    spawn(now, id);

    ++st_.legit_connections;
    if (p.attack >= 0) ++st_.attacks[static_cast<size_t>(p.attack)].connections;
    uint64_t& w = p.used[host >> 6];
    if (!(w >> (host & 63) & 1)) {
        w |= 1ull << (host & 63);
        ++p.distinct;
        if (p.sample.size() < 5) {
            uint8_t a[16];
            client_addr(p, host, v6, a);
            IpAddr ip;
            ip.v6 = v6;
            std::memcpy(ip.b.data(), a, v6 ? 16 : 4);
            p.sample.push_back(ip);
        }
    }
}

void Engine::client_addr(const Population& p, uint32_t host, bool v6, uint8_t out[16]) const {
    if (!v6) {
        std::memcpy(out, &p.v4[4ull * host], 4);
        return;
    }
    IpAddr a = p.spec->v6_prefix.at(p.v6_bits ? permute_bits(host + 1ull, p.v6_bits, p.v6_key) : 0);
    const unsigned top = p.spec->v6_prefix.host_bits() > 64 ? p.spec->v6_prefix.host_bits() - 64 : 0;
    if (top) {
        // Each host in its own /64 of the prefix, as home and office networks are.
        const uint64_t mask = top >= 64 ? ~0ull : (1ull << top) - 1;
        uint64_t w = 0;
        for (unsigned i = 0; i < 8; ++i) w = w << 8 | a.b[i];
        w |= mix64(p.v6_key ^ host) & mask;
        for (unsigned i = 0; i < 8; ++i) a.b[i] = static_cast<uint8_t>(w >> (56 - 8 * i));
    }
    std::memcpy(out, a.b.data(), 16);
}

ConnParams Engine::params(const Conn& c) const {
    const Population& p = pops_[c.pop];
    const uint64_t hh = mix64(p.seed ^ c.host);
    const uint64_t ch = mix64(hh ^ c.cport);
    ConnParams cp;
    cp.lan = c.host < p.lan_hosts;
    uint32_t rtt = (cp.lan ? p.rtt_lan : p.rtt_wan)[hh & 4095];
    // +-3% per connection around the host's RTT.
    rtt = static_cast<uint32_t>(rtt + (static_cast<int64_t>(rtt) * (static_cast<int64_t>(ch & 0xff) - 128)) / 4096);
    cp.rtt = rtt;
    cp.link_gap = cp.lan ? kLanGap : p.wan_gap[(hh >> 12) & 15];
    cp.d_s = 15000 + static_cast<uint32_t>((ch >> 8) % 30000);
    cp.app = 30000 + static_cast<uint32_t>((ch >> 24) % 700000);
    const bool windows = ((hh >> 16) & 0xff) < 77;  // ~30% of clients
    cp.ts = !windows;
    const bool v6 = c.flags & f_v6;
    cp.mss = (v6 ? 1440u : 1460u) - (cp.ts ? 12u : 0u);
    cp.ttl = static_cast<uint8_t>((windows ? 128 : 64) - (cp.lan ? 0 : 6 + ((hh >> 24) % 14)));
    cp.ts_c = static_cast<uint32_t>(hh >> 32);
    cp.ts_s = static_cast<uint32_t>(mix64(p.seed + c.svc) >> 32);
    cp.flow_c = static_cast<uint32_t>(ch >> 40) & 0xfffff;
    cp.flow_s = static_cast<uint32_t>(ch >> 20) & 0xfffff;
    cp.client_win = windows ? 2052 : 4096;
    cp.client_wscale = windows ? 8 : 7;
    return cp;
}

void Engine::legit_emit(Conn& c, const ConnParams& cp, uint64_t t, bool from_client, uint32_t seq,
                        uint32_t ack, uint8_t flags, uint32_t payload, bool syn_options, LegitClass cls) {
    if (c.flags & f_killed) {
        if (!from_client) {
            killed_suppressed_ = true;
            return;
        }
        killed_client_sent_ = true;
        killed_client_ack_ = ack;
    }
    if (!from_client && !(flags & tcpf::syn)) c.flags |= f_server_acked;
    const Population& p = pops_[c.pop];
    const SvcRt& svc = svcs_[c.svc];
    const ServerRt& srv = servers_[svc.server];
    const bool v6 = c.flags & f_v6;
    uint8_t caddr[16];
    client_addr(p, c.host, v6, caddr);
    uint8_t cmac[6] = {0x02, 0x00, 0, 0, 0, 0};
    const uint8_t* client_mac = kRouterMac;
    if (cp.lan) {
        // Locally administered, from the host index, byte order fixed (same bytes on any host).
        for (unsigned i = 0; i < 4; ++i) cmac[2 + i] = static_cast<uint8_t>(c.host >> (24 - 8 * i));
        client_mac = cmac;
    }
    Frame f;
    f.ipv6 = v6;
    f.vlan = srv.vlan;
    f.seq = seq;
    f.ack = ack;
    f.flags = flags;
    f.payload_len = payload;
    f.ip_id = static_cast<uint16_t>(mix64(static_cast<uint64_t>(seq) << 32 | ack) >> 48);
    const uint64_t ms = t / kMs;
    if (from_client) {
        f.src_mac = client_mac;
        f.dst_mac = srv.mac;
        f.src_ip = caddr;
        f.dst_ip = server_addr(svc.server, v6);
        f.sport = c.cport;
        f.dport = svc.port;
        f.ttl = cp.ttl;
        f.flow_label = cp.flow_c;
        f.window = (flags & tcpf::syn) ? 64240 : cp.client_win;
        f.tsval = cp.ts_c + static_cast<uint32_t>(ms);
        f.tsecr = (flags & tcpf::syn) ? 0 : cp.ts_s + static_cast<uint32_t>((t > cp.rtt ? t - cp.rtt : 0) / kMs);
        f.wscale = cp.client_wscale;
    } else {
        f.src_mac = srv.mac;
        f.dst_mac = client_mac;
        f.src_ip = server_addr(svc.server, v6);
        f.dst_ip = caddr;
        f.sport = svc.port;
        f.dport = c.cport;
        f.ttl = 64;
        f.flow_label = cp.flow_s;
        f.window = (flags & tcpf::syn) ? 65160 : 502;  // 502 << 7 = 64256 bytes
        f.tsval = cp.ts_s + static_cast<uint32_t>(ms);
        f.tsecr = cp.ts_c + static_cast<uint32_t>((t > cp.d_s ? t - cp.d_s : 0) / kMs);
        f.wscale = 7;
    }
    f.mss = v6 ? 1440 : 1460;
    if (syn_options) {
        f.options = cp.ts ? TcpOptions::syn_linux : (from_client ? TcpOptions::syn_windows : TcpOptions::syn_nots);
    } else if (!(flags & tcpf::rst)) {
        f.options = cp.ts ? TcpOptions::timestamps : TcpOptions::none;
    }
    const unsigned label = p.label;
    emit(t, f, static_cast<unsigned>(cls), label);
    if (p.attack >= 0) {
        AttackStats& a = st_.attacks[static_cast<size_t>(p.attack)];
        if (from_client) ++a.attacker_packets;
        else ++a.response_packets;
    }
}

void Engine::live_add(uint32_t id, Conn& c) {
    SvcRt& s = svcs_[c.svc];
    if (!s.track_live) return;
    c.flags |= f_live;
    ++s.live_count;
    // Stale references (ended connections) are dropped when met; sweep when they dominate.
    if (s.live.size() > 1024 && s.live.size() > 4 * s.live_count) {
        size_t w = 0;
        for (const LiveRef& r : s.live) {
            const Conn& x = pool_[r.id];
            if ((x.flags & f_live) && x.host == r.host && x.cport == r.cport && x.pop == r.pop && x.phase < ph_halfopen)
                s.live[w++] = r;
        }
        s.live.resize(w);
    }
    s.live.push_back({id, c.host, c.cport, c.pop});
}

void Engine::live_remove(Conn& c) {
    c.flags &= static_cast<uint8_t>(~f_live);
    --svcs_[c.svc].live_count;
}

uint64_t Engine::legit_step(uint32_t id, Conn& c, uint64_t now, const ConnParams& cp) {
    const Population& p = pops_[c.pop];
    switch (c.phase) {
        case ph_syn: {
            legit_emit(c, cp, now, true, c.c_nxt, 0, tcpf::syn, 0, true,
                       c.step == 0 ? LegitClass::legit_syn : LegitClass::legit_retransmit);
            SvcRt& s = svcs_[c.svc];
            if (s.half_open < s.backlog) {
                ++s.half_open;
                c.flags |= f_halfopen;
            } else if (!s.cookies) {
                // Dropped by a full SYN queue: the client retries after 1, 2, 4 s (RFC 6298).
                ++st_.legit_syn_dropped;
                if (c.step >= kSynRetries) {
                    ++st_.legit_gave_up;
                    return kNever;
                }
                ++c.step;
                return now + (kSynRetry << (c.step - 1));
            }
            c.phase = ph_synack;
            return now + cp.d_s;
        }
        case ph_synack:
            // RFC 9293 section 3.5: SYN-ACK seq = y, ack = x + 1.
            legit_emit(c, cp, now, false, c.s_nxt, c.c_nxt + 1, tcpf::syn | tcpf::ack, 0, true,
                       LegitClass::legit_synack);
            c.phase = ph_ack;
            return now + cp.rtt;
        case ph_ack: {
            ++c.c_nxt;  // the SYNs each consumed one sequence number
            ++c.s_nxt;
            legit_emit(c, cp, now, true, c.c_nxt, c.s_nxt, tcpf::ack, 0, false, LegitClass::legit_ack);
            if (c.flags & f_halfopen) {
                --svcs_[c.svc].half_open;
                c.flags &= static_cast<uint8_t>(~f_halfopen);
            }
            live_add(id, c);
            return start_xfer(c, now + cp.app, false, 0, cp);
        }
        case ph_request:
        case ph_response:
            return xfer_step(c, now, cp);
        case ph_close:
            return close_step(c, now, cp);
        case ph_rst_reply: {
            // The server's answer to a packet of a connection it no longer has.
            const uint32_t seq = c.s_nxt;
            Frame f;
            const SvcRt& svc = svcs_[c.svc];
            const ServerRt& srv = servers_[svc.server];
            const bool v6 = c.flags & f_v6;
            uint8_t caddr[16];
            client_addr(p, c.host, v6, caddr);
            f.ipv6 = v6;
            f.vlan = srv.vlan;
            f.src_mac = srv.mac;
            f.dst_mac = kRouterMac;
            f.src_ip = server_addr(svc.server, v6);
            f.dst_ip = caddr;
            f.sport = svc.port;
            f.dport = c.cport;
            f.seq = seq;
            f.flags = tcpf::rst;
            f.ttl = 64;
            AttackRt& a = attacks_[c.injector];
            attack_emit(a, now, f, true);
            return kNever;
        }
        default:
            return kNever;
    }
}

// Request sizes: lognormal; an upload's size follows the response distribution.
uint32_t draw_size(Rng& r, const SizeDist& d) {
    double x = r.chance(d.tail_share) ? r.pareto(d.tail_min, d.tail_alpha) : r.lognormal(d.median, d.sigma);
    x = std::min(x, d.max);
    return static_cast<uint32_t>(std::max(1.0, std::round(x)));
}

uint64_t Engine::start_xfer(Conn& c, uint64_t start, bool server_sends, uint32_t bytes, const ConnParams& cp) {
    Population& p = pops_[c.pop];
    if (bytes == 0) {
        if (server_sends) {
            bytes = draw_size(p.rng, p.spec->response_bytes);
        } else if (p.rng.chance(p.spec->upload_share)) {
            bytes = draw_size(p.rng, p.spec->response_bytes);
        } else {
            bytes = static_cast<uint32_t>(std::clamp(
                std::round(p.rng.lognormal(p.spec->request_bytes.median, p.spec->request_bytes.sigma)), 1.0, 1e7));
        }
    }
    const uint32_t sn = server_sends ? c.s_nxt : c.c_nxt;
    c.phase = server_sends ? ph_response : ph_request;
    c.xfer_end = sn + bytes;
    c.round_seq = sn;
    c.ack_val = sn;
    c.ack_end = sn;
    const uint32_t segs = (bytes + cp.mss - 1) / cp.mss;
    const uint32_t bdp = std::max<uint32_t>(1, cp.rtt / cp.link_gap);
    const uint16_t n = static_cast<uint16_t>(std::min<uint32_t>({kInitialWindow, segs, bdp}));
    c.round_n = c.seg_left = n;
    c.seg_gap = server_sends ? kNicGap : cp.link_gap;
    c.ack_left = 0;
    c.rflags = 0;
    round_faults(c, n);
    uint64_t ts = start, ta = start;
    arm_acks(c, ts, ta, server_sends, cp);
    c.t_seg_off = 0;
    c.t_ack_off = static_cast<uint32_t>(ta - start);
    return start;
}

void Engine::round_faults(Conn& c, uint16_t n) {
    if (c.flags & f_loss) {
        c.rflags |= r_seg_lost;
        c.flags &= static_cast<uint8_t>(~f_loss);
    } else if ((c.flags & f_reorder) && n >= 2 && (c.phase == ph_response || (c.flags & f_server_acked))) {
        // Not before the server's first ACK: its duplicate ACK would follow the SYN-ACK, whose
        // raw window differs from the scaled ones after it, and tshark would call it a window
        // update as well (true of real stacks too, but it blurs the one-flag-per-event ground
        // truth).
        c.rflags |= r_seg_swap;
        c.flags &= static_cast<uint8_t>(~f_reorder);
    }
}

// Points the ACK stream at the current round: the receiver sees segment i at S + i * eff (eff:
// the spacing after the bottleneck) and ACKs every second one, D_ack later at the capture point.
void Engine::arm_acks(Conn& c, uint64_t ts, uint64_t& ta, bool srv, const ConnParams& cp) {
    const uint16_t sent = static_cast<uint16_t>(c.round_n - c.seg_left);
    const uint64_t S = ts - static_cast<uint64_t>(sent) * c.seg_gap;
    const uint32_t eff = srv ? std::max(c.seg_gap, cp.link_gap) : c.seg_gap;
    const uint64_t d_ack = srv ? cp.rtt : cp.d_s;
    const uint32_t bytes = std::min<uint32_t>(static_cast<uint32_t>(c.round_n) * cp.mss, c.xfer_end - c.round_seq);
    const bool lost = c.rflags & r_seg_lost;
    const uint16_t acked = static_cast<uint16_t>(c.round_n - (lost ? 1 : 0));
    c.ack_end = lost ? c.round_seq + static_cast<uint32_t>(c.round_n - 1) * cp.mss : c.round_seq + bytes;
    c.ack_left = static_cast<uint16_t>((acked + 1) / 2);
    c.ack_gap = 2 * eff;
    ta = S + eff + d_ack;
    if (c.rflags & r_seg_swap) {
        // The second segment arrives first: the receiver answers it at once with a duplicate
        // ACK (RFC 5681 section 4.2), then ACKs both when the first one fills the hole.
        c.rflags |= r_ack_dup;
        ta = S + d_ack;
    }
    c.rflags |= r_ack_same;
}

void Engine::next_round(Conn& c, uint64_t now, uint64_t& ts, uint64_t ta, bool srv, const ConnParams& cp) {
    const uint64_t S = ts - static_cast<uint64_t>(c.round_n) * c.seg_gap;
    const uint32_t eff = srv ? std::max(c.seg_gap, cp.link_gap) : c.seg_gap;
    const uint32_t sn = srv ? c.s_nxt : c.c_nxt;
    uint64_t start;
    uint16_t n;
    uint32_t gap;
    const uint8_t keep = c.rflags & r_ack_dup;
    c.rflags = keep;
    if (c.ack_end != sn) {
        // The last segment was lost: the sender's RTO fires (RFC 6298; at least 200 ms as in
        // Linux), after the ACKs of what did arrive.
        const uint64_t t_lost = S + static_cast<uint64_t>(c.round_n - 1) * c.seg_gap;
        const uint64_t last_ack = c.ack_left ? ta + static_cast<uint64_t>(c.ack_left - 1) * c.ack_gap : now;
        const uint64_t rto = kMinRto + 2ull * cp.rtt;
        start = std::max(t_lost + rto, last_ack + 1000);
        c.round_seq = c.ack_end;
        n = 1;
        gap = c.seg_gap;
    } else {
        // Slow start: the first ACK of round r releases round r + 1 (RFC 5681 section 3.1).
        start = S + eff + cp.rtt + cp.d_s;
        c.round_seq = sn;
        const uint32_t segs = (c.xfer_end - sn + cp.mss - 1) / cp.mss;
        const uint32_t bdp = std::max<uint32_t>(1, cp.rtt / cp.link_gap);
        n = static_cast<uint16_t>(std::min<uint32_t>({2u * c.round_n, segs, srv ? kMaxRound : kMaxUploadRound, bdp}));
        const uint32_t acks = (c.round_n + 1u) / 2u;
        const uint32_t floor_gap = srv ? kNicGap : cp.link_gap;
        gap = std::max<uint32_t>(floor_gap, static_cast<uint32_t>(2ull * eff * acks / n));
        round_faults(c, n);
    }
    c.round_n = c.seg_left = n;
    c.seg_gap = gap;
    ts = std::max(start, now);
}

uint64_t Engine::xfer_step(Conn& c, uint64_t now, const ConnParams& cp) {
    const bool srv = c.phase == ph_response;
    uint64_t ts = now + c.t_seg_off;
    uint64_t ta = now + c.t_ack_off;
    const bool seg_pending = c.seg_left > 0;
    const bool ack_pending = c.ack_left > 0 || (c.rflags & r_ack_dup);
    uint32_t& sn = srv ? c.s_nxt : c.c_nxt;
    const uint32_t rn = srv ? c.c_nxt : c.s_nxt;  // the receiver's sequence number

    if (ack_pending && (!seg_pending || ta <= ts)) {
        uint32_t val;
        if (c.rflags & r_ack_dup) {
            val = c.ack_val;
            c.rflags &= static_cast<uint8_t>(~r_ack_dup);
            ta += c.ack_gap / 2;
        } else {
            const uint32_t step = std::min<uint32_t>(2 * cp.mss, c.ack_end - c.ack_val);
            c.ack_val += step;
            val = c.ack_val;
            --c.ack_left;
            ta += c.ack_gap;
        }
        legit_emit(c, cp, now, srv, rn, val, tcpf::ack, 0, false, LegitClass::legit_ack);
    } else if (seg_pending) {
        const uint16_t i = static_cast<uint16_t>(c.round_n - c.seg_left);
        const uint16_t k = ((c.rflags & r_seg_swap) && i < 2) ? static_cast<uint16_t>(1 - i) : i;
        const uint32_t seq = c.round_seq + static_cast<uint32_t>(k) * cp.mss;
        const uint32_t len = std::min<uint32_t>(cp.mss, c.xfer_end - seq);
        LegitClass cls = LegitClass::legit_data;
        if ((c.rflags & r_seg_swap) && i == 1) cls = LegitClass::legit_out_of_order;
        else if (seq_lt(seq, sn)) cls = LegitClass::legit_retransmit;
        const uint8_t flags = static_cast<uint8_t>(tcpf::ack | (seq + len == c.xfer_end ? tcpf::psh : 0));
        legit_emit(c, cp, now, !srv, seq, rn, flags, len, false, cls);
        if (seq_lt(sn, seq + len)) sn = seq + len;
        --c.seg_left;
        ts += c.seg_gap;
    }

    for (;;) {
        const bool more = c.ack_end != sn || sn != c.xfer_end;
        if (c.seg_left == 0 && (c.rflags & r_ack_same) && more) {
            next_round(c, now, ts, ta, srv, cp);
            continue;
        }
        if (c.ack_left == 0 && !(c.rflags & r_ack_dup) && !(c.rflags & r_ack_same)) {
            arm_acks(c, ts, ta, srv, cp);
            continue;
        }
        break;
    }
    const bool segs = c.seg_left > 0;
    const bool acks = c.ack_left > 0 || (c.rflags & r_ack_dup);
    if (!segs && !acks) return xfer_done(c, now, cp);
    // Packets never go back in time, whatever a corner of the model computed.
    if (ts < now) ts = now;
    if (ta < now) ta = now;
    const uint64_t next = std::min(segs ? ts : kNever, acks ? ta : kNever);
    c.t_seg_off = segs ? static_cast<uint32_t>(std::min<uint64_t>(ts - next, UINT32_MAX)) : 0;
    c.t_ack_off = acks ? static_cast<uint32_t>(std::min<uint64_t>(ta - next, UINT32_MAX)) : 0;
    return next;
}

uint64_t Engine::xfer_done(Conn& c, uint64_t now, const ConnParams& cp) {
    Population& p = pops_[c.pop];
    if (c.phase == ph_request) {
        const double think = p.rng.lognormal(p.spec->think_ms.median, p.spec->think_ms.sigma);
        return start_xfer(c, now + static_cast<uint64_t>(std::min(think, 60000.0) * 1e6) + 1, true, 0, cp);
    }
    if (c.reqs_left > 1) {
        --c.reqs_left;
        const double idle = p.rng.lognormal(p.spec->idle_ms.median, p.spec->idle_ms.sigma);
        return start_xfer(c, now + static_cast<uint64_t>(std::min(idle, 600000.0) * 1e6) + cp.rtt / 2, false, 0, cp);
    }
    c.phase = ph_close;
    c.step = 0;
    if (c.flags & f_live) live_remove(c);
    // Who closes and when: a client closes soon after its last response; a server after its
    // keep-alive logic decides (HTTP/1.0 style: right after the response).
    const double d = p.rng.lognormal(c.close_kind == close_server_fin ? 2.0 : 20.0, 1.0);
    return now + static_cast<uint64_t>(std::min(d, 10000.0) * 1e6) + 1;
}

uint64_t Engine::close_step(Conn& c, uint64_t now, const ConnParams& cp) {
    // RFC 9293 section 3.6: a FIN consumes one sequence number; the ACK of a FIN is its seq + 1.
    const uint8_t fa = tcpf::fin | tcpf::ack;
    switch (c.close_kind) {
        case close_client_fin:
            switch (c.step++) {
                case 0:
                    legit_emit(c, cp, now, true, c.c_nxt, c.s_nxt, fa, 0, false, LegitClass::legit_fin);
                    ++c.c_nxt;
                    return now + cp.d_s;
                case 1:
                    legit_emit(c, cp, now, false, c.s_nxt, c.c_nxt, tcpf::ack, 0, false, LegitClass::legit_ack);
                    return now + 20 * kUs + cp.app / 8;
                case 2:
                    legit_emit(c, cp, now, false, c.s_nxt, c.c_nxt, fa, 0, false, LegitClass::legit_fin);
                    ++c.s_nxt;
                    return now + cp.rtt;
                default:
                    legit_emit(c, cp, now, true, c.c_nxt, c.s_nxt, tcpf::ack, 0, false, LegitClass::legit_ack);
                    return kNever;
            }
        case close_server_fin:
            switch (c.step++) {
                case 0:
                    legit_emit(c, cp, now, false, c.s_nxt, c.c_nxt, fa, 0, false, LegitClass::legit_fin);
                    ++c.s_nxt;
                    return now + cp.rtt;
                case 1:
                    legit_emit(c, cp, now, true, c.c_nxt, c.s_nxt, tcpf::ack, 0, false, LegitClass::legit_ack);
                    return now + cp.app / 4 + 10 * kUs;
                case 2:
                    legit_emit(c, cp, now, true, c.c_nxt, c.s_nxt, fa, 0, false, LegitClass::legit_fin);
                    ++c.c_nxt;
                    return now + cp.d_s;
                default:
                    legit_emit(c, cp, now, false, c.s_nxt, c.c_nxt, tcpf::ack, 0, false, LegitClass::legit_ack);
                    return kNever;
            }
        case close_rst:
            // An aborting client (RFC 9293 section 3.10.5: ABORT sends <SEQ=SND.NXT><CTL=RST>);
            // stacks set ACK on it as well.
            legit_emit(c, cp, now, true, c.c_nxt, c.s_nxt, tcpf::rst | tcpf::ack, 0, false, LegitClass::legit_rst);
            return kNever;
        default: {
            // Simultaneous close (RFC 9293 section 3.6, figure 13): the FINs cross; each side
            // then ACKs the other's FIN from CLOSING.
            const uint64_t delta = cp.rtt / 4;
            switch (c.step++) {
                case 0:
                    legit_emit(c, cp, now, false, c.s_nxt, c.c_nxt, fa, 0, false, LegitClass::legit_fin);
                    ++c.s_nxt;
                    return now + delta;
                case 1:
                    // Sent before the server's FIN reached the client: does not ACK it.
                    legit_emit(c, cp, now, true, c.c_nxt, c.s_nxt - 1, fa, 0, false, LegitClass::legit_fin);
                    ++c.c_nxt;
                    return now + cp.d_s;
                case 2:
                    legit_emit(c, cp, now, false, c.s_nxt, c.c_nxt, tcpf::ack, 0, false, LegitClass::legit_ack);
                    return now + std::max<uint64_t>(cp.rtt - delta - cp.d_s, 1000);
                default:
                    legit_emit(c, cp, now, true, c.c_nxt, c.s_nxt, tcpf::ack, 0, false, LegitClass::legit_ack);
                    return kNever;
            }
        }
    }
}

// ------------------------------------------------------------------------------ attacks

void Engine::attack_emit(AttackRt& a, uint64_t t, const Frame& f, bool response) {
    emit(t, f, a.cls, a.idx + 1);
    AttackStats& s = st_.attacks[a.idx];
    if (response) {
        ++s.response_packets;
    } else {
        ++s.attacker_packets;
        s.last_attacker_ns = t;
    }
}

void Engine::src_addr(const AttackRt& a, uint32_t idx, uint8_t out[16]) const {
    const unsigned bits = std::min(a.src_bits, 64u);
    IpAddr ip = a.spec->sources.at(bits ? permute_bits(idx, bits, a.src_key) : 0);
    if (a.src_bits > 64) {
        // The low 64 bits keep the sources distinct; the host bits above them are hashed so
        // that spoofed IPv6 sources spread over the whole prefix, not just its last /64.
        const unsigned top = a.src_bits - 64;
        const uint64_t mask = top >= 64 ? ~0ull : (1ull << top) - 1;
        uint64_t w = 0;
        for (unsigned i = 0; i < 8; ++i) w = w << 8 | ip.b[i];
        w |= mix64(a.src_key ^ idx) & mask;
        for (unsigned i = 0; i < 8; ++i) ip.b[i] = static_cast<uint8_t>(w >> (56 - 8 * i));
    }
    std::memcpy(out, ip.b.data(), 16);
}

void Engine::note_source(AttackRt& a, uint32_t idx) {
    uint64_t& w = a.seen[idx >> 6];
    if (w >> (idx & 63) & 1) return;
    w |= 1ull << (idx & 63);
    AttackStats& s = st_.attacks[a.idx];
    ++s.distinct_sources;
    if (s.sample.size() < 5) {
        IpAddr ip;
        ip.v6 = a.v6;
        uint8_t b[16];
        src_addr(a, idx, b);
        std::memcpy(ip.b.data(), b, 16);
        if (!ip.v6) std::memset(ip.b.data() + 4, 0, 12);
        s.sample.push_back(ip);
    }
}

int Engine::server_at(const AttackRt& a, uint64_t off) const {
    const auto it = a.dst_server.find(off);
    return it == a.dst_server.end() ? -1 : it->second;
}

int Engine::service_of(int server, uint16_t port) const {
    if (server < 0) return -1;
    const auto it = svc_by_port_.find(static_cast<uint32_t>(server) << 16 | port);
    return it == svc_by_port_.end() ? -1 : it->second;
}

void Engine::ring_push(AttackRt& a, const Pending& p) {
    if (a.ring_count == a.ring.size()) {
        std::vector<Pending> bigger(a.ring.size() * 2);
        for (size_t i = 0; i < a.ring_count; ++i) bigger[i] = a.ring[(a.ring_head + i) & (a.ring.size() - 1)];
        a.ring.swap(bigger);
        a.ring_head = 0;
    }
    a.ring[(a.ring_head + a.ring_count) & (a.ring.size() - 1)] = p;
    ++a.ring_count;
}

// A victim's (or a reflection victim's) answer: from the victim to the peer.
void Engine::emit_pending(AttackRt& a, const Pending& p) {
    const AttackSpec& s = *a.spec;
    uint8_t peer[16], victim[16];
    if (a.type == AttackType::syn_scan || a.type == AttackType::stealth_scan || a.type == AttackType::connect_scan)
        std::memcpy(peer, s.source.b.data(), 16);
    else
        src_addr(a, p.peer, peer);
    const IpAddr v = s.target.at(p.victim_off);
    std::memcpy(victim, v.b.data(), 16);
    const int server = server_at(a, p.victim_off);
    Frame f;
    f.ipv6 = a.v6;
    f.vlan = server >= 0 ? servers_[static_cast<size_t>(server)].vlan : 0;
    f.src_mac = server >= 0 ? servers_[static_cast<size_t>(server)].mac : kUnknownMac;
    f.dst_mac = kRouterMac;
    f.src_ip = victim;
    f.dst_ip = peer;
    f.sport = p.victim_port;
    f.dport = p.peer_port;
    f.seq = p.seq;
    f.ack = p.ack;
    f.flags = p.flags;
    f.window = (p.flags & tcpf::syn) ? 65160 : 0;
    f.options = static_cast<TcpOptions>(p.options);
    f.mss = a.v6 ? 1440 : 1460;
    f.ttl = 64;
    f.ip_id = static_cast<uint16_t>(p.seq ^ p.ack);
    attack_emit(a, p.t, f, true);
}

uint64_t Engine::step_attack(AttackRt& a, uint64_t now) {
    const bool have_pending = a.ring_count > 0 && a.ring[a.ring_head].t <= now;
    if (have_pending) {
        const Pending p = a.ring[a.ring_head];
        a.ring_head = (a.ring_head + 1) & (a.ring.size() - 1);
        --a.ring_count;
        emit_pending(a, p);
    } else if (!a.done && a.next_ns <= now) {
        switch (a.type) {
            case AttackType::syn_scan:
            case AttackType::stealth_scan:
            case AttackType::connect_scan:
                scan_packet(a, now);
                break;
            case AttackType::rst_injection:
                inject_packet(a, now);
                break;
            default:
                flood_packet(a, now);
                break;
        }
        const bool scan = a.type == AttackType::syn_scan || a.type == AttackType::stealth_scan ||
                          a.type == AttackType::connect_scan;
        // Floods and injections are Poisson; a scanner paces its probes (+-10%).
        const double gap = scan ? a.mean_gap_ns * (0.9 + 0.2 * a.rng.uniform()) : a.rng.exponential(a.mean_gap_ns);
        a.next_ns = now + 1 + static_cast<uint64_t>(gap);
        if (scan && a.probe_next >= a.probes_total) {
            a.done = true;
            st_.attacks[a.idx].completed = true;
        }
        if (a.next_ns >= a.end_ns) a.done = true;
    }
    uint64_t next = a.done ? kNever : a.next_ns;
    if (a.ring_count > 0) next = std::min(next, std::max(a.ring[a.ring_head].t, now));
    return next;
}

void Engine::flood_packet(AttackRt& a, uint64_t now) {
    const AttackSpec& s = *a.spec;
    Rng& r = a.rng;
    const uint32_t src = static_cast<uint32_t>(r.below(a.pool));
    note_source(a, src);
    uint8_t saddr[16], daddr[16];
    src_addr(a, src, saddr);
    const uint64_t off = a.dst_bits ? r.below(1ull << a.dst_bits) : 0;
    const IpAddr dst = s.target.at(off);
    std::memcpy(daddr, dst.b.data(), 16);
    const int server = server_at(a, off);
    const uint64_t bits = r.next();
    Frame f;
    f.ipv6 = a.v6;
    f.vlan = server >= 0 ? servers_[static_cast<size_t>(server)].vlan : 0;
    f.src_mac = kRouterMac;
    f.dst_mac = server >= 0 ? servers_[static_cast<size_t>(server)].mac : kUnknownMac;
    f.src_ip = saddr;
    f.dst_ip = daddr;
    f.ttl = static_cast<uint8_t>(32 + (bits & 0x7f) + ((bits >> 7) & 0x3f));
    f.ip_id = static_cast<uint16_t>(bits >> 16);
    f.flow_label = static_cast<uint32_t>(bits >> 32) & 0xfffff;
    static constexpr uint16_t kWindows[8] = {512, 1024, 2048, 5840, 8192, 29200, 64240, 65535};
    f.window = kWindows[(bits >> 52) & 7];
    const uint32_t seq = r.u32();
    f.seq = seq;
    Pending resp{};
    resp.t = now + a.d_s;
    resp.peer = src;
    resp.victim_off = static_cast<uint32_t>(off);
    resp.peer_port = 0;
    bool respond = false;

    if (a.type == AttackType::synack_reflection) {
        // A reflector's SYN-ACK to a SYN the attacker sent in the victim's name.
        f.sport = s.ports[static_cast<size_t>((bits >> 56) % s.ports.size())];
        f.dport = static_cast<uint16_t>(1024 + r.below(64512));
        f.ack = r.u32();
        f.flags = tcpf::syn | tcpf::ack;
        f.options = TcpOptions::mss;
        f.mss = a.v6 ? 1440 : 1460;
        f.window = 65160;
        attack_emit(a, now, f, false);
        if (s.responses && server >= 0) {
            // The victim has no such connection: RST with seq = the SYN-ACK's ack.
            resp.victim_port = f.dport;
            resp.peer_port = f.sport;
            resp.seq = f.ack;
            resp.ack = 0;
            resp.flags = tcpf::rst;
            resp.options = static_cast<uint8_t>(TcpOptions::none);
            ring_push(a, resp);
        }
        return;
    }

    f.sport = static_cast<uint16_t>(1024 + r.below(64512));
    f.dport = s.port ? s.port : static_cast<uint16_t>(1 + r.below(65535));
    resp.victim_port = f.dport;
    resp.peer_port = f.sport;
    switch (a.type) {
        case AttackType::syn_flood:
        case AttackType::half_open_exhaustion: {
            f.flags = tcpf::syn;
            // Flood tools vary: bare SYNs (hping3) or an MSS option.
            if (bits >> 63) {
                f.options = TcpOptions::mss;
                f.mss = a.v6 ? 1440 : 1460;
            }
            attack_emit(a, now, f, false);
            if (!s.responses || server < 0) break;
            const int svc = service_of(server, f.dport);
            if (svc < 0) {
                // Closed port: RST-ACK, seq 0, ack = SYN + 1 (RFC 9293 section 3.10.7.1).
                resp.seq = 0;
                resp.ack = seq + 1;
                resp.flags = tcpf::rst | tcpf::ack;
                respond = true;
                break;
            }
            SvcRt& sv = svcs_[static_cast<size_t>(svc)];
            if (sv.half_open < sv.backlog) {
                // A backlog entry: SYN-ACK now and retransmitted until it expires.
                ++sv.half_open;
                const uint32_t id = pool_.alloc();
                Conn& c = pool_[id];
                std::memset(&c, 0, sizeof(c));
                c.phase = ph_halfopen;
                c.host = src;
                c.cport = f.sport;
                c.svc = static_cast<uint16_t>(svc);
                c.port2 = f.dport;
                c.xfer_end = static_cast<uint32_t>(off);
                c.pop = static_cast<uint8_t>(a.idx);
                c.flags = static_cast<uint8_t>(f_halfopen | (a.v6 ? f_v6 : 0));
                c.c_nxt = seq;
                c.s_nxt = r.u32();
                spawn(now + a.d_s, id);
            } else if (sv.cookies) {
                resp.seq = r.u32();  // the cookie
                resp.ack = seq + 1;
                resp.flags = tcpf::syn | tcpf::ack;
                resp.options = static_cast<uint8_t>(TcpOptions::mss);
                respond = true;
            } else {
                ++st_.attacks[a.idx].dropped_syns;
            }
            break;
        }
        case AttackType::ack_flood:
            f.ack = r.u32();
            f.flags = tcpf::ack;
            attack_emit(a, now, f, false);
            if (s.responses && server >= 0) {
                // No connection: <SEQ=SEG.ACK><CTL=RST> (RFC 9293 section 3.10.7.1).
                resp.seq = f.ack;
                resp.ack = 0;
                resp.flags = tcpf::rst;
                respond = true;
            }
            break;
        case AttackType::rst_flood:
            f.flags = (bits >> 62) & 1 ? static_cast<uint8_t>(tcpf::rst | tcpf::ack) : tcpf::rst;
            if (f.flags & tcpf::ack) f.ack = r.u32();
            f.window = 0;
            attack_emit(a, now, f, false);  // nothing answers an RST
            break;
        case AttackType::fin_flood:
            f.ack = r.u32();
            f.flags = tcpf::fin | tcpf::ack;
            attack_emit(a, now, f, false);
            if (s.responses && server >= 0) {
                resp.seq = f.ack;
                resp.ack = 0;
                resp.flags = tcpf::rst;
                respond = true;
            }
            break;
        default:
            break;
    }
    if (respond) ring_push(a, resp);
}

void Engine::scan_packet(AttackRt& a, uint64_t now) {
    const AttackSpec& s = *a.spec;
    if (a.probe_next >= a.probes_total) return;
    const uint64_t perm = permute_below(a.probe_next++, a.probes_total, a.perm_key);
    const uint64_t off = perm / s.ports.size();
    const uint16_t port = s.ports[perm % s.ports.size()];
    AttackStats& st = st_.attacks[a.idx];
    ++st.probes;
    if (st.distinct_sources == 0) {
        st.distinct_sources = 1;
        st.sample.push_back(s.source);
    }
    const int server = server_at(a, off);
    const int svc = service_of(server, port);
    const uint32_t seq = a.rng.u32();

    if (a.type == AttackType::connect_scan) {
        // connect(): a real handshake from the scanner's kernel, one ephemeral port per probe.
        const uint32_t id = pool_.alloc();
        Conn& c = pool_[id];
        std::memset(&c, 0, sizeof(c));
        c.phase = ph_connect;
        c.cport = a.ephemeral;
        a.ephemeral = static_cast<uint16_t>(a.ephemeral >= 60999 ? 32768 : a.ephemeral + 1);
        c.svc = svc >= 0 ? static_cast<uint16_t>(svc) : 0xffff;
        c.port2 = port;
        c.xfer_end = static_cast<uint32_t>(off);
        c.pop = static_cast<uint8_t>(a.idx);
        c.flags = a.v6 ? f_v6 : 0;
        c.c_nxt = seq;
        c.s_nxt = a.rng.u32();
        c.step = server < 0 ? 3 : (svc < 0 ? 2 : 0);  // 0 open, 2 closed, 3 no host
        ++st.connections;
        // The SYN now (step_conn at the same time will emit it).
        spawn(now, id);
        return;
    }

    uint8_t daddr[16];
    const IpAddr dst = s.target.at(off);
    std::memcpy(daddr, dst.b.data(), 16);
    Frame f;
    f.ipv6 = a.v6;
    f.vlan = server >= 0 ? servers_[static_cast<size_t>(server)].vlan : 0;
    f.src_mac = kRouterMac;
    f.dst_mac = server >= 0 ? servers_[static_cast<size_t>(server)].mac : kUnknownMac;
    f.src_ip = s.source.b.data();
    f.dst_ip = daddr;
    f.sport = a.scan_sport;
    f.dport = port;
    f.seq = seq;
    f.ttl = a.scanner_ttl;
    f.ip_id = static_cast<uint16_t>(a.rng.next());
    f.window = 1024;  // nmap's raw probes
    uint8_t consumed = 0;
    if (a.type == AttackType::syn_scan) {
        f.flags = tcpf::syn;
        f.options = TcpOptions::mss;
        f.mss = 1460;
        consumed = 1;
    } else {
        switch (s.variant) {
            case StealthVariant::fin:
                f.flags = tcpf::fin;
                consumed = 1;
                break;
            case StealthVariant::null:
                f.flags = 0;
                break;
            case StealthVariant::xmas:
                f.flags = tcpf::fin | tcpf::psh | tcpf::urg;
                consumed = 1;
                break;
        }
    }
    attack_emit(a, now, f, false);
    if (!s.responses || server < 0) return;  // no host: filtered, nothing comes back
    Pending resp{};
    resp.t = now + a.d_s;
    resp.victim_off = static_cast<uint32_t>(off);
    resp.victim_port = port;
    resp.peer_port = a.scan_sport;
    if (svc < 0) {
        // Closed port: RST-ACK, ack = probe seq + its SYN/FIN (RFC 9293 section 3.10.7.1).
        resp.seq = 0;
        resp.ack = seq + consumed;
        resp.flags = tcpf::rst | tcpf::ack;
        ring_push(a, resp);
        return;
    }
    if (a.type != AttackType::syn_scan) return;  // open ports ignore FIN/NULL/XMAS (RFC 9293 3.10.7.2)
    SvcRt& sv = svcs_[static_cast<size_t>(svc)];
    bool stateful = false;
    if (sv.half_open < sv.backlog) {
        ++sv.half_open;
        stateful = true;
    } else if (!sv.cookies) {
        ++st.dropped_syns;
        return;
    }
    // Open port: SYN-ACK, then the scanner's kernel, which sent no SYN, answers RST.
    const uint32_t id = pool_.alloc();
    Conn& c = pool_[id];
    std::memset(&c, 0, sizeof(c));
    c.phase = ph_scan_open;
    c.cport = a.scan_sport;
    c.svc = static_cast<uint16_t>(svc);
    c.port2 = port;
    c.xfer_end = static_cast<uint32_t>(off);
    c.pop = static_cast<uint8_t>(a.idx);
    c.flags = static_cast<uint8_t>((stateful ? f_halfopen : 0) | (a.v6 ? f_v6 : 0));
    c.c_nxt = seq;
    c.s_nxt = a.rng.u32();
    spawn(now + a.d_s, id);
}

void Engine::inject_packet(AttackRt& a, uint64_t now) {
    const AttackSpec& s = *a.spec;
    SvcRt& sv = svcs_[static_cast<size_t>(s.service)];
    AttackStats& st = st_.attacks[a.idx];
    // A random live connection of the service; stale references are dropped as met.
    while (!sv.live.empty()) {
        const size_t k = static_cast<size_t>(a.rng.below(sv.live.size()));
        const LiveRef ref = sv.live[k];
        Conn& c = pool_[ref.id];
        const bool valid = (c.flags & f_live) && !(c.flags & f_killed) && c.phase < ph_halfopen &&
                           c.host == ref.host && c.cport == ref.cport && c.pop == ref.pop;
        sv.live[k] = sv.live.back();
        sv.live.pop_back();
        if (!valid) continue;
        // An in-window RST in the client's name: seq = exactly what the server expects next
        // (RFC 5961 section 3.2: only that is accepted without a challenge ACK).
        const ConnParams cp = params(c);
        const Population& p = pops_[c.pop];
        const bool v6 = c.flags & f_v6;
        uint8_t caddr[16];
        client_addr(p, c.host, v6, caddr);
        const ServerRt& srv = servers_[sv.server];
        Frame f;
        f.ipv6 = v6;
        f.vlan = srv.vlan;
        f.src_mac = kRouterMac;
        f.dst_mac = srv.mac;
        f.src_ip = caddr;
        f.dst_ip = server_addr(sv.server, v6);
        f.sport = c.cport;
        f.dport = sv.port;
        f.seq = c.c_nxt;
        f.flags = tcpf::rst;
        // The injector is elsewhere on the path: its TTL and IP ID betray it.
        f.ttl = static_cast<uint8_t>(cp.ttl - 3 - a.rng.below(8));
        f.ip_id = static_cast<uint16_t>(a.rng.next());
        attack_emit(a, now, f, false);
        c.flags |= f_killed;
        c.injector = static_cast<uint8_t>(a.idx);
        live_remove(c);
        const uint64_t key = static_cast<uint64_t>(c.pop) << 32 | c.host;
        if (a.injected_hosts.insert(key).second) {
            ++st.distinct_sources;
            if (st.sample.size() < 5) {
                IpAddr ip;
                ip.v6 = v6;
                std::memcpy(ip.b.data(), caddr, v6 ? 16 : 4);
                st.sample.push_back(ip);
            }
        }
        return;
    }
    ++st.missed;
}

void Engine::fill_victim(const AttackRt& a, const Conn& c, Frame& f, uint8_t vaddr[16]) const {
    const IpAddr v = a.spec->target.at(c.xfer_end);
    std::memcpy(vaddr, v.b.data(), 16);
    const int server = server_at(a, c.xfer_end);
    f.ipv6 = a.v6;
    f.vlan = server >= 0 ? servers_[static_cast<size_t>(server)].vlan : 0;
    f.src_mac = server >= 0 ? servers_[static_cast<size_t>(server)].mac : kUnknownMac;
    f.dst_mac = kRouterMac;
}

uint64_t Engine::attack_entry_step(uint32_t, Conn& c, uint64_t now) {
    AttackRt& a = attacks_[c.pop];
    const AttackSpec& s = *a.spec;
    uint8_t vaddr[16], peer[16];
    Frame f;
    fill_victim(a, c, f, vaddr);
    if (c.phase == ph_halfopen) src_addr(a, c.host, peer);
    else std::memcpy(peer, s.source.b.data(), 16);
    // Victim -> peer by default; the peer's packets swap below.
    auto victim_to_peer = [&] {
        f.src_ip = vaddr;
        f.dst_ip = peer;
        f.sport = c.port2;
        f.dport = c.cport;
        f.ttl = 64;
    };
    auto peer_to_victim = [&] {
        std::swap(f.src_mac, f.dst_mac);
        f.src_ip = peer;
        f.dst_ip = vaddr;
        f.sport = c.cport;
        f.dport = c.port2;
        f.ttl = a.scanner_ttl;
    };
    switch (c.phase) {
        case ph_halfopen: {
            if (c.step > kSynAckRetries) return kNever;  // the entry expires (half_open released)
            victim_to_peer();
            f.seq = c.s_nxt;
            f.ack = c.c_nxt + 1;
            f.flags = tcpf::syn | tcpf::ack;
            f.window = 65160;
            f.options = TcpOptions::mss;
            f.mss = a.v6 ? 1440 : 1460;
            attack_emit(a, now, f, true);
            const unsigned k = c.step++;
            // Retransmitted after 1, 2, 4, 8, 16 s; dropped 32 s after the last one.
            return now + (k < kSynAckRetries ? (kSec << k) : 32 * kSec);
        }
        case ph_scan_open:
            if (c.step == 0) {
                victim_to_peer();
                f.seq = c.s_nxt;
                f.ack = c.c_nxt + 1;
                f.flags = tcpf::syn | tcpf::ack;
                f.window = 65160;
                f.options = TcpOptions::mss;
                attack_emit(a, now, f, true);
                c.step = 1;
                return now + a.scanner_rtt;
            }
            peer_to_victim();
            f.seq = c.c_nxt + 1;
            f.flags = tcpf::rst;
            attack_emit(a, now, f, false);
            return kNever;
        case ph_connect: {
            // step: 0 SYN (open) -> 1 SYN-ACK -> 4 ACK -> 5 RST-ACK; 2 SYN (closed) -> 6 RST-ACK;
            // 3 SYN (no host) -> end.
            const uint8_t step = c.step;
            if (step == 0 || step == 2 || step == 3) {
                peer_to_victim();
                f.seq = c.c_nxt;
                f.flags = tcpf::syn;
                f.window = 64240;
                f.options = TcpOptions::syn_linux;
                f.mss = a.v6 ? 1440 : 1460;
                f.tsval = static_cast<uint32_t>(now / kMs);
                attack_emit(a, now, f, false);
                if (step == 3) return kNever;
                if (step == 2) {
                    c.step = 6;
                    return now + a.d_s;
                }
                SvcRt& sv = svcs_[c.svc];
                if (sv.half_open < sv.backlog) {
                    ++sv.half_open;
                    c.flags |= f_halfopen;
                } else if (!sv.cookies) {
                    ++st_.attacks[a.idx].dropped_syns;
                    return kNever;
                }
                c.step = 1;
                return now + a.d_s;
            }
            if (step == 1) {
                victim_to_peer();
                f.seq = c.s_nxt;
                f.ack = c.c_nxt + 1;
                f.flags = tcpf::syn | tcpf::ack;
                f.window = 65160;
                f.options = TcpOptions::syn_linux;
                f.mss = a.v6 ? 1440 : 1460;
                attack_emit(a, now, f, true);
                c.step = 4;
                return now + a.scanner_rtt;
            }
            if (step == 4) {
                peer_to_victim();
                f.seq = c.c_nxt + 1;
                f.ack = c.s_nxt + 1;
                f.flags = tcpf::ack;
                f.window = 502;
                attack_emit(a, now, f, false);
                if (c.flags & f_halfopen) {
                    --svcs_[c.svc].half_open;
                    c.flags &= static_cast<uint8_t>(~f_halfopen);
                }
                c.step = 5;
                return now + 40 * kUs;
            }
            if (step == 5) {
                // nmap closes at once; the kernel aborts with RST (SO_LINGER 0).
                peer_to_victim();
                f.seq = c.c_nxt + 1;
                f.ack = c.s_nxt + 1;
                f.flags = tcpf::rst | tcpf::ack;
                attack_emit(a, now, f, false);
                return kNever;
            }
            // step 6: closed port.
            victim_to_peer();
            f.seq = 0;
            f.ack = c.c_nxt + 1;
            f.flags = tcpf::rst | tcpf::ack;
            attack_emit(a, now, f, true);
            return kNever;
        }
        default:
            return kNever;
    }
}

}  // namespace

RunStats generate(const Scenario& sc, PcapWriter& out, const GenerateOptions& opt) {
    Engine e(sc, out, opt);
    return e.run();
}

}  // namespace stateline::gen
