#!/bin/sh
# `make system-test` needs PostgreSQL's server binaries (initdb, postgres). They come from Debian's packages: if
# this machine has none, install them (root, apt). The server is never started as a service here:
# scripts/system_services.py starts its own, on loopback, in a temporary directory.
set -eu
if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1; then
    exit 0
fi
echo "== installing PostgreSQL's server binaries (Debian package postgresql)"
test "$(id -u)" = 0 || { echo "not root: install PostgreSQL (Debian package postgresql) and run again"; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
# The package starts a cluster of its own as a service; this project never uses it.
if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header | while read -r version name _; do pg_ctlcluster "$version" "$name" stop || true; done
fi
