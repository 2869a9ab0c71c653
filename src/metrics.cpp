// SPDX-License-Identifier: BSD-3-Clause
#include "metrics.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

#include <microhttpd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "counters.hpp"
#include "packet_meta.hpp"

namespace stateline {

namespace {

using counters::Desc;
using counters::Kind;
using Labels = std::vector<std::pair<std::string, std::string>>;

// ---------------------------------------------------------------- the exposition format

// Label values: backslash, double quote and line feed escaped (exposition format 0.0.4).
std::string escape_label(const std::string& v) {
    std::string o;
    o.reserve(v.size());
    for (char c : v) {
        if (c == '\\') o += "\\\\";
        else if (c == '"') o += "\\\"";
        else if (c == '\n') o += "\\n";
        else o += c;
    }
    return o;
}

// HELP text: backslash and line feed escaped.
std::string escape_help(const std::string& v) {
    std::string o;
    o.reserve(v.size());
    for (char c : v) {
        if (c == '\\') o += "\\\\";
        else if (c == '\n') o += "\\n";
        else o += c;
    }
    return o;
}

// Metric and label names: [a-zA-Z_][a-zA-Z0-9_]*.
std::string sanitize(std::string s) {
    for (char& c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) c = '_';
    return s;
}

std::string num(uint64_t v) { return std::to_string(v); }
std::string num(double v) { return fmt::format("{}", v); }

// Families in the order first seen, each with its samples together (the format requires it).
class Exposition {
public:
    void add(const std::string& family, Kind kind, const std::string& help, const Labels& labels,
             const std::string& value) {
        auto it = index_.find(family);
        if (it == index_.end()) {
            it = index_.emplace(family, fams_.size()).first;
            fams_.push_back({family, kind, help, {}});
        }
        std::string line = family;
        if (!labels.empty()) {
            line += '{';
            for (size_t i = 0; i < labels.size(); ++i) {
                if (i) line += ',';
                line += labels[i].first + "=\"" + escape_label(labels[i].second) + '"';
            }
            line += '}';
        }
        line += ' ';
        line += value;
        fams_[it->second].lines.push_back(std::move(line));
    }
    // A family with no sample yet still gets its HELP and TYPE (so a dashboard query finds the
    // name even when, say, no alert is active).
    void declare(const std::string& family, Kind kind, const std::string& help) {
        if (index_.count(family)) return;
        index_.emplace(family, fams_.size());
        fams_.push_back({family, kind, help, {}});
    }
    std::string str() const {
        std::string o;
        o.reserve(fams_.size() * 160);
        for (const auto& f : fams_) {
            o += "# HELP " + f.name + ' ' + escape_help(f.help) + '\n';
            o += "# TYPE " + f.name + (f.kind == Kind::counter ? " counter\n" : " gauge\n");
            for (const auto& l : f.lines) {
                o += l;
                o += '\n';
            }
        }
        return o;
    }

private:
    struct Family {
        std::string name;
        Kind kind;
        std::string help;
        std::vector<std::string> lines;
    };
    std::vector<Family> fams_;
    std::unordered_map<std::string, size_t> index_;
};

// ---------------------------------------------------------------- routing the descriptors

// Help of the labelled families (a flat family takes its descriptor's help).
const std::map<std::string, std::string>& family_help() {
    static const std::map<std::string, std::string> h = {
        {"stateline_rx_packets_total", "Frames received, per worker"},
        {"stateline_rx_bytes_total", "Captured bytes received, per worker"},
        {"stateline_rx_polls_total",
         "Polls of the RX queues (or ring), per worker, by result: busy (at least one frame) or idle (none)"},
        {"stateline_packets_total",
         "Frames by parse outcome (exactly one per frame) and the outcome's category: tracked, counted or malformed"},
        {"stateline_drops_total",
         "Frames, segments and records lost or not analysed, by reason: malformed frames (per outcome), TCP "
         "segments the flow table had no room for, connection records lost to a full log ring, and the ports' "
         "own drops (port_imissed, port_rx_nombuf, port_ierrors)"},
        {"stateline_handshakes_total", "TCP 3-way handshakes by result: completed, or how they failed"},
        {"stateline_teardowns_total", "TCP connections ended, by kind of teardown"},
        {"stateline_connections", "Connections in the flow table now, by TCP state (timeout class)"},
        {"stateline_flows_active", "Connections in the flow table now, per worker (each worker has its own table)"},
        {"stateline_flows_removed_total", "Connections removed from the flow table, by reason"},
        {"stateline_flows_insert_failed_total", "Connections the flow table could not take, by reason"},
    };
    return h;
}

struct Route {
    std::string family;
    Labels labels;
    bool per_worker = false;  // one series per worker (label worker="N") instead of the sum
};

std::string flat_family(const Desc& d) {
    std::string g = d.group;
    std::replace(g.begin(), g.end(), '.', '_');
    std::string n = d.name;
    if (n.rfind(g + "_", 0) == 0) n = n.substr(g.size() + 1);  // rx.rx_packets: not rx_rx_packets
    return sanitize("stateline_" + g + "_" + n) + (d.kind == Kind::counter ? "_total" : "");
}

bool starts(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

const char* outcome_category(const std::string& outcome) {
    for (const auto& o : packet::kOutcomeInfo)
        if (outcome == o.name) {
            switch (o.category) {
                case packet::OutcomeCategory::tracked: return "tracked";
                case packet::OutcomeCategory::counted: return "counted";
                case packet::OutcomeCategory::malformed: return "malformed";
            }
        }
    return "unknown";
}

// Where a descriptor goes: one route, or two for a malformed outcome (a packet outcome and a
// drop reason). Anything not named here is flat: stateline_<group>_<name>[_total].
std::vector<Route> routes(const Desc& d) {
    const std::string& g = d.group;
    const std::string& n = d.name;
    if (g == "rx") {
        if (n == "rx_packets" || n == "rx_bytes") return {{flat_family(d), {}, true}};
        if (starts(n, "polls_")) return {{"stateline_rx_polls_total", {{"result", n.substr(6)}}, true}};
        if (n == "untracked_no_room" || n == "conn_records_dropped")
            return {{"stateline_drops_total", {{"reason", n}}, false}};
    } else if (g == "outcomes") {
        const char* cat = outcome_category(n);
        std::vector<Route> r = {{"stateline_packets_total", {{"outcome", n}, {"category", cat}}, false}};
        if (std::strcmp(cat, "malformed") == 0) r.push_back({"stateline_drops_total", {{"reason", n}}, false});
        return r;
    } else if (g == "tcp") {
        if (n == "handshake_completed") return {{"stateline_handshakes_total", {{"result", "completed"}}, false}};
        if (starts(n, "handshake_failed_"))
            return {{"stateline_handshakes_total", {{"result", n.substr(17)}}, false}};
        if (starts(n, "teardown_")) return {{"stateline_teardowns_total", {{"kind", n.substr(9)}}, false}};
    } else if (g == "flows") {
        if (n == "active") return {{"stateline_flows_active", {}, true}};
    } else if (g == "flows.by_state") {
        return {{"stateline_connections", {{"state", n}}, false}};
    } else if (g == "flows.removed") {
        return {{"stateline_flows_removed_total", {{"reason", n}}, false}};
    } else if (g == "flows.insert_failed") {
        return {{"stateline_flows_insert_failed_total", {{"reason", n}}, false}};
    }
    return {{flat_family(d), {}, false}};
}

// The routes of every descriptor, computed once.
const std::vector<std::vector<Route>>& all_routes() {
    static const std::vector<std::vector<Route>> r = [] {
        std::vector<std::vector<Route>> v;
        for (const auto& d : counters::descriptors()) v.push_back(routes(d));
        return v;
    }();
    return r;
}

// Target kind of an active alert: the aggregator's own field when it gives one, else from the
// type (the scans are keyed by their source) and the target's form ("a.b.c.d:p", "[v6]:p").
std::string target_kind(const nlohmann::json& a) {
    if (a.contains("target_kind") && a["target_kind"].is_string()) return a["target_kind"].get<std::string>();
    const std::string type = a.value("type", "");
    if (type == "syn_scan" || type == "stealth_scan" || type == "connect_scan") return "source_ip";
    const std::string t = a.value("target", "");
    const bool endpoint = (!t.empty() && t[0] == '[' && t.find("]:") != std::string::npos) ||
                          (t.find('[') == std::string::npos && std::count(t.begin(), t.end(), ':') == 1);
    return endpoint ? "victim_endpoint" : "victim_ip";
}

std::string json_str(const nlohmann::json& o, const char* key) {
    if (!o.contains(key)) return "";
    const auto& v = o[key];
    return v.is_string() ? v.get<std::string>() : v.dump();
}

void render_header(Exposition& e, const MetricsInfo& info, const std::string& mode) {
    e.add("stateline_up", Kind::gauge, "1 while Stateline serves this endpoint", {}, "1");
    Labels l = {{"version", info.version.empty() ? "unknown" : info.version}};
    if (!mode.empty()) l.push_back({"mode", mode});
    e.add("stateline_build_info", Kind::gauge, "Always 1: the version and mode (live or capture) as labels", l, "1");
}

double wall_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

// ---------------------------------------------------------------- rendering

std::string render_prometheus_empty(const MetricsInfo& info) {
    Exposition e;
    render_header(e, info, info.mode);
    return e.str();
}

std::string render_prometheus(const Snapshot& s, const MetricsInfo& info, double now_s) {
    const auto& d = counters::descriptors();
    const auto& rt = all_routes();
    const auto& fh = family_help();
    Exposition e;
    render_header(e, info, s.mode);
    if (now_s <= 0) now_s = wall_now();
    e.add("stateline_running", Kind::gauge, "1 while the workers run, 0 in the last snapshot (taken at the stop)", {},
          s.running ? "1" : "0");
    e.add("stateline_uptime_seconds", Kind::gauge, "Seconds since the workers started", {}, num(s.uptime_s));
    e.add("stateline_snapshots_total", Kind::counter,
          "Snapshots the control core has taken (one per stats interval); every figure here is from the latest",
          {}, num(s.seq));
    e.add("stateline_snapshot_timestamp_seconds", Kind::gauge, "Unix time at which the latest snapshot was taken",
          {}, num(s.wall_s));
    e.add("stateline_snapshot_age_seconds", Kind::gauge,
          "Seconds between the latest snapshot and this scrape (about one stats interval at most while running)", {},
          num(std::max(0.0, now_s - s.wall_s)));
    e.add("stateline_workers", Kind::gauge, "Worker lcores", {}, num(uint64_t{s.per_worker.size()}));

    // The counters, every descriptor by its route.
    const uint64_t zero = 0;
    for (size_t i = 0; i < d.size(); ++i) {
        for (const auto& r : rt[i]) {
            auto h = fh.find(r.family);
            const std::string& help = h != fh.end() ? h->second : d[i].help;
            if (r.per_worker) {
                for (size_t w = 0; w < s.per_worker.size(); ++w) {
                    Labels l = {{"worker", std::to_string(w)}};
                    l.insert(l.end(), r.labels.begin(), r.labels.end());
                    e.add(r.family, d[i].kind, help, l, num(i < s.per_worker[w].size() ? s.per_worker[w][i] : zero));
                }
            } else {
                e.add(r.family, d[i].kind, help, r.labels, num(i < s.total.size() ? s.total[i] : zero));
            }
        }
    }

    // The ports' own counters: per port, and their losses summed as drop reasons.
    uint64_t imissed = 0, nombuf = 0, ierrors = 0;
    for (const auto& p : s.ports) {
        imissed += p.imissed;
        nombuf += p.rx_nombuf;
        ierrors += p.ierrors;
    }
    e.add("stateline_drops_total", Kind::counter, fh.at("stateline_drops_total"), {{"reason", "port_imissed"}},
          num(imissed));
    e.add("stateline_drops_total", Kind::counter, "", {{"reason", "port_rx_nombuf"}}, num(nombuf));
    e.add("stateline_drops_total", Kind::counter, "", {{"reason", "port_ierrors"}}, num(ierrors));
    e.declare("stateline_port_packets_total", Kind::counter, "Frames received by the port (the driver's count)");
    e.declare("stateline_port_bytes_total", Kind::counter, "Bytes received by the port (the driver's count)");
    e.declare("stateline_port_tx_packets_total", Kind::counter,
              "Frames the port sent (the driver's count; inline mode forwards into the paired port)");
    e.declare("stateline_port_tx_errors_total", Kind::counter, "Frames the port failed to send (the driver's count)");
    e.declare("stateline_port_drops_total", Kind::counter,
              "Frames the port lost, by reason: imissed (RX descriptors full), rx_nombuf (no mbuf), ierrors "
              "(erroneous frames)");
    for (const auto& p : s.ports) {
        e.add("stateline_port_packets_total", Kind::counter, "", {{"port", p.name}}, num(p.ipackets));
        e.add("stateline_port_bytes_total", Kind::counter, "", {{"port", p.name}}, num(p.ibytes));
        e.add("stateline_port_tx_packets_total", Kind::counter, "", {{"port", p.name}}, num(p.opackets));
        e.add("stateline_port_tx_errors_total", Kind::counter, "", {{"port", p.name}}, num(p.oerrors));
        e.add("stateline_port_drops_total", Kind::counter, "", {{"port", p.name}, {"reason", "imissed"}}, num(p.imissed));
        e.add("stateline_port_drops_total", Kind::counter, "", {{"port", p.name}, {"reason", "rx_nombuf"}},
              num(p.rx_nombuf));
        e.add("stateline_port_drops_total", Kind::counter, "", {{"port", p.name}, {"reason", "ierrors"}}, num(p.ierrors));
    }
    e.declare("stateline_port_link_up", Kind::gauge,
              "1 when the port's link is up, 0 when down (polled each stats interval; Stateline keeps polling)");
    e.declare("stateline_port_link_changes_total", Kind::counter, "Times the port's link went down or up since the start");
    for (const auto& p : s.ports) {
        e.add("stateline_port_link_up", Kind::gauge, "", {{"port", p.name}}, p.link_up ? "1" : "0");
        e.add("stateline_port_link_changes_total", Kind::counter, "", {{"port", p.name}}, num(p.link_changes));
    }

    // Table occupancy: capacity next to stateline_flows_active (both per worker).
    if (info.capacity_per_worker) {
        for (size_t w = 0; w < s.per_worker.size(); ++w)
            e.add("stateline_flow_table_capacity", Kind::gauge,
                  "Connections the worker's flow table can hold (stateline_flows_active / this = occupancy)",
                  {{"worker", std::to_string(w)}}, num(info.capacity_per_worker));
    }

    // Detection.
    const bool detect = s.detection.is_object();
    e.add("stateline_detection_enabled", Kind::gauge, "1 when detection is on (detect.enabled)", {}, detect ? "1" : "0");
    e.declare("stateline_alerts_active", Kind::gauge,
              "Always 1: one series per active alert, its type, target, target kind, group and severity as labels");
    e.declare("stateline_alerts_started_total", Kind::counter, "Alerts started, by type");
    if (detect) {
        if (s.detection.contains("active") && s.detection["active"].is_array())
            for (const auto& a : s.detection["active"])
                e.add("stateline_alerts_active", Kind::gauge, "",
                      {{"type", json_str(a, "type")},
                       {"target", json_str(a, "target")},
                       {"target_kind", target_kind(a)},
                       {"group", json_str(a, "group")},
                       {"severity", json_str(a, "severity")}},
                      "1");
        if (s.detection.contains("started") && s.detection["started"].is_object())
            for (const auto& [type, n] : s.detection["started"].items())
                e.add("stateline_alerts_started_total", Kind::counter, "", {{"type", type}},
                      n.is_number_unsigned() ? num(n.get<uint64_t>()) : n.dump());
        if (s.detection.contains("intervals") && s.detection["intervals"].is_number())
            e.add("stateline_detection_intervals_total", Kind::counter, "Detection intervals judged", {},
                  s.detection["intervals"].dump());
    }

    // Mitigation: per rule, in the running order; counts survive a reload that keeps the name.
    e.add("stateline_mitigation_inline", Kind::gauge,
          "1 when the rules run inline (drop for real, forward the rest to the paired port), 0 in monitor mode", {},
          s.mitigation_mode == "inline" ? "1" : "0");
    e.add("stateline_rules_generation", Kind::gauge,
          "The running rule set's generation: 1 at the start, +1 per reload that changed the rules", {},
          num(s.rules_generation));
    e.declare("stateline_rule_hits_total", Kind::counter,
              "TCP segments each mitigation rule matched first, by rule name and action");
    e.declare("stateline_rule_drops_total", Kind::counter,
              "TCP segments each mitigation rule dropped (inline) or would have dropped (monitor mode)");
    for (const auto& r : s.rules)
        e.add("stateline_rule_hits_total", Kind::counter, "", {{"rule", r.name}, {"action", r.action}}, num(r.hits));
    for (const auto& r : s.rules)
        e.add("stateline_rule_drops_total", Kind::counter, "", {{"rule", r.name}, {"action", r.action}},
              num(r.drops));
    return e.str();
}

// ---------------------------------------------------------------- ADDR:PORT

std::string MetricsListen::text() const {
    if (off) return "off";
    return (addr.ss_family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool parse_metrics_listen(const std::string& s, MetricsListen& out, std::string& err) {
    out = MetricsListen{};
    if (s == "off") {
        out.off = true;
        return true;
    }
    const std::string form = "'" + s + "': give ADDR:PORT (127.0.0.1:9750, 0.0.0.0:9750, [::1]:9750) or 'off'";
    std::string host, port;
    if (!s.empty() && s[0] == '[') {
        const size_t close = s.find(']');
        if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':') {
            err = form;
            return false;
        }
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        const size_t colon = s.rfind(':');
        if (colon == std::string::npos || s.find(':') != colon) {
            err = form + (colon != std::string::npos ? " (an IPv6 address goes in brackets)" : "");
            return false;
        }
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) > 65535) {
        err = form + " (the port is a number from 0 to 65535)";
        return false;
    }
    out.port = static_cast<uint16_t>(std::stoul(port));
    out.host = host;
    if (s[0] == '[') {
        auto* a = reinterpret_cast<sockaddr_in6*>(&out.addr);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(out.port);
        if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) {
            err = form + " ('" + host + "' is not a numeric IPv6 address)";
            return false;
        }
        out.addr_len = sizeof(sockaddr_in6);
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&out.addr);
        a->sin_family = AF_INET;
        a->sin_port = htons(out.port);
        if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) {
            err = form + " ('" + host + "' is not a numeric IPv4 address)";
            return false;
        }
        out.addr_len = sizeof(sockaddr_in);
    }
    return true;
}

