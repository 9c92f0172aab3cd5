#!/usr/bin/env bash
# Installs what ringfs needs on a fresh Debian 12 machine: the Debian packages for etcd,
# Swift, Keystone, FUSE and the build (protoc + well-known protos for etcd-client), and
# the conformance tools from crates.io. Idempotent and quick when everything is present.
set -euo pipefail

PKGS=(etcd-server etcd-client swift swift-proxy swift-account swift-container swift-object
      python3-swiftclient memcached fuse3 protobuf-compiler libprotobuf-dev libacl1-dev fio attr
      python3-keystone python3-openstackclient uwsgi-core uwsgi-plugin-python3
      python3-keystonemiddleware)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install a Rust toolchain (rustup) first" >&2
  exit 1
fi

# Conformance tools (crates.io). Installed once into ~/.cargo/bin.
if [[ "${RINGFS_SKIP_TOOLS:-}" != 1 ]]; then
  command -v pjdfstest >/dev/null || cargo install --locked pjdfstest@0.2.2 >&2
  command -v fsx >/dev/null || cargo install --locked fsx@0.3.2 >&2
fi
