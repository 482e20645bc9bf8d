#!/usr/bin/env bash
# tests/manpage.sh — vpcprobe(8), agent/vpcprobe.8, against the linters and
# against the program it documents:
#
#   - 'groff -man -ww -z' prints nothing (every groff warning on), mandoc
#     -Tlint finds nothing at warning level when mandoc is installed, and
#     'man -l' renders it at 80 columns with warnings on and says nothing;
#   - it has the sections an admin looks for (SYNOPSIS, COMMANDS,
#     CONFIGURATION, VERDICTS, SIGNALS, FILES, EXIT STATUS, ...);
#   - every command that 'vpcprobe --help' lists has its own subsection and a
#     SYNOPSIS line, and every option and environment variable that
#     'vpcprobe COMMAND --help' names is in that command's subsection (or, for
#     a variable, under ENVIRONMENT);
#   - every verdict of the contract is described.
#
# Exit 0 when all pass, 1 when any fails, 77 (skip) without groff.
# Env: VPCPROBE (the binary, set by meson), SOURCE_ROOT (set by meson).

set -u

TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$TESTS_DIR/.." && pwd)}
VPCPROBE=${VPCPROBE:-$SOURCE_ROOT/build/vpcprobe}
PAGE=$SOURCE_ROOT/agent/vpcprobe.8

if ! command -v groff >/dev/null 2>&1; then
    echo "SKIP: groff is not installed (package groff-base)" >&2
    exit 77
fi
[[ -f $PAGE ]] || { echo "Bail out! $PAGE is missing" >&2; exit 1; }
[[ -x $VPCPROBE ]] || { echo "Bail out! VPCPROBE=$VPCPROBE is not an executable" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/vpman.XXXXXX") || exit 1
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
    [[ -n ${2:-} && -f $2 ]] && sed -n '1,20s/^/#   /p' "$2"
}
# quiet DESC CMD...: passes when CMD exits 0 and prints nothing at all.
quiet() {
    local desc=$1 rc
    shift
    "$@" >"$T/lint" 2>&1
    rc=$?
    if [[ $rc -eq 0 && ! -s $T/lint ]]; then
        pass "$desc"
    else
        echo "# exit status $rc"
        fail "$desc" "$T/lint"
    fi
}

export LC_ALL=C.UTF-8

# --- linters ---------------------------------------------------------------

quiet "groff -man -ww -z: no warning" groff -man -ww -z "$PAGE"
if command -v mandoc >/dev/null 2>&1; then
    quiet "mandoc -Tlint -Wwarning: clean" mandoc -Tlint -Wwarning "$PAGE"
else
    skip "mandoc -Tlint -Wwarning: clean" "mandoc is not installed"
fi
if command -v man >/dev/null 2>&1; then
    # Warnings go to stderr; the page itself is thrown away.
    MANWIDTH=80 man --warnings -l "$PAGE" >/dev/null 2>"$T/manerr"
    rc=$?
    if [[ $rc -eq 0 && ! -s $T/manerr ]]; then
        pass "man -l renders it at 80 columns without a warning"
    else
        echo "# exit status $rc"
        fail "man -l renders it at 80 columns without a warning" "$T/manerr"
    fi
else
    skip "man -l renders it at 80 columns without a warning" "man-db is not installed"
fi

# --- contents ----------------------------------------------------------------

# The page as plain text (ASCII hyphens and quotes, no overstriking).
LC_ALL=C groff -man -Tascii -P-c -P-b -P-o -P-u "$PAGE" 2>/dev/null >"$T/page.txt"
[[ -s $T/page.txt ]] || { echo "Bail out! groff rendered nothing" >&2; exit 1; }

for s in NAME SYNOPSIS DESCRIPTION COMMANDS CONFIGURATION VERDICTS "STATUS ENDPOINTS" \
    SIGNALS ENVIRONMENT FILES "EXIT STATUS" "SEE ALSO"; do
    if grep -qx "$s" "$T/page.txt"; then pass "section $s"; else fail "section $s"; fi
done

