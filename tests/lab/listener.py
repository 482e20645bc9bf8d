#!/usr/bin/env python3
"""Tiny TCP listener for the vpcprobe tests (stdlib only).

Usage: listener.py PORT [ADDR...]   (default ADDR: 0.0.0.0 and ::)

Binds every ADDR (IPv6 sockets with IPV6_V6ONLY=1, so 0.0.0.0 and :: can
coexist), listens, then prints "ready PORT" on stdout and flushes. PORT is
the bound port, so "0" picks a free one (all addresses then share the port
the first one got). After that it accepts connections and closes them at
once, until it is killed.
"""
import selectors
import socket
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: listener.py PORT [ADDR...]")
    port = int(sys.argv[1])
    addrs = sys.argv[2:] or ["0.0.0.0", "::"]
    sel = selectors.DefaultSelector()
    for addr in addrs:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        s.listen(128)
        port = s.getsockname()[1]
        sel.register(s, selectors.EVENT_READ)
    print("ready", port, flush=True)
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
