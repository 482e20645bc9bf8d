#!/usr/bin/env bash
# The daemon and status page benchmarks must not rot: bench/daemon --smoke
# and bench/page --smoke (seconds each, no thresholds) run the agent under
# test ($VPCPROBE) in their own lab with 6 targets and check that results of
# every verdict reach their collector and that the page answers under wrk.
# Needs root for the lab's network namespaces, and wrk for the page; skipped
# (77) without them.
set -u
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
if ((EUID != 0)); then
	echo "SKIP: bench/daemon and bench/page need root for their network namespaces" >&2
	exit 77
fi
for tool in ip nft python3 curl wrk; do
	if ! command -v "$tool" >/dev/null; then
		echo "SKIP: '$tool' is not installed (scripts/bootstrap installs it)" >&2
		exit 77
	fi
done
if [[ -z ${VPCPROBE:-} || ! -x $VPCPROBE ]]; then
	echo "bench_daemon_smoke: VPCPROBE must name the vpcprobe binary (meson test sets it)" >&2
	exit 1
fi
rc=0
"$SOURCE_ROOT/bench/daemon" --smoke --vpcprobe "$VPCPROBE" || rc=1
"$SOURCE_ROOT/bench/page" --smoke --vpcprobe "$VPCPROBE" || rc=1
exit "$rc"
