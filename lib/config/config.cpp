// SPDX-License-Identifier: BSD-3-Clause
#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>
#include <sstream>

namespace stateline::config {

namespace {

struct Param {
    const char* path;
    uint32_t Config::*field;
    uint64_t min, max;
    const char* help;
};

// The schema. Ranges are what the data path can honour, not what is sensible: the annotated
// conf/stateline.yaml says what is sensible.
const Param kParams[] = {
    {"workers", &Config::workers, 1, 64, "Worker lcores in capture mode (live mode: EAL's -l/--lcores minus the main lcore)"},
    {"rx.burst", &Config::burst, 1, 64, "Frames per rx_burst call"},
    {"rx.descriptors", &Config::rx_descriptors, 64, 16384, "RX descriptors per queue (live mode)"},
    {"rx.mbufs", &Config::mbufs, 1023, 4194303, "mbufs in the packet pool"},
    {"rx.worker_ring", &Config::worker_ring, 64, 1048576, "Dispatcher-to-worker ring size in capture mode (power of two)"},
    {"conn_log.ring", &Config::conn_ring, 1024, 16777216, "Connection records in flight from each worker to the control core (power of two)"},
    {"flow_table.capacity", &Config::flow_capacity, 64, 268435456, "Connections tracked per worker, preallocated at start"},
    {"flow_table.expiry_batch", &Config::expiry_batch, 1, 65536, "Entries the expiry clock examines per loop"},
    {"flow_table.evict_search", &Config::evict_search, 1, 65536, "Entries examined to find one to recycle when the table is full"},
    {"timeouts.half_open", &Config::timeout_half_open, 1, 86400, "Seconds a half-open connection (handshake not complete) is kept idle"},
    {"timeouts.established", &Config::timeout_established, 1, 2592000, "Seconds an established connection is kept idle"},
    {"timeouts.closing", &Config::timeout_closing, 1, 86400, "Seconds a closing connection (FIN seen) is kept idle"},
    {"timeouts.msl", &Config::msl, 1, 3600, "Maximum segment lifetime, seconds; TIME-WAIT lasts 2 * msl"},
    {"timeouts.closed", &Config::timeout_closed, 1, 3600, "Seconds a reset connection is kept to absorb stragglers"},
};

std::string at(const std::string& name, const YAML::Mark& m) {
    if (m.line < 0) return name;
    return name + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

bool is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }

LoadResult load_node(const YAML::Node& root, const std::string& name) {
    LoadResult r;
    if (!root || root.IsNull()) return r;  // an empty file means all defaults
    if (!root.IsMap()) {
        r.errors.push_back({at(name, root.Mark()), "expected a mapping of sections at the top level"});
        return r;
    }
    std::map<std::string, const Param*> by_path;
    std::map<std::string, std::string> where_set;  // path -> file:line:col, for cross-field errors
    for (const auto& p : kParams) by_path[p.path] = &p;

    // Walk the document so unknown keys are reported too (a typo must not silently keep a default).
    auto visit_scalar = [&](const std::string& path, const YAML::Node& k, const YAML::Node& v) {
        auto it = by_path.find(path);
        if (it == by_path.end()) {
            r.errors.push_back({at(name, k.Mark()), "unknown parameter '" + path + "'"});
            return;
        }
        const Param& p = *it->second;
        if (!v.IsScalar()) {
            r.errors.push_back({at(name, v.Mark()), "'" + path + "' expects an unsigned integer"});
            return;
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
            r.errors.push_back({at(name, v.Mark()), "'" + path + "' expects an unsigned integer, got '" + s + "'"});
            return;
        }
        if (x < p.min || x > p.max) {
            r.errors.push_back({at(name, v.Mark()), "'" + path + "' = " + s + " is out of range [" +
                                                        std::to_string(p.min) + ", " + std::to_string(p.max) + "]"});
            return;
        }
        r.config.*(p.field) = static_cast<uint32_t>(x);
        where_set[path] = at(name, v.Mark());
    };

    for (const auto& kv : root) {
        const std::string key = kv.first.as<std::string>();
        const YAML::Node& v = kv.second;
        if (v.IsMap()) {
            for (const auto& kv2 : v) visit_scalar(key + "." + kv2.first.as<std::string>(), kv2.first, kv2.second);
        } else {
            visit_scalar(key, kv.first, v);
        }
    }

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
        Config d;
        for (const auto& p : kParams) out.push_back({p.path, "uint", p.min, p.max, d.*(p.field), p.help});
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
