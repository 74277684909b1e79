//! From the raw TOML model to the typed `Config`, checking every rule and
//! collecting every problem.
//!
//! Each section is converted by its own function, which parses the values
//! it can, reports those it cannot, and hands on what it has (`None` or a
//! shorter list) so later cross-checks still run on the rest. A check whose
//! input is itself broken is skipped rather than reported again: a route
//! via an interface whose address did not parse gets no "not in a connected
//! subnet" error on top. The `Config` is built only when nothing was
//! reported.
//!
//! A new section gets its own function here and a field in `RawConfig` and
//! `Config`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::config::{
    is_prime, ClientSide, Config, ControlConfig, DataplaneConfig, Device, DpdkConfig,
    ForwardMethod, HaConfig, HealthCheckConfig, HealthCheckKind, InterfaceConfig, NeighborConfig,
    Protocol, RealServerConfig, RouteConfig, SchedulerKind, TimeoutsConfig, VirtualServerConfig,
    MAX_LCORES,
};
use super::eal_args::EalArgs;
use super::error::Errors;
use super::raw::{
    Array, Int, RawConfig, RawControl, RawDataplane, RawDpdk, RawHa, RawHealthCheck, RawInterface,
    RawNeighbor, RawRealServer, RawRoute, RawTimeouts, RawVirtualServer, S,
};
use crate::wire::cidr::{Cidr, CidrAddr};
use crate::wire::{IpCidr, Ipv4Cidr, Ipv6Cidr, MacAddr};
use std::net::{IpAddr, Ipv6Addr};

mod client_address;
mod cluster;
mod fullnat;
mod health_kinds;
mod limits;
mod passive;
mod priority;
mod quorum;
mod slow_start;
#[cfg(test)]
mod testing;
mod tls;

/// Converts and checks `raw`; `Some` only when every part converted
/// (the caller also checks that `errors` stayed empty).
pub(super) fn build(raw: RawConfig, errors: &mut Errors) -> Option<Config> {
    let interfaces = interfaces(&raw.interface.0, errors);
    let dpdk = dpdk(raw.dpdk.as_ref(), &interfaces, errors);
    let dataplane = dataplane(raw.dataplane.as_ref(), errors);
    let (routes, routes6) = match routes(&raw.route.0, &interfaces, errors) {
        Some((v4, v6)) => (Some(v4), Some(v6)),
        None => (None, None),
    };
    let (neighbors, neighbors6) = match neighbors(&raw.neighbor.0, &interfaces, errors) {
        Some((v4, v6)) => (Some(v4), Some(v6)),
        None => (None, None),
    };
    let control = control(raw.control.as_ref(), errors);
    let timeouts = timeouts(raw.timeouts.as_ref(), errors);
    let virtual_servers = virtual_servers(
        &raw.virtual_server.0,
        &interfaces,
        routes.as_deref(),
        errors,
    );
    let ha = ha(raw.ha.as_ref(), &interfaces, errors);
    let cluster = cluster::cluster(&raw, errors);

    let interfaces = interfaces
        .into_iter()
        .map(Interface::finish)
        .collect::<Option<Vec<_>>>()?;
    Some(Config {
        dpdk: dpdk?,
        dataplane: dataplane?,
        interfaces,
        routes: routes?,
        routes6: routes6?,
        neighbors: neighbors?,
        neighbors6: neighbors6?,
        control: control?,
        timeouts: timeouts?,
        virtual_servers: virtual_servers?,
        ha: ha?,
        cluster: cluster?,
    })
}

// ---------------------------------------------------------------- values

/// The span of an optional spanned value.
fn span_of<T>(v: Option<&S<T>>) -> Option<Range<usize>> {
    v.map(S::span)
}

/// A required field: reports it missing (at its table's line) when absent.
fn required<'a, T>(
    value: &'a Option<S<T>>,
    field: &str,
    table: Option<Range<usize>>,
    errors: &mut Errors,
) -> Option<&'a S<T>> {
    if value.is_none() {
        errors.push(field, table, "missing required field");
    }
    value.as_ref()
}

/// An integer within `min..=max`.
fn int_in(value: &S<Int>, field: &str, min: i64, max: i64, errors: &mut Errors) -> Option<i64> {
    let Int(n) = *value.get_ref();
    if (min..=max).contains(&n) {
        Some(n)
    } else {
        errors.push(
            field,
            Some(value.span()),
            format!("{n} is out of range: must be {min} to {max}"),
        );
        None
    }
}

/// A string parsed with `FromStr`, the parser's message reported.
fn parse<T>(value: &S<String>, field: &str, errors: &mut Errors) -> Option<T>
where
    T: FromStr,
    T::Err: Display,
{
    value
        .get_ref()
        .parse()
        .map_err(|e: T::Err| errors.push(field, Some(value.span()), e.to_string()))
        .ok()
}

/// An optional integer within `min..=max`: `default` when absent, `None`
/// (reported) when out of range.
/// An optional milliseconds key within `min..=max` (default `default`),
/// as a duration; the error names `field`.
fn millis_or(
    value: Option<&S<Int>>,
    field: &str,
    min: u64,
    max: u64,
    default: u64,
    errors: &mut Errors,
) -> Option<Duration> {
    // The bounds fit in i64, and the values in u64 (checked).
    int_or(value, field, min as i64, max as i64, default as i64, errors)
        .map(|ms| Duration::from_millis(ms as u64))
}

fn int_or(
    value: Option<&S<Int>>,
    field: &str,
    min: i64,
    max: i64,
    default: i64,
    errors: &mut Errors,
) -> Option<i64> {
    match value {
        None => Some(default),
        Some(v) => int_in(v, field, min, max, errors),
    }
}

/// An optional keyword (`protocol = "tcp"`): `default` when absent.
fn keyword_or<T>(
    value: Option<&S<String>>,
    field: &str,
    default: T,
    errors: &mut Errors,
) -> Option<T>
where
    T: FromStr,
    T::Err: Display,
{
    match value {
        None => Some(default),
        Some(v) => parse(v, field, errors),
    }
}

/// An IPv4 address (std's parse error does not quote the input).
fn ipv4(value: &S<String>, field: &str, errors: &mut Errors) -> Option<Ipv4Addr> {
    let s = value.get_ref();
    s.parse()
        .map_err(|_| {
            errors.push(
                field,
                Some(value.span()),
                format!("invalid IPv4 address {s:?}: expected dotted quad like 10.0.0.1"),
            )
        })
        .ok()
}

/// `interface[0] "ext"`, or `interface[0]` when its name did not parse.
fn describe(index: usize, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("interface[{index}] {name:?}"),
        None => format!("interface[{index}]"),
    }
}

// ---------------------------------------------------------------- [dpdk]

