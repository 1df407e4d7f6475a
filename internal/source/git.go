package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// ErrUntrusted is returned (wrapped: test with errors.Is) by (*Git).Fetch
// when a keyring is configured and the commit is unsigned, signed by a key
// that is not in the keyring, or carries a bad signature. The commit will
// not become trusted by retrying: a new commit is needed.
var ErrUntrusted = errors.New("untrusted commit")

// GitOptions configures a Git source.
type GitOptions struct {
	// URL of the repository: https://, http://, ssh://, user@host:path
	// (scp-like), file:// or a local path.
	URL string
	// Ref to track: a branch name (default: the remote's HEAD),
	// "tags/v1" or "refs/tags/v1", any full ref name "refs/...", or a full
	// 40-hex commit hash (pinned: fetched once, never checked again). A bare
	// name that is no branch is looked up as a tag.
	Ref string
	// Path is the optional sub-path holding the manifests.
	Path string
	// CacheDir holds the clones, one bare repository per URL and ref, in a
	// hash-named directory; it survives restarts so that only new objects
	// are fetched. Default: $XDG_CACHE_HOME/maestro-sync/git (or the OS's
	// equivalent).
	CacheDir string

	// SSHKeyFile is the (unencrypted) private key for ssh URLs. Without it
	// the ssh-agent of SSH_AUTH_SOCK is used.
	SSHKeyFile string
	// KnownHostsFile lists the trusted ssh host keys (default
	// ~/.ssh/known_hosts). Host keys are always verified unless
	// InsecureIgnoreHostKey is set.
	KnownHostsFile string
	// InsecureIgnoreHostKey accepts any ssh host key: an explicit opt-out.
	InsecureIgnoreHostKey bool
	// Username for https basic auth (default "git" when only a password or
	// token is given).
	Username string
	// PasswordFile holds the https password or token (a trailing newline is
	// trimmed). It is read on each Fetch, so a rotated secret is picked up.
	PasswordFile string
	// PasswordEnv names the environment variable holding the password or
	// token, as an alternative to PasswordFile.
	PasswordEnv string

	// KeyringFile holds armored OpenPGP public keys. When set, the commit
	// must be signed by one of them, else Fetch fails with ErrUntrusted.
	KeyringFile string

	// AllowedSignersFile lists the SSH keys whose commit signatures are
	// trusted (git's gpg.ssh.allowedSignersFile format: principals, then
	// the key). When set, with or without KeyringFile, the commit must be
	// signed by one of its keys (or of the keyring), else ErrUntrusted.
	AllowedSignersFile string

	// RequireFastForward refuses (with ErrUntrusted) a commit that does
	// not descend from the last one accepted, so that an old commit, even
	// a signed one, cannot be replayed by moving the ref back.
	RequireFastForward bool

	// Observe, when set, is called after each remote operation: op is
	// "check" (list the remote ref) or "fetch" (download objects), with its
	// duration and its (redacted) error.
	Observe func(op string, d time.Duration, err error)
}

// Git is a remote Git repository, fetched into a local cache. Its methods
// are safe for concurrent use; Fetch calls are serialized.
type Git struct {
	opts     GitOptions
	url      string // as configured, may carry credentials
	redacted string // for messages
	ssh      bool
	sub      string
	ref      refSpec
	dir      string             // the bare repository
	keyring  openpgp.EntityList // nil when OpenPGP signatures are not trusted
	signers  []ssh.PublicKey    // nil when SSH signatures are not trusted
	sshAuth  transport.AuthMethod
	redact   redactor
	sem      chan struct{} // serializes Fetch, shared by values using the same dir

	// Guarded by sem.
	last       *Snapshot
	lastRemote plumbing.Hash // what the remote ref pointed at for last
}

// refSpec is the parsed Ref option.
type refSpec struct {
	raw   string
	pin   plumbing.Hash // a pinned commit, or zero
	names []string      // remote ref names to try in order; empty: the remote's HEAD
}

// trackedRef is the local ref of the cache that points at the fetched
// object: it is what an incremental fetch negotiates from.
const trackedRef = plumbing.ReferenceName("refs/maestro/tracked")

