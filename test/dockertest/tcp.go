package dockertest

import (
	"errors"
	"fmt"
	"net"
	"testing"
)

// StartShipWithArgs starts one ship for this test, as StartShips does, with
// extra dockerd arguments appended, such as
//
//	"--host", "tcp://127.0.0.1:23750"
//
// or the TLS flags (--tlsverify, --tlscacert, --tlscert, --tlskey). The unix
// socket stays the ship's Host: Docker and the readiness check use it. The
// ship is stopped when the test ends.
func StartShipWithArgs(t testing.TB, extra ...string) *Ship {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	tarball, err := imageTar()
	if err != nil {
		t.Fatal(err)
	}
	sweepOnce.Do(sweepStale)
	s, err := claimSlot("ship-args")
	if err != nil {
		t.Fatal(err)
	}
	s.extra = extra
	if err := s.start(tarball); err != nil {
		t.Fatal(errors.Join(fmt.Errorf("ship %s: %w", s.Name, err), s.stop()))
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// FreePort returns a TCP port that is free on 127.0.0.1 now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
