#!/usr/bin/env bash
# Runs every test: formatting, the dashboard bundle's size budget, README command 1
# (scripts/start.sh) for real, the sqlx query data check, lints (server and WASM), the Rust tests
# against a real PostgreSQL (its own throwaway cluster), Docker and Traefik, a bounded fuzzing
# run of every fuzz target (scripts/fuzz.sh), and the Playwright suite in Debian's Chromium
# against the real server. Installs what is missing first.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

ensure_tools
ensure_sqlx_cli
ensure_leptosfmt
ensure_docker
ensure_litellm
# `docker compose config` for the compose test: Debian 12 has no Compose v2 package, so its
# docker-compose 1.29 (same schema check) is used when the plugin is absent.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  step "Installing docker-compose (Debian) for the compose file check"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose
fi

step "Formatting: cargo fmt --check (rustfmt.toml), leptosfmt --check (leptosfmt.toml)"
cargo fmt --all --check
leptosfmt --quiet --check app/src frontend/src

ensure_images all
# One release build serves README command 1 (checked below), the browser tests and the bundle
# size report; the Rust tests build their own test profile.
build_release
BIN=$RELEASE_BIN

# Everything this run creates lives here and is removed at the end.
WORK=$(mktemp -d /tmp/clawloops-test.XXXXXX)
chmod 711 "$WORK" # as root, PostgreSQL runs as `postgres`, which must traverse this directory
export CLAWLOOPS_DATA_DIR="$WORK/data"
server=""
entry=""
litellm=""
oidc=""
start_pid=""
swarm_dir=""
cleanup() {
  # README command 1, if its check stopped half-way: its whole process group.
  [ -z "$start_pid" ] || kill -INT -- "-$start_pid" 2>/dev/null || true
  # The runtimes the browser tests started (labelled with this run's installation id). psql
  # does not know sqlx's extra URL parameters, hence the URL without its query.
  local instance=""
  if [ -n "${DATABASE_URL:-}" ]; then
    instance=$(psql "${DATABASE_URL%%\?*}" -Atc 'SELECT id FROM instance' 2>/dev/null || true)
  fi
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  [ -z "${entry:-}" ] || docker rm -f "$entry" >/dev/null 2>&1 || true
  [ -z "$litellm" ] || { kill -TERM "$litellm" 2>/dev/null; wait "$litellm" 2>/dev/null || true; }
  [ -z "$oidc" ] || { kill -TERM "$oidc" 2>/dev/null; wait "$oidc" 2>/dev/null || true; }
  if [ -n "$instance" ]; then
    local filter="label=org.clawloops.instance=$instance"
    docker ps -aq --filter "$filter" | xargs -r docker rm -f >/dev/null 2>&1 || true
    docker network ls -q --filter "$filter" | xargs -r docker network rm >/dev/null 2>&1 || true
    docker volume ls -q --filter "$filter" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
  fi
  "$BIN" db down >/dev/null 2>&1 || true
  [ -z "$swarm_dir" ] || "$ROOT/scripts/swarm.sh" down "$swarm_dir" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A log file without its colours.
plain() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }

