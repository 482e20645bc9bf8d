#!/usr/bin/env bash
# tests/lab/peer.sh — remote evidence for a refusal (issue 3): two agents.
#
# Builds the two-namespace lab (tests/lab/lab.sh). In the server namespace,
# which also gets 198.18.0.3/32 on its lo (the "other address" a service may
# be bound to), one python3 process listens on
#
#     127.0.0.1:8081                                           -> localhost_only
#     198.18.0.3:8082                                          -> bound_other_address
#     (nothing on 8083)                                        -> refused, confirmed
#     198.18.0.2:8084                                          -> ok (nothing asked)
#     0.0.0.0:9003, which the lab's nft rejects with a reset   -> refused, yet listening
#     198.18.0.2:8086, an HTTP server that is no vpcprobe      -> its answer is no table
#
# and `vpcprobe run` serves its status page on 198.18.0.2:9464 with a
# status_token_file. In the client namespace, `vpcprobe check --json` probes
# those ports with agent_url/agent_token_file and the records are checked
# with jq: verdict, reason and detail; `vpcprobe run` in the client namespace
# shows the same on its /api/v1/status. Then the cases where the peer cannot
# be asked: a wrong token and no token (401), an agent_url where nothing
# listens (RST), one where the SYN is dropped (the ask's deadline) and one
# that is no agent: the verdict stays refused and the detail says why.
#
# Prints "ok N - ..." / "not ok N - ..."; exit 0 when all pass, 1 when any
# fails, 77 (skip) without root, network namespaces, nft, jq or curl.
#
# Env: VPCPROBE (the binary, set by meson), TESTS_DIR (tests/ source dir).

set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VPCPROBE=${VPCPROBE:-$TESTS_DIR/../build/vpcprobe}
READY_TIMEOUT=15

# shellcheck source=tests/lab/lab.sh
source "$TESTS_DIR/lab/lab.sh"
lab_require_root
for tool in jq curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed" >&2
        exit 77
    fi
done
if [[ ! -x $VPCPROBE ]]; then
    echo "Bail out! VPCPROBE=$VPCPROBE is not an executable" >&2
    exit 1
fi

WORK=
SERVICES_PID=
AGENT_PID=
CLIENT_PID=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "$CLIENT_PID" "$AGENT_PID" "$SERVICES_PID"; do
        if [[ -n $pid ]]; then
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    lab_down
    [[ -n $WORK ]] && rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vppeer.XXXXXX") || exit 1

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
# shellcheck source=tests/lab/tap.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tap.sh"

# --- the lab, the services and the target's agent ----------------------------

lab_up || bail "lab_up failed"
S4=$LAB_SERVER4
S6=$LAB_SERVER6
OTHER4=198.18.0.3
lab_server ip addr add "$OTHER4/32" dev lo || bail "adding $OTHER4 to the server's lo failed"

cat >"$WORK/services.py" <<'EOF'
import os, signal, socket, sys, threading

def listen(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)
    return s

def not_an_agent(s):
    # An HTTP server that is not vpcprobe: 200 and a body that is no table.
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(5)
            c.recv(4096)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 19\r\n"
                      b"Connection: close\r\n\r\n<html>hello</html>\n")
        except OSError:
            pass
        c.close()

socks = [listen(a, int(p)) for a, p in (x.split(",") for x in sys.argv[1:])]
web = listen("198.18.0.2", 8086)
threading.Thread(target=not_an_agent, args=(web,), daemon=True).start()
print("ready", os.getpid(), flush=True)
signal.pause()
EOF

mkfifo "$WORK/ready" || exit 1
# ip netns exec execs in place, so $! is python's own PID.
ip netns exec "$LAB_SERVER_NS" python3 -u "$WORK/services.py" \
    127.0.0.1,8081 "$OTHER4,8082" "$S4,8084" "0.0.0.0,$LAB_PORT_RESET" \
    >"$WORK/ready" 2>"$WORK/services.err" &
SERVICES_PID=$!
exec {fd}<"$WORK/ready"
line=
read -r -t "$READY_TIMEOUT" -u "$fd" line
exec {fd}<&-
if [[ $line != "ready "* ]]; then
    sed 's/^/#   /' "$WORK/services.err"
    bail "the services did not become ready within ${READY_TIMEOUT}s (got '$line')"
