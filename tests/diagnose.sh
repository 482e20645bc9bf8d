#!/usr/bin/env bash
# shellcheck disable=SC2016  # jq programs are single-quoted on purpose
# tests/diagnose.sh [live] — `vpcprobe diagnose` (issue 7).
#
# Without an argument: the fixture exports of tests/fixtures/diagnose,
# shaped like gcloud's --format=json output. healthy/ is a full set; every
# other directory is one cause, an overlay on healthy/ (its files replace
# healthy's, and expect.json's "remove" lists the files it takes away).
# expect.json gives the target, the exit status, the cause, every step's
# status and substrings the evidence ("step") or the fix ("fix:step") must
# hold. They all run with --no-probe or with a results file: the 10.x and
# other addresses there are data, never probed. broken/expect.tsv lists
# broken inputs that must exit 2 naming the file and the JSON path. Then
# usage errors, the text output (no colour, no control characters from the
# exports) and one live probe of a port on 127.0.0.1.
#
# With "live": the network lab (tests/lab/lab.sh; root, else exit 77). A
# port the server drops (9002), probed from the client with exports whose
# firewall has no rule for it, gives firewall_denies; a service bound to
# 127.0.0.1 only, diagnosed on its own host (the client namespace, on its
# 198.18.0.1), gives localhost_bind.
#
# Prints "ok N - ..." / "not ok N - ..."; exit 0 when all pass, 1 otherwise,
# 77 (skipped) without jq (or, live, without root and the lab's tools).
# Env: VPCPROBE (the binary, set by meson), TESTS_DIR (tests/ source dir).

set -u

mode=${1:-fixtures}
TESTS_DIR=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
VPCPROBE=${VPCPROBE:-$TESTS_DIR/../build/vpcprobe}
FIX=$TESTS_DIR/fixtures/diagnose
STEPS='["connector_ready","connector_attached","same_region","egress_setting","firewall_admits_connector","target_listening","cloudsql_private_path","logs_show_path","connector_capacity"]'

if ! command -v jq >/dev/null 2>&1; then
    echo "SKIP: jq is not installed" >&2
    exit 77
fi
if [[ ! -x $VPCPROBE ]]; then
    echo "Bail out! VPCPROBE=$VPCPROBE is not an executable" >&2
    exit 1
fi

T=
PIDS=()
LAB=0
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    [[ $LAB == 1 ]] && lab_down
    [[ -n $T ]] && rm -rf -- "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
T=$(mktemp -d "${TMPDIR:-/tmp}/vpdiag.XXXXXX") || exit 1

# --- TAP-ish helpers -------------------------------------------------------

n=0
failed=0
OUT= ERR= RC=
pass() {
    n=$((n + 1))
    echo "ok $n - $1"
}
fail() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    echo "#   exit status: $RC"
    printf '%s\n' "$OUT" | head -40 | sed 's/^/#   out: /'
    printf '%s\n' "$ERR" | head -10 | sed 's/^/#   err: /'
}
# run ARGS...: runs vpcprobe diagnose, keeping stdout, stderr and status.
run() {
    OUT=$("$@" 2>"$T/stderr")
    RC=$?
    ERR=$(cat "$T/stderr")
}
# is DESC CONDITION: a shell test.
is() {
    if eval "$2"; then pass "$1"; else fail "$1"; fi
}
# jqis DESC PROGRAM [ARGS...]: the jq program must print true on $OUT.
jqis() {
    local desc=$1 prog=$2
    shift 2
    if [[ $(jq -e "$@" "$prog" <<<"$OUT" 2>/dev/null) == true ]]; then
        pass "$desc"
    else
        fail "$desc (jq: $prog)"
    fi
}

