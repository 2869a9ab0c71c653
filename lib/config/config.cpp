// SPDX-License-Identifier: BSD-3-Clause
#include "config.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "alert_types.hpp"
#include "rules.hpp"
#include "rules_yaml.hpp"

namespace stateline::config {

namespace {

enum class Kind { uint, boolean, string };

struct Param {
    std::string path;
    Kind kind;
    uint64_t min, max;
    std::string help;
    std::function<uint64_t(const Config&)> get;  // uint and bool
    std::function<void(Config&, uint64_t)> set;
    // A string: its allowed values, or a validator (error text, empty when fine) described by
    // `expected`; get_text/set_text read and write it.
    std::vector<std::string> allowed{};
    std::string expected{};
    std::function<std::string(const std::string&)> validate{};
    std::function<std::string(const Config&)> get_text{};
    std::function<void(Config&, const std::string&)> set_text{};
};

Param uint_param(const char* path, uint32_t Config::*f, uint64_t min, uint64_t max, const char* help) {
    return {path, Kind::uint, min, max, help, [f](const Config& c) -> uint64_t { return c.*f; },
            [f](Config& c, uint64_t x) { c.*f = static_cast<uint32_t>(x); }};
}

Param detect_param(const char* path, uint32_t detect::Settings::*f, uint64_t min, uint64_t max, const char* help) {
    return {path, Kind::uint, min, max, help, [f](const Config& c) -> uint64_t { return c.detect.*f; },
            [f](Config& c, uint64_t x) { c.detect.*f = static_cast<uint32_t>(x); }};
}

// A free-form string checked by `validate`; `expected` says what it accepts (errors, docs).
Param string_param(const char* path, std::string Config::*f, const char* expected,
                   std::function<std::string(const std::string&)> validate, const char* help) {
    Param p{path, Kind::string, 0, 0, help, nullptr, nullptr};
    p.expected = expected;
    p.validate = std::move(validate);
    p.get_text = [f](const Config& c) { return c.*f; };
    p.set_text = [f](Config& c, const std::string& s) { c.*f = s; };
    return p;
}

std::string no_line_breaks(const std::string& s) {
    return s.find_first_of("\r\n") == std::string::npos ? std::string() : "holds a line break";
}

// Split on spaces, no shell quoting: a quote or a line break would not mean what it seems.
std::string check_eal_args(const std::string& s) {
    if (s.find_first_of("\r\n") != std::string::npos) return "holds a line break";
    if (s.find_first_of("\"'`$;|&") != std::string::npos)
        return "holds a quote or a shell character (the arguments are split on spaces, not by a shell)";
    if (s.find(" -- ") != std::string::npos || s == "--" || s.rfind("-- ", 0) == 0 ||
        (s.size() >= 3 && s.compare(s.size() - 3, 3, " --") == 0))
        return "holds '--': these are EAL's arguments only";
    return {};
}

// "" (the default), "off", ADDR:PORT or [IPv6]:PORT. Syntax only: the address is resolved when
// the endpoint opens.
std::string check_listen(const std::string& s) {
    if (s.empty() || s == "off") return {};
    std::string host, port;
    if (s[0] == '[') {
        const size_t close = s.find(']');
        if (close == std::string::npos) return "no ']' closes the IPv6 address";
        if (close + 1 >= s.size() || s[close + 1] != ':') return "no ':PORT' after the ']'";
        host = s.substr(1, close - 1);
        port = s.substr(close + 2);
    } else {
        const size_t colon = s.rfind(':');
        if (colon == std::string::npos) return "no ':PORT'";
        if (s.find(':') != colon) return "an IPv6 address goes in brackets, as [::1]:9750";
        host = s.substr(0, colon);
        port = s.substr(colon + 1);
    }
    if (host.empty()) return "no address before the port";
    if (host.find_first_of(" \t\r\n") != std::string::npos) return "the address holds blanks";
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(port) < 1 || std::stoul(port) > 65535)
        return "the port '" + port + "' is not a number from 1 to 65535";
    return {};
}

// "" (the default path), "off" or an absolute path that fits a Unix socket address.
std::string check_socket_path(const std::string& s) {
    if (s.empty() || s == "off") return {};
    if (s[0] != '/') return "a relative path (the control socket must not depend on the working directory)";
    if (auto why = no_line_breaks(s); !why.empty()) return why;
    if (s.size() > 107) return "longer than a Unix socket path may be (107 bytes)";
    return {};
}

// "" (owner only) or a group name as groupadd takes it: letters, digits, '_', '-', '.', at most
// 32 bytes, not starting with '-'. Syntax only: whether the group exists is checked at start.
std::string check_group_name(const std::string& s) {
    if (s.empty()) return {};
    if (s.size() > 32) return "longer than a group name may be (32 bytes)";
    if (s[0] == '-') return "starts with '-'";
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
            return "holds a character a group name cannot have (letters, digits, '_', '-', '.')";
    return {};
}

// The schema. Ranges are what the data path can honour, not what is sensible: the annotated
// conf/stateline.yaml says what is sensible.
const std::vector<Param>& params() {
    static const std::vector<Param> v = [] {
        using S = detect::Settings;
        std::vector<Param> out = {
            uint_param("workers", &Config::workers, 1, 64, "Worker lcores in capture mode (live mode: EAL's -l/--lcores minus the main lcore)"),
            uint_param("rx.burst", &Config::burst, 1, 64, "Frames per rx_burst call"),
            uint_param("rx.descriptors", &Config::rx_descriptors, 64, 16384, "RX descriptors per queue (live mode)"),
            uint_param("rx.mbufs", &Config::mbufs, 1023, 4194303, "mbufs in the packet pool"),
            uint_param("rx.worker_ring", &Config::worker_ring, 64, 1048576, "Dispatcher-to-worker ring size in capture mode (power of two)"),
            uint_param("conn_log.ring", &Config::conn_ring, 1024, 16777216, "Connection records in flight from each worker to the control core (power of two)"),
            uint_param("flow_table.capacity", &Config::flow_capacity, 64, 268435456, "Connections tracked per worker, preallocated at start"),
            uint_param("flow_table.expiry_batch", &Config::expiry_batch, 1, 65536, "Entries the expiry clock examines per loop"),
            uint_param("flow_table.evict_search", &Config::evict_search, 1, 65536, "Entries examined to find one to recycle when the table is full"),
            uint_param("timeouts.half_open", &Config::timeout_half_open, 1, 86400, "Seconds a half-open connection (handshake not complete, or only one side heard from) is kept idle"),
            uint_param("timeouts.established", &Config::timeout_established, 1, 2592000, "Seconds an established connection is kept idle"),
            uint_param("timeouts.closing", &Config::timeout_closing, 1, 86400, "Seconds a closing connection (FIN seen) is kept idle"),
            uint_param("timeouts.msl", &Config::msl, 1, 3600, "Maximum segment lifetime, seconds; TIME-WAIT lasts 2 * msl"),
            uint_param("timeouts.closed", &Config::timeout_closed, 1, 3600, "Seconds a reset connection is kept to absorb stragglers"),
            uint_param("stats.interval_ms", &Config::stats_interval_ms, 100, 60000, "Milliseconds between aggregates of every worker (Prometheus, telemetry, stateline-ctl, --stats)"),
            {"detect.enabled", Kind::boolean, 0, 1, "Run the detectors (false: track and log connections only)",
             [](const Config& c) -> uint64_t { return c.detect.enabled; },
             [](Config& c, uint64_t x) { c.detect.enabled = x != 0; }},
            detect_param("detect.interval_ms", &S::interval_ms, 100, 60000, "Detection interval, ms: rates are judged over one interval"),
            detect_param("detect.hold_down", &S::hold_down_s, 0, 86400, "Seconds an alert stays active after its detector stops firing"),
            detect_param("detect.warmup", &S::warmup_s, 0, 3600, "Seconds after the first packet before ack_flood may fire (connections picked up mid-stream)"),
            detect_param("detect.sketch_width", &S::sketch_width, 1024, 1048576, "Count-min cells per row (power of two): wider, fewer over-counts"),
            detect_param("detect.top", &S::top, 16, 4096, "Heavy-hitter candidates per worker per interval"),
        };
        for (unsigned i = 0; i < detect::kThresholdCount; ++i) {
            const auto& t = detect::kThresholdInfo[i];
            out.push_back({std::string("thresholds.") + t.name, Kind::uint, t.min, t.max,
                           std::string(t.help) + " (" + t.unit + ")",
                           [i](const Config& c) -> uint64_t { return c.detect.thresholds.v[i]; },
                           [i](Config& c, uint64_t x) { c.detect.thresholds.v[i] = static_cast<uint32_t>(x); }});
        }

        Param mode{"mitigation.mode", Kind::string, 0, 0,
                   "monitor: the rules count and alert, nothing is dropped (a tap or SPAN port). inline: ports "
                   "in pairs (0 <-> 1, 2 <-> 3, ...), a bump in the wire: packets are forwarded with TX bursts "
                   "or dropped as the rules say",
                   nullptr, nullptr};
        mode.allowed = {"monitor", "inline"};
        mode.get_text = [](const Config& c) { return std::string(c.inline_mode ? "inline" : "monitor"); };
        mode.set_text = [](Config& c, const std::string& s) { c.inline_mode = s == "inline"; };
        out.push_back(std::move(mode));
        out.push_back(uint_param("mitigation.payload_bytes", &Config::payload_bytes, 1, 65535,
                                 "Payload bytes of each direction of a connection scanned by payload rules"));
        out.push_back(uint_param("mitigation.source_buckets", &Config::source_buckets, 16, 1048576,
                                 "Token buckets of each `per: source` rate_limit rule, per worker (power of two, "
                                 "16 bytes each); sources whose hashes collide share one"));

        out.push_back(string_param("dpdk.eal_args", &Config::eal_args, "EAL arguments separated by spaces", check_eal_args,
                                   "Live mode: DPDK EAL arguments (lcores, ports, memory), as before '--' on the "
                                   "command line, e.g. \"-l 0-4 -a 0000:03:00.0 -a 0000:03:00.1\": lcore 0 is the "
                                   "control core, every other a worker; used when the command line gives none"));
        out.push_back(string_param("exports.metrics_listen", &Config::metrics_listen, "ADDR:PORT, [IPv6]:PORT or off",
                                   check_listen,
                                   "Prometheus metrics at http://ADDR:PORT/metrics (quote the IPv6 form: \"[::1]:9750\"); "
                                   "\"\": 127.0.0.1:9750 live, off in a capture replay (--metrics-listen overrides)"));
        out.push_back(string_param("exports.ctl_socket", &Config::ctl_socket, "an absolute path or off",
                                   check_socket_path,
                                   "Control socket for stateline-ctl; \"\": the default path (--ctl-socket overrides)"));
        out.push_back(string_param("exports.ctl_group", &Config::ctl_group, "a group name or \"\"", check_group_name,
                                   "Group whose members may use the control socket: the socket is made 0660 with "
                                   "that group (and a folder Stateline creates for it 0750); \"\": owner and root "
                                   "only, 0600 (--ctl-group overrides; docs/security.md)"));
        out.push_back(string_param("exports.alerts", &Config::alerts_path, "a file path", no_line_breaks,
                                   "File for alert events as JSON lines (docs/alerts.md); \"\": none (--alerts "
                                   "overrides)"));
        out.push_back(string_param("exports.stats", &Config::stats_path, "a file path", no_line_breaks,
                                   "File for one JSON line of aggregates per stats interval; \"\": none (--stats "
                                   "overrides)"));
        return out;
    }();
    return v;
}

std::string at(const std::string& name, const YAML::Mark& m) {
    if (m.line < 0) return name;
    return name + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

bool is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }

// What a string parameter accepts, in words: "one of monitor, inline" or its validator's text.
std::string expected_text(const Param& p) {
    if (p.allowed.empty()) return p.expected;
    std::string s = "one of ";
    for (size_t i = 0; i < p.allowed.size(); ++i) s += (i ? ", " : "") + p.allowed[i];
    return s;
}

// An unsigned integer in [min, max]; what names it in errors ("'rx.burst'").
std::optional<uint64_t> parse_uint(const std::string& what, const YAML::Node& v, uint64_t min, uint64_t max,
                                   const std::string& name, std::vector<Error>& errors) {
    if (!v.IsScalar()) {
        errors.push_back({at(name, v.Mark()), what + " expects an unsigned integer"});
        return std::nullopt;
    }
    const std::string s = v.Scalar();
    uint64_t x = 0;
    size_t used = 0;
    bool parsed = !s.empty() && s[0] != '-';
    if (parsed) {
        try {
            x = std::stoull(s, &used, 0);
        } catch (...) {
            parsed = false;
        }
    }
    if (!parsed || used != s.size()) {
        errors.push_back({at(name, v.Mark()), what + " expects an unsigned integer, got '" + s + "'"});
        return std::nullopt;
    }
    if (x < min || x > max) {
        errors.push_back({at(name, v.Mark()), what + " = " + s + " is out of range [" + std::to_string(min) + ", " +
                                                  std::to_string(max) + "]"});
        return std::nullopt;
    }
    return x;
}

bool valid_group_name(const std::string& s) {
    if (s.empty()) return false;
    // ASCII only, whatever the locale: names go into logs and JSON alerts.
    return s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == std::string::npos;
}

// groups: a list of {name, prefixes, thresholds}. Runs after the rest of the document, so each
// group starts from the file's thresholds: section wherever that section sits.
void load_groups(const YAML::Node& list, const std::string& name, LoadResult& r) {
    if (list.IsNull()) return;  // "groups:" with every entry commented out
    if (!list.IsSequence()) {
        r.errors.push_back({at(name, list.Mark()), "'groups' expects a list of groups (- name: ..., prefixes: [...])"});
        return;
    }
    std::map<std::string, std::string> names;  // name -> where
    struct Seen {
        std::string group, where;
    };
    std::map<std::string, Seen> seen;  // 16 address bytes + length -> first place
    size_t index = 0;
    for (const auto& g : list) {
        ++index;
        std::string label = "group #" + std::to_string(index);
        if (!g.IsMap()) {
            r.errors.push_back({at(name, g.Mark()), label + " expects a mapping with name, prefixes and optionally thresholds"});
            continue;
        }
        detect::Group group;
        group.thresholds = r.config.detect.thresholds;
        // Default-constructed YAML::Nodes are defined nulls, hence the flags.
        YAML::Node name_node, prefixes_node, thresholds_node;
        bool has_name = false, has_prefixes = false;
        std::vector<YAML::Node> unknown;
        for (const auto& kv : g) {
            const std::string key = kv.first.as<std::string>();
            if (key == "name") {
                name_node = kv.second;
                has_name = true;
            } else if (key == "prefixes") {
                prefixes_node = kv.second;
                has_prefixes = true;
            } else if (key == "thresholds") {
                thresholds_node = kv.second;
            } else {
                unknown.push_back(kv.first);
            }
        }

        // The name first, so that the other errors can say which group they are about.
        if (!has_name) {
            r.errors.push_back({at(name, g.Mark()), label + " has no 'name'"});
        } else if (!name_node.IsScalar()) {
            r.errors.push_back({at(name, name_node.Mark()), "'name' of " + label + " expects a string"});
        } else {
            group.name = name_node.Scalar();
            const std::string where = at(name, name_node.Mark());
            if (!valid_group_name(group.name)) {
                r.errors.push_back({where, "group name '" + group.name + "' may hold only letters, digits, '_', '.' and '-'"});
            } else if (group.name == "default") {
                r.errors.push_back({where, "group name 'default' is reserved for the thresholds: section"});
            } else if (auto it = names.find(group.name); it != names.end()) {
                r.errors.push_back({where, "group name '" + group.name + "' is already used at " + it->second});
            } else {
                names[group.name] = where;
            }
            if (!group.name.empty()) label = "group '" + group.name + "'";
        }

        for (const auto& k : unknown)
            r.errors.push_back({at(name, k.Mark()), "unknown key '" + k.as<std::string>() + "' in " + label +
                                                        " (expected name, prefixes, thresholds)"});

        if (!has_prefixes) {
            r.errors.push_back({at(name, g.Mark()), label + " has no 'prefixes'"});
        } else if (!prefixes_node.IsSequence() || prefixes_node.size() == 0) {
            r.errors.push_back({at(name, prefixes_node.Mark()), "'prefixes' of " + label + " expects a non-empty list of prefixes"});
        } else {
            for (const auto& pn : prefixes_node) {
                const std::string where = at(name, pn.Mark());
                if (!pn.IsScalar()) {
                    r.errors.push_back({where, "a prefix of " + label + " expects a string such as 192.0.2.0/24"});
                    continue;
                }
                detect::Prefix p;
                std::string why;
                if (!detect::parse_prefix(pn.Scalar(), p, why)) {
                    r.errors.push_back({where, "bad prefix '" + pn.Scalar() + "' in " + label + ": " + why});
                    continue;
                }
                // The most specific prefix decides, so overlaps are fine; the same prefix twice is not.
                const std::string key(reinterpret_cast<const char*>(p.addr), 16);
                auto [it, fresh] = seen.try_emplace(key + static_cast<char>(p.len), Seen{label, where});
                if (!fresh) {
                    const std::string text = detect::format_prefix(p);
                    r.errors.push_back({where, it->second.group == label
                                                   ? "prefix " + text + " is listed twice in " + label + " (first at " +
                                                         it->second.where + ")"
                                                   : "prefix " + text + " of " + label + " is already in " +
                                                         it->second.group + " at " + it->second.where});
                    continue;
                }
                group.prefixes.push_back(p);
            }
        }

        if (!thresholds_node.IsNull()) {
            if (!thresholds_node.IsMap()) {
                r.errors.push_back({at(name, thresholds_node.Mark()),
                                    "'thresholds' of " + label + " expects a mapping of threshold names to values"});
            } else {
                for (const auto& kv : thresholds_node) {
                    const std::string key = kv.first.as<std::string>();
                    unsigned i = 0;
                    while (i < detect::kThresholdCount && key != detect::kThresholdInfo[i].name) ++i;
                    if (i == detect::kThresholdCount) {
                        r.errors.push_back({at(name, kv.first.Mark()), "unknown threshold '" + key + "' in " + label});
                        continue;
                    }
                    const auto& t = detect::kThresholdInfo[i];
                    if (auto x = parse_uint("'thresholds." + key + "' of " + label, kv.second, t.min, t.max, name, r.errors))
                        group.thresholds.v[i] = static_cast<uint32_t>(*x);
                }
            }
        }
        r.config.detect.groups.push_back(std::move(group));
    }
}

LoadResult load_node(const YAML::Node& root, const std::string& name) {
    LoadResult r;
    if (!root || root.IsNull()) return r;  // an empty file means all defaults
    if (!root.IsMap()) {
        r.errors.push_back({at(name, root.Mark()), "expected a mapping of sections at the top level"});
        return r;
    }
    std::map<std::string, const Param*> by_path;
    std::set<std::string> sections;
    std::map<std::string, std::string> where_set;  // path -> file:line:col, for cross-field errors
    for (const auto& p : params()) {
        by_path[p.path] = &p;
        if (auto dot = p.path.find('.'); dot != std::string::npos) sections.insert(p.path.substr(0, dot));
    }

    // Walk the document so unknown keys are reported too (a typo must not silently keep a default).
    auto visit_scalar = [&](const std::string& path, const YAML::Node& k, const YAML::Node& v) {
        auto it = by_path.find(path);
        if (it == by_path.end()) {
            r.errors.push_back({at(name, k.Mark()), "unknown parameter '" + path + "'"});
            return;
        }
        const Param& p = *it->second;
        if (p.kind == Kind::boolean) {
            // true/false only: YAML 1.1's yes/no/on/off are too easy to misread.
            const std::string s = v.IsScalar() ? v.Scalar() : "";
            if (s != "true" && s != "false") {
                r.errors.push_back({at(name, v.Mark()), "'" + path + "' expects true or false" +
                                                            (v.IsScalar() ? ", got '" + s + "'" : std::string())});
                return;
            }
            p.set(r.config, s == "true");
        } else if (p.kind == Kind::string) {
            if (!v.IsScalar()) {
                // A key with no value: its null has no place of its own, so name the key's.
                std::string hint;
                if (v.IsNull()) hint = " (\"\" for the default)";
                else if (v.IsSequence() && p.allowed.empty()) hint = " (YAML reads [...] as a list: quote the value)";
                r.errors.push_back({at(name, v.IsNull() ? k.Mark() : v.Mark()),
                                    "'" + path + "' expects a string: " + expected_text(p) + hint});
                return;
            }
            const std::string s = v.Scalar();
            if (!p.allowed.empty()) {
                if (std::find(p.allowed.begin(), p.allowed.end(), s) == p.allowed.end()) {
                    r.errors.push_back({at(name, v.Mark()), "'" + path + "' expects " + expected_text(p) + ", got '" + s + "'"});
                    return;
                }
            } else if (p.validate) {
                if (const std::string why = p.validate(s); !why.empty()) {
                    r.errors.push_back({at(name, v.Mark()), "'" + path + "' = '" + s + "': " + why + "; expected " +
                                                                expected_text(p)});
                    return;
                }
            }
            p.set_text(r.config, s);
        } else {
            auto x = parse_uint("'" + path + "'", v, p.min, p.max, name, r.errors);
            if (!x) return;
            p.set(r.config, *x);
        }
        where_set[path] = at(name, v.Mark());
    };

    YAML::Node groups;  // null when absent
    YAML::Node rules_list;  // null when absent
    for (const auto& kv : root) {
        const std::string key = kv.first.as<std::string>();
        const YAML::Node& v = kv.second;
        if (key == "groups") {
            groups = v;
        } else if (key == "rules") {
            rules_list = v;
        } else if (sections.count(key) && !v.IsMap()) {
            // A section whose keys are all commented out is empty, not an error.
            if (!v.IsNull())
                r.errors.push_back({at(name, v.Mark()), "'" + key + "' is a section: expected a mapping of its parameters"});
        } else if (v.IsMap()) {
            for (const auto& kv2 : v) visit_scalar(key + "." + kv2.first.as<std::string>(), kv2.first, kv2.second);
        } else {
            visit_scalar(key, kv.first, v);
        }
    }
    load_groups(groups, name, r);

    // The rules: list (absent or empty: none), compiled here so a config that loads is one the
    // workers can run; its errors join the others, each with its place. After every parameter,
    // wherever rules: sits: the mitigation: section gives its options.
    rules::Options opt;
    opt.scan_limit = r.config.payload_bytes;
    // Not a power of two is reported below, once: compile with the default meanwhile.
    if (is_power_of_two(r.config.source_buckets)) opt.source_buckets = r.config.source_buckets;
    auto rl = rules::load_rules(rules_list, name, opt);
    for (auto& e : rl.errors) r.errors.push_back({std::move(e.where), std::move(e.what)});
    r.config.rules = std::move(rl.set);

    // Cross-field rules.
    auto where = [&](const char* path) { return where_set.count(path) ? where_set[path] : name; };
    if (!is_power_of_two(r.config.source_buckets))
        r.errors.push_back({where("mitigation.source_buckets"), "'mitigation.source_buckets' = " +
                                                                    std::to_string(r.config.source_buckets) +
                                                                    " must be a power of two (buckets are found by masking the hash)"});
    if (!is_power_of_two(r.config.worker_ring))
        r.errors.push_back({where("rx.worker_ring"), "'rx.worker_ring' = " + std::to_string(r.config.worker_ring) +
                                      " must be a power of two (rte_ring)"});
    if (!is_power_of_two(r.config.conn_ring))
        r.errors.push_back({where("conn_log.ring"), "'conn_log.ring' = " + std::to_string(r.config.conn_ring) +
                                                        " must be a power of two (rte_ring)"});
    if ((r.config.mbufs + 1) & r.config.mbufs)
        r.errors.push_back({where("rx.mbufs"), "'rx.mbufs' = " + std::to_string(r.config.mbufs) +
                                      " should be a power of two minus one (mempool sizing)"});
    if (!is_power_of_two(r.config.detect.sketch_width))
        r.errors.push_back({where("detect.sketch_width"), "'detect.sketch_width' = " +
                                                              std::to_string(r.config.detect.sketch_width) +
                                                              " must be a power of two (cells are found by masking the hash)"});
    return r;
}

}  // namespace

