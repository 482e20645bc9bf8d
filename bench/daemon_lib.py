"""What bench/daemon and bench/page share: the lab, the collector, the agent,
the /proc samples, the analysis of the records and the RESULTS.md section.

The lab is two network namespaces joined by a veth pair, as in bench/run:
client 198.18.0.1/24 (no default route, local ports 50000-65000), server
198.18.0.2/24. In the server, tests/lab/listener.py accepts on port 9000
(ok), nothing listens on 9001 (refused: the kernel answers RST) and an nft
rule drops TCP to ports 20000-39999 (timeout). The agent, its collector and
the status page's load generator run inside the client namespace, so every
packet stays between 127.0.0.1 and 198.18.0.0/24 (DESIGN.md's network rule).
"""

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = "198.18.0.2"
PORT_OK, PORT_REFUSED, PORT_DROP_FIRST = 9000, 9001, 20000
STATUS_LISTEN = "127.0.0.1:9464"    # the client namespace's own loopback
MARKER = "<!-- bench/run: everything below this line is kept across runs -->"
NOTES = "### Notes (hand-written, kept when the script rewrites the section)"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(prog, msg):
    print("%s: %s" % (prog, msg), file=sys.stderr, flush=True)


def run(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def require_root(prog):
    if os.geteuid() != 0:
        log(prog, "must run as root (it creates network namespaces)")
        sys.exit(2)
    for tool in ("ip", "nft"):
        if not shutil.which(tool):
            log(prog, "'%s' not found" % tool)
            sys.exit(2)


def find_vpcprobe(prog, given):
    """The binary to measure: --vpcprobe, else $VPCPROBE, else a release
    build in build-bench (bench/run's build directory, vpcprobe only)."""
    path = given or os.environ.get("VPCPROBE")
    if path:
        if not os.access(path, os.X_OK):
            log(prog, "'%s' is not an executable" % path)
            sys.exit(2)
        return os.path.abspath(path), "given"
    builddir = os.path.join(ROOT, "build-bench")
    if not os.path.exists(os.path.join(builddir, "build.ninja")):
        run(["meson", "setup", builddir, "--buildtype=release", "-Dwerror=false"],
            stdout=sys.stderr, cwd=ROOT)
    run(["ninja", "-C", builddir, "vpcprobe"], stdout=sys.stderr)
    return os.path.join(builddir, "vpcprobe"), "release build in build-bench"


class Lab:
    """The two namespaces and the listener; down() removes them whatever
    state up() reached."""

    def __init__(self):
        self.client = "vpdc%d" % os.getpid()
        self.server = "vpds%d" % os.getpid()
        self.listener = None

    def up(self):
        for ns in (self.client, self.server):
            run(["ip", "netns", "add", ns])
        run(["ip", "-n", self.client, "link", "add", "veth0", "type", "veth",
             "peer", "name", "veth0", "netns", self.server])
        run(["ip", "-n", self.client, "addr", "add", "198.18.0.1/24", "dev", "veth0"])
        run(["ip", "-n", self.server, "addr", "add", SERVER + "/24", "dev", "veth0"])
        for ns in (self.client, self.server):
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            run(["ip", "-n", ns, "link", "set", "veth0", "up"])
        rules = ("table inet bench {\n chain input {\n"
                 "  type filter hook input priority 0; policy accept;\n"
                 "  tcp dport %d-39999 drop\n }\n}\n" % PORT_DROP_FIRST)
        run(["ip", "netns", "exec", self.server, "nft", "-f", "-"], input=rules.encode())
        # Local ports clear of every probed port (no TCP self-connect).
        run(["ip", "netns", "exec", self.client, "sysctl", "-q", "-w",
             "net.ipv4.ip_local_port_range=50000 65000"])
        route = subprocess.run(["ip", "-n", self.client, "route", "show", "default"],
                               check=True, capture_output=True, text=True).stdout
        if route.strip():
            raise RuntimeError("the client namespace has a default route; refusing to run")
        self.listener = subprocess.Popen(
            ["ip", "netns", "exec", self.server, "python3", "-u",
             os.path.join(ROOT, "tests", "lab", "listener.py"), str(PORT_OK), "0.0.0.0"],
            stdout=subprocess.PIPE, text=True)
        line = read_line(self.listener.stdout, 15)
        if line != "ready %d" % PORT_OK:
            raise RuntimeError("listener on %s:%d did not become ready (got %r)"
                               % (SERVER, PORT_OK, line))

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.client] + list(argv)

    def down(self):
        if self.listener:
            stop_process(self.listener, signal.SIGTERM, 5)
            self.listener = None
        for ns in (self.client, self.server):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def read_line(stream, timeout):
    """One line from a child's pipe within 'timeout' seconds, else None."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    ready = sel.select(timeout)
    sel.close()
    if not ready:
        return None
    return stream.readline().strip()


def stop_process(p, sig, timeout):
    """Signals a child we started, waits; kills it (by its PID) past 'timeout'.
    Returns its exit status."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


