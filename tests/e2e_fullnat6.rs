#![cfg(feature = "dpdk")]
//! End to end, FullNAT over IPv6: an IPv6 client (curl) to IPv6 nginx
//! real servers through `rvsd`, the real servers in a subnet of their own
//! behind a router that has no route back through rvsd, so only FullNAT
//! (replies to rvsd's IPv6 local address) can work.
//!
//! ```text
//!   client 2001:db8:1::10/64 --+
//!   rvsd "lan" (af_packet)     +-- switch (br0) --+
//!     2001:db8:1::1, 2001:db8:2::1,               |
//!     VIP 2001:db8:1::100, LIP 2001:db8:2::100    |
//!   router 2001:db8:1::fe, 2001:db8:2::fe --------+
//!     2001:db8:3::1 --- br1 --- rs1 2001:db8:3::11, rs2 2001:db8:3::12
//!                               (default via 2001:db8:3::1)
//! ```
//!
//! The router is on the client's prefix itself: a real server's reply to
//! the client (NAT) would go to the client directly and be refused; a
//! reply to the local address goes to rvsd (the router resolves it by
//! neighbour discovery, which rvsd answers for its local address). The
//! test: every real server answers curl through the VIP, a 300 KB
//! download arrives whole, nginx logs the local address as its peer,
//! `rvsadm list` shows the method and the IPv6 local address, and the
//! stats count the local address's ports. Every namespace runs without
//! duplicate address detection.
#![deny(unsafe_code)]

mod support;

use std::process::Child;
use std::time::{Duration, Instant};
use support::ipv6::{addr6, ipv6_host, sysctls};
use support::{counter, Netns, Rvsd, TempDir};

const T: Duration = Duration::from_secs(20);
const RVSD_MAC: &str = "02:00:00:00:00:01";
const CLIENT: &str = "2001:db8:1::10";
const VIP: &str = "2001:db8:1::100";
const LIP: &str = "2001:db8:2::100";
const ROUTER_LB_SIDE: &str = "2001:db8:2::fe";
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

fn rs_ip(i: usize) -> String {
    format!("2001:db8:3::1{}", i + 1)
}

fn route6(ns: &Netns, args: &[&str]) {
    let mut a = vec!["-6", "route", "add"];
    a.extend_from_slice(args);
    ns.run_ok("ip", &a, T);
}

/// `curl` from the client to `http://[VIP]{path}` with `extra` arguments:
/// stdout, or the error.
fn curl(client: &Netns, path: &str, extra: &[&str]) -> Result<String, String> {
    let url = format!("http://[{VIP}]{path}");
    let mut args = vec![
        "-6",
        "-g",
        "-sS",
        "--max-time",
        "5",
        "--connect-timeout",
        "2",
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    let out = client.run("curl", &args, Duration::from_secs(8));
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(out.to_string())
    }
}

