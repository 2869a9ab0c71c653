// SPDX-License-Identifier: BSD-3-Clause
// The conn.log writer: Zeek's TSV header and line format field by field (IPv4, IPv6, VLAN, QinQ,
// anomalies, every close kind, unset values), the JSON lines variant parsed back, the uid scheme,
// buffering and the error for a path that cannot be opened.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "conn_log.hpp"
#include "flow_key.hpp"
#include "tcp_tracker.hpp"

namespace stateline::connlog {
namespace {

using nlohmann::json;

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        const size_t p = s.find(sep, start);
        if (p == std::string::npos) {
            out.push_back(s.substr(start));
            return out;
        }
        out.push_back(s.substr(start, p - start));
        start = p + 1;
    }
}

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> v = split(s, '\n');
    if (!v.empty() && v.back().empty()) v.pop_back();
    return v;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void addr_of(const char* text, uint8_t out[16]) {
    uint8_t v4[4];
    if (inet_pton(AF_INET, text, v4) == 1) {
        flow::map_ipv4(out, v4);
        return;
    }
    ASSERT_EQ(inet_pton(AF_INET6, text, out), 1) << text;
}

// A record for the connection orig -> resp; the key is built canonically and orig_is_hi set to
// match, as the tracker does.
ConnRecord make_record(const char* orig, uint16_t oport, const char* resp, uint16_t rport,
                       uint16_t vlan_outer = 0, uint16_t vlan_inner = 0) {
    ConnRecord r;
    std::memset(&r, 0, sizeof(r));
    uint8_t o[16], d[16];
    addr_of(orig, o);
    addr_of(resp, d);
    const flow::Side s = flow::make_key(r.key, o, oport, d, rport, vlan_outer, vlan_inner);
    r.orig_is_hi = s == flow::Side::hi;
    r.first_ts_ns = 1300475167096535000ULL;  // 2011-03-18 ..., a Zeek test-trace time
    r.last_ts_ns = 1300475168853899000ULL;   // + 1.757364 s
    r.orig_bytes = 136;
    r.resp_bytes = 5007;
    r.missed_bytes = 0;
    r.orig_pkts = 7;
    r.orig_ip_bytes = 512;
    r.resp_pkts = 7;
    r.resp_ip_bytes = 5379;
    r.anomalies = 0;
    r.uid_seq = 42;
    r.worker = 1;
    r.close = CloseKind::fin;
    r.orig_state = static_cast<uint8_t>(tcp::State::time_wait);
    r.resp_state = static_cast<uint8_t>(tcp::State::closed);
    std::strcpy(r.conn_state, "SF");
    std::strcpy(r.history, "ShADadFf");
    return r;
}

std::vector<std::string> tsv_fields(const ConnRecord& r) {
    std::string out;
    append_tsv_record(out, r);
    EXPECT_FALSE(out.empty());
    EXPECT_EQ(out.back(), '\n');
    EXPECT_EQ(out.find('\n'), out.size() - 1) << "one line per record";
    out.pop_back();
    return split(out, '\t');
}

json json_of(const ConnRecord& r) {
    std::string out;
    append_json_record(out, r);
    EXPECT_EQ(out.find('\n'), out.size() - 1) << "one line per record";
    return json::parse(out);  // throws (failing the test) when not valid JSON
}

// Field index by name.
size_t col(const char* name) {
    for (size_t i = 0; i < kFieldCount; ++i)
        if (std::strcmp(kFieldNames[i], name) == 0) return i;
    ADD_FAILURE() << "no field " << name;
    return 0;
}

std::string state(tcp::State s) { return tcp::state_name(s); }

