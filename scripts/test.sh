#!/usr/bin/env bash
# The test command: set-up, type check, lint, then every test with node:test.
# As root (CI is root) it also prepares the host for the LXC sandbox and
# starts the test servers (scripts/setup-test-services.sh), so the tests
# marked [root] run; elsewhere they are reported as skipped, never passed.
# Extra arguments are passed to node --test (e.g. a file or --test-name-pattern).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$HOMELAB_ROOT"
scripts/setup.sh
HOMELAB_NODE=$(cat .homelab/node)
export PATH="$(dirname "$HOMELAB_NODE"):$PATH"

extra=()
if [ "$(id -u)" = 0 ]; then
  scripts/setup-sandbox-host.sh
  scripts/setup-browser.sh
  # PostgreSQL, an S3-compatible server, sops and age, on loopback.
  scripts/setup-test-services.sh
else
  log "not root: tests marked [root] (LXC, Docker) will be reported as skipped; run as root to include them"
  extra+=(--test-skip-pattern='\[root\]')
fi

log "type check"; node_modules/.bin/tsc -p tsconfig.json
log "lint"; node_modules/.bin/eslint --max-warnings=0 .
if [ $# -gt 0 ]; then
  exec node --test --test-reporter=spec "${extra[@]}" "$@"
fi
exec node --test --test-reporter=spec --test-concurrency="${HOMELAB_TEST_CONCURRENCY:-2}" "${extra[@]}" 'test/**/*.test.ts'
