#!/usr/bin/env python3
"""Faults (issue 9), end to end: `faults.py SCENARIO...`, one meson test each.

    disk        the spool's state_dir on a small tmpfs of this test's own
                (root, in a private mount namespace; otherwise skipped),
                filled while the collector is down: the agent runs on and
                probes, counts and logs the loss once, keeps results again
                when space returns, and the collector then gets every result
                that was kept, in order, none acknowledged twice; the loss is
                exactly what was counted.
    fds         descriptors: `check` with RLIMIT_NOFILE 128 and 3,000 targets
                (loopback refused and listening ports, and with root the lab's
                refused, reset and dropped ports): every target gets its real
                verdict, none local_error. Then `run` with descriptors taken
                away (its soft limit lowered under what it holds, prlimit):
                local_error fd_exhausted with a clear detail, the agent runs
                on, and its verdicts come back once the limit is restored.
    collector   collectors that misbehave: one that accepts and never reads,
                one that drips its answer a byte at a time past the timeout,
                one that says 200 with binary garbage, one that says 200 with
                an endless body: RSS bounded, the timeout honoured (the same
                batch again after it), 2xx acknowledges whatever the body,
                the agent probes on throughout.
    status      the status server under a slowloris of 300 clients and a
                burst of 3,000 requests: a normal GET gets 200 during both,
                /healthz stays 200, and results keep arriving at the
                collector on their schedule. The schedule's lateness is
                printed as a figure (README "Reliability"), not asserted.

Waits are readiness checks with a bound (a log line, a request at the
collector, an answer), never sleeps for their own sake; no timing thresholds.
Traffic: 127.0.0.0/8, and the lab's 198.18.0.0/15 in namespaces this test
creates (tests/lab/lab.sh). TAP output; exit 77 when every scenario run was
skipped."""

import json
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import collector  # noqa: E402

VPCPROBE = os.environ.get("VPCPROBE", os.path.join(HERE, "..", "build", "vpcprobe"))
RESULT_LINE = re.compile(r"^vpcprobe: target '([^']*)' \S+ port \d+: (\S+) (\S+): (.*)$")
RSS_BOUND_KB = 100 * 1024    # generous: the agent runs in a few MB (more under ASan)
results = []
skipped = []


def check(ok, what):
    results.append(bool(ok))
    print(("ok" if ok else "not ok") + " %d - %s" % (len(results), what), flush=True)
    return ok


def skip(what, why):
    skipped.append(what)
    print("# SKIP %s: %s" % (what, why), flush=True)


def note(text):
    print("# " + text, flush=True)


def free_port():
    """A loopback port nothing listens on: bound, then closed (never 2024)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port != 2024:
            return port


def wait_for(pred, timeout=30.0):
    """Polls a condition that has no event to wait on (a file, a counter);
    the bound is the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def http_get(port, path, source="127.0.0.1", timeout=10):
    """(status, body) of one GET, or (None, error text)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError as e:
        return None, str(e)
    finally:
        c.close()


def metric(port, name):
    status, body = http_get(port, "/metrics")
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Agent:
    """vpcprobe run -v, its stderr lines stamped with the time they came."""

    def __init__(self, work, cfg, name="agent", nofile=None):
        self.cfg_path = os.path.join(work, name + ".json")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)
        self.lines = []
        self.cond = threading.Condition()
        self.log = open(os.path.join(work, name + ".log"), "a")
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        # A small ASan quarantine, so that RSS is about the agent (tests/delivery.py).
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "quarantine_size_mb=16"]))

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen([VPCPROBE, "run", "-c", self.cfg_path, "-v"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                     preexec_fn=limit)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.log.write(line + "\n")
            with self.cond:
                self.lines.append((time.time(), line))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def count(self, text, prefix="", after=None):
        with self.cond:
            return sum(1 for t, l in self.lines if text in l and l.startswith(prefix) and
                       (after is None or t > after))

    def matching(self, text):
        with self.cond:
            return [l for _, l in self.lines if text in l]

    def results(self):
        """[(target, verdict, reason, detail)] of the results logged at -v:
        "target 'NAME' ADDRESS port N: VERDICT REASON: DETAIL"."""
        out = []
        with self.cond:
            for _, l in self.lines:
                m = RESULT_LINE.match(l)
                if m:
                    out.append(m.groups())
        return out

    def wait_log(self, text, count=1, timeout=30.0, after=None):
        deadline = time.monotonic() + timeout
        with self.cond:
            while sum(1 for t, l in self.lines if text in l and (after is None or t > after)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def running(self):
        return self.proc.poll() is None

    def term(self, timeout=8):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        self.close()
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        self.log.close()


class Work:
    """A scenario's directory: removed when every check in it passed and no
    agent log holds a sanitizer report; kept (and named) otherwise."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="vpfaults.%s." % name)
        self.first = len(results)

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def close(self):
        reports = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".log"):
                with open(self.path(name), errors="replace") as f:
                    text = f.read()
                if "Sanitizer" in text or "runtime error:" in text:
                    reports.append(name)
        if reports:
            check(False, "sanitizer reports in %s (kept in %s)" % (reports, self.dir))
        if all(results[self.first:]):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            note("files kept in " + self.dir)


