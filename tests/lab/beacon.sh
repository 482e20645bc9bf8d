#!/usr/bin/env bash
# tests/lab/beacon.sh — `vpcprobe beacon` between two namespaces (issue 3).
#
#     netns vpb<PID>c (client)               netns vpb<PID>s (beacon)
#     vpb<PID>a 198.18.5.10/24    <-veth->   vpb<PID>b 198.18.5.1/24
#               198.18.6.10/24                         198.18.6.1/24
#
# The beacon listens on 198.18.5.1:18080 with --expect-from 198.18.5.0/28
# --json. curl from 198.18.5.10 (inside) and from 198.18.6.10 (outside),
# each from a known local port, must show up as exactly those arrivals.
# Then 2,000 half-open connections (opened, never written to) must not stop
# a curl from getting its 200, nor the beacon from counting right; and a
# second beacon with --max-connections 16 takes 40 of them, closes 24 at
# once, and answers again once they are gone. SIGTERM: exit 0.
#
# Addresses only from 198.18.0.0/15, per the network rule in DESIGN.md.
# Waits are bounded readiness checks (a connect, a line), never a sleep
# that stands for a duration; nothing asserts a speed.
#
# Env: VPCPROBE (the binary). Needs root, `ip netns`, curl, jq and python3;
# exits 77 (skipped) without them.
set -u

VPCPROBE=${VPCPROBE:?set VPCPROBE to the vpcprobe binary}
ID=$$
CNS=vpb${ID}c
SNS=vpb${ID}s
CIF=vpb${ID}a
SIF=vpb${ID}b
BEACON=198.18.5.1
PORT=18080
PORT_CAP=18081
INSIDE=198.18.5.10
OUTSIDE=198.18.6.10
FLOOD=2000
READY_TIMEOUT=30
TMP=
PIDS=()
N=0
FAILED=0

skip() { echo "beacon: SKIP: $*" >&2; exit 77; }

[[ $EUID -eq 0 ]] || skip "needs root to create network namespaces (uid $EUID)"
for tool in ip jq python3 curl; do
    command -v "$tool" >/dev/null 2>&1 || skip "'$tool' is not installed (scripts/bootstrap installs it)"
done

# The flood holds 2,000 descriptors on each side; the beacon raises its soft
# limit to the hard one, and python3 below does the same.
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < 8192)); then
    ulimit -n 8192 2>/dev/null || skip "RLIMIT_NOFILE's hard limit is $hard and cannot be raised"
fi

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    ip netns del "$CNS" 2>/dev/null
    ip netns del "$SNS" 2>/dev/null
    [[ -n $TMP ]] && rm -rf -- "$TMP"
}
trap cleanup EXIT

# shellcheck source=tests/lab/tap.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tap.sh"

# check DESCRIPTION JQ-EXPRESSION FILE: the expression over all lines (-s) must print true.
check_jq() {
    local got
    got=$(jq -s -e "$2" "$3" 2>&1)
    ok $? "$1"
    [[ $got == true ]] || echo "#   jq '$2' gave: $got" >&2
}

# Bounded poll: wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    echo "# timed out after ${secs}s waiting for $what" >&2
    return 1
}

client() { ip netns exec "$CNS" "$@"; }

