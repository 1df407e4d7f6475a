#!/usr/bin/env bash
# Join a REAL node to a control plane started by test/kube/start.sh DIR: a
# kubelet (built by test/kube/build.sh) with its own containerd (Debian's
# containerd, runc and containernetworking-plugins), beside kwok's fake nodes.
# Pods on it really run: images are made offline and imported
# (test/kube/node-image.sh), readiness probes really probe. Stop it with
# test/kube/node-stop.sh DIR (test/kube/stop.sh DIR does it too).
#
# Usage: test/kube/node-start.sh DIR
#
# Everything lives in DIR/node (containerd root/state/socket, kubelet root,
# certificates, pod logs, CNI state); the host state the kubelet changes
# (sysctls, /var/lib/kubelet/device-plugins, mounts, cgroups, the bridge) is
# recorded there and restored by node-stop.sh, which also works after a
# failed start. Only one node per machine (the bridge and sysctls are
# machine-wide): a second start fails while the bridge exists.
#
# The node is tainted maestro-sync.test/real-node=true:NoSchedule, so pods
# of other tests never land on it; a namespace annotated with
#   scheduler.alpha.kubernetes.io/node-selector: kubernetes.io/hostname=NODE
#   scheduler.alpha.kubernetes.io/defaultTolerations: [{"key":"maestro-sync.test/real-node","operator":"Exists"}]
# runs its pods there (the apiserver's PodNodeSelector and
# PodTolerationRestriction admission plugins, enabled by start.sh).
#
# Env (all optional):
#   MAESTRO_NODE_NAME            node name (default maestro-node-0)
#   MAESTRO_NODE_SUBNET          pod subnet, a /24 (default 10.244.77.0/24); its .1 is
#                                the bridge's address, the node's InternalIP
#   MAESTRO_NODE_BRIDGE          bridge name (default mnode0)
#   MAESTRO_NODE_KUBELET_PORT    kubelet API port on the node IP (default: a free port)
#   MAESTRO_NODE_HEALTHZ_PORT    kubelet healthz port on 127.0.0.1 (default: a free port)
#   MAESTRO_NODE_START_TIMEOUT   seconds to wait for Ready (default 120)
#   MAESTRO_KUBE_BIN             binaries dir (default ~/.cache/maestro-sync/kube-bin)
#
# Writes DIR/node/env: MAESTRO_NODE_NAME, MAESTRO_NODE_IP, MAESTRO_NODE_SUBNET,
# MAESTRO_NODE_BRIDGE, MAESTRO_NODE_CONTAINERD (socket), MAESTRO_NODE_TAINT,
# MAESTRO_NODE_KUBELET_PORT. Images imported at start: maestro-test/pause:1
# (the sandbox), maestro-test/busybox:1 (busybox-static, CMD sh) and
# maestro-test/web:1 (busybox + testweb, see tools/cmd/testweb).
set -euo pipefail

DIR="${1:?usage: $0 DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${MAESTRO_KUBE_BIN:-$HOME/.cache/maestro-sync/kube-bin}"
NAME="${MAESTRO_NODE_NAME:-maestro-node-0}"
SUBNET="${MAESTRO_NODE_SUBNET:-10.244.77.0/24}"
BRIDGE="${MAESTRO_NODE_BRIDGE:-mnode0}"
TIMEOUT="${MAESTRO_NODE_START_TIMEOUT:-120}"
TAINT_KEY=maestro-sync.test/real-node
CNI_NET=maestro-node

LOG_TAG=node-start
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[[ "$(id -u)" == 0 ]] || die "a kubelet needs root"
[[ -f "$DIR/env" && -f "$DIR/pids" ]] || die "no control plane running in $DIR (test/kube/start.sh $DIR)"
DIR="$(cd "$DIR" && pwd)"
N="$DIR/node"
RUN_DIR="$N"
for b in kubelet kubectl pause testweb; do
	[[ -x "$BIN/$b" ]] || die "$BIN/$b missing: run test/kube/build.sh"
done
for c in containerd containerd-shim-runc-v2 ctr runc openssl ip curl; do
	command -v "$c" >/dev/null || die "$c not found: run test/kube/build.sh (installs Debian's containerd, runc, containernetworking-plugins)"
done
CNI_BIN=/usr/lib/cni
for p in bridge host-local loopback; do
	[[ -x "$CNI_BIN/$p" ]] || die "$CNI_BIN/$p missing: install containernetworking-plugins (test/kube/build.sh does)"
done
[[ -x /bin/busybox ]] && /bin/busybox --list >/dev/null 2>&1 || die "/bin/busybox missing: install busybox-static"
[[ "$SUBNET" =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.0/24$ ]] || die "MAESTRO_NODE_SUBNET must be a /24 ending in .0: $SUBNET"
NODE_IP="${BASH_REMATCH[1]}.1"
[[ ! -s "$N/pids" ]] || die "$N/pids exists: a node may be running there; run test/kube/node-stop.sh $DIR first"
ip link show "$BRIDGE" >/dev/null 2>&1 && die "bridge $BRIDGE exists: another test node runs on this machine (or was not stopped: test/kube/node-stop.sh ITS_DIR)"
[[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/cpu ]] || die "this script drives the kubelet on cgroup v1 (cgroupfs); /sys/fs/cgroup has no v1 hierarchies"

