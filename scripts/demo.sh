#!/usr/bin/env bash
# The demo: set-up, start the sandbox (real LXC guests when this machine can,
# state-only otherwise, and it says which), validate the example services,
# deploy one (hello: an image built here, Docker Compose in a real container)
# and print where it answers; with state-only guests, deploy them all.
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

if [ "$backend" = lxc ]; then
  # Real guests run what they are given, and they are offline but for Debian's
  # archive (through the sandbox's package cache): peach and librechat pull
  # their images from Docker Hub, so the demo deploys hello, whose image is
  # built here FROM scratch around Debian's static busybox.
  web=services/hello/docker/web
  if [ ! -x "$web/busybox" ]; then
    cp /bin/busybox "$web/busybox"
    log "copied Debian's static /bin/busybox into $web (git-ignored)"
  fi
  homelab --env sandbox deploy hello --yes
  homelab --env sandbox status
  address=$(homelab --env sandbox status hello --json | "$HOMELAB_NODE" -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const svc = JSON.parse(s).services.find((x) => x.service === "hello");
      const c = svc && svc.resources.find((r) => r.type === "homelab:proxmox:Container");
      process.stdout.write((c && c.address) || "");
    });')
  [ -n "$address" ] || die "hello has no address after the deploy (see homelab --env sandbox status)"
  body=$("$HOMELAB_NODE" -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(10000) }).then((r) => r.text()).then((t) => process.stdout.write(t), () => {})' "http://$address/")
  if printf '%s' "$body" | grep -q "Hello from homelab"; then
    log "hello answers at http://$address/ (from this machine): $(printf '%s' "$body" | grep -o '<h1>[^<]*</h1>' | sed 's/<[^>]*>//g')"
  else
    die "hello does not answer at http://$address/ yet; look with: bin/homelab --env sandbox status"
  fi
else
  # State-only guests: containers are created and placed, nothing runs in them.
  homelab --env sandbox deploy --all --yes
  homelab --env sandbox status
fi
log "stop the sandbox with: bin/homelab sandbox stop"
