#!/usr/bin/env bash
# Runs every test: unit and property tests, the integration suites against a real etcd,
# Swift (tempauth, then Keystone v3) and FUSE mounts, and the POSIX conformance run
# (pjdfstest, fsx). Services are started by scripts/services.sh in private directories
# and stopped at the end. Prints one summary line: "N passed, M failed".
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
SVC="$REPO/.services-test"
KSVC="$REPO/.services-test-ks"
LOG="$REPO/target/test-logs"
mkdir -p "$LOG"

"$REPO/scripts/install-deps.sh" || { echo "installing dependencies failed" >&2; exit 1; }

cleanup() {
  "$REPO/scripts/services.sh" down --dir "$SVC" >/dev/null 2>&1 || true
  "$REPO/scripts/services.sh" down --dir "$KSVC" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== build" >&2
cargo build --workspace --all-targets >&2 || { echo "build failed" >&2; exit 1; }

echo "== services (tempauth)" >&2
CONF="$("$REPO/scripts/services.sh" up --dir "$SVC" | tail -n1)" || { echo "services failed to start" >&2; exit 1; }
export RINGFS_TEST_CONF="$CONF"

passed=0
failed=0
suites_failed=()

# Adds the counts of cargo's "test result:" lines in $1 to the totals.
count() {
  local p f
  read -r p f < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$1")
  passed=$((passed + p))
  failed=$((failed + f))
}

run_suite() {
  local name="$1"; shift
  echo "== $name" >&2
  if "$@" >"$LOG/$name.log" 2>&1; then
    echo "   ok" >&2
  else
    echo "   FAILED (log: $LOG/$name.log)" >&2
    tail -n 40 "$LOG/$name.log" >&2
    suites_failed+=("$name")
  fi
  count "$LOG/$name.log"
}

run_suite workspace cargo test --workspace --no-fail-fast

# The perf harness's own logic (perf/lib: per-repetition ratios, run agreement): Python
# unit tests, counted from unittest's "Ran N tests" and "failures=/errors=" lines.
echo "== perf-lib" >&2
if python3 -m unittest discover -s "$REPO/perf/lib" -p 'test_*.py' >"$LOG/perf-lib.log" 2>&1; then
  echo "   ok" >&2
else
  echo "   FAILED (log: $LOG/perf-lib.log)" >&2
  tail -n 40 "$LOG/perf-lib.log" >&2
  suites_failed+=("perf-lib")
fi
ran=$(awk '/^Ran [0-9]+ tests?/ { n = $2 } END { print n + 0 }' "$LOG/perf-lib.log")
bad=$(grep -oE '(failures|errors)=[0-9]+' "$LOG/perf-lib.log" | awk -F= '{ s += $2 } END { print s + 0 }')
passed=$((passed + ran - bad))
failed=$((failed + bad))

echo "== services (keystone)" >&2
if KCONF="$("$REPO/scripts/services.sh" up --dir "$KSVC" --auth keystone | tail -n1)"; then
  run_suite swift-keystone env RINGFS_TEST_CONF="$KCONF" cargo test -p ringfs-swift --no-fail-fast
  "$REPO/scripts/services.sh" down --dir "$KSVC" >/dev/null 2>&1 || true
else
  echo "   keystone services failed to start" >&2
  suites_failed+=("keystone-services")
fi

# Fault injection on the seed's layout: 3 etcd members, 3 Swift replicas, Keystone v3
# with 20 s tokens (own services, started and stopped by the script).
run_suite faults-run env RINGFS_FAULTS_DIR="$REPO/.services-test-faults" "$REPO/scripts/faults.sh"
count "$LOG/faults.log"  # faults.sh keeps cargo's output there

if [[ -x "$REPO/scripts/conformance.sh" ]]; then
  echo "== conformance (pjdfstest, fsx)" >&2
  if "$REPO/scripts/conformance.sh" >"$LOG/conformance.log" 2>&1; then
    echo "   ok" >&2
  else
    echo "   FAILED (log: $LOG/conformance.log)" >&2
    tail -n 40 "$LOG/conformance.log" >&2
    suites_failed+=("conformance")
  fi
  line=$(grep -E '^conformance: [0-9]+ passed, [0-9]+ failed' "$LOG/conformance.log" | tail -n1)
  if [[ -n "$line" ]]; then
    passed=$((passed + $(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
  fi
fi

if ((${#suites_failed[@]})); then
  echo "failed suites: ${suites_failed[*]}" >&2
fi
echo "$passed passed, $failed failed"
if ((${#suites_failed[@]} || failed)); then
  exit 1
fi
