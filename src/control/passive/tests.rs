//! The window and the verdict, with time passed in.

use super::*;
use crate::lb::service::{
    ForwardMethod, Protocol, SchedulerKind, ServerState, ServiceKey, VirtualService,
};
use crate::lb::xmit::Endpoint;
use std::net::Ipv4Addr;

fn settings() -> PassiveCheckConfig {
    PassiveCheckConfig {
        enabled: true,
        window: Duration::from_secs(10),
        min_attempts: 20,
        max_failure_percent: 50,
        syn_timeout_ms: 1000,
    }
}

fn tally(ok: u64, resets: u64, timeouts: u64) -> Tally {
    Tally {
        ok,
        resets,
        timeouts,
    }
}

fn secs(t0: Instant, s: f64) -> Instant {
    t0 + Duration::from_secs_f64(s)
}

// ------------------------------------------------------------ the window

#[test]
fn a_window_sums_what_was_added_within_it() {
    let t0 = Instant::now();
    let mut w = Window::new(Duration::from_secs(10));
    w.add(t0, &tally(1, 2, 3));
    w.add(secs(t0, 5.0), &tally(1, 0, 0));
    assert_eq!(w.sum(secs(t0, 5.0)), tally(2, 2, 3));
}

#[test]
fn what_is_older_than_the_window_drops_out() {
    let t0 = Instant::now();
    let mut w = Window::new(Duration::from_secs(10));
    w.add(t0, &tally(0, 5, 0));
    w.add(secs(t0, 6.0), &tally(0, 1, 0));
    assert_eq!(w.sum(secs(t0, 9.5)).resets, 6);
    assert_eq!(w.sum(secs(t0, 10.5)).resets, 1, "the first slot is gone");
    assert_eq!(w.sum(secs(t0, 60.0)), Tally::default());
}

#[test]
fn a_cleared_window_is_empty() {
    let t0 = Instant::now();
    let mut w = Window::new(Duration::from_secs(10));
    w.add(t0, &tally(3, 3, 3));
    w.clear();
    assert_eq!(w.sum(t0), Tally::default());
}

#[test]
fn a_window_of_ten_seconds_has_slots_of_200_ms_and_a_short_one_of_100_ms() {
    assert_eq!(
        Window::new(Duration::from_secs(10)).slot_len,
        Duration::from_millis(200)
    );
    let w = Window::new(Duration::from_secs(1));
    assert_eq!(
        (w.slot_len, w.slots.len()),
        (Duration::from_millis(100), 10)
    );
}

#[test]
fn a_server_that_starts_failing_is_judged_on_its_recent_span() {
    let t0 = Instant::now();
    let mut w = Window::new(Duration::from_secs(10));
    w.add(t0, &tally(100, 0, 0));
    w.add(secs(t0, 3.0), &tally(0, 15, 0));
    assert_eq!(
        w.failing_span(secs(t0, 3.0), &settings()),
        None,
        "15 < min_attempts"
    );
    w.add(secs(t0, 3.1), &tally(1, 5, 0));
    assert_eq!(
        w.failing_span(secs(t0, 3.1), &settings()),
        Some((tally(1, 20, 0), Duration::from_millis(200)))
    );
    assert!(
        !fails(&w.sum(secs(t0, 3.1)), &settings()),
        "the whole window passes"
    );
}

#[test]
fn a_mostly_healthy_recent_span_is_not_failing() {
    let t0 = Instant::now();
    let mut w = Window::new(Duration::from_secs(10));
    for i in 0..20 {
        w.add(secs(t0, 0.2 * f64::from(i)), &tally(3, 1, 0));
    }
    assert_eq!(w.failing_span(secs(t0, 4.0), &settings()), None);
}

// ------------------------------------------------------------ the ratio

#[test]
fn fewer_handshakes_than_min_attempts_get_no_verdict() {
    assert!(!fails(&tally(0, 19, 0), &settings()));
    assert!(fails(&tally(0, 20, 0), &settings()));
}

