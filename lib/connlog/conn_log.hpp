// SPDX-License-Identifier: BSD-3-Clause
// The connection log: ConnRecords written as Zeek's conn.log, in Zeek's ASCII (TSV) format or as
// JSON lines (Zeek's LogAscii::use_json=T), with Zeek's field names, order, types and value
// formatting, Zeek's VLAN-logging fields, then Stateline's own fields. See README.md.
//
// Thread safety: a ConnLogWriter belongs to one thread (the control core, never a worker); it
// runs its own I/O thread inside. The formatting functions are pure and safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

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

// Writes conn.log records to a file through two large buffers: the owner formats into one while
// an I/O thread of the writer's own writes the other out. A disk that stalls (full, a hung network
// mount, a pipe nobody reads) then stalls only that thread; the owner (the control core) learns
// it from backlogged() and can stop taking records instead of waiting in write(2) itself.
// Not thread-safe: one owner thread calls every method.
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
    // Appends one record. A full buffer goes to the I/O thread; while that thread is still busy
    // with the previous one the buffer keeps filling, and write() waits for the thread only
    // once the buffer holds twice buffer_bytes. False on a write error.
    bool write(const ConnRecord& r);
    // True when the buffer is full and the I/O thread still busy with the previous one: the disk
    // is behind. An owner that must never wait stops taking records until it is false again.
    bool backlogged() const noexcept;
    // Writes out everything handed in so far and waits for it (not fsync). False on a write error.
    bool flush();
    // TSV: writes "#close <time>". Then flushes, stops the I/O thread and closes the file. False
    // on any error; the writer is closed either way. A no-op returning true when not open.
    bool close();

    bool is_open() const noexcept { return fd_ >= 0; }
    Format format() const noexcept { return format_; }
    const std::string& path() const noexcept { return path_; }
    const std::string& error() const noexcept { return error_; }
    uint64_t records() const noexcept { return records_; }
    // Bytes the I/O thread has written so far.
    uint64_t bytes_written() const noexcept { return bytes_written_.load(std::memory_order_acquire); }

private:
    void io_main();
    bool try_hand_off();   // gives buf_ to the I/O thread if it is idle; false if busy
    void hand_off();       // waits for the I/O thread to be idle, gives it buf_
    bool wait_idle();      // waits for the I/O thread to be idle; false once a write failed
    bool fail(const char* what, int err);

    int fd_ = -1;
    Format format_ = Format::tsv;
    size_t limit_ = kDefaultBufferBytes;
    std::string buf_;      // the owner's: records formatted here
    std::string out_;      // the I/O thread's while busy_
    std::string path_;
    std::string error_;
    uint64_t records_ = 0;
    std::atomic<uint64_t> bytes_written_{0};

    std::thread io_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool busy_ = false;    // out_ is being written (under mu_)
    bool stop_ = false;    // the I/O thread ends (under mu_)
    int io_errno_ = 0;     // the first write error, from the I/O thread (under mu_)
};

}  // namespace stateline::connlog
