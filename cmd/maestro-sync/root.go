package main

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// globals are the flags every command shares.
type globals struct {
	file     string
	strict   bool
	revision string
	owner    string
	policy   string
	// shipKnownHosts is the known_hosts file of SSH tunnels to ships.
	shipKnownHosts string
	// dir is the directory the manifests were read from ("" for stdin).
	dir string
}

// rev returns the revision recorded on what the command creates:
// --revision, else the Git commit checked out where the manifests are
// (with "-dirty" when they differ from it), else none.
func (g *globals) rev() string {
	if g.revision != "" || g.dir == "" {
		return g.revision
	}
	l, err := source.OpenLocal(g.dir)
	if err != nil {
		return ""
	}
	head, dirty, err := l.Head()
	if err != nil {
		return ""
	}
	g.revision = head
	if dirty {
		g.revision += "-dirty"
	}
	return g.revision
}

// newPool opens a pool of ship connections with the command's host key
// settings.
func (g *globals) newPool() *docker.Pool {
	p := docker.NewPool()
	p.KnownHosts = g.shipKnownHosts
	if p.KnownHosts == "" {
		p.KnownHosts = os.Getenv("MAESTRO_SYNC_SHIP_KNOWN_HOSTS")
	}
	return p
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "maestro-sync",
		Short: "GitOps deployer for MaestroNG environment files",
		Long: `maestro-sync reads MaestroNG environment files (manifest.yml) from a GitOps
repository, compares them with what runs on Docker hosts and Kubernetes
clusters, and applies the difference immutably.

PATH is a directory (every manifest.yml or manifest.yaml under it is one
environment) or a single manifest file. It defaults to the current directory.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.file, "file", "f", "", "load this one manifest file (\"-\" reads stdin), as maestro -f does")
	root.PersistentFlags().BoolVar(&g.strict, "strict", false, "treat warnings (such as unknown keys) as errors")
	root.PersistentFlags().StringVar(&g.revision, "revision", "", "source revision to record on the containers (default: the Git commit checked out where the manifests are, -dirty when they differ from it)")
	root.PersistentFlags().StringVar(&g.policy, "policy", "", "policy file: what containers may not do (privileged, host network, Docker socket, host paths); env MAESTRO_SYNC_POLICY")
	root.PersistentFlags().StringVar(&g.owner, "owner", "", "identity of the source the environments come from (env MAESTRO_SYNC_OWNER; default: the Git remote and sub-path of PATH)")
	root.PersistentFlags().BoolVar(&noColorFlag, "no-color", false, "no colours in the output (as with NO_COLOR set)")
	root.PersistentFlags().StringVar(&g.shipKnownHosts, "ship-known-hosts", "", "known_hosts file the host keys of ships reached over SSH (ssh_tunnel) must be in (env MAESTRO_SYNC_SHIP_KNOWN_HOSTS; default ~/.ssh/known_hosts)")
	root.AddCommand(newValidate(g), newRender(g), newDeptree(g), newPlan(g), newApply(g), newRun(g), newVersion())
	root.AddCommand(newLock(g))
	root.AddCommand(newStatus(g), newStart(g), newStop(g), newKill(g), newRestart(g), newClean(g), newPull(g), newLogs(g), newRollback(g))
	root.AddCommand(newHistory(), newPause(), newResume())
	return root
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "maestro-sync", buildVersion())
			return nil
		},
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// input is what -f or PATH names: manifests and the tree they live in.
type input struct {
	fsys    fs.FS
	sources []manifest.Source
	opts    manifest.Options
}

// input reads the manifests named by -f or PATH.
func (g *globals) input(cmd *cobra.Command, args []string) (*input, error) {
	pol, err := g.loadPolicy()
	if err != nil {
		return nil, err
	}
	in := &input{opts: manifest.Options{Environ: environ(), Strict: g.strict, ReadFile: readFile, Policy: pol}}
	target := "."
	if len(args) > 0 {
		target = args[0]
	}
	switch {
	case g.file == "-":
		data, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		cwd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		if in.fsys, err = source.RootFS(cwd); err != nil {
			return nil, err
		}
		in.sources = []manifest.Source{{Name: "stdin", Display: "<stdin>", Data: data}}
		return in, nil
	case g.file != "":
		target = g.file
	}
	info, err := os.Stat(target)
	if err != nil {
		return nil, err
	}
	g.dir = target
	if !info.IsDir() {
		g.dir = filepath.Dir(target)
	}
	var names []string
	if info.IsDir() {
		if in.fsys, err = source.RootFS(target); err != nil {
			return nil, err
		}
		in.opts.Prefix = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(target))+"/", "./")
		if names, err = manifest.Find(in.fsys); err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("no %s found under %s", strings.Join(manifest.ManifestNames, " or "), target)
		}
	} else {
		dir, name := filepath.Split(target)
		if dir == "" {
			dir = "."
		}
		if in.fsys, err = source.RootFS(dir); err != nil {
			return nil, err
		}
		if dir != "." && dir != "./" {
			in.opts.Prefix = strings.TrimPrefix(filepath.ToSlash(dir), "./")
		}
		names = []string{name}
	}
	in.sources, err = manifest.ReadSources(in.fsys, names)
	return in, err
}

// loadPolicy reads --policy (or MAESTRO_SYNC_POLICY); nil without one.
func (g *globals) loadPolicy() (*manifest.Policy, error) {
	name := g.policy
	if name == "" {
		name = os.Getenv("MAESTRO_SYNC_POLICY")
	}
	if name == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, err
	}
	data, err := readFile(abs)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	return manifest.ParsePolicy(name, data)
}

// readFile reads a file named by an absolute path (an env file, as
// MaestroNG allows on the operator's machine): a regular file, up to
// source.MaxFileSize.
func readFile(name string) ([]byte, error) {
	files, err := source.RootFS(filepath.Dir(name))
	if err != nil {
		return nil, err
	}
	return fs.ReadFile(files, filepath.Base(name))
}

// identity returns the owner of the environments named by -f or PATH:
// --owner (or MAESTRO_SYNC_OWNER) when given; else the Git remote of the
// checkout holding them plus PATH's place in it (the whole repository for
// -f), as the daemon following that repository computes it.
func (g *globals) identity(args []string) (owner.Owner, error) {
	name := g.owner
	if name == "" {
		name = os.Getenv("MAESTRO_SYNC_OWNER")
	}
	if name != "" {
		return owner.New(name), nil
	}
	switch {
	case g.file == "-":
		return owner.DetectRoot(".")
	case g.file != "":
		return owner.DetectRoot(filepath.Dir(g.file))
	case len(args) > 0:
		info, err := os.Stat(args[0])
		if err != nil {
			return owner.Owner{}, err
		}
		if !info.IsDir() {
			return owner.DetectRoot(filepath.Dir(args[0]))
		}
		return owner.Detect(args[0])
	}
	return owner.Detect(".")
}

// wholeTree reports whether the run loads every environment under its
// PATH (not one file): only then may environments missing from what was
// loaded be pruned.
func (g *globals) wholeTree(args []string) bool {
	if g.file != "" {
		return false
	}
	if len(args) > 0 {
		info, err := os.Stat(args[0])
		return err == nil && info.IsDir()
	}
	return true
}

// load loads the environments named by -f or PATH. The repository is
// returned even when some environments are invalid.
func (g *globals) load(cmd *cobra.Command, args []string) (*manifest.Repo, error) {
	in, err := g.input(cmd, args)
	if err != nil {
		return nil, err
	}
	return manifest.LoadSources(in.fsys, in.sources, in.opts), nil
}

// report prints every diagnostic to w and returns the number of errors.
func report(w io.Writer, repo *manifest.Repo) int {
	n := 0
	for _, d := range repo.Diagnostics {
		fmt.Fprintln(w, d.Error())
		if d.Severity == manifest.SeverityError {
			n++
		}
	}
	return n
}

// environ is the whole process environment: what templates see as env
// when an operator runs the CLI against the ships, as under MaestroNG.
func environ() map[string]string {
	out := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// templateEnviron is the part of the process environment that templates
// of untrusted revisions (review plans, the daemon) may read: only the
// variables named in allow, where a name ending in * is a prefix. Names
// for which hidden returns true are never given, even when allowed.
func templateEnviron(allow []string, hidden func(name string) bool) map[string]string {
	out := map[string]string{}
	for k, v := range environ() {
		if hidden != nil && hidden(k) {
			continue
		}
		for _, a := range allow {
			if prefix, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(k, prefix) || a == k {
				out[k] = v
				break
			}
		}
	}
	return out
}

// templateEnvUsage documents --template-env.
const templateEnvUsage = "environment variables templates may read as env (NAME, or PREFIX* for every name with that prefix); no other is visible"
