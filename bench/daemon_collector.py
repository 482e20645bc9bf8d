#!/usr/bin/env python3
"""The collector of the daemon and page benchmarks: python3 stdlib only.

    daemon_collector.py OUT.jsonl [--bind ADDR]

Listens on ADDR (default 127.0.0.1), port 0, prints "ready PORT" and then
accepts every POST of the agent's "json" format with 200 "{}". Each result
record is appended to OUT.jsonl as one line holding what the benchmarks
need: target, time, verdict, reason, timings_ms.total, the batch id and the
arrival time. A body that is not the json envelope gets 400 and a line
{"bad": "..."} in OUT, so a broken agent shows in the numbers instead of
vanishing. Runs until killed (SIGTERM or SIGINT), then flushes OUT.

tests/collector.py checks every field and keeps every request in memory; a
10-minute run at 100 results a second wants neither, so the benchmarks use
this one."""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY_MAX = 64 * 1024 * 1024


def main():
    if len(sys.argv) not in (2, 4) or (len(sys.argv) == 4 and sys.argv[2] != "--bind"):
        sys.exit("usage: daemon_collector.py OUT.jsonl [--bind ADDR]")
    bind = sys.argv[3] if len(sys.argv) == 4 else "127.0.0.1"
    out = open(sys.argv[1], "a", buffering=1024 * 1024)
    lock = threading.Lock()

    def write(lines):
        with lock:
            out.write("".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def answer(self, code, body):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            now = time.time()
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > BODY_MAX:
                write([{"bad": "Content-Length %r" % self.headers.get("Content-Length")}])
                self.close_connection = True
                self.answer(400, '{"error": "bad length"}')
                return
            try:
                body = json.loads(self.rfile.read(length))
                results = body["results"]
                batch = body["batch"]
                lines = [{"target": r["target"], "time": r["time"], "verdict": r["verdict"],
                          "reason": r.get("reason"),
                          "total": (r.get("timings_ms") or {}).get("total"),
                          "batch": batch, "arrived": round(now, 3)} for r in results]
            except (ValueError, KeyError, TypeError) as e:
                write([{"bad": "not a json-format batch: %s" % e}])
                self.answer(400, '{"error": "not a batch"}')
                return
            write(lines)
            self.answer(200, "{}")

        def do_GET(self):
            self.send_error(405)

    server = ThreadingHTTPServer((bind, 0), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print("ready", server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    with lock:
        out.flush()
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
