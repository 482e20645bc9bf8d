#!/usr/bin/env python3
"""The status page's firewall line (issues 6 and 7), end to end on loopback.

`vpcprobe run` with agent.gcloud_exports pointing at a copy of the
diagnose fixtures (tests/fixtures/diagnose: healthy/ and the firewall_denies
overlay), whose instance.json is rewritten to have 127.0.0.1, the address
of the test's own listener, and whose allow rule names that listener's
port. The addresses of the exports are data: the agent probes only the
test's listener on 127.0.0.1.

Asserted, on '/', /target/NAME and /api/v1/status: the implied deny with
its fix; a truncated firewall-rules.json gives "unknown" naming the file
and the JSON path, logged once, and the agent keeps running; after the file
is fixed a SIGHUP shows the allow rule; a missing directory gives
"unknown" naming it; a target without connector_range has no line.

Waits are readiness checks with a bound (READY=1, an answer that changed),
never sleeps for their own sake. TAP output."""

import html
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True    # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vptest import (TESTS_DIR, Agent, api_target, check, exit_status, free_port,  # noqa: E402
                    have_vpcprobe, listener, plan, request, sanitizer_lines, skip, wait_for)

FIX = os.path.join(TESTS_DIR, "fixtures", "diagnose")
RANGE = "10.8.0.0/28"


def page_text(port, path):
    """The page with its entities decoded, or "" when it does not answer."""
    try:
        status, _, body = request(port, path)
    except OSError:
        return ""
    return html.unescape(body.decode()) if status == 200 else ""


def firewall_of(port, name):
    """The target's firewall object ({"answer": None} when it has none);
    None when the page does not answer or has no such target."""
    t = api_target(port, name)
    return None if t is None else t["firewall"] or {"answer": None}


def exports(dirname, rules_from, port):
    """healthy/ with the rules of 'rules_from', made to describe 127.0.0.1."""
    os.makedirs(dirname, exist_ok=True)
    for f in ("service.json", "connector.json", "instance.json"):
        shutil.copy(os.path.join(FIX, "healthy", f), dirname)
    with open(os.path.join(dirname, "instance.json")) as f:
        vm = json.load(f)
    vm["networkInterfaces"][0]["networkIP"] = "127.0.0.1"
    with open(os.path.join(dirname, "instance.json"), "w") as f:
        json.dump(vm, f)
    write_rules(dirname, rules_from, port)


def write_rules(dirname, rules_from, port):
    with open(os.path.join(FIX, rules_from, "firewall-rules.json")) as f:
        rules = json.load(f)
    for r in rules:
        if r["name"] == "allow-run-conn-pg":
            r["allowed"][0]["ports"] = [str(port)]
    # Written aside and renamed, as an export job should: never half a file.
    tmp = os.path.join(dirname, ".firewall-rules.json.tmp")
    with open(tmp, "w") as f:
        json.dump(rules, f)
    os.rename(tmp, os.path.join(dirname, "firewall-rules.json"))


def sighup_until(agent, port, name, pred, what):
    agent.proc.send_signal(signal.SIGHUP)
    fw = wait_for(lambda: (lambda f: f if f and pred(f) else None)(firewall_of(port, name)), timeout=20.0)
    check(fw, what + ": %r" % (firewall_of(port, name),))
    return fw or {}