class Collector:
    """bench/daemon_collector.py in the client namespace."""

    def __init__(self, lab, out_path):
        self.path = out_path
        self.proc = subprocess.Popen(
            lab.exec_argv(["python3", "-u", os.path.join(ROOT, "bench", "daemon_collector.py"),
                           out_path]), stdout=subprocess.PIPE, text=True)
        line = read_line(self.proc.stdout, 15)
        if not line or not line.startswith("ready "):
            stop_process(self.proc, signal.SIGTERM, 5)
            raise RuntimeError("the collector did not start (got %r)" % line)
        self.url = "http://127.0.0.1:%s/v1/results" % line.split()[1]

    def stop(self):
        return stop_process(self.proc, signal.SIGTERM, 10)

    def records(self):
        return Collector.read(self.path)

    @staticmethod
    def read(path):
        """(results, bad batches) of a collector's file."""
        good, bad = [], []
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                (bad if "bad" in r else good).append(r)
        return good, bad


def target_kinds(n):
    """(name, url, kind) for n targets: a third each ok, refused, dropped."""
    out = []
    for i in range(n):
        kind = ("ok", "refused", "dropped")[i % 3]
        port = {"ok": PORT_OK, "refused": PORT_REFUSED}.get(kind, PORT_DROP_FIRST + i)
        out.append(("t%04d-%s" % (i, kind), "tcp://%s:%d" % (SERVER, port), kind))
    return out


def write_config(path, targets, interval_s, timeout_ms, collector_url, state_dir):
    cfg = {"agent": {"name": "bench", "status_listen": STATUS_LISTEN, "state_dir": state_dir},
           "defaults": {"interval_s": interval_s, "timeout_ms": timeout_ms},
           "targets": [{"name": name, "url": url} for name, url, _ in targets],
           "collector": {"url": collector_url, "format": "json"}}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