// "YYYY-MM-DD-HH-MM-SS", Zeek's #open/#close time (std::regex is avoided: GCC 12 warns inside it).
bool is_zeek_time(const std::string& s) {
    if (s.size() != 19) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        const bool dash = i == 4 || i == 7 || i == 10 || i == 13 || i == 16;
        if (dash ? s[i] != '-' : !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

// "C" then 2 to 17 base62 digits.
bool is_uid(const std::string& s) {
    if (s.size() < 3 || s.size() > 18 || s[0] != 'C') return false;
    for (size_t i = 1; i < s.size(); ++i)
        if (!std::isalnum(static_cast<unsigned char>(s[i]))) return false;
    return true;
}

// ---- header -----------------------------------------------------------------------------------

TEST(ConnLogTsv, HeaderIsZeeksConnLogHeader) {
    std::string h;
    append_tsv_header(h, 1300475167);
    const auto l = lines_of(h);
    ASSERT_EQ(l.size(), 8u);
    EXPECT_EQ(l[0], "#separator \\x09");
    EXPECT_EQ(l[1], "#set_separator\t,");
    EXPECT_EQ(l[2], "#empty_field\t(empty)");
    EXPECT_EQ(l[3], "#unset_field\t-");
    EXPECT_EQ(l[4], "#path\tconn");
    EXPECT_EQ(l[5].rfind("#open\t", 0), 0u) << l[5];
    EXPECT_TRUE(is_zeek_time(l[5].substr(6))) << l[5];
    EXPECT_EQ(l[6],
              "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\t"
              "duration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\t"
              "history\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents\tvlan\t"
              "inner_vlan\tsl_orig_tcp_state\tsl_resp_tcp_state\tsl_close\tsl_anomalies");
    EXPECT_EQ(l[7],
              "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\t"
              "string\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]\tint\tint\t"
              "string\tstring\tstring\tset[string]");
}

TEST(ConnLogTsv, OpenAndCloseTimesAreLocalTime) {
    const std::time_t t = 1300475167;
    struct tm tmv;
    ASSERT_NE(localtime_r(&t, &tmv), nullptr);
    char want[64];
    std::strftime(want, sizeof(want), "%Y-%m-%d-%H-%M-%S", &tmv);
    std::string h;
    append_tsv_header(h, t);
    EXPECT_EQ(lines_of(h)[5], std::string("#open\t") + want);
    std::string c;
    append_tsv_close(c, t);
    EXPECT_EQ(c, std::string("#close\t") + want + "\n");
}

// ---- lines ------------------------------------------------------------------------------------

TEST(ConnLogTsv, Ipv4LineFieldByField) {
    const ConnRecord r = make_record("141.142.220.118", 35642, "208.80.152.2", 80);
    const auto f = tsv_fields(r);
    ASSERT_EQ(f.size(), kFieldCount);
    char uid[kUidMax];
    EXPECT_EQ(f[col("ts")], "1300475167.096535");
    EXPECT_EQ(f[col("uid")], make_uid(r, uid));
    EXPECT_EQ(f[col("id.orig_h")], "141.142.220.118");
    EXPECT_EQ(f[col("id.orig_p")], "35642");
    EXPECT_EQ(f[col("id.resp_h")], "208.80.152.2");
    EXPECT_EQ(f[col("id.resp_p")], "80");
    EXPECT_EQ(f[col("proto")], "tcp");
    EXPECT_EQ(f[col("service")], "-");
    EXPECT_EQ(f[col("duration")], "1.757364");
    EXPECT_EQ(f[col("orig_bytes")], "136");
    EXPECT_EQ(f[col("resp_bytes")], "5007");
    EXPECT_EQ(f[col("conn_state")], "SF");
    EXPECT_EQ(f[col("local_orig")], "-");
    EXPECT_EQ(f[col("local_resp")], "-");
    EXPECT_EQ(f[col("missed_bytes")], "0");
    EXPECT_EQ(f[col("history")], "ShADadFf");
    EXPECT_EQ(f[col("orig_pkts")], "7");
    EXPECT_EQ(f[col("orig_ip_bytes")], "512");
    EXPECT_EQ(f[col("resp_pkts")], "7");
    EXPECT_EQ(f[col("resp_ip_bytes")], "5379");
    EXPECT_EQ(f[col("tunnel_parents")], "-");
    EXPECT_EQ(f[col("vlan")], "-");
    EXPECT_EQ(f[col("inner_vlan")], "-");
    EXPECT_EQ(f[col("sl_orig_tcp_state")], state(tcp::State::time_wait));
    EXPECT_EQ(f[col("sl_resp_tcp_state")], state(tcp::State::closed));
    EXPECT_EQ(f[col("sl_close")], "fin");
    EXPECT_EQ(f[col("sl_anomalies")], "(empty)");
}

TEST(ConnLogTsv, OriginatorIsTheSideTheRecordSays) {
    // 10.0.0.1 sorts lower than 10.0.0.2: as originator it is key side 0, as responder side 0 too.
    ConnRecord lo = make_record("10.0.0.1", 40000, "10.0.0.2", 22);
    ConnRecord hi = make_record("10.0.0.2", 22, "10.0.0.1", 40000);
    EXPECT_FALSE(lo.orig_is_hi);
    EXPECT_TRUE(hi.orig_is_hi);
    EXPECT_EQ(lo.key, hi.key);
    auto a = tsv_fields(lo);
    auto b = tsv_fields(hi);
    EXPECT_EQ(a[col("id.orig_h")], "10.0.0.1");
    EXPECT_EQ(a[col("id.orig_p")], "40000");
    EXPECT_EQ(a[col("id.resp_h")], "10.0.0.2");
    EXPECT_EQ(a[col("id.resp_p")], "22");
    EXPECT_EQ(b[col("id.orig_h")], "10.0.0.2");
    EXPECT_EQ(b[col("id.orig_p")], "22");
    EXPECT_EQ(b[col("id.resp_h")], "10.0.0.1");
    EXPECT_EQ(b[col("id.resp_p")], "40000");
    // Same ports on both sides: the address alone decides.
    ConnRecord same = make_record("192.168.1.9", 5000, "192.168.1.1", 5000);
    auto c = tsv_fields(same);
    EXPECT_EQ(c[col("id.orig_h")], "192.168.1.9");
    EXPECT_EQ(c[col("id.resp_h")], "192.168.1.1");
}

TEST(ConnLogTsv, Ipv6AddressesAsInetNtop) {
    const ConnRecord r = make_record("2001:DB8:0:0:0:0:0:1", 50123, "fe80::20c:29ff:FE12:3456", 443);
    const auto f = tsv_fields(r);
    ASSERT_EQ(f.size(), kFieldCount);
    EXPECT_EQ(f[col("id.orig_h")], "2001:db8::1");
    EXPECT_EQ(f[col("id.orig_p")], "50123");
    EXPECT_EQ(f[col("id.resp_h")], "fe80::20c:29ff:fe12:3456");
    EXPECT_EQ(f[col("id.resp_p")], "443");
    const ConnRecord z = make_record("::", 1, "2001:db8:0:1:1:1:1:1", 2);
    const auto g = tsv_fields(z);
    EXPECT_EQ(g[col("id.orig_h")], "::");
    EXPECT_EQ(g[col("id.resp_h")], "2001:db8:0:1:1:1:1:1");
}

TEST(ConnLogTsv, VlanColumns) {
    using flow::kVlanPresent;
    // Single tag, VID 100.
    auto a = tsv_fields(make_record("10.1.1.1", 1025, "10.1.1.2", 80, 100 | kVlanPresent, 0));
    EXPECT_EQ(a[col("vlan")], "100");
    EXPECT_EQ(a[col("inner_vlan")], "-");
    // A priority tag (VID 0) is a VLAN: Zeek's vlan-0 baseline logs "0 -".
    auto b = tsv_fields(make_record("10.1.1.1", 1025, "10.1.1.2", 80, 0 | kVlanPresent, 0));
    EXPECT_EQ(b[col("vlan")], "0");
    EXPECT_EQ(b[col("inner_vlan")], "-");
    // QinQ with both VIDs 0: "0 0" as in the vlan-0-qinq baseline.
    auto c = tsv_fields(
        make_record("10.1.1.1", 1025, "10.1.1.2", 80, 0 | kVlanPresent, 0 | kVlanPresent));
    EXPECT_EQ(c[col("vlan")], "0");
    EXPECT_EQ(c[col("inner_vlan")], "0");
    // QinQ 4094 / 1.
    auto d = tsv_fields(
        make_record("10.1.1.1", 1025, "10.1.1.2", 80, 4094 | kVlanPresent, 1 | kVlanPresent));
    EXPECT_EQ(d[col("vlan")], "4094");
    EXPECT_EQ(d[col("inner_vlan")], "1");
}

TEST(ConnLogTsv, AnomaliesAreACommaSeparatedSet) {
    ConnRecord r = make_record("10.0.0.1", 1, "10.0.0.2", 2);
    r.anomalies = tcp::anomaly::rst_out_of_window | tcp::anomaly::data_after_fin |
                  tcp::anomaly::bad_synack_ack;
    auto f = tsv_fields(r);
    EXPECT_EQ(f[col("sl_anomalies")], std::string(tcp::anomaly_name(0)) + "," +
                                          tcp::anomaly_name(3) + "," + tcp::anomaly_name(7));
    // Every bit, each name once, in bit order.
    r.anomalies = (1u << tcp::kAnomalyCount) - 1;
    f = tsv_fields(r);
    auto names = split(f[col("sl_anomalies")], ',');
    ASSERT_EQ(names.size(), tcp::kAnomalyCount);
    for (unsigned b = 0; b < tcp::kAnomalyCount; ++b) EXPECT_EQ(names[b], tcp::anomaly_name(b));
    // A bit this build has no name for is still shown, not dropped.
    r.anomalies = 1u << 31;
    f = tsv_fields(r);
    EXPECT_EQ(f[col("sl_anomalies")], "anomaly_bit_31");
}

TEST(ConnLogTsv, EveryCloseKindHasItsName) {
    const char* want[] = {"fin",     "simultaneous_close", "rst_orig",    "rst_resp",
                          "timeout", "evicted",            "open_at_exit"};
    static_assert(sizeof(want) / sizeof(want[0]) == kCloseKindCount);
    std::set<std::string> seen;
    for (unsigned k = 0; k < kCloseKindCount; ++k) {
        ConnRecord r = make_record("10.0.0.1", 1, "10.0.0.2", 2);
        r.close = static_cast<CloseKind>(k);
        EXPECT_STREQ(close_kind_name(r.close), want[k]);
        auto f = tsv_fields(r);
        EXPECT_EQ(f[col("sl_close")], want[k]);
        EXPECT_EQ(json_of(r)["sl_close"], want[k]);
        seen.insert(f[col("sl_close")]);
    }
    EXPECT_EQ(seen.size(), kCloseKindCount);
}

TEST(ConnLogTsv, EveryTcpStateHasItsName) {
    for (unsigned s = 0; s < tcp::kStateCount; ++s) {
        ConnRecord r = make_record("10.0.0.1", 1, "10.0.0.2", 2);
        r.orig_state = static_cast<uint8_t>(s);
        r.resp_state = static_cast<uint8_t>(tcp::kStateCount - 1 - s);
        auto f = tsv_fields(r);
        EXPECT_EQ(f[col("sl_orig_tcp_state")], state(static_cast<tcp::State>(s)));
        EXPECT_EQ(f[col("sl_resp_tcp_state")],
                  state(static_cast<tcp::State>(tcp::kStateCount - 1 - s)));
    }
    // An out-of-range state is unset, not garbage.
    ConnRecord r = make_record("10.0.0.1", 1, "10.0.0.2", 2);
    r.orig_state = 200;
    auto f = tsv_fields(r);
    EXPECT_EQ(f[col("sl_orig_tcp_state")], "-");
    EXPECT_EQ(json_of(r).count("sl_orig_tcp_state"), 0u);
}

TEST(ConnLogTsv, ZeroDurationLeavesDurationAndBytesUnset) {
    // Zeek sets duration, orig_bytes and resp_bytes only when the duration is > 0: a lone SYN
    // logs "-  -  -  S0".
    ConnRecord r = make_record("10.0.0.1", 1, "10.0.0.2", 2);
    r.last_ts_ns = r.first_ts_ns;
    r.orig_bytes = r.resp_bytes = 0;
    r.orig_pkts = 1;
    r.orig_ip_bytes = 44;
    r.resp_pkts = r.resp_ip_bytes = 0;
    std::strcpy(r.conn_state, "S0");
    std::strcpy(r.history, "S");
    auto f = tsv_fields(r);
    EXPECT_EQ(f[col("duration")], "-");
    EXPECT_EQ(f[col("orig_bytes")], "-");
    EXPECT_EQ(f[col("resp_bytes")], "-");
    EXPECT_EQ(f[col("conn_state")], "S0");
    EXPECT_EQ(f[col("history")], "S");
    EXPECT_EQ(f[col("orig_pkts")], "1");
    EXPECT_EQ(f[col("orig_ip_bytes")], "44");
    EXPECT_EQ(f[col("resp_pkts")], "0");
    const json j = json_of(r);
    EXPECT_EQ(j.count("duration"), 0u);
    EXPECT_EQ(j.count("orig_bytes"), 0u);
    EXPECT_EQ(j.count("resp_bytes"), 0u);
}

TEST(ConnLogTsv, TimesAreMicrosecondsTruncated) {
    ConnRecord r = make_record("10.0.0.1", 1, "10.0.0.2", 2);
    r.first_ts_ns = 1000000000ULL * 1700000000ULL + 999;  // below a microsecond
    r.last_ts_ns = 1000000000ULL * 1700000000ULL + 2999;  // 2.999 us later in ns
    auto f = tsv_fields(r);
    EXPECT_EQ(f[col("ts")], "1700000000.000000");
    EXPECT_EQ(f[col("duration")], "0.000002");
    r.first_ts_ns = 5ULL * 1000000000ULL + 120000000ULL;  // 5.12
    r.last_ts_ns = r.first_ts_ns + 3000000000ULL;          // + 3 s
    f = tsv_fields(r);
    EXPECT_EQ(f[col("ts")], "5.120000");
    EXPECT_EQ(f[col("duration")], "3.000000");
    const json j = json_of(r);
    EXPECT_DOUBLE_EQ(j["ts"].get<double>(), 5.12);
    EXPECT_DOUBLE_EQ(j["duration"].get<double>(), 3.0);
    std::string line;
    append_json_record(line, r);
    EXPECT_NE(line.find("\"ts\":5.12,"), std::string::npos) << line;
    EXPECT_NE(line.find("\"duration\":3.0,"), std::string::npos) << line;
}

TEST(ConnLogTsv, HistoryAndStateAreBoundedAndEscaped) {
    ConnRecord r = make_record("10.0.0.1", 1, "10.0.0.2", 2);
    std::memset(r.history, 'D', sizeof(r.history));  // no NUL at all: stops at the array end
    auto f = tsv_fields(r);
    EXPECT_EQ(f[col("history")], std::string(sizeof(r.history), 'D'));
    r.history[0] = '\0';  // empty: Zeek leaves history unset
    r.conn_state[0] = '\0';
    f = tsv_fields(r);
    EXPECT_EQ(f[col("history")], "-");
    EXPECT_EQ(f[col("conn_state")], "-");
    const json j = json_of(r);
    EXPECT_EQ(j.count("history"), 0u);
    EXPECT_EQ(j.count("conn_state"), 0u);
    std::strcpy(r.history, "S\tx");  // a tab would split the line: escaped
    f = tsv_fields(r);
    ASSERT_EQ(f.size(), kFieldCount);
    EXPECT_EQ(f[col("history")], "S\\x09x");
    std::strcpy(r.history, "-");  // a value equal to the unset marker
    f = tsv_fields(r);
    EXPECT_EQ(f[col("history")], "\\x2d");
}

TEST(ConnLogTsv, EveryLineHasAllColumns) {
    for (uint16_t v = 0; v < 3; ++v)
        for (unsigned k = 0; k < kCloseKindCount; ++k) {
            ConnRecord r = make_record(v == 1 ? "2001:db8::5" : "10.9.8.7", 65535,
                                       v == 1 ? "2001:db8::6" : "10.9.8.6", 0,
                                       v ? (7 | flow::kVlanPresent) : 0,
                                       v == 2 ? (8 | flow::kVlanPresent) : 0);
            r.close = static_cast<CloseKind>(k);
            r.anomalies = k * 37u;
            EXPECT_EQ(tsv_fields(r).size(), kFieldCount);
        }
}

// ---- JSON -------------------------------------------------------------------------------------

TEST(ConnLogJson, SameRecordAsTsv) {
    ConnRecord r = make_record("2001:db8::1", 50123, "2001:db8::2", 443, 10 | flow::kVlanPresent,
                               20 | flow::kVlanPresent);
    r.anomalies = tcp::anomaly::syn_new_isn | tcp::anomaly::half_close_stuck;
    r.close = CloseKind::rst_resp;
    r.missed_bytes = 1448;
    std::strcpy(r.conn_state, "RSTR");
    std::strcpy(r.history, "ShADdgR");
    const auto f = tsv_fields(r);
    const json j = json_of(r);
    ASSERT_TRUE(j.is_object());
    EXPECT_TRUE(j["ts"].is_number_float());
    EXPECT_EQ(j["ts"].get<double>(), std::stod(f[col("ts")]));
    EXPECT_EQ(j["uid"], f[col("uid")]);
    EXPECT_EQ(j["id.orig_h"], "2001:db8::1");
    EXPECT_TRUE(j["id.orig_p"].is_number_unsigned());
    EXPECT_EQ(j["id.orig_p"], 50123);
    EXPECT_EQ(j["id.resp_h"], "2001:db8::2");
    EXPECT_EQ(j["id.resp_p"], 443);
    EXPECT_EQ(j["proto"], "tcp");
    EXPECT_TRUE(j["duration"].is_number_float());
    EXPECT_DOUBLE_EQ(j["duration"].get<double>(), 1.757364);
    EXPECT_EQ(j["orig_bytes"], 136);
    EXPECT_EQ(j["resp_bytes"], 5007);
    EXPECT_EQ(j["conn_state"], "RSTR");
    EXPECT_EQ(j["missed_bytes"], 1448);
    EXPECT_EQ(j["history"], "ShADdgR");
    EXPECT_EQ(j["orig_pkts"], 7);
    EXPECT_EQ(j["orig_ip_bytes"], 512);
    EXPECT_EQ(j["resp_pkts"], 7);
    EXPECT_EQ(j["resp_ip_bytes"], 5379);
    EXPECT_EQ(j["vlan"], 10);
    EXPECT_EQ(j["inner_vlan"], 20);
    EXPECT_EQ(j["sl_orig_tcp_state"], f[col("sl_orig_tcp_state")]);
    EXPECT_EQ(j["sl_resp_tcp_state"], f[col("sl_resp_tcp_state")]);
    EXPECT_EQ(j["sl_close"], "rst_resp");
    ASSERT_TRUE(j["sl_anomalies"].is_array());
    EXPECT_EQ(j["sl_anomalies"],
              json::array({tcp::anomaly_name(2), tcp::anomaly_name(9)}));
    // Unset fields are left out, as Zeek's JSON writer does.
    for (const char* k : {"service", "local_orig", "local_resp", "tunnel_parents"})
        EXPECT_EQ(j.count(k), 0u) << k;
    // Keys are the TSV column names, in the same order.
    std::vector<std::string> order;
    std::string line;
    append_json_record(line, r);
    size_t prev = 0;
    for (size_t i = 0; i < kFieldCount; ++i) {
        const std::string key = std::string("\"") + kFieldNames[i] + "\":";
        const size_t at = line.find(key);
        if (j.count(kFieldNames[i]) == 0) {
            EXPECT_EQ(at, std::string::npos) << kFieldNames[i];
            continue;
        }
        ASSERT_NE(at, std::string::npos) << kFieldNames[i];
        EXPECT_GT(at, prev) << kFieldNames[i];
        prev = at;
    }
    EXPECT_EQ(j.size(), kFieldCount - 4);
}

TEST(ConnLogJson, NoVlanNoAnomalies) {
    const json j = json_of(make_record("10.0.0.1", 1, "10.0.0.2", 2));
    EXPECT_EQ(j.count("vlan"), 0u);
    EXPECT_EQ(j.count("inner_vlan"), 0u);
    ASSERT_TRUE(j["sl_anomalies"].is_array());
    EXPECT_TRUE(j["sl_anomalies"].empty());
    EXPECT_EQ(j["id.orig_h"], "10.0.0.1");
}

// ---- uid --------------------------------------------------------------------------------------

TEST(ConnLogUid, ShapeAndDeterminism) {
    ConnRecord r = make_record("10.0.0.1", 1, "10.0.0.2", 2);
    char a[kUidMax], b[kUidMax];
    make_uid(r, a);
    make_uid(r, b);
    EXPECT_STREQ(a, b);
    EXPECT_TRUE(is_uid(a)) << a;
    // Every input changes it.
    auto differs = [&](ConnRecord x) {
        char c[kUidMax];
        make_uid(x, c);
        return std::strcmp(a, c) != 0;
    };
    ConnRecord x = r;
    x.worker = 2;
    EXPECT_TRUE(differs(x));
    x = r;
    x.uid_seq = 43;
    EXPECT_TRUE(differs(x));
    x = r;
    x.first_ts_ns += 1;
    EXPECT_TRUE(differs(x));
    x = r;
    x.key.port[1] ^= 1;
    EXPECT_TRUE(differs(x));
    x = r;
    x.key.vlan[0] = 5 | flow::kVlanPresent;
    EXPECT_TRUE(differs(x));
    // Fields that are not inputs do not.
    x = r;
    x.last_ts_ns += 12345;
    x.orig_pkts += 1;
    std::strcpy(x.history, "Sr");
    EXPECT_FALSE(differs(x));
}

TEST(ConnLogUid, NoCollisionsAndDigitsSpread) {
    // 200,000 connections of a SYN flood on one key shape: distinct uids, and the digits use the
    // whole alphabet (a weak mix shows up as skewed first digits).
    std::set<std::string> uids;
    std::set<char> first_digits;
    ConnRecord r = make_record("198.51.100.1", 80, "203.0.113.1", 1024);
    for (uint32_t i = 0; i < 200000; ++i) {
        r.uid_seq = i;
        r.worker = static_cast<uint8_t>(i % 4);
        r.first_ts_ns = 1700000000000000000ULL + i * 1000ULL;
        r.key.port[0] = static_cast<uint16_t>(1024 + i % 60000);
        char u[kUidMax];
        make_uid(r, u);
        uids.insert(u);
        first_digits.insert(u[1]);
    }
    EXPECT_EQ(uids.size(), 200000u);
    EXPECT_EQ(first_digits.size(), 62u);
}

// ---- the writer -------------------------------------------------------------------------------

class ConnLogWriterTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = ::testing::TempDir() + "connlog-XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        ASSERT_NE(mkdtemp(buf.data()), nullptr);
        dir_ = buf.data();
    }
    void TearDown() override {
        for (const auto& p : files_) ::unlink(p.c_str());
        ::rmdir(dir_.c_str());
    }
    std::string file(const char* name) {
        files_.push_back(dir_ + "/" + name);
        return files_.back();
    }
    std::string dir_;
    std::vector<std::string> files_;
};

