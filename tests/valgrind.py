#!/usr/bin/env python3
"""tests/valgrind.py: vpcprobe under valgrind memcheck (issue 9).

`vpcprobe check --json` and `vpcprobe check` (the table) against loopback
targets of tests/hostile_server.py, well-behaved and hostile, and a short
`vpcprobe run` on the same targets, stopped with SIGTERM once it has
reported READY=1 and a first round of results (sd_notify STATUS=) on a
NOTIFY_SOCKET this test owns. Each must end with no error (no invalid read
or write, no use of uninitialised memory) and nothing definitely or
indirectly lost.

Skips (77) without valgrind, or when the binary is built with
AddressSanitizer, which valgrind cannot run (build-test is; scripts/test
runs this test in build-clang). Prints "ok N - ..." lines; exit 0 when all
pass, 1 otherwise. Traffic goes only to 127.0.0.1.

Env: VPCPROBE (the binary, set by meson), TESTS_DIR (tests/ source dir).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TESTS_DIR = os.environ.get("TESTS_DIR", os.path.dirname(os.path.abspath(__file__)))
VPCPROBE = os.environ.get("VPCPROBE", os.path.join(TESTS_DIR, "..", "build", "vpcprobe"))
VALGRIND = ["valgrind", "--tool=memcheck", "--leak-check=full",
            "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
            "--track-origins=yes", "--error-exitcode=99", "--num-callers=30"]
# Bounds on waiting for the daemon under valgrind (tens of times slower):
# failures, not thresholds: a healthy run is far inside them.
READY_WAIT_S = 120.0
EXIT_WAIT_S = 120.0

n = 0
failed = 0


def check(desc, cond, info=""):
    global n, failed
    n += 1
    print(("ok" if cond else "not ok") + f" {n} - {desc}", flush=True)
    if not cond:
        failed += 1
        for line in str(info).splitlines()[-40:]:
            print(f"#   {line}")


def memcheck_clean(log_path, what):
    """Asserts valgrind's verdict in its log: no errors, nothing lost."""
    with open(log_path, errors="replace") as f:
        log = f.read()
    errors = re.search(r"ERROR SUMMARY: (\d+) errors", log)
    definitely = re.search(r"definitely lost: ([\d,]+) bytes", log)
    indirectly = re.search(r"indirectly lost: ([\d,]+) bytes", log)
    no_leaks = "All heap blocks were freed" in log
    check(f"{what}: no invalid access (ERROR SUMMARY: 0 errors)",
          errors is not None and errors.group(1) == "0", log)
    check(f"{what}: definitely lost: 0",
          no_leaks or (definitely is not None and definitely.group(1) == "0"), log)
    check(f"{what}: indirectly lost: 0",
          no_leaks or (indirectly is not None and indirectly.group(1) == "0"), log)


