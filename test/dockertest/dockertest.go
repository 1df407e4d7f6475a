// Package dockertest starts real dockerd "ships" for integration tests.
//
// Each ship is a separate dockerd on this machine with its own socket, data and
// exec roots, containerd namespace and Linux bridge (10.201.<slot>.1/24), so that
// several ships run side by side and do not see each other's containers. A
// ship's published ports bind to its bridge address, Ship.IP, so every ship can
// publish the same host port.
//
// The test bed is prepared by scripts/docker-setup.sh (which `make test` runs):
// it installs Docker and busybox-static, starts the default engine and builds
// the offline images Busybox1 and Busybox2, which are loaded into every ship.
// Nothing is pulled from a registry. Ships need root (bridges, dockerd).
//
// StartShips gives a test its own ships, stopped at the end of the test. Shared
// gives ships started once per test binary; it needs TestMain to call Main:
//
//	func TestMain(m *testing.M) { dockertest.Main(m) }
//
// When the test bed is missing, tests fail (they are never skipped) with a
// message telling to run scripts/docker-setup.sh.
package dockertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The offline test images, built by scripts/docker-setup.sh from busybox-static.
// They hold the same busybox but differ in image ID, in the label
// io.maestro-test.version and in /etc/maestro-test-version and /www/index.html
// ("maestro-test/busybox:1" or ":2").
const (
	Busybox1 = "maestro-test/busybox:1"
	Busybox2 = "maestro-test/busybox:2"
)

// Proxy is the front proxy's test image: Caddy, built from the Go module
// proxy by scripts/docker-setup.sh, with busybox (as the official caddy:2
// image has).
const Proxy = "maestro-test/caddy:2"

// Images lists the images loaded into every ship.
var Images = []string{Busybox1, Busybox2, Proxy}

const (
	// DefaultHost is the default engine that holds the test images.
	DefaultHost = "unix:///var/run/docker.sock"

	// baseDir holds one directory per ship slot plus the slot lock files. It
	// is absolute and machine-wide on purpose: bridges and subnets are
	// machine-wide too, and socket paths must stay short (108 bytes).
	baseDir = "/tmp/maestro-dockertest"

	maxSlot      = 250
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second

	setupHint = "run scripts/docker-setup.sh (or make test, which runs it)"
)

// Ship is one running dockerd.
type Ship struct {
	Name   string // ship1, ship2, ... in the order started
	Socket string // path of the engine's unix socket
	Host   string // "unix://" + Socket, for docker -H or DOCKER_HOST
	IP     string // bridge address; published ports bind here and answer here
	Subnet string // the bridge's subnet, containers get addresses in it
	Bridge string // name of the Linux bridge
	Driver string // storage driver in use

	slot  int
	extra []string // more dockerd arguments (StartShipWithArgs)
	dir   string   // data, exec root, pidfile, log
	lock  *os.File // flock on the slot, held while the ship lives
	cmd   *exec.Cmd
	done  chan struct{} // closed when dockerd has exited
	err   error         // dockerd's exit status, valid once done is closed
}

// LogPath is the path of the ship's dockerd log.
func (s *Ship) LogPath() string { return filepath.Join(s.dir, "dockerd.log") }

// Docker runs the docker CLI against the ship and returns its standard output
// without the trailing newline. It fails the test when the command fails.
func (s *Ship) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(context.Background(), s.Host, args...)
	if err != nil {
		t.Fatalf("ship %s: %v", s.Name, err)
	}
	return out
}

// RemoveAll removes every container of the ship (and their anonymous volumes).
func (s *Ship) RemoveAll(t testing.TB) {
	t.Helper()
	if err := s.removeAll(context.Background()); err != nil {
		t.Fatalf("ship %s: %v", s.Name, err)
	}
}

