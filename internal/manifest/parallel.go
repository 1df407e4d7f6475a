package manifest

import (
	"io/fs"
	"runtime"
	"sync"
	"sync/atomic"
)

// eachParallel calls f for 0 … n-1, on up to GOMAXPROCS goroutines at
// once, and returns when every call has.
func eachParallel(n int, f func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		})
	}
	wg.Wait()
}

// serialized makes fsys and opts.ReadFile safe for the manifests that load
// in parallel: they read one at a time, as when the manifests loaded one
// after the other (an fs.FS, such as a Git tree, need not be safe for
// concurrent use).
func serialized(fsys fs.FS, opts Options) (fs.FS, Options) {
	mu := &sync.Mutex{}
	if read := opts.ReadFile; read != nil {
		opts.ReadFile = func(name string) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			return read(name)
		}
	}
	return &lockedFS{mu: mu, fsys: fsys}, opts
}

// lockedFS reads fsys one call at a time.
type lockedFS struct {
	mu   *sync.Mutex
	fsys fs.FS
}

// unlocked returns the file system fsys wraps, if it is a lockedFS: what a
// value of the repository that outlives the load (an image's build
// context) keeps.
func unlocked(fsys fs.FS) fs.FS {
	if l, ok := fsys.(*lockedFS); ok {
		return l.fsys
	}
	return fsys
}

func (l *lockedFS) Open(name string) (fs.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	return &lockedFile{mu: l.mu, f: f}, nil
}

func (l *lockedFS) ReadFile(name string) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fs.ReadFile(l.fsys, name)
}

func (l *lockedFS) Stat(name string) (fs.FileInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fs.Stat(l.fsys, name)
}

func (l *lockedFS) ReadDir(name string) ([]fs.DirEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fs.ReadDir(l.fsys, name)
}

// lockedFile is a file of a lockedFS.
type lockedFile struct {
	mu *sync.Mutex
	f  fs.File
}

func (l *lockedFile) Stat() (fs.FileInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Stat()
}

func (l *lockedFile) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Read(p)
}

func (l *lockedFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

func (l *lockedFile) ReadDir(n int) ([]fs.DirEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d, ok := l.f.(fs.ReadDirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Err: fs.ErrInvalid}
	}
	return d.ReadDir(n)
}
