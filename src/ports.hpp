// SPDX-License-Identifier: BSD-3-Clause
// Port bring-up: the mbuf pool, ethdev configuration with symmetric RSS where the NIC has it,
// RX timestamps where the PMD offers them (net_pcap: capture time), start, and the checks that
// name what is wrong.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <rte_mempool.h>

#include "packet_meta.hpp"

namespace stateline {

struct PortInfo {
    uint16_t port_id = 0;
    std::string name;
    packet::LinkType link = packet::LinkType::ethernet;
    uint16_t rx_queues = 0;
    bool rss = false;          // symmetric RSS configured
    bool timestamps = false;   // the PMD stamps each mbuf (capture time for net_pcap)
};

// Creates the packet pool; mbufs carry a PacketMeta in their private area.
rte_mempool* create_pktmbuf_pool(uint32_t n, int socket, std::string& err);

// Configures and starts a port with `rx_queues` RX queues and `tx_queues` TX queues (inline
// mode: one per worker, which forwards into it; otherwise one, unused, where the PMD has any).
// `timestamps`: ask the PMD to stamp each mbuf (capture replay: net_pcap gives capture time);
// live, the workers read the TSC once per burst instead, so no per-packet stamping is wanted.
bool setup_port(uint16_t port, uint16_t rx_queues, uint16_t tx_queues, uint16_t rx_desc, rte_mempool* pool,
                bool timestamps, PortInfo& out, std::string& err);

// Registered RX timestamp dynamic field, or -1 when no PMD registered one.
int rx_timestamp_offset();

}  // namespace stateline
