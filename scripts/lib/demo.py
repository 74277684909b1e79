#!/usr/bin/env python3
"""Helpers of scripts/demo: the client's HTTP load, and the demo's three
phases, each with its live view (one line a second, events as they happen)
and the figures that prove it.

  demo.py load --vip IP [--port N] --concurrency C [--pace-ms MS]
               --progress FILE --out FILE --stop FILE [--max-seconds S]
      Runs in the client namespace. C threads each make HTTP GETs through
      the VIP, one TCP connection per request (so every request is a new
      connection the balancer schedules), one every MS milliseconds when
      --pace-ms is given, else back to back. Writes the answers so far by
      real server name (the body) to FILE --progress five times a second;
      when the file --stop appears (or after S seconds) writes every
      request (start, end, outcome) to --out and exits.

  demo.py weights  COMMON --seconds S
      Phase 1: load for S seconds; each real server's share of the answers
      and of rvsd's new connections against its configured weight.

  demo.py server   COMMON --rs I --rs-ns NS --restart CMD --rvsd-log FILE
      Phase 2: load; kill -9 real server I's nginx (every process in NS);
      time to rvsd marking it down, requests answered and failed (and when);
      start it again (CMD); time to rvsd marking it up; its traffic back.

  demo.py balancer COMMON --socket-b PATH --rvsd-pid PID --keepalived-logs A,B
                   --download-path P --download-sha SHA --download-bytes N
                   --rate R --kill-after S
      Phase 3: a rate-limited download (curl --limit-rate) and a light
      load through the VIP; kill -9 of the active rvsd (PID) mid-download;
      keepalived's role changes, the takeover time, the download completing
      byte-exact (sha256).

  COMMON: --config TOML (balancer A's: VIP, real servers, weights, health
  timing) --rvsadm PATH --socket PATH (A's) --client-ns NS --work DIR
"""
import argparse
import hashlib
import http.client
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib

# Terminal styles, as scripts/demo's.
if sys.stdout.isatty():
    BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[0m"
else:
    BOLD = DIM = GREEN = RED = RESET = ""

_print_lock = threading.Lock()


def say(text=""):
    """One line of the demo's output, indented like scripts/demo's."""
    with _print_lock:
        print("   " + text if text else "", flush=True)


# ------------------------------------------------------------------ load


def load(a):
    """The client: HTTP GETs through the VIP, each on a new connection."""
    records = []
    answers = {}
    errors = 0
    lock = threading.Lock()
    stop = threading.Event()
    deadline = time.time() + a.max_seconds

    def worker():
        nonlocal errors
        next_at = time.time()
        while not stop.is_set():
            if a.pace_ms:
                delay = next_at - time.time()
                if delay > 0:
                    time.sleep(delay)
                next_at = max(next_at + a.pace_ms / 1000.0, time.time() - 1.0)
            t0 = time.time()
            try:
                c = http.client.HTTPConnection(a.vip, a.port, timeout=2)
                c.request("GET", "/", headers={"Connection": "close"})
                r = c.getresponse()
                body = r.read().decode(errors="replace").strip()
                c.close()
                outcome = body if r.status == 200 else "!http_%d" % r.status
            except Exception as e:  # every failure is counted, whatever it is
                outcome = "!" + type(e).__name__
            t1 = time.time()
            with lock:
                records.append((round(t0, 4), round(t1, 4), outcome))
                if outcome.startswith("!"):
                    errors += 1
                else:
                    answers[outcome] = answers.get(outcome, 0) + 1
            if outcome.startswith("!") and not a.pace_ms:
                time.sleep(0.05)

    def write(path, doc):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    while not (os.path.exists(a.stop) or time.time() > deadline):
        with lock:
            doc = {"answers": dict(answers), "errors": errors, "t": time.time()}
        write(a.progress, doc)
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    with lock:
        write(a.out, {"records": list(records)})



class Load:
    """The load process in the client namespace, seen from outside."""

    def __init__(self, a, tag, concurrency, pace_ms=0):
        self.progress = os.path.join(a.work, "load-%s.progress" % tag)
        self.out = os.path.join(a.work, "load-%s.json" % tag)
        self.stop_file = os.path.join(a.work, "load-%s.stop" % tag)
        cfg = a.cfg
        cmd = ["ip", "netns", "exec", a.client_ns, "python3", os.path.abspath(__file__), "load",
               "--vip", cfg.vip, "--port", str(cfg.port), "--concurrency", str(concurrency),
               "--pace-ms", str(pace_ms), "--progress", self.progress, "--out", self.out,
               "--stop", self.stop_file, "--max-seconds", "120"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)

    def progress_doc(self):
        try:
            with open(self.progress) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {"answers": {}, "errors": 0}

    def finish(self):
        """Stops the load; every request as (start, end, outcome)."""
        open(self.stop_file, "w").close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            with open(self.out) as f:
                return [tuple(r) for r in json.load(f)["records"]]
        except (OSError, ValueError):
            return []


# ---------------------------------------------------------------- rvsd


class Config:
    """What the demo needs from balancer A's config file."""

    def __init__(self, path):
        with open(path, "rb") as f:
            doc = tomllib.load(f)
        vs = doc["virtual_server"][0]
        self.vip, port = vs["address"].rsplit(":", 1)
        self.port = int(port)
        self.servers = [rs["address"] for rs in vs["real_server"]]
        self.weights = [int(rs.get("weight", 1)) for rs in vs["real_server"]]
        self.names = ["rs%d" % (i + 1) for i in range(len(self.servers))]
        hc = vs.get("health_check", {})
        self.interval_ms = int(hc.get("interval_ms", 1000))
        self.timeout_ms = int(hc.get("timeout_ms", 1000))
        self.fall = int(hc.get("fall", 3))
        self.rise = int(hc.get("rise", 2))
        self.check = hc.get("type", "tcp")


def rvsadm(a, socket, *args):
    """`rvsadm --socket SOCKET --json ARGS`, parsed; None when it fails."""
    try:
        out = subprocess.run([a.rvsadm, "--socket", socket, "--json", *args],
                             capture_output=True, text=True, timeout=3)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout)
    except ValueError:
        return None


