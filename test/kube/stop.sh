#!/usr/bin/env bash
# Stop a control plane started by test/kube/start.sh DIR.
# Stops exactly the pids recorded in DIR/pids, newest first and one at a time:
# SIGTERM, then SIGKILL after MAESTRO_KUBE_STOP_TIMEOUT seconds (default 15). A pid is only
# signalled while its command line still names the recorded binary, so a
# recycled pid is never hit. DIR itself (logs, etcd data) is left in place.
#
# Usage: test/kube/stop.sh DIR
set -uo pipefail

DIR="${1:?usage: $0 DIR}"
PIDS="$DIR/pids"
TIMEOUT="${MAESTRO_KUBE_STOP_TIMEOUT:-15}"

log() { printf '[kube-stop %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ ! -f "$PIDS" ]]; then
	log "no $PIDS: nothing to stop"
	exit 0
fi

# ours NAME PID: the pid is alive and is still the process we started.
ours() {
	local name="$1" pid="$2" cmd
	[[ -r "/proc/$pid/cmdline" ]] || return 1
	cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
	[[ "$cmd" == *"$name"* ]]
}

# A real node (node-start.sh) goes first, while the apiserver still answers.
if [[ -s "$DIR/node/pids" ]]; then
	"$(dirname "${BASH_SOURCE[0]}")/node-stop.sh" "$DIR"
fi

# Newest first, one at a time: clients go before the apiserver, and the
# apiserver before etcd (etcd otherwise waits for the apiserver's watch streams
# to drain, which adds seconds to every stop).
mapfile -t entries < <(tac "$PIDS")
for e in "${entries[@]}"; do
	read -r name pid <<<"$e"
	[[ -n "${pid:-}" ]] || continue
	ours "$name" "$pid" || continue
	start=$SECONDS
	kill -TERM "$pid" 2>/dev/null || continue
	deadline=$((SECONDS + TIMEOUT))
	while ours "$name" "$pid"; do
		# A zombie (exited, not yet reaped by its parent) counts as stopped.
		[[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && break
		if ((SECONDS >= deadline)); then
			kill -KILL "$pid" 2>/dev/null && log "$name (pid $pid): did not stop in ${TIMEOUT}s, SIGKILL"
			sleep 0.2
			break
		fi
		sleep 0.1
	done
	log "$name (pid $pid): stopped ($((SECONDS - start))s)"
done

mv -f "$PIDS" "$PIDS.stopped"
log "stopped"
