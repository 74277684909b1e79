//! Which worker owns a client: the NIC's receive-side scaling, modelled in
//! software.
//!
//! rvs asks every port to hash the client's IPv4 address only (outside
//! ports hash the source, inside ports the destination, which is the client
//! in a NAT reply) with one Toeplitz key, and to map the hash to a queue
//! through one redirection table (RETA). Queue i is worker i's, so both
//! directions of every connection reach the worker that owns it without
//! crossing cores. A 5-tuple hash cannot do this for NAT: the reply's tuple
//! (real server -> client) is not the request's (client -> VIP) swapped.
//!
//! [`RssModel`] computes what the NIC computes, for the places where rvs
//! must know the owner without a NIC (devices that cannot hash, connections
//! installed by HA sync, a worker checking that a packet is its own), so the
//! two always agree.

use crate::lb::kind::{keyword, ParseKeywordError};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Length of a Toeplitz key as NICs take it (Microsoft's RSS specification;
/// some NICs take longer keys, of which the first 40 bytes are these).
pub const KEY_LEN: usize = 40;

/// The key rvs programs on every port: Microsoft's default RSS key, the
/// one the RSS specification's verification vectors use, so the hash can be
/// checked against published values.
pub const RSS_KEY: [u8; KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Entries of the model's redirection table. 128 is the smallest RETA of
/// the common physical NICs that can hash on one address (ixgbe, igb,
/// virtio-net, ENA and sfc have 128; i40e, mlx5 and hns3 512; ice 512 or
/// 2048), so the model can be programmed on all of them unchanged (a
/// larger power-of-two RETA repeats it, see [`RssModel::reta_for_device`]).
/// It is fine enough for an even spread: with `i % workers` entries no
/// worker gets more than 1/128 of the traffic above its share. Virtual
/// functions with 64 entries (iavf, ixgbevf) fall back to software
/// ownership: a 64-entry table can agree with this one only when the
/// worker count divides 64.
pub const RETA_SIZE: usize = 128;

/// The Toeplitz hash of `input` under `key`: for each set bit of the input,
/// counting from the most significant bit of its first byte, XOR in the 32
/// bits of the key that start at that bit's position. Inputs longer than
/// `KEY_LEN - 4` bytes read key bits past the end as zero.
pub fn toeplitz(key: &[u8; KEY_LEN], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    // The key's 32 bits starting at the current input bit; each step shifts
    // in the next key bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (i, &byte) in input.iter().enumerate() {
        let next = key.get(i + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// Which address of an IPv4 packet a port hashes: the one that is the
/// client's for the traffic the port receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientSide {
    /// `"client-source"`: an outside port, where clients' packets arrive
    /// (their source is the client).
    Source,
    /// `"client-destination"`: an inside port, where real servers' NAT
    /// replies arrive (their destination is the client).
    Destination,
}

impl ClientSide {
    /// Both sides, in the order messages list them.
    pub const ALL: [ClientSide; 2] = [ClientSide::Source, ClientSide::Destination];

    /// The name used in the file (`[[interface]] rss`) and in logs.
    pub fn name(self) -> &'static str {
        match self {
            ClientSide::Source => "client-source",
            ClientSide::Destination => "client-destination",
        }
    }
}

impl FromStr for ClientSide {
    type Err = ParseKeywordError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        keyword(s, &Self::ALL, Self::name)
    }
}

impl fmt::Display for ClientSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The NIC's choice of queue, hence of worker, for a client, as rvs
/// programs it on every port: one key and one redirection table.
///
/// The hash is linear in its input bits, so the hash of an address is the
/// XOR of the hashes of its four bytes, each in its place: the model keeps
/// them in four 256-entry tables (4 KiB) and hashes a client with four
/// lookups instead of 32 conditional XORs, cheap enough for the packet path.
/// IPv6 clients the same way, with sixteen tables (16 KiB): bit by bit,
/// their 128 conditional XORs cost ~920 instructions an IPv6 packet on a
/// worker of several (callgrind over `perf/datapath`,
/// `docs/dev/h19-perf6.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssModel {
    key: [u8; KEY_LEN],
    reta: Vec<u16>,
    /// `by_byte[i][b]`: the hash of an address whose byte i is b and whose
    /// other bytes are zero.
    by_byte: Box<[[u32; 256]; 4]>,
    /// `by_byte6[i][b]`: the same for a 16-byte IPv6 address.
    by_byte6: Box<[[u32; 256]; 16]>,
}

