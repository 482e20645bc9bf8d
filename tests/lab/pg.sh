#!/usr/bin/env bash
# tests/lab/pg.sh — the postgres probe against real PostgreSQL servers.
#
# Runs in a network namespace of its own (unshare -n, so it needs root and
# exits 77 without it), with loopback only. In it, three clusters made by
# initdb in a scratch directory, run as the postgres user with pg_ctl and
# stopped at the end:
#
#     main     pg_hba with trust, reject, no entry, scram-sha-256, md5 and
#              password (cleartext) lines, one per role
#     full     max_connections=3, superuser_reserved_connections=0, with
#              three sessions held open by psql         -> too_many_connections
#     standby  a copy of main in standby mode with hot_standby=off and no
#              primary: it never leaves recovery        -> starting_up (57P03)
#     tls      ssl = on with a server certificate from a test CA made here
#              (tests/lab/tls_certs.sh), on 127.0.0.1 and 127.0.0.2; pg_hba
#              takes TLS only (hostssl)  -> prefer, require, verify-full ok;
#              hostname_mismatch on 127.0.0.2, unknown_ca with another CA
#     tlsold   the same with an expired certificate      -> cert_expired
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

PGBIN=
for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [[ -x $d/initdb && -x $d/pg_ctl ]] && {
        PGBIN=$d
        break
    }
done

# shellcheck source=tests/lab/tls_certs.sh
. "$TESTS_DIR/lab/tls_certs.sh"

if [[ -z ${VP_PG_NETNS:-} ]]; then
    [[ $EUID -eq 0 ]] || skip "needs root for a network namespace of its own (uid $EUID)"
    [[ -n $PGBIN ]] || skip "PostgreSQL's initdb and pg_ctl are not installed"
    id postgres >/dev/null 2>&1 || skip "there is no postgres user to run the servers as"
    for tool in psql pg_isready jq unshare ip python3 runuser openssl; do
        command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
    done
    [[ -x $VPCPROBE ]] || {
        echo "Bail out! VPCPROBE=$VPCPROBE is not an executable"
        exit 1
    }
    VP_PG_NETNS=1 exec unshare -n -- "$BASH" "${BASH_SOURCE[0]}" "$@"
    skip "unshare -n failed"
fi

ip link set lo up || skip "cannot bring lo up in the new namespace"

T=
CLUSTERS=()
HOLDERS=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid c
    for pid in "${HOLDERS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${HOLDERS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for c in "${CLUSTERS[@]}"; do
        as_pg "$PGBIN/pg_ctl" -D "$T/$c" -m immediate -w -t 20 stop >/dev/null 2>&1
    done
    [[ -n ${KEEP:-} ]] || { [[ -n $T ]] && rm -rf -- "$T"; }
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

as_pg() {
    runuser -u postgres -- "$@"
}

