#!/usr/bin/env python3
"""Delivery to the collector, end to end on loopback (issue 5): `vpcprobe run`
with a state_dir in a temporary directory, targets on 127.0.0.1 every second,
and the collector of tests/collector.py in this process.

Checks: json and OTLP bodies (the OTLP one strictly), results in order with
growing batch ids and nothing lost (OTLP log records carry the spool's
sequence number, json batches are named by their last one, so a gap shows);
collector down then up; 500, 429 with Retry-After (seconds and HTTP date);
OTLP partialSuccess, 400, 500, a cut answer, a dropped connection; a collector
that never answers (memory stays bounded); kill -9 while the collector is
down; a torn tail and a corrupt frame in the spool; a full spool; SIGHUP with
the same and with another collector; an unwritable state_dir; Compute Engine
metadata from a server of this test's own (agent.metadata_url); OTLP metrics
(their values against the targets and the logged results, a failed export,
a stop during an export);
an https collector with the test's CA, and with the wrong CA until a SIGHUP
fixes ca_file.

No root needed. Waits are readiness checks with a bound (a log line, a
request at the collector, a file), never sleeps. Traffic: 127.0.0.1 only."""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collector  # noqa: E402
from vptest import (LineAgent, Metadata, check, exit_status, have_vpcprobe,  # noqa: E402
                    listener, metric, request, results, sanitizer_logs, spool_frames,
                    spool_segments, summary, wait_for)

TOKEN = "test-token-7f3a"
RSS_BOUND_KB = 100 * 1024    # generous: the agent runs in a few MB
# What the metadata server (vptest.Metadata) answers; the zone is busy (503)
# once first.
METADATA = {"/computeMetadata/v1/instance/name": "diag-vm-7",
            "/computeMetadata/v1/instance/zone": "projects/123456/zones/europe-west1-b",
            "/computeMetadata/v1/project/project-id": "orders-prod",
            "/computeMetadata/v1/instance/network-interfaces/0/network":
                "projects/123456/networks/shared-vpc"}
METADATA_BUSY_ONCE = {"/computeMetadata/v1/instance/zone"}


def ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_port():
    """A loopback port nothing listens on, from below the kernel's
    ephemeral range: bind(0) and connect() never hand it out, so a
    collector or listener started later (they bind port 0) cannot take the
    status port or the refused port of a scenario. Bound, then closed."""
    lo, _ = ephemeral_range()
    for _ in range(100):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", random.randint(10000, lo - 1) if lo > 10001 else 0))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free loopback port below %d" % lo)


class Agent(LineAgent):
    """vpcprobe run (vptest.LineAgent), with -v when verbose."""

    TERM_S = 6

    def __init__(self, work, cfg, name="agent", verbose=False, env_extra=None):
        super().__init__(work, cfg, name, args=["-v"] if verbose else [], env_extra=env_extra)


class Env:
    """One scenario's directory, listener, metadata server and config."""

    def __init__(self, meta, name):
        self.work = tempfile.mkdtemp(prefix="vpdelivery.%s." % name)
        self.state = os.path.join(self.work, "state")
        self.listener = listener(64)
        self.up_port = self.listener.getsockname()[1]
        self.down_port = free_port()
        self.status_port = free_port()
        self.token = os.path.join(self.work, "token")
        with open(self.token, "w") as f:
            f.write(TOKEN + "\n")
        self.meta = meta
        self.first_result = len(results)

    def config(self, url, fmt="json", targets=None, **collector_extra):
        if targets is None:
            targets = [{"name": "up", "url": "tcp://127.0.0.1:%d" % self.up_port},
                       {"name": "down", "url": "tcp://127.0.0.1:%d" % self.down_port}]
        col = {"url": url, "format": fmt, "token_file": self.token, "timeout_ms": 2000}
        col.update(collector_extra)
        # A status port of its own: other tests run agents at the same time.
        return {"agent": {"name": "delivery-test", "state_dir": self.state,
                          "metadata_url": self.meta.url,
                          "status_listen": "127.0.0.1:%d" % self.status_port},
                "defaults": {"interval_s": 1, "timeout_ms": 500},
                "targets": targets, "collector": col}

    def close(self):
        """Under ASan/UBSan a report in any agent's log fails the scenario;
        a scenario that passed leaves no files behind."""
        self.listener.close()
        reports = sanitizer_logs(self.work)
        if reports:
            check(False, "sanitizer reports in %s (kept in %s)" % (reports, self.work))
        elif all(results[self.first_result:]):
            shutil.rmtree(self.work, ignore_errors=True)


# ---- what the collector got ----

def json_batches(col):
    """[(batch id, results)] of the accepted json requests, in arrival order."""
    return [(r["body"]["batch"], r["body"]["results"]) for r in col.accepted()]


def otlp_records(req):
    """[(seq, batch, target, time ns, record, attrs)] of one OTLP request."""
    out = []
    for e in req.get("logs", []):
        a = e["attrs"]
        out.append((int(a["vpcprobe.seq"]["intValue"]), int(a["vpcprobe.batch"]["intValue"]),
                    a["target"]["stringValue"], int(e["record"]["timeUnixNano"]), e["record"], a))
    return out


def otlp_seqs(col):
    return [r[0] for req in col.accepted() for r in otlp_records(req)]


def no_errors(col):
    errs = [e for r in col.requests for e in r["errors"]]
    return check(not errs, "%s bodies pass the checker (%d requests)%s" % (
        col.format, len(col.requests), ": " + "; ".join(errs[:5]) if errs else ""))


