#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2317  # eval'd conditions; helpers called via assert
# tests/cli.sh — the command line of vpcprobe, with loopback only (no root).
#
# Version, help, usage errors, `validate` on good and bad configs, `check`
# against a port this test listens on and one it just closed (both on
# 127.0.0.1), bad URLs and options, and the table's colour rules. Prints
# "ok N - ..." / "not ok N - ..." lines; exit 0 when all pass, 1 otherwise.
#
# Env: VPCPROBE (the binary, set by meson), TESTS_DIR (tests/ source dir).

set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
VPCPROBE=${VPCPROBE:-$TESTS_DIR/../build/vpcprobe}
if [[ ! -x $VPCPROBE ]]; then
    echo "Bail out! VPCPROBE=$VPCPROBE is not an executable" >&2
    exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 is needed for the loopback listener" >&2
    exit 77
fi
HAVE_JQ=0
command -v jq >/dev/null 2>&1 && HAVE_JQ=1

T=
LISTENER_PID=
DNSMASQ_PID=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ -n $DNSMASQ_PID ]]; then
        kill "$DNSMASQ_PID" 2>/dev/null
        wait "$DNSMASQ_PID" 2>/dev/null
    fi
    if [[ -n $LISTENER_PID ]]; then
        kill "$LISTENER_PID" 2>/dev/null
        wait "$LISTENER_PID" 2>/dev/null
    fi
    [[ -n $T ]] && rm -rf -- "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
T=$(mktemp -d "${TMPDIR:-/tmp}/vpcli.XXXXXX") || exit 1

# --- TAP-ish helpers -------------------------------------------------------

