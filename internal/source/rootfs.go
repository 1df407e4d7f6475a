package source

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// MaxFileSize bounds every file read from a directory: a manifest, a file
// it includes, an env file. A repository is written by its committers;
// a 200 MB manifest or an env file linked to /dev/zero must end in an
// error, not in the daemon running out of memory.
const MaxFileSize = 4 << 20

// ErrIrregular is the error of opening something that is neither a
// regular file nor a directory (a FIFO, a socket, a device), which could
// block a read forever or never end.
var ErrIrregular = errors.New("not a regular file (a FIFO, socket or device): not read")

// rootFS is a read-only fs.FS of a directory in which symbolic links are
// followed only inside the directory (os.Root), only regular files and
// directories can be opened, and files are read up to MaxFileSize.
type rootFS struct {
	dir string
}

// RootFS returns the read-only file system of dir: symbolic links resolve
// only inside dir (a link to /etc/passwd is an error, not the host's
// file), FIFOs, sockets and devices are left out of listings and cannot be
// opened, and no file larger than MaxFileSize is read.
//
// Each operation opens the root anew, so the file system holds no file
// descriptor of its own and needs no closing.
func RootFS(dir string) (fs.FS, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	root.Close()
	return &rootFS{dir: dir}, nil
}

func (r *rootFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	// O_NONBLOCK: opening a FIFO must not wait for a writer; regular
	// files and directories ignore it.
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	switch {
	case fi.IsDir():
		return f, nil
	case !fi.Mode().IsRegular():
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: ErrIrregular}
	case fi.Size() > MaxFileSize:
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%d bytes, more than the limit of %d", fi.Size(), MaxFileSize)}
	}
	return &limitedFile{f: f, name: name, left: MaxFileSize}, nil
}

// ReadDir lists a directory without its FIFOs, sockets and devices.
func (r *rootFS) ReadDir(name string) ([]fs.DirEntry, error) {
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	list, err := fs.ReadDir(root.FS(), name)
	out := list[:0]
	for _, e := range list {
		if t := e.Type(); t&(fs.ModeNamedPipe|fs.ModeSocket|fs.ModeDevice|fs.ModeCharDevice|fs.ModeIrregular) == 0 {
			out = append(out, e)
		}
	}
	return out, err
}

// Stat describes a file as Open would find it.
func (r *rootFS) Stat(name string) (fs.FileInfo, error) {
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// limitedFile fails a read beyond MaxFileSize (a file growing while read).
// It has no other way to read (no WriteTo, no ReadAt) that could go round
// the limit.
type limitedFile struct {
	f    *os.File
	name string
	left int64
}

func (f *limitedFile) Stat() (fs.FileInfo, error) { return f.f.Stat() }
func (f *limitedFile) Close() error               { return f.f.Close() }

func (f *limitedFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if f.left <= 0 {
		if n, err := f.f.Read(p[:1]); n == 0 && err == io.EOF {
			return 0, io.EOF
		}
		return 0, &fs.PathError{Op: "read", Path: path.Clean(f.name), Err: fmt.Errorf("more than the limit of %d bytes", MaxFileSize)}
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.f.Read(p)
	f.left -= int64(n)
	return n, err
}