#[test]
fn failures_at_the_percentage_fail_and_below_it_pass() {
    assert!(fails(&tally(10, 5, 5), &settings()), "10 of 20: 50 %");
    assert!(!fails(&tally(11, 5, 4), &settings()), "9 of 20: 45 %");
}

#[test]
fn the_reason_says_how_many_failed_and_how() {
    let v = Verdict {
        vs: 0,
        rs: 1,
        window: tally(2, 20, 3),
        window_len: Duration::from_secs(10),
    };
    assert_eq!(
        v.reason(),
        "23 of 25 handshakes failed in 10.0 s (20 resets, 3 timeouts)"
    );
}

// ------------------------------------------------------------ the checks

fn table() -> ServiceTable {
    let key = ServiceKey {
        vip: Endpoint::new(Ipv4Addr::new(198, 51, 100, 100), 80),
        protocol: Protocol::Tcp,
    };
    let rs = (11..13).map(|i| (Endpoint::new(Ipv4Addr::new(10, 1, 0, i), 8080), 1));
    ServiceTable::new(vec![VirtualService::new(
        "web",
        key,
        ForwardMethod::Nat,
        SchedulerKind::Rr,
        rs,
    )])
}

fn config(passive: PassiveCheckConfig) -> VirtualServerConfig {
    let mut c = crate::control::Config::from_toml_str(
        "[dpdk]\neal_args = [\"-l\", \"0-1\"]\nworkers = [1]\n\
         [[interface]]\nname = \"outside\"\ndevice = \"0000:03:00.0\"\naddresses = [\"198.51.100.1/24\"]\n\
         [[interface]]\nname = \"inside\"\ndevice = \"0000:03:00.1\"\naddresses = [\"10.1.0.1/24\"]\n\
         [[virtual_server]]\nname = \"web\"\naddress = \"198.51.100.100:80\"\nforward = \"nat\"\n\
         [[virtual_server.real_server]]\naddress = \"10.1.0.11:8080\"\n\
         [[virtual_server.real_server]]\naddress = \"10.1.0.12:8080\"\n",
    )
    .expect("valid config")
    .virtual_servers
    .remove(0);
    c.passive_check = passive;
    c
}

fn checks(passive: PassiveCheckConfig) -> PassiveChecks {
    let mut p = PassiveChecks::default();
    p.configure(&table(), &[config(passive)]);
    p
}

/// Summed counters of the two servers: (ok, resets, timeouts) each.
fn totals(a: (u64, u64, u64), b: (u64, u64, u64)) -> Vec<RealServerCounters> {
    [a, b]
        .iter()
        .map(|&(ok, resets, timeouts)| RealServerCounters {
            handshakes: ok + resets + timeouts,
            handshake_ok: ok,
            handshake_resets: resets,
            handshake_timeouts: timeouts,
            ..Default::default()
        })
        .collect()
}

#[test]
fn a_server_whose_handshakes_fail_is_taken_out_with_the_window_counts() {
    let t0 = Instant::now();
    let mut p = checks(settings());
    let t = table();
    assert!(p.observe(t0, &totals((0, 0, 0), (0, 0, 0)), &t).is_empty());
    let v = p.observe(secs(t0, 0.2), &totals((30, 0, 0), (2, 20, 3)), &t);
    assert_eq!(
        v,
        [Verdict {
            vs: 0,
            rs: 1,
            window: tally(2, 20, 3),
            window_len: Duration::from_millis(200),
        }]
    );
    assert!(p.is_down(0, 1) && !p.is_down(0, 0));
    assert_eq!(p.downs(0, 1), 1);
}

#[test]
fn counts_from_before_the_first_read_are_not_judged() {
    let t0 = Instant::now();
    let mut p = checks(settings());
    // rvsd's counters already held failures when the check started (a
    // reload turned it on): only what comes after counts.
    assert!(p
        .observe(t0, &totals((0, 0, 0), (0, 50, 0)), &table())
        .is_empty());
    assert!(p
        .observe(secs(t0, 0.2), &totals((0, 0, 0), (0, 51, 0)), &table())
        .is_empty());
}

