// SPDX-License-Identifier: BSD-3-Clause
#include "telemetry.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

#include <rte_telemetry.h>

#include "counters.hpp"

namespace stateline {

namespace {

using counters::descriptors;
using counters::Kind;

// Never destroyed: the telemetry thread may still answer while the process exits.
std::mutex& board_mutex() {
    static std::mutex* m = new std::mutex;
    return *m;
}
const SnapshotBoard* g_board = nullptr;  // guarded by board_mutex()
bool g_stopped = false;                  // guarded by board_mutex()
unsigned g_interval_ms = 1000;
bool g_registered = false;               // control core only

constexpr size_t kMaxAlerts = 48;        // ~170 bytes each: well inside the 16 KiB reply
constexpr size_t kMaxRules = 64;         // ~200 bytes each at most (long names clipped)
constexpr size_t kStr = RTE_TEL_MAX_STRING_LEN - 1;

// The latest snapshot, or null with `why` set.
std::shared_ptr<const Snapshot> current(std::string& why) {
    std::lock_guard<std::mutex> g(board_mutex());
    if (!g_board) {
        why = g_stopped ? "stopped: Stateline is shutting down" : "not ready";
        return nullptr;
    }
    auto s = g_board->get();
    if (!s)
        why = "no aggregates yet: the first is taken one interval (" + std::to_string(g_interval_ms) +
              " ms, stats.interval_ms) after the start; ask again shortly";
    return s;
}

std::string clip(std::string s) {
    if (s.size() > kStr) s.resize(kStr);
    return s;
}

// A client's parameter, fit to be quoted back: printable, no quotes, short.
std::string quoted(const char* p) {
    std::string out;
    for (const char* c = p; *c && out.size() < 32; ++c)
        out += (std::isprint(static_cast<unsigned char>(*c)) && *c != '"' && *c != '\\') ? *c : '?';
    if (std::strlen(p) > 32) out += "...";
    return "'" + out + "'";
}

std::string trimmed(const char* params) {
    std::string s = params ? params : "";
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

int reply_error(rte_tel_data* d, const std::string& msg, const std::string& accepted = {}) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "error", clip(msg).c_str());
    if (!accepted.empty()) rte_tel_data_add_dict_string(d, "accepted", clip(accepted).c_str());
    return 0;
}

// "flows.by_state" + "half_open" -> "flows/by_state/half_open": dict names allow [A-Za-z0-9_/].
std::string key_of(const counters::Desc& desc) {
    std::string k = desc.group + "/" + desc.name;
    for (char& c : k)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/')) c = '/';
    return k;
}

std::string name_of(const std::string& s) {
    std::string k = s.substr(0, kStr);
    for (char& c : k)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/')) c = '_';
    return k;
}

std::string group_list() {
    std::vector<std::string> groups;
    for (const auto& d : descriptors())
        if (std::find(groups.begin(), groups.end(), d.group) == groups.end()) groups.push_back(d.group);
    std::string out;
    for (const auto& g : groups) out += (out.empty() ? "" : ", ") + g;
    return out;
}

// The group a parameter names ("flows.by_state" or "flows/by_state"), "" for all; false if none.
bool parse_group(const std::string& p, std::string& group) {
    group.clear();
    if (p.empty()) return true;
    std::string g = p;
    for (char& c : g)
        if (c == '/') c = '.';
    for (const auto& d : descriptors())
        if (d.group == g) {
            group = g;
            return true;
        }
    return false;
}

// A worker id parameter: "" for all (-1), else a number below `workers`.
bool parse_worker(const std::string& p, size_t workers, long& id) {
    id = -1;
    if (p.empty()) return true;
    if (p.size() > 4) return false;
    for (char c : p)
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    id = std::stol(p);
    return static_cast<size_t>(id) < workers;
}

uint64_t ms(double s) { return s > 0 ? static_cast<uint64_t>(std::llround(s * 1000.0)) : 0; }
uint64_t rounded(double v) { return v > 0 ? static_cast<uint64_t>(std::llround(v)) : 0; }

void add_time(rte_tel_data* d, const Snapshot& s) {
    rte_tel_data_add_dict_u64(d, "seq", s.seq);
    rte_tel_data_add_dict_u64(d, "time_ms", ms(s.wall_s));
    rte_tel_data_add_dict_u64(d, "uptime_ms", ms(s.uptime_s));
    rte_tel_data_add_dict_u64(d, "interval_ms", ms(s.interval_s));
    rte_tel_data_add_dict_u64(d, "clock_ns", s.clock_ns);
    rte_tel_data_add_dict_string(d, "mode", clip(s.mode).c_str());
    rte_tel_data_add_dict_int(d, "running", s.running ? 1 : 0);
}

// One JSON scalar into a dict: strings as strings, numbers as integers (telemetry has no
// floating point: rounded), booleans as 0/1. Containers are skipped.
int add_scalar(rte_tel_data* d, const std::string& name, const nlohmann::json& v) {
    const std::string k = name_of(name);
    if (v.is_string()) return rte_tel_data_add_dict_string(d, k.c_str(), clip(v.get<std::string>()).c_str());
    if (v.is_boolean()) return rte_tel_data_add_dict_int(d, k.c_str(), v.get<bool>() ? 1 : 0);
    if (v.is_number_unsigned()) return rte_tel_data_add_dict_u64(d, k.c_str(), v.get<uint64_t>());
    if (v.is_number_integer()) {
        const int64_t x = v.get<int64_t>();
        if (x >= 0) return rte_tel_data_add_dict_u64(d, k.c_str(), static_cast<uint64_t>(x));
        return rte_tel_data_add_dict_int(d, k.c_str(), x < INT32_MIN ? INT32_MIN : static_cast<int>(x));
    }
    if (v.is_number_float()) return rte_tel_data_add_dict_u64(d, k.c_str(), rounded(v.get<double>()));
    return 0;
}

// A JSON object of scalars as a nested dict (telemetry nests one level only).
int add_object(rte_tel_data* d, const std::string& name, const nlohmann::json& obj) {
    rte_tel_data* c = rte_tel_data_alloc();
    if (!c) return -ENOMEM;
    rte_tel_data_start_dict(c);
    if (obj.is_object())
        for (auto it = obj.begin(); it != obj.end(); ++it) add_scalar(c, it.key(), it.value());
    int rc = rte_tel_data_add_dict_container(d, name_of(name).c_str(), c, 0);
    if (rc < 0) rte_tel_data_free(c);
    return rc;
}

const nlohmann::json* member(const nlohmann::json& j, const char* k) {
    if (!j.is_object()) return nullptr;
    auto it = j.find(k);
    return it == j.end() ? nullptr : &*it;
}

// The callbacks: exceptions must not cross into DPDK's C.
template <int (*F)(const char*, rte_tel_data*)>
int guarded(const char*, const char* params, rte_tel_data* d) {
    try {
        return F(params, d);
    } catch (const std::exception& e) {
        return reply_error(d, std::string("internal error: ") + e.what());
    } catch (...) {
        return reply_error(d, "internal error");
    }
}

int cmd_stats(const char* params, rte_tel_data* d) {
    std::string why, group;
    if (!parse_group(trimmed(params), group))
        return reply_error(d, "unknown counter group " + quoted(params) + ": give one of those in 'accepted', or none for all",
                           group_list());
    auto s = current(why);
    if (!s) return reply_error(d, why);
    rte_tel_data_start_dict(d);
    add_time(d, *s);
    const auto& desc = descriptors();
    for (size_t i = 0; i < desc.size() && i < s->total.size(); ++i)
        if (group.empty() || desc[i].group == group) rte_tel_data_add_dict_u64(d, key_of(desc[i]).c_str(), s->total[i]);
    return 0;
}

int cmd_rates(const char* params, rte_tel_data* d) {
    std::string why, group;
    if (!parse_group(trimmed(params), group))
        return reply_error(d, "unknown counter group " + quoted(params) + ": give one of those in 'accepted', or none for all",
                           group_list());
    auto s = current(why);
    if (!s) return reply_error(d, why);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "seq", s->seq);
    rte_tel_data_add_dict_u64(d, "interval_ms", ms(s->interval_s));
    rte_tel_data_add_dict_u64(d, "clock_ns", s->clock_ns);
    rte_tel_data_add_dict_string(d, "unit", "per second over the last interval, rounded");
    const auto& desc = descriptors();
    for (size_t i = 0; i < desc.size() && i < s->rate.size(); ++i)
        if (desc[i].kind == Kind::counter && (group.empty() || desc[i].group == group))
            rte_tel_data_add_dict_u64(d, key_of(desc[i]).c_str(), rounded(s->rate[i]));
    return 0;
}

