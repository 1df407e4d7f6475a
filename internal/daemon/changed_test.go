package daemon

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/live"
)

// TestLiveChanges: a live change reported during a run makes one more
// run follow it; one made by the last run that changed something, within
// the quiet time, starts nothing; another starts a run once its burst
// settled; repairs that live changes of one object keep starting (a
// container that keeps dying) wait longer each time, without delaying a
// change of another object.
func TestLiveChanges(t *testing.T) {
	d := New(Config{Source: &fakeSource{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), BackoffMin: time.Second, BackoffMax: time.Minute})
	woken := func(within time.Duration) bool {
		select {
		case <-d.wake:
			d.mu.Lock()
			d.pending = nil
			d.mu.Unlock()
			return true
		case <-time.After(within):
			return false
		}
	}
	change := func(object string, at time.Time) {
		d.changed(live.Change{Object: object, What: object + " changed", At: at})
	}

	d.running = true
	change("during", time.Now())
	if !d.changedDuring || d.eventTimer != nil {
		t.Errorf("a change during a run: followed %v, timer %v", d.changedDuring, d.eventTimer != nil)
	}
	d.running = false

	now := time.Now()
	d.mutFrom, d.mutUntil = now.Add(-2*time.Second), now.Add(-500*time.Millisecond)
	change("the run's own", now.Add(-time.Second))
	change("the run's own, reported late", now.Add(-100*time.Millisecond))
	if woken(300 * time.Millisecond) {
		t.Errorf("the last run's own changes started a run")
	}
	change("by hand", now.Add(-3*time.Second))
	change("the same burst", now.Add(-3*time.Second))
	if !woken(time.Second) {
		t.Fatalf("a change by hand started no run")
	}
	if woken(300 * time.Millisecond) {
		t.Errorf("one burst started two runs")
	}
	d.mu.Lock()
	if !d.burst["by hand"] || !d.burst["the same burst"] || !d.burst["during"] || d.burst["the run's own"] {
		t.Errorf("the burst the next event run answers: %v", d.burst)
	}
	d.countRepairs(d.burst, time.Now())
	d.burst = nil
	if r := d.repairs["by hand"]; r.n != 1 {
		t.Errorf("repairs of the object: %+v", r)
	}
	d.repairs["dies again"] = repairs{n: 3, last: time.Now()} // the next waits BackoffMin<<2 = 4s
	d.mu.Unlock()

	change("dies again", now.Add(-3*time.Second))
	if woken(time.Second) {
		t.Errorf("a repeated repair did not back off")
	}
	start := time.Now()
	change("another, by hand", now.Add(-3*time.Second))
	if !woken(time.Second) {
		t.Errorf("a change of another object waited for the one that backs off")
	}
	t.Logf("the other object's run came after %s", time.Since(start).Round(time.Millisecond))

	d.mu.Lock()
	if d.eventTimer != nil {
		d.eventTimer.Stop()
		d.eventTimer = nil
	}
	d.repairs["dies again"] = repairs{n: 3, last: time.Now().Add(-eventCalm - time.Second)} // calm since
	d.mu.Unlock()
	change("dies again", now.Add(-3*time.Second))
	if !woken(time.Second) {
		t.Errorf("the backoff was not reset after a calm")
	}
	d.mu.Lock()
	d.countRepairs(map[string]bool{"dies again": true}, time.Now())
	if r := d.repairs["dies again"]; r.n != 1 {
		t.Errorf("repairs after a calm: %+v", r)
	}
	d.mu.Unlock()
}