def servers_of(listing, cfg):
    """{name: real server entry} of the first virtual server in a listing."""
    if not listing or not listing.get("virtual_servers"):
        return {}
    by_addr = {rs["address"]: rs for rs in listing["virtual_servers"][0]["real_servers"]}
    return {n: by_addr.get(addr, {}) for n, addr in zip(cfg.names, cfg.servers)}


class LogWatch(threading.Thread):
    """Reads the new lines of some log files every 5 ms and remembers,
    with the time it saw it, each line that contains one of `needles`:
    when rvsd or keepalived logged it, to a few milliseconds."""

    def __init__(self, paths, needles):
        super().__init__(daemon=True)
        self.paths, self.needles = paths, needles
        self.offsets = [os.path.getsize(p) if os.path.exists(p) else 0 for p in paths]
        self.seen = []  # (time, index of the file, line)
        self.stopped = threading.Event()
        self.start()

    def run(self):
        partial = [""] * len(self.paths)
        while not self.stopped.is_set():
            for i, path in enumerate(self.paths):
                try:
                    with open(path, "rb") as f:
                        f.seek(self.offsets[i])
                        data = f.read()
                except OSError:
                    continue
                if not data:
                    continue
                now = time.time()
                self.offsets[i] += len(data)
                text = partial[i] + data.decode(errors="replace")
                lines = text.split("\n")
                partial[i] = lines.pop()
                for line in lines:
                    if any(n in line for n in self.needles):
                        self.seen.append((now, i, line))
            time.sleep(0.005)

    def wait_for(self, needle, timeout):
        """The time the first line containing `needle` was seen, waiting
        at most `timeout` seconds for it; None if it did not come."""
        end = time.time() + timeout
        while time.time() < end:
            for t, _, line in list(self.seen):
                if needle in line:
                    return t
            time.sleep(0.005)
        return None


