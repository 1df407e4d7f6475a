package source_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/source"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func dirRevision(t *testing.T, d *source.DirSource) string {
	t.Helper()
	s, err := d.Fetch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Revision, "dir:") || !s.Time.IsZero() {
		t.Fatalf("revision %q, time %v", s.Revision, s.Time)
	}
	return s.Revision
}

// TestDirDigest: the revision changes exactly when a file's path or
// content changes, outside dot-directories; Files reads the directory.
func TestDirDigest(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "app.yml", "a: 1\n")
	write(t, dir, "sub/db.yml", "b: 1\n")
	d, err := source.NewDir(source.DirOptions{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != "dir "+dir {
		t.Errorf("String() = %q", d.String())
	}
	r1 := dirRevision(t, d)
	if r := dirRevision(t, d); r != r1 {
		t.Errorf("unchanged directory: %s then %s", r1, r)
	}
	s, _ := d.Fetch(t.Context())
	if got := read(t, s.Files, "sub/db.yml"); got != "b: 1\n" {
		t.Errorf("sub/db.yml = %q", got)
	}

	write(t, dir, ".git/objects/x", "ignored")
	write(t, dir, "sub/.cache/y", "ignored")
	if r := dirRevision(t, d); r != r1 {
		t.Error("a change in a dot-directory changed the revision")
	}

	seen := map[string]string{r1: "initial"}
	step := func(what string, change func()) {
		t.Helper()
		change()
		r := dirRevision(t, d)
		if prev, dup := seen[r]; dup {
			t.Errorf("%s: revision %s as after %s", what, r, prev)
		}
		seen[r] = what
	}
	step("edit", func() { write(t, dir, "app.yml", "a: 2\n") })
	step("add", func() { write(t, dir, "new/deep/c.yml", "c") })
	step("rename", func() { os.Rename(filepath.Join(dir, "new/deep/c.yml"), filepath.Join(dir, "new/deep/d.yml")) })
	step("move across the path/content boundary", func() {
		// "ab" + "c" must not hash like "a" + "bc".
		os.Remove(filepath.Join(dir, "new/deep/d.yml"))
		write(t, dir, "x", "yz")
	})
	step("same content, other split", func() { os.Remove(filepath.Join(dir, "x")); write(t, dir, "xy", "z") })
	// Content-addressed: the files of the "edit" step again (empty
	// directories do not count), its revision again.
	os.Remove(filepath.Join(dir, "xy"))
	if r := dirRevision(t, d); seen[r] != "edit" {
		t.Errorf("back to the files after the edit: revision %s, as after %q", r, seen[r])
	}
	step("empty file", func() { write(t, dir, "empty", "") })
	step("dot-file", func() { write(t, dir, ".env", "x") })

	// Back to an earlier content: the earlier revision.
	os.Remove(filepath.Join(dir, ".env"))
	os.Remove(filepath.Join(dir, "empty"))
	os.RemoveAll(filepath.Join(dir, "new"))
	write(t, dir, "app.yml", "a: 1\n")
	if r := dirRevision(t, d); r != r1 {
		t.Errorf("restored content: revision %s, want %s", r, r1)
	}

	if _, err := source.NewDir(source.DirOptions{Path: filepath.Join(dir, "app.yml")}); err == nil {
		t.Error("NewDir of a file succeeded")
	}
	if _, err := source.NewDir(source.DirOptions{Path: filepath.Join(dir, "none")}); err == nil {
		t.Error("NewDir of a missing directory succeeded")
	}
}

// events counts the events of a Watch channel.
type events struct {
	ch <-chan struct{}
}

// next waits up to d for an event.
func (e events) next(d time.Duration) bool {
	select {
	case _, ok := <-e.ch: // first: a pending event wins over an expired wait
		return ok
	default:
	}
	select {
	case _, ok := <-e.ch:
		return ok
	case <-time.After(d):
		return false
	}
}

// TestDirWatch: a burst of changes (longer than the debounce delay, but
// never quiet for that long) is one event; a new sub-directory is watched,
// its files included; changes in dot-directories are ignored; the channel
// closes when the context ends.
func TestDirWatch(t *testing.T) {
	// Generous margins: the test must hold on a loaded machine.
	const debounce = 300 * time.Millisecond
	const quiet = 3 * debounce
	dir := t.TempDir()
	write(t, dir, "app.yml", "a")
	write(t, dir, "sub/db.yml", "b")
	d, err := source.NewDir(source.DirOptions{Path: dir, Debounce: debounce})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := d.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := events{ch}
	if ev.next(quiet) {
		t.Fatal("event without a change")
	}

	// A burst: 20 writes 25ms apart (500ms in all, longer than the debounce).
	start := time.Now()
	for i := range 20 {
		write(t, dir, "sub/db.yml", strings.Repeat("x", i))
		time.Sleep(25 * time.Millisecond)
	}
	if !ev.next(5 * time.Second) {
		t.Fatal("no event after a burst")
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("event %v after the burst began: before its end", took)
	}
	if ev.next(quiet) {
		t.Error("a second event for one burst")
	}

	// A new directory, with files written right away, then later.
	r1 := dirRevision(t, d)
	write(t, dir, "new/deeper/c.yml", "c")
	if !ev.next(5 * time.Second) {
		t.Fatal("no event for a new sub-directory")
	}
	if ev.next(quiet) {
		t.Error("a second event for one burst")
	}
	r2 := dirRevision(t, d)
	if r2 == r1 {
		t.Error("the new file did not change the revision")
	}
	write(t, dir, "new/deeper/c.yml", "changed")
	if !ev.next(5 * time.Second) {
		t.Fatal("no event for a change in a new sub-directory")
	}
	write(t, dir, "new/deeper/d.yml", "d")
	if !ev.next(5 * time.Second) {
		t.Fatal("no event for a file created in a new sub-directory")
	}
	os.Remove(filepath.Join(dir, "app.yml"))
	if !ev.next(5 * time.Second) {
		t.Fatal("no event for a removal")
	}

	// Dot-directories, existing or new, and chmod are ignored.
	write(t, dir, ".git/HEAD", "x")
	write(t, dir, "sub/.cache/y", "x")
	os.Chmod(filepath.Join(dir, "sub/db.yml"), 0o600)
	if ev.next(quiet) {
		t.Error("event for a change in a dot-directory or a chmod")
	}
	write(t, dir, ".git/HEAD", "y")
	if ev.next(quiet) {
		t.Error("event for a change in a dot-directory")
	}

	// An event not received yet is not repeated: two bursts, one event.
	write(t, dir, "sub/db.yml", "1")
	time.Sleep(quiet)
	write(t, dir, "sub/db.yml", "2")
	time.Sleep(quiet)
	if !ev.next(0) {
		t.Error("no pending event")
	}
	if ev.next(quiet) {
		t.Error("a pending event was repeated")
	}

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("event after the context ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel did not close when the context ended")
	}
}
