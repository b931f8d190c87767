#!/usr/bin/env bash
# Makes this machine able to run the sandbox's `lxc` backend: LXC, debootstrap,
# lxcfs, iptables, Docker, an image registry and a package cache.
# Root only. Idempotent; when everything is installed it returns at once.
#
# It never leaves the packages' own services running: the backend starts the
# registry and the package cache itself, on its bridge address, and stops them
# on close. Nothing here needs systemd as PID 1.
set -euo pipefail

log() { printf '[setup-sandbox-host] %s\n' "$*" >&2; }
die() { printf '[setup-sandbox-host] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages)"
command -v apt-get >/dev/null || die "needs a Debian-based host (apt-get)"

# One run at a time (tests may call this in parallel); apt waits for dpkg's
# own lock too, in case something else is installing.
mkdir -p /run/lock
exec 9>/run/lock/homelab-setup-sandbox-host.lock
flock 9
APT_WAIT=(-o DPkg::Lock::Timeout=600)

PACKAGES=(lxc debootstrap zstd lxcfs iproute2 iptables openssh-client
  docker-registry apt-cacher-ng docker.io
  busybox-static) # busybox-static: a static binary for test images built FROM scratch

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

# Services the packages would start (or have started on an earlier install)
# and that would fight the backend for its addresses, bridges or ports.
# lxc-net would make its own lxcbr0 bridge with a dnsmasq on it.
stop_package_services() {
  local svc
  for svc in lxc-net lxc apt-cacher-ng docker-registry docker lxcfs; do
    if [ -x "/etc/init.d/$svc" ]; then
      "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
  done
}

disable_lxc_net() {
  # Keep lxc-net from ever making lxcbr0: the backend owns its bridge.
  if [ -f /etc/default/lxc-net ] && ! grep -q '^USE_LXC_BRIDGE="false"' /etc/default/lxc-net; then
    sed -i 's/^USE_LXC_BRIDGE=.*/USE_LXC_BRIDGE="false"/' /etc/default/lxc-net
    grep -q '^USE_LXC_BRIDGE=' /etc/default/lxc-net || echo 'USE_LXC_BRIDGE="false"' >> /etc/default/lxc-net
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  disable_lxc_net
  log "already set up"
  exit 0
fi

log "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get "${APT_WAIT[@]}" update -qq

for p in "${missing[@]}"; do
  candidate=$(apt-cache policy "$p" | awk '/Candidate:/ {print $2}')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    die "package $p has no install candidate in this machine's apt sources"
  fi
done

# policy-rc.d answering 101 is Debian's documented way to keep maintainer
# scripts from starting daemons. Only ours is removed afterwards.
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by homelab setup-sandbox-host.sh during apt-get install\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  ours=1
fi
cleanup() { if [ -n "$ours" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

# apt-cacher-ng asks whether to allow HTTPS tunnels; the default (no) is right.
echo 'apt-cacher-ng apt-cacher-ng/tunnelenable boolean false' | debconf-set-selections
apt-get "${APT_WAIT[@]}" install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${missing[@]}" >/dev/null

disable_lxc_net
stop_package_services
log "done"
