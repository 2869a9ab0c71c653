// SPDX-License-Identifier: BSD-3-Clause
// Stateline: bring-up in stages (options and config, captures, EAL, ports, pool, tables,
// lcores), the control loop on the main lcore, and the orderly shutdown that flushes everything.
//
//   stateline --pcap FILE [FILE...] [options]        capture replay; Stateline sets up EAL
//   stateline <EAL arguments> -- [options]           live, on the ports EAL gives it
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "capture_probe.hpp"
#include "conn_log.hpp"
#include "conn_sink.hpp"
#include "config.hpp"
#include "aggregator.hpp"
#include "counters.hpp"
#include "ctl_server.hpp"
#include "dispatcher.hpp"
#include "flow_table.hpp"
#include "metrics.hpp"
#include "memory_budget.hpp"
#include "mitigation.hpp"
#include "ports.hpp"
#include "rules.hpp"
#include "stats.hpp"
#include "summary.hpp"
#include "telemetry.hpp"
#include "worker.hpp"

namespace fs = std::filesystem;
using namespace stateline;

namespace {

RunState g_run;

void on_signal(int) { g_run.stop.store(true, std::memory_order_relaxed); }

struct Options {
    std::vector<std::string> pcaps;
    std::string config_path;
    std::string summary_path;
    std::string conn_log_path;
    std::string conn_log_format = "tsv";
    std::string alerts_path;
    std::string stats_path;
    unsigned workers = 0;  // 0: from config
    bool verbose = false;
    bool quiet = false;
    bool progress = true;
    std::string metrics_listen;  // --metrics-listen; empty: not given (live: on, capture: off)
    std::string ctl_socket;      // --ctl-socket; empty: the default path (src/ctl_path.hpp)
    std::string ctl_group;       // --ctl-group; empty: owner only
    bool ctl_group_given = false;  // --ctl-group on the command line, even "": overrides the config
};

[[noreturn]] void die(const std::string& msg, int code = 2) {
    std::fprintf(stderr, "stateline: error: %s\n", msg.c_str());
    std::exit(code);
}

void warn(const std::string& msg) { std::fprintf(stderr, "stateline: warning: %s\n", msg.c_str()); }

const char* kFooter = R"(Modes:
  Capture replay (no NIC, no hugepages; Stateline builds the EAL arguments itself):
    stateline --pcap capture.pcap [more.pcap ...] [--workers N] [--summary out.json]
  Live, on DPDK ports (hugepages, NICs bound to vfio-pci):
    stateline -l 0-4 -a 0000:03:00.0 -- --config /etc/stateline/stateline.yaml
    Everything before '--' goes to DPDK's EAL; lcore 0 is the control core and every
    other lcore a worker with its own RX queue on each port. Stops on SIGINT/SIGTERM.
    With dpdk.eal_args in the config: stateline -- --config /etc/stateline/stateline.yaml

Captures: pcap or pcapng, Ethernet or Linux cooked (SLL) link type, read in the order given.
Time comes from packet timestamps, so results do not depend on the machine's speed.
Config: conf/stateline.yaml documents every parameter and its default.
Exit status: 0 done, 1 runtime failure, 2 bad arguments, config or capture.
)";

// Splits argv at "--": before it EAL's arguments (live mode), after it ours.
void split_args(int argc, char** argv, std::vector<char*>& eal, std::vector<char*>& app) {
    int dd = -1;
    for (int i = 1; i < argc; ++i)
        if (std::strcmp(argv[i], "--") == 0) {
            dd = i;
            break;
        }
    eal.push_back(argv[0]);
    app.push_back(argv[0]);
    if (dd < 0) {
        for (int i = 1; i < argc; ++i) app.push_back(argv[i]);
    } else {
        for (int i = 1; i < dd; ++i) eal.push_back(argv[i]);
        for (int i = dd + 1; i < argc; ++i) app.push_back(argv[i]);
    }
}

int parse_options(std::vector<char*>& app, Options& o) {
    CLI::App cli{"Stateline: TCP state tracking at line rate on DPDK", "stateline"};
    cli.footer(kFooter);
    cli.set_version_flag("--version", std::string("stateline ") + STATELINE_VERSION);
    cli.add_option("--pcap", o.pcaps, "Replay these captures (pcap/pcapng), then exit")->expected(1, -1);
    cli.add_option("-c,--config", o.config_path, "YAML config (default: built-in defaults = conf/stateline.yaml)");
    cli.add_option("-w,--workers", o.workers, "Worker lcores for a capture replay (default: config 'workers')")
        ->check(CLI::Range(1, 64));
    cli.add_option("-s,--summary", o.summary_path, "Write the end-of-run summary as JSON to this file");
    cli.add_option("--conn-log", o.conn_log_path,
                   "Write one record per connection (Zeek conn.log format) to this file");
    cli.add_option("--conn-log-format", o.conn_log_format, "tsv (Zeek's ASCII log, default) or json (JSON lines)")
        ->check(CLI::IsMember({"tsv", "json"}));
    cli.add_option("--alerts", o.alerts_path,
                   "Write alert events (start, update, end) as JSON lines to this file (docs/alerts.md)");
    cli.add_option("--stats", o.stats_path,
                   "Write one JSON line of aggregates per interval to this file (tools/stateline-chart plots it)");
    cli.add_flag("-v,--verbose", o.verbose, "Show DPDK's informational messages");
    cli.add_flag("-q,--quiet", o.quiet, "Print no summary on stdout and no alert lines on stderr");
    cli.add_flag("!--no-progress", o.progress, "No progress line on a terminal");
    cli.add_option("--ctl-socket", o.ctl_socket,
                   "Control socket for stateline-ctl, or 'off' (default: " + ctl::default_socket_path() + ")")
        ->type_name("PATH");
    CLI::Option* ctl_group = cli.add_option("--ctl-group", o.ctl_group,
                   "Let this group's members use the control socket too (socket 0660; default: owner and root "
                   "only, 0600; \"\" overrides exports.ctl_group of the config)")
        ->type_name("NAME");
    cli.add_option("--metrics-listen", o.metrics_listen,
                   std::string("Serve Prometheus metrics at http://ADDR:PORT/metrics ([IPv6]:PORT too), or 'off' "
                               "(default: ") + kDefaultMetricsListen + " live, off in a capture replay)")
        ->type_name("ADDR:PORT")
        ->check(CLI::Validator(
            [](std::string& v) {
                MetricsListen l;
                std::string e;
                return parse_metrics_listen(v, l, e) ? std::string() : e;
            },
            ""));
    try {
        cli.parse(static_cast<int>(app.size()), app.data());
        o.ctl_group_given = ctl_group->count() > 0;
    } catch (const CLI::ParseError& e) {
        int rc = cli.exit(e);
        std::exit(rc == 0 ? 0 : 2);
    }
    return 0;
}