void add_worker(rte_tel_data* c, const Snapshot& s, size_t w) {
    const auto at = [&](const char* g, const char* n) {
        const int i = Snapshot::index(g, n);
        return i < 0 || static_cast<size_t>(i) >= s.per_worker[w].size() ? 0 : s.per_worker[w][static_cast<size_t>(i)];
    };
    const auto rate = [&](const char* g, const char* n) {
        const int i = Snapshot::index(g, n);
        return w >= s.per_worker_rate.size() || i < 0 || static_cast<size_t>(i) >= s.per_worker_rate[w].size()
                   ? 0.0 : s.per_worker_rate[w][static_cast<size_t>(i)];
    };
    rte_tel_data_add_dict_u64(c, "rx_packets", at("rx", "rx_packets"));
    rte_tel_data_add_dict_u64(c, "rx_bytes", at("rx", "rx_bytes"));
    rte_tel_data_add_dict_u64(c, "rx_pps", rounded(rate("rx", "rx_packets")));
    rte_tel_data_add_dict_u64(c, "rx_bytes_per_s", rounded(rate("rx", "rx_bytes")));
    rte_tel_data_add_dict_u64(c, "polls_busy", at("rx", "polls_busy"));
    rte_tel_data_add_dict_u64(c, "polls_idle", at("rx", "polls_idle"));
    const double busy = rate("rx", "polls_busy"), idle = rate("rx", "polls_idle");
    rte_tel_data_add_dict_u64(c, "busy_percent", busy + idle > 0 ? rounded(100.0 * busy / (busy + idle)) : 0);
    rte_tel_data_add_dict_u64(c, "flows_active", at("flows", "active"));
}

