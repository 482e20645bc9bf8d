#!/usr/bin/env python3
"""tests/hostile_server.py: targets that misbehave on purpose (issue 9).

Listens on 127.0.0.1 only, one ephemeral port per behaviour, and prints one
line of JSON, {"BEHAVIOUR": PORT, ..., "ca_file": PATH}, once every port
listens: that line is the readiness signal. Runs until SIGTERM or SIGINT (or its stdin closes,
with --until-stdin-closes), so the test that starts it stops it by its PID.

Behaviours (postgres:// and redis:// probes send first; http:// too):
  endless      writes bytes ('A') as fast as the peer reads them, reads nothing
  silent       accepts, never reads or writes
  reset        accepts, then resets the connection (SO_LINGER 0)
  pg-good      a PostgreSQL that trusts everyone (the control)
  pg-endless   'N' to SSLRequest, then an ErrorResponse of the longest length
               allowed whose body never ends
  pg-drip      'N', then an AuthenticationOk one byte a second
  pg-absurd    'N', then a message whose length is 2^31 - 1
  pg-error     an ErrorResponse (28000) whose message holds terminal escape
               sequences, HTML, invalid UTF-8 and an embedded NUL
  redis-good   +PONG to every command (the control)
  redis-endless a status line that never ends
  redis-drip   +PONG one byte a second
  redis-absurd a bulk reply of 999999999999 bytes
  redis-error  an error line with escapes, HTML, invalid UTF-8 and a NUL
  http-good    200 with a short body (the control)
  http-endless 200 with a body that never ends
  http-drip    a 200 status line one byte a second
  http-absurd  a Content-Length of 2^64 + 1
  http-error   500 whose Server header and body hold escapes and HTML
  tls-garbage-cert  a TLS 1.2 ServerHello, then a Certificate message whose
               certificate is random bytes behind a valid-looking DER start
  tls-huge-cert     a ServerHello, then a Certificate message that claims
               16 MiB and streams it
  tls-evil-subject  real TLS (HTTP behind it) with a self-signed certificate
               whose subject holds terminal escapes and HTML and that has
               no subjectAltName; the ready line's "ca_file" names it (made
               with openssl at start; without openssl this one is left out)
"""
import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile

HOST = "127.0.0.1"
# What a hostile server says: terminal escapes (colour, clear screen, window
# title, an 8-bit CSI), HTML, invalid UTF-8 (a lone continuation byte, an
# overlong sequence, a surrogate), and a NUL.
EVIL = (b"\x1b[31mRED\x1b[0m \x1b[2J \x1b]0;pwned\x07 \x9b6n "
        b"<script>alert(1)</script><b>bold</b> "
        b"\x80\xc0\xaf\xed\xa0\x80\xff\xfe")
CHUNK = b"A" * 65536


async def drain_forever(reader):
    """Reads and drops what the peer sends, until it closes."""
    while await reader.read(65536):
        pass


async def read_pg_startup(reader):
    """SSLRequest (answered 'N' by the caller) or a StartupMessage: one
    length-prefixed message without a type byte."""
    n = struct.unpack(">I", await reader.readexactly(4))[0]
    body = await reader.readexactly(n - 4)
    return struct.unpack(">I", body[:4])[0] if len(body) >= 4 else 0


SSL_REQUEST_CODE = 80877103


async def pg_login(reader, writer):
    """Answers SSLRequest with 'N' and reads the StartupMessage."""
    code = await read_pg_startup(reader)
    if code == SSL_REQUEST_CODE:
        writer.write(b"N")
        await writer.drain()
        await read_pg_startup(reader)


def pg_msg(kind, body):
    return kind + struct.pack(">I", len(body) + 4) + body


async def endless(reader, writer):
    while True:
        writer.write(CHUNK)
        await writer.drain()


async def drip_bytes(writer, data):
    for i in range(len(data)):
        writer.write(data[i:i + 1])
        await writer.drain()
        await asyncio.sleep(1)
    # Then as silent as 'silent': the probe's deadline ends it.
    await asyncio.Event().wait()


async def silent(reader, writer):
    await asyncio.Event().wait()


