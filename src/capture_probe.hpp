// SPDX-License-Identifier: BSD-3-Clause
// Reads a capture once with libpcap before the data path starts, so that a bad file gets a clear
// error naming it (net_pcap would only fail to probe), the link type picks the parser's entry,
// and the dispatcher knows how many frames to expect before it calls the capture finished.
#pragma once

#include <cstdint>
#include <string>

#include "packet_meta.hpp"

namespace stateline {

struct CaptureInfo {
    std::string path;
    packet::LinkType link = packet::LinkType::ethernet;
    int dlt = 0;
    uint64_t frames = 0;         // frames readable before the end or the first read error
    uint64_t first_ts_ns = 0;
    uint64_t last_ts_ns = 0;
    std::string read_error;      // set when the file breaks off mid-way (frames before it count)
};

// Returns an empty string on success, else an error message that names the file and says what
// to do. A file that breaks off mid-way is a success with info.read_error set.
std::string probe_capture(const std::string& path, CaptureInfo& info);

}  // namespace stateline