def browser_check(work, sport, fix):
    """The page's script (which patches the rows from /api/v1/status) runs
    under the CSP and leaves the firewall line shown, in headless Chromium
    when it is installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        skip("the script keeps the line", "chromium is not installed")
        return
    p = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--user-data-dir=" + os.path.join(work, "chrome"),
                        "--virtual-time-budget=5000", "--dump-dom",
                        "http://127.0.0.1:%d/" % sport],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
    dom = p.stdout.decode(errors="replace")
    check('data-live="1"' in dom, "the page's script ran under the CSP (data-live=\"1\")")
    check('<div class="fw fw-denied">' in dom and html.unescape(dom).count(fix) == 1,
          "after the script: the line is shown, denied, with its fix once")


def run(work):
    target = listener(16)
    tport = target.getsockname()[1]
    sport = free_port()
    xdir = os.path.join(work, "exports")
    exports(xdir, "firewall_denies", tport)
    cfg = {"agent": {"name": "fw-test", "status_listen": "127.0.0.1:%d" % sport,
                     "gcloud_exports": xdir},
           "defaults": {"interval_s": 60, "timeout_ms": 2000},
           "targets": [{"name": "orders-db", "url": "tcp://127.0.0.1:%d" % tport,
                        "connector_range": RANGE},
                       {"name": "plain", "url": "tcp://127.0.0.1:%d" % tport}]}
    agent = Agent(work, cfg, "agent")
    try:
        if not check(agent.wait_ready(20), "the agent starts (READY=1)"):
            return
        fix = ("gcloud compute firewall-rules create allow-run-conn-tcp-%d --network default "
               "--direction INGRESS --action allow --rules tcp:%d --source-ranges %s "
               "--target-tags db" % (tport, tport, RANGE))
        fw = firewall_of(sport, "orders-db") or {}
        check(fw.get("answer") == "denied", "api: the firewall denies: %r" % fw)
        check(fw.get("text", "").startswith("firewall (exports of 20")
              and "implied deny-ingress rule (priority 65535)" in fw.get("text", "")
              and "instance 'orders-db'" in fw.get("text", ""),
              "api: the line names the export's time, the instance and the implied deny: %r"
              % fw.get("text"))
        check((fw.get("fix") or "").startswith(fix), "api: the fix is the allow rule: %r" % fw.get("fix"))
        check(fw.get("exports") == xdir and (fw.get("exports_time") or "").endswith("Z"),
              "api: the exports' directory and time: %r" % fw)
        check((firewall_of(sport, "plain") or {}).get("answer", "x") is None,
              "api: a target without connector_range has no firewall line (null)")
        page = page_text(sport, "/")
        check("implied deny-ingress rule (priority 65535)" in page and fix in page,
              "'/': the row shows the deny and the fix")
        one = page_text(sport, "/target/orders-db")
        check("firewall (exports of " in one and fix in one, "/target/orders-db shows the line")
        browser_check(work, sport, fix)

        # A broken export: unknown, naming the file and the JSON path.
        rules = os.path.join(xdir, "firewall-rules.json")
        with open(rules) as f:
            text = f.read()
        with open(rules + ".tmp", "w") as f:
            f.write(text.replace('"priority": 1000', '"priority": "high"', 1))
        os.rename(rules + ".tmp", rules)
        fw = sighup_until(agent, sport, "orders-db", lambda f: f["answer"] == "unknown",
                          "a broken firewall-rules.json after SIGHUP: unknown")
        check(rules in fw.get("text", "") and "priority" in fw.get("text", ""),
              "the line names the file and the JSON path: %r" % fw.get("text"))
        check(agent.proc.poll() is None and request(sport, "/healthz")[0] == 200,
              "the agent keeps running and answers /healthz")
        check("firewall (exports of" not in page_text(sport, "/") and rules in page_text(sport, "/"),
              "'/': the row says unknown and why")
        logged = [line for line in agent.log_text().splitlines() if rules in line]
        check(len(logged) == 1, "the broken file is logged once for the load: %r" % logged)

        # Fixed: the allow rule.
        write_rules(xdir, "healthy", tport)
        fw = sighup_until(agent, sport, "orders-db", lambda f: f["answer"] == "allowed",
                          "the fixed file after SIGHUP: allowed")
        check("rule 'allow-run-conn-pg' (priority 1000, allow tcp:%d" % tport in fw.get("text", "")
              and fw.get("fix") is None, "the line names the allow rule, no fix: %r" % fw)
        check("rule 'allow-run-conn-pg'" in page_text(sport, "/"), "'/': the row shows the allow rule")

        # The directory is gone: unknown, naming it; the agent still runs.
        cfg["agent"]["gcloud_exports"] = xdir + "-missing"
        agent.write(cfg)
        fw = sighup_until(agent, sport, "orders-db", lambda f: f["answer"] == "unknown",
                          "a missing directory: unknown")
        check(xdir + "-missing" in fw.get("text", "") and "No such file" in fw.get("text", ""),
              "the line names the directory and the error: %r" % fw.get("text"))
        check(agent.proc.poll() is None, "the agent keeps running")
    finally:
        rc = agent.stop()
        target.close()
    check(rc == 0, "the agent stops cleanly on SIGTERM (exit %r)" % rc)
    bad = sanitizer_lines(agent.log_text())
    check(not bad, "no sanitizer report from the agent: %r" % bad[:3])


def main():
    if not have_vpcprobe():
        return 1
    work = tempfile.mkdtemp(prefix="vpfw.")
    try:
        run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plan()
    return exit_status()


if __name__ == "__main__":
    sys.exit(main())
