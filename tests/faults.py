#!/usr/bin/env python3
"""Faults (issue 9), end to end: `faults.py SCENARIO...`, one meson test each.

    disk        the spool's state_dir on a small tmpfs of this test's own
                (root, in a private mount namespace; otherwise skipped).
                With a healthy collector, twice the disk's size of results
                go through it without a loss. Then it is filled while the
                collector is down: the agent runs on and
                probes, counts and logs the loss once, keeps results again
                when space returns, and the collector then gets every result
                that was kept, in order, none acknowledged twice; the loss is
                exactly what was counted.
    fds         descriptors: `check` with RLIMIT_NOFILE 128 and 3,000 targets
                (loopback refused and listening ports, and with root the lab's
                refused, reset and dropped ports): every target gets its real
                verdict, none local_error. Then `run` with descriptors taken
                away (its soft limit lowered to 3 with prlimit):
                local_error fd_exhausted with a clear detail, the agent runs
                on, and its verdicts come back once the limit is restored.
    collector   collectors that misbehave: one that accepts and never reads,
                one that drips its answer a byte at a time past the timeout,
                one that says 200 with binary garbage, one that says 200 with
                an endless body: RSS bounded, the timeout honoured (the same
                batch again after it), 2xx acknowledges whatever the body,
                the agent probes on throughout.
    status      the status server under a slowloris of 300 clients and a
                burst of 6,000 requests: a normal GET gets 200 during both,
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
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import collector  # noqa: E402
from vptest import (VPCPROBE, LineAgent, check, exit_status, free_port,  # noqa: E402
                    have_vpcprobe, http_get, listener, metric, note, plan, results,
                    sanitizer_logs, spool_frames, spool_segments, summary, wait_for, write_json)

RESULT_LINE = re.compile(r"^vpcprobe: target '([^']*)' \S+ port \d+: (\S+) (\S+): (.*)$")
RSS_BOUND_KB = 100 * 1024    # generous: the agent runs in a few MB (more under ASan)
skipped = []


def skip(what, why):
    """A scenario (or part of one) that cannot run here: not a check."""
    skipped.append(what)
    print("# SKIP %s: %s" % (what, why), flush=True)


class Agent(LineAgent):
    """vpcprobe run -v (vptest.LineAgent), under RLIMIT_NOFILE nofile."""

    def __init__(self, work, cfg, name="agent", nofile=None):
        super().__init__(work, cfg, name, args=["-v"], nofile=nofile)

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


class Work:
    """A scenario's directory: removed when every check in it passed and no
    agent log holds a sanitizer report; kept (and named) otherwise."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="vpfaults.%s." % name)
        self.first = len(results)

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def close(self):
        reports = sanitizer_logs(self.dir)
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
    return [seq for p in spool_segments(state) for _, _, seq in spool_frames(p) if seq > acked]


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