int cmd_workers(const char* params, rte_tel_data* d) {
    std::string why;
    auto s = current(why);
    if (!s) return reply_error(d, why);
    long id;
    const size_t n = s->per_worker.size();
    if (!parse_worker(trimmed(params), n, id))
        return reply_error(d, "no worker " + quoted(params) + ": give a worker id from 0 to " +
                                  std::to_string(n ? n - 1 : 0) + ", or none for all");
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "seq", s->seq);
    rte_tel_data_add_dict_u64(d, "interval_ms", ms(s->interval_s));
    if (id >= 0) {
        rte_tel_data_add_dict_u64(d, "id", static_cast<uint64_t>(id));
        add_worker(d, *s, static_cast<size_t>(id));
        return 0;
    }
    rte_tel_data_add_dict_u64(d, "workers", n);
    for (size_t w = 0; w < n; ++w) {
        rte_tel_data* c = rte_tel_data_alloc();
        if (!c) break;
        rte_tel_data_start_dict(c);
        add_worker(c, *s, w);
        if (rte_tel_data_add_dict_container(d, std::to_string(w).c_str(), c, 0) < 0) {
            rte_tel_data_free(c);
            break;
        }
    }
    return 0;
}

int cmd_flows(const char* params, rte_tel_data* d) {
    std::string why;
    auto s = current(why);
    if (!s) return reply_error(d, why);
    long id;
    const size_t n = s->per_worker.size();
    if (!parse_worker(trimmed(params), n, id))
        return reply_error(d, "no worker " + quoted(params) + ": give a worker id from 0 to " +
                                  std::to_string(n ? n - 1 : 0) + ", or none for all workers together");
    const std::vector<uint64_t>& v = id >= 0 ? s->per_worker[static_cast<size_t>(id)] : s->total;
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "seq", s->seq);
    if (id >= 0) rte_tel_data_add_dict_u64(d, "worker", static_cast<uint64_t>(id));
    else rte_tel_data_add_dict_u64(d, "workers", n);
    const auto& desc = descriptors();
    const char* groups[] = {"flows.by_state", "flows.removed", "flows.insert_failed"};
    const char* names[] = {"by_state", "removed", "insert_failed"};
    for (size_t i = 0; i < desc.size() && i < v.size(); ++i)
        if (desc[i].group == "flows") rte_tel_data_add_dict_u64(d, name_of(desc[i].name).c_str(), v[i]);
    for (size_t g = 0; g < 3; ++g) {
        rte_tel_data* c = rte_tel_data_alloc();
        if (!c) break;
        rte_tel_data_start_dict(c);
        for (size_t i = 0; i < desc.size() && i < v.size(); ++i)
            if (desc[i].group == groups[g]) rte_tel_data_add_dict_u64(c, name_of(desc[i].name).c_str(), v[i]);
        if (rte_tel_data_add_dict_container(d, names[g], c, 0) < 0) rte_tel_data_free(c);
    }
    return 0;
}