def agent_config(name, state, status_port, targets, collector_cfg=None, interval=1, timeout_ms=500):
    cfg = {"agent": {"name": name, "state_dir": state,
                     "status_listen": "127.0.0.1:%d" % status_port},
           "defaults": {"interval_s": interval, "timeout_ms": timeout_ms},
           "targets": targets}
    if collector_cfg:
        cfg["collector"] = collector_cfg
    return cfg


def listener(backlog=4096):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def otlp_seqs(col):
    """The spool sequence numbers of every record a collector acknowledged."""
    out = []
    for r in col.accepted():
        for e in r.get("logs", []):
            out.append(int(e["attrs"]["vpcprobe.seq"]["intValue"]))
    return out


def otlp_times(col):
    """{target: [time ns, ...]} of every acknowledged record, in order."""
    out = {}
    for r in col.accepted():
        for e in r.get("logs", []):
            out.setdefault(e["attrs"]["target"]["stringValue"], []).append(
                int(e["record"]["timeUnixNano"]))
    return out


def spool_left(state):
    """Sequence numbers still in the spool above its ack cursor."""
    d = os.path.join(state, "spool")
    acked = 0
    try:
        with open(os.path.join(d, "ack")) as f:
            for line in f:
                if line.startswith("acked "):
                    acked = int(line.split()[1])
    except OSError:
        pass
    left = []
    for n in sorted(os.listdir(d)):
        if not n.endswith(".seg"):
            continue
        with open(os.path.join(d, n), "rb") as f:
            data = f.read()
        off = 0
        while off + 20 <= len(data):
            magic, length, seq = struct.unpack_from("<4sIQ", data, off)
            if magic != b"VPR1":
                break
            if seq > acked:
                left.append(seq)
            off += 20 + length
    return left


# ---- disk: the spool on a full disk ----

def fill(path):
    """Writes 'path' until the file system says ENOSPC; returns the bytes."""
    n = 0
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                k = f.write(block)
            except OSError as e:
                if e.errno == 28:
                    return n
                raise
            if not k:
                return n
            n += k


