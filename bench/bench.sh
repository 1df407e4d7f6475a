#!/usr/bin/env bash
# bench.sh runs every maestro-sync benchmark and writes bench/results.txt
# (`make bench` runs it). See bench/README.md for what each figure means.
#
#   (a) 100 instances on the default Docker engine: maestro-sync apply vs
#       docker compose up -d (first bring-up, then the no-op second run),
#       whole-process wall times, fresh state for each tool;
#   (b) a no-op plan (Observe + diff.Compute) over 200 live containers on 4
#       dockertest ships (internal/driver/docker BenchmarkNoopPlan);
#   (c) the pure diff of 10,000 instances in memory (internal/diff
#       BenchmarkCompute), and the manifest load benchmark;
#   (d) downtime: failed requests and latency under a constant vegeta
#       attack during 10 replacements of a web service, behind the front
#       proxy, on a host port, and with docker compose up -d; and the time
#       of maestro-sync rollback (bench/downtime);
#   (e) build on push: a one-line change of a web page in a build context,
#       from git push to the new page served by the daemon (build, push to
#       a registry, pull by digest, checked replace), beside docker build +
#       docker push + docker compose up -d of the same change by hand
#       (bench/buildpush);
#   (f) scale: a simulated fleet of 10,000 instances on 50 ships whose
#       Docker API answers each request after 5 ms (test/dockersim): the
#       no-op reconcile, and commit to healthy when one service changes
#       (internal/daemon BenchmarkFleet*);
#   (g) memory: the resident set of a daemon tracking 1,000 services on
#       10 real dockerd ships, idle and after 1,000 reconciles
#       (test/e2e BenchmarkDaemonMemory).
#
# It installs what it needs: the Docker test bed (scripts/docker-setup.sh,
# when the default engine or the test images are missing) and Docker
# Compose, built from the Go module proxy once and cached.
#
# Environment:
#   BENCH_INSTANCES    instances for (a) (default 100)
#   BENCH_ROUNDS       rounds of (a); the median is reported (default 3)
#   BENCH_CONCURRENCY  maestro-sync apply -c (default 16)
#   BENCH_SHIP_TIMEOUT the ship's timeout in seconds in the generated
#                      manifest (default 60; see README.md)
#   BENCH_COUNT        go test -count of the pure benchmarks (default 3)
#   BENCH_ONLY         "a" to "g" or a combination such as "bc"
#                      (default: all); results.txt is still written
#   BENCH_RESULTS      output file (default bench/results.txt)
#   COMPOSE_VERSION    Docker Compose version to build (default v5.5.1)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH

readonly SOCK=/var/run/docker.sock
readonly IMAGE=maestro-test/busybox:1
readonly PROJECT=msbench # compose project and maestro-sync environment
readonly N=${BENCH_INSTANCES:-100}
readonly ROUNDS=${BENCH_ROUNDS:-3}
readonly CONC=${BENCH_CONCURRENCY:-16}
readonly SHIP_TIMEOUT=${BENCH_SHIP_TIMEOUT:-60}
readonly ONLY=${BENCH_ONLY:-abcdefg}
readonly COUNT=${BENCH_COUNT:-3}
readonly RESULTS=${BENCH_RESULTS:-$ROOT/bench/results.txt}
readonly COMPOSE_VERSION=${COMPOSE_VERSION:-v5.5.1}
readonly CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/maestro-sync
readonly COMPOSE=$CACHE/docker-compose-$COMPOSE_VERSION