def json_contiguous(batches):
    """Batch ids grow, and each batch holds exactly the records since the
    previous one: its id minus the previous id (ids are sequence numbers)."""
    ids = [b for b, _ in batches]
    grow = all(a < b for a, b in zip(ids, ids[1:]))
    sizes = all(len(batches[k][1]) == ids[k] - ids[k - 1] for k in range(1, len(batches)))
    return grow and sizes


def in_order(seqs):
    return all(a < b for a, b in zip(seqs, seqs[1:]))


def contiguous(seqs):
    return bool(seqs) and sorted(set(seqs)) == list(range(min(seqs), max(seqs) + 1))


# ---- spool files ----

# ---- the scenarios ----

def scraped(env, sample):
    """The value of one sample on the agent's /metrics; None when it is not
    there or the status server does not answer."""
    return metric(env.status_port, sample, timeout=5)


def delivery_state(env):
    """The delivery object of the agent's /api/v1/status, or {}."""
    try:
        status, _, body = request(env.status_port, "/api/v1/status", timeout=5)
        return json.loads(body).get("delivery", {}) if status == 200 else {}
    except (OSError, ValueError):
        return {}


def exported_losses(col, name, key):
    """{attribute value: count} of a loss counter in the collector's last
    accepted metrics export; None before one arrived."""
    ok = [m for m in col.metrics if m["status"] == 200 and name in m.get("metrics", {})]
    if not ok:
        return None
    kind, _, pts, _ = ok[-1]["metrics"][name]
    return {a.get(key, {}).get("stringValue"): v for a, v in pts} if kind == "sum" else None


def same_losses_exported(env, col, name, key, want, what):
    """The OTLP export carries the loss counter 'name' with exactly the
    counts /metrics shows ('want': {attribute value: count}, already seen
    there), cumulative and monotonic."""
    got = {}

    def arrived(ms):
        got["v"] = exported_losses(col, name, key)
        return got["v"] == want

    check(col.wait_metrics(arrived, timeout=15),
          "%s: the OTLP export's %s is %r, /metrics says %r" % (what, name, got.get("v"), want))
    scrape = {v: scraped(env, '%s{%s="%s"}' % (name, key, v)) for v in want}
    check(scrape == {v: float(n) for v, n in want.items()},
          "%s: /metrics still says %r beside the export" % (what, scrape))
    data = [m["metrics"][name][1] for m in col.metrics
            if m["status"] == 200 and name in m.get("metrics", {})]
    check(data and all(d.get("aggregationTemporality") == 2 and d.get("isMonotonic") is True
                       for d in data),
          "%s: %s exported as a cumulative monotonic sum" % (what, name))
    metrics_errors(col)


def scenario_json(meta):
    """json: order, batch ids, auth, instance metadata, SIGTERM."""
    env = Env(meta, "json")
    col = collector.Collector("json").start()
    agent = Agent(env.work, env.config(col.url))
    try:
        check(col.wait(lambda rs: len([r for r in rs if r["status"] == 200]) >= 4),
              "json: four batches arrive")
        batches = json_batches(col)
        no_errors(col)
        check(all(r["authorization"] == "Bearer " + TOKEN for r in col.requests),
              "json: Authorization: Bearer from token_file")
        check(json_contiguous(batches), "json: batch ids grow and no result is missing: %s"
              % [(b, len(rs)) for b, rs in batches])
        check(all(r["body"]["agent"] == "delivery-test" for r in col.accepted()), "json: agent name")
        inst = {"name": "diag-vm-7", "zone": "europe-west1-b", "project": "orders-prod",
                "network": "shared-vpc"}
        check(all(r["body"].get("instance") == inst for r in col.accepted()),
              "json: every report carries the instance from the metadata server: %r"
              % col.accepted()[0]["body"].get("instance"))
        recs = [x for _, rs in batches for x in rs]
        for target, verdict in (("up", "ok"), ("down", "refused")):
            mine = [x for x in recs if x["target"] == target]
            check(mine and all(x["verdict"] == verdict for x in mine) and
                  [x["time"] for x in mine] == sorted(x["time"] for x in mine),
                  "json: target '%s' results in order, %s" % (target, verdict))
        check(all(f == "Google" for _, f in meta.requests) and
              sum(1 for p, _ in meta.requests if p.endswith("/zone")) >= 2,
              "metadata: Metadata-Flavor: Google sent, the 503 on zone asked again")
        check(TOKEN not in agent.text(), "the token is never logged")
        check(agent.term() == 0, "json: SIGTERM exits 0 within the stop budget")
    finally:
        agent.close()
        col.stop()
        env.close()


