#!/usr/bin/env bash
# The entry proxy (Traefik) for ClawLoops on a Docker Swarm, run on the entry node (the one
# labelled clawloops.entry=true, named by swarm_entry_node) after `docker stack deploy`:
#
#   set -a && . ./deploy/swarm/stack.env && set +a && deploy/swarm/entry.sh
#
# A plain container, restarted by the engine, on the stack's `edge` network: the control plane
# joins it to each runtime's network (a swarm task's container cannot be joined to networks after
# it started). It keeps its name, and with it every network it was joined to, across restarts.
set -euo pipefail
: "${CLAWLOOPS_REGISTRY:?}" "${CLAWLOOPS_WORKSPACE_DOMAIN:?}"
deploy_dir=${CLAWLOOPS_DEPLOY_DIR:-/opt/clawloops/deploy}
stack=${CLAWLOOPS_STACK:-clawloops}
docker rm -f clawloops-traefik >/dev/null 2>&1 || true
exec docker run -d --name clawloops-traefik --restart unless-stopped \
  --network "${stack}_edge" \
  -p 80:8000 -p 443:8443 \
  -e CLAWLOOPS_PUBLIC_HOST="$CLAWLOOPS_WORKSPACE_DOMAIN" \
  -e CLAWLOOPS_CONTROL_PLANE=http://control-plane:3000 \
  -e CLAWLOOPS_TLS_CERT_FILE="${CLAWLOOPS_TLS_CERT_FILE:-}" \
  -e CLAWLOOPS_TLS_KEY_FILE="${CLAWLOOPS_TLS_KEY_FILE:-}" \
  -v "$deploy_dir/traefik:/etc/traefik:ro" \
  -v "${CLAWLOOPS_TLS_DIR:-$deploy_dir/tls}:/etc/clawloops-tls:ro" \
  -w /etc/traefik \
  "$CLAWLOOPS_REGISTRY/clawloops/traefik:3.7.15"