// acceptedRef is the last commit Fetch returned (kept in the cache across
// restarts), from which RequireFastForward measures.
const acceptedRef = plumbing.ReferenceName("refs/maestro/accepted")

var (
	hex40      = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

func parseRef(ref string) refSpec {
	r := refSpec{raw: ref}
	switch {
	case ref == "" || ref == "HEAD":
	case hex40.MatchString(ref):
		r.pin = plumbing.NewHash(strings.ToLower(ref))
	case strings.HasPrefix(ref, "refs/"):
		r.names = []string{ref}
	case strings.HasPrefix(ref, "tags/"), strings.HasPrefix(ref, "heads/"):
		r.names = []string{"refs/" + ref}
	default:
		r.names = []string{"refs/heads/" + ref, "refs/tags/" + ref}
	}
	return r
}

func (r refSpec) String() string {
	if r.raw == "" {
		return "HEAD"
	}
	return r.raw
}

// dirSems holds one semaphore per cache directory, so that two Git values
// of this process tracking the same URL and ref never write the same
// repository at once.
var dirSems sync.Map // string → chan struct{}

// NewGit checks the options and returns the source. It does no network I/O.
func NewGit(opts GitOptions) (*Git, error) {
	if opts.URL == "" {
		return nil, errors.New("git source: no URL")
	}
	g := &Git{opts: opts, url: opts.URL, redacted: RedactURL(opts.URL), ref: parseRef(opts.Ref)}
	g.sub = strings.Trim(path.Clean("/"+filepath.ToSlash(opts.Path)), "/")
	ep, err := transport.NewEndpoint(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("git %s: %w", g.redacted, redactor{}.error(err))
	}
	if ep.Password != "" {
		g.redact.secrets = append(g.redact.secrets, ep.Password)
	}
	fail := func(format string, args ...any) (*Git, error) {
		return nil, g.redact.error(fmt.Errorf("git %s: "+format, append([]any{g.redacted}, args...)...))
	}

	switch ep.Protocol {
	case "ssh":
		g.ssh = true
		if opts.PasswordFile != "" || opts.PasswordEnv != "" {
			return fail("a password (file or env) applies to http(s) URLs only; use an SSH key")
		}
		if g.sshAuth, err = sshAuth(ep, opts); err != nil {
			return fail("%w", err)
		}
	case "http", "https":
		if opts.SSHKeyFile != "" {
			return fail("an SSH key applies to ssh URLs only")
		}
		if opts.PasswordFile != "" && opts.PasswordEnv != "" {
			return fail("both a password file and a password environment variable are set")
		}
		// Read once now to report a missing secret early; read again on
		// each fetch to follow rotations.
		if _, err := g.httpAuth(); err != nil {
			return fail("%w", err)
		}
	default:
		if opts.SSHKeyFile != "" || opts.PasswordFile != "" || opts.PasswordEnv != "" {
			return fail("credentials are set for a %s URL", ep.Protocol)
		}
	}

	if opts.KeyringFile != "" {
		data, err := os.ReadFile(opts.KeyringFile)
		if err != nil {
			return fail("keyring: %w", err)
		}
		if g.keyring, err = readKeyring(string(data)); err != nil {
			return fail("keyring %s: %w", opts.KeyringFile, err)
		}
	}
	if opts.AllowedSignersFile != "" {
		data, err := os.ReadFile(opts.AllowedSignersFile)
		if err != nil {
			return fail("allowed signers: %w", err)
		}
		if g.signers, err = readAllowedSigners(string(data)); err != nil {
			return fail("allowed signers %s: %w", opts.AllowedSignersFile, err)
		}
	}

	cache := opts.CacheDir
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return fail("no cache directory given and %w", err)
		}
		cache = filepath.Join(base, "maestro-sync", "git")
	}
	if cache, err = filepath.Abs(cache); err != nil {
		return fail("cache directory: %w", err)
	}
	g.dir = filepath.Join(cache, cacheName(ep, g.ref.raw))
	sem, _ := dirSems.LoadOrStore(g.dir, make(chan struct{}, 1))
	g.sem = sem.(chan struct{})
	return g, nil
}

