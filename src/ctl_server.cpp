// SPDX-License-Identifier: BSD-3-Clause
// The control socket (see ctl_server.hpp for the threads and docs/operations.md for the protocol).
#include "ctl_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <rte_lcore.h>

#include "aggregator.hpp"
#include "config.hpp"
#include "ctl_path.hpp"
#include "ctl_request.hpp"
#include "mitigation.hpp"
#include "rules.hpp"
#include "flow_key.hpp"
#include "flow_table.hpp"
#include "stats.hpp"
#include "tcp_tracker.hpp"
#include "worker.hpp"

#ifndef STATELINE_VERSION
#define STATELINE_VERSION "unknown"
#endif

namespace stateline {

// ---------------------------------------------------------------------------------------------
// Worker side of the lookup mailbox. Runs on the worker lcore, between bursts, on its own table.
// ---------------------------------------------------------------------------------------------
namespace {

inline bool side_matches(const flow::FlowKey& k, unsigned s, const uint8_t* addr, bool has_port,
                         uint16_t port) noexcept {
    return std::memcmp(k.addr[s], addr, 16) == 0 && (!has_port || k.port[s] == port);
}

void keep_match(Worker& w, ConnQuery& q, uint32_t idx) noexcept {
    ++q.matches;
    if (q.kept >= ConnQuery::kMaxMatches) return;
    // finish() counts endings into the counters it is given: a scratch block, so that a lookup
    // counts nothing in the worker's own.
    uint64_t scratch[tcp::kCounterCount] = {};
    connlog::ConnRecord& r = q.rec[q.kept];
    w.tracker->finish(w.table->entry(idx), w.table->cold(idx), flow::RemoveReason::flushed, r, scratch);
    r.worker = static_cast<uint8_t>(w.id);
    r.uid_seq = 0;
    q.tclass[q.kept] = static_cast<uint8_t>(w.table->entry(idx).tclass);
    ++q.kept;
}

void answer_now(Worker& w, ConnQuery& q) noexcept {
    q.now_ns = w.now_ns;
    q.state.store(ConnQuery::answered, std::memory_order_release);
}

}  // namespace

void answer_conn_query(Worker& w) noexcept {
    ConnQuery& q = w.query;
    // housekeeping() saw `asked` with a relaxed load: this fence makes the query visible.
    std::atomic_thread_fence(std::memory_order_acquire);
    flow::FlowTable& t = *w.table;
    if (!q.started) {
        q.started = true;
        q.cursor = 0;
        q.matches = 0;
        q.kept = 0;
        // Both endpoints with ports: one lookup finds an untagged connection at once (the same
        // lookup a packet does). Otherwise, or if it misses (VLAN-tagged), the scan below.
        if (q.has_peer && q.has_port[0] && q.has_port[1]) {
            flow::FlowKey k;
            flow::make_key(k, q.addr[0], q.port[0], q.addr[1], q.port[1], 0, 0);
            const uint32_t i = t.lookup(k, flow::flow_hash(k));
            if (i != flow::kNoEntry) {
                keep_match(w, q, i);
                answer_now(w, q);
                return;
            }
        }
    }
    const uint32_t cap = t.capacity();
    const uint32_t slice = w.input == InputKind::ring ? ConnQuery::kSliceReplay : ConnQuery::kSlice;
    const uint32_t end = cap - q.cursor > slice ? q.cursor + slice : cap;
    for (uint32_t i = q.cursor; i < end; ++i) {
        const flow::FlowEntry& e = t.entry(i);
        if (e.tclass == flow::TimeoutClass::free || t.expired(e)) continue;
        for (unsigned s = 0; s < 2; ++s) {
            if (!side_matches(e.key, s, q.addr[0], q.has_port[0], q.port[0])) continue;
            if (q.has_peer && !side_matches(e.key, 1 - s, q.addr[1], q.has_port[1], q.port[1])) continue;
            keep_match(w, q, i);
            break;
        }
    }
    q.cursor = end;
    if (end == cap) answer_now(w, q);
}

// ---------------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------------
namespace ctl {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_reload_signal{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void on_sighup(int) { g_reload_signal.store(true, std::memory_order_relaxed); }

constexpr size_t kReadChunk = 16384;
constexpr size_t kOutHigh = size_t{1} << 20;     // stop taking requests while this much is unsent
constexpr uint64_t kListenId = 0, kWakeId = 1;  // epoll ids; clients from 2

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// The envelope is written by hand so that "ok" comes first (json objects sort their keys).
std::string ok_line(const json& result, const json& id) {
    std::string l = "{\"ok\":true,";
    if (!id.is_null()) l += "\"id\":" + dump(id) + ",";
    return l + "\"result\":" + dump(result) + "}\n";
}

std::string error_line(const std::string& msg, const json& id, const json& extra = json()) {
    std::string l = "{\"ok\":false,";
    if (!id.is_null()) l += "\"id\":" + dump(id) + ",";
    l += "\"error\":" + dump(json(msg));
    if (extra.is_object())
        for (auto& [k, v] : extra.items()) l += "," + dump(json(k)) + ":" + dump(v);
    return l + "}\n";
}

struct Job {
    enum Kind { conn, reload } kind = conn;
    uint64_t client = 0;
    json id;
    json query;  // conn: as understood, echoed in the result
    uint8_t addr[2][16]{};
    uint16_t port[2]{};
    bool has_port[2]{};
    bool has_peer = false;
};

struct Client {
    int fd = -1;
    std::string in;
    std::string out;
    size_t out_off = 0;
    bool busy = false;     // waiting for the control core
    bool eof = false;      // the peer shut its side: answer what it sent, then close
    bool closing = false;  // close once `out` is sent
    bool registered = false;
    uint32_t events = 0;
    Clock::time_point last_activity;
};

bool same_groups(const std::vector<detect::Group>& a, const std::vector<detect::Group>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].name != b[i].name || a[i].thresholds.v != b[i].thresholds.v ||
            a[i].prefixes.size() != b[i].prefixes.size())
            return false;
        for (size_t p = 0; p < a[i].prefixes.size(); ++p)
            if (a[i].prefixes[p].len != b[i].prefixes[p].len ||
                std::memcmp(a[i].prefixes[p].addr, b[i].prefixes[p].addr, 16) != 0)
                return false;
    }
    return true;
}