TEST_F(ConnLogWriterTest, TsvFileHeaderRecordsClose) {
    const std::string path = file("conn.log");
    ConnLogWriter w;
    ASSERT_TRUE(w.open(path, Format::tsv)) << w.error();
    EXPECT_TRUE(w.is_open());
    ConnRecord r = make_record("10.0.0.1", 1000, "10.0.0.2", 80);
    for (uint32_t i = 0; i < 10; ++i) {
        r.uid_seq = i;
        ASSERT_TRUE(w.write(r)) << w.error();
    }
    EXPECT_EQ(w.records(), 10u);
    ASSERT_TRUE(w.close()) << w.error();
    EXPECT_FALSE(w.is_open());
    const auto l = lines_of(read_file(path));
    ASSERT_EQ(l.size(), 8u + 10u + 1u);
    EXPECT_EQ(l[0], "#separator \\x09");
    EXPECT_EQ(l[4], "#path\tconn");
    EXPECT_EQ(l.back().rfind("#close\t", 0), 0u) << l.back();
    EXPECT_TRUE(is_zeek_time(l.back().substr(7))) << l.back();
    // A zeek-cut style reader: columns from #fields, one record per non-# line.
    const auto names = split(l[6], '\t');
    ASSERT_EQ(names.size(), kFieldCount + 1);
    std::set<std::string> uids;
    for (size_t i = 8; i < 18; ++i) {
        const auto f = split(l[i], '\t');
        ASSERT_EQ(f.size(), kFieldCount);
        EXPECT_EQ(f[col("conn_state")], "SF");
        uids.insert(f[col("uid")]);
    }
    EXPECT_EQ(uids.size(), 10u);
    EXPECT_EQ(w.bytes_written(), read_file(path).size());
}

