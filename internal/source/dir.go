package source

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DirOptions configures a directory source.
type DirOptions struct {
	// Path of the directory holding the manifests.
	Path string
	// Debounce is how long the directory must stay quiet after a change
	// before Watch reports it (default 500ms).
	Debounce time.Duration
}

// DirSource is a directory of this machine, read as is (no Git involved).
// Directories whose name starts with a dot (.git, editors' state...) are
// ignored. Its methods are safe for concurrent use.
type DirSource struct {
	path     string
	debounce time.Duration
}

// NewDir checks that the directory exists.
func NewDir(opts DirOptions) (*DirSource, error) {
	if opts.Path == "" {
		return nil, errors.New("dir source: no path")
	}
	abs, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", opts.Path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("dir source: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("dir %s: not a directory", opts.Path)
	}
	d := &DirSource{path: abs, debounce: opts.Debounce}
	if d.debounce <= 0 {
		d.debounce = 500 * time.Millisecond
	}
	return d, nil
}

// String returns "dir " and the directory, for logs.
func (d *DirSource) String() string { return "dir " + d.path }

// Fetch returns a snapshot of the directory: its revision is "dir:" and a
// digest of every file's path and content (outside dot-directories), so it
// changes exactly when a file is added, removed, renamed or edited. Files
// reads the directory itself through RootFS, not a copy: a change made
// after Fetch is visible through it, and the next Fetch reports a new
// revision. The time is zero.
func (d *DirSource) Fetch(ctx context.Context) (*Snapshot, error) {
	files, err := RootFS(d.path)
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", d.path, err)
	}
	sum, err := digest(ctx, files)
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", d.path, err)
	}
	return &Snapshot{Revision: dirRevision + sum, Files: files}, nil
}

// digest hashes the files in lexical order of their paths: for each file its
// path and content, each preceded by its length so that no two trees hash
// alike. It reads what the loader can read (RootFS): a file that cannot be
// read (a link out of the directory, a file over the limit) counts by its
// path and error; FIFOs and devices are not listed at all.
func digest(ctx context.Context, files fs.FS) (string, error) {
	h := sha256.New()
	var n [8]byte
	field := func(size int64) {
		binary.BigEndian.PutUint64(n[:], uint64(size))
		h.Write(n[:])
	}
	err := fs.WalkDir(files, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			if p != "." && hidden(e.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		field(int64(len(p)))
		io.WriteString(h, p)
		f, err := files.Open(p)
		if err != nil {
			msg := err.Error()
			field(-1)
			field(int64(len(msg)))
			io.WriteString(h, msg)
			return nil
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.IsDir() { // a symbolic link to a directory
			return nil
		}
		field(fi.Size())
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:20]), nil
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") && name != "." && name != ".." }

// Watch reports changes of the directory's files (outside dot-directories),
// recursively, sub-directories created later included. A burst of changes
// is reported once, when the directory has stayed quiet for the debounce
// delay; a report not yet received is not repeated. Watch errors (such as an
// overflow of the kernel's queue) are reported as changes, so that the
// caller reads the directory again.
//
// The channel is closed once ctx is done and the watcher is stopped:
// receiving until it is closed waits for Watch's goroutine to end.
func (d *DirSource) Watch(ctx context.Context) (<-chan struct{}, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("dir %s: watch: %w", d.path, err)
	}
	if err := d.addTree(w, d.path); err != nil {
		w.Close()
		return nil, fmt.Errorf("dir %s: watch: %w", d.path, err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer w.Close()
		d.watch(ctx, w, out)
	}()
	return out, nil
}

func (d *DirSource) watch(ctx context.Context, w *fsnotify.Watcher, out chan<- struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if !d.relevant(w, ev) {
				continue
			}
			timer.Reset(d.debounce)
		case _, ok := <-w.Errors:
			if !ok {
				return
			}
			timer.Reset(d.debounce)
		case <-timer.C:
			select {
			case out <- struct{}{}:
			default: // the last report is still pending
			}
		}
	}
}

// relevant tells whether an event may change the digest, and starts
// watching a new directory.
func (d *DirSource) relevant(w *fsnotify.Watcher, ev fsnotify.Event) bool {
	rel, err := filepath.Rel(d.path, ev.Name)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return false
	}
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for _, p := range parts[:len(parts)-1] {
		if hidden(p) {
			return false
		}
	}
	if ev.Op == fsnotify.Chmod {
		return false
	}
	if ev.Has(fsnotify.Create) {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			if hidden(parts[len(parts)-1]) {
				return false
			}
			// Files may have been created in it before the watch starts:
			// the event itself makes the caller read them.
			_ = d.addTree(w, ev.Name)
		}
	}
	return true
}

// addTree watches dir and its sub-directories, dot-directories excepted.
// Directories that vanish meanwhile are skipped.
func (d *DirSource) addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != d.path && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.IsDir() {
			return nil
		}
		if p != d.path && hidden(e.Name()) {
			return fs.SkipDir
		}
		if err := w.Add(p); err != nil && (p == d.path || !errors.Is(err, fs.ErrNotExist)) {
			return err
		}
		return nil
	})
}

// dirRevision starts the revision of a directory's snapshot.
const dirRevision = "dir:"

// IsCommit reports whether a snapshot's revision is a Git commit (not a
// directory's digest, nor empty).
func IsCommit(revision string) bool {
	return revision != "" && !strings.HasPrefix(revision, dirRevision)
}
