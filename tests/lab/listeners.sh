#!/usr/bin/env bash
# tests/lab/listeners.sh — `vpcprobe listeners` against real sockets (issue 3).
#
# In a network namespace of its own (vplst<PID>, addresses 198.18.7.1/32 and
# fd00:198:18:7::1/128 on its lo, per the network rule in DESIGN.md), one
# python3 process opens listeners with every scope:
#
#     8001 127.0.0.1                      loopback_only
#     8002 ::1                            loopback_only
#     8003 127.0.0.1 + ::1                loopback_only
#     8004 0.0.0.0 (backlog 64)           all_interfaces
#     8005 [::] IPV6_V6ONLY off           all_interfaces
#     8006 [::] IPV6_V6ONLY on            specific_address ["::"]
#     8007 198.18.7.1                     specific_address
#     8008 fd00:198:18:7::1               specific_address
#     8009 127.0.0.1 + 198.18.7.1         specific_address
#     8010 198.18.7.1, listen(1), 3 connects never accepted: "listen queue overflowing"
#     8011 nothing                        not_listening
#     8012 0.0.0.0 + [::] IPV6_V6ONLY on  all_interfaces
#
# and the test asserts what `vpcprobe listeners --json` says through netlink
# and through the /proc fallback (VPCPROBE_LISTENERS_SOURCE=proc).
#
# Env: VPCPROBE (the binary), TESTS_DIR (unused here). Needs root and
# `ip netns`; exits 77 (skipped) without them.
set -u

VPCPROBE=${VPCPROBE:?set VPCPROBE to the vpcprobe binary}
NS=vplst$$
READY_TIMEOUT=15
TMP=
SERVER_PID=
N=0
FAILED=0

skip() { echo "listeners: SKIP: $*" >&2; exit 77; }

[[ $EUID -eq 0 ]] || skip "needs root to create a network namespace (uid $EUID)"
for tool in ip jq python3; do
    command -v "$tool" >/dev/null 2>&1 || skip "'$tool' is not installed"
done

cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    ip netns del "$NS" 2>/dev/null
    [[ -n $TMP ]] && rm -rf -- "$TMP"
}
trap cleanup EXIT

ip netns add "$NS" 2>/dev/null || skip "'ip netns add' is not permitted here"

# shellcheck source=tests/lab/tap.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tap.sh"

# check DESCRIPTION JSON JQ-EXPRESSION: the expression must print true.
check() {
    local got
    got=$(jq -e "$3" <<<"$2" 2>&1)
    ok $? "$1"
    [[ $got == true ]] || echo "#   jq '$3' gave: $got" >&2
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vplst.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }

ip -n "$NS" link set lo up &&
    ip -n "$NS" addr add 198.18.7.1/32 dev lo &&
    ip -n "$NS" -6 addr add fd00:198:18:7::1/128 dev lo ||
    { echo "listeners: addressing $NS failed" >&2; exit 1; }

# The services: one process, so one pid to expect. Spec ADDR,PORT,V6ONLY,BACKLOG.
cat >"$TMP/serve.py" <<'EOF'
import os, select, signal, socket, sys

socks, conns = [], []
for spec in sys.argv[1:]:
    addr, port, v6only, backlog = spec.split(",")
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    s.bind((addr, int(port)))
    s.listen(int(backlog))
    socks.append(s)
# Port 8010: three connections that are never accepted. The kernel queues
# backlog + 1 = 2 and drops the third SYN; wait until those two are done.
for i in range(3):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setblocking(False)
    c.connect_ex(("198.18.7.1", 8010))
    conns.append(c)
_, w, _ = select.select([], conns[:2], [], 10)
if len(w) != 2:
    sys.exit("the first two connections to 8010 did not complete")
print("ready", os.getpid(), flush=True)
signal.pause()
EOF

mkfifo "$TMP/ready" || exit 1
ip netns exec "$NS" python3 -u "$TMP/serve.py" \
    127.0.0.1,8001,0,16 ::1,8002,1,16 127.0.0.1,8003,0,16 ::1,8003,1,16 0.0.0.0,8004,0,64 \
    ::,8005,0,32 ::,8006,1,32 198.18.7.1,8007,0,16 fd00:198:18:7::1,8008,1,16 \
    127.0.0.1,8009,0,16 198.18.7.1,8009,0,16 198.18.7.1,8010,0,1 0.0.0.0,8012,0,16 ::,8012,1,16 \
    >"$TMP/ready" 2>"$TMP/serve.err" &
SERVER_PID=$!
exec {fd}<"$TMP/ready"
line=
read -r -t "$READY_TIMEOUT" -u "$fd" line
exec {fd}<&-
if [[ $line != "ready "* ]]; then
    echo "listeners: the services did not become ready within ${READY_TIMEOUT}s (got '$line'):" >&2
    sed 's/^/listeners:   /' "$TMP/serve.err" >&2
    exit 1
