#!/usr/bin/env bash
# Starts ClawLoops on this machine: installs what is missing, starts Docker, builds the OpenClaw
# runtime image locally (once), builds ClawLoops (release), starts the embedded PostgreSQL, the
# entry proxy (Traefik) and the server, and prints the address. Stop it with Ctrl-C (or SIGTERM).
# Data lives in CLAWLOOPS_DATA_DIR (default ./data, or /var/lib/clawloops when run as root).
# `scripts/test.sh` runs this very script in a fresh data directory and signs in through it.
#
#   scripts/start.sh [--replicas N]
#
# With --replicas N (N > 1), N control-plane processes share the database, the installation
# key and the data directory, listening on consecutive ports; Traefik load-balances them and
# stops sending requests to one whose /readyz fails (docs/operations.md#several-replicas).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

REPLICAS=1
while [ $# -gt 0 ]; do
  case $1 in
    --replicas) REPLICAS=${2:-}; shift 2 || die "--replicas needs a number" ;;
    --replicas=*) REPLICAS=${1#*=}; shift ;;
    *) die "unknown argument: $1 (usage: scripts/start.sh [--replicas N])" ;;
  esac
done
case $REPLICAS in
  [1-9] | [1-3][0-9]) ;;
  *) die "--replicas takes a number from 1 to 39, not '$REPLICAS'" ;;
esac

ensure_tools
ensure_docker
ensure_images openclaw
ensure_images traefik
build_release

BIN=$RELEASE_BIN
export CLAWLOOPS_SITE_ROOT=${CLAWLOOPS_SITE_ROOT:-$ROOT/target/site}
# The same default as `clawloops serve`: /var/lib/clawloops as root, ./data otherwise.
if [ "$(id -u)" = 0 ]; then DATA=${CLAWLOOPS_DATA_DIR:-/var/lib/clawloops}; else DATA=${CLAWLOOPS_DATA_DIR:-$ROOT/data}; fi
export CLAWLOOPS_DATA_DIR=$DATA
# Browsers reach everything through Traefik (in its own container) on HTTP_PORT: the control
# plane at clawloops.localhost, each workspace at <name>.clawloops.localhost. The control plane
# listens on the Docker host's bridge address, where the proxy reaches it; runtimes cannot (the
# runtime firewall refuses them every address of this host).
HOST_IP=$(docker_host_ip "$BIN")
HTTP_PUBLISH=${CLAWLOOPS_HTTP_PUBLISH:-127.0.0.1:8080}
HTTP_PORT=${HTTP_PUBLISH##*:}
export CLAWLOOPS_WORKSPACE_DOMAIN=${CLAWLOOPS_WORKSPACE_DOMAIN:-clawloops.localhost}
export CLAWLOOPS_PUBLIC_URL=${CLAWLOOPS_PUBLIC_URL:-http://$CLAWLOOPS_WORKSPACE_DOMAIN:$HTTP_PORT/}
export CLAWLOOPS_LISTEN_ADDR=${CLAWLOOPS_LISTEN_ADDR:-$HOST_IP:3000}
export CLAWLOOPS_TRUSTED_PROXIES=${CLAWLOOPS_TRUSTED_PROXIES:-[\"$HOST_IP/16\"]}
export CLAWLOOPS_ENTRY_PROXY_CONTAINER=${CLAWLOOPS_ENTRY_PROXY_CONTAINER:-clawloops-entry}
LISTEN=$CLAWLOOPS_LISTEN_ADDR
PUBLIC_HOST=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).hostname)' "$CLAWLOOPS_PUBLIC_URL")
# Replica i listens on the first one's port + i.
BASE_PORT=${LISTEN##*:}
PORTS=$BASE_PORT
for ((i = 1; i < REPLICAS; i++)); do PORTS+=",$((BASE_PORT + i))"; done
servers=()
db_started=""

step "Starting the entry proxy (Traefik) on $HTTP_PUBLISH"
start_entry_proxy "$CLAWLOOPS_ENTRY_PROXY_CONTAINER" "$HTTP_PUBLISH" "$PORTS" "$PUBLIC_HOST" "$DATA/traefik"

# On Ctrl-C the whole process group gets SIGINT; a server may already be gone (and its exit
# status must not end this script before the proxy is removed).
stop_all() {
  local pid
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  docker rm -f "$CLAWLOOPS_ENTRY_PROXY_CONTAINER" >/dev/null 2>&1 || true
  [ -z "$db_started" ] || "$BIN" db down >/dev/null 2>&1 || true
}
trap 'stop_all; exit 130' INT TERM
if [ "$REPLICAS" -gt 1 ] && [ -z "${CLAWLOOPS_DATABASE_URL:-}" ]; then
  # One database for every replica: the embedded one, started here rather than by a replica.
  step "Starting the embedded PostgreSQL for $REPLICAS replicas"
  CLAWLOOPS_DATABASE_URL=$("$BIN" db up)
  export CLAWLOOPS_DATABASE_URL
  db_started=1
fi
for ((i = 0; i < REPLICAS; i++)); do
  port=$((BASE_PORT + i))
  if [ "$REPLICAS" -gt 1 ]; then step "Starting ClawLoops (replica $((i + 1)) of $REPLICAS, port $port)"; else step "Starting ClawLoops"; fi
  CLAWLOOPS_LISTEN_ADDR=${LISTEN%:*}:$port "$BIN" serve &
  servers+=($!)
  # The first replica makes the installation (migrations, key, first admin) before the others.
  if ! wait_for_url "http://${LISTEN%:*}:$port/readyz" 120; then
    stop_all
    die "ClawLoops did not become ready; see the messages above"
  fi
done
if ! wait_for_url "${CLAWLOOPS_PUBLIC_URL%/}/readyz" 30; then
  stop_all
  die "the entry proxy does not reach ClawLoops; see: docker logs $CLAWLOOPS_ENTRY_PROXY_CONTAINER"
fi
print_timings
URL=$CLAWLOOPS_PUBLIC_URL
printf '\n\033[1mClawLoops is running at %s\033[0m  (Ctrl-C to stop)\n\n' "$URL"
# `|| true`: a failing `wait` would end the script (set -e) before the INT trap runs.
wait "${servers[0]}" || true
stop_all
