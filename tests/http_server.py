#!/usr/bin/env python3
"""HTTP and HTTPS servers that misbehave on purpose, for tests/lab/http.sh.

    http_server.py [--certs DIR] [--first-port N] ADDR:KIND...

Each ADDR:KIND (ADDR an IPv4 address or a bracketed IPv6 one) gets a
listener on ADDR, on port N, N+1, ... with --first-port (the lab's server
namespace drops ports 20000-39999, where the kernel picks free ones), on a
free port otherwise. When all of them listen, one line goes to
stdout:

    ready KIND=PORT KIND=PORT ...

(the KIND of an IPv6 listener is prefixed with "6"). Kinds:

    ok        200 "ok" with a Server header
    s503      503 "no healthy upstream", as a load balancer says it
    s404      404
    vhost     200 when Host is api.lab.internal, else 421
    slow      reads the request and never answers (until it is stopped)
    reset     reads the request, then resets the connection (SO_LINGER 0)
    close     reads the request, then closes the connection
    garbage   reads the request, answers bytes that are not HTTP, closes
    tls-NAME  TLS with DIR/NAME.pem and DIR/NAME.key, then like ok
    tls-old   TLS 1.1 at most with DIR/good.pem (for protocol_version);
              left out, with a note on stderr, when this OpenSSL cannot

Everything a server reads is bounded (64 KiB). Runs until SIGTERM; only ever
binds the addresses it is given.
"""
import signal
import socket
import socketserver
import ssl
import struct
import sys
import threading
import warnings

REQUEST_MAX = 64 * 1024
STOP = threading.Event()


def response(status, reason, body, extra=b""):
    return (b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nConnection: close\r\n"
            b"Server: vpcprobe-test\r\n%s\r\n%s" % (status, reason, len(body), extra, body))


def read_request(sock):
    """The request line and headers; or the first bytes, when they cannot
    begin an HTTP request (a TLS ClientHello sent to a plain port)."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < REQUEST_MAX:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if not data[:1].isalpha():
            break
    return data


def host_of(request):
    for line in request.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            return value.strip()
    return b""


def answer(kind, sock, request):
    if not request[:1].isalpha() and kind != "slow":
        # What a web server says to bytes that are not HTTP, such as a TLS
        # handshake.
        sock.sendall(response(400, b"Bad Request", b"not http"))
    elif kind in ("ok", "tls"):
        sock.sendall(response(200, b"OK", b"ok"))
    elif kind == "s503":
        sock.sendall(response(503, b"Service Unavailable", b"no healthy upstream",
                              b"Via: 1.1 test-lb\r\n"))
    elif kind == "s404":
        sock.sendall(response(404, b"Not Found", b"not found"))
    elif kind == "vhost":
        if host_of(request) == b"api.lab.internal":
            sock.sendall(response(200, b"OK", b"vhost ok"))
        else:
            sock.sendall(response(421, b"Misdirected Request", b"unknown host"))
    elif kind == "slow":
        STOP.wait()
    elif kind == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif kind == "garbage":
        sock.sendall(b"\x00\x01garbage \xff\xfe not http\r\n")


def make_handler(kind, context):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            sock.settimeout(60)
            try:
                if context is not None:
                    sock = context.wrap_socket(sock, server_side=True)
                request = read_request(sock)
                answer("tls" if context is not None else kind, sock, request)
            except (OSError, ssl.SSLError):
                pass  # the probe hung up or refused the certificate: expected
            finally:
                sock.close()
    return Handler


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def tls_context(certs, kind):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    name = "good" if kind == "tls-old" else kind[len("tls-"):]
    ctx.load_cert_chain(f"{certs}/{name}.pem", f"{certs}/{name}.key")
    if kind == "tls-old":
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated: the point
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def main(argv):
    certs = None
    port = 0
    specs = []
    args = iter(argv)
    for arg in args:
        if arg == "--certs":
            certs = next(args)
        elif arg == "--first-port":
            port = int(next(args))
        else:
            specs.append(arg)
    servers = []
    ready = []
    for spec in specs:
        addr, _, kind = spec.rpartition(":")
        six = addr.startswith("[")
        addr = addr.strip("[]")
        context = None
        if kind.startswith("tls-"):
            try:
                context = tls_context(certs, kind)
            except (ssl.SSLError, ValueError) as e:
                print(f"http_server: {kind} left out: {e}", file=sys.stderr)
                continue
        Server.address_family = socket.AF_INET6 if six else socket.AF_INET
        server = Server((addr, port), make_handler(kind, context))
        port = port + 1 if port else 0
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        ready.append(f"{'6' if six else ''}{kind}={server.server_address[1]}")
    print("ready " + " ".join(ready), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    STOP.wait()
    for server in servers:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