# exports CASE: healthy/ overlaid with CASE/, without its "remove" files.
exports() {
    local c=$1 dir=$T/exports/$1 f
    mkdir -p "$dir"
    cp "$FIX"/healthy/* "$dir"/
    [[ $c != healthy ]] && cp "$FIX/$c"/* "$dir"/
    rm -f "$dir/expect.json"
    while IFS= read -r f; do
        [[ -n $f ]] && rm -f "$dir/$f"
    done < <(jq -r '.remove // [] | .[]' "$FIX/$c/expect.json")
    printf '%s' "$dir"
}

# --- one directory per cause ----------------------------------------------

fixture() {
    local c=$1 exp=$FIX/$1/expect.json dir target want_rc key val
    dir=$(exports "$c")
    target=$(jq -r .target "$exp")
    want_rc=$(jq -r .exit "$exp")
    run "$VPCPROBE" diagnose --json --no-probe --exports "$dir" "$target"
    is "$c: exit status $want_rc" "[[ \$RC == $want_rc && -z \$ERR ]]"
    jqis "$c: target and cause" '.target == $t and .cause == $e.cause' \
        --arg t "$target" --argjson e "$(cat "$exp")"
    jqis "$c: the nine steps in order" '[.steps[].step] == $s' --argjson s "$STEPS"
    jqis "$c: every step's status" '([.steps[] | {(.step): .status}] | add) == $e.steps' \
        --argjson e "$(cat "$exp")"
    jqis "$c: a fix exactly on the failing steps, evidence everywhere" \
        'all(.steps[]; ((.status == "fail") == (.fix != null)) and (.evidence | length > 0))'
    while IFS=$'\t' read -r key val; do
        [[ -z $key ]] && continue
        if [[ $key == fix:* ]]; then
            jqis "$c: ${key#fix:}'s fix holds: $val" \
                '.steps[] | select(.step == $k) | .fix // "" | contains($v)' --arg k "${key#fix:}" --arg v "$val"
        else
            jqis "$c: $key's evidence holds: $val" \
                '.steps[] | select(.step == $k) | .evidence | contains($v)' --arg k "$key" --arg v "$val"
        fi
    done < <(jq -r '.contains // {} | to_entries[] | "\(.key)\t\(.value)"' "$exp")
}

# --- broken inputs ---------------------------------------------------------

broken() {
    local opt file want
    while IFS=$'\t' read -r opt file want; do
        [[ -z $opt || $opt == \#* ]] && continue
        run "$VPCPROBE" diagnose --no-probe "$opt" "$FIX/broken/$file" tcp://10.128.0.5:5432
        is "broken $file: exit 2, nothing on stdout, the file and the JSON path named" \
            '[[ $RC == 2 && -z $OUT && $ERR == *"$want"* && $ERR == "vpcprobe diagnose: "* ]]'
    done <"$FIX/broken/expect.tsv"
}

usage() {
    local healthy
    healthy=$(exports healthy)
    run "$VPCPROBE" diagnose --help
    is "--help exits 0 and names every step, input file and exit status" \
        '[[ $RC == 0 && $OUT == *firewall_admits_connector* && $OUT == *connector_capacity* &&
            $OUT == *firewall-rules.json* && $OUT == *results.jsonl* && $OUT == *"Exit status"* ]]'
    run "$VPCPROBE" --help
    is "vpcprobe --help lists diagnose" '[[ $RC == 0 && $OUT == *"diagnose [--exports DIR]"* ]]'
    run "$VPCPROBE" diagnose --no-probe
    is "no TARGET_URL: exit 2" '[[ $RC == 2 && $ERR == *"expected a TARGET_URL"* ]]'
    run "$VPCPROBE" diagnose --no-probe tcp://10.0.0.1:1 tcp://10.0.0.2:2
    is "two targets: exit 2" '[[ $RC == 2 && $ERR == *"expected one TARGET_URL"* ]]'
    run "$VPCPROBE" diagnose --no-probe tcp://10.0.0.1
    is "a bad URL: exit 2, the parser's sentence" '[[ $RC == 2 && $ERR == *"needs a port"* ]]'
    run "$VPCPROBE" diagnose --no-probe --frobnicate tcp://10.0.0.1:1
    is "an unknown option: exit 2" '[[ $RC == 2 ]]'
    run "$VPCPROBE" diagnose --no-probe --exports "$T/nowhere" tcp://10.0.0.1:1
    is "--exports of a missing directory: exit 2" '[[ $RC == 2 && $ERR == *nowhere* ]]'
    run "$VPCPROBE" diagnose --no-probe --exports "$healthy/service.json" tcp://10.0.0.1:1
    is "--exports of a file: exit 2" '[[ $RC == 2 && $ERR == *"needs a directory"* ]]'
    # An option names a file that --exports would have taken from DIR.
    run "$VPCPROBE" diagnose --json --no-probe --exports "$healthy" \
        --firewall-rules "$FIX/firewall_denies/firewall-rules.json" tcp://10.128.0.5:5432
    jqis "an input option wins over --exports" '.cause == "firewall_denies"'
    # A pipe (process substitution) and a FIFO whose writer comes later are
    # read to their end: only the agent refuses what is not a regular file.
    run "$VPCPROBE" diagnose --json --no-probe --exports "$healthy" \
        --firewall-rules <(cat "$FIX/firewall_denies/firewall-rules.json") tcp://10.128.0.5:5432
    jqis "an input through a pipe, <(...)" '.cause == "firewall_denies"'
    mkfifo "$T/rules.fifo" || exit 1
    (sleep 0.2; cat "$FIX/firewall_denies/firewall-rules.json" >"$T/rules.fifo") &
    PIDS+=("$!")
    run "$VPCPROBE" diagnose --json --no-probe --exports "$healthy" \
        --firewall-rules "$T/rules.fifo" tcp://10.128.0.5:5432
    jqis "an input through a FIFO whose writer opens it later" '.cause == "firewall_denies"'
    run "$VPCPROBE" diagnose --json --exports "$healthy" \
        --results "$FIX/not_listening/results.jsonl" tcp://10.128.0.5:5432
    jqis "--results stands for the probe (no --no-probe needed)" \
        '.cause == "not_listening" and (.steps[5].evidence | contains("not_listening/results.jsonl"))'
    run "$VPCPROBE" diagnose --json --exports "$healthy" \
        --results "$FIX/not_listening/results.jsonl" tcp://10.128.0.99:5432
    jqis "records of another target are not this one's" \
        '.steps[5].status == "unknown" and (.steps[5].evidence | contains("has no record of"))'
}

text() {
    local dir hostile
    dir=$(exports firewall_denies)
    run env NO_COLOR=1 "$VPCPROBE" diagnose --no-probe --exports "$dir" tcp://10.128.0.5:5432
    is "text: exit 1, numbered steps, the fix and the cause" \
        '[[ $RC == 1 && $OUT == *" 5. firewall_admits_connector  FAIL"* &&
            $OUT == *" 1. connector_ready            pass"* &&
            $OUT == *"    fix: gcloud compute firewall-rules create allow-run-conn-tcp-5432"* &&
            $OUT == *"cause: firewall_denies"* ]]'
    is "text: no colour with NO_COLOR" '[[ $OUT != *$'"'"'\033'"'"'* ]]'
    # A rule named with a terminal escape must not reach the terminal.
    hostile=$T/hostile-rules.json
    jq '[.[0] | .name = "deny\u001b[2Jall" | del(.allowed) | .denied = [{"IPProtocol": "all"}] |
         .priority = 10] + .' "$FIX/healthy/firewall-rules.json" >"$hostile"
    run env NO_COLOR=1 "$VPCPROBE" diagnose --no-probe --exports "$dir" --firewall-rules "$hostile" \
        tcp://10.128.0.5:5432
    is "text: control characters from the exports are shown as '?'" \
        '[[ $RC == 1 && $OUT != *$'"'"'\033'"'"'* && $OUT == *"deny?[2Jall"* ]]'
    run "$VPCPROBE" diagnose --json --no-probe --exports "$dir" --firewall-rules "$hostile" \
        tcp://10.128.0.5:5432
    jqis "json: the same rule name, escaped by JSON" \
        '.steps[4].evidence | contains("deny\u001b[2Jall")'
    dir=$(exports healthy)
    run env NO_COLOR=1 "$VPCPROBE" diagnose --no-probe --exports "$dir" tcp://10.128.0.5:5432
    is "text: healthy exits 0 and says no step fails" \
        '[[ $RC == 0 && $OUT == *"cause: none found: no step fails"* ]]'
}

# A live probe, on loopback only: a port that was just closed is refused.
loopback() {
    local port
    if ! command -v python3 >/dev/null 2>&1; then
        pass "live probe of 127.0.0.1 # SKIP no python3"
        return
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    run "$VPCPROBE" diagnose --json "tcp://127.0.0.1:$port"
    jqis "a live probe of a closed port on 127.0.0.1: not_listening, the rest unknown" \
        '.cause == "not_listening" and .steps[5].status == "fail" and
         (.steps[5].evidence | startswith("a live probe: 127.0.0.1:")) and
         ([.steps[] | select(.step != "target_listening") | .status] | all(. == "unknown"))'
    is "  and exits 1" '[[ $RC == 1 ]]'
}

fixtures_mode() {
    local d
    for d in "$FIX"/*/; do
        d=$(basename "$d")
        [[ $d == broken ]] && continue
        fixture "$d"
    done
    broken
    usage
    text
    loopback
}