// What a reload may change while running: the judgement of the detectors, not their memory.
bool live_param(const std::string& path) {
    return path.rfind("thresholds.", 0) == 0 || path == "detect.hold_down" || path == "detect.warmup";
}
// Compiled into the rule set: they change with the rules, at a burst boundary.
bool rules_param(const std::string& path) {
    return path == "mitigation.payload_bytes" || path == "mitigation.source_buckets";
}

}  // namespace

struct Server::Impl {
    ServerSetup setup;
    Clock::time_point started = Clock::now();

    // Sockets (the server thread's once started).
    int listen_fd = -1, ep = -1, wake_fd = -1;
    dev_t sock_dev = 0;
    ino_t sock_ino = 0;
    bool thread_started = false;
    pthread_t thread{};
    std::atomic<bool> stopping{false};
    std::map<uint64_t, Client> clients;
    uint64_t next_client = 2;

    // Requests for the control core (server thread pushes, control core try_locks).
    std::mutex jobs_m;
    std::deque<Job> jobs;
    std::atomic<bool> jobs_waiting{false};
    // Answers from the control core (held for a push or a swap).
    std::mutex done_m;
    std::vector<std::pair<uint64_t, std::string>> done;

    // Control core only.
    std::optional<Job> cur;
    Clock::time_point cur_deadline;
    std::vector<uint8_t> asked;  // per worker: asked for `cur`
    std::vector<uint8_t> stale;  // per worker: an abandoned query still out
    json found = json::array();
    uint64_t found_total = 0;
    config::Config baseline;     // what the file said, as running

    // Reload history, for status (control core writes, server thread reads).
    mutable std::mutex info_m;
    uint64_t reloads = 0;
    json last_reload;

    // ---- server thread ----
    static void* thread_main(void* arg) {
        static_cast<Impl*>(arg)->run();
        return nullptr;
    }
    void run();
    void accept_clients();
    void on_event(uint64_t id, uint32_t ev);
    void read_from(uint64_t id, Client& c);
    void write_to(uint64_t id, Client& c);
    void process(uint64_t id, Client& c);
    void handle(uint64_t id, Client& c, std::string_view line);
    void update_events(uint64_t id, Client& c);
    void close_client(uint64_t id);
    void take_done();
    void check_idle();
    void wake() {
        const uint64_t one = 1;
        if (wake_fd >= 0) {
            [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
        }
    }

    json status_json() const;
    json alerts_json(const Snapshot& s) const;

    // ---- control core ----
    void post(uint64_t client, std::string line) {
        {
            std::lock_guard<std::mutex> g(done_m);
            done.emplace_back(client, std::move(line));
        }
        wake();
    }
    void start_conn();
    void step_conn();
    void finish_conn();
    void collect(size_t w);
    // A reload: false with `error` (and `errors`) when nothing changed.
    bool reload(json& result, std::string& error, json& errors);
};

Server::Server(ServerSetup setup) : impl_(std::make_unique<Impl>()) {
    Impl& s = *impl_;
    s.setup = std::move(setup);
    s.asked.assign(s.setup.workers.size(), 0);
    s.stale.assign(s.setup.workers.size(), 0);
    // Absolute, so that status shows where it is and a reload reads the same file whatever happens.
    if (!s.setup.config_path.empty() && s.setup.config_path[0] != '/') {
        char cwd[4096];
        if (::getcwd(cwd, sizeof cwd)) s.setup.config_path = std::string(cwd) + "/" + s.setup.config_path;
    }
    // The file as it was loaded at start (main.cpp may have raised rx.mbufs or set workers since):
    // a reload compares the file's new content with this to say what needs a restart.
    if (!s.setup.config_path.empty()) {
        auto r = config::load_file(s.setup.config_path);
        if (r.ok()) s.baseline = r.config;
    }
    if (s.setup.aggregator) s.baseline.detect = s.setup.aggregator->settings();
}

Server::~Server() {
    Impl& s = *impl_;
    if (s.thread_started) {
        s.stopping.store(true, std::memory_order_relaxed);
        s.wake();
        pthread_join(s.thread, nullptr);
    }
    for (auto& [id, c] : s.clients) {
        if (c.busy) c.out += error_line("Stateline is stopping", json());
        if (c.out.size() > c.out_off) {  // best effort: the socket is non-blocking
            [[maybe_unused]] ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
        }
        ::close(c.fd);
    }
    s.clients.clear();
    if (s.listen_fd >= 0) {
        ::close(s.listen_fd);
        struct stat st;
        // Only our own socket: if another process replaced it since, it is not ours to remove.
        if (::lstat(s.setup.socket_path.c_str(), &st) == 0 && st.st_dev == s.sock_dev && st.st_ino == s.sock_ino)
            ::unlink(s.setup.socket_path.c_str());
    }
    if (s.ep >= 0) ::close(s.ep);
    if (s.wake_fd >= 0) ::close(s.wake_fd);
}

const std::string& Server::socket_path() const { return impl_->setup.socket_path; }

void install_sighup_reload() {
    struct sigaction sa{};
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, nullptr);
}

