#!/usr/bin/env bash
# kube-score, the manifest checks platform teams run, over the rendered manifests of both
# stacks (rendered through the real engine and provider, no cluster). Fails on any CRITICAL;
# WARNINGs are printed. The one check the program departs from on purpose is ignored on its
# objects with kube-score's own annotation (see README, "kube-score").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$ROOT/.kube-score"
status=0
for stack in dev prod; do
  # prod copies its archive off site: the endpoint and bucket are the storage owner's, so the
  # render names stand-ins (its Secrets are throwaway text anyway).
  extra=()
  if [[ $stack == prod ]]; then
    extra=(-config databaseOffsiteEndpoint=https://s3.render.invalid -config databaseOffsiteBucket=render-only)
  fi
  go run "$ROOT/cmd/platform" -project "$ROOT" -stack "$stack" -tools "$ROOT/.tools" "${extra[@]}" render "$out/$stack" >/dev/null
  echo "[kube-score] $stack: $(ls "$out/$stack/1-manifest" | wc -l) manifests"
  if ! "$ROOT/.tools/bin/kube-score" score --kubernetes-version v1.33 --output-format ci \
      "$out/$stack"/1-manifest/*.yaml >"$out/$stack.txt"; then
    status=1
  fi
  grep -E '^\[(CRITICAL|WARNING)\]' "$out/$stack.txt" | sed "s/^/[kube-score] $stack /" || true
done
rm -rf "$out"/dev "$out"/prod # they hold Secrets in plain text
if ((status)); then echo "[kube-score] CRITICAL findings above" >&2; fi
exit $status