func (s *Ship) removeAll(ctx context.Context) error {
	ids, err := docker(ctx, s.Host, "ps", "-aq")
	if err != nil {
		return err
	}
	if ids == "" {
		return nil
	}
	_, err = docker(ctx, s.Host, append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
	return err
}

// Available reports whether ships can be started here: root, the docker,
// dockerd and ip commands, a default engine answering on DefaultHost and the
// test images in it. The error says what is missing and how to fix it.
func Available() error {
	availMu.Lock()
	defer availMu.Unlock()
	if availOK {
		return nil
	}
	if err := available(); err != nil {
		return fmt.Errorf("dockertest: docker test bed not ready: %w; %s", err, setupHint)
	}
	availOK = true
	return nil
}

var (
	availMu sync.Mutex
	availOK bool
)

func available() error {
	if os.Geteuid() != 0 {
		return errors.New("ships need root (bridges, dockerd)")
	}
	for _, name := range []string{"docker", "dockerd", "ip"} {
		if _, err := exec.LookPath(name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ping(ctx, socketPath(DefaultHost)); err != nil {
		return fmt.Errorf("default engine %s: %w", DefaultHost, err)
	}
	if _, err := docker(ctx, DefaultHost, append([]string{"image", "inspect", "--format", "{{.Id}}"}, Images...)...); err != nil {
		return fmt.Errorf("test images: %w", err)
	}
	return nil
}

// StartShips starts n new ships for this test and stops them (containers
// first) when the test ends. It fails the test, never skips it, when the test
// bed is missing.
func StartShips(t testing.TB, n int) []*Ship {
	t.Helper()
	ships, err := startShips(n, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stopShips(ships); err != nil {
			t.Error(err)
		}
	})
	return ships
}

// Shared returns n ships started once per test binary: the first call starts
// them, a later call with a larger n starts the missing ones, and Main stops
// them all after the tests. Every container on them is removed when the
// calling test ends, so tests using Shared must not run in parallel with each
// other. Shared fails the test when TestMain does not call Main.
func Shared(t testing.TB, n int) []*Ship {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("dockertest.Shared needs the package's TestMain to call dockertest.Main(m)")
	}
	if more := n - len(shared.ships); more > 0 {
		ships, err := startShips(more, len(shared.ships)+1)
		if err != nil {
			t.Fatal(err)
		}
		shared.ships = append(shared.ships, ships...)
	}
	all := append([]*Ship(nil), shared.ships...)
	t.Cleanup(func() {
		for _, s := range all {
			if err := s.removeAll(context.Background()); err != nil {
				t.Errorf("ship %s: %v", s.Name, err)
			}
		}
	})
	return all[:n]
}

var shared struct {
	mu    sync.Mutex
	main  bool
	ships []*Ship
}

// Main runs the tests and then stops the ships started by Shared. Call it
// from TestMain; it does not return.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.main = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	ships := shared.ships
	shared.ships = nil
	shared.mu.Unlock()
	if err := stopShips(ships); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// startShips starts n ships named ship<first>, ship<first+1>, ... in parallel.
// On error the ships already started are stopped.
func startShips(n, first int) ([]*Ship, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	tarball, err := imageTar()
	if err != nil {
		return nil, err
	}
	sweepOnce.Do(sweepStale)
	if err := allowForward(); err != nil {
		return nil, err
	}
	ships := make([]*Ship, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ships[i], errs[i] = startShip(fmt.Sprintf("ship%d", first+i), tarball)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		var started []*Ship
		for _, s := range ships {
			if s != nil {
				started = append(started, s)
			}
		}
		return nil, errors.Join(err, stopShips(started))
	}
	return ships, nil
}

// shipNets are the subnets of the ships' bridges and of the networks
// their engines create (--default-address-pool).
var shipNets = []string{"10.201.0.0/16", "10.202.0.0/16"}

// allowForward lets containers of a ship reach each other over a bridge
// (the front proxy its upstreams): the default engine sets the host's
// FORWARD policy to DROP, and bridged traffic passes through it. The
// rules go first in FORWARD, once per boot.
func allowForward() error {
	forwardOnce.Do(func() {
		for _, src := range shipNets {
			for _, dst := range shipNets {
				rule := []string{"FORWARD", "-s", src, "-d", dst, "-j", "ACCEPT"}
				if run(context.Background(), "iptables", append([]string{"-C"}, rule...)...) == nil {
					continue
				}
				if err := run(context.Background(), "iptables", append([]string{"-I"}, rule...)...); err != nil {
					forwardErr = fmt.Errorf("dockertest: allow forwarding between ship containers: %w", err)
					return
				}
			}
		}
	})
	return forwardErr
}

var (
	forwardOnce sync.Once
	forwardErr  error
)

// stopShips stops the ships in parallel.
func stopShips(ships []*Ship) error {
	errs := make([]error, len(ships))
	var wg sync.WaitGroup
	for i, s := range ships {
		wg.Go(func() { errs[i] = s.stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// storageDriver is the storage driver that last worked for a ship; the next
// ships use it without trying others. MAESTRO_TEST_STORAGE_DRIVER forces one.
var storageDriver struct {
	mu   sync.Mutex
	name string
}

func storageCandidates() []string {
	if d := os.Getenv("MAESTRO_TEST_STORAGE_DRIVER"); d != "" {
		return []string{d}
	}
	storageDriver.mu.Lock()
	defer storageDriver.mu.Unlock()
	if storageDriver.name != "" {
		return []string{storageDriver.name}
	}
	return []string{"overlay2", "vfs"}
}

func startShip(name, tarball string) (*Ship, error) {
	s, err := claimSlot(name)
	if err != nil {
		return nil, err
	}
	if err := s.start(tarball); err != nil {
		return nil, errors.Join(fmt.Errorf("ship %s: %w", name, err), s.stop())
	}
	return s, nil
}

func (s *Ship) start(tarball string) error {
	if err := os.MkdirAll(filepath.Join(s.dir, "data"), 0o700); err != nil {
		return err
	}
	if err := s.addBridge(); err != nil {
		return err
	}
	var errs []error
	for _, driver := range storageCandidates() {
		err := s.startDockerd(driver)
		if err == nil {
			errs = nil
			break
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	storageDriver.mu.Lock()
	storageDriver.name = s.Driver
	storageDriver.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if _, err := docker(ctx, s.Host, "load", "-q", "-i", tarball); err != nil {
		return err
	}
	return nil
}

// claimSlot takes the first free slot: a slot is held by an flock on its lock
// file for the life of the ship, across processes (go test runs packages in
// parallel). Leftovers of a dead holder (dockerd, bridge, directory) are
// cleaned when the slot is claimed again.
func claimSlot(name string) (*Ship, error) {
	if err := os.MkdirAll(baseDir, 0o700); err != nil {
		return nil, err
	}
	taken := hostSubnets()
	for slot := 1; slot <= maxSlot; slot++ {
		ip := net.IPv4(10, 201, byte(slot), 1)
		if taken(ip) {
			continue
		}
		s, err := lockSlot(slot, name)
		if err != nil {
			return nil, err
		}
		if s != nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("no free ship slot among %d", maxSlot)
}

// lockSlot takes slot if no one holds it, cleans what a dead holder left and
// returns the ship to be. It returns nil, nil when the slot is held.
func lockSlot(slot int, name string) (*Ship, error) {
	f, err := os.OpenFile(filepath.Join(baseDir, fmt.Sprintf("slot-%d.lock", slot)), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock slot %d: %w", slot, err)
	}
	ip := net.IPv4(10, 201, byte(slot), 1)
	s := &Ship{
		Name:   name,
		IP:     ip.String(),
		Subnet: fmt.Sprintf("10.201.%d.0/24", slot),
		Bridge: fmt.Sprintf("msb%d", slot),
		slot:   slot,
		dir:    filepath.Join(baseDir, strconv.Itoa(slot)),
		lock:   f,
	}
	s.Socket = filepath.Join(s.dir, "docker.sock")
	s.Host = "unix://" + s.Socket
	if err := s.cleanStale(); err != nil {
		f.Close()
		return nil, fmt.Errorf("slot %d: clean leftovers: %w", slot, err)
	}
	return s, nil
}

var sweepOnce sync.Once

// sweepStale cleans the leftovers of every slot no live process holds, such
// as those of a test binary killed by a timeout or ^C (its dockerds die with
// it, but bridges and directories stay).
func sweepStale() {
	locks, _ := filepath.Glob(filepath.Join(baseDir, "slot-*.lock"))
	for _, path := range locks {
		slot, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "slot-"), ".lock"))
		if err != nil {
			continue
		}
		if s, err := lockSlot(slot, ""); err == nil && s != nil {
			s.lock.Close()
		}
	}
}

// hostSubnets returns a function telling whether ip is in a subnet of an
// interface that is not one of our bridges (it would clash).
func hostSubnets() func(net.IP) bool {
	var nets []*net.IPNet
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if strings.HasPrefix(ifc.Name, "msb") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				nets = append(nets, n)
			}
		}
	}
	return func(ip net.IP) bool {
		for _, n := range nets {
			if n.Contains(ip) {
				return true
			}
		}
		return false
	}
}

// cleanStale removes what a dead holder of the slot left: its dockerd, its
// bridge and its directory.
func (s *Ship) cleanStale() error {
	if b, err := os.ReadFile(filepath.Join(s.dir, "docker.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && isDockerd(pid) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			deadline := time.Now().Add(stopTimeout)
			for isDockerd(pid) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if isDockerd(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return errors.Join(s.delBridge(), s.delNetworks(), removeDir(s.dir))
}

func isDockerd(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(comm)) == "dockerd"
}

func (s *Ship) addBridge() error {
	if err := s.delBridge(); err != nil {
		return err
	}
	if err := s.delNetworks(); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", s.Bridge, "type", "bridge"},
		{"addr", "add", s.IP + "/24", "dev", s.Bridge},
		{"link", "set", s.Bridge, "up"},
	} {
		if err := run(context.Background(), "ip", args...); err != nil {
			return fmt.Errorf("bridge %s: %w", s.Bridge, err)
		}
	}
	return nil
}

// pool is the subnet of the networks the ship's engine creates.
func (s *Ship) pool() string { return fmt.Sprintf("10.202.%d.0/24", s.slot) }

// delNetworks deletes the Linux bridges of networks a previous engine of
// the slot created: they outlive it, and their routes would make the next
// engine find no free subnet.
func (s *Ship) delNetworks() error {
	out, err := exec.Command("ip", "-o", "-4", "addr", "show", "to", s.pool()).Output()
	if err != nil {
		return fmt.Errorf("list bridges of %s: %w", s.pool(), err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[1], "br-") {
			continue
		}
		if err := run(context.Background(), "ip", "link", "del", f[1]); err != nil {
			return fmt.Errorf("bridge %s: %w", f[1], err)
		}
	}
	return nil
}

func (s *Ship) delBridge() error {
	if _, err := net.InterfaceByName(s.Bridge); err != nil {
		return nil // already gone
	}
	if err := run(context.Background(), "ip", "link", "del", s.Bridge); err != nil {
		return fmt.Errorf("bridge %s: %w", s.Bridge, err)
	}
	return nil
}

// startDockerd starts dockerd with the storage driver and waits until it
// answers. On failure dockerd is not running any more.
func (s *Ship) startDockerd(driver string) error {
	ns := fmt.Sprintf("maestro-ship%d", s.slot)
	args := []string{
		"--host", s.Host,
		"--data-root", filepath.Join(s.dir, "data"),
		"--exec-root", filepath.Join(s.dir, "exec"),
		"--pidfile", filepath.Join(s.dir, "docker.pid"),
		"--storage-driver", driver,
		"--bridge", s.Bridge,
		"--ip", s.IP, // published ports bind to this ship's own address
		// User-defined networks (the front proxy's) get subnets of their
		// own: the ships share this host's routing table.
		"--default-address-pool", "base=" + s.pool() + ",size=26",
		// The default engine owns iptables and the host's sysctls; ships
		// publish through docker-proxy and are reached from this host only.
		"--iptables=false",
		"--ip-masq=false",
		"--ip-forward=false",
		// Separate even when dockerd uses a system-wide containerd.
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns + "-plugins",
	}
	args = append(args, s.extra...)
	logf, err := os.OpenFile(s.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s dockertest: dockerd %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(args, " "))

	cmd := exec.Command("dockerd", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // not killed by ^C before we clean up
		Pdeathsig: syscall.SIGTERM, // but not left behind if the test binary dies
	}
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
			s.cmd, s.done = nil, nil // nothing left to stop
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

// stop removes the ship's containers, stops dockerd, deletes the bridge and
// the directory and releases the slot.
func (s *Ship) stop() error {
	var errs []error
	if s.done != nil {
		select {
		case <-s.done:
			errs = append(errs, fmt.Errorf("dockerd died early (%v):\n%s", s.err, logTail(s.LogPath())))
		default:
			ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
			errs = append(errs, s.removeAll(ctx))
			cancel()
			errs = append(errs, s.stopDockerd())
		}
	}
	errs = append(errs, s.delBridge(), s.delNetworks(), removeDir(s.dir))
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ship %s: stop: %w", s.Name, err)
	}
	return nil
}

// stopDockerd sends SIGTERM, then SIGKILL if dockerd is still running after
// stopTimeout, and waits for it to exit.
func (s *Ship) stopDockerd() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(stopTimeout):
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	return fmt.Errorf("dockerd did not stop within %s after SIGTERM; killed", stopTimeout)
}

// removeDir unmounts whatever is still mounted below dir (a killed dockerd
// leaves overlay and shm mounts) and removes it.
func removeDir(dir string) error {
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var mounts []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
				mounts = append(mounts, f[4])
			}
		}
		for i := len(mounts) - 1; i >= 0; i-- { // children first
			_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
		}
	}
	return os.RemoveAll(dir)
}

