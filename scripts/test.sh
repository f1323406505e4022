#!/usr/bin/env bash
# Run the test suite with branch coverage and the coverage gates.
# With CI=true the services must come up (tests that need them fail, never skip);
# elsewhere a service that cannot be had makes its tests skip with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

if bash scripts/services.sh up >/dev/null; then
  # shellcheck disable=SC1091
  source .services.env
elif [ "${CI:-}" = "true" ]; then
  echo "test.sh: services failed to start and CI=true" >&2
  exit 1
else
  echo "test.sh: PostgreSQL/Redis unavailable here; their tests will skip" >&2
fi

rm -f .coverage .coverage.*
"$BIN/coverage" run -m pytest "$@"
status=$?
"$BIN/coverage" combine -q >/dev/null 2>&1 || true
if [ $status -ne 0 ]; then
  exit $status
fi
"$BIN/coverage" report --skip-covered --precision=1 | tail -n 25
echo "coverage gate: threadwire.ids must be 100% (lines and branches)"
"$BIN/coverage" report --include='src/threadwire/ids/*' --fail-under=100 --show-missing
