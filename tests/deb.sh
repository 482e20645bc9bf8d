#!/usr/bin/env bash
# tests/deb.sh — the Debian package that scripts/deb builds.
#
# Runs scripts/deb (a release build in SOURCE_ROOT/build-deb, reused from one
# run to the next), then checks the .deb:
#   - dpkg-deb -I: Package, Version (the binary's own), Architecture (dpkg's),
#     Depends, maintainer scripts that sh can parse, no conffiles;
#   - dpkg-deb -c: the binary, the unit in /lib/systemd/system, vpcprobe(8),
#     the example config, root-owned, nothing under /etc;
#   - Depends names the package of every library the packaged binary links
#     (objdump -p NEEDED, resolved by ldd, mapped by dpkg -S), and the seven
#     runtime libraries of meson.build among them;
#   - as root: dpkg --root installs it into a scratch root (its own dpkg
#     database, --force-depends, maintainer scripts chrootless, which leave the
#     host alone), the files are there, the unit is systemd/vpcprobe.service,
#     the installed binary runs 'version' with this host's libraries, and a
#     purge removes it all. Without root: dpkg -x into the scratch root;
#   - apt-get -s against an empty dpkg status (a simulation from this host's
#     package lists: nothing is downloaded or installed) would install the
#     runtime libraries with the package: 'apt install ./vpcprobe_*.deb'
#     pulls them on a machine that lacks them. Skipped without apt lists.
#
# Exit 0 when all pass, 1 when any fails, 77 (skip) without dpkg-deb,
# dpkg-shlibdeps or objdump. Env: VPCPROBE, SOURCE_ROOT (set by meson).

set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$TESTS_DIR/.." && pwd)}
VPCPROBE=${VPCPROBE:-$SOURCE_ROOT/build/vpcprobe}

for tool in dpkg-deb dpkg-shlibdeps objdump ldd meson ninja jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool is not installed (scripts/bootstrap installs it)" >&2
        exit 77
    fi
done
[[ -x $VPCPROBE ]] || { echo "Bail out! VPCPROBE=$VPCPROBE is not an executable" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vpdeb.XXXXXX") || exit 1
trap 'rm -rf -- "$T"' EXIT

n=0
failed=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
# fail DESC [FILE]: FILE's first lines are shown as diagnostics.
fail() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    [[ -n ${2:-} && -f $2 ]] && sed -n '1,25s/^/#   /p' "$2"
}
finish() {
    echo "1..$n"
    if [[ $failed -gt 0 ]]; then
        echo "# $failed of $n failed"
        exit 1
    fi
    exit 0
}

# --- build -------------------------------------------------------------------

# Bounded: a cold release build takes a minute or two on 2 cores.
if deb=$(cd "$SOURCE_ROOT" && timeout 600 scripts/deb 2>"$T/build.log"); then
    deb=$SOURCE_ROOT/$deb
    pass "scripts/deb built $(basename "$deb")"
else
    tail -n 25 "$T/build.log" >"$T/build.tail"
    fail "scripts/deb builds the package" "$T/build.tail"
    finish
fi

version=$("$VPCPROBE" version | awk '{ print $2 }')
arch=$(dpkg --print-architecture)
if [[ $(basename "$deb") == "vpcprobe_${version}_${arch}.deb" && -f $deb ]]; then
    pass "named vpcprobe_${version}_${arch}.deb, in build-deb/"
else
    fail "named vpcprobe_${version}_${arch}.deb (got $deb)"
fi

# --- control -------------------------------------------------------------------

# field_is FIELD VALUE: the control file's FIELD is VALUE.
field_is() {
    local got
    got=$(dpkg-deb -f "$deb" "$1")
    if [[ $got == "$2" ]]; then pass "$1: $2"; else fail "$1: $2 (got '$got')"; fi
}
field_is Package vpcprobe
field_is Version "$version"
field_is Architecture "$arch"
depends=$(dpkg-deb -f "$deb" Depends)
echo "# Depends: $depends"
if [[ -n $depends ]]; then pass "Depends is set"; else fail "Depends is set"; fi

dpkg-deb -I "$deb" >"$T/info"
for s in postinst prerm postrm; do
    if dpkg-deb -I "$deb" "$s" >"$T/$s" 2>/dev/null && sh -n "$T/$s"; then
        pass "$s: present, sh parses it"
    else
        fail "$s: present, sh parses it" "$T/info"
    fi
