/* Exported wrappers for DPDK's static inline functions; see shim.h. */
#include "shim.h"

int rvs_errno(void) { return rte_errno; }

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                          struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                          struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
void rvs_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
char *rvs_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
char *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

unsigned rvs_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n)
{
    return rte_ring_enqueue_burst(r, objs, n, NULL);
}

unsigned rvs_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n)
{
    return rte_ring_dequeue_burst(r, objs, n, NULL);
}

unsigned rvs_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

uint64_t rvs_rdtsc(void) { return rte_rdtsc(); }
unsigned rvs_lcore_id(void) { return rte_lcore_id(); }

uint64_t rvs_rss_hf_ipv4_tcp_udp(void)
{
    return RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP |
           RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV4_OTHER;
}

uint64_t rvs_rss_hf_ipv4(void) { return RTE_ETH_RSS_IPV4; }
uint64_t rvs_rss_hf_ipv6(void) { return RTE_ETH_RSS_IPV6; }
uint64_t rvs_rss_l3_src_only(void) { return RTE_ETH_RSS_L3_SRC_ONLY; }
uint64_t rvs_rss_l3_dst_only(void) { return RTE_ETH_RSS_L3_DST_ONLY; }