#[test]
fn a_disabled_check_judges_no_one() {
    let t0 = Instant::now();
    let mut p = checks(PassiveCheckConfig {
        enabled: false,
        ..settings()
    });
    p.observe(t0, &totals((0, 0, 0), (0, 0, 0)), &table());
    assert!(p
        .observe(secs(t0, 1.0), &totals((0, 0, 0), (0, 100, 0)), &table())
        .is_empty());
}

#[test]
fn a_server_back_up_is_judged_only_on_what_follows() {
    let t0 = Instant::now();
    let mut p = checks(settings());
    let up = table();
    let down = table().with_server_state(|_, rs| ServerState {
        down: rs == 1,
        weight: None,
        ramp: None,
    });
    p.observe(t0, &totals((0, 0, 0), (0, 0, 0)), &up);
    // 15 failures, then it goes down (say its active check), 10 more
    // while down (connections ending), then it is up again.
    p.observe(secs(t0, 0.2), &totals((0, 0, 0), (0, 15, 0)), &up);
    p.observe(secs(t0, 0.4), &totals((0, 0, 0), (0, 25, 0)), &down);
    assert!(p
        .observe(secs(t0, 0.6), &totals((0, 0, 0), (0, 25, 0)), &up)
        .is_empty());
    // 19 new failures are below min_attempts on their own.
    assert!(p
        .observe(secs(t0, 0.8), &totals((0, 0, 0), (0, 44, 0)), &up)
        .is_empty());
    assert_eq!(
        p.observe(secs(t0, 1.0), &totals((0, 0, 0), (0, 45, 0)), &up)
            .len(),
        1
    );
}

#[test]
fn a_passive_down_is_cleared_once_the_server_is_up_again() {
    let t0 = Instant::now();
    let mut p = checks(settings());
    let down = table().with_server_state(|_, rs| ServerState {
        down: rs == 1,
        weight: None,
        ramp: None,
    });
    p.observe(t0, &totals((0, 0, 0), (0, 0, 0)), &table());
    p.observe(secs(t0, 0.2), &totals((0, 0, 0), (0, 20, 0)), &table());
    p.observe(secs(t0, 0.4), &totals((0, 0, 0), (0, 20, 0)), &down);
    assert!(p.is_down(0, 1), "down, and by the passive check");
    p.observe(secs(t0, 0.6), &totals((0, 0, 0), (0, 20, 0)), &table());
    assert!(!p.is_down(0, 1));
    assert_eq!(p.downs(0, 1), 1);
}

#[test]
fn failures_spread_wider_than_the_window_get_no_verdict() {
    let t0 = Instant::now();
    let mut p = checks(settings());
    let t = table();
    p.observe(t0, &totals((0, 0, 0), (0, 0, 0)), &t);
    // 15 failures every 11 s: never 20 within 10 s.
    for i in 1..=5u64 {
        let v = p.observe(
            secs(t0, 11.0 * i as f64),
            &totals((0, 0, 0), (0, 15 * i, 0)),
            &t,
        );
        assert!(v.is_empty(), "round {i}");
    }
}

#[test]
fn a_reconfiguration_names_each_changed_key() {
    let mut p = checks(settings());
    let changes = p.configure(
        &table(),
        &[config(PassiveCheckConfig {
            min_attempts: 5,
            enabled: false,
            ..settings()
        })],
    );
    assert_eq!(
        changes,
        ["virtual server web: passive_check.enabled true -> false, passive_check.min_attempts 20 -> 5"]
    );
    assert!(p
        .configure(
            &table(),
            &[config(PassiveCheckConfig {
                min_attempts: 5,
                enabled: false,
                ..settings()
            })]
        )
        .is_empty());
}
