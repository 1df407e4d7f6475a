# lib.sh: the shell helpers of start.sh and node-start.sh, which source it.
# The sourcing script sets LOG_TAG (the prefix of its log lines) before it
# logs, and RUN_DIR (where its logs/ and pids file are) and TIMEOUT (seconds
# wait_for waits) before it launches anything.

log() { printf '[%s %s] %s\n' "$LOG_TAG" "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Ports: a free one is a random port nothing uses, below the kernel's
# ephemeral range (32768 and up here), so that no outgoing connection of
# the busy machine can take it between the pick and the bind, and none of
# USED_PORTS (the ports the caller was given).
USED_PORTS=" "
port_busy() { ss -Htan "( sport = :$1 )" 2>/dev/null | grep -q . ; }
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
		[[ "$USED_PORTS" == *" $p "* ]] && continue
		port_busy "$p" && continue
		echo "$p"
		return 0
	done
	die "no free port found"
}

launch() { # NAME CMD...
	local name="$1"
	shift
	# Runs on after the script exits; the stop scripts stop it by pid.
	"$@" >"$RUN_DIR/logs/$name.log" 2>&1 </dev/null &
	local pid=$!
	echo "$name $pid" >>"$RUN_DIR/pids"
	log "$name started (pid $pid)"
}
alive() { # NAME
	local pid
	pid="$(awk -v n="$1" '$1 == n { print $2 }' "$RUN_DIR/pids")"
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}
wait_for() { # NAME DESCRIPTION COMMAND...
	local name="$1" what="$2" deadline=$((SECONDS + TIMEOUT))
	shift 2
	until "$@" >/dev/null 2>&1; do
		alive "$name" || die "$name exited while waiting for $what (see $RUN_DIR/logs/$name.log)"
		((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $what"
		sleep 0.2
	done
	# The answer may have come from another process on a port it took
	# after the pick: the component itself must still run.
	sleep 0.2
	alive "$name" || die "$name exited after $what answered (see $RUN_DIR/logs/$name.log)"
	log "$what: ok"
}
