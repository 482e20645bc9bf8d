#!/usr/bin/env bash
# tests/systemd.sh — the unit systemd/vpcprobe.service, checked offline (no
# systemd as PID 1 needed, no root needed):
#
#   - the contract's settings are there (Type=notify, ExecReload, DynamicUser,
#     StateDirectory, ConfigurationDirectory, WatchdogSec, LimitNOFILE, no
#     capability, the address families, the system call filter);
#   - 'systemd-analyze verify' is clean: exit 0 and not one line of output.
#     verify wants ExecStart's and ExecReload's programs and the units the
#     service is ordered against, so it runs with --root= on a scratch root:
#     this host's units, the unit under test, the built binary as
#     /usr/bin/vpcprobe, kill as /bin/kill. MANPATH points man at
#     agent/vpcprobe.8, so Documentation=man:vpcprobe(8) is checked too.
#     A misspelt copy of the unit must make verify speak (the check works);
#   - 'systemd-analyze security --offline=true' rates its exposure 2.0 or
#     lower (parsed from the "Overall exposure level" line, and --threshold).
#
# Exit 0 when all pass, 1 when any fails, 77 (skip) without systemd-analyze.
# Env: VPCPROBE (the binary, set by meson), SOURCE_ROOT (set by meson).

set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$TESTS_DIR/.." && pwd)}
VPCPROBE=${VPCPROBE:-$SOURCE_ROOT/build/vpcprobe}
UNIT=$SOURCE_ROOT/systemd/vpcprobe.service
MANPAGE=$SOURCE_ROOT/agent/vpcprobe.8
MAX_EXPOSURE=2.0

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze is not installed (package systemd)" >&2
    exit 77
fi
for f in "$UNIT" "$MANPAGE"; do
    [[ -f $f ]] || { echo "Bail out! $f is missing" >&2; exit 1; }
done
[[ -x $VPCPROBE ]] || { echo "Bail out! VPCPROBE=$VPCPROBE is not an executable" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vpsystemd.XXXXXX") || exit 1
trap 'rm -rf -- "$T"' EXIT

n=0
failed=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
# fail DESC [FILE]: FILE's first lines are shown as diagnostics.
fail() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    [[ -n ${2:-} && -f $2 ]] && sed -n '1,20s/^/#   /p' "$2"
}

# --- the contract's settings -------------------------------------------------

# unit_has KEY=VALUE-ERE: a line of the unit is exactly that (comments aside).
unit_has() { grep -qE "^$1\$" "$UNIT"; }
while IFS='|' read -r desc ere; do
    if unit_has "$ere"; then pass "unit: $desc"; else fail "unit: $desc (want a line ^$ere\$)"; fi
done <<'EOF'
Type=notify (READY=1 from the agent)|Type=notify
ExecStart runs the agent without -c (the default path, else the embedded default)|ExecStart=/usr/bin/vpcprobe run
ExecReload sends SIGHUP|ExecReload=/bin/kill -HUP \$MAINPID
Restart=on-failure|Restart=on-failure
WatchdogSec is set|WatchdogSec=[0-9]+(s|min)?
DynamicUser=yes|DynamicUser=yes
StateDirectory=vpcprobe (/var/lib/vpcprobe)|StateDirectory=vpcprobe
ConfigurationDirectory=vpcprobe (/etc/vpcprobe)|ConfigurationDirectory=vpcprobe
LimitNOFILE sized for the probes in flight (>= 16384 + reserve)|LimitNOFILE=(1[7-9]|[2-9][0-9])[0-9]{3}
MemoryMax is set|MemoryMax=[0-9]+[KMG]?
no capability at all|CapabilityBoundingSet=
NoNewPrivileges=yes|NoNewPrivileges=yes
ProtectSystem=strict|ProtectSystem=strict
PrivateTmp=yes|PrivateTmp=yes
address families: inet, inet6, unix, netlink (sock_diag) and no other|RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
SystemCallFilter=@system-service|SystemCallFilter=@system-service
EOF
if grep -qE '^AmbientCapabilities=.+' "$UNIT"; then
    fail "unit: no ambient capability"