namespace {

std::string mode_text(mode_t m) {
    char b[8];
    std::snprintf(b, sizeof b, "%04o", unsigned(m & 07777));
    return b;
}

// The folders Stateline creates for the socket are 0700 (0750 with the control group, which
// then owns them); an existing one must be ours, a real folder, and closed to others (in /tmp,
// anyone could have made it first). Ours with other group bits: set to what is wanted.
bool private_dir(const std::string& dir, gid_t group, const std::string& group_name, std::string& err) {
    const bool grouped = group != gid_t(-1);
    const mode_t want = grouped ? 0750 : 0700;
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        err = "cannot create the control socket folder " + dir + ": " + std::strerror(errno) +
              " (give another place with --ctl-socket PATH, or --ctl-socket off)";
        return false;
    }
    struct stat st;
    if (::lstat(dir.c_str(), &st) != 0) {
        err = "cannot check " + dir + ": " + std::strerror(errno);
        return false;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 007) != 0 || (st.st_mode & 020) != 0) {
        err = "refusing to put the control socket in " + dir + ": it must be a folder owned by uid " +
              std::to_string(geteuid()) + " with mode " + mode_text(want) + ", and it is " +
              (S_ISDIR(st.st_mode) ? "a folder" : S_ISLNK(st.st_mode) ? "a symbolic link" : "not a folder") +
              " of uid " + std::to_string(st.st_uid) + ", mode " + mode_text(st.st_mode) +
              " (fix or remove it, or give --ctl-socket PATH)";
        return false;
    }
    if (grouped && st.st_gid != group && ::chown(dir.c_str(), uid_t(-1), group) != 0) {
        err = "cannot give the control socket folder " + dir + " to group '" + group_name + "': " +
              std::strerror(errno) + " (Stateline's user must be a member of it, or root)";
        return false;
    }
    if ((st.st_mode & 07777) != want && ::chmod(dir.c_str(), want) != 0) {
        err = "cannot chmod the control socket folder " + dir + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

// With a group: a warning when a folder on the way to the socket lets neither the group nor
// everyone through (its members would get "permission denied" at connect()).
void warn_unreachable(const std::string& dir, gid_t group, const std::string& group_name) {
    std::string d = dir;
    for (;;) {
        struct stat st;
        if (::stat(d.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && !(st.st_mode & S_IXOTH) &&
            !(st.st_gid == group && (st.st_mode & S_IXGRP))) {
            std::fprintf(stderr,
                         "stateline: warning: members of group '%s' cannot reach the control socket: folder %s "
                         "is mode %s, gid %u (chgrp %s %s && chmod g+x %s, or put the socket elsewhere)\n",
                         group_name.c_str(), d.c_str(), mode_text(st.st_mode).c_str(), unsigned(st.st_gid),
                         group_name.c_str(), d.c_str(), d.c_str());
            return;
        }
        if (d == "/" || d.empty()) return;
        const size_t slash = d.rfind('/');
        d = slash == std::string::npos ? std::string("/") : slash == 0 ? std::string("/") : d.substr(0, slash);
    }
}

}  // namespace

bool resolve_group(const std::string& name, gid_t& gid, std::string& error) {
    std::vector<char> buf(16384);
    struct group gr {};
    struct group* res = nullptr;
    int rc;
    while ((rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &res)) == ERANGE && buf.size() < (1u << 22))
        buf.resize(buf.size() * 2);
    if (rc != 0 || !res) {
        error = "group '" + name + "' does not exist" + (rc ? std::string(" (") + std::strerror(rc) + ")" : "") +
                ": create it (groupadd " + name + ") or name an existing group with --ctl-group / exports.ctl_group "
                "(\"\" for owner-only access)";
        return false;
    }
    gid = gr.gr_gid;
    return true;
}

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59  // Linux 4.13
#endif

bool peer_allowed(int fd, uid_t own_uid, gid_t group, const std::string& group_name, std::string& why) {
    struct ucred cred {};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        why = std::string("permission denied: cannot read the client's credentials: ") + std::strerror(errno);
        return false;
    }
    if (cred.uid == 0 || cred.uid == own_uid) return true;
    const std::string who = "uid " + std::to_string(cred.uid) + " is neither root nor Stateline's uid " +
                            std::to_string(own_uid);
    if (group == gid_t(-1)) {
        why = "permission denied: " + who + " (a group may be let in: --ctl-group, docs/security.md)";
        return false;
    }
    if (cred.gid == group) return true;
    // The supplementary groups the client had at connect(), from the kernel.
    std::vector<gid_t> groups(64);
    for (int tries = 0; tries < 4; ++tries) {
        socklen_t glen = socklen_t(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
            groups.resize(glen / sizeof(gid_t));
            if (std::find(groups.begin(), groups.end(), group) != groups.end()) return true;
            why = "permission denied: " + who + " nor a member of group '" + group_name + "' (gid " +
                  std::to_string(group) + ")";
            return false;
        }
        if (errno != ERANGE) break;
        groups.resize(std::max<size_t>(glen / sizeof(gid_t), groups.size() * 2));
    }
    // Older kernels: the groups of the peer uid's user in the group database.
    std::vector<char> buf(16384);
    struct passwd pw {};
    struct passwd* res = nullptr;
    if (::getpwuid_r(cred.uid, &pw, buf.data(), buf.size(), &res) == 0 && res) {
        int n = 64;
        std::vector<gid_t> g(static_cast<size_t>(n));
        if (::getgrouplist(pw.pw_name, pw.pw_gid, g.data(), &n) < 0) {
            g.resize(size_t(n));
            ::getgrouplist(pw.pw_name, pw.pw_gid, g.data(), &n);
        }
        g.resize(size_t(std::max(n, 0)));
        if (std::find(g.begin(), g.end(), group) != g.end()) return true;
    }
    why = "permission denied: " + who + " nor a member of group '" + group_name + "' (gid " + std::to_string(group) + ")";
    return false;
}

