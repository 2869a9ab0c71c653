// SPDX-License-Identifier: BSD-3-Clause
// The control socket's request parser (see ctl_request.hpp). Moved out of ctl_server.cpp
// unchanged, so that it can be fuzzed without a server.
#include "ctl_request.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>
#include <vector>

#include "flow_key.hpp"

namespace stateline::ctl {

using json = nlohmann::json;

std::string quote(std::string_view s) {
    std::string q(s.substr(0, 64));
    if (s.size() > 64) q += "...";
    return "'" + q + "'";
}

uint64_t parse_time(const std::string& s) {
    struct tm tm{};
    unsigned us = 0;
    if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%uZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec, &us) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const time_t t = timegm(&tm);
    return t < 0 ? 0 : uint64_t(t) * 1'000'000'000 + uint64_t{us} * 1000;
}

bool parse_addr(const std::string& s, uint8_t out[16]) {
    uint8_t v4[4];
    if (inet_pton(AF_INET, s.c_str(), v4) == 1) {
        flow::map_ipv4(out, v4);
        return true;
    }
    return inet_pton(AF_INET6, s.c_str(), out) == 1;
}

bool known_command(const std::string& c) {
    for (const auto& k : kCommands)
        if (c == k.cmd) return true;
    return false;
}

Request parse_request(std::string_view text, const std::string& config_path) {
    Request r;
    auto fail = [&](std::string msg) {
        r.status = Request::Status::error;
        r.error = std::move(msg);
        return r;
    };
    while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    if (text.empty()) return r;  // blank lines are allowed between requests
    r.req = json::parse(text, nullptr, false);
    const json& req = r.req;
    if (req.is_discarded() || !req.is_object()) {
        r.status = Request::Status::fatal;
        r.error = std::string("malformed request: ") + (req.is_discarded() ? "not JSON" : "not a JSON object") +
                  "; connection closed (one JSON object per line, e.g. {\"cmd\":\"status\"})";
        return r;
    }
    if (auto it = req.find("id"); it != req.end()) {
        if (it->is_number() || (it->is_string() && it->get_ref<const std::string&>().size() <= 64)) r.id = *it;
        else return fail("malformed request: 'id' must be a number or a string of at most 64 bytes");
    }
    auto cmd_it = req.find("cmd");
    if (cmd_it == req.end() || !cmd_it->is_string())
        return fail("malformed request: no \"cmd\" string (try: {\"cmd\":\"help\"})");
    r.cmd = cmd_it->get<std::string>();
    const std::string& cmd = r.cmd;
    if (!known_command(cmd)) return fail("unknown command " + quote(cmd) + " (try: help)");
    // Every argument must be one the command knows: a typo is an error, not a silent default.
    static const std::map<std::string, std::vector<std::string>> args = {
        {"stats", {"detail"}}, {"conn", {"addr", "port", "peer", "peer_port"}}};
    for (auto& [k, v] : req.items()) {
        if (k == "cmd" || k == "id") continue;
        auto a = args.find(cmd);
        if (a == args.end() || std::find(a->second.begin(), a->second.end(), k) == a->second.end()) {
            std::string msg = "'" + cmd + "' takes no argument " + quote(k);
            if (cmd == "reload")
                msg = "'reload' takes no arguments: it re-reads only the config file named at start (" +
                      (config_path.empty() ? std::string("none") : config_path) + ")";
            else if (a != args.end()) {
                msg = "unknown argument " + quote(k) + " for '" + cmd + "' (it takes:";
                for (const auto& n : a->second) msg += " " + n;
                msg += ")";
            }
            return fail(msg);
        }
    }

    if (cmd == "conn") {
        ConnArgs& j = r.conn;
        std::string err;
        auto bad = [&](const std::string& m) { err = "conn: " + m; };
        auto addr_of = [&](const char* key, int i) {
            auto it = req.find(key);
            if (it == req.end()) return true;
            if (!it->is_string() || !parse_addr(it->get<std::string>(), j.addr[i])) {
                bad(std::string("'") + key + "' must be an IPv4 or IPv6 address, not " +
                    quote(it->is_string() ? it->get<std::string>() : it->dump()));
                return false;
            }
            j.query[key] = *it;
            return true;
        };
        auto port_of = [&](const char* key, int i) {
            auto it = req.find(key);
            if (it == req.end()) return true;
            if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 65535) {
                bad(std::string("'") + key + "' must be a port number 0..65535, not " + quote(it->dump()));
                return false;
            }
            j.port[i] = static_cast<uint16_t>(it->get<int64_t>());
            j.has_port[i] = true;
            j.query[key] = j.port[i];
            return true;
        };
        if (!req.contains("addr"))
            return fail("conn: 'addr' is required (e.g. {\"cmd\":\"conn\",\"addr\":\"192.0.2.10\",\"port\":80})");
        if (req.contains("peer_port") && !req.contains("peer")) return fail("conn: 'peer_port' needs 'peer'");
        j.has_peer = req.contains("peer");
        if (!addr_of("addr", 0) || !port_of("port", 0) || !addr_of("peer", 1) || !port_of("peer_port", 1))
            return fail(err);
    }
    r.status = Request::Status::ok;
    return r;
}

}  // namespace stateline::ctl