done
if grep -q 'deb-systemd-helper' "$T/postinst" && grep -q '/run/systemd/system' "$T/postinst"; then
    pass "postinst enables through deb-systemd-helper, reloads only under a running systemd"
else
    fail "postinst enables through deb-systemd-helper, reloads only under a running systemd" "$T/postinst"
fi
if dpkg-deb -I "$deb" conffiles >/dev/null 2>&1; then
    fail "no conffiles (nothing is installed in /etc)"
else
    pass "no conffiles (nothing is installed in /etc)"
fi

# --- contents ------------------------------------------------------------------

dpkg-deb -c "$deb" >"$T/contents"
# has MODE PATH: a line of the listing with that mode, root/root, that path.
has() { grep -qE "^$1 root/root +[0-9]+ [0-9-]+ [0-9:]+ \./$2\$" "$T/contents"; }
while read -r mode path; do
    if has "$mode" "$path"; then pass "contains /$path ($mode root/root)"; else fail "contains /$path ($mode root/root)" "$T/contents"; fi
done <<'EOF'
-rwxr-xr-x usr/bin/vpcprobe
-rw-r--r-- lib/systemd/system/vpcprobe\.service
-rw-r--r-- usr/share/man/man8/vpcprobe\.8\.gz
-rw-r--r-- usr/share/doc/vpcprobe/examples/example\.json
-rw-r--r-- usr/share/doc/vpcprobe/copyright
EOF
if grep -qE ' \./etc/' "$T/contents"; then
    fail "nothing under /etc" "$T/contents"
else
    pass "nothing under /etc"
fi

# --- Depends against what the binary links ------------------------------------------

x=$T/x
dpkg-deb -x "$deb" "$x"
bin=$x/usr/bin/vpcprobe
objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }' >"$T/needed"
ldd "$bin" >"$T/ldd" 2>&1
echo "# NEEDED: $(tr '\n' ' ' <"$T/needed")"
# owner SONAME: the package (without :arch) that owns the library ldd found.
owner() {
    local path p pkg
    path=$(awk -v so="$1" '$1 == so && $2 == "=>" { print $3 }' "$T/ldd")
    [[ -n $path ]] || return 1
    # /lib and /usr/lib are one directory on a merged-/usr system, and dpkg
    # knows each file under one of the two names.
    for p in "$path" "${path#/usr}" "/usr$path" "$(readlink -f "$path")"; do
        pkg=$(dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1)
        [[ -n $pkg ]] && { echo "$pkg"; return 0; }
    done
    return 1
}
# in_depends PKG: PKG is one of the comma-separated Depends entries.
in_depends() { tr ',' '\n' <<<"$depends" | sed 's/^ *//' | grep -qE "^$1( |\$)"; }
unmapped=() absent=() mapped=()
while read -r so; do
    if ! pkg=$(owner "$so") || [[ -z $pkg ]]; then
        unmapped+=("$so")
        continue
    fi
    mapped+=("$so=$pkg")
    in_depends "$pkg" || absent+=("$pkg ($so)")
