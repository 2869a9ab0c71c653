// SPDX-License-Identifier: BSD-3-Clause
// stateline-ctl: watch and control a running Stateline over its control socket
// (docs/operations.md). One JSON request per line, one JSON answer per line; this tool turns the
// answers into tables, or prints them raw with --json.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctl_path.hpp"

using json = nlohmann::json;

namespace {

// Exit status (also in --help and docs/operations.md).
constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;  // Stateline answered with an error
constexpr int kExitUsage = 2;    // bad command line
constexpr int kExitNoAnswer = 3; // cannot connect, no answer in time, or the connection broke

const char* kFooter = R"(Socket: --socket PATH, else the default Stateline itself uses:
  root: /run/stateline/stateline.sock; others: $XDG_RUNTIME_DIR/stateline.sock, else
  /tmp/stateline-<uid>/stateline.sock. Stateline's --ctl-socket PATH moves it.
Exit status: 0 done, 1 Stateline answered with an error (reload refused, bad address, ...),
  2 bad command line, 3 Stateline not reachable (not running, wrong socket, no answer).
See docs/operations.md.)";

[[noreturn]] void fail(int code, const std::string& msg) {
    std::fprintf(stderr, "stateline-ctl: %s\n", msg.c_str());
    std::exit(code);
}

// ---- the connection ----

class Conn {
public:
    explicit Conn(std::string path) : path_(std::move(path)) {}
    ~Conn() {
        if (fd_ >= 0) ::close(fd_);
    }

    // (Re)connects: `top` takes a fresh connection per frame, so that a long --interval never
    // meets the server's idle timeout.
    void open() {
        if (fd_ >= 0) ::close(fd_);
        buf_.clear();
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        if (path_.size() >= sizeof a.sun_path) fail(kExitUsage, "socket path too long: " + path_);
        std::memcpy(a.sun_path, path_.c_str(), path_.size());
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) fail(kExitNoAnswer, std::string("socket: ") + std::strerror(errno));
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            const int e = errno;
            std::string hint = "is Stateline running? --socket PATH";
            if (e == EACCES || e == EPERM)
                hint = "run as the user Stateline runs as, as root, or as a member of the group Stateline was "
                       "given with --ctl-group (docs/security.md)";
            fail(kExitNoAnswer, "cannot connect to " + path_ + ": " + std::strerror(e) + " (" + hint + ")");
        }
    }

    // Sends one request and waits for its answer line (at most timeout_s).
    json call(const json& req, double timeout_s) {
        const std::string line = req.dump() + "\n";
        size_t off = 0;
        // A refused client (permission, too many clients) is told why in one line, then closed:
        // if the close wins the race with our send, that line is still queued here to be read.
        int send_err = 0;
        while (off < line.size()) {
            const ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) continue;
                send_err = errno;
                break;
            }
            off += size_t(n);
        }
        auto lost = [&](int err) {
            fail(kExitNoAnswer, "lost the connection to " + path_ + ": " + std::strerror(send_err ? send_err : err));
        };
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        for (;;) {
            const size_t nl = buf_.find('\n');
            if (nl != std::string::npos) {
                std::string answer = buf_.substr(0, nl);
                buf_.erase(0, nl + 1);
                json j = json::parse(answer, nullptr, false);
                if (j.is_discarded() || !j.is_object() || !j.contains("ok"))
                    fail(kExitNoAnswer, "not an answer from Stateline on " + path_ + ": " + answer.substr(0, 200));
                return j;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) fail(kExitNoAnswer, "no answer from " + path_ + " within " + fmt_secs(timeout_s));
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, int(left.count()));
            if (r < 0 && errno != EINTR) fail(kExitNoAnswer, std::string("poll: ") + std::strerror(errno));
            if (r <= 0) continue;
            char tmp[65536];
            const ssize_t n = ::read(fd_, tmp, sizeof tmp);
            if (n == 0) {
                if (send_err) lost(send_err);
                fail(kExitNoAnswer, "Stateline closed the connection on " + path_ + " (it stopped?)");
            }
            if (n < 0) {
                if (errno == EINTR) continue;
                lost(errno);
            }
            buf_.append(tmp, size_t(n));
        }
    }

    static std::string fmt_secs(double s) {
        char b[32];
        std::snprintf(b, sizeof b, "%g s", s);
        return b;
    }

private:
    std::string path_;
    int fd_ = -1;
    std::string buf_;
};

