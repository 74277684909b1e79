#![cfg(feature = "dpdk")]
//! End to end, IPv6 load balancing: IPv6 clients (curl) to IPv6 nginx
//! real servers through `rvsd` by NAT, DR and TUN (IPv6-in-IPv6), an
//! IPv4 client to the same real servers by TUN over IPv6 (IPv4-in-IPv6,
//! an IPv4 VIP), and a health check that takes a killed IPv6 real server
//! out under load.
//!
//! ```text
//!   client ns 2001:db8:1::10/64 --+
//!   lb ns: rvsd "lan" (af_packet) +-- switch ns (br0) --+-- rs1 2001:db8:2::11/64, DR VIP on lo
//!      2001:db8:1::1, 2001:db8:2::1                     +-- rs2 2001:db8:2::12/64, DR VIP on lo
//!   lb ns kernel: mgmt 2001:db8:2::fe/64 (health checks) +
//! ```
//!
//! One segment: the client reaches both VIPs on its own /64 (rvsd
//! answers their neighbour solicitations); the real servers route
//! everything through rvsd (NAT replies), except what leaves from the DR
//! VIP or the TUN VIP, which a policy route sends to the client directly.
//! Every namespace runs without duplicate address detection. The kernel
//! here has no ip6_tunnel module: each real server ends rvsd's tunnel with
//! `tests/netns/ipip_decap.py` (an IPv6 raw socket for next header 41
//! writing the inner packet into a TUN device that holds the TUN VIP; a
//! second one for next header 4 and the IPv4 TUN VIP). For IPv4 the
//! client (192.0.2.10) and the real servers (192.0.2.21, .22, answering
//! ARP only for addresses on the link) share the segment's 192.0.2.0/24
//! with rvsd, so a real server answers the IPv4 client directly.
#![deny(unsafe_code)]

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::carry::{wait_for_text, Proc};
use support::ipv6::{addr6, ipv6_host, sysctls};
use support::{counter, Netns, Rvsd, TempDir};

const T: Duration = Duration::from_secs(20);
const RVSD_MAC: &str = "02:00:00:00:00:01";
const CLIENT: &str = "2001:db8:1::10";
const NAT_VIP: &str = "2001:db8:1::100";
const DR_VIP: &str = "2001:db8:1::101";
const TUN_VIP: &str = "2001:db8:1::102";
const MGMT: &str = "2001:db8:2::fe";
const CLIENT4: &str = "192.0.2.10";
const TUN46_VIP: &str = "192.0.2.102";
const RVSADM: &str = env!("CARGO_BIN_EXE_rvsadm");

fn rs_ip(i: usize) -> String {
    format!("2001:db8:2::1{}", i + 1)
}

/// `curl -g http://[vip]/` from the client: the body, or the error.
fn get(client: &Netns, vip: &str, path: &str) -> Result<String, String> {
    let url = format!("http://[{vip}]{path}");
    let out = client.run(
        "curl",
        &[
            "-6",
            "-g",
            "-sS",
            "--max-time",
            "3",
            "--connect-timeout",
            "2",
            &url,
        ],
        Duration::from_secs(5),
    );
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(out.to_string())
    }
}

/// `curl http://vip/` over IPv4 from the client: the body, or the error.
fn get4(client: &Netns, vip: &str, path: &str) -> Result<String, String> {
    let url = format!("http://{vip}{path}");
    let out = client.run(
        "curl",
        &[
            "-4",
            "-sS",
            "--max-time",
            "3",
            "--connect-timeout",
            "2",
            &url,
        ],
        Duration::from_secs(5),
    );
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(out.to_string())
    }
}

fn service(name: &str, vip: &str, forward: &str, health: &str) -> String {
    let mut s = format!(
        "\n[[virtual_server]]\nname = \"{name}\"\naddress = \"[{vip}]:80\"\nprotocol = \"tcp\"\n\
         scheduler = \"rr\"\nforward = \"{forward}\"\n\n  [virtual_server.health_check]\n{health}\n"
    );
    for i in 0..2 {
        s += &format!(
            "  [[virtual_server.real_server]]\n  address = \"[{}]:80\"\n  weight = 1\n\n",
            rs_ip(i)
        );
    }
    s
}

