#!/usr/bin/env bash
# Headless Chromium from Debian's packages, for the status page's browser
# test and benchmark (driven by playwright-core from the npm registry; never
# a browser download). Root only. Idempotent: returns at once when installed.
set -euo pipefail

log() { printf '[setup-browser] %s\n' "$*" >&2; }
die() { printf '[setup-browser] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages)"
command -v apt-get >/dev/null || die "needs a Debian-based host (apt-get)"

# fonts-dejavu-core: text must render in screenshots on a machine without desktop fonts.
PACKAGES=(chromium fonts-dejavu-core)
missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  log "already set up"
  exit 0
fi

mkdir -p /run/lock
exec 9>/run/lock/homelab-setup-browser.lock
flock 9
log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
/usr/bin/chromium --version >/dev/null || die "chromium was installed but does not start"
log "done"