int detection_off(rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_string(d, "detection", "off");
    rte_tel_data_add_dict_string(d, "note", "detection is off in the config (detect.enabled: false)");
    return 0;
}

int no_params(const char* cmd, const char* params, rte_tel_data* d) {
    return reply_error(d, std::string(cmd) + " takes no parameter; got " + quoted(params));
}

int cmd_alerts(const char* params, rte_tel_data* d) {
    if (!trimmed(params).empty()) return no_params("/stateline/alerts", params, d);
    std::string why;
    auto s = current(why);
    if (!s) return reply_error(d, why);
    if (s->detection.is_null()) return detection_off(d);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "seq", s->seq);
    rte_tel_data_add_dict_u64(d, "clock_ns", s->clock_ns);
    const nlohmann::json* active = member(s->detection, "active");
    const size_t n = active && active->is_array() ? active->size() : 0;
    rte_tel_data_add_dict_u64(d, "active", n);
    if (const nlohmann::json* started = member(s->detection, "started")) add_object(d, "started", *started);
    if (n > kMaxAlerts)
        rte_tel_data_add_dict_string(d, "note", ("showing the first " + std::to_string(kMaxAlerts) + " of " +
                                                 std::to_string(n) + " active alerts (telemetry replies are "
                                                 "limited to 16 KiB); the --alerts file has them all").c_str());
    for (size_t i = 0; i < n && i < kMaxAlerts; ++i) {
        const nlohmann::json& a = (*active)[i];
        const nlohmann::json* id = member(a, "id");
        const std::string key = id && id->is_number() ? std::to_string(id->get<uint64_t>()) : "alert_" + std::to_string(i);
        if (add_object(d, key, a) < 0) break;
    }
    return 0;
}

int cmd_top(const char* params, rte_tel_data* d) {
    if (!trimmed(params).empty()) return no_params("/stateline/top", params, d);
    std::string why;
    auto s = current(why);
    if (!s) return reply_error(d, why);
    if (s->detection.is_null()) return detection_off(d);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "seq", s->seq);
    rte_tel_data_add_dict_string(d, "unit", "*_per_s: per second over the last detection interval, rounded");
    for (const char* list : {"top_victims", "top_sources"}) {
        const nlohmann::json* v = member(s->detection, list);
        if (!v || !v->is_array()) continue;
        const std::string prefix = std::strcmp(list, "top_victims") == 0 ? "victim_" : "source_";
        for (size_t i = 0; i < v->size() && i < 50; ++i)
            if (add_object(d, prefix + std::to_string(i + 1), (*v)[i]) < 0) break;
    }
    return 0;
}

