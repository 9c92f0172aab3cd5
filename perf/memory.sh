#!/usr/bin/env bash
# perf/memory.sh — peak RSS of a ringfs mount through a large sequential write and read.
#
#   perf/memory.sh CONF [GIB]        (default 10 GiB; run as root; needs the services of CONF)
#
# Formats a fresh volume, mounts it with CONF as is (engine.memory_limit is the budget),
# writes GIB GiB with dd (1 MiB blocks, fsync at the end), drops the page cache, reads it
# back, and prints the mount process's peak RSS (VmHWM) after each phase; then deletes
# the file and unmounts. Set RINGFS_* variables to try other settings.
set -euo pipefail
CONF=${1:?usage: perf/memory.sh CONF [GIB]}
GIB=${2:-10}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${RINGFS_BIN:-$REPO/target/release/ringfs}
VOL=mem-$(date +%s)
MNT=$(mktemp -d /tmp/ringfs-mem.XXXXXX)
"$B" format -c "$CONF" "$VOL" >/dev/null
"$B" mount -c "$CONF" "$VOL" "$MNT" --background >/dev/null
trap '"$B" umount "$MNT" >/dev/null 2>&1 || true; rmdir "$MNT" 2>/dev/null || true' EXIT
PID=$(pgrep -f "ringfs mount -c $CONF $VOL" | head -1)
hwm() { awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$PID/status"; }
echo "budget: $("$B" config show -c "$CONF" | awk -F' = ' '/^memory_limit/ {print $2}')"
echo "write ${GIB} GiB: $(dd if=/dev/zero of="$MNT/big" bs=1M count=$((GIB * 1024)) conv=fsync 2>&1 | tail -1)"
echo "peak RSS after the write: $(hwm)"
echo 3 >/proc/sys/vm/drop_caches
echo "read ${GIB} GiB: $(dd if="$MNT/big" of=/dev/null bs=1M 2>&1 | tail -1)"
echo "peak RSS after the read: $(hwm)"
rm -f "$MNT/big"