# shellcheck disable=SC1091
. "$DIR/env"
SERVER="$MAESTRO_KUBE_SERVER"
KUBECTL=("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig")
PKI="$DIR/pki"

rm -rf "$N"
mkdir -p "$N"/{logs,pki,kubelet,pod-logs,container-logs,cni/net.d,cni/ipam,containerd/root,containerd/state,runc}
: >"$N/pids"
: >"$N/created"   # host paths this start created, removed by node-stop.sh

READY=0
START=$SECONDS
on_exit() {
	local rc=$?
	[[ $READY == 1 ]] && return 0
	log "node start failed (exit $rc); last log lines:"
	for f in "$N"/logs/*.log; do
		[[ -f "$f" ]] || continue
		echo "---- $f" >&2
		tail -n 20 "$f" >&2 || true
	done
	"$HERE/node-stop.sh" "$DIR" >&2 || true
	exit "$((rc == 0 ? 1 : rc))"
}
trap on_exit EXIT

# ---- host state, recorded before anything changes it -------------------------------
# The kubelet sets these sysctls at start (setupKernelTunables); node-stop.sh
# writes the saved values back.
for k in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
	echo "$k=$(sysctl -n "$k")"
done >"$N/sysctls"
# Machine-wide paths the kubelet or the CNI plugins create (their names are
# constants upstream): removed on stop when this start made them.
for p in /var/lib/kubelet /var/lib/kubelet/device-plugins /var/lib/cni /var/lib/cni/results; do
	[[ -e "$p" ]] || echo "$p" >>"$N/created"
done
echo "$BRIDGE" >"$N/bridge"

# ---- ports ----------------------------------------------------------------------------
KUBELET_PORT="${MAESTRO_NODE_KUBELET_PORT:-$(free_port)}"
HEALTHZ_PORT="${MAESTRO_NODE_HEALTHZ_PORT:-$(free_port)}"
[[ "$KUBELET_PORT" != "$HEALTHZ_PORT" ]] || HEALTHZ_PORT="$(free_port)"

# ---- the bridge (the node's address) ----------------------------------------------------
# Made before the kubelet, which binds to its address; the CNI bridge plugin
# finds it and attaches the pods' veths. No masquerade: pods talk to the host only.
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up

# ---- cgroups -----------------------------------------------------------------------------
# The kubelet's cgroupRoot, made in every v1 hierarchy (cpuset needs its cpus
# and mems before tasks can join); pods go below it, off Docker's cgroups.
CGROUP_ROOT="/maestro-node-$NAME"
echo "$CGROUP_ROOT" >"$N/cgroup-root"
for h in /sys/fs/cgroup/*/; do
	h="${h%/}"
	[[ "$(stat -f -c %T "$h")" == cgroupfs ]] || continue
	[[ -f "$h/cgroup.procs" && ! -f "$h/cgroup.controllers" ]] || continue # v1 only
	mkdir -p "$h$CGROUP_ROOT"
	if [[ -f "$h/cpuset.cpus" ]]; then
		cat "$h/cpuset.cpus" >"$h$CGROUP_ROOT/cpuset.cpus"
		cat "$h/cpuset.mems" >"$h$CGROUP_ROOT/cpuset.mems"
	fi
done

# ---- node identity ---------------------------------------------------------------------------
# A client certificate of the control plane's CA: user system:node:NAME in
# group system:nodes, bound to the system:node ClusterRole below (the test
# apiserver authorizes with RBAC only, no Node authorizer).
{
	openssl ecparam -name prime256v1 -genkey -noout -out "$N/pki/kubelet-client.key"
	openssl req -new -key "$N/pki/kubelet-client.key" -subj "/O=system:nodes/CN=system:node:$NAME" -out "$N/pki/kubelet-client.csr"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$N/pki/client.ext"
	openssl x509 -req -in "$N/pki/kubelet-client.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 365 -sha256 -extfile "$N/pki/client.ext" -out "$N/pki/kubelet-client.crt"
	# The kubelet's serving certificate: the apiserver dials it for logs and exec.
	openssl ecparam -name prime256v1 -genkey -noout -out "$N/pki/kubelet.key"
	openssl req -new -key "$N/pki/kubelet.key" -subj "/CN=$NAME" -out "$N/pki/kubelet.csr"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:%s,DNS:%s\n' "$NODE_IP" "$NAME" >"$N/pki/serving.ext"
	openssl x509 -req -in "$N/pki/kubelet.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 365 -sha256 -extfile "$N/pki/serving.ext" -out "$N/pki/kubelet.crt"
} >"$N/logs/pki.log" 2>&1
chmod 600 "$N"/pki/*.key
cat >"$N/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: maestro-test
  cluster:
    server: $SERVER
    certificate-authority: $PKI/ca.crt
users:
- name: system:node:$NAME
  user:
    client-certificate: $N/pki/kubelet-client.crt
    client-key: $N/pki/kubelet-client.key
contexts:
- name: maestro-test
  context:
    cluster: maestro-test
    user: system:node:$NAME
current-context: maestro-test
EOF
chmod 600 "$N/kubeconfig"
"${KUBECTL[@]}" apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: maestro-test:nodes
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:node
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: system:nodes
EOF

# ---- containerd --------------------------------------------------------------------------------
# Its own root, state, sockets and runc root: never Docker's containerd.
# restrict_oom_score_adj: runc cannot lower oom_score_adj without
# CAP_SYS_RESOURCE, which this machine's root lacks. Network namespaces are
# mounted under the state dir, the CNI state is in DIR/node/cni.
cat >"$N/cni/net.d/10-$CNI_NET.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$N/cni/ipam",
        "ranges": [[{"subnet": "$SUBNET", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
EOF
SOCK="$N/containerd.sock"
cat >"$N/containerd.toml" <<EOF
version = 2
root = "$N/containerd/root"
state = "$N/containerd/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$N/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/maestro-test/pause:1"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$N/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$N/cni/net.d"
    max_conf_num = 1
EOF


launch containerd containerd --config "$N/containerd.toml"
wait_for containerd "containerd" ctr --address "$SOCK" version

# ---- images (offline) ---------------------------------------------------------------------------
IMG="$N/images"
mkdir -p "$IMG/pause" "$IMG/busybox"
cp "$BIN/pause" "$IMG/pause/pause"
busybox_rootfs() { # DIR
	local root="$1" applet
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var/run}
	chmod 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	while read -r applet; do
		case "$applet" in "" | bin/busybox | linuxrc) continue ;; esac
		ln -sf /bin/busybox "$root/$applet"
	done < <(/bin/busybox --list-full)
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}
busybox_rootfs "$IMG/busybox"
"$HERE/node-image.sh" "$DIR" maestro-test/pause:1 "$IMG/pause" '{"Entrypoint":["/pause"]}' >/dev/null
"$HERE/node-image.sh" "$DIR" maestro-test/busybox:1 "$IMG/busybox" '{"Cmd":["sh"],"Env":["PATH=/bin:/sbin:/usr/bin:/usr/sbin"]}' >/dev/null
cp "$BIN/testweb" "$IMG/busybox/bin/testweb"
"$HERE/node-image.sh" "$DIR" maestro-test/web:1 "$IMG/busybox" '{"Entrypoint":["/bin/testweb"],"Env":["PATH=/bin:/sbin:/usr/bin:/usr/sbin"],"ExposedPorts":{"8080/tcp":{}}}' >/dev/null
rm -rf "$IMG"
log "images imported: $(ctr --address "$SOCK" -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# ---- kubelet ------------------------------------------------------------------------------------------
cat >"$N/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 (refused by default since 1.35), driven through cgroupfs below cgroupRoot.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
containerRuntimeEndpoint: unix://$SOCK
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ_PORT
tlsCertFile: $N/pki/kubelet.crt
tlsPrivateKeyFile: $N/pki/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
# No iptables chains on the host.
makeIPTablesUtilChains: false
podLogsDir: $N/pod-logs
# Imported images must stay: they cannot be pulled again.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# A shared test machine: do not evict for the host's disk or memory use.
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
failSwapOn: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
registerWithTaints:
- key: $TAINT_KEY
  value: "true"
  effect: NoSchedule
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
maxPods: 30
resolvConf: /etc/resolv.conf
EOF
launch kubelet env MAESTRO_KUBELET_CONTAINER_LOGS_DIR="$N/container-logs" "$BIN/kubelet" \
	--config="$N/kubelet.yaml" \
	--kubeconfig="$N/kubeconfig" \
	--root-dir="$N/kubelet" \
	--cert-dir="$N/pki" \
	--hostname-override="$NAME" \
	--node-ip="$NODE_IP" \
	--node-labels="type=real,maestro-sync.test/real-node=true" \
	--v=1
wait_for kubelet "kubelet /healthz" curl -fsS --max-time 2 "http://127.0.0.1:$HEALTHZ_PORT/healthz"
node_ready() {
	[[ "$("${KUBECTL[@]}" get node "$NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
wait_for kubelet "node $NAME Ready" node_ready

cat >"$N/env" <<EOF
export MAESTRO_NODE_NAME=$NAME
export MAESTRO_NODE_IP=$NODE_IP
export MAESTRO_NODE_SUBNET=$SUBNET
export MAESTRO_NODE_BRIDGE=$BRIDGE
export MAESTRO_NODE_CONTAINERD=$SOCK
export MAESTRO_NODE_TAINT=$TAINT_KEY
export MAESTRO_NODE_KUBELET_PORT=$KUBELET_PORT
EOF
READY=1
log "node $NAME ($NODE_IP) ready in $((SECONDS - START))s"
