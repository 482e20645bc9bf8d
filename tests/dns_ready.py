#!/usr/bin/env python3
"""dns_ready.py PORT NAME [TRIES]: a bounded readiness check for a DNS
server the test started on 127.0.0.1:PORT. Sends one A query for NAME every
100 ms, at most TRIES times (default 100); exits 0 at the first answer with
the query's id, 1 if none came."""
import socket
import sys

port, name = int(sys.argv[1]), sys.argv[2].encode()
tries = int(sys.argv[3]) if len(sys.argv) > 3 else 100
qname = b"".join(bytes([len(label)]) + label for label in name.split(b".")) + b"\0"
q = bytes([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) + qname + bytes([0, 1, 0, 1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.1)
for _ in range(tries):
    try:
        s.sendto(q, ("127.0.0.1", port))
        if s.recv(512)[:2] == q[:2]:
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)
