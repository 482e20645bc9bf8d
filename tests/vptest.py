"""tests/vptest.py: what the Python integration tests share.

A script imports it from its own directory, with bytecode off so that no
__pycache__ lands in the source tree:

    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import vptest  # noqa: E402

TAP: check() prints "ok N - ..." / "not ok N - ..." and records the outcome
in `results` (one bool a check, never rebound: a script may alias it);
plan(), summary() and exit_status() end a run.

Every wait here is a readiness check with a bound (a notify datagram, a log
line, an answer), never a sleep as synchronisation; where there is no event
to wait on (a file, a page) it polls, and the bound is a failure, not a
timing threshold. Every socket is on 127.0.0.1; free_port() never gives
2024.

Env: VPCPROBE (the binary, set by meson), TESTS_DIR (tests/ source dir).
"""

import http.client
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS_DIR = os.environ.get("TESTS_DIR", HERE)
VPCPROBE = os.environ.get("VPCPROBE", os.path.join(HERE, "..", "build", "vpcprobe"))

results = []


# ---- TAP ----

def check(ok, what, info="", info_lines=slice(0, 20)):
    """Prints "ok N - what" or "not ok N - what", flushed, and records
    bool(ok); on failure also the lines of str(info) (the slice info_lines
    of them) as "#   LINE". Returns bool(ok)."""
    ok = bool(ok)
    results.append(ok)
    print(("ok" if ok else "not ok") + " %d - %s" % (len(results), what), flush=True)
    if not ok:
        for line in str(info).splitlines()[info_lines]:
            print("#   " + line, flush=True)
    return ok


def skip(what, why):
    """A check that cannot be made here: "ok N - what # SKIP why"."""
    results.append(True)
    print("ok %d - %s # SKIP %s" % (len(results), what, why), flush=True)


def note(text):
    """A TAP comment: "# text"."""
    print("# " + text, flush=True)


def failed():
    """How many checks failed so far."""
    return results.count(False)


def plan():
    """The TAP plan after the checks: "1..N"."""
    print("1..%d" % len(results), flush=True)


def summary(skipped=None):
    """Prints "# P passed, F failed" (", S skipped" when skipped is a
    number)."""
    line = "# %d passed, %d failed" % (len(results) - failed(), failed())
    if skipped is not None:
        line += ", %d skipped" % skipped
    print(line, flush=True)


def exit_status():
    """1 when a check failed or none was made, else 0."""
    return 1 if failed() or not results else 0


def have_vpcprobe():
    """False, after a "Bail out!" line, when VPCPROBE is not an executable."""
    if os.access(VPCPROBE, os.X_OK):
        return True
    print("Bail out! no vpcprobe at " + VPCPROBE, flush=True)
    return False


# ---- loopback ----