# --- the lab ---------------------------------------------------------------

# lab_exports DIR ADDRESS [PORT]: healthy's exports for a lab host: the VM
# instance at ADDRESS, egress all-traffic (198.18.0.0/15 is not an
# internal range), and a probe instead of results and logs. With PORT, an
# allow rule for the connector to tcp:PORT.
lab_exports() {
    local dir=$1 addr=$2 port=${3:-}
    mkdir -p "$dir"
    cp "$FIX"/healthy/{connector,peerings}.json "$dir"/
    jq --arg a "$addr" '.networkInterfaces[0].networkIP = $a' "$FIX/healthy/instance.json" \
        >"$dir/instance.json"
    jq '.spec.template.metadata.annotations["run.googleapis.com/vpc-access-egress"] = "all-traffic"' \
        "$FIX/healthy/service.json" >"$dir/service.json"
    if [[ -n $port ]]; then
        jq --arg p "$port" '[.[0] | .name = "allow-run-conn-lab" | .allowed[0].ports = [$p]] + .' \
            "$FIX/healthy/firewall-rules.json" >"$dir/firewall-rules.json"
    else
        cp "$FIX/healthy/firewall-rules.json" "$dir/"
    fi
}

live_mode() {
    local line fd pid
    # shellcheck source=tests/lab/lab.sh
    source "$TESTS_DIR/lab/lab.sh"
    lab_require_root
    LAB=1
    if ! lab_up; then
        echo "Bail out! lab_up failed"
        exit 1
    fi

    # The server drops tcp/9002; the exports' firewall only admits 5432.
    lab_exports "$T/lab1" "$LAB_SERVER4"
    run lab_client "$VPCPROBE" diagnose --json --exports "$T/lab1" "tcp://$LAB_SERVER4:$LAB_PORT_DROP"
    jqis "lab: a dropped port without a firewall rule: firewall_denies" \
        '.cause == "firewall_denies" and .steps[4].status == "fail" and
         (.steps[4].evidence | contains("implied deny-ingress")) and
         (.steps[4].fix | contains("--rules tcp:9002 --source-ranges 10.8.0.0/28"))'
    jqis "lab: the live probe timed out, so whether it listens is unknown" \
        '.steps[5].status == "unknown" and (.steps[5].evidence | contains("timeout (syn_no_answer)"))'
    jqis "lab: the timeout is no saturation hint while the firewall denies" \
        '.steps[8].status == "pass" and (.steps[8].evidence | contains("explained by"))'
    is "lab: exit 1" '[[ $RC == 1 ]]'

    # A service bound to 127.0.0.1 only, diagnosed on its own host: the
    # client namespace, whose address has no nft rule (the server drops
    # 20000-39999, where a probe's own source port may fall).
    mkfifo "$T/ready" || exit 1
    lab_client python3 -u "$TESTS_DIR/lab/listener.py" 9010 127.0.0.1 >"$T/ready" 2>"$T/listener.err" &
    pid=$!
    PIDS+=("$pid")
    exec {fd}<"$T/ready"
    line=
    read -r -t 15 -u "$fd" line
    exec {fd}<&-
    if [[ $line != "ready 9010" ]]; then
        echo "Bail out! the loopback listener did not start: $(cat "$T/listener.err")"
        exit 1
    fi
    lab_exports "$T/lab2" "$LAB_CLIENT4" 9010
    run lab_client "$VPCPROBE" diagnose --json --exports "$T/lab2" "tcp://$LAB_CLIENT4:9010"
    jqis "lab: a loopback-bound service: localhost_bind" \
        '.cause == "localhost_bind" and .steps[5].status == "fail" and
         (.steps[5].evidence | contains("localhost_only (loopback_bind)")) and
         .steps[4].status == "pass" and (.steps[4].evidence | contains("allow-run-conn-lab"))'
    is "lab: exit 1" '[[ $RC == 1 ]]'
}

case $mode in
fixtures) fixtures_mode ;;
live) live_mode ;;
*)
    echo "usage: $0 [live]" >&2
    exit 2
    ;;
esac

echo "1..$n"
[[ $failed == 0 ]]
