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
use netns::{path_str, stop_rvsd, Service, Topology, CLIENT_IP, VIP};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::counter;

const PP_PORT: u16 = 8081;
const TOA_PORT: u16 = 8082;
const CMD: Duration = Duration::from_secs(20);

/// A process started here, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx with one server that takes the PROXY protocol, logging the
/// address it carries; one process (no master), so killing it is enough.
fn nginx_conf(d: &str) -> String {
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\n\
         pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           log_format pp '$proxy_protocol_addr $proxy_protocol_port $remote_addr $request_method $request_uri $status $request_length';\n\
           access_log {d}/access.log pp;\n\
           client_body_temp_path {d}/tmp/body;\n\
           proxy_temp_path {d}/tmp/proxy;\n\
           fastcgi_temp_path {d}/tmp/fastcgi;\n\
           uwsgi_temp_path {d}/tmp/uwsgi;\n\
           scgi_temp_path {d}/tmp/scgi;\n\
           default_type application/octet-stream;\n\
           keepalive_timeout 30;\n\
           server {{\n\
             listen {PP_PORT} proxy_protocol;\n\
             root {d}/www;\n\
             location /upload/ {{ dav_methods PUT; client_max_body_size 0; }}\n\
           }}\n\
         }}\n"
    )
}

/// The TOA reader and a tiny HTTP server on `port` (argv: interface,
/// port): prints `PEER ip port` per accepted connection and `TOA ip port
/// flags=.. len=..` per arriving segment to `port` carrying option 254.
const TOA_READER: &str = r#"
import socket, struct, sys, threading
dev, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(16)
def serve():
    while True:
        c, a = srv.accept()
        print(f"PEER {a[0]} {a[1]}", flush=True)
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(4096)
            if not d:
                break
            data += d
        body = b"toa ok\n"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        c.close()
threading.Thread(target=serve, daemon=True).start()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((dev, 0))
print("READY", flush=True)
while True:
    f = s.recv(65535)
    ip = f[14:]
    if len(ip) < 20 or ip[9] != 6:
        continue
    t = ip[(ip[0] & 15) * 4:]
    if len(t) < 20 or struct.unpack("!H", t[2:4])[0] != port:
        continue
    hl = (t[12] >> 4) * 4
    o, i = t[20:hl], 0
    while i < len(o):
        k = o[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= len(o) or o[i + 1] < 2:
            break
        n = o[i + 1]
        if k == 254 and n == 8:
            cport = struct.unpack("!H", o[i + 2:i + 4])[0]
            print(f"TOA {socket.inet_ntoa(o[i + 4:i + 8])} {cport} flags=0x{t[13]:02x} len={len(t) - hl}", flush=True)
        i += n
"#;

/// Waits until `path` holds `needle`, or `timeout`; its text.
fn wait_for_text(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_client_address_reaches_the_real_server_by_proxy_v2_and_by_toa() {
    let started = Instant::now();
    let topo = Topology::nat(1);
    let rs = &topo.real_servers[0];

    // rs1's nginx taking the PROXY protocol.
    let d = rs.dir.join("pp");
    for sub in ["www/upload", "tmp"] {
        std::fs::create_dir_all(d.join(sub)).expect("nginx dirs");
    }
    let page: String = (0..40)
        .map(|i| format!("line {i} of a small page\n"))
        .collect();
    std::fs::write(d.join("www/page.txt"), &page).expect("page");
    std::fs::write(d.join("nginx.conf"), nginx_conf(&path_str(&d))).expect("nginx.conf");
    let log = std::fs::File::create(d.join("nginx.out")).expect("log");
    let _nginx = Proc(
        rs.ns
            .command("nginx")
            .args(["-c", &path_str(&d.join("nginx.conf"))])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start nginx"),
    );
    // rs1's TOA reader.
    let toa_out = rs.dir.join("toa.out");
    let _reader = Proc(
        rs.ns
            .command("python3")
            .args(["-u", "-c", TOA_READER, &rs.dev, &TOA_PORT.to_string()])
            .stdout(std::fs::File::create(&toa_out).expect("toa.out"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the TOA reader"),
    );
    let ready = wait_for_text(&toa_out, "READY", Duration::from_secs(10));
    assert!(ready.contains("READY"), "TOA reader not ready: {ready}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !rs
        .ns
        .run("ss", &["-Hltn"], CMD)
        .stdout
        .contains(&format!(":{PP_PORT} "))
    {
        assert!(
            Instant::now() < deadline,
            "nginx not listening: {}",
            std::fs::read_to_string(d.join("nginx.out")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

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
    // An upload of 300 KB (hundreds of segments, every server ACK
    // translated) and the same bytes back.
    let body: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let file = topo.dir.join("upload.bin");
    std::fs::write(&file, &body).expect("upload file");
    let put = format!("http://{VIP}/upload/u.bin");
    let out = topo.client.run(
        "curl",
        &[
            "-s",
            "-m",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-T",
            &path_str(&file),
            &put,
        ],
        CMD,
    );
    assert!(
        out.success() && out.stdout.trim() == "201",
        "upload: {out}\n{}",
        rvsd.log()
    );
    let back = topo.dir.join("back.bin");
    let out = topo.client.run(
        "curl",
        &[
            "-s",
            "-m",
            "20",
            "-o",
            &path_str(&back),
            "-w",
            "%{http_code}",
            &put,
        ],
        CMD,
    );
    assert!(
        out.success() && out.stdout.trim() == "200",
        "download: {out}"
    );
    assert!(
        std::fs::read(&back).unwrap_or_default() == body,
        "the file comes back byte-exact"
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
    let seen = wait_for_text(&toa_out, "TOA ", Duration::from_secs(5));
    let peer = seen
        .lines()
        .find_map(|l| l.strip_prefix("PEER "))
        .unwrap_or_else(|| panic!("the server saw no connection: {seen}"));
    let toas: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("TOA "))
        .collect();
    assert!(!toas.is_empty(), "no TOA option arrived: {seen}");
    for t in &toas {
        assert!(
            t.starts_with(&format!("{peer} ")),
            "TOA carries the client {peer}: {seen}"
        );
    }
    assert!(peer.starts_with(&format!("{CLIENT_IP} ")), "{seen}");
    assert!(
        toas.iter().any(|t| t.contains("flags=0x10 len=0")),
        "the handshake's bare ACK carries it: {seen}"
    );

    let stats = stop_rvsd(rvsd);
    assert!(
        counter(&stats, "total.client_addr_proxy_v2_inserted") >= 3,
        "{stats}"
    );
    assert!(
        counter(&stats, "total.client_addr_toa_inserted") >= 1,
        "{stats}"
    );
    for reason in ["no_room", "header_full", "too_big", "fragment"] {
        assert_eq!(
            counter(&stats, &format!("total.client_addr_skipped_{reason}")),
            0,
            "{stats}"
        );
    }
    took(
        "the_client_address_reaches_the_real_server_by_proxy_v2_and_by_toa",
        started,
    );
}
