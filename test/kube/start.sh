#!/usr/bin/env bash
# Start a throwaway Kubernetes control plane on loopback for integration tests:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake
# nodes/pods), plus one fake Node. Binaries come from test/kube/build.sh.
#
# Usage: test/kube/start.sh DIR        (stop with test/kube/stop.sh DIR)
#
# Writes into DIR:
#   kubeconfig   admin kubeconfig (bearer token, user "maestro-admin" in system:masters)
#   env          sourceable: KUBECONFIG, MAESTRO_KUBE_SERVER, ports, MAESTRO_KUBE_BIN
#   pids         "name pid" per line, in start order
#   logs/*.log   one log per component
#   pki/         CA, apiserver serving cert, service-account key pair, tokens
#
# Env (all optional):
#   MAESTRO_KUBE_BIN              binaries dir (default ~/.cache/maestro-sync/kube-bin)
#   MAESTRO_ETCD                  etcd binary (default: $MAESTRO_KUBE_BIN/etcd, the
#                                 version kubernetes pins; else etcd on PATH, e.g. Debian's)
#   MAESTRO_KUBE_ETCD_PORT        etcd client port        (default: a free port)
#   MAESTRO_KUBE_ETCD_PEER_PORT   etcd peer port          (default: a free port)
#   MAESTRO_KUBE_APISERVER_PORT   kube-apiserver port     (default: a free port)
#   MAESTRO_KUBE_KCM_PORT         controller-manager port (default: a free port)
#   MAESTRO_KUBE_SCHEDULER_PORT   scheduler port          (default: a free port)
#   MAESTRO_KUBE_KWOK_PORT        kwok server port        (default: a free port)
#   MAESTRO_KUBE_START_TIMEOUT    seconds to wait for readiness (default 180)
#   MAESTRO_KUBE_SERVICE_CIDR     service cluster IP range (default 10.96.0.0/16)
#   MAESTRO_KUBE_NODE_NAME        name of the fake node (default kwok-node-0)
#   MAESTRO_KUBE_APISERVER_ARGS   extra kube-apiserver flags (word-split)
set -euo pipefail

DIR="${1:?usage: $0 DIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="${MAESTRO_KUBE_BIN:-$HOME/.cache/maestro-sync/kube-bin}"
if [[ -n "${MAESTRO_ETCD:-}" ]]; then
	ETCD="$MAESTRO_ETCD"
elif [[ -x "$BIN/etcd" ]]; then
	ETCD="$BIN/etcd"
else
	ETCD="$(command -v etcd || true)"
fi
TIMEOUT="${MAESTRO_KUBE_START_TIMEOUT:-180}"
SERVICE_CIDR="${MAESTRO_KUBE_SERVICE_CIDR:-10.96.0.0/16}"
NODE_NAME="${MAESTRO_KUBE_NODE_NAME:-kwok-node-0}"

LOG_TAG=kube-start
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
	[[ -x "$BIN/$b" ]] || die "$BIN/$b missing: run test/kube/build.sh first"
done
[[ -n "$ETCD" && -x "$ETCD" ]] || die "etcd not found: run test/kube/build.sh (installs Debian's etcd-server)"
command -v openssl >/dev/null || die "openssl not found"
command -v curl >/dev/null || die "curl not found"

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
RUN_DIR="$DIR"
if [[ -s "$DIR/pids" ]]; then
	die "$DIR/pids exists: a cluster may be running there; run test/kube/stop.sh $DIR first"
fi
rm -rf "$DIR/etcd" "$DIR/logs" "$DIR/pki" "$DIR/kcm" "$DIR/scheduler" "$DIR/apiserver"
mkdir -p "$DIR/logs" "$DIR/pki" "$DIR/kcm" "$DIR/scheduler" "$DIR/apiserver"
: >"$DIR/pids"

