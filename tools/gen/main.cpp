// SPDX-License-Identifier: BSD-3-Clause
// stateline-gen: writes a pcap of realistic TCP traffic with attacks, and the labels (ground
// truth) of what it wrote. See tools/gen/README.md.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "labels.hpp"
#include "pcap_out.hpp"
#include "scenario.hpp"
#include "traffic.hpp"

using namespace stateline::gen;

namespace {

constexpr const char* kExamples = R"(
Examples:
  # A scenario of the suite, with its labels:
  stateline-gen --scenario tools/scenarios/syn_flood.yaml --out syn_flood.pcap \
                --labels syn_flood.labels.json

  # The same with another seed, twice the rates, 5 s of capture:
  stateline-gen --scenario tools/scenarios/syn_flood.yaml --out x.pcap --seed 7 --scale 2 --duration 5

  # One-liners on the default servers (web 192.0.2.10 / 2001:db8::10 ports 80, 443;
  # mail 198.51.100.25 port 25): 200 client connections/s and a SYN flood from second 2 to 7:
  stateline-gen --clients 200 --duration 10 --out x.pcap \
                --attack syn_flood:target=192.0.2.10:80,rate=50000,start=2,duration=5

  # Several attacks; scans take a source and ports, stealth scans a variant:
  stateline-gen --clients 100 --out x.pcap \
                --attack stealth_scan:target=192.0.2.0/28,ports=1-1024,rate=2000,variant=xmas \
                --attack rst_injection:target=web:443,rate=20,start=3

  # Speed check without a file:
  stateline-gen --clients 0 --attack syn_flood:target=web:80,rate=5M --duration 2 --out /dev/null

Attack types: syn_flood, half_open_exhaustion, synack_reflection, ack_flood, rst_flood, fin_flood,
syn_scan, stealth_scan (variant=fin|null|xmas), connect_scan, rst_injection, flash_crowd (a control).
--attack keys: target, rate, start, duration, sources (prefix), sources.count, source (scanner),
ports, variant, responses, ramp. Rates take k/M suffixes. --list-attacks describes each type.

Exit status: 0 done, 1 output error, 2 bad command line or scenario.
)";