// ---- formatting ----

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

std::string count(uint64_t v) {
    std::string s = std::to_string(v), out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (i && (s.size() - i) % 3 == 0) out += ',';
        out += s[i];
    }
    return out;
}
std::string count(const json& v) {
    if (v.is_number_unsigned()) return count(v.get<uint64_t>());
    if (v.is_number_integer()) {
        const int64_t i = v.get<int64_t>();
        return i < 0 ? "-" + count(uint64_t(-i)) : count(uint64_t(i));
    }
    if (v.is_number_float()) return v.get<double>() < 0 ? "-" : count(uint64_t(std::llround(v.get<double>())));
    return "-";
}

std::string pps(double v) {
    if (v >= 1e6) return fmt("%.2f Mpps", v / 1e6);
    if (v >= 1e3) return fmt("%.1f kpps", v / 1e3);
    return fmt("%.0f pps", v);
}

std::string bits(double v) {
    if (v >= 1e9) return fmt("%.2f Gbit/s", v / 1e9);
    if (v >= 1e6) return fmt("%.1f Mbit/s", v / 1e6);
    if (v >= 1e3) return fmt("%.1f kbit/s", v / 1e3);
    return fmt("%.0f bit/s", v);
}

std::string per_s(double v) {
    if (v >= 1e6) return fmt("%.2fM", v / 1e6);
    if (v >= 1e4) return fmt("%.1fk", v / 1e3);
    if (v >= 100 || v == 0) return fmt("%.0f", v);
    return fmt("%.1f", v);
}

std::string duration(double s) {
    if (s < 0) s = 0;
    char b[64];
    const uint64_t t = uint64_t(s);
    if (s < 60) std::snprintf(b, sizeof b, "%.1fs", s);
    else if (t < 3600) std::snprintf(b, sizeof b, "%llum %02llus", (unsigned long long)(t / 60), (unsigned long long)(t % 60));
    else if (t < 86400)
        std::snprintf(b, sizeof b, "%lluh %02llum %02llus", (unsigned long long)(t / 3600),
                      (unsigned long long)(t / 60 % 60), (unsigned long long)(t % 60));
    else std::snprintf(b, sizeof b, "%llud %02lluh", (unsigned long long)(t / 86400), (unsigned long long)(t / 3600 % 24));
    return b;
}

double num(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}
std::string str(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return "-";
    return it->is_string() ? it->get<std::string>() : it->dump();
}

// An aligned table: columns listed in `right` are right-aligned (numbers).
struct Table {
    std::vector<std::string> head;
    std::vector<bool> right;
    std::vector<std::vector<std::string>> rows;
    std::string render(const std::string& indent = "") const {
        std::vector<size_t> w(head.size(), 0);
        auto width = [](const std::string& s) {  // UTF-8 code points: "·" is one column
            size_t n = 0;
            for (unsigned char c : s) n += (c & 0xc0) != 0x80;
            return n;
        };
        for (size_t c = 0; c < head.size(); ++c) w[c] = width(head[c]);
        for (const auto& r : rows)
            for (size_t c = 0; c < r.size() && c < w.size(); ++c) w[c] = std::max(w[c], width(r[c]));
        std::string out;
        auto line = [&](const std::vector<std::string>& r) {
            std::string l = indent;
            for (size_t c = 0; c < head.size(); ++c) {
                const std::string& v = c < r.size() ? r[c] : "";
                const std::string pad(w[c] - std::min(w[c], width(v)), ' ');
                const bool r_al = c < right.size() && right[c];
                l += r_al ? pad + v : v + (c + 1 < head.size() ? pad : "");
                if (c + 1 < head.size()) l += "  ";
            }
            while (!l.empty() && l.back() == ' ') l.pop_back();
            out += l + "\n";
        };
        line(head);
        for (const auto& r : rows) line(r);
        return out;
    }
};

// ---- renderers ----

// Connections by the timeout class of their state, in lifecycle order.
std::string states_line(const json& s, const char* sep) {
    std::string o;
    auto it = s.find("connections_by_state");
    if (it == s.end() || !it->is_object()) return o;
    static const char* order[] = {"half_open", "established", "closing", "time_wait", "closed"};
    for (const char* k : order)
        if (it->contains(k)) o += (o.empty() ? "" : sep) + std::string(k) + " " + count((*it)[k]);
    for (auto& [k, v] : it->items())
        if (std::find_if(std::begin(order), std::end(order), [&](const char* x) { return k == x; }) == std::end(order))
            o += (o.empty() ? "" : sep) + k + " " + count(v);
    return o;
}

