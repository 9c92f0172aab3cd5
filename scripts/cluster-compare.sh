#!/usr/bin/env bash
# scripts/cluster-compare.sh — creates/s and sequential write MiB/s on a single-member etcd
# versus a three-member etcd cluster (3-replica Swift, tempauth, both), same machine, one
# run, alternating the two layouts. Prints a Markdown table (for docs/DEPLOYMENT.md).
#
#   scripts/cluster-compare.sh [--reps N] [--files N] [--mib N]
#
# Uses $RINGFS_BIN, else target/release/ringfs, else target/debug/ringfs (build first).
# Services live in .services-cmp1 and .services-cmp3 and are stopped at the end.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
REPS=2 FILES=2000 MIB=512
while (($#)); do
    case $1 in
        --reps) REPS=$2; shift 2 ;;
        --files) FILES=$2; shift 2 ;;
        --mib) MIB=$2; shift 2 ;;
        -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
BIN=${RINGFS_BIN:-}
[[ -n $BIN ]] || { [[ -x target/release/ringfs ]] && BIN=target/release/ringfs; } || true
[[ -n $BIN ]] || BIN=target/debug/ringfs
[[ -x $BIN ]] || { echo "no ringfs binary ($BIN): cargo build --release first" >&2; exit 1; }

MNT=$(mktemp -d /tmp/ringfs-cmp.XXXXXX)
declare -A CONF
cleanup() {
    mountpoint -q "$MNT" && "$BIN" umount "$MNT" >/dev/null 2>&1 || true
    for n in 1 3; do scripts/services.sh down --dir "$REPO/.services-cmp$n" >/dev/null 2>&1 || true; done
    rmdir "$MNT" 2>/dev/null || true
}
trap cleanup EXIT
for n in 1 3; do
    echo "starting services: $n etcd member(s), 3 Swift replicas" >&2
    CONF[$n]=$(scripts/services.sh up --dir "$REPO/.services-cmp$n" --etcd-members "$n" --replicas 3 | tail -n1)
done

# creates/s: FILES empty files by 8 threads (create + close), one directory per thread.
creates() {
    python3 - "$1" "$FILES" <<'EOF'
import os, sys, threading, time
root, n = sys.argv[1], int(sys.argv[2])
threads = 8
def work(t):
    d = os.path.join(root, f"t{t}")
    os.mkdir(d)
    for i in range(n // threads):
        os.close(os.open(os.path.join(d, f"f{i}"), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
start = time.time()
ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
print(f"{(n // threads) * threads / (time.time() - start):.0f}")
EOF
}

# MiB/s: MIB MiB in 1 MiB writes, fsync at the end.
seqwrite() {
    local t0 t1
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$1/big" bs=1M count="$MIB" conv=fsync status=none
    t1=$(date +%s.%N)
    python3 -c "print(f'{$MIB / ($t1 - $t0):.1f}')"
}

declare -A CR WR
for r in $(seq 1 "$REPS"); do
    for n in 1 3; do
        vol=cmp$n-$r-$RANDOM
        "$BIN" format -c "${CONF[$n]}" "$vol" >/dev/null
        "$BIN" mount -c "${CONF[$n]}" "$vol" "$MNT" --background >/dev/null
        c=$(creates "$MNT")
        w=$(seqwrite "$MNT")
        "$BIN" umount "$MNT" >/dev/null
        echo "rep $r, $n member(s): $c creates/s, $w MiB/s" >&2
        CR[$n]+="$c "
        WR[$n]+="$w "
    done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
c1=$(median <<<"${CR[1]}") c3=$(median <<<"${CR[3]}") w1=$(median <<<"${WR[1]}") w3=$(median <<<"${WR[3]}")
echo "| layout | creates/s (8 threads, $FILES empty files) | sequential write MiB/s ($MIB MiB, 1 MiB writes, fsync) |"
echo "|---|---|---|"
echo "| 1 etcd member, 3 Swift replicas | $c1 | $w1 |"
echo "| 3 etcd members, 3 Swift replicas | $c3 | $w3 |"
python3 -c "print(f'| 3 members / 1 member | {$c3 / $c1:.2f}x | {$w3 / $w1:.2f}x |')"
echo "(median of $REPS alternating runs; binary $BIN)"