LoadResult load_string(const std::string& text, const std::string& name) {
    try {
        return load_node(YAML::Load(text), name);
    } catch (const YAML::Exception& e) {
        LoadResult r;
        r.errors.push_back({at(name, e.mark), "YAML syntax: " + e.msg});
        return r;
    }
}

namespace {

// The file's text, or why not. Opened non-blocking and checked on what was opened (fstat), never
// on an earlier stat() of the path: a FIFO or a device, even one swapped in at the last moment,
// is refused at once instead of blocking the caller (at a reload, the control core). At most
// kMaxFileBytes + 1 bytes are read: one more than allowed says the file is too large, whatever
// its size said or however it grew.
bool read_bounded(const std::string& path, std::string& text, std::string& why) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        why = std::string("cannot open the file: ") + std::strerror(errno) + " (does it exist and is it readable?)";
        return false;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0)
        why = std::string("cannot read the file: ") + std::strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "is not a regular file (a FIFO, a device or a folder is never read as a config)";
    text.resize(why.empty() ? kMaxFileBytes + 1 : 0);
    size_t got = 0;
    while (got < text.size()) {
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n > 0) {
            got += size_t(n);
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            why = std::string("cannot read the file: ") + std::strerror(errno);
            break;
        }
    }
    ::close(fd);
    text.resize(got);
    if (why.empty() && got > kMaxFileBytes)
        why = "is over " + std::to_string(kMaxFileBytes >> 20) + " MiB, more than any config needs";
    return why.empty();
}

}  // namespace