fi
PYPID=${line#ready }

PORTS=(8001 8002 8003 8004 8005 8006 8007 8008 8009 8010 8011 8012)
nl=$(ip netns exec "$NS" env VPCPROBE_LISTENERS_SOURCE=netlink "$VPCPROBE" listeners --json "${PORTS[@]}")
ok $? "listeners --json exits 0 (netlink)"
check "netlink is the source" "$nl" '.source == "netlink"'
check "one row per asked port, in order" "$nl" '[.ports[].port] == [8001,8002,8003,8004,8005,8006,8007,8008,8009,8010,8011,8012]'

# scope PORT SCOPE ADDRESSES-JSON
scope() {
    check "port $1: $2 $3" "$nl" \
        ".ports[] | select(.port == $1) | .scope == \"$2\" and .addresses == $3"
}
scope 8001 loopback_only '["127.0.0.1"]'
scope 8002 loopback_only '["::1"]'
scope 8003 loopback_only '["127.0.0.1","::1"]'
scope 8004 all_interfaces '["0.0.0.0"]'
scope 8005 all_interfaces '["::"]'
scope 8006 specific_address '["::"]'
scope 8007 specific_address '["198.18.7.1"]'
scope 8008 specific_address '["fd00:198:18:7::1"]'
scope 8009 specific_address '["127.0.0.1","198.18.7.1"]'
scope 8011 not_listening '[]'
scope 8012 all_interfaces '["0.0.0.0","::"]'

check "IPV6_V6ONLY off on 8005, on on 8006 and ::1, null for IPv4" "$nl" \
    '([.ports[] | select(.port == 8005) | .sockets[0].v6only] == [false]) and
     ([.ports[] | select(.port == 8006) | .sockets[0].v6only] == [true]) and
     ([.ports[] | select(.port == 8002) | .sockets[0].v6only] == [true]) and
     ([.ports[] | select(.port == 8004) | .sockets[0].v6only] == [null])'
check "families" "$nl" \
    '[.ports[] | select(.port == 8003) | .sockets[].family] == ["ipv4","ipv6"]'
check "every socket is owned by the service process ($PYPID)" "$nl" \
    "[.ports[].sockets[].pid] | length == 14 and all(. == $PYPID)"
check "its name is python's" "$nl" '[.ports[].sockets[].process] | all(startswith("python"))'
check "the backlog maximum is what listen() got" "$nl" \
    '([.ports[] | select(.port == 8004) | .sockets[0].queue] == [{"current":0,"max":64}]) and
     ([.ports[] | select(.port == 8005) | .sockets[0].queue.max] == [32])'
check "a full accept queue is \"listen queue overflowing\"" "$nl" \
    '.ports[] | select(.port == 8010) | .finding == "listen queue overflowing" and
     .sockets[0].queue.max == 1 and .sockets[0].queue.current >= 1'
check "no other finding" "$nl" '[.ports[] | select(.port != 8010) | .finding] | all(. == null)'

all=$(ip netns exec "$NS" "$VPCPROBE" listeners --json)
ok $? "listeners --json without ports exits 0"
check "without ports: every socket, and nothing else" "$all" \
    '(.sockets | length) == 14 and ([.sockets[].port] | unique) ==
     [8001,8002,8003,8004,8005,8006,8007,8008,8009,8010,8012] and .source == "netlink"'

# The /proc fallback must give the same answer, but for what /proc cannot
# show: the backlog maximum (null, so no finding) and IPV6_V6ONLY (null, so
# [::] is taken to take IPv4 too, the Linux default).
pr=$(ip netns exec "$NS" env VPCPROBE_LISTENERS_SOURCE=proc "$VPCPROBE" listeners --json "${PORTS[@]}")
ok $? "listeners --json exits 0 (proc)"
check "proc is the source" "$pr" '.source == "proc"'
same='[.ports[] | select(.port != 8006) | {port, scope, addresses,
        s: [.sockets[] | {address, port, family, pid, process, c: .queue.current}]}]'
nlv=$(jq -c "$same" <<<"$nl")
prv=$(jq -c "$same" <<<"$pr")
[[ -n $nlv && $nlv == "$prv" ]]
ok $? "proc and netlink agree on scopes, addresses, owners and queues"
[[ $nlv == "$prv" ]] || printf '#   netlink: %s\n#   proc:    %s\n' "$nlv" "$prv" >&2
check "proc: [::] with IPV6_V6ONLY on is taken as all_interfaces, v6only unknown" "$pr" \
    '.ports[] | select(.port == 8006) | .scope == "all_interfaces" and .sockets[0].v6only == null'
check "proc: no backlog maximum, so no finding" "$pr" \
    '([.ports[].sockets[].queue.max] | all(. == null)) and ([.ports[].finding] | all(. == null))'

# The table for a person.
table=$(ip netns exec "$NS" env NO_COLOR=1 "$VPCPROBE" listeners 8001 8004 8010)
ok $? "the table exits 0"
grep -Eq '^ +8001  loopback_only +127\.0\.0\.1 ' <<<"$table" &&
    grep -Eq '^ +8004  all_interfaces +0\.0\.0\.0 +[0-9]+  python' <<<"$table" &&
    grep -q 'listen queue overflowing' <<<"$table" && ! grep -q $'\033' <<<"$table"
ok $? "the table shows scope, owner and finding, without colour"
[[ $FAILED -eq 0 ]] || printf '%s\n' "$table" | sed 's/^/#   /' >&2

ip netns exec "$NS" "$VPCPROBE" listeners 8001 x >/dev/null 2>"$TMP/err"
rc=$?
[[ $rc -eq 2 ]] && grep -q "port 'x'" "$TMP/err"
ok $? "a bad port exits 2 and names the argument (rc $rc)"

echo "1..$N"
exit "$FAILED"
