#!/bin/sh
# recovery-fetch.sh: the first init container of a primary that recovers from an archive in
# S3-compatible object storage (databaseRecoverFrom; rclone image, busybox sh). On an empty
# data directory it copies the archive (verified base backups and WAL) from REMOTE into
# RESTORE_DIR on the database's claim, decrypting it through the same crypt remote the
# archiver wrote it with (offsite-crypt.sh beside this script: databaseOffsiteEncryptionKey
# must be the key of the archive it recovers from), where recovery-bootstrap.sh picks the
# backup and PostgreSQL's restore_command reads the WAL. A claim that already holds a database
# is left alone: a recovery never overwrites one.
#
# Environment: PGDATA, RESTORE_DIR, REMOTE (rclone remote path, configured through
# RCLONE_CONFIG_OFFSITE_* variables), ENCRYPTION_KEY_FILE.
set -eu

log() {
    printf '%s recovery-fetch: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

fail() {
    log "ERROR: $*" >&2
    printf '%s\n' "$*" >/dev/termination-log 2>/dev/null || true
    exit 1
}

if [ -s "$PGDATA/PG_VERSION" ]; then
    log "$PGDATA already holds a database; nothing to fetch"
    exit 0
fi
. "$(dirname "$0")/offsite-crypt.sh"
seal || fail "$sealed_error"
mkdir -p "$RESTORE_DIR"
if ! out=$(rclone copy sealed: "$RESTORE_DIR" --s3-no-check-bucket --exclude '/base/*.partial/**' \
    --exclude '/base/*.failed/**' --exclude '/wal/*.partial' --retries 3 --low-level-retries 3 --stats 0 \
    --log-level ERROR 2>&1); then
    fail "cannot read the archive databaseRecoverFrom at $REMOTE: $out"
fi
[ -n "$(ls "$RESTORE_DIR/base" 2>/dev/null)" ] ||
    fail "the archive databaseRecoverFrom at $REMOTE holds no base backup readable with databaseOffsiteEncryptionKey (is it the key the archive was written with?)"
log "archive copied from $REMOTE into $RESTORE_DIR"
