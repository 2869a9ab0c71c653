// SPDX-License-Identifier: BSD-3-Clause
// libFuzzer target: the control socket's request parser (src/ctl_request.cpp, the code
// Server::Impl::handle() runs on each line), and parse_time() used on alert start times.
//
// Input: one request line as a client would send it (the server cuts at '\n' and at
// ctl::kMaxRequest bytes, so longer inputs are skipped).
// Invariants (abort on failure):
//   - blank exactly when the line is only spaces, tabs and CRs;
//   - fatal exactly when the line is not a JSON object; error and fatal carry a message;
//   - ok: cmd is a known command, the id is null, a number or a string of at most 64 bytes,
//     every key is cmd, id or an argument of that command; conn: addr was given and parsed, a
//     port only when given, peer_port only with peer, the query echoes what was understood.
//   - the answer the server would write (error_line/ok_line's dump) serialises without throwing
//     (invalid UTF-8 is replaced).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "ctl_path.hpp"
#include "ctl_request.hpp"

using namespace stateline;
using json = nlohmann::json;

#define FUZZ_CHECK(cond)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            std::fprintf(stderr, "fuzz_ctl: invariant failed: %s (line %d)\n", #cond, __LINE__);  \
            std::abort();                                                                         \
        }                                                                                         \
    } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > ctl::kMaxRequest) return -1;
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    if (line.find('\n') != std::string_view::npos) return -1;  // the server splits lines first

    const ctl::Request r = ctl::parse_request(line, size % 2 ? "" : "/etc/stateline/stateline.yaml");
    const bool blank = line.find_first_not_of(" \t\r") == std::string_view::npos;
    FUZZ_CHECK(blank == (r.status == ctl::Request::Status::blank));
    if (r.status != ctl::Request::Status::blank) FUZZ_CHECK(r.req.is_object() || r.status == ctl::Request::Status::fatal);
    if (r.status == ctl::Request::Status::fatal) FUZZ_CHECK(!r.req.is_object());
    if (r.status == ctl::Request::Status::error || r.status == ctl::Request::Status::fatal)
        FUZZ_CHECK(!r.error.empty());
    FUZZ_CHECK(r.id.is_null() || r.id.is_number() || (r.id.is_string() && r.id.get<std::string>().size() <= 64));

    if (r.status == ctl::Request::Status::ok) {
        FUZZ_CHECK(ctl::known_command(r.cmd));
        FUZZ_CHECK(r.req.at("cmd") == r.cmd);
        for (auto& [k, v] : r.req.items()) {
            if (k == "cmd" || k == "id") continue;
            if (r.cmd == "stats") FUZZ_CHECK(k == "detail");
            else FUZZ_CHECK(r.cmd == "conn" && (k == "addr" || k == "port" || k == "peer" || k == "peer_port"));
        }
        if (r.cmd == "conn") {
            FUZZ_CHECK(r.req.contains("addr") && r.conn.query.contains("addr"));
            FUZZ_CHECK(r.conn.has_peer == r.req.contains("peer"));
            FUZZ_CHECK(r.conn.has_port[0] == r.req.contains("port"));
            FUZZ_CHECK(r.conn.has_port[1] == r.req.contains("peer_port"));
            FUZZ_CHECK(!r.conn.has_port[1] || r.conn.has_peer);
            uint8_t a[16];
            FUZZ_CHECK(ctl::parse_addr(r.req.at("addr").get<std::string>(), a));
            FUZZ_CHECK(std::memcmp(a, r.conn.addr[0], 16) == 0);
        }
    }
    // What the server would write back never throws (json::error_handler_t::replace).
    (void)r.req.dump(-1, ' ', false, json::error_handler_t::replace);
    (void)json(r.error).dump(-1, ' ', false, json::error_handler_t::replace);
    (void)json(ctl::quote(line)).dump(-1, ' ', false, json::error_handler_t::replace);
    // parse_time on the same text (the server reads it from alert start times).
    (void)ctl::parse_time(std::string(line));
    return 0;
}