def disk_healthy(w, mount, down, status):
    """200 targets a second, a healthy collector, a 1 MiB disk and a spool
    bound of 64 MiB: what the collector has must leave the disk, or it
    fills within seconds."""
    col = collector.Collector("otlp").start()
    targets = [{"name": "m%03d" % i, "url": "tcp://127.0.0.1:%d" % down} for i in range(200)]
    state = os.path.join(mount, "healthy")
    cfg = agent_config("faults-disk", state, status, targets,
                       {"url": col.url, "format": "otlp", "timeout_ms": 1000, "spool_max_mb": 64})
    agent = Agent(w.dir, cfg, name="healthy")
    try:
        # 3,000 records are about 2 MB of frames: twice the disk.
        check(col.wait(lambda rs: len(otlp_seqs(col)) >= 3000, timeout=90),
              "disk, healthy collector: 3,000 results (about twice the 1 MiB disk) delivered")
        check(agent.count("spool: cannot keep") == 0,
              "disk, healthy collector: the spool never runs out of disk")
        check(agent.term() == 0, "disk, healthy collector: SIGTERM exits 0")
        seqs = otlp_seqs(col)
        check(sorted(seqs) == list(range(min(seqs), max(seqs) + 1)) and len(seqs) == len(set(seqs)),
              "disk, healthy collector: nothing missing, nothing twice")
    finally:
        agent.close()
        col.stop()
        shutil.rmtree(state, ignore_errors=True)


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
    up = listener(4096)
    down = free_port()
    col_port = free_port()
    status = free_port()
    targets = [{"name": "up", "url": "tcp://127.0.0.1:%d" % up.getsockname()[1]}] + \
              [{"name": "down%02d" % i, "url": "tcp://127.0.0.1:%d" % down} for i in range(20)]
    cfg = agent_config("faults-disk", state, status, targets,
                       {"url": "http://127.0.0.1:%d/v1/logs" % col_port, "format": "otlp",
                        "timeout_ms": 1000, "spool_max_mb": 64})
    agent = None
    col = None
    filler = os.path.join(state, "filler")
    try:
        disk_healthy(w, state, down, status)
        agent = Agent(w.dir, cfg)
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
        # /metrics is built at most once a second: poll it, with a bound.
        wait_for(lambda: metric(status, "vpcprobe_reports_dropped_total") == lost, timeout=10, every=0.2)
        check(metric(status, "vpcprobe_reports_dropped_total") == lost,
              "disk: vpcprobe_reports_dropped_total is what the log says was lost (%d)" % lost)
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

        # A start on a disk that is full already, the collector up.
        fill(filler)
        agent = Agent(w.dir, cfg, name="restarted")
        check(agent.wait_log("spool: cannot keep the result", timeout=60) and agent.running(),
              "disk: an agent started on a full disk runs, and says it cannot keep results")
        check(agent.wait_log("target 'up' ", count=3), "disk: and probes")
        os.unlink(filler)
        freed_at = time.time()
        check(agent.wait_log("spool: results are kept again", after=freed_at),
              "disk: space back: results are kept again")
        n = len(otlp_seqs(col))
        check(col.wait(lambda rs: len(otlp_seqs(col)) > n, timeout=30), "disk: and delivered")
        check(agent.term() == 0, "disk: SIGTERM exits 0")
        seqs = otlp_seqs(col)
        check(len(seqs) == len(set(seqs)) and all(a < b for a, b in zip(seqs, seqs[1:])),
              "disk: across the restart still in order, nothing acknowledged twice")
    finally:
        if agent:
            agent.close()
        if col:
            col.stop()
        up.close()
        if not all(results[w.first:]):
            shutil.copytree(state, w.path("spool-kept"), ignore=shutil.ignore_patterns("filler"))
        subprocess.run(["umount", "-l", state], capture_output=True)
        w.close()


# ---- collector: collectors that misbehave ----

def retry_lines(agent, after=None):
    """[(batch id, why)] of the reporter's "stays spooled" lines."""
    out = []
    for l in agent.matching("stays spooled"):
        m = re.search(r"collector '[^']*': (.*); batch (\d+) \(", l)
        if m:
            out.append((int(m.group(2)), m.group(1)))
    return out


def batch_ids(req):
    return [int(e["attrs"]["vpcprobe.batch"]["intValue"]) for e in req.get("logs", [])]


