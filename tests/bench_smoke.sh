#!/usr/bin/env bash
# The benchmark must not rot: bench/run --smoke (seconds, no thresholds)
# builds both programs, runs them (epoll-baseline plain and with --recverr)
# in its own lab, checks their verdict counts and that each workload's table
# has the three columns and both ratios, then runs the side-by-side cases in
# miniature: VPCPROBE (set by meson) check, epoll-baseline and, where
# installed, blackbox-exporter and nmap on the same targets (with
# redis-server and PostgreSQL where installed), and checks that each ran and
# that vpcprobe's verdicts are right. Needs root for the lab's network
# namespaces; skipped (77) without.
set -u
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
if ((EUID != 0)); then
	echo "SKIP: bench/run needs root for its network namespaces" >&2
	exit 77
fi
exec "$SOURCE_ROOT/bench/run" --smoke
