#!/usr/bin/env bash
# scripts/services.sh — local etcd + Swift (+ optional Keystone v3) for ringfs.
#
#   services.sh up     [--dir DIR] [--replicas N] [--etcd-members N] [--auth tempauth|keystone]
#   services.sh down   [--dir DIR] [--purge]
#   services.sh status [--dir DIR]
#   services.sh kill   NAME [--dir DIR] [--signal SIG]   (default SIGKILL: a crash)
#   services.sh start  NAME [--dir DIR]                  (same command line as before)
#
# Contract (other tools rely on it):
#   * everything lives under DIR (default: $REPO/.services): configs, data, rings,
#     logs (DIR/log/NAME.log), pids (DIR/pids/NAME.pid), command lines (DIR/cmds/NAME);
#   * `up` prints the absolute path of DIR/ringfs.toml as the LAST line of stdout;
#     progress goes to stderr; DIR/services.env is shell-sourceable; keystone mode
#     also writes DIR/keystone.env;
#   * `up` on a DIR whose services already run and are healthy just prints the path;
#     on a DIR that was brought `down` (without --purge) it restarts on the same
#     ports with the same data (the ports are baked into the Swift rings and the
#     etcd member list, so they never change for a DIR);
#   * process names: etcd0..etcd{M-1}, memcached, account1..N, container1..N,
#     object1..N, proxy, keystone (keystone mode);
#   * only processes recorded in DIR/pids are ever signalled (whole process group:
#     each service is started with setsid, so workers die with their parent).
#
# Only /etc/swift/swift.conf lives outside DIR, see ensure_swift_conf.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
LIB=$SCRIPT_DIR/lib
# Debian's python: it has swift, keystone and keystonemiddleware. The python3 on PATH
# may be a pyenv shim without the OpenStack libraries.
PY=/usr/bin/python3

BASE_PKGS=(etcd-server etcd-client swift swift-proxy swift-account swift-container swift-object
           python3-swiftclient memcached fuse3 protobuf-compiler curl procps)
# Not the `keystone` package: its maintainer scripts configure and start a system service.
KEYSTONE_PKGS=(python3-keystone python3-openstackclient uwsgi-core uwsgi-plugin-python3
               python3-keystonemiddleware)

PART_POWER=8                 # 256 partitions: plenty for a test cluster
ETCD_QUOTA=$((4 * 1024 * 1024 * 1024))
KS_ADMIN_PASSWORD=admin-secret
KS_SWIFT_PASSWORD=swift-secret
# Seconds to wait for a service to become healthy (etcd, Swift, round trip); Keystone
# gets twice as long. Generous because other builds often load this 2-core machine
# (seen: Swift 3 replicas 11 s, Keystone 31 s under a parallel cargo build).
HEALTH_TIMEOUT=${RINGFS_SERVICES_TIMEOUT:-60}
# Services get a clean, fixed environment: the caller's PYTHONPATH / pyenv / VIRTUAL_ENV
# must not leak into Debian's python, and etcd treats every ETCD_* variable as a flag
# (services.env exports ETCD_ENDPOINTS etc.). Stored in DIR/cmds/NAME so `start NAME`
# behaves the same from any shell.
CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
           HOME=${HOME:-/root} LANG=C.UTF-8 LC_ALL=C.UTF-8)

log() { printf '[services %s] %s\n' "$(date +%T)" "$*" >&2; }
UP_IN_PROGRESS=0
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    if ((UP_IN_PROGRESS)); then
        printf '[services] processes started so far are left running for inspection; stop them with: %s down --dir %s\n' \
            "${BASH_SOURCE[0]}" "$DIR" >&2
    fi
    exit 1
}

usage() {  # [exit code]
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# ---------------------------------------------------------------------------------------
# arguments
# ---------------------------------------------------------------------------------------
CMD=${1:-}
[[ -n $CMD ]] || usage
shift
DIR_ARG="" REPLICAS_ARG="" MEMBERS_ARG="" AUTH_ARG="" PURGE=0 SIGNAL=KILL NAME_ARG=""
while (($#)); do
    case $1 in
        --dir) DIR_ARG=${2:?--dir needs a value}; shift 2 ;;
        --dir=*) DIR_ARG=${1#*=}; shift ;;
        --replicas) REPLICAS_ARG=${2:?--replicas needs a value}; shift 2 ;;
        --replicas=*) REPLICAS_ARG=${1#*=}; shift ;;
        --etcd-members) MEMBERS_ARG=${2:?--etcd-members needs a value}; shift 2 ;;
        --etcd-members=*) MEMBERS_ARG=${1#*=}; shift ;;
        --auth) AUTH_ARG=${2:?--auth needs a value}; shift 2 ;;
        --auth=*) AUTH_ARG=${1#*=}; shift ;;
        --purge) PURGE=1; shift ;;
        --signal) SIGNAL=${2:?--signal needs a value}; shift 2 ;;
        --signal=*) SIGNAL=${1#*=}; shift ;;
        -h|--help) usage 0 ;;
        -*) die "unknown option $1" ;;
        *) [[ -z $NAME_ARG ]] || die "unexpected argument $1"; NAME_ARG=$1; shift ;;
    esac