TEST_F(ConnLogWriterTest, SmallBufferFlushesWhenFullAndOnRequest) {
    const std::string path = file("conn.log");
    ConnLogWriter w;
    ASSERT_TRUE(w.open(path, Format::tsv, 4096)) << w.error();
    EXPECT_TRUE(read_file(path).empty()) << "the header waits in the buffer";
    ConnRecord r = make_record("10.0.0.1", 1000, "10.0.0.2", 80);
    for (uint32_t i = 0; i < 100; ++i) {  // ~250 bytes each: several buffer writes
        r.uid_seq = i;
        ASSERT_TRUE(w.write(r)) << w.error();
    }
    const size_t before_flush = read_file(path).size();
    EXPECT_GT(before_flush, 4096u);
    ASSERT_TRUE(w.flush()) << w.error();
    const std::string flushed = read_file(path);
    EXPECT_EQ(lines_of(flushed).size(), 8u + 100u);
    EXPECT_EQ(flushed.back(), '\n');
    ASSERT_TRUE(w.close());
    EXPECT_EQ(lines_of(read_file(path)).size(), 8u + 100u + 1u);
}

TEST_F(ConnLogWriterTest, JsonLinesNoHeaderNoClose) {
    const std::string path = file("conn.json");
    ConnLogWriter w;
    ASSERT_TRUE(w.open(path, Format::json)) << w.error();
    ConnRecord r = make_record("10.0.0.1", 1000, "10.0.0.2", 80);
    for (uint32_t i = 0; i < 5; ++i) {
        r.uid_seq = i;
        r.close = static_cast<CloseKind>(i);
        ASSERT_TRUE(w.write(r));
    }
    ASSERT_TRUE(w.close());
    const auto l = lines_of(read_file(path));
    ASSERT_EQ(l.size(), 5u);
    for (size_t i = 0; i < l.size(); ++i) {
        const json j = json::parse(l[i]);
        EXPECT_EQ(j["sl_close"], close_kind_name(static_cast<CloseKind>(i)));
        EXPECT_EQ(j["id.resp_p"], 80);
    }
}

