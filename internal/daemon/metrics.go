package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the daemon's Prometheus metrics. Labels never carry
// credentials: the source is not a label, environments and revisions are.
type Metrics struct {
	Registry        *prometheus.Registry
	runs            *prometheus.CounterVec
	runDuration     prometheus.Histogram
	steps           *prometheus.CounterVec
	gitDuration     *prometheus.HistogramVec
	gitErrors       *prometheus.CounterVec
	appliedRevision *prometheus.GaugeVec
	drift           *prometheus.CounterVec
	commitToHealthy prometheus.Histogram
	stalled         *prometheus.GaugeVec
	shard           *prometheus.GaugeVec
	rolloutBatch    *prometheus.GaugeVec
	rolloutBatches  *prometheus.GaugeVec
	rolloutFailed   *prometheus.CounterVec
}

// NewMetrics registers the metrics on a new registry, with the Go and
// process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maestro_sync_reconcile_runs_total", Help: "Reconcile runs by result: success, failed, stalled, source_error.",
		}, []string{"result"}),
		runDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "maestro_sync_reconcile_duration_seconds", Help: "Duration of reconcile runs.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maestro_sync_steps_total", Help: "Applied plan steps by action (create, replace, remove) and result (success, failed, aborted).",
		}, []string{"action", "result"}),
		gitDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "maestro_sync_git_duration_seconds", Help: "Duration of Git operations: check (list the remote ref) and fetch.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"op"}),
		gitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maestro_sync_git_errors_total", Help: "Failed Git operations by op (check, fetch).",
		}, []string{"op"}),
		appliedRevision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "maestro_sync_applied_revision_info", Help: "The revision every instance of an environment runs (value 1).",
		}, []string{"env", "revision"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "maestro_sync_drift_detected_total", Help: "Resyncs that found live state differing from an already applied revision, by environment.",
		}, []string{"env"}),
		commitToHealthy: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "maestro_sync_commit_to_healthy_seconds", Help: "From the commit time (or the webhook's arrival, when later) to the moment the last replacement of the revision passed its checks.",
			Buckets: []float64{.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800},
		}),
		shard: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "maestro_sync_shard_info", Help: "1 for the shard of the repository this daemon deploys: its path globs and label selector (absent without a shard).",
		}, []string{"environments", "selector"}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "maestro_sync_environment_stalled", Help: "1 when an environment waits for a new commit (invalid manifest or untrusted commit).",
		}, []string{"env"}),
	}
	m.rolloutBatch = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "maestro_sync_rollout_batch", Help: "The batch of a staged rollout being baked, or the last one baked, by environment and service.",
	}, []string{"env", "service"})
	m.rolloutBatches = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "maestro_sync_rollout_batches", Help: "The number of batches of a service's staged rollout.",
	}, []string{"env", "service"})
	m.rolloutFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "maestro_sync_rollout_failed_total", Help: "Staged rollouts stopped by a batch that failed its bake (and was swapped back).",
	}, []string{"env", "service"})
	reg.MustRegister(m.runs, m.runDuration, m.steps, m.gitDuration, m.gitErrors, m.appliedRevision, m.drift, m.commitToHealthy, m.stalled, m.shard,
		m.rolloutBatch, m.rolloutBatches, m.rolloutFailed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveGit records a Git operation; it fits source.GitOptions.Observe.
func (m *Metrics) ObserveGit(op string, d time.Duration, err error) {
	m.gitDuration.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.gitErrors.WithLabelValues(op).Inc()
	}
}

func (m *Metrics) setApplied(env, revision string) {
	m.appliedRevision.DeletePartialMatch(prometheus.Labels{"env": env})
	if revision != "" {
		m.appliedRevision.WithLabelValues(env, revision).Set(1)
	}
}