class LoadView(threading.Thread):
    """Once a second: requests answered by each real server and failed in
    that second (the client's count), each server's health and the
    connections rvsd tracks for it."""

    def __init__(self, a, load):
        super().__init__(daemon=True)
        self.a, self.load = a, load
        self.start_t = time.time()
        self.stopped = threading.Event()

    def header(self):
        names = self.a.cfg.names
        say("%s%5s  %6s  %s  %6s   %-14s  %s%s" % (
            DIM, "t(s)", "req/s", " ".join("%5s" % n for n in names), "failed",
            "health", "conns rvsd tracks " + "/".join(names), RESET))

    def run(self):
        names = self.a.cfg.names
        prev = self.load.progress_doc()
        tick = 0
        while not self.stopped.is_set():
            tick += 1
            self.stopped.wait(max(0.0, self.start_t + tick - time.time()))
            if self.stopped.is_set():
                break
            doc = self.load.progress_doc()
            ans, pans = doc.get("answers", {}), prev.get("answers", {})
            got = {n: ans.get(n, 0) - pans.get(n, 0) for n in names}
            failed = doc.get("errors", 0) - prev.get("errors", 0)
            prev = doc
            rss = servers_of(rvsadm(self.a, self.a.socket, "list"), self.a.cfg)

            def health_of(n):
                h = rss.get(n, {}).get("health", "?")
                return "%-4s" % h if h != "down" else RED + "DOWN" + RESET

            health = " ".join(health_of(n) for n in names)
            conns = "/".join(str(rss.get(n, {}).get("active_conns", 0)
                                 + rss.get(n, {}).get("inactive_conns", 0)) for n in names)
            say("%5d  %6d  %s  %s   %s  %s" % (
                tick, sum(got.values()) + failed, " ".join("%5d" % got[n] for n in names),
                (RED + "%6d" + RESET) % failed if failed else "%6d" % 0, health, conns))


def event(start, text):
    say("%s%5.2f  >> %s%s" % (BOLD, time.time() - start, text, RESET))


def pct(part, whole):
    return 100.0 * part / whole if whole else 0.0


# ------------------------------------------------------- phase 1: weights


def phase_weights(a):
    cfg = a.cfg = Config(a.config)
    before = servers_of(rvsadm(a, a.socket, "list"), cfg)
    load = Load(a, "weights", concurrency=8)
    view = LoadView(a, load)
    view.header()
    view.start()
    time.sleep(a.seconds)
    records = load.finish()
    view.stopped.set()
    view.join()
    after = servers_of(rvsadm(a, a.socket, "list"), cfg)

    ok = [r for r in records if not r[2].startswith("!")]
    failed = len(records) - len(ok)
    wsum = sum(cfg.weights)
    new_conns = {n: after.get(n, {}).get("conns", 0) - before.get(n, {}).get("conns", 0)
                 for n in cfg.names}
    total_conns = sum(new_conns.values())
    say()
    say("%sFigures:%s %d requests in %.0f s (%.0f a second), %d answered, %d failed" % (
        BOLD, RESET, len(records), a.seconds, len(records) / a.seconds, len(ok), failed))
    say("  %-4s %7s  %-20s  %-26s" % ("", "weight", "answers (client)", "new connections (rvsd)"))
    worst = 0.0
    for n, w in zip(cfg.names, cfg.weights):
        got = sum(1 for r in ok if r[2] == n)
        want = pct(w, wsum)
        share, cshare = pct(got, len(ok)), pct(new_conns[n], total_conns)
        worst = max(worst, abs(share - want), abs(cshare - want))
        say("  %-4s %d = %4.1f%%  %6d = %5.1f%%      %6d = %5.1f%%" % (
            n, w, want, got, share, new_conns[n], cshare))
    verdict = GREEN + "spread by weight" + RESET if worst <= 2.0 else RED + "off the weights" + RESET
    say("  every share within %.1f points of its weight's: %s" % (worst, verdict))
    return 0 if failed == 0 and worst <= 2.0 else 1


# -------------------------------------------------- phase 2: a real server


