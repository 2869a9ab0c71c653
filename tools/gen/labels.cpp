// SPDX-License-Identifier: BSD-3-Clause
#include "labels.hpp"

#include <algorithm>
#include <cmath>

namespace stateline::gen {

namespace {

// Capture-time seconds, rounded to the nanosecond so the JSON text is stable.
double seconds(uint64_t ns) { return static_cast<double>(ns) / 1e9; }

nlohmann::ordered_json addr_list(const std::vector<IpAddr>& v) {
    nlohmann::ordered_json a = nlohmann::ordered_json::array();
    for (const auto& x : v) a.push_back(x.str());
    return a;
}

// "1-1024" or "22,80,443" (runs folded), for the label of a scan.
std::string ports_text(const std::vector<uint16_t>& ports) {
    std::vector<uint16_t> p = ports;
    std::sort(p.begin(), p.end());
    std::string s;
    for (size_t i = 0; i < p.size();) {
        size_t j = i;
        while (j + 1 < p.size() && p[j + 1] == p[j] + 1) ++j;
        if (!s.empty()) s += ",";
        s += std::to_string(p[i]);
        if (j > i) s += "-" + std::to_string(p[j]);
        i = j + 1;
    }
    return s;
}

}  // namespace

std::string format_target(const Prefix& p, uint16_t port) {
    const bool host = p.host_bits() == 0;
    const std::string a = host ? p.base.str() : p.str();
    if (port == 0) return a;
    return p.base.v6 ? "[" + a + "]:" + std::to_string(port) : a + ":" + std::to_string(port);
}

nlohmann::ordered_json make_labels(const Scenario& sc, const RunStats& st, uint64_t seed) {
    using J = nlohmann::ordered_json;
    J j;
    j["generator"] = "stateline-gen";
    j["format"] = 1;
    j["scenario"] = sc.name;
    j["description"] = sc.description;
    j["seed"] = seed;
    j["capture_start_epoch"] = static_cast<double>(sc.start_epoch_ns / 1000000000ull) +
                               static_cast<double>(sc.start_epoch_ns % 1000000000ull) / 1e9;
    j["capture_start_epoch_ns"] = sc.start_epoch_ns;
    j["duration"] = sc.duration;
    j["timestamp_resolution"] = sc.resolution == TsResolution::nano ? "ns" : "us";
    j["snaplen"] = sc.snaplen;
    j["packet_label_ids"] = "0 = baseline legitimate traffic; attacks[i].id = that entry";

    J attacks = J::array();
    unsigned n_attacks = 0, n_controls = 0;
    for (size_t i = 0; i < sc.attacks.size(); ++i) {
        const AttackSpec& a = sc.attacks[i];
        const AttackStats& s = st.attacks[i];
        const bool control = a.type == AttackType::flash_crowd;
        const bool scan = a.type == AttackType::syn_scan || a.type == AttackType::stealth_scan ||
                          a.type == AttackType::connect_scan;
        control ? ++n_controls : ++n_attacks;
        J e;
        e["id"] = i + 1;
        e["type"] = attack_type_name(a.type);
        if (a.type == AttackType::stealth_scan) e["variant"] = stealth_variant_name(a.variant);
        e["control"] = control;
        if (scan) {
            e["target"] = a.source.str();
            e["victims"] = format_target(a.target, 0);
            e["ports"] = ports_text(a.ports);
            e["sources"] = J::array({a.source.str()});
        } else if (a.type == AttackType::synack_reflection) {
            e["target"] = format_target(a.target, 0);
            e["sources"] = J{{"count", s.distinct_sources}, {"pool", a.source_count}, {"prefix", a.sources.str()},
                             {"ports", ports_text(a.ports)}, {"sample", addr_list(s.sample)}, {"role", "reflectors"}};
        } else if (a.type == AttackType::rst_injection || a.type == AttackType::flash_crowd) {
            e["target"] = format_target(a.target, a.port);
            // Its clients reach the service over both families: name the other address too.
            if (a.service >= 0) {
                const ServerSpec& srv = sc.servers[sc.services[static_cast<size_t>(a.service)].server];
                J alias = J::array();
                for (const IpAddr* ip : {srv.has_v4 ? &srv.v4 : nullptr, srv.has_v6 ? &srv.v6 : nullptr}) {
                    if (!ip || *ip == a.target.base) continue;
                    Prefix p;
                    p.base = *ip;
                    p.len = ip->v6 ? 128 : 32;
                    alias.push_back(format_target(p, a.port));
                }
                if (!alias.empty()) e["target_aliases"] = alias;
            }
            J src{{"count", s.distinct_sources}};
            if (a.type == AttackType::flash_crowd)
                src["prefix"] = J::array({a.crowd.wan_prefix.str(), a.crowd.v6_prefix.str()});
            else
                src["spoofed"] = "the clients of the connections reset";
            src["sample"] = addr_list(s.sample);
            e["sources"] = src;
        } else {
            e["target"] = format_target(a.target, a.port);
            e["sources"] = J{{"count", s.distinct_sources}, {"pool", a.source_count}, {"prefix", a.sources.str()},
                             {"sample", addr_list(s.sample)}};
        }
        const double end_s = a.duration < 0 ? sc.duration : std::min(sc.duration, a.start + a.duration);
        const uint64_t start_ns = static_cast<uint64_t>(std::llround(a.start * 1e9));
        uint64_t end_ns = static_cast<uint64_t>(std::llround(end_s * 1e9));
        // A scan that has probed everything ends with its last probe (a connect scan's last
        // handshake may finish one RTT later: see last_packet).
        if (scan && s.completed && s.last_attacker_ns < end_ns) end_ns = s.last_attacker_ns;
        e["start"] = seconds(start_ns);
        e["end"] = seconds(end_ns);
        e["start_epoch_ns"] = sc.start_epoch_ns + start_ns;
        e["end_epoch_ns"] = sc.start_epoch_ns + end_ns;
        e["rate_pps"] = a.rate;
        if (control) e["rate_unit"] = "connections per second at the peak";
        else if (scan) e["rate_unit"] = "probes per second";
        else if (a.type == AttackType::rst_injection) e["rate_unit"] = "injections per second";
        else e["rate_unit"] = "packets per second";
        e["packets"] = s.packets;
        e["packets_attacker"] = s.attacker_packets;
        e["packets_response"] = s.response_packets;
        e["first_packet"] = s.packets ? J(seconds(s.first_ns)) : J(nullptr);
        e["last_packet"] = s.packets ? J(seconds(s.last_ns)) : J(nullptr);
        if (scan) {
            e["probes"] = s.probes;
            e["completed"] = s.completed;
        }
        if (control || a.type == AttackType::connect_scan) e["connections"] = s.connections;
        if (a.type == AttackType::rst_injection) e["missed"] = s.missed;
        if (a.type == AttackType::syn_flood || a.type == AttackType::half_open_exhaustion ||
            a.type == AttackType::syn_scan || a.type == AttackType::connect_scan)
            e["dropped_syns"] = s.dropped_syns;
        attacks.push_back(e);
    }
    j["attacks"] = attacks;

    J classes;
    uint64_t legit = 0;
    for (unsigned c = 0; c < kClassCount; ++c) {
        if (c == kLegitClassCount + static_cast<unsigned>(AttackType::flash_crowd)) continue;
        classes[class_name(c)] = st.class_packets[c];
        if (c < kLegitClassCount) legit += st.class_packets[c];
    }
    j["classes"] = classes;
    j["totals"] = J{{"packets", st.packets},
                    {"bytes", st.wire_bytes},
                    {"legit_packets", legit},
                    {"attack_packets", st.packets - legit},
                    {"legit_connections", st.legit_connections},
                    {"legit_syn_dropped", st.legit_syn_dropped},
                    {"legit_gave_up", st.legit_gave_up},
                    {"baseline_client_hosts", st.baseline_distinct_hosts},
                    {"attacks", n_attacks},
                    {"controls", n_controls},
                    {"peak_concurrent_connections", st.peak_live_actors}};
    return j;
}

}  // namespace stateline::gen
