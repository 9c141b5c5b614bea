# A real multi-node Docker Swarm on this one machine, for tests and benchmarks: one Debian dockerd
# per node, each in its own network namespace (with its own mount and UTS namespace, data root,
# exec root and cgroup parent), joined by a host bridge; one manager and workers; a local image
# registry (Debian's docker-registry) on the bridge that every node trusts.
#
#   swarm.sh up DIR [WORKERS]     bring it up (tearing down a previous one in DIR first)
#   swarm.sh down DIR             tear it down (every node's containers, daemons, namespaces)
#   swarm.sh kill DIR NODE        kill -9 one node's dockerd (its containers keep running)
#   swarm.sh revive DIR NODE      start that node's dockerd again (it rejoins by itself)
#   swarm.sh push DIR IMAGE...    push local images to the registry as REGISTRY/IMAGE
#   swarm.sh ensure DIR IMAGE...  bring it up unless it is up with every node ready, and push
#                                 the images the registry lacks
#
# DIR/env afterwards holds SWARM_MANAGER_SOCKET, SWARM_REGISTRY, SWARM_NODES and SWARM_BRIDGE_IP
# for the tests. Addresses: bridge 10.231.0.0/24 (host .1, nodes .11…), node bridges
# 10.232.N.0/24, node address pools 10.233.0.0/16, overlays 10.234.0.0/16: chosen apart from the
# runtime networks' pool (10.213.0.0/16) and from anything else on the machine.

SWARM_BRIDGE=clsw0
SWARM_NET=10.231.0
SWARM_HOST_IP=$SWARM_NET.1

swarm_node_names() {
  local workers=${1:-2} i
  echo clsw-m1
  for ((i = 1; i <= workers; i++)); do echo "clsw-w$i"; done
}

# Starts NODE's dockerd in its namespaces (the network namespace must exist).
swarm_start_daemon() {
  local dir=$1 node=$2 index=$3 nd="$1/$2"
  mkdir -p "$nd/run" "$nd/data"
  cat >"$nd/daemon.json" <<EOF
{ "insecure-registries": ["$SWARM_HOST_IP:5000"], "log-level": "warn" }
EOF
  # ip netns exec would remount /sys without the cgroup hierarchy dockerd needs: enter the
  # network namespace, unshare mounts and the hostname, mount a fresh sysfs with the host's
  # cgroups bound back, and keep /run in the node's own directory (so a revived daemon finds
  # its containerd again).
  nsenter --net="/run/netns/$node" unshare -m -u --propagation slave sh -c "
    mkdir -p '$nd/cgroup' && mount --rbind /sys/fs/cgroup '$nd/cgroup' &&
    mount -t sysfs sysfs /sys && mount --move '$nd/cgroup' /sys/fs/cgroup &&
    mount --bind '$nd/run' /run && hostname '$node' &&
    exec dockerd --config-file '$nd/daemon.json' --data-root '$nd/data' --exec-root /run/docker-exec \
      --pidfile /run/docker.pid -H 'unix://$nd/docker.sock' --bip 10.232.$index.1/24 \
      --default-address-pool base=10.233.0.0/16,size=24 --cgroup-parent 'clawloops-$node'" \
    >>"$nd/dockerd.log" 2>&1 &
  echo $! >"$nd/dockerd.pid"
  local i
  for ((i = 0; i < 120; i++)); do
    docker -H "unix://$nd/docker.sock" version >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  echo "the dockerd of $node did not start; see $nd/dockerd.log" >&2
  return 1
}

swarm_up() {
  local dir=$1 workers=${2:-2}
  swarm_down "$dir" 2>/dev/null || true
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  ip link add "$SWARM_BRIDGE" type bridge && ip addr add "$SWARM_HOST_IP/24" dev "$SWARM_BRIDGE" &&
    ip link set "$SWARM_BRIDGE" up || return 1
  # A host dockerd sets FORWARD to DROP: let the nodes talk to each other over the bridge.
  iptables -I FORWARD -i "$SWARM_BRIDGE" -o "$SWARM_BRIDGE" -j ACCEPT
  local node index=0 nodes=()
  for node in $(swarm_node_names "$workers"); do
    index=$((index + 1))
    ip link del "v-$node" 2>/dev/null || true
    ip netns add "$node"
    ip link add "v-$node" type veth peer name eth0 netns "$node"
    ip link set "v-$node" master "$SWARM_BRIDGE" up
    ip -n "$node" addr add "$SWARM_NET.$((10 + index))/24" dev eth0
    ip -n "$node" link set eth0 up && ip -n "$node" link set lo up
    nodes+=("$node")
  done
  swarm_start_registry "$dir" || return 1
  index=0
  for node in "${nodes[@]}"; do
    index=$((index + 1))
    swarm_start_daemon "$dir" "$node" "$index" || return 1
  done
  local manager="unix://$dir/clsw-m1/docker.sock" token
  docker -H "$manager" swarm init --advertise-addr "$SWARM_NET.11" \
    --default-addr-pool 10.234.0.0/16 --dispatcher-heartbeat 2s >/dev/null || return 1
  token=$(docker -H "$manager" swarm join-token -q worker)
  for node in "${nodes[@]:1}"; do
    docker -H "unix://$dir/$node/docker.sock" swarm join --token "$token" "$SWARM_NET.11:2377" >/dev/null || return 1
  done
  cat >"$dir/env" <<EOF
SWARM_MANAGER_SOCKET=$dir/clsw-m1/docker.sock
SWARM_REGISTRY=$SWARM_HOST_IP:5000
SWARM_BRIDGE_IP=$SWARM_HOST_IP
SWARM_NODES="${nodes[*]}"
EOF
}

