#!/bin/sh
# archive.sh: the database archiver's containers (postgres image), continuous WAL archiving
# and verified base backups on a volume that is not the database's. POSIX sh.
#
#   archive.sh receive     stream WAL from the primary into $ARCHIVE_DIR/wal through the
#                          replication slot $SLOT (created when missing), flushing each write
#                          and reporting it at once (pg_receivewal --synchronous), under the
#                          application_name $SLOT: a synchronous standby candidate
#   archive.sh schedule    take a base backup whenever the newest verified one is older than
#                          BASEBACKUP_INTERVAL_SECONDS (at once on an empty archive); checks
#                          every CHECK_SECONDS, touches $STATUS_DIR/alive and writes the
#                          metrics (archive-metrics.sh, beside this script) each time
#   archive.sh basebackup  one base backup now: take, then keep
#   archive.sh streaming   probe: exits 0 while pg_receivewal has a segment open (.partial)
#   archive.sh alive-archive  probe: exits 0 while the archive answers
#   archive.sh alive       probe: exits 0 while the schedule loop ran within 3 checks, or a
#                          base backup is in progress
#   archive.sh current     probe: exits 0 while the newest verified base backup is younger
#                          than BASEBACKUP_INTERVAL_SECONDS plus an hour (ready: the archive
#                          can be recovered from)
#   archive.sh take        pg_basebackup into base/<UTC time>.partial; prints its path
#   archive.sh keep DIR    pg_verifybackup DIR against its manifest; only if it passes is it
#                          renamed to base/<UTC time it completed>, a verified backup; else
#                          base/<...>.failed, which never counts. Then retention: the newest
#                          BASEBACKUP_KEEP verified backups stay, older ones go, and WAL older
#                          than the oldest kept backup's start is pruned (pg_archivecleanup)
#
# Environment: PRIMARY_HOST PRIMARY_PORT REPLICATION_USER PGPASSWORD_FILE ARCHIVE_DIR SLOT
# (receive, take); BASEBACKUP_KEEP (keep); BASEBACKUP_INTERVAL_SECONDS CHECK_SECONDS
# STATUS_DIR, OFFSITE_COPIES (schedule: see archive-metrics.sh).
# Layout of the archive: wal/ (segments, the current one as .partial), base/<time>/ (each a
# plain-format backup with its own WAL and backup_manifest, named after the UTC time it
# completed, YYYYmmddTHHMMSSZ).
set -eu
LC_ALL=C
export LC_ALL
here=$(dirname "$0")

log() {
    printf '%s archive: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

fail() {
    log "ERROR: $*" >&2
    exit 1
}

require() {
    for name in "$@"; do
        eval "value=\${$name:-}"
        [ -n "$value" ] || fail "missing required environment variable $name"
    done
}

connect() {
    require PRIMARY_HOST PRIMARY_PORT REPLICATION_USER PGPASSWORD_FILE ARCHIVE_DIR SLOT
    [ -r "$PGPASSWORD_FILE" ] || fail "cannot read $PGPASSWORD_FILE"
    PGPASSWORD=$(cat "$PGPASSWORD_FILE")
    export PGPASSWORD
    slot=$(printf '%s' "$SLOT" | tr 'A-Z-.' 'a-z__')
}

receive() {
    connect
    mkdir -p "$ARCHIVE_DIR/wal"
    set -- --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" --no-password \
        --dbname="application_name=$slot" --slot="$slot"
    until pg_receivewal "$@" --create-slot --if-not-exists; do
        log "the primary $PRIMARY_HOST:$PRIMARY_PORT does not answer; trying again in 2s"
        sleep 2
    done
    log "streaming WAL into $ARCHIVE_DIR/wal through slot $slot"
    exec pg_receivewal "$@" --directory="$ARCHIVE_DIR/wal" --synchronous --status-interval=1
}

# verified lists the verified base backups, oldest first (a glob: the readiness probe uses
# it, and probes redirect nothing).
verified() {
    for path in "$ARCHIVE_DIR"/base/*; do
        name=${path##*/}
        case "$name" in
        [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z) echo "$name" ;;
        esac
    done
}

take() {
    connect
    mkdir -p "$ARCHIVE_DIR/base"
    dir="$ARCHIVE_DIR/base/$(date -u +%Y%m%dT%H%M%SZ).partial"
    rm -rf "$dir"
    log "base backup into $dir" >&2
    pg_basebackup --host="$PRIMARY_HOST" --port="$PRIMARY_PORT" --username="$REPLICATION_USER" --no-password \
        --pgdata="$dir" --format=plain --wal-method=stream --checkpoint=fast >&2 ||
        fail "pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT failed"
    echo "$dir"
}