std::string render_status(const json& s) {
    std::string o;
    auto row = [&](const std::string& k, const std::string& v) { o += "  " + k + std::string(14 - std::min<size_t>(13, k.size()), ' ') + v + "\n"; };
    const bool running = s.value("running", true);
    o += "Stateline " + str(s, "version") + " (pid " + str(s, "pid") + "): " + str(s, "mode") +
         (str(s, "mode") == "capture" ? " replay" : "") + (running ? ", running for " : ", stopping after ") +
         duration(num(s, "uptime_s")) + "\n";
    row("config", s["config"].is_null() ? std::string("(built-in defaults)") : s["config"].get<std::string>());
    if (num(s, "reloads") > 0 && s["last_reload"].is_object()) {
        const json& l = s["last_reload"];
        row("last reload", std::string(l.value("ok", false) ? "ok" : "refused") + " at " + str(l, "at") + ": " + str(l, "message"));
    }
    row("socket", str(s, "socket"));
    row("workers", str(s, "workers"));
    if (!s.contains("packets")) {
        o += "  (no aggregates yet: the first comes one stats interval after the start)\n";
        return o;
    }
    if (s.contains("clock") && s["clock"].is_string() && str(s, "mode") == "capture") row("capture time", str(s, "clock"));
    row("packets", count(s["packets"]) + " (" + pps(num(s, "pps")) + ", " + bits(num(s, "bps")) + ")");
    row("connections", count(s["connections"]) + " tracked (" + per_s(num(s, "connections_per_s")) + " new/s)");
    row("", states_line(s, " · "));
    if (s.value("detection", false)) {
        const uint64_t a = s.value("alerts_active", uint64_t{0});
        row("alerts", std::to_string(a) + " active" + (a ? " (stateline-ctl alerts)" : ""));
    } else {
        row("alerts", "detection off");
    }
    if (s.contains("mitigation_mode")) {
        const uint64_t n = s.value("rules", uint64_t{0});
        row("mitigation", str(s, "mitigation_mode") + ", " + std::to_string(n) + " rule" + (n == 1 ? "" : "s") +
                              ", generation " + str(s, "rules_generation") + (n ? " (stateline-ctl rules)" : ""));
    }
    if (s.contains("ports"))
        for (const auto& p : s["ports"]) {
            std::string d = count(p["ipackets"]) + " received";
            const uint64_t miss = p.value("imissed", uint64_t{0}) + p.value("rx_nombuf", uint64_t{0});
            d += ", " + count(miss) + " missed";
            if (p.value("ierrors", uint64_t{0})) d += ", " + count(p["ierrors"]) + " errors";
            row("port", str(p, "name") + ": " + d);
        }
    return o;
}

std::string render_workers(const json& s) {
    Table t{{"WORKER", "PACKETS/S", "BUSY", "CONNECTIONS", "PACKETS"}, {false, true, true, true, true}, {}};
    if (s.contains("per_worker"))
        for (const auto& w : s["per_worker"])
            t.rows.push_back({str(w, "id"), pps(num(w, "pps")), fmt("%.0f%%", num(w, "busy_pct")), count(w["connections"]),
                              count(w["packets"])});
    t.rows.push_back({"all", pps(num(s, "pps")), "", count(s["connections"]), count(s["packets"])});
    return t.render();
}

std::string render_states(const json& s) { return states_line(s, "   ") + "\n"; }

std::string render_alerts(const json& a, size_t limit = SIZE_MAX, bool started = true) {
    if (!a.value("detection", false)) return "detection is off (detect.enabled: false)\n";
    const json& act = a["active"];
    std::string o;
    if (act.empty()) o = "no active alerts\n";
    else {
        Table t{{"ID", "TYPE", "TARGET", "GROUP", "SEVERITY", "AGE"}, {true, false, false, false, false, true}, {}};
        if (started) {  // the full list; the live view has no room for it
            t.head.push_back("STARTED");
            t.right.push_back(false);
        }
        size_t n = 0;
        for (const auto& x : act) {
            if (n++ == limit) break;
            t.rows.push_back({str(x, "id"), str(x, "type"), str(x, "target"), str(x, "group"), str(x, "severity"),
                              duration(num(x, "age_s")), str(x, "start")});
        }
        o = t.render();
        if (act.size() > limit) o += "  ... and " + std::to_string(act.size() - limit) + " more (stateline-ctl alerts)\n";
    }
    if (started && a.contains("started")) {
        std::string s;
        for (auto& [k, v] : a["started"].items())
            if (v.is_number() && v.get<uint64_t>()) s += (s.empty() ? "" : ", ") + k + " " + count(v);
        o += "started since the start: " + (s.empty() ? std::string("none") : s) + "\n";
    }
    return o;
}

