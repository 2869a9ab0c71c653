// SPDX-License-Identifier: BSD-3-Clause
// Configuration as validated data. Each parameter is declared once (path, type, range, default,
// help) in config.cpp; the loader checks a YAML file against that table and reports every error
// at once, each with file:line:column, instead of stopping at the first. conf/stateline.yaml is
// the annotated canonical default, and a unit test keeps it equal to the table.
//
// Thread safety: a Config is an immutable value once loaded; load on the control core.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "detect_settings.hpp"
#include "flow_table.hpp"

namespace stateline::rules {
class RuleSet;  // rules.hpp
}

namespace stateline::config {

struct Config {
    // Data path.
    uint32_t workers = 1;            // worker lcores (capture mode; live mode takes EAL's lcores)
    uint32_t burst = 32;             // frames per rx_burst
    uint32_t rx_descriptors = 1024;  // per RX queue (live mode)
    uint32_t mbufs = 16383;          // mbuf pool size (per socket)
    uint32_t worker_ring = 4096;     // dispatcher -> worker ring, capture mode

    // Connection records, worker -> control core, per worker (power of two).
    uint32_t conn_ring = 65536;

    // Flow table, per worker.
    uint32_t flow_capacity = 1u << 20;
    uint32_t expiry_batch = 64;
    uint32_t evict_search = 64;

    // Timeouts, seconds.
    uint32_t timeout_half_open = 30;
    uint32_t timeout_established = 7200;
    uint32_t timeout_closing = 120;
    uint32_t msl = 30;               // TIME-WAIT lasts 2 * msl
    uint32_t timeout_closed = 10;

    // Control core: aggregates of every worker for the exporters, every this many ms.
    uint32_t stats_interval_ms = 1000;

    // Detection: sections detect: and thresholds:, and the groups: list.
    detect::Settings detect;

    // Mitigation rules: the rules: list, validated and compiled (Hyperscan database included)
    // by the loader on the control core. The compiled set is immutable, so every copy of this
    // Config and every worker may share it; a reload loads a new Config, hence a new set.
    // Null (a default Config, or a load with errors) or empty: no rules.
    std::shared_ptr<const rules::RuleSet> rules;

    // Mitigation: section mitigation:. The rules above are compiled with payload_bytes and
    // source_buckets (rules::Options::scan_limit and ::source_buckets; the defaults are theirs).
    bool inline_mode = false;        // mitigation.mode: false = monitor (alert only), true = inline
    uint32_t payload_bytes = 256;    // payload bytes of each direction scanned by payload rules
    uint32_t source_buckets = 4096;  // token buckets per `per: source` rule (power of two)

    // Live mode's EAL arguments (dpdk.eal_args): lcores, ports, memory, as on the command line
    // before '--'; used when the command line gives none.
    std::string eal_args;

    // Exports: section exports:. Empty means the default (the command line's options override).
    std::string metrics_listen;  // ADDR:PORT, [IPv6]:PORT or "off"; "": 127.0.0.1:9750 live, off in a replay
    std::string ctl_socket;      // absolute path or "off"; "": the default path (src/ctl_path.hpp)
    std::string ctl_group;       // group that may use the control socket (0660); "": owner only (0600)
    std::string alerts_path;     // alert JSON lines (--alerts); "": none
    std::string stats_path;      // aggregates, one JSON line per interval (--stats); "": none
};

struct Error {
    std::string where;  // "file:line:col" (or "file" when the file itself is at fault)
    std::string what;
};

struct LoadResult {
    Config config;
    std::vector<Error> errors;  // empty on success
    bool ok() const { return errors.empty(); }
};

// The largest config file read: far above any real one (256 rules at most), small enough that
// a wrong path (a log, an image) is refused before it is parsed.
inline constexpr uint64_t kMaxFileBytes = uint64_t{1} << 20;

// Loads and validates a YAML file. Missing keys take their defaults. Only a regular file of at
// most kMaxFileBytes is read; a FIFO or a device is refused at once, never waited on. The rules:
// list is checked with the rest (lib/rules/rules_yaml.hpp), its errors merged into `errors` with
// their places.
LoadResult load_file(const std::string& path);
// Same, from text (tests); `name` stands for the file in error locations.
LoadResult load_string(const std::string& text, const std::string& name = "<string>");

// One declared parameter, for --help, docs and tests. Groups are a list, not parameters: their
// thresholds are the thresholds.* entries.
struct ParamInfo {
    std::string path;      // e.g. "flow_table.capacity"
    std::string type;      // "uint", "bool" (min 0, max 1) or "string" (min = max = 0)
    uint64_t min, max;
    uint64_t default_value;  // 0 for a string
    std::string help;
    std::function<uint64_t(const Config&)> value;  // reads it from a Config (bool: 0 or 1; string: 0)
    // Every parameter as text: uint in decimal, bool true/false, a string as it is.
    std::string default_text;
    std::function<std::string(const Config&)> text;
    // A string: the values it may take (empty: any the validator accepts) ...
    std::vector<std::string> allowed;
    // ... or what the validator accepts, in words ("ADDR:PORT, [IPv6]:PORT or off").
    std::string expected;
};
const std::vector<ParamInfo>& parameters();

// The Markdown reference of the configuration (docs/config.md), rendered from the schema: every
// parameter by section, then the groups: and rules: lists. A unit test keeps docs/config.md equal.
std::string reference_markdown();

// The flow table a worker gets from this config (capacity, expiry, timeouts in ms by class;
// TIME-WAIT lasts 2 * msl). The appliance and stateline-rules test build their tables from it.
flow::FlowTableConfig flow_table_config(const Config& c);

// Renders errors one per line: "file:line:col: what".
std::string format_errors(const std::vector<Error>& errors);

}  // namespace stateline::config