def free_port():
    """A loopback port nothing listens on: bound, then closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def runnable_binary(work):
    """VPCPROBE, or a copy without its debug information when valgrind
    cannot read that (valgrind 3.19 gives up on clang 14's DWARF 5): then
    the reports name functions but not lines."""
    log = os.path.join(work, "version.valgrind")
    subprocess.run(VALGRIND + [f"--log-file={log}", VPCPROBE, "version"],
                   stdin=subprocess.DEVNULL, capture_output=True)
    with open(log, errors="replace") as f:
        if "I can't recover" not in f.read():
            return VPCPROBE
    stripped = os.path.join(work, "vpcprobe")
    subprocess.run(["objcopy", "--strip-debug", VPCPROBE, stripped], check=True)
    print("# valgrind cannot read this binary's debug information: running a copy without it")
    return stripped


def targets(ports):
    return {
        "pg-good": f"postgres://127.0.0.1:{ports['pg-good']}",
        "redis-good": f"redis://127.0.0.1:{ports['redis-good']}",
        "http-good": f"http://127.0.0.1:{ports['http-good']}/",
        "pg-error": f"postgres://127.0.0.1:{ports['pg-error']}",
        "redis-error": f"redis://127.0.0.1:{ports['redis-error']}",
        "http-error": f"http://127.0.0.1:{ports['http-error']}/",
        "http-endless": f"http://127.0.0.1:{ports['http-endless']}/",
        "endless": f"redis://127.0.0.1:{ports['endless']}",
        "reset": f"postgres://127.0.0.1:{ports['reset']}",
        "silent": f"tcp://127.0.0.1:{ports['silent']}",
        "closed": f"tcp://127.0.0.1:{free_port()}",
    }


def run_check(binary, urls, work, name, json_out):
    log = os.path.join(work, name.replace(" ", "-") + ".valgrind")
    cmd = VALGRIND + [f"--log-file={log}", binary, "check", "--timeout-ms", "3000"]
    cmd += (["--json"] if json_out else []) + urls
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    check(f"{name}: exits 1, not valgrind's 99", p.returncode == 1,
          f"exit status {p.returncode}\n{p.stderr.decode(errors='replace')}")
    if json_out:
        verdicts = [json.loads(line).get("verdict") for line in p.stdout.splitlines()]
        check(f"{name}: one record per target", len(verdicts) == len(urls), p.stdout)
    memcheck_clean(log, name)


def wait_notify(sock, prefix, deadline, suffix=""):
    """The first notify line with that prefix (and suffix), before the deadline."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode(errors="replace")
        except socket.timeout:
            return None
        for line in msg.split("\n"):
            if line.startswith(prefix) and line.endswith(suffix):
                return line
    return None


def run_daemon(binary, urls, work):
    cfg = {"agent": {"name": "valgrind-test", "status_listen": f"127.0.0.1:{free_port()}",
                     "state_dir": os.path.join(work, "state")},
           "defaults": {"interval_s": 2, "timeout_ms": 2000},
           "targets": [{"name": name, "url": u} for name, u in urls.items()]}
    path = os.path.join(work, "vpcprobe.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    notify_path = os.path.join(work, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    log = os.path.join(work, "run.valgrind")
    stderr_path = os.path.join(work, "run.stderr")
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(VALGRIND + [f"--log-file={log}", binary, "run", "-c", path],
                                env=dict(os.environ, NOTIFY_SOCKET=notify_path),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + READY_WAIT_S
        ready = wait_notify(notify, "READY=1", deadline)
        check("run: READY=1 under valgrind", ready is not None)
        # "STATUS=N targets: ... 0 not probed yet": a whole round is in.
        status = wait_notify(notify, "STATUS=", deadline, " 0 not probed yet") if ready else None
        check("run: a first round of every target (STATUS=)", status is not None, status)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)   # our own child, by its PID
        try:
            rc = proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        notify.close()
    with open(stderr_path, errors="replace") as f:
        check("run: SIGTERM exits 0", rc == 0, f"exit status {rc}\n{f.read()}")
    memcheck_clean(log, "run")


def main():
    if not os.access(VPCPROBE, os.X_OK):
        print(f"Bail out! VPCPROBE={VPCPROBE} is not an executable")
        return 1
    if shutil.which("valgrind") is None:
        print("1..0 # SKIP valgrind is not installed")
        return 77
    with open(VPCPROBE, "rb") as f:
        if b"__asan_init" in f.read():
            print("1..0 # SKIP the binary is built with AddressSanitizer; valgrind cannot run it")
            return 77
    server = subprocess.Popen([sys.executable, os.path.join(TESTS_DIR, "hostile_server.py")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        line = server.stdout.readline()   # readiness: every port listens
        if not line:
            print("Bail out! hostile_server.py did not start")
            return 1
        urls = targets(json.loads(line))
        with tempfile.TemporaryDirectory(prefix="vpvalgrind.") as work:
            binary = runnable_binary(work)
            run_check(binary, list(urls.values()), work, "check --json", True)
            run_check(binary, list(urls.values()), work, "check (table)", False)
            run_daemon(binary, urls, work)
    finally:
        server.terminate()   # our own child, by its PID
        server.wait()
    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
