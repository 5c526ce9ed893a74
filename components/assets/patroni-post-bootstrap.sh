#!/bin/sh
# patroni-post-bootstrap.sh: Patroni's bootstrap.post_bootstrap. Runs once, on the member that
# initialized the cluster, right after initdb: creates the shop's database (POSTGRES_DB), as
# the postgres image did on its first start; roles, schema and credentials are the
# database-migrate and credentials Jobs' work, as before. POSIX sh.
#
#   sh patroni-post-bootstrap.sh <PostgreSQL bin dir> <connection string>   (Patroni adds the last)
# Environment: POSTGRES_DB, the database to create.
set -eu
bindir=${1:?PostgreSQL bin dir}
conn=${2:?connection string (Patroni passes it)}
[ -n "${POSTGRES_DB:-}" ] || { echo "patroni-post-bootstrap: ERROR: POSTGRES_DB is not set" >&2; exit 1; }
"$bindir/psql" "$conn" -X -q -v ON_ERROR_STOP=1 -v db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
echo "patroni-post-bootstrap: database $POSTGRES_DB is there"