T=$(mktemp -d "${TMPDIR:-/tmp}/vppg.XXXXXX") || exit 1
chmod 755 "$T"
chown postgres "$T"

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
bail() {
    echo "Bail out! $1"
    [[ -n ${2:-} && -f $2 ]] && tail -n 30 "$2" | sed 's/^/#   /'
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

MAIN_PORT=$(free_port)
FULL_PORT=$(free_port)
STANDBY_PORT=$(free_port)
TLS_PORT=$(free_port)
TLSOLD_PORT=$(free_port)

# --- the main cluster -------------------------------------------------------

as_pg "$PGBIN/initdb" -D "$T/main" -U postgres -A trust --no-sync >"$T/initdb.log" 2>&1 ||
    bail "initdb failed" "$T/initdb.log"

# conf CLUSTER PORT [SETTING...]: the settings every cluster here shares.
conf() {
    local c=$1 port=$2
    shift 2
    {
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$T'"
        echo "shared_buffers = 16MB"
        echo "fsync = off"
        printf '%s\n' "$@"
    } >>"$T/$c/postgresql.conf"
}
conf main "$MAIN_PORT" "log_min_messages = debug1"

# pg_hba is read top-down: each role has its own line, local is trust for setup.
cat >"$T/main/pg_hba.conf" <<'EOF'
local all          all        trust
host  all          vp_reject  127.0.0.1/32 reject
host  all          vp_scram   127.0.0.1/32 scram-sha-256
host  all          vp_md5     127.0.0.1/32 md5
host  all          vp_clear   127.0.0.1/32 password
host  all          vpcprobe   127.0.0.1/32 trust
host  all          vp_trust   127.0.0.1/32 trust
EOF

# start CLUSTER PORT: pg_ctl start, then pg_isready until it answers (0
# accepting, 1 rejecting: a standby that refuses is up too).
start() {
    local c=$1 port=$2 i
    as_pg "$PGBIN/pg_ctl" -D "$T/$c" -l "$T/$c.log" -s start >/dev/null 2>&1 ||
        bail "pg_ctl start $c failed" "$T/$c.log"
    CLUSTERS+=("$c")
    for ((i = 0; i < 200; i++)); do
        pg_isready -q -h 127.0.0.1 -p "$port" -t 1
        [[ $? -le 1 ]] && return 0
        sleep 0.05
    done
    bail "$c did not answer on port $port" "$T/$c.log"
}

# The copies are made from a cleanly stopped cluster, before it first starts.
cp -a "$T/main" "$T/full"
cp -a "$T/main" "$T/standby"
cp -a "$T/main" "$T/tls"
cp -a "$T/main" "$T/tlsold"
conf full "$FULL_PORT" "max_connections = 3" "superuser_reserved_connections = 0"
conf standby "$STANDBY_PORT" "hot_standby = off"
as_pg touch "$T/standby/standby.signal"

# The TLS clusters: the server's key must be the postgres user's, mode 0600.
make_tls_certs "$T/certs" || bail "making the test certificates failed" "$T/certs/openssl.log"
chown -R postgres "$T/certs"
chmod 600 "$T"/certs/*.key
for c in tls tlsold; do
    cert=server
    port=$TLS_PORT
    if [[ $c == tlsold ]]; then
        cert=expired
        port=$TLSOLD_PORT
    fi
    conf "$c" "$port" "listen_addresses = '127.0.0.1,127.0.0.2'" "ssl = on" \
        "ssl_cert_file = '$T/certs/$cert.pem'" "ssl_key_file = '$T/certs/$cert.key'"
    # Only TLS gets in: a probe that logs in here went over TLS.
    cat >"$T/$c/pg_hba.conf" <<'EOF'
local     all  all       trust
hostssl   all  postgres  127.0.0.0/8  trust
hostnossl all  all       127.0.0.0/8  reject
EOF
done

start main "$MAIN_PORT"

SCRAM_PASS='scram-pass-5d21'
MD5_PASS='md5-pass-8e03'
CLEAR_PASS='clear-pass-1f6a'
as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$T" -p "$MAIN_PORT" -U postgres -d postgres >"$T/psql.log" 2>&1 <<EOF ||
SET password_encryption = 'scram-sha-256';
CREATE ROLE vp_scram LOGIN PASSWORD '$SCRAM_PASS';
CREATE ROLE vp_clear LOGIN PASSWORD '$CLEAR_PASS';
SET password_encryption = 'md5';
CREATE ROLE vp_md5 LOGIN PASSWORD '$MD5_PASS';
CREATE ROLE vpcprobe LOGIN;
CREATE ROLE vp_trust LOGIN;
CREATE ROLE vp_reject LOGIN;
CREATE ROLE vp_nobody LOGIN;
EOF
    bail "creating the roles failed" "$T/psql.log"

start full "$FULL_PORT"
start standby "$STANDBY_PORT"
start tls "$TLS_PORT"
start tlsold "$TLSOLD_PORT"

# Three sessions fill the full cluster; wait until all three are in.
for i in 1 2 3; do
    as_pg psql -X -q -h "$T" -p "$FULL_PORT" -U postgres -d postgres -c 'SELECT pg_sleep(120)' \
        >/dev/null 2>&1 &
    HOLDERS+=($!)
done

printf '%s\n' "$SCRAM_PASS" >"$T/scram.pw"
printf '%s\n' "$MD5_PASS" >"$T/md5.pw"
printf '%s\n' "$CLEAR_PASS" >"$T/clear.pw"
printf 'not-the-password\n' >"$T/wrong.pw"
chmod 600 "$T"/*.pw

url="postgres://127.0.0.1:$MAIN_PORT"
tls="postgres://127.0.0.1:$TLS_PORT"
tlsold="postgres://127.0.0.1:$TLSOLD_PORT"
cat >"$T/config.json" <<EOF
{
  "defaults": { "timeout_ms": 5000 },
  "targets": [
    { "name": "trust-default", "url": "$url" },
    { "name": "trust-disable", "url": "$url", "user": "vp_trust", "tls": "disable" },
    { "name": "trust-with-password", "url": "$url", "user": "vp_trust",
      "password_file": "$T/wrong.pw" },
    { "name": "hba-reject", "url": "$url", "user": "vp_reject" },
    { "name": "hba-no-entry", "url": "$url", "user": "vp_nobody" },
    { "name": "scram-asked", "url": "$url", "user": "vp_scram" },
    { "name": "scram-right", "url": "$url", "user": "vp_scram", "password_file": "$T/scram.pw" },
    { "name": "scram-wrong", "url": "$url", "user": "vp_scram", "password_file": "$T/wrong.pw" },
    { "name": "md5-right", "url": "$url", "user": "vp_md5", "password_file": "$T/md5.pw" },
    { "name": "md5-wrong", "url": "$url", "user": "vp_md5", "password_file": "$T/wrong.pw" },
    { "name": "clear-right", "url": "$url", "user": "vp_clear", "password_file": "$T/clear.pw" },
    { "name": "clear-wrong", "url": "$url", "user": "vp_clear", "password_file": "$T/wrong.pw" },
    { "name": "db-missing", "url": "$url", "database": "no_such_db" },
    { "name": "db-missing-scram", "url": "$url", "user": "vp_scram", "database": "no_such_db",
      "password_file": "$T/scram.pw" },
    { "name": "require-no-tls", "url": "$url", "tls": "require" },
    { "name": "starting-up", "url": "postgres://127.0.0.1:$STANDBY_PORT" },
    { "name": "tls-prefer", "url": "$tls", "user": "postgres" },
    { "name": "tls-require", "url": "$tls", "user": "postgres", "tls": "require" },
    { "name": "tls-require-ca", "url": "$tls", "user": "postgres", "tls": "require",
      "ca_file": "$T/certs/ca.pem" },
    { "name": "tls-verify-full", "url": "$tls", "user": "postgres", "tls": "verify-full",
      "ca_file": "$T/certs/ca.pem" },
    { "name": "tls-disable", "url": "$tls", "user": "postgres", "tls": "disable" },
    { "name": "tls-wrong-host", "url": "postgres://127.0.0.2:$TLS_PORT", "user": "postgres",
      "tls": "verify-full", "ca_file": "$T/certs/ca.pem" },
    { "name": "tls-unknown-ca", "url": "$tls", "user": "postgres", "tls": "verify-full",
      "ca_file": "$T/certs/other-ca.pem" },
    { "name": "tls-expired", "url": "$tlsold", "user": "postgres", "tls": "verify-full",
      "ca_file": "$T/certs/ca.pem" },
    { "name": "tls-expired-require", "url": "$tlsold", "user": "postgres", "tls": "require" }
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

# expect FILE NAME VERDICT REASON DETAIL-SUBSTRING
expect() {
    local file=$1 name=$2 verdict=$3 reason=$4 sub=$5 got detail
    got=$(jq -r --arg n "$name" 'select(.target == $n) | "\(.verdict) \(.reason)"' "$file")
    detail=$(jq -r --arg n "$name" 'select(.target == $n) | .detail' "$file")
    if [[ $got == "$verdict $reason" && $detail == *"$sub"* ]]; then
        pass "$name: $verdict $reason"
    else
        fail "$name: $verdict $reason, detail with '$sub'" "got '$got': $detail"
    fi
}

o=$T/out.json
expect "$o" trust-default ok accepted "without a password (trust); TLS not offered"
expect "$o" trust-disable ok accepted "TLS not asked for"
expect "$o" trust-with-password ok accepted "the password_file was not needed"
expect "$o" hba-reject protocol_error pg_hba_rejected "28000: pg_hba.conf rejects connection"
expect "$o" hba-no-entry protocol_error pg_hba_rejected "28000: no pg_hba.conf entry"
expect "$o" scram-asked ok accepted "asked for SASL (SCRAM-SHA-256)"
expect "$o" scram-right ok authenticated "with SASL"
expect "$o" scram-wrong protocol_error auth_failed "28P01"
expect "$o" md5-right ok authenticated "with an MD5 password"
expect "$o" md5-wrong protocol_error auth_failed "28P01"
expect "$o" clear-right ok authenticated "with a cleartext password"
expect "$o" clear-wrong protocol_error auth_failed "28P01"
expect "$o" db-missing protocol_error database_missing "3D000"
expect "$o" db-missing-scram protocol_error database_missing "no_such_db"
expect "$o" require-no-tls tls_error tls_not_offered "does not offer TLS ('N' to SSLRequest)"
expect "$o" starting-up protocol_error starting_up "57P03"
expect "$o" tls-prefer ok accepted "(trust); over TLSv1.3"
expect "$o" tls-require ok accepted "over TLSv1.3"
expect "$o" tls-require-ca ok accepted "over TLSv1.3"
expect "$o" tls-verify-full ok accepted "over TLSv1.3"
expect "$o" tls-disable protocol_error pg_hba_rejected "no encryption"
expect "$o" tls-wrong-host tls_error hostname_mismatch "IP address mismatch"
expect "$o" tls-unknown-ca tls_error unknown_ca "the server's certificate was refused"
expect "$o" tls-expired tls_error cert_expired "certificate has expired"
expect "$o" tls-expired-require ok accepted "over TLSv1.3"

# expect_json NAME WHAT JQ-TEST: the record of NAME passes the test.
expect_json() {
    local name=$1 what=$2 test=$3
    if jq -s -e --arg n "$name" "map(select(.target == \$n))[0] | $test" "$o" >/dev/null; then
        pass "$name: $what"
    else
        fail "$name: $what" \
            "$(jq -c --arg n "$name" 'select(.target == $n) | [.tls, .timings_ms]' "$o")"
    fi
}
expect_json tls-prefer "TLS recorded, handshake timed" '.tls.offered and .tls.version == "TLSv1.3" and (.tls.cipher | length > 0)
    and .tls.cert_days_left >= 29 and .tls.cert_days_left <= 30
    and .timings_ms.tls >= 0 and .timings_ms.protocol >= 0'
expect_json trust-default "TLS asked for, not offered" '.tls.offered == false and .tls.version == null and .timings_ms.tls == null'
expect_json trust-disable "no tls object" '.tls == null'
expect_json tls-expired "expired a day ago" '.tls.cert_days_left == -1 and .tls.version == null'
expect_json tls-expired-require "expired a day ago" '.tls.cert_days_left == -1'
hint=$(jq -r 'select(.target == "tls-unknown-ca") | .hint' "$o")
if [[ $hint == *"gcloud sql instances describe INSTANCE --format='value(serverCaCert.cert)'"* ]]; then
    pass "unknown_ca hint says how to get Cloud SQL's server CA"
else
    fail "unknown_ca hint says how to get Cloud SQL's server CA" "$hint"
fi
# The probe tells the server why it gave up: its TLS alert is in the log.
if grep -q 'alert unknown ca' "$T/tls.log"; then
    pass "the server logs the probe's unknown_ca alert"
else
    fail "the server logs the probe's unknown_ca alert" "$(grep -m3 SSL "$T/tls.log")"
fi

# The full cluster: probe until the three holders are in (bounded), then
# the probe must be turned away with 53300.
cat >"$T/full.json" <<EOF
{ "targets": [ { "name": "full", "url": "postgres://127.0.0.1:$FULL_PORT", "user": "postgres" } ] }
EOF
for ((i = 0; i < 100; i++)); do
    "$VPCPROBE" check --json -c "$T/full.json" >"$T/full.out" 2>&1
    jq -e '.reason == "too_many_connections"' "$T/full.out" >/dev/null 2>&1 && break
    sleep 0.1
done
expect "$T/full.out" full protocol_error too_many_connections "53300"

# Hints speak Cloud SQL.
hint=$(jq -r 'select(.target == "hba-reject") | .hint' "$o")
if [[ $hint == *"authorized networks do not apply to private IP"* ]]; then
    pass "pg_hba_rejected hint speaks of Cloud SQL private IP"
else
    fail "pg_hba_rejected hint speaks of Cloud SQL private IP" "$hint"
fi
hint=$(jq -r '.hint' "$T/full.out")
if [[ $hint == *max_connections* ]]; then
    pass "too_many_connections hint names max_connections"
else
    fail "too_many_connections hint names max_connections" "$hint"
fi

# Secrets stay secret: not in the records, not on stderr, not in validate.
"$VPCPROBE" validate -c "$T/config.json" >"$T/validate.txt" 2>&1
if grep -qF -e "$SCRAM_PASS" -e "$MD5_PASS" -e "$CLEAR_PASS" -e not-the-password \
    "$o" "$T/err.txt" "$T/validate.txt"; then
    fail "no password in any output"
else
    pass "no password in any output"
fi

# The server saw a clean Terminate after a login, not an EOF mid-session.
if grep -q 'unexpected EOF on client connection' "$T/main.log" "$T/tls.log"; then
    fail "logins end with Terminate" "$(grep -m1 'unexpected EOF' "$T/main.log" "$T/tls.log")"
else
    pass "logins end with Terminate"
fi

echo "1..$n"
[[ $failed -eq 0 ]] || exit 1
exit 0
