// SPDX-License-Identifier: BSD-3-Clause
#include "summary.hpp"

#include <fmt/format.h>

#include <map>

#include "conn_log.hpp"
#include "packet_meta.hpp"

namespace stateline {

namespace {

using counters::descriptors;

std::vector<uint64_t> totals(const RunReport& r) {
    std::vector<uint64_t> t(descriptors().size(), 0);
    for (const auto& w : r.workers)
        for (size_t i = 0; i < t.size(); ++i) t[i] += w.values[i];
    return t;
}

uint64_t value(const std::vector<uint64_t>& v, const std::string& group, const std::string& name) {
    const auto& d = descriptors();
    for (size_t i = 0; i < d.size(); ++i)
        if (d[i].group == group && d[i].name == name) return v[i];
    return 0;
}

// Nests "flows.removed" as j["flows"]["removed"].
nlohmann::ordered_json& group_node(nlohmann::ordered_json& root, const std::string& group) {
    nlohmann::ordered_json* node = &root;
    size_t start = 0;
    for (;;) {
        size_t dot = group.find('.', start);
        node = &(*node)[group.substr(start, dot == std::string::npos ? std::string::npos : dot - start)];
        if (dot == std::string::npos) return *node;
        start = dot + 1;
    }
}

void put_groups(nlohmann::ordered_json& root, const std::vector<uint64_t>& v) {
    const auto& d = descriptors();
    for (size_t i = 0; i < d.size(); ++i) group_node(root, d[i].group)[d[i].name] = v[i];
}

const char* link_name(const CaptureInfo& c) {
    return c.link == packet::LinkType::linux_sll ? "LINUX_SLL" : "EN10MB";
}

std::string thousands(uint64_t n) {
    const std::string d = std::to_string(n);
    std::string s;
    for (size_t i = 0; i < d.size(); ++i) {
        if (i && (d.size() - i) % 3 == 0) s += ',';
        s += d[i];
    }
    return s;
}

std::string human_bytes(uint64_t b) {
    if (b >= 10ull << 30) return fmt::format("{:.1f} GiB", b / double(1ull << 30));
    if (b >= 10ull << 20) return fmt::format("{:.1f} MiB", b / double(1ull << 20));
    if (b >= 10ull << 10) return fmt::format("{:.1f} KiB", b / double(1ull << 10));
    return fmt::format("{} B", b);
}

}  // namespace

nlohmann::ordered_json summary_json(const RunReport& r) {
    const auto t = totals(r);
    nlohmann::ordered_json j;
    j["version"] = STATELINE_VERSION;
    j["mode"] = r.mode;
    j["interrupted"] = r.interrupted;
    // The four headline figures, checked against tshark by the functional tests.
    j["packets"] = value(t, "rx", "rx_packets");
    j["bytes"] = value(t, "rx", "rx_bytes");
    j["tcp_packets"] = value(t, "outcomes", "tcp");
    // Distinct TCP 5-tuples (with VLANs): a connection that reuses a tuple whose previous
    // connection is still tracked (a new SYN after a close) is a new connection, not a new flow.
    // A tuple reused after its entry expired counts again: the table keeps no history.
    j["tcp_flows"] = value(t, "flows", "created") - value(t, "rx", "tuple_reused");
    j["tcp_connections"] = value(t, "flows", "created");
    j["elapsed_s"] = r.elapsed_s;
    if (!r.captures.empty()) {
        auto& caps = j["captures"] = nlohmann::ordered_json::array();
        uint64_t first = UINT64_MAX, last = 0;
        for (size_t i = 0; i < r.captures.size(); ++i) {
            const auto& c = r.captures[i];
            nlohmann::ordered_json o;
            o["path"] = c.path;
            o["link_type"] = link_name(c);
            o["frames_in_file"] = c.frames;
            o["frames_not_delivered"] = i < r.undelivered.size() ? r.undelivered[i] : 0;
            if (!c.read_error.empty()) o["read_error"] = c.read_error;
            caps.push_back(o);
            if (c.frames) {
                first = std::min(first, c.first_ts_ns);
                last = std::max(last, c.last_ts_ns);
            }
        }
        j["capture_span_s"] = first <= last ? double(last - first) / 1e9 : 0.0;
    }
    auto& ps = j["ports"] = nlohmann::ordered_json::array();
    for (const auto& p : r.ports)
        ps.push_back({{"name", p.name}, {"ipackets", p.ipackets}, {"ibytes", p.ibytes}, {"imissed", p.imissed},
                      {"ierrors", p.ierrors}, {"rx_nombuf", p.rx_nombuf}, {"opackets", p.opackets},
                      {"oerrors", p.oerrors}, {"link_up", p.link_up}, {"link_changes", p.link_changes}});
    put_groups(j, t);

    // Every frame lands in exactly one outcome; the categories add up to packets.
    uint64_t cat[3] = {};
    for (unsigned i = 0; i < packet::kOutcomeCount; ++i)
        cat[static_cast<unsigned>(packet::kOutcomeInfo[i].category)] += value(t, "outcomes", packet::kOutcomeInfo[i].name);
    j["outcome_categories"] = {{"tracked", cat[0]}, {"counted", cat[1]}, {"malformed", cat[2]}};
    j["flows"]["capacity_per_worker"] = r.capacity_per_worker;
    j["flows"]["table_bytes_per_worker"] = r.table_bytes_per_worker;
    j["flows"]["table_bytes_per_connection"] =
        r.capacity_per_worker ? double(r.table_bytes_per_worker) / r.capacity_per_worker : 0.0;

    auto& conns = j["connections"];
    conns["records"] = r.conn_records;
    conns["by_conn_state"] = r.conn_states;
    for (unsigned k = 0; k < connlog::kCloseKindCount; ++k)
        conns["by_close"][connlog::close_kind_name(static_cast<connlog::CloseKind>(k))] = r.closes[k];
    for (unsigned st = 0; st < tcp::kStateCount; ++st) {
        const char* name = tcp::state_name(static_cast<tcp::State>(st));
        conns["tcp_states_at_stop"]["orig"][name] = r.orig_states[st];
        conns["tcp_states_at_stop"]["resp"][name] = r.resp_states[st];
    }

    j["alerts"] = r.alerts;

    auto& mit = j["mitigation"];
    mit["mode"] = r.mitigation_mode;
    auto& rules = mit["rules"] = nlohmann::ordered_json::array();
    for (const auto& x : r.rules)
        rules.push_back({{"name", x.name}, {"action", x.action}, {"hits", x.hits}, {"drops", x.drops}});

    auto& ws = j["workers"] = nlohmann::ordered_json::array();
    for (const auto& w : r.workers) {
        nlohmann::ordered_json o;
        o["id"] = w.id;
        o["lcore"] = w.lcore;
        put_groups(o, w.values);
        ws.push_back(o);
    }
    return j;
}

std::string summary_text(const RunReport& r) {
    const auto t = totals(r);
    const auto& d = descriptors();
    std::string s;
    auto line = [&](const char* label, const std::string& text) { s += fmt::format("  {:<11}{}\n", label, text); };

    s += fmt::format("Stateline {}: {} mode, {} worker{}{}\n", STATELINE_VERSION, r.mode, r.workers.size(),
                     r.workers.size() == 1 ? "" : "s", r.interrupted ? " (interrupted)" : "");
    for (size_t i = 0; i < r.captures.size(); ++i) {
        const auto& c = r.captures[i];
        std::string extra;
        if (i < r.undelivered.size() && r.undelivered[i])
            extra += fmt::format(", {} not delivered by the PMD", thousands(r.undelivered[i]));
        if (!c.read_error.empty()) extra += ", file breaks off: " + c.read_error;
        line(i == 0 ? "captures" : "", fmt::format("{} ({} frames, {}{})", c.path, thousands(c.frames), link_name(c), extra));
    }
    uint64_t packets = value(t, "rx", "rx_packets");
    uint64_t bytes = value(t, "rx", "rx_bytes");
    line("packets", fmt::format("{} ({}) in {:.3f} s, {:.3f} Mpps", thousands(packets), human_bytes(bytes), r.elapsed_s,
                                r.elapsed_s > 0 ? packets / r.elapsed_s / 1e6 : 0.0));
    for (const auto& p : r.ports)
        if (p.imissed || p.ierrors || p.rx_nombuf)
            line("LOST", fmt::format("port {}: {} frames missed (RX ring full), {} errors, {} without an mbuf",
                                     p.name, thousands(p.imissed), thousands(p.ierrors), thousands(p.rx_nombuf)));
    for (const auto& p : r.ports)
        if (p.link_changes || (!p.link_up && r.mode == "live"))
            line("link", fmt::format("port {}: {} link change(s), link {} at the stop", p.name, thousands(p.link_changes),
                                     p.link_up ? "up" : "down"));
    line("TCP", fmt::format("{} segments, {} connections on {} distinct tuples", thousands(value(t, "outcomes", "tcp")),
                            thousands(value(t, "flows", "created")),
                            thousands(value(t, "flows", "created") - value(t, "rx", "tuple_reused"))));

    std::string counted, malformed;
    for (unsigned i = 0; i < packet::kOutcomeCount; ++i) {
        const auto& o = packet::kOutcomeInfo[i];
        uint64_t v = value(t, "outcomes", o.name);
        if (!v || o.category == packet::OutcomeCategory::tracked) continue;
        std::string& dst = o.category == packet::OutcomeCategory::counted ? counted : malformed;
        dst += fmt::format("{}{} {}", dst.empty() ? "" : ", ", o.name, thousands(v));
    }
    line("not TCP", counted.empty() ? "none" : counted);
    line("malformed", malformed.empty() ? "none" : malformed);

    // Handshakes and teardowns, from the tracker's counters.
    auto tcpv = [&](const char* n) { return value(t, "tcp", n); };
    uint64_t hs_failed = tcpv("handshake_failed_bad_synack_ack") + tcpv("handshake_failed_bad_ack") +
                         tcpv("handshake_failed_refused") + tcpv("handshake_failed_timeout");
    line("handshakes", fmt::format("{} completed, {} failed (refused {}, timed out {}, bad SYN-ACK ack {}, bad ACK {})",
                                   thousands(tcpv("handshake_completed")), thousands(hs_failed),
                                   thousands(tcpv("handshake_failed_refused")), thousands(tcpv("handshake_failed_timeout")),
                                   thousands(tcpv("handshake_failed_bad_synack_ack")), thousands(tcpv("handshake_failed_bad_ack"))));
    line("teardowns", fmt::format("FIN {}, simultaneous {}, RST by originator {}, by responder {}, timeout {}",
                                  thousands(tcpv("teardown_fin")), thousands(tcpv("teardown_simultaneous")),
                                  thousands(tcpv("teardown_rst_orig")), thousands(tcpv("teardown_rst_resp")),
                                  thousands(tcpv("teardown_timeout"))));
    std::string states;
    for (const auto& [k, v] : r.conn_states) states += fmt::format("{}{} {}", states.empty() ? "" : ", ", k, thousands(v));
    line("conn_state", states.empty() ? "none" : states);
    if (value(t, "rx", "conn_records_dropped"))
        line("", fmt::format("LOST: {} connection records found the log ring full; raise conn_log.ring",
                             thousands(value(t, "rx", "conn_records_dropped"))));

    if (r.alerts.is_null()) {
        line("alerts", "detection off (detect.enabled: false)");
    } else {
        std::string by;
        for (const auto& [type, n] : r.alerts["by_type"].items())
            if (n.get<uint64_t>()) by += fmt::format("{}{} {}", by.empty() ? "" : ", ", type, n.get<uint64_t>());
        line("alerts", fmt::format("{} started{}{}", r.alerts["started"].get<uint64_t>(),
                                   by.empty() ? "" : " (" + by + ")",
                                   r.alerts["active_at_stop"].get<uint64_t>()
                                       ? fmt::format(", {} active at the stop", r.alerts["active_at_stop"].get<uint64_t>())
                                       : ""));
    }

    // The rules: hits and (would-)drops each, in running order; inline, where the frames went.
    if (!r.rules.empty()) {
        const bool inl = r.mitigation_mode == "inline";
        line("rules", fmt::format("{} mode, {} rule{}, {} TCP segments {}", r.mitigation_mode, r.rules.size(),
                                  r.rules.size() == 1 ? "" : "s",
                                  thousands(inl ? value(t, "rx", "rules_dropped") : value(t, "rx", "rules_would_drop")),
                                  inl ? "dropped" : "would be dropped (monitor: all passed on)"));
        for (const auto& x : r.rules) {
            std::string what = fmt::format("{} ({}): {} hits", x.name, x.action, thousands(x.hits));
            if (x.action == "drop" || x.action == "rate_limit" || x.drops)
                what += inl ? fmt::format(", {} dropped", thousands(x.drops))
                            : fmt::format(", {} would drop", thousands(x.drops));
            line("", what);
        }
        if (inl)
            line("", fmt::format("forwarded {} frames to the paired ports, {} dropped by the rules, {} the TX queue "
                                 "did not take",
                                 thousands(value(t, "rx", "tx_packets")), thousands(value(t, "rx", "rules_dropped")),
                                 thousands(value(t, "rx", "tx_failed"))));
    }

    std::string removed;
    for (size_t i = 0; i < d.size(); ++i)
        if (d[i].group == "flows.removed") removed += fmt::format(", {} {}", d[i].name, thousands(t[i]));
    line("flows", fmt::format("created {}{}", thousands(value(t, "flows", "created")), removed));
    uint64_t failed = value(t, "flows.insert_failed", "table_full") + value(t, "flows.insert_failed", "bucket_full");
    if (failed)
        line("", fmt::format("NOT TRACKED: {} connections found the table full (table_full {}, bucket_full {}); "
                             "raise flow_table.capacity",
                             thousands(failed), thousands(value(t, "flows.insert_failed", "table_full")),
                             thousands(value(t, "flows.insert_failed", "bucket_full"))));
    line("table", fmt::format("{} connections per worker, {} each ({:.0f} B per connection)",
                              thousands(r.capacity_per_worker), human_bytes(r.table_bytes_per_worker),
                              r.capacity_per_worker ? double(r.table_bytes_per_worker) / r.capacity_per_worker : 0.0));
    std::string per;
    for (const auto& w : r.workers)
        per += fmt::format("{}#{} {} frames, {} connections", per.empty() ? "" : "; ", w.id,
                           thousands(value(w.values, "rx", "rx_packets")), thousands(value(w.values, "flows", "created")));
    line("workers", per);
    return s;
}

}  // namespace stateline