// ---------------------------------------------------------------- the HTTP server

struct MetricsHandler {
    static MHD_Result reply(MHD_Connection* c, unsigned status, const std::string& body, const char* type,
                            bool allow = false) {
        MHD_Response* r =
            MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
        if (!r) return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        if (allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        const MHD_Result ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        return ret;
    }

    // On MHD's thread. Errors are answered on the first call (MHD then closes the connection,
    // which is right for a request we refuse); a scrape on the second, once MHD has the whole
    // request, so the scraper's connection is kept alive.
    static MHD_Result access(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                             const char*, size_t* upload_size, void** req_cls) {
        const auto* self = static_cast<const MetricsServer*>(cls);
        static const char* kText = "text/plain; charset=utf-8";
        if (std::strcmp(url, "/metrics") != 0)
            return reply(c, MHD_HTTP_NOT_FOUND, "404 not found: Stateline serves /metrics only\n", kText);
        if (std::strcmp(method, MHD_HTTP_METHOD_GET) != 0 && std::strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
            return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "405 method not allowed: GET /metrics\n", kText, true);
        static int seen;
        if (*req_cls == nullptr) {
            *req_cls = &seen;
            return MHD_YES;
        }
        if (*upload_size) {  // a GET with a body: ignored
            *upload_size = 0;
            return MHD_YES;
        }
        std::string body;
        try {
            const auto snap = self->board_.get();
            body = snap ? render_prometheus(*snap, self->info_) : render_prometheus_empty(self->info_);
        } catch (const std::exception& ex) {
            return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, std::string("500 cannot render: ") + ex.what() + "\n",
                         kText);
        }
        return reply(c, MHD_HTTP_OK, body, "text/plain; version=0.0.4; charset=utf-8");
    }

