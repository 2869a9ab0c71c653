// SPDX-License-Identifier: BSD-3-Clause
#include "conn_log.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "flow_key.hpp"
#include "tcp_tracker.hpp"

namespace stateline::connlog {

namespace {

// The mix below feeds seven 64-bit words; keep the key at five of them.
static_assert(sizeof(flow::FlowKey) == 40);

constexpr const char* kCloseNames[kCloseKindCount] = {
#define STATELINE_X(name, help) #name,
    STATELINE_CLOSE_KINDS(STATELINE_X)
#undef STATELINE_X
};

// Column indexes that the formatters below rely on.
enum Col : unsigned {
    c_ts, c_uid, c_orig_h, c_orig_p, c_resp_h, c_resp_p, c_proto, c_service, c_duration,
    c_orig_bytes, c_resp_bytes, c_conn_state, c_local_orig, c_local_resp, c_missed_bytes,
    c_history, c_orig_pkts, c_orig_ip_bytes, c_resp_pkts, c_resp_ip_bytes, c_tunnel_parents,
    c_vlan, c_inner_vlan, c_orig_state, c_resp_state, c_close, c_anomalies, c_count_
};
static_assert(c_count_ == kFieldCount);

constexpr char kSep = '\t';
constexpr std::string_view kUnset = "-";
constexpr std::string_view kEmpty = "(empty)";

// ---- small appenders --------------------------------------------------------------------------

void put_u64(std::string& out, uint64_t v) {
    char tmp[24];
    auto res = std::to_chars(tmp, tmp + sizeof(tmp), v);
    out.append(tmp, res.ptr);
}

// Microseconds as "S.UUUUUU": what Zeek prints for time and interval (6 decimals, trailing
// zeros kept). trim: drop trailing zeros but keep one decimal, the shape rapidjson gives the
// same number in Zeek's JSON logs.
void put_micros(std::string& out, uint64_t us, bool trim) {
    put_u64(out, us / 1000000);
    char frac[8];
    uint64_t f = us % 1000000;
    for (int i = 5; i >= 0; --i) {
        frac[i] = static_cast<char>('0' + f % 10);
        f /= 10;
    }
    int n = 6;
    if (trim)
        while (n > 1 && frac[n - 1] == '0') --n;
    out.push_back('.');
    out.append(frac, static_cast<size_t>(n));
}

// Zeek's time values are microseconds (libpcap's default precision truncates nanosecond
// captures to microseconds), so ours are too: truncated, not rounded.
uint64_t micros(uint64_t ns) noexcept { return ns / 1000; }

void put_addr(std::string& out, const uint8_t a[16]) {
    char buf[INET6_ADDRSTRLEN];
    const bool v4 = flow::is_ipv4_mapped(a);
    if (inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? a + 12 : a, buf, sizeof(buf)) == nullptr)
        out.append(kUnset);
    else
        out.append(buf);
}

size_t bounded_len(const char* s, size_t cap) noexcept {
    const void* z = std::memchr(s, '\0', cap);
    return z ? static_cast<size_t>(static_cast<const char*>(z) - s) : cap;
}

const char kHex[] = "0123456789abcdef";

// A TSV string value as Zeek's ASCII writer escapes it: control bytes (the tab separator among
// them), bytes above 0x7e and the backslash as \xNN, so a reader can undo it with one rule; a
// value equal to the unset or empty marker gets its first byte escaped, so it cannot be read
// back as one.
void put_tsv_string(std::string& out, std::string_view s) {
    if (s.empty()) {
        out.append(kEmpty);
        return;
    }
    size_t start = 0;
    if (s == kUnset || s == kEmpty) {
        out.append("\\x");
        out.push_back(kHex[static_cast<uint8_t>(s[0]) >> 4]);
        out.push_back(kHex[static_cast<uint8_t>(s[0]) & 15]);
        start = 1;
    }
    for (size_t i = start; i < s.size(); ++i) {
        const auto c = static_cast<uint8_t>(s[i]);
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            out.append("\\x");
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
}

void put_json_string(std::string& out, std::string_view s) {
    out.push_back('"');
    for (char ch : s) {
        const auto c = static_cast<uint8_t>(ch);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c < 0x20 || c >= 0x7f) {
            out.append("\\u00");
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    out.push_back('"');
}

// ---- the values of one record -----------------------------------------------------------------

// Everything a line needs, derived once from the record.
struct View {
    const uint8_t* orig_h;
    const uint8_t* resp_h;
    uint16_t orig_p;
    uint16_t resp_p;
    uint64_t ts_us;
    uint64_t duration_us;
    std::string_view conn_state;
    std::string_view history;
    const char* orig_state;  // nullptr: unset
    const char* resp_state;
    char uid[kUidMax];
};

const char* tcp_state_name(uint8_t s) noexcept {
    if (s >= tcp::kStateCount) return nullptr;
    return tcp::state_name(static_cast<tcp::State>(s));
}

void view_of(const ConnRecord& r, View& v) noexcept {
    const unsigned o = r.orig_is_hi ? 1 : 0;
    v.orig_h = r.key.addr[o];
    v.resp_h = r.key.addr[o ^ 1];
    v.orig_p = r.key.port[o];
    v.resp_p = r.key.port[o ^ 1];
    v.ts_us = micros(r.first_ts_ns);
    const uint64_t last_us = micros(r.last_ts_ns);
    v.duration_us = last_us > v.ts_us ? last_us - v.ts_us : 0;
    v.conn_state = std::string_view(r.conn_state, bounded_len(r.conn_state, sizeof(r.conn_state)));
    v.history = std::string_view(r.history, bounded_len(r.history, sizeof(r.history)));
    v.orig_state = tcp_state_name(r.orig_state);
    v.resp_state = tcp_state_name(r.resp_state);
    make_uid(r, v.uid);
}

const char* anomaly_label(unsigned bit, char* buf, size_t len) noexcept {
    if (bit < tcp::kAnomalyCount) {
        const char* n = tcp::anomaly_name(bit);
        if (n != nullptr && *n != '\0') return n;
    }
    std::snprintf(buf, len, "anomaly_bit_%u", bit);
    return buf;
}

// The set of anomaly names, comma separated, each written by `put` (TSV or JSON escaping).
template <class Put>
void append_anomalies(std::string& out, uint32_t bits, Put put) {
    char tmp[32];
    bool first = true;
    for (unsigned bit = 0; bit < 32; ++bit) {
        if ((bits & (1u << bit)) == 0) continue;
        if (!first) out.push_back(',');
        first = false;
        put(out, anomaly_label(bit, tmp, sizeof(tmp)));
    }
}

bool has_vlan(uint16_t v) noexcept { return (v & flow::kVlanPresent) != 0; }
int vlan_id(uint16_t v) noexcept { return v & flow::kVlanVidMask; }

// ---- uid --------------------------------------------------------------------------------------

// MurmurHash3's 64-bit finalizer: a bijection in which every input bit flips each output bit
// with probability close to 1/2.
constexpr uint64_t fmix64(uint64_t k) noexcept {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

uint64_t load_le64(const uint8_t* p) noexcept {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// One lane: absorb each word through the finalizer (seed and step constant per lane, so the two
// lanes are independent functions of the same input).
uint64_t mix_lane(const uint64_t* w, size_t n, uint64_t seed, uint64_t step) noexcept {
    uint64_t h = seed;
    for (size_t i = 0; i < n; ++i) h = fmix64((h ^ w[i]) + step);
    return fmix64(h ^ n);
}

constexpr char kBase62[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

// Zeek's digit order: least significant first, no padding.
char* put_base62(char* p, uint64_t v) noexcept {
    do {
        *p++ = kBase62[v % 62];
        v /= 62;
    } while (v != 0);
    return p;
}

}  // namespace

// ---- public -----------------------------------------------------------------------------------

const char* const kFieldNames[kFieldCount] = {
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service",
    "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp",
    "missed_bytes", "history", "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes",
    "tunnel_parents", "vlan", "inner_vlan", "sl_orig_tcp_state", "sl_resp_tcp_state", "sl_close",
    "sl_anomalies"};

const char* const kFieldTypes[kFieldCount] = {
    "time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count",
    "count", "string", "bool", "bool", "count", "string", "count", "count", "count", "count",
    "set[string]", "int", "int", "string", "string", "string", "set[string]"};

bool parse_format(std::string_view text, Format& out) noexcept {
    if (text == "tsv") {
        out = Format::tsv;
        return true;
    }
    if (text == "json") {
        out = Format::json;
        return true;
    }
    return false;
}

const char* format_name(Format f) noexcept { return f == Format::json ? "json" : "tsv"; }

const char* close_kind_name(CloseKind k) noexcept {
    const auto i = static_cast<unsigned>(k);
    return i < kCloseKindCount ? kCloseNames[i] : "unknown";
}

const char* make_uid(const ConnRecord& r, char* buf) noexcept {
    const auto* kb = reinterpret_cast<const uint8_t*>(&r.key);
    const uint64_t w[7] = {
        (static_cast<uint64_t>(r.worker) << 32) | r.uid_seq,
        r.first_ts_ns,
        load_le64(kb), load_le64(kb + 8), load_le64(kb + 16), load_le64(kb + 24),
        load_le64(kb + 32),
    };
    // 96 bits as Zeek lays them out: uid[0] keeps 32 bits, uid[1] all 64.
    const uint64_t hi32 = mix_lane(w, 7, 0x243f6a8885a308d3ULL, 0x9e3779b97f4a7c15ULL) >> 32;
    const uint64_t lo64 = mix_lane(w, 7, 0x13198a2e03707344ULL, 0xbf58476d1ce4e5b9ULL);
    char* p = buf;
    *p++ = 'C';
    p = put_base62(p, hi32);  // at most 6 digits
    p = put_base62(p, lo64);  // at most 11 digits
    *p = '\0';
    return buf;
}

static void put_local_time(std::string& out, std::time_t t) {
    struct tm tmv;
    char tmp[64];
    if (localtime_r(&t, &tmv) == nullptr ||
        std::strftime(tmp, sizeof(tmp), "%Y-%m-%d-%H-%M-%S", &tmv) == 0) {
        out.append("0000-00-00-00-00-00");
        return;
    }
    out.append(tmp);
}

void append_tsv_header(std::string& out, std::time_t open_time) {
    // Zeek writes "#separator" with a space (the separator itself is what it describes), every
    // other meta line with the separator.
    out.append("#separator \\x09\n");
    out.append("#set_separator\t,\n");
    out.append("#empty_field\t(empty)\n");
    out.append("#unset_field\t-\n");
    out.append("#path\tconn\n");
    out.append("#open\t");
    put_local_time(out, open_time);
    out.append("\n#fields");
    for (const char* n : kFieldNames) {
        out.push_back(kSep);
        out.append(n);
    }
    out.append("\n#types");
    for (const char* t : kFieldTypes) {
        out.push_back(kSep);
        out.append(t);
    }
    out.push_back('\n');
}

void append_tsv_close(std::string& out, std::time_t close_time) {
    out.append("#close\t");
    put_local_time(out, close_time);
    out.push_back('\n');
}

void append_tsv_record(std::string& out, const ConnRecord& r) {
    View v;
    view_of(r, v);
    const bool has_duration = v.duration_us > 0;  // Zeek sets duration and bytes only then

    put_micros(out, v.ts_us, false);                                  // ts
    out.push_back(kSep);
    out.append(v.uid);                                                // uid
    out.push_back(kSep);
    put_addr(out, v.orig_h);                                          // id.orig_h
    out.push_back(kSep);
    put_u64(out, v.orig_p);                                           // id.orig_p
    out.push_back(kSep);
    put_addr(out, v.resp_h);                                          // id.resp_h
    out.push_back(kSep);
    put_u64(out, v.resp_p);                                           // id.resp_p
    out.append("\ttcp\t-\t");                                         // proto, service
    if (has_duration) {
        put_micros(out, v.duration_us, false);                        // duration
        out.push_back(kSep);
        put_u64(out, r.orig_bytes);                                   // orig_bytes
        out.push_back(kSep);
        put_u64(out, r.resp_bytes);                                   // resp_bytes
    } else {
        out.append("-\t-\t-");
    }
    out.push_back(kSep);
    if (v.conn_state.empty())                                         // conn_state
        out.append(kUnset);
    else
        put_tsv_string(out, v.conn_state);
    out.append("\t-\t-\t");                                           // local_orig, local_resp
    put_u64(out, r.missed_bytes);                                     // missed_bytes
    out.push_back(kSep);
    if (v.history.empty())                                            // history
        out.append(kUnset);
    else
        put_tsv_string(out, v.history);
    out.push_back(kSep);
    put_u64(out, r.orig_pkts);                                        // orig_pkts
    out.push_back(kSep);
    put_u64(out, r.orig_ip_bytes);                                    // orig_ip_bytes
    out.push_back(kSep);
    put_u64(out, r.resp_pkts);                                        // resp_pkts
    out.push_back(kSep);
    put_u64(out, r.resp_ip_bytes);                                    // resp_ip_bytes
    out.append("\t-\t");                                              // tunnel_parents
    if (has_vlan(r.key.vlan[0]))                                      // vlan
        put_u64(out, static_cast<uint64_t>(vlan_id(r.key.vlan[0])));
    else
        out.append(kUnset);
    out.push_back(kSep);
    if (has_vlan(r.key.vlan[1]))                                      // inner_vlan
        put_u64(out, static_cast<uint64_t>(vlan_id(r.key.vlan[1])));
    else
        out.append(kUnset);
    out.push_back(kSep);
    if (v.orig_state)                                                 // sl_orig_tcp_state
        put_tsv_string(out, v.orig_state);
    else
        out.append(kUnset);
    out.push_back(kSep);
    if (v.resp_state)                                                 // sl_resp_tcp_state
        put_tsv_string(out, v.resp_state);
    else
        out.append(kUnset);
    out.push_back(kSep);
    out.append(close_kind_name(r.close));                             // sl_close
    out.push_back(kSep);
    if (r.anomalies == 0) {                                           // sl_anomalies
        out.append(kEmpty);
    } else {
        append_anomalies(out, r.anomalies, put_tsv_string);
    }
    out.push_back('\n');
}

// Zeek's JSON writer leaves unset fields out of the object; sets are arrays, ports and counts
// numbers, time and interval numbers of seconds.
void append_json_record(std::string& out, const ConnRecord& r) {
    View v;
    view_of(r, v);
    const bool has_duration = v.duration_us > 0;

    out.append("{\"ts\":");
    put_micros(out, v.ts_us, true);
    out.append(",\"uid\":");
    put_json_string(out, v.uid);
    out.append(",\"id.orig_h\":\"");
    put_addr(out, v.orig_h);
    out.append("\",\"id.orig_p\":");
    put_u64(out, v.orig_p);
    out.append(",\"id.resp_h\":\"");
    put_addr(out, v.resp_h);
    out.append("\",\"id.resp_p\":");
    put_u64(out, v.resp_p);
    out.append(",\"proto\":\"tcp\"");
    if (has_duration) {
        out.append(",\"duration\":");
        put_micros(out, v.duration_us, true);
        out.append(",\"orig_bytes\":");
        put_u64(out, r.orig_bytes);
        out.append(",\"resp_bytes\":");
        put_u64(out, r.resp_bytes);
    }
    if (!v.conn_state.empty()) {
        out.append(",\"conn_state\":");
        put_json_string(out, v.conn_state);
    }
    out.append(",\"missed_bytes\":");
    put_u64(out, r.missed_bytes);
    if (!v.history.empty()) {
        out.append(",\"history\":");
        put_json_string(out, v.history);
    }
    out.append(",\"orig_pkts\":");
    put_u64(out, r.orig_pkts);
    out.append(",\"orig_ip_bytes\":");
    put_u64(out, r.orig_ip_bytes);
    out.append(",\"resp_pkts\":");
    put_u64(out, r.resp_pkts);
    out.append(",\"resp_ip_bytes\":");
    put_u64(out, r.resp_ip_bytes);
    if (has_vlan(r.key.vlan[0])) {
        out.append(",\"vlan\":");
        put_u64(out, static_cast<uint64_t>(vlan_id(r.key.vlan[0])));
    }
    if (has_vlan(r.key.vlan[1])) {
        out.append(",\"inner_vlan\":");
        put_u64(out, static_cast<uint64_t>(vlan_id(r.key.vlan[1])));
    }
    if (v.orig_state) {
        out.append(",\"sl_orig_tcp_state\":");
        put_json_string(out, v.orig_state);
    }
    if (v.resp_state) {
        out.append(",\"sl_resp_tcp_state\":");
        put_json_string(out, v.resp_state);
    }
    out.append(",\"sl_close\":");
    put_json_string(out, close_kind_name(r.close));
    out.append(",\"sl_anomalies\":[");
    append_anomalies(out, r.anomalies, put_json_string);
    out.append("]}\n");
}

// ---- ConnLogWriter ----------------------------------------------------------------------------

ConnLogWriter::~ConnLogWriter() { close(); }

bool ConnLogWriter::fail(const char* what, int err) {
    error_ = std::string("cannot ") + what + " conn log '" + path_ + "': " +
             std::error_code(err, std::generic_category()).message();
    return false;
}

bool ConnLogWriter::open(const std::string& path, Format format, size_t buffer_bytes) {
    if (is_open()) close();
    path_ = path;
    format_ = format;
    error_.clear();
    records_ = 0;
    bytes_written_.store(0, std::memory_order_release);
    buf_.clear();
    if (path.empty()) {
        error_ = "cannot open conn log: empty path";
        return false;
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return fail("open", errno);
    fd_ = fd;
    // Room for two full buffers plus the longest line (about 400 bytes): write() fills one up to
    // twice its size while the I/O thread is busy, so it never grows.
    limit_ = buffer_bytes < 4096 ? 4096 : buffer_bytes;
    buf_.reserve(2 * limit_ + 1024);
    out_.reserve(2 * limit_ + 1024);
    if (format_ == Format::tsv) append_tsv_header(buf_, std::time(nullptr));
    busy_ = stop_ = false;
    io_errno_ = 0;
    io_ = std::thread(&ConnLogWriter::io_main, this);
    return true;
}

void ConnLogWriter::io_main() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
        cv_.wait(lk, [this] { return busy_ || stop_; });
        if (!busy_) return;  // stop_ with nothing left to write
        lk.unlock();
        int err = 0;
        size_t off = 0;
        while (off < out_.size()) {
            const ssize_t n = ::write(fd_, out_.data() + off, out_.size() - off);
            if (n < 0) {
                if (errno == EINTR) continue;
                // What was not written is dropped: nothing may grow without bound on a full
                // disk. error() says why; records() still counts what was handed in.
                err = errno;
                break;
            }
            off += static_cast<size_t>(n);
            bytes_written_.fetch_add(static_cast<uint64_t>(n), std::memory_order_release);
        }
        out_.clear();
        lk.lock();
        if (err && !io_errno_) io_errno_ = err;
        busy_ = false;
        cv_.notify_all();
    }
}

bool ConnLogWriter::wait_idle() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return !busy_; });
    return io_errno_ == 0;
}

void ConnLogWriter::hand_off() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [this] { return !busy_; });
    if (io_errno_) {  // the disk already failed: drop rather than queue more
        buf_.clear();
        return;
    }
    buf_.swap(out_);
    busy_ = true;
    cv_.notify_all();
}