// cacheName names the cache directory of a repository and ref: readable
// (host and repository name) and unique (a hash of the credential-free URL
// and the ref).
func cacheName(ep *transport.Endpoint, ref string) string {
	clean := *ep
	clean.Password = ""
	if clean.Protocol != "ssh" {
		clean.User = ""
	}
	sum := sha256.Sum256([]byte(clean.String() + "\x00" + ref))
	name := strings.TrimSuffix(path.Base(filepath.ToSlash(ep.Path)), ".git")
	if ep.Host != "" {
		name = ep.Host + "-" + name
	}
	name = unsafeName.ReplaceAllString(name, "_")
	name = strings.Trim(name, "._-")
	if len(name) > 64 {
		name = name[:64]
	}
	if name != "" {
		name += "-"
	}
	return name + hex.EncodeToString(sum[:8])
}

// sshAuth makes the ssh auth method, with host key verification.
func sshAuth(ep *transport.Endpoint, opts GitOptions) (transport.AuthMethod, error) {
	user := ep.User
	if user == "" {
		user = "git"
	}
	var helper gitssh.HostKeyCallbackHelper
	if opts.InsecureIgnoreHostKey {
		helper.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	} else {
		file := opts.KnownHostsFile
		if file == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("known hosts: %w", err)
			}
			file = filepath.Join(home, ".ssh", "known_hosts")
		}
		if _, err := os.Stat(file); err != nil {
			return nil, fmt.Errorf("known hosts (set KnownHostsFile, or InsecureIgnoreHostKey to skip host key checks): %w", err)
		}
		db, err := gitssh.NewKnownHostsDb(file)
		if err != nil {
			return nil, fmt.Errorf("known hosts %s: %w", file, err)
		}
		port := ep.Port
		if port == 0 {
			port = 22
		}
		helper.HostKeyCallback = db.HostKeyCallback()
		// Offer only the host key types known for this host, so that the
		// server does not pick one we cannot verify.
		helper.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port)))
	}
	if opts.SSHKeyFile == "" {
		auth, err := gitssh.NewSSHAgentAuth(user)
		if err != nil {
			return nil, fmt.Errorf("no SSHKeyFile and no ssh-agent: %w", err)
		}
		auth.HostKeyCallbackHelper = helper
		return auth, nil
	}
	auth, err := gitssh.NewPublicKeysFromFile(user, opts.SSHKeyFile, "")
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", opts.SSHKeyFile, err)
	}
	auth.HostKeyCallbackHelper = helper
	return auth, nil
}

// httpAuth reads the https password, if one is configured, and remembers it
// as a secret to redact.
func (g *Git) httpAuth() (transport.AuthMethod, error) {
	var pass string
	switch {
	case g.opts.PasswordFile != "":
		data, err := os.ReadFile(g.opts.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password file: %w", err)
		}
		pass = strings.TrimRight(string(data), "\r\n")
		if pass == "" {
			return nil, fmt.Errorf("password file %s is empty", g.opts.PasswordFile)
		}
	case g.opts.PasswordEnv != "":
		pass = os.Getenv(g.opts.PasswordEnv)
		if pass == "" {
			return nil, fmt.Errorf("password environment variable %s is empty", g.opts.PasswordEnv)
		}
	case g.opts.Username != "":
		return &githttp.BasicAuth{Username: g.opts.Username}, nil
	default:
		return nil, nil // credentials of the URL, if any, or none
	}
	if !slices.Contains(g.redact.secrets, pass) {
		g.redact.secrets = append(g.redact.secrets, pass)
	}
	user := g.opts.Username
	if user == "" {
		user = "git"
	}
	return &githttp.BasicAuth{Username: user, Password: pass}, nil
}

func (g *Git) auth() (transport.AuthMethod, error) {
	if g.ssh {
		return g.sshAuth, nil
	}
	return g.httpAuth()
}

// String returns the redacted URL, the ref and the path, for logs.
func (g *Git) String() string {
	s := g.redacted + " (ref " + g.ref.String()
	if g.sub != "" {
		s += ", path " + g.sub
	}
	return s + ")"
}

