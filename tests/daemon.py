#!/usr/bin/env python3
"""vpcprobe run, end to end on loopback: sd_notify READY=1 on a
NOTIFY_SOCKET this test owns, STATUS= counts, verdict changes logged once,
SIGHUP with a good and with a bad config, SIGTERM exits 0; WATCHDOG=1 from
the agent's pid under WATCHDOG_USEC (and none when WATCHDOG_PID names
another process, or without WATCHDOG_USEC); SIGINT exits 0 like SIGTERM;
journald's "<N>" priority prefixes when JOURNAL_STREAM names stderr, and
none without it.

Waits are readiness checks with a bound (a notify message, a log line), never
sleeps. Traffic goes only to 127.0.0.1."""

import array
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vptest import (VPCPROBE, check, exit_status, failed, free_port, have_vpcprobe,  # noqa: E402
                    listener, read_text, summary, wait_file, write_json)


# What systemd sets for a service; the test decides each of them.
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")


class Daemon:
    """One `vpcprobe run`. env: extra variables; watchdog_own_pid: start it
    through `sh -c 'WATCHDOG_PID=$$ exec ...'`, so that WATCHDOG_PID is the
    agent's own pid, as systemd sets it; journal: JOURNAL_STREAM set to the
    device:inode of the agent's stderr, as systemd does when stderr is the
    journal."""

    def __init__(self, config_path, work, name="run", env=None, watchdog_own_pid=False,
                 journal=False):
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify_path = os.path.join(work, name + ".notify.sock")
        self.notify.bind(self.notify_path)
        # The kernel then tells which pid sent each datagram.
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.log_path = os.path.join(work, name + ".stderr.log")
        self.log = open(self.log_path, "wb")
        base = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
        full = dict(base, NOTIFY_SOCKET=self.notify_path, **(env or {}))
        if journal:
            st = os.fstat(self.log.fileno())
            full["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        argv = [VPCPROBE, "run", "-c", config_path]
        if watchdog_own_pid:
            argv = ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"'] + argv
        self.proc = subprocess.Popen(argv, env=full, stdout=subprocess.DEVNULL, stderr=self.log)
        self.messages = []      # datagrams not yet taken by wait_notify
        self.received = []      # every datagram: (text, sender pid or None)

    def _recv(self):
        data, anc, _, _ = self.notify.recvmsg(4096, socket.CMSG_SPACE(3 * 4))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = array.array("i", payload[:12])[0]
        text = data.decode()
        self.received.append((text, pid))
        return text

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
                self.messages.append(self._recv())
            except socket.timeout:
                break
        return None

    def wait_log(self, text, timeout=10.0, count=1):
        return wait_file(self.log_path, text, count, timeout, self.proc)

    def log_text(self):
        return read_text(self.log_path)

    def stop_with(self, sig):
        """Sends sig; the exit status if the agent ends within 5 s, else None."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def lines_before(self, prefix, timeout=10.0):
        """Every notify line received until one starting with prefix (which
        is left out); None when that line does not come. A datagram socket
        keeps the agent's order."""
        if self.wait_notify(prefix, timeout) is None:
            return None
        lines = []
        for text, _ in self.received:
            for line in text.split("\n"):
                if line.startswith(prefix):
                    return lines
                lines.append(line)
        return lines

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notify.close()
        self.log.close()


def main():
    if not have_vpcprobe():
        return 1
    work = tempfile.mkdtemp(prefix="vpdaemon.")
    up = listener(16)
    open_port = up.getsockname()[1]
    closed_port = free_port()

    # Its own status port: never the default 9464, which another agent may hold.
    cfg = {"agent": {"name": "daemon-test", "status_listen": "127.0.0.1:%d" % free_port()}, "defaults": {"interval_s": 1, "timeout_ms": 500},
           "targets": [{"name": "up", "url": "tcp://127.0.0.1:%d" % open_port},
                       {"name": "down", "url": "tcp://127.0.0.1:%d" % closed_port}]}
    path = os.path.join(work, "vpcprobe.json")
    write_json(path, cfg)

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
        up.close()
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
        write_json(path, cfg)
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
        # Neither WATCHDOG_USEC nor JOURNAL_STREAM was set for this run.
        check(not any("WATCHDOG=1" in t for t, _ in d.received),
              "no WATCHDOG=1 without WATCHDOG_USEC")
        lines = d.log_text().splitlines()
        check(lines and all(not re.match(r"<\d>", l) for l in lines) and
              any(l.startswith("vpcprobe: target 'down': start -> refused") for l in lines),
              "without JOURNAL_STREAM no line carries a <N> prefix")
    finally:
        d.stop()
        up.close()

    # One target that is refused: a verdict logged soon after start.
    cfg = {"agent": {"name": "daemon-test", "status_listen": "127.0.0.1:%d" % free_port()},
           "defaults": {"interval_s": 1, "timeout_ms": 500},
           "targets": [{"name": "down", "url": "tcp://127.0.0.1:%d" % free_port()}]}
    write_json(path, cfg)
    runs = [d, watchdog_and_sigint(path, work), journal_stream(path, work),
            journal_elsewhere(path, work)]
    summary()
    if failed():
        for r in runs:
            sys.stdout.write("# %s\n%s" % (r.log_path, r.log_text()))
    return exit_status()


def watchdog_and_sigint(path, work):
    """WatchdogSec=: systemd sets WATCHDOG_USEC and WATCHDOG_PID (the
    service's pid); the agent pings at half the interval. Then SIGINT."""
    d = Daemon(path, work, "watchdog", env={"WATCHDOG_USEC": "200000"}, watchdog_own_pid=True)
    try:
        check(d.wait_notify("READY=1") is not None, "watchdog: READY=1 arrives")
        first = d.wait_notify("WATCHDOG=1")
        second = d.wait_notify("WATCHDOG=1")
        check(first is not None and second is not None,
              "WATCHDOG=1 arrives, again and again, with WATCHDOG_USEC=200000")
        pids = {pid for t, pid in d.received if "WATCHDOG=1" in t.split("\n")}
        check(pids == {d.proc.pid}, "WATCHDOG=1 comes from the agent's pid %d (senders %r)"
              % (d.proc.pid, pids))
        check(d.wait_log("target 'down': start -> refused"), "watchdog: the agent probes")
        rc = d.stop_with(signal.SIGINT)
        check(rc == 0, "SIGINT: exit status 0 within 5 s, like SIGTERM (got %r)" % rc)
        check(d.wait_notify("STOPPING=1", timeout=1) is not None, "SIGINT: STOPPING=1 is sent")
        check("stopped" in d.log_text(), "SIGINT: the agent logs that it stopped")
    finally:
        d.stop()
    return d


def journal_stream(path, work):
    """stderr is the journal (JOURNAL_STREAM names it): every line starts
    with its syslog priority, <6> for a verdict change (info). WATCHDOG_PID
    names another process here: that watchdog is not the agent's."""
    d = Daemon(path, work, "journal", journal=True,
               env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
    try:
        check(d.wait_log("<6>target 'down': start -> refused"),
              "JOURNAL_STREAM: a verdict change is logged with the <6> prefix (info)")
        lines = d.lines_before("STOPPING=1", timeout=1) if d.stop_with(signal.SIGTERM) == 0 else None
        check(lines is not None and "READY=1" in lines and "WATCHDOG=1" not in lines,
              "no WATCHDOG=1 when WATCHDOG_PID is not the agent's pid: %r" % lines)
        text = d.log_text().splitlines()
        check(text and all(re.match(r"<[0-7]>", l) for l in text),
              "JOURNAL_STREAM: every line carries a <N> prefix: %r" % text[:3])
        check(not any("vpcprobe: " in l for l in text),
              "JOURNAL_STREAM: no 'vpcprobe: ' prefix (journald names the unit)")
    finally:
        d.stop()
    return d


def journal_elsewhere(path, work):
    """JOURNAL_STREAM inherited from a service whose stderr was the journal,
    while this stderr is a file: it names another file, so no <N> prefix."""
    st = os.stat(path)
    d = Daemon(path, work, "elsewhere", env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
    try:
        check(d.wait_log("target 'down': start -> refused"),
              "JOURNAL_STREAM naming another file: the agent probes and logs")
        check(d.stop_with(signal.SIGTERM) == 0, "JOURNAL_STREAM naming another file: SIGTERM exits 0")
        text = d.log_text().splitlines()
        check(text and not any(re.match(r"<[0-7]>", l) for l in text) and
              any(l.startswith("vpcprobe: ") for l in text),
              "JOURNAL_STREAM naming another file: no <N> prefix, plain 'vpcprobe: ' lines: %r"
              % text[:3])
    finally:
        d.stop()
    return d


if __name__ == "__main__":
    sys.exit(main())
