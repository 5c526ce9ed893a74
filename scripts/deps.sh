#!/usr/bin/env bash
# Installs the real engines the tests run, when missing: PostgreSQL 15 (server and client),
# PgBouncer, nginx, Chromium, bubblewrap and nss_wrapper (the container contract sandbox), rclone
# (the archive's off-site copies), the Prometheus
# PostgreSQL and nginx exporters, and the python3 libraries Patroni runs on (Patroni itself is
# trixie's, unpacked by scripts/tools.sh: bookworm's 3.0.2 predates quorum commit), from
# Debian's packages. `make up` and `make test` run it
# first, so the README's two commands set up a fresh machine; with everything present it is
# one dpkg query. Installing needs root: as another user it names what is missing and the
# one command to run, and stops.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in postgresql-15 postgresql-client-15 pgbouncer nginx chromium bubblewrap libnss-wrapper curl rclone \
  prometheus-postgres-exporter prometheus-nginx-exporter \
  python3 python3-click python3-dateutil python3-prettytable python3-psutil python3-urllib3 python3-yaml python3-psycopg2; do
  have "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "[deps] engines present: postgresql-15 pgbouncer nginx chromium bubblewrap exporters python3 (Patroni's libraries)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "[deps] missing Debian packages: ${need[*]}" >&2
  echo "[deps] install them as root, then run this command again: sudo make deps" >&2
  exit 1
fi
echo "[deps] installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Packages may start system services; the tests start their own servers.
for svc in pgbouncer nginx postgresql prometheus-postgres-exporter prometheus-nginx-exporter; do
  (service "$svc" stop || systemctl stop "$svc") >/dev/null 2>&1 || true
done
echo "[deps] installed ${need[*]}"
