package source

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRootFS(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app/manifest.yml", "name: app\n")
	write("shared/env", "A=1\n")
	if err := os.Symlink("../shared/env", filepath.Join(dir, "app", "inside.env")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "app", "passwd.env")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "app", "zero.env")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "app", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(dir, "app", "big.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	big.Close()

	files, err := RootFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if data, err := fs.ReadFile(files, "app/inside.env"); err != nil || string(data) != "A=1\n" {
		t.Errorf("a link inside the directory: %q %v", data, err)
	}
	for _, name := range []string{"app/passwd.env", "app/zero.env"} {
		data, err := fs.ReadFile(files, name)
		if err == nil || len(data) > 0 || strings.Contains(err.Error(), "root:") {
			t.Errorf("%s, a link out of the directory: %q %v", name, data, err)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := fs.ReadFile(files, "app/fifo"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrIrregular) {
			t.Errorf("fifo: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO blocks")
	}
	if _, err := fs.ReadFile(files, "app/big.yml"); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("a file over the limit: %v", err)
	}
	entries, err := fs.ReadDir(files, "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "fifo" {
			t.Error("the FIFO is listed")
		}
	}

	// The directory source neither blocks on the FIFO nor reads out of
	// the directory.
	src, err := NewDir(DirOptions{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := src.Fetch(ctx)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if _, err := fs.ReadFile(snap.Files, "app/passwd.env"); err == nil {
		t.Error("the snapshot reads out of the directory")
	}
}