def scenario_otlp(meta):
    """OTLP: every field checked; severity, attributes, resource, order."""
    env = Env(meta, "otlp")
    col = collector.Collector("otlp").start()
    start_ns = time.time_ns()
    agent = Agent(env.work, env.config(col.url, "otlp"))
    try:
        check(col.wait(lambda rs: len([r for r in rs if r["status"] == 200]) >= 3),
              "otlp: three requests arrive")
        no_errors(col)
        reqs = col.accepted()
        res = reqs[0]["logs"][0]["resource"]
        want = {"service.name": "vpcprobe", "host.name": "delivery-test", "cloud.provider": "gcp",
                "cloud.platform": "gcp_compute_engine", "cloud.account.id": "orders-prod",
                "cloud.availability_zone": "europe-west1-b", "cloud.region": "europe-west1",
                "gcp.gce.instance.name": "diag-vm-7", "gcp.gce.network": "shared-vpc"}
        got = {k: v.get("stringValue") for k, v in res.items()}
        check(all(got.get(k) == v for k, v in want.items()), "otlp: resource attributes %r" % got)
        recs = [r for q in reqs for r in otlp_records(q)]
        now_ns = time.time_ns()
        bad = []
        for seq, batch, target, t, rec, a in recs:
            verdict = a["verdict"]["stringValue"]
            port = env.up_port if target == "up" else env.down_port
            if rec["severityNumber"] != (9 if verdict == "ok" else 17):
                bad.append("severity %r for %s" % (rec["severityNumber"], verdict))
            if a["port"] != {"intValue": str(port)} or a["kind"] != {"stringValue": "tcp"}:
                bad.append("port/kind %r %r" % (a["port"], a["kind"]))
            if "doubleValue" not in a["timings_ms.total"] or not rec["body"]["stringValue"]:
                bad.append("timings_ms.total or body")
            if not start_ns - 10 ** 9 <= t <= now_ns + 10 ** 9:
                bad.append("timeUnixNano %d" % t)
            if "time" in a or "detail" in a or "timings_ms" in a:
                bad.append("time/detail/nested object as an attribute")
        check(not bad, "otlp: severity, port intValue, kind, timings, body, time: %s" % bad[:3])
        check(all(len({b for _, b, *_ in otlp_records(q)}) == 1 and
                  otlp_records(q)[0][1] == max(s for s, *_ in otlp_records(q)) for q in reqs),
              "otlp: the batch id is the last record's sequence number")
        seqs = otlp_seqs(col)
        check(in_order(seqs) and contiguous(seqs), "otlp: sequence numbers in order, none missing")
        for target in ("up", "down"):
            ts = [t for _, _, tg, t, *_ in recs if tg == target]
            check(ts == sorted(ts), "otlp: target '%s' in time order" % target)
        check(agent.term() == 0, "otlp: SIGTERM exits 0")
    finally:
        agent.close()
        col.stop()
        env.close()


def scenario_down_then_up(meta):
    """The collector is down, then comes up: nothing lost."""
    env = Env(meta, "down")
    port = free_port()
    url = "http://127.0.0.1:%d/v1/logs" % port
    agent = Agent(env.work, env.config(url, "otlp"), verbose=True)
    col = None
    try:
        check(agent.wait_log("stays spooled"), "down: the first failure is logged")
        check(agent.wait_log("target 'up' ", count=4), "down: results keep being produced")
        produced = agent.count("target 'up' ")
        col = collector.Collector("otlp", port=port).start()
        up_at = time.time()
        check(col.wait(lambda rs: sum(1 for r in rs if r["status"] == 200) >= 1, timeout=40),
              "down: the collector takes the spooled results once up")
        check(col.wait(lambda rs: sum(1 for r in rs if r["status"] == 200 for x in otlp_records(r)
                                      if x[2] == "up") >= produced, timeout=20),
              "down: every result of 'up' produced while it was down arrives (%d)" % produced)
        seqs = otlp_seqs(col)
        check(in_order(seqs) and contiguous(seqs), "down: in order, nothing missing")
        first = otlp_records(col.accepted()[0])
        check(min(r[3] for r in first) < up_at * 1e9,
              "down: the first batch holds results from before the collector came up")
        check(agent.wait_log("delivering again"), "down: recovery is logged")
        no_errors(col)
        check(agent.term() == 0, "down: SIGTERM exits 0")
    finally:
        agent.close()
        if col:
            col.stop()
        env.close()


def scenario_retries(meta):
    """json: 500 twice, then 429 with Retry-After: 2; the same batch each time."""
    env = Env(meta, "retry")
    col = collector.Collector("json").start()
    col.set_mode("accept", ["status:500", "status:500", "retry:429:2"])
    agent = Agent(env.work, env.config(col.url))
    try:
        check(col.wait(lambda rs: sum(1 for r in rs if r["status"] == 200) >= 2, timeout=40),
              "retry: batches arrive after 500, 500, 429")
        rs = col.requests
        check([r["status"] for r in rs[:4]] == [500, 500, 429, 200], "retry: the answers in order: %s"
              % [r["status"] for r in rs[:4]])
        check(len({r["body"]["batch"] for r in rs[:4]}) == 1 and
              all(r["body"]["results"] == rs[0]["body"]["results"] for r in rs[:4]),
              "retry: the same batch, same id and results, each time")
        check(rs[3]["t"] - rs[2]["t"] >= 1.9, "retry: Retry-After: 2 honoured (%.2f s)"
              % (rs[3]["t"] - rs[2]["t"]))
        check(json_contiguous(json_batches(col)), "retry: nothing lost")
        check(agent.count("HTTP 500; batch") == 1, "retry: the first failure logged once")
        no_errors(col)
        check(agent.term() == 0, "retry: SIGTERM exits 0")
    finally:
        agent.close()
        col.stop()
        env.close()


