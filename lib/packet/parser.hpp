// SPDX-License-Identifier: BSD-3-Clause
// The frame parser: Ethernet or Linux cooked capture, VLAN stacks of any depth (up to 8),
// IPv4 with options and fragments, IPv6 with a bounded extension-header walk, TCP with options.
//
// Contract: reads at most `len` bytes from `data`, never more, whatever the headers claim;
// fills `meta` and returns meta.outcome. Only the fields the outcome promises are valid.
//
// Thread safety: pure function of its arguments; call from any thread.
#pragma once

#include <cstdint>

#include "packet_meta.hpp"

namespace stateline::packet {

// Limits of the bounded walks (a hostile frame cannot make the parser loop).
inline constexpr unsigned kMaxVlanTags = 8;
inline constexpr unsigned kMaxIpv6ExtHeaders = 8;

Outcome parse_frame(const uint8_t* data, uint32_t len, LinkType link, PacketMeta& meta) noexcept;

}  // namespace stateline::packet
