package daemon

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
	"github.com/maestro-sync/maestro-sync/test/dockersim"
)

// TestHeapStaysFlatAcrossRuns: the live heap of a daemon that follows the
// events of 2 simulated ships with 400 containers is the same after 500
// more no-op runs (each asked for as the API does) as before them.
func TestHeapStaysFlatAcrossRuns(t *testing.T) {
	ships := dockersim.Fleet(t, 2, dockersim.Options{Images: []string{fleetImage}})
	own := owner.New("heap")
	hosts := &reconcile.Hosts{Docker: docker.NewPool(), Owner: own}
	t.Cleanup(func() { hosts.Docker.Close() })
	src := &fakeSource{}
	src.set("r1", map[string]string{"manifest.yml": fleetManifest(ships, 1)})
	ended := make(chan struct{}, 1)
	d, _, _ := runDaemon(t, Config{Source: src, Target: hosts, Owner: own, Branch: "main", Concurrency: 16,
		Poll: time.Hour, Resync: time.Hour, BackoffMin: time.Second, BackoffMax: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RunEnded: func() { ended <- struct{}{} }})
	runs := func(n int) {
		for i := range n {
			d.Trigger("api", time.Now())
			select {
			case <-ended:
			case <-time.After(time.Minute):
				t.Fatalf("run %d did not end within a minute", i+1)
			}
		}
	}
	<-ended // the deploy
	if st := envState(d, "fleet"); st.State != "synced" {
		t.Fatalf("after the deploy: %+v", st)
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	runs(100) // caches and pools reach their size
	before := heap()
	runs(500)
	after := heap()
	t.Logf("live heap %d KiB before 500 no-op runs, %d KiB after", before/1024, after/1024)
	if limit := before + max(before/100, 256<<10); after > limit {
		t.Errorf("live heap grew from %d KiB to %d KiB across 500 no-op runs", before/1024, after/1024)
	}
}