impl RssModel {
    /// The model for `workers` workers (0 counts as 1): `RSS_KEY`, and a
    /// RETA of `RETA_SIZE` entries whose entry i is queue `i % workers`.
    pub fn new(workers: usize) -> RssModel {
        let workers = workers.clamp(1, usize::from(u16::MAX) + 1);
        let mut by_byte = Box::new([[0u32; 256]; 4]);
        for (i, table) in by_byte.iter_mut().enumerate() {
            for (b, hash) in table.iter_mut().enumerate() {
                let mut address = [0u8; 4];
                address[i] = b as u8;
                *hash = toeplitz(&RSS_KEY, &address);
            }
        }
        let mut by_byte6 = Box::new([[0u32; 256]; 16]);
        for (i, table) in by_byte6.iter_mut().enumerate() {
            for (b, hash) in table.iter_mut().enumerate() {
                let mut address = [0u8; 16];
                address[i] = b as u8;
                *hash = toeplitz(&RSS_KEY, &address);
            }
        }
        RssModel {
            key: RSS_KEY,
            reta: (0..RETA_SIZE).map(|i| (i % workers) as u16).collect(),
            by_byte,
            by_byte6,
        }
    }

    /// The hash a NIC computes for a packet whose client is `ip` when it
    /// hashes one IPv4 address (DPDK's `RTE_ETH_RSS_IPV4` with
    /// `L3_SRC_ONLY` or `L3_DST_ONLY`): Toeplitz over the 4 address bytes.
    #[inline]
    pub fn hash_client(&self, ip: Ipv4Addr) -> u32 {
        let [a, b, c, d] = ip.octets();
        self.by_byte[0][usize::from(a)]
            ^ self.by_byte[1][usize::from(b)]
            ^ self.by_byte[2][usize::from(c)]
            ^ self.by_byte[3][usize::from(d)]
    }

    /// The worker (queue) that owns client `ip`'s connections.
    #[inline]
    pub fn worker_of(&self, client: Ipv4Addr) -> usize {
        self.worker_of_hash(self.hash_client(client))
    }

    /// The hash a NIC computes for a packet whose client is the IPv6
    /// address `ip` when it hashes one IPv6 address (`RTE_ETH_RSS_IPV6`
    /// with `L3_SRC_ONLY` or `L3_DST_ONLY`): Toeplitz over the 16 address
    /// bytes, with the same key (its first 20 bytes).
    #[inline]
    pub fn hash_client6(&self, ip: Ipv6Addr) -> u32 {
        ip.octets()
            .iter()
            .zip(self.by_byte6.iter())
            .fold(0, |hash, (&b, table)| hash ^ table[usize::from(b)])
    }

    /// The worker (queue) that owns IPv6 client `ip`'s connections.
    #[inline]
    pub fn worker_of6(&self, client: Ipv6Addr) -> usize {
        self.worker_of_hash(self.hash_client6(client))
    }

    /// The worker (queue) a NIC sends a packet of hash `hash` to: the
    /// RETA entry its low bits index, as NICs do.
    #[inline]
    pub fn worker_of_hash(&self, hash: u32) -> usize {
        usize::from(self.reta[hash as usize & (RETA_SIZE - 1)])
    }

    /// The Toeplitz key every port is given.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The model's redirection table (`RETA_SIZE` queue indexes).
    pub fn reta(&self) -> &[u16] {
        &self.reta
    }