// Fetch returns the snapshot of the tracked ref. Each call lists the remote
// ref (cheap); only when it points elsewhere than at the last call, and the
// object is not in the cache yet, are objects fetched (incrementally). A
// pinned commit is fetched once, then served from the cache without any
// network access, across restarts too. Concurrent calls are serialized.
//
// Errors name the repository, with credentials redacted. ErrUntrusted
// reports a commit that fails signature verification.
func (g *Git) Fetch(ctx context.Context) (*Snapshot, error) {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("git %s: %w", g, ctx.Err())
	}
	defer func() { <-g.sem }()

	snap, err := g.fetch(ctx)
	if err != nil {
		return nil, g.redact.error(fmt.Errorf("git %s: %w", g, err))
	}
	return snap, nil
}

// Revision returns the snapshot of an earlier revision (a commit hash or
// its prefix) already in the cache: one the tracked ref pointed at, or an
// ancestor of it. It is verified as Fetch verifies. Nothing is fetched.
func (g *Git) Revision(ctx context.Context, rev string) (*Snapshot, error) {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("git %s: %w", g, ctx.Err())
	}
	defer func() { <-g.sem }()
	if len(rev) < 4 || len(rev) > 64 || strings.Trim(strings.ToLower(rev), "0123456789abcdef") != "" {
		return nil, fmt.Errorf("revision %q: give a commit hash (at least 4 hexadecimal digits)", rev)
	}
	repo, err := g.open()
	if err != nil {
		return nil, g.redact.error(fmt.Errorf("git %s: %w", g, err))
	}
	hash, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("revision %s: not a commit of %s fetched so far", rev, g.redacted)
	}
	commit, err := repo.CommitObject(*hash)
	if err != nil {
		return nil, fmt.Errorf("revision %s: %w", rev, err)
	}
	snap, err := g.snapshot(commit)
	if err != nil {
		return nil, g.redact.error(fmt.Errorf("git %s: %w", g, err))
	}
	return snap, nil
}

func (g *Git) fetch(ctx context.Context) (*Snapshot, error) {
	if !g.ref.pin.IsZero() {
		if g.last != nil {
			return g.last, nil
		}
		return g.fetchPinned(ctx)
	}
	auth, err := g.auth()
	if err != nil {
		return nil, err
	}
	name, remote, err := g.check(ctx, auth)
	if err != nil {
		return nil, err
	}
	if g.last != nil && remote == g.lastRemote {
		return g.last, nil
	}
	repo, err := g.open()
	if err != nil {
		return nil, err
	}
	if has(repo, remote) {
		// Known already (a restart, or the ref moved back): no download.
		if err := repo.Storer.SetReference(plumbing.NewHashReference(trackedRef, remote)); err != nil {
			return nil, fmt.Errorf("cache %s: %w", g.dir, err)
		}
	} else {
		if err := g.fetchRef(ctx, repo, auth, name); err != nil {
			return nil, err
		}
		// The remote ref may have moved since the check: what was fetched
		// is what the tracked ref points at now.
		ref, err := repo.Storer.Reference(trackedRef)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", name, err)
		}
		remote = ref.Hash()
	}
	commit, err := peel(repo, remote)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := g.fastForward(repo, commit); err != nil {
		return nil, err
	}
	snap, err := g.snapshot(commit)
	if err != nil {
		return nil, err
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(acceptedRef, commit.Hash)); err != nil {
		return nil, fmt.Errorf("cache %s: %w", g.dir, err)
	}
	g.last, g.lastRemote = snap, remote
	return snap, nil
}

// fastForward refuses, with RequireFastForward, a commit that does not
// descend from the last one accepted.
func (g *Git) fastForward(repo *git.Repository, commit *object.Commit) error {
	if !g.opts.RequireFastForward {
		return nil
	}
	ref, err := repo.Storer.Reference(acceptedRef)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil // the first commit: nothing to descend from
	}
	if err != nil {
		return fmt.Errorf("cache %s: %w", g.dir, err)
	}
	if ref.Hash() == commit.Hash {
		return nil
	}
	prev, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return fmt.Errorf("%w: commit %s: the last accepted commit %s cannot be read to check that it descends from it: %v",
			ErrUntrusted, commit.Hash.String()[:12], ref.Hash().String()[:12], err)
	}
	ok, err := prev.IsAncestor(commit)
	if err != nil {
		return fmt.Errorf("%w: commit %s: %v", ErrUntrusted, commit.Hash.String()[:12], err)
	}
	if !ok {
		return fmt.Errorf("%w: commit %s does not descend from %s, the last one deployed (--require-fast-forward): a ref moved back or was rewritten",
			ErrUntrusted, commit.Hash.String()[:12], prev.Hash.String()[:12])
	}
	return nil
}

