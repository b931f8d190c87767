#!/usr/bin/env bash
# Makes this machine ready to run homelab: Node >= 22.18, npm dependencies,
# the compiled CLI, and the pinned Pulumi CLI. Idempotent; a second run is quick.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$HOMELAB_ROOT"

ensure_node

# npm ci only when the lockfile changed since the last install.
stamp=node_modules/.homelab-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

log "compiling the CLI into dist/"
rm -f dist/.built
node_modules/.bin/tsc -p tsconfig.build.json
# The launchers trust dist/ only while no source is newer than this stamp.
touch dist/.built

if [ -x scripts/setup-pulumi.sh ]; then
  scripts/setup-pulumi.sh
fi
log "ready (node: $HOMELAB_NODE)"
