#!/usr/bin/env bash
# tests/browser.sh — headless Chromium on the status page of an agent that
# probes the network lab (tests/lab/lab.sh).
#
# The agent runs in the lab's client namespace with its status page on that
# namespace's 127.0.0.1:9464, probing the server's fingerprint ports (ok,
# refused, timeout, unreachable, reset), a target named like an XSS attempt
# and a Redis-like server on the namespace's loopback whose error line holds
# HTML. Chromium, in the same namespace, dumps the DOM after the page's
# script has run; the test asserts each target's name, badge and next step,
# that the script ran under the CSP (data-live="1"), and that nothing
# injected ran or became an element. The agent also checks the listener on
# port 6379 (the Redis-like server, bound to loopback) and runs a beacon on
# the namespace's 127.0.0.1:18080 that the test reaches once: the dumped DOM,
# rebuilt by the script from /api/v1/status, must show the listener table's
# row and the beacon's arrival. The screenshot goes to the build directory
# as status.png.
#
# Exit 0 when all pass, 1 when any fails, 77 (skip) without root, network
# namespaces, nft or chromium. Env: VPCPROBE (set by meson), TESTS_DIR.

set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
VPCPROBE=${VPCPROBE:-$TESTS_DIR/../build/vpcprobe}
BUILD_DIR=$(cd "$(dirname "$VPCPROBE")" && pwd)
SHOT=$BUILD_DIR/status.png
STATUS_ADDR=127.0.0.1:9464
XSS_NAME="<img src=x onerror=document.title='pwned'>"
BEACON_PORT=18080

# shellcheck source=tests/lab/lab.sh
source "$TESTS_DIR/lab/lab.sh"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $CHROMIUM ]]; then
    echo "SKIP: chromium is not installed (apt-get install chromium)" >&2
    exit 77
fi
lab_require_root
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

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vpbrowser.XXXXXX") || exit 1
if ! lab_up; then
    echo "Bail out! lab_up failed"
    exit 1
fi

# A Redis-like server on the client namespace's loopback: every command gets
# an error line that holds markup and a script.
cat >"$WORK/redis_like.py" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 6379))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.settimeout(2)
        c.recv(4096)
        c.sendall(b"-ERR <img src=y onerror=document.title='pwned-2'><script>document.title='pwned-3'</script>\r\n")
    except OSError:
        pass
    c.close()
EOF
# Not through lab_client: a backgrounded function is a subshell, and its PID
# is not the server's. `ip netns exec` execs, so $! is the server itself.
ip netns exec "$LAB_CLIENT_NS" python3 -u "$WORK/redis_like.py" >"$WORK/redis.out" 2>&1 &
LOCAL_PIDS+=("$!")

cat >"$WORK/agent.json" <<EOF
{
  "agent": { "name": "diag-vm-europe-west1", "status_listen": "$STATUS_ADDR" },
  "defaults": { "interval_s": 5, "timeout_ms": 1500 },
  "targets": [
    { "name": "orders-db", "url": "postgres://$LAB_SERVER4:$LAB_PORT_DROP", "connector_range": "10.8.0.0/28" },
    { "name": "payments-api", "url": "tcp://$LAB_SERVER4:$LAB_PORT_CLOSED" },
    { "name": "ldap", "url": "tcp://$LAB_SERVER4:$LAB_PORT_ADMIN" },
    { "name": "billing-lb", "url": "tcp://$LAB_SERVER4:$LAB_PORT_RESET" },
    { "name": "cache", "url": "redis://127.0.0.1:6379" },
    { "name": "$XSS_NAME", "url": "tcp://$LAB_SERVER4:$LAB_PORT_CLOSED" },
    { "name": "api-vm", "url": "tcp://$LAB_SERVER4:$LAB_PORT_OPEN" },
    { "name": "metrics-v6", "url": "tcp://[$LAB_SERVER6]:$LAB_PORT_OPEN" }
  ],
  "listeners": [ { "port": 6379 } ],
  "beacons": [ { "listen": "127.0.0.1:$BEACON_PORT", "expect_from": ["127.0.0.0/30"] } ]
}
EOF

# Bounded polls: the Redis-like server's "ready", then the agent's /-/ready.
for _ in $(seq 100); do
    grep -q ready "$WORK/redis.out" && break
    sleep 0.05