def free_port():
    """A loopback port nothing listens on at the time of the call (bound to
    port 0, then closed); never 2024."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port != 2024:
            return port


def listener(backlog=16):
    """A TCP socket listening on 127.0.0.1, on a port of the kernel's
    choosing (.getsockname()[1]); the kernel accepts up to backlog
    connections that nobody takes."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def request(port, path, method="GET", headers=None, source="127.0.0.1", timeout=10):
    """One HTTP/1.1 request to 127.0.0.1:port from the address source:
    (status, headers with lower-case names, body bytes). Raises OSError
    when nothing answers within timeout."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def http_get(port, path, source="127.0.0.1", timeout=10):
    """(status, body) of one GET, or (None, the error's text) when nothing
    answers: it never raises OSError."""
    try:
        status, _, body = request(port, path, source=source, timeout=timeout)
        return status, body
    except OSError as e:
        return None, str(e)


def api_target(port, name):
    """The target named name in the agent's /api/v1/status at
    127.0.0.1:port; None when it is not there or the page does not answer
    200."""
    try:
        status, _, body = request(port, "/api/v1/status")
    except OSError:
        return None
    if status != 200:
        return None
    for t in json.loads(body)["targets"]:
        if t["name"] == name:
            return t
    return None


def metric(port, sample, timeout=10):
    """The value of one sample (its name and labels as exposed) on the
    agent's /metrics at 127.0.0.1:port; None when it is not there or the
    page does not answer 200."""
    status, body = http_get(port, "/metrics", timeout=timeout)
    if status != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(sample + " "):
            return float(line[len(sample) + 1:].split()[0])
    return None


def wait_for(fn, timeout=15.0, every=0.05):
    """Polls fn() until it returns something true or timeout passes, and
    returns what it returned last: for a condition with no event to wait on
    (a page that changes, a file). The bound is a failure, not a threshold."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(every)


def write_json(path, obj):
    """Writes obj as JSON beside path and renames it there: a reader (an
    agent on SIGHUP) never sees half a file."""
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


def read_text(path):
    """The file's text, undecodable bytes replaced."""
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def wait_file(path, text, count=1, timeout=15.0, proc=None):
    """True once the file at path holds text at least count times; False
    when timeout passes first, or proc (a Popen) has exited without it. A
    file has no readiness event: it polls, and the bound is the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if read_text(path).count(text) >= count:
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def sanitizer_lines(text):
    """The lines of an agent's stderr in which ASan or UBSan reports."""
    return [line for line in text.splitlines() if "Sanitizer" in line or "runtime error:" in line]


def sanitizer_logs(dirname):
    """The names of the *.log files in dirname that hold a sanitizer report."""
    return [name for name in sorted(os.listdir(dirname))
            if name.endswith(".log") and sanitizer_lines(read_text(os.path.join(dirname, name)))]


def spool_segments(state):
    """The spool's segment files (STATE/spool/*.seg), oldest first; [] when
    there is no spool yet."""
    d = os.path.join(state, "spool")
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".seg"))


