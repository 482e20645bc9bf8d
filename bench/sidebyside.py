#!/usr/bin/env python3
"""bench/sidebyside.py: vpcprobe and its contenders on one target set (issue 8).

Run by bench/run, inside the client namespace of bench/run's lab (so every
probe of every tool goes to the lab's server, 198.18.0.2, and nowhere else):

    ip netns exec CLIENT-NS python3 bench/sidebyside.py --build DIR --out DIR
        [--smoke] [--runs N] [--server ADDR]

The server namespace (set up by bench/run) gives every port a fingerprint:
accepted 9000-9099 (a listener), unreachable 10000-10999 (nft reject with
icmpx admin-prohibited), timeout 20000-39999 (nft drop), refused 40000-49999
(nothing listens), Redis on 6379, PostgreSQL on 5432.

Contenders, each over the same targets of a case, one after the other, each
case 'runs' times (alternately):

    epoll-baseline  bench/baseline.c, the kernel's limit (TCP only)
    vpcprobe        `vpcprobe check --json -c CONFIG` on the case's targets
    blackbox        prometheus-blackbox-exporter, started fresh per run in
                    this namespace on 127.0.0.1:9115, driven through /probe
                    by an asyncio client with keep-alive connections
    nmap            `nmap -sT` over the same ports (TCP only)

Figures per run: probes/s (probes over the tool's wall time), CPU seconds per
1,000 probes (user+sys of the tool's process: wait4's rusage, or the
exporter's /proc/PID/stat across the probes), peak RSS (ru_maxrss, or the
exporter's VmHWM), timeout lateness (the tool's own time from probe start to
verdict minus the timeout, for the probes that timed out; nmap does not show
it) and, per expected verdict, how many answers were right, wrong, or could
not say which verdict it was.

Writes DIR/raw.jsonl (one line per run), DIR/sidebyside.md (the tables) and
DIR/commands.txt. Exit status: 0 when every installed contender ran and,
with --smoke, vpcprobe's verdicts were all right; 1 otherwise.
"""
import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

BB_PORT = 9115
VERDICTS = ("ok", "refused", "timeout", "unreachable")


def log(msg):
    print("sidebyside: " + msg, file=sys.stderr, flush=True)


# --- targets and cases -------------------------------------------------------

class Case:
    """A named list of targets (kind, port, expected verdict) probed by each
    contender with the same timeout and in-flight cap."""

    def __init__(self, name, title, groups, in_flight, timeout_ms, runs=None,
                 nmap_defaults=False):
        self.name = name
        self.title = title
        # groups: [(kind, first port, last port, repeat, expected)]
        self.groups = groups
        self.in_flight = in_flight
        self.timeout_ms = timeout_ms
        self.runs = runs
        self.nmap_defaults = nmap_defaults

    def targets(self):
        out = []
        for kind, lo, hi, rep, want in self.groups:
            for _ in range(rep):
                out.extend((kind, p, want) for p in range(lo, hi + 1))
        return out

    def tcp_only(self):
        return all(g[0] == "tcp" for g in self.groups)


def cases(smoke):
    if smoke:
        return [
            Case("refused", "200 refused ports", [("tcp", 40000, 40199, 1, "refused")], 100, 1000),
            Case("dropped", "50 dropped ports, 300 ms timeout",
                 [("tcp", 20000, 20049, 1, "timeout")], 50, 300),
            Case("mixed", "the whole set, small", [
                ("tcp", 9000, 9004, 1, "ok"), ("tcp", 40000, 40004, 1, "refused"),
                ("tcp", 20000, 20004, 1, "timeout"), ("tcp", 10000, 10004, 1, "unreachable"),
                ("redis", 6379, 6379, 2, "ok"), ("postgres", 5432, 5432, 2, "ok")], 50, 300),
        ]
    return [
        Case("refused", "10,000 refused ports (198.18.0.2:40000-49999), 1,000 in flight, "
             "1,000 ms timeout", [("tcp", 40000, 49999, 1, "refused")], 1000, 1000),
        Case("dropped", "1,000 dropped ports (198.18.0.2:20000-20999), all in flight, "
             "1,000 ms timeout", [("tcp", 20000, 20999, 1, "timeout")], 1000, 1000,
             nmap_defaults=True),
        Case("redis", "1,000 Redis PINGs (198.18.0.2:6379), 100 in flight, 1,000 ms timeout",
             [("redis", 6379, 6379, 1000, "ok")], 100, 1000),
        Case("postgres", "200 PostgreSQL startups (198.18.0.2:5432), 20 in flight, "
             "2,000 ms timeout", [("postgres", 5432, 5432, 200, "ok")], 20, 2000),
        Case("mixed", "the whole set: 100 accepted, 100 refused, 100 dropped, 100 "
             "admin-prohibited ports, 10 Redis and 10 PostgreSQL probes, all in flight, "
             "1,000 ms timeout", [
                 ("tcp", 9000, 9099, 1, "ok"), ("tcp", 40000, 40099, 1, "refused"),
                 ("tcp", 20000, 20099, 1, "timeout"), ("tcp", 10000, 10099, 1, "unreachable"),
                 ("redis", 6379, 6379, 10, "ok"), ("postgres", 5432, 5432, 10, "ok")],
             420, 1000),
    ]


