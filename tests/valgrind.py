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
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vptest  # noqa: E402
from vptest import TESTS_DIR, VPCPROBE, Agent, exit_status, free_port, have_vpcprobe, plan  # noqa: E402

VALGRIND = ["valgrind", "--tool=memcheck", "--leak-check=full",
            "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect",
            "--track-origins=yes", "--error-exitcode=99", "--num-callers=30"]
# Bounds on waiting for the daemon under valgrind (tens of times slower):
# failures, not thresholds: a healthy run is far inside them.
READY_WAIT_S = 120.0
EXIT_WAIT_S = 120.0

# A failed check shows the last 40 lines of what it was given (a valgrind log).
check = functools.partial(vptest.check, info_lines=slice(-40, None))


def memcheck_clean(log_path, what):
    """Asserts valgrind's verdict in its log: no errors, nothing lost."""
    with open(log_path, errors="replace") as f:
        log = f.read()
    errors = re.search(r"ERROR SUMMARY: (\d+) errors", log)
    definitely = re.search(r"definitely lost: ([\d,]+) bytes", log)
    indirectly = re.search(r"indirectly lost: ([\d,]+) bytes", log)
    no_leaks = "All heap blocks were freed" in log
    check(errors is not None and errors.group(1) == "0",
          f"{what}: no invalid access (ERROR SUMMARY: 0 errors)", log)
    check(no_leaks or (definitely is not None and definitely.group(1) == "0"),
          f"{what}: definitely lost: 0", log)
    check(no_leaks or (indirectly is not None and indirectly.group(1) == "0"),
          f"{what}: indirectly lost: 0", log)


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
    check(p.returncode == 1, f"{name}: exits 1, not valgrind's 99",
          f"exit status {p.returncode}\n{p.stderr.decode(errors='replace')}")
    if json_out:
        verdicts = [json.loads(line).get("verdict") for line in p.stdout.splitlines()]
        check(len(verdicts) == len(urls), f"{name}: one record per target", p.stdout)
    memcheck_clean(log, name)


def run_daemon(binary, urls, work):
    cfg = {"agent": {"name": "valgrind-test", "status_listen": f"127.0.0.1:{free_port()}",
                     "state_dir": os.path.join(work, "state")},
           "defaults": {"interval_s": 2, "timeout_ms": 2000},
           "targets": [{"name": name, "url": u} for name, u in urls.items()]}
    log = os.path.join(work, "run.valgrind")
    agent = Agent(work, cfg, "run", wrap=VALGRIND + [f"--log-file={log}"], binary=binary)
    try:
        deadline = time.monotonic() + READY_WAIT_S
        ready = agent.wait_ready(READY_WAIT_S)
        check(ready, "run: READY=1 under valgrind")
        # "STATUS=N targets: ... 0 not probed yet": a whole round is in.
        status = agent.wait_notify("STATUS=", deadline - time.monotonic(),
                                   " 0 not probed yet") if ready else None
        check(status is not None, "run: a first round of every target (STATUS=)", status)
    finally:
        rc = agent.stop(timeout=EXIT_WAIT_S)   # SIGTERM to our own child, by its PID
    check(rc == 0, "run: SIGTERM exits 0", f"exit status {rc}\n{agent.log_text()}")
    memcheck_clean(log, "run")


def main():
    if not have_vpcprobe():
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
    plan()
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