/// `[dpdk]`, with the `eal_args` cross-checks against workers and devices.
fn dpdk(
    raw: Option<&S<RawDpdk>>,
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<DpdkConfig> {
    let Some(raw) = raw else {
        errors.push(
            "dpdk",
            None,
            "missing required section [dpdk] (at least `workers = [1]`)",
        );
        return None;
    };
    let table = Some(raw.span());
    let raw = raw.get_ref();

    let eal_args: Vec<&S<String>> = raw
        .eal_args
        .as_ref()
        .map(|a| a.get_ref().0.iter().collect())
        .unwrap_or_default();

    let workers = required(&raw.workers, "dpdk.workers", table, errors).map(|list| {
        if list.get_ref().0.is_empty() {
            errors.push(
                "dpdk.workers",
                Some(list.span()),
                "needs at least one worker lcore",
            );
        }
        workers(&list.get_ref().0, errors)
    });

    let args: Vec<String> = eal_args.iter().map(|a| a.get_ref().clone()).collect();
    let eal = EalArgs::read(&args);
    let valid_workers = workers.as_ref().map_or(&[][..], |(valid, _)| valid);
    check_eal_args(&eal, &eal_args, valid_workers, interfaces, errors);

    let (workers, all_valid) = workers?;
    Some(DpdkConfig {
        eal_args: args,
        workers: all_valid.then(|| workers.into_iter().map(|w| w.lcore).collect())?,
    })
}

/// A worker lcore and where it was written.
struct Worker {
    lcore: u32,
    index: usize,
    span: Range<usize>,
}

/// `dpdk.workers`: each in range, none twice. Returns the valid ones, and
/// whether that is all of them.
fn workers(list: &[S<Int>], errors: &mut Errors) -> (Vec<Worker>, bool) {
    let mut out = Vec::new();
    let mut seen: HashMap<u32, usize> = HashMap::new();
    let mut ok = true;
    for (index, value) in list.iter().enumerate() {
        let field = format!("dpdk.workers[{index}]");
        let Some(lcore) = int_in(value, &field, 0, i64::from(MAX_LCORES) - 1, errors) else {
            ok = false;
            continue;
        };
        let lcore = lcore as u32; // in 0..MAX_LCORES
        match seen.entry(lcore) {
            Entry::Occupied(first) => {
                errors.push(
                    field,
                    Some(value.span()),
                    format!(
                        "duplicate lcore {lcore} (also dpdk.workers[{}])",
                        first.get()
                    ),
                );
                ok = false;
            }
            Entry::Vacant(slot) => {
                slot.insert(index);
                out.push(Worker {
                    lcore,
                    index,
                    span: value.span(),
                });
            }
        }
    }
    (out, ok)
}

/// The `eal_args` rules: readable values, one core list that holds every
/// worker and keeps the main lcore free, no interface device named again,
/// no `--in-memory` with `--no-huge`.
fn check_eal_args(
    eal: &EalArgs,
    args: &[&S<String>],
    workers: &[Worker],
    interfaces: &[Interface],
    errors: &mut Errors,
) {
    let field = |i: usize| format!("dpdk.eal_args[{i}]");
    let span = |i: usize| args.get(i).map(|a| a.span());

    for problem in &eal.problems {
        errors.push(
            field(problem.index),
            span(problem.index),
            problem.value.clone(),
        );
    }

    if let Some((first, rest)) = eal.core_lists.split_first() {
        for extra in rest {
            errors.push(
                field(extra.index),
                span(extra.index),
                format!(
                    "{} repeats the core list given by {} at dpdk.eal_args[{}]; the EAL takes \
                     only one of -l, -c and --lcores",
                    extra.value.option.flag(),
                    first.value.option.flag(),
                    first.index
                ),
            );
        }
    }

    let lcores = eal.lcores();
    if let (Some(main), Some((list, set))) = (&eal.main_lcore, lcores) {
        if !set.contains(&main.value) {
            errors.push(
                field(main.index),
                span(main.index),
                format!(
                    "--main-lcore {} is not in the core list {} {}",
                    main.value,
                    list.value.option.flag(),
                    list.value.text
                ),
            );
        }
    }
    let main = match (&eal.main_lcore, lcores) {
        (Some(main), _) => Some((main.value, "--main-lcore".to_string())),
        (None, Some((list, set))) => set.first().map(|&first| {
            (
                first,
                format!(
                    "the lowest lcore of {} {}",
                    list.value.option.flag(),
                    list.value.text
                ),
            )
        }),
        (None, None) => None,
    };

    for worker in workers {
        let wfield = format!("dpdk.workers[{}]", worker.index);
        if let Some((list, set)) = lcores {
            if !set.contains(&worker.lcore) {
                errors.push(
                    wfield,
                    Some(worker.span.clone()),
                    format!(
                        "lcore {} is not in the EAL core list {} {} (dpdk.eal_args[{}])",
                        worker.lcore,
                        list.value.option.flag(),
                        list.value.text,
                        list.index
                    ),
                );
                continue;
            }
        }
        if let Some((main, why)) = &main {
            if worker.lcore == *main {
                errors.push(
                    wfield,
                    Some(worker.span.clone()),
                    format!(
                        "lcore {main} is the EAL main lcore ({why}), which runs the control \
                         thread; workers need other lcores"
                    ),
                );
            }
        }
    }

    for device in &eal.devices {
        let owner = interfaces.iter().enumerate().find(|(_, iface)| {
            iface
                .device
                .as_ref()
                .is_some_and(|d| d.port_name() == device.value.port_name)
        });
        if let Some((index, iface)) = owner {
            errors.push(
                field(device.index),
                span(device.index),
                format!(
                    "{} {} names the device of {}; rvsd passes interface devices to the EAL \
                     itself, so remove it here",
                    device.value.flag,
                    device.value.port_name,
                    describe(index, iface.name.as_deref())
                ),
            );
        }
    }

    if let (Some(in_memory), Some(_)) = (eal.in_memory, eal.no_huge) {
        errors.push(
            field(in_memory),
            span(in_memory),
            "--in-memory cannot be combined with --no-huge (the EAL refuses the pair); \
             use --no-huge --no-shconf",
        );
    }
}

// ----------------------------------------------------------- [dataplane]

/// `[dataplane]`, defaults for what is omitted.
fn dataplane(raw: Option<&RawDataplane>, errors: &mut Errors) -> Option<DataplaneConfig> {
    let defaults = DataplaneConfig::default();
    let Some(raw) = raw else {
        return Some(defaults);
    };
    let mut ok = true;
    let mut get =
        |value: &Option<S<Int>>, field: &str, min: i64, max: i64, default: i64| match value {
            None => default,
            Some(v) => int_in(v, field, min, max, errors).unwrap_or_else(|| {
                ok = false;
                default
            }),
        };
    // The bounds fit in i64 and the values in usize/u64 (checked above).
    let burst_size = get(
        &raw.burst_size,
        "dataplane.burst_size",
        1,
        i64::from(DataplaneConfig::MAX_BURST_SIZE),
        i64::from(defaults.burst_size),
    );
    let conn_table_size = get(
        &raw.conn_table_size,
        "dataplane.conn_table_size",
        1,
        DataplaneConfig::MAX_CONN_TABLE_SIZE as i64,
        defaults.conn_table_size as i64,
    );
    let idle_sleep_us = get(
        &raw.idle_sleep_us,
        "dataplane.idle_sleep_us",
        0,
        DataplaneConfig::MAX_IDLE_SLEEP_US as i64,
        DataplaneConfig::DEFAULT_IDLE_SLEEP_US as i64,
    );
    ok.then(|| DataplaneConfig {
        burst_size: burst_size as u16,
        conn_table_size: conn_table_size as usize,
        idle_sleep: Duration::from_micros(idle_sleep_us as u64),
    })
}

// ---------------------------------------------------------- [[interface]]

/// An interface as far as it parsed; cross-checks use what is there.
struct Interface {
    name: Option<String>,
    device: Option<Device>,
    addresses: Vec<Ipv4Cidr>,
    addresses6: Vec<Ipv6Cidr>,
    /// False when an address was refused, so `addresses` is not the
    /// whole story and "not connected" checks would mislead.
    addresses_complete: bool,
    /// `Err` when a `mac` was given but refused.
    mac: Result<Option<MacAddr>, ()>,
    /// `Err` when an `rss` was given but refused.
    rss: Result<Option<ClientSide>, ()>,
}

impl Interface {
    fn finish(self) -> Option<InterfaceConfig> {
        Some(InterfaceConfig {
            name: self.name?,
            device: self.device?,
            addresses: self.addresses_complete.then_some(self.addresses)?,
            addresses6: self.addresses6,
            mac: self.mac.ok()?,
            rss: self.rss.ok()?,
        })
    }
}

/// `[[interface]]`: at least one; names, devices and addresses unique.
fn interfaces(raw: &[S<RawInterface>], errors: &mut Errors) -> Vec<Interface> {
    if raw.is_empty() {
        errors.push("interface", None, "at least one [[interface]] is required");
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut devices: HashMap<String, usize> = HashMap::new();
    let mut addresses: HashMap<IpAddr, String> = HashMap::new();
    let mut out: Vec<Interface> = Vec::new();

    for (i, table) in raw.iter().enumerate() {
        let span = Some(table.span());
        let t = table.get_ref();

        let name_field = format!("interface[{i}].name");
        let name = required(&t.name, &name_field, span.clone(), errors).and_then(|v| {
            if let Some(problem) = name_problem(v.get_ref(), InterfaceConfig::MAX_NAME_LEN) {
                errors.push(&name_field, Some(v.span()), problem);
                return None;
            }
            match names.entry(v.get_ref().clone()) {
                Entry::Occupied(first) => {
                    errors.push(
                        &name_field,
                        Some(v.span()),
                        format!(
                            "duplicate interface name {:?} (also interface[{}])",
                            v.get_ref(),
                            first.get()
                        ),
                    );
                    None
                }
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    Some(v.get_ref().clone())
                }
            }
        });

        let device_field = format!("interface[{i}].device");
        let device = required(&t.device, &device_field, span.clone(), errors)
            .and_then(|v| parse::<Device>(v, &device_field, errors).map(|d| (d, v.span())))
            .and_then(
                |(device, at)| match devices.entry(device.port_name().to_string()) {
                    Entry::Occupied(first) => {
                        let first = *first.get();
                        let owner = describe(first, out.get(first).and_then(|f| f.name.as_deref()));
                        errors.push(
                            &device_field,
                            Some(at),
                            format!(
                                "duplicate device {:?} (also used by {owner})",
                                device.port_name()
                            ),
                        );
                        None
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                        Some(device)
                    }
                },
            );

        let mac = match &t.mac {
            None => Ok(None),
            Some(v) => unicast_mac(v, &format!("interface[{i}].mac"), "a port", errors)
                .map(Some)
                .ok_or(()),
        };
        let rss = match &t.rss {
            None => Ok(None),
            Some(v) => parse::<ClientSide>(v, &format!("interface[{i}].rss"), errors)
                .map(Some)
                .ok_or(()),
        };
        let mut iface = Interface {
            name,
            device,
            addresses: Vec::new(),
            addresses6: Vec::new(),
            addresses_complete: true,
            mac,
            rss,
        };
        for (j, v) in t
            .addresses
            .iter()
            .flat_map(|a| a.get_ref().0.iter())
            .enumerate()
        {
            let field = format!("interface[{i}].addresses[{j}]");
            let Some(any) = parse::<IpCidr>(v, &field, errors) else {
                iface.addresses_complete = false;
                continue;
            };
            let cidr = match any {
                IpCidr::V4(cidr) => cidr,
                IpCidr::V6(cidr) => {
                    if let Some(problem) = ipv6_address_problem(cidr.addr()) {
                        errors.push(&field, Some(v.span()), format!("{cidr}: {problem}"));
                        iface.addresses_complete = false;
                        continue;
                    }
                    match addresses.entry(IpAddr::V6(cidr.addr())) {
                        Entry::Occupied(first) => {
                            errors.push(
                                &field,
                                Some(v.span()),
                                format!(
                                    "address {} is already assigned at {}",
                                    cidr.addr(),
                                    first.get()
                                ),
                            );
                            iface.addresses_complete = false;
                        }
                        Entry::Vacant(slot) => {
                            slot.insert(field);
                            iface.addresses6.push(cidr);
                        }
                    }
                    continue;
                }
            };
            let ip = cidr.addr();
            let problem = if ip.is_unspecified() {
                Some("0.0.0.0 cannot be an interface address")
            } else if ip.is_multicast() {
                Some("a multicast address cannot be an interface address")
            } else if ip.is_broadcast() {
                Some("255.255.255.255 cannot be an interface address")
            } else {
                None
            };
            if let Some(problem) = problem {
                errors.push(&field, Some(v.span()), format!("{cidr}: {problem}"));
                iface.addresses_complete = false;
                continue;
            }
            match addresses.entry(IpAddr::V4(ip)) {
                Entry::Occupied(first) => {
                    errors.push(
                        &field,
                        Some(v.span()),
                        format!("address {ip} is already assigned at {}", first.get()),
                    );
                    iface.addresses_complete = false;
                }
                Entry::Vacant(slot) => {
                    slot.insert(field);
                    iface.addresses.push(cidr);
                }
            }
        }
        out.push(iface);
    }
    out
}

/// Why `name` is not a valid interface or virtual server name, if it is
/// not.
fn name_problem(name: &str, max_len: usize) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_string());
    }
    if name.chars().count() > max_len {
        return Some(format!("{name:?} is longer than {max_len} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Some(format!(
            "{name:?} contains {c:?}; use letters, digits, '_', '.' and '-'"
        ));
    }
    None
}

