#!/usr/bin/env bash
# tests/lab/http.sh — the http(s) probe against real servers in the lab.
#
# Builds the two-namespace lab (tests/lab/lab.sh). In the server namespace,
# tests/http_server.py serves on 198.18.0.2 (and fd00:198:18::2): 200, 503,
# 404, a virtual host, a slow answer past the deadline, a reset and a close
# after the request, garbage; and TLS with certificates this test makes with
# openssl in a scratch directory: good, expired (openssl ca -enddate in the
# past), another host name, an unknown CA, TLS 1.1 only. The lab's
# fingerprint ports (9001 refused, 9002 dropped, 9004/9005 ICMP) show that a
# connect through curl gets the TCP probe's verdicts and reasons.
#
# Every probe goes through `$VPCPROBE check --json -c CONFIG` in the client
# namespace; every record is checked with jq. Prints "ok N - ..." /
# "not ok N - ..."; exit 0 when all pass, 1 when any fails, 77 (skip)
# without root, network namespaces, nft, jq or openssl.
#
# Env: VPCPROBE (the binary, set by meson), TESTS_DIR (tests/ source dir).

set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VPCPROBE=${VPCPROBE:-$TESTS_DIR/../build/vpcprobe}

# shellcheck source=tests/lab/lab.sh
source "$TESTS_DIR/lab/lab.sh"
lab_require_root
for tool in jq openssl; do
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
SERVER_PID=
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    lab_down
    [[ -n $WORK ]] && rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vphttp.XXXXXX") || exit 1

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

# --- certificates ------------------------------------------------------------

CERTS=$WORK/certs
mkdir -p "$CERTS/ca/new"
: >"$CERTS/ca/index.txt"
echo 1000 >"$CERTS/ca/serial"
cat >"$CERTS/ca.cnf" <<EOF
[ ca ]
default_ca = test
[ test ]
dir = $CERTS/ca
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = supplied
EOF

# make_ca NAME
make_ca() {
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj "/CN=vpcprobe test $1" \
        -keyout "$CERTS/$1.key" -out "$CERTS/$1.pem" 2>>"$WORK/openssl.log"
}