std::string render_rules(const json& r) {
    const bool monitor = str(r, "mode") != "inline";
    std::string o = "mitigation: " + str(r, "mode") + " mode, rule set generation " + str(r, "generation") +
                    (monitor ? " (monitor: nothing is dropped; DROPS are would-drops)" : "") + "\n";
    if (!r.contains("rules") || r["rules"].empty()) return o + "no rules (the config's rules: list is empty)\n";
    Table t{{"RULE", "ACTION", "HITS (pkts)", monitor ? "WOULD DROP (pkts)" : "DROPS (pkts)"}, {false, false, true, true}, {}};
    for (const auto& x : r["rules"]) t.rows.push_back({str(x, "name"), str(x, "action"), count(x["hits"]), count(x["drops"])});
    return o + t.render();
}

std::string render_victims(const json& v, size_t limit = SIZE_MAX) {
    if (v.empty()) return "none in the last interval\n";
    Table t{{"TARGET", "KIND", "SUSPICIOUS/S", "SYN/S", "HANDSHAKES/S", "STRAY ACK/S", "STRAY RST/S", "HALF-OPEN"},
            {false, false, true, true, true, true, true, true}, {}};
    size_t n = 0;
    for (const auto& x : v) {
        if (n++ == limit) break;
        t.rows.push_back({str(x, "target"), str(x, "target_kind"), per_s(num(x, "suspicious_per_s")), per_s(num(x, "syn_per_s")),
                          per_s(num(x, "handshakes_per_s")), per_s(num(x, "stray_ack_per_s")),
                          per_s(num(x, "stray_rst_per_s")), count(x["half_open"])});
    }
    return t.render();
}

std::string render_sources(const json& v, size_t limit = SIZE_MAX) {
    if (v.empty()) return "none in the last interval\n";
    Table t{{"SOURCE", "PROBES/S", "TARGETS/S", "HANDSHAKES/S"}, {false, true, true, true}, {}};
    size_t n = 0;
    for (const auto& x : v) {
        if (n++ == limit) break;
        t.rows.push_back({str(x, "source"), per_s(num(x, "probes_per_s")), per_s(num(x, "targets_per_s")),
                          per_s(num(x, "handshakes_per_s"))});
    }
    return t.render();
}

std::string render_stats(const json& s) {
    std::string o = "Aggregates #" + str(s, "seq") + " (" + str(s, "mode") + (s.value("running", true) ? "" : ", final") +
                    "), uptime " + duration(num(s, "uptime_s")) + ", rates over " + fmt("%.2f s", num(s, "interval_s")) + "\n\n";
    Table t{{"COUNTER", "TOTAL", "PER SECOND"}, {false, true, true}, {}};
    size_t zero = 0;
    for (auto& [g, names] : s["counters"].items())
        for (auto& [n, v] : names.items()) {
            if (!v.is_number() || v.get<uint64_t>() == 0) {
                ++zero;
                continue;
            }
            std::string rate;
            if (s["rates"].contains(g) && s["rates"][g].contains(n)) rate = per_s(s["rates"][g][n].get<double>());
            t.rows.push_back({g + "." + n, count(v), rate});
        }
    o += t.render();
    o += "(" + std::to_string(zero) + " counters at zero not shown; --json for everything)\n\n";
    Table w{{"WORKER", "PACKETS", "PACKETS/S", "POLLS BUSY", "POLLS IDLE", "CONNECTIONS"}, {false, true, true, true, true, true}, {}};
    for (const auto& x : s["workers"])
        w.rows.push_back({str(x, "id"), count(x["rx_packets"]), pps(num(x, "rx_pps")), count(x["polls_busy"]),
                          count(x["polls_idle"]), count(x["flows_active"])});
    o += w.render();
    if (s.contains("ports") && !s["ports"].empty()) {
        Table p{{"PORT", "RECEIVED", "BYTES", "MISSED", "ERRORS", "NO MBUF"}, {false, true, true, true, true, true}, {}};
        for (const auto& x : s["ports"])
            p.rows.push_back({str(x, "name"), count(x["ipackets"]), count(x["ibytes"]), count(x["imissed"]),
                              count(x["ierrors"]), count(x["rx_nombuf"])});
        o += "\n" + p.render();
    }
    return o;
}