done
ip netns exec "$LAB_CLIENT_NS" "$VPCPROBE" run -c "$WORK/agent.json" >/dev/null 2>"$WORK/agent.log" &
LOCAL_PIDS+=("$!")
ready=no
for _ in $(seq 300); do
    if lab_client python3 -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://$STATUS_ADDR/-/ready', timeout=2).status != 200)" 2>/dev/null; then
        ready=yes
        break
    fi
    sleep 0.05
done
check "the agent in the lab is ready (every target ran once)" test "$ready" = yes
# One arrival at the beacon (it listens before READY=1, so before /-/ready).
check "the beacon in the lab answers a GET" lab_client python3 -c \
    "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:$BEACON_PORT/', timeout=5).status != 200)"

chrome() {
    lab_client "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$WORK/chrome" --virtual-time-budget=5000 "$@" "http://$STATUS_ADDR/" \
        2>>"$WORK/chrome.log"
}
chrome --dump-dom >"$WORK/dom.html"
chrome --window-size=1400,1700 --hide-scrollbars --screenshot="$SHOT" >/dev/null

has() { grep -qF -- "$1" "$WORK/dom.html"; }
hasnt() { ! grep -qF -- "$1" "$WORK/dom.html"; }

check "the DOM was dumped" test -s "$WORK/dom.html"
check "the page's script ran under the CSP (data-live=\"1\")" has 'data-live="1"'
for name in orders-db payments-api ldap billing-lb cache api-vm metrics-v6; do
    check "target $name is on the page" has ">$name</a>"
done
check "the XSS target's name shows as text" has ">&lt;img src=x onerror=document.title='pwned'&gt;</a>"
for badge in TIMEOUT REFUSED UNREACHABLE "PROTOCOL ERROR" OK; do
    check "a $badge badge, in words" has "<span class=\"bt\">$badge</span>"
done
check "a failing row says for how long" has "failing for "
check "the timeout's next step lists the firewall rules for its port" \
    has "gcloud compute firewall-rules list --filter=\"direction=INGRESS AND allowed[].ports:$LAB_PORT_DROP\""
check "and names the rule that admits the connector range" \
    has "--rules=tcp:$LAB_PORT_DROP --source-ranges=10.8.0.0/28 --destination-ranges=$LAB_SERVER4/32"
check "the refused target's next step is ss on its port" has "ss -ltnp 'sport = :$LAB_PORT_CLOSED'"
check "the timeout's hint is shown" has "A VPC firewall rule probably drops this traffic"
check "nothing injected became an <img> element" hasnt '<img'
check "no injected handler or script ran (the title is the agent's)" hasnt 'pwned</title>'
check "the Redis-like server's markup shows as text" has "&lt;script&gt;document.title='pwned-3'&lt;/script&gt;"
check "exactly one <script> element: the agent's" test "$(grep -o '<script' "$WORK/dom.html" | wc -l)" -eq 1
check "failing rows come before ok rows" \
    test "$(grep -n 'data-name="api-vm"' "$WORK/dom.html" | cut -d: -f1)" -ge \
    "$(grep -n 'data-name="orders-db"' "$WORK/dom.html" | cut -d: -f1)"
check "the listener table is on the page" has '<section id="listeners">'
check "its row for port 6379: loopback only, LOCALHOST ONLY, owned by python3" \
    grep -qE '<tr class="failing" data-port="6379">.*<span class="bt">LOCALHOST ONLY</span>.*<td class="scope">loopback_only</td><td class="addresses">127.0.0.1</td><td class="owner">[0-9]+ python3</td>' "$WORK/dom.html"
check "the beacon's section is on the page" has "<section class=\"beacon\" data-listen=\"127.0.0.1:$BEACON_PORT\">"
check "a beacon row: the arrival from 127.0.0.1, inside expect_from" \
    grep -qE '<tr class="inside"><td>1</td><td class="time">[0-9T:.Z-]+</td><td class="source">127\.0\.0\.1:[0-9]+</td><td class="match">inside</td><td class="network">127\.0\.0\.0/30</td>' "$WORK/dom.html"
check "the screenshot is saved as $SHOT" test -s "$SHOT"

if ((failed)); then
    echo "# agent log:"
    sed 's/^/#   /' "$WORK/agent.log"
    echo "# chromium log (last lines):"
    tail -5 "$WORK/chrome.log" | sed 's/^/#   /'
fi
echo "1..$n"
exit "$failed"
