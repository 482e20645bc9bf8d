# tap.sh: the TAP lines the lab scripts print; sourced, not run.
#   ok STATUS TEXT   "ok N - TEXT" when STATUS is 0, else "not ok N - TEXT"
#                    and FAILED=1 (N counts up from the caller's N)
#   bail TEXT...     "Bail out! TEXT" and exit 1
# shellcheck shell=bash

ok() {
    N=$((N + 1))
    if [[ $1 == 0 ]]; then
        echo "ok $N - $2"
    else
        echo "not ok $N - $2"
        # shellcheck disable=SC2034 # the caller's
        FAILED=1
    fi
}

bail() {
    echo "Bail out! $*"
    exit 1
}