# README command 1, for real: scripts/start.sh in a fresh data directory (its own PostgreSQL,
# Traefik and server), the seeded admin signs in through Traefik with the one-time password it
# printed, then Ctrl-C stops everything it started.
check_start_command() {
  local port cp_port log="$WORK/start.log" proxy="clawloops-start-check-$$" url="" i
  port=$(free_port)
  cp_port=$(free_port)
  : >"$log"
  # Its own process group (set -m), so that Ctrl-C reaches it as it would from a terminal.
  set -m
  CLAWLOOPS_DATA_DIR="$WORK/start-data" CLAWLOOPS_HTTP_PUBLISH="127.0.0.1:$port" \
    CLAWLOOPS_LISTEN_ADDR="$(docker_host_ip "$BIN"):$cp_port" CLAWLOOPS_ENTRY_PROXY_CONTAINER="$proxy" \
    scripts/start.sh >"$log" 2>&1 &
  start_pid=$!
  set +m
  for ((i = 0; i < 600; i++)); do
    url=$(plain "$log" | sed -n 's/.*ClawLoops is running at \(http[^ ]*\).*/\1/p' | head -1)
    [ -n "$url" ] && break
    kill -0 "$start_pid" 2>/dev/null || { cat "$log"; die "scripts/start.sh stopped before printing its address"; }
    sleep 1
  done
  [ -n "$url" ] || { cat "$log"; die "scripts/start.sh printed no address within 10 minutes"; }
  local password
  password=$(plain "$log" | sed -n 's/.*One-time password (shown only now[^)]*): \([^ ]*\).*/\1/p' | head -1)
  [ -n "$password" ] || { cat "$log"; die "scripts/start.sh printed no one-time admin password"; }
  local jar="$WORK/start-cookies" answer
  answer=$(curl -sS -c "$jar" -w ' %{http_code}' -H "Origin: ${url%/}" \
    --data-urlencode username=admin --data-urlencode "password=$password" "${url}api/auth/login")
  [[ "$answer" == *' 200' ]] || { cat "$log"; die "the seeded admin could not sign in through Traefik: $answer"; }
  answer=$(curl -sS -b "$jar" -w ' %{http_code}' -H "Origin: ${url%/}" -X POST "${url}api/auth/me")
  [[ "$answer" == *'"username":"admin"'* && "$answer" == *' 200' ]] ||
    die "signed in, yet the session is not the admin's: $answer"
  echo "README command 1: $url answered through Traefik; admin signed in with the one-time password"
  plain "$log" | sed -n '/Time taken/,/total/p'

  kill -INT -- "-$start_pid"
  for ((i = 0; i < 60; i++)); do
    kill -0 "$start_pid" 2>/dev/null || break
    sleep 0.5
  done
  ! kill -0 "$start_pid" 2>/dev/null || die "scripts/start.sh did not stop on Ctrl-C"
  start_pid=""
  [ -z "$(docker ps -aq --filter "name=^$proxy\$")" ] || die "Ctrl-C left the entry proxy container $proxy"
  ! pgrep -f "$WORK/start-data/postgres" >/dev/null || die "Ctrl-C left the embedded PostgreSQL running"
  ! curl -s -o /dev/null "$url" || die "something still answers at $url after Ctrl-C"
  echo "README command 1: Ctrl-C stopped the server, its PostgreSQL and the entry proxy"
}
step "Dashboard bundle: what a signed-in user downloads first, at most 500 KB gzipped"
scripts/bundle-size.sh --max-gz 500000 | tee "$WORK/bundle.log"

step "README command 1 (scripts/start.sh) in a fresh data directory, through Traefik"
check_start_command

step "Starting a private PostgreSQL for the tests"
DATABASE_URL=$("$BIN" db up)
export DATABASE_URL
"$BIN" migrate

step "Checking that the committed sqlx query data (.sqlx/) matches the queries"
cargo sqlx prepare --workspace --check -- -p app -p server -p clawloops-orchestrator -p clawloops-models --all-targets --features app/ssr

step "Lints: cargo clippy (server side, then the browser build)"
cargo clippy -p app -p server -p runtime-stub -p clawloops-driver -p clawloops-orchestrator -p clawloops-models -p clawloops-wire -p clawloops-testkit -p clawloops-bench --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

# A real three-node Docker Swarm for the Swarm driver's tests (daemons in network namespaces, a
# local registry; docs/swarm.md), removed at the end.
step "Bringing up a three-node Docker Swarm for the Swarm tests (scripts/swarm.sh)"
export CLAWLOOPS_TEST_SWARM_DIR="$WORK/swarm"
swarm_dir=$CLAWLOOPS_TEST_SWARM_DIR
"$ROOT/scripts/swarm.sh" up "$swarm_dir"

step "Rust tests (cargo nextest: each test in its own process; see .config/nextest.toml)"
cargo nextest run -p app -p server -p clawloops-driver -p clawloops-orchestrator -p clawloops-models -p clawloops-wire 2>&1 | tee "$WORK/cargo-test.log"

# The parsers that read what clients and upstreams send, fuzzed for a bounded time each
# (docs/security.md); a crash fails the run.
"$ROOT/scripts/fuzz.sh"