// Lcores float over the CPUs this process may use: a capture replay with 4 workers runs on a
// 2-core machine (the threads share cores and yield when idle).
std::string lcore_map(unsigned lcores) {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::string cpus;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE; ++c)
            if (CPU_ISSET(c, &set)) cpus += (cpus.empty() ? "" : ",") + std::to_string(c);
    }
    if (cpus.empty()) cpus = "0";
    return "(0-" + std::to_string(lcores - 1) + ")@(" + cpus + ")";
}

struct CaptureSetup {
    std::string dir;                  // private folder of symlinks with vdev-safe names
    std::vector<std::string> links;
    ~CaptureSetup() {
        for (const auto& l : links) unlink(l.c_str());
        if (!dir.empty()) rmdir(dir.c_str());
    }
};

// net_pcap takes its file in a comma-separated kvargs string, so a path with ',' or '=' cannot
// be passed as is: give the PMD symlinks with plain names in a private folder instead.
std::string make_links(const std::vector<CaptureInfo>& caps, CaptureSetup& cs) {
    char tmpl[] = "/tmp/stateline.XXXXXX";
    if (!mkdtemp(tmpl)) return std::string("cannot create a temporary folder in /tmp: ") + std::strerror(errno);
    cs.dir = tmpl;
    for (size_t i = 0; i < caps.size(); ++i) {
        std::string target = fs::absolute(caps[i].path).string();
        std::string link = cs.dir + "/capture" + std::to_string(i);
        if (symlink(target.c_str(), link.c_str()) != 0)
            return "cannot link " + target + " into " + cs.dir + ": " + std::strerror(errno);
        cs.links.push_back(link);
    }
    return {};
}

uint64_t mbuf_bytes() {
    return sizeof(rte_mbuf) + RTE_ALIGN_CEIL(sizeof(packet::PacketMeta), RTE_MBUF_PRIV_ALIGN) + RTE_MBUF_DEFAULT_BUF_SIZE;
}

// Bytes of detection state per worker (two interval buffers and the half-open gauges) and in the
// aggregator (about one buffer's worth), from the sketches' own sizes.
uint64_t detection_bytes(const config::Config& c, unsigned workers) {
    if (!c.detect.enabled) return 0;
    const uint32_t w = c.detect.sketch_width;
    const uint64_t partial = detect::VictimSketch::memory_size(w) + detect::SourceSketch::memory_size(w) +
                             2 * sketch::HeavyHitters::memory_size(c.detect.top) + detect::kDistinctBits / 8 +
                             detect::kVerifiedBits / 8 + detect::HalfOpenGauge::words(w) * sizeof(uint32_t);
    return uint64_t(2 * workers + 1) * partial + uint64_t(workers) * detect::HalfOpenGauge::words(w) * sizeof(uint32_t);
}

// What the config will allocate, by consumer, before anything is: `dpdk` true for EAL memory
// (hugepages live), false for the process's own heap. Checked against what is available so a
// config that cannot fit is refused with its biggest consumers named (exit 2), not half-started.
std::vector<MemoryItem> memory_items(const config::Config& c, unsigned workers, bool capture, bool dpdk) {
    std::vector<MemoryItem> v;
    const std::string xw = " x " + std::to_string(workers) + " worker" + (workers == 1 ? "" : "s");
    if (dpdk) {
        v.push_back({"flow_table.capacity " + std::to_string(c.flow_capacity) + xw, "flow_table.capacity",
                     uint64_t(workers) * flow::FlowTable::memory_size(c.flow_capacity)});
        v.push_back({"rx.mbufs " + std::to_string(c.mbufs), capture ? "rx.worker_ring or --workers" : "rx.mbufs",
                     uint64_t(c.mbufs) * mbuf_bytes()});
        if (capture)
            v.push_back({"rx.worker_ring " + std::to_string(c.worker_ring) + xw, "rx.worker_ring",
                         uint64_t(workers) * c.worker_ring * sizeof(void*) * 2});
        v.push_back({"conn_log.ring " + std::to_string(c.conn_ring) + xw, "conn_log.ring",
                     uint64_t(workers) * c.conn_ring * sizeof(connlog::ConnRecord)});
    } else {
        if (c.detect.enabled)
            v.push_back({"detect.sketch_width " + std::to_string(c.detect.sketch_width) + xw, "detect.sketch_width",
                         detection_bytes(c, workers)});
        if (c.rules && c.rules->size())
            v.push_back({"the rules (" + std::to_string(c.rules->per_source_rules()) +
                             " per-source rate_limit rule(s) x mitigation.source_buckets " +
                             std::to_string(c.rules->options().source_buckets) + xw + ")",
                         "mitigation.source_buckets", uint64_t(workers) * c.rules->worker_memory()});
    }
    return v;
}

