#!/usr/bin/env bash
# One command for a fresh machine: install what is missing, build ringfs, start a local
# etcd + Swift, format a volume and mount it.
#   scripts/setup.sh [--volume NAME] [--mountpoint DIR] [--dir SERVICES_DIR]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VOLUME=demo
MNT=/mnt/ringfs
DIR="$REPO/.services"
while (($#)); do
  case "$1" in
    --volume) VOLUME="$2"; shift 2 ;;
    --mountpoint) MNT="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    *) echo "usage: $0 [--volume NAME] [--mountpoint DIR] [--dir SERVICES_DIR]" >&2; exit 2 ;;
  esac
done

RINGFS_SKIP_TOOLS=1 "$REPO/scripts/install-deps.sh"
echo "building ringfs (release)..." >&2
cargo build --release --manifest-path "$REPO/Cargo.toml" --bin ringfs >&2
BIN="$REPO/target/release/ringfs"
CONF="$("$REPO/scripts/services.sh" up --dir "$DIR" | tail -n1)"
"$BIN" config check -c "$CONF" >&2
if ! "$BIN" status -c "$CONF" "$VOLUME" >/dev/null 2>&1; then
  "$BIN" format -c "$CONF" "$VOLUME"
fi
mkdir -p "$MNT"
if grep -q " $MNT " /proc/self/mountinfo; then
  echo "$MNT is already mounted" >&2
else
  "$BIN" mount -c "$CONF" "$VOLUME" "$MNT" --background
fi
cat <<MSG
ringfs volume '$VOLUME' is mounted at $MNT
  config:   $CONF
  status:   $BIN status -c $CONF $VOLUME
  unmount:  $BIN umount $MNT
  services: $REPO/scripts/services.sh status|down --dir $DIR
MSG
