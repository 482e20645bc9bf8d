#!/usr/bin/env bash
# tests/lab/verdicts.sh 4|6 — every TCP verdict against the two-namespace lab.
#
# Builds the lab (tests/lab/lab.sh), runs `vpcprobe check --json` in the
# client namespace against the server's fingerprint ports 9000..9007 and the
# no-route address, and checks each record with jq. Prints "ok N - ..." /
# "not ok N - ..." lines; exit 0 when all pass, 1 when any fails, 77 (skip)
# without root, network namespaces, nft or jq.
#
# Env: VPCPROBE (the binary, set by meson), TESTS_DIR (tests/ source dir).

set -u

family=${1:-}
case $family in
4 | 6) ;;
*)
    echo "usage: $0 4|6" >&2
    exit 2
    ;;
esac

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VPCPROBE=${VPCPROBE:-$TESTS_DIR/../build/vpcprobe}

# shellcheck source=tests/lab/lab.sh
source "$TESTS_DIR/lab/lab.sh"
lab_require_root
if ! command -v jq >/dev/null 2>&1; then
    echo "SKIP: jq is not installed" >&2
    exit 77
fi
if [[ ! -x $VPCPROBE ]]; then
    echo "Bail out! VPCPROBE=$VPCPROBE is not an executable" >&2
    exit 1
fi

