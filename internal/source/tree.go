package source

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// treeFS is a read-only fs.FS over a Git tree. Paths are indexed up front;
// file contents are read from the object store on open. It is safe for
// concurrent use: reads of the object store are serialized, since go-git's
// storage is not safe for concurrent use.
type treeFS struct {
	mu    sync.Mutex // guards reads through files (the object store)
	files map[string]*object.File
	dirs  map[string][]fs.DirEntry
	mtime time.Time
}

// newTreeFS indexes the tree (below sub, when not "" or ".").
func newTreeFS(tree *object.Tree, sub string, mtime time.Time) (*treeFS, error) {
	sub = strings.Trim(path.Clean("/"+sub), "/")
	if sub != "" {
		t, err := tree.Tree(sub)
		if err != nil {
			return nil, fmt.Errorf("path %s: %w", sub, err)
		}
		tree = t
	}
	t := &treeFS{files: map[string]*object.File{}, dirs: map[string][]fs.DirEntry{".": nil}, mtime: mtime}
	err := tree.Files().ForEach(func(f *object.File) error {
		if f.Mode == filemode.Submodule || f.Mode == filemode.Symlink {
			return nil
		}
		t.files[f.Name] = f
		child := fs.DirEntry(entry{name: path.Base(f.Name), size: f.Size, mtime: mtime})
		dir := path.Dir(f.Name)
		for {
			if _, seen := t.dirs[dir]; seen {
				t.dirs[dir] = append(t.dirs[dir], child)
				break
			}
			t.dirs[dir] = []fs.DirEntry{child}
			child = entry{name: path.Base(dir), dir: true, mtime: mtime}
			dir = path.Dir(dir)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, list := range t.dirs {
		slices.SortFunc(list, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	return t, nil
}

func (t *treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if f, ok := t.files[name]; ok {
		if f.Size > MaxFileSize {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%d bytes, more than the limit of %d", f.Size, MaxFileSize)}
		}
		data, err := t.read(f)
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		return &file{entry: entry{name: path.Base(name), size: f.Size, mtime: t.mtime}, r: bytes.NewReader(data)}, nil
	}
	if list, ok := t.dirs[name]; ok {
		return &dir{entry: entry{name: path.Base(name), dir: true, mtime: t.mtime}, list: list}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// read returns the content of a file of the tree.
func (t *treeFS) read(f *object.File) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// entry is both the fs.FileInfo and the fs.DirEntry of a path.
type entry struct {
	name  string
	size  int64
	dir   bool
	mtime time.Time
}

func (e entry) Name() string { return e.name }
func (e entry) Size() int64  { return e.size }
func (e entry) Mode() fs.FileMode {
	if e.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (e entry) ModTime() time.Time         { return e.mtime }
func (e entry) IsDir() bool                { return e.dir }
func (e entry) Sys() any                   { return nil }
func (e entry) Type() fs.FileMode          { return e.Mode().Type() }
func (e entry) Info() (fs.FileInfo, error) { return e, nil }

type file struct {
	entry
	r *bytes.Reader
}

func (f *file) Stat() (fs.FileInfo, error) { return f.entry, nil }
func (f *file) Read(b []byte) (int, error) { return f.r.Read(b) }
func (f *file) Close() error               { return nil }

type dir struct {
	entry
	list []fs.DirEntry
	off  int
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.entry, nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: fs.ErrInvalid}
}
func (d *dir) Close() error { return nil }

func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.list[d.off:]
	if n <= 0 {
		d.off = len(d.list)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return slices.Clone(rest[:n]), nil
}
