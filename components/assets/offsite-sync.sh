#!/bin/sh
# offsite-sync.sh: the archiver's off-site copy (rclone image, busybox sh). Every
# INTERVAL_SECONDS it copies the archive's verified base backups and its completed WAL
# segments to S3-compatible object storage, encrypted on this side (rclone's crypt remote,
# offsite-crypt.sh beside this script: the bucket never holds the signing key's table, a
# password hash or a readable file name). Backups still being taken (.partial), those that
# failed verification (.failed) and the WAL segment still being written (.partial) are never
# copied.
#
# It copies, never mirrors: nothing is ever deleted or overwritten in the bucket (rclone copy
# --ignore-existing; every file it copies is final once named), so an empty or lost archive
# claim, or a second cluster writing under the same prefix, cannot remove what is there.
# Nothing is pruned off site by this script: the bucket's owner ages objects out with
# lifecycle rules (keep at least databaseBaseBackupKeep backups' worth of time), and the
# keys given to the archiver need no delete right.
#
#   offsite-sync.sh loop   copy forever; touches $STATUS_DIR/synced after each good copy and
#                          writes the metrics (archive-metrics.sh, beside this script) after
#                          each try
#   offsite-sync.sh once   one copy (the engine tests and a manual run)
#   offsite-sync.sh synced probe (readiness): exits 0 while the last good copy is under 3
#                          intervals old
#   offsite-sync.sh alive  probe (startup, liveness): exits 0 while a copy runs (the first
#                          copy of a large archive is long) or the loop tried one within 3
#                          intervals
#
# Environment: ARCHIVE_DIR, REMOTE (rclone path of the archive, e.g. offsite:bucket/prefix, the
# S3 remote configured through RCLONE_CONFIG_OFFSITE_* variables: type s3, endpoint, keys from
# a Secret), ENCRYPTION_KEY_FILE (offsite-crypt.sh), INTERVAL_SECONDS and STATUS_DIR (loop).
set -eu

log() {
    printf '%s offsite: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

. "$(dirname "$0")/offsite-crypt.sh"

once() {
    seal || { log "ERROR: $sealed_error" >&2; return 1; }
    # --s3-no-check-bucket: the bucket exists (its owner made it); the keys need not be
    # allowed to create buckets. --ignore-existing: an object in the bucket is never
    # replaced (copy never deletes).
    rclone copy "$ARCHIVE_DIR" sealed: --ignore-existing --s3-no-check-bucket --exclude '/base/*.partial/**' \
        --exclude '/base/*.failed/**' --exclude '/wal/*.partial' --exclude '/lost+found/**' --retries 3 \
        --low-level-retries 3 --stats 0 --log-level NOTICE
}

case "${1:-}" in
once)
    once
    log "archive copied to $REMOTE (encrypted)"
    ;;
synced)
    [ -e "$STATUS_DIR/synced" ] && [ $(($(date +%s) - $(stat -c %Y "$STATUS_DIR/synced"))) -lt $((3 * INTERVAL_SECONDS)) ]
    ;;
alive)
    [ -e "$STATUS_DIR/syncing" ] ||
        { [ -e "$STATUS_DIR/tried" ] && [ $(($(date +%s) - $(stat -c %Y "$STATUS_DIR/tried"))) -lt $((3 * INTERVAL_SECONDS)) ]; }
    ;;
loop)
    while :; do
        touch "$STATUS_DIR/syncing"
        if once; then
            touch "$STATUS_DIR/synced" "$STATUS_DIR/tried"
            rm -f "$STATUS_DIR/syncing"
        else
            rm -f "$STATUS_DIR/syncing"
            touch "$STATUS_DIR/tried"
            log "ERROR: copy to $REMOTE failed; trying again in ${INTERVAL_SECONDS}s" >&2
        fi
        OFFSITE_COPIES=on sh "$(dirname "$0")/archive-metrics.sh" || log "ERROR: metrics not written" >&2
        sleep "$INTERVAL_SECONDS"
    done
    ;;
*)
    log "usage: offsite-sync.sh once|loop" >&2
    exit 1
    ;;
esac