say() { printf 'bench: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}
want() { [[ $ONLY == *"$1"* ]]; }

# Everything of the run (generated files, binaries, logs) goes here; it is
# kept so that the files can be looked at afterwards.
WORK=$(mktemp -d /tmp/maestro-bench.XXXXXX)
OUT=$WORK/results.txt
: >"$OUT"
emit() { printf '%s\n' "$*" >>"$OUT"; }

# dock runs the docker CLI against the default engine.
dock() { env -u DOCKER_CONTEXT DOCKER_HOST=unix://$SOCK docker "$@"; }

# ---------------------------------------------------------------- setup

setup_docker() {
	# Idempotent and quick when all is there; it also restarts an engine
	# whose default bridge went missing.
	./scripts/docker-setup.sh >&2
}

install_compose() {
	if [ -x "$COMPOSE" ]; then
		return
	fi
	say "building Docker Compose $COMPOSE_VERSION from the Go module proxy (once; cached in $COMPOSE)"
	local dir
	# Outside the project, so that its go.mod is not involved.
	dir=$(cd "$WORK" && go mod download -json "github.com/docker/compose/v5@$COMPOSE_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$dir" ] || [ ! -d "$dir" ]; then
		die "go mod download github.com/docker/compose/v5@$COMPOSE_VERSION failed"
	fi
	mkdir -p "$CACHE"
	# go install refuses the module (exclude directives): build in its directory.
	(cd "$dir" && go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v5/internal.Version=$COMPOSE_VERSION" \
		-o "$COMPOSE.tmp.$$" ./cmd)
	mv "$COMPOSE.tmp.$$" "$COMPOSE"
}

# ---------------------------------------------------------------- helpers

now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# settle waits, up to two minutes, until the one-minute load average is
# below half the cores: the Docker daemon that setup_docker may just have
# started, and the builds before, are not to share the CPU with the pure
# benchmarks that follow.
settle() {
	local i
	for ((i = 0; i < 24; i++)); do
		awk -v n="$(nproc)" '{ exit !($1 < n / 2) }' /proc/loadavg && return 0
		sleep 5
	done
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }

# ours lists the IDs of every container either tool created for (a).
ours() {
	{
		dock ps -aq --filter "label=io.maestro-sync/env=$PROJECT"
		dock ps -aq --filter "label=com.docker.compose.project=$PROJECT"
	} | sort -u
}

# clean removes them (and a compose network, should one exist), then lets
# the engine settle, so that each measurement starts from the same state.
clean() {
	local ids
	ids=$(ours)
	if [ -n "$ids" ]; then
		# shellcheck disable=SC2086
		dock rm -f -v $ids >/dev/null
	fi
	dock network rm "${PROJECT}_default" >/dev/null 2>&1 || true
	[ -z "$(ours)" ] || die "could not remove the benchmark containers"
	sync
	sleep 2
}

running() {
	dock ps -q --filter "label=$1" --filter status=running | wc -l
}

generate() {
	local repo=$WORK/repo i s
	mkdir -p "$repo"
	{
		echo "# $N long-running instances on the default engine (generated by bench/bench.sh)"
		echo "__maestro: {schema: 2}"
		echo "name: $PROJECT"
		echo "ships:"
		echo "  local: {ip: 127.0.0.1, socket_path: $SOCK, timeout: $SHIP_TIMEOUT}"
		echo "services:"
		for ((i = 0; i < N; i++)); do
			printf -v s 'svc%03d' "$i"
			echo "  $s:"
			echo "    image: $IMAGE"
			echo "    instances:"
			echo "      $PROJECT-$s: {ship: local, command: [sleep, \"3600\"]}"
		done
	} >"$repo/manifest.yml"
	# The same containers for compose: the default bridge network (as
	# maestro-sync), the same command, hostname and stop timeout (10 s).
	{
		echo "# $N long-running services on the default engine (generated by bench/bench.sh)"
		echo "name: $PROJECT"
		echo "services:"
		for ((i = 0; i < N; i++)); do
			printf -v s 'svc%03d' "$i"
			echo "  $s:"
			echo "    image: $IMAGE"
			echo "    command: [sleep, \"3600\"]"
			echo "    network_mode: bridge"
			echo "    hostname: $PROJECT-$s"
			echo "    stop_grace_period: 10s"
		done
	} >"$WORK/compose.yml"
}

# timed NAME LOG CMD...: runs CMD with its output in LOG and prints its wall
# time in seconds; exits when it fails.
timed() {
	local name=$1 log=$2 start end rc=0
	shift 2
	start=$(now)
	"$@" >"$log" 2>&1 || rc=$?
	end=$(now)
	if [ "$rc" -ne 0 ]; then
		tail -n 20 "$log" >&2
		die "$name failed (exit $rc); output in $log"
	fi
	elapsed "$start" "$end"
}

# ---------------------------------------------------------------- (a)

ms() { "$WORK/maestro-sync" "$@"; }
compose() { env -u DOCKER_CONTEXT DOCKER_HOST=unix://$SOCK "$COMPOSE" -f "$WORK/compose.yml" -p "$PROJECT" "$@"; }

# run_maestro ROUND: first bring-up and no-op apply; appends to the series.
run_maestro() {
	local r=$1 t1 t2 t3 n
	clean
	local l1
	l1=$(loadavg)
	t1=$(timed "maestro-sync apply" "$WORK/ms-apply-$r.log" ms apply "$WORK/repo" -c "$CONC")
	n=$(running "io.maestro-sync/env=$PROJECT")
	[ "$n" -eq "$N" ] || die "maestro-sync: $n of $N containers run after apply; see $WORK/ms-apply-$r.log"
	t2=$(timed "maestro-sync apply (no-op)" "$WORK/ms-noop-$r.log" ms apply "$WORK/repo" -c "$CONC")
	grep -q '^Applied 0 step(s), 0 failed\.$' "$WORK/ms-noop-$r.log" || die "maestro-sync: the second apply changed something; see $WORK/ms-noop-$r.log"
	t3=$(timed "maestro-sync plan (no-op)" "$WORK/ms-plan-$r.log" ms plan "$WORK/repo")
	echo "$t1" >>"$WORK/ms-first"
	echo "$t2" >>"$WORK/ms-noop"
	echo "$t3" >>"$WORK/ms-plan"
	emit "$(printf '%-5s  %-30s %9.2f s %9.3f s %9.3f s   %s' "$r" "maestro-sync apply -c $CONC" "$t1" "$t2" "$t3" "$l1")"
	say "round $r: maestro-sync first ${t1}s, no-op apply ${t2}s, no-op plan ${t3}s"
}

# run_compose ROUND TAG [ARGS...]: the same with docker compose.
run_compose() {
	local r=$1 tag=$2 t1 t2 n l1
	shift 2
	clean
	l1=$(loadavg)
	t1=$(timed "compose up -d" "$WORK/$tag-up-$r.log" compose "$@" up -d)
	n=$(running "com.docker.compose.project=$PROJECT")
	[ "$n" -eq "$N" ] || die "compose: $n of $N containers run after up -d; see $WORK/$tag-up-$r.log"
	t2=$(timed "compose up -d (no-op)" "$WORK/$tag-noop-$r.log" compose "$@" up -d)
	if grep -Eq 'Creat|Recreat|Start(ing|ed)' "$WORK/$tag-noop-$r.log"; then
		die "compose: the second up -d changed something; see $WORK/$tag-noop-$r.log"
	fi
	echo "$t1" >>"$WORK/$tag-first"
	echo "$t2" >>"$WORK/$tag-noop"
	local label="compose up -d"
	[ $# -eq 0 ] || label="compose $* up -d"
	emit "$(printf '%-5s  %-30s %9.2f s %9.3f s %11s   %s' "$r" "$label" "$t1" "$t2" "-" "$l1")"
	say "round $r: $label first ${t1}s, no-op ${t2}s"
}

bench_a() {
	install_compose
	say "building maestro-sync"
	go build -o "$WORK/maestro-sync" ./cmd/maestro-sync
	generate
	ms validate "$WORK/repo" >/dev/null || die "the generated manifest does not validate: $WORK/repo/manifest.yml"
	compose config -q || die "the generated compose file does not validate: $WORK/compose.yml"
	trap 'clean >/dev/null 2>&1 || true' EXIT

	emit ""
	emit "== (a) $N instances on the default engine: maestro-sync apply vs docker compose up -d"
	emit "Whole-process wall times (one process per measurement), fresh state before each tool's first"
	emit "bring-up (every container of the benchmark removed, engine settled). Image $IMAGE (present),"
	emit "command sleep 3600, default bridge network, no published ports. maestro-sync apply -c $CONC,"
	emit "ship timeout ${SHIP_TIMEOUT}s; compose $("$COMPOSE" version --short) with its default parallelism"
	emit "(unlimited) and with --parallel $CONC. $ROUNDS round(s), the tools' order alternating; medians below."
	emit "Files: $WORK/repo/manifest.yml, $WORK/compose.yml"
	emit ""
	emit "round  tool                           bring-up   no-op run  no-op plan   load average before"
	local r
	for ((r = 1; r <= ROUNDS; r++)); do
		if ((r % 2)); then
			run_maestro "$r"
			run_compose "$r" compose
			run_compose "$r" compose-p --parallel "$CONC"
		else
			run_compose "$r" compose-p --parallel "$CONC"
			run_compose "$r" compose
			run_maestro "$r"
		fi
	done
	clean

	local msf msn msp cf cn cpf cpn
	msf=$(median <"$WORK/ms-first")
	msn=$(median <"$WORK/ms-noop")
	msp=$(median <"$WORK/ms-plan")
	cf=$(median <"$WORK/compose-first")
	cn=$(median <"$WORK/compose-noop")
	cpf=$(median <"$WORK/compose-p-first")
	cpn=$(median <"$WORK/compose-p-noop")
	emit ""
	thr() { awk -v n="$N" -v t="$1" 'BEGIN { printf "%.1f/s", n / t }'; }
	emit "Medians of $ROUNDS round(s); ratio = maestro-sync time / compose time (below 1: maestro-sync is faster)."
	emit "                                  maestro-sync  compose up -d   ratio  compose --parallel $CONC   ratio"
	emit "$(printf '%-32s %10.2f s %12.2f s %7s %21.2f s %7s' "first bring-up, $N instances" "$msf" "$cf" "$(ratio "$msf" "$cf")" "$cpf" "$(ratio "$msf" "$cpf")")"
	emit "$(printf '%-32s %10.3f s %12.3f s %7s %21.3f s %7s' "no-op second run" "$msn" "$cn" "$(ratio "$msn" "$cn")" "$cpn" "$(ratio "$msn" "$cpn")")"
	emit "$(printf '%-32s %12s %14s %7s %23s' "bring-up throughput" "$(thr "$msf")" "$(thr "$cf")" "" "$(thr "$cpf")")"
	emit "$(printf '%-32s %10.3f s' "no-op maestro-sync plan" "$msp")"
	# Where maestro-sync's bring-up time goes, from its progress lines
	# (each step's elapsed time when it reached each state).
	emit ""
	emit "maestro-sync per-step phases (mean over the $N steps of each round's first apply, -c $CONC):"
	for ((r = 1; r <= ROUNDS; r++)); do
		awk -v r="$r" '$1 == "create" {
			n = $2; st = $4; t = $NF; sub("s$", "", t)
			if (st == "creating") c[n] = t; else if (st == "starting") s[n] = t; else if (st == "done") d[n] = t
		}
		END {
			for (n in d) { img += c[n]; cr += s[n] - c[n]; sw += d[n] - s[n]; k++ }
			if (k) printf "round %d  image check %.3f s   create %.3f s   start + wait running %.3f s   (%d steps)\n", r, img / k, cr / k, sw / k, k
		}' "$WORK/ms-apply-$r.log" >>"$OUT"
	done
}

# ---------------------------------------------------------------- (b), (c)

# summarize: reads `go test -bench` output and prints one line per
# benchmark: the median of each metric over the -count runs, ns/op in a
# readable unit with its range when there are several runs.
summarize() {
	awk '
	function human(ns) {
		if (ns >= 1e9) return sprintf("%.2f s", ns / 1e9)
		if (ns >= 1e6) return sprintf("%.2f ms", ns / 1e6)
		if (ns >= 1e3) return sprintf("%.2f µs", ns / 1e3)
		return sprintf("%.0f ns", ns)
	}
	function median(key, n,   i, j, t, a) {
		for (i = 1; i <= n; i++) a[i] = val[key, i]
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j] < a[j - 1]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		lo = a[1]; hi = a[n]
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
		if (!(name in seen)) { seen[name] = 1; order[++names] = name }
		for (i = 3; i < NF; i += 2) {
			u = $(i + 1); k = name SUBSEP u
			if (!(k in cnt)) units[name] = units[name] " " u
			val[k, ++cnt[k]] = $i
		}
	}
	END {
		for (x = 1; x <= names; x++) {
			name = order[x]; line = sprintf("  %-40s", name)
			nu = split(substr(units[name], 2), us, " ")
			for (y = 1; y <= nu; y++) {
				u = us[y]; k = name SUBSEP u; m = median(k, cnt[k])
				if (u == "ns/op") {
					line = line sprintf(" %11s/op", human(m))
					if (cnt[k] > 1) line = line sprintf(" [%s – %s]", human(lo), human(hi))
				} else if (u ~ /^ns\//) line = line sprintf("   %s/%s", human(m), substr(u, 4))
				else if (u == "B/op") line = line sprintf("   %.2f MB/op", m / 1e6)
				else line = line sprintf("   %.10g %s", m, u)
			}
			print line
		}
	}'
}

# gobench TITLE LOG PKG [ARGS...]: runs the benchmarks of PKG and appends
# a summary and their result lines.
gobench() {
	local title=$1 log=$2 pkg=$3
	shift 3
	say "go test -bench . $* $pkg"
	if ! go test -run '^$' -bench . -benchmem "$@" "$pkg" >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "benchmarks of $pkg failed; output in $log"
	fi
	emit ""
	emit "== $title"
	emit "go test -run '^\$' -bench . -benchmem${*:+ $*} $pkg"
	emit "median per benchmark over the runs ([min – max] of the time per op when there are several):"
	summarize <"$log" >>"$OUT"
	emit "raw (-2 is GOMAXPROCS):"
	grep -E '^Benchmark' "$log" >>"$OUT" || true
}

# bench_d measures requests failed and latency during replacements
# (bench/downtime, vegeta as a library).
bench_d() {
	install_compose
	say "building maestro-sync and bench/downtime"
	go build -o "$WORK/maestro-sync" ./cmd/maestro-sync
	go build -o "$WORK/downtime" ./bench/downtime
	emit ""
	emit "== (d) downtime during replacements of one web service (busybox httpd), same engine, same run"
	"$WORK/downtime" -maestro-sync "$WORK/maestro-sync" -compose "$COMPOSE" -work "$WORK" >"$WORK/downtime.log" 2>&1 ||
		{ cat "$WORK/downtime.log" >&2; die "bench/downtime failed; output in $WORK/downtime.log"; }
	cat "$WORK/downtime.log" >>"$OUT"
	# Leave the engine as it was: the bench's containers (its owner's), and
	# the front proxy when nothing else is routed through it.
	dock rm -f $(dock ps -aq --filter label=io.maestro-sync/owner-name=maestro-sync-bench) >/dev/null 2>&1 || true
	dock rm -f $(dock ps -aq --filter label=com.docker.compose.project=dtcompose) >/dev/null 2>&1 || true
	if [ -z "$(dock ps -aq --filter label=io.maestro-sync/upstream)" ]; then
		dock rm -f maestro-sync-proxy >/dev/null 2>&1 || true
	fi
}

# bench_e measures git push to healthy of a code change that is built
# (bench/buildpush), against the same build, push and deploy by hand.
bench_e() {
	install_compose
	local registry=$CACHE/registry/registry-v3.1.2
	[ -x "$registry" ] || die "no registry binary at $registry (scripts/docker-setup.sh builds it)"
	say "building maestro-sync and bench/buildpush"
	go build -o "$WORK/maestro-sync" ./cmd/maestro-sync
	go build -o "$WORK/buildpush" ./bench/buildpush
	emit ""
	emit "== (e) build on push: one-line code change to healthy, warm build cache, same engine and registry, same run"
	"$WORK/buildpush" -maestro-sync "$WORK/maestro-sync" -compose "$COMPOSE" -registry "$registry" -work "$WORK" >"$WORK/buildpush.log" 2>&1 ||
		{ cat "$WORK/buildpush.log" >&2; die "bench/buildpush failed; output in $WORK/buildpush.log"; }
	cat "$WORK/buildpush.log" >>"$OUT"
	# Leave the engine as it was: the compose project's containers (the
	# daemon's own are removed by bench/buildpush).
	dock rm -f $(dock ps -aq --filter label=com.docker.compose.project=bpcompose) >/dev/null 2>&1 || true
}

# bench_f runs the simulated fleet's benchmarks and sets their figures
# beside the targets of issue #12.
bench_f() {
	local log=$WORK/fleet.log
	say "go test -bench ^BenchmarkFleet ./internal/daemon/ (simulated fleet)"
	if ! go test -run '^$' -bench '^BenchmarkFleet' -benchtime 3x -benchmem -timeout 30m ./internal/daemon/ >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "the fleet benchmarks failed; output in $log"
	fi
	emit ""
	emit "== (f) scale: 10,000 instances on 50 simulated ships (test/dockersim, 5 ms per API request)"
	emit "go test -run '^\$' -bench '^BenchmarkFleet' -benchtime 3x -benchmem ./internal/daemon/"
	emit "median per benchmark over the runs:"
	summarize <"$log" >>"$OUT"
	fig() { summarize <"$log" | awk -v n="$1" '$1 == n { print $2, $3 }'; }
	emit "targets (issue #12):"
	emit "$(printf '  %-58s %s   (target ≤ 500 ms)' "no-op reconcile, daemon following events (followed/plan-first)" "$(fig FleetNoop/followed/plan-first)")"
	emit "$(printf '  %-58s %s' "no-op reconcile, full observation under every lock (followed/locked)" "$(fig FleetNoop/followed/locked)")"
	emit "$(printf '  %-58s %s' "no-op reconcile, no events followed (unfollowed/plan-first)" "$(fig FleetNoop/unfollowed/plan-first)")"
	emit "$(printf '  %-58s %s' "manifest load through the daemon's cache, part of each (load)" "$(fig FleetNoop/load)")"
	emit "$(printf '  %-58s %s' "manifest.Load of the 10,000 instances (load-uncached)" "$(fig FleetNoop/load-uncached)")"
	emit "$(printf '  %-58s %s   (target ≤ 2 s + container start, ~0 here)' "commit → healthy, one service (50 instances) changed" "$(fig FleetCommitToHealthy)")"
	emit "raw (-2 is GOMAXPROCS):"
	grep -E '^Benchmark' "$log" >>"$OUT" || true
}

# ---------------------------------------------------------------- main

setup_docker
mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
engine=$(dock info --format '{{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupVersion}}' 2>/dev/null || echo unknown)
emit "maestro-sync benchmarks (bench/bench.sh; bench/README.md explains every figure)"
emit "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
emit "commit:  $(git describe --always --dirty 2>/dev/null || echo unknown)"
emit "machine: nproc $(nproc), memory $mem, $cpu, kernel $(uname -r)"
emit "go:      $(go env GOVERSION)"
emit "docker:  engine $engine"
emit "load:    $(loadavg) at start (the machine may be shared: see README.md)"

want c && settle && emit "load:    $(loadavg) before (c) and the manifest load"
want c && gobench "(c) pure diff.Compute, 10,000 instances in memory (and 1,000 for scale)" "$WORK/diff.log" ./internal/diff/ -count "$COUNT"
want c && gobench "manifest.Load, 1,000 services × 2 instances" "$WORK/manifest.log" ./internal/manifest/ -count "$COUNT" -benchtime 3s
want b && gobench "(b) no-op plan over 200 live containers on 4 dockertest ships" "$WORK/docker.log" ./internal/driver/docker/ -timeout 30m
want a && bench_a
want d && bench_d
want e && bench_e
want f && bench_f
want g && gobench "(g) memory of a daemon tracking 1,000 services on 10 real dockerd ships, idle and after 1,000 reconciles" \
	"$WORK/memory.log" ./test/e2e/ -benchtime 1x -timeout 60m

emit ""
emit "load:    $(loadavg) at end; logs in $WORK"
rm -f "$WORK/maestro-sync"
mkdir -p "$(dirname "$RESULTS")"
cp "$OUT" "$RESULTS"
cat "$RESULTS"
say "wrote $RESULTS"
