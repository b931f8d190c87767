#!/usr/bin/env bash
# The test command: set-up, type check, lint, then every test with node:test.
# Extra arguments are passed to node --test (e.g. a file or --test-name-pattern).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$HOMELAB_ROOT"
scripts/setup.sh
HOMELAB_NODE=$(cat .homelab/node)
export PATH="$(dirname "$HOMELAB_NODE"):$PATH"
log "type check"; node_modules/.bin/tsc -p tsconfig.json
log "lint"; node_modules/.bin/eslint --max-warnings=0 .
if [ $# -gt 0 ]; then
  exec node --test --test-reporter=spec "$@"
fi
exec node --test --test-reporter=spec --test-concurrency="${HOMELAB_TEST_CONCURRENCY:-2}" 'test/**/*.test.ts'