std::string render_conn(const json& r) {
    std::string q;
    const json& qq = r["query"];
    auto ep = [](const json& a, const json* p) {
        std::string s = a.get<std::string>();
        if (s.find(':') != std::string::npos) s = "[" + s + "]";
        return s + ":" + (p && !p->is_null() ? p->dump() : std::string("*"));
    };
    q = ep(qq["addr"], qq.contains("port") ? &qq["port"] : nullptr);
    if (qq.contains("peer")) q += " <-> " + ep(qq["peer"], qq.contains("peer_port") ? &qq["peer_port"] : nullptr);
    const uint64_t m = r.value("matches", uint64_t{0});
    std::string o;
    if (m == 0) o = "no tracked connection matches " + q + "\n";
    else {
        o = count(m) + " tracked connection(s) match " + q;
        if (r.value("shown", uint64_t{0}) < m)
            o += " (showing " + count(r["shown"]) + ": at most " + str(r, "per_worker_limit") + " per worker, newest first)";
        o += "\n";
        Table t{{"W", "ORIGINATOR", "RESPONDER", "ORIG STATE", "RESP STATE", "ZEEK", "HISTORY", "PACKETS", "BYTES", "AGE", "IDLE"},
                {true, false, false, false, false, false, false, true, true, true, true}, {}};
        for (const auto& c : r["connections"]) {
            std::string hist = str(c, "history");
            if (hist.empty()) hist = "-";
            t.rows.push_back({str(c, "worker"), str(c, "orig"), str(c, "resp"), str(c, "orig_state"), str(c, "resp_state"),
                              str(c, "conn_state"), hist, count(c["orig_pkts"]) + "/" + count(c["resp_pkts"]),
                              count(c["orig_bytes"]) + "/" + count(c["resp_bytes"]), duration(num(c, "duration_s")),
                              duration(num(c, "idle_s"))});
        }
        o += t.render();
    }
    if (r.contains("note")) o += "note: " + str(r, "note") + "\n";
    return o;
}

// ---- top ----

volatile sig_atomic_t g_quit = 0;
void on_quit(int) { g_quit = 1; }

struct TermGuard {
    bool active = false;
    termios saved{};
    void raw() {
        if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) != 0) return;
        termios t = saved;
        t.c_lflag &= ~tcflag_t(ICANON | ECHO);  // keys one at a time; ISIG kept: Ctrl-C is SIGINT
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) active = true;
    }
    ~TermGuard() {
        if (active) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    }
};

std::string frame(const json& st, const json& al, const json& tp, size_t rows) {
    std::string o;
    char clock[16];
    const time_t now = time(nullptr);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    const uint64_t alerts = st.value("alerts_active", uint64_t{0});
    o += "Stateline " + str(st, "version") + " " + str(st, "mode") + " · up " + duration(num(st, "uptime_s")) + " · " +
         str(st, "workers") + (num(st, "workers") == 1 ? " worker · " : " workers · ") + pps(num(st, "pps")) + " · " + count(st.value("connections", uint64_t{0})) +
         " connections · " + std::to_string(alerts) + " alert" + (alerts == 1 ? "" : "s") + "   " + clock + "\n\n";
    if (!st.contains("packets")) return o + "(no aggregates yet)\n";
    o += render_workers(st) + "\n";
    o += "CONNECTIONS BY STATE\n" + render_states(st) + "\n";
    // What is left of the screen goes to alerts, then victims and sources.
    const size_t used = 8 + st["per_worker"].size();
    const size_t left = rows > used + 12 ? rows - used - 12 : 3;
    o += "ACTIVE ALERTS (" + std::to_string(al["active"].size()) + ")\n" + render_alerts(al, std::min<size_t>(left, 20), false) + "\n";
    o += "TOP VICTIMS\n" + render_victims(tp["victims"], 5) + "\n";
    o += "TOP SOURCES\n" + render_sources(tp["sources"], 3);
    return o;
}