# On any failure after this point, stop what was started and show the log tails.
READY=0
on_exit() {
	local rc=$?
	[[ $READY == 1 ]] && return 0
	log "start failed (exit $rc); last log lines:"
	for f in "$DIR"/logs/*.log; do
		[[ -f "$f" ]] || continue
		# pki.log matters only when the failure came before any component started.
		[[ "$f" == */pki.log && -f "$DIR/logs/etcd.log" ]] && continue
		echo "---- $f" >&2
		tail -n 15 "$f" >&2 || true
	done
	"$HERE/stop.sh" "$DIR" >&2 || true
	exit "$((rc == 0 ? 1 : rc))"
}
trap on_exit EXIT

# ---- ports -------------------------------------------------------------------
pick() { # VAR_NAME ENV_NAME
	local v="${!2:-}"
	if [[ -z "$v" ]]; then v="$(free_port)"; else USED_PORTS+="$v "; fi
	printf -v "$1" '%s' "$v"
}
pick ETCD_PORT MAESTRO_KUBE_ETCD_PORT
pick ETCD_PEER_PORT MAESTRO_KUBE_ETCD_PEER_PORT
pick API_PORT MAESTRO_KUBE_APISERVER_PORT
pick KCM_PORT MAESTRO_KUBE_KCM_PORT
pick SCHED_PORT MAESTRO_KUBE_SCHEDULER_PORT
pick KWOK_PORT MAESTRO_KUBE_KWOK_PORT
for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$KCM_PORT" "$SCHED_PORT" "$KWOK_PORT"; do
	port_busy "$p" && die "port $p is already in use"
done
SERVER="https://127.0.0.1:$API_PORT"
log "etcd: $ETCD ($("$ETCD" --version 2>/dev/null | head -1))"
log "ports: etcd=$ETCD_PORT/$ETCD_PEER_PORT apiserver=$API_PORT kcm=$KCM_PORT scheduler=$SCHED_PORT kwok=$KWOK_PORT"

# ---- PKI and credentials ------------------------------------------------------
PKI="$DIR/pki"
# First IP of the service range: the "kubernetes" Service's ClusterIP.
svc_ip() {
	local base="${SERVICE_CIDR%/*}" a b c d
	IFS=. read -r a b c d <<<"$base"
	echo "$a.$b.$c.$((d + 1))"
}
SVC_IP="$(svc_ip)"
# The address of a real node's bridge (node-start.sh): pods there reach the
# apiserver through it (see README, "A real node"), so it is in the serving
# certificate too.
NODE_GATEWAY="${MAESTRO_NODE_SUBNET:-10.244.77.0/24}"
NODE_GATEWAY="${NODE_GATEWAY%.0/24}.1"
{
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key"
	openssl req -x509 -new -key "$PKI/ca.key" -sha256 -days 3650 -subj "/CN=maestro-test-ca" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$PKI/ca.crt"
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/apiserver.key"
	openssl req -new -key "$PKI/apiserver.key" -subj "/CN=kube-apiserver" -out "$PKI/apiserver.csr"
	cat >"$PKI/apiserver.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$SVC_IP,IP:$NODE_GATEWAY,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
	openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 3650 -sha256 -extfile "$PKI/apiserver.ext" -out "$PKI/apiserver.crt"
	# Front-proxy (request-header) CA and client: lets the controller-manager's
	# and scheduler's delegated authentication read a complete
	# kube-system/extension-apiserver-authentication ConfigMap, and lets the
	# aggregator talk to aggregated API servers.
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-ca.key"
	openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -sha256 -days 3650 -subj "/CN=maestro-test-front-proxy-ca" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$PKI/front-proxy-ca.crt"
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-client.key"
	openssl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$PKI/front-proxy-client.csr"
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$PKI/front-proxy-client.ext"
	openssl x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" \
		-CAcreateserial -days 3650 -sha256 -extfile "$PKI/front-proxy-client.ext" -out "$PKI/front-proxy-client.crt"
	# Service-account token signing key pair (RSA, as the apiserver's default).
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key"
	openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
	# The apiserver's client certificate for kubelets (logs, exec, port-forward
	# on a real node): group system:masters, so the kubelet's webhook
	# authorization allows it.
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/apiserver-kubelet-client.key"
	openssl req -new -key "$PKI/apiserver-kubelet-client.key" -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" -out "$PKI/apiserver-kubelet-client.csr"
	openssl x509 -req -in "$PKI/apiserver-kubelet-client.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 3650 -sha256 -extfile "$PKI/front-proxy-client.ext" -out "$PKI/apiserver-kubelet-client.crt"
} >"$DIR/logs/pki.log" 2>&1

