package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync"
)

// Cache loads repositories as Load does, and re-uses the environments of
// its previous load whose inputs did not change: the manifest's text, every
// file its load read (templates it includes, imports or extends, env files)
// and the options. A long-running process that loads every new revision of
// a repository re-resolves only the environments a commit touched.
//
// An environment is loaded again every time, and never kept, when its load
// read something that cannot be checked by content (a directory, a file's
// metadata, a file outside the repository through Options.ReadFile), when
// its templates use a function whose result changes from one render to the
// next (random, lipsum), when it builds images (its build contexts are read
// later, from the revision at hand), or when it did not validate. The checks
// between environments run on every load. Only the environments of the
// latest load are kept.
//
// The zero Cache is ready to use; it is safe for concurrent use.
type Cache struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry // by manifest path in the file system
	// builds counts the environments loaded rather than re-used.
	builds int
}

// cacheEntry is an environment of the previous load and what it was made
// from.
type cacheEntry struct {
	key   string     // digest of the options, the manifest's path and text
	reads []fileRead // what the load read besides the manifest, in order
	l     loaded
}

// fileRead is a file a load read: its path and the digest of what it read.
type fileRead struct {
	name, sum string
}

// Load loads the manifests under the root of fsys, as Load does.
func (c *Cache) Load(fsys fs.FS, opts Options) (*Repo, error) {
	files, err := Find(fsys)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no %s found under %s", strings.Join(ManifestNames, " or "), displayRoot(opts.Prefix))
	}
	srcs, err := ReadSources(fsys, files)
	if err != nil {
		return nil, err
	}
	return c.LoadSources(fsys, srcs, opts), nil
}

// LoadSources loads manifests whose text is already read, as LoadSources
// does.
func (c *Cache) LoadSources(fsys fs.FS, srcs []Source, opts Options) *Repo {
	c.mu.Lock()
	defer c.mu.Unlock()
	optsKey, err := optionsKey(opts)
	next := make(map[string]*cacheEntry, len(srcs))
	loads := make([]loaded, len(srcs))
	// The environments to load again, which load in parallel: srcs[i],
	// kept under key (none when it cannot be kept), its reads in rec.
	type miss struct {
		i   int
		key string
		rec *recordFS
	}
	var misses []*miss
	for i, src := range srcs {
		if src.Err != nil || err != nil {
			misses = append(misses, &miss{i: i})
			continue
		}
		key := sourceKey(optsKey, src)
		if e := c.entries[src.Name]; e != nil && e.key == key && e.unchanged(fsys) {
			loads[i] = e.l
			next[src.Name] = e
			continue
		}
		misses = append(misses, &miss{i: i, key: key})
	}
	shared, sopts := serialized(fsys, opts)
	eachParallel(len(misses), func(k int) {
		m := misses[k]
		src := srcs[m.i]
		if m.key == "" {
			loads[m.i] = loadSource(shared, src, sopts)
			return
		}
		rec := &recordFS{fsys: shared}
		ropts := sopts
		if sopts.ReadFile != nil {
			ropts.ReadFile = func(name string) ([]byte, error) {
				rec.unchecked = true
				return sopts.ReadFile(name)
			}
		}
		// The services of a manifest load in parallel: the record is
		// kept one read at a time.
		rfs, ropts := serialized(rec, ropts)
		l := loadSource(rfs, src, ropts)
		if l.env != nil {
			for _, svc := range l.env.Services {
				if svc.Build != nil {
					svc.Build.FS = fsys // read later, not recorded
					rec.unchecked = true
				}
			}
		}
		if hasTemplate(src.Data) && nondeterministic.Match(src.Data) {
			rec.unchecked = true
		}
		loads[m.i], m.rec = l, rec
	})
	for _, m := range misses {
		if m.key == "" {
			continue
		}
		c.builds++
		if l := loads[m.i]; !m.rec.unchecked && l.env != nil {
			next[srcs[m.i].Name] = &cacheEntry{key: m.key, reads: m.rec.reads, l: l}
		}
	}
	c.entries = next
	return assemble(loads)
}

// unchanged reports whether every file e's load read still holds what it
// read then.
func (e *cacheEntry) unchanged(fsys fs.FS) bool {
	for _, r := range e.reads {
		data, err := fs.ReadFile(fsys, r.name)
		if contentSum(data, err) != r.sum {
			return false
		}
	}
	return true
}

// optionsKey is a digest of the options that change what a manifest
// loads to. ReadFile is not in it: an environment whose load calls it is
// never kept.
func optionsKey(opts Options) (string, error) {
	data, err := json.Marshal(struct {
		Environ        map[string]string
		Strict         bool
		DenyExecChecks bool
		Policy         *Policy
		Prefix         string
	}{opts.Environ, opts.Strict, opts.DenyExecChecks, opts.Policy, opts.Prefix})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// sourceKey is a digest of the options' key and a manifest's path and
// text.
func sourceKey(optsKey string, src Source) string {
	h := sha256.New()
	for _, s := range []string{optsKey, src.Name, src.Display} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	h.Write(src.Data)
	return hex.EncodeToString(h.Sum(nil))
}

// contentSum is a digest of a file's content, or of the error reading it.
func contentSum(data []byte, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// nondeterministic finds template functions whose result changes from one
// render to the next.
var nondeterministic = regexp.MustCompile(`\b(random|lipsum)\b`)

// recordFS is a file system that records what a load reads from it.
type recordFS struct {
	fsys  fs.FS
	reads []fileRead
	// unchecked is set when the load read something that cannot be
	// checked by its content, or used a nondeterministic template.
	unchecked bool
}

func (r *recordFS) Open(name string) (fs.File, error) {
	r.unchecked = true
	return r.fsys.Open(name)
}

func (r *recordFS) ReadFile(name string) ([]byte, error) {
	data, err := fs.ReadFile(r.fsys, name)
	r.reads = append(r.reads, fileRead{name: name, sum: contentSum(data, err)})
	if hasTemplate(data) && nondeterministic.Match(data) {
		r.unchecked = true
	}
	return data, err
}

func (r *recordFS) Stat(name string) (fs.FileInfo, error) {
	r.unchecked = true
	return fs.Stat(r.fsys, name)
}

func (r *recordFS) ReadDir(name string) ([]fs.DirEntry, error) {
	r.unchecked = true
	return fs.ReadDir(r.fsys, name)
}