keep() {
    require ARCHIVE_DIR BASEBACKUP_KEEP
    dir="$1"
    [ -f "$dir/backup_manifest" ] || fail "$dir holds no backup_manifest"
    done_at=$(date -u +%Y%m%dT%H%M%SZ)
    if ! report=$(pg_verifybackup --quiet "$dir" 2>&1); then
        mv "$dir" "$ARCHIVE_DIR/base/$done_at.failed"
        fail "base backup $dir failed pg_verifybackup; kept as $done_at.failed, never used: $report"
    fi
    # Two backups in one second: the later one waits for a name of its own.
    while [ -e "$ARCHIVE_DIR/base/$done_at" ]; do
        sleep 1
        done_at=$(date -u +%Y%m%dT%H%M%SZ)
    done
    mv "$dir" "$ARCHIVE_DIR/base/$done_at"
    log "base backup $done_at verified against its manifest"
    retain
}

retain() {
    count=$(verified | wc -l)
    drop=$((count - BASEBACKUP_KEEP))
    for name in $(verified | head -n "$((drop > 0 ? drop : 0))"); do
        rm -rf "${ARCHIVE_DIR:?}/base/$name"
        log "base backup $name removed (keeping $BASEBACKUP_KEEP)"
    done
    oldest=$(verified | head -n 1)
    [ -n "$oldest" ] || return 0
    for failed in $(ls "$ARCHIVE_DIR/base" | grep -E '\.failed$' || true); do
        if [ "${failed%.failed}" \< "$oldest" ]; then rm -rf "${ARCHIVE_DIR:?}/base/$failed"; fi
    done
    start=$(sed -n 's/^START WAL LOCATION: .*(file \([0-9A-F]\{24\}\))$/\1/p' "$ARCHIVE_DIR/base/$oldest/backup_label")
    [ -n "$start" ] || fail "no START WAL LOCATION in base/$oldest/backup_label"
    mkdir -p "$ARCHIVE_DIR/wal"
    pg_archivecleanup "$ARCHIVE_DIR/wal" "$start"
    log "WAL before $start (the start of base backup $oldest, the oldest kept) pruned"
}

# metrics writes the archiver's metrics file (before a backup that may take hours, and after).
metrics() {
    sh "$here/archive-metrics.sh" || log "ERROR: metrics not written"
}

schedule() {
    require ARCHIVE_DIR BASEBACKUP_INTERVAL_SECONDS CHECK_SECONDS STATUS_DIR BASEBACKUP_KEEP
    while :; do
        touch "$STATUS_DIR/alive"
        newest=$(verified | tail -n 1)
        due=1
        if [ -n "$newest" ]; then
            made=$(date -u -d "$(echo "$newest" | sed 's/^\(....\)\(..\)\(..\)T\(..\)\(..\)\(..\)Z$/\1-\2-\3 \4:\5:\6/')" +%s)
            [ $(($(date +%s) - made)) -lt "$BASEBACKUP_INTERVAL_SECONDS" ] && due=0
        fi
        metrics
        if [ "$due" = 1 ]; then
            # A failed backup is logged and tried again at the next check.
            (dir=$(take) && keep "$dir") || log "base backup failed; the previous verified one still counts"
            metrics
        fi
        sleep "$CHECK_SECONDS"
    done
}

# any PATH...: one of the (globbed) paths exists. Probes redirect nothing: they run in the
# container as exec probes, where only the container's own files are sure to be writable.
any() {
    for path in "$@"; do
        [ -e "$path" ] && return 0
    done
    return 1
}

# age_ok FILE SECONDS: FILE was modified less than SECONDS ago.
age_ok() {
    [ -e "$1" ] && [ $(($(date +%s) - $(stat -c %Y "$1"))) -lt "$2" ]
}

case "${1:-}" in
receive) receive ;;
streaming)
    require ARCHIVE_DIR
    any "$ARCHIVE_DIR"/wal/*.partial || fail "no WAL segment open in $ARCHIVE_DIR/wal"
    ;;
alive-archive)
    require ARCHIVE_DIR
    [ -d "$ARCHIVE_DIR/." ] || fail "the archive $ARCHIVE_DIR does not answer"
    ;;
current)
    require ARCHIVE_DIR BASEBACKUP_INTERVAL_SECONDS
    newest=$(verified | tail -n 1)
    [ -n "$newest" ] || fail "no verified base backup yet"
    age_ok "$ARCHIVE_DIR/base/$newest" $((BASEBACKUP_INTERVAL_SECONDS + 3600)) ||
        fail "the newest verified base backup, $newest, is older than the interval allows"
    ;;
alive)
    require ARCHIVE_DIR STATUS_DIR CHECK_SECONDS
    age_ok "$STATUS_DIR/alive" $((3 * CHECK_SECONDS)) || any "$ARCHIVE_DIR"/base/*.partial ||
        fail "the schedule loop has not run for $((3 * CHECK_SECONDS))s and no base backup is in progress"
    ;;
schedule) schedule ;;
basebackup)
    dir=$(take)
    keep "$dir"
    ;;
take) take ;;
keep) keep "${2:?keep DIR}" ;;
*) fail "usage: archive.sh receive|schedule|basebackup|take|keep DIR|streaming|alive|alive-archive" ;;
esac
