package daemon

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestLiveChanges: a live change reported during a run makes one more
// run follow it; one made by the last run that changed something, within
// the quiet time, starts nothing; another starts a run once its burst
// settled; and repairs that live changes keep starting (a container that
// keeps dying) wait longer each time.
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

	d.running = true
	d.changed("during", time.Now())
	if !d.changedDuring || d.eventTimer != nil {
		t.Errorf("a change during a run: followed %v, timer %v", d.changedDuring, d.eventTimer != nil)
	}
	d.running = false

	now := time.Now()
	d.mutFrom, d.mutUntil = now.Add(-2*time.Second), now.Add(-500*time.Millisecond)
	d.changed("the run's own", now.Add(-time.Second))
	d.changed("the run's own, reported late", now.Add(-100*time.Millisecond))
	if woken(300 * time.Millisecond) {
		t.Errorf("the last run's own changes started a run")
	}
	d.changed("by hand", now.Add(-3*time.Second))
	d.changed("the same burst", now.Add(-3*time.Second))
	if !woken(time.Second) {
		t.Fatalf("a change by hand started no run")
	}
	if woken(300 * time.Millisecond) {
		t.Errorf("one burst started two runs")
	}

	d.eventRepairs, d.lastEventRepair = 3, time.Now() // the next waits BackoffMin<<2 = 4s
	d.changed("dies again", now.Add(-3*time.Second))
	if woken(time.Second) {
		t.Errorf("a repeated repair did not back off")
	}
	d.mu.Lock()
	d.eventTimer.Stop()
	d.eventTimer = nil
	d.eventRepairs, d.lastEventRepair = 3, time.Now().Add(-eventCalm-time.Second) // calm since
	d.mu.Unlock()
	d.changed("after a calm", now.Add(-3*time.Second))
	if !woken(time.Second) || d.eventRepairs != 0 {
		t.Errorf("the backoff was not reset after a calm: %d", d.eventRepairs)
	}
}
