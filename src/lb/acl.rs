//! A virtual server's `allow` and `deny` lists of client prefixes.
//!
//! The rule: the longest prefix that contains the client decides (a deny
//! inside an allowed network, or an allow inside a denied one, both work,
//! whatever their order in the file); the same prefix in both lists denies.
//! A client no prefix contains is allowed when the `allow` list is empty
//! and denied otherwise (an `allow` list names everyone who may connect).
//! The lists may hold IPv4 and IPv6 prefixes; a client is matched against
//! the prefixes of its own family, and an `allow` list of either family
//! makes an unnamed client of any family denied.
//!
//! Checked once per new connection, so the lookup must stay cheap even
//! with long lists: the prefixes are grouped by length, longest first, each
//! group a sorted array of networks searched by bisection. A lookup costs
//! one bisection per distinct prefix length in the lists (at most 33 for
//! IPv4, 129 for IPv6), not one comparison per prefix; a list of a few
//! /32s and a /24 is two bisections.

use crate::wire::cidr::{Cidr, CidrAddr};
use crate::wire::{Ipv4Cidr, Ipv6Cidr};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Prefixes of one length: their mask and their networks, sorted, each
/// with its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Level<B> {
    mask: B,
    networks: Vec<(B, bool)>,
}

/// The prefixes of one family, by length, longest first.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Levels<A: CidrAddr>(Vec<Level<A::Bits>>);

impl<A: CidrAddr> Default for Levels<A> {
    fn default() -> Self {
        Levels(Vec::new())
    }
}

impl<A: CidrAddr> Levels<A>
where
    A::Bits: Ord,
{
    fn new(allow: &[Cidr<A>], deny: &[Cidr<A>]) -> Self {
        let mut levels: Vec<Level<A::Bits>> = Vec::new();
        let entries = allow
            .iter()
            .map(|c| (c, true))
            .chain(deny.iter().map(|c| (c, false)));
        for (cidr, allowed) in entries {
            let mask = cidr.mask();
            let net = cidr.addr().to_int() & mask;
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
        // Longer prefixes have larger masks (more leading ones): first.
        levels.sort_unstable_by_key(|l| std::cmp::Reverse(l.mask));
        Levels(levels)
    }

    /// The verdict of the longest prefix containing `client`, if any.
    #[inline]
    fn verdict(&self, client: A) -> Option<bool> {
        let ip = client.to_int();
        self.0.iter().find_map(|l| {
            let net = ip & l.mask;
            l.networks
                .binary_search_by_key(&net, |&(n, _)| n)
                .ok()
                .map(|i| l.networks[i].1)
        })
    }
}

/// An allow/deny list (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    allow: Vec<Ipv4Cidr>,
    deny: Vec<Ipv4Cidr>,
    allow6: Vec<Ipv6Cidr>,
    deny6: Vec<Ipv6Cidr>,
    levels: Levels<Ipv4Addr>,
    levels6: Levels<Ipv6Addr>,
}

impl Acl {
    /// IPv4 lists as configured (host bits of each prefix are ignored).
    pub fn new(allow: Vec<Ipv4Cidr>, deny: Vec<Ipv4Cidr>) -> Acl {
        Acl {
            levels: Levels::new(&allow, &deny),
            allow,
            deny,
            ..Acl::default()
        }
    }

    /// The same lists with IPv6 prefixes added.
    pub fn with_ipv6(mut self, allow6: Vec<Ipv6Cidr>, deny6: Vec<Ipv6Cidr>) -> Acl {
        self.levels6 = Levels::new(&allow6, &deny6);
        self.allow6 = allow6;
        self.deny6 = deny6;
        self
    }

