#!/usr/bin/env python3
"""The status endpoints of `vpcprobe run`, end to end on loopback.

One agent probes targets this test owns on 127.0.0.1: a listener (ok), a
closed port (refused), a target whose name is an XSS attempt, a Redis-like
server whose error line holds HTML, and a name whose DNS answer the test
holds back (so that /-/ready is 503 until the test lets the first round end).
Asserted: /-/ready 503 -> 200, /api/v1/status, /target/NAME, 404, 405 with
Allow, HEAD, the security headers, /healthz, escaping of everything hostile,
/metrics through `promtool check metrics`, 500 idle connections and a flood
from one address while the page still answers, the token (401 without it,
Bearer and basic auth with it), and the refusal to start on 0.0.0.0 without
a token file.

Waits are readiness checks with a bound (a notify datagram, an answer, a
DNS query arriving), never sleeps for their own sake and never timing
thresholds. Traffic goes only to 127.0.0.0/8. TAP output."""

import base64
import json
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vptest import (VPCPROBE, Agent, Metadata, api_target, check, exit_status,  # noqa: E402
                    free_port, have_vpcprobe, listener, plan, request, sanitizer_lines, skip,
                    wait_for)

XSS_NAME = "<img src=x onerror=alert(1)>"
HOSTILE = "<img src=y onerror=alert(2)>"


class RedisLike(threading.Thread):
    """Answers every command with an error line that holds HTML."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(2)
                c.recv(4096)
                c.sendall(("-ERR " + HOSTILE + " </pre><script>alert(3)</script>\r\n").encode())
            except OSError:
                pass
            c.close()


class HeldRedis(threading.Thread):
    """A Redis-like server that reads the PING and answers +PONG only once
    the test releases it: the target's first run cannot end before that."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seen = threading.Event()
        self.released = threading.Event()
        self.held = []
        self.lock = threading.Lock()

    def release(self):
        with self.lock:
            self.released.set()
            for c in self.held:
                self.answer(c)
            self.held = []

    @staticmethod
    def answer(c):
        try:
            c.sendall(b"+PONG\r\n")
        except OSError:
            pass
        c.close()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
                c.settimeout(5)
                c.recv(4096)
            except OSError:
                if self.sock.fileno() < 0:
                    return
                continue
            with self.lock:
                self.seen.set()
                if self.released.is_set():
                    self.answer(c)
                else:
                    self.held.append(c)


def test_main_agent(work):
    up = listener(64)
    redis = RedisLike()
    redis.start()
    held = HeldRedis()
    held.start()
    port = free_port()
    cfg = {"agent": {"name": "status-test", "status_listen": "127.0.0.1:%d" % port},
           "defaults": {"interval_s": 1, "timeout_ms": 500},
           # 'held' first: a target's first run is spread over its own interval
           # by its index, and index 0 starts at once.
           "targets": [
               {"name": "held", "url": "redis://127.0.0.1:%d" % held.port,
                "interval_s": 60, "timeout_ms": 30000},
               {"name": "up", "url": "tcp://127.0.0.1:%d" % up.getsockname()[1]},
               {"name": "down", "url": "tcp://127.0.0.1:%d" % free_port(),
                "connector_range": "10.8.0.0/28"},
               {"name": XSS_NAME, "url": "tcp://127.0.0.1:%d" % free_port()},
               {"name": "cache", "url": "redis://127.0.0.1:%d" % redis.port}]}
    agent = Agent(work, cfg, "main")
    try:
        check(agent.wait_ready(), "READY=1 arrives once the status listener is bound")
        # The held target's PING has reached our server: its run cannot end
        # until the server answers.
        if held.seen.wait(15):
            status, _, body = request(port, "/-/ready")
            check(status == 503 and b"not ready" in body,
                  "/-/ready is 503 before the first round ends (%d %r)" % (status, body[:80]))
        else:
            skip("/-/ready is 503 before the first round ends", "no protocol probe holds the run")
        held.release()
        check(wait_for(lambda: request(port, "/-/ready")[0] == 200), "/-/ready turns 200 once every target ran")
        check(wait_for(lambda: (api_target(port, "up") or {}).get("state") == "ok"), "the listener's target is ok")
        down = wait_for(lambda: api_target(port, "down"))
        check(down and down["verdict"] == "refused" and down["state"] == "failing",
              "the closed port's target is refused")
        check(down and any("ss -ltnp" in s for s in down["next_steps"]), "its next step names ss -ltnp and the port")
        h = api_target(port, "held")
        check(h and h["state"] == "ok", "the held target is ok once answered: %r" % (h and h["detail"]))
        check_api(port)
        check_methods_and_headers(port)
        check_xss(port, redis)
        check_metrics(port)
        check_connections(port)
    finally:
        rc = agent.stop()
        up.close()
        redis.sock.close()
        held.sock.close()
    check(rc == 0, "SIGTERM: the agent exits 0 (got %r)" % rc)
    check_clean_log(agent)
    try:
        request(port, "/healthz", timeout=2)
        closed = False
    except OSError:
        closed = True
    check(closed, "after the stop nothing listens on the status port")


