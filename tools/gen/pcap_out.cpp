// SPDX-License-Identifier: BSD-3-Clause
#include "pcap_out.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stateline::gen {

PcapWriter::~PcapWriter() {
    if (fd_ >= 0) {
        std::string ignored;
        close(ignored);
    }
}

bool PcapWriter::open(const std::string& path, TsResolution res, uint32_t snaplen,
                      std::string& err, size_t buffer_bytes) {
    path_ = path;
    if (path == "-") {
        fd_ = STDOUT_FILENO;
        own_fd_ = false;
    } else {
        fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            err = path + ": " + std::strerror(errno);
            return false;
        }
        own_fd_ = true;
    }
    res_ = res;
    // A snaplen below the longest header would cut headers: keep at least 128 bytes.
    snaplen_ = snaplen < 128 ? 128 : snaplen;
    if (buffer_bytes < 2 * (kRecordHeader + kMaxFrameLen)) buffer_bytes = 2 * (kRecordHeader + kMaxFrameLen);
    buf_size_ = buffer_bytes;
    buf_ = std::make_unique<uint8_t[]>(buf_size_);
    used_ = 0;
    packets_ = wire_bytes_ = file_bytes_ = 0;
    error_.clear();

    // pcap-savefile(5): magic, version 2.4, thiszone 0, sigfigs 0, snaplen, link type 1.
    uint8_t* h = buf_.get();
    put_le32(h, res == TsResolution::nano ? 0xa1b23c4du : 0xa1b2c3d4u);
    h[4] = 2, h[5] = 0, h[6] = 4, h[7] = 0;
    put_le32(h + 8, 0);
    put_le32(h + 12, 0);
    put_le32(h + 16, snaplen_);
    put_le32(h + 20, 1);
    used_ = 24;
    return true;
}

void PcapWriter::flush() {
    size_t off = 0;
    while (off < used_ && error_.empty()) {
        const ssize_t n = ::write(fd_, buf_.get() + off, used_ - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            error_ = path_ + ": " + std::strerror(errno);
            break;
        }
        off += static_cast<size_t>(n);
    }
    file_bytes_ += used_;
    used_ = 0;
}

bool PcapWriter::close(std::string& err) {
    if (fd_ < 0) return error_.empty();
    flush();
    if (own_fd_ && ::close(fd_) != 0 && error_.empty()) error_ = path_ + ": " + std::strerror(errno);
    fd_ = -1;
    if (!error_.empty()) {
        err = error_;
        return false;
    }
    return true;
}

}  // namespace stateline::gen