/// Resolves an `interface = "NAME"` reference to its index.
fn interface_ref(
    value: &S<String>,
    field: &str,
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<usize> {
    let name = value.get_ref();
    let found = interfaces
        .iter()
        .position(|iface| iface.name.as_deref() == Some(name.as_str()));
    if found.is_none() {
        let declared: Vec<&str> = interfaces
            .iter()
            .filter_map(|i| i.name.as_deref())
            .collect();
        let declared = if declared.is_empty() {
            "no interface is declared".to_string()
        } else {
            format!("declared: {}", declared.join(", "))
        };
        errors.push(
            field,
            Some(value.span()),
            format!("unknown interface {name:?} ({declared})"),
        );
    }
    found
}

/// The addresses of an interface of one family, for the checks that
/// IPv4 and IPv6 share.
trait Family: CidrAddr {
    /// `iface`'s addresses of this family.
    fn of(iface: &Interface) -> &[Cidr<Self>];
    /// True for an address a next hop or a neighbour may have without
    /// being in a connected subnet (IPv6 link-local).
    fn on_link(self) -> bool;
}

impl Family for Ipv4Addr {
    fn of(iface: &Interface) -> &[Ipv4Cidr] {
        &iface.addresses
    }
    fn on_link(self) -> bool {
        false
    }
}

impl Family for Ipv6Addr {
    fn of(iface: &Interface) -> &[Ipv6Cidr] {
        &iface.addresses6
    }
    fn on_link(self) -> bool {
        self.is_unicast_link_local()
    }
}

/// Why an IPv6 address cannot be one of the balancer's own, if so.
fn ipv6_address_problem(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some(":: cannot be an interface address")
    } else if ip.is_multicast() {
        Some("a multicast address cannot be an interface address")
    } else if ip.is_loopback() {
        Some("::1 cannot be an interface address")
    } else {
        None
    }
}

