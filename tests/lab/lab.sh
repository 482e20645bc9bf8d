# shellcheck shell=bash
# shellcheck disable=SC2034  # LAB_* constants are for the callers
# tests/lab/lab.sh — a two-namespace network lab for the vpcprobe tests.
#
# Source it, then:
#
#     lab_require_root          # exit 77 (skip) without root, netns or nft
#     trap lab_down EXIT        # destroy the lab whatever happens
#     lab_up || exit 1
#     lab_client "$VPCPROBE" check --json tcp://198.18.0.2:9000
#
# Layout (ID = LAB_ID, default $$, shortened to a hash when too long):
#
#     netns vpl${ID}c (client)                netns vpl${ID}s (server)
#     vpl${ID}a 198.18.0.1/24       <-veth->  vpl${ID}b 198.18.0.2/24
#               fd00:198:18::1/64                       fd00:198:18::2/64
#
# The client has no default route: 198.19.255.1 and fd00:198:18:ffff::1 fail
# locally with "no route" and nothing ever leaves. The server runs an nft
# table "inet lab" that gives every TCP port a fingerprint:
#
#     9000  listener.py accepts (0.0.0.0 and ::)
#     9001  nothing listens: the kernel answers RST
#     9002  drop                               -> timeout
#     9003  reject with tcp reset              -> RST
#     9004  reject with icmpx admin-prohibited -> ICMP 3/13, ICMPv6 1/1
#     9005  reject with icmpx host-unreachable -> ICMP 3/1,  ICMPv6 1/3
#     9006  reject with icmpx no-route         -> ICMP 3/0,  ICMPv6 1/0
#     9007  reject with icmpx port-unreachable -> ICMP 3/3,  ICMPv6 1/4
#     20000-39999 drop (bulk dropped ports for benchmarks)
#
# ICMP rate limits are switched off in the server namespace, so a burst of
# probes gets a reject for every SYN instead of a timeout for some.
#
# A veth pair delivers synchronously: the server's ICMP error reaches the
# client socket while connect() still holds the socket lock. The kernel then
# keeps it only as a soft error (TcpExtLockDroppedIcmps); over IPv6 a socket
# without IPV6_RECVERR is woken only by the SYN retransmit ~1 s later. With
# IP_RECVERR / IPV6_RECVERR the error queue wakes it at once (and SO_ERROR
# returns the soft error), which is what a prober needs anyway to tell an
# ICMP port-unreachable from a RST (both ECONNREFUSED).
#
# Only traffic between the two namespaces: addresses from 198.18.0.0/15 and
# fd00:198:18::/48, per the network rule in DESIGN.md.

LAB_ID=${LAB_ID:-$$}

LAB_CLIENT4=198.18.0.1
LAB_SERVER4=198.18.0.2
LAB_CLIENT6=fd00:198:18::1
LAB_SERVER6=fd00:198:18::2
LAB_NOROUTE4=198.19.255.1
LAB_NOROUTE6=fd00:198:18:ffff::1
LAB_PORT_OPEN=9000
LAB_PORT_CLOSED=9001
LAB_PORT_DROP=9002
LAB_PORT_RESET=9003
LAB_PORT_ADMIN=9004
LAB_PORT_HOST=9005
LAB_PORT_NET=9006
LAB_PORT_PORT=9007
LAB_BULK_DROP_FIRST=20000
LAB_BULK_DROP_LAST=39999
# Seconds lab_up waits for the listener's "ready" line and for addresses.
LAB_READY_TIMEOUT=${LAB_READY_TIMEOUT:-15}

_LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_LAB_PIDS=()
_LAB_TMP=