def scenario_collector():
    w = Work("collector")
    state = w.path("state")
    up = listener(4096)
    down = free_port()
    status = free_port()
    targets = [{"name": "up", "url": "tcp://127.0.0.1:%d" % up.getsockname()[1]}] + \
              [{"name": "down%d" % i, "url": "tcp://127.0.0.1:%d" % down} for i in range(5)]
    # 1. Accepts (the kernel does, from its backlog) and never reads a byte.
    silent = listener(16)
    cfg = agent_config("faults-collector", state, status, targets,
                       {"url": "http://127.0.0.1:%d/v1/logs" % silent.getsockname()[1],
                        "format": "otlp", "timeout_ms": 1000})
    agent = Agent(w.dir, cfg, name="silent")
    col = None
    rss = []
    try:
        check(agent.wait_log("stays spooled", count=3, timeout=60),
              "silent: the POST is tried again and again")
        rss.append(agent.rss_kb())
        tries = retry_lines(agent)
        check(all("timed out" in why for _, why in tries),
              "silent: each try ends by the timeout: %r" % [why for _, why in tries[:3]])
        check(len({b for b, _ in tries}) == 1, "silent: the same batch every time")
        check(len(agent.results()) > 6 * 3, "silent: the agent probes on (%d results)" % len(agent.results()))
        check(agent.term() == 0, "silent: SIGTERM exits 0 with a POST hanging")
        silent.close()

        # 2. The same spool, a collector that drips, then says 200 with garbage,
        # then 200 with a body without end, then behaves.
        col = collector.Collector("otlp").start()
        script = ["drip:400", "garbage:200", "endless:200"]
        col.set_mode("accept", script)
        cfg["collector"]["url"] = col.url
        agent = Agent(w.dir, cfg, name="misbehaving")
        check(col.wait(lambda rs: len(rs) >= len(script) + 2, timeout=60),
              "misbehaving: the script played out")
        rss.append(agent.rss_kb())
        rs = col.requests
        ids = [max(batch_ids(r)) for r in rs]
        check(agent.wait_log("timed out") and ids[1] == ids[0],
              "drip: an answer dripping past timeout_ms ends by the timeout, the batch is sent again")
        check(rs[1]["mode"].startswith("garbage") and ids[2] > ids[1],
              "garbage: a 200 with binary garbage acknowledges the batch (the next one goes)")
        check(rs[2]["mode"].startswith("endless") and ids[3] > ids[2],
              "endless: a 200 whose body never ends acknowledges the batch; the agent stops reading")
        check(rs[2].get("answer_sent") is False, "endless: the agent closed the endless answer")
        n = len(col.requests)
        check(col.wait(lambda rs: len(rs) >= n + 2, timeout=30), "accept: delivery goes on")
        rss.append(agent.rss_kb())
        check(max(rss) < RSS_BOUND_KB, "RSS bounded throughout: %s kB" % rss)
        check(not any("Sanitizer" in l for l in agent.matching("")), "no sanitizer report")
        check(agent.term() == 0, "misbehaving: SIGTERM exits 0")
        acked = [r for r in col.requests if r["status"] == 200 and not r["mode"].startswith("drip")]
        seqs = [int(e["attrs"]["vpcprobe.seq"]["intValue"]) for r in acked for e in r.get("logs", [])]
        first = min(int(e["attrs"]["vpcprobe.seq"]["intValue"]) for e in rs[0]["logs"])
        check(len(seqs) == len(set(seqs)) and all(a < b for a, b in zip(seqs, seqs[1:])),
              "in order, nothing acknowledged twice")
        check(seqs and min(seqs) == first and sorted(seqs) == list(range(first, max(seqs) + 1)),
              "nothing lost across the silent collector, a restart and the misbehaving one")
        check(not any(r["errors"] for r in col.requests), "every body passes the OTLP checker")
    finally:
        agent.close()
        if col:
            col.stop()
        up.close()
        w.close()


# ---- fds: descriptors exhausted ----

