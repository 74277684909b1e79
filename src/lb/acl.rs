//! A virtual server's `allow` and `deny` lists of client prefixes.
//!
//! The rule: the longest prefix that contains the client decides (a deny
//! inside an allowed network, or an allow inside a denied one, both work,
//! whatever their order in the file); the same prefix in both lists denies.
//! A client no prefix contains is allowed when the `allow` list is empty
//! and denied otherwise (an `allow` list names everyone who may connect).
//!
//! Checked once per new connection, so the lookup must stay cheap even
//! with long lists: the prefixes are grouped by length, longest first, each
//! group a sorted array of networks searched by bisection. A lookup costs
//! one bisection per distinct prefix length in the lists (at most 33), not
//! one comparison per prefix; a list of a few /32s and a /24 is two
//! bisections.

use crate::wire::Ipv4Cidr;
use std::net::Ipv4Addr;

/// Prefixes of one length: their mask and their networks, sorted, each
/// with its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Level {
    mask: u32,
    networks: Vec<(u32, bool)>,
}

/// An allow/deny list (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    allow: Vec<Ipv4Cidr>,
    deny: Vec<Ipv4Cidr>,
    /// By prefix length, longest first.
    levels: Vec<Level>,
}

impl Acl {
    /// The lists as configured (host bits of each prefix are ignored).
    pub fn new(allow: Vec<Ipv4Cidr>, deny: Vec<Ipv4Cidr>) -> Acl {
        let mut levels: Vec<Level> = Vec::new();
        let entries = allow
            .iter()
            .map(|c| (c, true))
            .chain(deny.iter().map(|c| (c, false)));
        for (cidr, allowed) in entries {
            let mask = cidr.mask();
            let net = u32::from(cidr.addr()) & mask;
            let level = match levels.iter_mut().position(|l| l.mask == mask) {
                Some(i) => &mut levels[i],
                None => {
                    levels.push(Level {
                        mask,
                        networks: Vec::new(),
                    });
                    levels.last_mut().expect("just pushed")
                }
            };
            level.networks.push((net, allowed));
        }
        for l in &mut levels {
            // Deny (false) sorts before allow, and the first of equal
            // networks is kept: the same prefix in both lists denies.
            l.networks.sort_unstable();
            l.networks.dedup_by_key(|&mut (n, _)| n);
        }
        // Longer prefixes have more mask bits: they come first.
        levels.sort_unstable_by_key(|l| std::cmp::Reverse(l.mask.count_ones()));
        Acl {
            allow,
            deny,
            levels,
        }
    }

    /// True when the lists are both empty: everyone is allowed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// The `allow` list, as configured.
    pub fn allow(&self) -> &[Ipv4Cidr] {
        &self.allow
    }

    /// The `deny` list, as configured.
    pub fn deny(&self) -> &[Ipv4Cidr] {
        &self.deny
    }

    /// True when `client` may open a connection.
    #[inline]
    pub fn allows(&self, client: Ipv4Addr) -> bool {
        let ip = u32::from(client);
        for l in &self.levels {
            let net = ip & l.mask;
            if let Ok(i) = l.networks.binary_search_by_key(&net, |&(n, _)| n) {
                return l.networks[i].1;
            }
        }
        self.allow.is_empty()
    }

    /// Whether an IPv6 client is allowed. The lists hold IPv4 prefixes
    /// only (IPv6 prefixes in `allow`/`deny` are not configurable yet), so
    /// an IPv6 client matches none of them: allowed when there is no allow
    /// list, as an unlisted IPv4 client is.
    pub fn allows_ipv6(&self, _client: std::net::Ipv6Addr) -> bool {
        self.allow.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Ipv4Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn acl(allow: &[&str], deny: &[&str]) -> Acl {
        Acl::new(cidrs(allow), cidrs(deny))
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_lists_allow_everyone() {
        let a = Acl::default();
        assert!(a.is_empty());
        assert!(a.allows(ip("192.0.2.1")));
    }

    #[test]
    fn a_deny_list_alone_refuses_only_its_prefixes() {
        let a = acl(&[], &["192.0.2.0/24"]);
        assert!(!a.allows(ip("192.0.2.9")));
        assert!(a.allows(ip("192.0.3.9")));
    }

    #[test]
    fn an_allow_list_refuses_everyone_it_does_not_name() {
        let a = acl(&["198.51.100.0/24", "203.0.113.7/32"], &[]);
        assert!(a.allows(ip("198.51.100.200")));
        assert!(a.allows(ip("203.0.113.7")));
        assert!(!a.allows(ip("203.0.113.8")));
    }

    #[test]
    fn the_longest_prefix_decides() {
        let a = acl(&["10.0.0.0/8", "10.1.2.0/24"], &["10.1.0.0/16"]);
        assert!(a.allows(ip("10.9.9.9")));
        assert!(!a.allows(ip("10.1.9.9")), "deny inside an allow");
        assert!(a.allows(ip("10.1.2.3")), "allow inside a deny");
    }

    #[test]
    fn the_same_prefix_in_both_lists_denies() {
        let a = acl(&["192.0.2.0/24"], &["192.0.2.0/24"]);
        assert!(!a.allows(ip("192.0.2.1")));
    }

    #[test]
    fn host_bits_of_a_prefix_are_ignored_and_slash_zero_matches_all() {
        let a = acl(&["192.0.2.77/24"], &["0.0.0.0/0"]);
        assert!(a.allows(ip("192.0.2.1")));
        assert!(!a.allows(ip("8.8.8.8")));
    }

    #[test]
    fn many_prefixes_of_one_length_are_found_by_bisection() {
        let deny: Vec<Ipv4Cidr> = (0..1000u32)
            .map(|i| Ipv4Cidr::new(Ipv4Addr::from(0x0a00_0000 + i * 7), 32).unwrap())
            .collect();
        let a = Acl::new(Vec::new(), deny);
        assert!(!a.allows(Ipv4Addr::from(0x0a00_0000 + 700)));
        assert!(a.allows(Ipv4Addr::from(0x0a00_0000 + 701)));
    }
}
