#!/usr/bin/env python3
"""vpcprobe run, end to end on loopback: sd_notify READY=1 on a
NOTIFY_SOCKET this test owns, STATUS= counts, verdict changes logged once,
SIGHUP with a good and with a bad config, SIGTERM exits 0.

Waits are readiness checks with a bound (a notify message, a log line), never
sleeps. Traffic goes only to 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

VPCPROBE = os.environ.get("VPCPROBE", os.path.join(os.path.dirname(__file__), "..", "build", "vpcprobe"))
results = []


def check(ok, what):
    results.append(ok)
    print(("ok" if ok else "not ok") + " %d - %s" % (len(results), what), flush=True)


def free_port():
    """A loopback port nothing listens on: bound, then closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    def __init__(self, config_path, work):
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_path = os.path.join(work, "notify.sock")
        self.notify.bind(self.notify_path)
        self.log_path = os.path.join(work, "stderr.log")
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        self.proc = subprocess.Popen([VPCPROBE, "run", "-c", config_path], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.messages = []

    def wait_notify(self, prefix, timeout=10.0):
        """The first notify datagram holding a line that starts with prefix."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                for line in m.split("\n"):
                    if line.startswith(prefix):
                        self.messages.remove(m)
                        return line
            self.notify.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                self.messages.append(self.notify.recv(4096).decode())
            except socket.timeout:
                break
        return None

    def wait_log(self, text, timeout=10.0, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                if f.read().decode(errors="replace").count(text) >= count:
                    return True
            if self.proc.poll() is not None:
                return False
            # Polling a log file has no readiness event; the bound is the deadline.
            time.sleep(0.02)
        return False

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.close()
        self.log.close()


def main():
    if not os.access(VPCPROBE, os.X_OK):
        print("Bail out! no vpcprobe at " + VPCPROBE)
        return 1
    work = tempfile.mkdtemp(prefix="vpdaemon.")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    open_port = listener.getsockname()[1]
    closed_port = free_port()

    # Its own status port: never the default 9464, which another agent may hold.
    cfg = {"agent": {"name": "daemon-test", "status_listen": "127.0.0.1:%d" % free_port()}, "defaults": {"interval_s": 1, "timeout_ms": 500},
           "targets": [{"name": "up", "url": "tcp://127.0.0.1:%d" % open_port},
                       {"name": "down", "url": "tcp://127.0.0.1:%d" % closed_port}]}
    path = os.path.join(work, "vpcprobe.json")
    with open(path, "w") as f:
        json.dump(cfg, f)

    d = Daemon(path, work)
    try:
        ready = d.wait_notify("READY=1")
        check(ready is not None, "READY=1 arrives on NOTIFY_SOCKET")
        check(d.wait_log("target 'down': start -> refused"), "the failing target is logged once as refused")
        status = d.wait_notify("STATUS=2 targets: 1 ok, 1 failing")
        check(status is not None, "STATUS= counts 1 ok and 1 failing: %r" % status)
        # A second round must not log the unchanged verdicts again.
        check(d.wait_log("down", count=1) and d.log_text().count("'down': start -> refused") == 1,
              "an unchanged verdict is not logged again")

        # Now the listener goes away: 'up' changes verdict and that is logged.
        listener.close()
        check(d.wait_log("target 'up': ok -> refused"), "a verdict change is logged: ok -> refused")

        # SIGHUP with a bad config: the running one stays.
        with open(path, "w") as f:
            f.write('{"targets": [{"name": "x", "url": "tcp://127.0.0.1"}]}')
        d.proc.send_signal(signal.SIGHUP)
        check(d.wait_log("reload: keeping the running configuration"), "a bad config on SIGHUP is refused")
        check("tcp:// needs a port" in d.log_text() or "port" in d.log_text(),
              "the reload error names the problem")
        check(d.proc.poll() is None, "the agent keeps running after a bad reload")

        # SIGHUP with a good config: one target renamed, one kept.
        cfg["targets"][1]["name"] = "down-renamed"
        with open(path, "w") as f:
            json.dump(cfg, f)
        d.proc.send_signal(signal.SIGHUP)
        check(d.wait_log("reloaded config"), "a good config on SIGHUP is taken")
        check(d.wait_log("target 'down-renamed': start -> refused"), "a new target starts its own history")
        # 'up' runs first after the reload (offset 0); had it lost its history
        # its refusal would be logged again as a start.
        check(d.log_text().count("target 'up': start") == 0, "an unchanged target keeps its history")

        # SIGTERM: stop, exit 0, promptly.
        d.proc.send_signal(signal.SIGTERM)
        try:
            rc = d.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "SIGTERM: exit status 0 within 5 s (got %r)" % rc)
        check(d.wait_notify("STOPPING=1", timeout=1) is not None, "STOPPING=1 is sent")
        check("stopped" in d.log_text(), "the agent logs that it stopped")
    finally:
        d.stop()
        listener.close()
    failed = results.count(False)
    print("# %d passed, %d failed" % (len(results) - failed, failed))
    if failed:
        sys.stdout.write(d.log_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