step "Browser tests (Playwright, Chromium), through the entry proxy (Traefik)"
PORT=$(free_port)
HTTP_PORT=$(free_port)
HOST_IP=$(docker_host_ip "$BIN")
entry="clawloops-e2e-entry-$$"
start_entry_proxy "$entry" "127.0.0.1:$HTTP_PORT" "$PORT" clawloops.localhost "$WORK/traefik"
BASE_URL="http://clawloops.localhost:$HTTP_PORT"
# A real OpenID provider (oidc-provider) with the browser tests' people, as "Corp ID".
node end2end/oidc/provider.mjs end2end/oidc/people.json >"$WORK/oidc.out" 2>"$WORK/oidc.log" &
oidc=$!
for _ in $(seq 1 100); do [ -s "$WORK/oidc.out" ] && break; sleep 0.1; done
ISSUER=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["issuer"])' "$WORK/oidc.out") ||
  { cat "$WORK/oidc.log"; die "the OpenID provider did not start"; }
SSO_CLIENT_SECRET="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
curl -fsS -X POST -H 'content-type: application/json' "$ISSUER/__test/client" \
  -d "{\"client_id\":\"clawloops\",\"client_secret\":\"$SSO_CLIENT_SECRET\",\"redirect_uris\":[\"$BASE_URL/auth/sso/corp/callback\"]}" >/dev/null
export SSO_CLIENT_SECRET
printf '%s\n' "$SSO_CLIENT_SECRET" >"$WORK/sso-client-secret"
CLAWLOOPS_SSO_PROVIDERS="[{id=\"corp\",name=\"Corp ID\",issuer=\"$ISSUER\",client_id=\"clawloops\",client_secret_file=\"$WORK/sso-client-secret\",admission=\"open\",allowed_domains=[\"example.com\"],allowed_groups=[\"staff\"],admin_groups=[\"platform-admins\"],scopes=[\"openid\",\"email\",\"profile\",\"groups\"]}]" \
CLAWLOOPS_LISTEN_ADDR="$HOST_IP:$PORT" CLAWLOOPS_SITE_ROOT="$ROOT/target/site" \
  CLAWLOOPS_PUBLIC_URL="$BASE_URL/" CLAWLOOPS_WORKSPACE_DOMAIN=clawloops.localhost \
  CLAWLOOPS_TRUSTED_PROXIES="[\"$HOST_IP/16\"]" CLAWLOOPS_ENTRY_PROXY_CONTAINER="$entry" \
  CLAWLOOPS_RUNTIME_DISK_CHECK_SECS=5 "$BIN" serve >"$WORK/server.log" 2>&1 &
server=$!
if ! wait_for_url "$BASE_URL/readyz" 60; then
  cat "$WORK/server.log"
  docker logs "$entry" 2>&1 | tail -20
  die "the server did not become ready behind the entry proxy"
fi
# LiteLLM with the deployment's own config (its `mock` model answers without a provider), as the
# upstream the browser tests register.
LITELLM_PORT=$(free_port)
LITELLM_KEY="sk-e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
env -u DATABASE_URL LITELLM_MASTER_KEY="$LITELLM_KEY" LITELLM_LOCAL_MODEL_COST_MAP=True OLLAMA_BASE_URL=http://127.0.0.1:9 \
  "$LITELLM_BIN" --config "$ROOT/deploy/litellm/config.yaml" --host 127.0.0.1 --port "$LITELLM_PORT" \
  >"$WORK/litellm.log" 2>&1 &
litellm=$!
if ! wait_for_url "http://127.0.0.1:$LITELLM_PORT/health/liveliness" 120; then
  tail -30 "$WORK/litellm.log"
  die "LiteLLM did not start"
fi
(cd end2end && BASE_URL="$BASE_URL" SERVER_LOG="$WORK/server.log" \
  LITELLM_URL="http://127.0.0.1:$LITELLM_PORT/v1" LITELLM_KEY="$LITELLM_KEY" npx playwright test) 2>&1 | tee "$WORK/playwright.log"

step "Summary"
grep -E '^ +Summary \[' "$WORK/cargo-test.log" | sed 's/^ *Summary/rust tests:/'
grep -E '^\s+[0-9]+ (passed|failed|flaky|skipped)' "$WORK/playwright.log" | sed 's/^ */playwright: /'
grep -E '^first load, total' "$WORK/bundle.log" | sed 's/^/dashboard bundle, /'
print_timings