class Agent:
    """vpcprobe run in the client namespace; started() once READY=1 came
    on a NOTIFY_SOCKET of our own. 'ip netns exec' execs the command, so
    the child's PID is the agent's (checked through /proc/PID/exe)."""

    def __init__(self, lab, vpcprobe, config, work):
        self.notify_path = os.path.join(work, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify_count = 0
        self.log_path = os.path.join(work, "agent.log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        # An ASan build (the tests' smoke) needs no leak report at exit here.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
        self.proc = subprocess.Popen(lab.exec_argv([vpcprobe, "run", "-c", config]), env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.proc.pid

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.notify.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
            try:
                msg = self.notify.recv(4096).decode(errors="replace")
            except socket.timeout:
                continue
            if "READY=1" in msg.split("\n"):
                exe = os.readlink("/proc/%d/exe" % self.pid)
                if os.path.basename(exe).split(" ")[0] != "vpcprobe":
                    raise RuntimeError("PID %d is %s, not vpcprobe" % (self.pid, exe))
                # sd_notify() blocks once the socket's queue is full, and the
                # first round changes the STATUS= counts with every result:
                # keep reading, as systemd would, or the agent stops.
                self.notify.settimeout(None)
                threading.Thread(target=self._drain, daemon=True).start()
                return True
        return False

    def _drain(self):
        try:
            while self.notify.recv(4096):
                self.notify_count += 1
        except OSError:
            pass    # shut down by stop()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        rc = stop_process(self.proc, signal.SIGTERM, 10)
        try:
            self.notify.shutdown(socket.SHUT_RDWR)   # wakes the drain thread
        except OSError:
            pass
        self.notify.close()
        self.log.close()
        return rc

    def log_tail(self, n=20):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()[-n:]


def sample(pid):
    """CPU ticks, RSS, peak RSS and I/O of a process, with both clocks."""
    s = {"mono": time.monotonic(), "real": time.time()}
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After "(comm)": state is field 3, utime 14 and stime 15 (proc(5)).
    s["cpu_ticks"] = int(fields[11]) + int(fields[12])
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                s[line.split(":")[0]] = int(line.split()[1])
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, v = line.split(":")
            s[k] = int(v)
    with open("/proc/loadavg") as f:
        s["load"] = f.read().split()[:3]
    return s


class Noise:
    """The control for lateness on a shared machine: a thread that sleeps
    10 ms at a time and notes how late it wakes (monotonic ms). What the
    machine's load does to any sleeper, it does to the agent's timers too."""

    PERIOD_S = 0.010

    def __init__(self):
        self.samples = []           # (due, ms late)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        due = time.monotonic()
        while not self.stopping.is_set():
            due += self.PERIOD_S
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)
            now = time.monotonic()
            self.samples.append((due * 1000.0, (now - due) * 1000.0))
            if now - due > self.PERIOD_S:
                due = now   # a long stall: no burst of catch-up samples

    def stop(self):
        self.stopping.set()
        self.thread.join()

    def between(self, lo=None, hi=None):
        return [late for t, late in self.samples
                if (lo is None or t >= lo) and (hi is None or t < hi)]


def describe_binary(path, how, note):
    """How the measured agent was built, for the results."""
    if note:
        return note
    return how if how != "given" else "`%s`" % path


def cpu_percent(a, b):
    """Percent of one core between two samples."""
    return 100.0 * (b["cpu_ticks"] - a["cpu_ticks"]) / CLK_TCK / (b["mono"] - a["mono"])


def pct(values, p):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def stats(values):
    if not values:
        return None
    return {"n": len(values), "p50": r3(pct(values, 50)), "p99": r3(pct(values, 99)),
            "max": r3(max(values)), "min": r3(min(values))}


def r3(x):
    return None if x is None else round(x, 3)


def parse_time_ms(s):
    """The record's "time" (RFC 3339, UTC, milliseconds) in ms since the epoch."""
    t = datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return t.timestamp() * 1000.0


class Clock:
    """Maps the records' wall-clock times onto CLOCK_MONOTONIC, the clock of
    the agent's schedule (libuv's loop time), with the rate of the two
    clocks measured across the run, so an NTP slew cannot pose as lateness."""

    def __init__(self, first, last):
        self.m0, self.r0 = first["mono"] * 1000.0, first["real"] * 1000.0
        span = (last["real"] - first["real"]) * 1000.0
        self.rate = (last["mono"] - first["mono"]) * 1000.0 / span if span > 0 else 1.0

    def mono_ms(self, real_ms):
        return self.m0 + (real_ms - self.r0) * self.rate


def run_starts(records, clock):
    """{target: [start of each run, monotonic ms]}. A run starts at its
    record's time (stamped when the result is decided) minus its total
    (measured from the run's start)."""
    starts = {}
    for r in records:
        if r.get("total") is None:
            continue
        t = clock.mono_ms(parse_time_ms(r["time"]) - r["total"])
        starts.setdefault(r["target"], []).append(t)
    for v in starts.values():
        v.sort()
    return starts


SCHED_STEP_MS = 100  # agent/scheduler.h VP_SCHED_STEP_MS


def schedule_lateness(starts, order, interval_ms):
    """Start lateness of every run, two ways (see bench/daemon's help):
    'own' against the target's own earliest slot, 'common' against one start
    time for all targets plus the agent's spread (target i of n is due
    i * interval / n ms after the start, rounded down to 100 ms steps,
    scheduler.c). Returns the runs as
    (start, own, common) in monotonic ms, and the slots skipped."""
    n = len(order)
    per = []
    for i, name in enumerate(order):
        s = starts.get(name)
        if not s:
            continue
        ks = [round((t - s[0]) / interval_ms) for t in s]
        v = [t - k * interval_ms for t, k in zip(s, ks)]
        per.append((i, s, ks, v, min(v)))
    runs, skipped = [], 0
    if not per:
        return runs, skipped
    def first(i):  # scheduler.c's vp_sched_first_offset
        off = interval_ms * i // n
        return off - off % SCHED_STEP_MS

    t0 = min(d - first(i) for i, _, _, _, d in per)
    for i, s, ks, v, d in per:
        skipped += sum(1 for a, b in zip(ks, ks[1:]) if b - a != 1)
        for t, k, vv in zip(s, ks, v):
            runs.append((t, vv - d, t - (t0 + first(i) + k * interval_ms)))
    return runs, skipped


def timeout_lateness(records, clock, timeout_ms, lo=None, hi=None):
    """For runs that timed out: verdict time minus deadline (run start plus
    timeout_ms), which is timings_ms.total - timeout_ms; only runs that
    started within [lo, hi) (monotonic ms) when given."""
    out = []
    for r in records:
        if r["verdict"] != "timeout" or r.get("total") is None:
            continue
        if lo is not None:
            t = clock.mono_ms(parse_time_ms(r["time"]) - r["total"])
            if t < lo or t >= hi:
                continue
        out.append(r["total"] - timeout_ms)
    return out


def put_section(path, title, text):
    """Replaces (or appends) the section '## title' below the marker of
    bench/RESULTS.md, up to the next '## ' heading, keeping everything else
    and, inside the section, the hand-written notes from the NOTES line on."""
    with open(path) as f:
        lines = f.read().split("\n")
    if MARKER not in lines:
        lines += ["", MARKER]
    m = lines.index(MARKER)
    head = "## " + title
    body = text.rstrip("\n").split("\n")
    if head in lines[m:]:
        a = m + lines[m:].index(head)
        b = a + 1
        while b < len(lines) and not lines[b].startswith("## "):
            b += 1
        # Notes written by hand under NOTES stay across runs, unless the
        # new text brings its own.
        old = lines[a:b]
        keep = old[old.index(NOTES):] if NOTES in old and NOTES not in body else []
        while keep and keep[-1] == "":
            keep.pop()
        lines[a:b] = body + ([""] + keep if keep else []) + [""]
    else:
        while lines and lines[-1] == "":
            lines.pop()
        lines += [""] + body + [""]
    while len(lines) > 1 and lines[-1] == "" and lines[-2] == "":
        lines.pop()
    with open(path, "w") as f:
        f.write("\n".join(lines) if lines[-1] == "" else "\n".join(lines) + "\n")


def commit_line():
    """The commit, and the files of the build that differ from it."""
    try:
        c = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], check=True,
                           capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no",
                                "--", "agent", "probes", "config", "meson.build"],
                               check=True, capture_output=True, text=True).stdout.split("\n")
        dirty = [d[3:] for d in dirty if d.strip()]
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"
    return "`%s`%s" % (c, " plus uncommitted changes to " + ", ".join(dirty) if dirty else "")


def machine_line():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return "%d CPUs (%s), Linux %s" % (os.cpu_count(), cpu, os.uname().release)


def fmt(x, unit=""):
    if x is None:
        return "—"
    if isinstance(x, float):
        x = ("%.3f" % x).rstrip("0").rstrip(".") if abs(x) < 100 else "%.1f" % x
    return "%s%s" % (x, unit)


def mkwork(prefix, keep):
    d = keep or tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")
    os.makedirs(d, exist_ok=True)
    return d


def exit_on_signals():
    """SIGTERM and SIGINT unwind through the callers' finally blocks, so the
    lab goes away whatever stops the benchmark."""
    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def jsonl_dump(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

