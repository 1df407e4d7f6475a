#!/usr/bin/env bash
# Stop the real node started by test/kube/node-start.sh DIR and restore the
# host, in this order: cordon the node, delete its pods and wait for them,
# stop the kubelet, kill the containers left, stop containerd, unmount
# everything under DIR/node (deepest first), remove the node's cgroups,
# delete the bridge, write back the sysctls the kubelet changed, remove the
# machine-wide directories the start created, delete the Node object.
#
# Works after a failed or partial start, and when the control plane is
# already gone (the API steps are then skipped). Each restoring step runs
# once: its record in DIR/node is renamed when done. Processes are stopped
# by the pids recorded in DIR/node/pids, and only while their command line
# still names the recorded binary.
#
# Usage: test/kube/node-stop.sh DIR
# Env: MAESTRO_KUBE_STOP_TIMEOUT (seconds per process before SIGKILL, default 15),
#      MAESTRO_NODE_DRAIN_TIMEOUT (seconds to wait for the pods to go, default 60)
set -uo pipefail

DIR="${1:?usage: $0 DIR}"
N="$DIR/node"
TIMEOUT="${MAESTRO_KUBE_STOP_TIMEOUT:-15}"
DRAIN="${MAESTRO_NODE_DRAIN_TIMEOUT:-60}"
BIN="${MAESTRO_KUBE_BIN:-$HOME/.cache/maestro-sync/kube-bin}"

