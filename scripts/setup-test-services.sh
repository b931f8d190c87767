#!/usr/bin/env bash
# Installs and starts the servers the shared-state and secrets tests talk to,
# all on loopback: a PostgreSQL cluster of its own (Debian's `postgresql`), an
# S3-compatible server (versitygw, built from Go modules, posix backend in a
# temporary folder), and the SOPS tools (`sops` built from Go modules, `age`
# from Debian). Root only; scripts/test.sh runs it as root (CI is root).
#
# Idempotent: when everything runs already it costs a few checks. The Go
# builds happen once per machine, cached under $HOMELAB_CACHE keyed by version
# (as scripts/setup-pulumi.sh caches the Pulumi CLI).
#
# What it started is described in $HOMELAB_TEST_SERVICES_DIR/services.json
# (default /run/homelab-test-services), which test/helpers/services.ts reads.
# Passwords and keys are generated into 0600 files there and never printed.
# `--stop` stops the servers it started (the data and the cache stay).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
# go_step (retries without the checksum database when it is unreachable).
. "$(dirname "$0")/setup-pulumi.sh"

VERSITYGW_VERSION=v1.8.0 # the newest on the Go module proxy that builds with Go 1.26
SOPS_VERSION=v3.13.3
STATE=${HOMELAB_TEST_SERVICES_DIR:-/run/homelab-test-services}
PG_CLUSTER=homelab-test
PG_PORT=${HOMELAB_TEST_PG_PORT:-55432}
PG_ROLE=homelab_test
S3_PORT=${HOMELAB_TEST_S3_PORT:-57070}
S3_REGION=us-east-1

