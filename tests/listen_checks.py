#!/usr/bin/env python3
"""vpcprobe run with listener checks and a beacon in its config (issue 3),
on loopback: a 127.0.0.1-only listener this test owns is reported as
localhost_only with its owner, a port nothing listens on as not_listening,
and a change once; the beacon answers and its arrivals are logged inside or
outside expect_from; SIGHUP keeps an unchanged beacon and restarts a changed
one; SIGTERM exits 0.

Waits are readiness checks with a bound (a log line, a connect), never
sleeps. Traffic goes only to 127.0.0.1."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector  # noqa: E402
from vptest import (Agent, check, exit_status, failed, free_port, have_vpcprobe,  # noqa: E402
                    listener, sanitizer_lines, summary)


def get(port):
    """The beacon's answer to a GET, or the error as text."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/probe?x=ECHOME" % port, timeout=10) as r:
            return r.status, r.read().decode()
    except Exception as e:  # noqa: BLE001 - the test reports whatever went wrong
        return None, repr(e)


def otlp_attrs(req):
    """The attributes of every log record of an OTLP request, as {key: AnyValue}."""
    return [e["attrs"] for e in req.get("logs", [])]


def delivered(col, fmt):
    """Every record the collector accepted, as {field: value} (OTLP: the
    attributes' values, nested fields by their dotted names)."""
    out = []
    for req in col.accepted():
        if fmt == "json":
            out.extend(req["body"]["results"])
            continue
        for a in otlp_attrs(req):
            # intValue is a decimal string in OTLP's JSON encoding.
            out.append({k: int(v["intValue"]) if "intValue" in v else list(v.values())[0]
                        for k, v in a.items()})
    return out


def test_delivery(work, fmt):
    """Listener results and beacon arrivals reach the collector as records
    of kind listener and beacon, beside the probe results."""
    col = collector.Collector(fmt).start()
    state = os.path.join(work, "state-" + fmt)
    os.mkdir(state)
    lsock = listener(8)
    lo_port = lsock.getsockname()[1]
    none_port = free_port()
    beacon_port = free_port()
    cfg = {"agent": {"name": "lc-delivery", "state_dir": state,
                     "status_listen": "127.0.0.1:%d" % free_port()},
           "defaults": {"interval_s": 1, "timeout_ms": 500},
           "targets": [{"name": "lo", "url": "tcp://127.0.0.1:%d" % lo_port}],
           "listeners": [{"port": lo_port}, {"port": none_port}],
           "beacons": [{"listen": "127.0.0.1:%d" % beacon_port, "expect_from": ["127.0.0.0/30"]}],
           "collector": {"url": col.url, "format": fmt, "timeout_ms": 2000}}
    d = Agent(work, cfg, "delivery-" + fmt)
    try:
        check(d.wait_log("beacon 127.0.0.1:%d: listening" % beacon_port), "%s: the beacon starts" % fmt)
        inside = urllib.request.Request("http://127.0.0.1:%d/" % beacon_port)
        with urllib.request.urlopen(inside, timeout=10) as r:
            check(r.status == 200, "%s: an arrival from 127.0.0.1 (inside)" % fmt)
        s = socket.create_connection(("127.0.0.1", beacon_port), timeout=10, source_address=("127.0.0.9", 0))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = s.recv(64)
        check(answer.startswith(b"HTTP/1.") and b" 200 " in answer,
              "%s: an arrival from 127.0.0.9 (outside): %r" % (fmt, answer[:20]))
        s.close()

        def have():
            recs = delivered(col, fmt)
            kinds = [r.get("kind") for r in recs]
            return (kinds.count("beacon") >= 2 and
                    {r.get("port") for r in recs if r.get("kind") == "listener"} >= {lo_port, none_port}
                    and "tcp" in kinds)
        check(col.wait(lambda _: have(), timeout=30), "%s: listener and beacon records arrive with the probe results" % fmt)
        recs = delivered(col, fmt)
        lo = [r for r in recs if r.get("kind") == "listener" and r.get("port") == lo_port]
        none = [r for r in recs if r.get("kind") == "listener" and r.get("port") == none_port]
        beacons = {r.get("source"): r for r in recs if r.get("kind") == "beacon"}
        check(lo and lo[0]["verdict"] == "localhost_only" and lo[0]["reason"] == "loopback_bind"
              and lo[0]["scope"] == "loopback_only" and lo[0]["agent"] == "lc-delivery"
              and lo[0].get("pid") == os.getpid(),
              "%s: the loopback-bound port's record: %r" % (fmt, lo[:1]))
        check(none and none[0]["verdict"] == "refused" and none[0]["reason"] == "not_listening",
              "%s: the closed port's record: %r" % (fmt, none[:1]))
        ins, out = beacons.get("127.0.0.1"), beacons.get("127.0.0.9")
        check(ins and ins["reason"] == "inside_expect_from" and ins["expected"] is True
              and ins["listen"] == "127.0.0.1:%d" % beacon_port,
              "%s: the arrival from inside expect_from: %r" % (fmt, ins))
        check(out and out["reason"] == "outside_expect_from" and out["expected"] is False,
              "%s: the arrival from outside expect_from: %r" % (fmt, out))
        errs = [e for r in col.requests for e in r["errors"]]
        check(not errs, "%s: every body passes the collector's checker: %r" % (fmt, errs[:3]))
        d.proc.send_signal(signal.SIGTERM)
        check(d.proc.wait(timeout=10) == 0, "%s: SIGTERM: exit 0" % fmt)
        bad = sanitizer_lines(d.log_text())
        check(not bad, "%s: no sanitizer report: %r" % (fmt, bad[:3]))
    finally:
        d.stop()
        lsock.close()
        col.stop()


