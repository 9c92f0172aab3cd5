#!/usr/bin/env bash
# scripts/faults.sh — fault-injection tests (tests/faults.rs) on a 3-member etcd,
# 3-replica Swift, Keystone v3 layout with 20 s tokens.
#
#   scripts/faults.sh [--keep] [TEST_FILTER]
#
# Services live in RINGFS_FAULTS_DIR (default $REPO/.services-faults) and are stopped at
# the end unless --keep (a kept, healthy DIR makes the next run start in ~1 s instead of
# ~60 s). CARGO_TARGET_DIR is honoured. Prints one RESULT line per case and a summary
# "faults: N passed, M failed"; exit status 0 only if every case passed.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export RINGFS_FAULTS_DIR=${RINGFS_FAULTS_DIR:-$REPO/.services-faults}
KEEP=0 FILTER=""
for a in "$@"; do
    case $a in
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) FILTER=$a ;;
    esac
done
LOG_DIR=${CARGO_TARGET_DIR:-$REPO/target}/test-logs
mkdir -p "$LOG_DIR"
LOG=$LOG_DIR/faults.log

cleanup() {
    ((KEEP)) || "$REPO/scripts/services.sh" down --dir "$RINGFS_FAULTS_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

t0=$SECONDS
echo "== build" >&2
cargo test --test faults --no-run >&2 || { echo "build failed" >&2; exit 1; }
echo "== services ($RINGFS_FAULTS_DIR)" >&2
RINGFS_KEYSTONE_TOKEN_TTL=20 "$REPO/scripts/services.sh" up --dir "$RINGFS_FAULTS_DIR" \
    --etcd-members 3 --replicas 3 --auth keystone >/dev/null || { echo "services failed to start" >&2; exit 1; }
t1=$SECONDS
echo "== tests (log: $LOG)" >&2
cargo test --test faults -- --ignored --test-threads=1 --nocapture $FILTER >"$LOG" 2>&1
rc=$?
# one RESULT line per case; for a failure, the first lines of its panic message
grep -E -A4 '^\[faults\] RESULT|panicked at' "$LOG" | grep -vE '^ +[0-9]+: |^ +at |^stack backtrace|^--$' >&2
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p = $i; if ($(i+1) ~ /^failed/) f = $i } } END { print p + 0, f + 0 }' "$LOG")
echo "faults: $passed passed, $failed failed (tests $((SECONDS - t1)) s, total $((SECONDS - t0)) s)"
exit $rc