def check_api(port):
    status, headers, body = request(port, "/api/v1/status")
    check(status == 200 and headers.get("content-type") == "application/json", "/api/v1/status is JSON")
    doc = json.loads(body)
    check(doc["agent"]["name"] == "status-test" and doc["ready"] is True and doc["targets_total"] == 5,
          "the document names the agent, readiness and the target count")
    states = [t["state"] for t in doc["targets"]]
    check(states == sorted(states, key=["failing", "pending", "ok"].index), "failing targets come first: %r" % states)
    check(doc["counts"]["refused"] >= 2 and doc["delivery"]["text"] == "no collector",
          "counts by verdict and the delivery state")
    spark = doc["targets"][0]["sparkline"]
    check(len(spark["ms"]) == 60 and spark["bucket_s"] == 60, "each target carries its last hour in 60 buckets")
    status, _, body = request(port, "/target/down")
    check(status == 200 and b"Raw last records" in body and b"&quot;verdict&quot;: &quot;refused&quot;" in body,
          "/target/down shows the history and the raw last record")
    status, _, body = request(port, "/target/no-such-target")
    check(status == 404 and b"no-such-target" in body, "/target/ of an unknown name is 404")
    status, _, body = request(port, "/api/v1/listeners?port=%d" % port)
    doc = json.loads(body)
    check(status == 200 and doc["ports"][0]["scope"] == "loopback_only",
          "/api/v1/listeners?port= shows the status port bound to loopback only")
    status, _, _ = request(port, "/api/v1/listeners?port=99999")
    check(status == 400, "/api/v1/listeners with a bad port is 400")
    for path in ("/healthz", "/-/healthy"):
        status, _, body = request(port, path)
        check(status == 200 and body == b"ok\n", "%s is 200 while the loop turns" % path)


def check_methods_and_headers(port):
    status, headers, body = request(port, "/")
    csp = headers.get("content-security-policy", "")
    check(status == 200 and headers.get("content-type", "").startswith("text/html"), "/ is HTML")
    check("default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
          and "unsafe-inline" not in csp.split("style-src")[0], "a strict CSP: %s" % csp)
    check(headers.get("x-content-type-options") == "nosniff" and headers.get("referrer-policy") == "no-referrer",
          "nosniff and no-referrer")
    check(b"http://" not in body.replace(b"http://127.0.0.1", b"").replace(b"http://www.w3.org/2000/svg", b"")
          and b"src=\"http" not in body, "no external asset")
    length = len(body)
    status, headers, hbody = request(port, "/", method="HEAD")
    check(status == 200 and hbody == b"" and int(headers.get("content-length", -1)) == length,
          "HEAD /: the headers of GET without the body")
    status, headers, _ = request(port, "/", method="POST", headers={"Content-Length": "0"})
    check(status == 405 and headers.get("allow") == "GET, HEAD", "POST / is 405 with Allow: GET, HEAD")
    status, _, _ = request(port, "/metrics", method="DELETE")
    check(status == 405, "DELETE /metrics is 405")
    status, _, _ = request(port, "/nope")
    check(status == 404, "an unknown path is 404")


