// SPDX-License-Identifier: BSD-3-Clause
// The control socket: what stateline-ctl (tools/ctl/) talks to. A Unix stream socket, mode 0600
// (0660 with --ctl-group), at ctl::default_socket_path() unless --ctl-socket says otherwise; one
// JSON object per line each way (docs/operations.md has the protocol and every command).
//
// Threads:
//   - The server thread owns the sockets: epoll over non-blocking sockets, at most kMaxClients
//     clients, each with bounded buffers and an idle timeout. It answers what only reads the
//     latest Snapshot (status, stats, alerts, top, ...) itself, from SnapshotBoard::get().
//   - The control core calls poll() from its loop. It runs what needs the control core: a
//     connection lookup (through each worker's ConnQuery mailbox: no other thread touches a
//     worker's table) and a reload (parse and validate, then Aggregator::set_settings). It takes
//     queued requests with a try_lock, never waits on a client, and a worker that does not
//     answer within kLookupTimeout is reported as such.
//   - Workers only answer their mailbox between bursts (worker.cpp housekeeping()).
// A slow or stuck client therefore costs its own buffers and nothing else.
//
// Security (docs/security.md): the socket file is 0600, or 0660 with the group named by
// --ctl-group / exports.ctl_group (chmod and chown before listen(), so nobody connects through a
// wider mode); a folder Stateline creates for it (the default ones, or a missing last folder of
// --ctl-socket) is 0700, or 0750 with that group, and checked. Each client's credentials, as the
// kernel recorded them at connect(), must be root's, Stateline's uid, or (with a group) have the
// group as primary or supplementary group (peer_allowed()). No request names a path: reload
// re-reads only the file named at start; requests over ctl::kMaxRequest bytes or not JSON are
// refused and the connection closed.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "ctl_path.hpp"

namespace stateline {
struct Worker;
class SnapshotBoard;
class Mitigation;
namespace detect {
class Aggregator;
}

namespace ctl {

inline constexpr unsigned kMaxClients = 32;
inline constexpr double kIdleTimeoutS = 10.0;    // a client silent this long is closed
inline constexpr double kLookupTimeoutS = 3.0;   // a worker that has not answered by then is named

struct ServerSetup {
    std::string socket_path;      // resolved (ctl::resolve_socket_path); "" = no socket
    std::string group_name;       // --ctl-group / exports.ctl_group; "" = owner only (0600)
    gid_t group = gid_t(-1);      // its gid (resolve_group), when group_name is set
    std::string mode;             // "live" or "capture"
    std::string config_path;      // the file named at start; "" = built-in defaults
    const SnapshotBoard* board = nullptr;
    std::vector<Worker*> workers;               // their ConnQuery mailboxes
    detect::Aggregator* aggregator = nullptr;   // null when detection is off
    Mitigation* mitigation = nullptr;           // a reload offers it the new rules
};

class Server {
public:
    explicit Server(ServerSetup setup);
    ~Server();  // stops the thread, closes every client, removes the socket file
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Creates the socket (and its default folder, or a missing last folder), chmods it 0600 (0660
    // and chowns it to the group with one), listens, starts the thread.
    // A socket file left by a dead Stateline is replaced; a live one is not ("another Stateline
    // is running on ..."). False with a message and an exit status (2: the path is unusable,
    // 1: in use or a system error) on failure. A Server never started still reloads on SIGHUP.
    bool start(std::string& error, int& exit_code);

    // Control core, every loop: connection lookups, reloads (requested or SIGHUP). Bounded work.
    void poll();

    const std::string& socket_path() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A group name to its gid: false with a message naming the fix when there is no such group.
bool resolve_group(const std::string& name, gid_t& gid, std::string& error);

// Whether the peer of a connected Unix socket may talk to the control socket: uid 0, `own_uid`,
// or, with a group (group != gid_t(-1)), a process whose primary or supplementary groups
// include it (SO_PEERGROUPS; getgrouplist() of the peer uid's user where the kernel lacks it).
// The credentials are those the kernel recorded at connect(). False with `why` otherwise.
bool peer_allowed(int fd, uid_t own_uid, gid_t group, const std::string& group_name, std::string& why);

// SIGHUP reloads the config file named at start, as `stateline-ctl reload` does; the outcome
// goes to stderr. The handler only sets a flag that Server::poll() reads.
void install_sighup_reload();

}  // namespace ctl
}  // namespace stateline