// imageTar returns a tarball of Images saved from the default engine, cached in
// os.TempDir() under a name derived from the image IDs.
func imageTar() (string, error) {
	imageTarMu.Lock()
	defer imageTarMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	ids, err := docker(ctx, DefaultHost, append([]string{"image", "inspect", "--format", "{{.Id}}"}, Images...)...)
	if err != nil {
		return "", fmt.Errorf("dockertest: test images: %w; %s", err, setupHint)
	}
	sum := sha256.Sum256([]byte(strings.Join(Images, ",") + "\n" + ids))
	path := filepath.Join(os.TempDir(), "maestro-test-images-"+hex.EncodeToString(sum[:6])+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if _, err := docker(ctx, DefaultHost, append([]string{"save", "-o", tmp}, Images...)...); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("dockertest: save test images: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic: other test binaries may race
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

var imageTarMu sync.Mutex

// docker runs the docker CLI against host and returns its trimmed output.
func docker(ctx context.Context, host string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--host", host}, args...)...)
	// --host conflicts with a DOCKER_CONTEXT, and DOCKER_HOST must not win.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_HOST=") && !strings.HasPrefix(kv, "DOCKER_CONTEXT=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker --host %s %s: %w: %s", host, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimRight(stdout.String(), "\n"), nil
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ping asks the engine listening on socket for /_ping.
func ping(ctx context.Context, socket string) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: %s: %s", resp.Status, body)
	}
	return nil
}

func socketPath(host string) string { return strings.TrimPrefix(host, "unix://") }

// logTail returns the last lines of a log file, for error messages.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return strings.Join(lines, "\n")
}
