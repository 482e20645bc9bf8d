#!/usr/bin/env bash
# tests/lab/redis.sh — the redis probe against real redis-server instances.
#
# Runs in a network namespace of its own (unshare -n, so it needs root and
# exits 77 without it): loopback plus 198.18.0.10 on lo, nothing else. In it,
# redis-server instances started by this test, in a scratch directory,
# stopped by PID at the end:
#
#     open       no password                    -> ok pong
#     auth       requirepass and an ACL user     -> auth_required, auth_failed, pong
#     protected  no password, bound to 198.18.0.10 and probed from that address
#                (not loopback)                  -> protected_mode
#     tls        TLS only (--port 0 --tls-port), requirepass, a server
#                certificate from a test CA made here (tests/lab/tls_certs.sh),
#                no client certificates asked (as Memorystore)
#                                                -> rediss:// pong, auth_required,
#                                                   unknown_ca (other CA, system CAs)
#
# Redis 7 denies a client in protected mode when the default user has no
# password and the client's address is not loopback, whatever it is bound to
# (networking.c, clientAcceptHandler); a second address on lo is enough.
#
# Every probe goes through `$VPCPROBE check --json -c CONFIG`; records are
# checked with jq. Prints "ok N - ..." / "not ok N - ..."; exit 1 on failure.
#
# Env: VPCPROBE (the binary, set by meson), TESTS_DIR (tests/ source dir).

set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VPCPROBE=${VPCPROBE:-$TESTS_DIR/../build/vpcprobe}

skip() {
    echo "SKIP: $1" >&2
    exit 77
}

# shellcheck source=tests/lab/tls_certs.sh
. "$TESTS_DIR/lab/tls_certs.sh"

if [[ -z ${VP_REDIS_NETNS:-} ]]; then
    [[ $EUID -eq 0 ]] || skip "needs root for a network namespace of its own (uid $EUID)"
    for tool in redis-server redis-cli jq unshare ip python3 openssl; do
        command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
    done
    [[ -x $VPCPROBE ]] || {
        echo "Bail out! VPCPROBE=$VPCPROBE is not an executable"
        exit 1
    }
    # Debian's redis-server links libssl when it is built with TLS.
    ldd "$(command -v redis-server)" 2>/dev/null | grep -q libssl ||
        skip "redis-server is built without TLS (no libssl)"
    VP_REDIS_NETNS=1 exec unshare -n -- "$BASH" "${BASH_SOURCE[0]}" "$@"
    skip "unshare -n failed"
fi

ip link set lo up || skip "cannot bring lo up in the new namespace"
LOCAL_ADDR=198.18.0.10
ip addr add "$LOCAL_ADDR/32" dev lo || skip "cannot add $LOCAL_ADDR to lo"

T=
PIDS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    [[ -n $T ]] && rm -rf -- "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
T=$(mktemp -d "${TMPDIR:-/tmp}/vpredis.XXXXXX") || exit 1

n=0
failed=0
pass() {
    n=$((n + 1))
    echo "ok $n - $1"
}
fail() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    [[ -n ${2:-} ]] && printf '#   %s\n' "$2"
}