# --- measuring a process ------------------------------------------------------

def run_measured(ctx, argv, stdout_path, timeout_s=600):
    """Runs argv under bench/measure with stdout to a file; returns wall, CPU
    and peak RSS of that process (wait4's rusage), or rc None on a timeout."""
    rep = stdout_path + ".rusage"
    with open(stdout_path, "wb") as out, open(stdout_path + ".err", "wb") as err:
        p = subprocess.Popen([ctx.args.measure, rep] + argv, stdout=out, stderr=err,
                             start_new_session=True)
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return {"rc": None, "wall_s": timeout_s, "cpu_s": None, "peak_rss_kb": None}
    try:
        with open(rep) as f:
            m = json.load(f)
    except (OSError, ValueError):
        return {"rc": None, "wall_s": None, "cpu_s": None, "peak_rss_kb": None}
    return {"rc": m["rc"], "wall_s": m["wall_s"], "cpu_s": m["cpu_user_s"] + m["cpu_sys_s"],
            "peak_rss_kb": m["peak_rss_kb"]}


def stderr_tail(path, n=5):
    try:
        with open(path + ".err", errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def pct(values, p):
    """Nearest rank, as bench/common.c."""
    if not values:
        return None
    v = sorted(values)
    r = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999999)))
    return v[r - 1]


def lateness(values):
    if not values:
        return None
    return {"p50": pct(values, 50), "p99": pct(values, 99), "max": max(values),
            "min": min(values)}


def score(pairs):
    """pairs: (expected, answered) where answered is a verdict or None for
    'cannot say'. Returns {expected: {right, wrong, cannot}}."""
    s = {}
    for want, got in pairs:
        c = s.setdefault(want, {"right": 0, "wrong": 0, "cannot": 0})
        if got is None:
            c["cannot"] += 1
        elif got == want:
            c["right"] += 1
        else:
            c["wrong"] += 1
    return s


# --- contenders ----------------------------------------------------------------

class Ctx:
    def __init__(self, args):
        self.args = args
        self.server = args.server
        self.out = args.out
        self.commands = []
        self.seq = 0

    def path(self, what):
        self.seq += 1
        return os.path.join(self.out, "%04d-%s" % (self.seq, what))

    def note_command(self, case, argv):
        line = " ".join(argv)
        if (case.name, line) not in self.commands:
            self.commands.append((case.name, line))