int run_top(Conn& c, bool once, double interval, bool as_json, double timeout) {
    struct sigaction sa{};
    sa.sa_handler = on_quit;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    const bool tty = isatty(STDOUT_FILENO);
    TermGuard term;
    if (!once && tty) term.raw();
    if (!once && tty) std::fputs("\033[?25l", stdout);  // hide the cursor while drawing
    int rc = kExitOk;
    bool first = true;
    while (!g_quit) {
        if (!first) c.open();
        first = false;
        auto get = [&](const char* cmd) {
            json a = c.call({{"cmd", cmd}}, timeout);
            if (!a.value("ok", false)) {
                std::fprintf(stderr, "stateline-ctl: %s: %s\n", cmd, str(a, "error").c_str());
                return json();
            }
            return a["result"];
        };
        const json st = get("status"), al = get("alerts"), tp = get("top");
        if (st.is_null() || al.is_null() || tp.is_null()) {
            rc = kExitRefused;
            break;
        }
        if (as_json) {
            std::printf("%s\n", json{{"status", st}, {"alerts", al}, {"top", tp}}.dump().c_str());
        } else {
            winsize ws{};
            const size_t rows = tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row ? ws.ws_row : 50;
            std::string f = frame(st, al, tp, rows);
            if (!once) f += "\n" + std::string(tty ? "q or Ctrl-C quits · " : "") + "every " + fmt("%g", interval) + " s\n";
            if (tty && !once) std::fputs("\033[H\033[2J", stdout);
            std::fputs(f.c_str(), stdout);
            if (!tty && !once) std::fputs("\n", stdout);
        }
        std::fflush(stdout);
        if (once) break;
        // Wait for the next frame, or a key.
        const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(interval);
        while (!g_quit) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            pollfd p{STDIN_FILENO, POLLIN, 0};
            const int r = ::poll(&p, term.active ? 1 : 0, int(left.count()));
            if (r > 0 && (p.revents & POLLIN)) {
                char k;
                if (::read(STDIN_FILENO, &k, 1) == 1 && (k == 'q' || k == 'Q')) g_quit = 1;
            }
        }
    }
    if (!once && tty) std::fputs("\033[?25h", stdout);
    std::fflush(stdout);
    return rc;
}