token() { openssl rand -hex 24; }
ADMIN_TOKEN="$(token)"
KCM_TOKEN="$(token)"
SCHED_TOKEN="$(token)"
KWOK_TOKEN="$(token)"
# token,user,uid,"group1,group2"
cat >"$PKI/tokens.csv" <<EOF
$ADMIN_TOKEN,maestro-admin,uid-maestro-admin,"system:masters"
$KCM_TOKEN,system:kube-controller-manager,uid-kcm
$SCHED_TOKEN,system:kube-scheduler,uid-scheduler
$KWOK_TOKEN,kwok-controller,uid-kwok,"system:masters"
EOF
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

write_kubeconfig() { # FILE USER TOKEN
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: maestro-test
  cluster:
    server: $SERVER
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: maestro-test
  context:
    cluster: maestro-test
    user: $2
current-context: maestro-test
EOF
	chmod 600 "$1"
}
write_kubeconfig "$DIR/kubeconfig" maestro-admin "$ADMIN_TOKEN"
write_kubeconfig "$PKI/kcm.kubeconfig" system:kube-controller-manager "$KCM_TOKEN"
write_kubeconfig "$PKI/scheduler.kubeconfig" system:kube-scheduler "$SCHED_TOKEN"
write_kubeconfig "$PKI/kwok.kubeconfig" kwok-controller "$KWOK_TOKEN"

cat >"$DIR/env" <<EOF
export KUBECONFIG=$DIR/kubeconfig
export MAESTRO_KUBE_SERVER=$SERVER
export MAESTRO_KUBE_BIN=$BIN
export MAESTRO_KUBE_ETCD_PORT=$ETCD_PORT
export MAESTRO_KUBE_ETCD_PEER_PORT=$ETCD_PEER_PORT
export MAESTRO_KUBE_APISERVER_PORT=$API_PORT
export MAESTRO_KUBE_KCM_PORT=$KCM_PORT
export MAESTRO_KUBE_SCHEDULER_PORT=$SCHED_PORT
export MAESTRO_KUBE_KWOK_PORT=$KWOK_PORT
export MAESTRO_KUBE_NODE_NAME=$NODE_NAME
EOF

# ---- process helpers ------------------------------------------------------------
KUBECTL=("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig")
api_get() { # PATH  -> curl the apiserver as admin
	curl -fsS --max-time 5 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" "$SERVER$1"
}
local_healthz() { # PORT: the component's own (self-signed) /healthz
	curl -fsSk --max-time 5 "https://127.0.0.1:$1/healthz"
}

START=$SECONDS

# ---- etcd ---------------------------------------------------------------------
launch etcd "$ETCD" \
	--name=maestro-test \
	--data-dir="$DIR/etcd" \
	--listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
	--advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster="maestro-test=http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster-state=new \
	--quota-backend-bytes=$((2 * 1024 * 1024 * 1024))
wait_for etcd "etcd /health" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"

# ---- kube-apiserver -------------------------------------------------------------
# shellcheck disable=SC2086 # MAESTRO_KUBE_APISERVER_ARGS is meant to be word-split
launch kube-apiserver "$BIN/kube-apiserver" \
	--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
	--bind-address=127.0.0.1 \
	--advertise-address=127.0.0.1 \
	--secure-port="$API_PORT" \
	--cert-dir="$DIR/apiserver" \
	--tls-cert-file="$PKI/apiserver.crt" \
	--tls-private-key-file="$PKI/apiserver.key" \
	--client-ca-file="$PKI/ca.crt" \
	--token-auth-file="$PKI/tokens.csv" \
	--authorization-mode=RBAC \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local \
	--service-account-key-file="$PKI/sa.pub" \
	--service-account-signing-key-file="$PKI/sa.key" \
	--service-cluster-ip-range="$SERVICE_CIDR" \
	--requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
	--requestheader-allowed-names=front-proxy-client \
	--requestheader-username-headers=X-Remote-User \
	--requestheader-group-headers=X-Remote-Group \
	--requestheader-extra-headers-prefix=X-Remote-Extra- \
	--proxy-client-cert-file="$PKI/front-proxy-client.crt" \
	--proxy-client-key-file="$PKI/front-proxy-client.key" \
	--endpoint-reconciler-type=none \
	--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
	--kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
	--kubelet-preferred-address-types=InternalIP \
	--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction \
	--profiling=false \
	${MAESTRO_KUBE_APISERVER_ARGS:-}
