// SPDX-License-Identifier: BSD-3-Clause
// The control socket's request parser: one line of text -> a validated request, or the error
// the server answers with. Pure (no sockets, no EAL, no server state), so that the server
// (ctl_server.cpp) and the fuzzer (tests/fuzz/fuzz_ctl.cpp) run the very same code.
//
// What is checked here: JSON object, 'id' (a number or a string of at most 64 bytes), 'cmd' a
// known command, every argument one the command takes, and the conn command's addresses and
// ports. What depends on the running server (workers, the latest snapshot, stats' 'detail'
// after the snapshot check) stays in Server::Impl::handle().
//
// Thread safety: pure function of its arguments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace stateline::ctl {

// "2024-05-01T12:00:00.123456Z" (detect::format_time) back to ns; 0 if it does not parse.
uint64_t parse_time(const std::string& s);
// An IPv4 (mapped) or IPv6 address into 16 bytes; false if it is neither.
bool parse_addr(const std::string& s, uint8_t out[16]);
// Echoes what a client wrote, shortened to 64 bytes, in quotes, for error messages.
std::string quote(std::string_view s);
bool known_command(const std::string& c);

struct CommandInfo {
    const char* cmd;
    const char* args;
    const char* help;
};
inline constexpr CommandInfo kCommands[] = {
    {"help", "", "this list"},
    {"status", "",
     "mode, uptime, workers, packets and rate, connections, active alerts, mitigation mode and rules "
     "generation, config"},
    {"stats", "detail (bool, default true)", "the latest aggregates, every counter and rate (as --stats)"},
    {"alerts", "", "active alerts, with their age"},
    {"rules", "", "mitigation mode, rule set generation, each rule's hits and drops (TCP segments)"},
    {"top", "", "top victims and top sources of the last detection interval"},
    {"victims", "", "top victims of the last detection interval"},
    {"sources", "", "top sources of the last detection interval"},
    {"conn", "addr, port, peer, peer_port (addr required)",
     "tracked connections of an endpoint (or between two): TCP state of each side, history, counts"},
    {"reload", "", "re-read the config file named at start; apply what can change live"},
};

// What the conn command asks, as understood.
struct ConnArgs {
    nlohmann::json query;  // echoed in the result
    uint8_t addr[2][16]{};
    uint16_t port[2]{};
    bool has_port[2]{};
    bool has_peer = false;
};

struct Request {
    enum class Status : uint8_t {
        blank,  // an empty line: nothing to answer
        ok,     // cmd (and conn) valid
        error,  // answer error_line(error, id); the connection stays open
        fatal,  // answer error_line(error, null) and close the connection (not a JSON object)
    } status = Status::blank;
    nlohmann::json req;  // the parsed object (status ok or error after the JSON check)
    nlohmann::json id;   // the request's id when valid, else null
    std::string cmd;
    std::string error;
    ConnArgs conn;       // cmd == "conn"
};

// `config_path` only words the error of an argument given to reload.
Request parse_request(std::string_view line, const std::string& config_path);

}  // namespace stateline::ctl
