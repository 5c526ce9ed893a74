#!/usr/bin/env bash
# Ends `make test` with a summary a person cannot miss: which suites ran and which tests were
# skipped for want of an engine, with the one command that installs what is missing.
#   scripts/test-summary.sh <report file written by the tests (ECOMMERCE_TEST_REPORT)>
set -euo pipefail
report="${1:?report file}"
line="================================================================================"
echo "$line"
if [[ ! -s "$report" ]]; then
  echo "TEST SUMMARY: every suite ran (mocked, container contract, engine, failover, browser); nothing skipped"
  echo "$line"
  exit 0
fi
skipped=$(cut -f2 "$report" | sort -u | wc -l)
engines=$(cut -f3 "$report" | sort -u | tr '\n' ' ')
echo "TEST SUMMARY: $skipped test(s) SKIPPED because these engines are missing: $engines"
echo "The mocked suite ran; these did not:"
cut -f2 "$report" | sort -u | sed 's/^/  - /'
echo "Install what is missing (Debian, as root), then run make test again:"
echo "  make deps"
echo "$line"
