#!/usr/bin/env bash
# kube.sh benchmarks the Kubernetes driver and writes bench/results-kube.txt.
#
# About 500 objects — BENCH_KUBE_SERVICES cluster services (default 167) ×
# ConfigMap + Deployment + Service — are applied to one real control plane
# (test/kube: kube-apiserver, controller-manager, scheduler, etcd, kwok),
# side by side in each round:
#   - the kube driver: observe, plan, apply (BENCH_KUBE_CONCURRENCY steps at
#     once, default 16), every step waiting for its rollout before switching
#     the Service, in a fresh namespace;
#   - kubectl apply --server-side -f of the very same objects (rendered by
#     the driver's own builders) in another fresh namespace, then kubectl wait
#     --for=condition=Available for every Deployment;
# then the no-op second run of each (driver: observe + plan, 0 steps;
# kubectl: the same apply again). Which tool goes first alternates between
# rounds. It is internal/driver/kube BenchmarkApply500, one round per
# iteration; medians over BENCH_KUBE_ROUNDS rounds (default 3) are reported.
#
# Environment: BENCH_KUBE_SERVICES, BENCH_KUBE_CONCURRENCY, BENCH_KUBE_ROUNDS,
# BENCH_KUBE_QPS (the driver's client QPS, default 100, burst twice that),
# BENCH_KUBE_RESULTS (default bench/results-kube.txt).
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
ROUNDS=${BENCH_KUBE_ROUNDS:-3}
RESULTS=${BENCH_KUBE_RESULTS:-bench/results-kube.txt}
export BENCH_KUBE_SERVICES=${BENCH_KUBE_SERVICES:-167}
export BENCH_KUBE_CONCURRENCY=${BENCH_KUBE_CONCURRENCY:-16}

say() { printf 'bench/kube: %s\n' "$*" >&2; }

say "building the control plane if needed (test/kube/build.sh)"
BIN=$(./test/kube/build.sh 2>/dev/null | tail -1)

WORK=$(mktemp -d /tmp/maestro-bench-kube.XXXXXX)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "running $ROUNDS round(s) of $BENCH_KUBE_SERVICES services (raw output in $WORK/raw.txt)"
if ! go test -run '^$' -bench '^BenchmarkApply500$' -benchtime 1x -count "$ROUNDS" -timeout 60m \
	./internal/driver/kube/ >"$WORK/raw.txt" 2>&1; then
	cat "$WORK/raw.txt" >&2
	say "the benchmark failed; nothing written"
	exit 1
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# metric NAME: the values of one metric, one per round.
metric() { awk -v m="$1" '/^BenchmarkApply500/ { for (i = 3; i < NF; i++) if ($(i + 1) == m) print $i }' "$WORK/raw.txt"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "[%s – %s]", lo, hi }'; }
line() { # LABEL METRIC UNIT
	printf '  %-44s %8s %s  %s\n' "$1" "$(metric "$2" | median)" "$3" "$(metric "$2" | range)"
}

objects=$(metric objects | head -1 | awk '{ printf "%.0f", $1 }')
{
	echo "maestro-sync kube driver benchmark (bench/kube.sh; BenchmarkApply500 in internal/driver/kube)"
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty tree)')"
	echo "machine: nproc $(nproc), memory $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
	echo "go:      $(go env GOVERSION)"
	echo "cluster: $("$BIN/kube-apiserver" --version 2>/dev/null) with etcd $("$BIN/etcd" --version 2>/dev/null | head -1 | awk '{print $3}') and kwok $(cat "$BIN/kwok.version"), all on this machine"
	echo "load:    $load_start at start, $load_end at end (the machine may be shared)"
	echo
	echo "== $objects objects ($BENCH_KUBE_SERVICES services × ConfigMap + Deployment + Service, 1 replica each,"
	echo "   plus the Namespace; the driver also keeps its inventory ConfigMap), one apiserver"
	echo "median of $ROUNDS round(s) [min – max], seconds of wall time"
	line "kube driver: observe + plan + apply (-c $BENCH_KUBE_CONCURRENCY)" driver-s s
	line "kubectl apply --server-side" kubectl-apply-s s
	line "kubectl apply --server-side + kubectl wait" kubectl-apply+wait-s s
	line "ratio driver / kubectl apply" ratio-vs-apply ""
	line "ratio driver / (kubectl apply + wait)" ratio-vs-apply+wait ""
	echo
	echo "== no-op second run on the unchanged objects"
	line "kube driver: observe + plan (0 steps)" driver-noop-s s
	line "  the same from the watches (daemon), first" driver-noop-watched-first-s s
	line "  the same from the watches, next (median of 9)" driver-noop-watched-s s
	line "  API requests of those 10 runs" driver-noop-watched-requests ""
	line "kubectl apply --server-side (no change)" kubectl-noop-s s
	echo
	echo "What is compared: the driver does more than kubectl apply — per service it"
	echo "checks that no foreign object holds the names, records the objects in the"
	echo "inventory, applies the ConfigMap and Deployment, waits until every pod is"
	echo "available, then switches the Service and looks for old objects to delete."
	echo "kubectl apply only sends the objects (one at a time); kubectl wait then waits"
	echo "for the Deployments' Available condition. Same objects, same apiserver, same"
	echo "run; which tool goes first alternates between rounds."
	echo
	echo "raw (-2 is GOMAXPROCS):"
	grep '^BenchmarkApply500' "$WORK/raw.txt"
} >"$RESULTS"
say "wrote $RESULTS"
cat "$RESULTS"
