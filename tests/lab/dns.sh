#!/usr/bin/env bash
# tests/lab/dns.sh — one bad backend must not hide behind a good one (issue 4).
#
# The lab of lab.sh, plus a second server address, 198.18.0.3 and
# fd00:198:18::3, where an nft rule drops port 9000 while 198.18.0.2 and
# fd00:198:18::2 accept it (listener.py listens on 0.0.0.0 and ::). A dnsmasq
# that this test starts on 127.0.0.1 of the client namespace serves
#
#     two4.lab.test   A     198.18.0.2, 198.18.0.3
#     two6.lab.test   AAAA  fd00:198:18::2, fd00:198:18::3
#
# and `vpcprobe check --json --dns-server 127.0.0.1:PORT tcp://NAME:9000`
# must print exactly one ok record for the accepting address and one timeout
# (syn_no_answer) record for the dropping one, each with its own address and
# the name as host, and exit 1.
#
# Addresses only from 198.18.0.0/15 and fd00:198:18::/48, per the network
# rule in DESIGN.md; names only through the dnsmasq started here. Waits are
# bounded readiness checks (an answered query), never a sleep.
#
# Env: VPCPROBE (the binary). Needs root, `ip netns`, nft, dnsmasq, jq and
# python3; exits 77 (skipped) without them.
set -u

VPCPROBE=${VPCPROBE:?set VPCPROBE to the vpcprobe binary}
# shellcheck source=tests/lab/lab.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lab.sh"

DROP4=198.18.0.3
DROP6=fd00:198:18::3
DNS_PORT=5300          # in the client namespace's own loopback: always free
TIMEOUT_MS=1000
DNSMASQ_PID=
N=0
FAILED=0

lab_require_root
for tool in dnsmasq jq; do
    if ! command -v "$tool" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$tool ]]; then
        echo "lab-dns: SKIP: '$tool' is not installed (scripts/bootstrap installs it)" >&2
        exit 77
    fi
done
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ -n $DNSMASQ_PID ]]; then
        kill "$DNSMASQ_PID" 2>/dev/null
        wait "$DNSMASQ_PID" 2>/dev/null
    fi
    lab_down
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# shellcheck source=tests/lab/tap.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tap.sh"

lab_up || bail "the lab did not come up"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vplabdns.XXXXXX") || bail "mktemp failed"
trap 'cleanup; rm -rf -- "$TMP"' EXIT

# The second server address, and the rule that makes its port 9000 drop.
lab_server ip addr add "$DROP4/24" dev "$LAB_SERVER_IF" ||
    bail "adding $DROP4 to $LAB_SERVER_IF failed"
lab_server ip -6 addr add "$DROP6/64" dev "$LAB_SERVER_IF" nodad ||
    bail "adding $DROP6 to $LAB_SERVER_IF failed"
lab_server nft add rule inet lab input ip daddr "$DROP4" tcp dport "$LAB_PORT_OPEN" drop ||
    bail "the nft drop rule for $DROP4 failed"
lab_server nft add rule inet lab input ip6 daddr "$DROP6" tcp dport "$LAB_PORT_OPEN" drop ||
    bail "the nft drop rule for $DROP6 failed"

lab_client "$DNSMASQ" --no-daemon --keep-in-foreground --conf-file=/dev/null --no-resolv \
    --no-hosts --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
    --local=/test/ \
    --host-record="two4.lab.test,$LAB_SERVER4" --host-record="two4.lab.test,$DROP4" \
    --host-record="two6.lab.test,$LAB_SERVER6" --host-record="two6.lab.test,$DROP6" \
    >/dev/null 2>"$TMP/dnsmasq.err" &
DNSMASQ_PID=$!

# Readiness: the dnsmasq answers an A query for two4.lab.test (bounded).
lab_client python3 "$_LAB_DIR/../dns_ready.py" "$DNS_PORT" two4.lab.test 150 ||
    { sed 's/^/#   /' "$TMP/dnsmasq.err"; bail "dnsmasq did not answer on 127.0.0.1:$DNS_PORT"; }

# probe_name NAME GOOD BAD: one ok record for GOOD, one timeout for BAD.
probe_name() {
    local name=$1 good=$2 bad=$3 rc out=$TMP/$1.json
    lab_client timeout 30 "$VPCPROBE" check --json --timeout-ms "$TIMEOUT_MS" \
        --dns-server "127.0.0.1:$DNS_PORT" "tcp://$name:$LAB_PORT_OPEN" >"$out" 2>"$TMP/err"
    rc=$?
    ok "$([[ $rc -eq 1 ]]; echo $?)" "$name: check exits 1 (one address not ok; got $rc)"
    jq -e -s --arg good "$good" --arg bad "$bad" --arg name "$name" '
        length == 2 and all(.[]; .host == $name and .port == 9000) and
        ([.[] | select(.verdict == "ok" and .address == $good)] | length) == 1 and
        ([.[] | select(.verdict == "timeout" and .reason == "syn_no_answer"
                       and .address == $bad)] | length) == 1' "$out" >/dev/null
    ok $? "$name: exactly two records, ok on $good and timeout (syn_no_answer) on $bad"
    if [[ $FAILED -ne 0 ]]; then
        sed 's/^/#   stdout: /' "$out"
        sed 's/^/#   stderr: /' "$TMP/err"
    fi
}

probe_name two4.lab.test "$LAB_SERVER4" "$DROP4"
probe_name two6.lab.test "$LAB_SERVER6" "$DROP6"

echo "1..$N"
exit "$FAILED"