bool Server::start(std::string& error, int& exit_code) {
    Impl& s = *impl_;
    const std::string& path = s.setup.socket_path;
    if (path.empty()) return true;
    exit_code = 2;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
        error = "control socket path '" + path + "' is " + std::to_string(path.size()) + " bytes; at most " +
                std::to_string(sizeof addr.sun_path - 1) + " fit in a Unix socket address (--ctl-socket PATH)";
        return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    const bool grouped = !s.setup.group_name.empty() && s.setup.group != gid_t(-1);
    const gid_t group = grouped ? s.setup.group : gid_t(-1);
    struct stat st;
    // The default folders, and a missing last folder of a given path, are Stateline's to make.
    const bool default_dir =
        path == default_socket_path() && (dir == "/run/stateline" || dir.rfind("/tmp/stateline-", 0) == 0);
    if ((default_dir || (::lstat(dir.c_str(), &st) != 0 && errno == ENOENT)) &&
        !private_dir(dir, group, s.setup.group_name, error))
        return false;
    if (grouped) warn_unreachable(dir, group, s.setup.group_name);


    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            error = "control socket path " + path + " exists and is not a socket: not replacing it "
                    "(remove it, or choose another --ctl-socket PATH)";
            return false;
        }
        // A socket file: someone listening on it, or one left behind by a Stateline that died.
        int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) {
            error = std::string("socket: ") + std::strerror(errno);
            exit_code = 1;
            return false;
        }
        const int rc = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
        const int err = errno;
        ::close(probe);
        if (rc == 0) {
            error = "another Stateline is running on " + path +
                    " (its control socket answers): stop it first, or give this one --ctl-socket PATH";
            exit_code = 1;
            return false;
        }
        if (err != ECONNREFUSED) {
            error = "cannot check the existing control socket " + path + ": " + std::strerror(err);
            exit_code = 1;
            return false;
        }
        ::unlink(path.c_str());  // stale
    }

    s.listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.listen_fd < 0) {
        error = std::string("cannot create the control socket: ") + std::strerror(errno);
        exit_code = 1;
        return false;
    }
    // The socket is bound under a temporary name in the same folder, given its group and mode,
    // then renamed into place: whoever sees the path sees it 0600/0660 with its group, never a
    // moment of the default mode (a member's first connect would fail, a check would be wrong).
    std::string tmp = dir + "/.stateline-ctl." + std::to_string(::getpid());
    if (tmp.size() >= sizeof addr.sun_path) tmp.clear();  // too long: bind in place, fix the mode after
    sockaddr_un bind_addr = addr;
    if (!tmp.empty()) {
        std::memset(bind_addr.sun_path, 0, sizeof bind_addr.sun_path);
        std::memcpy(bind_addr.sun_path, tmp.c_str(), tmp.size());
        ::unlink(tmp.c_str());  // left by a Stateline with this pid that died
    }
    std::string bound = tmp.empty() ? path : tmp;  // the name to unlink on failure
    auto fail = [&](const std::string& what, int err, int code, bool created) {
        error = what + ": " + std::strerror(err);
        exit_code = code;
        ::close(s.listen_fd);
        s.listen_fd = -1;
        if (created) ::unlink(bound.c_str());
        return false;
    };
    if (::bind(s.listen_fd, reinterpret_cast<sockaddr*>(&bind_addr), sizeof bind_addr) != 0) {
        const int err = errno;
        if (err == EADDRINUSE)
            return fail("another process took the control socket " + path + " meanwhile", err, 1, false);
        return fail("cannot create the control socket " + path + (err == ENOENT ? " (does its folder exist?)" : ""),
                    err, err == ENOENT || err == EACCES || err == ENOTDIR ? 2 : 1, false);
    }
    // Before listen(): nobody can connect yet, so nobody ever connects through a wider mode.
    if (grouped && ::chown(bound.c_str(), uid_t(-1), group) != 0)
        return fail("cannot give the control socket " + path + " to group '" + s.setup.group_name +
                        "' (Stateline's user must be a member of it, or root)",
                    errno, 1, true);
    if (::chmod(bound.c_str(), grouped ? 0660 : 0600) != 0)
        return fail("cannot chmod the control socket " + path, errno, 1, true);
    // Listening before the rename: the path appears ready to take connections.
    if (::listen(s.listen_fd, 64) != 0) return fail("cannot listen on the control socket " + path, errno, 1, true);
    if (!tmp.empty() && ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
        const int err = errno;
        return fail(err == EEXIST ? "another process took the control socket " + path + " meanwhile"
                                  : "cannot move the control socket into place at " + path,
                    err, 1, true);
    }
    bound = path;
    if (::lstat(path.c_str(), &st) != 0) return fail("cannot stat the control socket " + path, errno, 1, true);
    s.sock_dev = st.st_dev;
    s.sock_ino = st.st_ino;

    s.ep = ::epoll_create1(EPOLL_CLOEXEC);
    s.wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s.ep < 0 || s.wake_fd < 0) return fail("cannot set up the control socket's epoll", errno, 1, true);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenId;
    ::epoll_ctl(s.ep, EPOLL_CTL_ADD, s.listen_fd, &ev);
    ev.data.u64 = kWakeId;
    ::epoll_ctl(s.ep, EPOLL_CTL_ADD, s.wake_fd, &ev);

    // A DPDK control thread: on the CPUs no worker lcore uses, named for `top -H`.
    const int rc = rte_ctrl_thread_create(&s.thread, "sl-ctl", nullptr, &Impl::thread_main, &s);
    if (rc != 0) return fail("cannot start the control socket's thread", rc, 1, true);
    s.thread_started = true;
    return true;
}

// ---- server thread ----

void Server::Impl::run() {
    epoll_event evs[64];
    while (!stopping.load(std::memory_order_relaxed)) {
        const int n = ::epoll_wait(ep, evs, 64, 250);
        for (int i = 0; i < n; ++i) {
            const uint64_t id = evs[i].data.u64;
            if (id == kListenId) accept_clients();
            else if (id == kWakeId) take_done();
            else on_event(id, evs[i].events);
        }
        check_idle();
    }
}

void Server::Impl::accept_clients() {
    for (;;) {
        const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN, or out of descriptors: the backlog keeps them
        std::string refuse;
        const gid_t group = setup.group_name.empty() ? gid_t(-1) : setup.group;
        if (peer_allowed(fd, geteuid(), group, setup.group_name, refuse) && clients.size() >= kMaxClients)
            refuse = "too many clients: at most " + std::to_string(kMaxClients) + " at once; try again later";
        if (!refuse.empty()) {
            const std::string line = error_line(refuse, json());
            [[maybe_unused]] ssize_t w = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            continue;
        }
        const uint64_t id = next_client++;
        Client& c = clients[id];
        c.fd = fd;
        c.last_activity = Clock::now();
        update_events(id, c);
    }
}

// Level-triggered: read only when a request may be taken (not while one waits for the control
// core, nor while much is unsent), write only when something is unsent. HUP and ERR always.
void Server::Impl::update_events(uint64_t id, Client& c) {
    uint32_t want = 0;
    if (!c.busy && !c.eof && !c.closing && c.out.size() - c.out_off < kOutHigh) want |= EPOLLIN;
    if (c.out.size() > c.out_off) want |= EPOLLOUT;
    if (c.registered && want == c.events) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = id;
    ::epoll_ctl(ep, c.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &ev);
    c.registered = true;
    c.events = want;
}