async def reset(reader, writer):
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def pg_good(reader, writer):
    await pg_login(reader, writer)
    writer.write(pg_msg(b"R", struct.pack(">I", 0)) +
                 pg_msg(b"S", b"server_version\x0016.0\x00") +
                 pg_msg(b"K", struct.pack(">II", 1, 2)) +
                 pg_msg(b"Z", b"I"))
    await writer.drain()
    await drain_forever(reader)


async def pg_endless(reader, writer):
    await pg_login(reader, writer)
    writer.write(b"E" + struct.pack(">I", 65535) + b"SFATAL\x00M")
    while True:
        writer.write(CHUNK)
        await writer.drain()


async def pg_absurd(reader, writer):
    await pg_login(reader, writer)
    writer.write(b"R" + struct.pack(">I", 0x7FFFFFFF) + b"\x00\x00\x00\x00")
    await writer.drain()
    await drain_forever(reader)


async def pg_error(reader, writer):
    await pg_login(reader, writer)
    fields = (b"SFATAL\x00VFATAL\x00C28000\x00M" + EVIL + b"\x00"
              b"Xafter an embedded NUL " + EVIL + b"\x00\x00")
    writer.write(pg_msg(b"E", fields))
    await writer.drain()
    await drain_forever(reader)


async def pg_drip(reader, writer):
    await pg_login(reader, writer)
    await drip_bytes(writer, pg_msg(b"R", struct.pack(">I", 0)) + pg_msg(b"Z", b"I"))


async def redis_good(reader, writer):
    while await reader.read(65536):
        writer.write(b"+PONG\r\n")
        await writer.drain()


async def redis_absurd(reader, writer):
    await reader.read(65536)
    writer.write(b"$999999999999\r\n" + CHUNK)
    await writer.drain()
    await drain_forever(reader)


async def redis_error(reader, writer):
    await reader.read(65536)
    writer.write(b"-ERR " + EVIL + b" \x00 after a NUL\r\n")
    await writer.drain()
    await drain_forever(reader)


async def redis_endless(reader, writer):
    writer.write(b"+")
    while True:
        writer.write(CHUNK)
        await writer.drain()


async def redis_drip(reader, writer):
    await drip_bytes(writer, b"+PONG\r\n")


async def read_http_request(reader):
    await reader.readuntil(b"\r\n\r\n")


async def http_good(reader, writer):
    await read_http_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
    await writer.drain()
    writer.close()


async def http_endless(reader, writer):
    await read_http_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    while True:
        writer.write(CHUNK)
        await writer.drain()