done
[[ -z $REPLICAS_ARG || $REPLICAS_ARG =~ ^[1-9][0-9]*$ ]] || die "--replicas must be a positive integer"
[[ -z $MEMBERS_ARG || $MEMBERS_ARG =~ ^[1-9][0-9]*$ ]] || die "--etcd-members must be a positive integer"
[[ -z $AUTH_ARG || $AUTH_ARG == tempauth || $AUTH_ARG == keystone ]] || die "--auth must be tempauth or keystone"
[[ $HEALTH_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "RINGFS_SERVICES_TIMEOUT must be a positive number of seconds"
KEYSTONE_TIMEOUT=$((HEALTH_TIMEOUT * 2))

DIR=${DIR_ARG:-$REPO/.services}
[[ $DIR == /* ]] || DIR=$PWD/$DIR
DIR=${DIR%/}

# State variables come only from DIR/services.env, never from the caller's environment
# (someone may have sourced another DIR's services.env in this shell).
unset SERVICES_DIR RINGFS_CONFIG RINGFS_AUTH ETCD_MEMBERS ETCD_CLIENT_PORTS ETCD_PEER_PORTS \
      ETCD_ENDPOINTS ETCD_PREFIX ETCD_CLUSTER_TOKEN MEMCACHED_PORT SWIFT_REPLICAS SWIFT_PROXY_PORT \
      SWIFT_ACCOUNT_PORTS SWIFT_CONTAINER_PORTS SWIFT_OBJECT_PORTS SWIFT_PROXY_URL SWIFT_AUTH_URL \
      SWIFT_USER SWIFT_KEY SWIFT_USER2 SWIFT_KEY2 KEYSTONE_PORT KEYSTONE_URL KEYSTONE_TOKEN_TTL

# ---------------------------------------------------------------------------------------
# packages
# ---------------------------------------------------------------------------------------
ensure_packages() {
    local pkgs=("${BASE_PKGS[@]}") missing=() line
    [[ $RINGFS_AUTH == keystone ]] && pkgs+=("${KEYSTONE_PKGS[@]}")
    # one dpkg-query for all: this is the fast path when nothing is missing
    local installed
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null || true)
    for p in "${pkgs[@]}"; do
        line=$(grep -E "^$p(:[a-z0-9]+)? ii" <<<"$installed" || true)
        [[ -n $line ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] || die "missing packages (${missing[*]}) and not root to install them"
    log "installing missing packages: ${missing[*]}"
    local alog=$DIR/log/apt.log
    export DEBIAN_FRONTEND=noninteractive
    # Lock::Timeout: wait for a concurrent apt/dpkg instead of failing at once
    apt-get -o DPkg::Lock::Timeout=600 update >>"$alog" 2>&1 \
        || die "apt-get update failed; see $alog"
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" >>"$alog" 2>&1 \
        || die "apt-get install ${missing[*]} failed; see $alog"
}

# Swift 2.30 reads its hash prefix/suffix and storage policies from the hard-coded
# /etc/swift/swift.conf (swift.common.utils.SWIFT_CONF_FILE): there is no environment
# variable, and `swift_dir` in a server config only says where the rings are
# (set_swift_dir() is only called by swift-recon). So this one file has to exist. We
# never modify an existing one (the Debian package ships one); if it is absent we write
# a minimal one. The prefix/suffix must never change afterwards: they decide where
# every object is stored.
ensure_swift_conf() {
    local f=/etc/swift/swift.conf
    if [[ ! -f $f ]]; then
        log "writing $f (absent; Swift cannot start without it)"
        mkdir -p /etc/swift
        local salt
        salt=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
        cat >"$f" <<EOF
# written by ringfs scripts/services.sh because it was absent: Swift 2.30 reads this
# path unconditionally. Never change the hash values once objects exist.
[swift-hash]
swift_hash_path_suffix = ringfs-suffix-$salt
swift_hash_path_prefix = ringfs-prefix-$salt

[storage-policy:0]
name = Policy-0
default = yes
EOF
    fi
    grep -Eq '^[[:space:]]*swift_hash_path_(suffix|prefix)[[:space:]]*=[[:space:]]*[^[:space:]]' "$f" \
        || die "$f has no swift_hash_path_prefix/suffix; Swift will refuse to start"
}

# ---------------------------------------------------------------------------------------
# state (DIR/services.env)
# ---------------------------------------------------------------------------------------
words() { local -a a; read -r -a a <<<"$1"; echo "${a[$2]}"; }   # words "a b c" 1 -> b

load_state() {
    [[ -f $DIR/services.env ]] || return 1
    # shellcheck disable=SC1091
    source "$DIR/services.env"
    return 0
}

# Process names in start order (down/stop goes in reverse).
all_names() {
    local i
    for ((i = 0; i < ETCD_MEMBERS; i++)); do echo "etcd$i"; done
    echo memcached
    for kind in account container object; do
        for ((i = 1; i <= SWIFT_REPLICAS; i++)); do echo "$kind$i"; done
    done
    [[ $RINGFS_AUTH == keystone ]] && echo keystone
    echo proxy
}

# port used for the health check of NAME
port_of() {
    local name=$1
    case $name in
        etcd*) words "$ETCD_CLIENT_PORTS" "${name#etcd}" ;;
        memcached) echo "$MEMCACHED_PORT" ;;
        account*) words "$SWIFT_ACCOUNT_PORTS" $((${name#account} - 1)) ;;
        container*) words "$SWIFT_CONTAINER_PORTS" $((${name#container} - 1)) ;;
        object*) words "$SWIFT_OBJECT_PORTS" $((${name#object} - 1)) ;;
        proxy) echo "$SWIFT_PROXY_PORT" ;;
        keystone) echo "$KEYSTONE_PORT" ;;
        *) return 1 ;;
    esac
}

write_services_env() {
    local tmp=$DIR/services.env.tmp
    {
        echo "# written by scripts/services.sh — source it: . $DIR/services.env"
        local v
        for v in SERVICES_DIR RINGFS_CONFIG RINGFS_AUTH ETCD_MEMBERS ETCD_CLIENT_PORTS ETCD_PEER_PORTS \
                 ETCD_ENDPOINTS ETCD_PREFIX ETCD_CLUSTER_TOKEN MEMCACHED_PORT SWIFT_REPLICAS \
                 SWIFT_PROXY_PORT SWIFT_ACCOUNT_PORTS SWIFT_CONTAINER_PORTS SWIFT_OBJECT_PORTS \
                 SWIFT_PROXY_URL SWIFT_AUTH_URL SWIFT_USER SWIFT_KEY SWIFT_USER2 SWIFT_KEY2 \
                 KEYSTONE_PORT KEYSTONE_URL KEYSTONE_TOKEN_TTL; do
            printf 'export %s=%q\n' "$v" "${!v-}"
        done
    } >"$tmp"
    mv "$tmp" "$DIR/services.env"
}

# First `up` of a DIR: choose the topology and the ports. Later `up`s reuse them.
init_state() {
    if load_state; then
        [[ -z $AUTH_ARG || $AUTH_ARG == "$RINGFS_AUTH" ]] \
            || die "$DIR was set up with --auth $RINGFS_AUTH; use another --dir or 'down --purge' first"
        [[ -z $REPLICAS_ARG || $REPLICAS_ARG == "$SWIFT_REPLICAS" ]] \
            || die "$DIR was set up with --replicas $SWIFT_REPLICAS; use another --dir or 'down --purge' first"
        [[ -z $MEMBERS_ARG || $MEMBERS_ARG == "$ETCD_MEMBERS" ]] \
            || die "$DIR was set up with --etcd-members $ETCD_MEMBERS; use another --dir or 'down --purge' first"
        return 0
    fi
    RINGFS_AUTH=${AUTH_ARG:-tempauth}
    SWIFT_REPLICAS=${REPLICAS_ARG:-1}
    ETCD_MEMBERS=${MEMBERS_ARG:-1}
    local n=$((2 * ETCD_MEMBERS + 2 + 3 * SWIFT_REPLICAS)) ports i k=0
    [[ $RINGFS_AUTH == keystone ]] && n=$((n + 1))
    mapfile -t ports < <("$PY" "$LIB/freeport.py" "$n")
    ((${#ports[@]} == n)) || die "could not find $n free ports on 127.0.0.1 (scripts/lib/freeport.py)"
    ETCD_CLIENT_PORTS="" ETCD_PEER_PORTS="" ETCD_ENDPOINTS=""
    for ((i = 0; i < ETCD_MEMBERS; i++)); do
        ETCD_CLIENT_PORTS+="${ETCD_CLIENT_PORTS:+ }${ports[k++]}"
        ETCD_PEER_PORTS+="${ETCD_PEER_PORTS:+ }${ports[k++]}"
    done
    for p in $ETCD_CLIENT_PORTS; do ETCD_ENDPOINTS+="${ETCD_ENDPOINTS:+,}http://127.0.0.1:$p"; done
    ETCD_PREFIX=ringfs
    ETCD_CLUSTER_TOKEN=ringfs-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
    MEMCACHED_PORT=${ports[k++]}
    SWIFT_PROXY_PORT=${ports[k++]}
    SWIFT_ACCOUNT_PORTS="" SWIFT_CONTAINER_PORTS="" SWIFT_OBJECT_PORTS=""
    for ((i = 0; i < SWIFT_REPLICAS; i++)); do
        SWIFT_ACCOUNT_PORTS+="${SWIFT_ACCOUNT_PORTS:+ }${ports[k++]}"
        SWIFT_CONTAINER_PORTS+="${SWIFT_CONTAINER_PORTS:+ }${ports[k++]}"
        SWIFT_OBJECT_PORTS+="${SWIFT_OBJECT_PORTS:+ }${ports[k++]}"
    done
    SWIFT_PROXY_URL=http://127.0.0.1:$SWIFT_PROXY_PORT
    SERVICES_DIR=$DIR
    RINGFS_CONFIG=$DIR/ringfs.toml
    if [[ $RINGFS_AUTH == keystone ]]; then
        KEYSTONE_PORT=${ports[k++]}
        KEYSTONE_URL=http://127.0.0.1:$KEYSTONE_PORT/v3
        SWIFT_AUTH_URL=$KEYSTONE_URL
        SWIFT_USER=ringfs SWIFT_KEY=ringfs-secret
        SWIFT_USER2=other SWIFT_KEY2=other-secret
        KEYSTONE_TOKEN_TTL=${RINGFS_KEYSTONE_TOKEN_TTL:-3600}
    else
        KEYSTONE_PORT="" KEYSTONE_URL="" KEYSTONE_TOKEN_TTL=""
        SWIFT_AUTH_URL=$SWIFT_PROXY_URL/auth/v1.0
        SWIFT_USER=test:tester SWIFT_KEY=testing
        SWIFT_USER2=test2:tester2 SWIFT_KEY2=testing2
    fi
    write_services_env
}

# ---------------------------------------------------------------------------------------
# processes: DIR/cmds/NAME (command line, shell-quoted), DIR/pids/NAME.pid (+ .stime, the
# kernel start time, and .boot, the boot id, so a recycled pid is never mistaken for
# ours), DIR/log/NAME.log
# ---------------------------------------------------------------------------------------
record_cmd() {
    local name=$1; shift
    printf '%q ' "$@" >"$DIR/cmds/$name"
    echo >>"$DIR/cmds/$name"
}

proc_stat_field() {  # pid field_number(1-based, as in proc(5)); handles spaces in comm
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    local -a f
    read -r -a f <<<"$s"
    echo "${f[$(($2 - 3))]}"
}

pid_of() { [[ -f $DIR/pids/$1.pid ]] && cat "$DIR/pids/$1.pid"; }

BOOT_ID=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
same_boot() {  # NAME: was the pid recorded during this boot? (else pids/pgids mean nothing)
    [[ -f $DIR/pids/$1.boot ]] || return 0   # recorded before .boot existed: trust .stime
    [[ $(<"$DIR/pids/$1.boot") == "$BOOT_ID" ]]
}

proc_alive() {  # NAME: the recorded process exists, is not a zombie, same start time
    local name=$1 pid stime state
    pid=$(pid_of "$name") || return 1
    [[ -n $pid ]] || return 1
    same_boot "$name" || return 1
    state=$(proc_stat_field "$pid" 3) || return 1
    [[ $state != Z && $state != X ]] || return 1
    stime=$(proc_stat_field "$pid" 22) || return 1
    [[ $stime == "$(cat "$DIR/pids/$name.stime" 2>/dev/null)" ]]
}

group_count() {  # live (non-zombie) members of process group $1
    ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { n++ } END { print n + 0 }'
}

spawn() {  # NAME: start DIR/cmds/NAME detached, in its own session/process group
    local name=$1 line logf=$DIR/log/$1.log pid
    line=$(<"$DIR/cmds/$name")
    local -a argv
    eval "argv=($line)"
    printf '=== %s services.sh starting %s: %s\n' "$(date -Is)" "$name" "$line" >>"$logf"
    # setsid: own process group, so `kill -- -PID` reaches swift/uwsgi worker processes,
    # and no controlling terminal. stdin/stdout/stderr are redirected so the service
    # never holds the caller's pipe open (`$(services.sh up)` would hang otherwise).
    # 9>&-: do not pass on the DIR/.lock descriptor (a service would hold the lock forever)
    (cd "$DIR" && exec setsid "${argv[@]}" </dev/null >>"$logf" 2>&1 9>&-) &
    pid=$!
    echo "$pid" >"$DIR/pids/$name.pid"
    proc_stat_field "$pid" 22 >"$DIR/pids/$name.stime" || echo 0 >"$DIR/pids/$name.stime"
    echo "$BOOT_ID" >"$DIR/pids/$name.boot"
}

stop_proc() {  # NAME SIGNAL TIMEOUT [keep]: signal the process group, wait, then SIGKILL
    # keep=1 leaves DIR/pids/NAME.pid in place (after `kill`, status shows it dead)
    local name=$1 sig=$2 timeout=$3 keep=${4:-0} pid i
    pid=$(pid_of "$name") || return 0
    [[ -n $pid ]] || return 0
    # A process group id cannot be recycled while the group has members, so (in the same
    # boot) any live member of group $pid was started by us, even if the leader is gone.
    if ! same_boot "$name" || { ! proc_alive "$name" && (($(group_count "$pid") == 0)); }; then
        rm -f "$DIR/pids/$name".{pid,stime,boot}
        return 0
    fi
    kill -s "$sig" -- "-$pid" 2>/dev/null || { proc_alive "$name" && kill -s "$sig" "$pid" 2>/dev/null; } || true
    for ((i = 0; i < timeout * 10; i++)); do
        (($(group_count "$pid") == 0)) && ! proc_alive "$name" && break
        sleep 0.1
    done
    if (($(group_count "$pid") > 0)) || proc_alive "$name"; then
        log "$name (pid $pid) still running ${timeout}s after SIG$sig; sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || true
        proc_alive "$name" && kill -KILL "$pid" 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            (($(group_count "$pid") == 0)) && ! proc_alive "$name" && break
            sleep 0.1
        done
    fi
    if (($(group_count "$pid") > 0)) || proc_alive "$name"; then
        die "$name (process group $pid) did not exit after SIGKILL"
    fi
    ((keep)) || rm -f "$DIR/pids/$name".{pid,stime,boot}
}

# ---------------------------------------------------------------------------------------
# health checks (one per kind of process)
# ---------------------------------------------------------------------------------------
http_ok() { curl -fsS -o /dev/null -m "${2:-2}" "$1" 2>/dev/null; }

memcached_ok() {
    # subshell: a failed exec redirection must not end the script
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'version\r\n' >&3
        IFS= read -r -t 2 reply <&3 || exit 1
        [[ $reply == VERSION* ]]
    ) 2>/dev/null
}

healthy() {  # NAME
    local name=$1 port
    port=$(port_of "$name") || return 1
    case $name in
        etcd*) [[ $(curl -fsS -m 3 "http://127.0.0.1:$port/health" 2>/dev/null) == *'"health":"true"'* ]] ;;
        memcached) memcached_ok "$port" ;;
        account* | container* | object* | proxy) http_ok "http://127.0.0.1:$port/healthcheck" ;;
        keystone) http_ok "http://127.0.0.1:$port/v3" 5 ;;
    esac
}

health_url() {
    local name=$1 port
    port=$(port_of "$name")
    case $name in
        etcd*) echo "http://127.0.0.1:$port/health" ;;
        memcached) echo "memcached://127.0.0.1:$port" ;;
        keystone) echo "http://127.0.0.1:$port/v3" ;;
        *) echo "http://127.0.0.1:$port/healthcheck" ;;
    esac
}

fail_with_log() {  # NAME MESSAGE
    local logf=$DIR/log/$1.log
    if [[ -f $logf ]]; then
        echo "----- last lines of $logf -----" >&2
        tail -n 15 "$logf" >&2
        echo "-----" >&2
    fi
    die "$2; see $logf"
}

wait_healthy() {  # TIMEOUT NAME...: wait until every NAME answers; fail fast if one dies
    local timeout=$1; shift
    local deadline=$((SECONDS + timeout)) name pending
    while :; do
        pending=()
        for name in "$@"; do
            if ! proc_alive "$name"; then
                fail_with_log "$name" "$name exited during startup (port $(port_of "$name"))"
            fi
            healthy "$name" || pending+=("$name")
        done
        ((${#pending[@]})) || return 0
        if ((SECONDS >= deadline)); then
            name=${pending[0]}
            local what=$name
            case $name in
                proxy) what="swift proxy" ;; account* | container* | object*) what="swift $name server" ;;
            esac
            fail_with_log "$name" "$what did not become healthy on 127.0.0.1:$(port_of "$name") within ${timeout}s (${pending[*]} pending)"
        fi
        sleep 0.2
        set -- "${pending[@]}"
    done
}

# ---------------------------------------------------------------------------------------
# etcd
# ---------------------------------------------------------------------------------------
prepare_etcd() {
    local i cluster="" c p
    for ((i = 0; i < ETCD_MEMBERS; i++)); do
        cluster+="${cluster:+,}etcd$i=http://127.0.0.1:$(words "$ETCD_PEER_PORTS" "$i")"
    done
    for ((i = 0; i < ETCD_MEMBERS; i++)); do
        c=$(words "$ETCD_CLIENT_PORTS" "$i") p=$(words "$ETCD_PEER_PORTS" "$i")
        mkdir -p "$DIR/etcd"
        # --initial-cluster* only matter on the first start; on a restart etcd takes the
        # membership from its data dir, so the same command line serves `start NAME`.
        record_cmd "etcd$i" "${CLEAN_ENV[@]}" etcd \
            --name "etcd$i" --data-dir "$DIR/etcd/etcd$i" \
            --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
            --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "$ETCD_CLUSTER_TOKEN" \
            --auto-compaction-mode revision --auto-compaction-retention 1000 \
            --quota-backend-bytes "$ETCD_QUOTA" \
            --logger zap --log-outputs stderr
    done
}

# ---------------------------------------------------------------------------------------
# memcached (Swift's `cache` middleware; keystonemiddleware's token cache)
# ---------------------------------------------------------------------------------------
prepare_memcached() {
    # -u root: memcached refuses to run as root without -u; -U 0: no UDP listener
    record_cmd memcached "${CLEAN_ENV[@]}" memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 \
        -m 128 -c 1024 -u root
}

# ---------------------------------------------------------------------------------------
# Swift all-in-one
# ---------------------------------------------------------------------------------------
# Rings: one device per server and one zone per device, so N replicas land on N
# different servers; part power 8 (256 partitions) is plenty and rebalances in ms.
# scripts/lib/build_rings.py runs swift-ring-builder's own main() (create, add,
# rebalance for each ring) in one process instead of 9 interpreter starts.
build_rings() {
    mkdir -p "$DIR/swift"
    "${CLEAN_ENV[@]}" "$PY" "$LIB/build_rings.py" "$DIR/swift" "$PART_POWER" "$SWIFT_REPLICAS" \
        "account:a:${SWIFT_ACCOUNT_PORTS// /,}" \
        "container:c:${SWIFT_CONTAINER_PORTS// /,}" \
        "object:o:${SWIFT_OBJECT_PORTS// /,}" >>"$DIR/log/rings.log" 2>&1 \
        || die "building the Swift rings (swift-ring-builder create/add/rebalance) failed; see $DIR/log/rings.log"
}

# Common [DEFAULT] lines. Pitfalls:
#  - user = root: the servers otherwise drop privileges to `swift`, can't write DIR/srv
#    (EACCES) and the proxy answers 503/404;
#  - mount_check = false: device dirs are plain directories, not mount points;
#  - swift_dir: where the rings are (but NOT swift.conf, see ensure_swift_conf);
#  - logging: Swift logs to syslog only (/dev/log, else UDP 127.0.0.1:514; there is no
#    /dev/log here). The servers are started with -v ("log to console"), which adds a
#    stderr handler that survives Swift's stdio capture; stderr goes to DIR/log/NAME.log.
swift_common_conf() {  # name port workers
    cat <<EOF
# written by scripts/services.sh
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $2
workers = $3
user = root
swift_dir = $DIR/swift
mount_check = false
log_name = $1
log_facility = LOG_LOCAL0
log_level = INFO
EOF
}

prepare_swift_servers() {
    local kind i port dev
    for kind in account container object; do
        local ports_var=SWIFT_${kind^^}_PORTS
        for ((i = 1; i <= SWIFT_REPLICAS; i++)); do
            port=$(words "${!ports_var}" $((i - 1)))
            dev=${kind:0:1}$i
            mkdir -p "$DIR/srv/$kind$i/$dev"
            {
                # workers = 0: one process, no fork; its pid is the server (what a fault
                # test kills). Disk I/O (fsync) already goes through eventlet's thread pool.
                swift_common_conf "$kind$i" "$port" 0
                cat <<EOF
devices = $DIR/srv/$kind$i

[pipeline:main]
pipeline = healthcheck $kind-server

[app:$kind-server]
use = egg:swift#$kind

[filter:healthcheck]
use = egg:swift#healthcheck
EOF
            } >"$DIR/etc/$kind$i.conf"
            record_cmd "$kind$i" "${CLEAN_ENV[@]}" "swift-$kind-server" "$DIR/etc/$kind$i.conf" -v
        done
    done
}

prepare_proxy() {
    local auth_filters auth_sections
    if [[ $RINGFS_AUTH == keystone ]]; then
        auth_filters="authtoken keystoneauth"
        # delay_auth_decision: let keystoneauth decide (ACLs, 401 vs 403) instead of
        # authtoken rejecting every request without a valid token.
        auth_sections=$(cat <<EOF
[filter:authtoken]
use = egg:keystonemiddleware#auth_token
www_authenticate_uri = $KEYSTONE_URL
auth_url = $KEYSTONE_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = swift
password = $KS_SWIFT_PASSWORD
interface = public
region_name = RegionOne
delay_auth_decision = True
memcached_servers = 127.0.0.1:$MEMCACHED_PORT
include_service_catalog = False
service_token_roles_required = True

[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
reseller_admin_role = ResellerAdmin
EOF
)
    else
        auth_filters=tempauth
        auth_sections=$(cat <<EOF
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
user_test2_tester2 = testing2 .admin
EOF
)
    fi
    {
        swift_common_conf proxy "$SWIFT_PROXY_PORT" 2
        cat <<EOF

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache bulk slo dlo $auth_filters proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:bulk]
use = egg:swift#bulk

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

$auth_sections
EOF
    } >"$DIR/etc/proxy.conf"
    record_cmd proxy "${CLEAN_ENV[@]}" swift-proxy-server "$DIR/etc/proxy.conf" -v
}

swift_round_trip() {  # wait until a real auth + PUT/GET works (account autocreate etc.)
    local deadline=$((SECONDS + HEALTH_TIMEOUT)) err=$DIR/log/smoke.log
    local -a args=(--auth "$RINGFS_AUTH" --auth-url "$SWIFT_AUTH_URL" --user "$SWIFT_USER" --key "$SWIFT_KEY")
    [[ $RINGFS_AUTH == keystone ]] && args+=(--project ringfs)
    until "$PY" "$LIB/swift_smoke.py" "${args[@]}" 2>"$err"; do
        if ((SECONDS >= deadline)); then
            cat "$err" >&2
            die "swift PUT/GET round trip through 127.0.0.1:$SWIFT_PROXY_PORT ($RINGFS_AUTH) did not succeed within ${HEALTH_TIMEOUT}s; see $DIR/log/proxy.log and the account/container/object logs in $DIR/log"
        fi
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------
# Keystone v3 (only with --auth keystone)
# ---------------------------------------------------------------------------------------
write_keystone_conf() {
    cat >"$DIR/etc/keystone.conf" <<EOF
# written by scripts/services.sh
[DEFAULT]
debug = false

[database]
connection = sqlite:///$DIR/keystone/keystone.db

[token]
provider = fernet
expiration = $KEYSTONE_TOKEN_TTL

[fernet_tokens]
key_repository = $DIR/keystone/fernet-keys

# fernet_setup also creates the *receipt* key repository (MFA receipts); its default
# is /etc/keystone/fernet-keys/, so it must be pointed into DIR as well.
[fernet_receipts]
key_repository = $DIR/keystone/fernet-receipt-keys

[credential]
key_repository = $DIR/keystone/credential-keys

[identity]
# bcrypt's default 12 rounds cost ~300 ms per token request; 4 rounds ~50 ms
password_hash_rounds = 4
EOF
}

setup_keystone() {
    local conf=$DIR/etc/keystone.conf mlog=$DIR/log/keystone-manage.log
    mkdir -p "$DIR/keystone"
    write_keystone_conf
    [[ -f $DIR/keystone/.bootstrapped ]] && return 0
    log "keystone: db_sync, WAL, fernet/credential keys, bootstrap (first start of this DIR)"
    rm -f "$DIR/keystone/keystone.db"*
    # = keystone-manage db_sync, fernet_setup, credential_setup, bootstrap, plus
    # PRAGMA journal_mode=WAL after db_sync, in one process (each keystone-manage
    # call costs 3-7 s of imports); see scripts/lib/keystone_setup.py
    "${CLEAN_ENV[@]}" "$PY" "$LIB/keystone_setup.py" "$conf" "$DIR/keystone/keystone.db" -- \
        --bootstrap-password "$KS_ADMIN_PASSWORD" \
        --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
        --bootstrap-region-id RegionOne \
        --bootstrap-admin-url "$KEYSTONE_URL" --bootstrap-internal-url "$KEYSTONE_URL" \
        --bootstrap-public-url "$KEYSTONE_URL" >>"$mlog" 2>&1 \
        || die "keystone setup (db_sync/fernet_setup/credential_setup/bootstrap) failed; see $mlog"
    touch "$DIR/keystone/.bootstrapped"
}

prepare_keystone() {
    # uwsgi pitfalls: --http-socket closes keep-alive connections silently (pooled clients
    # get ECONNRESET), so use the HTTP router (--http) with --http-keepalive; SIGTERM
    # means "reload" to uwsgi unless --die-on-term. Debian's /usr/bin/python3 plugin.
    record_cmd keystone "${CLEAN_ENV[@]}" OS_KEYSTONE_CONFIG_FILES="$DIR/etc/keystone.conf" \
        uwsgi --plugin http,python3 --http "127.0.0.1:$KEYSTONE_PORT" --http-keepalive \
        --wsgi-file /usr/bin/keystone-wsgi-public --master --processes 2 --threads 1 \
        --skip-atexit-teardown --die-on-term --need-app --buffer-size 65535
}

seed_keystone() {
    local out
    out=$("$PY" "$LIB/keystone_seed.py" --url "$KEYSTONE_URL" --admin-password "$KS_ADMIN_PASSWORD" \
        --swift-password "$KS_SWIFT_PASSWORD" --proxy-url "$SWIFT_PROXY_URL" --region RegionOne \
        2>>"$DIR/log/keystone-seed.log") || die "creating keystone projects/users/endpoints failed; see $DIR/log/keystone-seed.log and $DIR/log/keystone.log"
    eval "$out"   # KEYSTONE_*_PROJECT_ID
    {
        echo "# written by scripts/services.sh — Keystone credentials for tests"
        local kv
        for kv in "KEYSTONE_URL=$KEYSTONE_URL" "KEYSTONE_TOKEN_TTL=$KEYSTONE_TOKEN_TTL" \
                  "KEYSTONE_REGION=RegionOne" "KEYSTONE_USER_DOMAIN=Default" "KEYSTONE_PROJECT_DOMAIN=Default" \
                  "KEYSTONE_ADMIN_USER=admin" "KEYSTONE_ADMIN_PASSWORD=$KS_ADMIN_PASSWORD" "KEYSTONE_ADMIN_PROJECT=admin" \
                  "KEYSTONE_RINGFS_USER=ringfs" "KEYSTONE_RINGFS_PASSWORD=ringfs-secret" "KEYSTONE_RINGFS_PROJECT=ringfs" \
                  "KEYSTONE_RINGFS_PROJECT_ID=$KEYSTONE_RINGFS_PROJECT_ID" \
                  "KEYSTONE_OTHER_USER=other" "KEYSTONE_OTHER_PASSWORD=other-secret" "KEYSTONE_OTHER_PROJECT=other" \
                  "KEYSTONE_OTHER_PROJECT_ID=$KEYSTONE_OTHER_PROJECT_ID" \
                  "KEYSTONE_SWIFT_USER=swift" "KEYSTONE_SWIFT_PASSWORD=$KS_SWIFT_PASSWORD" "KEYSTONE_SWIFT_PROJECT=service"; do
            printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
        done
    } >"$DIR/keystone.env.tmp"
    mv "$DIR/keystone.env.tmp" "$DIR/keystone.env"
}

# ---------------------------------------------------------------------------------------
# DIR/ringfs.toml (parsed by the engine: keep sections and keys as they are)
# ---------------------------------------------------------------------------------------
write_ringfs_toml() {
    local eps="" p
    for p in $ETCD_CLIENT_PORTS; do eps+="${eps:+, }\"http://127.0.0.1:$p\""; done
    {
        echo "# written by scripts/services.sh"
        echo "[etcd]"
        echo "endpoints = [$eps]"
        echo "prefix = \"$ETCD_PREFIX\""
        echo
        echo "[swift]"
        echo "auth = \"$RINGFS_AUTH\""
        echo "auth_url = \"$SWIFT_AUTH_URL\""
        echo "user = \"$SWIFT_USER\""
        echo "key = \"$SWIFT_KEY\""
        if [[ $RINGFS_AUTH == keystone ]]; then
            echo 'project = "ringfs"'
            echo 'project_domain = "Default"'
            echo 'user_domain = "Default"'
            echo 'region = "RegionOne"'
            echo 'interface = "public"'
        fi
        echo
        echo "[cache]"
        echo "dir = \"$DIR/cache\""
    } >"$DIR/ringfs.toml.tmp"
    mv "$DIR/ringfs.toml.tmp" "$DIR/ringfs.toml"
}

# ---------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------
# up/down/kill/start on one DIR are serialized (two test processes may run `up` at once;
# the second then finds everything healthy and just prints the path).
lock_dir() {
    exec 9>"$DIR/.lock"
    flock -w 600 9 || die "timed out waiting for $DIR/.lock (another services.sh on this DIR?)"
}

all_healthy() {
    local name
    for name in $(all_names); do
        proc_alive "$name" && healthy "$name" || return 1
    done
}

cmd_up() {
    local t0=$SECONDS
    mkdir -p "$DIR/log"
    DIR=$(cd "$DIR" && pwd -P)
    lock_dir
    # the packages decide whether we can even run: check before state (needs auth mode)
    RINGFS_AUTH=${AUTH_ARG:-tempauth}
    if [[ -f $DIR/services.env ]]; then RINGFS_AUTH=$(. "$DIR/services.env"; echo "$RINGFS_AUTH"); fi
    ensure_packages
    ensure_swift_conf
    init_state
    UP_IN_PROGRESS=1
    mkdir -p "$DIR"/{etc,pids,cmds,cache,swift,srv}

    if [[ $RINGFS_AUTH == keystone ]]; then
        local want_ttl=${RINGFS_KEYSTONE_TOKEN_TTL:-$KEYSTONE_TOKEN_TTL}
        [[ $want_ttl =~ ^[1-9][0-9]*$ ]] || die "RINGFS_KEYSTONE_TOKEN_TTL must be a positive number of seconds"
        if [[ $want_ttl != "$KEYSTONE_TOKEN_TTL" ]]; then
            log "keystone token expiration $KEYSTONE_TOKEN_TTL -> $want_ttl s: restarting keystone"
            KEYSTONE_TOKEN_TTL=$want_ttl
            write_services_env
            stop_proc keystone TERM 10
        fi
    fi

    if all_healthy; then
        log "services in $DIR already running and healthy"
        write_ringfs_toml
        echo "$DIR/ringfs.toml"
        return 0
    fi

    # Record every command line (cheap, identical on every up), then start whatever is
    # not running without waiting in between: the Swift servers spend seconds importing
    # python and etcd members need each other to elect a leader. etcd and memcached go
    # first: they do not need the rings, so they boot while the rings are built.
    local name started=()
    prepare_etcd
    prepare_memcached
    for name in $(all_names | grep -E '^(etcd[0-9]+|memcached)$'); do
        if ! proc_alive "$name"; then spawn "$name"; started+=("$name"); fi
    done
    if [[ $RINGFS_AUTH == keystone ]]; then
        # Keystone is the long pole (setup ~5 s, uwsgi import ~10 s): start it before Swift
        setup_keystone
        prepare_keystone
        if ! proc_alive keystone; then spawn keystone; started+=(keystone); fi
    fi
    build_rings
    prepare_swift_servers
    prepare_proxy
    for name in $(all_names | grep -E '^(account|container|object)[0-9]+$|^proxy$'); do
        if ! proc_alive "$name"; then spawn "$name"; started+=("$name"); fi
    done
    if ((${#started[@]})); then log "started: ${started[*]}"; fi

    local -a etcds=() swifts=()
    mapfile -t etcds < <(all_names | grep '^etcd')
    mapfile -t swifts < <(all_names | grep -E '^(account|container|object)[0-9]+$')
    wait_healthy "$HEALTH_TIMEOUT" "${etcds[@]}"
    log "etcd healthy: $ETCD_ENDPOINTS"
    wait_healthy "$HEALTH_TIMEOUT" memcached "${swifts[@]}" proxy
    log "swift servers answer /healthcheck (proxy $SWIFT_PROXY_URL)"
    if [[ $RINGFS_AUTH == keystone ]]; then
        wait_healthy "$KEYSTONE_TIMEOUT" keystone
        seed_keystone
        log "keystone ready: $KEYSTONE_URL (projects ringfs, other, service)"
    fi
    swift_round_trip
    log "swift $RINGFS_AUTH auth + PUT/GET round trip ok"
    write_services_env
    write_ringfs_toml
    log "up in $((SECONDS - t0))s"
    echo "$DIR/ringfs.toml"
}

cmd_down() {
    [[ -f $DIR/services.env ]] && lock_dir
    if ! load_state; then
        log "no services.env in $DIR: nothing to stop"
    else
        local -a names=()
        mapfile -t names < <(all_names)
        local i
        for ((i = ${#names[@]} - 1; i >= 0; i--)); do
            if [[ -f $DIR/pids/${names[i]}.pid ]]; then
                stop_proc "${names[i]}" TERM 10
                log "stopped ${names[i]}"
            fi
        done
        # anything else recorded (should not happen, but never leave a process behind)
        local f
        for f in "$DIR"/pids/*.pid; do
            [[ -e $f ]] || continue
            name=$(basename "$f" .pid)
            stop_proc "$name" TERM 10
            log "stopped $name"
        done
    fi
    if ((PURGE)) && [[ -d $DIR ]]; then
        # guard against `--dir /` style accidents: only remove a dir this script made
        if [[ -f $DIR/services.env || -z $(ls -A "$DIR") ]] || [[ -d $DIR/log && -d $DIR/pids ]]; then
            rm -rf "$DIR"
            log "removed $DIR"
        else
            die "$DIR does not look like a services dir (no services.env); not removing it"
        fi
    fi
}

cmd_status() {
    load_state || die "no services.env in $DIR (never brought up?)"
    local name pid alive health ok=0
    printf '%-11s %-8s %-6s %-10s %s\n' NAME PID STATE HEALTH CHECK
    for name in $(all_names); do
        pid=$(pid_of "$name" 2>/dev/null || true)
        if proc_alive "$name"; then alive=alive; else alive=dead; fi
        if [[ $alive == alive ]] && healthy "$name"; then health=healthy; else health=unhealthy; ok=1; fi
        printf '%-11s %-8s %-6s %-10s %s\n' "$name" "${pid:--}" "$alive" "$health" "$(health_url "$name")"
    done
    return $ok
}

check_name() {
    [[ -n $NAME_ARG ]] || die "$CMD needs a process NAME (one of: $(all_names | tr '\n' ' '))"
    all_names | grep -qx -- "$NAME_ARG" || die "unknown process '$NAME_ARG' (one of: $(all_names | tr '\n' ' '))"
    [[ -f $DIR/cmds/$NAME_ARG ]] || die "no recorded command line $DIR/cmds/$NAME_ARG (run up first)"
}

cmd_kill() {
    load_state || die "no services.env in $DIR"
    lock_dir
    check_name
    if ! proc_alive "$NAME_ARG"; then
        log "$NAME_ARG is not running"
        return 0
    fi
    stop_proc "$NAME_ARG" "$SIGNAL" 10 1
    log "killed $NAME_ARG (SIG$SIGNAL)"
}

cmd_start() {
    load_state || die "no services.env in $DIR"
    lock_dir
    check_name
    if proc_alive "$NAME_ARG"; then
        log "$NAME_ARG already running (pid $(pid_of "$NAME_ARG"))"
    else
        stop_proc "$NAME_ARG" KILL 5   # reap leftovers of its process group, if any
        spawn "$NAME_ARG"
        log "started $NAME_ARG (pid $(pid_of "$NAME_ARG"))"
    fi
    local timeout=$HEALTH_TIMEOUT
    [[ $NAME_ARG == keystone ]] && timeout=$KEYSTONE_TIMEOUT
    wait_healthy "$timeout" "$NAME_ARG"
    log "$NAME_ARG healthy"
}

case $CMD in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    kill) cmd_kill ;;
    start) cmd_start ;;
    -h | --help | help) usage 0 ;;
    *) die "unknown command '$CMD' (up|down|status|kill|start)" ;;
esac