void Server::Impl::close_client(uint64_t id) {
    auto it = clients.find(id);
    if (it == clients.end()) return;
    ::epoll_ctl(ep, EPOLL_CTL_DEL, it->second.fd, nullptr);
    ::close(it->second.fd);
    clients.erase(it);  // a job still queued for it is answered into the void
}

void Server::Impl::on_event(uint64_t id, uint32_t ev) {
    auto it = clients.find(id);
    if (it == clients.end()) return;
    Client& c = it->second;
    if (ev & EPOLLIN) read_from(id, c);
    if (!clients.count(id)) return;
    if (ev & EPOLLOUT) write_to(id, c);
    if (!clients.count(id)) return;
    // HUP: the peer is gone both ways; nothing said to it can arrive any more.
    if ((ev & (EPOLLHUP | EPOLLERR)) && !(ev & EPOLLIN)) close_client(id);
}

void Server::Impl::read_from(uint64_t id, Client& c) {
    char buf[kReadChunk];
    // One chunk per event: a client that floods gets its turn, not the thread.
    const ssize_t n = ::read(c.fd, buf, sizeof buf);
    if (n > 0) {
        c.last_activity = Clock::now();
        c.in.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
        c.eof = true;
    } else if (errno != EAGAIN && errno != EINTR) {
        close_client(id);
        return;
    }
    process(id, c);
}

void Server::Impl::write_to(uint64_t id, Client& c) {
    while (c.out.size() > c.out_off) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c.out_off += static_cast<size_t>(n);
            c.last_activity = Clock::now();
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
        close_client(id);  // EPIPE, ECONNRESET: the client left
        return;
    }
    if (c.out_off == c.out.size()) {
        c.out.clear();
        c.out_off = 0;
        if (c.closing || (c.eof && !c.busy && c.in.empty())) {
            close_client(id);
            return;
        }
    }
    update_events(id, c);
}

void Server::Impl::process(uint64_t id, Client& c) {
    while (!c.busy && !c.closing && c.out.size() - c.out_off < kOutHigh) {
        const size_t nl = c.in.find('\n');
        if (nl == std::string::npos || nl + 1 > kMaxRequest) {
            if (c.in.size() >= kMaxRequest) {
                c.out += error_line("request longer than " + std::to_string(kMaxRequest) +
                                        " bytes: refused, connection closed (one JSON object per line)",
                                    json());
                c.in.clear();
                c.closing = true;
                break;
            }
            if (nl == std::string::npos) {
                // The peer shut its side without a final newline: take what it sent as a line.
                if (c.eof && !c.in.empty()) {
                    std::string line;
                    line.swap(c.in);
                    handle(id, c, line);
                }
                break;
            }
        }
        std::string line = c.in.substr(0, nl);
        c.in.erase(0, nl + 1);
        handle(id, c, line);
    }
    write_to(id, c);
}

