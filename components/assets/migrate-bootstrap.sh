#!/bin/sh
# migrate-bootstrap.sh: the database-migrate Job's first container (postgres image). Waits for
# the database, runs bootstrap.sql as the superuser (extension, roles, role settings, the
# version of a shop created before migrations), gives the migrator role a new password that
# only this pod ever holds, and writes it as a libpq password file for the next two
# containers (golang-migrate's lib/pq and psql both read PGPASSFILE). POSIX sh.
#
# Environment (all required):
#   PGHOST PGPORT PGUSER PGDATABASE  the database, as its superuser (POSTGRES_USER)
#   PGPASSWORD_FILE                  the superuser's password (the only Secret key mounted)
#   BOOTSTRAP_SQL                    path of bootstrap.sql
#   MIGRATOR_PASSFILE                where to write the migrator's password file (a memory
#                                    volume shared with the other containers of the pod)
#   TIMEOUT_SECONDS                  how long to wait for the database
#   MIGRATOR_VALID_SECONDS           how long the migrator's password of this run stays valid
#                                    (the Job's deadline: no container of the run logs in later)
set -eu

fail() {
    echo "migrate-bootstrap: ERROR: $*" >&2
    exit 1
}

for name in PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD_FILE BOOTSTRAP_SQL MIGRATOR_PASSFILE TIMEOUT_SECONDS MIGRATOR_VALID_SECONDS; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "missing required environment variable $name"
done
case $MIGRATOR_VALID_SECONDS in
    *[!0-9]*) fail "MIGRATOR_VALID_SECONDS is not a whole number of seconds: $MIGRATOR_VALID_SECONDS" ;;
esac
export MIGRATOR_VALID_SECONDS
[ -r "$PGPASSWORD_FILE" ] || fail "cannot read $PGPASSWORD_FILE"
[ -r "$BOOTSTRAP_SQL" ] || fail "cannot read $BOOTSTRAP_SQL"
PGPASSWORD=$(cat "$PGPASSWORD_FILE")
export PGPASSWORD

deadline=$(( $(date +%s) + TIMEOUT_SECONDS ))
until pg_isready --username="$PGUSER" --dbname="$PGDATABASE" --timeout=2 >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$PGHOST:$PGPORT is not accepting connections after ${TIMEOUT_SECONDS}s"
    echo "migrate-bootstrap: waiting for $PGHOST:$PGPORT"
    sleep 2
done

# 48 hex digits from the kernel's random source: the password of this run only.
MIGRATOR_PASSWORD=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
[ "${#MIGRATOR_PASSWORD}" -eq 48 ] || fail "could not draw a password from /dev/urandom"
export MIGRATOR_PASSWORD
psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet --file="$BOOTSTRAP_SQL" ||
    fail "bootstrap.sql failed (above); nothing of it was applied"

umask 077
printf '*:*:*:migrator:%s\n' "$MIGRATOR_PASSWORD" > "$MIGRATOR_PASSFILE"
echo "migrate-bootstrap: roles and extension current in $PGDATABASE; migrator may log in for this run"
