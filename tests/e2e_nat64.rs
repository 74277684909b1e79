#![cfg(feature = "dpdk")]
//! End to end, NAT64 FullNAT: an IPv6 client (curl -6) to IPv4 nginx real
//! servers through `rvsd`, which translates each IPv6 packet to IPv4 from
//! its local address and each IPv4 reply back to IPv6 from the VIP.
//!
//! ```text
//!   client ns 2001:db8:1::10/64 --+
//!   lb ns: rvsd "lan" (af_packet) +-- switch ns (br0) --+-- rs1 10.1.0.11/24 (IPv4 only)
//!      2001:db8:1::1/64, 10.1.0.1/24, LIP 10.1.0.100    +-- rs2 10.1.0.12/24 (IPv4 only)
//!   lb ns kernel: mgmt 10.1.0.254/24 (health checks) ---+
//! ```
//!
//! One segment: the client reaches the VIP on its own /64 (rvsd answers
//! its neighbour solicitations), the real servers reach the local address
//! on theirs (rvsd answers ARP for it). The real servers have no route to
//! the client at all: only the translated connection can answer. The
//! test: every real server answers in turn, 300 KB downloads arrive whole,
//! nginx logs the local address as every request's source, and rvsd
//! counts the translations.
#![deny(unsafe_code)]

mod support;

use std::process::Child;
use std::time::{Duration, Instant};
use support::ipv6::sysctls;
use support::{counter, Netns, Rvsd, TempDir};

const T: Duration = Duration::from_secs(20);
const RVSD_MAC: &str = "02:00:00:00:00:01";
const CLIENT: &str = "2001:db8:1::10";
const VIP: &str = "2001:db8:1::100";
const LIP: &str = "10.1.0.100";
const MGMT: &str = "10.1.0.254";
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

fn rs_ip(i: usize) -> String {
    format!("10.1.0.1{}", i + 1)
}

/// `curl -6 -g http://[VIP]PATH` from the client with curl's `extra`
/// arguments: stdout, or the error.
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

fn service() -> String {
    let mut s = format!(
        "\n[[virtual_server]]\nname = \"web64\"\naddress = \"[{VIP}]:80\"\nprotocol = \"tcp\"\n\
         scheduler = \"rr\"\nforward = \"fullnat\"\nlocal_addresses = [\"{LIP}\"]\n\n\
         [virtual_server.health_check]\n  type = \"tcp\"\n  interval_ms = 200\n  \
         timeout_ms = 300\n  rise = 1\n  fall = 2\n\n"
    );
    for i in 0..2 {
        s += &format!(
            "  [[virtual_server.real_server]]\n  address = \"{}:80\"\n  weight = 1\n\n",
            rs_ip(i)
        );
    }
    s
}