// EAL memory still to be had: the heaps' free bytes (all of it with --no-huge or --legacy-mem,
// which allocate up front) plus, with hugepages, the free hugepages the heaps can still grow into.
uint64_t eal_memory_available(std::string& where) {
    uint64_t free_heap = 0;
    for (unsigned s = 0; s < rte_socket_count(); ++s) {
        rte_malloc_socket_stats st{};
        if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(s), &st) == 0) free_heap += st.heap_freesz_bytes;
    }
    if (!rte_eal_has_hugepages()) {
        where = "EAL memory, -m";
        return free_heap;
    }
    uint64_t pages = 0;
    std::error_code ec;
    for (const auto& d : fs::directory_iterator("/sys/kernel/mm/hugepages", ec)) {
        std::ifstream f(d.path() / "free_hugepages");
        unsigned long long n = 0, kb = 0;
        if (f >> n && std::sscanf(d.path().filename().c_str(), "hugepages-%llukB", &kb) == 1) pages += n * kb * 1024;
    }
    where = "EAL heap free plus free hugepages";
    return free_heap + pages;
}

int count_vdev_args(const std::vector<char*>& eal) {
    int n = 0;
    for (size_t i = 1; i < eal.size(); ++i) {
        std::string a = eal[i];
        if (a == "--vdev") ++n;
        else if (a.rfind("--vdev=", 0) == 0) ++n;
    }
    return n;
}