    /// A RETA of `device_reta_size` entries that sends every hash to the
    /// queue the model does, or `None` when no table of that size can.
    ///
    /// A NIC indexes its RETA with the hash's low bits, so a power-of-two
    /// table of at least `RETA_SIZE` entries agrees with the model when
    /// entry j is the model's entry `j % RETA_SIZE` (the index's extra high
    /// bits are ignored). A smaller table sees fewer bits than the model
    /// and would have to be periodic in them, which `i % workers` is only
    /// when the worker count divides its size; a size that is not a power
    /// of two is not indexed by low bits at all (what such a NIC does is
    /// its own). Both are refused rather than half-agreeing.
    pub fn reta_for_device(&self, device_reta_size: usize) -> Option<Vec<u16>> {
        if device_reta_size < RETA_SIZE || !device_reta_size.is_power_of_two() {
            return None;
        }
        Some(
            (0..device_reta_size)
                .map(|j| self.reta[j % RETA_SIZE])
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// src || dst, as the RSS specification feeds an IPv4 header.
    fn pair(src: &str, dst: &str) -> Vec<u8> {
        [ip(src).octets(), ip(dst).octets()].concat()
    }

    /// A deterministic stream of client addresses (splitmix64).
    fn clients(n: usize) -> impl Iterator<Item = Ipv4Addr> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n).map(move |_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            Ipv4Addr::from((z ^ (z >> 31)) as u32)
        })
    }

    #[test]
    fn toeplitz_matches_the_rss_specification_ipv4_vectors() {
        let vectors = [
            ("66.9.149.187", "161.142.100.80", 0x323e_8fc2),
            ("199.92.111.2", "65.69.140.83", 0xd718_262a),
            ("24.19.198.95", "12.22.207.184", 0xd2d0_a5de),
            ("38.27.205.30", "209.142.163.6", 0x8298_9176),
            ("153.39.163.191", "202.188.127.2", 0x5d18_09c5),
        ];
        for (src, dst, want) in vectors {
            assert_eq!(toeplitz(&RSS_KEY, &pair(src, dst)), want, "{src} -> {dst}");
        }
    }

    #[test]
    fn toeplitz_matches_the_rss_specification_ipv6_vectors() {
        let vectors = [
            ("3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 0x2cc1_8cd5),
            ("3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 0x0f0c_461c),
            (
                "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
                "fe80::200:f8ff:fe21:67cf",
                0x4b61_e985,
            ),
        ];
        for (src, dst, want) in vectors {
            let mut input = src.parse::<Ipv6Addr>().unwrap().octets().to_vec();
            input.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
            assert_eq!(toeplitz(&RSS_KEY, &input), want, "{src} -> {dst}");
        }
    }

    #[test]
    fn an_ipv6_client_hashes_like_a_nic_hashing_its_address_alone() {
        let m = RssModel::new(4);
        let c: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
        assert_eq!(m.hash_client6(c), toeplitz(&RSS_KEY, &c.octets()));
        assert_eq!(m.worker_of6(c), m.worker_of_hash(m.hash_client6(c)));
        assert!(m.worker_of6(c) < 4);
    }

    #[test]
    fn toeplitz_matches_the_rss_specification_ipv4_tcp_vectors() {
        let vectors = [
            ("66.9.149.187", 2794, "161.142.100.80", 1766, 0x51cc_c178),
            ("199.92.111.2", 14230, "65.69.140.83", 4739, 0xc626_b0ea),
            ("24.19.198.95", 12898, "12.22.207.184", 38024, 0x5c2b_394a),
            ("38.27.205.30", 48228, "209.142.163.6", 2217, 0xafc7_327f),
            ("153.39.163.191", 44251, "202.188.127.2", 1303, 0x10e8_28a2),
        ];
        for (src, sport, dst, dport, want) in vectors {
            let mut input = pair(src, dst);
            input.extend_from_slice(&u16::to_be_bytes(sport));
            input.extend_from_slice(&u16::to_be_bytes(dport));
            assert_eq!(
                toeplitz(&RSS_KEY, &input),
                want,
                "{src}:{sport} -> {dst}:{dport}"
            );
        }
    }

    #[test]
    fn toeplitz_of_nothing_is_zero() {
        assert_eq!(toeplitz(&RSS_KEY, &[]), 0);
    }

    #[test]
    fn toeplitz_is_linear_so_a_single_bit_selects_its_key_window() {
        // The first input bit selects key bits 0..32, the ninth bits 8..40.
        assert_eq!(toeplitz(&RSS_KEY, &[0x80]), 0x6d5a_56da);
        assert_eq!(toeplitz(&RSS_KEY, &[0x00, 0x80]), 0x5a56_da25);
    }

    #[test]
    fn input_longer_than_the_key_reads_zero_key_bits_and_does_not_panic() {
        let long = [0xffu8; 64];
        let _ = toeplitz(&RSS_KEY, &long);
        // Bits past key bit 320 contribute nothing.
        let mut tail = [0u8; 64];
        tail[40..].fill(0xff);
        assert_eq!(toeplitz(&RSS_KEY, &tail), 0);
    }

    #[test]
    fn hash_client_is_toeplitz_over_the_address_alone() {
        let model = RssModel::new(4);
        let client = ip("66.9.149.187");
        assert_eq!(
            model.hash_client(client),
            toeplitz(&RSS_KEY, &client.octets())
        );
        // The address is the first four bytes of an src||dst input, so it
        // is what the NIC hashes once the other address is left out.
        let with_zero_dst = pair("66.9.149.187", "0.0.0.0");
        assert_eq!(
            model.hash_client(client),
            toeplitz(&RSS_KEY, &with_zero_dst)
        );
    }

    #[test]
    fn table_hash_equals_the_bitwise_definition_for_random_clients() {
        let model = RssModel::new(2);
        for c in clients(10_000).chain([ip("0.0.0.0"), ip("255.255.255.255")]) {
            assert_eq!(model.hash_client(c), toeplitz(&RSS_KEY, &c.octets()), "{c}");
        }
    }

    #[test]
    fn ipv6_table_hash_equals_the_bitwise_definition_for_random_clients() {
        let model = RssModel::new(2);
        let mut x = 0x9e37_79b9_7f4a_7c15_u128 << 64 | 0x2545_f491_4f6c_dd1d;
        for _ in 0..10_000 {
            // xorshift over 128 bits: every byte position sees many values.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = Ipv6Addr::from(x);
            assert_eq!(
                model.hash_client6(c),
                toeplitz(&RSS_KEY, &c.octets()),
                "{c}"
            );
        }
        for c in [Ipv6Addr::UNSPECIFIED, Ipv6Addr::from(u128::MAX)] {
            assert_eq!(
                model.hash_client6(c),
                toeplitz(&RSS_KEY, &c.octets()),
                "{c}"
            );
        }
    }

    #[test]
    fn reta_entry_i_is_queue_i_modulo_workers() {
        let model = RssModel::new(3);
        assert_eq!(model.reta().len(), RETA_SIZE);
        for (i, &q) in model.reta().iter().enumerate() {
            assert_eq!(usize::from(q), i % 3);
        }
        assert_eq!(model.key(), &RSS_KEY);
    }

    #[test]
    fn zero_workers_counts_as_one() {
        let model = RssModel::new(0);
        assert!(clients(100).all(|c| model.worker_of(c) == 0));
    }

    #[test]
    fn worker_of_indexes_the_reta_with_the_hash_low_bits() {
        let model = RssModel::new(4);
        for c in clients(1000) {
            let h = model.hash_client(c);
            assert_eq!(model.worker_of(c), model.worker_of_hash(h));
            assert_eq!(model.worker_of_hash(h), (h as usize % RETA_SIZE) % 4);
        }
    }

    #[test]
    fn random_clients_spread_evenly_over_2_3_and_4_workers() {
        const N: usize = 60_000;
        for workers in [2, 3, 4] {
            let model = RssModel::new(workers);
            let mut counts = vec![0usize; workers];
            for c in clients(N) {
                counts[model.worker_of(c)] += 1;
            }
            for (w, &n) in counts.iter().enumerate() {
                let share = n as f64 / N as f64;
                assert!(
                    (share - 1.0 / workers as f64).abs() < 0.02,
                    "{workers} workers: worker {w} got {share:.3}"
                );
            }
        }
    }

    #[test]
    fn the_clients_of_any_slash_24_fill_every_reta_entry_exactly_twice() {
        // The hash is linear: the last octet's 8 bits reach all 7 index
        // bits under this key, and the prefix only permutes the entries.
        let model = RssModel::new(4);
        for prefix in [[198, 51, 100], [10, 1, 0], [203, 0, 113]] {
            let mut hits = [0usize; RETA_SIZE];
            for host in 0..=255u8 {
                let c = Ipv4Addr::new(prefix[0], prefix[1], prefix[2], host);
                hits[model.hash_client(c) as usize & (RETA_SIZE - 1)] += 1;
            }
            assert!(hits.iter().all(|&n| n == 2), "{prefix:?}: {hits:?}");
        }
    }

    #[test]
    fn device_reta_agrees_with_the_model_for_every_hash_bit_pattern() {
        for workers in [1, 2, 3, 4, 7] {
            let model = RssModel::new(workers);
            for size in [128, 256, 512, 1024, 2048] {
                let reta = model.reta_for_device(size).unwrap();
                assert_eq!(reta.len(), size);
                // The device reads only the low log2(size) bits: every
                // pattern of them, and high bits that must not matter.
                for low in 0..size as u32 {
                    for high in [0u32, 0xdead_0000, 0xffff_f800] {
                        let hash = (high & !(size as u32 - 1)) | low;
                        assert_eq!(
                            usize::from(reta[hash as usize & (size - 1)]),
                            model.worker_of_hash(hash),
                            "{workers} workers, RETA {size}, hash {hash:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn device_reta_smaller_than_the_model_is_refused() {
        let model = RssModel::new(3);
        assert_eq!(model.reta_for_device(64), None);
        assert_eq!(model.reta_for_device(0), None);
    }

    #[test]
    fn device_reta_of_a_size_not_a_power_of_two_is_refused() {
        let model = RssModel::new(2);
        assert_eq!(model.reta_for_device(192), None);
        assert_eq!(model.reta_for_device(1000), None);
    }

    #[test]
    fn client_side_names_parse_back() {
        for side in ClientSide::ALL {
            assert_eq!(side.name().parse::<ClientSide>(), Ok(side));
        }
        let err = "source".parse::<ClientSide>().unwrap_err().to_string();
        assert!(
            err.contains("\"client-source\", \"client-destination\""),
            "{err}"
        );
    }
}