// X.pcap -> X.labels.json; no default for other names (/dev/null, "-", a fifo...).
std::string default_labels_path(const std::string& out) {
    if (out.size() <= 5 || out.compare(out.size() - 5, 5, ".pcap") != 0) return "";
    return out.substr(0, out.size() - 5) + ".labels.json";
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"stateline-gen: realistic TCP traffic with labelled attacks, as a pcap and a labels file"};
    app.footer(kExamples);
    std::string scenario_path, out_path, labels_path, packet_labels_path, timestamps;
    uint64_t seed_arg = 0;
    double duration = -1, scale = -1, clients = -1;
    int64_t snaplen = -1;
    std::vector<std::string> attacks;
    bool list = false, check = false, quiet = false;
    app.add_option("--scenario,-s", scenario_path, "Scenario file (YAML; see tools/scenarios/README.md)");
    app.add_option("--out,-o", out_path, "Output pcap ('-' for standard output)");
    app.add_option("--labels,-l", labels_path, "Labels file (JSON); default: X.labels.json for --out X.pcap");
    app.add_option("--packet-labels", packet_labels_path,
                   "Also write 2 bytes per packet: {label id, class id} (ids as in the labels file)");
    CLI::Option* seed_opt = app.add_option("--seed", seed_arg, "Random seed (default: the scenario's, else 1)")
                                ->check(CLI::Validator(
                                    [](std::string& v) {
                                        return v.find('-') == std::string::npos ? std::string()
                                                                                : "the seed is a non-negative integer";
                                    },
                                    "", "non-negative"));
    app.add_option("--duration", duration, "Seconds of capture (overrides the scenario)")->check(CLI::PositiveNumber);
    app.add_option("--scale", scale, "Multiply every rate (clients and attacks) by this")->check(CLI::PositiveNumber);
    app.add_option("--clients", clients, "One-liner mode: new legitimate connections per second")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--attack,-a", attacks, "One-liner mode: TYPE:key=value,... (repeatable)");
    app.add_option("--timestamps", timestamps, "us or ns (overrides the scenario)")->check(CLI::IsMember({"us", "ns"}));
    app.add_option("--snaplen", snaplen, "Bytes kept per frame (overrides the scenario; >= 128)")
        ->check(CLI::Range(int64_t{128}, int64_t{262144}));
    app.add_flag("--list-attacks", list, "Describe the attack types and exit");
    app.add_flag("--check", check, "Validate the scenario and exit");
    app.add_flag("--quiet,-q", quiet, "No progress and no summary");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help exits 0; every command-line error exits 2, as documented.
        return app.exit(e) == 0 ? 0 : 2;
    }

    if (list) {
        for (unsigned t = 0; t < kAttackTypeCount; ++t)
            std::printf("  %-22s %s\n", attack_type_name(static_cast<AttackType>(t)),
                        attack_type_help(static_cast<AttackType>(t)));
        return 0;
    }
    const bool one_liner = clients >= 0 || !attacks.empty();
    if (scenario_path.empty() == !one_liner) {
        std::fprintf(stderr, "stateline-gen: give either --scenario FILE or --clients/--attack (see --help)\n");
        return 2;
    }
    if (out_path.empty() && !check) {
        std::fprintf(stderr, "stateline-gen: --out FILE is required (see --help)\n");
        return 2;
    }

    LoadResult lr = one_liner ? scenario_from_cli(clients < 0 ? 0 : clients, attacks, duration)
                              : load_scenario_file(scenario_path);
    if (!lr.ok()) {
        std::fputs(format_errors(lr.errors).c_str(), stderr);
        std::fprintf(stderr, "stateline-gen: %zu error%s in the scenario\n", lr.errors.size(),
                     lr.errors.size() == 1 ? "" : "s");
        return 2;
    }
    Scenario& sc = lr.scenario;
    std::vector<std::string> notes;
    apply_overrides(sc, duration, scale, notes);
    for (const auto& n : notes) std::fprintf(stderr, "stateline-gen: note: %s\n", n.c_str());
    if (timestamps == "us") sc.resolution = TsResolution::micro;
    if (timestamps == "ns") sc.resolution = TsResolution::nano;
    if (snaplen > 0) sc.snaplen = static_cast<uint32_t>(snaplen);
    const uint64_t seed = seed_opt->count() ? seed_arg : sc.seed;
    if (check) {
        std::printf("%s: ok (%zu servers, %zu services, %.0f connections/s, %zu attacks, %.3f s)\n",
                    sc.file.c_str(), sc.servers.size(), sc.services.size(), sc.clients.rate, sc.attacks.size(),
                    sc.duration);
        return 0;
    }
    if (labels_path.empty()) labels_path = default_labels_path(out_path);

    PcapWriter out;
    std::string err;
    if (!out.open(out_path, sc.resolution, sc.snaplen, err)) {
        std::fprintf(stderr, "stateline-gen: %s\n", err.c_str());
        return 1;
    }
    std::FILE* pl = nullptr;
    if (!packet_labels_path.empty()) {
        pl = std::fopen(packet_labels_path.c_str(), "wb");
        if (!pl) {
            std::fprintf(stderr, "stateline-gen: %s: cannot write\n", packet_labels_path.c_str());
            return 1;
        }
    }

    const auto t0 = std::chrono::steady_clock::now();
    GenerateOptions opt;
    opt.seed = seed;
    opt.packet_labels = pl;
    const bool tty = !quiet && isatty(STDERR_FILENO);
    auto last = t0;
    if (tty) {
        opt.progress = [&](const Progress& p) {
            const auto now = std::chrono::steady_clock::now();
            if (now - last < std::chrono::milliseconds(250)) return;
            last = now;
            const double wall = std::chrono::duration<double>(now - t0).count();
            std::fprintf(stderr, "\r  %llu packets  %.2f Mpps  %.0f%% of %.1f s capture   ",
                         static_cast<unsigned long long>(p.packets), wall > 0 ? p.packets / wall / 1e6 : 0.0,
                         100.0 * p.capture_seconds / p.capture_total, p.capture_total);
        };
    }
    const RunStats st = generate(sc, out, opt);
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (tty) std::fprintf(stderr, "\r%70s\r", "");

    int rc = 0;
    if (!out.close(err)) {
        std::fprintf(stderr, "stateline-gen: %s\n", err.c_str());
        rc = 1;
    }
    if (pl && std::fclose(pl) != 0) {
        std::fprintf(stderr, "stateline-gen: %s: write error\n", packet_labels_path.c_str());
        rc = 1;
    }
    if (!labels_path.empty()) {
        std::ofstream lf(labels_path);
        lf << make_labels(sc, st, seed).dump(2) << "\n";
        if (!lf) {
            std::fprintf(stderr, "stateline-gen: %s: cannot write the labels\n", labels_path.c_str());
            rc = 1;
        }
    }
    if (!quiet) {
        unsigned n_attacks = 0, n_controls = 0;
        for (const auto& a : sc.attacks) a.type == AttackType::flash_crowd ? ++n_controls : ++n_attacks;
        std::FILE* to = out_path == "-" ? stderr : stdout;
        std::fprintf(to,
                     "stateline-gen: %llu packets, %llu bytes, %llu connections, %u attacks, %u controls, "
                     "%.3f s of capture; generated in %.3f s (%.2f Mpps)\n",
                     static_cast<unsigned long long>(st.packets), static_cast<unsigned long long>(st.wire_bytes),
                     static_cast<unsigned long long>(st.legit_connections), n_attacks, n_controls, sc.duration, wall,
                     wall > 0 ? static_cast<double>(st.packets) / wall / 1e6 : 0.0);
    }
    return rc;
}
