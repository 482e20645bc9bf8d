#!/usr/bin/env bash
# regress.sh HARNESS CORPUS RUNS ARTIFACTS
#
# The fuzz suite's regression run of one harness: every input of CORPUS
# once, then RUNS mutations from a fixed seed. What the mutations find goes
# to a scratch directory that is removed, never into the committed corpus;
# a crashing input is kept in ARTIFACTS (and named in the log) so that it
# can be committed with its fix.
set -euo pipefail
harness=$1 corpus=$2 runs=$3 artifacts=$4

[[ -d $corpus ]] || { echo "regress: no corpus at $corpus" >&2; exit 1; }
mkdir -p "$artifacts"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vpcprobe-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

name=$(basename "$harness")
# -error_exitcode/-timeout_exitcode: libFuzzer's default, 77, is what meson
# reads as "skipped"; a crash or a hang must fail the test.
# -timeout: one input taking this long is a hang, reported as a crash.
# -rss_limit_mb: memory a parser may not grow past on any input.
"$harness" -seed=1 -runs="$runs" -timeout=25 -rss_limit_mb=1024 -print_final_stats=1 \
	-error_exitcode=1 -timeout_exitcode=1 \
	-artifact_prefix="$artifacts/$name-" "$scratch" "$corpus"