class Lab:
    """tests/lab/lab.sh's two namespaces, held up by a bash that tears them
    down when its stdin closes. ok is False when the lab cannot be built
    here (no root, no netns, no nft): 'why' says so."""

    SCRIPT = ('source "$1/lab/lab.sh"; lab_require_root; trap lab_down EXIT; lab_up || exit 1; '
              'echo "ready $LAB_CLIENT_NS"; read -r _')

    def __init__(self):
        self.proc = subprocess.Popen(["bash", "-c", self.SCRIPT, "lab", HERE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        self.ok = len(line) == 2 and line[0] == "ready"
        self.client_ns = line[1] if self.ok else None
        self.why = None
        if not self.ok:
            self.proc.wait()
            self.why = self.proc.stderr.read().strip() or "exit %d" % self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def run_check(work, name, targets, nofile, netns=None, timeout_ms=300):
    """vpcprobe check --json -c CONFIG under RLIMIT_NOFILE 'nofile':
    (exit status, {target: record}, stderr)."""
    cfg = {"agent": {"name": "faults-fds"}, "defaults": {"timeout_ms": timeout_ms},
           "targets": targets}
    path = os.path.join(work, name + ".json")
    write_json(path, cfg)
    cmd = ([VPCPROBE, "check", "--json", "-c", path])
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    p = subprocess.run(cmd, capture_output=True, timeout=240,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
    recs = {}
    for line in p.stdout.decode(errors="replace").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        recs[r.get("target")] = r
    return p.returncode, recs, p.stderr.decode(errors="replace")


def expect_verdicts(what, targets, recs, want):
    """want: {name prefix: verdict}."""
    bad = []
    for t in targets:
        r = recs.get(t["name"])
        v = want[t["name"].split("-")[0]]
        if not r or r.get("verdict") != v:
            bad.append((t["name"], r and r.get("verdict"), r and r.get("detail")))
    counts = {}
    for r in recs.values():
        counts[r.get("verdict")] = counts.get(r.get("verdict"), 0) + 1
    check(len(recs) == len(targets) and not bad,
          "%s: every one of %d targets has its real verdict %r%s" % (
              what, len(targets), counts, "; wrong: %r" % bad[:3] if bad else ""))
    check(not any(r.get("verdict") == "local_error" for r in recs.values()),
          "%s: none is local_error for being over the descriptor cap" % what)


class Acceptor(threading.Thread):
    """A loopback listener that accepts and closes at once."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = listener(4096)
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.close()


def cpu_s(pid):
    """User and system CPU seconds of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def scenario_fds():
    w = Work("fds")
    acc = Acceptor()
    acc.start()
    down = free_port()
    agent = None
    lab = None
    try:
        # 1. check: 3,000 loopback targets under a limit of 128 descriptors
        # (the engine runs at most 128 - 64 at once and queues the rest).
        targets = [{"name": "ok-%d" % i, "url": "tcp://127.0.0.1:%d" % acc.port} for i in range(1500)] + \
                  [{"name": "refused-%d" % i, "url": "tcp://127.0.0.1:%d" % down} for i in range(1500)]
        rc, recs, err = run_check(w.dir, "loopback", targets, 128)
        check(rc == 1, "check, loopback: exit 1 (some refused) (%d; %s)" % (rc, err.strip()[:200]))
        expect_verdicts("check, loopback, RLIMIT_NOFILE 128", targets, recs,
                        {"ok": "ok", "refused": "refused"})

        # 2. The same in the lab: refused, reset, ICMP-rejected and dropped
        # (timeout) ports of 198.18.0.2, loopback of the client namespace.
        lab = Lab()
        if not lab.ok:
            skip("fds: the lab part", lab.why.splitlines()[-1] if lab.why else "no lab")
        else:
            t = []
            for i in range(400):
                t += [{"name": "ok-%d" % i, "url": "tcp://198.18.0.2:9000"},
                      {"name": "refused-%d" % i, "url": "tcp://198.18.0.2:9001"},
                      {"name": "reset-%d" % i, "url": "tcp://198.18.0.2:9003"},
                      {"name": "prohibited-%d" % i, "url": "tcp://198.18.0.2:9004"},
                      {"name": "drop-%d" % i, "url": "tcp://198.18.0.2:%d" % (20000 + i)},
                      {"name": "loop-%d" % i, "url": "tcp://127.0.0.1:%d" % down}]
            rc, recs, err = run_check(w.dir, "lab", t, 128, netns=lab.client_ns)
            check(rc == 1, "check, lab: exit 1 (%d; %s)" % (rc, err.strip()[:200]))
            expect_verdicts("check, lab, RLIMIT_NOFILE 128", t, recs,
                            {"ok": "ok", "refused": "refused", "reset": "refused",
                             "prohibited": "unreachable", "drop": "timeout", "loop": "refused"})
            lab.close()

        # 3. run, 300 targets under a limit of 256, then descriptors taken
        # away: the soft limit lowered to what the agent holds.
        status = free_port()
        targets = [{"name": "ok-%d" % i, "url": "tcp://127.0.0.1:%d" % acc.port} for i in range(150)] + \
                  [{"name": "refused-%d" % i, "url": "tcp://127.0.0.1:%d" % down} for i in range(150)]
        cfg = agent_config("faults-fds", w.path("state"), status, targets)
        agent = Agent(w.dir, cfg, nofile=256)
        check(agent.wait_log(" port ", count=600, timeout=60), "run: two rounds of 300 targets")
        first = agent.results()
        check(not [r for r in first if r[1] not in ("ok", "refused")],
              "run, RLIMIT_NOFILE 256: every result ok or refused, none local_error")
        held = open_fds(agent.proc.pid)
        taken_at = time.time()
        # A new descriptor gets the lowest free number: with the limit at 3
        # (stdin, stdout, stderr) even one a finished probe gives back is
        # over it, so none can be made until the limit is back.
        resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE, (3, 256))
        check(agent.wait_log("local_error", count=300, after=taken_at, timeout=30),
              "run, descriptors taken away (soft limit 3, %d held): results are local_error" % held)
        errs = [r for r in agent.results() if r[1] == "local_error"]
        check(errs and all(r[2] == "fd_exhausted" and "Too many open files" in r[3] for r in errs),
              "run: local_error fd_exhausted with a clear detail: %r" % (errs[0][3] if errs else None))
        check(agent.running(), "run: the agent keeps running without descriptors")
        # A client at the status page meanwhile: the server cannot accept it.
        pending = socket.create_connection(("127.0.0.1", status))
        pending.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        cpu0, wall0 = cpu_s(agent.proc.pid), time.monotonic()
        n_before = len(agent.results())
        check(agent.wait_log(" port ", count=n_before + 300, timeout=30),
              "run: the schedule goes on without descriptors")
        note("figure: agent CPU while out of descriptors, a client waiting at the status port: "
             "%.0f%% of one core" % (100 * (cpu_s(agent.proc.pid) - cpu0) / (time.monotonic() - wall0)))
        freed_at = time.time()
        resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE, (256, 256))
        pending.settimeout(30)
        try:
            answer = pending.recv(64)
        except OSError as e:
            answer = str(e).encode()
        pending.close()
        check(answer.startswith(b"HTTP/1.1 200"), "run: the status client that waited is answered "
              "once descriptors are back: %r" % answer[:20])
        check(agent.wait_log("local_error -> ok", count=150, after=freed_at, timeout=30) and
              agent.wait_log("local_error -> refused", count=150, after=freed_at, timeout=30),
              "run: descriptors back: every target recovers its verdict (logged as a change)")
        st, _ = http_get(status, "/healthz")
        check(st == 200, "run: /healthz answers 200 after the recovery")
        check(agent.term() == 0, "run: SIGTERM exits 0")
    finally:
        if agent:
            agent.close()
        if lab:
            lab.close()
        acc.sock.close()
        w.close()


# ---- status: slowloris and a burst ----

class Slowloris(threading.Thread):
    """Clients that send a request's headers a few bytes at a time, never
    ending them, each just often enough not to count as idle."""

    def __init__(self, port, sources, per_source):
        super().__init__(daemon=True)
        self.socks = []
        for src in sources:
            for _ in range(per_source):
                c = socket.socket()
                c.bind((src, 0))
                c.connect(("127.0.0.1", port))
                c.sendall(b"GET / HTTP/1.1\r\nHost: vpcprobe\r\n")
                self.socks.append(c)
        self.stop = threading.Event()
        self.rounds = 0
        self.cond = threading.Condition()

    def run(self):
        # A header line every 5 s, under the status server's 15 s idle limit.
        while not self.stop.wait(5):
            for c in self.socks:
                try:
                    c.sendall(b"X-%d: %d\r\n" % (self.rounds, self.rounds))
                except OSError:
                    pass
            with self.cond:
                self.rounds += 1
                self.cond.notify_all()

    def wait_rounds(self, n, timeout):
        with self.cond:
            return self.cond.wait_for(lambda: self.rounds >= n, timeout)

    def held(self):
        """Connections the server neither answered nor closed."""
        n = 0
        for c in self.socks:
            try:
                c.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                n += 1
            except OSError:
                pass
        return n

    def close(self):
        self.stop.set()
        for c in self.socks:
            c.close()


def burst(port, n_threads, per_thread):
    """n_threads clients, each from an address of its own, asking
    per_thread times in a row: [(path, status or error text)]."""
    paths = ["/", "/api/v1/status", "/metrics", "/healthz", "/target/up"]
    out = []
    lock = threading.Lock()

    def client(i):
        mine = []
        for k in range(per_thread):
            path = paths[(i + k) % len(paths)]
            st, body = http_get(port, path, source="127.0.1.%d" % (i + 1), timeout=60)
            mine.append((path, st if st else body))
        with lock:
            out.extend(mine)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    return threads, out


def lateness_ms(times, t_from, t_to):
    """How much later than its slot each run within [t_from, t_to] (ns)
    ended. Slots are 1 s apart (the scheduler adds the interval to the due
    time); the earliest run of a target stands for being on time, so the
    figures are relative and the agent's own start lateness is not in them."""
    out = []
    for ts in times.values():
        off = [(t - ts[0]) - round((t - ts[0]) / 1e9) * 1e9 for t in ts]
        best = min(off)
        out += [(o - best) / 1e6 for t, o in zip(ts, off) if t_from <= t <= t_to]
    return sorted(out)


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def scenario_status():
    w = Work("status")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2048:
        skip("status", "RLIMIT_NOFILE %d: a slowloris of 300 needs more" % soft)
        w.close()
        return
    up = listener(4096)
    down = free_port()
    status = free_port()
    col = collector.Collector("otlp").start()
    targets = [{"name": "up", "url": "tcp://127.0.0.1:%d" % up.getsockname()[1]}] + \
              [{"name": "down%d" % i, "url": "tcp://127.0.0.1:%d" % down} for i in range(9)]
    cfg = agent_config("faults-status", w.path("state"), status, targets,
                       {"url": col.url, "format": "otlp"})
    agent = Agent(w.dir, cfg, nofile=4096)
    loris = None
    try:
        check(col.wait(lambda rs: len(rs) >= 3), "status: results arrive at the collector")
        before = time.time_ns()
        # Six addresses, 50 each: under the per-address cap, so every one is held.
        loris = Slowloris(status, ["127.0.0.%d" % i for i in range(20, 26)], 50)
        loris.start()
        attack = time.time_ns()
        st, body = http_get(status, "/")
        check(st == 200 and b"faults-status" in body, "slowloris of 300: a normal GET / gets 200")
        st, _ = http_get(status, "/healthz")
        check(st == 200, "slowloris of 300: /healthz 200")
        threads, answers = burst(status, 40, 150)
        mid = http_get(status, "/")
        hz = http_get(status, "/healthz")
        for t in threads:
            t.join(timeout=300)
        burst_end = time.time_ns()
        burst_s = (burst_end - attack) / 1e9
        check(mid[0] == 200, "slowloris and a burst of 6,000 requests: a normal GET / during the burst gets 200")
        check(hz[0] == 200, "slowloris and burst: /healthz 200 during the burst")
        codes = {}
        for _, a in answers:
            codes[a] = codes.get(a, 0) + 1
        check(len(answers) == 6000 and all(isinstance(a, int) for _, a in answers),
              "burst: every one of 6,000 requests got an answer: %r" % codes)
        rss = agent.rss_kb()
        # Past the 15 s idle limit: the slow clients keep sending, so stay.
        check(loris.wait_rounds(4, timeout=60), "slowloris: 20 s of header lines sent")
        held = loris.held()
        st, body = http_get(status, "/")
        check(st == 200 and b"faults-status" in body,
              "after 20 s of slowloris (%d of 300 held) a normal GET / gets 200" % held)
        st, _ = http_get(status, "/healthz")
        check(st == 200, "and /healthz 200")
        check(rss < RSS_BOUND_KB, "status: RSS bounded (%d kB)" % rss)
        attack_end = time.time_ns()
        check(col.wait(lambda rs: sum(1 for r in rs for e in r.get("logs", [])
                                      if int(e["record"]["timeUnixNano"]) > attack_end) >= 10),
              "status: results keep arriving after the attack")
        times = otlp_times(col)
        during = {t: [x for x in ts if attack <= x <= attack_end] for t, ts in times.items()}
        secs = (attack_end - attack) / 1e9
        check(all(len(during.get(t["name"], [])) > 0 for t in targets),
              "status: every target ran during the %.0f s attack (runs: %r)"
              % (secs, sorted(len(v) for v in during.values())))
        calm = lateness_ms(times, 0, before)
        burst_l = lateness_ms(times, attack, burst_end)
        note("figure: lateness during the burst alone (%.1f s): p50 %.1f ms, max %.1f ms (%d runs)"
             % (burst_s, pct(burst_l, .5), burst_l[-1] if burst_l else 0, len(burst_l)))
        hot = lateness_ms(times, attack, attack_end)
        note("figure: lateness before the attack: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d runs)"
             % (pct(calm, .5), pct(calm, .99), calm[-1] if calm else 0, len(calm)))
        note("figure: lateness during slowloris + burst (%.0f s): p50 %.1f ms, p99 %.1f ms, max %.1f ms "
             "(%d runs); 6,000 burst answers in %.1f s: %r; slowloris connections held after 20 s: "
             "%d; agent RSS after the burst %d kB" % (secs, pct(hot, .5), pct(hot, .99),
                                                     hot[-1] if hot else 0, len(hot), burst_s, codes,
                                                     held, rss))
        check(agent.term() == 0, "status: SIGTERM exits 0 with 300 slow clients connected")
    finally:
        if loris:
            loris.close()
        agent.close()
        col.stop()
        up.close()
        w.close()


SCENARIOS = {"disk": scenario_disk, "fds": scenario_fds, "collector": scenario_collector,
             "status": scenario_status}


def main():
    if not have_vpcprobe():
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
    plan()
    summary(len(skipped))
    if not results and skipped:
        return 77
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