LoadResult load_file(const std::string& path) {
    std::string text, why;
    if (!read_bounded(path, text, why)) {
        LoadResult r;
        r.errors.push_back({path, why});
        return r;
    }
    return load_string(text, path);
}

const std::vector<ParamInfo>& parameters() {
    static const std::vector<ParamInfo> v = [] {
        std::vector<ParamInfo> out;
        const Config d;
        for (const auto& p : params()) {
            ParamInfo i;
            i.path = p.path;
            i.help = p.help;
            i.min = p.min;
            i.max = p.max;
            if (p.kind == Kind::string) {
                i.type = "string";
                i.default_value = 0;
                i.value = [](const Config&) -> uint64_t { return 0; };
                i.text = p.get_text;
                i.allowed = p.allowed;
                i.expected = p.expected;
            } else {
                const bool b = p.kind == Kind::boolean;
                i.type = b ? "bool" : "uint";
                i.default_value = p.get(d);
                i.value = p.get;
                auto get = p.get;
                i.text = b ? std::function<std::string(const Config&)>(
                                 [get](const Config& c) { return std::string(get(c) ? "true" : "false"); })
                           : [get](const Config& c) { return std::to_string(get(c)); };
            }
            i.default_text = i.text(d);
            out.push_back(std::move(i));
        }
        return out;
    }();
    return v;
}

