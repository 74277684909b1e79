/*
 * The part of DPDK that rvs uses, for bindgen, plus exported wrappers for
 * DPDK's `static inline` functions (they have no symbol to link against).
 * Every wrapper is named rvs_<what it wraps> and does nothing else.
 */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H

#include <rte_config.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>

/* rte_errno is a per-lcore (thread-local) variable. */
int rvs_errno(void);

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                          struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                          struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
void rvs_pktmbuf_free(struct rte_mbuf *m);
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);

/* Single-producer / single-consumer ring bursts of mbuf pointers. */
unsigned rvs_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned rvs_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned rvs_ring_count(const struct rte_ring *r);

uint64_t rvs_rdtsc(void);
unsigned rvs_lcore_id(void);



/* RSS hash functions rvs asks for (IPv4, TCP, UDP); RTE_ETH_RSS_* are
 * RTE_BIT64() expressions that bindgen cannot evaluate. */
uint64_t rvs_rss_hf_ipv4_tcp_udp(void);
/* IPv4 addresses only, for every IPv4 packet (TCP and UDP included). */
uint64_t rvs_rss_hf_ipv4(void);
/* IPv6 addresses only, for every IPv6 packet (TCP and UDP included). */
uint64_t rvs_rss_hf_ipv6(void);
/* Input-set modifiers: hash only the source / only the destination. */
uint64_t rvs_rss_l3_src_only(void);
uint64_t rvs_rss_l3_dst_only(void);
#endif