def check_xss(port, redis):
    _, _, page = request(port, "/")
    check(b"<img" not in page, "no <img> element in the page")
    check(page.count(b"<script") == 1, "one <script> in the page, the agent's own")
    check(b"&lt;img src=x onerror=alert(1)&gt;" in page, "the XSS target name shows escaped")
    quoted = urllib.parse.quote(XSS_NAME, safe="")
    status, _, body = request(port, "/target/" + quoted)
    check(status == 200 and b"<img" not in body and b"&lt;img src=x onerror=alert(1)&gt;" in body,
          "/target/<escaped name> finds the target and shows its name escaped")
    cache = wait_for(lambda: (lambda t: t if t and t["runs"] > 0 else None)(api_target(port, "cache")))
    if cache and HOSTILE in (cache.get("detail") or ""):
        _, _, page = request(port, "/")
        check(b"&lt;img src=y onerror=alert(2)&gt;" in page and b"<script>alert(3)" not in page,
              "the Redis-like server's HTML shows escaped in the page")
        _, _, body = request(port, "/target/cache")
        check(b"<img" not in body and b"&lt;/pre&gt;&lt;script&gt;" in body,
              "and in /target/cache, raw record included")
    else:
        skip("the Redis-like server's HTML shows escaped",
             "the redis probe does not put the server's error line in the detail: %r"
             % (cache and cache.get("detail")))


def check_metrics(port):
    status, headers, body = request(port, "/metrics")
    check(status == 200 and headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
          "/metrics is the text exposition format")
    text = body.decode()
    for name in ("vpcprobe_probe_success", "vpcprobe_probe_duration_seconds", "vpcprobe_probes_total",
                 "vpcprobe_reports_spooled_bytes", "vpcprobe_reports_dropped_total",
                 "vpcprobe_reports_rejected_total", "vpcprobe_spool_frames_skipped_total",
                 "vpcprobe_build_info", "vpcprobe_probe_last_timestamp_seconds"):
        check("# HELP %s " % name in text and "# TYPE %s " % name in text, "%s with HELP and TYPE" % name)
    check('vpcprobe_probe_success{target="down",kind="tcp",address="127.0.0.1"' in text,
          "vpcprobe_probe_success carries target, kind, address and port")
    check('vpcprobe_probes_total{target="<img src=x onerror=alert(1)>",verdict="refused"}' in text,
          "label values are exposition-escaped, not HTML-escaped")
    promtool = shutil.which("promtool")
    if promtool is None:
        skip("promtool check metrics is clean", "no promtool (apt-get install prometheus)")
        return
    p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    check(p.returncode == 0 and p.stdout.strip() == b"" and p.stderr.strip() == b"",
          "promtool check metrics is clean: %r %r" % (p.stdout[:300], p.stderr[:300]))


def open_idle(port, sources, per_source):
    socks = []
    for src in sources:
        for _ in range(per_source):
            s = socket.socket()
            s.bind((src, 0))
            s.connect(("127.0.0.1", port))
            socks.append(s)
    return socks


def check_connections(port):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200 and hard >= 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        soft = min(hard, 4096)
    if soft < 1200:
        skip("500 idle connections, the page still answers", "RLIMIT_NOFILE %d" % soft)
        return
    # Idle clients spread over ten loopback addresses, under the per-address cap.
    idle = open_idle(port, ["127.0.0.%d" % i for i in range(10, 20)], 50)
    try:
        status, _, body = request(port, "/")
        check(status == 200 and b"status-test" in body, "with 500 idle connections open the page still answers")
        # One address floods: it gets its share, the others are still served.
        flood = open_idle(port, ["127.0.0.99"], 200)
        try:
            status, _, _ = request(port, "/api/v1/status")
            check(status == 200, "with one address flooding, another still gets /api/v1/status")
            status, _, _ = request(port, "/healthz", source="127.0.0.98")
            check(status == 200, "and a third address gets /healthz")
        finally:
            for s in flood:
                s.close()
    finally:
        for s in idle:
            s.close()


def check_clean_log(agent):
    """Under ASan/UBSan a leak or undefined behaviour is reported on stderr."""
    bad = sanitizer_lines(agent.log_text())
    check(not bad, "no sanitizer report from the agent: %r" % bad[:3])