def scenario_otlp_answers(meta):
    """OTLP: partialSuccess, 400, a long 400, 500 are not retried; a dropped
    connection and 503 with an HTTP-date Retry-After are."""
    env = Env(meta, "answers")
    col = collector.Collector("otlp").start()
    script = ["partial:1", "status:400", "big:400", "status:500", "drop", "retrydate:503:2"]
    col.set_mode("accept", script)
    agent = Agent(env.work, env.config(col.url, "otlp"),
                  env_extra={"OTEL_METRIC_EXPORT_INTERVAL": "1000"})
    try:
        check(col.wait(lambda rs: len(rs) >= len(script) + 2, timeout=60),
              "answers: the script played out")
        rs = col.requests
        ids = [int(otlp_records(r)[0][1]) for r in rs]
        check(ids[1] > ids[0], "answers: a partialSuccess is acknowledged, not sent again")
        check(agent.wait_log("but rejected 1 of its"), "answers: the rejected count is logged")
        check(ids[2] > ids[1] and ids[3] > ids[2], "answers: a 400 sets the batch aside, the next goes")
        check(agent.count('with HTTP 400: {"error": "test answer 400"}') == 1,
              "answers: the 400 is logged once with the collector's answer")
        check(ids[4] > ids[3], "answers: an OTLP 500 is not retried (the specification's rule)")
        check(rs[2].get("answer_sent") is False, "answers: the agent stops reading a 16 MiB answer")
        cut = [l for _, l in agent.lines if "HTTP 400: {\"error\": \"xxx" in l]
        check(cut and cut[0].endswith("...; set aside, not sent again") and len(cut[0]) < 1024,
              "answers: the long answer is cut in the log")
        # What the collector refused shows on /metrics, for an alert: the
        # one record of the partialSuccess, the records of the batches the
        # two 400s and the 500 set aside.
        aside = sum(len(otlp_records(rs[i])) for i in (1, 2, 3))
        want = {'vpcprobe_reports_rejected_total{reason="partial"}': 1.0,
                'vpcprobe_reports_rejected_total{reason="set_aside"}': float(aside)}
        check(wait_for(lambda: all(scraped(env, k) == v for k, v in want.items()), timeout=10),
              "answers: /metrics counts %r: %r" % (want, {k: scraped(env, k) for k in want}))
        rej = delivery_state(env).get("rejected")
        check(rej == {"partial": 1, "set_aside": aside},
              "answers: /api/v1/status delivery.rejected is %r" % rej)
        same_losses_exported(env, col, "vpcprobe_reports_rejected_total", "reason",
                             {"partial": 1, "set_aside": aside}, "answers")
        check(ids[5] == ids[4], "answers: a dropped connection is retried with the same batch")
        check(ids[6] == ids[5] and rs[6]["t"] - rs[5]["t"] >= 0.9,
              "answers: 503 with an HTTP-date Retry-After is retried after it (%.2f s)"
              % (rs[6]["t"] - rs[5]["t"]))
        no_errors(col)
        check(agent.term() == 0, "answers: SIGTERM exits 0")
    finally:
        agent.close()
        col.stop()
        env.close()


def scenario_never_answers(meta):
    """A collector that accepts and never answers: retried, memory bounded."""
    env = Env(meta, "hang")
    col = collector.Collector("otlp", mode="hang").start()
    agent = Agent(env.work, env.config(col.url, "otlp", timeout_ms=300))
    try:
        rss = []
        for n in (1, 2, 3, 4):
            check(col.wait(lambda r: len(r) >= n, timeout=30), "hang: request %d sent" % n)
            rss.append(agent.rss_kb())
        ids = {otlp_records(r)[0][1] for r in col.requests}
        check(len(ids) == 1, "hang: the same batch is sent again after each timeout")
        check(max(rss) < RSS_BOUND_KB, "hang: RSS stays bounded: %s kB" % rss)
        col.set_mode("accept")
        check(col.wait(lambda r: sum(1 for x in r if x["status"] == 200) >= 2, timeout=40),
              "hang: delivered once the collector answers")
        seqs = otlp_seqs(col)
        check(contiguous(seqs) and in_order(seqs) and min(seqs) <= min(ids),
              "hang: nothing lost")
        check(agent.term() == 0, "hang: SIGTERM exits 0 with a request hanging")
    finally:
        agent.close()
        col.stop()
        env.close()


def scenario_kill9(meta):
    """kill -9 while the collector is down, restart: every result produced
    more than a second before the kill arrives."""
    env = Env(meta, "kill")
    port = free_port()
    down_url = "http://127.0.0.1:%d/v1/logs" % port
    agent = Agent(env.work, env.config(down_url, "otlp"), verbose=True)
    col = None
    try:
        check(agent.wait_log("target 'down' ", count=5), "kill: results are produced, collector down")
        killed_at = time.time()
        agent.kill9()
        # A result is logged just before it is spooled; those logged more than
        # a second before the kill must all come back.
        before = {t: agent.count("target '%s' " % t, before=killed_at - 1) for t in ("up", "down")}
        col = collector.Collector("otlp").start()
        agent = Agent(env.work, env.config(col.url, "otlp"), name="restarted")

        def got_all(rs):
            recs = [x for r in rs if r["status"] == 200 for x in otlp_records(r)]
            return all(sum(1 for x in recs if x[2] == t and x[3] < killed_at * 1e9) >= n
                       for t, n in before.items())
        check(col.wait(got_all, timeout=40), "kill: every result from before the kill arrives: %r" % before)
        seqs = otlp_seqs(col)
        check(contiguous(seqs) and in_order(seqs), "kill: in order, no gap across the restart")
        no_errors(col)
        check(agent.term() == 0, "kill: the restarted agent stops with 0")
    finally:
        agent.close()
        if col:
            col.stop()
        env.close()