connects() { client bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

lines_at_least() { [[ $(wc -l <"$1") -ge $2 ]]; }

# stats_now PID ERRFILE: SIGUSR1, then the counter line it prints.
stats_now() {
    local before
    before=$(grep -c ' arrivals (' "$2")
    kill -USR1 "$1"
    wait_for "$READY_TIMEOUT" "the counters" stats_grew "$2" "$before" || return 1
    grep ' arrivals (' "$2" | tail -n 1
}
stats_grew() { [[ $(grep -c ' arrivals (' "$1") -gt $2 ]]; }

# counter LINE NAME: the number before NAME in a counter line.
counter() { sed -nE "s/.*[ (]([0-9]+) $2.*/\\1/p" <<<"$1"; }

# flood_start PORT COUNT FILE-PREFIX: half-open connections from the client
# namespace; returns once all are connected (its "open N" line), PID in FLOOD_PID.
flood_start() {
    local fd line
    mkfifo "$TMP/$3.ready"
    ip netns exec "$CNS" python3 -u "$TMP/flood.py" "$BEACON" "$1" "$2" \
        >"$TMP/$3.ready" 2>"$TMP/$3.err" </dev/null &
    FLOOD_PID=$!
    PIDS+=("$FLOOD_PID")
    exec {fd}<"$TMP/$3.ready"
    line=
    read -r -t "$READY_TIMEOUT" -u "$fd" line
    exec {fd}<&-
    [[ $line == "open $2" ]] || { echo "# flood: got '$line'" >&2; sed 's/^/#   /' "$TMP/$3.err" >&2; return 1; }
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vpbeacon.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }

ip netns add "$CNS" 2>/dev/null || skip "'ip netns add' is not permitted here"
ip netns add "$SNS" || { echo "ip netns add $SNS failed" >&2; exit 1; }
if ! { ip -n "$CNS" link set lo up && ip -n "$SNS" link set lo up &&
    ip link add "$CIF" netns "$CNS" type veth peer name "$SIF" netns "$SNS" &&
    ip -n "$CNS" addr add "$INSIDE/24" dev "$CIF" && ip -n "$CNS" addr add "$OUTSIDE/24" dev "$CIF" &&
    ip -n "$SNS" addr add "$BEACON/24" dev "$SIF" && ip -n "$SNS" addr add 198.18.6.1/24 dev "$SIF" &&
    ip -n "$CNS" link set "$CIF" up && ip -n "$SNS" link set "$SIF" up; }; then
    echo "beacon: building the namespaces failed" >&2
    exit 1
fi

# Half-open clients: connect, never send, hold until killed.
cat >"$TMP/flood.py" <<'EOF'
import resource, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < n + 64:
    want = n + 64 if hard == resource.RLIM_INFINITY else min(n + 64, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
socks = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(30)
    s.connect((host, port))
    socks.append(s)
print("open %d" % len(socks), flush=True)
signal_wait = __import__("signal").pause
signal_wait()
EOF

# ---- the beacon, two sources ------------------------------------------------

ip netns exec "$SNS" "$VPCPROBE" beacon --listen "$BEACON:$PORT" --expect-from 198.18.5.0/28 \
    --json --name lab-beacon >"$TMP/arrivals.jsonl" 2>"$TMP/beacon.err" &
BEACON_PID=$!
PIDS+=("$BEACON_PID")
wait_for "$READY_TIMEOUT" "the beacon to accept" connects "$BEACON" "$PORT"
ok $? "the beacon accepts connections on $BEACON:$PORT"

code=$(client curl -sS -m 10 --interface "$INSIDE" --local-port 41001 -o "$TMP/inside.body" \
    -w '%{http_code}' "http://$BEACON:$PORT/from-inside?x=ECHOME" 2>"$TMP/curl.err")
ok $([[ $code == 200 ]]; echo $?) "curl from $INSIDE gets 200 (got '$code')"
grep -qx "vpcprobe beacon on lab-beacon: your connection from $INSIDE:41001 arrived" "$TMP/inside.body"
ok $? "the answer names the agent and the source $INSIDE:41001"
! grep -q ECHOME "$TMP/inside.body"
ok $? "the answer does not echo the request"

code=$(client curl -sS -m 10 --interface "$OUTSIDE" --local-port 41002 -o "$TMP/outside.body" \
    -w '%{http_code}' "http://$BEACON:$PORT/from-outside" 2>>"$TMP/curl.err")
ok $([[ $code == 200 ]]; echo $?) "curl from $OUTSIDE gets 200 (got '$code')"

check_jq "one arrival from $INSIDE:41001, inside expect_from" \
    "[.[] | select(.source == \"$INSIDE\" and .source_port == 41001)] |
     length == 1 and .[0].expected == true and .[0].expect_from == \"198.18.5.0/28\" and
     .[0].reason == \"inside_expect_from\" and (.[0].detail | contains(\"inside expect_from\"))" \
    "$TMP/arrivals.jsonl"
check_jq "one arrival from $OUTSIDE:41002, outside expect_from" \
    "[.[] | select(.source == \"$OUTSIDE\" and .source_port == 41002)] |
     length == 1 and .[0].expected == false and .[0].expect_from == null and
     .[0].reason == \"outside_expect_from\"" "$TMP/arrivals.jsonl"
check_jq "every record is a beacon result of this agent and address" \
    "all(.[]; .kind == \"beacon\" and .agent == \"lab-beacon\" and .listen == \"$BEACON:$PORT\" and
     .verdict == \"ok\" and (.time | test(\"Z\$\")))" "$TMP/arrivals.jsonl"
check_jq "arrivals come only from the two sources" \
    "all(.[]; .source == \"$INSIDE\" or .source == \"$OUTSIDE\")" "$TMP/arrivals.jsonl"

# ---- 2,000 half-open connections -------------------------------------------

before=$(wc -l <"$TMP/arrivals.jsonl")
flood_start "$PORT" "$FLOOD" flood
ok $? "$FLOOD half-open connections are open"
code=$(client curl -sS -m 20 --interface "$INSIDE" --local-port 41003 -o "$TMP/flood.body" \
    -w '%{http_code}' "http://$BEACON:$PORT/during-flood" 2>>"$TMP/curl.err")
ok $([[ $code == 200 ]]; echo $?) "during the flood a curl still gets 200 (got '$code')"
wait_for "$READY_TIMEOUT" "every flood arrival" lines_at_least "$TMP/arrivals.jsonl" $((before + FLOOD + 1))
ok $? "every half-open connection is recorded as an arrival"
kill -0 "$BEACON_PID" 2>/dev/null
ok $? "the beacon is alive after the flood"
line=$(stats_now "$BEACON_PID" "$TMP/beacon.err")
ok $? "SIGUSR1 prints the counters: $line"
arrivals=$(counter "$line" arrivals)
inside=$(counter "$line" inside)
outside=$(counter "$line" outside)
answered=$(counter "$line" answered)
open=$(counter "$line" 'connections open')
records=$(wc -l <"$TMP/arrivals.jsonl")
ok $([[ -n $arrivals && $arrivals -eq $records ]]; echo $?) "counted arrivals ($arrivals) = records ($records)"
ok $([[ -n $inside && $((inside + outside)) -eq $arrivals ]]; echo $?) "inside + outside = arrivals"
ok $([[ $answered -ge 3 && $(counter "$line" 'over the connection cap') -eq 0 &&
    $(counter "$line" 'accept errors') -eq 0 ]]; echo $?) "3 answered, none over the cap, no accept error"
ok $([[ -n $open && $open -le $((FLOOD + 4)) ]]; echo $?) "at most the flood and the curls are held ($open)"
kill "$FLOOD_PID"
wait "$FLOOD_PID" 2>/dev/null

# ---- over the cap -------------------------------------------------------------

ip netns exec "$SNS" "$VPCPROBE" beacon --listen "$BEACON:$PORT_CAP" --max-connections 16 \
    --name lab-cap >"$TMP/cap.txt" 2>"$TMP/cap.err" &
CAP_PID=$!
PIDS+=("$CAP_PID")
wait_for "$READY_TIMEOUT" "the capped beacon to accept" connects "$BEACON" "$PORT_CAP"
ok $? "a beacon with --max-connections 16 accepts"
flood_start "$PORT_CAP" 40 capflood
ok $? "40 half-open connections are open against it"
wait_for "$READY_TIMEOUT" "40 arrivals" lines_at_least "$TMP/cap.txt" 41
line=$(stats_now "$CAP_PID" "$TMP/cap.err")
ok $([[ $(counter "$line" 'over the connection cap') -eq 24 ]]; echo $?) \
    "24 of them were over the cap: $line"
ok $([[ $(grep -c 'over the connection cap: closed at once' "$TMP/cap.txt") -eq 24 ]]; echo $?) \
    "and are printed as such"
kill "$FLOOD_PID"
wait "$FLOOD_PID" 2>/dev/null
# The held ones see EOF and are let go: the beacon answers again.
wait_for "$READY_TIMEOUT" "the capped beacon to answer again" \
    client curl -sS -f -m 10 -o /dev/null "http://$BEACON:$PORT_CAP/"
ok $? "once the half-open clients are gone, it answers again"

# ---- stop -----------------------------------------------------------------------

for pid in "$BEACON_PID" "$CAP_PID"; do
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    ok $([[ $rc == 0 ]]; echo $?) "SIGTERM: the beacon (pid $pid) exits 0 (got $rc)"
done
PIDS=()
grep -q 'vpcprobe beacon: listening on 198.18.5.1:18080' "$TMP/beacon.err"
ok $? "the beacon says where it listens"

if ((FAILED)); then
    echo "# beacon stderr:" >&2
    sed 's/^/#   /' "$TMP/beacon.err" "$TMP/cap.err" "$TMP/curl.err" >&2
fi
exit $FAILED