namespace {

// A table cell: no '|' nor line break may end it early.
std::string cell(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '|') out += "\\|";
        else if (c == '\n') out += ' ';
        else out += c;
    }
    return out;
}

std::string code(const std::string& s) { return "`" + (s.empty() ? std::string("\"\"") : s) + "`"; }

struct Section {
    const char* name;  // "" for the top level
    const char* intro;
};

// Every section of params(), in the order of conf/stateline.yaml.
const Section kSections[] = {
    {"", "Top-level parameters."},
    {"rx", "Packet reception: bursts, descriptors and the mbuf pool."},
    {"conn_log", "Connection records handed by each worker to the control core, which writes the connection log "
                 "(--conn-log)."},
    {"flow_table", "The per-worker table of tracked connections, preallocated at start (about 139 bytes per entry)."},
    {"timeouts", "Idle timeouts in seconds, by connection state. A connection whose state times out is removed "
                 "(and logged) the next time the expiry clock or a packet of its flow finds it."},
    {"stats", "Aggregates of every worker, for Prometheus, DPDK telemetry, stateline-ctl and --stats."},
    {"dpdk", "Live mode on DPDK ports: which lcores and ports, as EAL arguments."},
    {"exports", "Where Stateline publishes what it sees. `\"\"` means the default; the command-line option named "
                "with each one overrides it."},
    {"detect", "Detection of floods, scans and injected resets over the tracked connections (docs/alerts.md)."},
    {"thresholds", "Thresholds of the default group: every address outside the `groups:` below. A detector fires "
                   "when all its conditions hold over one detection interval. Rates are per second, shares in "
                   "percent (0..100)."},
    {"mitigation", "How the `rules:` below act on the traffic."},
};

