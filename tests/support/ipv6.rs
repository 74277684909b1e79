//! What the IPv6 end-to-end tests share (e2e_ipv6, e2e_fullnat6,
//! e2e_nat64, e2e_sync6): namespaces made quiet IPv6 hosts, addresses
//! without duplicate address detection, and the nginx real servers.

use super::Netns;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// Sets sysctls in `ns`, ignoring failures (a key the kernel lacks).
pub fn sysctls(ns: &Netns, keys: &[&str]) {
    for key in keys {
        let _ = ns.run("sysctl", &["-q", "-w", key], T);
    }
}

/// IPv6 on, no duplicate address detection, no router solicitations.
pub fn ipv6_host(ns: &Netns) {
    sysctls(
        ns,
        &[
            "net.ipv6.conf.all.disable_ipv6=0",
            "net.ipv6.conf.default.disable_ipv6=0",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.router_solicitations=0",
            "net.ipv6.conf.default.router_solicitations=0",
            "net.ipv6.conf.all.accept_ra=0",
            "net.ipv6.conf.default.accept_ra=0",
        ],
    );
}

/// Adds IPv6 address `cidr` to `dev` in `ns`, usable at once (`nodad`).
pub fn addr6(ns: &Netns, dev: &str, cidr: &str) {
    ns.run_ok(
        "ip",
        &["-6", "address", "add", cidr, "dev", dev, "nodad"],
        T,
    );
}

/// Starts nginx in `ns` serving `dir/www` (PUT bodies in `dir/tmp`) on
/// each of `listens` (nginx `listen` arguments, `[::]:80 ipv6only=on` or
/// `0.0.0.0:80`); with `log_peers`, each request's peer and request line
/// go to `dir/access.log`. Keep-alive 60 s.
pub fn start_nginx(ns: &Netns, dir: &Path, listens: &[&str], log_peers: bool) -> Child {
    let d = dir.to_str().expect("utf-8 path");
    let log = if log_peers {
        format!("log_format peer '$remote_addr $request';\n  access_log {d}/access.log peer;")
    } else {
        "access_log off;".to_string()
    };
    let listen: String = listens
        .iter()
        .map(|l| format!("    listen {l};\n"))
        .collect();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  {log}\n  client_body_temp_path {d}/tmp;\n\
             keepalive_timeout 60;\n\
             server {{\n{listen}    root {d}/www;\n  }}\n}}\n"
        ),
    )
    .expect("nginx.conf");
    ns.command("nginx")
        .args(["-p", d, "-c", conf.to_str().expect("utf-8 path")])
        .args(["-e", dir.join("error.log").to_str().expect("utf-8 path")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx")
}
