// SPDX-License-Identifier: BSD-3-Clause
// What an operator tunes about detection: the interval, the hold-down, and the thresholds of
// every detector, with overrides per group of prefixes (as FastNetMon's host groups). Plain data,
// declared once here; lib/config loads and validates it from YAML, docs/alerts.md and
// conf/stateline.yaml describe the same list, and a test keeps them equal.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace stateline::detect {

// Every threshold: X(name, default, min, max, unit, help). Rates are per second of capture time
// (scaled by the interval), shares in percent. A detector fires when every one of its conditions
// holds over one interval.
#define STATELINE_THRESHOLDS(X)                                                                   \
    X(syn_flood_rate, 1000, 1, 1000000000, "SYN/s",                                               \
      "syn_flood: SYNs per second to one victim (address, or address and port)")                  \
    X(syn_flood_completion_max, 20, 0, 100, "%",                                                  \
      "syn_flood: at most this share of those SYNs completed a handshake")                        \
    X(half_open_count, 64, 1, 1000000000, "connections",                                          \
      "half_open_exhaustion: half-open connections held to one victim")                           \
    X(half_open_syn_rate, 20, 1, 1000000000, "SYN/s",                                             \
      "half_open_exhaustion: SYNs per second still arriving (a flood that stopped is not one)")   \
    X(half_open_completion_max, 50, 0, 100, "%",                                                  \
      "half_open_exhaustion: at most this share of the SYNs completed a handshake")               \
    X(synack_reflection_rate, 500, 1, 1000000000, "SYN-ACK/s",                                    \
      "synack_reflection: SYN-ACKs per second to one victim answering no SYN seen")               \
    X(ack_flood_rate, 1000, 1, 1000000000, "ACK/s",                                               \
      "ack_flood: ACKs per second to one victim matching no connection")                          \
    X(rst_flood_rate, 1000, 1, 1000000000, "RST/s",                                               \
      "rst_flood: RSTs per second to one victim matching no connection or out of window")         \
    X(fin_flood_rate, 500, 1, 1000000000, "FIN/s",                                                \
      "fin_flood: FIN-ACKs per second to one victim matching no connection or out of window")     \
    X(rst_injection_rate, 1, 1, 1000000000, "conn/s",                                             \
      "rst_injection: connections per second to one endpoint whose RST sender kept sending")       \
    X(abnormal_teardown_rate, 50, 1, 1000000000, "conn/s",                                        \
      "abnormal_teardown: established connections per second of one host ending abnormally")      \
    X(abnormal_teardown_share, 50, 0, 100, "%",                                                   \
      "abnormal_teardown: ... and at least this share of its established connections that ended") \
    X(scan_rate, 100, 1, 1000000000, "targets/s",                                                 \
      "syn_scan, stealth_scan, connect_scan: distinct address:port probed per second by a source") \
    X(scan_completion_max, 20, 0, 100, "%",                                                       \
      "scans: at most this share of the probes completed a handshake")

enum class Threshold : uint8_t {
#define STATELINE_X(name, def, lo, hi, unit, help) name,
    STATELINE_THRESHOLDS(STATELINE_X)
#undef STATELINE_X
        count_
};
inline constexpr unsigned kThresholdCount = static_cast<unsigned>(Threshold::count_);

struct ThresholdInfo {
    const char* name;
    uint32_t default_value, min, max;
    const char* unit;
    const char* help;
};
inline constexpr ThresholdInfo kThresholdInfo[kThresholdCount] = {
#define STATELINE_X(name, def, lo, hi, unit, help) {#name, def, lo, hi, unit, help},
    STATELINE_THRESHOLDS(STATELINE_X)
#undef STATELINE_X
};

struct Thresholds {
    std::array<uint32_t, kThresholdCount> v{};
    Thresholds() {
        for (unsigned i = 0; i < kThresholdCount; ++i) v[i] = kThresholdInfo[i].default_value;
    }
    uint32_t operator[](Threshold t) const { return v[static_cast<unsigned>(t)]; }
    uint32_t& operator[](Threshold t) { return v[static_cast<unsigned>(t)]; }
};

// An IPv4 or IPv6 prefix, IPv4 stored IPv4-mapped (::ffff:a.b.c.d, length + 96) as flow keys are.
struct Prefix {
    uint8_t addr[16]{};  // network byte order, host bits zero
    uint8_t len = 0;     // 0..128 over the 16 bytes
    bool contains(const uint8_t a[16]) const noexcept {
        unsigned full = len / 8, rest = len % 8;
        for (unsigned i = 0; i < full; ++i)
            if (a[i] != addr[i]) return false;
        if (rest == 0) return true;
        const uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
        return (a[full] & mask) == addr[full];
    }
    bool operator==(const Prefix&) const = default;
};
// Parses "192.0.2.0/24", "2001:db8::/32", or a bare address (a /32 or /128). False with a reason
// on error (host bits set, bad length, not an address).
bool parse_prefix(const std::string& text, Prefix& out, std::string& why);
std::string format_prefix(const Prefix& p);

// A group of prefixes with its own thresholds: victims inside it are judged by them, and so are
// scanning sources inside it. The most specific prefix over all groups decides.
struct Group {
    std::string name;
    std::vector<Prefix> prefixes;
    Thresholds thresholds;  // the defaults, overridden by what the group sets
};

struct Settings {
    bool enabled = true;
    uint32_t interval_ms = 1000;    // workers publish and the control core merges every interval
    uint32_t hold_down_s = 5;       // an alert ends after this long below its thresholds
    uint32_t warmup_s = 2;          // ack_flood waits this long after the first packet (pickups)
    uint32_t sketch_width = 8192;   // count-min cells per row (power of two)
    uint32_t top = 128;             // heavy-hitter candidates per worker per interval
    Thresholds thresholds;          // "default" group
    std::vector<Group> groups;
};

}  // namespace stateline::detect
