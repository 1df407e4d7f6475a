package sourcetest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshdPath is where Debian's openssh-server installs sshd.
const sshdPath = "/usr/sbin/sshd"

// SSHServer is OpenSSH's sshd serving a Repo on a loopback port, for the
// current user, with a key pair made for the test.
type SSHServer struct {
	// URL is the repository's ssh:// URL (user, address and absolute path).
	URL string
	// Addr is the server's address, 127.0.0.1:port.
	Addr string
	// User is the account the client logs in as (the current user).
	User string
	// KeyFile holds the client's private key (OpenSSH format, no passphrase).
	KeyFile string
	// KnownHostsFile trusts the server's host key for Addr.
	KnownHostsFile string
	// HostKey is the server's public host key.
	HostKey ssh.PublicKey
	// Log is sshd's log file, shown when the server fails to start.
	Log string
}

// ServeSSH serves repo over SSH and returns its URL, the client's private
// key file and a known_hosts file trusting the server. The test's cleanup
// stops the server.
func ServeSSH(t testing.TB, repo *Repo) (url, keyFile, knownHostsFile string) {
	t.Helper()
	s := NewSSHServer(t, repo)
	return s.URL, s.KeyFile, s.KnownHostsFile
}

// NewSSHServer starts sshd (/usr/sbin/sshd, from Debian's openssh-server;
// the test fails when it is missing) with its own configuration, host key
// and authorized_keys in a temporary directory, listening on a free
// loopback port. The client logs in as the current user (root included);
// sessions run git-upload-pack from the user's PATH. The test's cleanup
// stops the server.
func NewSSHServer(t testing.TB, repo *Repo) *SSHServer {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Fatalf("sourcetest: %s is missing: install Debian's openssh-server (apt-get install openssh-server; `make test` does it via scripts/docker-setup.sh)", sshdPath)
	}
	need(t, "git-upload-pack", "git")
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sourcetest: current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd running as root needs its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sourcetest: %v", err)
		}
	}
	dir := t.TempDir()
	s := &SSHServer{User: u.Username, Log: filepath.Join(dir, "sshd.log")}

	hostKey := writeKey(t, filepath.Join(dir, "host_ed25519"))
	clientKey := writeKey(t, filepath.Join(dir, "client_ed25519"))
	s.HostKey, s.KeyFile = hostKey, filepath.Join(dir, "client_ed25519")
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientKey), 0o600); err != nil {
		t.Fatalf("sourcetest: %v", err)
	}

	// A free port may be taken by someone else before sshd binds it: retry.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("sourcetest: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", port)
		if lastErr = s.start(t, dir, authorized); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		log, _ := os.ReadFile(s.Log)
		t.Fatalf("sourcetest: sshd: %v\n%s", lastErr, log)
	}

	s.KnownHostsFile = filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, hostKey) + "\n"
	if err := os.WriteFile(s.KnownHostsFile, []byte(line), 0o600); err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	s.URL = "ssh://" + s.User + "@" + s.Addr + filepath.ToSlash(repo.Bare)
	return s
}

// start runs sshd on s.Addr and waits until it greets; it returns an error
// when sshd exits first (the port was taken, say).
func (s *SSHServer) start(t testing.TB, dir, authorized string) error {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.Addr)
	config := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{
		"Port " + port,
		"ListenAddress " + host,
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"PidFile none",
		"AuthorizedKeysFile " + authorized,
		"AllowUsers " + s.User,
		"StrictModes no",
		"UsePAM no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"UseDNS no",
		"PrintMotd no",
		"X11Forwarding no",
		"AllowTcpForwarding no",
		"MaxStartups 100",
		"LogLevel VERBOSE",
	}, "\n") + "\n"
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		return err
	}
	log, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	// -D: stay in the foreground, -e: log to stderr.
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", config)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("exited at start: %v", err)
		default:
		}
		if greets(s.Addr) {
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return errors.New("did not answer within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greets tells whether an SSH server answers at addr.
func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// writeKey writes a new ed25519 private key in OpenSSH format (mode 0600,
// as ssh and sshd require) and returns its public key.
func writeKey(t testing.TB, file string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	return key
}

// NewHostKey returns a fresh public key, e.g. to write a known_hosts file
// that trusts another key than the server's.
func NewHostKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	return writeKey(t, filepath.Join(t.TempDir(), "key"))
}

// KnownHosts writes a known_hosts file that trusts key for the server's
// address, and returns its path.
func (s *SSHServer) KnownHosts(t testing.TB, key ssh.PublicKey) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, key) + "\n"
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	return file
}