def spool_frames(path):
    """[(offset, length, seq)] of a segment's frames, headers only (magic
    "VPR1", length, sequence number), up to the first that is not one."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 20 <= len(data):
        magic, length, seq = struct.unpack_from("<4sIQ", data, off)
        if magic != b"VPR1":
            break
        out.append((off, length, seq))
        off += 20 + length
    return out


# ---- vpcprobe run ----

class Agent:
    """`vpcprobe run -c WORK/TAG.json`, NOTIFY_SOCKET at WORK/TAG.notify,
    stderr in WORK/TAG.log. A thread reads every notify datagram for as long
    as the agent runs (sd_notify blocks the agent once the socket's queue is
    full) and keeps its lines for wait_notify. wrap: a command to run it
    under (valgrind); binary: another vpcprobe binary."""

    def __init__(self, work, cfg, tag="agent", wrap=(), binary=None):
        self.path = os.path.join(work, tag + ".json")
        self.write(cfg)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(os.path.join(work, tag + ".notify"))
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()
        self.log_path = os.path.join(work, tag + ".log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.getsockname())
        self.proc = subprocess.Popen(list(wrap) + [binary or VPCPROBE, "run", "-c", self.path],
                                     env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def write(self, cfg):
        """A new config, for the next SIGHUP (write_json: never half a file)."""
        write_json(self.path, cfg)

    def _drain(self):
        while True:
            try:
                m = self.notify.recv(4096)
            except OSError:
                return
            with self.cond:
                self.lines.extend(m.decode(errors="replace").split("\n"))
                self.cond.notify_all()

    def wait_notify(self, prefix, timeout=15.0, suffix=""):
        """The first notify line since the start that starts with prefix and
        ends with suffix, as soon as it has come; None when it has not within
        timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix) and line.endswith(suffix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def wait_ready(self, timeout=15.0):
        """True once READY=1 has come: the status listener is bound."""
        return self.wait_notify("READY=1", timeout) is not None

    def log_text(self):
        """Its stderr so far."""
        return read_text(self.log_path)

    def wait_log(self, text, count=1, timeout=15.0):
        """True once its stderr holds text count times (wait_file)."""
        return wait_file(self.log_path, text, count, timeout, self.proc)

    def stop(self, timeout=10):
        """SIGTERM if it runs, then its exit status; None (after SIGKILL)
        when it does not end within timeout."""
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            rc = self.proc.returncode
        self.notify.close()
        self.log.close()
        return rc


class LineAgent:
    """`vpcprobe run -c WORK/NAME.json ARGS`, its stderr read by a thread:
    every line kept with the time it came (time.time()) and copied to
    WORK/NAME.log. Its environment has no proxy variable (every peer is on
    loopback), and ASAN_OPTIONS gets quarantine_size_mb=16: freed memory in
    the quarantine counts in RSS, and the RSS bounds are about the agent
    (ignored by a build without ASan). nofile: its RLIMIT_NOFILE."""

    TERM_S = 8      # the bound on an exit after SIGTERM

    def __init__(self, work, cfg, name="agent", args=(), env_extra=None, nofile=None):
        self.cfg_path = os.path.join(work, name + ".json")
        write_json(self.cfg_path, cfg)
        self.lines = []
        self.cond = threading.Condition()
        self.log = open(os.path.join(work, name + ".log"), "a")
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "quarantine_size_mb=16"]))
        env.update(env_extra or {})

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen([VPCPROBE, "run", "-c", self.cfg_path] + list(args),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                     preexec_fn=limit if nofile else None)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.log.write(line + "\n")
            self.log.flush()
            with self.cond:
                self.lines.append((time.time(), line))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def count(self, text, prefix="", after=None, before=None):
        """Lines so far holding text and starting with prefix, that came
        after 'after' and before 'before' (time.time() values) when given."""
        with self.cond:
            return sum(1 for t, l in self.lines if text in l and l.startswith(prefix) and
                       (after is None or t > after) and (before is None or t < before))

    def matching(self, text):
        """The lines so far that hold text."""
        with self.cond:
            return [l for _, l in self.lines if text in l]

    def text(self):
        """Its stderr so far."""
        with self.cond:
            return "\n".join(l for _, l in self.lines)

    def wait_log(self, text, count=1, timeout=30.0, after=None):
        """True as soon as count lines holding text have come (after
        'after', a time.time() value, when given); False at timeout, or once
        the agent has exited and its stderr is read to the end."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while sum(1 for t, l in self.lines if text in l and (after is None or t > after)) < count:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()):
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def rss_kb(self):
        """Its resident set now (VmRSS), in kB; 0 once it has exited (a
        zombie has none). Raises OSError once it is reaped."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def running(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def term(self, timeout=None):
        """SIGTERM, then its exit status; None when it does not end within
        timeout (TERM_S by default). Closes it either way."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout or self.TERM_S)
        except subprocess.TimeoutExpired:
            rc = None
        self.close()
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.close()

    def close(self):
        """SIGKILL if it still runs; waits for the reader, closes the log."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        self.log.close()


class Metadata:
    """A Compute Engine metadata server of the test's own on 127.0.0.1
    (agent.metadata_url = .url): answers[path] with 200, 403 to a request
    without Metadata-Flavor: Google, 503 once for each path of busy_once,
    404 to anything else; every request in .requests as (path, flavor)."""

    def __init__(self, answers, busy_once=()):
        self.answers = dict(answers)
        self.busy_once = set(busy_once)
        self.requests = []
        meta = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                meta.requests.append((self.path, self.headers.get("Metadata-Flavor")))
                code, body = 404, "not found"
                if self.headers.get("Metadata-Flavor") != "Google":
                    code, body = 403, "missing Metadata-Flavor"
                elif self.path in meta.busy_once:
                    meta.busy_once.discard(self.path)
                    code, body = 503, "busy"
                elif self.path in meta.answers:
                    code, body = 200, meta.answers[self.path]
                data = body.encode()
                self.send_response(code)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", "application/text")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
