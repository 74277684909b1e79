//! The real-server side of the client-address tests (`client_address`):
//! nginx taking the PROXY protocol and logging the address it carries, and
//! a TOA reader (an AF_PACKET socket printing option 254's address and
//! port) beside a tiny HTTP server. Shared by tests/e2e_client_addr.rs
//! (NAT) and tests/e2e_fullnat_client_addr.rs (FullNAT).

use super::Netns;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A process started here, killed and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nginx with one server on `port` that takes the PROXY protocol, logging
/// `$proxy_protocol_addr $proxy_protocol_port $remote_addr $request_method
/// $request_uri $status $request_length` per request to `d/access.log`,
/// serving `d/www` and taking PUTs under `/upload/`; one process (no
/// master), so killing it is enough.
pub fn proxy_nginx_conf(d: &str, port: u16) -> String {
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
             listen {port} proxy_protocol;\n\
             root {d}/www;\n\
             location /upload/ {{ dav_methods PUT; client_max_body_size 0; }}\n\
           }}\n\
         }}\n"
    )
}

/// Starts [`proxy_nginx_conf`]'s nginx in `ns` from directory `d` (made
/// here, with `www/page.txt` = `page`) and waits until it listens on
/// `port`.
pub fn start_proxy_nginx(ns: &Netns, d: &Path, port: u16, page: &str) -> Proc {
    for sub in ["www/upload", "tmp"] {
        std::fs::create_dir_all(d.join(sub)).expect("nginx dirs");
    }
    std::fs::write(d.join("www/page.txt"), page).expect("page");
    let conf = d.join("nginx.conf");
    std::fs::write(&conf, proxy_nginx_conf(&d.to_string_lossy(), port)).expect("nginx.conf");
    let log = std::fs::File::create(d.join("nginx.out")).expect("log");
    let nginx = Proc(
        ns.command("nginx")
            .args(["-c", &conf.to_string_lossy()])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start nginx"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ns
        .run("ss", &["-Hltn"], Duration::from_secs(20))
        .stdout
        .contains(&format!(":{port} "))
    {
        assert!(
            Instant::now() < deadline,
            "nginx not listening: {}",
            std::fs::read_to_string(d.join("nginx.out")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

/// The TOA reader and a tiny HTTP server on `port` (argv: interface,
/// port): prints `PEER ip port` per accepted connection and `TOA ip port
/// flags=.. len=..` per arriving segment to `port` carrying option 254.
pub const TOA_READER: &str = r#"
import socket, struct, sys, threading
dev, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(16)
lock = threading.Lock()
def say(line):
    # One write per line under a lock: print() writes the text and its
    # newline apart, and two threads print here.
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
def serve():
    while True:
        c, a = srv.accept()
        say(f"PEER {a[0]} {a[1]}")
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
say("READY")
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
            say(f"TOA {socket.inet_ntoa(o[i + 4:i + 8])} {cport} flags=0x{t[13]:02x} len={len(t) - hl}")
        i += n
"#;

/// Starts [`TOA_READER`] in `ns` on interface `dev` and `port`, printing
/// to `out`, and waits until it is ready.
pub fn start_toa_reader(ns: &Netns, dev: &str, port: u16, out: &Path) -> Proc {
    let reader = Proc(
        ns.command("python3")
            .args(["-u", "-c", TOA_READER, dev, &port.to_string()])
            .stdout(std::fs::File::create(out).expect("toa.out"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the TOA reader"),
    );
    let ready = wait_for_text(out, "READY", Duration::from_secs(10));
    assert!(ready.contains("READY"), "TOA reader not ready: {ready}");
    reader
}

/// Waits until `path` holds `needle`, or `timeout`; its text.
pub fn wait_for_text(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The page the PROXY v2 tests fetch three times on one keep-alive
/// connection.
pub fn small_page() -> String {
    (0..40)
        .map(|i| format!("line {i} of a small page\n"))
        .collect()
}

/// Uploads 300 KB to `put_url` from `client` (hundreds of segments, every
/// server ACK translated), downloads the same bytes again and asserts they
/// come back byte-exact; the upload's client port. `log` gives rvsd's log
/// for a failure's message.
pub fn upload_and_download(
    client: &Netns,
    dir: &Path,
    put_url: &str,
    log: impl Fn() -> String,
) -> String {
    const CMD: Duration = Duration::from_secs(30);
    let body: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let file = dir.join("upload.bin");
    std::fs::write(&file, &body).expect("upload file");
    let file = file.display().to_string();
    let out = client.run(
        "curl",
        &[
            "-s",
            "-m",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{local_port}",
            "-T",
            &file,
            put_url,
        ],
        CMD,
    );
    assert!(
        out.success() && out.stdout.starts_with("201 "),
        "upload: {out}\n{}",
        log()
    );
    let put_port = out.stdout.split_whitespace().nth(1).unwrap_or("?");
    let back = dir.join("back.bin");
    let back_path = back.display().to_string();
    let got = client.run(
        "curl",
        &[
            "-s",
            "-m",
            "20",
            "-o",
            &back_path,
            "-w",
            "%{http_code}",
            put_url,
        ],
        CMD,
    );
    assert!(
        got.success() && got.stdout.trim() == "200",
        "download: {got}"
    );
    assert!(
        std::fs::read(&back).unwrap_or_default() == body,
        "the file comes back byte-exact"
    );
    put_port.to_string()
}

/// What the TOA reader of `out` saw: the peer its server accepted
/// ("ADDR PORT") and the TOA options found ("ADDR PORT flags=.. len=..");
/// asserts there is at least one, and that the handshake's bare ACK
/// carried one.
pub fn toa_seen(out: &Path) -> (String, Vec<String>) {
    let seen = wait_for_text(out, "TOA ", Duration::from_secs(5));
    let peer = seen
        .lines()
        .find_map(|l| l.strip_prefix("PEER "))
        .unwrap_or_else(|| panic!("the server saw no connection: {seen}"));
    let toas: Vec<String> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("TOA "))
        .map(str::to_string)
        .collect();
    assert!(!toas.is_empty(), "no TOA option arrived: {seen}");
    assert!(
        toas.iter().any(|t| t.contains("flags=0x10 len=0")),
        "the handshake's bare ACK carries it: {seen}"
    );
    (peer.to_string(), toas)
}

/// Asserts rvsd's final `stats` show at least three PROXY v2 headers and
/// one TOA option inserted, and nothing skipped.
pub fn assert_carried(stats: &serde_json::Value) {
    assert!(
        super::counter(stats, "total.client_addr_proxy_v2_inserted") >= 3,
        "{stats}"
    );
    assert!(
        super::counter(stats, "total.client_addr_toa_inserted") >= 1,
        "{stats}"
    );
    for reason in ["no_room", "header_full", "too_big", "fragment"] {
        assert_eq!(
            super::counter(stats, &format!("total.client_addr_skipped_{reason}")),
            0,
            "{stats}"
        );
    }
}
