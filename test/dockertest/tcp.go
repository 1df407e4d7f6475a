package dockertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	if err := s.startWithArgs(tarball, extra); err != nil {
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

func (s *Ship) startWithArgs(tarball string, extra []string) error {
	if err := os.MkdirAll(filepath.Join(s.dir, "data"), 0o700); err != nil {
		return err
	}
	if err := s.addBridge(); err != nil {
		return err
	}
	var errs []error
	for _, driver := range storageCandidates() {
		err := s.startDockerdArgs(driver, extra)
		if err == nil {
			errs = nil
			break
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	_, err := docker(ctx, s.Host, "load", "-q", "-i", tarball)
	return err
}

// startDockerdArgs is startDockerd with extra arguments.
// TODO: fold into startDockerd (an extra-arguments field on Ship) when
// dockertest.go is next edited; this copy exists so that file stays as is.
func (s *Ship) startDockerdArgs(driver string, extra []string) error {
	ns := fmt.Sprintf("maestro-ship%d", s.slot)
	args := []string{
		"--host", s.Host,
		"--data-root", filepath.Join(s.dir, "data"),
		"--exec-root", filepath.Join(s.dir, "exec"),
		"--pidfile", filepath.Join(s.dir, "docker.pid"),
		"--storage-driver", driver,
		"--bridge", s.Bridge,
		"--ip", s.IP,
		"--iptables=false",
		"--ip-masq=false",
		"--ip-forward=false",
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns + "-plugins",
	}
	args = append(args, extra...)
	logf, err := os.OpenFile(s.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s dockertest: dockerd %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(args, " "))

	cmd := exec.Command("dockerd", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.done, s.err, s.Driver = cmd, make(chan struct{}), nil, driver
	go func() { // owned by stop (or the failure path below), which waits on done
		s.err = cmd.Wait()
		close(s.done)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if err := ping(ctx, s.Socket); err == nil {
			return nil
		}
		select {
		case <-s.done:
			err := fmt.Errorf("dockerd --storage-driver=%s exited at start (%v):\n%s", driver, s.err, logTail(s.LogPath()))
			s.cmd, s.done = nil, nil
			return err
		case <-ctx.Done():
			err := fmt.Errorf("dockerd --storage-driver=%s did not answer on %s within %s:\n%s", driver, s.Socket, startTimeout, logTail(s.LogPath()))
			err = errors.Join(err, s.stopDockerd())
			s.cmd, s.done = nil, nil
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