def main():
    if not have_vpcprobe():
        return 1
    work = tempfile.mkdtemp(prefix="vplistenchecks.")
    lsock = listener(8)
    lo_port = lsock.getsockname()[1]
    none_port = free_port()
    beacon_port = free_port()
    beacon = "127.0.0.1:%d" % beacon_port
    cfg = {"agent": {"name": "lc-test", "status_listen": "127.0.0.1:%d" % free_port()},
           "defaults": {"interval_s": 1, "timeout_ms": 500},
           "targets": [],
           "listeners": [{"port": lo_port}, {"port": none_port}],
           "beacons": [{"listen": beacon, "expect_from": ["127.0.0.0/8"]}]}
    d = Agent(work, cfg, "vpcprobe")
    try:
        want = "listener port %d: start -> localhost_only (loopback_bind): port %d listens on 127.0.0.1 only" \
            % (lo_port, lo_port)
        check(d.wait_log(want), "a 127.0.0.1-only listener is logged as localhost_only")
        check("(pid %d " % os.getpid() in d.log_text(), "the result names the owning process (this test)")
        check(d.wait_log("listener port %d: start -> refused (not_listening)" % none_port),
              "a port nothing listens on is logged as refused (not_listening)")

        check(d.wait_log("beacon %s: listening, expecting 127.0.0.0/8" % beacon), "the beacon starts")
        status, body = get(beacon_port)
        check(status == 200, "the beacon answers 200 (got %r)" % status)
        check(body.startswith("vpcprobe beacon on lc-test: your connection from 127.0.0.1:") and
              body.endswith(" arrived\n"), "the answer names the agent and the source: %r" % body)
        check("ECHOME" not in body, "the answer does not echo the request")
        check(d.wait_log("beacon: connection from 127.0.0.1:"), "the arrival is logged")
        check("arrived at %s, inside expect_from (127.0.0.0/8)" % beacon in d.log_text(),
              "the arrival is inside expect_from")

        # The listener goes away: one change, logged once.
        lsock.close()
        check(d.wait_log("listener port %d: localhost_only (loopback_bind) -> refused (not_listening)"
                         % lo_port), "a change of the listener is logged")

        # SIGHUP with the same beacon: it keeps running, not started again.
        os.kill(d.proc.pid, signal.SIGHUP)
        check(d.wait_log("reloaded config"), "a SIGHUP reloads")
        status, _ = get(beacon_port)
        check(status == 200 and d.log_text().count("beacon %s: listening" % beacon) == 1,
              "an unchanged beacon is kept across SIGHUP")

        # SIGHUP with another expect_from: the beacon restarts with it.
        cfg["beacons"][0]["expect_from"] = ["198.18.0.0/15"]
        d.write(cfg)
        os.kill(d.proc.pid, signal.SIGHUP)
        check(d.wait_log("reloaded config", count=2), "a second SIGHUP reloads")
        check(d.wait_log("beacon %s: listening, expecting 198.18.0.0/15" % beacon),
              "a changed beacon is started again")
        check("beacon %s: closed" % beacon in d.log_text(), "the old one is closed")
        status, _ = get(beacon_port)
        check(status == 200, "the restarted beacon answers (got %r)" % status)
        check(d.wait_log("outside expect_from (198.18.0.0/15)"), "its arrivals use the new expect_from")
        check(d.log_text().count("listener port %d: start" % lo_port) == 1,
              "a listener check keeps its result across SIGHUP")

        d.proc.send_signal(signal.SIGTERM)
        try:
            rc = d.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "SIGTERM: exit status 0 within 5 s (got %r)" % rc)
        check("stopped" in d.log_text(), "the agent logs that it stopped")
    finally:
        d.stop()
        lsock.close()
    for fmt in ("json", "otlp"):
        test_delivery(work, fmt)
    summary()
    if failed():
        sys.stdout.write(d.log_text())
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