TEST_F(ConnLogWriterTest, DestructorFlushes) {
    const std::string path = file("conn.log");
    {
        ConnLogWriter w;
        ASSERT_TRUE(w.open(path, Format::tsv));
        ASSERT_TRUE(w.write(make_record("10.0.0.1", 1000, "10.0.0.2", 80)));
    }
    const auto l = lines_of(read_file(path));
    ASSERT_EQ(l.size(), 10u);
    EXPECT_EQ(l.back().rfind("#close\t", 0), 0u);
}

TEST_F(ConnLogWriterTest, MissingDirectoryIsAClearError) {
    const std::string path = dir_ + "/no-such-dir/conn.log";
    ConnLogWriter w;
    EXPECT_FALSE(w.open(path, Format::tsv));
    EXPECT_FALSE(w.is_open());
    EXPECT_NE(w.error().find(path), std::string::npos) << w.error();
    EXPECT_NE(w.error().find("No such file or directory"), std::string::npos) << w.error();
    EXPECT_FALSE(w.write(make_record("10.0.0.1", 1, "10.0.0.2", 2)));
    EXPECT_TRUE(w.close());
}

TEST_F(ConnLogWriterTest, UnwritablePathsAreClearErrors) {
    ConnLogWriter w;
    EXPECT_FALSE(w.open(dir_, Format::json));  // a directory
    EXPECT_NE(w.error().find(dir_), std::string::npos) << w.error();
    EXPECT_NE(w.error().find("Is a directory"), std::string::npos) << w.error();
    EXPECT_FALSE(w.open("", Format::tsv));
    EXPECT_FALSE(w.error().empty());
}

