#!/usr/bin/env bash
# The demo: set-up, start the sandbox (real LXC guests when this machine can,
# state-only otherwise, and it says which), then validate and deploy an
# example service to it and show what was deployed.
# Re-running it is safe: set-up is idempotent, a running sandbox is reused and
# a deploy with nothing changed changes nothing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$HOMELAB_ROOT"
scripts/setup.sh
HOMELAB_NODE=$(cat .homelab/node)
export PATH="$HOMELAB_ROOT/bin:$(dirname "$HOMELAB_NODE"):$PATH"

backend=memory
if [ "$(id -u)" = 0 ] && [ -x scripts/setup-sandbox-host.sh ]; then
  if scripts/setup-sandbox-host.sh; then backend=lxc; else log "LXC set-up failed: using the state-only sandbox"; fi
else
  log "not root: using the state-only sandbox (real LXC guests need root)"
fi

if homelab sandbox status >/dev/null 2>&1; then
  log "a sandbox is already running; reusing it"
else
  homelab sandbox start --backend "$backend"
fi

# peach requires a secret (services/peach/.secrets.example.yaml); the demo provides one.
export PEACH_API_KEY=${PEACH_API_KEY:-demo-api-key}
homelab --env sandbox validate
homelab --env sandbox deploy --all --yes
homelab --env sandbox status
log "stop the sandbox with: bin/homelab sandbox stop"