log() { printf '[node-stop %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ ! -d "$N" ]]; then
	log "no $N: nothing to stop"
	exit 0
fi
START=$SECONDS
NAME="$(sed -n 's/^export MAESTRO_NODE_NAME=//p' "$N/env" 2>/dev/null)"
[[ -n "$NAME" ]] || NAME="${MAESTRO_NODE_NAME:-maestro-node-0}"
SOCK="$N/containerd.sock"

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$N/pids" 2>/dev/null; }
# ours NAME PID: the pid is alive and is still the process we started.
ours() {
	local name="$1" pid="$2" cmd
	[[ -r "/proc/$pid/cmdline" ]] || return 1
	[[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 1
	cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")"
	[[ "$cmd" == *"$name"* && "$cmd" == *"$N"* ]]
}
stop_pid() { # NAME
	local name="$1" pid start deadline
	pid="$(pid_of "$name")"
	[[ -n "$pid" ]] && ours "$name" "$pid" || return 0
	start=$SECONDS
	kill -TERM "$pid" 2>/dev/null || return 0
	deadline=$((SECONDS + TIMEOUT))
	while ours "$name" "$pid"; do
		if ((SECONDS >= deadline)); then
			kill -KILL "$pid" 2>/dev/null && log "$name (pid $pid): did not stop in ${TIMEOUT}s, SIGKILL"
			sleep 0.2
			break
		fi
		sleep 0.1
	done
	log "$name (pid $pid): stopped ($((SECONDS - start))s)"
}

# ---- 1. cordon, delete the node's pods, wait ----------------------------------------
KUBECTL=("$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" --request-timeout=5s)
api_up() { [[ -x "$BIN/kubectl" && -f "$DIR/kubeconfig" ]] && "${KUBECTL[@]}" get --raw /readyz >/dev/null 2>&1; }
API=0
if api_up && "${KUBECTL[@]}" get node "$NAME" >/dev/null 2>&1; then
	API=1
	"${KUBECTL[@]}" cordon "$NAME" >/dev/null 2>&1 || true
	if [[ -n "$(pid_of kubelet)" ]] && ours kubelet "$(pid_of kubelet)"; then
		# The kubelet stops the containers (their grace period capped at
		# 10 s) and the pod objects go once it has.
		"${KUBECTL[@]}" delete pods --all-namespaces --field-selector "spec.nodeName=$NAME" \
			--grace-period=10 --wait=false >/dev/null 2>&1 || true
		deadline=$((SECONDS + DRAIN))
		while [[ -n "$("${KUBECTL[@]}" get pods --all-namespaces --field-selector "spec.nodeName=$NAME" -o name 2>/dev/null)" ]]; do
			if ((SECONDS >= deadline)); then
				log "pods still on $NAME after ${DRAIN}s: going on"
				break
			fi
			sleep 0.5
		done
		log "pods of $NAME deleted ($((SECONDS - START))s)"
	fi
fi

# ---- 2. the kubelet ------------------------------------------------------------------
stop_pid kubelet

# ---- 3. containers left, then containerd and its shims ----------------------------------
if [[ -S "$SOCK" ]] && [[ -n "$(pid_of containerd)" ]] && ours containerd "$(pid_of containerd)"; then
	CTR=(ctr --address "$SOCK" --timeout 10s -n k8s.io)
	mapfile -t tasks < <("${CTR[@]}" tasks ls -q 2>/dev/null)
	if ((${#tasks[@]} > 0)); then
		log "killing ${#tasks[@]} container(s) left"
		for t in "${tasks[@]}"; do "${CTR[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
		for t in "${tasks[@]}"; do
			for _ in 1 2 3 4 5 6 7 8 9 10; do
				"${CTR[@]}" tasks delete "$t" >/dev/null 2>&1 && break
				sleep 0.2
			done
		done
	fi
fi
stop_pid containerd
# Shims whose containerd went first exit on their own; any left is ours by
# its -address.
for p in /proc/[0-9]*; do
	cmd="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" || continue
	if [[ "$cmd" == *containerd-shim* && "$cmd" == *"-address $SOCK "* ]]; then
		kill -KILL "${p#/proc/}" 2>/dev/null && log "killed shim ${p#/proc/}"
	fi
done

# ---- 4. mounts under DIR/node, deepest first ------------------------------------------
umount_all() {
	awk -v n="$N/" 'index($5, n) == 1 { print $5 }' /proc/self/mountinfo | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-
}
for _ in 1 2 3; do
	mapfile -t mounts < <(umount_all)
	((${#mounts[@]} == 0)) && break
	for m in "${mounts[@]}"; do
		m="$(printf '%b' "$m")" # mountinfo escapes a space as \040
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
	done
done
[[ -z "$(umount_all)" ]] && log "mounts under $N: none left"

# ---- 5. cgroups ------------------------------------------------------------------------
if [[ -f "$N/cgroup-root" ]]; then
	root="$(cat "$N/cgroup-root")"
	left=0
	for h in /sys/fs/cgroup/*/; do
		d="${h%/}$root"
		[[ -d "$d" ]] || continue
		# Deepest first; rmdir of a cgroup removes its control files.
		while read -r c; do
			rmdir "$c" 2>/dev/null || { left=1; log "cannot remove cgroup $c (tasks: $(tr '\n' ' ' <"$c/cgroup.procs" 2>/dev/null))"; }
		done < <(find "$d" -depth -type d 2>/dev/null)
	done
	((left)) || mv -f "$N/cgroup-root" "$N/cgroup-root.removed"
fi

# ---- 6. the bridge ------------------------------------------------------------------------
if [[ -f "$N/bridge" ]]; then
	br="$(cat "$N/bridge")"
	if ip link show "$br" >/dev/null 2>&1; then
		ip link del "$br" && log "bridge $br deleted"
	fi
	mv -f "$N/bridge" "$N/bridge.deleted"
fi

# ---- 7. sysctls ------------------------------------------------------------------------------
if [[ -f "$N/sysctls" ]]; then
	while IFS='=' read -r k v; do
		[[ -n "$k" ]] || continue
		[[ "$(sysctl -n "$k" 2>/dev/null)" == "$v" ]] || sysctl -qw "$k=$v" || log "cannot restore $k=$v"
	done <"$N/sysctls"
	mv -f "$N/sysctls" "$N/sysctls.restored"
	log "sysctls restored"
fi

# ---- 8. machine-wide paths the start created ------------------------------------------------
if [[ -f "$N/created" ]]; then
	# The CNI plugins' result cache of this node's network.
	rm -f /var/lib/cni/results/maestro-node-* 2>/dev/null
	# Deepest first.
	while read -r p; do
		case "$p" in
		/var/lib/kubelet/device-plugins) rm -rf "$p" ;;
		/var/lib/kubelet | /var/lib/cni | /var/lib/cni/results) rmdir "$p" 2>/dev/null || [[ ! -e "$p" ]] || log "$p is not empty: left" ;;
		esac
	done < <(awk '{ print length, $0 }' "$N/created" | sort -rn | cut -d' ' -f2-)
	mv -f "$N/created" "$N/created.removed"
fi

# ---- 9. the Node object ------------------------------------------------------------------------
if ((API)); then
	"${KUBECTL[@]}" delete node "$NAME" --wait=false >/dev/null 2>&1 || true
fi

[[ -f "$N/pids" ]] && mv -f "$N/pids" "$N/pids.stopped"
log "node $NAME stopped in $((SECONDS - START))s"