void Server::Impl::check_idle() {
    const auto now = Clock::now();
    std::vector<uint64_t> idle;
    for (auto& [id, c] : clients)
        if (!c.busy && std::chrono::duration<double>(now - c.last_activity).count() > kIdleTimeoutS) idle.push_back(id);
    for (uint64_t id : idle) {
        Client& c = clients[id];
        if (!c.in.empty() && c.out.size() == c.out_off) {
            const std::string line = error_line("incomplete request (no newline) after " +
                                                    std::to_string(int(kIdleTimeoutS)) + " s: connection closed",
                                                json());
            [[maybe_unused]] ssize_t w = ::send(c.fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        close_client(id);
    }
}

void Server::Impl::take_done() {
    uint64_t v;
    while (::read(wake_fd, &v, sizeof v) > 0) {
    }
    std::vector<std::pair<uint64_t, std::string>> mine;
    {
        std::lock_guard<std::mutex> g(done_m);
        mine.swap(done);
    }
    for (auto& [id, line] : mine) {
        auto it = clients.find(id);
        if (it == clients.end()) continue;  // left meanwhile
        it->second.busy = false;
        it->second.out += line;
        it->second.last_activity = Clock::now();
        process(id, it->second);  // the next request it sent, if any
    }
}

void Server::Impl::handle(uint64_t id, Client& c, std::string_view text) {
    // Parsing and validation: ctl_request.cpp (pure, fuzzed by tests/fuzz/fuzz_ctl.cpp).
    Request r = parse_request(text, setup.config_path);
    switch (r.status) {
        case Request::Status::blank:
            return;
        case Request::Status::fatal:
            c.out += error_line(r.error, json());
            c.closing = true;
            return;
        case Request::Status::error:
            c.out += error_line(r.error, r.id);
            return;
        case Request::Status::ok:
            break;
    }
    const json& req = r.req;
    const json& rid = r.id;
    const std::string& cmd = r.cmd;

    if (cmd == "help") {
        json list = json::array();
        for (const auto& k : kCommands) list.push_back({{"cmd", k.cmd}, {"args", k.args}, {"help", k.help}});
        c.out += ok_line({{"commands", list},
                          {"protocol", "one JSON object per line each way; requests at most " +
                                           std::to_string(kMaxRequest) + " bytes"}},
                         rid);
        return;
    }
    if (cmd == "status") {
        c.out += ok_line(status_json(), rid);
        return;
    }
    if (cmd == "reload" || cmd == "conn") {
        Job j;
        j.client = id;
        j.id = rid;
        if (cmd == "reload") {
            j.kind = Job::reload;
        } else {
            j.kind = Job::conn;
            j.query = std::move(r.conn.query);
            std::memcpy(j.addr, r.conn.addr, sizeof j.addr);
            std::memcpy(j.port, r.conn.port, sizeof j.port);
            std::memcpy(j.has_port, r.conn.has_port, sizeof j.has_port);
            j.has_peer = r.conn.has_peer;
        }
        if (j.kind == Job::conn && setup.workers.empty()) {
            c.out += error_line("conn: no worker is running", rid);
            return;
        }
        {
            std::lock_guard<std::mutex> g(jobs_m);
            jobs.push_back(std::move(j));
        }
        jobs_waiting.store(true, std::memory_order_release);
        c.busy = true;
        return;
    }

    // The rest read the latest snapshot.
    const std::shared_ptr<const Snapshot> s = setup.board ? setup.board->get() : nullptr;
    if (!s) {
        c.out += error_line("no aggregates yet: the first is taken one stats interval (stats.interval_ms) "
                            "after the start",
                            rid);
        return;
    }
    if (cmd == "stats") {
        bool detail = true;
        if (auto it = req.find("detail"); it != req.end()) {
            if (!it->is_boolean()) {
                c.out += error_line("stats: 'detail' must be true or false", rid);
                return;
            }
            detail = it->get<bool>();
        }
        c.out += ok_line(s->to_json(detail), rid);
        return;
    }
    const bool detection = s->detection.is_object();
    if (cmd == "alerts") {
        c.out += ok_line(alerts_json(*s), rid);
        return;
    }
    if (cmd == "rules") {
        json rules = json::array();
        for (const auto& r : s->rules)
            rules.push_back({{"name", r.name}, {"action", r.action}, {"hits", r.hits}, {"drops", r.drops}});
        c.out += ok_line({{"seq", s->seq},
                          {"mode", s->mitigation_mode},
                          {"generation", s->rules_generation},
                          {"unit", "hits and drops count TCP segments; in monitor mode drops are would-drops "
                                   "(the segments were passed on)"},
                          {"rules", std::move(rules)}},
                         rid);
        return;
    }
    auto list = [&](const char* key) {
        return detection && s->detection.contains(key) ? s->detection[key] : json::array();
    };
    if (cmd == "top") c.out += ok_line({{"detection", detection}, {"victims", list("top_victims")}, {"sources", list("top_sources")}}, rid);
    else if (cmd == "victims") c.out += ok_line(list("top_victims"), rid);
    else if (cmd == "sources") c.out += ok_line(list("top_sources"), rid);
}

json Server::Impl::alerts_json(const Snapshot& s) const {
    json active = json::array();
    const bool detection = s.detection.is_object();
    if (detection && s.detection.contains("active"))
        for (json a : s.detection["active"]) {
            const uint64_t start = a.contains("start") && a["start"].is_string() ? parse_time(a["start"].get<std::string>()) : 0;
            // Ages in the workers' time: wall time live, capture time in a replay.
            a["age_s"] = start && s.clock_ns >= start ? double(s.clock_ns - start) / 1e9 : 0.0;
            active.push_back(std::move(a));
        }
    json j = {{"detection", detection}, {"active", std::move(active)}};
    if (detection && s.detection.contains("started")) j["started"] = s.detection["started"];
    return j;
}

json Server::Impl::status_json() const {
    const std::shared_ptr<const Snapshot> s = setup.board ? setup.board->get() : nullptr;
    json j;
    j["version"] = STATELINE_VERSION;
    j["pid"] = ::getpid();
    j["mode"] = setup.mode;
    j["running"] = s ? s->running : true;
    j["uptime_s"] = s ? s->uptime_s : std::chrono::duration<double>(Clock::now() - started).count();
    j["workers"] = setup.workers.size();
    j["config"] = setup.config_path.empty() ? json() : json(setup.config_path);
    j["socket"] = setup.socket_path;
    {
        std::lock_guard<std::mutex> g(info_m);
        j["reloads"] = reloads;
        j["last_reload"] = last_reload;
    }
    j["snapshot_seq"] = s ? s->seq : 0;
    if (!s) return j;
    j["interval_s"] = s->interval_s;
    j["clock"] = s->clock_ns ? json(detect::format_time(s->clock_ns)) : json();
    j["packets"] = s->value("rx", "rx_packets");
    j["bytes"] = s->value("rx", "rx_bytes");
    j["pps"] = s->rate_of("rx", "rx_packets");
    j["bps"] = s->rate_of("rx", "rx_bytes") * 8;
    j["connections"] = s->value("flows", "active");
    j["connections_created"] = s->value("flows", "created");
    j["connections_per_s"] = s->rate_of("flows", "created");
    json by_state = json::object();
    for (unsigned c = 1; c < flow::kTimeoutClassCount; ++c) {
        const char* name = flow::timeout_class_name(static_cast<flow::TimeoutClass>(c));
        by_state[name] = s->value("flows.by_state", name);
    }
    j["connections_by_state"] = by_state;
    const bool detection = s->detection.is_object();
    j["detection"] = detection;
    j["alerts_active"] = detection && s->detection.contains("active") ? s->detection["active"].size() : 0;
    j["mitigation_mode"] = s->mitigation_mode;
    j["rules_generation"] = s->rules_generation;
    j["rules"] = s->rules.size();
    const int rx = Snapshot::index("rx", "rx_packets"), busy = Snapshot::index("rx", "polls_busy"),
              idle = Snapshot::index("rx", "polls_idle"), act = Snapshot::index("flows", "active");
    json per = json::array();
    for (size_t w = 0; w < s->per_worker.size(); ++w) {
        const auto& v = s->per_worker[w];
        const auto& r = s->per_worker_rate[w];
        const double b = r[size_t(busy)], i = r[size_t(idle)];
        per.push_back({{"id", w},
                       {"packets", v[size_t(rx)]},
                       {"pps", r[size_t(rx)]},
                       {"busy_pct", b + i > 0 ? 100.0 * b / (b + i) : 0.0},
                       {"connections", v[size_t(act)]}});
    }
    j["per_worker"] = per;
    json ports = json::array();
    for (const auto& p : s->ports)
        ports.push_back({{"name", p.name}, {"ipackets", p.ipackets}, {"imissed", p.imissed},
                         {"ierrors", p.ierrors}, {"rx_nombuf", p.rx_nombuf}, {"link_up", p.link_up},
                         {"link_changes", p.link_changes}});
    j["ports"] = ports;
    return j;
}

// ---- control core ----

void Server::poll() {
    Impl& s = *impl_;
    if (g_reload_signal.load(std::memory_order_relaxed) && g_reload_signal.exchange(false)) {
        json result, errors;
        std::string error;
        if (s.reload(result, error, errors))
            std::fprintf(stderr, "stateline: SIGHUP: %s\n", result["message"].get<std::string>().c_str());
        else
            std::fprintf(stderr, "stateline: SIGHUP: %s\n", error.c_str());
    }
    for (size_t w = 0; w < s.stale.size(); ++w)
        if (s.stale[w] && s.setup.workers[w]->query.state.load(std::memory_order_acquire) == ConnQuery::answered) {
            s.setup.workers[w]->query.state.store(ConnQuery::idle, std::memory_order_release);
            s.stale[w] = 0;
        }
    if (!s.cur && s.jobs_waiting.load(std::memory_order_acquire)) {
        std::unique_lock<std::mutex> lk(s.jobs_m, std::try_to_lock);
        if (lk.owns_lock()) {  // else next loop: never wait on the server thread
            if (!s.jobs.empty()) {
                s.cur = std::move(s.jobs.front());
                s.jobs.pop_front();
            }
            s.jobs_waiting.store(!s.jobs.empty(), std::memory_order_relaxed);
        }
        if (s.cur) {
            if (s.cur->kind == Job::reload) {
                json result, errors;
                std::string error;
                const bool ok = s.reload(result, error, errors);
                s.post(s.cur->client, ok ? ok_line(std::move(result), s.cur->id)
                                         : error_line(error, s.cur->id, json{{"errors", errors}}));
                s.cur.reset();
            } else {
                s.start_conn();
            }
        }
    }
    if (s.cur) s.step_conn();
}

void Server::Impl::start_conn() {
    found = json::array();
    found_total = 0;
    for (size_t w = 0; w < setup.workers.size(); ++w) {
        ConnQuery& q = setup.workers[w]->query;
        asked[w] = 0;
        if (q.state.load(std::memory_order_acquire) != ConnQuery::idle) continue;  // stale: still out
        std::memcpy(q.addr, cur->addr, sizeof q.addr);
        std::memcpy(q.port, cur->port, sizeof q.port);
        q.has_port[0] = cur->has_port[0];
        q.has_port[1] = cur->has_port[1];
        q.has_peer = cur->has_peer;
        q.started = false;
        q.state.store(ConnQuery::asked, std::memory_order_release);
        asked[w] = 1;
    }
    cur_deadline = Clock::now() + std::chrono::milliseconds(int(kLookupTimeoutS * 1000));
}

void Server::Impl::collect(size_t w) {
    ConnQuery& q = setup.workers[w]->query;
    found_total += q.matches;
    for (uint32_t k = 0; k < q.kept; ++k) {
        const connlog::ConnRecord& r = q.rec[k];
        char o[64], p[64];
        const flow::Side os = r.orig_is_hi ? flow::Side::hi : flow::Side::lo;
        const flow::Side ps = r.orig_is_hi ? flow::Side::lo : flow::Side::hi;
        json c = {{"worker", r.worker},
                  {"orig", flow::format_endpoint(r.key, os, o, sizeof o)},
                  {"resp", flow::format_endpoint(r.key, ps, p, sizeof p)},
                  {"orig_state", tcp::state_name(static_cast<tcp::State>(r.orig_state))},
                  {"resp_state", tcp::state_name(static_cast<tcp::State>(r.resp_state))},
                  {"conn_state", r.conn_state},
                  {"history", r.history},
                  {"table_state", flow::timeout_class_name(static_cast<flow::TimeoutClass>(q.tclass[k]))},
                  {"orig_pkts", r.orig_pkts},
                  {"resp_pkts", r.resp_pkts},
                  {"orig_bytes", r.orig_bytes},
                  {"resp_bytes", r.resp_bytes},
                  {"orig_ip_bytes", r.orig_ip_bytes},
                  {"resp_ip_bytes", r.resp_ip_bytes},
                  {"missed_bytes", r.missed_bytes},
                  {"first_seen", detect::format_time(r.first_ts_ns)},
                  {"last_seen", detect::format_time(r.last_ts_ns)},
                  {"duration_s", double(r.last_ts_ns - r.first_ts_ns) / 1e9},
                  {"idle_s", q.now_ns > r.last_ts_ns ? double(q.now_ns - r.last_ts_ns) / 1e9 : 0.0}};
        if (r.key.vlan[0] & flow::kVlanPresent) c["vlan"] = r.key.vlan[0] & flow::kVlanVidMask;
        if (r.key.vlan[1] & flow::kVlanPresent) c["inner_vlan"] = r.key.vlan[1] & flow::kVlanVidMask;
        json an = json::array();
        for (unsigned b = 0; b < tcp::kAnomalyCount; ++b)
            if (r.anomalies & (1u << b)) an.push_back(tcp::anomaly_name(b));
        if (!an.empty()) c["anomalies"] = an;
        c["last_ns"] = r.last_ts_ns;  // for sorting; removed before answering
        found.push_back(std::move(c));
    }
}

void Server::Impl::step_conn() {
    bool waiting = false;
    for (size_t w = 0; w < setup.workers.size(); ++w) {
        if (!asked[w]) continue;
        ConnQuery& q = setup.workers[w]->query;
        if (q.state.load(std::memory_order_acquire) == ConnQuery::answered) {
            collect(w);
            q.state.store(ConnQuery::idle, std::memory_order_release);
            asked[w] = 0;
        } else {
            waiting = true;
        }
    }
    if (waiting && Clock::now() < cur_deadline) return;
    finish_conn();
}

void Server::Impl::finish_conn() {
    json unanswered = json::array();
    for (size_t w = 0; w < setup.workers.size(); ++w) {
        // Not asked (an earlier query still out) or not answered in time: the worker keeps its
        // mailbox until it answers; poll() takes that answer back then.
        const bool out = setup.workers[w]->query.state.load(std::memory_order_acquire) != ConnQuery::idle;
        if (asked[w] || out) {
            unanswered.push_back(w);
            stale[w] = 1;
            asked[w] = 0;
        }
    }
    std::sort(found.begin(), found.end(),
              [](const json& a, const json& b) { return a["last_ns"].get<uint64_t>() > b["last_ns"].get<uint64_t>(); });
    for (auto& c : found) c.erase("last_ns");
    json r = {{"query", cur->query},
              {"matches", found_total},
              {"shown", found.size()},
              {"per_worker_limit", ConnQuery::kMaxMatches},
              {"connections", std::move(found)}};
    if (!unanswered.empty()) {
        r["workers_unanswered"] = unanswered;
        r["note"] = "worker(s) did not answer within " + std::to_string(int(kLookupTimeoutS)) +
                    " s (stopping, or idle between replay bursts): their connections are not included";
    }
    post(cur->client, ok_line(std::move(r), cur->id));
    found = json::array();
    cur.reset();
}

bool Server::Impl::reload(json& result, std::string& error, json& errors) {
    errors = json::array();
    const std::string& path = setup.config_path;
    auto record = [&](bool ok, const std::string& msg) {
        std::lock_guard<std::mutex> g(info_m);
        ++reloads;
        last_reload = {{"ok", ok}, {"at", detect::format_time(uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                                     std::chrono::system_clock::now().time_since_epoch())
                                                                     .count()))},
                       {"message", msg}};
    };
    if (path.empty()) {
        error = "no config file was named at start (--config): Stateline runs on the built-in defaults "
                "(conf/stateline.yaml) and has nothing to reload";
        record(false, error);
        return false;
    }
    // load_file never blocks the control core on a FIFO or a device, nor reads something huge.
    config::LoadResult r = config::load_file(path);
    if (r.errors.size() == 1 && r.errors[0].where == path) {  // the file itself, not its content
        errors.push_back({{"where", path}, {"what", r.errors[0].what}});
        error = "config '" + path + "': " + r.errors[0].what + "; the running config stays";
        record(false, error);
        return false;
    }
    if (!r.ok()) {
        for (const auto& e : r.errors) errors.push_back({{"where", e.where}, {"what", e.what}});
        error = "config '" + path + "' has " + std::to_string(r.errors.size()) + " error(s); nothing changed, " +
                "the running config stays:\n" + config::format_errors(r.errors);
        while (!error.empty() && error.back() == '\n') error.pop_back();
        record(false, "config has " + std::to_string(r.errors.size()) + " error(s); nothing changed");
        return false;
    }
    const config::Config& next = r.config;
    // The rules first: the one step that can still fail (memory), so that a failure changes nothing.
    const bool rules_changed = !rules::RuleSet::same(baseline.rules.get(), next.rules.get());
    json rules_item;
    if (rules_changed) {
        auto fail = [&](const std::string& why) {
            error = "config '" + path + "': " + why + "; nothing changed, the running config stays";
            record(false, error);
            return false;
        };
        if (!setup.mitigation) return fail("this Stateline runs no mitigation");
        if (!setup.aggregator && next.rules)
            for (size_t i = 0; i < next.rules->size(); ++i) {
                const auto& rs = next.rules->spec(i);
                if (rs.victim_of || rs.src_verified >= 0)
                    return fail("rule '" + rs.name + "' reads detection (" + (rs.victim_of ? "victim_of" : "src_verified") +
                                ") but detection is off (detect.enabled: false at start)");
            }
        std::string why;
        if (!setup.mitigation->offer(next.rules, why)) return fail(why);
        const size_t was_n = baseline.rules ? baseline.rules->size() : 0, now_n = next.rules ? next.rules->size() : 0;
        rules_item = {{"param", "rules"},
                      {"from", std::to_string(was_n) + " rule(s)"},
                      {"to", std::to_string(now_n) + " rule(s), generation " + std::to_string(setup.mitigation->generation())}};
        baseline.rules = next.rules;
        baseline.payload_bytes = next.payload_bytes;
        baseline.source_buckets = next.source_buckets;
    }
    json applied = json::array(), restart = json::array();
    if (rules_changed) applied.push_back(rules_item);
    for (const auto& p : config::parameters()) {
        if (rules_param(p.path) && rules_changed) continue;  // part of the rules item
        // By text, so that string parameters are compared too; numbers stay numbers in the JSON.
        const std::string was = p.text(baseline), now = p.text(next);
        if (was == now) continue;
        json item = p.type == "string" ? json{{"param", p.path}, {"from", was}, {"to", now}}
                                       : json{{"param", p.path}, {"from", p.value(baseline)}, {"to", p.value(next)}};
        // Rule options with no rules to compile into: nothing to swap, and nothing waits for them.
        if ((live_param(p.path) && setup.aggregator) || (rules_param(p.path) && setup.mitigation)) applied.push_back(item);
        else restart.push_back(item);
    }
    if (!same_groups(baseline.detect.groups, next.detect.groups)) {
        json item = {{"param", "groups"},
                     {"from", std::to_string(baseline.detect.groups.size()) + " group(s)"},
                     {"to", std::to_string(next.detect.groups.size()) + " group(s)"}};
        (setup.aggregator ? applied : restart).push_back(item);
    }
    if (setup.aggregator && !applied.empty()) {
        detect::Settings s = setup.aggregator->settings();
        s.thresholds = next.detect.thresholds;
        s.groups = next.detect.groups;
        s.hold_down_s = next.detect.hold_down_s;
        s.warmup_s = next.detect.warmup_s;
        setup.aggregator->set_settings(s);  // from the next interval on
        baseline.detect.thresholds = s.thresholds;
        baseline.detect.groups = s.groups;
        baseline.detect.hold_down_s = s.hold_down_s;
        baseline.detect.warmup_s = s.warmup_s;
    }
    auto names = [](const json& list) {
        std::string out;
        for (const auto& i : list) {
            out += (out.empty() ? "" : ", ") + i["param"].get<std::string>() + " ";
            out += (i["from"].is_string() ? i["from"].get<std::string>() : i["from"].dump()) + " -> " +
                   (i["to"].is_string() ? i["to"].get<std::string>() : i["to"].dump());
        }
        return out;
    };
    std::string msg = "reloaded '" + path + "': ";
    if (applied.empty() && restart.empty()) msg += "no change";
    if (!applied.empty())
        msg += "applied " + names(applied) +
               (rules_changed ? " (rules: from each worker's next burst; thresholds: from the next detection interval)"
                              : " (from the next detection interval)");
    if (!restart.empty())
        msg += std::string(applied.empty() ? "" : "; ") + "NOT applied, need a restart: " + names(restart) +
               (setup.aggregator ? "" : " (detection is off: thresholds apply only with detect.enabled at start)");
    result = {{"config", path}, {"applied", applied}, {"restart_needed", restart}, {"message", msg}};
    record(true, msg);
    return true;
}

}  // namespace ctl
}  // namespace stateline
