// SPDX-License-Identifier: BSD-3-Clause
// The connection log: ConnRecords written as Zeek's conn.log, in Zeek's ASCII (TSV) format or as
// JSON lines (Zeek's LogAscii::use_json=T), with Zeek's field names, order, types and value
// formatting, Zeek's VLAN-logging fields, then Stateline's own fields. See README.md.
//
// Thread safety: a ConnLogWriter belongs to one thread (the control core, never a worker). The
// formatting functions are pure and safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "conn_record.hpp"

namespace stateline::connlog {

enum class Format : uint8_t { tsv, json };

// "tsv" or "json"; false for anything else.
bool parse_format(std::string_view text, Format& out) noexcept;
const char* format_name(Format f) noexcept;

// "fin", "simultaneous_close", "rst_orig", ... (the STATELINE_CLOSE_KINDS names).
const char* close_kind_name(CloseKind k) noexcept;

// The columns, in order: Zeek's conn.log (base/protocols/conn), Zeek's vlan-logging policy
// (vlan, inner_vlan), then Stateline's (sl_*). Types as Zeek declares them.
inline constexpr size_t kFieldCount = 27;
extern const char* const kFieldNames[kFieldCount];
extern const char* const kFieldTypes[kFieldCount];

// The uid: "C" then base62 digits of 96 bits, laid out like Zeek's (a 32-bit word then a 64-bit
// word, each least significant digit first, no padding, alphabet 0-9a-zA-Z), so 2 to 18 chars.
// Zeek draws the 96 bits at random; ours are a deterministic mix of (worker, uid_seq,
// first_ts_ns, key), so the same capture gives the same uids on every run with the same worker
// count. Writes a NUL-terminated string into buf (kUidMax bytes) and returns buf.
inline constexpr size_t kUidMax = 20;
const char* make_uid(const ConnRecord& r, char* buf) noexcept;

// Formatting, exposed for tests and tools. Each appends; record lines end with '\n'.
// open_time/close_time are wall-clock seconds, printed in local time as Zeek does.
void append_tsv_header(std::string& out, std::time_t open_time);
void append_tsv_close(std::string& out, std::time_t close_time);
void append_tsv_record(std::string& out, const ConnRecord& r);
void append_json_record(std::string& out, const ConnRecord& r);

// Writes conn.log records to a file through a large buffer. Not thread-safe: the control core
// owns it, drains the workers' rings and calls write(); workers never format or do I/O.
class ConnLogWriter {
public:
    static constexpr size_t kDefaultBufferBytes = size_t{1} << 20;

    ConnLogWriter() = default;
    ~ConnLogWriter();  // close()s if still open (errors are then only kept in error())
    ConnLogWriter(const ConnLogWriter&) = delete;
    ConnLogWriter& operator=(const ConnLogWriter&) = delete;

    // Creates or truncates path and, for TSV, writes the header. On failure returns false and
    // error() says what failed, naming the path and the errno text.
    bool open(const std::string& path, Format format,
              size_t buffer_bytes = kDefaultBufferBytes);
    // Appends one record; writes the buffer out when it is full. False on a write error.
    bool write(const ConnRecord& r);
    // Writes out what is buffered (not fsync). False on a write error.
    bool flush();
    // TSV: writes "#close <time>". Then flushes and closes the file. False on any error; the
    // writer is closed either way. A no-op returning true when not open.
    bool close();

    bool is_open() const noexcept { return fd_ >= 0; }
    Format format() const noexcept { return format_; }
    const std::string& path() const noexcept { return path_; }
    const std::string& error() const noexcept { return error_; }
    uint64_t records() const noexcept { return records_; }
    uint64_t bytes_written() const noexcept { return bytes_written_; }

private:
    bool write_out();
    bool fail(const char* what, int err);

    int fd_ = -1;
    Format format_ = Format::tsv;
    size_t limit_ = kDefaultBufferBytes;
    std::string buf_;
    std::string path_;
    std::string error_;
    uint64_t records_ = 0;
    uint64_t bytes_written_ = 0;
};

}  // namespace stateline::connlog
