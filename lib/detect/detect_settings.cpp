// SPDX-License-Identifier: BSD-3-Clause
#include "detect_settings.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace stateline::detect {

namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_mapped(const uint8_t a[16]) { return std::memcmp(a, kMappedPrefix, 12) == 0; }

}  // namespace

bool parse_prefix(const std::string& text, Prefix& out, std::string& why) {
    const size_t slash = text.find('/');
    const std::string addr = text.substr(0, slash);
    Prefix p;
    unsigned max_len;
    // A colon decides the family, so "10.0.0.1" never goes through the IPv6 parser.
    if (addr.find(':') != std::string::npos) {
        if (inet_pton(AF_INET6, addr.c_str(), p.addr) != 1) {
            why = "'" + addr + "' is not an IPv6 address";
            return false;
        }
        max_len = 128;
    } else {
        std::memcpy(p.addr, kMappedPrefix, 12);
        if (inet_pton(AF_INET, addr.c_str(), p.addr + 12) != 1) {
            why = "'" + addr + "' is not an IPv4 or IPv6 address";
            return false;
        }
        max_len = 32;
    }

    unsigned len = max_len;
    if (slash != std::string::npos) {
        const std::string l = text.substr(slash + 1);
        // Digits only: stoul would take " 24", "+24" or "24abc".
        if (l.empty() || l.size() > 3 || l.find_first_not_of("0123456789") != std::string::npos) {
            why = "prefix length '" + l + "' is not a number";
            return false;
        }
        len = static_cast<unsigned>(std::stoul(l));
        if (len > max_len) {
            why = "prefix length " + l + " is out of range for " + (max_len == 32 ? "IPv4" : "IPv6") +
                  " (0.." + std::to_string(max_len) + ")";
            return false;
        }
    }
    p.len = static_cast<uint8_t>(max_len == 32 ? len + 96 : len);

    // Host bits must be zero: "192.0.2.1/24" is more likely a typo than a wish for 192.0.2.0/24.
    Prefix net = p;
    for (unsigned bit = net.len; bit < 128; ++bit) net.addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
    if (std::memcmp(net.addr, p.addr, 16) != 0) {
        why = "host bits set: did you mean " + format_prefix(net) + "?";
        return false;
    }
    // IPv4 lives in ::ffff:0:0/96, so a shorter IPv6 prefix over it (::/0) would mix the families.
    if (max_len == 128 && p.len < 96) {
        uint8_t v4[16] = {};
        std::memcpy(v4, kMappedPrefix, 12);
        if (p.contains(v4)) {
            why = format_prefix(p) + " would cover every IPv4 address too (held as ::ffff:0:0/96): "
                  "use 0.0.0.0/0 for IPv4, 2000::/3 for global IPv6";
            return false;
        }
    }
    out = p;
    return true;
}

std::string format_prefix(const Prefix& p) {
    char buf[INET6_ADDRSTRLEN];
    // Shorter than /96, an IPv4-mapped-looking prefix also covers IPv6 space: print it as IPv6.
    if (p.len >= 96 && is_mapped(p.addr)) {
        inet_ntop(AF_INET, p.addr + 12, buf, sizeof buf);
        return std::string(buf) + "/" + std::to_string(p.len - 96);
    }
    inet_ntop(AF_INET6, p.addr, buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(p.len);
}

}  // namespace stateline::detect