def scenario_damaged_spool(meta):
    """A corrupt frame in the middle and a torn tail, injected into the spool
    between two runs: both found and counted, everything else delivered."""
    env = Env(meta, "damage")
    agent = Agent(env.work, env.config("http://127.0.0.1:%d/v1/logs" % free_port(), "otlp"), verbose=True)
    col = None
    try:
        check(agent.wait_log("target 'down' ", count=4), "damage: results spooled, collector down")
        check(agent.term() == 0, "damage: stopped")
        segs = spool_segments(env.state)
        fr = spool_frames(segs[-1])
        all_seqs = [seq for s in segs for _, _, seq in spool_frames(s)]
        check(len(fr) >= 5, "damage: the newest segment has %d frames" % len(fr))
        off, length, bad_seq = fr[len(fr) // 2]
        with open(segs[-1], "r+b") as f:
            f.seek(off + 20 + length // 2)
            b = f.read(1)
            f.seek(off + 20 + length // 2)
            f.write(bytes([b[0] ^ 0x40]))
            f.seek(0, 2)
            f.write(b"VPR1\x40\x02\x00\x00" + b"\x00" * 7)   # half a header: a torn write
        col = collector.Collector("otlp").start()
        agent = Agent(env.work, env.config(col.url, "otlp"), name="restarted",
                      env_extra={"OTEL_METRIC_EXPORT_INTERVAL": "1000"})
        check(agent.wait_log("corrupt frame at offset %d" % off), "damage: the corrupt frame is found and logged")
        check(agent.wait_log("cut a torn tail of 15 bytes"), "damage: the torn tail is cut and logged")
        want = {'vpcprobe_spool_frames_skipped_total{why="corrupt"}': 1.0,
                'vpcprobe_spool_frames_skipped_total{why="torn"}': 1.0}
        check(wait_for(lambda: all(scraped(env, k) == v for k, v in want.items()), timeout=10),
              "damage: /metrics counts one corrupt frame and one torn tail: %r"
              % {k: scraped(env, k) for k in want})
        skipped = delivery_state(env).get("spool_skipped")
        check(skipped == {"corrupt": 1, "torn": 1},
              "damage: /api/v1/status delivery.spool_skipped is %r" % skipped)
        same_losses_exported(env, col, "vpcprobe_spool_frames_skipped_total", "why",
                             {"corrupt": 1, "torn": 1}, "damage")
        want = set(all_seqs) - {bad_seq}
        check(col.wait(lambda rs: want <= {x[0] for r in rs if r["status"] == 200
                                           for x in otlp_records(r)}, timeout=40),
              "damage: every other spooled result arrives")
        seqs = otlp_seqs(col)
        check(bad_seq not in seqs and in_order(seqs) and
              sorted(set(seqs) | {bad_seq}) == list(range(min(seqs), max(seqs) + 1)),
              "damage: only the corrupt record is missing")
        no_errors(col)
        check(agent.term() == 0, "damage: SIGTERM exits 0")
    finally:
        agent.close()
        if col:
            col.stop()
        env.close()


def scenario_full(meta):
    """spool_max_mb 1, 300 targets, collector down: the oldest segments go,
    are counted, and the agent runs on; then what is left arrives."""
    env = Env(meta, "full")
    port = free_port()
    targets = [{"name": "t%03d" % i, "url": "tcp://127.0.0.1:%d" % env.down_port} for i in range(300)]
    cfg = env.config("http://127.0.0.1:%d/v1/logs" % port, "otlp", targets=targets, spool_max_mb=1)
    agent = Agent(env.work, cfg)
    col = None
    try:
        check(wait_for(lambda: spool_segments(env.state), timeout=30.0), "full: the spool has its first segment")
        first_seq = int(os.path.basename(spool_segments(env.state)[0])[:16], 16)
        check(agent.wait_log("is full", count=2, timeout=60), "full: the oldest segments are dropped")
        rss = agent.rss_kb()
        check(agent.proc.poll() is None, "full: the agent keeps running")
        check(rss < RSS_BOUND_KB, "full: RSS bounded (%d kB)" % rss)
        total = sum(os.path.getsize(p) for p in spool_segments(env.state))
        check(total <= 1024 * 1024, "full: the spool stays within spool_max_mb (%d bytes)" % total)
        col = collector.Collector("otlp", port=port).start()
        check(col.wait(lambda rs: sum(1 for r in rs if r["status"] == 200) >= 3, timeout=90),
              "full: delivery resumes")
        check(agent.term() == 0, "full: SIGTERM exits 0")
        dropped = sum(int(l.split(" with ")[1].split()[0]) for _, l in agent.lines if "is full" in l)
        seqs = otlp_seqs(col)
        missing = set(range(first_seq, max(seqs) + 1)) - set(seqs)
        check(in_order(seqs) and len(missing) == dropped,
              "full: what did not arrive is exactly what was counted as dropped (%d, %d)"
              % (len(missing), dropped))
        no_errors(col)
    finally:
        agent.close()
        if col:
            col.stop()
        env.close()


def scenario_reload(meta):
    """SIGHUP: the same collector settings keep the reporter; another
    collector gets a new one, and results go on without a gap."""
    env = Env(meta, "reload")
    a = collector.Collector("otlp").start()
    b = collector.Collector("otlp").start()
    agent = Agent(env.work, env.config(a.url, "otlp"))
    try:
        check(a.wait(lambda rs: len(rs) >= 2), "reload: collector A takes results")
        agent.signal(signal.SIGHUP)
        check(agent.wait_log("reloaded config"), "reload: the same config again")
        check(agent.count("reload: collector") == 0, "reload: the reporter is kept")
        n = len(a.requests)
        check(a.wait(lambda rs: len(rs) >= n + 1), "reload: A still takes results")
        with open(agent.cfg_path, "w") as f:
            json.dump(env.config(b.url, "otlp"), f)
        agent.signal(signal.SIGHUP)
        check(agent.wait_log("reload: collector '%s'" % b.url), "reload: a new collector, a new reporter")
        check(b.wait(lambda rs: len(rs) >= 2), "reload: collector B takes results")
        check(agent.term() == 0, "reload: SIGTERM exits 0")
        seqs = sorted(set(otlp_seqs(a)) | set(otlp_seqs(b)))
        check(contiguous(seqs), "reload: no gap between A and B")
        check(min(otlp_seqs(b)) > max(otlp_seqs(a)) - 500 and in_order(otlp_seqs(b)),
              "reload: B goes on where A stopped")
    finally:
        agent.close()
        a.stop()
        b.stop()
        env.close()


def scenario_bad_state_dir(meta):
    """state_dir that cannot be a directory: exit 2, the message names it."""
    env = Env(meta, "baddir")
    blocker = os.path.join(env.work, "not-a-dir")
    open(blocker, "w").close()
    cfg = env.config("http://127.0.0.1:%d/v1/logs" % free_port())
    cfg["agent"]["state_dir"] = os.path.join(blocker, "state")
    agent = Agent(env.work, cfg)
    try:
        rc = agent.proc.wait(timeout=10)
        agent.reader.join(timeout=5)
        check(rc == 2, "baddir: exit status 2 (got %r)" % rc)
        check("state_dir '%s/state'" % blocker in agent.text() and "Not a directory (errno 20)" in agent.text(),
              "baddir: the message names the directory and the errno: %r" % agent.text())
        cfg["agent"]["state_dir"] = env.state
        cfg["collector"]["token_file"] = os.path.join(env.work, "missing-token")
        agent2 = Agent(env.work, cfg, name="notoken")
        rc = agent2.proc.wait(timeout=10)
        agent2.reader.join(timeout=5)
        check(rc == 2 and "collector.token_file '%s/missing-token': No such file" % env.work in agent2.text(),
              "baddir: an unreadable token_file is exit 2 with its name")
        agent2.close()
    finally:
        agent.close()
        env.close()


# ---- OTLP metrics ----

BOUNDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
METRIC_NAMES = {"vpcprobe_probe_success": "gauge", "vpcprobe_probe_duration_seconds": "histogram",
                "vpcprobe_probes_total": "sum", "vpcprobe_reports_spooled_bytes": "gauge",
                "vpcprobe_reports_dropped_total": "sum",
                "vpcprobe_reports_rejected_total": "sum",
                "vpcprobe_spool_frames_skipped_total": "sum",
                "vpcprobe_metrics_exports_failed_total": "sum"}


def plain(attrs):
    """{key: AnyValue} as {key: python value} (intValue as int)."""
    out = {}
    for k, v in attrs.items():
        (kind, x), = v.items()
        out[k] = int(x) if kind == "intValue" else x
    return out


def points(export, name):
    """[(attrs, value)] of one metric of a checked export, attrs plain."""
    kind, data, pts, _ = export["metrics"][name]
    return [(plain(a), v) for a, v in pts]


def point(export, name, **attrs):
    got = [v for a, v in points(export, name) if a == attrs]
    return got[0] if len(got) == 1 else None


def raw_points(export, name):
    return export["metrics"][name][1]["dataPoints"]


def metrics_errors(col):
    errs = [e for r in col.metrics for e in r["errors"]]
    return check(not errs, "metrics bodies pass the checker (%d requests)%s" % (
        len(col.metrics), ": " + "; ".join(errs[:5]) if errs else ""))


def scenario_otlp_metrics(meta):
    """OTLP metrics every period (OTEL_METRIC_EXPORT_INTERVAL=1000): the
    values for an accepting listener and a refused port; counters that grow
    from a fixed start; failed exports counted, logged, sent again at the
    next period, while the logs go on; the final export at SIGTERM counts
    exactly the results the agent logged."""
    env = Env(meta, "metrics")
    col = collector.Collector("otlp").start()
    col.set_metrics_mode("status:503")
    agent = Agent(env.work, env.config(col.url, "otlp"), verbose=True,
                  env_extra={"OTEL_METRIC_EXPORT_INTERVAL": "1000"})
    try:
        check(col.wait_metrics(lambda ms: len(ms) >= 2), "metrics: exports arrive, answered 503")
        failed_at = col.metrics[0]["t"]
        check(col.wait(lambda rs: sum(1 for r in rs if r["status"] == 200 and r["t"] > failed_at) >= 2),
              "metrics: the logs are delivered while the metrics exports fail")
        check(agent.wait_log("metrics export failed: HTTP 503"), "metrics: the failure is logged")
        first = [l for _, l in agent.lines if "metrics export failed" in l][0]
        check("/v1/metrics" in first and "1 failed so far" in first and "sends them again" in first,
              "metrics: the log names the endpoint, the count and the next try: %r" % first)
        col.set_metrics_mode("accept")
        check(col.wait_metrics(lambda ms: sum(1 for m in ms if m["status"] == 200) >= 3),
              "metrics: exports are taken once the collector takes them")
        check(agent.wait_log("metrics delivered again"), "metrics: the recovery is logged")
        ms = list(col.metrics)
        metrics_errors(col)
        check(all(m["path"] == "/v1/metrics" and m["authorization"] == "Bearer " + TOKEN for m in ms),
              "metrics: POST /v1/metrics beside /v1/logs, with the bearer token")
        ok = [m for m in ms if m["status"] == 200]
        n_failed = sum(1 for m in ms if m["status"] != 200 and m["t"] < ok[0]["t"])
        check(point(ok[0], "vpcprobe_metrics_exports_failed_total") == n_failed >= 2,
              "metrics: the failed exports are counted (%r, %d answered 503)"
              % (point(ok[0], "vpcprobe_metrics_exports_failed_total"), n_failed))
        last = ok[-1]
        check({n: k for n, (k, *_) in last["metrics"].items()} == METRIC_NAMES,
              "metrics: the contract's metrics, each of its kind: %s" % sorted(last["metrics"]))
        res = {k: v.get("stringValue") for k, v in last["metrics"]["vpcprobe_probe_success"][3].items()}
        check(res.get("service.name") == "vpcprobe" and res.get("gcp.gce.instance.name") == "diag-vm-7",
              "metrics: the resource is the logs' one: %r" % res)
        up = {"target": "up", "kind": "tcp", "address": "127.0.0.1", "port": env.up_port}
        down = dict(up, target="down", port=env.down_port)
        check(sorted(points(last, "vpcprobe_probe_success"), key=lambda p: p[0]["target"]) ==
              [(down, 0), (up, 1)],
              "metrics: probe_success 1 for the listener, 0 for the refused port: %r"
              % points(last, "vpcprobe_probe_success"))
        totals = points(last, "vpcprobe_probes_total")
        check(sorted((a["target"], a["verdict"]) for a, _ in totals) == [("down", "refused"), ("up", "ok")]
              and all(v > 0 for _, v in totals),
              "metrics: probes_total only {up, ok} and {down, refused}: %r" % totals)
        sums = [m["metrics"]["vpcprobe_probes_total"][1] for m in ok]
        hists = [m["metrics"]["vpcprobe_probe_duration_seconds"][1] for m in ok]
        check(all(s["aggregationTemporality"] == 2 and s["isMonotonic"] is True for s in sums) and
              all(h["aggregationTemporality"] == 2 for h in hists),
              "metrics: sums and histograms cumulative, the sums monotonic")
        for t in ("up", "down"):
            series = [(int(p["startTimeUnixNano"]), int(p["asInt"])) for m in ok
                      for p in raw_points(m, "vpcprobe_probes_total")
                      if plain(collector.Checker().attributes("", p["attributes"]))["target"] == t]
            check(len({s for s, _ in series}) == 1 and
                  all(a <= b for (_, a), (_, b) in zip(series, series[1:])) and series[-1][1] > series[0][1],
                  "metrics: '%s' counts grow from one startTimeUnixNano: %r" % (t, [v for _, v in series]))
            h = point(last, "vpcprobe_probe_duration_seconds", target=t)
            n = sum(v for a, v in totals if a["target"] == t)
            # Each duration lies within its bucket: the sum between the
            # buckets' lower and upper bounds.
            lo = h and sum(c * ([0] + BOUNDS)[i] for i, c in enumerate(h["buckets"]) if c)
            hi = h and sum(c * (BOUNDS + [float("inf")])[i] for i, c in enumerate(h["buckets"]) if c)
            check(h and h["count"] == n and h["bounds"] == BOUNDS and len(h["buckets"]) == len(BOUNDS) + 1
                  and 0 < h["sum"] and lo <= h["sum"] <= hi,
                  "metrics: '%s' histogram: count %r = probes %d, the /metrics bounds, sum %r"
                  % (t, h and h["count"], n, h and h["sum"]))
        check(point(last, "vpcprobe_reports_dropped_total") == 0 and
              point(last, "vpcprobe_reports_spooled_bytes") >= 0,
              "metrics: nothing dropped, spooled bytes a gauge")
        n_before = len(col.metrics)
        check(agent.term() == 0, "metrics: SIGTERM exits 0")
        final = col.metrics[-1] if len(col.metrics) > n_before else None
        check(final and final["status"] == 200, "metrics: a last export at the stop")
        logged = {t: agent.count("target '%s' " % t) for t in ("up", "down")}
        got = final and {t: sum(v for a, v in points(final, "vpcprobe_probes_total") if a["target"] == t)
                         for t in ("up", "down")}
        check(got == logged, "metrics: the last export counts every result logged: %r, %r" % (got, logged))
        metrics_errors(col)
        no_errors(col)
    finally:
        agent.close()
        col.stop()
        env.close()


def scenario_metrics_stop(meta):
    """A stop while a metrics export is in flight: that export was built
    before the last results, so the final counts go in one more export
    after it answers (within the stop's 2 s). The collector holds one
    export unanswered until the agent has logged a result after it and
    then the stop; before, the held export was the last one and missed
    that result (and the metrics scenario's 'last export at the stop'
    failed whenever its SIGTERM fell inside an export)."""
    env = Env(meta, "mstop")
    col = collector.Collector("otlp").start()
    arrived, release = threading.Event(), threading.Event()
    hold = {"on": False}
    plain_answer = col.next_metrics_answer

    def held_answer():
        if hold["on"]:
            hold["on"] = False
            arrived.set()
            release.wait(20)
        return plain_answer()

    col.next_metrics_answer = held_answer
    agent = Agent(env.work, env.config(col.url, "otlp"), verbose=True,
                  env_extra={"OTEL_METRIC_EXPORT_INTERVAL": "1000"})
    try:
        check(col.wait_metrics(lambda ms: len(ms) >= 1), "metrics stop: exports arrive")
        hold["on"] = True
        check(arrived.wait(10), "metrics stop: the collector holds an export unanswered")
        held_at = len(col.metrics)
        n_up = agent.count("target 'up' ")
        check(agent.wait_log("target 'up' ", count=n_up + 1),
              "metrics stop: a result comes after the held export was built")
        agent.signal(signal.SIGTERM)
        check(agent.wait_log("stopping on"), "metrics stop: the agent is stopping")
        release.set()
        try:
            rc = agent.proc.wait(timeout=6)
        except subprocess.TimeoutExpired:
            rc = None
        agent.reader.join(timeout=5)
        check(rc == 0, "metrics stop: exit 0 (got %r)" % rc)
        ms = list(col.metrics)
        check(len(ms) >= held_at + 2 and all(m["status"] == 200 for m in ms[held_at:]),
              "metrics stop: after the held export (%d) one more, both taken: %d exports"
              % (held_at + 1, len(ms)))
        logged = {t: agent.count("target '%s' " % t) for t in ("up", "down")}
        got = {t: sum(v for a, v in points(ms[-1], "vpcprobe_probes_total") if a["target"] == t)
               for t in ("up", "down")} if ms else None
        check(got == logged, "metrics stop: the last export counts every result logged: %r, %r"
              % (got, logged))
        check("did not go within" not in agent.text(), "metrics stop: nothing cut by the stop's bound")
        metrics_errors(col)
    finally:
        release.set()
        agent.close()
        col.stop()
        env.close()


# ---- https ----

def make_certs(work):
    """The lab's certificates (tests/lab/tls_certs.sh): ca.pem, other-ca.pem,
    server.pem for 127.0.0.1; None without openssl."""
    if not shutil.which("openssl"):
        return None
    d = os.path.join(work, "certs")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lab", "tls_certs.sh")
    rc = subprocess.run(["bash", "-c", 'source "$1" && make_tls_certs "$2"', "sh", script, d]).returncode
    return d if rc == 0 else None


def scenario_https(meta):
    """An https collector: with ca_file naming the test's CA results arrive;
    with the wrong CA nothing is acknowledged, the log says the certificate
    could not be verified and the spool keeps the results, which arrive once
    a SIGHUP brings the right ca_file."""
    env = Env(meta, "https")
    certs = make_certs(env.work)
    if not check(certs, "https: openssl makes the test's CA and certificate"):
        env.close()
        return
    tls = (os.path.join(certs, "server.pem"), os.path.join(certs, "server.key"))
    ca, other = os.path.join(certs, "ca.pem"), os.path.join(certs, "other-ca.pem")
    col = collector.Collector("otlp", tls=tls).start()
    agent = Agent(env.work, env.config(col.url, "otlp", ca_file=ca))
    try:
        check(col.url.startswith("https://127.0.0.1:"), "https: the collector serves TLS")
        check(col.wait(lambda rs: sum(1 for r in rs if r["status"] == 200) >= 2),
              "https: results arrive with ca_file naming the test CA")
        seqs = otlp_seqs(col)
        check(in_order(seqs) and contiguous(seqs), "https: in order, nothing missing")
        no_errors(col)
        check(agent.term() == 0, "https: SIGTERM exits 0")
    finally:
        agent.close()
        col.stop()

    state = os.path.join(env.work, "state-wrong-ca")
    col = collector.Collector("otlp", tls=tls).start()
    cfg = env.config(col.url, "otlp", ca_file=other)
    cfg["agent"]["state_dir"] = state
    agent = Agent(env.work, cfg, name="wrong-ca", verbose=True)
    try:
        check(agent.wait_log("could not be verified"),
              "wrong CA: the log says the collector's certificate could not be verified")
        line = [l for _, l in agent.lines if "could not be verified" in l][0]
        check("ca_file '%s'" % other in line, "wrong CA: the log names ca_file: %r" % line)
        check(agent.wait_log("target 'up' ", count=4), "wrong CA: results keep being produced")
        check(col.tls_failures >= 1 and not col.requests and not col.metrics,
              "wrong CA: the handshake fails (%d), nothing reaches the collector, nothing is "
              "acknowledged" % col.tls_failures)
        n_frames = sum(len(spool_frames(s)) for s in spool_segments(state))
        check(n_frames >= agent.count("target 'up' ", before=time.time() - 1) +
              agent.count("target 'down' ", before=time.time() - 1),
              "wrong CA: the spool keeps the results (%d frames)" % n_frames)
        first_seq = spool_frames(spool_segments(state)[0])[0][2]
        fixed_at = time.time()
        before = {t: agent.count("target '%s' " % t, before=fixed_at - 1) for t in ("up", "down")}
        cfg["collector"]["ca_file"] = ca
        with open(agent.cfg_path, "w") as f:
            json.dump(cfg, f)
        agent.signal(signal.SIGHUP)
        check(agent.wait_log("reload: collector"), "wrong CA: SIGHUP takes the fixed ca_file")

        def got_all(rs):
            recs = [x for r in rs if r["status"] == 200 for x in otlp_records(r)]
            return all(sum(1 for x in recs if x[2] == t and x[3] < fixed_at * 1e9) >= n
                       for t, n in before.items())
        check(col.wait(got_all, timeout=40),
              "wrong CA: once fixed, every result spooled before arrives: %r" % before)
        seqs = otlp_seqs(col)
        check(in_order(seqs) and contiguous(seqs) and min(seqs) == first_seq,
              "wrong CA: in order from the first result spooled, nothing missing")
        no_errors(col)
        check(agent.term() == 0, "wrong CA: SIGTERM exits 0")
    finally:
        agent.close()
        col.stop()
        env.close()


SCENARIOS = [scenario_json, scenario_otlp, scenario_down_then_up, scenario_retries,
             scenario_otlp_answers, scenario_never_answers, scenario_kill9,
             scenario_damaged_spool, scenario_full, scenario_reload, scenario_bad_state_dir,
             scenario_otlp_metrics, scenario_metrics_stop, scenario_https]


def main():
    if not have_vpcprobe():
        return 1
    only = sys.argv[1:]
    for sc in SCENARIOS:
        if only and sc.__name__.replace("scenario_", "") not in only:
            continue
        meta = Metadata(METADATA, METADATA_BUSY_ONCE)
        print("# %s" % sc.__name__, flush=True)
        try:
            sc(meta)
        except Exception:
            traceback.print_exc()
            check(False, "%s raised" % sc.__name__)
        finally:
            meta.stop()
    summary()
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
