//! What a standby accepts of a record the peer sent: only connections to
//! a service and real server of its own configuration, and never for
//! longer than its own timeouts allow. A record is a claim about the
//! peer's table; this balancer's table is its own, so a forged or stale
//! record must not install a connection nothing local would route, nor
//! hold a slot longer than a real connection in that state could (136
//! years, once).

use super::sync::{Record, Record6, RecordError};
use crate::lb::service::{ForwardMethod, Protocol, ServiceTable, SORRY_SERVER};
use crate::lb::tcp_state::{State, Timeouts};
use std::sync::Arc;

/// A record the filter let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The record, its timeout capped.
    pub record: Record,
    /// The timeout was above the local one and was lowered to it.
    pub capped: bool,
}

/// An IPv6 record the filter let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admitted6 {
    /// The record, its timeout capped.
    pub record: Record6,
    /// The timeout was above the local one and was lowered to it.
    pub capped: bool,
}

/// The local configuration records are checked against.
#[derive(Clone, Debug)]
pub struct RecordFilter {
    services: Arc<ServiceTable>,
    timeouts: Timeouts,
}

impl RecordFilter {
    /// Checks records against `services` and caps them at `timeouts`.
    pub fn new(services: Arc<ServiceTable>, timeouts: Timeouts) -> RecordFilter {
        RecordFilter { services, timeouts }
    }

    /// The services after a reload.
    pub fn set_services(&mut self, services: Arc<ServiceTable>) {
        self.services = services;
    }

    /// The local timeout of a record's state, in whole seconds, rounded
    /// up (at least 1).
    pub fn limit_s(&self, r: &Record) -> u32 {
        self.limit_of(r.protocol, r.state)
    }

    /// The local timeout of `state` of `protocol`, in whole seconds,
    /// rounded up (at least 1).
    fn limit_of(&self, protocol: Protocol, state: State) -> u32 {
        let ns = match protocol {
            Protocol::Tcp => self.timeouts.tcp(state),
            _ => self.timeouts.udp(),
        };
        u32::try_from(ns.div_ceil(1_000_000_000).max(1)).unwrap_or(u32::MAX)
    }

    /// The IPv6 record if its service (by its IPv6 VIP) and real server
    /// (or sorry server, by IPv6 endpoint) are configured here, its
    /// timeout capped at the local one: [`RecordFilter::check`]'s rules.
    /// A FullNAT service's record (not REMOVED) must carry one of the
    /// service's local addresses (IPv6, or IPv4-mapped for NAT64), else
    /// `UnknownLocalAddress`.
    pub fn check6(&self, r: &Record6) -> Result<Admitted6, RecordError> {
        let vs = self
            .services
            .lookup6(r.vip, r.protocol)
            .ok_or(RecordError::UnknownService)?;
        let service = self.services.get(vs);
        let known = (0..service.real_servers.len() as u16)
            .chain([SORRY_SERVER])
            .any(|rs| service.real_endpoint6(rs) == Some(r.real));
        if !known {
            return Err(RecordError::UnknownRealServer);
        }
        if service.forward == ForwardMethod::FullNat
            && !r.removed
            && !r.local.is_some_and(|l| service.has_local6(l.ip))
        {
            return Err(RecordError::UnknownLocalAddress);
        }
        let limit = self.limit_of(r.protocol, r.state);
        let mut record = *r;
        let capped = !r.removed && r.timeout_s > limit;
        if capped {
            record.timeout_s = limit;
        }
        Ok(Admitted6 { record, capped })
    }