    /// True when the lists are all empty: everyone is allowed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.levels.0.is_empty() && self.levels6.0.is_empty()
    }

    /// The IPv4 `allow` prefixes, as configured.
    pub fn allow(&self) -> &[Ipv4Cidr] {
        &self.allow
    }

    /// The IPv4 `deny` prefixes, as configured.
    pub fn deny(&self) -> &[Ipv4Cidr] {
        &self.deny
    }

    /// The IPv6 `allow` prefixes, as configured.
    pub fn allow6(&self) -> &[Ipv6Cidr] {
        &self.allow6
    }

    /// The IPv6 `deny` prefixes, as configured.
    pub fn deny6(&self) -> &[Ipv6Cidr] {
        &self.deny6
    }

    /// True when a client no prefix names may connect: no `allow` list.
    #[inline]
    fn allows_unnamed(&self) -> bool {
        self.allow.is_empty() && self.allow6.is_empty()
    }

    /// True when `client` may open a connection.
    #[inline]
    pub fn allows(&self, client: Ipv4Addr) -> bool {
        self.levels
            .verdict(client)
            .unwrap_or_else(|| self.allows_unnamed())
    }

    /// True when the IPv6 `client` may open a connection.
    #[inline]
    pub fn allows_ipv6(&self, client: Ipv6Addr) -> bool {
        self.levels6
            .verdict(client)
            .unwrap_or_else(|| self.allows_unnamed())
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

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn acl6(allow: &[&str], deny: &[&str]) -> Acl {
        let list = |l: &[&str]| -> Vec<Ipv6Cidr> { l.iter().map(|s| s.parse().unwrap()).collect() };
        Acl::default().with_ipv6(list(allow), list(deny))
    }

    #[test]
    fn ipv6_prefixes_follow_the_same_rules() {
        let a = acl6(
            &["2001:db8::/32", "2001:db8:1:2::/64"],
            &["2001:db8:1::/48"],
        );
        assert!(!a.is_empty());
        assert!(a.allows_ipv6(ip6("2001:db8:9::1")));
        assert!(
            !a.allows_ipv6(ip6("2001:db8:1:9::1")),
            "deny inside an allow"
        );
        assert!(a.allows_ipv6(ip6("2001:db8:1:2::5")), "allow inside a deny");
        assert!(
            !a.allows_ipv6(ip6("2001:db9::1")),
            "not named by the allow list"
        );
        let same = acl6(&["2001:db8::/32"], &["2001:db8::/32"]);
        assert!(!same.allows_ipv6(ip6("2001:db8::1")));
        let all = acl6(&[], &["::/0"]);
        assert!(!all.allows_ipv6(ip6("::1")));
    }

    #[test]
    fn an_allow_list_of_one_family_denies_unnamed_clients_of_the_other() {
        let v4 = acl(&["192.0.2.0/24"], &[]);
        assert!(!v4.allows_ipv6(ip6("2001:db8::1")));
        let v6 = acl6(&["2001:db8::/32"], &[]);
        assert!(!v6.allows(ip("192.0.2.1")));
        // A deny list of one family leaves the other alone.
        let deny6 = acl6(&[], &["2001:db8::/32"]);
        assert!(deny6.allows(ip("192.0.2.1")));
        assert!(!deny6.allows_ipv6(ip6("2001:db8::1")));
    }

    #[test]
    fn the_longest_of_129_ipv6_prefix_lengths_decides() {
        // Every length of 2001:db8::1, even ones allowed, odd ones denied:
        // each address below is matched longest by the length named.
        let (allow, deny): (Vec<Ipv6Cidr>, Vec<Ipv6Cidr>) = (0..=128u8)
            .map(|len| Ipv6Cidr::new(ip6("2001:db8::1"), len).unwrap())
            .partition(|c| c.prefix_len() % 2 == 0);
        let a = Acl::default().with_ipv6(allow, deny);
        assert!(a.allows_ipv6(ip6("2001:db8::1")), "/128, allowed");
        assert!(!a.allows_ipv6(ip6("2001:db8::")), "/127, denied");
        assert!(a.allows_ipv6(ip6("2001:db8::3")), "/126, allowed");
        assert!(a.allows_ipv6(ip6("a001:db8::1")), "/0 only, allowed");
        assert!(!a.allows_ipv6(ip6("6001:db8::1")), "/1, denied");
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
