#!/bin/sh
# promotion-check.sh: before production traffic moves to a color, check what a user would get
# from it, through that color's preview Service. Run by the frontend-promotion-check Job
# (curl image); the production Services depend on the Job, so a failure leaves them on the
# color they serve. POSIX sh and curl only.
#
# Environment (all required):
#   TARGET            the color's preview Service, e.g. http://frontend-green-preview
#   EXPECTED_COLOR    the color that is about to become active
#   EXPECTED_VERSION  the version its config says it serves
#   WAIT_SECONDS      how long to wait for the preview Service to answer at all
#
# Checks, in order, each named in the failure message (also the pod's termination message,
# which `platform switch` prints): /health, the dashboard page, /release/color and
# /release/version, /api/health (the API and its database), /api/products answering JSON.
set -u

fail() {
    msg="promotion check FAILED for $EXPECTED_COLOR at $TARGET: $*"
    echo "$msg" >&2
    printf '%s\n' "$msg" >/dev/termination-log 2>/dev/null || true
    exit 1
}

for name in TARGET EXPECTED_COLOR EXPECTED_VERSION WAIT_SECONDS; do
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "missing required environment variable $name"
done

# get PATH: sets status, type and body of GET $TARGET$PATH.
get() {
    out=$(curl --silent --show-error --max-time 10 --write-out '\n%{http_code} %{content_type}' "$TARGET$1" 2>&1) || {
        status=000
        type=
        body=$out
        return
    }
    body=$(printf '%s' "$out" | sed '$d')
    meta=$(printf '%s' "$out" | tail -n 1)
    status=${meta%% *}
    type=${meta#* }
}

deadline=$(( $(date +%s) + WAIT_SECONDS ))
while :; do
    get /health
    [ "$status" = 200 ] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "/health answered $status after ${WAIT_SECONDS}s: $body"
    sleep 2
done
[ "$body" = ok ] || fail "/health answered \"$body\", not \"ok\""

get /
[ "$status" = 200 ] || fail "the dashboard page / answered $status"
case "$body" in
    *"<title>E-commerce Platform</title>"*) ;;
    *) fail "the dashboard page / is not the dashboard" ;;
esac

get /release/color
[ "$status" = 200 ] && [ "$body" = "$EXPECTED_COLOR" ] || fail "/release/color answered $status \"$body\", expected \"$EXPECTED_COLOR\""
get /release/version
[ "$status" = 200 ] && [ "$body" = "$EXPECTED_VERSION" ] || fail "/release/version answered $status \"$body\", expected \"$EXPECTED_VERSION\""

get /api/health
[ "$status" = 200 ] || fail "/api/health answered $status: $body"

get "/api/products?limit=1"
[ "$status" = 200 ] || fail "/api/products answered $status: $body"
case "$type" in
    application/json*) ;;
    *) fail "/api/products answered $type, not JSON" ;;
esac
case "$body" in
    "["*) ;;
    *) fail "/api/products answered no JSON array: $body" ;;
esac

echo "promotion check passed for $EXPECTED_COLOR $EXPECTED_VERSION at $TARGET"