# A free port on ADDR, from the kernel's ephemeral range (never 2024).
free_port() {
    python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# start_redis NAME ADDR PORT [ARG...]: redis-server in the foreground of a
# background job, its log in $T/NAME.log, ready when it answers at all
# (over TLS with the test CA for NAME tls).
start_redis() {
    local name=$1 addr=$2 port=$3 i out cli=()
    shift 3
    [[ $name == tls ]] && cli=(--tls --cacert "$T/certs/ca.pem")
    mkdir -p "$T/$name"
    redis-server --port "$port" --bind "$addr" --daemonize no --save '' --appendonly no \
        --dir "$T/$name" --logfile "$T/$name.log" "$@" &
    PIDS+=($!)
    for ((i = 0; i < 100; i++)); do
        out=$(redis-cli "${cli[@]}" -h "$addr" -p "$port" ping 2>&1)
        [[ $out == *PONG* || $out == *NOAUTH* || $out == *DENIED* ]] && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "Bail out! redis-server $name on $addr:$port did not come up"
    cat "$T/$name.log" >&2
    exit 1
}

OPEN_PORT=$(free_port 127.0.0.1)
AUTH_PORT=$(free_port 127.0.0.1)
PROT_PORT=$(free_port "$LOCAL_ADDR")
TLS_PORT=$(free_port 127.0.0.1)

REDIS_PASS='redis-pass-9c41'
ACL_PASS='acl-pass-77e0'
printf '%s\n' "$REDIS_PASS" >"$T/right.pw"
printf 'wrong-pass-0000\n' >"$T/wrong.pw"
printf '%s\r\n' "$ACL_PASS" >"$T/acl.pw"
chmod 600 "$T"/*.pw

start_redis open 127.0.0.1 "$OPEN_PORT"
start_redis auth 127.0.0.1 "$AUTH_PORT" --requirepass "$REDIS_PASS" \
    --user probe on ">$ACL_PASS" '~*' '+@all'
start_redis protected "$LOCAL_ADDR" "$PROT_PORT" --protected-mode yes
make_tls_certs "$T/certs" || {
    echo "Bail out! making the test certificates failed"
    sed 's/^/#   /' "$T/certs/openssl.log"
    exit 1
}
start_redis tls 127.0.0.1 "$TLS_PORT" --port 0 --tls-port "$TLS_PORT" \
    --tls-cert-file "$T/certs/server.pem" --tls-key-file "$T/certs/server.key" \
    --tls-ca-cert-file "$T/certs/ca.pem" --tls-auth-clients no --requirepass "$REDIS_PASS"

cat >"$T/config.json" <<EOF
{
  "defaults": { "timeout_ms": 3000 },
  "targets": [
    { "name": "open", "url": "redis://127.0.0.1:$OPEN_PORT" },
    { "name": "open-with-password", "url": "redis://127.0.0.1:$OPEN_PORT",
      "password_file": "$T/right.pw" },
    { "name": "noauth", "url": "redis://127.0.0.1:$AUTH_PORT" },
    { "name": "wrongpass", "url": "redis://127.0.0.1:$AUTH_PORT", "password_file": "$T/wrong.pw" },
    { "name": "rightpass", "url": "redis://127.0.0.1:$AUTH_PORT", "password_file": "$T/right.pw" },
    { "name": "acl-right", "url": "redis://127.0.0.1:$AUTH_PORT", "username": "probe",
      "password_file": "$T/acl.pw" },
    { "name": "acl-wrong-user", "url": "redis://127.0.0.1:$AUTH_PORT", "username": "nobody",
      "password_file": "$T/acl.pw" },
    { "name": "protected", "url": "redis://$LOCAL_ADDR:$PROT_PORT" },
    { "name": "rediss", "url": "rediss://127.0.0.1:$TLS_PORT", "ca_file": "$T/certs/ca.pem",
      "password_file": "$T/right.pw" },
    { "name": "rediss-noauth", "url": "rediss://127.0.0.1:$TLS_PORT",
      "ca_file": "$T/certs/ca.pem" },
    { "name": "rediss-wrong-ca", "url": "rediss://127.0.0.1:$TLS_PORT",
      "ca_file": "$T/certs/other-ca.pem", "password_file": "$T/right.pw" },
    { "name": "rediss-system-ca", "url": "rediss://127.0.0.1:$TLS_PORT",
      "password_file": "$T/right.pw" }
  ]
}
EOF

"$VPCPROBE" check --json -c "$T/config.json" >"$T/out.json" 2>"$T/err.txt"
rc=$?
if [[ $rc -eq 1 ]]; then
    pass "check exits 1 when some probe is not ok"
else
    fail "check exits 1 when some probe is not ok" "exit $rc: $(head -c 600 "$T/err.txt")"
fi

# expect NAME VERDICT REASON DETAIL-SUBSTRING
expect() {
    local name=$1 verdict=$2 reason=$3 sub=$4 got
    got=$(jq -r --arg n "$name" 'select(.target == $n) | "\(.verdict) \(.reason)"' "$T/out.json")
    local detail
    detail=$(jq -r --arg n "$name" 'select(.target == $n) | .detail' "$T/out.json")
    if [[ $got == "$verdict $reason" && $detail == *"$sub"* ]]; then
        pass "$name: $verdict $reason"
    else
        fail "$name: $verdict $reason, detail with '$sub'" "got '$got': $detail"
    fi
}

expect open ok pong "+PONG without AUTH"
expect open-with-password ok pong "AUTH is not enabled"
expect noauth protocol_error auth_required "-NOAUTH"
expect wrongpass protocol_error auth_failed "-WRONGPASS"
expect rightpass ok pong "after AUTH +OK"
expect acl-right ok pong "after AUTH +OK"
expect acl-wrong-user protocol_error auth_failed "-WRONGPASS"
expect protected protocol_error protected_mode "-DENIED"
expect rediss ok pong "after AUTH +OK, over TLSv1.3"
expect rediss-noauth protocol_error auth_required "-NOAUTH"
expect rediss-wrong-ca tls_error unknown_ca "the server's certificate was refused"
expect rediss-system-ca tls_error unknown_ca "the server's certificate was refused"

# The TLS record: the handshake timed, the version, cipher and days left.
if jq -s -e 'map(select(.target == "rediss"))[0] | .tls.offered == true
        and .tls.version == "TLSv1.3" and (.tls.cipher | length > 0)
        and .tls.cert_days_left >= 29 and .tls.cert_days_left <= 30
        and .timings_ms.tls >= 0' "$T/out.json" >/dev/null; then
    pass "rediss: TLS recorded"
else
    fail "rediss: TLS recorded" "$(jq -c 'select(.target == "rediss") | [.tls, .timings_ms]' "$T/out.json")"
fi
hint=$(jq -r 'select(.target == "rediss-wrong-ca") | .hint' "$T/out.json")
if [[ $hint == *"gcloud redis instances describe"* && $hint == *other-ca.pem* ]]; then
    pass "unknown_ca hint names ca_file and how to get Memorystore's CA"
else
    fail "unknown_ca hint names ca_file and how to get Memorystore's CA" "$hint"
fi

# Every failure carries a hint in Memorystore terms.
hints=$(jq -r 'select(.verdict != "ok") | .hint' "$T/out.json")
if grep -q 'get-auth-string' <<<"$hints" && grep -q 'protected mode' <<<"$hints"; then
    pass "hints name get-auth-string and protected mode"
else
    fail "hints name get-auth-string and protected mode" "$hints"
fi

# Secrets stay secret: not in the records, not on stderr, not in validate.
"$VPCPROBE" validate -c "$T/config.json" >"$T/validate.txt" 2>&1
if grep -qF -e "$REDIS_PASS" -e "$ACL_PASS" "$T/out.json" "$T/err.txt" "$T/validate.txt"; then
    fail "no password in any output"
else
    pass "no password in any output"
fi

# The timings of the protocol phase are recorded.
if jq -s -e 'map(select(.target == "rightpass"))[0].timings_ms.protocol >= 0' "$T/out.json" >/dev/null; then
    pass "rightpass: protocol phase timed"
else
    fail "rightpass: protocol phase timed" "$(jq -c 'select(.target == "rightpass") | .timings_ms' "$T/out.json")"
fi

echo "1..$n"
[[ $failed -eq 0 ]] || exit 1
exit 0
