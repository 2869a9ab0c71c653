// SPDX-License-Identifier: BSD-3-Clause
// A scenario: what stateline-gen is to write. Loaded from YAML (tools/scenarios/*.yaml, schema
// in tools/scenarios/README.md) or built from command-line one-liners, then validated: every
// error is reported, each with where it is (file:line:col, or the command-line argument), and
// the loader never stops at the first.
//
// Thread safety: a Scenario is an immutable value once loaded.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pcap_out.hpp"

namespace YAML {
class Node;
}

namespace stateline::gen {

// An address of either family: IPv4 in b[0..3].
struct IpAddr {
    bool v6 = false;
    std::array<uint8_t, 16> b{};

    const uint8_t* data() const { return b.data(); }
    std::string str() const;
    friend bool operator==(const IpAddr&, const IpAddr&) = default;
};

// base/len. at(i) is base + i for i < 2^host_bits() (IPv6: the low 64 bits only).
struct Prefix {
    IpAddr base;
    uint8_t len = 32;

    unsigned host_bits() const { return (base.v6 ? 128u : 32u) - len; }
    // Number of addresses, saturated at 2^63.
    uint64_t size() const { return host_bits() >= 63 ? (1ull << 63) : (1ull << host_bits()); }
    IpAddr at(uint64_t offset) const;
    bool contains(const IpAddr& a) const;
    std::string str() const;  // "192.0.2.0/24"
};

bool parse_ip(const std::string& s, IpAddr& out);
// "a.b.c.d/n", "x::/n", or a bare address (a /32 or /128). Host bits must be zero.
bool parse_prefix(const std::string& s, Prefix& out, std::string& why);

struct ServerSpec {
    std::string name;
    bool has_v4 = false, has_v6 = false;
    IpAddr v4, v6;
    std::vector<uint16_t> ports;
    uint16_t vlan = 0;          // 802.1Q VID of the server's segment, 0 = untagged
    uint32_t backlog = 1024;    // SYN queue (half-open connections) per listening port
    bool syncookies = true;     // answer SYNs with cookies when the SYN queue is full
};

// One listening socket: a server's port.
struct Service {
    uint32_t server;
    uint16_t port;
};

struct Lognormal {
    double median;
    double sigma;
};

// Body of a lognormal with a Pareto tail: with probability tail_share a Pareto(tail_min,
// tail_alpha) draw, else lognormal(median, sigma); always capped at max.
struct SizeDist {
    double median, sigma;
    double tail_share, tail_alpha, tail_min;
    double max;
};

// A population of legitimate clients (the baseline, or a flash crowd).
struct ClientSpec {
    double rate = 0;               // new connections per second (Poisson)
    uint32_t hosts = 20000;        // distinct client addresses
    double lan_share = 0.2;        // hosts on the LAN (RTT ~1 ms); the rest over the WAN
    double ipv6_share = 0.1;       // connections over IPv6 (to servers that have an IPv6 address)
    Prefix lan_prefix, wan_prefix, v6_prefix;
    std::vector<uint32_t> targets;     // services
    std::vector<double> weights;       // same length as targets
    double rtt_lan_ms = 0.6, rtt_wan_ms = 45, rtt_sigma = 0.5;
    double requests_mean = 2.0;        // requests per connection (geometric, >= 1)
    Lognormal request_bytes{380, 0.5};
    SizeDist response_bytes{5000, 1.1, 0.04, 1.3, 60000, 2000000};
    double upload_share = 0.02;        // requests that carry a body sized like a response
    Lognormal think_ms{2.0, 1.0};      // server time to first response byte
    Lognormal idle_ms{250, 1.0};       // client pause between requests on one connection
    double server_close_share = 0.3;   // FIN teardown started by the server (else the client)
    double rst_share = 0.05;           // teardown by RST instead of FINs
    double simultaneous_close_share = 0.01;
    double retransmit_share = 0.01;    // connections with one lost and retransmitted segment
    double reorder_share = 0.005;      // connections with two segments swapped in flight
};

#define STATELINE_GEN_ATTACK_TYPES(X)                                                             \
    X(syn_flood, "spoofed SYNs from random sources toward one ip:port or a prefix")              \
    X(half_open_exhaustion, "a low rate of spoofed SYNs that fills a small SYN backlog")         \
    X(synack_reflection, "SYN-ACKs from reflectors toward a victim that sent no SYN")            \
    X(ack_flood, "spoofed ACKs for no connection")                                               \
    X(rst_flood, "spoofed RSTs for no connection")                                               \
    X(fin_flood, "spoofed FIN-ACKs for no connection")                                           \
    X(syn_scan, "half-open port scan (SYN, then RST on SYN-ACK) from one source")               \
    X(stealth_scan, "FIN, NULL or XMAS probes from one source (variant: fin|null|xmas)")        \
    X(connect_scan, "full connect() scan from one source (SYN, SYN-ACK, ACK, RST)")              \
    X(rst_injection, "in-window RSTs injected into live connections of one service")            \
    X(flash_crowd, "a surge of real clients to one service (a control: not an attack)")

enum class AttackType : uint8_t {
#define STATELINE_X(name, help) name,
    STATELINE_GEN_ATTACK_TYPES(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kAttackTypeCount = static_cast<unsigned>(AttackType::count_);
const char* attack_type_name(AttackType t);
const char* attack_type_help(AttackType t);

enum class StealthVariant : uint8_t { fin, null, xmas };
const char* stealth_variant_name(StealthVariant v);

struct AttackSpec {
    AttackType type = AttackType::syn_flood;
    StealthVariant variant = StealthVariant::fin;
    std::string where;          // file:line:col of the entry (or the command-line argument)
    std::string name;           // "attacks[3]"
    std::string target_text;    // as written
    Prefix target;              // victim address or prefix
    uint16_t port = 0;          // victim port; 0 = a random port per packet (floods)
    int32_t service = -1;       // the Service the target names, when it names one
    double rate = 0;            // packets (floods), probes (scans), injections or connections /s
    double start = 0;           // capture-time seconds
    double duration = -1;       // < 0: to the end of the capture
    Prefix sources;             // spoofed sources / reflectors
    uint32_t source_count = 0;  // distinct addresses drawn from `sources`
    IpAddr source;              // the scanner
    std::vector<uint16_t> ports;  // scans: ports probed; reflection: reflector ports
    bool responses = true;      // victims answer as a real stack would (SYN-ACK, RST)
    double ramp = 1.0;          // flash crowd: seconds to peak and back
    ClientSpec crowd;           // flash crowd: the clients
};

struct Scenario {
    std::string name;
    std::string description;
    std::string file;                 // where it came from
    double duration = 10;             // seconds of capture time
    uint64_t start_epoch_ns = 1705312800ull * 1000000000ull;  // 2024-01-15T10:00:00Z
    uint64_t seed = 1;
    TsResolution resolution = TsResolution::micro;
    uint32_t snaplen = 65535;
    std::vector<ServerSpec> servers;
    std::vector<Service> services;    // every (server, port), in declaration order
    ClientSpec clients;               // rate 0: no baseline traffic
    std::vector<AttackSpec> attacks;

    int find_service(const IpAddr& a, uint16_t port) const;  // -1 if none
    int find_server(const IpAddr& a) const;                  // -1 if none
};

struct ScenarioError {
    std::string where;  // "file:line:col", or the command-line argument
    std::string what;
};

struct LoadResult {
    Scenario scenario;
    std::vector<ScenarioError> errors;
    bool ok() const { return errors.empty(); }
};

LoadResult load_scenario_file(const std::string& path);
// Same from text; `name` stands for the file in error places.
LoadResult load_scenario_string(const std::string& text, const std::string& name = "<string>");

// One-liners: --clients RATE and --attack TYPE:key=value,... on the default servers
// (web 192.0.2.10 / 2001:db8::10 ports 80, 443; mail 198.51.100.25 port 25; backlog 1024).
LoadResult scenario_from_cli(double clients_rate, const std::vector<std::string>& attacks,
                             double duration);

// Command-line overrides, applied after loading: each < 0 (or unset) leaves the scenario's
// value. Attacks that no longer start inside the capture are removed with a note in `notes`.
void apply_overrides(Scenario& s, double duration, double scale, std::vector<std::string>& notes);

std::string format_errors(const std::vector<ScenarioError>& errors);

}  // namespace stateline::gen
