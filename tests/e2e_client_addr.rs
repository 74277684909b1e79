#![cfg(feature = "dpdk")]
#![deny(unsafe_code)]
//! End to end: the client's address carried to a real server by NAT
//! (`client_address`), with the kernel's TCP on both ends.
//!
//! ```text
//!   client 198.51.100.10 --- [outside] rvsd [inside] --- br0 --- rs1 10.1.0.11
//!   VIP 198.51.100.100:80 (proxy-v2) -> rs1:8081 nginx `listen 8081 proxy_protocol`
//!   VIP 198.51.100.100:81 (toa)      -> rs1:8082 a Python server, and a
//!                                       packet reader on rs1's interface
//! ```
//!
//! - PROXY v2: nginx logs `$proxy_protocol_addr`; curl makes several
//!   requests on one keep-alive connection, uploads a file larger than
//!   many segments and downloads it again: every answer whole, the file
//!   byte-exact, every logged request naming the client.
//! - TOA: a reader written here (an AF_PACKET socket in rs1's namespace)
//!   finds option 254 in the segments arriving and prints the address and
//!   port it carries, which must be the client's (the port the server's
//!   accepted socket sees, since NAT keeps it).

mod netns;
mod support;

use netns::cases::took;
use netns::{stop_rvsd, Service, Topology, CLIENT_IP, VIP};
use std::time::{Duration, Instant};
use support::carry::{
    assert_carried, small_page, start_proxy_nginx, start_toa_reader, toa_seen, upload_and_download,
    wait_for_text,
};

const PP_PORT: u16 = 8081;
const TOA_PORT: u16 = 8082;
const CMD: Duration = Duration::from_secs(20);

#[test]
fn the_client_address_reaches_the_real_server_by_proxy_v2_and_by_toa() {
    let started = Instant::now();
    let topo = Topology::nat(1);
    let rs = &topo.real_servers[0];

    // rs1's nginx taking the PROXY protocol, and its TOA reader.
    let d = rs.dir.join("pp");
    let page = small_page();
    let _nginx = start_proxy_nginx(&rs.ns, &d, PP_PORT, &page);
    let toa_out = rs.dir.join("toa.out");
    let _reader = start_toa_reader(&rs.ns, &rs.dev, TOA_PORT, &toa_out);

    let pp = Service::nat("pp", &format!("{VIP}:80"), "tcp", "rr")
        .real(rs.addr(PP_PORT), 1)
        .setting("client_address", "\"proxy-v2\"")
        .health_check(Some("none"));
    let toa = Service::nat("toa", &format!("{VIP}:81"), "tcp", "rr")
        .real(rs.addr(TOA_PORT), 1)
        .setting("client_address", "\"toa\"")
        .health_check(Some("none"));
    let rvsd = topo.start_rvsd(1, &[pp, toa]);

    // PROXY v2: three requests on one keep-alive connection.
    let url = format!("http://{VIP}/page.txt");
    let out = topo
        .client
        .run("curl", &["-s", "-m", "10", &url, &url, &url], CMD);
    assert!(out.success(), "keep-alive requests: {out}\n{}", rvsd.log());
    assert!(
        out.stdout == page.repeat(3),
        "the page whole, three times: {out}"
    );
    upload_and_download(
        &topo.client,
        topo.dir.path(),
        &format!("http://{VIP}/upload/u.bin"),
        || rvsd.log(),
    );

    let access = wait_for_text(
        &d.join("access.log"),
        "GET /upload/u.bin",
        Duration::from_secs(5),
    );
    let lines: Vec<&str> = access.lines().collect();
    assert_eq!(lines.len(), 5, "three GETs, a PUT, a GET: {access}");
    for l in &lines {
        assert!(
            l.starts_with(&format!("{CLIENT_IP} ")),
            "PROXY v2 names the client: {l}"
        );
    }
    let ports: Vec<&str> = lines[..3]
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or("?"))
        .collect();
    assert!(
        ports.iter().all(|p| *p == ports[0]),
        "one keep-alive connection: {access}"
    );

    // TOA: a request through the toa service; the reader sees the option.
    let out = topo.client.run(
        "curl",
        &["-s", "-m", "10", &format!("http://{VIP}:81/")],
        CMD,
    );
    assert!(
        out.success() && out.stdout == "toa ok\n",
        "toa request: {out}\n{}",
        rvsd.log()
    );
    let (peer, toas) = toa_seen(&toa_out);
    for t in &toas {
        assert!(
            t.starts_with(&format!("{peer} ")),
            "TOA carries the client {peer}: {toas:?}"
        );
    }
    assert!(peer.starts_with(&format!("{CLIENT_IP} ")), "{peer}");

    let stats = stop_rvsd(rvsd);
    assert_carried(&stats);
    took(
        "the_client_address_reaches_the_real_server_by_proxy_v2_and_by_toa",
        started,
    );
}
