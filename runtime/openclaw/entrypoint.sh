#!/bin/sh
# Starts the OpenClaw gateway. ClawLoops renders the configuration before every start; a
# container run by hand without one gets a minimal token-protected gateway.
set -eu
config="${OPENCLAW_CONFIG_PATH:-$HOME/.openclaw/openclaw.json}"
if [ ! -f "$config" ]; then
  mkdir -p "$(dirname "$config")"
  cat >"$config" <<JSON
{ "gateway": { "mode": "local", "port": 18789, "bind": "lan", "auth": { "mode": "token" } } }
JSON
fi
exec openclaw gateway --port "${OPENCLAW_GATEWAY_PORT:-18789}"
