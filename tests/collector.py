#!/usr/bin/env python3
"""A collector for the delivery tests: python3 stdlib only, 127.0.0.1 only.

It takes the agent's POSTs, checks them strictly, records every one (in
memory and, with a record file, as JSON lines), and answers as it is told:

    accept          200 (OTLP: an empty ExportLogsServiceResponse)
    partial:N       200 with a partialSuccess rejecting N log records
    status:CODE     CODE with a short body (500, 400, 503, ...)
    big:CODE        CODE with a 16 MiB body, to see the agent stop reading
    retry:CODE:S    CODE with Retry-After: S (seconds)
    retrydate:CODE:S  CODE with Retry-After as an HTTP date S seconds ahead
    drop            close the connection without an answer
    hang            read the request, never answer (until stop())
    drip:MS         200 with an empty answer, sent one byte every MS ms
    garbage:CODE    CODE with 4 KiB of binary garbage (NULs, invalid UTF-8,
                    escapes) labelled application/json
    endless:CODE    CODE with a body that never ends (no Content-Length,
                    sent until the client goes away or stop())

A script of answers is played first, then the default mode.

The OTLP check follows OTLP/HTTP with the JSON encoding (the proto3 JSON
mapping): POST to /v1/logs, Content-Type application/json, lowerCamelCase
keys only, 64-bit integers (timeUnixNano, observedTimeUnixNano, intValue) as
decimal strings, severityNumber an integer of the enum, every attribute a
KeyValue whose value is an AnyValue with exactly one field of the right
type. Every field is checked, not only the presence of keys.

With OTLP it also takes POST /v1/metrics (the logs path with /v1/logs
replaced), kept apart in .metrics and answered by a mode of its own
(set_metrics_mode), and checked as strictly: an ExportMetricsServiceRequest
of resourceMetrics/scopeMetrics/metrics, each metric exactly one of gauge,
sum, histogram with data points whose 64-bit fields (timeUnixNano,
startTimeUnixNano, asInt, count, bucketCounts) are decimal strings,
aggregationTemporality the enum's integer, explicitBounds increasing and one
fewer than bucketCounts, whose sum is count, and no series twice.

With tls=(cert, key) it serves HTTPS; a client that fails the handshake
(the agent with the wrong CA) is counted in .tls_failures.

Standalone: collector.py [--format json|otlp] [--mode MODE] [--record FILE]
prints the port it listens on and serves until killed."""

import argparse
import email.utils
import json
import re
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
UINT = re.compile(r"^(0|[1-9][0-9]*)$")
INT = re.compile(r"^-?(0|[1-9][0-9]*)$")

LOG_RECORD_KEYS = {"timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText",
                   "body", "attributes", "droppedAttributesCount", "flags", "traceId", "spanId",
                   "eventName"}
ANY_VALUE_KEYS = {"stringValue", "boolValue", "intValue", "doubleValue", "arrayValue",
                  "kvlistValue", "bytesValue"}
METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]{0,254}$")
METRIC_KEYS = {"name", "description", "unit", "gauge", "sum", "histogram",
               "exponentialHistogram", "summary", "metadata"}
METRIC_DATA = {"gauge", "sum", "histogram", "exponentialHistogram", "summary"}
NUMBER_POINT_KEYS = {"attributes", "startTimeUnixNano", "timeUnixNano", "asDouble", "asInt",
                     "exemplars", "flags"}
HISTOGRAM_POINT_KEYS = {"attributes", "startTimeUnixNano", "timeUnixNano", "count", "sum",
                        "bucketCounts", "explicitBounds", "exemplars", "flags", "min", "max"}
SEVERITY_TEXT = {range(1, 5): "TRACE", range(5, 9): "DEBUG", range(9, 13): "INFO",
                 range(13, 17): "WARN", range(17, 21): "ERROR", range(21, 25): "FATAL"}