wait_for kube-apiserver "kube-apiserver /readyz" api_get /readyz

# ---- kube-controller-manager ------------------------------------------------------
launch kube-controller-manager "$BIN/kube-controller-manager" \
	--kubeconfig="$PKI/kcm.kubeconfig" \
	--authentication-kubeconfig="$PKI/kcm.kubeconfig" \
	--authorization-kubeconfig="$PKI/kcm.kubeconfig" \
	--bind-address=127.0.0.1 \
	--secure-port="$KCM_PORT" \
	--cert-dir="$DIR/kcm" \
	--leader-elect=false \
	--controllers='*,-nodeipam,-cloud-node-lifecycle' \
	--kube-api-qps=1000 \
	--kube-api-burst=2000 \
	--use-service-account-credentials=true \
	--service-account-private-key-file="$PKI/sa.key" \
	--root-ca-file="$PKI/ca.crt" \
	--cluster-signing-cert-file="$PKI/ca.crt" \
	--cluster-signing-key-file="$PKI/ca.key" \
	--service-cluster-ip-range="$SERVICE_CIDR" \
	--profiling=false

# ---- kube-scheduler -----------------------------------------------------------------
launch kube-scheduler "$BIN/kube-scheduler" \
	--kubeconfig="$PKI/scheduler.kubeconfig" \
	--authentication-kubeconfig="$PKI/scheduler.kubeconfig" \
	--authorization-kubeconfig="$PKI/scheduler.kubeconfig" \
	--bind-address=127.0.0.1 \
	--secure-port="$SCHED_PORT" \
	--cert-dir="$DIR/scheduler" \
	--kube-api-qps=1000 \
	--kube-api-burst=2000 \
	--leader-elect=false \
	--profiling=false

# ---- kwok ---------------------------------------------------------------------------
# node-ip 127.0.0.1: anything that ever dials the fake "kubelet" stays on loopback.
# kwok manages only the nodes annotated kwok.x-k8s.io/node=fake (start.sh's and
# kubetest's fake nodes), never a real node (node-start.sh).
launch kwok "$BIN/kwok" \
	--kubeconfig="$PKI/kwok.kubeconfig" \
	--manage-all-nodes=false \
	--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
	--server-address="127.0.0.1:$KWOK_PORT" \
	--node-ip=127.0.0.1 \
	--node-port="$KWOK_PORT" \
	--node-lease-duration-seconds=40 \
	--cidr=10.244.0.0/16

wait_for kube-controller-manager "kube-controller-manager /healthz" local_healthz "$KCM_PORT"
wait_for kube-scheduler "kube-scheduler /healthz" local_healthz "$SCHED_PORT"
wait_for kwok "kwok /healthz" curl -fsS --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"

# ---- the fake node ------------------------------------------------------------------
"${KUBECTL[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
EOF
node_ready() {
	[[ "$("${KUBECTL[@]}" get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}
wait_for kwok "node $NODE_NAME Ready" node_ready

# ServiceAccount tokens: the token controller / SA admission need the default SA.
default_sa() { "${KUBECTL[@]}" -n default get serviceaccount default; }
wait_for kube-controller-manager "ServiceAccount default/default" default_sa

READY=1
log "control plane ready in $((SECONDS - START))s: export KUBECONFIG=$DIR/kubeconfig  (or: source $DIR/env)"