# Interface names are at most 15 characters: "vpl" + id + one letter leaves
# 11 for the id. A longer id is replaced by a short hash of itself.
_lab_names() {
    local id=$LAB_ID
    if [[ ${#id} -gt 11 || ! $id =~ ^[A-Za-z0-9]+$ ]]; then
        id=$(printf '%s' "$LAB_ID" | cksum | cut -d' ' -f1)
        id=h${id:0:10}
    fi
    LAB_CLIENT_NS=vpl${id}c
    LAB_SERVER_NS=vpl${id}s
    LAB_CLIENT_IF=vpl${id}a
    LAB_SERVER_IF=vpl${id}b
    _LAB_PROBE_NS=vpl${id}t
}
_lab_names

_lab_err() { printf 'lab: %s\n' "$*" >&2; }

lab_client() { ip netns exec "$LAB_CLIENT_NS" "$@"; }
lab_server() { ip netns exec "$LAB_SERVER_NS" "$@"; }

# Exit 77 (meson: skipped) when the lab cannot be built here.
lab_require_root() {
    local tool
    if [[ $EUID -ne 0 ]]; then
        echo "lab: SKIP: needs root to create network namespaces (running as uid $EUID)" >&2
        exit 77
    fi
    for tool in ip nft python3; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            echo "lab: SKIP: '$tool' is not installed" >&2
            exit 77
        fi
    done
    ip netns del "$_LAB_PROBE_NS" 2>/dev/null
    if ! ip netns add "$_LAB_PROBE_NS" 2>/dev/null; then
        echo "lab: SKIP: 'ip netns add' is not permitted here" >&2
        exit 77
    fi
    if ! ip netns exec "$_LAB_PROBE_NS" nft list ruleset >/dev/null 2>&1; then
        ip netns del "$_LAB_PROBE_NS" 2>/dev/null
        echo "lab: SKIP: nft does not work inside a network namespace here" >&2
        exit 77
    fi
    ip netns del "$_LAB_PROBE_NS" 2>/dev/null
    return 0
}

# Bounded poll: _lab_wait SECONDS DESCRIPTION COMMAND...
_lab_wait() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 20; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    _lab_err "timed out after ${secs}s waiting for $what"
    return 1
}

_lab_addrs_ready() {
    local ns
    for ns in "$LAB_CLIENT_NS" "$LAB_SERVER_NS"; do
        # No address may still be tentative (DAD) ...
        [[ -z $(ip -n "$ns" -6 addr show tentative) ]] || return 1
    done
    # ... and the veth carrier must be up on both ends.
    ip -n "$LAB_CLIENT_NS" link show dev "$LAB_CLIENT_IF" | grep -q LOWER_UP &&
        ip -n "$LAB_SERVER_NS" link show dev "$LAB_SERVER_IF" | grep -q LOWER_UP
}

_lab_up_steps() {
    local ns line fd

    # A stale lab of the same name (an earlier run that died): delete it.
    # Its processes are not ours to kill; they die with the namespace's use.
    ip netns del "$LAB_CLIENT_NS" 2>/dev/null
    ip netns del "$LAB_SERVER_NS" 2>/dev/null

    _LAB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/vplab.XXXXXX") ||
        { _lab_err "mktemp failed"; return 1; }

    for ns in "$LAB_CLIENT_NS" "$LAB_SERVER_NS"; do
        ip netns add "$ns" || { _lab_err "ip netns add $ns failed"; return 1; }
        ip -n "$ns" link set lo up || { _lab_err "lo up in $ns failed"; return 1; }
        # No DAD at all, so link-local addresses are usable at once too.
        ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.accept_dad=0 \
            net.ipv6.conf.default.accept_dad=0 >/dev/null ||
            { _lab_err "accept_dad sysctl in $ns failed"; return 1; }
    done

    ip link add "$LAB_CLIENT_IF" netns "$LAB_CLIENT_NS" type veth \
        peer name "$LAB_SERVER_IF" netns "$LAB_SERVER_NS" ||
        { _lab_err "creating veth $LAB_CLIENT_IF/$LAB_SERVER_IF failed"; return 1; }

    if ! { ip -n "$LAB_CLIENT_NS" addr add "$LAB_CLIENT4/24" dev "$LAB_CLIENT_IF" &&
        ip -n "$LAB_CLIENT_NS" -6 addr add "$LAB_CLIENT6/64" dev "$LAB_CLIENT_IF" nodad &&
        ip -n "$LAB_CLIENT_NS" link set "$LAB_CLIENT_IF" up &&
        ip -n "$LAB_SERVER_NS" addr add "$LAB_SERVER4/24" dev "$LAB_SERVER_IF" &&
        ip -n "$LAB_SERVER_NS" -6 addr add "$LAB_SERVER6/64" dev "$LAB_SERVER_IF" nodad &&
        ip -n "$LAB_SERVER_NS" link set "$LAB_SERVER_IF" up; }; then
        _lab_err "addressing the veth pair failed"
        return 1
    fi

    # ICMP rate limits would turn rejects into timeouts under load.
    # (icmp_msgs_* are per namespace on Linux >= 6.2; older kernels do not
    # show them inside a namespace, and then the host's value stays as it is.)
    lab_server sysctl -q -w net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 >/dev/null ||
        { _lab_err "ICMP ratelimit sysctls in $LAB_SERVER_NS failed"; return 1; }
    lab_server sysctl -q -w net.ipv4.icmp_msgs_per_sec=1000000 \
        net.ipv4.icmp_msgs_burst=1000000 >/dev/null 2>&1 ||
        _lab_err "note: icmp_msgs_per_sec/burst not settable in a namespace on this kernel"

    lab_server nft -f - <<'EOF' || { _lab_err "loading the nft ruleset failed"; return 1; }
table inet lab {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 9002 drop
        tcp dport 9003 reject with tcp reset
        tcp dport 9004 reject with icmpx type admin-prohibited
        tcp dport 9005 reject with icmpx type host-unreachable
        tcp dport 9006 reject with icmpx type no-route
        tcp dport 9007 reject with icmpx type port-unreachable
        tcp dport 20000-39999 drop
    }
}
EOF

    _lab_wait "$LAB_READY_TIMEOUT" "the veth pair and its addresses" _lab_addrs_ready || return 1

    # The listener on 9000 says "ready PORT" once it listens; wait for that.
    mkfifo "$_LAB_TMP/ready" || { _lab_err "mkfifo failed"; return 1; }
    ip netns exec "$LAB_SERVER_NS" python3 -u "$_LAB_DIR/listener.py" "$LAB_PORT_OPEN" 0.0.0.0 :: \
        >"$_LAB_TMP/ready" 2>"$_LAB_TMP/listener.err" &
    _LAB_PIDS+=("$!")
    # The writer opens the fifo before exec, so this open does not hang; if
    # the listener dies before "ready", read sees EOF at once.
    exec {fd}<"$_LAB_TMP/ready"
    line=
    read -r -t "$LAB_READY_TIMEOUT" -u "$fd" line
    exec {fd}<&-
    if [[ $line != "ready $LAB_PORT_OPEN" ]]; then
        _lab_err "listener on :$LAB_PORT_OPEN did not become ready within ${LAB_READY_TIMEOUT}s (got '${line}'); its stderr:"
        sed 's/^/lab:   /' "$_LAB_TMP/listener.err" >&2
        return 1
    fi
    return 0
}

# Build the lab. On failure: print why, tear down what was built, return 1.
lab_up() {
    _lab_names
    if ! _lab_up_steps; then
        lab_down
        return 1
    fi
    return 0
}

# Destroy the lab: kill only what lab_up started (by PID), delete both
# namespaces. Idempotent, and safe after a half-finished lab_up.
lab_down() {
    local pid
    for pid in "${_LAB_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    _LAB_PIDS=()
    ip netns del "$LAB_CLIENT_NS" 2>/dev/null
    ip netns del "$LAB_SERVER_NS" 2>/dev/null
    if [[ -n $_LAB_TMP ]]; then
        rm -rf -- "$_LAB_TMP"
        _LAB_TMP=
    fi
    return 0
}