    // MHD's messages: the last one is kept, to explain a failed start; none is printed (a
    // client over the limit or gone mid-request is not worth a line on the appliance's stderr).
    static void log(void* cls, const char* fmt, va_list ap) {
        char buf[256];
        std::vsnprintf(buf, sizeof buf, fmt, ap);
        auto* sink = static_cast<MetricsServer::LogSink*>(cls);
        std::lock_guard<std::mutex> g(sink->m);
        sink->last = buf;
        while (!sink->last.empty() && (sink->last.back() == '\n' || sink->last.back() == ' ')) sink->last.pop_back();
    }
};

MetricsServer::MetricsServer(const SnapshotBoard& board, MetricsListen where, MetricsInfo info)
    : board_(board), where_(std::move(where)), info_(std::move(info)), log_(std::make_unique<LogSink>()) {}

MetricsServer::~MetricsServer() { stop(); }

std::string MetricsServer::url() const {
    MetricsListen w = where_;
    w.port = port_;
    return "http://" + w.text() + "/metrics";
}

bool MetricsServer::start(std::string& err) {
    if (daemon_) return true;
    if (where_.off || where_.addr_len == 0) {
        err = "metrics are off";
        return false;
    }
    // Our own listening socket, so that a taken port or a foreign address gets its errno.
    const int fd = socket(where_.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        err = "cannot listen on " + where_.text() + " (" + std::strerror(errno) + ")";
        return false;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // a restart need not wait TIME_WAIT
    if (bind(fd, reinterpret_cast<const sockaddr*>(&where_.addr), where_.addr_len) != 0 || listen(fd, 64) != 0) {
        err = "cannot listen on " + where_.text() + " (" + std::strerror(errno) + ")";
        close(fd);
        return false;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    port_ = where_.port;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0)
        port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                                  : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);

    {
        std::lock_guard<std::mutex> g(log_->m);
        log_->last.clear();
    }
    // One internal thread polling every connection (epoll on Linux): a client that stalls holds
    // one slot until the timeout and delays nobody.
    daemon_ = MHD_start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, nullptr, nullptr,
        &MetricsHandler::access, this, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        static_cast<unsigned>(kConnectionLimit), MHD_OPTION_CONNECTION_TIMEOUT,
        static_cast<unsigned>(kConnectionTimeoutS), MHD_OPTION_EXTERNAL_LOGGER, &MetricsHandler::log,
        static_cast<void*>(log_.get()), MHD_OPTION_END);
    if (!daemon_) {
        std::lock_guard<std::mutex> g(log_->m);
        err = "cannot start the HTTP server on " + where_.text() + " (" +
              (log_->last.empty() ? std::string("libmicrohttpd gave no reason") : log_->last) + ")";
        return false;
    }
    return true;
}

void MetricsServer::stop() {
    if (daemon_) MHD_stop_daemon(daemon_);
    daemon_ = nullptr;
}

}  // namespace stateline
