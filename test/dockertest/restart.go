package dockertest

import "testing"

// Restart stops the ship's dockerd with SIGTERM and starts it again on the
// same data, as a host restart of the engine would: containers without a
// restart policy stay stopped.
func (s *Ship) Restart(t testing.TB) {
	t.Helper()
	if err := s.stopDockerd(); err != nil {
		t.Fatalf("ship %s: stop dockerd: %v", s.Name, err)
	}
	if err := s.startDockerd(s.Driver); err != nil {
		t.Fatalf("ship %s: start dockerd: %v", s.Name, err)
	}
}
