#!/bin/sh
# migrate-verify.sh: the database-migrate Job's last container (postgres image), after
# golang-migrate. Reads the version table and fails unless the schema is at exactly the
# program's newest migration and clean, then (dev only) loads the demo data into a shop that
# has none; last, clears the migrator's password of this run, so nobody can log in as the
# migrator until the next run's bootstrap gives it a new one. Logs in as the migrator
# (PGPASSFILE from migrate-bootstrap.sh). POSIX sh.
#
# Environment:
#   PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE  the database, as the migrator (required)
#   EXPECTED_VERSION                            the newest migration's number (required)
#   SEED_SQL                                    path of seed-dev.sql (optional: no seed)
set -eu

fail() {
    echo "migrate-verify: ERROR: $*" >&2
    exit 1
}

for name in PGHOST PGPORT PGUSER PGDATABASE PGPASSFILE EXPECTED_VERSION; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "missing required environment variable $name"
done

state=$(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --tuples-only --no-align --field-separator=' ' \
    --command='SELECT version, dirty FROM migrations.schema_migrations') ||
    fail "cannot read migrations.schema_migrations"
set -- $state
version=${1:-none}
dirty=${2:-}
[ "$dirty" = "f" ] || fail "the schema is at version $version and dirty: a migration failed; see docs/upgrades.md#a-failed-migration"
[ "$version" = "$EXPECTED_VERSION" ] ||
    fail "the schema is at version $version, the program's newest migration is $EXPECTED_VERSION"
echo "migrate-verify: schema at version $version (clean)"

if [ -n "${SEED_SQL:-}" ]; then
    psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet --file="$SEED_SQL" || fail "the demo data failed to load"
    echo "migrate-verify: demo data present"
fi

# A role may change its own password and nothing else; the migrator's sessions start as
# api_owner (its role setting), so it becomes itself first.
psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet --command='SET ROLE NONE; ALTER ROLE migrator PASSWORD NULL' ||
    fail "could not clear the migrator's password of this run"
echo "migrate-verify: the migrator's password of this run is cleared"