/// Reports `ip` unless it lies in a connected subnet of `iface` (or is
/// link-local, for IPv6). Skipped when the interface's addresses did not
/// all parse.
fn check_connected<A: Family>(
    ip: A,
    what: &str,
    iface: &Interface,
    field: &str,
    span: Option<Range<usize>>,
    errors: &mut Errors,
) {
    let own = A::of(iface);
    if !iface.addresses_complete || ip.on_link() || own.iter().any(|a| a.contains(ip)) {
        return;
    }
    let name = iface.name.as_deref().unwrap_or_default();
    let subnets = if own.is_empty() {
        if A::BITS == 32 {
            "it has no addresses".to_string()
        } else {
            format!("it has no {} addresses", A::FAMILY)
        }
    } else {
        own.iter()
            .map(|a| a.network().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    errors.push(
        field,
        span,
        format!("{what} {ip} is not in a connected subnet of interface {name:?} ({subnets})"),
    );
}

/// An IPv4 or IPv6 address (`Some` when it parsed), its error naming the
/// field.
fn ip_any(value: &S<String>, field: &str, errors: &mut Errors) -> Option<IpAddr> {
    let s = value.get_ref();
    s.parse()
        .map_err(|_| {
            errors.push(
                field,
                Some(value.span()),
                format!(
                    "invalid IP address {s:?}: expected IPv4 like 10.0.0.1 or IPv6 like 2001:db8::1"
                ),
            )
        })
        .ok()
}

// -------------------------------------------------------------- [[route]]

/// `[[route]]`: network prefixes, unique, via a connected next hop of the
/// prefix's family; IPv4 routes and IPv6 routes apart.
fn routes(
    raw: &[S<RawRoute>],
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<(Vec<RouteConfig>, Vec<RouteConfig<Ipv6Addr>>)> {
    let mut out = Vec::new();
    let mut out6 = Vec::new();
    let mut ok = true;
    let mut prefixes: HashMap<IpCidr, usize> = HashMap::new();
    for (i, table) in raw.iter().enumerate() {
        let span = Some(table.span());
        let t = table.get_ref();
        let f = |key: &str| format!("route[{i}].{key}");

        let prefix = required(&t.prefix, &f("prefix"), span.clone(), errors).and_then(|v| {
            let cidr = parse::<IpCidr>(v, &f("prefix"), errors)?;
            let network = match cidr {
                IpCidr::V4(c) => (!c.is_network()).then(|| c.network().to_string()),
                IpCidr::V6(c) => (!c.is_network()).then(|| c.network().to_string()),
            };
            if let Some(network) = network {
                errors.push(
                    f("prefix"),
                    Some(v.span()),
                    format!("{cidr} has host bits set; the network is {network}"),
                );
                return None;
            }
            match prefixes.entry(cidr) {
                Entry::Occupied(first) => {
                    errors.push(
                        f("prefix"),
                        Some(v.span()),
                        format!("duplicate route for {cidr} (also route[{}])", first.get()),
                    );
                    None
                }
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    Some(cidr)
                }
            }
        });
        let via = required(&t.via, &f("via"), span.clone(), errors).and_then(|v| {
            if v.get_ref().contains(':') {
                ip_any(v, &f("via"), errors)
            } else {
                ipv4(v, &f("via"), errors).map(IpAddr::V4)
            }
        });
        let interface = required(&t.interface, &f("interface"), span.clone(), errors)
            .and_then(|v| interface_ref(v, &f("interface"), interfaces, errors));
        let via_span = span_of(t.via.as_ref());
        let name = t.interface.as_ref().map(|n| n.get_ref().clone());
        match (prefix, via, interface, name) {
            (Some(IpCidr::V4(prefix)), Some(IpAddr::V4(via)), Some(interface), Some(name)) => {
                check_connected(
                    via,
                    "next hop",
                    &interfaces[interface],
                    &f("via"),
                    via_span,
                    errors,
                );
                out.push(RouteConfig {
                    prefix,
                    via,
                    interface,
                    interface_name: name,
                });
            }
            (Some(IpCidr::V6(prefix)), Some(IpAddr::V6(via)), Some(interface), Some(name)) => {
                check_connected(
                    via,
                    "next hop",
                    &interfaces[interface],
                    &f("via"),
                    via_span,
                    errors,
                );
                out6.push(RouteConfig {
                    prefix,
                    via,
                    interface,
                    interface_name: name,
                });
            }
            (Some(prefix), Some(via), _, _) if prefix_is_v6(prefix) != via.is_ipv6() => {
                errors.push(
                    f("via"),
                    via_span,
                    format!("next hop {via} and prefix {prefix} are of different address families"),
                );
                ok = false;
            }
            (_, via, interface, _) => {
                if let (Some(IpAddr::V4(via)), Some(index)) = (via, interface) {
                    check_connected(
                        via,
                        "next hop",
                        &interfaces[index],
                        &f("via"),
                        via_span,
                        errors,
                    );
                } else if let (Some(IpAddr::V6(via)), Some(index)) = (via, interface) {
                    check_connected(
                        via,
                        "next hop",
                        &interfaces[index],
                        &f("via"),
                        via_span,
                        errors,
                    );
                }
                ok = false;
            }
        }
    }
    ok.then_some((out, out6))
}

/// True for an IPv6 prefix.
fn prefix_is_v6(prefix: IpCidr) -> bool {
    matches!(prefix, IpCidr::V6(_))
}

// ----------------------------------------------------------- [[neighbor]]

/// `[[neighbor]]`: a connected address and a unicast MAC, once per
/// interface; IPv4 (ARP) and IPv6 (neighbour cache) entries apart.
fn neighbors(
    raw: &[S<RawNeighbor>],
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<(Vec<NeighborConfig>, Vec<NeighborConfig<Ipv6Addr>>)> {
    let mut out = Vec::new();
    let mut out6 = Vec::new();
    let mut ok = true;
    let mut seen: HashMap<(usize, IpAddr), usize> = HashMap::new();
    for (i, table) in raw.iter().enumerate() {
        let span = Some(table.span());
        let t = table.get_ref();
        let f = |key: &str| format!("neighbor[{i}].{key}");

        let address = required(&t.address, &f("address"), span.clone(), errors).and_then(|v| {
            if v.get_ref().contains(':') {
                ip_any(v, &f("address"), errors)
            } else {
                ipv4(v, &f("address"), errors).map(IpAddr::V4)
            }
        });
        let mac = required(&t.mac, &f("mac"), span.clone(), errors)
            .and_then(|v| unicast_mac(v, &f("mac"), "a neighbour", errors));
        let interface = required(&t.interface, &f("interface"), span.clone(), errors)
            .and_then(|v| interface_ref(v, &f("interface"), interfaces, errors));

        let mut unique = true;
        if let (Some(address), Some(index)) = (address, interface) {
            let at = span_of(t.address.as_ref());
            let iface = &interfaces[index];
            match address {
                IpAddr::V4(a) => {
                    check_connected(a, "address", iface, &f("address"), at.clone(), errors)
                }
                IpAddr::V6(a) => {
                    check_connected(a, "address", iface, &f("address"), at.clone(), errors)
                }
            }
            if let Some(first) = seen.get(&(index, address)) {
                let name = iface.name.as_deref().unwrap_or_default();
                errors.push(
                    f("address"),
                    at,
                    format!(
                        "duplicate neighbour {address} on interface {name:?} (also neighbor[{first}])"
                    ),
                );
                unique = false;
            } else {
                seen.insert((index, address), i);
            }
        }

        match (address, mac, interface, &t.interface, unique) {
            (Some(IpAddr::V4(address)), Some(mac), Some(interface), Some(name), true) => {
                out.push(NeighborConfig {
                    address,
                    mac,
                    interface,
                    interface_name: name.get_ref().clone(),
                })
            }
            (Some(IpAddr::V6(address)), Some(mac), Some(interface), Some(name), true) => {
                out6.push(NeighborConfig {
                    address,
                    mac,
                    interface,
                    interface_name: name.get_ref().clone(),
                })
            }
            _ => ok = false,
        }
    }
    ok.then_some((out, out6))
}

// ------------------------------------------------------------- [control]

/// `[control]`, defaults for what is omitted.
fn control(raw: Option<&RawControl>, errors: &mut Errors) -> Option<ControlConfig> {
    let defaults = ControlConfig::default();
    let Some(raw) = raw else {
        return Some(defaults);
    };
    let socket = match &raw.socket {
        None => Some(defaults.socket),
        Some(v) => {
            let path = PathBuf::from(v.get_ref());
            if path.as_os_str().len() > ControlConfig::MAX_SOCKET_PATH_BYTES {
                errors.push(
                    "control.socket",
                    Some(v.span()),
                    format!(
                        "the path is {} bytes; a Unix socket path holds at most {} (sun_path, 108 \
                         bytes with its NUL)",
                        path.as_os_str().len(),
                        ControlConfig::MAX_SOCKET_PATH_BYTES
                    ),
                );
                None
            } else if path.is_absolute() {
                Some(path)
            } else {
                errors.push(
                    "control.socket",
                    Some(v.span()),
                    format!("{:?} must be an absolute path", v.get_ref()),
                );
                None
            }
        }
    };
    let metrics_listen = match &raw.metrics_listen {
        None => Some(defaults.metrics_listen),
        Some(v) => v
            .get_ref()
            .parse::<SocketAddr>()
            .map_err(|_| {
                errors.push(
                    "control.metrics_listen",
                    Some(v.span()),
                    format!(
                        "invalid socket address {:?}: expected IP:PORT like 127.0.0.1:9469",
                        v.get_ref()
                    ),
                )
            })
            .ok(),
    };
    let socket_group = match &raw.socket_group {
        None => Some(None),
        Some(v) => {
            let g = v.get_ref();
            let ok = !g.is_empty()
                && g.len() <= 32
                && g.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if ok {
                Some(Some(g.clone()))
            } else {
                errors.push(
                    "control.socket_group",
                    Some(v.span()),
                    format!("{g:?} is not a group name or number"),
                );
                None
            }
        }
    };
    Some(ControlConfig {
        socket: socket?,
        metrics_listen: metrics_listen?,
        socket_group: socket_group?,
    })
}

/// Parses a MAC address that must be unicast (`who` needs one: "a port").
fn unicast_mac(v: &S<String>, field: &str, who: &str, errors: &mut Errors) -> Option<MacAddr> {
    let mac = parse::<MacAddr>(v, field, errors)?;
    if mac.is_unicast() {
        return Some(mac);
    }
    let kind = if mac == MacAddr::ZERO {
        "all zero"
    } else if mac.is_broadcast() {
        "broadcast"
    } else {
        "multicast"
    };
    errors.push(
        field,
        Some(v.span()),
        format!("{mac} is {kind}; {who} needs a unicast MAC address"),
    );
    None
}

// ------------------------------------------------------------ [timeouts]

/// `[timeouts]`, defaults for what is omitted; each 1 s to a week.
fn timeouts(raw: Option<&RawTimeouts>, errors: &mut Errors) -> Option<TimeoutsConfig> {
    let Some(raw) = raw else {
        return Some(TimeoutsConfig::default());
    };
    let mut get = |value: &Option<S<Int>>, key: &str, default: u64| {
        // The bounds fit in i64, and the values in u64 (checked).
        int_or(
            value.as_ref(),
            &format!("timeouts.{key}"),
            1,
            TimeoutsConfig::MAX_TIMEOUT_S as i64,
            default as i64,
            errors,
        )
        .map(|s| Duration::from_secs(s as u64))
    };
    let tcp_established = get(
        &raw.tcp_established_s,
        "tcp_established_s",
        TimeoutsConfig::DEFAULT_TCP_ESTABLISHED_S,
    );
    let tcp_fin_wait = get(
        &raw.tcp_fin_wait_s,
        "tcp_fin_wait_s",
        TimeoutsConfig::DEFAULT_TCP_FIN_WAIT_S,
    );
    let tcp_time_wait = get(
        &raw.tcp_time_wait_s,
        "tcp_time_wait_s",
        TimeoutsConfig::DEFAULT_TCP_TIME_WAIT_S,
    );
    let tcp_syn = get(
        &raw.tcp_syn_s,
        "tcp_syn_s",
        TimeoutsConfig::DEFAULT_TCP_SYN_S,
    );
    let udp = get(&raw.udp_s, "udp_s", TimeoutsConfig::DEFAULT_UDP_S);
    let proof_packets = int_or(
        raw.proof_packets.as_ref(),
        "timeouts.proof_packets",
        1,
        i64::from(TimeoutsConfig::MAX_PROOF_PACKETS),
        i64::from(TimeoutsConfig::DEFAULT_PROOF_PACKETS),
        errors,
    );
    let proof_ms = int_or(
        raw.proof_ms.as_ref(),
        "timeouts.proof_ms",
        0,
        i64::from(TimeoutsConfig::MAX_PROOF_MS),
        i64::from(TimeoutsConfig::DEFAULT_PROOF_MS),
        errors,
    );
    Some(TimeoutsConfig {
        tcp_established: tcp_established?,
        tcp_fin_wait: tcp_fin_wait?,
        tcp_time_wait: tcp_time_wait?,
        tcp_syn: tcp_syn?,
        udp: udp?,
        // Within the bounds just checked.
        proof_packets: proof_packets? as u32,
        proof: Duration::from_millis(proof_ms? as u64),
    })
}

// ----------------------------------------------------- [[virtual_server]]

/// `[[virtual_server]]`: named, unique services with their health checks
/// and real servers; the real servers checked against the forwarding
/// method and the interfaces and routes.
fn virtual_servers(
    raw: &[S<RawVirtualServer>],
    interfaces: &[Interface],
    routes: Option<&[RouteConfig]>,
    errors: &mut Errors,
) -> Option<Vec<VirtualServerConfig>> {
    let mut out = Vec::new();
    let mut ok = true;
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut services: HashMap<(SocketAddr, Protocol), usize> = HashMap::new();
    for (i, table) in raw.iter().enumerate() {
        let span = Some(table.span());
        let t = table.get_ref();
        let f = |key: &str| format!("virtual_server[{i}].{key}");

        let name = required(&t.name, &f("name"), span.clone(), errors).and_then(|v| {
            if let Some(problem) = name_problem(v.get_ref(), VirtualServerConfig::MAX_NAME_LEN) {
                errors.push(f("name"), Some(v.span()), problem);
                return None;
            }
            match names.entry(v.get_ref().clone()) {
                Entry::Occupied(first) => {
                    errors.push(
                        f("name"),
                        Some(v.span()),
                        format!(
                            "duplicate virtual server name {:?} (also virtual_server[{}])",
                            v.get_ref(),
                            first.get()
                        ),
                    );
                    None
                }
                Entry::Vacant(slot) => {
                    slot.insert(i);
                    Some(v.get_ref().clone())
                }
            }
        });

        let protocol = keyword_or(
            t.protocol.as_ref(),
            &f("protocol"),
            VirtualServerConfig::DEFAULT_PROTOCOL,
            errors,
        );
        let scheduler = keyword_or(
            t.scheduler.as_ref(),
            &f("scheduler"),
            VirtualServerConfig::DEFAULT_SCHEDULER,
            errors,
        );
        let forward = required(&t.forward, &f("forward"), span.clone(), errors)
            .and_then(|v| parse::<ForwardMethod>(v, &f("forward"), errors));

        let address = required(&t.address, &f("address"), span.clone(), errors).and_then(|v| {
            service_endpoint(
                v,
                &f("address"),
                "10.0.0.100:80",
                "a VIP needs an address of its own: this one would take over the balancer's \
                 ARP and ICMP answers",
                interfaces,
                errors,
            )
        });
        let mut unique = true;
        if let (Some(address), Some(protocol), Some(v)) = (address, protocol, &t.address) {
            match services.entry((address, protocol)) {
                Entry::Occupied(first) => {
                    errors.push(
                        f("address"),
                        Some(v.span()),
                        format!(
                            "duplicate virtual server {address}/{protocol} (also \
                             virtual_server[{}])",
                            first.get()
                        ),
                    );
                    unique = false;
                }
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }

        let persistence_timeout = int_or(
            t.persistence_timeout_s.as_ref(),
            &f("persistence_timeout_s"),
            0,
            VirtualServerConfig::MAX_PERSISTENCE_TIMEOUT_S as i64,
            VirtualServerConfig::DEFAULT_PERSISTENCE_TIMEOUT_S as i64,
            errors,
        )
        .map(|s| (s > 0).then(|| Duration::from_secs(s as u64)));

        let mh_table_size = mh_table_size(
            t.mh_table_size.as_ref(),
            &f("mh_table_size"),
            span.clone(),
            scheduler,
            t.real_server.0.len(),
            errors,
        );
        let expire_nodest_conn = t
            .expire_nodest_conn
            .as_ref()
            .map_or(VirtualServerConfig::DEFAULT_EXPIRE_NODEST_CONN, |v| {
                *v.get_ref()
            });
        let syn_proxy = syn_proxy(
            t.syn_proxy.as_ref(),
            &f("syn_proxy"),
            forward,
            protocol,
            errors,
        );
        let client_address = client_address::client_address(
            t.client_address.as_ref(),
            &f("client_address"),
            forward,
            protocol,
            syn_proxy.unwrap_or(false),
            errors,
        );
        let sorry_server = match &t.sorry_server {
            None => Some(None),
            Some(v) => service_endpoint(
                v,
                &f("sorry_server"),
                "10.1.0.99:8080",
                "the balancer cannot be its own sorry server",
                interfaces,
                errors,
            )
            .and_then(|addr| {
                check_backend(
                    "sorry server",
                    addr,
                    address,
                    forward,
                    interfaces,
                    routes,
                    &f("sorry_server"),
                    Some(v.span()),
                    errors,
                )
                .then_some(Some(addr))
            }),
        };
        let health_check = health_check(
            t.health_check.as_ref(),
            &f("health_check"),
            protocol.unwrap_or(VirtualServerConfig::DEFAULT_PROTOCOL),
            errors,
        );
        // What IPv6 services cannot have yet, refused rather than
        // silently not done (docs/dev/h19-v6lb.md).
        let ipv6 = matches!(address, Some(SocketAddr::V6(_)));
        let syn_proxy = match syn_proxy {
            Some(true) if ipv6 => {
                errors.push(
                    f("syn_proxy"),
                    t.syn_proxy.as_ref().map(|v| v.span()),
                    "the SYN proxy does not serve IPv6 virtual servers yet".to_string(),
                );
                None
            }
            s => s,
        };
        // NAT64's real servers (FullNAT from an IPv6 VIP with IPv4 local
        // addresses) are IPv4: ICMP reaches them.
        let nat64 = forward == Some(ForwardMethod::FullNat)
            && t.local_addresses.as_ref().is_some_and(|l| {
                l.get_ref()
                    .0
                    .iter()
                    .any(|a| a.get_ref().parse::<std::net::Ipv4Addr>().is_ok())
            });
        let health_check = match health_check {
            Some(hc) if ipv6 && hc.kind == HealthCheckKind::Icmp && !nat64 => {
                errors.push(
                    f("health_check.type"),
                    t.health_check.as_ref().map(|v| v.span()),
                    "icmp checks of IPv6 real servers are not supported yet (tcp, http, \
                     https, tls, udp, dns and script are)"
                        .to_string(),
                );
                None
            }
            hc => hc,
        };
        let client_address = match client_address {
            Some(Some(_)) if ipv6 => {
                errors.push(
                    f("client_address"),
                    t.client_address.as_ref().map(|v| v.span()),
                    "client_address does not serve IPv6 virtual servers yet (the PROXY v2 \
                     header and the TOA option are written for IPv4 clients)"
                        .to_string(),
                );
                None
            }
            c => c,
        };
        let limits = limits::service_limits(t, ipv6, &f, errors);
        let slow_start = slow_start::service(t, scheduler, &f, errors);
        ok &= slow_start.is_some();
        let passive_check = passive::passive_check(
            t.passive_check.as_ref(),
            &f("passive_check"),
            forward,
            protocol,
            health_check.as_ref().map(|h| h.kind),
            errors,
        );
        let real_servers = real_servers(
            &t.real_server.0,
            &f("real_server"),
            address,
            forward,
            interfaces,
            routes,
            errors,
        );
        let priority_groups = priority::priority_groups(
            &t.priority_group,
            &f("priority_group"),
            real_servers.as_deref(),
            errors,
        );
        let local = fullnat::local_addresses(t, forward, address, interfaces, routes, &f, errors);
        ok &= local.is_some();
        let quorum = quorum::quorum(t, &f, errors);
        ok &= quorum.is_some();
        if let (true, Some(ForwardMethod::FullNat), Some(local)) = (ipv6, forward, &local) {
            ok &= fullnat::ipv6_servers(local, real_servers.as_deref(), sorry_server, &f, errors);
        }

        match (
            name,
            address,
            protocol,
            scheduler,
            forward,
            persistence_timeout,
            mh_table_size,
            (sorry_server, health_check, limits, syn_proxy),
            (real_servers, priority_groups, client_address),
            unique,
            passive_check,
        ) {
            (
                Some(name),
                Some(address),
                Some(protocol),
                Some(scheduler),
                Some(forward),
                Some(persistence_timeout),
                Some(mh_table_size),
                (Some(sorry_server), Some(health_check), Some(limits), Some(syn_proxy)),
                (Some(real_servers), Some(priority_groups), Some(client_address)),
                true,
                Some(passive_check),
            ) => out.push(VirtualServerConfig {
                name,
                address,
                protocol,
                scheduler,
                forward,
                persistence_timeout,
                mh_table_size,
                expire_nodest_conn,
                sorry_server,
                syn_proxy,
                client_address,
                health_check,
                real_servers,
                limits,
                priority_groups,
                slow_start: slow_start.unwrap_or_default(),
                passive_check,
                local: local.unwrap_or_default(),
                quorum: quorum.unwrap_or(VirtualServerConfig::DEFAULT_QUORUM),
            }),
            _ => ok = false,
        }
    }
    fullnat::across(&out, errors);
    ok.then_some(out)
}

/// `syn_proxy`: only for TCP services forwarded by NAT, whose replies
/// pass through the balancer.
fn syn_proxy(
    v: Option<&S<bool>>,
    field: &str,
    forward: Option<ForwardMethod>,
    protocol: Option<Protocol>,
    errors: &mut Errors,
) -> Option<bool> {
    let Some(v) = v else {
        return Some(VirtualServerConfig::DEFAULT_SYN_PROXY);
    };
    if !*v.get_ref() {
        return Some(false);
    }
    if protocol == Some(Protocol::Udp) {
        errors.push(
            field,
            Some(v.span()),
            "a SYN proxy is for TCP services; UDP has no handshake to answer",
        );
        return None;
    }
    match forward {
        Some(ForwardMethod::FullNat) => {
            errors.push(
                field,
                Some(v.span()),
                "a SYN proxy is not supported with forward = \"fullnat\": the proxy opens its \
                 connection from the client's address, FullNAT from a local one",
            );
            None
        }
        Some(f @ (ForwardMethod::Dr | ForwardMethod::Tun)) => {
            errors.push(
                field,
                Some(v.span()),
                format!(
                    "a SYN proxy needs forward = \"nat\", not \"{f}\": it must see the real \
                     server's SYN-ACK to learn its sequence numbers and translate every \
                     reply, and {f} replies bypass the balancer"
                ),
            );
            None
        }
        _ => Some(true),
    }
}

/// An `IP:PORT` endpoint of a virtual or real server: port not 0, an IP
/// that can be a host's, and not one of the balancer's own addresses
/// (`why_not_own` ends that message; `example` ends the parse error's).
fn endpoint(
    v: &S<String>,
    field: &str,
    example: &str,
    why_not_own: &str,
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<SocketAddrV4> {
    checked_endpoint(v, field, example, errors, |addr| {
        let ip = *addr.ip();
        if ip.is_unspecified() {
            Some(format!("{addr}: 0.0.0.0 is not a host address"))
        } else if ip.is_broadcast() {
            Some(format!("{addr}: 255.255.255.255 is not a host address"))
        } else if ip.is_multicast() {
            Some(format!("{addr}: a multicast address is not a host address"))
        } else if ip.is_loopback() {
            Some(format!(
                "{addr}: 127.0.0.0/8 is loopback, which no packet rvs sends can reach"
            ))
        } else {
            interfaces.iter().enumerate().find_map(|(index, iface)| {
                iface.addresses.iter().any(|a| a.addr() == ip).then(|| {
                    format!(
                        "{ip} is the balancer's own address on {}; {why_not_own}",
                        describe(index, iface.name.as_deref())
                    )
                })
            })
        }
    })
}

/// Parses a service's endpoint: `[IPv6]:PORT` (not unspecified,
/// loopback or multicast, port not 0), or else `IPv4:PORT` exactly as
/// [`endpoint`] does.
fn service_endpoint(
    v: &S<String>,
    field: &str,
    example: &str,
    why_not_own: &str,
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<SocketAddr> {
    let s = v.get_ref();
    if !s.starts_with('[') {
        return endpoint(v, field, example, why_not_own, interfaces, errors).map(SocketAddr::V4);
    }
    let Ok(addr) = s.parse::<std::net::SocketAddrV6>() else {
        errors.push(
            field,
            Some(v.span()),
            format!("invalid address {s:?}: expected [IPv6]:PORT like [2001:db8::10]:80"),
        );
        return None;
    };
    let ip = addr.ip();
    let problem = if addr.port() == 0 {
        Some(format!("{addr}: the port must not be 0"))
    } else if ip.is_unspecified() {
        Some(format!("{addr}: :: is not a host address"))
    } else if ip.is_multicast() {
        Some(format!("{addr}: a multicast address is not a host address"))
    } else if ip.is_loopback() {
        Some(format!(
            "{addr}: ::1 is loopback, which no packet rvs sends can reach"
        ))
    } else if addr.scope_id() != 0 || addr.flowinfo() != 0 {
        Some(format!(
            "{addr}: no zone or flow information in an endpoint"
        ))
    } else {
        None
    };
    match problem {
        Some(p) => {
            errors.push(field, Some(v.span()), p);
            None
        }
        None => Some(SocketAddr::V6(addr)),
    }
}

/// Parses an `IPv4:PORT` field (`example` ends the parse error's message)
/// and reports port 0, or else the first problem `problem` finds with the
/// address: what every endpoint check shares.
fn checked_endpoint(
    v: &S<String>,
    field: &str,
    example: &str,
    errors: &mut Errors,
    problem: impl FnOnce(SocketAddrV4) -> Option<String>,
) -> Option<SocketAddrV4> {
    let s = v.get_ref();
    let Ok(addr) = s.parse::<SocketAddrV4>() else {
        errors.push(
            field,
            Some(v.span()),
            format!("invalid address {s:?}: expected IPv4:PORT like {example}"),
        );
        return None;
    };
    let problem = if addr.port() == 0 {
        Some(format!("{addr}: the port must not be 0"))
    } else {
        problem(addr)
    };
    match problem {
        Some(problem) => {
            errors.push(field, Some(v.span()), problem);
            None
        }
        None => Some(addr),
    }
}

/// `mh_table_size`: only with `scheduler = "mh"`; a prime in range, and
/// (given or default) large enough for the number of real servers.
fn mh_table_size(
    value: Option<&S<Int>>,
    field: &str,
    table: Option<Range<usize>>,
    scheduler: Option<SchedulerKind>,
    real_servers: usize,
    errors: &mut Errors,
) -> Option<u32> {
    let default = VirtualServerConfig::DEFAULT_MH_TABLE_SIZE;
    if let (Some(v), Some(scheduler)) = (value, scheduler) {
        if scheduler != SchedulerKind::Mh {
            errors.push(
                field,
                Some(v.span()),
                format!(
                    "only applies to scheduler = \"mh\" (this virtual server's is \
                     {:?}); remove it",
                    scheduler.name()
                ),
            );
            return None;
        }
    }
    let size = match value {
        None => default,
        Some(v) => {
            // The bounds are u32, so the value fits (checked).
            let size = int_in(
                v,
                field,
                i64::from(VirtualServerConfig::MIN_MH_TABLE_SIZE),
                i64::from(VirtualServerConfig::MAX_MH_TABLE_SIZE),
                errors,
            )? as u32;
            if !is_prime(size) {
                errors.push(
                    field,
                    Some(v.span()),
                    format!(
                        "{size} is not a prime; the Maglev table size must be one, e.g. {}",
                        next_prime(size)
                    ),
                );
                return None;
            }
            size
        }
    };
    let needed = u64::from(VirtualServerConfig::MH_ENTRIES_PER_REAL_SERVER) * real_servers as u64;
    if scheduler == Some(SchedulerKind::Mh) && u64::from(size) < needed {
        let (what, at) = match value {
            None => (format!("the default {size}"), table),
            Some(v) => (size.to_string(), Some(v.span())),
        };
        let hint = match u32::try_from(needed) {
            Ok(n) if n <= VirtualServerConfig::MAX_MH_TABLE_SIZE => {
                format!(
                    "; set mh_table_size to a prime of at least {n}, e.g. {}",
                    next_prime(n)
                )
            }
            _ => String::new(),
        };
        errors.push(
            field,
            at,
            format!(
                "{what} is below {} entries per real server × {real_servers} real servers \
                 = {needed}, too few for even shares{hint}",
                VirtualServerConfig::MH_ENTRIES_PER_REAL_SERVER
            ),
        );
        return None;
    }
    Some(size)
}

/// The smallest prime at or above `n` (saturating at `u32::MAX`).
fn next_prime(n: u32) -> u32 {
    (n..=u32::MAX).find(|&p| is_prime(p)).unwrap_or(u32::MAX)
}

/// `[virtual_server.health_check]` of a `protocol` service, defaults for
/// what is omitted (the default type depends on the protocol).
fn health_check(
    raw: Option<&S<RawHealthCheck>>,
    base: &str,
    protocol: Protocol,
    errors: &mut Errors,
) -> Option<HealthCheckConfig> {
    let Some(raw) = raw else {
        return Some(HealthCheckConfig::default_for(protocol));
    };
    let t = raw.get_ref();
    let f = |key: &str| format!("{base}.{key}");
    let kind = keyword_or(
        t.kind.as_ref(),
        &f("type"),
        HealthCheckConfig::default_kind(protocol),
        errors,
    );
    let millis = |value: &Option<S<Int>>, key: &str, default: u64, errors: &mut Errors| {
        let max = HealthCheckConfig::MAX_INTERVAL_MS;
        millis_or(value.as_ref(), &f(key), 1, max, default, errors)
    };
    let interval = millis(
        &t.interval_ms,
        "interval_ms",
        HealthCheckConfig::DEFAULT_INTERVAL_MS,
        errors,
    );
    let timeout = millis(
        &t.timeout_ms,
        "timeout_ms",
        HealthCheckConfig::DEFAULT_TIMEOUT_MS,
        errors,
    );
    let count = |value: &Option<S<Int>>, key: &str, default: u32, errors: &mut Errors| {
        // The bounds are u32, so the value fits (checked).
        int_or(
            value.as_ref(),
            &f(key),
            1,
            i64::from(HealthCheckConfig::MAX_RISE_FALL),
            i64::from(default),
            errors,
        )
        .map(|n| n as u32)
    };
    let rise = count(&t.rise, "rise", HealthCheckConfig::DEFAULT_RISE, errors);
    let fall = count(&t.fall, "fall", HealthCheckConfig::DEFAULT_FALL, errors);
    // The bounds are u16, so the value fits (checked).
    let http_expect_status = int_or(
        t.http_expect_status.as_ref(),
        &f("http_expect_status"),
        100,
        599,
        i64::from(HealthCheckConfig::DEFAULT_HTTP_EXPECT_STATUS),
        errors,
    )
    .map(|n| n as u16);
    let http_path = match &t.http_path {
        None => Some(HealthCheckConfig::DEFAULT_HTTP_PATH.to_string()),
        Some(v) if !kind.is_some_and(HealthCheckKind::is_http) => Some(v.get_ref().clone()),
        Some(v) => {
            let path = v.get_ref();
            let problem = if !path.starts_with('/') {
                Some(format!("{path:?} must start with '/'"))
            } else {
                path.chars()
                    .find(|c| c.is_whitespace() || c.is_control())
                    .map(|c| {
                        format!(
                            "{path:?} contains {c:?}, which cannot go into an HTTP request \
                             line; percent-encode it"
                        )
                    })
            };
            match problem {
                Some(problem) => {
                    errors.push(f("http_path"), Some(v.span()), problem);
                    None
                }
                None => Some(path.clone()),
            }
        }
    };
    let http_expect_body = tls::expect_body(t, kind, &f, errors);
    let tls = tls::tls(t, kind, &f, errors);
    let kinds = health_kinds::kind_settings(t, &f, raw.span(), kind, errors);
    let kinds = kinds?;
    Some(HealthCheckConfig {
        kind: kind?,
        interval: interval?,
        timeout: timeout?,
        rise: rise?,
        fall: fall?,
        http_path: http_path?,
        http_expect_status: http_expect_status?,
        http_expect_body: http_expect_body?,
        tls: tls?,
        source_address: kinds.source_address,
        udp_payload: kinds.udp_payload,
        udp_expect: kinds.udp_expect,
        dns_name: kinds.dns_name,
        dns_type: kinds.dns_type,
        dns_expect_rcode: kinds.dns_expect_rcode,
        dns_expect_answer: kinds.dns_expect_answer,
        script: kinds.script,
        script_dynamic_weight: kinds.script_dynamic_weight,
    })
}

/// `[[virtual_server.real_server]]` of one virtual server (`base` is its
/// field path): unique endpoints, the virtual port kept by DR and TUN, and
/// reachable by the forwarding method.
fn real_servers(
    raw: &[S<RawRealServer>],
    base: &str,
    vip: Option<SocketAddr>,
    forward: Option<ForwardMethod>,
    interfaces: &[Interface],
    routes: Option<&[RouteConfig]>,
    errors: &mut Errors,
) -> Option<Vec<RealServerConfig>> {
    let mut out = Vec::new();
    let mut ok = true;
    if raw.len() > VirtualServerConfig::MAX_REAL_SERVERS {
        // Named at the first server beyond the limit; the rest are not
        // checked one by one (a runaway generator could list millions).
        let extra = &raw[VirtualServerConfig::MAX_REAL_SERVERS];
        errors.push(
            format!("{base}[{}]", VirtualServerConfig::MAX_REAL_SERVERS),
            Some(extra.span()),
            format!(
                "{} real servers; a virtual server has at most {} (a server's index is 16 bits)",
                raw.len(),
                VirtualServerConfig::MAX_REAL_SERVERS
            ),
        );
        return None;
    }
    let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
    for (j, table) in raw.iter().enumerate() {
        let span = Some(table.span());
        let t = table.get_ref();
        let f = |key: &str| format!("{base}[{j}].{key}");

        let address = required(&t.address, &f("address"), span.clone(), errors).and_then(|v| {
            let addr = service_endpoint(
                v,
                &f("address"),
                "10.1.0.11:8080",
                "the balancer cannot be its own real server",
                interfaces,
                errors,
            )?;
            if let Some(first) = seen.get(&addr) {
                errors.push(
                    f("address"),
                    Some(v.span()),
                    format!("duplicate real server {addr} (also {base}[{first}])"),
                );
                return None;
            }
            seen.insert(addr, j);
            check_backend(
                "real server",
                addr,
                vip,
                forward,
                interfaces,
                routes,
                &f("address"),
                Some(v.span()),
                errors,
            )
            .then_some(addr)
        });
        // The bound is u32, so the value fits (checked).
        let weight = int_or(
            t.weight.as_ref(),
            &f("weight"),
            0,
            i64::from(RealServerConfig::MAX_WEIGHT),
            i64::from(RealServerConfig::DEFAULT_WEIGHT),
            errors,
        )
        .map(|w| w as u32);

        let thresholds = limits::thresholds(t, &f, errors);
        let slow_start = slow_start::real_server(t, &f, errors);
        ok &= slow_start.is_some();

        let priority = priority::server_priority(t, &f, errors);

        match (address, weight, thresholds, priority) {
            (Some(address), Some(weight), Some(thresholds), Some(priority)) => {
                out.push(RealServerConfig {
                    address,
                    weight,
                    thresholds,
                    priority,
                    slow_start: slow_start.flatten(),
                })
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// The rules a real server (or sorry server: `what`) at `addr` meets beyond being a
/// host address, reported at `field`: DR and TUN keep the virtual port, and
/// rvs can send to it by `forward` (see `check_reachable`). False when one
/// was broken; rules whose input did not parse are skipped.
#[allow(clippy::too_many_arguments)]
fn check_backend(
    what: &str,
    addr: SocketAddr,
    vip: Option<SocketAddr>,
    forward: Option<ForwardMethod>,
    interfaces: &[Interface],
    routes: Option<&[RouteConfig]>,
    field: &str,
    span: Option<Range<usize>>,
    errors: &mut Errors,
) -> bool {
    if let Some(vip) = vip {
        if let Err(e) =
            same_family(what, addr, vip, forward).or_else(|e| tun46(addr, vip, forward, e))
        {
            errors.push(field, span, e);
            return false;
        }
    }
    match (addr, vip) {
        (SocketAddr::V4(addr), vip) => {
            let vip = vip.and_then(|v| match v {
                SocketAddr::V4(v) => Some(v),
                SocketAddr::V6(_) => None,
            });
            check_backend4(
                what, addr, vip, forward, interfaces, routes, field, span, errors,
            )
        }
        // The virtual port rule holds for both families; reachability over
        // IPv6 routes is left to the IPv6 routing table (not checked here).
        (SocketAddr::V6(_), vip) => {
            virtual_port_kept(what, addr, vip, forward, field, span, errors)
        }
    }
}

/// The one place that says which families a virtual server and one of its
/// servers (`what`) may be: the same, or (NAT64, `lb::xmit::nat64`) an
/// IPv6 virtual server forwarding by FullNAT to IPv4 servers (whose local
/// addresses `fullnat::ipv6_servers` then matches).
fn same_family(
    what: &str,
    addr: SocketAddr,
    vip: SocketAddr,
    forward: Option<ForwardMethod>,
) -> Result<(), String> {
    if addr.is_ipv4() == vip.is_ipv4() {
        return Ok(());
    }
    if vip.is_ipv6() && forward == Some(ForwardMethod::FullNat) {
        return Ok(());
    }
    let family = |a: SocketAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
    Err(format!(
        "{addr}: the {what} is {} but the virtual server {vip} is {}; a virtual server and its \
         servers are of one family, except NAT64: an IPv6 virtual server with forward = \
         \"fullnat\", IPv4 local_addresses and IPv4 servers",
        family(addr),
        family(vip)
    ))
}

/// IPv4-in-IPv6 TUN, the one mix of families [`same_family`] refused that
/// is allowed: an IPv6 real server (or sorry server) `addr` of an IPv4
/// virtual server `vip` with `forward = "tun"` (the client's IPv4 packet
/// tunnelled inside IPv6). `Err(refused)`, the refusal of `same_family`
/// with a hint for a mix TUN would allow, for every other mix.
fn tun46(
    addr: SocketAddr,
    vip: SocketAddr,
    forward: Option<ForwardMethod>,
    refused: String,
) -> Result<(), String> {
    match (addr.is_ipv6() && vip.is_ipv4(), forward) {
        (true, Some(ForwardMethod::Tun)) => Ok(()),
        (true, _) => Err(format!(
            "{refused} (an IPv4 virtual server reaches IPv6 servers only with forward = \"tun\", \
             IPv4-in-IPv6)"
        )),
        (false, _) => Err(refused),
    }
}

/// DR and TUN keep the virtual port: the server's port must be the VIP's.
fn virtual_port_kept(
    what: &str,
    addr: SocketAddr,
    vip: Option<SocketAddr>,
    forward: Option<ForwardMethod>,
    field: &str,
    span: Option<Range<usize>>,
    errors: &mut Errors,
) -> bool {
    if let (Some(vip), Some(forward)) = (vip, forward) {
        if forward.keeps_virtual_port() && addr.port() != vip.port() {
            errors.push(
                field,
                span,
                format!(
                    "forward = {:?} keeps the virtual port: the {what}'s port must be {} (the \
                     virtual server's), not {}",
                    forward.name(),
                    vip.port(),
                    addr.port()
                ),
            );
            return false;
        }
    }
    true
}

/// [`check_backend`] for IPv4: the virtual port, and reachability over the
/// IPv4 interfaces and routes.
#[allow(clippy::too_many_arguments)]
fn check_backend4(
    what: &str,
    addr: SocketAddrV4,
    vip: Option<SocketAddrV4>,
    forward: Option<ForwardMethod>,
    interfaces: &[Interface],
    routes: Option<&[RouteConfig]>,
    field: &str,
    span: Option<Range<usize>>,
    errors: &mut Errors,
) -> bool {
    let mut fine = true;
    if let (Some(vip), Some(forward)) = (vip, forward) {
        if forward.keeps_virtual_port() && addr.port() != vip.port() {
            errors.push(
                field,
                span.clone(),
                format!(
                    "forward = {:?} keeps the virtual port: the {what}'s port must be {} (the \
                     virtual server's), not {}",
                    forward.name(),
                    vip.port(),
                    addr.port()
                ),
            );
            fine = false;
        }
    }
    if let Some(forward) = forward {
        fine &= check_reachable(
            what,
            *addr.ip(),
            forward,
            interfaces,
            routes,
            field,
            span,
            errors,
        );
    }
    fine
}

/// Reports a real server rvs cannot send to, returning false: DR needs it on
/// a connected subnet (the same L2 segment, as only the MAC changes); NAT
/// and TUN also accept one that a route covers. Skipped (true) when an
/// interface address or a route did not parse, as the answer would be a
/// guess.
#[allow(clippy::too_many_arguments)]
fn check_reachable(
    what: &str,
    ip: Ipv4Addr,
    forward: ForwardMethod,
    interfaces: &[Interface],
    routes: Option<&[RouteConfig]>,
    field: &str,
    span: Option<Range<usize>>,
    errors: &mut Errors,
) -> bool {
    if interfaces.iter().any(|i| !i.addresses_complete) {
        return true;
    }
    if interfaces
        .iter()
        .any(|i| i.addresses.iter().any(|a| a.contains(ip)))
    {
        return true;
    }
    let subnets: Vec<String> = interfaces
        .iter()
        .flat_map(|i| i.addresses.iter().map(|a| a.network().to_string()))
        .collect();
    let subnets = if subnets.is_empty() {
        "no interface has an address".to_string()
    } else {
        format!("connected: {}", subnets.join(", "))
    };
    let message = if forward == ForwardMethod::Dr {
        format!(
            "forward = \"dr\" only changes the MAC, so the {what} must be on a connected \
             subnet; {ip} is not ({subnets})"
        )
    } else {
        let Some(routes) = routes else {
            return true;
        };
        if routes.iter().any(|r| r.prefix.contains(ip)) {
            return true;
        }
        format!(
            "{what} {ip} is unreachable: not in a connected subnet ({subnets}) and no \
             [[route]] covers it"
        )
    };
    errors.push(field, span, message);
    false
}

// ------------------------------------------------------------------ [ha]

/// `[ha]`: `Some(None)` when the section is absent (standalone); the sync
/// endpoints unicast and distinct, the floating addresses the interfaces'
/// own, the timings in range.
fn ha(
    raw: Option<&S<RawHa>>,
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<Option<HaConfig>> {
    let Some(raw) = raw else {
        return Some(None);
    };
    let table = Some(raw.span());
    let t = raw.get_ref();

    // The bound is u32, so the value fits (checked).
    let node_id = required(&t.node_id, "ha.node_id", table.clone(), errors)
        .and_then(|v| int_in(v, "ha.node_id", 1, i64::from(u32::MAX), errors))
        .map(|n| n as u32);
    let initial_state = keyword_or(
        t.initial_state.as_ref(),
        "ha.initial_state",
        HaConfig::DEFAULT_INITIAL_STATE,
        errors,
    );
    let sync_listen = required(&t.sync_listen, "ha.sync_listen", table.clone(), errors)
        .and_then(|v| sync_endpoint(v, "ha.sync_listen", "192.168.100.1:8848", errors));
    let sync_peer = required(&t.sync_peer, "ha.sync_peer", table, errors)
        .and_then(|v| sync_endpoint(v, "ha.sync_peer", "192.168.100.2:8848", errors))
        .and_then(|peer| {
            if sync_listen == Some(peer) {
                errors.push(
                    "ha.sync_peer",
                    span_of(t.sync_peer.as_ref()),
                    format!(
                        "{peer} is also ha.sync_listen: the peer is the other balancer, so \
                         sync_peer is its sync_listen address"
                    ),
                );
                return None;
            }
            Some(peer)
        });
    let floating_addresses = floating_addresses(t.floating_addresses.as_ref(), interfaces, errors);

    // The bounds are u32 (count) or fit in i64, the values in u64 (checked).
    let garp_count = int_or(
        t.garp_count.as_ref(),
        "ha.garp_count",
        1,
        i64::from(HaConfig::MAX_GARP_COUNT),
        i64::from(HaConfig::DEFAULT_GARP_COUNT),
        errors,
    )
    .map(|n| n as u32);
    let millis = |v: &Option<S<Int>>, key: &str, min, max, default, e: &mut Errors| {
        millis_or(v.as_ref(), &format!("ha.{key}"), min, max, default, e)
    };
    let garp_interval = millis(
        &t.garp_interval_ms,
        "garp_interval_ms",
        HaConfig::MIN_GARP_INTERVAL_MS,
        HaConfig::MAX_GARP_INTERVAL_MS,
        HaConfig::DEFAULT_GARP_INTERVAL_MS,
        errors,
    );
    let sync_interval = millis(
        &t.sync_interval_ms,
        "sync_interval_ms",
        1,
        HaConfig::MAX_SYNC_INTERVAL_MS,
        HaConfig::DEFAULT_SYNC_INTERVAL_MS,
        errors,
    );

    let sync_key = match &t.sync_key_file {
        None => Some(None),
        Some(v) => {
            let path = std::path::PathBuf::from(v.get_ref());
            match crate::ha::key::SyncKey::load(&path) {
                Ok(k) => Some(Some((path, k))),
                Err(e) => {
                    errors.push("ha.sync_key_file", span_of(Some(v)), e);
                    None
                }
            }
        }
    };

    let sync_key = sync_key?;
    Some(Some(HaConfig {
        node_id: node_id?,
        initial_state: initial_state?,
        sync_listen: sync_listen?,
        sync_peer: sync_peer?,
        floating_addresses: floating_addresses?,
        garp_count: garp_count?,
        garp_interval: garp_interval?,
        sync_interval: sync_interval?,
        sync_key_file: sync_key.as_ref().map(|(p, _)| p.clone()),
        sync_key: sync_key.map(|(_, k)| k),
    }))
}

/// A sync endpoint on the management network: `IPv4:PORT`, port not 0,
/// a unicast address (`example` ends the parse error's message).
fn sync_endpoint(
    v: &S<String>,
    field: &str,
    example: &str,
    errors: &mut Errors,
) -> Option<SocketAddrV4> {
    checked_endpoint(v, field, example, errors, |addr| {
        let ip = *addr.ip();
        if ip.is_unspecified() {
            Some(format!(
                "{addr}: 0.0.0.0 is not a unicast address; name the management address"
            ))
        } else if ip.is_broadcast() {
            Some(format!("{addr}: 255.255.255.255 is not a unicast address"))
        } else if ip.is_multicast() {
            Some(format!(
                "{addr}: a multicast address is not a unicast address; the sync is unicast \
                 between the two balancers"
            ))
        } else {
            None
        }
    })
}

/// `ha.floating_addresses`: each written exactly as one of the interfaces'
/// addresses, none twice. The "not an interface address" check is skipped
/// when an interface address did not parse (reported already).
fn floating_addresses(
    raw: Option<&S<Array<S<String>>>>,
    interfaces: &[Interface],
    errors: &mut Errors,
) -> Option<Vec<Ipv4Cidr>> {
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: HashMap<Ipv4Cidr, usize> = HashMap::new();
    let complete = interfaces.iter().all(|i| i.addresses_complete);
    for (j, v) in raw.iter().flat_map(|a| a.get_ref().0.iter()).enumerate() {
        let field = format!("ha.floating_addresses[{j}]");
        let Some(cidr) = parse::<Ipv4Cidr>(v, &field, errors) else {
            ok = false;
            continue;
        };
        if let Some(first) = seen.get(&cidr) {
            errors.push(
                &field,
                Some(v.span()),
                format!("duplicate floating address {cidr} (also ha.floating_addresses[{first}])"),
            );
            ok = false;
            continue;
        }
        seen.insert(cidr, j);
        let owner = interfaces.iter().enumerate().find_map(|(index, iface)| {
            iface
                .addresses
                .iter()
                .find(|a| a.addr() == cidr.addr())
                .map(|a| (index, iface, *a))
        });
        match owner {
            Some((_, _, a)) if a == cidr => out.push(cidr),
            Some((index, iface, a)) => {
                errors.push(
                    &field,
                    Some(v.span()),
                    format!(
                        "{cidr} differs from the address of {} ({a}); write it as there",
                        describe(index, iface.name.as_deref())
                    ),
                );
                ok = false;
            }
            None if !complete => ok = false,
            None => {
                let own: Vec<String> = interfaces
                    .iter()
                    .flat_map(|i| i.addresses.iter().map(|a| a.to_string()))
                    .collect();
                let own = if own.is_empty() {
                    "no interface has an address".to_string()
                } else {
                    format!("interface addresses: {}", own.join(", "))
                };
                errors.push(
                    &field,
                    Some(v.span()),
                    format!(
                        "{cidr} is not one of the [[interface]] addresses ({own}); a floating \
                         address is an interface address that moves with the VIPs, so add it \
                         to the interface it belongs to"
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