fi
PYPID=${line#ready }

TOKEN=peer-token-$RANDOM$RANDOM$RANDOM
printf '%s\n' "$TOKEN" >"$WORK/status.token"
printf '%s\n' "$TOKEN" >"$WORK/agent.token"
printf 'wrong-%s\n' "$TOKEN" >"$WORK/wrong.token"
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$WORK/auth.header"
chmod 600 "$WORK"/*.token "$WORK/auth.header"
mkdir -p "$WORK/state"

AGENT_URL=http://$S4:9464
cat >"$WORK/server.json" <<EOF
{
  "agent": { "name": "peer-target", "status_listen": "$S4:9464",
             "status_token_file": "$WORK/status.token", "state_dir": "$WORK/state" },
  "targets": []
}
EOF
ip netns exec "$LAB_SERVER_NS" "$VPCPROBE" run -c "$WORK/server.json" \
    >/dev/null 2>"$WORK/agent.err" &
AGENT_PID=$!

# Ready once its status server answers from the client's side.
agent_ready() {
    [[ $(lab_client curl -s -o /dev/null -w '%{http_code}' -H "@$WORK/auth.header" \
        --max-time 2 "$AGENT_URL/healthz") == 200 ]]
}
for ((i = 0; i < READY_TIMEOUT * 20; i++)); do
    agent_ready && break
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.05
done
if ! agent_ready; then
    sed 's/^/#   agent: /' "$WORK/agent.err"
    bail "the target's agent did not answer on $AGENT_URL within ${READY_TIMEOUT}s"
fi
pass "the target's agent serves its status page on $AGENT_URL"

# --- the probing agent -------------------------------------------------------

# target NAME URL AGENT_URL [TOKEN_FILE]
target() {
    local tok=
    [[ -n ${4:-} ]] && tok=", \"agent_token_file\": \"$4\""
    printf '    { "name": "%s", "url": "%s", "agent_url": "%s"%s },\n' "$1" "$2" "$3" "$tok"
}
{
    echo '{ "defaults": { "timeout_ms": 2500 }, "targets": ['
    target lo "tcp://$S4:8081" "$AGENT_URL" "$WORK/agent.token"
    target lo-http "http://$S4:8081/healthz" "$AGENT_URL" "$WORK/agent.token"
    target lo-v6 "tcp://[$S6]:8081" "$AGENT_URL" "$WORK/agent.token"
    target other "tcp://$S4:8082" "$AGENT_URL" "$WORK/agent.token"
    target none "tcp://$S4:8083" "$AGENT_URL" "$WORK/agent.token"
    target open "tcp://$S4:8084" "$AGENT_URL" "$WORK/agent.token"
    target between "tcp://$S4:$LAB_PORT_RESET" "$AGENT_URL" "$WORK/agent.token"
    target wrong-token "tcp://$S4:8081" "$AGENT_URL" "$WORK/wrong.token"
    target no-token "tcp://$S4:8081" "$AGENT_URL"
    target no-agent "tcp://$S4:8081" "http://$S4:$LAB_PORT_CLOSED" "$WORK/agent.token"
    target silent-agent "tcp://$S4:8081" "http://$S4:$LAB_PORT_DROP" "$WORK/agent.token"
    target not-an-agent "tcp://$S4:8081" "http://$S4:8086" "$WORK/agent.token"
    echo '    { "name": "plain", "url": "tcp://'"$S4"':8081" } ] }'
} >"$WORK/client.json"

RECS=$WORK/records.jsonl
lab_client "$VPCPROBE" check --json -c "$WORK/client.json" >"$RECS" 2>"$WORK/check.err"
rc=$?
if [[ $rc -eq 1 ]]; then
    pass "check exits 1: some targets are not ok"
else
    fail "check exits 1" "exit $rc; stderr:" "$(cat "$WORK/check.err")"
fi

# expect NAME VERDICT REASON DETAIL-SUBSTRING
expect() {
    local name=$1 verdict=$2 reason=$3 sub=$4 rec
    rec=$(jq -c --arg n "$name" 'select(.target == $n)' "$RECS" | head -n 1)
    if [[ -n $rec ]] &&
        jq -e --arg v "$verdict" --arg r "$reason" --arg s "$sub" \
            '.verdict == $v and .reason == $r and (.detail | contains($s)) and
             (.hint | type == "string")' <<<"$rec" >/dev/null 2>&1; then
        pass "$name: $verdict $reason, '$sub'"
    else
        fail "$name: $verdict $reason, detail with '$sub'" "record: ${rec:-<none>}"
    fi
}

BIND="bind it to 0.0.0.0 or to the VM's internal address"
expect lo localhost_only loopback_bind \
    "port 8081 on $S4 listens on 127.0.0.1 only (pid $PYPID python3), per the agent at $AGENT_URL; $BIND"
expect lo-http localhost_only loopback_bind \
    "port 8081 on $S4 listens on 127.0.0.1 only (pid $PYPID python3), per the agent at $AGENT_URL"
expect lo-v6 localhost_only loopback_bind \
    "port 8081 on $S6 listens on 127.0.0.1 only (pid $PYPID python3), per the agent at $AGENT_URL"
expect other refused bound_other_address \
    "port 8082 on $S4 listens on $OTHER4 only (pid $PYPID python3), not on $S4, per the agent at $AGENT_URL"
expect none refused rst_to_syn \
    "connection refused: $S4 answered the SYN to port 8083 with a reset; the agent at $AGENT_URL confirms that nothing listens on port 8083"
expect open ok connected ""
expect between refused rst_to_syn \
    "connection refused, yet per the agent at $AGENT_URL port $LAB_PORT_RESET listens on 0.0.0.0 (pid $PYPID python3), which takes $S4"
UNASKED="could not be asked for its listeners:"
expect wrong-token refused rst_to_syn \
    "the agent at $AGENT_URL $UNASKED HTTP 401: the token in agent_token_file is not the agent's status token"
expect no-token refused rst_to_syn \
    "the agent at $AGENT_URL $UNASKED HTTP 401: the agent wants its status token; set agent_token_file"
expect no-agent refused rst_to_syn "the agent at http://$S4:$LAB_PORT_CLOSED $UNASKED cannot connect: Connection refused"
expect silent-agent refused rst_to_syn \
    "the agent at http://$S4:$LAB_PORT_DROP $UNASKED no answer within 1000 ms"
expect not-an-agent refused rst_to_syn \
    "the agent at http://$S4:8086 $UNASKED its answer is not a listener table: not JSON"
# Without agent_url nothing is asked: the probe's own sentence.
expect plain refused rst_to_syn "connection refused: $S4 answered the SYN to port 8081 with a reset"
if jq -e 'select(.target == "plain") | .detail | contains("agent") | not' "$RECS" >/dev/null; then
    pass "plain: no agent is named without agent_url"
else
    fail "plain: no agent is named without agent_url" "$(jq -c 'select(.target == "plain")' "$RECS")"
fi

# --- run: the daemon asks the same way (it shares the runner) ----------------

mkdir -p "$WORK/client-state"
cat >"$WORK/client-run.json" <<EOF
{
  "agent": { "name": "peer-prober", "status_listen": "127.0.0.1:9464",
             "state_dir": "$WORK/client-state" },
  "defaults": { "interval_s": 2, "timeout_ms": 1500 },
  "targets": [
$(target lo "tcp://$S4:8081" "$AGENT_URL" "$WORK/agent.token")
$(target wrong-token "tcp://$S4:8081" "$AGENT_URL" "$WORK/wrong.token" | sed 's/,$//')
  ]
}
EOF
ip netns exec "$LAB_CLIENT_NS" "$VPCPROBE" run -c "$WORK/client-run.json" \
    >/dev/null 2>"$WORK/client-run.err" &
CLIENT_PID=$!
# Ready once every target has finished a run (/-/ready).
client_ready() {
    [[ $(lab_client curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
        http://127.0.0.1:9464/-/ready) == 200 ]]
}
for ((i = 0; i < READY_TIMEOUT * 20; i++)); do
    client_ready && break
    kill -0 "$CLIENT_PID" 2>/dev/null || break
    sleep 0.05
done
STATUS=$(lab_client curl -s --max-time 2 http://127.0.0.1:9464/api/v1/status)
kill "$CLIENT_PID" 2>/dev/null
wait "$CLIENT_PID" 2>/dev/null
CLIENT_PID=
# run_expect NAME VERDICT REASON DETAIL-SUBSTRING
run_expect() {
    if jq -e --arg n "$1" --arg v "$2" --arg r "$3" --arg s "$4" \
        '.targets[] | select(.name == $n) | .verdict == $v and .reason == $r and
         (.detail | contains($s))' <<<"$STATUS" >/dev/null 2>&1; then
        pass "run: $1: $2 $3"
    else
        fail "run: $1: $2 $3, detail with '$4'" \
            "status: $(jq -c --arg n "$1" '.targets[] | select(.name == $n) |
                {verdict, reason, detail}' <<<"$STATUS" 2>&1)" "$(cat "$WORK/client-run.err")"
    fi
}
run_expect lo localhost_only loopback_bind \
    "port 8081 on $S4 listens on 127.0.0.1 only (pid $PYPID python3), per the agent at $AGENT_URL"
run_expect wrong-token refused rst_to_syn "$UNASKED HTTP 401"

count=$(wc -l <"$RECS")
want=$(jq '.targets | length' "$WORK/client.json")
if [[ $count -eq $want ]]; then
    pass "one record per target ($count)"
else
    fail "one record per target" "$count records for $want targets"
fi
if grep -q -- "$TOKEN" "$RECS" "$WORK/check.err" "$WORK/client-run.err" - <<<"$STATUS"; then
    fail "the token appears in no record, status answer or message"
else
    pass "the token appears in no record, status answer or message"
fi
if kill -0 "$AGENT_PID" 2>/dev/null; then
    pass "the target's agent is still running"
else
    fail "the target's agent is still running" "$(cat "$WORK/agent.err")"
fi

echo "1..$n"
[[ $failed -eq 0 ]] || exit 1
exit 0
