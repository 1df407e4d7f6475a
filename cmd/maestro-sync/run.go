package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/net/netutil"
	"k8s.io/client-go/kubernetes"

	"github.com/maestro-sync/maestro-sync/internal/daemon"
	"github.com/maestro-sync/maestro-sync/internal/driver/docker"
	"github.com/maestro-sync/maestro-sync/internal/driver/kube"
	"github.com/maestro-sync/maestro-sync/internal/history"
	"github.com/maestro-sync/maestro-sync/internal/leader"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/notify"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/procmem"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
	"github.com/maestro-sync/maestro-sync/internal/shard"
	"github.com/maestro-sync/maestro-sync/internal/source"
	"github.com/maestro-sync/maestro-sync/internal/web"
)

// runFlags are the settings of `maestro-sync run`. Every flag can also be
// set by an environment variable MAESTRO_SYNC_<FLAG> (upper case, - as _).
type runFlags struct {
	repo, dir, ref, path, cacheDir   string
	sshKey, knownHosts               string
	insecureHostKey                  bool
	gitUser, gitPassFile, gitPassEnv string
	keyring, allowedSigners          string
	fastForward                      bool
	poll, resync                     time.Duration
	listen                           string
	webhookSecretFile, apiTokenFile  string
	readTokenFile                    string
	tlsCert, tlsKey                  string
	prune, adopt                     bool
	environments                     []string
	envSelector                      string
	concurrency                      int
	rolloutTimeout                   time.Duration
	logFormat, logLevel              string
	templateEnv                      []string
	allowExec                        bool
	lockTTL                          time.Duration
	refreshEvery                     time.Duration
	leaderElect                      bool
	leaderNamespace, leaderName      string
	leaderIdentity, leaderKubeconfig string
	leaderLease                      time.Duration
	dataDir                          string
	historyRuns                      int
	historyAge                       time.Duration
	publicURL                        string
	auditLogDir, slackAPI            string
	commitStatus, commitStatusAPI    string
	commitStatusRepo                 string
	commitStatusTokenFile            string
	notifyWebhook                    string
	notifyWebhookSecretFile          string
}