def kill_namespace(ns):
    """SIGKILL every process in namespace `ns` (nginx's master and worker
    at once: a crash); returns their pids."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def phase_server(a):
    cfg = a.cfg = Config(a.config)
    name, addr = cfg.names[a.rs], cfg.servers[a.rs]
    down_line = "real server %s (web) is down" % addr
    up_line = "real server %s (web) is up" % addr
    log = LogWatch([a.rvsd_log], [down_line, up_line])
    load = Load(a, "server", concurrency=8)
    view = LoadView(a, load)
    start = view.start_t
    view.header()
    view.start()
    time.sleep(a.before)

    pids = kill_namespace(a.rs_ns)
    t_kill = time.time()
    event(start, "kill -9 of %s's nginx (pids %s)" % (name, " ".join(map(str, pids))))
    t_down = log.wait_for(down_line, 10.0)
    if t_down is None:
        event(start, RED + "%s was not marked down within 10 s" % name)
    else:
        event(start, "rvsd marks %s down, %.2f s after the kill" % (name, t_down - t_kill))
    time.sleep(a.down)

    with open(os.path.join(a.work, "%s-restart.log" % name), "w") as out:
        subprocess.Popen(shlex.split(a.restart), stdin=subprocess.DEVNULL, stdout=out,
                         stderr=subprocess.STDOUT, start_new_session=True)
    t_restart = time.time()
    event(start, "nginx on %s started again" % name)
    t_up = log.wait_for(up_line, 10.0)
    if t_up is None:
        event(start, RED + "%s was not marked up within 10 s" % name)
    else:
        event(start, "rvsd marks %s up, %.2f s after the restart" % (name, t_up - t_restart))
    time.sleep(a.after)
    records = load.finish()
    view.stopped.set()
    view.join()
    log.stopped.set()

    # The figures.
    bound_down = (cfg.fall * cfg.interval_ms + cfg.interval_ms + cfg.timeout_ms) / 1000.0
    bound_up = (cfg.rise * cfg.interval_ms + cfg.interval_ms + cfg.timeout_ms) / 1000.0
    ok = [r for r in records if not r[2].startswith("!")]
    bad = [r for r in records if r[2].startswith("!")]
    down_at = t_down if t_down is not None else float("inf")
    in_flight = [r for r in bad if r[0] < t_kill]
    in_window = [r for r in bad if t_kill <= r[0] <= down_at]
    after_down = [r for r in bad if r[0] > down_at]
    say()
    say("%sFigures:%s health check %s every %d ms, timeout %d ms, fall %d, rise %d" % (
        BOLD, RESET, cfg.check, cfg.interval_ms, cfg.timeout_ms, cfg.fall, cfg.rise))
    if t_down is not None:
        say("  detection: %s%s marked down %.2f s after its nginx was killed%s"
            " (bound: fall x interval + interval + timeout = %.1f s)" % (
                BOLD, name, t_down - t_kill, RESET, bound_down))
    span = (records[-1][1] - records[0][0]) if records else 0
    say("  requests: %d in %.0f s, %s%d answered%s, %d failed:" % (
        len(records), span, GREEN, len(ok), RESET, len(bad)))
    say("    %d in flight on %s when it was killed" % (len(in_flight), name))
    if t_down is not None:
        say("    %d sent to it in the %.2f s before rvsd marked it down (the detection time)" % (
            len(in_window), t_down - t_kill))
    colour = GREEN if not after_down else RED
    say("    %s%d after it was marked down%s" % (colour, len(after_down), RESET))
    if t_down is not None:
        meanwhile = [r for r in ok if down_at < r[0] < t_restart]
        by = {n: sum(1 for r in meanwhile if r[2] == n) for n in cfg.names}
        say("  while %s was down: %d requests answered, %s" % (
            name, len(meanwhile), ", ".join("%s %d" % (n, by[n]) for n in cfg.names)))
    if t_up is not None:
        say("  re-admission: %s%s marked up %.2f s after nginx started again%s"
            " (bound: rise x interval + interval + timeout = %.1f s)" % (
                BOLD, name, t_up - t_restart, RESET, bound_up))
        since_up = [r for r in ok if r[0] > t_up]
        back = sum(1 for r in since_up if r[2] == name)
        want = pct(cfg.weights[a.rs], sum(cfg.weights))
        say("  traffic back: %s answered %d of the %d requests since (%.1f%%; its weight's share %.1f%%)" % (
            name, back, len(since_up), pct(back, len(since_up)), want))
    say("  rvsd A's log:")
    for _, _, line in log.seen:
        say("  %s| %s%s" % (DIM, line, RESET))
    good = t_down is not None and t_up is not None and not after_down
    return 0 if good else 1


class RoleWatch(threading.Thread):
    """Polls both balancers with rvsadm, back to back: their roles and B's
    forwarded packets (rvsd publishes its counters every 100 ms); remembers
    when each changed."""

    def __init__(self, a):
        super().__init__(daemon=True)
        self.a = a
        self.roles = {"A": None, "B": None}
        self.forwarded_b = None
        self.forward_baseline = None
        self.first_forward_b = None
        self.events = []  # (time, text)
        self.stopped = threading.Event()
        self.start()

    def run(self):
        while not self.stopped.is_set():
            for side, sock in (("A", self.a.socket), ("B", self.a.socket_b)):
                st = rvsadm(self.a, sock, "ha", "status")
                now = time.time()
                role = st.get("role") if st else "gone"
                if role != self.roles[side]:
                    if self.roles[side] is not None:
                        self.events.append((now, "rvsd %s: %s -> %s" % (side, self.roles[side], role)))
                    self.roles[side] = role
            stats = rvsadm(self.a, self.a.socket_b, "stats")
            now = time.time()
            if stats:
                fwd = stats["total"].get("forwarded", 0)
                self.forwarded_b = fwd
                if (self.forward_baseline is not None and self.first_forward_b is None
                        and fwd > self.forward_baseline):
                    self.first_forward_b = now
                    self.events.append((now, "rvsd B forwards its first packets"))
            time.sleep(0.01)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def phase_balancer(a):
    cfg = a.cfg = Config(a.config)
    keepalived = LogWatch(a.keepalived_logs.split(","), ["Entering"])
    roles = RoleWatch(a)
    target = os.path.join(a.work, "download.bin")
    url = "http://%s:%d%s" % (cfg.vip, cfg.port, a.download_path)
    curl = subprocess.Popen(
        ["ip", "netns", "exec", a.client_ns, "curl", "-sS", "-m", "90", "--limit-rate", a.rate,
         "-o", target,
         "-w", "%{size_download} %{time_total} %{http_code}", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    load = Load(a, "balancer", concurrency=2, pace_ms=50)
    start = time.time()
    say("%s%5s  %10s  %7s   %-5s %-6s  %-7s %-7s%s" % (
        DIM, "t(s)", "downloaded", "MiB/s", "req/s", "failed", "A", "B", RESET))

    def events():
        out = list(roles.events)
        out += [(t, "keepalived %s: %s" % ("AB"[i], line[line.index("Entering"):].strip()))
                for t, i, line in list(keepalived.seen)]
        return sorted(out)

    shown = set()

    def show_events():
        for t, text in events():
            if (t, text) in shown:
                continue
            shown.add((t, text))
            after = "  (%.2f s after the kill)" % (t - t_kill) if t_kill and t >= t_kill else ""
            say("%s%5.2f  >> %s%s%s" % (BOLD, t - start, text, after, RESET))

    samples = []  # (time, bytes downloaded)
    t_kill = None
    synced_b = None
    prev_bytes, prev_doc, tick = 0, load.progress_doc(), 0
    while True:
        now = time.time()
        size = os.path.getsize(target) if os.path.exists(target) else 0
        samples.append((now, size))
        show_events()
        if t_kill is None and now - start >= a.kill_after:
            b_stats = rvsadm(a, a.socket_b, "stats")
            synced_b = b_stats["total"].get("connections", 0) if b_stats else None
            roles.forward_baseline = roles.forwarded_b or 0
            os.kill(a.rvsd_pid, signal.SIGKILL)
            t_kill = time.time()
            event(start, "kill -9 of rvsd A (pid %d), the active balancer, mid-download" % a.rvsd_pid)
        if now - start >= tick + 1:
            tick += 1
            doc = load.progress_doc()
            got = sum(doc.get("answers", {}).values()) - sum(prev_doc.get("answers", {}).values())
            failed = doc.get("errors", 0) - prev_doc.get("errors", 0)
            prev_doc = doc
            say("%5d  %6.1f MiB  %7.1f   %-5d %s  %-7s %-7s" % (
                tick, size / 2**20, (size - prev_bytes) / 2**20, got + failed,
                (RED + "%-6d" + RESET) % failed if failed else "%-6d" % 0,
                roles.roles["A"] or "?", roles.roles["B"] or "?"))
            prev_bytes = size
        if curl.poll() is not None:
            break
        if now - start > 100:
            curl.kill()
            break
        time.sleep(0.05)
    out, err = curl.communicate()
    time.sleep(1.0)  # one more second of requests through B
    records = load.finish()
    roles.stopped.set()
    roles.join()
    keepalived.stopped.set()
    show_events()

    # The figures.
    fields = out.split()
    got_bytes = int(fields[0]) if fields else 0
    seconds = float(fields[1]) if len(fields) > 1 else 0.0
    digest = sha256_of(target) if os.path.exists(target) else ""
    exact = curl.returncode == 0 and got_bytes == a.download_bytes and digest == a.download_sha
    stall, last_t, last_b = 0.0, None, -1
    for t, b in samples:
        if b != last_b:
            if last_t is not None and last_b > 0:
                stall = max(stall, t - last_t)
            last_t, last_b = t, b
    evs = events()
    first = lambda prefix, word: next(  # noqa: E731
        (t for t, e in evs if e.startswith(prefix) and word in e and t_kill and t >= t_kill), None)
    ka_a_fault = first("keepalived A", "FAULT")
    ka_b_master = first("keepalived B", "MASTER")
    rvsd_b_master = first("rvsd B", "-> master")
    takeover = roles.first_forward_b
    ok = [r for r in records if not r[2].startswith("!")]
    bad = [r for r in records if r[2].startswith("!")]
    mark = takeover if takeover is not None else float("inf")
    bad_after = [r for r in bad if r[0] > mark]
    say()
    say("%sFigures:%s" % (BOLD, RESET))
    if synced_b is not None:
        say("  at the kill B held %d connections, synced from A" % synced_b)
    for label, t in (("keepalived A entered FAULT (its vrrp_script found rvsd gone)", ka_a_fault),
                     ("keepalived B entered MASTER", ka_b_master),
                     ("rvsd B was master (keepalived's notify_master ran rvsadm ha master)",
                      rvsd_b_master)):
        if t is not None:
            say("  %.2f s after the kill: %s" % (t - t_kill, label))
    if takeover is not None:
        say("  %stakeover: B forwarded its first packet %.2f s after the kill%s"
            " (B's counters are published every 100 ms)" % (BOLD, takeover - t_kill, RESET))
    verdict = (GREEN + "byte-exact" + RESET) if exact else (RED + "NOT byte-exact" + RESET)
    say("  download: %d of %d bytes in %.1f s (--limit-rate %s), sha256 %s...: %s" % (
        got_bytes, a.download_bytes, seconds, a.rate, digest[:16], verdict))
    if curl.returncode != 0:
        say("  %scurl exited with %d: %s%s" % (RED, curl.returncode, err.strip(), RESET))
    say("  the download's longest pause: %.2f s (the takeover, then TCP's next retransmission)" % stall)
    say("  requests (2 clients, one every 50 ms each): %d, %s%d answered%s, %d failed%s" % (
        len(records), GREEN, len(ok), RESET, len(bad),
        " waiting out the takeover" if bad and not bad_after else ""))
    say("    %s%d failed after B took over%s" % (GREEN if not bad_after else RED, len(bad_after), RESET))
    return 0 if exact and takeover is not None and not bad_after else 1


# ------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description="scripts/demo's helpers (see the module text)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("load")
    l.add_argument("--vip", required=True)
    l.add_argument("--port", type=int, default=80)
    l.add_argument("--concurrency", type=int, default=8)
    l.add_argument("--pace-ms", type=float, default=0)
    l.add_argument("--progress", required=True)
    l.add_argument("--out", required=True)
    l.add_argument("--stop", required=True)
    l.add_argument("--max-seconds", type=float, default=120)

    def common(p):
        p.add_argument("--config", required=True)
        p.add_argument("--rvsadm", required=True)
        p.add_argument("--socket", required=True)
        p.add_argument("--client-ns", required=True)
        p.add_argument("--work", required=True)

    w = sub.add_parser("weights")
    common(w)
    w.add_argument("--seconds", type=float, default=6)
    s = sub.add_parser("server")
    common(s)
    s.add_argument("--rs", type=int, default=0)
    s.add_argument("--rs-ns", required=True)
    s.add_argument("--restart", required=True)
    s.add_argument("--rvsd-log", required=True)
    s.add_argument("--before", type=float, default=2)
    s.add_argument("--down", type=float, default=3)
    s.add_argument("--after", type=float, default=3)
    b = sub.add_parser("balancer")
    common(b)
    b.add_argument("--socket-b", required=True)
    b.add_argument("--rvsd-pid", type=int, required=True)
    b.add_argument("--keepalived-logs", required=True)
    b.add_argument("--download-path", required=True)
    b.add_argument("--download-sha", required=True)
    b.add_argument("--download-bytes", type=int, required=True)
    b.add_argument("--rate", default="8M")
    b.add_argument("--kill-after", type=float, default=2.5)
    a = ap.parse_args()
    # Ctrl-C ends a phase even when started with SIGINT ignored (as
    # background jobs of a shell without job control are).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run = {"load": load, "weights": phase_weights, "server": phase_server,
           "balancer": phase_balancer}[a.cmd]
    try:
        sys.exit(run(a) or 0)
    except KeyboardInterrupt:
        # Ctrl-C: scripts/demo cleans up; no traceback over its output.
        sys.exit(130)


if __name__ == "__main__":
    main()
