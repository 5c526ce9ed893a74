#!/bin/sh
# backup.sh: one logical backup of the database, run by the backup CronJob in the postgres
# image. POSIX sh.
#
# Environment (all required):
#   PGHOST PGPORT PGUSER PGDATABASE  where to connect and what to dump
#   PGPASSWORD_FILE                  file holding the password (a mounted Secret); read here
#                                    into PGPASSWORD for pg_dump, never printed
#   BACKUP_DIR                       where dumps go (a volume of its own)
#   BACKUP_KEEP                      how many dumps to keep (a positive integer)
#
# Writes $BACKUP_DIR/<database>-<UTC timestamp>.dump (pg_dump --format=custom) under a
# temporary name first and renames it once pg_dump has finished and the archive reads back,
# so a half-written dump never counts as a backup. The JWT signing key is left out. Then deletes all but the newest
# BACKUP_KEEP dumps of that database. Logs one line per step; exits non-zero on any failure.
# Restore with components.RestoreCommand (the README gives it).
set -eu
LC_ALL=C
export LC_ALL

log() {
    printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

fail() {
    log "ERROR: $*" >&2
    exit 1
}

missing=""
for name in PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD_FILE BACKUP_DIR BACKUP_KEEP; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
        missing="$missing $name"
    fi
done
if [ -n "$missing" ]; then
    fail "missing required environment variable(s):$missing"
fi

case "$BACKUP_KEEP" in
    '' | *[!0-9]*) fail "BACKUP_KEEP must be a positive integer, got '$BACKUP_KEEP'" ;;
esac
if [ "$BACKUP_KEEP" -lt 1 ]; then
    fail "BACKUP_KEEP must be at least 1, got $BACKUP_KEEP"
fi
if [ ! -r "$PGPASSWORD_FILE" ]; then
    fail "cannot read PGPASSWORD_FILE $PGPASSWORD_FILE"
fi
if [ ! -d "$BACKUP_DIR" ] || [ ! -w "$BACKUP_DIR" ]; then
    fail "BACKUP_DIR $BACKUP_DIR is not a writable directory"
fi

# $(...) drops the trailing newline a Secret file may have.
PGPASSWORD=$(cat "$PGPASSWORD_FILE")
export PGPASSWORD

umask 077
stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="$BACKUP_DIR/$PGDATABASE-$stamp.dump"
partial="$BACKUP_DIR/.$PGDATABASE-$stamp.dump.partial"

# Leftovers of a run that was killed before its cleanup could run.
for old in "$BACKUP_DIR"/."$PGDATABASE"-*.dump.partial; do
    if [ -e "$old" ]; then
        rm -f -- "$old"
        log "removed unfinished dump $old"
    fi
done

trap 'rm -f -- "$partial"' EXIT
trap 'exit 1' HUP INT TERM

log "dumping database $PGDATABASE from $PGHOST:$PGPORT as $PGUSER"
# The JWT signing key (shop.jwt_keys) stays out of every dump: a backup is no way to the key,
# and a restore never brings back a key rotated away since. The table itself is dumped
# (empty): after a restore the database-credentials Job writes the stack's key again.
if ! pg_dump --format=custom --no-password --exclude-table-data=shop.jwt_keys --file="$partial"; then
    fail "pg_dump of $PGDATABASE failed; no backup written"
fi
if ! pg_restore --list "$partial" >/dev/null; then
    fail "the dump of $PGDATABASE does not read back; no backup written"
fi
mv -f -- "$partial" "$final"
log "wrote $final ($(wc -c <"$final" | tr -d ' ') bytes)"

# Names sort by time (UTC timestamp of fixed width), so the oldest come first.
count=0
for dump in "$BACKUP_DIR/$PGDATABASE"-*.dump; do
    if [ -e "$dump" ]; then
        count=$((count + 1))
    fi
done
excess=$((count - BACKUP_KEEP))
for dump in "$BACKUP_DIR/$PGDATABASE"-*.dump; do
    if [ "$excess" -le 0 ]; then
        break
    fi
    if [ -e "$dump" ]; then
        rm -f -- "$dump"
        log "deleted old backup $dump"
        excess=$((excess - 1))
    fi
done
kept=$count
if [ "$kept" -gt "$BACKUP_KEEP" ]; then
    kept=$BACKUP_KEEP
fi
log "done: $kept backup(s) of $PGDATABASE kept in $BACKUP_DIR"
