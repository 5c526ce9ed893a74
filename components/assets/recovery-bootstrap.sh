#!/bin/sh
# recovery-bootstrap.sh: the primary's init container when the stack recovers from an archive
# (databaseRecoverFrom), instead of initdb; postgres image. POSIX sh.
#
# On an empty data directory it picks the newest verified base backup of $RESTORE_DIR/base
# that completed before the target, checks it again against its manifest (pg_verifybackup; a
# copy that fails is skipped and the one before it is used), copies it into PGDATA and writes
# the recovery settings: WAL from $RESTORE_DIR/wal (the archive's current .partial segment
# included, so "latest" loses nothing the archiver had flushed), up to RECOVERY_TARGET, then
# promote. PostgreSQL does the rest when the postgres container starts. A data directory that
# already holds a database is never touched: a recovery never overwrites one.
#
# Environment (all required):
#   PGDATA           the database's data directory (a subfolder of its claim)
#   RESTORE_DIR      the archive's copy: base/ and wal/ (recovery-fetch.sh fills it)
#   RECOVERY_TARGET  latest, or an RFC 3339 time such as 2026-12-04T14:03:00Z
set -eu
LC_ALL=C
export LC_ALL

log() {
    printf '%s recovery: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

fail() {
    log "ERROR: $*" >&2
    printf '%s\n' "$*" >/dev/termination-log 2>/dev/null || true
    exit 1
}

for name in PGDATA RESTORE_DIR RECOVERY_TARGET; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "missing required environment variable $name"
done

if [ -s "$PGDATA/PG_VERSION" ]; then
    log "$PGDATA already holds a database; not recovering (a recovery never overwrites a data directory)"
    exit 0
fi
if [ -d "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
    fail "$PGDATA is not empty but holds no database; move it away by hand (a recovery never overwrites a data directory)"
fi

# The target as the archive's backup names spell a time (YYYYmmddTHHMMSSZ), and as
# recovery_target_time wants it.
if [ "$RECOVERY_TARGET" = latest ]; then
    limit=99999999T999999Z
else
    epoch=$(date -u -d "$RECOVERY_TARGET" +%s 2>/dev/null) ||
        fail "databaseRecoveryTarget $RECOVERY_TARGET is not an RFC 3339 time (or latest)"
    [ "$epoch" -le "$(date +%s)" ] || fail "databaseRecoveryTarget $RECOVERY_TARGET is in the future"
    limit=$(date -u -d "@$epoch" +%Y%m%dT%H%M%SZ)
    target_time=$(date -u -d "@$epoch" '+%Y-%m-%d %H:%M:%S+00')
fi

backups=$(ls "$RESTORE_DIR/base" 2>/dev/null | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort || true)
[ -n "$backups" ] || fail "the archive at $RESTORE_DIR holds no verified base backup"
oldest=$(echo "$backups" | head -n 1)
chosen=""
for name in $(echo "$backups" | sort -r); do
    if [ "$name" \> "$limit" ]; then continue; fi
    if report=$(pg_verifybackup --quiet --wal-directory="$RESTORE_DIR/base/$name/pg_wal" "$RESTORE_DIR/base/$name" 2>&1); then
        chosen=$name
        break
    fi
    log "base backup $name fails pg_verifybackup, skipped: $report"
done
if [ -z "$chosen" ]; then
    if [ "$oldest" \> "$limit" ]; then
        fail "databaseRecoveryTarget $RECOVERY_TARGET is before the oldest base backup in the archive ($oldest)"
    fi
    fail "no base backup before databaseRecoveryTarget $RECOVERY_TARGET passes pg_verifybackup"
fi

log "restoring base backup $chosen into $PGDATA"
mkdir -p "$PGDATA"
chmod 700 "$PGDATA"
cp -R "$RESTORE_DIR/base/$chosen/." "$PGDATA/"
# Object storage keeps no empty folders: give back the ones every PostgreSQL 15 data
# directory has (pg_basebackup's own list; the manifest names files only).
for dir in base global pg_commit_ts pg_dynshmem pg_logical/mappings pg_logical/snapshots pg_multixact/members \
    pg_multixact/offsets pg_notify pg_replslot pg_serial pg_snapshots pg_stat pg_stat_tmp pg_subtrans pg_tblspc \
    pg_twophase pg_wal/archive_status pg_xact; do
    mkdir -p "$PGDATA/$dir"
done
chmod -R go-rwx "$PGDATA"
rm -f "$PGDATA/backup_manifest" "$PGDATA/standby.signal"
touch "$PGDATA/recovery.signal"
wal="$RESTORE_DIR/wal"
{
    echo "restore_command = 'cp \"$wal/%f\" \"%p\" 2>/dev/null || cp \"$wal/%f.partial\" \"%p\" 2>/dev/null'"
    echo "recovery_target_action = 'promote'"
    echo "recovery_target_timeline = 'latest'"
    if [ -n "${target_time:-}" ]; then
        echo "recovery_target_time = '$target_time'"
    fi
} >>"$PGDATA/postgresql.auto.conf"
log "recovery set up: base backup $chosen, WAL from $wal, target $RECOVERY_TARGET; PostgreSQL replays it and promotes"
