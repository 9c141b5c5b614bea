# Shared by scripts/start.sh and scripts/test.sh: install what is missing, nothing more.
# Every step checks first, so a second run on the same machine costs seconds.
# shellcheck shell=bash

CARGO_LEPTOS_VERSION=0.3.10 # 0.3.11 needs rustc 1.96; 0.3.10 builds Leptos 0.8 on stable 1.95
SQLX_CLI_VERSION=0.8.6      # same as the sqlx in Cargo.lock
CARGO_NEXTEST_VERSION=0.9.143 # the version this project's machines come with
CARGO_FUZZ_VERSION=0.13.2     # libFuzzer driver for fuzz/ (scripts/fuzz.sh)
LEPTOSFMT_VERSION=0.1.33      # formats the view! macros (leptosfmt.toml); checked by scripts/test.sh

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
# Builds are shared by every clone on this machine; a second clone starts warm.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/clawloops-target}

# Each step shows the time since the script started, so slow steps are easy to spot.
step() { printf '\n\033[1m==> [%02d:%02d] %s\033[0m\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# The long steps of a first run say what they cost on a 2-core machine beforehand and are timed;
# print_timings lists them with the total at the end.
TIMINGS=()
#   timed "what" "first-run estimate" command...
timed() {
  local what=$1 estimate=$2 start=$SECONDS
  shift 2
  step "$what (on 2 cores the first time: about $estimate)"
  "$@"
  TIMINGS+=("$(printf '%-64s %3dm%02ds' "$what" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)))")
}
print_timings() {
  step "Time taken"
  local line
  for line in "${TIMINGS[@]}"; do printf '  %s\n' "$line"; done
  printf '  %-64s %3dm%02ds\n' "total" $((SECONDS / 60)) $((SECONDS % 60))
}
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_debian_packages() {
  # iptables: the runtime manager fences runtimes off with it (docs/runtime-network-isolation.md).
  local wanted=(postgresql chromium git curl ca-certificates pkg-config build-essential python3-venv iptables)
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  # kubectl renders deploy/kubernetes in the tests (`kubectl kustomize`): any kubectl already on
  # the machine does; else Debian's client.
  command -v kubectl >/dev/null || missing+=(kubernetes-client)
  [ ${#missing[@]} -eq 0 ] && return
  timed "Installing Debian packages: ${missing[*]}" "2 minutes" install_debian_packages "${missing[@]}"
}

install_debian_packages() {
  # ClawLoops runs its own private cluster; Debian's default system cluster is not wanted.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    as_root mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

ensure_rust_tools() {
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
  (cd "$ROOT" && rustup show active-toolchain >/dev/null) # installs the pinned toolchain if missing
  if ! (cd "$ROOT" && rustup target list --installed | grep -qx wasm32-unknown-unknown); then
    step "Adding the wasm32-unknown-unknown target"
    (cd "$ROOT" && rustup target add wasm32-unknown-unknown)
  fi
  if [ "$(cargo leptos --version 2>/dev/null)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
    timed "Installing cargo-leptos $CARGO_LEPTOS_VERSION (once)" "15 minutes" \
      cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked
  fi
  # wasm-bindgen-cli must match the wasm-bindgen crate exactly, or the bundle will not load.
  local wbg
  wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' "$ROOT/Cargo.lock")
  [ -n "$wbg" ] || die "wasm-bindgen not found in Cargo.lock"
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wbg" ]; then
    # Not --locked: the registry mirror lacks one of its pinned dependency versions.
    timed "Installing wasm-bindgen-cli $wbg (once)" "3 minutes" \
      cargo install wasm-bindgen-cli --version "=$wbg"
  fi
  # The Rust tests run under cargo-nextest (each test in its own process, hung tests stopped).
  # Debian 12 machines of this project's kind come with it; any version from 0.9.100 will do.
  if ! cargo nextest --version >/dev/null 2>&1; then
    timed "Installing cargo-nextest $CARGO_NEXTEST_VERSION (once)" "6 minutes" \
      cargo install cargo-nextest --version "=$CARGO_NEXTEST_VERSION" --locked
  fi
}

ensure_cargo_fuzz() {
  if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    timed "Installing cargo-fuzz $CARGO_FUZZ_VERSION (once)" "1 minute" \
      cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked
  fi
}

ensure_leptosfmt() {
  if [ "$(leptosfmt --version 2>/dev/null)" != "leptosfmt $LEPTOSFMT_VERSION" ]; then
    timed "Installing leptosfmt $LEPTOSFMT_VERSION (once)" "4 minutes" \
      cargo install leptosfmt --version "=$LEPTOSFMT_VERSION" --locked
  fi
}

ensure_sqlx_cli() {
  if [ "$(sqlx --version 2>/dev/null)" != "sqlx-cli $SQLX_CLI_VERSION" ]; then
    timed "Installing sqlx-cli $SQLX_CLI_VERSION (once)" "3 minutes" \
      cargo install sqlx-cli --version "=$SQLX_CLI_VERSION" --no-default-features --features postgres,rustls --locked
  fi
}

# The LiteLLM proxy (one of the gateway's tested upstreams), in its own venv, every package pinned
# by deploy/litellm/requirements.lock. Prints nothing; sets LITELLM_BIN.
LITELLM_VERSION=1.108.7
ensure_litellm() {
  local venv="${CLAWLOOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clawloops}/litellm-$LITELLM_VERSION"
  local lock="$ROOT/deploy/litellm/requirements.lock" want
  want=$(sha256sum "$lock" | cut -d' ' -f1)
  LITELLM_BIN="$venv/bin/litellm"
  # Reinstalled only when the lock file's content changes (not its date: every clone is new).
  if [ ! -x "$LITELLM_BIN" ] || [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    timed "Installing LiteLLM $LITELLM_VERSION in $venv (once)" "2 minutes" install_litellm "$venv" "$lock"
    echo "$want" >"$venv/.installed"
  fi
  export LITELLM_BIN
}

install_litellm() {
  python3 -m venv "$1"
  "$1/bin/pip" install --quiet --disable-pip-version-check -r "$2"
}

ensure_npm_packages() {
  local dir
  for dir in "$ROOT" "$ROOT/end2end"; do
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      step "Installing npm packages in ${dir/#"$ROOT"/.}"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  done
}

# Debian's Docker engine, started in the background when it is not running (no systemd needed).
ensure_docker() {
  if ! command -v dockerd >/dev/null; then
    timed "Installing Debian's Docker engine" "1 minute" install_debian_packages docker.io
  fi
  docker info >/dev/null 2>&1 && return
  step "Starting dockerd"
  as_root sh -c 'nohup dockerd >/var/log/clawloops-dockerd.log 2>&1 &'
  local i
  for ((i = 0; i < 120; i++)); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  die "dockerd did not start; see /var/log/clawloops-dockerd.log"
}

ensure_tools() {
  ensure_debian_packages
  ensure_rust_tools
  ensure_npm_packages
}

# The runtime images, built locally once (scripts/build-images.sh skips an image whose recipe is
# unchanged): $1 = openclaw, stub, traefik or all.
ensure_images() {
  timed "Runtime and entry proxy images ($1; skipped when up to date)" "4 minutes" \
    "$ROOT/scripts/build-images.sh" "$1"
}

# The release build both commands run (server and WASM bundle, pre-compressed), shared through
# CARGO_TARGET_DIR: after one command built it, the other finds it up to date.
RELEASE_BIN="$CARGO_TARGET_DIR/release/clawloops"
build_release() {
  # cargo-leptos redoes wasm-bindgen, wasm-opt and compression of every bundle part in each new
  # process, even when nothing changed (minutes): skip it when the sources are those of the
  # last build, both of the binary (shared by clones) and of this clone's site directory.
  local want stamps=("$CARGO_TARGET_DIR/release/.clawloops-sources" "$ROOT/target/site/.clawloops-sources")
  want=$(release_sources_hash)
  if [ -n "$want" ] && [ -x "$RELEASE_BIN" ] && [ -d "$ROOT/target/site/pkg" ] &&
    [ "$(cat "${stamps[0]}" 2>/dev/null)" = "$want" ] && [ "$(cat "${stamps[1]}" 2>/dev/null)" = "$want" ]; then
    step "ClawLoops (release) is up to date with the sources"
    return
  fi
  timed "Building ClawLoops (release: server and dashboard)" "12 minutes" \
    cargo leptos build --release --precompress --split
  [ -z "$want" ] || for stamp in "${stamps[@]}"; do echo "$want" >"$stamp"; done
}

# A hash of everything the release build reads (tests and benchmarks are not part of it; empty
# outside a git checkout: always build).
release_sources_hash() {
  (cd "$ROOT" && git rev-parse --git-dir >/dev/null 2>&1 || exit 0
    git ls-files -co --exclude-standard -- Cargo.toml Cargo.lock rust-toolchain.toml .cargo \
      package.json package-lock.json app frontend server crates style public migrations .sqlx \
      ':!:*/tests/*' ':!:crates/bench' |
      sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-32)
}

# Waits until $1 answers 200, or fails after $2 seconds.
wait_for_url() {
  local url=$1 limit=${2:-60} i
  for ((i = 0; i < limit * 4; i++)); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.25
  done
  return 1
}

# The Docker host's address on the default bridge: where the entry proxy's container reaches the
# control plane (`host-gateway`). `clawloops docker-host-address` reads Docker's gateway field
# and, where an engine leaves it out (Debian's docker.io 20.10), the bridge interface's address.
#   docker_host_ip BIN
docker_host_ip() {
  local ip
  ip=$("$1" docker-host-address bridge) || die "cannot find the Docker host's address on the default bridge"
  [ -n "$ip" ] || die "cannot find the Docker host's address on the default bridge"
  printf '%s\n' "$ip"
}

# Starts the entry proxy (Traefik, clawloops/traefik) in its own container with the repository's
# configuration (deploy/traefik):
#   start_entry_proxy NAME PUBLISH CONTROL_PLANE_PORTS PUBLIC_HOST CONFIG_DIR [TRUSTED_CLIENT_NET]
# PUBLISH is Docker's -p host side (e.g. 127.0.0.1:8080). The control plane listens on the
# Docker host's bridge address; the proxy reaches it as `control-plane`. CONTROL_PLANE_PORTS is
# one port, or several (comma-separated) for several replicas: Traefik then load-balances them,
# health-checking /readyz, and sends forward-auth and its route provider through its own
# `internal` entry point. TRUSTED_CLIENT_NET lets clients arriving from that network claim
# their address in X-Forwarded-For (browser tests).
start_entry_proxy() {
  local name=$1 publish=$2 cp_ports=$3 host=$4 dir=$5 trusted=${6:-}
  local first=${cp_ports%%,*} control_plane servers="" port
  mkdir -p "$dir/dynamic"
  if [ "$first" = "$cp_ports" ]; then
    control_plane=http://control-plane:$first
  else
    control_plane=http://127.0.0.1:8002
    for port in ${cp_ports//,/ }; do servers+="${servers:+,}http://control-plane:$port"; done
  fi
  sed "s#http://control-plane:3000#$control_plane#" "$ROOT/deploy/traefik/traefik.yml" >"$dir/traefik.yml"
  if [ -n "$trusted" ]; then
    sed -i "s#^    address: \":8000\"\$#    address: \":8000\"\n    forwardedHeaders:\n      trustedIPs: [\"$trusted\"]#" "$dir/traefik.yml"
  fi
  cp "$ROOT/deploy/traefik/dynamic/clawloops.yml" "$dir/dynamic/"
  rm -rf "$dir/plugins-local" && cp -R "$ROOT/deploy/traefik/plugins-local" "$dir/"
  chmod 755 "$dir" "$dir/dynamic" && chmod 644 "$dir/traefik.yml" "$dir/dynamic/clawloops.yml"
  chmod -R a+rX "$dir/plugins-local"
  docker rm -f "$name" >/dev/null 2>&1 || true
  # The per-client limits (deploy/traefik/dynamic/clawloops.yml), when set in our environment.
  local limits=() var
  for var in CLAWLOOPS_ENTRY_IN_FLIGHT_PER_CLIENT CLAWLOOPS_ENTRY_RATE_PER_CLIENT CLAWLOOPS_ENTRY_BURST_PER_CLIENT; do
    [ -z "${!var:-}" ] || limits+=(-e "$var=${!var}")
  done
  [ -z "$servers" ] || limits+=(-e "CLAWLOOPS_CONTROL_PLANE_SERVERS=$servers")
  docker run -d --name "$name" --restart unless-stopped \
    --add-host control-plane:host-gateway -p "$publish:8000" \
    -e "CLAWLOOPS_PUBLIC_HOST=$host" -e "CLAWLOOPS_CONTROL_PLANE=$control_plane" \
    "${limits[@]}" -v "$dir:/etc/traefik:ro" -w /etc/traefik clawloops/traefik:3.7.15 >/dev/null
}