# The registry serves the nodes on the bridge and the host's engine on loopback (an engine
# pushes over plain HTTP to loopback only, and the host's engine is not ours to reconfigure):
# two listeners over one storage directory.
SWARM_PUSH=127.0.0.1:5231
swarm_start_registry() {
  local dir=$1 name addr
  command -v docker-registry >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null || return 1
  mkdir -p "$dir/registry"
  for name in nodes host; do
    addr=$SWARM_HOST_IP:5000
    [ "$name" = nodes ] || addr=$SWARM_PUSH
    cat >"$dir/registry/$name.yml" <<EOF
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $dir/registry/data }, delete: { enabled: true } }
http: { addr: "$addr" }
EOF
    docker-registry serve "$dir/registry/$name.yml" >>"$dir/registry/$name.log" 2>&1 &
    echo $! >"$dir/registry/$name.pid"
  done
  local i
  for ((i = 0; i < 80; i++)); do
    curl -fsS -o /dev/null "http://$SWARM_HOST_IP:5000/v2/" 2>/dev/null &&
      curl -fsS -o /dev/null "http://$SWARM_PUSH/v2/" 2>/dev/null && return 0
    sleep 0.25
  done
  echo "the image registry did not start; see $dir/registry/*.log" >&2
  return 1
}

swarm_kill() {
  local nd="$1/$2"
  kill -9 "$(cat "$nd/dockerd.pid")" 2>/dev/null || true
}

swarm_revive() {
  local dir=$1 node=$2 index
  index=$(swarm_node_names 9 | grep -n "^$node\$" | cut -d: -f1)
  swarm_start_daemon "$dir" "$node" "$index"
}

swarm_push() {
  local dir=$1 image
  shift
  source "$dir/env"
  for image in "$@"; do
    docker tag "$image" "$SWARM_PUSH/$image" && docker push -q "$SWARM_PUSH/$image" >/dev/null &&
      docker rmi "$SWARM_PUSH/$image" >/dev/null || return 1
  done
}

# Whether the swarm in DIR is up: its manager answers and every node is ready.
swarm_healthy() {
  local dir=$1
  [ -f "$dir/env" ] || return 1
  source "$dir/env"
  local states
  states=$(timeout 10 docker -H "unix://$SWARM_MANAGER_SOCKET" node ls --format '{{.Status}}' 2>/dev/null) || return 1
  [ -n "$states" ] && ! grep -qv '^Ready$' <<<"$states"
}

swarm_ensure() {
  local dir=$1 image name tag
  shift
  swarm_healthy "$dir" || swarm_up "$dir" || return 1
  for image in "$@"; do
    name=${image%:*} tag=${image##*:}
    curl -fsS -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://$SWARM_PUSH/v2/$name/manifests/$tag" 2>/dev/null || swarm_push "$dir" "$image" || return 1
  done
}

swarm_down() {
  local dir=$1 node pid
  for node in $(ip netns list | awk '/^clsw-/ { print $1 }'); do
    pid=$(cat "$dir/$node/dockerd.pid" 2>/dev/null || true)
    [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  done
  # dockerd stops its containers as it shuts down; give it a moment, then kill what is left
  # (daemons, containerd, shims, containers) by namespace and cgroup.
  for _ in $(seq 40); do
    pgrep -f "dockerd --config-file $dir/" >/dev/null || break
    sleep 0.25
  done
  for node in $(ip netns list | awk '/^clsw-/ { print $1 }'); do
    ip netns pids "$node" | xargs -r kill -9 2>/dev/null || true
    local cg
    for cg in /sys/fs/cgroup/pids/clawloops-"$node" /sys/fs/cgroup/pids/clawloops-"$node"/*; do
      [ -f "$cg/cgroup.procs" ] && xargs -r kill -9 <"$cg/cgroup.procs" 2>/dev/null || true
    done
    ip netns del "$node" 2>/dev/null || true
  done
  cat "$dir"/registry/*.pid 2>/dev/null | xargs -r kill 2>/dev/null || true
  iptables -D FORWARD -i "$SWARM_BRIDGE" -o "$SWARM_BRIDGE" -j ACCEPT 2>/dev/null || true
  ip link del "$SWARM_BRIDGE" 2>/dev/null || true
  # Overlay and container mounts of the nodes may linger in the host's view of DIR.
  grep -o " $dir/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
}
