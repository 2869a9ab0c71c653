// SPDX-License-Identifier: BSD-3-Clause
// Classic pcap output (the libpcap savefile format, as in pcap-savefile(5)): link type 1
// (Ethernet), microsecond (magic a1b2c3d4) or nanosecond (a1b23c4d) timestamps, always written
// little-endian whatever the host, so equal runs give equal bytes everywhere. Frames are built
// in place in a large output buffer (frame_slot() then commit()) and written with one write(2)
// per buffer: no allocation or system call per packet.
//
// Thread safety: one writer per thread; not shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "frame_writer.hpp"

namespace stateline::gen {

enum class TsResolution : uint8_t { micro, nano };

class PcapWriter {
public:
    static constexpr uint32_t kRecordHeader = 16;
    static constexpr size_t kDefaultBuffer = 8u << 20;

    PcapWriter() = default;
    ~PcapWriter();
    PcapWriter(const PcapWriter&) = delete;
    PcapWriter& operator=(const PcapWriter&) = delete;

    // Opens `path` ("-" for standard output) and writes the file header. On failure returns
    // false with a message in `err`.
    bool open(const std::string& path, TsResolution res, uint32_t snaplen, std::string& err,
              size_t buffer_bytes = kDefaultBuffer);

    // Where the next frame is to be written: room for kMaxFrameLen bytes.
    uint8_t* frame_slot() {
        if (buf_size_ - used_ < kRecordHeader + kMaxFrameLen) flush();
        return buf_.get() + used_ + kRecordHeader;
    }

    // Completes the record of the frame written at frame_slot(): `wire_len` bytes on the wire,
    // of which min(wire_len, snaplen) are kept.
    void commit(uint64_t epoch_ns, uint32_t wire_len) {
        uint8_t* h = buf_.get() + used_;
        const uint32_t cap = wire_len < snaplen_ ? wire_len : snaplen_;
        const uint32_t sec = static_cast<uint32_t>(epoch_ns / 1000000000u);
        const uint32_t frac_ns = static_cast<uint32_t>(epoch_ns % 1000000000u);
        put_le32(h, sec);
        put_le32(h + 4, res_ == TsResolution::nano ? frac_ns : frac_ns / 1000u);
        put_le32(h + 8, cap);
        put_le32(h + 12, wire_len);
        used_ += kRecordHeader + cap;
        ++packets_;
        wire_bytes_ += wire_len;
    }

    // Writes out what is buffered and closes. Returns false with `err` on an I/O error (also
    // one that happened in an earlier flush).
    bool close(std::string& err);

    uint32_t snaplen() const { return snaplen_; }
    uint64_t packets() const { return packets_; }
    uint64_t wire_bytes() const { return wire_bytes_; }   // sum of frame lengths on the wire
    uint64_t file_bytes() const { return file_bytes_ + used_; }

private:
    static void put_le32(uint8_t* p, uint32_t v) {
        p[0] = static_cast<uint8_t>(v);
        p[1] = static_cast<uint8_t>(v >> 8);
        p[2] = static_cast<uint8_t>(v >> 16);
        p[3] = static_cast<uint8_t>(v >> 24);
    }
    void flush();

    int fd_ = -1;
    bool own_fd_ = false;
    std::unique_ptr<uint8_t[]> buf_;
    size_t buf_size_ = 0;
    size_t used_ = 0;
    uint32_t snaplen_ = 65535;
    TsResolution res_ = TsResolution::micro;
    uint64_t packets_ = 0;
    uint64_t wire_bytes_ = 0;
    uint64_t file_bytes_ = 0;
    std::string error_;  // first I/O error, reported by close()
    std::string path_;
};

}  // namespace stateline::gen