func newRun(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the sync daemon: deploy every new commit",
		Long: `run tracks a Git repository (--repo) or a local directory (--dir) and
converges every ship to it: it checks the remote every --poll interval (a
webhook makes it check at once), applies new commits immutably, and every
--resync interval re-observes the ships to repair drift. It serves
/healthz, /readyz, /metrics, /api/v1/status, /api/v1/history, POST
/api/v1/sync and webhooks under /hooks/{github,gitlab,gitea,generic} on
--listen, and the web dashboard at / (read-only without a token; log in
with the API token to sync, pause and resume). The runs of each
environment are kept in --data-dir (see maestro-sync history).

Every flag can be set by an environment variable: --webhook-secret-file is
MAESTRO_SYNC_WEBHOOK_SECRET_FILE. SIGTERM finishes or rolls back the step in
flight and exits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := envDefaults(cmd.Flags()); err != nil {
				return err
			}
			return f.run(cmd, g)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", "", "Git repository URL to track (https, ssh, file)")
	fl.StringVar(&f.dir, "dir", "", "local directory to track instead of a repository (watched for changes)")
	fl.StringVar(&f.ref, "ref", "", "branch, tags/NAME or commit to deploy (default: the remote's default branch)")
	fl.StringVar(&f.path, "path", "", "sub-path of the repository that holds the manifests")
	fl.StringVar(&f.cacheDir, "cache-dir", defaultCacheDir(), "where the clone is kept across restarts")
	fl.StringVar(&f.sshKey, "ssh-key", "", "private key for ssh repository URLs")
	fl.StringVar(&f.knownHosts, "known-hosts", "", "known_hosts file for ssh: the Git source's, and the ships' unless --ship-known-hosts is given (default ~/.ssh/known_hosts)")
	fl.BoolVar(&f.insecureHostKey, "insecure-ignore-host-key", false, "do not verify the ssh host key (insecure)")
	fl.StringVar(&f.gitUser, "git-username", "", "https user (default git when a token is given)")
	fl.StringVar(&f.gitPassFile, "git-password-file", "", "file holding the https password or token")
	fl.StringVar(&f.gitPassEnv, "git-password-env", "", "environment variable holding the https password or token")
	fl.BoolVar(&f.fastForward, "require-fast-forward", false, "refuse a commit that does not descend from the last one deployed (no replay of an old commit by moving the ref back)")
	fl.StringVar(&f.allowedSigners, "verify-allowed-signers", "", "allowed signers file (git's gpg.ssh.allowedSignersFile): deploy only commits with an SSH signature by one of its keys (with --verify-keyring: or an OpenPGP one)")
	fl.StringVar(&f.keyring, "verify-keyring", "", "armored OpenPGP public keys: deploy only commits signed by one of them")
	fl.DurationVar(&f.poll, "poll", 10*time.Second, "interval between checks of the repository")
	fl.DurationVar(&f.resync, "resync", 5*time.Minute, "interval between re-observations of the ships (drift repair)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8080", "address of the HTTP API, metrics and webhooks (loopback by default; :8080 for every interface)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "the private key of --tls-cert (PEM)")
	fl.StringVar(&f.readTokenFile, "read-token-file", "", "file holding a bearer token required to read /api/v1/status and /metrics")
	fl.StringVar(&f.webhookSecretFile, "webhook-secret-file", "", "file holding the webhook secret (HMAC key; GitLab token)")
	fl.StringVar(&f.apiTokenFile, "api-token-file", "", "file holding the bearer token of POST /api/v1/sync")
	fl.BoolVar(&f.adopt, "adopt", false, "take over containers without maestro-sync labels holding an instance's name (MaestroNG's), replacing them immutably")
	fl.BoolVar(&f.prune, "prune", false, "remove containers no longer in the manifests")
	fl.StringSliceVar(&f.environments, "environments", nil, "deploy only the environments whose manifest path (relative to --path), or a directory above it, matches one of these globs (** crosses directories; repeat or separate with commas): several daemons split one repository")
	fl.StringVar(&f.envSelector, "environment-selector", "", "deploy only the environments whose labels (__maestro.labels) match this Kubernetes label selector (shard=a, team in (web,api), !legacy)")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 8, "how many steps run at once (0: no limit)")
	fl.DurationVar(&f.rolloutTimeout, "rollout-timeout", kube.DefaultRolloutTimeout, "how long a cluster service's new pods may take to become available")
	fl.BoolVar(&f.allowExec, "allow-exec-checks", false, "run lifecycle checks of type exec (commands on the deployer, with its credentials at hand); without it, an environment with one is invalid")
	fl.StringSliceVar(&f.templateEnv, "template-env", nil, templateEnvUsage+"; never MAESTRO_SYNC_* nor --git-password-env")
	fl.DurationVar(&f.lockTTL, "lock-ttl", lock.DefaultTTL, "how long the deploy locks outlive the daemon if it is killed")
	fl.BoolVar(&f.leaderElect, "leader-elect", false, "run several replicas: only the holder of a Kubernetes Lease reconciles, the others serve their status and take over when it goes")
	fl.StringVar(&f.leaderNamespace, "leader-elect-namespace", "", "namespace of the Lease (default: $POD_NAMESPACE, else the pod's own, else default)")
	fl.StringVar(&f.leaderName, "leader-elect-name", "maestro-sync", "name of the Lease")
	fl.StringVar(&f.leaderIdentity, "leader-elect-identity", "", "this replica's name in the Lease (default: $POD_NAME, else the host name)")
	fl.StringVar(&f.leaderKubeconfig, "leader-elect-kubeconfig", "", "kubeconfig of the cluster holding the Lease (default: in-cluster, else KUBECONFIG or ~/.kube/config)")
	fl.DurationVar(&f.leaderLease, "leader-elect-lease-duration", 15*time.Second, "how long followers wait for a silent leader before one takes over")
	fl.DurationVar(&f.refreshEvery, "refresh-images-every", 0, "re-resolve every image tag on its ships at this interval (a resync at least as often) and replace the containers whose tag moved to another image, such as :latest (0: never)")
	fl.StringVar(&f.dataDir, "data-dir", defaultDataDir(), "where the run history is kept across restarts (one daemon per directory; empty: no history)")
	fl.IntVar(&f.historyRuns, "history-runs", 200, "runs kept in the history per environment")
	fl.DurationVar(&f.historyAge, "history-max-age", 30*24*time.Hour, "runs older than this leave the history (the last one of each environment stays)")
	fl.StringVar(&f.publicURL, "public-url", "", "the dashboard's address as people reach it (https://deploy.example.com), for links in notifications")
	fl.StringVar(&f.auditLogDir, "audit-log-dir", "", "directory where the log auditors of manifests (audit: type log) write, each into its file's base name (without it they are not run)")
	fl.StringVar(&f.slackAPI, "slack-api-url", "https://slack.com/api", "Slack's Web API, for the slack auditors of manifests with a token and channel")
	fl.StringVar(&f.commitStatus, "commit-status", "", "set a commit status per environment on the deployed commit (pending, success, failure): github, gitlab or gitea")
	fl.StringVar(&f.commitStatusAPI, "commit-status-api", "", "the forge's API (default https://api.github.com or https://gitlab.com/api/v4; required for gitea: https://HOST/api/v1)")
	fl.StringVar(&f.commitStatusRepo, "commit-status-repo", "", "the repository as the forge names it, owner/name (default: the path of --repo)")
	fl.StringVar(&f.commitStatusTokenFile, "commit-status-token-file", "", "file holding the forge token that may set commit statuses")
	fl.StringVar(&f.notifyWebhook, "notify-webhook", "", "URL that receives every deploy event as JSON (started, succeeded, failed)")
	fl.StringVar(&f.notifyWebhookSecretFile, "notify-webhook-secret-file", "", "file holding the key that signs --notify-webhook requests (HMAC-SHA256, header X-Maestro-Sync-Signature)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

// trimMemory keeps the daemon's resident memory to what it uses (see
// internal/procmem): once the runs stop for trimIdle (start-up and a run
// touch code all over the binary and grow the heap, which an idle daemon
// does not need), and every trimEvery. ended receives a value after each
// run.
func trimMemory(ctx context.Context, ended <-chan struct{}, log *slog.Logger) {
	idle := time.NewTimer(trimIdle)
	idle.Stop()
	tick := time.NewTicker(trimEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			idle.Stop()
			return
		case <-ended:
			idle.Reset(trimIdle)
			continue
		case <-idle.C:
		case <-tick.C:
		}
		if err := procmem.Trim(); err != nil {
			log.Debug("memory trim", "err", err.Error())
		}
	}
}

// trimIdle is how long the runs stop before the daemon trims its memory,
// and trimEvery how often an idle daemon trims it anyway (the status and
// metrics it serves touch pages too): a trim costs a garbage collection,
// and the pages it releases that are still in use come back at a minor
// fault each.
const (
	trimIdle  = 500 * time.Millisecond
	trimEvery = time.Minute
)

// envDefaults sets every flag not given on the command line from its
// MAESTRO_SYNC_* environment variable.
func envDefaults(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		name := "MAESTRO_SYNC_" + strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && !fl.Changed && err == nil {
			if e := fl.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
	})
	return err
}

func defaultCacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "maestro-sync")
	}
	return filepath.Join(os.TempDir(), "maestro-sync")
}

// defaultDataDir is $XDG_STATE_HOME/maestro-sync (~/.local/state).
func defaultDataDir() string {
	if dir := os.Getenv("XDG_STATE_HOME"); dir != "" {
		return filepath.Join(dir, "maestro-sync")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "maestro-sync")
	}
	return ""
}

func (f *runFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: text or json", f.logFormat)
}

// credential reports whether an environment variable holds one of the
// daemon's own settings or credentials, which no template may read.
func (f *runFlags) credential(name string) bool {
	return strings.HasPrefix(name, "MAESTRO_SYNC_") || f.gitPassEnv != "" && name == f.gitPassEnv
}

func readSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimRight(string(data), "\r\n")), nil
}

func (f *runFlags) run(cmd *cobra.Command, g *globals) error {
	log, err := f.logger()
	if err != nil {
		return err
	}
	metrics := daemon.NewMetrics()
	cfg := daemon.Config{
		Poll: f.poll, Resync: resyncEvery(f.resync, f.refreshEvery), Prune: f.prune, Adopt: f.adopt, Concurrency: f.concurrency,
		Manifest: manifest.Options{Environ: templateEnviron(f.templateEnv, f.credential), Strict: g.strict, DenyExecChecks: !f.allowExec},
		Logger:   log, Metrics: metrics,
	}
	if cfg.Manifest.Policy, err = g.loadPolicy(); err != nil {
		return err
	}
	if cfg.Shard, err = f.shard(); err != nil {
		return err
	}
	switch {
	case f.repo != "" && f.dir != "":
		return errors.New("--repo and --dir exclude each other")
	case f.dir != "":
		src, err := source.NewDir(source.DirOptions{Path: f.dir})
		if err != nil {
			return err
		}
		cfg.Source, cfg.Watch = src, src.Watch
		if cfg.Owner, err = owner.Detect(f.dir); err != nil {
			return err
		}
	case f.repo != "":
		src, err := source.NewGit(source.GitOptions{
			URL: f.repo, Ref: f.ref, Path: f.path, CacheDir: f.cacheDir,
			SSHKeyFile: f.sshKey, KnownHostsFile: f.knownHosts, InsecureIgnoreHostKey: f.insecureHostKey,
			Username: f.gitUser, PasswordFile: f.gitPassFile, PasswordEnv: f.gitPassEnv,
			KeyringFile: f.keyring, AllowedSignersFile: f.allowedSigners, RequireFastForward: f.fastForward, Observe: metrics.ObserveGit,
		})
		if err != nil {
			return err
		}
		cfg.Source = src
		cfg.Branch = branchOf(f.ref)
		cfg.Owner = owner.FromRemote(f.repo, f.path)
	default:
		return errors.New("give --repo URL or --dir PATH")
	}
	if g.owner != "" {
		cfg.Owner = owner.New(g.owner)
	}
	auth, err := docker.LoadAuth(dockerConfigPath())
	if err != nil {
		return err
	}
	pool := g.newPool()
	if pool.KnownHosts == "" {
		pool.KnownHosts = f.knownHosts // one known_hosts for the source and the ships
	}
	hosts := &reconcile.Hosts{Docker: pool, Kube: kube.NewPool(), Auth: auth, Owner: cfg.Owner, RolloutTimeout: f.rolloutTimeout, LockTTL: f.lockTTL, RefreshEvery: f.refreshEvery}
	defer hosts.Docker.Close()
	defer hosts.Kube.Close()
	metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "maestro_sync_kube_api_requests_total", Help: "Requests sent to Kubernetes API servers (a watch counts once, when it starts).",
	}, func() float64 { return float64(hosts.Kube.Requests()) }))
	cfg.Target = hosts
	if f.dataDir != "" {
		store, err := history.Open(f.dataDir, history.Options{MaxRuns: f.historyRuns, MaxAge: f.historyAge})
		if err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		defer store.Close()
		cfg.History = store
	}
	if err := f.notifiers(&cfg, log); err != nil {
		return err
	}
	var elect *election
	if f.leaderElect {
		if elect, err = f.election(); err != nil {
			return err
		}
		cfg.Holds = elect.holds() // shared by the replicas
	}
	runEnded := make(chan struct{}, 1)
	cfg.RunEnded = func() {
		select {
		case runEnded <- struct{}{}:
		default: // one is already waiting
		}
	}
	d := daemon.New(cfg)

	hc := daemon.HTTPConfig{}
	if hc.WebhookSecret, err = readSecret(f.webhookSecretFile); err != nil {
		return fmt.Errorf("--webhook-secret-file: %w", err)
	}
	if hc.APIToken, err = readSecret(f.apiTokenFile); err != nil {
		return fmt.Errorf("--api-token-file: %w", err)
	}
	if hc.ReadToken, err = readSecret(f.readTokenFile); err != nil {
		return fmt.Errorf("--read-token-file: %w", err)
	}
	if hc.Dashboard, err = web.New(d, web.Options{History: cfg.History, APIToken: hc.APIToken, ReadToken: hc.ReadToken, Logger: log,
		SecureCookie: strings.HasPrefix(f.publicURL, "https://")}); err != nil {
		return err
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	srv := newServer(d.Handler(hc), defaultHTTPTimeouts)
	ln = netutil.LimitListener(ln, maxConns)
	serveErr := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			serveErr <- srv.ServeTLS(ln, f.tlsCert, f.tlsKey)
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	started := []any{"source", cfg.Source.String(), "listen", ln.Addr().String(), "poll", f.poll.String(), "resync", f.resync.String()}
	if cfg.Shard != nil {
		started = append(started, "shard", cfg.Shard.String())
	}
	log.Info("started", started...)
	go trimMemory(ctx, runEnded, log)
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	notified := make(chan struct{})
	go func() { defer close(notified); cfg.Notify.Run(notifyCtx) }()
	var runErr error
	if elect != nil {
		runErr = elect.lead(ctx, d, f.leaderLease, log)
	} else {
		runErr = d.Run(ctx)
	}
	stopNotify()
	<-notified
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return runErr
}

// shard is the part of the repository --environments and
// --environment-selector select; nil for all of it.
func (f *runFlags) shard() (*shard.Shard, error) {
	globs, err := shard.ParseGlobs(f.environments)
	if err != nil {
		return nil, fmt.Errorf("--environments: %w", err)
	}
	sel, err := shard.ParseSelector(f.envSelector)
	if err != nil {
		return nil, fmt.Errorf("--environment-selector: %w", err)
	}
	return shard.New(globs, sel), nil
}

// maxConns bounds the connections the HTTP server holds at once.
const maxConns = 256

// httpTimeouts bound the phases of a request.
type httpTimeouts struct {
	header, read, write, idle time.Duration
}

var defaultHTTPTimeouts = httpTimeouts{header: 10 * time.Second, read: 30 * time.Second, write: time.Minute, idle: 2 * time.Minute}

// newServer bounds every phase of a request: a client that sends its
// headers or body slowly, or keeps an idle connection, is cut off.
func newServer(h http.Handler, t httpTimeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.header,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    64 << 10,
	}
}

// branchOf returns the branch a ref names, "" for a tag or a commit, and
// "*" when the ref is the remote's default branch (any push then makes
// the daemon check at once; the check fetches only if the ref moved).
func branchOf(ref string) string {
	switch {
	case ref == "":
		return "*"
	case strings.HasPrefix(ref, "refs/heads/"):
		return strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "tags/"), strings.HasPrefix(ref, "refs/tags/"), isCommit(ref):
		return ""
	}
	return ref
}

func isCommit(ref string) bool {
	if len(ref) != 40 {
		return false
	}
	return strings.Trim(ref, "0123456789abcdef") == ""
}

// resyncEvery is the resync interval: often enough for the image refresh.
func resyncEvery(resync, refresh time.Duration) time.Duration {
	if refresh > 0 && refresh < resync {
		return refresh
	}
	return resync
}

// notifiers sets up the notifications: the dispatcher, commit statuses and
// the webhook.
func (f *runFlags) notifiers(cfg *daemon.Config, log *slog.Logger) error {
	cfg.Notify = notify.NewDispatcher(notify.Options{Logger: log})
	cfg.Audit = notify.AuditOptions{LogDir: f.auditLogDir, SlackAPI: f.slackAPI}
	cfg.PublicURL = strings.TrimRight(f.publicURL, "/")
	if f.commitStatus != "" {
		forge := notify.Forge(f.commitStatus)
		if forge != notify.GitHub && forge != notify.GitLab && forge != notify.Gitea {
			return fmt.Errorf("--commit-status %q: github, gitlab or gitea", f.commitStatus)
		}
		api := cmp.Or(f.commitStatusAPI, forge.DefaultAPI())
		if api == "" {
			return fmt.Errorf("--commit-status %s needs --commit-status-api", forge)
		}
		repo := f.commitStatusRepo
		if repo == "" {
			repo = repoPath(f.repo)
		}
		if repo == "" {
			return errors.New("--commit-status needs --commit-status-repo (or a --repo URL with an owner/name path)")
		}
		token, err := readSecret(f.commitStatusTokenFile)
		switch {
		case err != nil:
			return fmt.Errorf("--commit-status-token-file: %w", err)
		case len(token) == 0:
			return errors.New("--commit-status needs --commit-status-token-file, a file holding the forge's token")
		}
		cfg.Notifiers = append(cfg.Notifiers, &notify.CommitStatus{Forge: forge, API: api, Repo: repo, Token: string(token)})
	}
	if f.notifyWebhook != "" {
		secret, err := readSecret(f.notifyWebhookSecretFile)
		if err != nil {
			return fmt.Errorf("--notify-webhook-secret-file: %w", err)
		}
		cfg.Notifiers = append(cfg.Notifiers, &notify.Webhook{URL: f.notifyWebhook, Secret: secret})
	}
	return nil
}

// repoPath is the owner/name path of a repository URL (https or ssh,
// scp-like included), without .git.
func repoPath(repo string) string {
	p := repo
	if u, err := url.Parse(repo); err == nil && u.Host != "" {
		p = u.Path
	} else if _, after, ok := strings.Cut(repo, ":"); ok && !strings.Contains(repo, "://") {
		p = after
	}
	return strings.TrimSuffix(strings.Trim(p, "/"), ".git")
}

// election is what --leader-elect needs: the cluster holding the Lease,
// this replica's name, and the Lease's namespace.
type election struct {
	client    kubernetes.Interface
	id, ns    string
	leaseName string
}

// election connects to the cluster of the Lease.
func (f *runFlags) election() (*election, error) {
	cfg, err := kube.RESTConfig(f.leaderKubeconfig, "")
	if err != nil {
		return nil, fmt.Errorf("--leader-elect: %w", err)
	}
	cfg.UserAgent = "maestro-sync"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--leader-elect: %w", err)
	}
	id := cmp.Or(f.leaderIdentity, os.Getenv("POD_NAME"))
	if id == "" {
		if id, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("--leader-elect: name this replica with --leader-elect-identity: %w", err)
		}
	}
	ns := cmp.Or(f.leaderNamespace, os.Getenv("POD_NAMESPACE"))
	if ns == "" {
		b, _ := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
		ns = cmp.Or(strings.TrimSpace(string(b)), "default")
	}
	return &election{client: client, id: id, ns: ns, leaseName: f.leaderName}, nil
}

// holds is where the replicas keep the operators' holds: a ConfigMap
// beside the Lease, which a new leader reads.
func (e *election) holds() leader.Holds {
	return leader.Holds{Client: e.client, Namespace: e.ns, Name: e.leaseName + "-holds"}
}

// lead runs the daemon's loop only while this replica holds the Lease; a
// replica that loses it stops with an error (to be restarted as a
// follower).
func (e *election) lead(ctx context.Context, d *daemon.Daemon, lease time.Duration, log *slog.Logger) error {
	d.SetLeader("", false)
	var leading atomic.Bool
	return leader.Run(ctx, leader.Config{Client: e.client, Namespace: e.ns, Name: e.leaseName, Identity: e.id, LeaseDuration: lease, Log: log,
		OnLeader: func(identity string) {
			if !leading.Load() { // news that comes late must not demote the leader
				d.SetLeader(identity, identity == e.id)
			}
		}}, func(ctx context.Context) {
		leading.Store(true)
		d.SetLeader(e.id, true) // before any operation is refused as a follower's
		if err := d.Run(ctx); err != nil {
			log.Error("daemon", "err", err)
		}
	})
}