#[test]
fn an_ipv6_client_reaches_ipv4_nginx_through_nat64_from_the_local_address() {
    support::require_root("network namespaces and DPDK");
    let started = Instant::now();
    let dir = TempDir::new("e2e-nat64");
    let sw = Netns::new();
    let client = Netns::new();
    let lb = Netns::new();
    let rs: Vec<Netns> = (0..2).map(|_| Netns::new()).collect();
    sysctls(
        &sw,
        &[
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    );
    sysctls(
        &client,
        &[
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.default.disable_ipv6=0",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_ra=0",
            "net.ipv6.conf.default.accept_ra=0",
        ],
    );
    sw.run_ok("ip", &["link", "add", "br0", "type", "bridge"], T);
    sw.link_up("br0");
    let mut attach = |ns: &Netns| -> String {
        let v = support::veth_pair(ns, &sw);
        sw.run_ok("ip", &["link", "set", &v.b, "master", "br0"], T);
        v.a
    };
    let client_dev = attach(&client);
    let lan = attach(&lb);
    let mgmt = attach(&lb);
    let rs_devs: Vec<String> = rs.iter().map(&mut attach).collect();

    // rvsd's port: the kernel keeps off it.
    sysctls(
        &lb,
        &[
            &format!("net.ipv6.conf.{lan}.disable_ipv6=1"),
            &format!("net.ipv4.conf.{lan}.arp_ignore=8"),
        ],
    );
    lb.add_address(&mgmt, &format!("{MGMT}/24"));
    client.run_ok(
        "ip",
        &[
            "-6",
            "address",
            "add",
            &format!("{CLIENT}/64"),
            "dev",
            &client_dev,
            "nodad",
        ],
        T,
    );
    for (i, ns) in rs.iter().enumerate() {
        ns.add_address(&rs_devs[i], &format!("{}/24", rs_ip(i)));
        ns.link_up("lo");
    }
    let mut nginx: Vec<Child> = Vec::new();
    for (i, ns) in rs.iter().enumerate() {
        let d = dir.join(&format!("rs{}", i + 1));
        std::fs::create_dir_all(d.join("www")).unwrap();
        std::fs::create_dir_all(d.join("tmp")).unwrap();
        std::fs::write(d.join("www/index.html"), format!("rs{}\n", i + 1)).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|n| (n * 7 + i as u32) as u8).collect();
        std::fs::write(d.join("www/big"), &big).unwrap();
        nginx.push(support::ipv6::start_nginx(ns, &d, &["0.0.0.0:80"], true));
    }

    let device = format!("net_af_packet0,iface={lan}");
    let mut config = support::single_port_config(
        &device,
        &["2001:db8:1::1/64", "10.1.0.1/24"],
        Some(RVSD_MAC),
    );
    let socket = dir.join("rvsd.sock");
    config += &format!(
        "\n[control]\nsocket = {}\n",
        support::toml_str(socket.to_str().unwrap())
    );
    config += &service();
    let config = dir.write("rvsd.toml", &config);
    let mut rvsd = Rvsd::start(&config, Some(&lb));
    rvsd.wait_ready(Duration::from_secs(30));
    // Both real servers up by their (IPv4) health checks.
    let up_by = Instant::now() + Duration::from_secs(10);
    loop {
        let list = support::run(
            RVSADM,
            &["--socket", socket.to_str().unwrap(), "--json", "list"],
            T,
        );
        if list.stdout.matches("\"health\":\"up\"").count() == 2 {
            break;
        }
        assert!(Instant::now() < up_by, "real servers not up: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    // 300 KB arrive whole: full-sized segments translated both ways.
    for _ in 0..2 {
        let size = curl(
            &client,
            "/big",
            &["-o", "/dev/null", "-w", "%{size_download}"],
        )
        .unwrap_or_else(|e| panic!("download: {e}\n--- rvsd log ---\n{}", rvsd.log()));
        assert_eq!(size.trim(), "300000");
    }

    // nginx saw every request from the local address.
    for i in 0..2 {
        let log = std::fs::read_to_string(dir.join(&format!("rs{}/access.log", i + 1)))
            .unwrap_or_default();
        let peers: Vec<&str> = log
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert!(!peers.is_empty(), "rs{}: no request logged", i + 1);
        assert!(
            peers.iter().all(|&p| p == LIP),
            "rs{}: peers {peers:?}, expected {LIP} only",
            i + 1
        );
    }

    let stopped = rvsd.stop(Duration::from_secs(20));
    for mut n in nginx {
        let _ = n.kill();
        let _ = n.wait();
    }
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    let stats = stopped.stats();
    assert!(counter(&stats, "total.conns_created") >= 12, "{stats}");
    assert!(counter(&stats, "total.nat64_to_ipv4") >= 12 * 3, "{stats}");
    assert!(counter(&stats, "total.nat64_to_ipv6") >= 12 * 3, "{stats}");
    assert_eq!(counter(&stats, "total.drops.nat64_untranslatable"), 0);
    assert_eq!(counter(&stats, "total.drops.local_ports_exhausted"), 0);
    eprintln!("e2e nat64 took {:.1} s", started.elapsed().as_secs_f64());
}