class Checker:
    """Collects every way a request breaks the OTLP/HTTP JSON rules."""

    def __init__(self):
        self.errors = []

    def fail(self, where, what):
        self.errors.append("%s: %s" % (where, what))

    def keys(self, where, obj, allowed, required=()):
        if not isinstance(obj, dict):
            self.fail(where, "expected an object, got %r" % type(obj).__name__)
            return False
        for k in obj:
            if not CAMEL.match(k):
                self.fail(where, "key %r is not lowerCamelCase" % k)
            elif k not in allowed:
                self.fail(where, "unknown key %r" % k)
        for k in required:
            if k not in obj:
                self.fail(where, "missing %r" % k)
        return True

    def uint64_string(self, where, v):
        if not isinstance(v, str) or not UINT.match(v) or int(v) >= 2 ** 64:
            self.fail(where, "expected a uint64 as a decimal string, got %r" % (v,))
            return None
        return int(v)

    def any_value(self, where, v):
        if not self.keys(where, v, ANY_VALUE_KEYS):
            return
        if len(v) != 1:
            self.fail(where, "an AnyValue holds exactly one field, got %s" % sorted(v))
            return
        (k, x), = v.items()
        if k == "stringValue" and not isinstance(x, str):
            self.fail(where, "stringValue is not a string: %r" % (x,))
        elif k == "boolValue" and not isinstance(x, bool):
            self.fail(where, "boolValue is not a boolean: %r" % (x,))
        elif k == "intValue":
            if not isinstance(x, str) or not INT.match(x) or not -2 ** 63 <= int(x) < 2 ** 63:
                self.fail(where, "intValue must be an int64 as a decimal string, got %r" % (x,))
        elif k == "doubleValue" and (isinstance(x, bool) or not isinstance(x, (int, float))):
            self.fail(where, "doubleValue is not a number: %r" % (x,))
        elif k == "bytesValue" and not isinstance(x, str):
            self.fail(where, "bytesValue is not base64 text: %r" % (x,))
        elif k == "arrayValue":
            if self.keys(where + ".arrayValue", x, {"values"}):
                for i, e in enumerate(x.get("values", [])):
                    self.any_value("%s.arrayValue.values[%d]" % (where, i), e)
        elif k == "kvlistValue":
            if self.keys(where + ".kvlistValue", x, {"values"}):
                self.attributes(where + ".kvlistValue.values", x.get("values", []))

    def attributes(self, where, attrs):
        """A list of KeyValue; returns {key: AnyValue}."""
        out = {}
        if not isinstance(attrs, list):
            self.fail(where, "expected a list of KeyValue, got %r" % type(attrs).__name__)
            return out
        for i, kv in enumerate(attrs):
            w = "%s[%d]" % (where, i)
            if not self.keys(w, kv, {"key", "value"}, ("key", "value")):
                continue
            key = kv.get("key")
            if not isinstance(key, str) or not key:
                self.fail(w, "key must be a non-empty string, got %r" % (key,))
                continue
            if key in out:
                self.fail(w, "key %r appears twice" % key)
            self.any_value(w + ".value", kv.get("value"))
            out[key] = kv.get("value")
        return out

    def log_record(self, where, rec):
        if not self.keys(where, rec, LOG_RECORD_KEYS,
                         ("timeUnixNano", "severityNumber", "body", "attributes")):
            return None
        for k in ("timeUnixNano", "observedTimeUnixNano"):
            if k in rec:
                self.uint64_string("%s.%s" % (where, k), rec[k])
        sev = rec.get("severityNumber")
        if isinstance(sev, bool) or not isinstance(sev, int) or not 1 <= sev <= 24:
            self.fail(where + ".severityNumber", "expected the enum's integer 1..24, got %r" % (sev,))
        elif "severityText" in rec:
            want = [t for r, t in SEVERITY_TEXT.items() if sev in r][0]
            if rec["severityText"] != want:
                self.fail(where + ".severityText", "%r does not go with severityNumber %d"
                          % (rec["severityText"], sev))
        self.any_value(where + ".body", rec.get("body"))
        return self.attributes(where + ".attributes", rec.get("attributes"))

    def export(self, body):
        """Checks an ExportLogsServiceRequest; returns [(resource attrs, record, attrs)]."""
        out = []
        if not self.keys("$", body, {"resourceLogs"}, ("resourceLogs",)):
            return out
        rls = body.get("resourceLogs")
        if not isinstance(rls, list) or not rls:
            self.fail("resourceLogs", "expected a non-empty list")
            return out
        for i, rl in enumerate(rls):
            w = "resourceLogs[%d]" % i
            if not self.keys(w, rl, {"resource", "scopeLogs", "schemaUrl"}, ("resource", "scopeLogs")):
                continue
            res = rl.get("resource")
            rattrs = {}
            if self.keys(w + ".resource", res, {"attributes", "droppedAttributesCount"}, ("attributes",)):
                rattrs = self.attributes(w + ".resource.attributes", res.get("attributes"))
            for j, sl in enumerate(rl.get("scopeLogs") or []):
                ws = "%s.scopeLogs[%d]" % (w, j)
                if not self.keys(ws, sl, {"scope", "logRecords", "schemaUrl"}, ("logRecords",)):
                    continue
                if "scope" in sl and self.keys(ws + ".scope", sl["scope"],
                                               {"name", "version", "attributes", "droppedAttributesCount"}):
                    for k in ("name", "version"):
                        if k in sl["scope"] and not isinstance(sl["scope"][k], str):
                            self.fail(ws + ".scope." + k, "not a string")
                for k, rec in enumerate(sl.get("logRecords") or []):
                    attrs = self.log_record("%s.logRecords[%d]" % (ws, k), rec)
                    if attrs is not None:
                        out.append((rattrs, rec, attrs))
        return out


