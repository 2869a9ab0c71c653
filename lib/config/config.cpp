// SPDX-License-Identifier: BSD-3-Clause
#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "rules.hpp"
#include "rules_yaml.hpp"

namespace stateline::config {

namespace {

struct Param {
    std::string path;
    bool is_bool;
    uint64_t min, max;
    std::string help;
    std::function<uint64_t(const Config&)> get;
    std::function<void(Config&, uint64_t)> set;
};

Param uint_param(const char* path, uint32_t Config::*f, uint64_t min, uint64_t max, const char* help) {
    return {path, false, min, max, help, [f](const Config& c) -> uint64_t { return c.*f; },
            [f](Config& c, uint64_t x) { c.*f = static_cast<uint32_t>(x); }};
}

Param detect_param(const char* path, uint32_t detect::Settings::*f, uint64_t min, uint64_t max, const char* help) {
    return {path, false, min, max, help, [f](const Config& c) -> uint64_t { return c.detect.*f; },
            [f](Config& c, uint64_t x) { c.detect.*f = static_cast<uint32_t>(x); }};
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
            uint_param("timeouts.half_open", &Config::timeout_half_open, 1, 86400, "Seconds a half-open connection (handshake not complete) is kept idle"),
            uint_param("timeouts.established", &Config::timeout_established, 1, 2592000, "Seconds an established connection is kept idle"),
            uint_param("timeouts.closing", &Config::timeout_closing, 1, 86400, "Seconds a closing connection (FIN seen) is kept idle"),
            uint_param("timeouts.msl", &Config::msl, 1, 3600, "Maximum segment lifetime, seconds; TIME-WAIT lasts 2 * msl"),
            uint_param("timeouts.closed", &Config::timeout_closed, 1, 3600, "Seconds a reset connection is kept to absorb stragglers"),
            uint_param("stats.interval_ms", &Config::stats_interval_ms, 100, 60000, "Milliseconds between aggregates of every worker (Prometheus, telemetry, stateline-ctl, --stats)"),
            {"detect.enabled", true, 0, 1, "Run the detectors (false: track and log connections only)",
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
            out.push_back({std::string("thresholds.") + t.name, false, t.min, t.max,
                           std::string(t.help) + " (" + t.unit + ")",
                           [i](const Config& c) -> uint64_t { return c.detect.thresholds.v[i]; },
                           [i](Config& c, uint64_t x) { c.detect.thresholds.v[i] = static_cast<uint32_t>(x); }});
        }
        return out;
    }();
    return v;
}

std::string at(const std::string& name, const YAML::Mark& m) {
    if (m.line < 0) return name;
    return name + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

bool is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }

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
        if (p.is_bool) {
            // true/false only: YAML 1.1's yes/no/on/off are too easy to misread.
            const std::string s = v.IsScalar() ? v.Scalar() : "";
            if (s != "true" && s != "false") {
                r.errors.push_back({at(name, v.Mark()), "'" + path + "' expects true or false" +
                                                            (v.IsScalar() ? ", got '" + s + "'" : std::string())});
                return;
            }
            p.set(r.config, s == "true");
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
    // workers can run; its errors join the others, each with its place.
    auto rl = rules::load_rules(rules_list, name);
    for (auto& e : rl.errors) r.errors.push_back({std::move(e.where), std::move(e.what)});
    r.config.rules = std::move(rl.set);

    // Cross-field rules.
    auto where = [&](const char* path) { return where_set.count(path) ? where_set[path] : name; };
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

LoadResult load_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        LoadResult r;
        r.errors.push_back({path, "cannot open the file (does it exist and is it readable?)"});
        return r;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return load_string(ss.str(), path);
}

const std::vector<ParamInfo>& parameters() {
    static const std::vector<ParamInfo> v = [] {
        std::vector<ParamInfo> out;
        const Config d;
        for (const auto& p : params())
            out.push_back({p.path, p.is_bool ? "bool" : "uint", p.min, p.max, p.get(d), p.help, p.get});
        return out;
    }();
    return v;
}

std::string format_errors(const std::vector<Error>& errors) {
    std::string s;
    for (const auto& e : errors) s += e.where + ": " + e.what + "\n";
    return s;
}

}  // namespace stateline::config