def scenario_disk():
    if os.geteuid() != 0:
        skip("disk", "needs root to mount a tmpfs")
        return
    w = Work("disk")
    state = w.path("state")
    os.mkdir(state)
    # In the private mount namespace main() made: gone with this process.
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "vpfaults", state],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip("disk", "mount -t tmpfs failed: " + r.stderr.strip())
        w.close()
        return
    up = listener()
    down = free_port()
    col_port = free_port()
    status = free_port()
    targets = [{"name": "up", "url": "tcp://127.0.0.1:%d" % up.getsockname()[1]}] + \
              [{"name": "down%02d" % i, "url": "tcp://127.0.0.1:%d" % down} for i in range(20)]
    cfg = agent_config("faults-disk", state, status, targets,
                       {"url": "http://127.0.0.1:%d/v1/logs" % col_port, "format": "otlp",
                        "timeout_ms": 1000, "spool_max_mb": 64})
    agent = Agent(w.dir, cfg)
    col = None
    filler = os.path.join(state, "filler")
    try:
        check(agent.wait_log("target 'up' ", count=2), "disk: results spooled, collector down")
        filled = fill(filler)
        note("filler: %d bytes until ENOSPC" % filled)
        check(agent.wait_log("spool: cannot keep the result", timeout=60),
              "disk: the failed write is logged: %r" % agent.matching("spool: cannot keep")[:1])
        full_at = time.time()
        check(agent.wait_log("target 'up' ", count=5, after=full_at),
              "disk: the agent probes on with the disk full")
        check(agent.running(), "disk: the agent keeps running")
        st, _ = http_get(status, "/healthz")
        check(st == 200, "disk: /healthz answers 200")
        dropped = metric(status, "vpcprobe_reports_dropped_total")
        check(dropped and dropped > 0, "disk: the lost results are counted in "
              "vpcprobe_reports_dropped_total (%r)" % dropped)
        check(agent.count("spool: cannot keep the result") == 1,
              "disk: logged once, not once per result (%d lines)"
              % agent.count("spool: cannot keep the result"))
        os.unlink(filler)
        freed_at = time.time()
        check(agent.wait_log("spool: results are kept again", after=freed_at),
              "disk: space back: results are kept again (logged once: %d)"
              % agent.count("spool: results are kept again"))
        check(agent.count("spool: results are kept again") == 1 and
              agent.count("spool: cannot keep the result") == 1,
              "disk: one line for the outage and one for its end, however it flapped")
        check(agent.wait_log("target 'up' ", count=3, after=freed_at), "disk: results after the space came back")
        # The end of the outage says how many results it lost.
        lost = sum(int(l.split("; ")[1].split()[0]) for l in agent.matching("results are kept again"))
        col = collector.Collector("otlp", port=col_port).start()
        check(col.wait(lambda rs: sum(1 for x in rs if x["status"] == 200) >= 3, timeout=60),
              "disk: delivery resumes once the collector is up")
        check(agent.term() == 0, "disk: SIGTERM exits 0")
        seqs = otlp_seqs(col)
        check(len(seqs) == len(set(seqs)), "disk: no record acknowledged twice")
        check(all(a < b for a, b in zip(seqs, seqs[1:])), "disk: records arrive in order")
        check(seqs and sorted(seqs) == list(range(min(seqs), max(seqs) + 1)),
              "disk: no gap in the sequence numbers of what was kept")
        # Every result logged was delivered, is still spooled, or was counted lost.
        produced = len(agent.results())
        left = spool_left(state)
        check(produced == len(seqs) + len(left) + lost,
              "disk: produced %d = delivered %d + still spooled %d + lost %d (as logged)"
              % (produced, len(seqs), len(left), lost))
        check(not any(x["errors"] for x in col.requests), "disk: every body passes the OTLP checker")
    finally:
        agent.close()
        if col:
            col.stop()
        up.close()
        if not all(results[w.first:]):
            shutil.copytree(state, w.path("spool-kept"), ignore=shutil.ignore_patterns("filler"))
        subprocess.run(["umount", "-l", state], capture_output=True)
        w.close()


SCENARIOS = {"disk": scenario_disk}


def main():
    if not os.access(VPCPROBE, os.X_OK):
        print("Bail out! no vpcprobe at " + VPCPROBE)
        return 1
    names = sys.argv[1:] or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            print("Bail out! unknown scenario %r (%s)" % (n, ", ".join(SCENARIOS)))
            return 1
    # Mounts (the disk scenario) happen in a private mount namespace: a test
    # that dies leaves no tmpfs behind.
    if os.geteuid() == 0 and "disk" in names and not os.environ.get("VPFAULTS_MNTNS") \
            and shutil.which("unshare"):
        os.environ["VPFAULTS_MNTNS"] = "1"
        os.execvp("unshare", ["unshare", "--mount", "--propagation", "private",
                              sys.executable, os.path.abspath(__file__)] + names)
    for n in names:
        print("# %s" % n, flush=True)
        try:
            SCENARIOS[n]()
        except Exception:
            traceback.print_exc()
            check(False, "%s raised" % n)
    failed = results.count(False)
    print("1..%d" % len(results))
    print("# %d passed, %d failed, %d skipped" % (len(results) - failed, failed, len(skipped)))
    if not results and skipped:
        return 77
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
