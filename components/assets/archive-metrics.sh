#!/bin/sh
# archive-metrics.sh: writes the archiver's metrics, in Prometheus' text format, to
# $STATUS_DIR/metrics.prom (atomically: a scrape never sees half a file); the archiver's
# metrics container serves that file on /metrics. Run after every base backup check and every
# off-site copy, by archive.sh (postgres image) and offsite-sync.sh (rclone image, busybox):
# POSIX sh, date and stat as both have them.
#
#   archive_base_backup_last_verified_timestamp_seconds  completion time of the newest base
#       backup that passed pg_verifybackup (0: none yet)
#   archive_base_backups_verified     verified base backups kept
#   archive_base_backups_failed       backups that failed verification, still on the volume
#   archive_offsite_last_success_timestamp_seconds  end of the last good off-site copy
#       (0: none yet); written only when off-site copies are on (OFFSITE_COPIES=on)
#   archive_metrics_written_timestamp_seconds  when this file was written: a stale file
#       means the loops that write it stopped
#
# Environment: ARCHIVE_DIR STATUS_DIR, OFFSITE_COPIES (on when off-site copies are made).
set -eu
LC_ALL=C
export LC_ALL

: "${ARCHIVE_DIR:?}" "${STATUS_DIR:?}"

# Verified backups are named after the UTC time they completed, YYYYmmddTHHMMSSZ.
newest=0
verified=0
failed=0
for path in "$ARCHIVE_DIR"/base/*; do
    name=${path##*/}
    case "$name" in
    [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z)
        verified=$((verified + 1))
        at=$(date -u -d "$(echo "$name" | sed 's/^\(....\)\(..\)\(..\)T\(..\)\(..\)\(..\)Z$/\1-\2-\3 \4:\5:\6/')" +%s)
        [ "$at" -gt "$newest" ] && newest=$at
        ;;
    *.failed) failed=$((failed + 1)) ;;
    esac
done

gauge() {
    printf '# HELP %s %s\n# TYPE %s gauge\n%s %s\n' "$1" "$2" "$1" "$1" "$3"
}

out="$STATUS_DIR/metrics.prom"
# Two containers write the file, each in its own PID namespace: a temporary name of its own.
tmp=$(mktemp "$STATUS_DIR/metrics.prom.XXXXXX")
{
    gauge archive_base_backup_last_verified_timestamp_seconds \
        "Completion time of the newest base backup that passed pg_verifybackup (0: none yet)." "$newest"
    gauge archive_base_backups_verified "Verified base backups kept in the archive." "$verified"
    gauge archive_base_backups_failed "Base backups that failed pg_verifybackup, still on the volume." "$failed"
    if [ "${OFFSITE_COPIES:-}" = on ]; then
        synced=0
        [ -e "$STATUS_DIR/synced" ] && synced=$(stat -c %Y "$STATUS_DIR/synced")
        gauge archive_offsite_last_success_timestamp_seconds \
            "End of the last good copy of the archive to object storage (0: none yet)." "$synced"
    fi
    gauge archive_metrics_written_timestamp_seconds "When the archiver last wrote these metrics." "$(date +%s)"
} >"$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
