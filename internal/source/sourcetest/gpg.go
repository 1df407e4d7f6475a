package sourcetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// GPGKey is an OpenPGP signing key (ed25519, no passphrase) in its own
// GnuPG home.
type GPGKey struct {
	// Home is the GNUPGHOME holding the secret key.
	Home string
	// Fingerprint identifies the key (upper-case hex).
	Fingerprint string
	// Armored is the armored public key.
	Armored string
	// KeyringFile holds Armored.
	KeyringFile string
}

// NewGPGKey makes a signing key for "name <name@maestro-sync.invalid>" with
// gpg (Debian's gnupg; the test fails when it is missing). The gpg-agent
// it starts is stopped by the test's cleanup.
func NewGPGKey(t testing.TB, name string) *GPGKey {
	t.Helper()
	need(t, "gpg", "gnupg")
	// Not t.TempDir(): gpg-agent's socket path must stay short (108 bytes).
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	t.Cleanup(func() {
		cmd := exec.Command("gpgconf", "--kill", "all")
		cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
		_ = cmd.Run()
		_ = os.RemoveAll(home)
	})
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	k := &GPGKey{Home: home}
	gpg := func(args ...string) string {
		t.Helper()
		return run(t, home, []string{"GNUPGHOME=" + home}, "gpg", append([]string{"--batch", "--no-tty"}, args...)...)
	}
	uid := name + " <" + strings.ToLower(strings.ReplaceAll(name, " ", ".")) + "@maestro-sync.invalid>"
	gpg("--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
	for _, line := range strings.Split(gpg("--with-colons", "--list-secret-keys"), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			k.Fingerprint = f[9]
			break
		}
	}
	if k.Fingerprint == "" {
		t.Fatal("sourcetest: gpg made no key")
	}
	k.Armored = gpg("--armor", "--export", k.Fingerprint) + "\n"
	k.KeyringFile = filepath.Join(home, "pubkey.asc")
	if err := os.WriteFile(k.KeyringFile, []byte(k.Armored), 0o644); err != nil {
		t.Fatalf("sourcetest: %v", err)
	}
	return k
}