async def http_drip(reader, writer):
    await read_http_request(reader)
    await drip_bytes(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")


async def http_absurd(reader, writer):
    await read_http_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551617\r\n\r\nok\n")
    await writer.drain()
    await drain_forever(reader)


async def http_error(reader, writer):
    await read_http_request(reader)
    body = b"<html><body><h1>" + EVIL + b"\x00 after a NUL</h1></body></html>"
    writer.write(b"HTTP/1.1 500 Internal Server Error\r\nServer: " +
                 EVIL.replace(b"\x1b]0;pwned\x07", b"") +
                 b"\r\nContent-Length: " + str(len(body)).encode() +
                 b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    writer.close()


def tls_record(body):
    """A TLS 1.2 handshake record."""
    return b"\x16\x03\x03" + struct.pack(">H", len(body)) + body


def tls_handshake(kind, body, length=None):
    n = len(body) if length is None else length
    return bytes([kind]) + n.to_bytes(3, "big") + body


# ECDHE-RSA-AES128-GCM-SHA256, which OpenSSL's clients offer, and the empty
# renegotiation_info that OpenSSL 3 requires of a TLS 1.2 server.
SERVER_HELLO = tls_record(tls_handshake(2, b"\x03\x03" + bytes(range(32)) + b"\x00" +
                                        b"\xc0\x2f\x00" + b"\x00\x05\xff\x01\x00\x01\x00"))


async def read_client_hello(reader):
    head = await reader.readexactly(5)
    await reader.readexactly(struct.unpack(">H", head[3:5])[0])


async def tls_garbage_cert(reader, writer):
    await read_client_hello(reader)
    rnd = random.Random(9)
    # A SEQUENCE of a plausible length, then noise: DER that starts well.
    cert = b"\x30\x82\x02\x5c\x30\x82\x01\xc4" + bytes(rnd.getrandbits(8) for _ in range(600))
    chain = len(cert).to_bytes(3, "big") + cert
    writer.write(SERVER_HELLO +
                 tls_record(tls_handshake(11, len(chain).to_bytes(3, "big") + chain)))
    await writer.drain()
    await drain_forever(reader)


async def tls_huge_cert(reader, writer):
    await read_client_hello(reader)
    writer.write(SERVER_HELLO + tls_record(tls_handshake(11, b"\xff\xff\xfc", 0xFFFFFF)))
    while True:
        writer.write(tls_record(CHUNK[:16000]))
        await writer.drain()


# Terminal escapes (colour, a window title, an 8-bit CSI as U+009B) and HTML,
# in the 64 characters a commonName may have.
EVIL_NAME = "\x1b[31mRED\x1b[0m <script>alert(1)</script> \x1b]0;pwned\x07 \u009b6n <b>x</b>"


def make_evil_cert(directory):
    """A self-signed certificate for EVIL_NAME, no subjectAltName: (cert, key)
    paths, or None when openssl fails or is missing."""
    cnf = os.path.join(directory, "evil.cnf")
    cert, key = os.path.join(directory, "evil.pem"), os.path.join(directory, "evil.key")
    with open(cnf, "w", encoding="utf-8") as f:
        f.write("[req]\nprompt = no\ndistinguished_name = dn\nutf8 = yes\n"
                "string_mask = utf8only\n[dn]\nCN = " + EVIL_NAME + "\nO = " + EVIL_NAME + "\n")
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-config", cnf,
                        "-keyout", key, "-out", cert],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        return None
    return cert, key


async def tls_evil_subject(reader, writer):
    await http_good(reader, writer)


BEHAVIOURS = {
    "endless": endless, "silent": silent, "reset": reset,
    "pg-good": pg_good, "pg-endless": pg_endless, "pg-drip": pg_drip, "pg-absurd": pg_absurd,
    "pg-error": pg_error,
    "redis-good": redis_good, "redis-endless": redis_endless, "redis-drip": redis_drip,
    "redis-absurd": redis_absurd, "redis-error": redis_error,
    "http-good": http_good, "http-endless": http_endless, "http-drip": http_drip,
    "http-absurd": http_absurd, "http-error": http_error,
    "tls-garbage-cert": tls_garbage_cert, "tls-huge-cert": tls_huge_cert,
    "tls-evil-subject": tls_evil_subject,
}


CONNECTIONS = set()   # the tasks serving a connection, cancelled at the end


def handler(behaviour):
    async def run(reader, writer):
        CONNECTIONS.add(asyncio.current_task())
        try:
            await behaviour(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.CancelledError, OSError):
            pass
        finally:
            writer.transport.abort()
            CONNECTIONS.discard(asyncio.current_task())
    return run


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--until-stdin-closes", action="store_true",
                    help="also stop when stdin reaches its end")
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers, ports = [], {}
    certs = tempfile.mkdtemp(prefix="vphostile-certs.")
    try:
        evil = make_evil_cert(certs)
        for name, behaviour in BEHAVIOURS.items():
            tls = None
            if behaviour is tls_evil_subject:
                if evil is None:
                    continue
                tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                tls.load_cert_chain(*evil)
                ports["ca_file"] = evil[0]
            srv = await asyncio.start_server(handler(behaviour), HOST, 0, backlog=64, ssl=tls)
            servers.append(srv)
            ports[name] = srv.sockets[0].getsockname()[1]
        await serve(args, loop, stop, servers, ports)
    finally:
        shutil.rmtree(certs, ignore_errors=True)


async def serve(args, loop, stop, servers, ports):
    """Prints the ready line, then serves until told to stop."""
    if args.until_stdin_closes:
        loop.add_reader(sys.stdin.fileno(),
                        lambda: None if sys.stdin.buffer.read1(4096) else stop.set())
    print(json.dumps(ports), flush=True)
    await stop.wait()
    for srv in servers:
        srv.close()
    for task in list(CONNECTIONS):
        task.cancel()
    await asyncio.gather(*CONNECTIONS, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