#[test]
fn ipv6_nat_dr_and_tun_to_nginx_and_a_killed_server_taken_out() {
    support::require_root("network namespaces and DPDK");
    let started = Instant::now();
    let dir = TempDir::new("e2e-ipv6");
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
    for ns in [&client, &lb].into_iter().chain(rs.iter()) {
        ipv6_host(ns);
    }
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
    sysctls(&lb, &[&format!("net.ipv6.conf.{lan}.disable_ipv6=1")]);
    addr6(&lb, &mgmt, &format!("{MGMT}/64"));
    addr6(&client, &client_dev, &format!("{CLIENT}/64"));
    client.run_ok(
        "ip",
        &[
            "address",
            "add",
            &format!("{CLIENT4}/24"),
            "dev",
            &client_dev,
        ],
        T,
    );
    for (i, ns) in rs.iter().enumerate() {
        let dev = &rs_devs[i];
        addr6(ns, dev, &format!("{}/64", rs_ip(i)));
        // IPv4 on the segment, to answer the IPv4 client directly; ARP
        // only for the link's own address (not the IPv4 TUN VIP), and
        // no reverse-path check of the tunnelled client packets.
        ns.run_ok(
            "ip",
            &[
                "address",
                "add",
                &format!("192.0.2.2{}/24", i + 1),
                "dev",
                dev,
            ],
            T,
        );
        sysctls(
            ns,
            &[
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
            ],
        );
        ns.link_up("lo");
        addr6(ns, "lo", &format!("{DR_VIP}/128"));
        ns.run_ok(
            "ip",
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                "2001:db8:2::1",
                "dev",
                dev,
            ],
            T,
        );
        // What leaves from the DR VIP goes to the client on the link.
        ns.run_ok(
            "ip",
            &[
                "-6",
                "route",
                "add",
                "2001:db8:1::/64",
                "dev",
                dev,
                "table",
                "100",
            ],
            T,
        );
        for from in [DR_VIP, TUN_VIP] {
            ns.run_ok(
                "ip",
                &["-6", "rule", "add", "from", from, "lookup", "100"],
                T,
            );
        }
    }
    // Each real server's end of the IPv6 tunnel.
    // And of IPv4-in-IPv6 (next header 4), the IPv4 TUN VIP.
    let decaps: Vec<Proc> = rs
        .iter()
        .enumerate()
        .flat_map(|(i, ns)| [(i, ns, "ip6tnl0", TUN_VIP), (i, ns, "ip46tnl0", TUN46_VIP)])
        .map(|(i, ns, dev, vip)| {
            let out = dir.join(&format!("decap{}-{dev}.out", i + 1));
            let mut args = vec!["--dev", dev, "--vip", vip];
            if dev == "ip46tnl0" {
                args.push("--over6");
            }
            let p = Proc(
                ns.command("python3")
                    .arg(support::repo_root().join("tests/netns/ipip_decap.py"))
                    .args(&args)
                    .stdout(std::fs::File::create(&out).expect("decap out"))
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start ipip_decap.py"),
            );
            let ready = wait_for_text(&out, "ready:", Duration::from_secs(10));
            assert!(ready.contains("ready:"), "decapsulator not ready: {ready}");
            p
        })
        .collect();
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
            &["[::]:80 ipv6only=on", "80"],
            false,
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
        "\n[control]\nsocket = {}\n",
        support::toml_str(socket.to_str().unwrap())
    );
    config += &service(
        "nat6",
        NAT_VIP,
        "nat",
        "  type = \"tcp\"\n  interval_ms = 200\n  timeout_ms = 300\n  rise = 1\n  fall = 2\n",
    );
    config += &service("dr6", DR_VIP, "dr", "  type = \"none\"\n");
    config += &service("tun6", TUN_VIP, "tun", "  type = \"none\"\n");
    // An IPv4 VIP by TUN to the same IPv6 real servers, health-checked
    // at their IPv6 addresses.
    config += &service(
        "tun46",
        TUN46_VIP,
        "tun",
        "  type = \"tcp\"\n  interval_ms = 200\n",
    )
    .replace(&format!("[{TUN46_VIP}]"), TUN46_VIP);
    let config = dir.write("rvsd.toml", &config);
    let mut rvsd = Rvsd::start(&config, Some(&lb));
    rvsd.wait_ready(Duration::from_secs(30));
    eprintln!("rvsd ready after {:.1} s", started.elapsed().as_secs_f64());

    // NAT, DR and TUN: every real server answers, in turn.
    for vip in [NAT_VIP, DR_VIP, TUN_VIP] {
        let mut seen = [0u32; 2];
        for _ in 0..10 {
            let body = get(&client, vip, "/")
                .unwrap_or_else(|e| panic!("curl [{vip}]: {e}\n--- rvsd log ---\n{}", rvsd.log()));
            match body.trim() {
                "rs1" => seen[0] += 1,
                "rs2" => seen[1] += 1,
                other => panic!("unexpected body {other:?} from [{vip}]"),
            }
        }
        assert_eq!(seen, [5, 5], "rr over [{vip}]: {seen:?}");
        // A response of 300 KB arrives whole (many segments, both ways
        // for NAT, the client's ACKs through rvsd for DR).
        for _ in 0..2 {
            let out = client.run(
                "curl",
                &[
                    "-6",
                    "-g",
                    "-sS",
                    "--max-time",
                    "5",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{size_download}",
                    &format!("http://[{vip}]/big"),
                ],
                Duration::from_secs(8),
            );
            assert_eq!(out.stdout.trim(), "300000", "download from [{vip}]: {out}");
        }
    }
    eprintln!(
        "NAT, DR and TUN checked after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // IPv4-in-IPv6: the IPv4 client's requests reach both IPv6 real
    // servers in turn, which answer it directly from the IPv4 VIP.
    let mut seen = [0u32; 2];
    for _ in 0..10 {
        let body = get4(&client, TUN46_VIP, "/")
            .unwrap_or_else(|e| panic!("curl {TUN46_VIP}: {e}\n--- rvsd log ---\n{}", rvsd.log()));
        match body.trim() {
            "rs1" => seen[0] += 1,
            "rs2" => seen[1] += 1,
            other => panic!("unexpected body {other:?} from {TUN46_VIP}"),
        }
    }
    assert_eq!(seen, [5, 5], "rr over {TUN46_VIP}: {seen:?}");
    let out = client.run(
        "curl",
        &[
            "-4",
            "-sS",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            &format!("http://{TUN46_VIP}/big"),
        ],
        Duration::from_secs(8),
    );
    assert_eq!(
        out.stdout.trim(),
        "300000",
        "download from {TUN46_VIP}: {out}"
    );
    eprintln!(
        "IPv4-in-IPv6 TUN checked after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Kill rs2's nginx under load: its health check fails and it is taken
    // out; requests go on being answered, by rs1.
    let mut killed = nginx.remove(1);
    let _ = killed.kill();
    let _ = killed.wait();
    // nginx's worker too: every process of rs2's namespace.
    for pid in rs[1].pids() {
        let _ = support::run("kill", &["-KILL", &pid.to_string()], T);
    }
    let kill_at = Instant::now();
    let mut failed = 0;
    let mut down_after = None;
    let mut after_down_ok = 0;
    while kill_at.elapsed() < Duration::from_secs(8) {
        match get(&client, NAT_VIP, "/") {
            Ok(b) if down_after.is_some() => {
                assert_eq!(b.trim(), "rs1", "after rs2 went down");
                after_down_ok += 1;
            }
            Ok(_) => {}
            Err(_) => failed += 1,
        }
        if down_after.is_none() {
            let list = support::run(
                RVSADM,
                &["--socket", socket.to_str().unwrap(), "--json", "list"],
                T,
            );
            if list.stdout.contains("\"health\":\"down\"") {
                down_after = Some(kill_at.elapsed());
            }
        }
        if after_down_ok >= 10 {
            break;
        }
    }
    let list = support::run(
        RVSADM,
        &["--socket", socket.to_str().unwrap(), "--json", "list"],
        T,
    );
    assert!(
        down_after.is_some(),
        "rs2 not marked down after its nginx was killed: {list}"
    );
    assert!(
        after_down_ok >= 10,
        "only {after_down_ok} answers after rs2 went down"
    );
    eprintln!(
        "rs2 down after {:?}, {failed} requests failed meanwhile",
        down_after.unwrap()
    );

    let stopped = rvsd.stop(Duration::from_secs(20));
    drop(decaps);
    for mut n in nginx {
        let _ = n.kill();
        let _ = n.wait();
    }
    assert_eq!(stopped.status.code(), Some(0), "{}", stopped.log);
    let stats = stopped.stats();
    assert!(counter(&stats, "total.conns_created") >= 57, "{stats}");
    assert!(
        counter(&stats, "total.nd_solicits_answered") >= 2,
        "{stats}"
    );
    eprintln!("e2e ipv6 took {:.1} s", started.elapsed().as_secs_f64());
}
