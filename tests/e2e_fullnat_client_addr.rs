#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! End to end: FullNAT carrying the client's address to a real server
//! (`forward = "fullnat"` with `client_address`), FullNAT's main use: the
//! real server's peer is rvsd's local address, and only what rvs carries
//! tells it who the client is. The kernel's TCP on both ends.
//!
//! ```text
//!   client 198.51.100.10 --- router --- [outside 203.0.113.2] rvsd
//!                              |  \------ [inside 10.1.0.1, LIP 10.1.0.100]
//!                             br0 --- rs1 10.2.0.21 (default via the router)
//!   VIP 203.0.113.100:80 (proxy-v2) -> rs1:8081 nginx `listen 8081 proxy_protocol`
//!   VIP 203.0.113.100:81 (toa)      -> rs1:8082 a Python server, and a
//!                                      packet reader on rs1's interface
//! ```
//!
//! The real server has no route back through rvsd (`Topology::fullnat`).
//! - PROXY v2: nginx logs `$proxy_protocol_addr` (the client, and the
//!   port curl used) and `$remote_addr` (the local address); curl makes
//!   three requests on one keep-alive connection, uploads 300 KB and
//!   downloads it again: every answer whole, the file byte-exact.
//! - TOA: the reader in rs1's namespace finds option 254 and prints the
//!   address and port it carries: the client's and curl's port, while the
//!   server's accepted socket sees the local address.

mod netns;
mod support;

use netns::cases::took;
use netns::{stop_rvsd, Service, Topology, CLIENT_IP, FULLNAT_LIP};
use std::time::{Duration, Instant};
use support::carry::{
    assert_carried, small_page, start_proxy_nginx, start_toa_reader, toa_seen, upload_and_download,
    wait_for_text,
};
use support::counter;

const PP_PORT: u16 = 8081;
const TOA_PORT: u16 = 8082;
const CMD: Duration = Duration::from_secs(30);

/// A FullNAT service of `topo` on `port` of the VIP to `real`, with its
/// `client_address`.
fn carrying(topo: &Topology, name: &str, port: u16, real: String, mode: &str) -> Service {
    Service::new(
        name,
        &format!("{}:{port}", topo.vip),
        "tcp",
        "rr",
        "fullnat",
    )
    .setting("local_addresses", &format!("[\"{FULLNAT_LIP}\"]"))
    .setting("client_address", &format!("\"{mode}\""))
    .health_check(Some("none"))
    .real(real, 1)
}

#[test]
fn fullnat_carries_the_client_address_by_proxy_v2_and_by_toa() {
    let started = Instant::now();
    let topo = Topology::fullnat(1);
    let rs = &topo.real_servers[0];

    let d = rs.dir.join("pp");
    let page = small_page();
    let _nginx = start_proxy_nginx(&rs.ns, &d, PP_PORT, &page);
    let toa_out = rs.dir.join("toa.out");
    let _reader = start_toa_reader(&rs.ns, &rs.dev, TOA_PORT, &toa_out);

    let pp = carrying(&topo, "pp", 80, rs.addr(PP_PORT), "proxy-v2");
    let toa = carrying(&topo, "toa", 81, rs.addr(TOA_PORT), "toa");
    let rvsd = topo.start_rvsd(1, &[pp, toa]);
    let vip = topo.vip.clone();

    // PROXY v2: three requests on one keep-alive connection.
    let url = format!("http://{vip}/page.txt");
    let out = topo
        .client
        .run("curl", &["-s", "-m", "10", &url, &url, &url], CMD);
    assert!(out.success(), "keep-alive requests: {out}\n{}", rvsd.log());
    assert!(
        out.stdout == page.repeat(3),
        "the page whole, three times: {out}"
    );
    let put_port = upload_and_download(
        &topo.client,
        topo.dir.path(),
        &format!("http://{vip}/upload/u.bin"),
        || rvsd.log(),
    );

    // nginx: the client from the PROXY header, the local address as peer.
    let access = wait_for_text(
        &d.join("access.log"),
        "GET /upload/u.bin",
        Duration::from_secs(5),
    );
    let lines: Vec<Vec<&str>> = access
        .lines()
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .collect();
    assert_eq!(lines.len(), 5, "three GETs, a PUT, a GET: {access}");
    for l in &lines {
        assert_eq!(l[0], CLIENT_IP, "PROXY v2 names the client: {access}");
        assert_eq!(l[2], FULLNAT_LIP, "the peer is the local address: {access}");
    }
    assert!(
        lines[..3].iter().all(|l| l[1] == lines[0][1]),
        "one keep-alive connection: {access}"
    );
    assert_eq!(
        lines[3][1], put_port,
        "the PROXY header names curl's own port: {access}"
    );

    // TOA: a request through the toa service; the reader sees the option.
    let out = topo.client.run(
        "curl",
        &[
            "-s",
            "-m",
            "10",
            "-w",
            "\n%{local_port}",
            &format!("http://{vip}:81/"),
        ],
        CMD,
    );
    let (answer, cport) = out.stdout.rsplit_once('\n').unwrap_or(("", "?"));
    assert!(
        out.success() && answer.trim_end() == "toa ok",
        "toa request: {out}\n{}",
        rvsd.log()
    );
    let (peer, toas) = toa_seen(&toa_out);
    assert!(
        peer.starts_with(&format!("{FULLNAT_LIP} ")),
        "the server's peer is the local address: {peer}"
    );
    for t in &toas {
        assert!(
            t.starts_with(&format!("{CLIENT_IP} {cport} ")),
            "TOA carries the client {CLIENT_IP}:{cport}: {toas:?}"
        );
    }

    let stats = stop_rvsd(rvsd);
    assert_carried(&stats);
    assert_eq!(
        counter(&stats, "total.drops.local_ports_exhausted"),
        0,
        "{stats}"
    );
    took(
        "fullnat_carries_the_client_address_by_proxy_v2_and_by_toa",
        started,
    );
}
