#!/usr/bin/env bash
# Build a real Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, and etcd at the version kubernetes pins) from the Go
# module proxy, plus kwok, into a cache dir, and make sure Debian's etcd-server
# is installed as a fallback etcd. Idempotent: a binary is rebuilt only when it
# is missing or older than the tools module's go.mod, go.sum or its main.go.
#
# Usage: test/kube/build.sh [--force]
# Env:
#   MAESTRO_KUBE_BIN  cache dir for the binaries (default ~/.cache/maestro-sync/kube-bin)
#   KWOK_VERSION      kwok version to install (default v0.7.0)
#   MAESTRO_KUBE_GO_P go build -p (default: 2; raise only with memory to spare)
# Prints the path of the bin dir as its last line.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS="$HERE/tools"
BIN="${MAESTRO_KUBE_BIN:-$HOME/.cache/maestro-sync/kube-bin}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
GO_P="${MAESTRO_KUBE_GO_P:-2}"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

log() { printf '[kube-build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

command -v go >/dev/null 2>&1 || { [[ -x /usr/local/go/bin/go ]] && export PATH="/usr/local/go/bin:$PATH"; }
command -v go >/dev/null 2>&1 || { log "go not found"; exit 1; }

# The tools module is a separate module: never let a go.work or the parent module leak in.
export GOWORK=off
export GOFLAGS="-buildvcs=false -mod=readonly"
export CGO_ENABLED="${CGO_ENABLED:-0}"

mkdir -p "$BIN"

# ---- etcd (Debian package) ---------------------------------------------------
if ! command -v etcd >/dev/null 2>&1; then
	log "etcd not found: installing Debian's etcd-server"
	SUDO=""
	[[ "$(id -u)" != 0 ]] && SUDO="sudo"
	export DEBIAN_FRONTEND=noninteractive
	if ! $SUDO apt-get install -y --no-install-recommends etcd-server >/dev/null; then
		$SUDO apt-get update >/dev/null
		$SUDO apt-get install -y --no-install-recommends etcd-server >/dev/null
	fi
fi
log "fallback etcd: $(command -v etcd) ($(etcd --version 2>/dev/null | head -1)); the default etcd is built below"

# ---- the real node's runtime (Debian packages) ---------------------------------
# test/kube/node-start.sh runs a kubelet with its own containerd: Debian's
# containerd (ctr and the runc v2 shim come with it), runc, the CNI plugins
# (bridge, host-local, loopback) and busybox-static for the offline images.
node_missing=()
command -v containerd >/dev/null 2>&1 || node_missing+=(containerd)
command -v runc >/dev/null 2>&1 || node_missing+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] || node_missing+=(containernetworking-plugins)
[[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)" == "install ok installed" ]] || node_missing+=(busybox-static)
if ((${#node_missing[@]} > 0)); then
	log "installing Debian's ${node_missing[*]} for the test node"
	SUDO=""
	[[ "$(id -u)" != 0 ]] && SUDO="sudo"
	export DEBIAN_FRONTEND=noninteractive
	if ! $SUDO apt-get install -y --no-install-recommends "${node_missing[@]}" >/dev/null; then
		$SUDO apt-get update >/dev/null
		$SUDO apt-get install -y --no-install-recommends "${node_missing[@]}" >/dev/null
	fi
fi

# ---- Kubernetes binaries -------------------------------------------------------
# Version stamping, as kubernetes' hack/lib/version.sh does; without it the
# binaries report v0.0.0-master+$Format:%H$ from /version and `kubectl version`.
KUBE_VERSION="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$TOOLS/go.mod")"
[[ "$KUBE_VERSION" =~ ^v([0-9]+)\.([0-9]+)\. ]] || { log "cannot find k8s.io/kubernetes version in $TOOLS/go.mod"; exit 1; }
LDFLAGS="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
	LDFLAGS+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=${BASH_REMATCH[1]} -X $pkg.gitMinor=${BASH_REMATCH[2]}"
	LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done
GO_VERSION="$(go env GOVERSION)"

# inputs_hash NAME: hash of everything a binary is built from.
inputs_hash() {
	cat "$TOOLS/go.mod" "$TOOLS/go.sum" "$TOOLS/cmd/$1/main.go" | sha256sum | cut -d' ' -f1
}
# up_to_date NAME: the binary exists and the input hash recorded next to it
# still matches (a fresh clone gives the files new mtimes, and a file edited
# during a build is newer than nothing); without a record, the binary is newer
# than go.mod, go.sum and its main.go.
up_to_date() {
	local name="$1" out="$BIN/$1" f
	[[ -x "$out" ]] || return 1
	if [[ -f "$BIN/.$name.inputs" ]]; then
		[[ "$(cat "$BIN/.$name.inputs")" == "$(inputs_hash "$name") $GO_VERSION" ]]
		return
	fi
	for f in "$TOOLS/go.mod" "$TOOLS/go.sum" "$TOOLS/cmd/$name/main.go"; do
		[[ "$out" -nt "$f" ]] || return 1
	done
}

TOTAL_START=$SECONDS
# The apiserver first: it has the largest dependency set, so the later builds
# mostly reuse its compiled packages from the Go build cache.
for name in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kubelet pause testweb; do
	out="$BIN/$name"
	if [[ $FORCE == 0 ]] && up_to_date "$name"; then
		log "$name: up to date, skipping"
		continue
	fi
	log "$name: building (go build -p $GO_P) ..."
	start=$SECONDS
	# The inputs as they are when the build starts: a file edited during the
	# build then makes the next run build again.
	inputs="$(inputs_hash "$name") $GO_VERSION"
	# Build to a temp name and rename, so an interrupted build never leaves a
	# half-written binary that looks up to date.
	(cd "$TOOLS" && go build -p "$GO_P" -trimpath -ldflags="$LDFLAGS" -o "$out.tmp" "./cmd/$name")
	mv -f "$out.tmp" "$out"
	echo "$inputs" >"$BIN/.$name.inputs"
	log "$name: built in $((SECONDS - start))s ($(du -h "$out" | cut -f1))"
done

# ---- kwok -------------------------------------------------------------------------
# kwok is installed from its own module (it pins older k8s.io libraries, so it
# is not built inside the tools module). Its version is recorded next to it.
if [[ $FORCE == 0 && -x "$BIN/kwok" && "$(cat "$BIN/kwok.version" 2>/dev/null)" == "$KWOK_VERSION" ]]; then
	log "kwok $KWOK_VERSION: up to date, skipping"
else
	log "kwok $KWOK_VERSION: go install ..."
	start=$SECONDS
	(cd "$TOOLS" && GOFLAGS=-buildvcs=false GOBIN="$BIN" go install -p "$GO_P" -trimpath -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION")
	echo "$KWOK_VERSION" >"$BIN/kwok.version"
	log "kwok: built in $((SECONDS - start))s"
fi

log "done in $((SECONDS - TOTAL_START))s; binaries in $BIN"
ls -l "$BIN" >&2
echo "$BIN"