WORK=
LOCAL_PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${LOCAL_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    lab_down
    [[ -n $WORK ]] && rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vpverdicts.XXXXXX") || exit 1

if ! lab_up; then
    echo "Bail out! lab_up failed"
    exit 1
fi

if [[ $family == 4 ]]; then
    server=$LAB_SERVER4
    noroute=$LAB_NOROUTE4
    url_host() { printf '%s' "$1"; }
else
    server=$LAB_SERVER6
    noroute=$LAB_NOROUTE6
    url_host() { printf '[%s]' "$1"; }
fi
url() { printf 'tcp://%s:%s' "$(url_host "$1")" "$2"; }

TIMEOUT_MS=1000

# --- TAP-ish helpers -------------------------------------------------------

n=0
failed=0
pass() {
    n=$((n + 1))
    echo "ok $n - $1"
}
fail() {
    local line
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    shift
    for line in "$@"; do
        printf '#   %s\n' "$line"
    done
}

# The records that parsed, one per line (non-JSON lines are left out here
# and caught by their own assertion).
RECS=$WORK/records.jsonl

# assert_url DESC URL JQ-FILTER: the record whose url is URL satisfies FILTER.
assert_url() {
    local desc=$1 u=$2 filter=$3 rec
    rec=$(jq -c --arg u "$u" 'select(.url == $u)' "$RECS" | head -n 1)
    if [[ -n $rec ]] && jq -e "$filter" <<<"$rec" >/dev/null 2>&1; then
        pass "$desc"
    else
        fail "$desc" "expected: $(tr -s ' \n' ' ' <<<"$filter")" "record:   ${rec:-<no record with url $u>}"
    fi
}

# --- listeners on the client itself, for localhost_only --------------------
# A service bound to loopback only, probed on the client's own address, is
# localhost_only; one bound to the client's address only, probed on
# loopback, is refused with reason bound_other_address.

LOCAL_PIDS=()
# start_local PORT ADDR: a listener in the client namespace, ready when this returns.
start_local() {
    local fifo=$WORK/ready.$1 line=
    mkfifo "$fifo" || return 1
    # Not through the lab_client function: '&' would fork a subshell, and $!
    # would be its PID, not the listener's. ip netns exec execs in place.
    ip netns exec "$LAB_CLIENT_NS" python3 "$TESTS_DIR/lab/listener.py" "$1" "$2" >"$fifo" &
    LOCAL_PIDS+=($!)
    read -r -t 15 line <"$fifo"
    [[ $line == "ready $1" ]]
}
if [[ $family == 4 ]]; then
    loop_addr=127.0.0.1 own=$LAB_CLIENT4
else
    loop_addr=::1 own=$LAB_CLIENT6
fi
start_local 9100 "$loop_addr" || fail "a listener on $loop_addr:9100 starts"
start_local 9101 "$own" || fail "a listener on $own:9101 starts"

# --- the probe run ---------------------------------------------------------

urls=()
for port in 9000 9001 9002 9003 9004 9005 9006 9007; do
    urls+=("$(url "$server" "$port")")
done
urls+=("$(url "$noroute" 9000)")
urls+=("$(url "$own" 9100)" "$(url "$loop_addr" 9101)")

echo "# IPv$family lab: client $LAB_CLIENT_NS, server $LAB_SERVER_NS ($server)"
echo "# $VPCPROBE check --json --timeout-ms $TIMEOUT_MS ${urls[*]}"
lab_client timeout 60 "$VPCPROBE" check --json --timeout-ms "$TIMEOUT_MS" "${urls[@]}" \
    >"$WORK/out" 2>"$WORK/err"
rc=$?
jq -R -c 'fromjson? | objects' "$WORK/out" >"$RECS" 2>/dev/null
jq -r '"# \(.url): \(.verdict)/\(.reason) errno=\(.errno) total=\(.timings_ms.total) ms"' \
    "$RECS" 2>/dev/null

show_output() {
    local f
    for f in "$WORK/out" "$WORK/err"; do
        echo "# --- $(basename "$f"):"
        sed 's/^/#   /' "$f"
    done
}

if [[ $rc -eq 1 ]]; then
    pass "check exits 1 when some probes are not ok"
else
    fail "check exits 1 when some probes are not ok" "exit status: $rc"
    show_output
fi

if jq -R -s -e 'split("\n") | map(select(length > 0) | try (fromjson | type == "object") catch false)
                | length > 0 and all' "$WORK/out" >/dev/null 2>&1; then
    pass "every stdout line is a JSON object"
else
    fail "every stdout line is a JSON object"
    show_output
fi

nrec=$(wc -l <"$RECS")
missing=()
for u in "${urls[@]}"; do
    c=$(jq -c --arg u "$u" 'select(.url == $u)' "$RECS" | wc -l)
    [[ $c -eq 1 ]] || missing+=("$u: $c records")
done
if [[ $nrec -eq ${#urls[@]} && ${#missing[@]} -eq 0 ]]; then
    pass "one record per URL (${#urls[@]})"
else
    fail "one record per URL (${#urls[@]})" "records: $nrec" "${missing[@]}"
fi

# Per-port fingerprints.
u=$(url "$server" 9000)
assert_url "$u -> ok/connected, connect time measured" "$u" \
    '.verdict == "ok" and .reason == "connected" and (.timings_ms.connect | type) == "number"'
u=$(url "$server" 9001)
assert_url "$u (nothing listens) -> refused/rst_to_syn, ECONNREFUSED" "$u" \
    '.verdict == "refused" and .reason == "rst_to_syn" and .errno == "ECONNREFUSED"'
# "Never before the deadline": the timeout is decided at >= the deadline.
u=$(url "$server" 9002)
assert_url "$u (nft drop) -> timeout/syn_no_answer, no connect time, total >= $TIMEOUT_MS ms, the detail names $TIMEOUT_MS ms" "$u" \
    ".verdict == \"timeout\" and .reason == \"syn_no_answer\" and .timings_ms.connect == null
     and (.timings_ms.total | type) == \"number\" and .timings_ms.total >= $TIMEOUT_MS
     and (.detail | contains(\"within $TIMEOUT_MS ms\"))"
u=$(url "$server" 9003)
assert_url "$u (reject with tcp reset) -> refused/rst_to_syn" "$u" \
    '.verdict == "refused" and .reason == "rst_to_syn"'
u=$(url "$server" 9004)
assert_url "$u (icmpx admin-prohibited) -> unreachable/admin_prohibited" "$u" \
    '.verdict == "unreachable" and .reason == "admin_prohibited"'
u=$(url "$server" 9005)
assert_url "$u (icmpx host-unreachable) -> unreachable/host_unreachable" "$u" \
    '.verdict == "unreachable" and .reason == "host_unreachable"'
u=$(url "$server" 9006)
assert_url "$u (icmpx no-route) -> unreachable/net_unreachable" "$u" \
    '.verdict == "unreachable" and .reason == "net_unreachable"'
u=$(url "$server" 9007)
assert_url "$u (icmpx port-unreachable) -> unreachable/port_unreachable" "$u" \
    '.verdict == "unreachable" and .reason == "port_unreachable"'
u=$(url "$noroute" 9000)
assert_url "$u (no route in the client) -> unreachable/no_route" "$u" \
    '.verdict == "unreachable" and .reason == "no_route"'
u=$(url "$own" 9100)
assert_url "$u (listens on $loop_addr only) -> localhost_only/loopback_bind, naming the process" "$u" \
    '.verdict == "localhost_only" and .reason == "loopback_bind"
     and (.detail | test("python3")) and (.hint | length) > 0'
u=$(url "$loop_addr" 9101)
assert_url "$u (listens on $own only) -> refused/bound_other_address, naming the address" "$u" \
    ".verdict == \"refused\" and .reason == \"bound_other_address\"
     and (.detail | contains(\"$own\"))"

# Record shape, for every record.
check_all() { # DESC JQ-FILTER: FILTER holds for every record; offenders shown
    local desc=$1 filter=$2 bad line
    bad=$(jq -c "select(($filter) | not)" "$RECS" 2>&1)
    if [[ $nrec -gt 0 && -z $bad ]]; then
        pass "$desc"
    else
        fail "$desc" "expected of every record: $(tr -s ' \n' ' ' <<<"$filter")"
        [[ -n $bad ]] && while IFS= read -r line; do
            printf '#   offender: %s\n' "$line"
        done <<<"$bad"
    fi
}
check_all "every record has time, agent, target, kind, host, address, port, verdict, reason, errno, detail, timings_ms, hint, url" \
    '(["time", "agent", "target", "kind", "host", "address", "port", "verdict", "reason",
       "errno", "detail", "timings_ms", "hint", "url"] - keys) == []'
check_all "every record's timings_ms has dns, connect, tls, protocol, total (number)" \
    '(.timings_ms | type) == "object"
     and (["dns", "connect", "tls", "protocol", "total"] - (.timings_ms | keys)) == []
     and (.timings_ms.total | type) == "number"'
check_all "every record has kind \"tcp\"" '.kind == "tcp"'
check_all "every record's port is a number and its errno a string or null" \
    '(.port | type) == "number" and ((.errno | type) == "string" or .errno == null)'
# shellcheck disable=SC2016  # jq's $m, not the shell's
check_all "every record's address is the address of its URL, its port the URL's port" \
    '(.url | capture("^tcp://\\[?(?<a>[^\\]]+)\\]?:(?<p>[0-9]+)$")) as $m
     | .address == $m.a and .port == ($m.p | tonumber)'
check_all "every non-ok record has a non-empty hint" \
    '.verdict == "ok" or ((.hint | type) == "string" and (.hint | length) > 0)'
check_all "every non-ok record has a non-empty detail" \
    '.verdict == "ok" or ((.detail | type) == "string" and (.detail | length) > 0)'

# A run on the listening port alone is all ok: exit 0.
u=$(url "$server" 9000)
lab_client timeout 60 "$VPCPROBE" check --json --timeout-ms "$TIMEOUT_MS" "$u" \
    >"$WORK/out" 2>"$WORK/err"
rc=$?
if [[ $rc -eq 0 ]] && jq -e -s --arg u "$u" \
    'length == 1 and .[0].url == $u and .[0].verdict == "ok"' "$WORK/out" >/dev/null 2>&1; then
    pass "check $u alone exits 0 with one ok record"
else
    fail "check $u alone exits 0 with one ok record" "exit status: $rc"
    show_output
fi

echo "1..$n"
if [[ $failed -gt 0 ]]; then
    echo "# $failed of $n failed"
    exit 1
fi
exit 0