TEST_F(ConnLogWriterTest, FullDiskIsReportedOnFlush) {
    if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
    ConnLogWriter w;
    ASSERT_TRUE(w.open("/dev/full", Format::tsv)) << w.error();
    EXPECT_TRUE(w.write(make_record("10.0.0.1", 1, "10.0.0.2", 2)));  // buffered
    EXPECT_FALSE(w.flush());
    EXPECT_NE(w.error().find("/dev/full"), std::string::npos) << w.error();
    EXPECT_NE(w.error().find("No space left on device"), std::string::npos) << w.error();
    EXPECT_FALSE(w.close());
}

// A destination that stops taking writes (here a FIFO nobody reads yet) stalls only the writer's
// I/O thread: backlogged() turns true while write() still returns at once, and once the reader
// wakes, flush() gets every record out in order.
TEST_F(ConnLogWriterTest, StalledDestinationIsBackloggedNotBlocking) {
    const std::string path = file("conn.fifo");
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
    const int rfd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // so open(O_WRONLY) returns
    ASSERT_GE(rfd, 0);
    ConnLogWriter w;
    ASSERT_TRUE(w.open(path, Format::tsv, 4096)) << w.error();
    ConnRecord r = make_record("10.0.0.1", 1000, "10.0.0.2", 80);
    // The pipe holds 64 KiB, the two buffers 8 KiB and more: about 300 lines of ~250 bytes.
    // backlogged() is also briefly true while the I/O thread has not yet been scheduled: a
    // stall is a backlog that lasts.
    uint32_t written = 0;
    while (written < 5000) {
        if (w.backlogged()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            if (w.backlogged()) break;
        }
        r.uid_seq = written++;
        ASSERT_TRUE(w.write(r)) << w.error();
    }
    ASSERT_TRUE(w.backlogged()) << "no backlog after " << written << " records";
    EXPECT_GT(written, 100u);  // the pipe and the I/O thread's buffer took the first ones
    // The reader wakes: everything handed in arrives, in order, and the log is closed.
    ASSERT_EQ(::fcntl(rfd, F_SETFL, 0), 0);
    std::string got;
    std::thread reader([&] {
        char b[65536];
        ssize_t n;
        while ((n = ::read(rfd, b, sizeof b)) > 0) got.append(b, static_cast<size_t>(n));
    });
    ASSERT_TRUE(w.flush()) << w.error();
    EXPECT_FALSE(w.backlogged());
    ASSERT_TRUE(w.close()) << w.error();
    reader.join();
    ::close(rfd);
    const auto l = lines_of(got);
    ASSERT_EQ(l.size(), 8u + written + 1u);
    EXPECT_EQ(l.back().rfind("#close\t", 0), 0u);
    EXPECT_EQ(w.bytes_written(), got.size());
}

TEST(ConnLogFormat, Names) {
    Format f = Format::json;
    EXPECT_TRUE(parse_format("tsv", f));
    EXPECT_EQ(f, Format::tsv);
    EXPECT_TRUE(parse_format("json", f));
    EXPECT_EQ(f, Format::json);
    EXPECT_FALSE(parse_format("csv", f));
    EXPECT_FALSE(parse_format("", f));
    EXPECT_STREQ(format_name(Format::tsv), "tsv");
    EXPECT_STREQ(format_name(Format::json), "json");
}

}  // namespace
}  // namespace stateline::connlog
