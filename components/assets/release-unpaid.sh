#!/bin/sh
# release-unpaid.sh: cancels the orders left unpaid too long and puts their units back in
# stock (shop.release_unpaid_orders), run by the release-unpaid CronJob in the postgres
# image. POSIX sh.
#
# Environment (all required):
#   PGHOST PGPORT PGUSER PGDATABASE  the database, as its owner
#   PGPASSWORD_FILE                  the owner's password (a mounted Secret); never printed
#   UNPAID_MAX_AGE_MINUTES           an order unpaid for longer than this is released
#                                    (config unpaidOrderMaxAgeMinutes)
#
# Logs one line with the number of orders released; exits non-zero on any failure.
set -eu
LC_ALL=C
export LC_ALL

log() {
    printf '%s release-unpaid: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

fail() {
    log "ERROR: $*" >&2
    exit 1
}

for name in PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD_FILE UNPAID_MAX_AGE_MINUTES; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "missing required environment variable $name"
done
case "$UNPAID_MAX_AGE_MINUTES" in
    *[!0-9]*) fail "UNPAID_MAX_AGE_MINUTES must be a positive integer, got '$UNPAID_MAX_AGE_MINUTES'" ;;
esac
[ "$UNPAID_MAX_AGE_MINUTES" -ge 1 ] || fail "UNPAID_MAX_AGE_MINUTES must be at least 1, got $UNPAID_MAX_AGE_MINUTES"
[ -r "$PGPASSWORD_FILE" ] || fail "cannot read PGPASSWORD_FILE $PGPASSWORD_FILE"

# $(...) drops the trailing newline a Secret file may have.
PGPASSWORD=$(cat "$PGPASSWORD_FILE")
export PGPASSWORD UNPAID_MAX_AGE_MINUTES

# A run waits at most this long for a lock (an order being placed holds its products' rows
# for milliseconds): the next run tries again.
if ! released=$(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet --tuples-only --no-align \
    --username="$PGUSER" --dbname="$PGDATABASE" <<'EOSQL'
SET lock_timeout = '10s';
SET statement_timeout = '5min';
\getenv minutes UNPAID_MAX_AGE_MINUTES
SELECT shop.release_unpaid_orders(make_interval(mins => :'minutes'));
EOSQL
); then
    fail "shop.release_unpaid_orders failed"
fi
log "released $released order(s) unpaid for more than $UNPAID_MAX_AGE_MINUTES minutes"