else
    pass "unit: no ambient capability"
fi

# --- systemd-analyze verify on a scratch root ----------------------------------

root=$T/root
mkdir -p "$root/usr/bin" "$root/lib/systemd/system" "$T/man/man8"
ln -s usr/bin "$root/bin"
host_units=
for d in /lib/systemd/system /usr/lib/systemd/system; do
    [[ -f $d/multi-user.target ]] && { host_units=$d; break; }
done
if [[ -z $host_units ]]; then
    echo "Bail out! no systemd unit directory with multi-user.target on this host" >&2
    exit 1
fi
cp -a "$host_units/." "$root/lib/systemd/system/"
cp "$UNIT" "$root/lib/systemd/system/vpcprobe.service"
cp "$VPCPROBE" "$root/usr/bin/vpcprobe"
KILL=$(type -P kill || true)
if [[ -z $KILL ]]; then
    echo "Bail out! no kill program (package procps) for ExecReload" >&2
    exit 1
fi
cp "$KILL" "$root/usr/bin/kill"
cp "$MANPAGE" "$T/man/man8/vpcprobe.8"

man_opt=()
if ! command -v man >/dev/null 2>&1; then
    echo "# man is not installed (package man-db): verify runs with --man=no"
    man_opt=(--man=no)
fi

# verify reads the unit by name from the root, and writes warnings to stderr.
verify() {
    (cd "$T" && MANPATH=$T/man timeout 60 systemd-analyze verify "${man_opt[@]}" \
        --root="$root" "$1") >"$T/verify.out" 2>&1
}
verify vpcprobe.service
rc=$?
if [[ $rc -eq 0 && ! -s $T/verify.out ]]; then
    pass "systemd-analyze verify: exit 0, no output"
else
    echo "# exit status $rc"
    fail "systemd-analyze verify: exit 0, no output" "$T/verify.out"
fi

# The same check must notice a misspelt directive and a missing program.
sed -e 's/^ProtectSystem=/ProtectSytem=/' \
    -e 's|^ExecStart=/usr/bin/vpcprobe|ExecStart=/usr/bin/vpcprobe-missing|' \
    "$UNIT" >"$root/lib/systemd/system/vpcprobe-broken.service"
verify vpcprobe-broken.service
if grep -q "ProtectSytem" "$T/verify.out" && grep -q "vpcprobe-missing" "$T/verify.out"; then
    pass "systemd-analyze verify reports a misspelt key and a missing ExecStart program"
else
    fail "systemd-analyze verify reports a misspelt key and a missing ExecStart program" \
        "$T/verify.out"
fi
rm -f "$root/lib/systemd/system/vpcprobe-broken.service"

# --- systemd-analyze security --offline ---------------------------------------

(cd "$T" && timeout 60 systemd-analyze security --offline=true --root="$root" \
    vpcprobe.service) >"$T/security.out" 2>&1
rc=$?
level=$(sed -n 's/.*Overall exposure level for vpcprobe\.service: \([0-9][0-9.]*\).*/\1/p' \
    "$T/security.out")
echo "# exposure: ${level:-unknown} (at most $MAX_EXPOSURE)"
if [[ $rc -eq 0 && -n $level ]] && awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l <= m) }'; then
    pass "systemd-analyze security --offline: exposure $level <= $MAX_EXPOSURE"
else
    echo "# exit status $rc"
    grep -v '✓' "$T/security.out" | sed -n '1,30s/^/#   /p'
    fail "systemd-analyze security --offline: exposure ${level:-unknown} <= $MAX_EXPOSURE"
fi

# --threshold counts in tenths: 20 is 2.0.
if (cd "$T" && timeout 60 systemd-analyze security --offline=true --threshold=20 \
    --root="$root" vpcprobe.service) >/dev/null 2>&1; then
    pass "systemd-analyze security --offline --threshold=20 exits 0"
else
    fail "systemd-analyze security --offline --threshold=20 exits 0"
fi

echo "1..$n"
if [[ $failed -gt 0 ]]; then
    echo "# $failed of $n failed"
    exit 1
fi
exit 0