std::string section_of(const std::string& path) {
    const size_t dot = path.find('.');
    return dot == std::string::npos ? std::string() : path.substr(0, dot);
}

std::string range_of(const Param& p) {
    switch (p.kind) {
        case Kind::uint: return std::to_string(p.min) + ".." + std::to_string(p.max);
        case Kind::boolean: return "`true`, `false`";
        case Kind::string:
            if (p.allowed.empty()) return p.expected;
            {
                std::string s;
                for (size_t i = 0; i < p.allowed.size(); ++i) s += (i ? ", " : "") + code(p.allowed[i]);
                return s;
            }
    }
    return {};
}

}  // namespace

std::string reference_markdown() {
    std::string md;
    md += "# Configuration reference\n"
          "\n"
          "<!-- Generated from the schema in lib/config/config.cpp by config::reference_markdown(): do not edit.\n"
          "     Regenerate with STATELINE_UPDATE_DOCS=1 build/tests/unit/test_config. -->\n"
          "\n"
          "Stateline reads one YAML file, named with `--config FILE`. A key left out takes its default, and\n"
          "without `--config` every parameter has its default: exactly what\n"
          "[conf/stateline.yaml](../conf/stateline.yaml) says, the annotated canonical file (copy it and\n"
          "change what you need).\n"
          "\n"
          "**Validation.** Check a file with `stateline-rules check FILE` (the `rules:` list is compiled too,\n"
          "Hyperscan patterns included). Every error is reported at once, each as `file:line:col: what`, and\n"
          "Stateline starts only from a file with none. Unknown keys are errors, so a typo never silently\n"
          "keeps a default; booleans are `true` or `false` only.\n"
          "\n"
          "**Reload.** `stateline-ctl reload` (or SIGHUP) re-reads the file named at start. The `thresholds`\n"
          "section, `detect.hold_down`, `detect.warmup`, the `groups:` list and the `rules:` list apply live;\n"
          "every other change needs a restart, and the reload names each change and whether it applied. A\n"
          "file with errors changes nothing.\n";

    md += "\n## Parameters\n";
    for (const auto& sec : kSections) {
        md += std::string("\n### ") + (sec.name[0] ? std::string("`") + sec.name + "`" : std::string("Top level")) +
              "\n\n" + sec.intro + "\n\n";
        md += "| Parameter | Type | Default | Range or values | Meaning |\n";
        md += "|---|---|---|---|---|\n";
        const Config d;
        for (const auto& p : params()) {
            if (section_of(p.path) != sec.name) continue;
            const std::string type = p.kind == Kind::uint ? "uint" : p.kind == Kind::boolean ? "bool" : "string";
            const std::string def = p.kind == Kind::string    ? p.get_text(d)
                                    : p.kind == Kind::boolean ? std::string(p.get(d) ? "true" : "false")
                                                              : std::to_string(p.get(d));
            md += "| `" + p.path + "` | " + type + " | " + code(def) + " | " + cell(range_of(p)) + " | " +
                  cell(p.help) + " |\n";
        }
    }

    md += "\n## The `groups:` list\n"
          "\n"
          "Groups of prefixes with their own thresholds: victims inside a group, and scanning sources inside\n"
          "it, are judged by them. The most specific prefix over all groups decides; a prefix may be in one\n"
          "group only. No groups (the default): the `thresholds` section judges every address.\n"
          "\n"
          "| Key | Meaning |\n"
          "|---|---|\n"
          "| `name` | Required, unique: letters, digits, `_`, `.`, `-` (`default` is reserved for the `thresholds` section) |\n"
          "| `prefixes` | Required, a non-empty list: `192.0.2.0/24`, `2001:db8:80::/48`; a bare address is a host (/32, /128) |\n"
          "| `thresholds` | A mapping of `thresholds.*` names to values; a group starts from the file's `thresholds` section and sets those it names |\n"
          "\n"
          "```yaml\n"
          "groups:\n"
          "  - name: web\n"
          "    prefixes: [192.0.2.0/24, \"2001:db8:80::/48\"]\n"
          "    thresholds:\n"
          "      syn_flood_rate: 20000\n"
          "      half_open_count: 1024\n"
          "```\n";

    std::string alert_types;
    for (unsigned i = 0; i < detect::kAlertTypeCount; ++i)
        alert_types += std::string(i ? ", " : "") + "`" + detect::alert_type_name(static_cast<detect::AlertType>(i)) + "`";

    md += "\n## The `rules:` list\n"
          "\n"
          "Mitigation rules, validated and compiled (one Hyperscan database for every payload pattern) when the\n"
          "file loads. A rule is **match -> action**. Each TCP segment is tried against the rules in file\n"
          "order and the **first rule that matches decides**. A rule matches when every condition under\n"
          "`match:` holds; a condition left out matches anything. No rules (the default): nothing is matched.\n"
          "At most " + std::to_string(rules::kMaxRules) + " rules. `mitigation.mode` says whether drops are enforced (`inline`) or only\n"
          "counted (`monitor`).\n"
          "\n"
          "```yaml\n"
          "rules:\n"
          "  - name: syn-flood-unverified\n"
          "    match:\n"
          "      dst: 192.0.2.0/24\n"
          "      dst_port: [80, 443, 8000-8080]\n"
          "      flags: SYN\n"
          "      victim_of: syn_flood\n"
          "      src_verified: false\n"
          "    action: drop\n"
          "  - name: no-admin\n"
          "    match:\n"
          "      dst_port: 80\n"
          "      payload: \"^(GET|POST) /admin\"\n"
          "      nocase: true\n"
          "    action: drop\n"
          "  - name: ssh-per-source\n"
          "    match:\n"
          "      src: [198.51.100.0/24]\n"
          "      dst_port: 22\n"
          "      flags: SYN\n"
          "    action: rate_limit\n"
          "    rate: 20\n"
          "    burst: 40\n"
          "    per: source\n"
          "```\n"
          "\n"
          "| Key | Meaning |\n"
          "|---|---|\n"
          "| `name` | Required, unique: letters, digits, `_`, `.`, `-`; names the rule in errors, counters and alerts |\n"
          "| `match.src`, `match.dst` | A prefix or a list of prefixes (`198.51.100.0/24`, `2001:db8::/32`; a bare address is a host) |\n"
          "| `match.dst_port` | A port, a range or a list of them: `80`, `8000-8080`, `[80, 443, 8000-8080]` |\n"
          "| `match.flags` | `SYN`: the named bits set and FIN, SYN, RST, ACK (plus those named) clear otherwise: a pure SYN, ECN bits allowed, not a SYN-ACK. `SYN/SYN,ACK` gives the mask explicitly; `none/...` matches NULL probes. Flags: FIN, SYN, RST, PSH, ACK, URG, ECE, CWR |\n"
          "| `match.state` | Connection class: `new` (the segment that created the connection's entry), `half_open`, `established`, `closing` (FIN or RST seen), `any`; a list matches any of them |\n"
          "| `match.victim_of` | An alert type or a list of them, active on the destination: " + alert_types + " |\n"
          "| `match.src_verified` | `true` or `false`: the source completed a TCP handshake recently (detection's verified sources); needs `detect.enabled` |\n"
          "| `match.payload` | A Hyperscan pattern over the first `mitigation.payload_bytes` bytes of payload of each direction of a connection |\n"
          "| `match.nocase` | `true`: the payload pattern ignores case (needs `payload`) |\n"
          "| `action` | Required: `alert` (counted and raised, the packet passes), `drop`, `rate_limit` (a token bucket), `allow` (stops evaluation: an exception before broader rules) |\n"
          "| `rate` | Packets per second, 1..1000000000: required by `rate_limit`, refused with another action |\n"
          "| `burst` | Bucket depth, packets (default: `rate`); `rate_limit` only |\n"
          "| `per` | `rule` (default: one bucket for the rule) or `source` (`mitigation.source_buckets` buckets indexed by a hash of the source address; colliding sources share one); `rate_limit` only |\n"
          "\n"
          "Token buckets refill from the packet clock, so a capture replay is deterministic. RSS spreads a\n"
          "rule over the workers, so each worker gets `rate / workers` and `burst / workers` (at least 1).\n"
          "`stateline-rules test FILE --pcap CAPTURE` replays a capture through the rules offline, per rule\n"
          "(lib/rules/README.md).\n";
    return md;
}

flow::FlowTableConfig flow_table_config(const Config& c) {
    flow::FlowTableConfig t;
    t.capacity = c.flow_capacity;
    t.expiry_batch = c.expiry_batch;
    t.evict_search = c.evict_search;
    auto ms = [](uint32_t s) { return s * 1000u; };
    t.timeout_ms[static_cast<unsigned>(flow::TimeoutClass::half_open)] = ms(c.timeout_half_open);
    t.timeout_ms[static_cast<unsigned>(flow::TimeoutClass::established)] = ms(c.timeout_established);
    t.timeout_ms[static_cast<unsigned>(flow::TimeoutClass::closing)] = ms(c.timeout_closing);
    t.timeout_ms[static_cast<unsigned>(flow::TimeoutClass::time_wait)] = ms(2 * c.msl);
    t.timeout_ms[static_cast<unsigned>(flow::TimeoutClass::closed)] = ms(c.timeout_closed);
    return t;
}

std::string format_errors(const std::vector<Error>& errors) {
    std::string s;
    for (const auto& e : errors) s += e.where + ": " + e.what + "\n";
    return s;
}

}  // namespace stateline::config
