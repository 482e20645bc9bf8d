#!/usr/bin/env python3
"""bench/listeners.py ADDR LO-HI: the benchmark lab's accepted ports.

Listens on every port from LO to HI of ADDR (backlog 4096), prints "ready"
on stdout once all are bound, then accepts connections and closes them at
once, until it is killed. Stdlib only."""
import resource
import selectors
import socket
import sys


def main():
    if len(sys.argv) != 3 or "-" not in sys.argv[2]:
        sys.exit("usage: listeners.py ADDR LO-HI")
    addr = sys.argv[1]
    lo, hi = (int(x) for x in sys.argv[2].split("-", 1))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sel = selectors.DefaultSelector()
    for port in range(lo, hi + 1):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(4096)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            try:
                conn, _ = key.fileobj.accept()
                conn.close()
            except OSError:
                pass


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