log() { printf '[setup-test-services] %s\n' "$*" >&2; }
die() { printf '[setup-test-services] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts PostgreSQL as its own user)"
command -v apt-get >/dev/null || die "needs a Debian-based host (apt-get)"
mkdir -p /run/lock
exec 8>/run/lock/homelab-setup-test-services.lock
flock 8
mkdir -p "$STATE"
chmod 700 "$STATE"

# close_extra_fds: closes every descriptor above 2 of this (sub)shell, so a
# server started from it holds neither this script's lock nor a pipe of
# whoever runs it (a CI runner waits for those to close).
close_extra_fds() {
  local fd
  for fd in $(ls "/proc/$BASHPID/fd"); do
    [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null || true
  done
}

pg_version() { ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1; }

# --stop: stop what this script started.
if [ "${1:-}" = "--stop" ]; then
  if [ -f "$STATE/versitygw.pid" ]; then
    kill "$(cat "$STATE/versitygw.pid")" 2>/dev/null || true
    rm -f "$STATE/versitygw.pid"
  fi
  v=$(pg_version)
  if [ -n "$v" ] && pg_lsclusters -h 2>/dev/null | awk -v c="$PG_CLUSTER" '$2 == c && $4 == "online"' | grep -q .; then
    pg_ctlcluster "$v" "$PG_CLUSTER" stop
  fi
  rm -f "$STATE/services.json"
  log "stopped"
  exit 0
fi

# --- packages: postgresql, age (their services are not started by apt) ---
PACKAGES=(postgresql age)
missing=()
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # policy-rc.d answering 101 keeps maintainer scripts from starting daemons
  # (Debian's documented way); only ours is removed afterwards.
  policy=/usr/sbin/policy-rc.d ours=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by homelab setup-test-services.sh during apt-get install\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    ours=1
  fi
  rc=0
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null || rc=$?
  [ -z "$ours" ] || rm -f "$policy"
  [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed"
fi

# --- Go tools, built once per version into the cache ---
# go_tool NAME PACKAGE VERSION [LDFLAGS]: prints the cached binary, building it first if needed.
go_tool() {
  local name=$1 pkg=$2 version=$3 ldflags=${4:-} dir bin work
  dir=$HOMELAB_CACHE/$name-$version
  bin=$dir/bin/$name
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null || die "Go is needed to build $name $version ($pkg); install Go >= 1.25"
    log "building $name $version from Go modules with $(go version | cut -d' ' -f3) (once per machine; a few minutes on 2 cores)"
    local start=$SECONDS
    work=$(mktemp -d "${TMPDIR:-/tmp}/homelab-$name-build.XXXXXX")
    # Built into a scratch GOBIN and moved into place once complete, so an
    # interrupted build never looks cached.
    GOBIN=$work CGO_ENABLED=0 go_step go install -trimpath -ldflags "-s -w $ldflags" "$pkg@$version" >&2 ||
      { rm -rf "$work"; die "building $name $version failed (output above)"; }
    mkdir -p "$dir/bin"
    mv -f "$work/$name" "$bin"
    rm -rf "$work"
    log "built $name $version in $((SECONDS - start)) s: $bin"
  fi
  printf '%s\n' "$bin"
}
VERSITYGW=$(go_tool versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION" "-X main.Version=$VERSITYGW_VERSION")
SOPS=$(go_tool sops github.com/getsops/sops/v3/cmd/sops "$SOPS_VERSION")

# secret_file FILE: creates FILE (0600) with 32 random hex characters unless it exists.
secret_file() {
  if [ ! -s "$1" ]; then
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$1.partial" && mv -f "$1.partial" "$1")
    return 0
  fi
  chmod 600 "$1"
  return 1
}

# --- PostgreSQL: a cluster of its own on 127.0.0.1:$PG_PORT ---
PG_V=$(pg_version)
[ -n "$PG_V" ] || die "postgresql is installed but /usr/lib/postgresql is empty"
if ! pg_lsclusters -h | awk -v c="$PG_CLUSTER" '$2 == c' | grep -q .; then
  log "creating PostgreSQL $PG_V cluster $PG_CLUSTER on 127.0.0.1:$PG_PORT"
  pg_createcluster -q "$PG_V" "$PG_CLUSTER" -p "$PG_PORT" --start-conf=manual \
    -- --auth-local=peer --auth-host=scram-sha-256 >/dev/null
fi
# Loopback only; Debian's postgresql.conf includes conf.d/.
conf=/etc/postgresql/$PG_V/$PG_CLUSTER/conf.d/homelab-test.conf
if [ ! -f "$conf" ]; then
  printf "# written by homelab scripts/setup-test-services.sh\nlisten_addresses = '127.0.0.1'\n" > "$conf"
fi
# Without systemd nothing recreates the socket folder after a reboot.
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
if ! pg_lsclusters -h | awk -v c="$PG_CLUSTER" '$2 == c && $4 == "online"' | grep -q .; then
  log "starting PostgreSQL cluster $PG_V/$PG_CLUSTER"
  (close_extra_fds && exec pg_ctlcluster "$PG_V" "$PG_CLUSTER" start </dev/null >/dev/null)
fi
psql_admin() { runuser -u postgres -- psql -X -q -p "$PG_PORT" -v ON_ERROR_STOP=1 "$@"; }
PG_PASSWORD_FILE=$STATE/postgres-password
new_password=0
secret_file "$PG_PASSWORD_FILE" && new_password=1
role_exists=$(psql_admin -tA -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'")
if [ "$role_exists" != 1 ] || [ "$new_password" = 1 ]; then
  log "setting up the PostgreSQL role $PG_ROLE (CREATEDB: the tests make a database each)"
  verb=ALTER
  [ "$role_exists" = 1 ] || verb=CREATE
  # The password goes through stdin, never an argument.
  printf "%s ROLE %s LOGIN CREATEDB PASSWORD '%s';\n" "$verb" "$PG_ROLE" "$(cat "$PG_PASSWORD_FILE")" | psql_admin
fi
if [ "$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$PG_ROLE'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE $PG_ROLE OWNER $PG_ROLE"
fi

# --- versitygw: S3 on 127.0.0.1:$S3_PORT, posix backend in a temporary folder ---
S3_CREDENTIALS_FILE=$STATE/s3-credentials
if [ ! -s "$S3_CREDENTIALS_FILE" ]; then
  (umask 077 && printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
    "homelab$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')" "$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')" > "$S3_CREDENTIALS_FILE")
fi
chmod 600 "$S3_CREDENTIALS_FILE"
s3_running() {
  local pid
  [ -f "$STATE/versitygw.pid" ] || return 1
  pid=$(cat "$STATE/versitygw.pid")
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$VERSITYGW" ] || return 1
  (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null
}
S3_ROOT=$(cat "$STATE/s3-root" 2>/dev/null || true)
if ! s3_running; then
  if [ -z "$S3_ROOT" ] || [ ! -d "$S3_ROOT" ]; then
    S3_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/homelab-test-s3.XXXXXX")
    printf '%s\n' "$S3_ROOT" > "$STATE/s3-root"
  fi
  log "starting versitygw $VERSITYGW_VERSION on 127.0.0.1:$S3_PORT (posix backend in $S3_ROOT)"
  # Credentials reach it through its environment (ROOT_ACCESS_KEY_ID /
  # ROOT_SECRET_ACCESS_KEY), never its arguments, which any user can read.
  (
    close_extra_fds
    set -a
    . "$S3_CREDENTIALS_FILE"
    set +a
    export ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    exec setsid "$VERSITYGW" --port "127.0.0.1:$S3_PORT" --region "$S3_REGION" --quiet posix "$S3_ROOT" \
      </dev/null >>"$STATE/versitygw.log" 2>&1
  ) &
  echo $! > "$STATE/versitygw.pid"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break
    kill -0 "$(cat "$STATE/versitygw.pid")" 2>/dev/null || die "versitygw exited at once; see $STATE/versitygw.log"
    sleep 0.1
  done
  s3_running || die "versitygw does not answer on 127.0.0.1:$S3_PORT; see $STATE/versitygw.log"
fi

AGE=$(command -v age) AGE_KEYGEN=$(command -v age-keygen)
cat > "$STATE/services.json.partial" <<EOF
{
  "postgres": { "host": "127.0.0.1", "port": $PG_PORT, "user": "$PG_ROLE", "database": "$PG_ROLE", "passwordFile": "$PG_PASSWORD_FILE", "version": "$PG_V" },
  "s3": { "endpoint": "127.0.0.1:$S3_PORT", "region": "$S3_REGION", "credentialsFile": "$S3_CREDENTIALS_FILE", "root": "$S3_ROOT", "version": "$VERSITYGW_VERSION" },
  "sops": { "bin": "$SOPS", "version": "$SOPS_VERSION" },
  "age": { "bin": "$AGE", "keygen": "$AGE_KEYGEN" }
}
EOF
chmod 600 "$STATE/services.json.partial"
mv -f "$STATE/services.json.partial" "$STATE/services.json"
log "ready: PostgreSQL 127.0.0.1:$PG_PORT, S3 127.0.0.1:$S3_PORT, sops $SOPS_VERSION, age ($STATE/services.json)"
