#!/bin/sh
# replica-bootstrap.sh: the init container of a read replica (postgres image). On an empty
# data directory it copies the primary with pg_basebackup (WAL streamed, a replication slot
# named after the pod, created unless the primary still has it from an earlier life of this
# replica) and writes the standby configuration. On a data directory that is already there the
# replica resumes from its slot, unless the primary answers that the slot is gone (dropped) or
# lost (the primary no longer keeps the WAL the replica needs, max_slot_wal_keep_size): then
# it copies the primary again, since the replica could never catch up. POSIX sh.
#
# Environment (all required):
#   PGDATA                   the replica's data directory (a subfolder of its claim)
#   PRIMARY_HOST PRIMARY_PORT the primary (database-service)
#   REPLICATION_USER         the replication role (replicator)
#   PGPASSWORD_FILE          its password (a mounted Secret)
#   SLOT                     the replication slot: the pod's name
#   TIMEOUT_SECONDS          how long to wait for the primary
set -eu

fail() {
    echo "replica-bootstrap: ERROR: $*" >&2
    exit 1
}

for name in PGDATA PRIMARY_HOST PRIMARY_PORT REPLICATION_USER PGPASSWORD_FILE SLOT TIMEOUT_SECONDS; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "missing required environment variable $name"
done
[ -r "$PGPASSWORD_FILE" ] || fail "cannot read $PGPASSWORD_FILE"
PGPASSWORD=$(cat "$PGPASSWORD_FILE")
export PGPASSWORD
# Slot names allow lower-case letters, digits and underscores.
slot=$(printf '%s' "$SLOT" | tr 'A-Z-.' 'a-z__')

# on_primary runs one query on the primary as the replication role; prints the result.
on_primary() {
    psql --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" --dbname=postgres \
        --no-psqlrc --no-password --tuples-only --no-align --command="$1"
}

if [ -s "$PGDATA/PG_VERSION" ]; then
    if ! pg_isready --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" --dbname=postgres --timeout=5 >/dev/null 2>&1; then
        echo "replica-bootstrap: $PGDATA holds a database; resuming from slot $slot (the primary does not answer now)"
        exit 0
    fi
    status=$(on_primary "SELECT coalesce(wal_status, 'reserved') FROM pg_replication_slots WHERE slot_name = '$slot'") ||
        fail "cannot read the primary's replication slots as $REPLICATION_USER"
    case "$status" in
    lost)
        echo "replica-bootstrap: the primary no longer keeps the WAL slot $slot needs (lost); copying the primary again"
        on_primary "SELECT pg_drop_replication_slot('$slot')" >/dev/null || fail "cannot drop the lost slot $slot"
        ;;
    "")
        echo "replica-bootstrap: the primary has no slot $slot any more; copying the primary again"
        ;;
    *)
        echo "replica-bootstrap: $PGDATA holds a database; resuming from slot $slot ($status)"
        exit 0
        ;;
    esac
fi

deadline=$(( $(date +%s) + TIMEOUT_SECONDS ))
until pg_isready --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" --dbname=postgres --timeout=2 >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the primary $PRIMARY_HOST:$PRIMARY_PORT is not accepting connections after ${TIMEOUT_SECONDS}s"
    echo "replica-bootstrap: waiting for the primary $PRIMARY_HOST:$PRIMARY_PORT"
    sleep 2
done

exists=$(on_primary "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '$slot'") ||
    fail "cannot read the primary's replication slots as $REPLICATION_USER"
create=--create-slot
if [ "$exists" = 1 ]; then
    create=
    echo "replica-bootstrap: the primary still has slot $slot; copying from it"
fi

# A copy interrupted earlier leaves files: start from nothing.
rm -rf "$PGDATA"
mkdir -p "$PGDATA"
chmod 700 "$PGDATA"
echo "replica-bootstrap: copying the primary into $PGDATA (slot $slot)"
pg_basebackup --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" --no-password \
    --pgdata="$PGDATA" --wal-method=stream --checkpoint=fast --slot="$slot" $create ||
    fail "pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT failed"

# Standby: follow the primary through the slot. The password reaches the WAL receiver from
# the container's PGPASSWORD, never from a file on the claim.
touch "$PGDATA/standby.signal"
cat >>"$PGDATA/postgresql.auto.conf" <<EOF2
primary_conninfo = 'host=$PRIMARY_HOST port=$PRIMARY_PORT user=$REPLICATION_USER application_name=$slot'
primary_slot_name = '$slot'
EOF2
echo "replica-bootstrap: done; the replica starts streaming from slot $slot"