// check lists the remote and returns the name and target of the tracked
// ref.
func (g *Git) check(ctx context.Context, auth transport.AuthMethod) (plumbing.ReferenceName, plumbing.Hash, error) {
	start := time.Now()
	name, hash, err := g.list(ctx, auth)
	g.observe("check", start, err)
	return name, hash, err
}

func (g *Git) list(ctx context.Context, auth transport.AuthMethod) (plumbing.ReferenceName, plumbing.Hash, error) {
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{g.url}})
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth, PeelingOption: git.IgnorePeeled})
	if err != nil {
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return "", plumbing.ZeroHash, fmt.Errorf("check: the repository is empty: %w", err)
		}
		var unexpected *plumbing.UnexpectedError // has no Unwrap
		if errors.As(err, &unexpected) && errors.Is(unexpected.Err, plumbing.ErrReferenceNotFound) {
			// go-git resolves a detached remote HEAD to a branch at the
			// same commit, and fails when there is none.
			return "", plumbing.ZeroHash, fmt.Errorf("check: cannot resolve the remote's HEAD (detached, with no branch at its commit?): set a ref: %w", err)
		}
		return "", plumbing.ZeroHash, fmt.Errorf("check: %w", err)
	}
	byName := make(map[plumbing.ReferenceName]*plumbing.Reference, len(refs))
	for _, r := range refs {
		byName[r.Name()] = r
	}
	if len(g.ref.names) == 0 {
		head, ok := byName[plumbing.HEAD]
		if !ok {
			return "", plumbing.ZeroHash, errors.New("check: the remote has no HEAD (empty repository?): set a ref")
		}
		if head.Type() == plumbing.SymbolicReference {
			target, ok := byName[head.Target()]
			if !ok || target.Type() != plumbing.HashReference {
				return "", plumbing.ZeroHash, fmt.Errorf("check: the remote's HEAD points at %s, which does not exist", head.Target())
			}
			return target.Name(), target.Hash(), nil
		}
		return plumbing.HEAD, head.Hash(), nil
	}
	for _, n := range g.ref.names {
		if r, ok := byName[plumbing.ReferenceName(n)]; ok && r.Type() == plumbing.HashReference {
			return r.Name(), r.Hash(), nil
		}
	}
	return "", plumbing.ZeroHash, fmt.Errorf("check: ref %s: %w", g.ref, plumbing.ErrReferenceNotFound)
}

// fetchPinned fetches a pinned commit, unless the cache has it.
func (g *Git) fetchPinned(ctx context.Context) (*Snapshot, error) {
	repo, err := g.open()
	if err != nil {
		return nil, err
	}
	pin := g.ref.pin
	if !has(repo, pin) {
		auth, err := g.auth()
		if err != nil {
			return nil, err
		}
		// Servers may refuse to send a commit by hash (uploadpack.
		// allowReachableSHA1InWant): then fetch the branches and tags,
		// which is done once.
		start := time.Now()
		err = g.download(ctx, repo, auth, config.RefSpec(pin.String()+":"+trackedRef.String()))
		if errors.Is(err, git.ErrExactSHA1NotSupported) {
			err = g.download(ctx, repo, auth,
				"+refs/heads/*:refs/maestro/all/heads/*", "+refs/tags/*:refs/maestro/all/tags/*")
		}
		g.observe("fetch", start, err)
		if err != nil {
			return nil, err
		}
		if !has(repo, pin) {
			return nil, fmt.Errorf("commit %s: not found on the remote", pin)
		}
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(trackedRef, pin)); err != nil {
		return nil, fmt.Errorf("cache %s: %w", g.dir, err)
	}
	commit, err := repo.CommitObject(pin)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", pin, err)
	}
	snap, err := g.snapshot(commit)
	if err != nil {
		return nil, err
	}
	g.last, g.lastRemote = snap, pin
	return snap, nil
}