class MetricsChecker(Checker):
    """The OTLP metrics data model in the JSON encoding, field by field."""

    def number(self, where, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(where, "expected a JSON number, got %r" % (v,))
            return None
        return v

    def times(self, where, p, start_required):
        t = self.uint64_string(where + ".timeUnixNano", p.get("timeUnixNano"))
        if "startTimeUnixNano" in p:
            st = self.uint64_string(where + ".startTimeUnixNano", p["startTimeUnixNano"])
            if st is not None and t is not None and st > t:
                self.fail(where, "startTimeUnixNano %d after timeUnixNano %d" % (st, t))
        elif start_required:
            self.fail(where, "a cumulative point needs startTimeUnixNano")

    def number_point(self, where, p, cumulative):
        """Returns (attrs, value) of a NumberDataPoint."""
        if not self.keys(where, p, NUMBER_POINT_KEYS, ("timeUnixNano",)):
            return None
        self.times(where, p, cumulative)
        values = [k for k in ("asInt", "asDouble") if k in p]
        value = None
        if len(values) != 1:
            self.fail(where, "a NumberDataPoint holds exactly one of asInt, asDouble, got %s" % values)
        elif values[0] == "asInt":
            x = p["asInt"]
            if not isinstance(x, str) or not INT.match(x) or not -2 ** 63 <= int(x) < 2 ** 63:
                self.fail(where + ".asInt", "expected an int64 as a decimal string, got %r" % (x,))
            else:
                value = int(x)
        else:
            value = self.number(where + ".asDouble", p["asDouble"])
        return self.attributes(where + ".attributes", p.get("attributes", [])), value

    def histogram_point(self, where, p):
        """Returns (attrs, {count, sum, buckets, bounds})."""
        if not self.keys(where, p, HISTOGRAM_POINT_KEYS, ("timeUnixNano", "count")):
            return None
        self.times(where, p, True)
        count = self.uint64_string(where + ".count", p.get("count"))
        buckets = p.get("bucketCounts", [])
        bounds = p.get("explicitBounds", [])
        if not isinstance(buckets, list) or not isinstance(bounds, list):
            self.fail(where, "bucketCounts and explicitBounds must be lists")
            return None
        counts = [self.uint64_string("%s.bucketCounts[%d]" % (where, i), b)
                  for i, b in enumerate(buckets)]
        nums = [self.number("%s.explicitBounds[%d]" % (where, i), b) for i, b in enumerate(bounds)]
        if buckets and len(buckets) != len(bounds) + 1:
            self.fail(where, "%d bucketCounts for %d explicitBounds (one more expected)"
                      % (len(buckets), len(bounds)))
        if None not in nums and any(a >= b for a, b in zip(nums, nums[1:])):
            self.fail(where + ".explicitBounds", "not strictly increasing: %r" % (nums,))
        if None not in counts and count is not None and buckets and sum(counts) != count:
            self.fail(where, "bucketCounts add up to %d, count is %d" % (sum(counts), count))
        total = self.number(where + ".sum", p["sum"]) if "sum" in p else None
        if total is not None and total < 0:
            self.fail(where + ".sum", "negative sum %r for durations" % (total,))
        return (self.attributes(where + ".attributes", p.get("attributes", [])),
                {"count": count, "sum": total, "buckets": counts, "bounds": nums})

    def metric(self, where, m):
        """Returns (name, kind, data, [(attrs, value)])."""
        if not self.keys(where, m, METRIC_KEYS, ("name",)):
            return None
        name = m.get("name")
        if not isinstance(name, str) or not METRIC_NAME.match(name):
            self.fail(where + ".name", "not an instrument name: %r" % (name,))
        for k in ("description", "unit"):
            if k in m and not isinstance(m[k], str):
                self.fail(where + "." + k, "not a string")
        kinds = [k for k in METRIC_DATA if k in m]
        if len(kinds) != 1:
            self.fail(where, "a Metric holds exactly one data field, got %s" % kinds)
            return None
        kind = kinds[0]
        data = m[kind]
        wd = "%s.%s" % (where, kind)
        allowed = {"gauge": {"dataPoints"}, "sum": {"dataPoints", "aggregationTemporality", "isMonotonic"},
                   "histogram": {"dataPoints", "aggregationTemporality"}}.get(kind)
        if allowed is None:
            self.fail(wd, "vpcprobe sends no %s" % kind)
            return None
        if not self.keys(wd, data, allowed, ("dataPoints",)):
            return None
        cumulative = False
        if kind != "gauge":
            t = data.get("aggregationTemporality")
            if isinstance(t, bool) or t not in (1, 2):
                self.fail(wd + ".aggregationTemporality", "expected the enum's integer 1 or 2, got %r" % (t,))
            cumulative = t == 2
        if kind == "sum" and not isinstance(data.get("isMonotonic", False), bool):
            self.fail(wd + ".isMonotonic", "not a boolean")
        points = []
        seen = set()
        for i, p in enumerate(data.get("dataPoints") or []):
            wp = "%s.dataPoints[%d]" % (wd, i)
            got = self.histogram_point(wp, p) if kind == "histogram" else self.number_point(wp, p, cumulative)
            if got is None:
                continue
            key = json.dumps(got[0], sort_keys=True)
            if key in seen:
                self.fail(wp, "the attribute set %s appears twice in one metric" % key)
            seen.add(key)
            points.append(got)
        return name, kind, data, points

    def metrics_export(self, body):
        """Checks an ExportMetricsServiceRequest; returns {name: (kind, data,
        [(attrs, value)], resource attrs)}."""
        out = {}
        if not self.keys("$", body, {"resourceMetrics"}, ("resourceMetrics",)):
            return out
        rms = body.get("resourceMetrics")
        if not isinstance(rms, list) or not rms:
            self.fail("resourceMetrics", "expected a non-empty list")
            return out
        for i, rm in enumerate(rms):
            w = "resourceMetrics[%d]" % i
            if not self.keys(w, rm, {"resource", "scopeMetrics", "schemaUrl"}, ("resource", "scopeMetrics")):
                continue
            res = rm.get("resource")
            rattrs = {}
            if self.keys(w + ".resource", res, {"attributes", "droppedAttributesCount"}, ("attributes",)):
                rattrs = self.attributes(w + ".resource.attributes", res.get("attributes"))
            for j, sm in enumerate(rm.get("scopeMetrics") or []):
                ws = "%s.scopeMetrics[%d]" % (w, j)
                if not self.keys(ws, sm, {"scope", "metrics", "schemaUrl"}, ("metrics",)):
                    continue
                if "scope" in sm and self.keys(ws + ".scope", sm["scope"],
                                               {"name", "version", "attributes", "droppedAttributesCount"}):
                    for k in ("name", "version"):
                        if k in sm["scope"] and not isinstance(sm["scope"][k], str):
                            self.fail(ws + ".scope." + k, "not a string")
                for k, m in enumerate(sm.get("metrics") or []):
                    got = self.metric("%s.metrics[%d]" % (ws, k), m)
                    if got is None:
                        continue
                    name, kind, data, points = got
                    if name in out:
                        self.fail("%s.metrics[%d]" % (ws, k), "metric %r twice" % name)
                    out[name] = (kind, data, points, rattrs)
        return out


def check_json_envelope(body):
    errors = []
    if not isinstance(body, dict):
        return ["$: expected an object"]
    extra = set(body) - {"agent", "batch", "results", "instance"}
    if extra:
        errors.append("$: unknown keys %s" % sorted(extra))
    if not isinstance(body.get("agent"), str):
        errors.append("agent: expected a string")
    if isinstance(body.get("batch"), bool) or not isinstance(body.get("batch"), int) or body["batch"] <= 0:
        errors.append("batch: expected a positive integer")
    if not isinstance(body.get("results"), list) or not body["results"]:
        errors.append("results: expected a non-empty list")
    else:
        for i, r in enumerate(body["results"]):
            if not isinstance(r, dict) or not {"time", "agent", "target", "verdict"} <= set(r):
                errors.append("results[%d]: not a result record" % i)
    return errors


class Collector:
    """The server and what it saw. Thread-safe enough for the tests: the
    handler threads append under a lock and notify waiters."""

    def __init__(self, fmt="json", mode="accept", record=None, path="/v1/logs", port=0, tls=None):
        self.format = fmt
        self.mode = mode
        self.script = []
        self.record_path = record
        self.path = path
        self.requests = []      # every request: dict(t, status, body, errors, ...)
        self.lock = threading.Condition()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d%s" % (self.port, path)
        # OTLP metrics: their own list and answers, so that the logs'
        # scripts and counts stay what the log tests expect.
        self.metrics_path = path[:-len("/v1/logs")] + "/v1/metrics" if path.endswith("/v1/logs") else None
        self.metrics = []
        self.metrics_mode = "accept"
        self.metrics_script = []
        self.tls_failures = 0
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            # The handshake in the handler's thread, not in accept(): one
            # client that stalls it must not stop the others.
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
            self.url = "https://127.0.0.1:%d%s" % (self.port, path)
            loud = self.server.handle_error

            def quiet(request, client_address):
                # A failed handshake is what the wrong-CA test expects.
                if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
                    loud(request, client_address)
            self.server.handle_error = quiet
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def set_mode(self, mode, script=()):
        with self.lock:
            self.mode = mode
            self.script = list(script)

    def next_answer(self):
        with self.lock:
            return self.script.pop(0) if self.script else self.mode

    def set_metrics_mode(self, mode, script=()):
        with self.lock:
            self.metrics_mode = mode
            self.metrics_script = list(script)

    def next_metrics_answer(self):
        with self.lock:
            return self.metrics_script.pop(0) if self.metrics_script else self.metrics_mode

    def add_metrics(self, entry):
        with self.lock:
            self.metrics.append(entry)
            self.lock.notify_all()

    def wait_metrics(self, pred, timeout=30.0):
        """Waits until pred(metrics requests) is true; returns whether it became so."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred(self.metrics):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def tls_failed(self):
        with self.lock:
            self.tls_failures += 1
            self.lock.notify_all()

    def add(self, entry):
        with self.lock:
            self.requests.append(entry)
            if self.record_path:
                with open(self.record_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")
            self.lock.notify_all()

    def wait(self, pred, timeout=30.0):
        """Waits until pred(requests) is true; returns whether it became so."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not pred(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def accepted(self):
        """The requests answered 2xx, in arrival order."""
        with self.lock:
            return [r for r in self.requests if 200 <= r["status"] < 300]

    def _handler(self):
        col = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def setup(self):
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.settimeout(10)
                    try:
                        self.request.do_handshake()
                    except (ssl.SSLError, OSError):
                        col.tls_failed()
                        raise
                    self.request.settimeout(None)
                super().setup()

            def do_GET(self):
                self.send_error(405)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if col.format == "otlp" and col.metrics_path and self.path == col.metrics_path:
                    self.metrics_post(raw)
                    return
                entry = {"t": time.time(), "path": self.path,
                         "content_type": self.headers.get("Content-Type"),
                         "authorization": self.headers.get("Authorization"),
                         "errors": [], "body": None, "status": 0}
                errors = entry["errors"]
                if self.path != col.path:
                    errors.append("path %r, expected %r" % (self.path, col.path))
                if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                    errors.append("Content-Type %r, expected application/json"
                                  % self.headers.get("Content-Type"))
                try:
                    entry["body"] = json.loads(raw)
                except ValueError as e:
                    errors.append("body is not JSON: %s" % e)
                if entry["body"] is not None:
                    if col.format == "otlp":
                        c = Checker()
                        entry["logs"] = [{"resource": ra, "record": rec, "attrs": at}
                                         for ra, rec, at in c.export(entry["body"])]
                        errors.extend(c.errors)
                    else:
                        errors.extend(check_json_envelope(entry["body"]))
                self.answer(col.next_answer(), entry)

            def metrics_post(self, raw):
                entry = {"t": time.time(), "path": self.path,
                         "authorization": self.headers.get("Authorization"),
                         "errors": [], "body": None, "metrics": {}, "status": 0}
                if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
                    entry["errors"].append("Content-Type %r, expected application/json"
                                           % self.headers.get("Content-Type"))
                try:
                    entry["body"] = json.loads(raw)
                except ValueError as e:
                    entry["errors"].append("body is not JSON: %s" % e)
                if entry["body"] is not None:
                    c = MetricsChecker()
                    entry["metrics"] = c.metrics_export(entry["body"])
                    entry["errors"].extend(c.errors)
                mode = col.next_metrics_answer()
                entry["mode"] = mode
                parts = mode.split(":")
                code, body = 200, "{}"
                if parts[0] == "status":
                    code, body = int(parts[1]), json.dumps({"error": "test answer %s" % parts[1]})
                elif parts[0] == "partial":
                    body = json.dumps({"partialSuccess": {"rejectedDataPoints": parts[1],
                                                          "errorMessage": "the test rejects some"}})
                entry["status"] = code
                col.add_metrics(entry)
                try:
                    self.reply(code, body)
                except OSError:
                    self.close_connection = True

            def reply(self, code, body, headers=()):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def answer(self, mode, entry):
                parts = mode.split(":")
                entry["mode"] = mode
                if parts[0] == "drop":
                    col.add(entry)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if parts[0] == "hang":
                    col.add(entry)
                    col.stopping.wait()
                    self.close_connection = True
                    return
                if parts[0] in ("drip", "endless", "garbage"):
                    self.misbehave(parts, entry)
                    return
                code, body, headers = 200, "{}", []
                if parts[0] == "partial":
                    body = json.dumps({"partialSuccess": {"rejectedLogRecords": parts[1],
                                                          "errorMessage": "the test rejects some"}})
                elif parts[0] == "status":
                    code, body = int(parts[1]), json.dumps({"error": "test answer %s" % parts[1]})
                elif parts[0] in ("retry", "retrydate"):
                    code, body = int(parts[1]), '{"error": "slow down"}'
                    after = int(parts[2])
                    value = str(after) if parts[0] == "retry" else \
                        email.utils.formatdate(time.time() + after, usegmt=True)
                    headers.append(("Retry-After", value))
                elif parts[0] == "big":
                    code = int(parts[1])
                    body = b'{"error": "' + b"x" * (16 * 1024 * 1024) + b'"}'
                entry["status"] = code
                col.add(entry)
                try:
                    self.reply(code, body, headers)
                    entry["answer_sent"] = True
                except OSError:
                    entry["answer_sent"] = False    # the agent stopped reading
                    self.close_connection = True

            def misbehave(self, parts, entry):
                """The answers of a collector that misbehaves (tests/faults.py)."""
                code = 200 if parts[0] == "drip" else int(parts[1])
                entry["status"] = code
                col.add(entry)
                self.close_connection = True
                try:
                    if parts[0] == "drip":
                        data = ("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                "Content-Length: 2\r\n\r\n{}").encode()
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            if col.stopping.wait(int(parts[1]) / 1000):
                                break
                    elif parts[0] == "garbage":
                        junk = bytes(range(256)) * 14 + b"\x1b[31m<script>\xff\xfe\x00"
                        self.reply(code, junk[:4096], [("X-Garbage", "1")])
                    else:
                        self.send_response(code)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        chunk = b'{"partialSuccess": ' + b"[" * 65536
                        while not col.stopping.is_set():
                            self.wfile.write(chunk)
                    entry["answer_sent"] = True
                except OSError:
                    entry["answer_sent"] = False    # the agent stopped reading

        return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--format", choices=("json", "otlp"), default="json")
    ap.add_argument("--mode", default="accept")
    ap.add_argument("--record")
    args = ap.parse_args()
    col = Collector(args.format, args.mode, args.record).start()
    print(col.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        col.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