# make_leaf NAME CA SAN [START END]: a server certificate signed by CA; with
# START and END (YYYYMMDDHHMMSSZ) through `openssl ca`, which can put them
# in the past (OpenSSL 3.0's `x509 -req` cannot).
make_leaf() {
    local name=$1 ca=$2 san=$3
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
        "$san" >"$CERTS/$name.ext"
    openssl req -new -newkey rsa:2048 -nodes -subj "/CN=$name" -keyout "$CERTS/$name.key" \
        -out "$CERTS/$name.csr" 2>>"$WORK/openssl.log" || return 1
    if [[ $# -ge 5 ]]; then
        openssl ca -batch -config "$CERTS/ca.cnf" -cert "$CERTS/$ca.pem" -keyfile "$CERTS/$ca.key" \
            -in "$CERTS/$name.csr" -out "$CERTS/$name.pem" -startdate "$4" -enddate "$5" \
            -extfile "$CERTS/$name.ext" -notext >>"$WORK/openssl.log" 2>&1
    else
        openssl x509 -req -sha256 -days 30 -in "$CERTS/$name.csr" -CA "$CERTS/$ca.pem" \
            -CAkey "$CERTS/$ca.key" -CAcreateserial -extfile "$CERTS/$name.ext" \
            -out "$CERTS/$name.pem" 2>>"$WORK/openssl.log"
    fi
}

SAN_GOOD="DNS:api.lab.internal,IP:$LAB_SERVER4,IP:$LAB_SERVER6"
if ! { make_ca ca && make_ca otherca &&
    make_leaf good ca "$SAN_GOOD" &&
    make_leaf expired ca "$SAN_GOOD" "$(date -u -d '-40 days' +%Y%m%d%H%M%SZ)" \
        "$(date -u -d '-3 days -1 hour' +%Y%m%d%H%M%SZ)" &&
    make_leaf wronghost ca "DNS:other.lab.internal" &&
    make_leaf unknownca otherca "$SAN_GOOD"; }; then
    echo "Bail out! making the test certificates failed:"
    sed 's/^/#   /' "$WORK/openssl.log"
    exit 1
fi

# --- the lab and the servers -------------------------------------------------

if ! lab_up; then
    echo "Bail out! lab_up failed"
    exit 1
fi

S4=$LAB_SERVER4
S6=$LAB_SERVER6
kinds=(ok s503 s404 vhost slow reset close garbage tls-good tls-expired tls-wronghost
    tls-unknownca tls-old)
specs=()
for k in "${kinds[@]}"; do
    specs+=("$S4:$k")
done
specs+=("[$S6]:ok" "[$S6]:tls-good")

mkfifo "$WORK/ready"
# ip netns exec execs in place, so $! is the server's own PID.
ip netns exec "$LAB_SERVER_NS" python3 -u "$TESTS_DIR/http_server.py" --certs "$CERTS" \
    --first-port 9100 "${specs[@]}" >"$WORK/ready" 2>"$WORK/server.err" &
SERVER_PID=$!
line=
read -r -t 20 line <"$WORK/ready"
if [[ $line != ready* ]]; then
    echo "Bail out! http_server.py did not become ready (got '$line')"
    sed 's/^/#   /' "$WORK/server.err"
    exit 1
fi
declare -A PORT
for kv in ${line#ready }; do
    PORT[${kv%%=*}]=${kv#*=}
done
[[ -s $WORK/server.err ]] && sed 's/^/# server: /' "$WORK/server.err"

# --- the probes --------------------------------------------------------------

u4() { printf '%s://%s:%s%s' "$1" "$S4" "$2" "${3:-/}"; }
CA=$CERTS/ca.pem
cat >"$WORK/config.json" <<EOF
{
  "defaults": { "timeout_ms": 3000 },
  "targets": [
    { "name": "ok", "url": "$(u4 http "${PORT[ok]}" /healthz)" },
    { "name": "ok6", "url": "http://[$S6]:${PORT[6ok]}/healthz" },
    { "name": "s503", "url": "$(u4 http "${PORT[s503]}")" },
    { "name": "s404", "url": "$(u4 http "${PORT[s404]}" /missing)" },
    { "name": "s404-expected", "url": "$(u4 http "${PORT[s404]}" /missing)",
      "expect_status": "200-299,404" },
    { "name": "s200-unexpected", "url": "$(u4 http "${PORT[ok]}")", "expect_status": "204" },
    { "name": "vhost", "url": "$(u4 http "${PORT[vhost]}")", "host_header": "api.lab.internal" },
    { "name": "vhost-without", "url": "$(u4 http "${PORT[vhost]}")" },
    { "name": "slow", "url": "$(u4 http "${PORT[slow]}")", "timeout_ms": 1000 },
    { "name": "reset", "url": "$(u4 http "${PORT[reset]}")" },
    { "name": "close", "url": "$(u4 http "${PORT[close]}")" },
    { "name": "garbage", "url": "$(u4 http "${PORT[garbage]}")" },
    { "name": "refused", "url": "$(u4 http "$LAB_PORT_CLOSED")" },
    { "name": "refused-tls", "url": "$(u4 https "$LAB_PORT_CLOSED")", "ca_file": "$CA" },
    { "name": "dropped", "url": "$(u4 http "$LAB_PORT_DROP")", "timeout_ms": 1000 },
    { "name": "dropped-tls", "url": "$(u4 https "$LAB_PORT_DROP")", "timeout_ms": 1000 },
    { "name": "prohibited", "url": "$(u4 http "$LAB_PORT_ADMIN")" },
    { "name": "host-unreachable", "url": "$(u4 http "$LAB_PORT_HOST")" },
    { "name": "tls-good", "url": "$(u4 https "${PORT[tls-good]}" /healthz)", "ca_file": "$CA" },
    { "name": "tls-good6", "url": "https://[$S6]:${PORT[6tls-good]}/", "ca_file": "$CA" },
    { "name": "tls-good-by-name", "url": "$(u4 https "${PORT[tls-good]}")", "ca_file": "$CA",
      "host_header": "api.lab.internal" },
    { "name": "tls-system-cas", "url": "$(u4 https "${PORT[tls-good]}")" },
    { "name": "tls-expired", "url": "$(u4 https "${PORT[tls-expired]}")", "ca_file": "$CA" },
    { "name": "tls-wronghost", "url": "$(u4 https "${PORT[tls-wronghost]}")", "ca_file": "$CA" },
    { "name": "tls-unknownca", "url": "$(u4 https "${PORT[tls-unknownca]}")", "ca_file": "$CA" },
    { "name": "tls-to-plain", "url": "$(u4 https "${PORT[ok]}")", "ca_file": "$CA" }$(
    [[ -n ${PORT[tls-old]:-} ]] && printf ',\n    { "name": "tls-old", "url": "%s", "ca_file": "%s" }' \
        "$(u4 https "${PORT[tls-old]}")" "$CA")
  ]
}
EOF

echo "# $VPCPROBE check --json -c $WORK/config.json (in $LAB_CLIENT_NS)"
lab_client timeout 60 "$VPCPROBE" check --json -c "$WORK/config.json" >"$WORK/out" 2>"$WORK/err"
rc=$?
RECS=$WORK/records.jsonl
jq -R -c 'fromjson? | objects' "$WORK/out" >"$RECS" 2>/dev/null
jq -r '"# \(.target): \(.verdict)/\(.reason) errno=\(.errno) \(.timings_ms) \(.detail)"' \
    "$RECS" 2>/dev/null

if [[ $rc -eq 1 ]]; then
    pass "check exits 1 when some probe is not ok"
else
    fail "check exits 1 when some probe is not ok" "exit $rc: $(head -c 600 "$WORK/err")"
fi

# expect NAME VERDICT REASON DETAIL-SUBSTRING [JQ-FILTER]
expect() {
    local name=$1 verdict=$2 reason=$3 sub=$4 filter=${5:-true} rec
    rec=$(jq -c --arg n "$name" 'select(.target == $n)' "$RECS" | head -n 1)
    if [[ -n $rec ]] &&
        jq -e --arg v "$verdict" --arg r "$reason" --arg s "$sub" \
            ".verdict == \$v and .reason == \$r and (.detail | contains(\$s)) and
             (.hint | type == \"string\") and ($filter)" <<<"$rec" >/dev/null 2>&1; then
        pass "$name: $verdict $reason"
    else
        fail "$name: $verdict $reason, detail with '$sub', $filter" "record: ${rec:-<none>}"
    fi
}

timed='.timings_ms.connect != null and .timings_ms.protocol != null'
expect ok ok http_200 "HTTP 200 OK to GET /healthz from 'vpcprobe-test', 2 body bytes" "$timed"
expect ok6 ok http_200 "HTTP 200 OK" '.address == "'"$S6"'"'
expect s503 protocol_error http_503 "from 'vpcprobe-test' via '1.1 test-lb'" \
    '.hint | contains("no healthy backend")'
expect s404 protocol_error http_404 'body "not found"' '.hint | contains("no such path")'
expect s404-expected ok http_404 "HTTP 404 Not Found"
expect s200-unexpected protocol_error http_200 "expected 204"
expect vhost ok http_200 "HTTP 200 OK"
expect vhost-without protocol_error http_421 "Misdirected Request"
expect slow timeout reply_timeout "no complete reply before the deadline" "$timed"
expect reset reset reset_before_reply "then reset it before replying" '.errno == "ECONNRESET"'
expect close reset closed_before_reply "then closed it before replying"
expect garbage protocol_error unexpected_reply 'it begins "\x00\x01garbage \xff\xfe not http\r\n"'
# The connect's fingerprint is the TCP probe's, errno and ICMP included.
expect refused refused rst_to_syn "" '.errno == "ECONNREFUSED" and .timings_ms.connect == null'
expect refused-tls refused rst_to_syn ""
expect dropped timeout syn_no_answer "" '.timings_ms.connect == null'
expect dropped-tls timeout syn_no_answer ""
expect prohibited unreachable admin_prohibited "" '.icmp.type == 3 and .icmp.code == 13'
expect host-unreachable unreachable host_unreachable "" '.icmp.code == 1'
# TLS: the certificate's days, and what is wrong with it.
expect tls-good ok http_200 "certificate valid for 29 more days" \
    "$timed and (.detail | test(\"TLS handshake [0-9.]+ ms\"))"
# The record's structured TLS fields, as postgres and rediss write them.
expect tls-good ok http_200 "" '.timings_ms.tls > 0 and .tls.offered == true and
    .tls.cert_days_left == 29 and (.tls.version | test("^TLSv1\\.[23]$")) and
    (.tls.cipher | length > 0)'
expect ok ok http_200 "" '.timings_ms.tls == null and has("tls") == false'
expect tls-expired tls_error cert_expired "" '.tls.cert_days_left == -3 and
    .tls.offered == true and .timings_ms.tls != null and .tls.version == null'
expect tls-to-plain tls_error handshake_failure "" '.tls.offered == false and
    .tls.cert_days_left == null'
expect dropped-tls timeout syn_no_answer "" 'has("tls") == false'

expect tls-good6 ok http_200 "certificate valid for"
expect tls-good-by-name ok http_200 "HTTP 200 OK"
expect tls-system-cas tls_error unknown_ca "TLS with '$S4' failed" '.hint | contains("ca_file")'
expect tls-expired tls_error cert_expired "the certificate expired 3 days ago" \
    '.hint | contains("renew")'
expect tls-wronghost tls_error hostname_mismatch "TLS with '$S4' failed" \
    '.hint | contains("subjectAltName")'
expect tls-unknownca tls_error unknown_ca "unable to get local issuer certificate"
expect tls-to-plain tls_error handshake_failure "wrong version number" \
    '.hint | contains("are not TLS")'
if [[ -n ${PORT[tls-old]:-} ]]; then
    expect tls-old tls_error protocol_version ""
else
    echo "# tls-old skipped: this OpenSSL will not serve TLS 1.1"
fi

count=$(wc -l <"$RECS")
want=$(jq '.targets | length' "$WORK/config.json")
if [[ $count -eq $want ]]; then
    pass "one record per target ($count)"
else
    fail "one record per target" "$count records for $want targets"
fi

echo "1..$n"
[[ $failed -eq 0 ]] || exit 1
exit 0
