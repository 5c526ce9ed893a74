#!/bin/sh
# credentials-sync.sh: brings the database's credentials to the stack's Secret values, run by
# the database-credentials Job (postgres image) whenever apiDbPassword or jwtSecret change,
# before the backend's pods roll onto them. POSIX sh. Safe to run any number of times.
#
# Environment (all required):
#   PGHOST PGPORT PGUSER PGDATABASE  the database, as its owner
#   PGPASSWORD_FILE                  the owner's password (a mounted Secret)
#   AUTHENTICATOR_PASSWORD_FILE      the API login role's password (apiDbPassword)
#   JWT_SECRET_FILE                  the key that signs the API's JWTs (jwtSecret)
#   REPLICATION_PASSWORD_FILE        the replicator role's password (replicationPassword);
#                                    an empty file leaves the role alone (no replicas)
#   TIMEOUT_SECONDS                  how long to wait for the database
# Optional (the Job sets all three; unset leaves the role without a password, so it cannot
# log in):
#   BACKUP_PASSWORD_FILE             role shop_backup's password (backupDbPassword)
#   RELEASE_UNPAID_PASSWORD_FILE     role shop_release_unpaid's password (releaseUnpaidDbPassword)
#   MONITOR_PASSWORD_FILE            role shop_monitor's password (monitorDbPassword)
#   ORDER_MAX_OPEN_UNITS             the stack's orderMaxOpenUnits, written to
#                                    shop.order_limits (empty: the table is left alone)
#   ORDER_MAX_PRODUCT_SHARE_PERCENT  the stack's orderMaxProductSharePercent, written to
#                                    shop.order_limits.max_product_share_percent (empty, or
#                                    a schema before migration 000005: left alone)
#
# Sets the passwords of roles authenticator, shop_backup, shop_release_unpaid and shop_monitor
# (bootstrap.sql created them), the signing key in shop.jwt_keys and the order
# limit in shop.order_limits in one transaction, and synchronous_commit = on for authenticator: the API's commits wait for the
# quorum of synchronous_standby_names (postgresql.conf; a local flush when it is empty). The values travel in psql's environment (\getenv), never on a command line,
# and the session keeps them out of the server log.
set -eu

fail() {
    echo "credentials-sync: ERROR: $*" >&2
    exit 1
}

for name in PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD_FILE AUTHENTICATOR_PASSWORD_FILE JWT_SECRET_FILE TIMEOUT_SECONDS; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "missing required environment variable $name"
done
for file in "$PGPASSWORD_FILE" "$AUTHENTICATOR_PASSWORD_FILE" "$JWT_SECRET_FILE"; do
    [ -r "$file" ] || fail "cannot read $file"
done

# The job roles' passwords: a file named must be readable; none named, none set.
role_password() {
    if [ -n "$1" ]; then
        [ -r "$1" ] || fail "cannot read $1"
        cat "$1"
    fi
}
BACKUP_PASSWORD=$(role_password "${BACKUP_PASSWORD_FILE:-}")
RELEASE_UNPAID_PASSWORD=$(role_password "${RELEASE_UNPAID_PASSWORD_FILE:-}")
MONITOR_PASSWORD=$(role_password "${MONITOR_PASSWORD_FILE:-}")
export BACKUP_PASSWORD RELEASE_UNPAID_PASSWORD MONITOR_PASSWORD

PGPASSWORD=$(cat "$PGPASSWORD_FILE")
AUTHENTICATOR_PASSWORD=$(cat "$AUTHENTICATOR_PASSWORD_FILE")
JWT_SECRET=$(cat "$JWT_SECRET_FILE")
REPLICATION_PASSWORD=
if [ -n "${REPLICATION_PASSWORD_FILE:-}" ] && [ -r "$REPLICATION_PASSWORD_FILE" ]; then
    REPLICATION_PASSWORD=$(cat "$REPLICATION_PASSWORD_FILE")
fi
ORDER_MAX_OPEN_UNITS=${ORDER_MAX_OPEN_UNITS:-}
ORDER_MAX_PRODUCT_SHARE_PERCENT=${ORDER_MAX_PRODUCT_SHARE_PERCENT:-}
for name in ORDER_MAX_OPEN_UNITS ORDER_MAX_PRODUCT_SHARE_PERCENT; do
    eval "value=\${$name}"
    case "$value" in
        *[!0-9]*) fail "$name must be a positive integer, got '$value'" ;;
    esac
done
export PGPASSWORD AUTHENTICATOR_PASSWORD JWT_SECRET REPLICATION_PASSWORD ORDER_MAX_OPEN_UNITS ORDER_MAX_PRODUCT_SHARE_PERCENT