done <"$T/needed"
echo "# libraries: ${mapped[*]}"
if [[ -s $T/needed && ${#unmapped[@]} -eq 0 ]]; then
    pass "every NEEDED library maps to an installed package (dpkg -S)"
else
    fail "every NEEDED library maps to an installed package; not: ${unmapped[*]}" "$T/ldd"
fi
if ((${#absent[@]} == 0)); then
    pass "Depends lists the package of every linked library"
else
    fail "Depends lists the package of every linked library; missing: ${absent[*]}"
fi
# The runtime libraries of meson.build's dependencies, by their Debian 12 names.
missing=()
for pkg in libc6 libuv1 libcurl4 libjansson4 libssl3 libsystemd0 libc-ares2 libmicrohttpd12; do
    in_depends "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    pass "Depends has libc6, libuv1, libcurl4, libjansson4, libssl3, libsystemd0, libc-ares2, libmicrohttpd12"
else
    fail "Depends lacks ${missing[*]}"
fi

# --- install into a scratch root -------------------------------------------------

root=$T/root
mkdir -p "$root"
check_files() {
    local f ok=1
    for f in usr/bin/vpcprobe lib/systemd/system/vpcprobe.service \
        usr/share/man/man8/vpcprobe.8.gz usr/share/doc/vpcprobe/examples/example.json; do
        [[ -f $root/$f ]] || { echo "#   missing /$f"; ok=0; }
    done
    ((ok))
}
if ((EUID == 0)); then
    mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
    : >"$root/var/lib/dpkg/status"
    if dpkg --root="$root" --force-depends --force-script-chrootless -i "$deb" \
        >"$T/dpkg.log" 2>&1 &&
        dpkg-query --root="$root" -W -f='${Status}' vpcprobe 2>/dev/null |
        grep -qx 'install ok installed'; then
        pass "dpkg --root installs it into a scratch root: install ok installed"
    else
        fail "dpkg --root installs it into a scratch root" "$T/dpkg.log"
    fi
else
    if dpkg -x "$deb" "$root"; then
        pass "dpkg -x unpacks it into a scratch root (not root: no dpkg database)"
    else
        fail "dpkg -x unpacks it into a scratch root"
    fi
fi
if check_files; then
    pass "the binary, the unit, the man page and the example are in place"
else
    fail "the binary, the unit, the man page and the example are in place"
fi
if cmp -s "$root/lib/systemd/system/vpcprobe.service" "$SOURCE_ROOT/systemd/vpcprobe.service"; then
    pass "the installed unit is systemd/vpcprobe.service"
else
    fail "the installed unit is systemd/vpcprobe.service"
fi
if gzip -dc "$root/usr/share/man/man8/vpcprobe.8.gz" | cmp -s - "$SOURCE_ROOT/agent/vpcprobe.8"; then
    pass "the installed man page is agent/vpcprobe.8"
else
    fail "the installed man page is agent/vpcprobe.8"
fi
out=$(timeout 10 "$root/usr/bin/vpcprobe" version 2>&1)
if [[ $out == "vpcprobe $version" ]]; then
    pass "the installed binary runs: $out"
else
    echo "#   vpcprobe version said: $out"
    fail "the installed binary runs 'vpcprobe version'"
fi
if timeout 10 "$root/usr/bin/vpcprobe" validate -c "$root/usr/share/doc/vpcprobe/examples/example.json" \
    >"$T/validate" 2>&1 || grep -q "example.json" "$T/validate"; then
    # The example names secret files that this host does not have: an error
    # that names the file is a working validator too.
    pass "the installed binary loads the installed example config"
else
    fail "the installed binary loads the installed example config" "$T/validate"
fi
if ((EUID == 0)); then
    if dpkg --root="$root" --force-script-chrootless --purge vpcprobe >"$T/purge.log" 2>&1 &&
        [[ ! -e $root/usr/bin/vpcprobe && ! -e $root/lib/systemd/system/vpcprobe.service ]]; then
        pass "dpkg --purge removes it from the scratch root"
    else
        fail "dpkg --purge removes it from the scratch root" "$T/purge.log"
    fi
fi

# --- what apt would pull -----------------------------------------------------------

lists=$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' 2>/dev/null | head -n 1)
if ! command -v apt-get >/dev/null 2>&1 || [[ -z $lists ]]; then
    skip "apt would install the runtime libraries with it" "no apt package lists (apt-get update)"
else
    : >"$T/empty-status"
    # -s: simulate only; the empty status makes every dependency missing.
    timeout 120 apt-get -s -q -o Dir::State::status="$T/empty-status" \
        -o Debug::NoLocking=1 install "$deb" >"$T/apt.log" 2>&1
    rc=$?
    want=()
    while read -r pkg; do
        pkg=${pkg%% *}
        [[ -n $pkg ]] || continue
        grep -qE "^Inst $pkg(:[a-z0-9]+)? " "$T/apt.log" || want+=("$pkg")
    done < <(tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/ *|.*//')
    if [[ $rc -eq 0 ]] && grep -q '^Inst vpcprobe ' "$T/apt.log" && ((${#want[@]} == 0)); then
        pass "apt would install vpcprobe with every Depends package on a host without them"
    else
        echo "# exit status $rc; not pulled: ${want[*]}"
        grep -E '^(E|W):|vpcprobe' "$T/apt.log" >"$T/apt.err"
        fail "apt would install vpcprobe with every Depends package" "$T/apt.err"
    fi
fi

finish