bool ConnLogWriter::try_hand_off() {
    std::lock_guard<std::mutex> lk(mu_);
    if (busy_) return false;
    if (io_errno_) {
        buf_.clear();
        return true;
    }
    buf_.swap(out_);
    busy_ = true;
    cv_.notify_all();
    return true;
}

bool ConnLogWriter::backlogged() const noexcept {
    if (!is_open() || buf_.size() < limit_) return false;
    std::lock_guard<std::mutex> lk(mu_);
    return busy_;
}

bool ConnLogWriter::write(const ConnRecord& r) {
    if (!is_open()) {
        if (error_.empty()) error_ = "conn log is not open";
        return false;
    }
    if (format_ == Format::json)
        append_json_record(buf_, r);
    else
        append_tsv_record(buf_, r);
    ++records_;
    if (buf_.size() >= limit_) {
        // Hand the buffer over if the I/O thread is free; if it is still busy, keep formatting
        // into this one (backlogged() now says so) and wait only once it holds twice its size.
        if (!try_hand_off() && buf_.size() >= 2 * limit_) hand_off();
        std::lock_guard<std::mutex> lk(mu_);
        if (io_errno_) return fail("write", io_errno_);
    }
    return true;
}

bool ConnLogWriter::flush() {
    if (!is_open()) return error_.empty();
    if (!buf_.empty()) hand_off();
    if (!wait_idle()) {
        std::lock_guard<std::mutex> lk(mu_);
        return fail("write", io_errno_);
    }
    return true;
}

bool ConnLogWriter::close() {
    if (!is_open()) return true;
    if (format_ == Format::tsv) append_tsv_close(buf_, std::time(nullptr));
    bool ok = flush();
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        cv_.notify_all();
    }
    io_.join();
    if (::close(fd_) != 0 && ok) ok = fail("close", errno);
    fd_ = -1;
    buf_.clear();
    buf_.shrink_to_fit();
    out_.clear();
    out_.shrink_to_fit();
    return ok;
}

}  // namespace stateline::connlog