// fetchRef fetches a remote ref into the tracked ref of the cache.
func (g *Git) fetchRef(ctx context.Context, repo *git.Repository, auth transport.AuthMethod, name plumbing.ReferenceName) error {
	start := time.Now()
	err := g.download(ctx, repo, auth, config.RefSpec("+"+name.String()+":"+trackedRef.String()))
	g.observe("fetch", start, err)
	return err
}

// download fetches the refspecs into the cache. Only the objects missing
// from the cache are transferred: the cache's refs are offered as "haves".
func (g *Git) download(ctx context.Context, repo *git.Repository, auth transport.AuthMethod, specs ...config.RefSpec) error {
	remote := git.NewRemote(repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{g.url}})
	err := remote.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   specs,
		Auth:       auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil && !errors.Is(err, git.ErrExactSHA1NotSupported) {
		err = fmt.Errorf("fetch: %w", err)
	}
	return err
}

func (g *Git) observe(op string, start time.Time, err error) {
	if g.opts.Observe != nil {
		g.opts.Observe(op, time.Since(start), g.redact.error(err))
	}
}

// open opens the cache's bare repository, creating it (again, if it is
// damaged) when needed. Each Fetch opens it anew: go-git's storage caches
// its pack index, which would miss packs written since by another Git value
// on the same directory; and the snapshot made from it keeps it as its own,
// never written again.
func (g *Git) open() (*git.Repository, error) {
	repo, err := git.PlainOpen(g.dir)
	if err == nil {
		return repo, nil
	}
	if err := os.MkdirAll(filepath.Dir(g.dir), 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	repo, err = git.PlainInit(g.dir, true)
	if err != nil {
		// A partial directory, from a crash during the first clone.
		if rmErr := os.RemoveAll(g.dir); rmErr != nil {
			return nil, fmt.Errorf("cache %s: %w", g.dir, errors.Join(err, rmErr))
		}
		if repo, err = git.PlainInit(g.dir, true); err != nil {
			return nil, fmt.Errorf("cache %s: %w", g.dir, err)
		}
	}
	return repo, nil
}

// has tells whether the object is in the repository.
func has(repo *git.Repository, h plumbing.Hash) bool {
	return repo.Storer.HasEncodedObject(h) == nil
}

// peel returns the commit an object (a commit or a chain of annotated tags)
// points at.
func peel(repo *git.Repository, h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := repo.Object(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("object %s: %w", h, err)
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			h = o.Target
		default:
			return nil, fmt.Errorf("object %s is a %s, not a commit", h, obj.Type())
		}
	}
	return nil, fmt.Errorf("object %s: too many nested tags", h)
}

// snapshot verifies the commit's signature when required and reads its
// tree. The snapshot reads through the repository handle of this Fetch
// alone, so it can be read while later fetches write the cache (go-git's
// storage is not safe for concurrent use; packs are immutable once written).
func (g *Git) snapshot(commit *object.Commit) (*Snapshot, error) {
	if err := g.verify(commit); err != nil {
		return nil, err
	}
	return snapshotOf(commit, g.sub)
}

// verify checks the commit's signature against the keyring, if one is set.
// It does what (*object.Commit).Verify does, with a keyring that may be
// made of several armored blocks (keys exported one by one and
// concatenated), where Verify reads the first block only.
func (g *Git) verify(commit *object.Commit) error {
	if g.keyring == nil && g.signers == nil {
		return nil
	}
	id := commit.Hash.String()
	sig := commit.PGPSignature
	if strings.Contains(sig, "-----BEGIN SSH SIGNATURE-----") {
		return g.verifySSH(commit)
	}
	switch strings.Count(sig, "-----BEGIN PGP SIGNATURE-----") {
	case 0:
		if sig == "" {
			return fmt.Errorf("%w: commit %s is not signed", ErrUntrusted, id)
		}
		return fmt.Errorf("%w: commit %s has a signature that is neither OpenPGP nor SSH (X.509 signatures are not supported)", ErrUntrusted, id)
	case 1:
	default:
		return fmt.Errorf("%w: commit %s carries several signatures", ErrUntrusted, id)
	}
	if g.keyring == nil {
		return fmt.Errorf("%w: commit %s has an OpenPGP signature, and only SSH signers are trusted (--verify-allowed-signers)", ErrUntrusted, id)
	}
	encoded := &plumbing.MemoryObject{}
	if err := commit.EncodeWithoutSignature(encoded); err != nil {
		return fmt.Errorf("commit %s: %w", id, err)
	}
	signed, err := encoded.Reader()
	if err != nil {
		return fmt.Errorf("commit %s: %w", id, err)
	}
	defer signed.Close()
	_, err = openpgp.CheckArmoredDetachedSignature(g.keyring, signed, strings.NewReader(sig), nil)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return fmt.Errorf("%w: commit %s is signed by key %s, which is not in the keyring %s",
			ErrUntrusted, id, signatureKey(sig), g.opts.KeyringFile)
	}
	return fmt.Errorf("%w: commit %s: bad signature by key %s: %v", ErrUntrusted, id, signatureKey(sig), err)
}