# section_of CMD: the rendered subsection "   CMD ..." up to the next heading.
section_of() {
    awk -v cmd="$1" '
        /^[^ ]/ || /^   [^ ]/ { inside = ($0 ~ "^   " cmd "( |$)") }
        inside' "$T/page.txt"
}

# The commands: the lines of 'vpcprobe --help' under "Commands:" that start
# with two spaces and a word.
"$VPCPROBE" --help >"$T/help" 2>&1
awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' \
    "$T/help" >"$T/commands"
if [[ $(wc -l <"$T/commands") -ge 5 ]]; then
    pass "vpcprobe --help lists $(wc -l <"$T/commands") commands: $(tr '\n' ' ' <"$T/commands")"
else
    fail "vpcprobe --help lists the commands" "$T/help"
fi

synopsis=$(awk '/^SYNOPSIS/ { on = 1; next } /^[^ ]/ { on = 0 } on' "$T/page.txt")
while read -r cmd; do
    if grep -qE "^ +vpcprobe $cmd( |$)" <<<"$synopsis"; then
        pass "$cmd: in SYNOPSIS"
    else
        fail "$cmd: in SYNOPSIS"
    fi
    section_of "$cmd" >"$T/section"
    if [[ -s $T/section ]]; then
        pass "$cmd: has its subsection under COMMANDS"
    else
        fail "$cmd: has its subsection under COMMANDS"
        continue
    fi
    # Its options: every --long and -s spelled at the start of a help line
    # or in its usage line; 'version' takes none (its --help is the version).
    "$VPCPROBE" "$cmd" --help >"$T/cmdhelp" 2>&1 </dev/null
    grep -oE '(^|[ ,[])--?[a-z][a-z0-9-]*' "$T/cmdhelp" | sed 's/^[ ,[]//' | sort -u >"$T/opts"
    missing=()
    while read -r opt; do
        [[ -z $opt ]] && continue
        grep -qE -- "(^|[^a-z0-9-])$opt([^a-z0-9-]|$)" "$T/section" || missing+=("$opt")
    done <"$T/opts"
    if ((${#missing[@]} == 0)); then
        pass "$cmd: its $(wc -l <"$T/opts") options from --help are in its subsection"
    else
        fail "$cmd: options from --help missing in its subsection: ${missing[*]}"
    fi
    # Environment variables its help names (NAME=... or NAME at a line's
    # start under "Environment:").
    awk '/^Environment:/ { on = 1; next } /^[^ ]/ { on = 0 } on && /^  [A-Z_]+/ { sub(/=.*/, "", $1); print $1 }' \
        "$T/cmdhelp" >"$T/env"
    while read -r var; do
        if awk '/^ENVIRONMENT/ { on = 1; next } /^[^ ]/ { on = 0 } on' "$T/page.txt" |
            grep -qw -- "$var"; then
            pass "$cmd: $var is under ENVIRONMENT"
        else
            fail "$cmd: $var is under ENVIRONMENT"
        fi
    done <"$T/env"
done <"$T/commands"

verdicts=$(awk '/^VERDICTS/ { on = 1; next } /^[^ ]/ { on = 0 } on' "$T/page.txt")
missing=()
for v in ok refused localhost_only timeout unreachable dns_error reset tls_error \
    protocol_error local_error; do
    grep -qE "^       $v\$|^       $v " <<<"$verdicts" || missing+=("$v")
done
if ((${#missing[@]} == 0)); then
    pass "VERDICTS describes all ten verdicts"
else
    fail "VERDICTS describes all ten verdicts; missing: ${missing[*]}"
fi

exits=$(awk '/^EXIT STATUS/ { on = 1; next } /^[^ ]/ { on = 0 } on' "$T/page.txt")
if grep -qE '^       0' <<<"$exits" && grep -qE '^       1' <<<"$exits" &&
    grep -qE '^       2' <<<"$exits"; then
    pass "EXIT STATUS explains 0, 1 and 2"
else
    fail "EXIT STATUS explains 0, 1 and 2"
fi

echo "1..$n"
if [[ $failed -gt 0 ]]; then
    echo "# $failed of $n failed"
    exit 1
fi
exit 0
