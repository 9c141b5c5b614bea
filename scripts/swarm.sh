#!/usr/bin/env bash
# A real multi-node Docker Swarm on this machine, for tests and benchmarks (see lib/swarm.sh):
#   scripts/swarm.sh up DIR [WORKERS] | down DIR | ensure DIR IMAGE... | kill DIR NODE |
#                    revive DIR NODE | push DIR IMAGE...
set -euo pipefail
source "$(dirname "$0")/lib/swarm.sh"
command=${1:?usage: swarm.sh up|down|ensure|kill|revive|push DIR ...}
shift
case $command in
  up | down | ensure | kill | revive | push) "swarm_$command" "$@" ;;
  *) echo "unknown command $command" >&2; exit 2 ;;
esac