deadline=$(( $(date +%s) + TIMEOUT_SECONDS ))
until pg_isready --username="$PGUSER" --dbname="$PGDATABASE" --timeout=2 >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$PGHOST:$PGPORT is not accepting connections after ${TIMEOUT_SECONDS}s"
    echo "credentials-sync: waiting for $PGHOST:$PGPORT"
    sleep 2
done

# The owner's password is the one thing this job cannot change (it logs in with it): a
# dbPassword changed in the stack config fails here, loudly, before anything else happens.
if ! login=$(psql --no-psqlrc --no-password --username="$PGUSER" --dbname="$PGDATABASE" --tuples-only --command='SELECT 1' 2>&1); then
    case "$login" in
        *"password authentication failed"*)
            fail "the database owner's password (dbPassword) does not open the database: it was changed in the stack config. Change it in the database first: kubectl exec database-0 -c postgres -- psql -U $PGUSER -c '\\password $PGUSER', then set the same value with pulumi config set --secret dbPassword and run pulumi up" ;;
        *) fail "cannot log in as $PGUSER: $login" ;;
    esac
fi

psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet --username="$PGUSER" --dbname="$PGDATABASE" <<'EOSQL'
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';
-- The passwords and the signing key are statement text: keep it out of pg_stat_activity,
-- where the members of pg_monitor (pg_read_all_stats) read it while it runs and after it.
SET track_activities = off;
-- An error's DETAIL (a failing row holds the secret) reaches neither the server log nor the
-- Job's output.
SET log_min_messages = 'panic';
\set VERBOSITY terse
\getenv apw AUTHENTICATOR_PASSWORD
\getenv jwt JWT_SECRET
\getenv rpw REPLICATION_PASSWORD
BEGIN;
ALTER ROLE authenticator PASSWORD :'apw';
SELECT current_database() AS shop_db \gset
ALTER ROLE authenticator IN DATABASE :"shop_db" SET synchronous_commit = on;
SELECT :'rpw' <> '' AS replicas \gset
\if :replicas
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'replicator') THEN
        CREATE ROLE replicator WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;
ALTER ROLE replicator WITH LOGIN REPLICATION PASSWORD :'rpw';
-- The replicas' bootstrap asks the primary about their slots in the maintenance database,
-- which PUBLIC may not connect to (bootstrap.sql).
GRANT CONNECT ON DATABASE postgres TO replicator;
\endif
-- The jobs' and exporters' own roles (bootstrap.sql created them).
\getenv bpw BACKUP_PASSWORD
SELECT :'bpw' <> '' AS set_backup \gset
\if :set_backup
ALTER ROLE shop_backup PASSWORD :'bpw';
\endif
\getenv upw RELEASE_UNPAID_PASSWORD
SELECT :'upw' <> '' AS set_release \gset
\if :set_release
ALTER ROLE shop_release_unpaid PASSWORD :'upw';
\endif
\getenv mpw MONITOR_PASSWORD
SELECT :'mpw' <> '' AS set_monitor \gset
\if :set_monitor
ALTER ROLE shop_monitor PASSWORD :'mpw';
\endif
-- Also after a restore: backups leave the key out (backup.sh), so the table is empty then.
INSERT INTO shop.jwt_keys (id, secret) VALUES (true, :'jwt')
    ON CONFLICT (id) DO UPDATE SET secret = EXCLUDED.secret, updated_at = now()
    WHERE shop.jwt_keys.secret IS DISTINCT FROM EXCLUDED.secret;
-- A database created before shop.order_limits existed (init scripts run on first start only)
-- keeps working: the limit is written where the table is.
\getenv cap ORDER_MAX_OPEN_UNITS
SELECT :'cap' <> '' AND to_regclass('shop.order_limits') IS NOT NULL AS set_cap \gset
\if :set_cap
INSERT INTO shop.order_limits (id, max_open_units) VALUES (true, :'cap')
    ON CONFLICT (id) DO UPDATE SET max_open_units = EXCLUDED.max_open_units, updated_at = now()
    WHERE shop.order_limits.max_open_units IS DISTINCT FROM EXCLUDED.max_open_units;
\endif
-- The share of one product a customer may hold unpaid (migration 000005 adds the column; the
-- migrate Job runs before this one, so only a shop whose migration failed lacks it).
\getenv share ORDER_MAX_PRODUCT_SHARE_PERCENT
SELECT :'share' <> '' AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('shop.order_limits')
                                     AND attname = 'max_product_share_percent' AND NOT attisdropped) AS set_share \gset
\if :set_share
UPDATE shop.order_limits SET max_product_share_percent = :'share', updated_at = now()
 WHERE max_product_share_percent IS DISTINCT FROM :'share'::integer;
\endif
COMMIT;
EOSQL
echo "credentials-sync: the authenticator, replicator and job roles' passwords, the JWT signing key and the order limits are current"
