//! The spoofing flood sender (`tests/netns/flood.c`), built with `cc` and
//! run in a topology's client namespace: what the flood and soak tests
//! attack rvsd with.

use super::{path_str, Topology};
use crate::support;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// Builds `tests/netns/flood.c` into the topology's directory.
pub fn build(topo: &Topology) -> PathBuf {
    let exe = topo.dir.join("flood");
    let src = support::repo_root().join("tests/netns/flood.c");
    support::run_ok(
        "cc",
        &["-O2", "-o", &path_str(&exe), &path_str(&src)],
        Duration::from_secs(60),
    );
    exe
}

/// A running flood sender; killed if dropped before [`Flood::finish`].
pub struct Flood {
    child: Option<Child>,
    lasts: Duration,
}

impl Flood {
    /// Starts `flood MODE VIP PORT SECONDS PPS` in the client namespace:
    /// `mode` `udp` or `synack` (see flood.c), `pps` 0 for as fast as it
    /// goes.
    pub fn start(
        topo: &Topology,
        exe: &Path,
        mode: &str,
        port: u16,
        lasts: Duration,
        pps: u64,
    ) -> Flood {
        let mut cmd = topo.client.command(&path_str(exe));
        cmd.args([
            mode,
            &topo.vip,
            &port.to_string(),
            &lasts.as_secs_f64().to_string(),
            &pps.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the flood sender: {e}"));
        Flood {
            child: Some(child),
            lasts,
        }
    }

    /// Waits for the sender; returns (packets sent, packets a second).
    pub fn finish(mut self) -> (u64, f64) {
        let mut child = self.child.take().expect("a running flood");
        let status = support::wait_timeout(&mut child, self.lasts + Duration::from_secs(10));
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("flood sender output: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            status.is_some_and(|s| s.success()),
            "flood sender failed ({status:?}): {text}{err}"
        );
        // "sent N packets in T s: R pps"
        let words: Vec<&str> = text.split_whitespace().collect();
        let sent = words.get(1).and_then(|w| w.parse().ok());
        let rate = words.get(6).and_then(|w| w.parse().ok());
        match (sent, rate) {
            (Some(s), Some(r)) => (s, r),
            _ => panic!("flood sender printed {text:?}"),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