def run_baseline(ctx, case):
    """One epoll-baseline process per group of consecutive ports with one
    expected verdict (its command line takes one port range)."""
    tcp_groups = [g for g in case.groups if g[0] == "tcp"]
    res = {"probes": 0, "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_kb": 0, "pairs": [],
           "late": None, "processes": 0}
    for kind, lo, hi, rep, want in tcp_groups:
        n = (hi - lo + 1) * rep
        argv = [ctx.args.baseline, "--addr", ctx.server, "--ports", "%d-%d" % (lo, hi),
                "--count", str(n), "--in-flight", str(min(n, case.in_flight)),
                "--timeout-ms", str(case.timeout_ms), "--json"]
        ctx.note_command(case, argv)
        out = ctx.path("baseline.json")
        m = run_measured(ctx, argv, out)
        try:
            with open(out) as f:
                j = json.loads(f.read())
        except (OSError, ValueError):
            j = None
        if m["rc"] != 0 or j is None:
            return {"failed": "exit %s: %s" % (m["rc"], stderr_tail(out))}
        res["probes"] += j["probes"]
        res["wall_s"] += m["wall_s"]
        res["cpu_s"] += m["cpu_s"]
        res["peak_rss_kb"] = max(res["peak_rss_kb"], m["peak_rss_kb"])
        res["processes"] += 1
        # "other" lumps every other errno together: it cannot say which.
        res["pairs"] += ([(want, "ok")] * j["ok"] + [(want, "refused")] * j["refused"] +
                         [(want, "timeout")] * j["timeout"] + [(want, None)] * j["other"])
        if j.get("lateness_ms") and want == "timeout":
            res["late"] = j["lateness_ms"]
    res["untested"] = sum((g[2] - g[1] + 1) * g[3] for g in case.groups if g[0] != "tcp")
    return res


def url_of(ctx, kind, port):
    return "%s://%s:%d" % (kind, ctx.server, port)


def run_vpcprobe(ctx, case):
    targets = case.targets()
    cfg = {"agent": {"name": "bench", "max_in_flight": case.in_flight},
           "defaults": {"interval_s": max(10, (case.timeout_ms + 999) // 1000),
                        "timeout_ms": case.timeout_ms},
           "targets": [dict({"name": "t%d" % i, "url": url_of(ctx, k, p)},
                            # The lab's cluster has this role, with trust.
                            **({"user": "postgres"} if k == "postgres" else {}))
                       for i, (k, p, _) in enumerate(targets)]}
    cfg_path = os.path.join(ctx.out, "vpcprobe-%s.json" % case.name)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    argv = [ctx.args.vpcprobe, "check", "--json", "-c", cfg_path]
    ctx.note_command(case, argv)
    out = ctx.path("vpcprobe.jsonl")
    m = run_measured(ctx, argv, out)
    if m["rc"] not in (0, 1):
        return {"failed": "exit %s: %s" % (m["rc"], stderr_tail(out))}
    want = {"t%d" % i: w for i, (_, _, w) in enumerate(targets)}
    pairs, late, seen = [], [], set()
    # The record's total counts from the run's start (less the wait for an
    # engine slot) and a timeout's detail names the run's timeout ("within N
    # ms"): lateness is the one minus the other. 'short' counts records whose detail names less than the config's
    # timeout (before the runner fix of issue 8 some said "within 996 ms").
    short = 0
    with open(out) as f:
        for line in f:
            r = json.loads(line)
            name = r.get("target")
            if name not in want or name in seen:
                return {"failed": "unexpected record: %s" % line[:200]}
            seen.add(name)
            v = r["verdict"]
            pairs.append((want[name], v))
            if v == "timeout":
                m_within = re.search(r"within (\d+) ms", r.get("detail") or "")
                deadline = int(m_within.group(1)) if m_within else case.timeout_ms
                short += deadline < case.timeout_ms
                late.append(r["timings_ms"]["total"] - deadline)
    if len(seen) != len(targets):
        return {"failed": "%d records for %d targets" % (len(seen), len(targets))}
    return {"probes": len(targets), "wall_s": m["wall_s"], "cpu_s": m["cpu_s"],
            "peak_rss_kb": m["peak_rss_kb"], "pairs": pairs, "late": lateness(late),
            "short_deadlines": short}


BB_CONFIG = """\
# Written by bench/sidebyside.py. The timeout is the module's: /probe
# requests carry no X-Prometheus-Scrape-Timeout-Seconds header.
modules:
  tcp_connect:
    prober: tcp
    timeout: {t}ms
  redis_ping:
    prober: tcp
    timeout: {t}ms
    tcp:
      query_response:
        - send: "PING"
        - expect: "^\\\\+PONG"
  # A postgres-style probe with the means blackbox has (text lines out, a
  # regexp on what comes back): a StartupMessage for protocol 1.0, which
  # PostgreSQL answers with an ErrorResponse naming the versions it speaks,
  # then closes. It shows a PostgreSQL server answers; pg_hba is not asked.
  pg_startup:
    prober: tcp
    timeout: {t}ms
    tcp:
      query_response:
        - send: "\\x00\\x00\\x00\\x08\\x00\\x01\\x00\\x00"
        - expect: "unsupported frontend protocol"
"""
BB_MODULE = {"tcp": "tcp_connect", "redis": "redis_ping", "postgres": "pg_startup"}


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def bb_classify(text):
    """What a blackbox debug log says happened, as a verdict, or None."""
    if "connection refused" in text:
        return "refused"
    if "i/o timeout" in text or "deadline exceeded" in text:
        return "timeout"
    if re.search(r"no route to host|host is unreachable|network is unreachable", text):
        return "unreachable"
    return None


async def bb_fetch(reader, writer, path):
    writer.write(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdr = {}
    for h in lines[1:]:
        if ":" in h:
            k, v = h.split(":", 1)
            hdr[k.strip().lower()] = v.strip()
    if "content-length" in hdr:
        body = await reader.readexactly(int(hdr["content-length"]))
    elif hdr.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    else:
        raise ValueError("answer with neither Content-Length nor chunked")
    return status, body.decode("utf-8", "replace")


async def bb_drive(targets, concurrency, debug, server):
    """Sends one /probe per target over 'concurrency' keep-alive connections;
    returns [(index, success, duration_s, verdict-from-debug-log)]."""
    queue = list(enumerate(targets))
    queue.reverse()
    results = []

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", BB_PORT)
        try:
            while queue:
                i, (kind, port, _) = queue.pop()
                path = "/probe?module=%s&target=%s:%d%s" % (
                    BB_MODULE[kind], server, port, "&debug=true" if debug else "")
                status, body = await bb_fetch(reader, writer, path)
                if status != 200:
                    raise ValueError("/probe answered %d: %s" % (status, body[:200]))
                ok = re.search(r"^probe_success (\S+)$", body, re.M)
                dur = re.search(r"^probe_duration_seconds (\S+)$", body, re.M)
                if not ok or not dur:
                    raise ValueError("no probe_success in: %s" % body[:200])
                results.append((i, float(ok.group(1)) == 1.0, float(dur.group(1)),
                                bb_classify(body) if debug else None))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(targets)))))
    return results


