#!/usr/bin/env bash
# Starts ClawLoops on this machine: installs what is missing, starts Docker, builds the OpenClaw
# runtime image locally (once), builds ClawLoops (release), starts the embedded PostgreSQL and
# serves on http://127.0.0.1:3000 (CLAWLOOPS_LISTEN_ADDR to change).
# Stop it with Ctrl-C. Data lives in CLAWLOOPS_DATA_DIR (default ./data, or
# /var/lib/clawloops when run as root).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

ensure_tools
ensure_docker

step "Runtime image (built locally once; see scripts/build-images.sh)"
scripts/build-images.sh openclaw

step "Building ClawLoops (release)"
cargo leptos build --release

BIN="$CARGO_TARGET_DIR/release/clawloops"
export CLAWLOOPS_SITE_ROOT=${CLAWLOOPS_SITE_ROOT:-$ROOT/target/site}
LISTEN=${CLAWLOOPS_LISTEN_ADDR:-127.0.0.1:3000}

step "Starting ClawLoops"
"$BIN" serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' INT TERM
if ! wait_for_url "http://$LISTEN/readyz" 120; then
  kill -TERM $server 2>/dev/null || true
  wait $server || true
  die "ClawLoops did not become ready; see the messages above"
fi
URL=${CLAWLOOPS_PUBLIC_URL:-http://$LISTEN}
printf '\n\033[1mClawLoops is running at %s\033[0m  (Ctrl-C to stop)\n\n' "$URL"
wait $server