// Mitigation: mode, the rule set's generation and each rule's counts in the running order,
// keyed "1", "2", ... (rule names are free text; dict names allow [A-Za-z0-9_/] only).
int cmd_rules(const char* params, rte_tel_data* d) {
    if (!trimmed(params).empty()) return no_params("/stateline/rules", params, d);
    std::string why;
    auto s = current(why);
    if (!s) return reply_error(d, why);
    rte_tel_data_start_dict(d);
    rte_tel_data_add_dict_u64(d, "seq", s->seq);
    rte_tel_data_add_dict_string(d, "mode", clip(s->mitigation_mode).c_str());
    rte_tel_data_add_dict_u64(d, "generation", s->rules_generation);
    rte_tel_data_add_dict_u64(d, "rules", s->rules.size());
    rte_tel_data_add_dict_string(d, "unit", "hits, drops: TCP segments (drops: would-drops in monitor mode)");
    if (s->rules.size() > kMaxRules)
        rte_tel_data_add_dict_string(d, "note", ("showing the first " + std::to_string(kMaxRules) + " of " +
                                                 std::to_string(s->rules.size()) + " rules (telemetry replies are "
                                                 "limited to 16 KiB); stateline-ctl rules has them all").c_str());
    for (size_t i = 0; i < s->rules.size() && i < kMaxRules; ++i) {
        const RuleStat& r = s->rules[i];
        rte_tel_data* c = rte_tel_data_alloc();
        if (!c) break;
        rte_tel_data_start_dict(c);
        rte_tel_data_add_dict_string(c, "name", clip(r.name).c_str());
        rte_tel_data_add_dict_string(c, "action", clip(r.action).c_str());
        rte_tel_data_add_dict_u64(c, "hits", r.hits);
        rte_tel_data_add_dict_u64(c, "drops", r.drops);
        if (rte_tel_data_add_dict_container(d, std::to_string(i + 1).c_str(), c, 0) < 0) {
            rte_tel_data_free(c);
            break;
        }
    }
    return 0;
}

struct Command {
    const char* name;
    telemetry_cb fn;
    const char* help;
};

const Command kCommands[] = {
    {"/stateline/stats", guarded<cmd_stats>,
     "Stateline counter totals, \"group/name\": value, with time. Parameter: a group (rx, tcp, flows...)"},
    {"/stateline/rates", guarded<cmd_rates>,
     "Stateline counters per second over the last interval (rounded). Parameter: a group"},
    {"/stateline/workers", guarded<cmd_workers>,
     "Per worker: rx packets, pps, busy/idle polls, active flows. Parameter: a worker id"},
    {"/stateline/flows", guarded<cmd_flows>,
     "Connections by state, active, created, removed by reason. Parameter: a worker id"},
    {"/stateline/alerts", guarded<cmd_alerts>,
     "Active alerts (type, target, severity, group, start) keyed by id, and alerts started by type"},
    {"/stateline/top", guarded<cmd_top>, "Heaviest victims and sources of the last detection interval"},
    {"/stateline/rules", guarded<cmd_rules>,
     "Mitigation mode, rule set generation and per rule (keyed 1, 2... in running order): name, action, hits, drops"},
};

}  // namespace

bool register_telemetry(const SnapshotBoard* board, unsigned stats_interval_ms, std::string& err) {
    {
        std::lock_guard<std::mutex> g(board_mutex());
        g_board = board;
        g_stopped = false;
        g_interval_ms = stats_interval_ms;
    }
    if (g_registered) return true;
    g_registered = true;
    std::string refused;
    for (const auto& c : kCommands) {
        const int rc = rte_telemetry_register_cmd(c.name, c.fn, c.help);
        if (rc < 0) refused += std::string(refused.empty() ? "" : ", ") + c.name + " (" + std::strerror(-rc) + ")";
    }
    if (refused.empty()) return true;
    err = "DPDK telemetry refused the command(s) " + refused + "; the others are served";
    return false;
}

void unregister_telemetry() {
    std::lock_guard<std::mutex> g(board_mutex());
    g_board = nullptr;
    g_stopped = true;
}

std::string telemetry_socket_path(const std::string& runtime_dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path base = fs::path(runtime_dir) / "dpdk_telemetry.v2";
    if (fs::is_socket(base, ec)) return base.string();
    return {};
}

}  // namespace stateline
