// SPDX-License-Identifier: BSD-3-Clause
#include "ports.hpp"

#include <algorithm>
#include <cstring>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "worker.hpp"

namespace stateline {

namespace {

// The symmetric Toeplitz key: 0x6d5a repeated makes hash(a->b) == hash(b->a) for the IP
// addresses and ports, so both directions of a connection land on one queue (Woo and Park,
// "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling", 2012).
void fill_symmetric_key(uint8_t* key, size_t len) {
    for (size_t i = 0; i < len; ++i) key[i] = (i % 2 == 0) ? 0x6d : 0x5a;
}

std::string errstr(int rc) { return std::string(rte_strerror(rc < 0 ? -rc : rc)); }

}  // namespace

rte_mempool* create_pktmbuf_pool(uint32_t n, int socket, std::string& err) {
    // Private area sized for PacketMeta, rounded to the mbuf private alignment.
    constexpr uint16_t priv = static_cast<uint16_t>(RTE_ALIGN_CEIL(sizeof(packet::PacketMeta), RTE_MBUF_PRIV_ALIGN));
    rte_mempool* mp = rte_pktmbuf_pool_create("stateline_pkts", n, 256, priv, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (!mp)
        err = "cannot create the mbuf pool (" + std::to_string(n) + " mbufs): " + errstr(rte_errno) +
              ". Give EAL more memory (-m, or more hugepages) or lower rx.mbufs.";
    return mp;
}

bool setup_port(uint16_t port, uint16_t rx_queues, uint16_t tx_wanted, uint16_t rx_desc, rte_mempool* pool,
                bool timestamps, PortInfo& out, std::string& err) {
    rte_eth_dev_info info{};
    int rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0) {
        err = "port " + std::to_string(port) + ": cannot read device info: " + errstr(rc);
        return false;
    }
    out.port_id = port;
    out.name = info.device ? rte_dev_name(info.device) : ("port" + std::to_string(port));
    char name[RTE_ETH_NAME_MAX_LEN];
    if (rte_eth_dev_get_name_by_port(port, name) == 0) out.name = name;

    if (rx_queues > info.max_rx_queues) {
        err = "port " + out.name + " has " + std::to_string(info.max_rx_queues) + " RX queue(s) but " +
              std::to_string(rx_queues) + " workers need one each; start fewer workers (lcores)";
        return false;
    }

    rte_eth_conf conf{};
    uint8_t rss_key[64];
    if (rx_queues > 1 && info.flow_type_rss_offloads != 0) {
        size_t key_len = info.hash_key_size ? info.hash_key_size : 40;
        if (key_len > sizeof(rss_key)) key_len = sizeof(rss_key);
        fill_symmetric_key(rss_key, key_len);
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = rss_key;
        conf.rx_adv_conf.rss_conf.rss_key_len = static_cast<uint8_t>(key_len);
        conf.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
        out.rss = true;
    }
    if (timestamps && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP)) {
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
        out.timestamps = true;
    }
    // Jumbo frames in captures arrive as mbuf chains instead of being dropped by the PMD.
    if (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;

    if (tx_wanted > 1 && tx_wanted > info.max_tx_queues) {
        err = "port " + out.name + " has " + std::to_string(info.max_tx_queues) + " TX queue(s) but inline mode needs " +
              std::to_string(tx_wanted) + " (one per worker); start fewer workers (lcores)";
        return false;
    }
    uint16_t tx_queues = std::min<uint16_t>(tx_wanted, info.max_tx_queues);
    rc = rte_eth_dev_configure(port, rx_queues, tx_queues, &conf);
    if (rc != 0) {
        err = "port " + out.name + ": configure failed: " + errstr(rc);
        return false;
    }
    uint16_t nb_rxd = rx_desc, nb_txd = 512;
    rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
    int socket = rte_eth_dev_socket_id(port);
    if (socket < 0) socket = 0;
    rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    for (uint16_t q = 0; q < rx_queues; ++q) {
        rc = rte_eth_rx_queue_setup(port, q, nb_rxd, socket, &rxconf, pool);
        if (rc != 0) {
            err = "port " + out.name + ": RX queue " + std::to_string(q) + " setup failed: " + errstr(rc);
            return false;
        }
    }
    for (uint16_t q = 0; q < tx_queues; ++q) {
        rc = rte_eth_tx_queue_setup(port, q, nb_txd, socket, nullptr);
        if (rc != 0) {
            err = "port " + out.name + ": TX queue setup failed: " + errstr(rc);
            return false;
        }
    }
    rc = rte_eth_dev_start(port);
    if (rc != 0) {
        err = "port " + out.name + ": start failed: " + errstr(rc);
        return false;
    }
    // A monitor sees traffic not addressed to it. Not every PMD has the notion: not an error.
    rte_eth_promiscuous_enable(port);
    out.rx_queues = rx_queues;
    return true;
}

int rx_timestamp_offset() {
    return rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
}

}  // namespace stateline
