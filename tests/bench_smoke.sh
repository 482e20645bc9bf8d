#!/usr/bin/env bash
# The benchmark must not rot: bench/run --smoke (seconds, no thresholds)
# builds both programs, runs them in its own lab and checks their verdict
# counts. Needs root for the lab's network namespaces; skipped (77) without.
set -u
SOURCE_ROOT=${SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
if ((EUID != 0)); then
	echo "SKIP: bench/run needs root for its network namespaces" >&2
	exit 77
fi
exec "$SOURCE_ROOT/bench/run" --smoke