HOSTILE_COMM = "<i>srv&x"          # a process name that is markup; no '/' in a file name
HOSTILE_INSTANCE = "diag-<b>vm</b>"
BINARY_COMM = b"\xff\xfe-srv"
# Set through /proc/self/comm: valid UTF-8, a 0xff, and a character cut short.
MIXED_COMM = b"caf\xc3\xa9-\xff-\xe2\x9c"
MIXED_SHOWN = "caf\u00e9-?-??"


# The metadata server's answers: an instance name that is markup (the page
# must escape what it is told).
METADATA = {"/computeMetadata/v1/instance/name": HOSTILE_INSTANCE,
            "/computeMetadata/v1/instance/zone": "projects/123456/zones/europe-west1-b",
            "/computeMetadata/v1/project/project-id": "orders-prod",
            "/computeMetadata/v1/instance/network-interfaces/0/network":
                "projects/123456/networks/shared-vpc"}


class TlsRedis(threading.Thread):
    """rediss:// on loopback: TLS with a self-signed certificate valid for
    30 days (its own CA), then +PONG to whatever comes."""

    def __init__(self, cert, key):
        super().__init__(daemon=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                c.settimeout(5)
                with self.ctx.wrap_socket(c, server_side=True) as t:
                    t.recv(4096)
                    t.sendall(b"+PONG\r\n")
            except (OSError, ssl.SSLError):
                c.close()


def make_cert(work):
    """A self-signed certificate for 127.0.0.1, valid 30 days; None without openssl."""
    cert, key = os.path.join(work, "tls.pem"), os.path.join(work, "tls.key")
    if shutil.which("openssl") is None:
        return None
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "30", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True)
    return (cert, key) if p.returncode == 0 else None