// readKeyring reads armored public keys: one or more armored blocks.
func readKeyring(data string) (openpgp.EntityList, error) {
	const begin = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	var keys openpgp.EntityList
	for rest := data; ; {
		i := strings.Index(rest, begin)
		if i < 0 {
			break
		}
		rest = rest[i:]
		next := strings.Index(rest[len(begin):], begin)
		block := rest
		if next >= 0 {
			block, rest = rest[:len(begin)+next], rest[len(begin)+next:]
		} else {
			rest = ""
		}
		list, err := openpgp.ReadArmoredKeyRing(strings.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("key block %d: %w", len(keys)+1, err)
		}
		keys = append(keys, list...)
	}
	if len(keys) == 0 {
		return nil, errors.New("no armored public key (" + begin + ")")
	}
	return keys, nil
}

// signatureKey returns the issuer key ID (or fingerprint) of an armored
// signature, for messages.
func signatureKey(armored string) string {
	block, err := armor.Decode(strings.NewReader(armored))
	if err != nil {
		return "(unreadable signature)"
	}
	p, err := packet.Read(block.Body)
	if err != nil {
		return "(unreadable signature)"
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return "(unreadable signature)"
	}
	switch {
	case len(sig.IssuerFingerprint) > 0:
		return strings.ToUpper(hex.EncodeToString(sig.IssuerFingerprint))
	case sig.IssuerKeyId != nil:
		return fmt.Sprintf("%016X", *sig.IssuerKeyId)
	}
	return "(unknown)"
}

// verifySSH checks an SSH signature (git's gpg.format ssh, namespace
// "git") of the commit against the allowed signers.
func (g *Git) verifySSH(commit *object.Commit) error {
	id := commit.Hash.String()
	if g.signers == nil {
		return fmt.Errorf("%w: commit %s has an SSH signature, and only OpenPGP keys are trusted (--verify-keyring)", ErrUntrusted, id)
	}
	sig, err := sshsig.Unarmor([]byte(commit.PGPSignature))
	if err != nil {
		return fmt.Errorf("%w: commit %s: unreadable SSH signature: %v", ErrUntrusted, id, err)
	}
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	var key ssh.PublicKey
	for _, k := range g.signers {
		if ssh.FingerprintSHA256(k) == fp {
			key = k
		}
	}
	if key == nil {
		return fmt.Errorf("%w: commit %s is signed by SSH key %s, which is not in the allowed signers %s", ErrUntrusted, id, fp, g.opts.AllowedSignersFile)
	}
	encoded := &plumbing.MemoryObject{}
	if err := commit.EncodeWithoutSignature(encoded); err != nil {
		return fmt.Errorf("commit %s: %w", id, err)
	}
	signed, err := encoded.Reader()
	if err != nil {
		return fmt.Errorf("commit %s: %w", id, err)
	}
	defer signed.Close()
	if err := sshsig.Verify(signed, sig, key, sig.HashAlgorithm, "git"); err != nil {
		return fmt.Errorf("%w: commit %s: bad SSH signature by key %s: %v", ErrUntrusted, id, fp, err)
	}
	return nil
}

// readAllowedSigners reads an allowed signers file: per line, principals,
// then optional options, then the key ("alice@example.com ssh-ed25519
// AAAA..."); # starts a comment.
func readAllowedSigners(text string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_, rest, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("line %d: want principals and a key", i+1)
		}
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(strings.TrimSpace(rest)))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key")
	}
	return keys, nil
}
