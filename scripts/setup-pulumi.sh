#!/usr/bin/env bash
# Makes the pinned Pulumi CLI available and records its path in .homelab/pulumi.
# Order (see docs/pulumi-cli.md): a `pulumi` on PATH or in $PULUMI_HOME/bin at
# or above the pin; the binary cached for this machine; a build from Go modules
# (once per machine); last, PulumiCommand.install() from @pulumi/pulumi, which
# downloads. Idempotent: once cached, a run costs one `pulumi version`.
# Sourcing it defines the helpers without running anything (for tests).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The CLI otherwise phones home on each run; tests and CI must stay local.
export PULUMI_SKIP_UPDATE_CHECK=true

PULUMI_PIN_FILE=$HOMELAB_ROOT/scripts/pulumi-version
PULUMI_PIN=$(grep -v '^[[:space:]]*\(#\|$\)' "$PULUMI_PIN_FILE" | head -n 1 | tr -d '[:space:]') || true
PULUMI_PIN=${PULUMI_PIN#v}
[[ $PULUMI_PIN =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
  die "$PULUMI_PIN_FILE must hold one version like 3.274.1 (found '${PULUMI_PIN}'); fix that file"
PULUMI_CACHE_DIR=$HOMELAB_CACHE/pulumi-v$PULUMI_PIN
PULUMI_PKG=github.com/pulumi/pulumi/pkg/v3
PULUMI_SDK=github.com/pulumi/pulumi/sdk/v3

# pulumi_version BIN: prints BIN's version without the leading "v".
pulumi_version() {
  local out
  out=$(timeout 60 "$1" version 2>/dev/null) || return 1
  out=${out%%$'\n'*}
  out=${out#v}
  [ -n "$out" ] || return 1
  printf '%s\n' "$out"
}

# version_ok V: true when V has the pin's major version and is at or above the
# pin. A prerelease of the pinned version itself is below it (semver).
version_ok() {
  local v=$1 core=${1%%[-+]*}
  [[ $core =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || return 1
  [ "${core%%.*}" = "${PULUMI_PIN%%.*}" ] || return 1
  if [ "$core" = "$PULUMI_PIN" ]; then
    [ "$v" = "$core" ] || [ "${v:${#core}:1}" = "+" ]
    return
  fi
  [ "$(printf '%s\n%s\n' "$PULUMI_PIN" "$core" | sort -V | head -n 1)" = "$PULUMI_PIN" ]
}

# try_cli BIN WHERE: records BIN and succeeds when it is a usable CLI.
try_cli() {
  local bin=$1 where=$2 v
  [ -x "$bin" ] || return 1
  if ! v=$(pulumi_version "$bin"); then
    log "ignoring the pulumi at $bin ($where): \`pulumi version\` failed"
    return 1
  fi
  if ! version_ok "$v"; then
    log "ignoring the pulumi at $bin ($where): v$v, need v${PULUMI_PIN%%.*}.x >= v$PULUMI_PIN"
    return 1
  fi
  mkdir -p "$HOMELAB_ROOT/.homelab"
  printf '%s\n' "$bin" > "$HOMELAB_ROOT/.homelab/pulumi"
  log "pulumi v$v ($where): $bin"
}

# go_step CMD...: runs a go command; when it fails because the checksum
# database is unreachable, retries it (and every later step) with GOSUMDB=off,
# which this build accepts rather than giving up. Stdout passes through; the
# chatter on stderr (go: downloading ...) is shown only when the step fails.
go_step() {
  local out err rc=0
  out=$(mktemp) err=$(mktemp)
  "$@" >"$out" 2>"$err" || rc=$?
  cat "$out"
  [ "$rc" -eq 0 ] || cat "$err" >&2
  if [ "$rc" -ne 0 ] && [ "${GOSUMDB:-}" != off ] &&
    grep -qE 'sum\.golang\.org|checksum database|verifying .*(lookup|dial|connect)' "$out" "$err"; then
    log "the Go checksum database is unreachable; continuing this build with GOSUMDB=off"
    export GOSUMDB=off
    rc=0
    "$@" || rc=$?
  fi
  rm -f "$out" "$err"
  return "$rc"
}

# consumer_replaces GOMOD: prints, as OLD=NEW for `go mod edit -replace`, the
# replace directives of GOMOD that point at another module. Those pointing at
# a folder (../sdk) only matter inside Pulumi's own repository.
consumer_replaces() {
  awk '
    function emit(line,   parts, lhs, rhs, n, l, r) {
      sub(/\/\/.*/, "", line)
      if (split(line, parts, "=>") != 2) return
      n = split(parts[1], l, " "); lhs = l[1] (n > 1 ? "@" l[2] : "")
      n = split(parts[2], r, " "); rhs = r[1] (n > 1 ? "@" r[2] : "")
      if (rhs ~ /^(\.|\/)/) return
      print lhs "=" rhs
    }
    /^replace[ \t]*\(/ { inblock = 1; next }
    inblock && /^\)/ { inblock = 0; next }
    inblock { emit($0); next }
    /^replace[ \t]/ { sub(/^replace[ \t]+/, ""); emit($0) }
  ' "$1"
}

# build_pulumi: builds the pinned CLI from Go modules into the cache, through a
# throwaway wrapper module (`go install` refuses modules with replace directives).
build_pulumi() {
  local v=v$PULUMI_PIN out=$PULUMI_CACHE_DIR/bin/pulumi work gomod r
  work=$(mktemp -d "${TMPDIR:-/tmp}/homelab-pulumi-build.XXXXXX")
  # shellcheck disable=SC2064 # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  log "building pulumi $v from Go modules with $(go version | cut -d' ' -f3) (once per machine; several minutes on 2 cores)"
  local start=$SECONDS
  # A subshell tested by || ignores set -e, hence the explicit exits.
  (
    cd "$work" || exit 1
    go mod init local/pulumi-build >/dev/null 2>&1 || exit 1
    log "  downloading modules through $(go env GOPROXY)"
    gomod=$(go_step go mod download -json "$PULUMI_PKG@$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
    [ -f "$gomod" ] || die "could not download $PULUMI_PKG@$v through the Go module proxy ($(go env GOPROXY)); check the proxy, then rerun scripts/setup.sh"
    while read -r r; do
      [ -n "$r" ] || continue
      log "  replace $r (from $PULUMI_PKG@$v's go.mod)"
      go mod edit -replace="$r" || exit 1
    done < <(consumer_replaces "$gomod")
    go_step go get "$PULUMI_PKG@$v" "$PULUMI_SDK@$v" || exit 1
    go_step go get -tool "$PULUMI_PKG/cmd/pulumi@$v" || exit 1
    go_step go mod tidy || exit 1
    log "  compiling (the long part)"
    mkdir -p "$PULUMI_CACHE_DIR/bin" || exit 1
    # -X sets the version `pulumi version` prints: without it the output is
    # empty and the Automation API refuses the CLI.
    CGO_ENABLED=0 go_step go build -trimpath -tags osusergo,grpcnotrace \
      -ldflags "-s -w -X $PULUMI_SDK/go/common/version.Version=$v" \
      -o "$out.partial" "$PULUMI_PKG/cmd/pulumi" || exit 1
  ) || die "building pulumi $v failed (output above); fix the cause and rerun scripts/setup.sh, or put a pulumi >= $v on PATH"
  # Renamed only once complete, so an interrupted build never looks cached.
  mv -f "$out.partial" "$out"
  rm -rf "$work"
  trap - EXIT
  log "built pulumi $v in $((SECONDS - start)) s: $out"
}

# install_pulumi: last resort, downloads the pinned CLI with the Automation API.
install_pulumi() {
  local node=${HOMELAB_NODE:-node}
  [ -f node_modules/@pulumi/pulumi/package.json ] ||
    die "no pulumi >= v$PULUMI_PIN found, no Go to build one, and @pulumi/pulumi is not installed to download one: install Go (>= 1.24) or a pulumi >= v$PULUMI_PIN on PATH, then rerun scripts/setup.sh"
  log "downloading pulumi v$PULUMI_PIN with PulumiCommand.install() into $PULUMI_CACHE_DIR"
  "$node" -e '
    const { PulumiCommand } = require("@pulumi/pulumi/automation");
    const { SemVer } = require("semver");
    PulumiCommand.install({ version: new SemVer(process.argv[1]), root: process.argv[2] })
      .then((cmd) => console.log(cmd.command), (err) => { console.error(String(err)); process.exit(1); });
  ' "$PULUMI_PIN" "$PULUMI_CACHE_DIR" >/dev/null ||
    die "downloading pulumi v$PULUMI_PIN failed (output above); install a pulumi >= v$PULUMI_PIN on PATH or install Go, then rerun scripts/setup.sh"
}

# warn_if_sdk_newer: the CLI pin should not lag the npm SDK the project installs.
warn_if_sdk_newer() {
  local f=node_modules/@pulumi/pulumi/package.json sdk
  [ -f "$f" ] || return 0
  sdk=$(sed -n 's/^[[:space:]]*"version": "\([^"]*\)".*/\1/p' "$f" | head -n 1)
  [ -n "$sdk" ] || return 0
  if [ "$(printf '%s\n%s\n' "$PULUMI_PIN" "$sdk" | sort -V | tail -n 1)" != "$PULUMI_PIN" ]; then
    log "warning: @pulumi/pulumi is $sdk but the CLI pin is $PULUMI_PIN; raise the pin in scripts/pulumi-version"
  fi
}

main() {
  cd "$HOMELAB_ROOT"
  warn_if_sdk_newer

  on_path=$(command -v pulumi || true)
  if [ -n "$on_path" ] && try_cli "$on_path" "on PATH"; then exit 0; fi
  home_bin=${PULUMI_HOME:-$HOME/.pulumi}/bin/pulumi
  if [ "$home_bin" != "$on_path" ] && try_cli "$home_bin" "in \$PULUMI_HOME/bin"; then exit 0; fi
  if try_cli "$PULUMI_CACHE_DIR/bin/pulumi" "cached"; then exit 0; fi

  mkdir -p "$HOMELAB_CACHE"
  # One build at a time per machine; a waiting run then finds the cached binary.
  if command -v flock >/dev/null; then
    exec 9> "$PULUMI_CACHE_DIR.lock"
    if ! flock -n 9; then
      log "another setup is getting pulumi v$PULUMI_PIN; waiting for it"
      flock 9
    fi
    if try_cli "$PULUMI_CACHE_DIR/bin/pulumi" "cached"; then exit 0; fi
  fi

  if command -v go >/dev/null; then
    build_pulumi
    try_cli "$PULUMI_CACHE_DIR/bin/pulumi" "built" ||
      die "the pulumi built into $PULUMI_CACHE_DIR/bin does not report v$PULUMI_PIN; delete $PULUMI_CACHE_DIR and rerun scripts/setup.sh"
    exit 0
  fi

  install_pulumi
  try_cli "$PULUMI_CACHE_DIR/bin/pulumi" "downloaded" ||
    die "the downloaded pulumi in $PULUMI_CACHE_DIR/bin does not report v$PULUMI_PIN; delete $PULUMI_CACHE_DIR and rerun scripts/setup.sh"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