def hostile_owner(work, name=HOSTILE_COMM, comm=None):
    """A process named 'name' (its executable's file name, str or bytes),
    or 'comm' (bytes it writes to /proc/self/comm) when given, that listens
    on 127.0.0.1 only: the listener check's owner column must escape it."""
    exe = os.path.join(os.fsencode(work), os.fsencode(name))
    os.symlink(sys.executable, exe)
    code = ("import socket,sys\n" +
            ("open('/proc/self/comm','wb').write(%r)\n" % comm if comm else "") +
            "s=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(8)\n"
            "print(s.getsockname()[1],flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([exe, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    port = int(proc.stdout.readline())
    return proc, port


def beacon_get(port, source):
    status, _, body = request(port, "/from-" + source, source=source)
    return status, body


def test_checks(work):
    """Listener checks, a beacon, the instance and a certificate's expiry
    on the page, in /api/v1/status and in /metrics."""
    meta = Metadata(METADATA)
    owner, owner_port = hostile_owner(work)
    # Not UTF-8: jansson refuses such a string, and one process must not
    # take /api/v1/status down with it.
    binary, binary_port = hostile_owner(work, BINARY_COMM)
    mixed, mixed_port = hostile_owner(work, "mixed-srv", MIXED_COMM)
    closed_port = free_port()
    beacon_port = free_port()
    certs = make_cert(work)
    tls = TlsRedis(*certs) if certs else None
    if tls:
        tls.start()
    port = free_port()
    targets = [{"name": "owner", "url": "tcp://127.0.0.1:%d" % owner_port}]
    if tls:
        targets.append({"name": "tls-cache", "url": "rediss://127.0.0.1:%d" % tls.port,
                        "ca_file": certs[0]})
    cfg = {"agent": {"name": "checks-test", "status_listen": "127.0.0.1:%d" % port,
                     "metadata_url": meta.url},
           "defaults": {"interval_s": 1, "timeout_ms": 900},
           "targets": targets,
           "listeners": [{"port": owner_port}, {"port": closed_port}, {"port": binary_port}],
           "beacons": [{"listen": "127.0.0.1:%d" % beacon_port, "expect_from": ["127.0.0.0/30"]}]}
    agent = Agent(work, cfg, "checks")
    try:
        check(agent.wait_ready(), "checks: READY=1")
        # The beacon listens before READY=1: one arrival from inside
        # expect_from (127.0.0.1) and one from outside (127.0.0.9).
        inside = beacon_get(beacon_port, "127.0.0.1")
        outside = beacon_get(beacon_port, "127.0.0.9")
        check(inside[0] == 200 and outside[0] == 200 and b"vpcprobe beacon on checks-test" in inside[1],
              "the beacon answers both sources 200: %r %r" % (inside, outside))

        def doc_when(pred):
            def get():
                st, _, body = request(port, "/api/v1/status")
                d = json.loads(body) if st == 200 else None
                return d if d and pred(d) else None
            return wait_for(get)

        doc = doc_when(lambda d: all(x["runs"] > 0 for x in d["listeners"])
                       and d["beacons"][0]["counts"]["arrivals"] >= 2
                       and all((d["agent"]["instance"] or {}).get(k)
                               for k in ("name", "zone", "project", "network")))
        check(doc is not None, "/api/v1/status has the listener results, the arrivals and the instance")
        if doc is None:
            return
        inst = doc["agent"]["instance"]
        check(inst == {"name": HOSTILE_INSTANCE, "zone": "europe-west1-b", "project": "orders-prod",
                       "network": "shared-vpc"}, "agent.instance from the metadata server: %r" % inst)
        flavors = [f for _, f in meta.requests]
        check(flavors and all(f == "Google" for f in flavors),
              "the metadata requests carry Metadata-Flavor: Google")
        lo, closed, binary_row = doc["listeners"]
        check(lo["port"] == owner_port and lo["scope"] == "loopback_only" and lo["verdict"] == "localhost_only"
              and lo["reason"] == "loopback_bind" and lo["state"] == "failing" and lo["addresses"] == ["127.0.0.1"],
              "the loopback-bound port: loopback_only, localhost_only: %r" % lo)
        check(lo["pid"] == owner.pid and lo["process"] == HOSTILE_COMM and lo["queue"]["max"] == 8,
              "its owner (pid, name) and its queue's maximum: %r %r %r" % (lo["pid"], lo["process"], lo["queue"]))
        check(closed["port"] == closed_port and closed["reason"] == "not_listening" and closed["verdict"] == "refused"
              and closed["addresses"] == [] and closed["pid"] is None,
              "the closed port: not_listening, refused: %r" % closed)
        check(binary_row["pid"] == binary.pid and binary_row["process"] == "??-srv",
              "a process name that is not UTF-8 shows with '?' for its bytes: %r" % binary_row["process"])
        st, _, body = request(port, "/api/v1/listeners?port=%d" % binary_port)
        socks = json.loads(body)["ports"][0]["sockets"] if st == 200 else []
        check(st == 200 and socks and socks[0]["process"] == "??-srv",
              "/api/v1/listeners?port= of that process answers 200 with its name cleaned: %d %r"
              % (st, socks))

        def mixed_socks():
            st, _, body = request(port, "/api/v1/listeners")
            return [k for k in json.loads(body)["sockets"] if k["port"] == mixed_port] if st == 200 else []
        socks = wait_for(mixed_socks)
        check(socks and socks[0]["pid"] == mixed.pid and socks[0]["process"] == MIXED_SHOWN,
              "/api/v1/listeners lists a process whose comm is not UTF-8, its valid characters "
              "kept and each bad byte a '?': %r" % socks)
        b = doc["beacons"][0]
        recent = {a["source"]: a for a in b["recent"]}
        check(b["listen"] == "127.0.0.1:%d" % beacon_port and b["running"] and b["expect_from"] == ["127.0.0.0/30"]
              and b["counts"]["inside"] >= 1 and b["counts"]["outside"] >= 1,
              "the beacon: listen, expect_from, counts: %r" % {k: b[k] for k in ("listen", "counts")})
        check(recent.get("127.0.0.1", {}).get("match") == "inside"
              and recent.get("127.0.0.1", {}).get("network") == "127.0.0.0/30"
              and recent.get("127.0.0.9", {}).get("match") == "outside"
              and recent.get("127.0.0.9", {}).get("network") is None,
              "its recent arrivals: source, inside/outside expect_from: %r" % b["recent"])
        _, _, page = request(port, "/")
        text = page.decode()
        check('<section id="listeners">' in text and 'data-port="%d"' % owner_port in text
              and 'data-port="%d"' % closed_port in text, "the page has the listener table, one row per port")
        check("<td class=\"owner\">%d &lt;i&gt;srv&amp;x</td>" % owner.pid in text and "<i>srv" not in text,
              "the owner's name shows escaped")
        check('<td class="scope">loopback_only</td><td class="addresses">127.0.0.1</td>' in text,
              "the row shows scope and addresses")
        check('data-listen="127.0.0.1:%d"' % beacon_port in text and
              '<td class="source">127.0.0.9:' in text and '<td class="match">outside</td>' in text and
              '<td class="match">inside</td>' in text, "the page has the beacon's arrivals, inside and outside")
        check("instance diag-&lt;b&gt;vm&lt;/b&gt; \u00b7 zone europe-west1-b \u00b7 project orders-prod "
              "\u00b7 network shared-vpc" in text and "<b>vm" not in text,
              "the header names instance, zone, project and network, escaped")
        if tls is None:
            skip("vpcprobe_tls_cert_expiry_seconds for the rediss target", "no openssl to make a certificate")
        else:
            t = wait_for(lambda: (lambda x: x if x and x["runs"] > 0 else None)(api_target(port, "tls-cache")))
            check(t and t["verdict"] == "ok", "the rediss target is ok: %r" % (t and t["detail"]))
            # Built at most once a second: ask until the run shows.
            series = 'vpcprobe_tls_cert_expiry_seconds{target="tls-cache",address="127.0.0.1",port="%d"} ' % tls.port
            body = wait_for(lambda: (lambda b: b if series in b else None)(request(port, "/metrics")[2].decode()))
            value = int(body.split(series)[1].split()[0]) if body else None
            check(value in (29 * 86400, 30 * 86400),
                  "vpcprobe_tls_cert_expiry_seconds: the 30-day certificate in whole days (%r)" % value)
            check(body and 'vpcprobe_tls_cert_expiry_seconds{target="owner"' not in body,
                  "no expiry series for a target without TLS")
            promtool = shutil.which("promtool")
            if promtool and body:
                p = subprocess.run([promtool, "check", "metrics"], input=body.encode(), capture_output=True)
                check(p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
                      "promtool check metrics is clean with the expiry series: %r" % p.stderr[:300])
    finally:
        rc = agent.stop()
        for p in (owner, binary, mixed):
            p.stdin.close()
            p.wait()
        meta.stop()
        if tls:
            tls.sock.close()
    check(rc == 0, "checks: the agent exits 0 on SIGTERM (got %r)" % rc)
    check_clean_log(agent)


def test_metadata_held(work):
    """A metadata server that takes the requests and never answers: the page
    works without the instance, and a stop meanwhile is clean."""
    srv = listener(16)
    held = []
    arrived = threading.Event()

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
            arrived.set()
    threading.Thread(target=accept, daemon=True).start()
    port = free_port()
    cfg = {"agent": {"name": "meta-held", "status_listen": "127.0.0.1:%d" % port,
                     "metadata_url": "http://127.0.0.1:%d" % srv.getsockname()[1]},
           "defaults": {"interval_s": 5, "timeout_ms": 500},
           "targets": [{"name": "down", "url": "tcp://127.0.0.1:%d" % free_port()}]}
    agent = Agent(work, cfg, "metaheld")
    try:
        check(agent.wait_ready(), "metadata held: READY=1")
        check(arrived.wait(10), "the agent asks the metadata server")
        status, _, page = request(port, "/")
        check(status == 200 and b'<div class="where" id="where" hidden></div>' in page,
              "while it has no answer the page answers, without the instance line")
        status, _, body = request(port, "/api/v1/status")
        check(status == 200 and json.loads(body)["agent"]["instance"] is None,
              "and agent.instance is null")
    finally:
        rc = agent.stop()
        srv.close()
        for c in held:
            c.close()
    check(rc == 0, "a stop with the metadata requests in flight exits 0 (got %r)" % rc)
    check_clean_log(agent)


def token_agent(work, name, host):
    """An agent with a fresh random status token in a 0600 file, its page on
    HOST:PORT; returns (agent, token, port)."""
    port = free_port()
    token = "tok-" + base64.b32encode(os.urandom(10)).decode().lower()
    token_path = os.path.join(work, name + ".token")
    with open(token_path, "w") as f:
        f.write(token + "\n")
    os.chmod(token_path, 0o600)
    cfg = {"agent": {"name": name + "-test", "status_listen": "%s:%d" % (host, port),
                     "status_token_file": token_path},
           "defaults": {"interval_s": 5, "timeout_ms": 500},
           "targets": [{"name": "down", "url": "tcp://127.0.0.1:%d" % free_port()}]}
    return Agent(work, cfg, name), token, port


def test_token(work):
    agent, token, port = token_agent(work, "token", "127.0.0.1")
    try:
        check(agent.wait_ready(), "with a token file: READY=1")
        status, headers, body = request(port, "/")
        check(status == 401 and headers.get("www-authenticate", "").startswith('Basic realm="vpcprobe"'),
              "on loopback with a token configured: 401 and WWW-Authenticate without it")
        check(token.encode() not in body, "the 401 does not show the token")
        for path in ("/api/v1/status", "/metrics", "/healthz", "/nope"):
            check(request(port, path)[0] == 401, "%s is 401 without the token" % path)
        check(request(port, "/", method="POST")[0] == 401, "POST / without the token is 401, not 405")
        ok = request(port, "/", headers={"Authorization": "Bearer " + token})[0]
        check(ok == 200, "Authorization: Bearer TOKEN is let in")
        basic = base64.b64encode(("oncall:" + token).encode()).decode()
        check(request(port, "/metrics", headers={"Authorization": "Basic " + basic})[0] == 200,
              "basic auth with TOKEN as the password is let in")
        bad = base64.b64encode(b"oncall:wrong").decode()
        check(request(port, "/", headers={"Authorization": "Basic " + bad})[0] == 401, "a wrong password is 401")
        check(request(port, "/", headers={"Authorization": "Bearer " + token[:-1]})[0] == 401,
              "a token one byte short is 401")
    finally:
        check(agent.stop() == 0, "the token agent stops cleanly")
    check(token not in agent.log_text(), "the token never appears in the log")
    check_clean_log(agent)


def test_refusal(work):
    port = free_port()
    path = os.path.join(work, "open.json")
    with open(path, "w") as f:
        json.dump({"agent": {"status_listen": "0.0.0.0:%d" % port},
                   "targets": [{"name": "x", "url": "tcp://127.0.0.1:%d" % free_port()}]}, f)
    p = subprocess.run([VPCPROBE, "run", "-c", path], capture_output=True, timeout=30)
    err = p.stderr.decode()
    check(p.returncode == 2, "status_listen on 0.0.0.0 without a token file: exit 2 (got %d)" % p.returncode)
    check("status_listen" in err and "status_token_file" in err and "0.0.0.0:%d" % port in err,
          "the message names status_listen, its value and status_token_file: %r" % err.strip())


def test_token_off_loopback(work):
    """Bound off loopback (0.0.0.0) with a token file: the agent starts and
    asks for the token. The test speaks to it only through 127.0.0.1."""
    agent, token, port = token_agent(work, "wild", "0.0.0.0")
    try:
        check(agent.wait_ready(), "on 0.0.0.0 with a token file: the agent starts (READY=1)")
        for path in ("/", "/api/v1/status", "/metrics"):
            check(request(port, path)[0] == 401, "on 0.0.0.0: %s is 401 without the token" % path)
        check(request(port, "/", headers={"Authorization": "Bearer " + token})[0] == 200,
              "on 0.0.0.0: the token is let in")
    finally:
        agent.stop()


def main():
    if not have_vpcprobe():
        return 1
    work = tempfile.mkdtemp(prefix="vpstatus.")
    try:
        test_refusal(work)
        test_main_agent(work)
        test_checks(work)
        test_metadata_held(work)
        test_token(work)
        test_token_off_loopback(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plan()
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