#[test]
fn ipv6_fullnat_through_a_router_without_a_route_back_answers_from_every_server() {
    support::require_root("network namespaces and DPDK");
    let started = Instant::now();
    let dir = TempDir::new("e2e-fullnat6");
    let sw = Netns::new();
    let client = Netns::new();
    let lb = Netns::new();
    let router = Netns::new();
    let rs: Vec<Netns> = (0..2).map(|_| Netns::new()).collect();
    sysctls(
        &sw,
        &[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    );
    for ns in [&client, &lb, &router].into_iter().chain(rs.iter()) {
        ipv6_host(ns);
    }
    sysctls(&router, &["net.ipv6.conf.all.forwarding=1"]);

    // The switch: client, rvsd's port, the router's outer leg.
    sw.run_ok("ip", &["link", "add", "br0", "type", "bridge"], T);
    sw.link_up("br0");
    let attach = |ns: &Netns| -> String {
        let v = support::veth_pair(ns, &sw);
        sw.run_ok("ip", &["link", "set", &v.b, "master", "br0"], T);
        v.a
    };
    let client_dev = attach(&client);
    let lan = attach(&lb);
    let router_out = attach(&router);
    // rvsd's port: the kernel keeps off it.
    sysctls(&lb, &[&format!("net.ipv6.conf.{lan}.disable_ipv6=1")]);
    addr6(&client, &client_dev, &format!("{CLIENT}/64"));
    addr6(&router, &router_out, "2001:db8:1::fe/64");
    addr6(&router, &router_out, &format!("{ROUTER_LB_SIDE}/64"));

    // The real servers' subnet behind the router.
    router.run_ok("ip", &["link", "add", "br1", "type", "bridge"], T);
    router.link_up("br1");
    addr6(&router, "br1", "2001:db8:3::1/64");
    for (i, ns) in rs.iter().enumerate() {
        let v = support::veth_pair(ns, &router);
        router.run_ok("ip", &["link", "set", &v.b, "master", "br1"], T);
        addr6(ns, &v.a, &format!("{}/64", rs_ip(i)));
        ns.link_up("lo");
        route6(ns, &["default", "via", "2001:db8:3::1", "dev", &v.a]);
    }
    let mut nginx: Vec<Child> = Vec::new();
    for (i, ns) in rs.iter().enumerate() {
        let d = dir.join(&format!("rs{}", i + 1));
        std::fs::create_dir_all(d.join("www")).unwrap();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::write(d.join("www/index.html"), format!("rs{}\n", i + 1)).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|n| (n * 7 + i as u32) as u8).collect();
        std::fs::write(d.join("www/big"), &big).unwrap();
        nginx.push(support::ipv6::start_nginx(
            ns,
            &d,
            &["[::]:80 ipv6only=on"],
            true,
        ));
    }

    let device = format!("net_af_packet0,iface={lan}");
    let mut config = support::single_port_config(
        &device,
        &["192.0.2.1/24", "2001:db8:1::1/64", "2001:db8:2::1/64"],
        Some(RVSD_MAC),
    );
    let socket = dir.join("rvsd.sock");
    config += &format!(
        "\n[control]\nsocket = {}\n\n[[route]]\nprefix = \"2001:db8:3::/64\"\n\
         via = \"{ROUTER_LB_SIDE}\"\ninterface = \"test0\"\n",
        support::toml_str(socket.to_str().unwrap())
    );
    config += &format!(
        "\n[[virtual_server]]\nname = \"web6\"\naddress = \"[{VIP}]:80\"\nprotocol = \"tcp\"\n\
         scheduler = \"rr\"\nforward = \"fullnat\"\nlocal_addresses = [\"{LIP}\"]\n\n\
         [virtual_server.health_check]\ntype = \"none\"\n\n"
    );
    for i in 0..2 {
        config += &format!(
            "  [[virtual_server.real_server]]\n  address = \"[{}]:80\"\n  weight = 1\n\n",
            rs_ip(i)
        );
    }
    let config = dir.write("rvsd.toml", &config);
    let mut rvsd = Rvsd::start(&config, Some(&lb));
    rvsd.wait_ready(Duration::from_secs(30));
    eprintln!("rvsd ready after {:.1} s", started.elapsed().as_secs_f64());

    // Every real server answers, in turn.
    let mut seen = [0u32; 2];
    for _ in 0..10 {
        let body = curl(&client, "/", &[])
            .unwrap_or_else(|e| panic!("curl [{VIP}]: {e}\n--- rvsd log ---\n{}", rvsd.log()));
        match body.trim() {
            "rs1" => seen[0] += 1,
            "rs2" => seen[1] += 1,
            other => panic!("unexpected body {other:?}"),
        }
    }
    assert_eq!(seen, [5, 5], "rr over [{VIP}]: {seen:?}");
    // 300 KB arrive whole: many segments both ways through the LIP.
    for _ in 0..2 {
        let size = curl(
            &client,
            "/big",
            &["-o", "/dev/null", "-w", "%{size_download}"],
        );
        assert_eq!(size.as_deref().map(str::trim), Ok("300000"), "{size:?}");
    }

    // The real servers saw the local address as the client, never the
    // client itself.
    for i in 0..2 {
        let log = std::fs::read_to_string(dir.join(&format!("rs{}/access.log", i + 1)))
            .unwrap_or_default();
        let peers: Vec<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
        assert!(!peers.is_empty(), "rs{}: no request logged", i + 1);
        assert!(
            peers.iter().all(|&p| p == LIP),
            "rs{}: peers {peers:?}, expected {LIP} only",
            i + 1
        );
    }

    // rvsadm shows the method and the IPv6 local address.
    let sock = socket.to_str().unwrap();
    let list = support::run(RVSADM, &["--socket", sock, "--json", "list"], T);
    let list: serde_json::Value = serde_json::from_str(&list.stdout)
        .unwrap_or_else(|e| panic!("rvsadm list: {e}: {}", list.stdout));
    let vs = &list["virtual_servers"][0];
    assert_eq!(vs["forward"], "fullnat", "{list}");
    assert_eq!(vs["local_addresses"][0], LIP, "{list}");
    let text = support::run(RVSADM, &["--socket", sock, "list"], T);
    assert!(text.stdout.contains(LIP), "{text}");

    let stopped = rvsd.stop(Duration::from_secs(20));
    for mut n in nginx {
        let _ = n.kill();
        let _ = n.wait();
    }
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    let stats = stopped.stats();
    assert_eq!(counter(&stats, "total.conns_created"), 12, "{stats}");
    let key = format!("{LIP}/tcp");
    let ports = &stats["total"]["local_ports"][&key];
    assert_eq!(ports["capacity"], 64512, "{stats}");
    assert_eq!(ports["exhausted"], 0, "{stats}");
    assert_eq!(
        counter(&stats, "total.drops.local_ports_exhausted"),
        0,
        "{stats}"
    );
    assert!(
        counter(&stats, "total.nd_solicits_answered") >= 1,
        "the router asked for the local address: {stats}"
    );
    eprintln!("e2e fullnat6 took {:.1} s", started.elapsed().as_secs_f64());
}
