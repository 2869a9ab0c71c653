// SPDX-License-Identifier: BSD-3-Clause
// Prometheus: the latest Snapshot in the text exposition format (version 0.0.4), served at
// GET /metrics by GNU libmicrohttpd on a thread of its own.
//
// Every metric family is generated from counters::descriptors() by the routing rules in
// metrics.cpp (a descriptor's group and name decide its family and labels; a descriptor nobody
// routed becomes stateline_<group>_<name>), so a new counter is exported without touching this
// code. docs/grafana/README.md lists every family.
//
// Thread safety: the HTTP thread only reads the SnapshotBoard (a pointer copy under a mutex held
// for a swap) and renders from that immutable snapshot: neither the control core nor a worker
// ever waits on a client. A client that connects and sends nothing, or reads slowly, costs one
// connection slot until MHD's timeout, never the other clients (MHD polls every connection with
// epoll and never blocks on one).
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "stats.hpp"

struct MHD_Daemon;

namespace stateline {

inline constexpr const char* kDefaultMetricsListen = "127.0.0.1:9750";

// Where to listen: "ADDR:PORT" with a numeric IPv4 address, or "[IPv6]:PORT"; port 0 lets the
// kernel choose. "off" disables the endpoint.
struct MetricsListen {
    bool off = false;
    std::string host;  // as given, without brackets
    uint16_t port = 0;
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::string text() const;  // "127.0.0.1:9750", "[::1]:9750", "off"
};
// False with `err` (a sentence for a usage error) when `s` is not of that form.
bool parse_metrics_listen(const std::string& s, MetricsListen& out, std::string& err);

// What the snapshot does not carry.
struct MetricsInfo {
    uint64_t capacity_per_worker = 0;  // flow table capacity of each worker (0: not exported)
    std::string version;               // for stateline_build_info
    std::string mode;                  // "live" or "capture" (before the first snapshot too)
};

// The snapshot in the text exposition format. `now_s` (Unix time) gives the snapshot's age; 0
// takes the current time.
std::string render_prometheus(const Snapshot& s, const MetricsInfo& info = {}, double now_s = 0);
// Before the first snapshot: stateline_up and the build info only.
std::string render_prometheus_empty(const MetricsInfo& info = {});

class MetricsServer {
public:
    MetricsServer(const SnapshotBoard& board, MetricsListen where, MetricsInfo info);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    // Binds and starts the HTTP thread. False with `err`, e.g. "cannot listen on 127.0.0.1:9750
    // (Address already in use)"; nothing is left running then.
    bool start(std::string& err);
    void stop();
    bool running() const { return daemon_ != nullptr; }
    uint16_t port() const { return port_; }  // the bound port (the kernel's choice for port 0)
    std::string url() const;                 // http://127.0.0.1:9750/metrics

    // Limits, per the "a slow or stuck client never blocks": at most this many clients at
    // once, each dropped after this many seconds without activity.
    static constexpr unsigned kConnectionLimit = 64;
    static constexpr unsigned kConnectionTimeoutS = 10;

private:
    const SnapshotBoard& board_;
    MetricsListen where_;
    MetricsInfo info_;
    uint16_t port_ = 0;
    MHD_Daemon* daemon_ = nullptr;
    struct LogSink {
        std::mutex m;
        std::string last;
    };
    std::unique_ptr<LogSink> log_;  // MHD's last message (MHD's thread writes it)

    friend struct MetricsHandler;
};

}  // namespace stateline
