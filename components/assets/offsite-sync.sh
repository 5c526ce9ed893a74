#!/bin/sh
# offsite-sync.sh: the archiver's off-site copy (rclone image, busybox sh). Every
# INTERVAL_SECONDS it mirrors the archive's verified base backups and its WAL (the current
# .partial segment included) to S3-compatible object storage, so the cluster's loss costs at
# most one interval of archive. Backups still being taken (.partial) and those that failed
# verification (.failed) are never copied; what retention removed locally is removed there.
#
#   offsite-sync.sh loop   sync forever; touches $STATUS_DIR/synced after each good sync and
#                          writes the metrics (archive-metrics.sh, beside this script) after
#                          each try
#   offsite-sync.sh once   one sync (the engine tests and a manual run)
#   offsite-sync.sh synced probe (readiness): exits 0 while the last good sync is under 3
#                          intervals old
#   offsite-sync.sh alive  probe (startup, liveness): exits 0 while a sync runs (the first
#                          copy of a large archive is long) or the loop tried one within 3
#                          intervals
#
# Environment: ARCHIVE_DIR, REMOTE (rclone remote path, e.g. offsite:bucket/prefix, the remote
# configured through RCLONE_CONFIG_OFFSITE_* variables: type s3, endpoint, keys from a Secret),
# INTERVAL_SECONDS and STATUS_DIR (loop).
set -eu

log() {
    printf '%s offsite: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

once() {
    # --s3-no-check-bucket: the bucket exists (its owner made it); the keys need not be
    # allowed to create buckets.
    rclone sync "$ARCHIVE_DIR" "$REMOTE" --s3-no-check-bucket --exclude '/base/*.partial/**' \
        --exclude '/base/*.failed/**' --exclude '/lost+found/**' --retries 3 --low-level-retries 3 \
        --stats 0 --log-level NOTICE
}

case "${1:-}" in
once)
    once
    log "archive copied to $REMOTE"
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