bool all_digits(const std::string& s) {
    return !s.empty() && s.size() <= 5 && std::all_of(s.begin(), s.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// "10.0.0.1:80" and "[2001:db8::1]:443" as an address and a port.
bool split_endpoint(const std::string& t, std::string& addr, std::string& port) {
    if (!t.empty() && t[0] == '[') {
        const size_t e = t.find("]:");
        if (e == std::string::npos) return false;
        addr = t.substr(1, e - 1);
        port = t.substr(e + 2);
        return true;
    }
    const size_t c = t.find(':');
    if (c == std::string::npos || t.find(':', c + 1) != std::string::npos) return false;
    addr = t.substr(0, c);
    port = t.substr(c + 1);
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"stateline-ctl: watch and control a running Stateline over its control socket", "stateline-ctl"};
    app.footer(kFooter);
    app.fallthrough();
    app.require_subcommand(1);
    std::string socket;
    bool as_json = false;
    double timeout = 10;
    app.add_option("--socket", socket, "Control socket (default: " + stateline::ctl::default_socket_path() + ")")
        ->type_name("PATH");
    app.add_flag("--json", as_json, "Print Stateline's answer as JSON instead of tables");
    app.add_option("--timeout", timeout, "Seconds to wait for an answer (default 10)")->check(CLI::Range(0.1, 3600.0))->type_name("S");

    app.add_subcommand("status",
                       "Mode, uptime, workers, packets and rate, connections, active alerts, mitigation mode and "
                       "rules generation, config");
    app.add_subcommand("stats", "The latest aggregates: every non-zero counter and its rate, per worker, per port");
    app.add_subcommand("alerts", "Active alerts: type, target, group, severity, age");
    app.add_subcommand("rules", "Mitigation rules in running order: action, hits and drops (TCP segments)");
    app.add_subcommand("victims", "Top victims of the last detection interval");
    app.add_subcommand("sources", "Top sources of the last detection interval");
    auto* top = app.add_subcommand("top", "Live view, refreshed every second: workers, connections by state, alerts, victims");
    bool once = false;
    double interval = 1.0;
    top->add_flag("--once", once, "Print one frame and exit (scripts, tests)");
    top->add_option("--interval", interval, "Seconds between frames (default 1)")->check(CLI::Range(0.2, 3600.0));
    auto* conn = app.add_subcommand("conn", "Tracked connections of an endpoint, or between two: TCP state of each side");
    std::vector<std::string> conn_args;
    conn->add_option("ENDPOINTS", conn_args, "ADDR [PORT] [PEER [PEER_PORT]] (ADDR:PORT and [V6]:PORT also work)")
        ->required()
        ->expected(1, 4);
    app.add_subcommand("reload", "Re-read the config file Stateline was started with; apply what can change live");
    app.add_subcommand("help", "Stateline's list of commands (the protocol's names)");
    // An unknown command gets its own message (CLI11 would only say a subcommand is required).
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--socket" || a == "--timeout") {
            ++i;
            continue;
        }
        if (a.empty() || a[0] == '-') continue;
        bool known = false;
        for (const auto* sub : app.get_subcommands({})) known = known || sub->get_name() == a;
        if (!known) {
            std::string names;
            for (const auto* sub : app.get_subcommands({})) names += (names.empty() ? "" : ", ") + sub->get_name();
            fail(kExitUsage, "unknown command '" + a + "' (commands: " + names + "; --help)");
        }
        break;
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : kExitUsage;
    }
    const std::string cmd = app.get_subcommands().front()->get_name();

    json req = {{"cmd", cmd == "top" ? "status" : cmd}};
    if (cmd == "conn") {
        // ADDR [PORT] [PEER [PEER_PORT]], each ADDR optionally ADDR:PORT.
        std::vector<std::string> toks;
        for (const auto& t : conn_args) {
            std::string a, p;
            if (split_endpoint(t, a, p)) {
                toks.push_back(a);
                toks.push_back(p);
            } else {
                toks.push_back(t);
            }
        }
        size_t i = 0;
        auto port = [&](const char* key) {
            if (i < toks.size() && all_digits(toks[i])) {
                const long v = std::stol(toks[i]);
                if (v > 65535) fail(kExitUsage, "conn: port " + toks[i] + " is over 65535");
                req[key] = v;
                ++i;
            }
        };
        req["addr"] = toks[i++];
        port("port");
        if (i < toks.size()) {
            req["peer"] = toks[i++];
            port("peer_port");
        }
        if (i < toks.size())
            fail(kExitUsage, "conn: unexpected '" + toks[i] + "' (usage: conn ADDR [PORT] [PEER [PEER_PORT]])");
    }
    if (cmd == "stats" && !as_json) req["detail"] = false;

    Conn c(stateline::ctl::resolve_socket_path(socket));
    c.open();
    if (cmd == "top") return run_top(c, once, interval, as_json, timeout);

    const json a = c.call(req, timeout);
    if (!a.value("ok", false)) {
        const std::string e = str(a, "error");
        // Stateline's own messages may name the command already ("conn: ...").
        std::fprintf(stderr, "stateline-ctl: %s%s\n", e.rfind(cmd + ":", 0) == 0 ? "" : (cmd + ": ").c_str(), e.c_str());
        if (as_json) std::printf("%s\n", a.dump(2).c_str());
        return kExitRefused;
    }
    const json& r = a["result"];
    if (as_json) {
        std::printf("%s\n", r.dump(2).c_str());
        return kExitOk;
    }
    std::string out;
    if (cmd == "status") out = render_status(r);
    else if (cmd == "stats") out = render_stats(r);
    else if (cmd == "alerts") out = render_alerts(r);
    else if (cmd == "rules") out = render_rules(r);
    else if (cmd == "victims") out = render_victims(r);
    else if (cmd == "sources") out = render_sources(r);
    else if (cmd == "conn") out = render_conn(r);
    else if (cmd == "reload") {
        out = str(r, "message") + "\n";
        for (const auto& x : r["restart_needed"])
            out += "  needs a restart: " + str(x, "param") + " (running " + str(x, "from") + ", file " + str(x, "to") + ")\n";
    } else if (cmd == "help") {
        Table t{{"COMMAND", "ARGUMENTS", "WHAT"}, {false, false, false}, {}};
        for (const auto& x : r["commands"]) t.rows.push_back({str(x, "cmd"), str(x, "args"), str(x, "help")});
        out = "Stateline's control commands (" + str(r, "protocol") + "):\n" + t.render() +
              "stateline-ctl: victims and sources are 'top' split in two; 'top' here is a live view.\n";
    }
    std::fputs(out.c_str(), stdout);
    return kExitOk;
}