void print_progress(const Dispatcher& d, uint64_t total, double elapsed, bool final) {
    uint64_t done = d.frames_read.load(std::memory_order_relaxed);
    double pct = total ? 100.0 * double(done) / double(total) : 100.0;
    std::fprintf(stderr, "\rstateline: replayed %llu of %llu frames (%.0f%%), %.2f Mpps%s",
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total), pct,
                 elapsed > 0 ? double(done) / elapsed / 1e6 : 0.0, final ? "\n" : "   ");
    std::fflush(stderr);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<char*> eal_args, app_args;
    split_args(argc, argv, eal_args, app_args);
    Options opt;
    parse_options(app_args, opt);

    const bool capture_mode = !opt.pcaps.empty();
    if (capture_mode && eal_args.size() > 1)
        die("give either --pcap (Stateline sets up EAL itself) or EAL arguments before '--', not both");

    // Stage 1: config.
    config::Config cfg;
    if (!opt.config_path.empty()) {
        auto r = config::load_file(opt.config_path);
        if (!r.ok())
            die("invalid config, nothing started:\n" + config::format_errors(r.errors) +
                "(conf/stateline.yaml documents every parameter)");
        cfg = r.config;
    }
    // Live mode's EAL arguments from the config (dpdk.eal_args) when the command line has none.
    std::vector<std::string> cfg_eal;
    if (!capture_mode && eal_args.size() <= 1 && !cfg.eal_args.empty()) {
        size_t i = 0;
        while (i < cfg.eal_args.size()) {
            const size_t j = cfg.eal_args.find_first_of(" \t", i);
            const size_t end = j == std::string::npos ? cfg.eal_args.size() : j;
            if (end > i) cfg_eal.push_back(cfg.eal_args.substr(i, end - i));
            i = end + 1;
        }
        for (auto& a : cfg_eal) eal_args.push_back(a.data());
    }
    if (!capture_mode && eal_args.size() <= 1)
        die("nothing to read: give --pcap FILE to replay a capture, or EAL arguments and '--' for live "
            "ports (or dpdk.eal_args in the config; see --help)");
    if (opt.workers) cfg.workers = opt.workers;
    // Exports named in the config (exports:), unless the command line says otherwise.
    if (opt.metrics_listen.empty()) opt.metrics_listen = cfg.metrics_listen;
    if (opt.ctl_socket.empty()) opt.ctl_socket = cfg.ctl_socket;
    if (!opt.ctl_group_given) opt.ctl_group = cfg.ctl_group;
    // The control socket's group must exist before anything starts.
    gid_t ctl_gid = gid_t(-1);
    if (!opt.ctl_group.empty() && opt.ctl_socket != "off") {
        std::string gerr;
        if (!ctl::resolve_group(opt.ctl_group, ctl_gid, gerr)) die(gerr, 2);
    }
    if (opt.alerts_path.empty()) opt.alerts_path = cfg.alerts_path;
    if (opt.stats_path.empty()) opt.stats_path = cfg.stats_path;
    // Rules that read detection's state need detection.
    if (cfg.rules && !cfg.detect.enabled)
        for (size_t i = 0; i < cfg.rules->size(); ++i) {
            const auto& r = cfg.rules->spec(i);
            if (r.victim_of || r.src_verified >= 0)
                die("rule '" + r.name + "' reads detection (" + (r.victim_of ? "victim_of" : "src_verified") +
                    ") but detection is off (detect.enabled: false): enable it or drop that condition");
        }
    if (capture_mode && cfg.inline_mode) {
        warn("mitigation.mode is inline, but a capture replay has no port to forward to: the rules run in "
             "monitor mode (counted as would-drop)");
        cfg.inline_mode = false;
    }

    // The connection log opens before anything starts, so a bad path fails early and alone.
    ConnSink sink;
    if (!opt.conn_log_path.empty()) {
        connlog::Format fmt = connlog::Format::tsv;
        connlog::parse_format(opt.conn_log_format, fmt);
        if (!sink.log.open(opt.conn_log_path, fmt)) die(sink.log.error());
    }
    sink.never_wait = !capture_mode;

    std::ofstream stats_out;
    if (!opt.stats_path.empty()) {
        stats_out.open(opt.stats_path, std::ios::out | std::ios::trunc);
        if (!stats_out) die("cannot write the aggregates to '" + opt.stats_path + "': " + std::strerror(errno));
    }
    std::ofstream alerts_out;
    if (!opt.alerts_path.empty()) {
        if (!cfg.detect.enabled) die("--alerts given but detection is off in the config (detect.enabled: false)");
        alerts_out.open(opt.alerts_path, std::ios::out | std::ios::trunc);
        if (!alerts_out) die("cannot write the alerts to '" + opt.alerts_path + "': " + std::strerror(errno));
    }

    // Stage 2: captures, checked before anything starts so a bad file gets a clear error.
    std::vector<CaptureInfo> caps;
    CaptureSetup links;
    if (capture_mode) {
        if (opt.pcaps.size() > RTE_MAX_ETHPORTS - 1)
            die("at most " + std::to_string(RTE_MAX_ETHPORTS - 1) + " captures at once; merge them with mergecap");
        for (const auto& p : opt.pcaps) {
            CaptureInfo ci;
            std::string err = probe_capture(p, ci);
            if (!err.empty()) die(err);
            if (!ci.read_error.empty())
                warn("capture '" + p + "' breaks off after " + std::to_string(ci.frames) + " frames (" +
                     ci.read_error + "); replaying the frames before that");
            caps.push_back(ci);
        }
        std::string err = make_links(caps, links);
        if (!err.empty()) die(err);
    }

    // Stage 3: EAL.
    std::vector<std::string> gen;  // storage for generated EAL arguments
    std::vector<char*> eal;
    unsigned workers = cfg.workers;
    if (capture_mode) {
        // net_pcap reads a frame before it allocates its mbuf and drops the frame when none is
        // left, so the pool must outlast full worker rings plus the mbufs parked in each lcore's
        // mempool cache (up to 1.5 x 256), or a replay with several workers loses frames.
        const uint64_t ring_held = uint64_t(workers) * cfg.worker_ring + uint64_t(workers + 2) * 384 + 2 * kMaxBurst;
        if (cfg.mbufs < ring_held) {
            const uint32_t want = static_cast<uint32_t>(std::bit_ceil(ring_held + 1) - 1);
            if (opt.verbose)
                std::fprintf(stderr, "stateline: rx.mbufs %u raised to %u: %u worker rings of %u must not exhaust the pool\n",
                             cfg.mbufs, want, workers, cfg.worker_ring);
            cfg.mbufs = want;
        }
        // Everything runs on normal memory (--no-huge): refuse now what cannot fit, before EAL
        // maps any of it.
        {
            auto items = memory_items(cfg, workers, true, true);
            for (auto& i : memory_items(cfg, workers, true, false)) items.push_back(i);
            std::string merr = check_memory(items, mem_available_bytes(), "MemAvailable");
            if (!merr.empty()) {
                for (const auto& l : links.links) unlink(l.c_str());  // die() skips destructors
                if (!links.dir.empty()) rmdir(links.dir.c_str());
                die("not enough memory, nothing started: " + merr, 2);
            }
        }
        const unsigned lcores = workers + 2;  // control + dispatcher + workers
        uint64_t need = uint64_t(cfg.mbufs) * mbuf_bytes() + uint64_t(workers) * flow::FlowTable::memory_size(cfg.flow_capacity) +
                        uint64_t(workers) * cfg.worker_ring * sizeof(void*) * 2 +
                        uint64_t(workers) * cfg.conn_ring * sizeof(connlog::ConnRecord);
        uint64_t mem_mb = need / (1 << 20) + 128;
        gen = {argv[0], "--no-huge", "--no-pci", "--no-shconf", "--log-level=lib.telemetry:error",
               "--file-prefix=stateline-" + std::to_string(getpid()), "-m", std::to_string(mem_mb),
               "--lcores=" + lcore_map(lcores), opt.verbose ? "--log-level=info" : "--log-level=warning"};
        for (size_t i = 0; i < caps.size(); ++i)
            gen.push_back("--vdev=net_pcap" + std::to_string(i) + ",rx_pcap=" + links.links[i]);
        for (auto& s : gen) eal.push_back(s.data());
    } else {
        eal = eal_args;
    }
    if (!opt.verbose && !capture_mode) rte_log_set_global_level(RTE_LOG_NOTICE);
    int rc = rte_eal_init(static_cast<int>(eal.size()), eal.data());
    if (rc < 0)
        die(std::string("DPDK EAL initialisation failed: ") + rte_strerror(rte_errno) +
            (capture_mode ? "" : " (check the EAL arguments before '--'; see the EAL messages above)"), 1);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    // EAL leaves its runtime folder behind; a capture replay is a one-off, so tidy it at exit.
    std::string runtime_dir = rte_eal_get_runtime_dir();
    auto cleanup = [&](int code) {
        rte_eal_cleanup();
        if (capture_mode) {
            std::error_code ec;
            fs::remove_all(runtime_dir, ec);
        }
        return code;
    };
    // Errors once EAL is up release what it holds (memory, the runtime folder) before exiting,
    // so a refused start leaves nothing behind and leak checkers stay quiet.
    auto fail = [&](const std::string& msg, int code) {
        cleanup(code);
        die(msg, code);
    };

    // Stage 4: ports.
    const uint16_t nports = rte_eth_dev_count_avail();
    if (capture_mode && nports != caps.size())
        fail("net_pcap opened " + std::to_string(nports) + " of " + std::to_string(caps.size()) +
                " captures (see the messages above)", 1);
    if (!capture_mode) {
        // A vdev that fails to probe does not fail rte_eal_init: compare what was asked for.
        int vdevs = count_vdev_args(eal);
        if (vdevs > 0 && nports < vdevs)
            fail(std::to_string(vdevs) + " --vdev port(s) asked for but only " + std::to_string(nports) +
                    " port(s) probed: a vdev failed to probe (see the EAL messages above)", 1);
        if (nports == 0)
            fail("no port found: bind a NIC to vfio-pci (dpdk-devbind.py --bind=vfio-pci 0000:03:00.0) and allow "
                "it with -a, or give a virtual port with --vdev", 1);
        if (cfg.inline_mode && nports % 2 != 0)
            fail("mitigation.mode is inline but there are " + std::to_string(nports) +
                    " ports: inline mode pairs them (0<->1, 2<->3, ...), so give an even number", 2);
        unsigned avail = rte_lcore_count() - 1;
        if (avail == 0)
            fail("no worker lcore: the main lcore is the control core, so give at least two lcores (-l 0-1)", 1);
        if (opt.workers && opt.workers != avail)
            fail("--workers " + std::to_string(opt.workers) + " asked for but EAL has " + std::to_string(avail) +
                    " worker lcore(s): set them with -l/--lcores", 1);
        workers = avail;
    }
    if (rte_lcore_count() < (capture_mode ? workers + 2 : workers + 1))
        fail("fewer lcores than needed (" + std::to_string(rte_lcore_count()) + ")", 1);

    if (!capture_mode) {
        // Before the pool, the tables and the lcores: EAL memory for what DPDK allocates, the
        // process's own for the sketches and the rules.
        std::string where;
        std::string merr = check_memory(memory_items(cfg, workers, false, true), eal_memory_available(where), where);
        if (merr.empty()) merr = check_memory(memory_items(cfg, workers, false, false), mem_available_bytes(), "MemAvailable");
        if (!merr.empty()) fail("not enough memory, nothing started: " + merr, 2);
    }
    std::string err;
    rte_mempool* pool = create_pktmbuf_pool(cfg.mbufs, static_cast<int>(rte_socket_id()), err);
    if (!pool) fail(err, 1);

    std::vector<PortInfo> ports;
    uint16_t p;
    RTE_ETH_FOREACH_DEV(p) {
        PortInfo pi;
        uint16_t q = capture_mode ? 1 : static_cast<uint16_t>(workers);
        uint16_t tq = cfg.inline_mode ? static_cast<uint16_t>(workers) : 1;
        if (!setup_port(p, q, tq, static_cast<uint16_t>(cfg.rx_descriptors), pool, capture_mode, pi, err)) fail(err, 1);
        if (capture_mode) pi.link = caps[ports.size()].link;
        ports.push_back(pi);
    }

    // Stage 5: workers and their tables, on their lcores' sockets.
    auto tcfg = config::flow_table_config(cfg);
    const size_t table_bytes = flow::FlowTable::memory_size(tcfg.capacity);
    const tcp::Tracker tracker;
    std::vector<std::unique_ptr<Worker>> ws;
    std::vector<void*> table_mem;
    std::vector<std::unique_ptr<flow::FlowTable>> tables;
    std::vector<unsigned> lcore_ids;
    unsigned lc;
    RTE_LCORE_FOREACH_WORKER(lc) lcore_ids.push_back(lc);
    unsigned next_lcore = 0;
    unsigned dispatcher_lcore = capture_mode ? lcore_ids[next_lcore++] : 0;
    for (unsigned i = 0; i < workers; ++i) {
        auto w = std::make_unique<Worker>();
        w->id = i;
        w->lcore = lcore_ids[next_lcore++];
        w->run = &g_run;
        w->burst = cfg.burst;
        int socket = static_cast<int>(rte_lcore_to_socket_id(w->lcore));
        void* mem = rte_malloc_socket("flow_table", table_bytes, 64, socket);
        if (!mem)
            fail("cannot allocate the flow table (" + std::to_string(table_bytes >> 20) + " MiB for " +
                    std::to_string(tcfg.capacity) + " connections) on socket " + std::to_string(socket) +
                    ": lower flow_table.capacity or give EAL more memory",
                1);
        table_mem.push_back(mem);
        tables.push_back(std::make_unique<flow::FlowTable>(tcfg, mem, worker_on_remove, w.get()));
        w->table = tables.back().get();
        w->tracker = &tracker;
        std::string cname = "conn_ring" + std::to_string(i);
        w->conn_ring = rte_ring_create_elem(cname.c_str(), sizeof(connlog::ConnRecord), cfg.conn_ring, socket,
                                            RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!w->conn_ring) fail("cannot create " + cname + ": " + rte_strerror(rte_errno), 1);
        w->tsc_hz = rte_get_tsc_hz();
        w->tsc_base = rte_rdtsc();
        w->ns_base = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count());
        if (capture_mode) {
            w->input = InputKind::ring;
            w->yield_when_idle = true;
            std::string name = "worker_ring" + std::to_string(i);
            w->ring = rte_ring_create(name.c_str(), cfg.worker_ring, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!w->ring) fail("cannot create " + name + ": " + rte_strerror(rte_errno), 1);
        } else {
            w->input = InputKind::ports;
            // Inline, each port forwards to its pair's: 0<->1, 2<->3, ...
            for (size_t k = 0; k < ports.size(); ++k)
                w->rxq[w->nb_rxq++] = RxQueue{ports[k].port_id, static_cast<uint16_t>(i), ports[k].link,
                                              ports[(k ^ 1) < ports.size() ? (k ^ 1) : k].port_id};
        }
        ws.push_back(std::move(w));
    }

    // Detection: per-worker sketches, the sources known to complete handshakes, the aggregator.
    std::unique_ptr<detect::VerifiedSources> verified;
    std::vector<std::unique_ptr<detect::WorkerDetector>> detectors;
    std::unique_ptr<detect::Aggregator> aggregator;
    std::deque<std::vector<uint64_t>> interval_scratch;  // stable addresses
    const uint64_t interval_ns = uint64_t{cfg.detect.interval_ms} * 1'000'000;
    bool alerts_write_failed = false;
    if (cfg.detect.enabled) {
        sketch::SketchGeometry geo;
        geo.width = cfg.detect.sketch_width;
        // Live, a secret per run, so nobody outside can aim sketch collisions at a victim; a
        // replay keeps the fixed seed, so the same capture always gives the same alerts.
        if (!capture_mode) geo.seed = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}() ^ rte_rdtsc();
        verified = std::make_unique<detect::VerifiedSources>();
        const uint64_t now = ws.empty() ? 0 : ws[0]->ns_base;
        std::vector<detect::WorkerDetector*> ptrs;
        for (auto& w : ws) {
            // A replay's workers hand their counters over with each interval of capture time.
            detectors.push_back(std::make_unique<detect::WorkerDetector>(
                geo, cfg.detect.top, verified.get(), capture_mode ? 0 : now / interval_ns, geo.seed ^ (w->id + 1),
                capture_mode ? counters::descriptors().size() : 0));
            if (capture_mode) {
                interval_scratch.emplace_back(counters::descriptors().size(), 0);
                w->interval_counters = interval_scratch.back().data();
            }
            w->detector = detectors.back().get();
            w->interval_ns = interval_ns;
            w->next_boundary_ns = (now / interval_ns + 1) * interval_ns;
            ptrs.push_back(w->detector);
        }
        const bool loud = !opt.quiet;
        const bool tty_err = isatty(STDERR_FILENO);
        aggregator = std::make_unique<detect::Aggregator>(
            cfg.detect, geo, std::move(ptrs), verified.get(), [&, loud, tty_err](const nlohmann::json& ev) {
                if (alerts_out.is_open() && !alerts_write_failed) {
                    alerts_out << ev.dump() << '\n';
                    alerts_out.flush();  // a few lines a second at most: `tail -f` sees them now
                    if (!alerts_out) alerts_write_failed = true;
                }
                const std::string event = ev["event"].get<std::string>();
                if (loud && event != "update")
                    std::fprintf(stderr, "%sstateline: alert #%llu %s %s %s at %s (%s%s)\n",
                                 tty_err ? "\r\033[K" : "", static_cast<unsigned long long>(ev["id"].get<uint64_t>()),
                                 ev["type"].get<std::string>().c_str(), ev["target"].get<std::string>().c_str(),
                                 event == "start" ? "started" : "ended", ev["ts"].get<std::string>().c_str(),
                                 ev["severity"].get<std::string>().c_str(),
                                 ev.contains("reason") ? (", " + ev["reason"].get<std::string>()).c_str() : "");
            });
    }

    // Mitigation: each worker's rules (and, with detection, the targets of active alerts).
    Mitigation mitigation([&] {
        std::vector<Worker*> v;
        for (auto& w : ws) v.push_back(w.get());
        return v;
    }(), verified.get(), cfg.inline_mode,
                          capture_mode ? 0 : (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}() ^ rte_rdtsc());
    mitigation.install(cfg.rules);
    if (!capture_mode && cfg.inline_mode) {
        std::string pairs;
        for (size_t k = 0; k + 1 < ports.size(); k += 2)
            pairs += (pairs.empty() ? "" : ", ") + ports[k].name + " <-> " + ports[k + 1].name;
        std::fprintf(stderr, "stateline: inline mode, forwarding %s; %zu rule(s)\n", pairs.c_str(),
                     mitigation.current()->size());
    }

    Dispatcher disp;
    uint64_t total_frames = 0;
    if (capture_mode) {
        disp.run = &g_run;
        disp.burst = cfg.burst;
        disp.ts_offset = rx_timestamp_offset();
        disp.pool = pool;
        if (disp.ts_offset < 0) warn("the capture PMD gives no timestamps: timeouts will not advance");
        for (size_t i = 0; i < caps.size(); ++i) {
            disp.sources.push_back({ports[i].port_id, caps[i]});
            total_frames += caps[i].frames;
        }
        for (auto& w : ws) disp.rings.push_back(w->ring);
        if (aggregator) disp.interval_ns = interval_ns;
    }

    // Aggregates for the exporters: each worker publishes its counters every 10 ms (seqlock);
    // the control core sums them every stats.interval_ms into a Snapshot on the board.
    std::vector<std::unique_ptr<counters::PublishedCounters>> published;
    std::vector<const counters::PublishedCounters*> published_ptrs;
    for (auto& w : ws) {
        published.push_back(std::make_unique<counters::PublishedCounters>());
        w->published = published.back().get();
        w->publish_tsc = rte_get_tsc_hz() / 100;
        published_ptrs.push_back(w->published);
    }
    StatsCollector collector(published_ptrs, capture_mode ? "capture" : "live");
    SnapshotBoard board;
    // ---- Control socket for stateline-ctl (src/ctl_server.hpp); SIGHUP reloads the config ----
    ctl::ServerSetup ctl_setup;
    ctl_setup.socket_path = opt.ctl_socket == "off" ? std::string() : ctl::resolve_socket_path(opt.ctl_socket);
    if (ctl_gid != gid_t(-1)) {
        ctl_setup.group_name = opt.ctl_group;
        ctl_setup.group = ctl_gid;
    }
    ctl_setup.mode = capture_mode ? "capture" : "live";
    ctl_setup.config_path = opt.config_path;
    ctl_setup.board = &board;
    for (auto& w : ws) ctl_setup.workers.push_back(w.get());
    ctl_setup.aggregator = aggregator.get();
    ctl_setup.mitigation = &mitigation;
    ctl::Server ctl_server(std::move(ctl_setup));
    {
        std::string ctl_err;
        int ctl_code = 1;
        // A replay on the default path yields to whoever holds it (a live appliance, another
        // replay), and says so unless -q.
        if (!ctl_server.start(ctl_err, ctl_code)) {
            if (!capture_mode || !opt.ctl_socket.empty()) die(ctl_err, ctl_code);
            if (!opt.quiet) warn("this replay runs without a control socket: " + ctl_err);
        }
        ctl::install_sighup_reload();
        if (!capture_mode && !ctl_server.socket_path().empty())
            std::fprintf(stderr, "stateline: control socket %s (stateline-ctl status)\n", ctl_server.socket_path().c_str());
    }
    // ---- end of control socket ----
    // ---- DPDK telemetry (src/telemetry.hpp): /stateline/* commands answered from the board ----
    {
        std::string terr;
        if (!register_telemetry(&board, cfg.stats_interval_ms, terr)) warn(terr);
        const std::string sock = telemetry_socket_path(runtime_dir);
        if (!capture_mode && !sock.empty())
            std::fprintf(stderr, "stateline: DPDK telemetry on %s (dpdk-telemetry.py -f %s, then /stateline/stats)\n",
                         sock.c_str(), fs::path(runtime_dir).filename().c_str());
    }
    TelemetryRegistration telemetry_registration;  // detaches the board before it is destroyed
    // ---- end of DPDK telemetry ----
    // ---- Prometheus /metrics (src/metrics.hpp): served from the board on MHD's own thread ----
    std::unique_ptr<MetricsServer> metrics;
    {
        // A replay lasts seconds: no endpoint unless asked for, so two replays never collide.
        const std::string where = !opt.metrics_listen.empty() ? opt.metrics_listen
                                  : capture_mode              ? std::string("off")
                                                              : std::string(kDefaultMetricsListen);
        MetricsListen ml;
        std::string merr;
        if (!parse_metrics_listen(where, ml, merr)) die("--metrics-listen " + merr);
        if (!ml.off) {
            metrics = std::make_unique<MetricsServer>(
                board, ml, MetricsInfo{tcfg.capacity, STATELINE_VERSION, capture_mode ? "capture" : "live"});
            if (metrics->start(merr)) {
                std::fprintf(stderr, "stateline: metrics on %s\n", metrics->url().c_str());
            } else {
                warn("metrics: " + merr + "; running without /metrics");
                metrics.reset();
            }
        }
    }
    // ---- end of Prometheus ----
    std::vector<std::function<void(const Snapshot&)>> on_snapshot;  // --stats, ...
    bool stats_write_failed = false;
    if (stats_out.is_open())
        on_snapshot.push_back([&](const Snapshot& s) {
            if (stats_write_failed) return;
            stats_out << s.to_json(false).dump() << '\n';
            stats_out.flush();
            if (!stats_out) stats_write_failed = true;
        });
    std::vector<bool> link_polled(ports.size(), false);
    std::vector<PortSnapshot> port_hi(ports.size());  // per field, the highest seen (memif zeroes
                                                      // its counters when the peer leaves)

    // Stage 6: launch, then the control loop.
    auto t0 = std::chrono::steady_clock::now();
    for (auto& w : ws) rte_eal_remote_launch(worker_main, w.get(), w->lcore);
    if (capture_mode) rte_eal_remote_launch(dispatcher_main, &disp, dispatcher_lcore);

    const bool tty = opt.progress && isatty(STDERR_FILENO);
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    double last_print = 0;
    if (!capture_mode)
        std::fprintf(stderr, "stateline: tracking on %zu port(s) with %u worker(s); Ctrl-C to stop\n", ports.size(), workers);
    auto wall_now = [] {
        return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
    auto update_ports = [&] {
        for (size_t i = 0; i < ports.size(); ++i) {
            rte_eth_stats st{};
            rte_eth_stats_get(ports[i].port_id, &st);
            PortSnapshot& h = port_hi[i];
            h.name = ports[i].name;
            h.ipackets = std::max<uint64_t>(h.ipackets, st.ipackets);
            h.opackets = std::max<uint64_t>(h.opackets, st.opackets);
            h.oerrors = std::max<uint64_t>(h.oerrors, st.oerrors);
            h.ibytes = std::max<uint64_t>(h.ibytes, st.ibytes);
            h.imissed = std::max<uint64_t>(h.imissed, st.imissed);
            h.ierrors = std::max<uint64_t>(h.ierrors, st.ierrors);
            h.rx_nombuf = std::max<uint64_t>(h.rx_nombuf, st.rx_nombuf);
            // The link, without waiting (a PMD that cannot tell keeps the state it set at start).
            rte_eth_link link{};
            if (rte_eth_link_get_nowait(ports[i].port_id, &link) == 0) {
                const bool up = link.link_status == RTE_ETH_LINK_UP;
                if (link_polled[i] && up != h.link_up) {
                    ++h.link_changes;
                    std::fprintf(stderr, "stateline: port %s link %s (was %s)%s\n", h.name.c_str(), up ? "up" : "down",
                                 up ? "down" : "up", up ? "" : "; still polling");
                }
                h.link_up = up;
                link_polled[i] = true;
            }
        }
    };
    auto publish_snapshot = [&](std::shared_ptr<Snapshot> s, bool running) {
        s->running = running;
        s->ports = port_hi;
        if (aggregator) s->detection = aggregator->status();
        s->mitigation_mode = cfg.inline_mode ? "inline" : "monitor";
        s->rules = mitigation.stats();
        s->rules_generation = mitigation.generation();
        board.put(s);
        for (auto& f : on_snapshot) f(*s);
    };
    auto take_snapshot = [&](bool running) {
        update_ports();
        publish_snapshot(collector.take(wall_now(), elapsed()), running);
    };
    const double stats_interval = cfg.stats_interval_ms / 1000.0;
    double next_stats = stats_interval;
    // A replay's aggregates follow capture time, one per detection interval (a 10 s capture
    // replayed in 0.1 s still gives 10 of them); live, and without detection, the wall clock.
    const bool capture_intervals = capture_mode && aggregator;
    uint64_t last_interval_end = 0;
    if (capture_intervals) {
        aggregator->on_interval([&](uint64_t end_ns, double span_s, const std::vector<const std::vector<uint64_t>*>& c) {
            last_interval_end = end_ns;
            update_ports();
            publish_snapshot(collector.take_interval(c, end_ns, span_s, wall_now(), elapsed()), true);
        });
    }
    // The control core's duties while workers run: connection records, detection intervals,
    // aggregates. Each is bounded work; nothing here waits on a worker or a client.
    auto serve = [&] {
        for (auto& w : ws) sink.drain(*w);
        if (aggregator) aggregator->poll();
        mitigation.poll(aggregator.get());  // victim sets after each judged interval, swaps
        ctl_server.poll();  // stateline-ctl: connection lookups, reloads (bounded, never waits)
        if (!capture_intervals && elapsed() >= next_stats) {
            take_snapshot(true);
            next_stats += stats_interval;
            if (next_stats < elapsed()) next_stats = elapsed() + stats_interval;  // fell behind
        }
    };
    for (;;) {
        if (g_run.stop.load(std::memory_order_relaxed)) break;
        if (capture_mode && g_run.input_done.load(std::memory_order_acquire)) break;
        // Often enough that a flood's worth of connection records (a 65536-record ring fills in
        // ~15 ms at 4 M evictions/s) is taken before the ring overflows.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        serve();
        if (tty && capture_mode && elapsed() - last_print >= 0.5) {
            last_print = elapsed();
            print_progress(disp, total_frames, last_print, false);
        }
    }
    // Keep serving the workers until they stop: in a replay they still have frames in their
    // rings, and wait at each interval boundary for the aggregator to take the last one.
    auto lcores_running = [] {
        unsigned lc;
        RTE_LCORE_FOREACH_WORKER(lc)
        if (rte_eal_get_lcore_state(lc) == RUNNING) return true;
        return false;
    };
    while (lcores_running()) {
        serve();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    rte_eal_mp_wait_lcore();
    mitigation.poll(nullptr);  // a swap that reached the workers before they stopped
    const double secs = elapsed();
    if (aggregator) aggregator->finish(capture_mode && !g_run.stop.load() ? "end_of_input" : "shutdown");
    if (tty && capture_mode) print_progress(disp, total_frames, secs, true);

    // Stage 7: flush and report. Connections still open are flushed (and, with the connection
    // log, logged) now that the workers have stopped.
    RunReport rep;
    rep.mode = capture_mode ? "capture" : "live";
    rep.captures = caps;
    rep.undelivered = disp.undelivered;
    rep.interrupted = capture_mode && g_run.stop.load();  // live mode always ends by a signal
    rep.elapsed_s = secs;
    rep.capacity_per_worker = tcfg.capacity;
    rep.table_bytes_per_worker = table_bytes;
    update_ports();  // the ports' final counters, kept at their highest
    for (const auto& h : port_hi)
        rep.ports.push_back({h.name, h.ipackets, h.ibytes, h.imissed, h.ierrors, h.rx_nombuf, h.opackets, h.oerrors,
                             h.link_up, h.link_changes});
    // The current TCP state of every endpoint still tracked, before the flush ends them.
    for (auto& w : ws)
        w->table->for_each([&](uint32_t, const flow::FlowEntry& e) {
            bool orig_hi = e.flags & flow::flow_flag::orig_is_hi;
            ++rep.orig_states[static_cast<unsigned>(tcp::Tracker::state_of(e, orig_hi ? flow::Side::hi : flow::Side::lo))];
            ++rep.resp_states[static_cast<unsigned>(tcp::Tracker::state_of(e, orig_hi ? flow::Side::lo : flow::Side::hi))];
        });
    // The stop takes everything still buffered, waiting for the log if it must.
    sink.never_wait = false;
    set_flush_sink(&sink);
    for (auto& w : ws) {
        sink.drain(*w);
        w->drain_when_full = drain_into_flush_sink;
        w->table->flush();
        sink.drain(*w);
        rep.workers.push_back({w->id, w->lcore, counters::collect(w->counters, w->table->stats())});
    }
    set_flush_sink(nullptr);
    // The last aggregates, exact: the workers have stopped, so publish their final figures here.
    // A replay's last line keeps capture time and has no rate (no capture time passed).
    for (auto& w : ws) w->published->publish(w->counters, w->table->stats(), w->now_ns);
    if (capture_intervals) {
        std::vector<std::vector<uint64_t>> fin;
        std::vector<const std::vector<uint64_t>*> ptrs;
        for (auto& w : ws) fin.push_back(counters::collect(w->counters, w->table->stats()));
        for (auto& v : fin) ptrs.push_back(&v);
        publish_snapshot(collector.take_interval(ptrs, last_interval_end, 0.0, wall_now(), elapsed()), false);
    } else {
        take_snapshot(false);
    }
    rep.conn_states = sink.by_conn_state;
    for (unsigned k = 0; k < connlog::kCloseKindCount; ++k) rep.closes[k] = sink.by_close[k];
    rep.conn_records = sink.records;
    rep.mitigation_mode = cfg.inline_mode ? "inline" : "monitor";
    rep.rules = mitigation.stats();  // the workers have stopped: final, every swap folded in
    if (aggregator) {
        const auto& c = aggregator->counts();
        nlohmann::ordered_json a;
        uint64_t started = 0;
        a["by_type"] = nlohmann::ordered_json::object();
        for (unsigned t = 0; t < detect::kAlertTypeCount; ++t) {
            a["by_type"][detect::alert_type_name(static_cast<detect::AlertType>(t))] = c.started[t];
            started += c.started[t];
        }
        a["started"] = started;
        a["updates"] = c.updates;
        a["active_at_stop"] = c.active_at_stop;
        a["intervals"] = c.intervals;
        a["late_intervals"] = c.late_intervals;
        a["suppressed"] = c.suppressed;
        a["interval_s"] = cfg.detect.interval_ms / 1000.0;
        rep.alerts = std::move(a);
    }
    for (size_t i = 0; i < disp.stalled.size(); ++i)
        if (disp.stalled[i])
            warn("capture '" + caps[i].path + "': the PMD stopped delivering after " +
                 std::to_string(caps[i].frames - disp.undelivered[i]) + " of " + std::to_string(caps[i].frames) + " frames");

    int exit_code = 0;
    if (sink.log.is_open()) {
        bool ok = !sink.write_failed && sink.log.close();
        if (!ok) {
            warn("connection log '" + opt.conn_log_path + "': " + sink.log.error());
            exit_code = 1;
        }
    }
    if (stats_out.is_open()) {
        stats_out.close();
        if (stats_write_failed || stats_out.fail()) {
            warn("aggregates file '" + opt.stats_path + "': write failed (" + std::strerror(errno) + ")");
            exit_code = 1;
        }
    }
    if (alerts_out.is_open()) {
        alerts_out.flush();
        if (alerts_write_failed || !alerts_out) {
            warn("alerts file '" + opt.alerts_path + "': write failed (" + std::strerror(errno) + ")");
            exit_code = 1;
        }
        alerts_out.close();
    }
    if (!opt.summary_path.empty()) {
        std::ofstream out(opt.summary_path);
        if (out) out << summary_json(rep).dump(2) << "\n";
        if (!out) {
            warn("cannot write the summary to '" + opt.summary_path + "': " + std::strerror(errno));
            exit_code = 1;
        }
    }
    if (!opt.quiet) std::fputs(summary_text(rep).c_str(), stdout);

    for (const auto& p : ports) {
        rte_eth_dev_stop(p.port_id);
        rte_eth_dev_close(p.port_id);
    }
    for (auto& w : ws) {
        rte_ring_free(w->ring);
        rte_ring_free(w->conn_ring);
    }
    tables.clear();
    for (void* m : table_mem) rte_free(m);
    rte_mempool_free(pool);
    return cleanup(exit_code);
}