    /// The record if its service and real server (or sorry server) are
    /// configured here, its timeout capped at the local one.
    pub fn check(&self, r: &Record) -> Result<Admitted, RecordError> {
        let vs = self
            .services
            .lookup(r.vip, r.protocol)
            .ok_or(RecordError::UnknownService)?;
        let service = self.services.get(vs);
        let known = service.real_servers.iter().any(|s| s.endpoint == r.real)
            || service.sorry_server == Some(r.real);
        if !known {
            return Err(RecordError::UnknownRealServer);
        }
        if service.forward == ForwardMethod::FullNat
            && !r.removed
            && !r
                .local
                .is_some_and(|l| service.local.addresses.contains(&l.ip))
        {
            // The connection's replies come to its local address: one this
            // balancer does not have could not be taken over.
            return Err(RecordError::UnknownLocalAddress);
        }
        let limit = self.limit_s(r);
        let mut record = *r;
        let capped = !r.removed && r.timeout_s > limit;
        if capped {
            record.timeout_s = limit;
        }
        Ok(Admitted { record, capped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::service::{SchedulerKind, ServiceKey, VirtualService};
    use crate::lb::xmit::{Endpoint, Endpoint6};
    use std::net::Ipv4Addr;

    fn ep(a: [u8; 4], port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(a), port)
    }

    fn filter() -> RecordFilter {
        let key = ServiceKey {
            vip: ep([203, 0, 113, 100], 80),
            protocol: Protocol::Tcp,
        };
        let vs = VirtualService::new(
            "web",
            key,
            ForwardMethod::Nat,
            SchedulerKind::Rr,
            [(ep([10, 1, 0, 11], 8080), 1)],
        );
        RecordFilter::new(Arc::new(ServiceTable::new(vec![vs])), Timeouts::default())
    }

    fn record(timeout_s: u32) -> Record {
        Record {
            protocol: Protocol::Tcp,
            state: State::Established,
            input_only: false,
            removed: false,
            client: ep([198, 51, 100, 7], 40000),
            vip: ep([203, 0, 113, 100], 80),
            real: ep([10, 1, 0, 11], 8080),
            timeout_s,
            local: None,
        }
    }

    #[test]
    fn a_record_within_the_local_timeout_passes_unchanged() {
        let r = record(600);
        assert_eq!(
            filter().check(&r),
            Ok(Admitted {
                record: r,
                capped: false
            })
        );
    }

    #[test]
    fn a_record_timeout_is_capped_at_the_local_timeout_of_its_state() {
        let a = filter().check(&record(u32::MAX)).unwrap();
        assert!(a.capped);
        assert_eq!(a.record.timeout_s, 900, "ESTABLISHED's default");
        let syn = Record {
            state: State::SynRecv,
            ..record(u32::MAX)
        };
        assert_eq!(filter().check(&syn).unwrap().record.timeout_s, 60);
    }

    #[test]
    fn a_record_for_an_unknown_service_is_refused() {
        let r = Record {
            vip: ep([203, 0, 113, 100], 443),
            ..record(60)
        };
        assert_eq!(filter().check(&r), Err(RecordError::UnknownService));
        let udp = Record {
            protocol: Protocol::Udp,
            ..record(60)
        };
        assert_eq!(filter().check(&udp), Err(RecordError::UnknownService));
    }

    #[test]
    fn a_record_for_an_unknown_real_server_is_refused() {
        let r = Record {
            real: ep([10, 1, 0, 99], 8080),
            ..record(60)
        };
        assert_eq!(filter().check(&r), Err(RecordError::UnknownRealServer));
    }

    #[test]
    fn a_fullnat_record_needs_one_of_the_services_local_addresses() {
        let key = ServiceKey {
            vip: ep([203, 0, 113, 100], 80),
            protocol: Protocol::Tcp,
        };
        let mut vs = VirtualService::new(
            "fnat",
            key,
            ForwardMethod::FullNat,
            SchedulerKind::Rr,
            [(ep([10, 1, 0, 11], 8080), 1)],
        );
        vs.local.addresses = vec![Ipv4Addr::new(10, 2, 0, 100)];
        let f = RecordFilter::new(Arc::new(ServiceTable::new(vec![vs])), Timeouts::default());
        let r = Record {
            protocol: Protocol::Tcp,
            state: State::Established,
            input_only: false,
            removed: false,
            client: ep([198, 51, 100, 7], 40000),
            vip: ep([203, 0, 113, 100], 80),
            real: ep([10, 1, 0, 11], 8080),
            timeout_s: 60,
            local: Some(ep([10, 2, 0, 100], 1024)),
        };
        assert!(f.check(&r).is_ok());
        for local in [None, Some(ep([10, 2, 0, 101], 1024))] {
            assert_eq!(
                f.check(&Record { local, ..r }).err(),
                Some(RecordError::UnknownLocalAddress)
            );
        }
    }

    fn ep6(a: &str, port: u16) -> Endpoint6 {
        Endpoint6::new(a.parse().unwrap(), port)
    }

    /// An IPv6 service (2001:db8:100::1 port 80, NAT) with one real server
    /// and a sorry server, beside the IPv4 one.
    fn filter6() -> RecordFilter {
        let v4 = filter().services.services()[0].clone();
        let v6 = VirtualService::new6(
            "web6",
            ep6("2001:db8:100::1", 80),
            Protocol::Tcp,
            ForwardMethod::Nat,
            SchedulerKind::Rr,
            [(ep6("2001:db8:2::11", 8080), 1)],
        )
        .with_sorry_server6(ep6("2001:db8:2::99", 8080));
        RecordFilter::new(
            Arc::new(ServiceTable::new(vec![v4, v6])),
            Timeouts::default(),
        )
    }

    fn record6(timeout_s: u32) -> Record6 {
        Record6 {
            protocol: Protocol::Tcp,
            state: State::Established,
            input_only: false,
            removed: false,
            client: ep6("2001:db8:1::7", 40000),
            vip: ep6("2001:db8:100::1", 80),
            real: ep6("2001:db8:2::11", 8080),
            timeout_s,
            local: None,
        }
    }

    #[test]
    fn an_ipv6_record_of_a_known_service_passes_capped_at_the_local_timeout() {
        let f = filter6();
        assert_eq!(
            f.check6(&record6(600)),
            Ok(Admitted6 {
                record: record6(600),
                capped: false
            })
        );
        let a = f.check6(&record6(u32::MAX)).unwrap();
        assert!(a.capped);
        assert_eq!(a.record.timeout_s, 900);
        let sorry = Record6 {
            real: ep6("2001:db8:2::99", 8080),
            ..record6(60)
        };
        assert!(f.check6(&sorry).is_ok(), "the sorry server is known");
    }

    #[test]
    fn an_ipv6_record_for_an_unknown_service_or_server_is_refused() {
        let f = filter6();
        for vip in [ep6("2001:db8:100::1", 443), ep6("2001:db8:100::2", 80)] {
            let r = Record6 { vip, ..record6(60) };
            assert_eq!(f.check6(&r), Err(RecordError::UnknownService));
        }
        let udp = Record6 {
            protocol: Protocol::Udp,
            ..record6(60)
        };
        assert_eq!(f.check6(&udp), Err(RecordError::UnknownService));
        for real in [ep6("2001:db8:2::12", 8080), ep6("2001:db8:2::11", 8081)] {
            let r = Record6 {
                real,
                ..record6(60)
            };
            assert_eq!(f.check6(&r), Err(RecordError::UnknownRealServer));
        }
    }

    #[test]
    fn an_ipv6_fullnat_record_needs_one_of_the_services_ipv6_local_addresses() {
        let mut vs = VirtualService::new6(
            "fnat6",
            ep6("2001:db8:100::1", 80),
            Protocol::Tcp,
            ForwardMethod::FullNat,
            SchedulerKind::Rr,
            [(ep6("2001:db8:2::11", 8080), 1)],
        );
        vs.local.addresses6 = vec!["2001:db8:3::1".parse().unwrap()];
        let f = RecordFilter::new(Arc::new(ServiceTable::new(vec![vs])), Timeouts::default());
        let with = |local| Record6 {
            local,
            ..record6(60)
        };
        assert!(f.check6(&with(Some(ep6("2001:db8:3::1", 1024)))).is_ok());
        for local in [None, Some(ep6("2001:db8:3::2", 1024))] {
            assert_eq!(
                f.check6(&with(local)),
                Err(RecordError::UnknownLocalAddress)
            );
        }
    }

    #[test]
    fn the_two_families_never_match_each_others_services() {
        // The IPv4 service's VIP as an IPv4-mapped address is no IPv6
        // service, and the IPv6 service is not found by an IPv4 record.
        let f = filter6();
        let mapped = Record6 {
            vip: ep6("::ffff:203.0.113.100", 80),
            ..record6(60)
        };
        assert_eq!(f.check6(&mapped), Err(RecordError::UnknownService));
        let r = Record {
            vip: ep([0, 0, 0, 0], 80),
            real: ep([0, 0, 0, 0], 8080),
            ..record(60)
        };
        assert_eq!(f.check(&r), Err(RecordError::UnknownService));
    }
}