n=0
failed=0
pass() {
    n=$((n + 1))
    echo "ok $n - $1"
}
skip() {
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}
# fail DESC: also shows the last run's exit status, stdout and stderr.
fail() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    echo "#   command: ${LAST_CMD:-}"
    echo "#   exit status: ${RC:-}"
    [[ -f $T/out ]] && sed -n '1,15s/^/#   stdout: /p' "$T/out"
    [[ -f $T/err ]] && sed -n '1,15s/^/#   stderr: /p' "$T/err"
}
# assert DESC CONDITION...: CONDITION is a command; pass when it succeeds.
assert() {
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# run ARGS...: the binary, bounded, stdout to $T/out, stderr to $T/err,
# exit status in RC.
run() {
    LAST_CMD="vpcprobe $*"
    timeout 30 "$VPCPROBE" "$@" >"$T/out" 2>"$T/err" </dev/null
    RC=$?
}

rc_is() { [[ $RC -eq $1 ]]; }
out_has() { grep -qE -- "$1" "$T/out"; }
err_has() { grep -qF -- "$1" "$T/err"; }
err_has_i() { grep -qiE -- "$1" "$T/err"; }
no_esc() { ! grep -q $'\033' "$1"; }
# json_is JQ-FILTER: stdout is exactly one JSON record satisfying FILTER.
# Without jq, falls back to grepping stdout for the ERE in $2.
json_is() {
    if [[ $HAVE_JQ -eq 1 ]]; then
        jq -e -s "length == 1 and (.[0] | $1)" "$T/out" >/dev/null 2>&1
    else
        grep -qE -- "$2" "$T/out"
    fi
}

# --- loopback ports ----------------------------------------------------------

# Port 2024 on this machine is off limits; a port from the kernel's
# ephemeral range never is 2024 in practice, but make sure.
LISTEN_PORT=
for _ in 1 2 3 4 5; do
    rm -f "$T/ready"
    mkfifo "$T/ready" || exit 1
    python3 -u "$TESTS_DIR/lab/listener.py" 0 127.0.0.1 >"$T/ready" 2>"$T/listener.err" &
    LISTENER_PID=$!
    exec {fd}<"$T/ready"
    line=
    read -r -t 15 -u "$fd" line
    exec {fd}<&-
    if [[ $line =~ ^ready\ ([0-9]+)$ ]]; then
        LISTEN_PORT=${BASH_REMATCH[1]}
        [[ $LISTEN_PORT -ne 2024 ]] && break
    fi
    kill "$LISTENER_PID" 2>/dev/null
    wait "$LISTENER_PID" 2>/dev/null
    LISTENER_PID=
    LISTEN_PORT=
done
if [[ -z $LISTEN_PORT ]]; then
    echo "Bail out! the loopback listener did not start:"
    sed 's/^/#   /' "$T/listener.err"
    exit 1
fi

# A port that was bound and closed a moment ago: nothing listens there.
CLOSED_PORT=
for _ in 1 2 3 4 5; do
    CLOSED_PORT=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
    [[ $CLOSED_PORT =~ ^[0-9]+$ && $CLOSED_PORT -ne 2024 && $CLOSED_PORT -ne $LISTEN_PORT ]] && break
    CLOSED_PORT=
done
if [[ -z $CLOSED_PORT ]]; then
    echo "Bail out! could not pick a closed loopback port"
    exit 1
fi
echo "# listener on 127.0.0.1:$LISTEN_PORT (pid $LISTENER_PID), closed port 127.0.0.1:$CLOSED_PORT"

OPEN_URL=tcp://127.0.0.1:$LISTEN_PORT
CLOSED_URL=tcp://127.0.0.1:$CLOSED_PORT

# --- version, help, usage errors ----------------------------------------------

run version
assert "version exits 0" rc_is 0
assert "version prints 'vpcprobe X.Y.Z'" out_has '^vpcprobe [0-9]+\.[0-9]+\.[0-9]+'

run --help
assert "--help exits 0" rc_is 0
assert "--help lists the check, validate and version commands" \
    eval 'out_has "check" && out_has "validate" && out_has "version"'

run check --help
assert "check --help exits 0" rc_is 0
assert "check --help mentions -c/--config, --json and --timeout-ms" \
    eval 'out_has "--config|-c" && out_has "--json" && out_has "--timeout-ms"'

run validate --help
assert "validate --help exits 0" rc_is 0
assert "validate --help mentions -c" out_has '(^|[^a-z-])-c([^a-z]|$)|--config'

run frobnicate
assert "an unknown subcommand exits 2" rc_is 2
assert "an unknown subcommand is named on stderr" err_has frobnicate

run check --frobnicate "$OPEN_URL"
assert "an unknown option exits 2" rc_is 2
assert "an unknown option is named on stderr" err_has --frobnicate

# --- validate -------------------------------------------------------------------

GOOD=$T/good.json
cat >"$GOOD" <<EOF
{
  "agent":    { "name": "cli-test" },
  "defaults": { "interval_s": 10, "timeout_ms": 2000 },
  "targets": [
    { "name": "loop-open",   "url": "$OPEN_URL" },
    { "name": "loop-closed", "url": "$CLOSED_URL", "interval_s": 5 }
  ]
}
EOF
run validate -c "$GOOD"
assert "validate of a good config exits 0" rc_is 0

UNKNOWN=$T/unknown-key.json
cat >"$UNKNOWN" <<EOF
{
  "agent":   { "name": "cli-test" },
  "targets": [ { "name": "loop", "url": "$OPEN_URL", "bogus_key": 1 } ]
}
EOF
run validate -c "$UNKNOWN"
assert "validate of a config with an unknown key exits 2" rc_is 2
assert "... and stderr names the file, the JSON path targets[0] and the key" \
    eval 'err_has "$UNKNOWN" && err_has "targets[0]" && err_has bogus_key'

SYNTAX=$T/syntax.json
cat >"$SYNTAX" <<EOF
{
  "targets": [
    { "name": "loop" "url": "$OPEN_URL" }
  ]
}
EOF
run validate -c "$SYNTAX"
assert "validate of a config with a syntax error exits 2" rc_is 2
assert "... and stderr names the file and line 3" \
    eval 'err_has "$SYNTAX" && err_has_i "line 3([^0-9]|$)|:3(:|[^0-9]|$)"'

MISSING=$T/does-not-exist.json
run validate -c "$MISSING"
assert "validate of a missing file exits 2" rc_is 2
assert "... and stderr names the file and says it cannot be read" \
    eval 'err_has "$MISSING" && err_has_i "no such file|not found|does not exist|cannot|could not|unable|ENOENT"'

# --- check against loopback -------------------------------------------------------

run check --json "$OPEN_URL"
assert "check --json $OPEN_URL (listening) exits 0" rc_is 0
assert "... with one record, verdict ok" \
    json_is '.verdict == "ok" and .url == "'"$OPEN_URL"'"' '"verdict": *"ok"'

run check --json "$CLOSED_URL"
assert "check --json $CLOSED_URL (closed) exits 1" rc_is 1
assert "... with one record, verdict refused, reason rst_to_syn" \
    json_is '.verdict == "refused" and .reason == "rst_to_syn"' '"reason": *"rst_to_syn"'

# A host name. Should the binary resolve names by now, the lookup must not
# reach the machine's resolver (the network rule), so this runs in a fresh
# network namespace with nothing but a down loopback: any lookup fails
# locally. The name is under .invalid (RFC 6761) besides.
NAME_URL=tcp://some-name.invalid:80
isolate=()
if unshare -rn true 2>/dev/null; then
    isolate=(unshare -rn)
elif unshare -n true 2>/dev/null; then
    isolate=(unshare -n)
fi
if [[ ${#isolate[@]} -gt 0 ]]; then
    LAST_CMD="${isolate[*]} vpcprobe check --json $NAME_URL"
    timeout 30 "${isolate[@]}" "$VPCPROBE" check --json "$NAME_URL" >"$T/out" 2>"$T/err" </dev/null
    RC=$?
    name_ok() {
        if [[ $RC -eq 2 ]]; then
            err_has some-name.invalid
        elif [[ $RC -eq 1 ]]; then
            json_is '.verdict == "dns_error"' '"verdict": *"dns_error"'
        else
            return 1
        fi
    }
    assert "check $NAME_URL: exit 2 naming the host (names unsupported) or exit 1 with dns_error" name_ok
else
    skip "check $NAME_URL" "no way to isolate a name lookup from the machine's resolver (unshare -n)"
fi

run check tcp://127.0.0.1
assert "a malformed URL (no port) exits 2" rc_is 2
assert "... and stderr names the URL" err_has tcp://127.0.0.1

run check --timeout-ms 0 "$OPEN_URL"
assert "check --timeout-ms 0 exits 2" rc_is 2
assert "... with a message on stderr" test -s "$T/err"

# --- check --dns-server ------------------------------------------------------------

for bad in nope 127.0.0.1:70000 '[::1' 'dns.example.com:53' '127.0.0.1:'; do
    run check --dns-server "$bad" tcp://cli.test:80
    assert "check --dns-server '$bad' exits 2 naming the option and the value" \
        eval 'rc_is 2 && err_has "--dns-server" && err_has "$bad"'
done
run check --dns-server 127.0.0.1 --dns-server 127.0.0.2 --dns-server 127.0.0.3 \
    --dns-server 127.0.0.4 --dns-server 127.0.0.5 --dns-server 127.0.0.6 \
    --dns-server 127.0.0.7 --dns-server 127.0.0.8 --dns-server 127.0.0.9 tcp://cli.test:80
assert "check with 9 --dns-server exits 2 (at most 8)" \
    eval 'rc_is 2 && err_has "at most 8"'

# dnsmasq on 127.0.0.1 answers cli.test with 127.0.0.1 (A only). The
# configuration names a DNS server that nothing listens on, so an ok
# proves that --dns-server replaced agent.dns_servers for the run.
# dns_ready PORT: a bounded readiness poll, one A query for cli.test.
dns_ready() {
    python3 "$TESTS_DIR/dns_ready.py" "$1" cli.test
}
free_udp_port() {
    python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
DNSMASQ=$(command -v dnsmasq || { [[ -x /usr/sbin/dnsmasq ]] && echo /usr/sbin/dnsmasq; })
DNS_PORT=
if [[ -n $DNSMASQ ]]; then
    for _ in 1 2 3; do
        DNS_PORT=$(free_udp_port)
        [[ $DNS_PORT -eq 2024 ]] && continue
        "$DNSMASQ" --no-daemon --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
            --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces --local=/test/ \
            --host-record=cli.test,127.0.0.1 >/dev/null 2>"$T/dnsmasq.err" &
        DNSMASQ_PID=$!
        dns_ready "$DNS_PORT" && break
        kill "$DNSMASQ_PID" 2>/dev/null
        wait "$DNSMASQ_PID" 2>/dev/null
        DNSMASQ_PID=
        DNS_PORT=
    done
fi
if [[ -n $DNS_PORT ]]; then
    DEAD_DNS_PORT=$(free_udp_port)
    printf '{"agent": {"dns_servers": ["127.0.0.1:%s"]}, "targets": []}\n' "$DEAD_DNS_PORT" \
        >"$T/dns.json"
    run check -c "$T/dns.json" --json --dns-server "127.0.0.1:$DNS_PORT" "tcp://cli.test:$LISTEN_PORT"
    assert "check --dns-server 127.0.0.1:PORT resolves cli.test through the dnsmasq: exit 0" rc_is 0
    assert "... one record, ok, on address 127.0.0.1, with a dns timing" \
        json_is '.verdict == "ok" and .address == "127.0.0.1" and .host == "cli.test"
                 and (.timings_ms.dns | type == "number")' '"verdict": *"ok"'
    run check -c "$T/dns.json" --json "tcp://cli.test:$LISTEN_PORT"
    assert "... and without --dns-server the configuration's dead server gives dns_error: exit 1" \
        eval 'rc_is 1 && json_is ".verdict == \"dns_error\"" "\"verdict\": *\"dns_error\""'
    run check --json --dns-server "127.0.0.1:$DNS_PORT" "tcp://nope.test:$LISTEN_PORT"
    assert "check --dns-server on a name the server does not know: dns_error nxdomain, exit 1" \
        eval 'rc_is 1 && json_is ".verdict == \"dns_error\" and .reason == \"nxdomain\"" "nxdomain"'
else
    skip "check --dns-server against a dnsmasq on loopback" \
        "dnsmasq is not installed or did not start: $(head -c 200 "$T/dnsmasq.err" 2>/dev/null)"
fi

# --- table output and colour ------------------------------------------------------

run check "$OPEN_URL" "$CLOSED_URL"
assert "table output exits 1 (one probe refused)" rc_is 1
assert "table output to a non-TTY has no ESC byte" no_esc "$T/out"
assert "table output has a header line with TARGET and VERDICT" \
    eval 'grep -qE "TARGET.*VERDICT|VERDICT.*TARGET" "$T/out"'

if command -v script >/dev/null 2>&1 && script -qec true /dev/null </dev/null >/dev/null 2>&1; then
    cmd=$(printf '%q check %q %q' "$VPCPROBE" "$OPEN_URL" "$CLOSED_URL")
    LAST_CMD="NO_COLOR=1 script -qec '$cmd' /dev/null"
    NO_COLOR=1 timeout 30 script -qec "$cmd" /dev/null </dev/null >"$T/out" 2>"$T/err"
    RC=$?
    assert "on a TTY with NO_COLOR=1 the table has no ESC byte" \
        eval 'no_esc "$T/out" && grep -qE "TARGET.*VERDICT|VERDICT.*TARGET" "$T/out"'
    LAST_CMD="env -u NO_COLOR TERM=xterm script -qec '$cmd' /dev/null"
    env -u NO_COLOR TERM=xterm timeout 30 script -qec "$cmd" /dev/null </dev/null >"$T/out" 2>"$T/err"
    RC=$?
    assert "on a TTY without NO_COLOR the verdicts are coloured (an ESC [ sequence)" \
        eval '! no_esc "$T/out" && grep -q $'"'"'\e\['"'"' "$T/out"'
else
    skip "on a TTY with NO_COLOR=1 the table has no ESC byte" "util-linux script is not available"
    skip "on a TTY without NO_COLOR the verdicts are coloured" "util-linux script is not available"
fi
run version --help
assert "version --help exits 0 and prints a usage" \
    eval '[[ $RC -eq 0 ]] && grep -q "Usage: vpcprobe version" "$T/out"'
run version extra
assert "version with an argument exits 2 naming it" \
    eval '[[ $RC -eq 2 ]] && grep -q "unexpected argument .extra." "$T/err"'

echo "1..$n"
if [[ $failed -gt 0 ]]; then
    echo "# $failed of $n failed"
    exit 1
fi
exit 0