def bb_wait_ready(proc, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", BB_PORT), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def run_blackbox(ctx, case, debug=False):
    conf = os.path.join(ctx.out, "blackbox-%d.yml" % case.timeout_ms)
    with open(conf, "w") as f:
        f.write(BB_CONFIG.format(t=case.timeout_ms))
    argv = [ctx.args.blackbox, "--config.file=" + conf,
            "--web.listen-address=127.0.0.1:%d" % BB_PORT, "--log.level=error"]
    ctx.note_command(case, argv + ["# then GET /probe?module=%s&target=%s:PORT%s, %d at a time" % (
        "|".join(sorted({BB_MODULE[g[0]] for g in case.groups})), ctx.server,
        "&debug=true" if debug else "", case.in_flight)])
    errf = ctx.path("blackbox.err")
    with open(errf, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
    try:
        if not bb_wait_ready(proc):
            return {"failed": "exporter not listening on 127.0.0.1:%d: %s" % (
                BB_PORT, open(errf, errors="replace").read()[-300:])}
        targets = case.targets()
        cpu0 = proc_cpu_s(proc.pid)
        own0 = time.process_time()
        t0 = time.monotonic()
        try:
            res = asyncio.run(bb_drive(targets, case.in_flight, debug, ctx.server))
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            return {"failed": "driving /probe: %s" % e}
        wall = time.monotonic() - t0
        own = time.process_time() - own0
        cpu = proc_cpu_s(proc.pid) - cpu0
        hwm = proc_hwm_kb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    pairs, late = [], []
    for i, ok, dur, said in res:
        want = targets[i][2]
        if ok:
            pairs.append((want, "ok"))
        else:
            pairs.append((want, said))
            if (said == "timeout") or (not debug and want == "timeout"):
                late.append(dur * 1000.0 - case.timeout_ms)
    return {"probes": len(res), "wall_s": wall, "cpu_s": cpu, "peak_rss_kb": hwm,
            "pairs": pairs, "late": lateness(late), "debug_log": debug,
            "client_cpu_s": own}


def port_list(ports):
    """'a-b,c' for nmap -p from a sorted list of ports."""
    out, ps = [], sorted(set(ports))
    i = 0
    while i < len(ps):
        j = i
        while j + 1 < len(ps) and ps[j + 1] == ps[j] + 1:
            j += 1
        out.append(str(ps[i]) if i == j else "%d-%d" % (ps[i], ps[j]))
        i = j + 1
    return ",".join(out)


def nmap_verdict(state, reason):
    if state == "open":
        return "ok"
    if state == "closed" and reason == "conn-refused":
        return "refused"
    if state == "filtered" and reason == "no-response":
        return "timeout"
    if state == "filtered" and re.search(r"unreach|prohib", reason or ""):
        return "unreachable"
    return None


def parse_ranges(s):
    for part in s.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            yield from range(int(lo), int(hi) + 1)
        elif part:
            yield int(part)


def run_nmap(ctx, case, defaults=False):
    targets = case.targets()
    ports = [p for _, p, _ in targets]
    out = ctx.path("nmap.xml")
    t = "%dms" % case.timeout_ms
    argv = [ctx.args.nmap, "-sT", "-Pn", "-n", "--reason", "--max-retries", "0",
            "--initial-rtt-timeout", t, "--max-rtt-timeout", t]
    if not defaults:
        argv += ["--min-parallelism", str(case.in_flight)]
    argv += ["-p", port_list(ports), "-oX", "-", ctx.server]
    ctx.note_command(case, argv)
    m = run_measured(ctx, argv, out)
    if m["rc"] != 0:
        return {"failed": "exit %s: %s" % (m["rc"], stderr_tail(out))}
    said = {}
    try:
        root = ET.parse(out).getroot()
    except ET.ParseError as e:
        return {"failed": "nmap XML: %s" % e}
    for host in root.iter("host"):
        for port in host.iter("port"):
            st = port.find("state")
            said[int(port.get("portid"))] = nmap_verdict(st.get("state"), st.get("reason"))
        for extra in host.iter("extraports"):
            for er in extra.iter("extrareasons"):
                v = nmap_verdict(extra.get("state"), er.get("reason"))
                for p in parse_ranges(er.get("ports", "")):
                    said[p] = v
    # nmap scans a port once: a target repeated in the set is one probe.
    uniq = {}
    for kind, p, want in targets:
        uniq.setdefault(p, (kind, want))
    pairs = [(want, said.get(p)) for p, (kind, want) in uniq.items()]
    return {"probes": len(uniq), "wall_s": m["wall_s"], "cpu_s": m["cpu_s"],
            "peak_rss_kb": m["peak_rss_kb"], "pairs": pairs, "late": None,
            "tcp_level": any(k != "tcp" for k, _ in uniq.values())}


# --- the report -------------------------------------------------------------------

def summarise(runs):
    good = [r for r in runs if "failed" not in r]
    if not good:
        return None

    def mm(vals):
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        return {"min": min(vals), "med": statistics.median_low(vals), "max": max(vals)}

    def lat(k):
        return mm([r["late"][k] if r.get("late") else None for r in good])

    sc = {}
    for r in good:
        for want, c in score(r["pairs"]).items():
            t = sc.setdefault(want, {"right": 0, "wrong": 0, "cannot": 0})
            for k in c:
                t[k] += c[k]
    return {"runs": len(runs), "good": len(good),
            "pps": mm([r["probes"] / r["wall_s"] if r["wall_s"] > 0 else None for r in good]),
            "wall": mm([r["wall_s"] for r in good]),
            "cpu": mm([r["cpu_s"] * 1000.0 / r["probes"] if r["probes"] else None for r in good]),
            "rss": mm([r["peak_rss_kb"] for r in good]),
            "ccpu": mm([r["client_cpu_s"] * 1000.0 / r["probes"] if r.get("client_cpu_s") is not None
                        and r["probes"] else None for r in good]),
            "p50": lat("p50"), "p99": lat("p99"), "lmax": lat("max"), "lmin": lat("min"),
            "probes": good[0]["probes"], "score": sc,
            "short": sum(r.get("short_deadlines", 0) for r in good),
            "failures": [r["failed"] for r in runs if "failed" in r]}


def fmt(v, digits):
    if v is None:
        return "—"
    if digits == 0:
        return "{:,}".format(int(round(v)))
    return "%.*f" % (digits, v)


def cell(s, k, digits):
    if s is None or s.get(k) is None:
        return "—"
    x = s[k]
    return "%s (min %s)" % (fmt(x["med"], digits), fmt(x["min"], digits))


def ratio(v, c, k):
    if v is None or c is None or v.get(k) is None or c.get(k) is None or c[k]["med"] == 0:
        return "—"
    return "%.2fx" % (v[k]["med"] / c[k]["med"])


def verdict_cell(s, want, note=""):
    if s is None:
        return "—"
    c = s["score"].get(want)
    if c is None:
        return ""
    return "%d / %d / %d%s" % (c["right"], c["wrong"], c["cannot"], note)


def case_table(case, names, summ, labels):
    v = summ.get("vpcprobe")
    rows = ["| figure (median (min) over runs) | " + " | ".join(labels[n] for n in names) +
            " | " + " | ".join("vpcprobe / %s" % labels[n] for n in names if n != "vpcprobe") + " |",
            "| --- " * (len(names) * 2) + "|"]

    def row(title, k, digits):
        cells = [cell(summ.get(n), k, digits) for n in names]
        ratios = [ratio(v, summ.get(n), k) for n in names if n != "vpcprobe"]
        rows.append("| %s | %s | %s |" % (title, " | ".join(cells), " | ".join(ratios)))

    row("probes/s", "pps", 0)
    row("wall s", "wall", 3)
    row("CPU s per 1,000 probes", "cpu", 4)
    row("peak RSS kB", "rss", 0)
    if "blackbox" in names:
        rows.append("| the /probe client's own CPU s per 1,000 (not counted above) | %s | %s |" % (
            " | ".join(cell(summ.get(n), "ccpu", 4) if n == "blackbox" else "" for n in names),
            " | ".join("" for n in names if n != "vpcprobe")))
    if any(g[4] == "timeout" for g in case.groups):
        for title, k in (("timeout lateness p50 ms", "p50"), ("timeout lateness p99 ms", "p99"),
                         ("timeout lateness max ms", "lmax"), ("timeout lateness min ms", "lmin")):
            cells = []
            for n in names:
                if n.startswith("nmap"):
                    cells.append("cannot say")
                else:
                    cells.append(cell(summ.get(n), k, 2))
            ratios = ["" for n in names if n != "vpcprobe"]
            rows.append("| %s | %s | %s |" % (title, " | ".join(cells), " | ".join(ratios)))
        if v is not None:
            rows.append("| timeouts whose connect deadline was below the configured one "
                        "(all runs) | %s | %s |" % (
                            " | ".join(str(v["short"]) if n == "vpcprobe" else "" for n in names),
                            " | ".join("" for n in names if n != "vpcprobe")))
    rows.append("| probes per run | %s | %s |" % (
        " | ".join(fmt(summ[n]["probes"], 0) if summ.get(n) else "—" for n in names),
        " | ".join("" for n in names if n != "vpcprobe")))
    rows.append("| good runs | %s | %s |" % (
        " | ".join("%d of %d" % (summ[n]["good"], summ[n]["runs"]) if summ.get(n) else "0"
                   for n in names), " | ".join("" for n in names if n != "vpcprobe")))
    return rows


def verdict_table(case, names, summ, labels):
    wants = [w for w in VERDICTS if any(g[4] == w for g in case.groups)]
    rows = ["| contender | " + " | ".join("%s: right / wrong / cannot say" % w for w in wants) +
            " |", "| --- " * (len(wants) + 1) + "|"]
    for n in names:
        s = summ.get(n)
        rows.append("| %s | %s |" % (labels[n], " | ".join(verdict_cell(s, w) for w in wants)))
        if n == "blackbox" and s is not None:
            # What a Prometheus user sees: probe_success 0 for every failure.
            cells = []
            for w in wants:
                c = s["score"].get(w)
                if c is None:
                    cells.append("")
                elif w == "ok":
                    cells.append(verdict_cell(s, w))
                else:
                    total = c["right"] + c["wrong"] + c["cannot"]
                    cells.append("0 / 0 / %d" % total)
            rows.append("| blackbox, metrics only (probe_success) | %s |" % " | ".join(cells))
    return rows


def med(summ, n, k):
    s = summ.get(n)
    return s[k]["med"] if s is not None and s.get(k) is not None else None


def goals(results):
    """Issue 8's goals, each met or missed and by how much, from the medians."""
    out = []

    def line(goal, ok, text):
        out.append("- %s: %s — %s" % (goal, "**met**" if ok else "**missed**", text))

    def have(*xs):
        return all(x is not None for x in xs)

    if "refused" in results:
        _, _, summ = results["refused"]
        v, b, bb = med(summ, "vpcprobe", "pps"), med(summ, "baseline", "pps"), \
            med(summ, "blackbox", "pps")
        if have(v, b):
            line("probes/s >= 0.9x epoll-baseline (refused)", v / b >= 0.9,
                 "%.2fx (%s vs %s probes/s)" % (v / b, fmt(v, 0), fmt(b, 0)))
        if have(v, bb):
            line("probes/s >= 8x blackbox-exporter (refused)", v / bb >= 8,
                 "%.1fx (%s vs %s probes/s)" % (v / bb, fmt(v, 0), fmt(bb, 0)))
        vc, bc = med(summ, "vpcprobe", "cpu"), med(summ, "blackbox", "cpu")
        if have(vc, bc):
            line("CPU per 1,000 probes <= 1/12 of blackbox-exporter's (refused)",
                 vc * 12 <= bc, "1/%.1f (%.4f vs %.4f s)" % (bc / vc, vc, bc))
    if "dropped" in results:
        _, _, summ = results["dropped"]
        vw = med(summ, "vpcprobe", "wall")
        vs = summ.get("vpcprobe")
        right = vs is not None and vs["score"].get("timeout", {}).get("wrong", 1) == 0 and \
            vs["score"].get("timeout", {}).get("cannot", 1) == 0
        for n in ("nmap-defaults", "nmap"):
            nw = med(summ, n, "wall")
            if have(vw, nw):
                line("dropped ports >= 50x faster than %s at equal timeout, verdict right"
                     % LABELS[n], nw / vw >= 50 and right,
                     "%.1fx (%.3f s vs %.3f s)%s" % (nw / vw, vw, nw,
                                                     "" if right else "; verdicts not all right"))
        p99 = med(summ, "vpcprobe", "p99")
        lmin = summ["vpcprobe"]["lmin"]["min"] if vs and vs.get("lmin") else None
        if have(p99, lmin):
            line("timeout lateness p99 < 2 ms, no early fire (1,000 in flight; "
                 "10,000 in the engine cases above)", p99 < 2 and lmin >= 0,
                 "p99 %.2f ms, earliest %.2f ms (epoll-baseline p99 %s ms)" % (
                     p99, lmin, fmt(med(summ, "baseline", "p99"), 2)))
    if "mixed" in results:
        _, names, summ = results["mixed"]
        vs = summ.get("vpcprobe")
        if vs is not None:
            bad = sum(c["wrong"] + c["cannot"] for c in vs["score"].values())
            line("every verdict of the whole set right (vpcprobe)", bad == 0,
                 "%d wrong or cannot say" % bad)
    return out


LABELS = {"baseline": "epoll-baseline", "vpcprobe": "vpcprobe check",
          "blackbox": "blackbox-exporter", "nmap": "nmap -sT", "nmap-defaults":
          "nmap -sT, default parallelism"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--server", default="198.18.0.2")
    ap.add_argument("--vpcprobe", help="the vpcprobe binary (default: BUILD/vpcprobe)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--no-redis", action="store_true")
    args = ap.parse_args()
    args.baseline = os.path.join(args.build, "bench", "epoll-baseline")
    args.vpcprobe = args.vpcprobe or os.path.join(args.build, "vpcprobe")
    args.measure = os.path.join(args.build, "bench", "measure")
    args.blackbox = shutil.which("prometheus-blackbox-exporter")
    args.nmap = shutil.which("nmap")
    os.makedirs(args.out, exist_ok=True)
    # 1,000 keep-alive connections to the exporter, more than a soft limit of 1,024 leaves.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = Ctx(args)

    contenders = [("baseline", run_baseline), ("vpcprobe", run_vpcprobe)]
    missing = []
    if args.blackbox:
        contenders.append(("blackbox", run_blackbox))
    else:
        missing.append("prometheus-blackbox-exporter")
    if args.nmap:
        contenders.append(("nmap", run_nmap))
    else:
        missing.append("nmap")
    for m in missing:
        log("%s is not installed: left out (scripts/bootstrap installs it)" % m)

    all_cases = []
    for c in cases(args.smoke):
        c.groups = [g for g in c.groups if not (g[0] == "postgres" and args.no_postgres)
                    and not (g[0] == "redis" and args.no_redis)]
        if c.groups:
            all_cases.append(c)

    raw = open(os.path.join(args.out, "raw.jsonl"), "w")
    results = {}
    bad = 0
    for case in all_cases:
        runs = 1 if args.smoke else (case.runs or args.runs)
        names = [n for n, _ in contenders if not (n == "baseline" and not any(
            g[0] == "tcp" for g in case.groups))]
        if case.name in ("redis", "postgres"):
            names = [n for n in names if n in ("vpcprobe", "blackbox")]
        per = {n: [] for n in names}
        for r in range(runs):
            for n, fn in contenders:
                if n not in names:
                    continue
                log("%s: %s, run %d of %d" % (case.name, n, r + 1, runs))
                res = fn(ctx, case, True) if (n == "blackbox" and case.name == "mixed") \
                    else fn(ctx, case)
                if "failed" in res:
                    log("%s: %s FAILED: %s" % (case.name, n, res["failed"]))
                    bad += 1
                per[n].append(res)
                raw.write(json.dumps({"case": case.name, "contender": n, "run": r + 1,
                                      **{k: v for k, v in res.items() if k != "pairs"},
                                      "verdicts": score(res.get("pairs", []))}) + "\n")
        if case.nmap_defaults and "nmap" in names and not args.smoke:
            log("%s: nmap with its default parallelism, one run" % case.name)
            res = run_nmap(ctx, case, defaults=True)
            per["nmap-defaults"] = [res]
            names.append("nmap-defaults")
            raw.write(json.dumps({"case": case.name, "contender": "nmap-defaults", "run": 1,
                                  **{k: v for k, v in res.items() if k != "pairs"},
                                  "verdicts": score(res.get("pairs", []))}) + "\n")
        results[case.name] = (case, names, {n: summarise(per[n]) for n in names})
    raw.close()

    if args.smoke:
        # vpcprobe must be right on every target; the others only have to run.
        for name, (case, names, summ) in results.items():
            v = summ.get("vpcprobe")
            if v is None:
                log("%s: vpcprobe gave no result" % name)
                bad += 1
                continue
            for want, c in v["score"].items():
                if c["wrong"] or c["cannot"]:
                    log("%s: vpcprobe %s: %s" % (name, want, c))
                    bad += 1
        return 1 if bad else 0

    with open(os.path.join(args.out, "sidebyside.md"), "w") as md:
        w = lambda s="": md.write(s + "\n")  # noqa: E731
        for name, (case, names, summ) in results.items():
            w("### %s: %s" % (name, case.title))
            w()
            for line in case_table(case, names, summ, LABELS):
                w(line)
            w()
            w("Verdicts (right / wrong / cannot say, summed over the runs):")
            w()
            for line in verdict_table(case, names, summ, LABELS):
                w(line)
            fails = ["%s: %s" % (LABELS[n], f) for n in names if summ.get(n)
                     for f in summ[n]["failures"]]
            fails += ["%s: every run failed" % LABELS[n] for n in names if summ.get(n) is None]
            if fails:
                w()
                for f in fails:
                    w("- failed: " + f)
            w()
        if missing:
            w("Not installed, so not measured: %s." % ", ".join(missing))
            w()
        w("### Goals of issue 8 (from the medians above)")
        w()
        for line in goals(results):
            w(line)
        w()
    with open(os.path.join(args.out, "commands.txt"), "w") as f:
        for name, line in ctx.commands:
            f.write("%s: %s\n" % (name, line))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({name: summ for name, (_, _, summ) in results.items()}, f)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
