// SPDX-License-Identifier: BSD-3-Clause
#include "capture_probe.hpp"

#include <pcap/pcap.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace stateline {

std::string probe_capture(const std::string& path, CaptureInfo& info) {
    info = CaptureInfo{};
    info.path = path;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
        return "capture '" + path + "': " + std::strerror(errno) + " (check the path)";
    if (S_ISDIR(st.st_mode)) return "capture '" + path + "' is a directory; give capture files";

    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
    if (!p)
        return "capture '" + path + "' cannot be read: " + errbuf +
               " (Stateline reads pcap and pcapng files, as written by tcpdump, tshark or dumpcap)";
    info.dlt = pcap_datalink(p);
    switch (info.dlt) {
    case DLT_EN10MB: info.link = packet::LinkType::ethernet; break;
    case DLT_LINUX_SLL: info.link = packet::LinkType::linux_sll; break;
    default: {
        const char* n = pcap_datalink_val_to_name(info.dlt);
        std::string msg = "capture '" + path + "' has link type " + std::to_string(info.dlt) + " (" +
                          (n ? n : "unknown") +
                          "); Stateline reads Ethernet (EN10MB) and Linux cooked (LINUX_SLL) captures."
                          " Convert it first, e.g. with 'editcap -T ether'.";
        pcap_close(p);
        return msg;
    }
    }
    struct pcap_pkthdr* h;
    const u_char* data;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        uint64_t ts = uint64_t(h->ts.tv_sec) * 1000000000ull + uint64_t(h->ts.tv_usec);
        if (info.frames == 0) info.first_ts_ns = ts;
        info.last_ts_ns = ts;
        ++info.frames;
    }
    if (rc == PCAP_ERROR) info.read_error = pcap_geterr(p);
    pcap_close(p);
    return {};
}

}  // namespace stateline
