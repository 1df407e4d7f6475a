package daemon

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/live"
	"github.com/maestro-sync/maestro-sync/internal/lock"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/reconcile"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

// The unit tests here drive the loop's logic with an in-memory source and
// target; test/e2e runs the daemon against real Git servers and dockerd.

type fakeSource struct {
	mu    sync.Mutex
	rev   string
	files fstest.MapFS
	err   error
	calls int
}

func (s *fakeSource) set(rev string, files map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev, s.files = rev, fstest.MapFS{}
	for k, v := range files {
		s.files[k] = &fstest.MapFile{Data: []byte(v)}
	}
}

func (s *fakeSource) Fetch(context.Context) (*source.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return nil, s.err
	}
	return &source.Snapshot{Revision: s.rev, Time: time.Now().Add(-time.Second), Files: s.files}, nil
}

func (s *fakeSource) String() string { return "fake" }

// fakeTarget is one ship at address tcp://10.0.0.1:2375 holding containers
// in memory.
type fakeTarget struct {
	mu         sync.Mutex
	containers map[string]live.Container // by name
	fail       map[string]error          // instance → error of its next steps
	delay      time.Duration
	applied    []string
	down       bool
	// lockedBy, when set, is the holder of the locks of lockedEnv (of
	// every environment when lockedEnv is "").
	lockedBy  *lock.Holder
	lockedEnv string
	locks     int // locks taken
	// observed is the last environment of each name observed for.
	observed map[string]*manifest.Environment
}

func newFakeTarget() *fakeTarget {
	return &fakeTarget{containers: map[string]live.Container{}, fail: map[string]error{}}
}

func (t *fakeTarget) Observe(_ context.Context, envs []*manifest.Environment) *live.State {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.observed == nil {
		t.observed = map[string]*manifest.Environment{}
	}
	for _, env := range envs {
		t.observed[env.Name] = env
	}
	h := &live.Host{Address: "tcp://10.0.0.1:2375"}
	if t.down {
		h.Err = errors.New("connection refused")
	} else {
		for _, c := range t.containers {
			h.Containers = append(h.Containers, c)
		}
	}
	return &live.State{Hosts: map[string]*live.Host{h.Address: h}}
}

func (t *fakeTarget) Driver(envs []*manifest.Environment, revision string) apply.Target {
	return &fakeDriver{t: t, envs: envs, revision: revision}
}

func (t *fakeTarget) Mutexes(_ []*manifest.Environment, places []reconcile.Place, _ lock.Holder) []lock.Mutex {
	var out []lock.Mutex
	for _, p := range places {
		out = append(out, fakeMutex{t: t, p: p})
	}
	return out
}

type fakeMutex struct {
	t *fakeTarget
	p reconcile.Place
}

func (m fakeMutex) Where() string { return m.p.Host }

func (m fakeMutex) TryLock(context.Context) (lock.Held, error) {
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	if h := m.t.lockedBy; h != nil && (m.t.lockedEnv == "" || m.t.lockedEnv == m.p.Key.Env) {
		return nil, &lock.LockedError{Info: lock.Info{Key: m.p.Key, Where: m.p.Host, Holder: *h}}
	}
	m.t.locks++
	return fakeHeld{}, nil
}

type fakeHeld struct{}

func (fakeHeld) Renew(context.Context) error  { return nil }
func (fakeHeld) Unlock(context.Context) error { return nil }

type fakeDriver struct {
	t        *fakeTarget
	envs     []*manifest.Environment
	revision string
}

func (d *fakeDriver) Apply(ctx context.Context, st plan.Step, progress func(string)) error {
	if d.t.delay > 0 {
		select {
		case <-time.After(d.t.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	if err := d.t.fail[st.Instance]; err != nil {
		return err
	}
	d.t.applied = append(d.t.applied, string(st.Action)+" "+st.Instance)
	if st.Action == plan.Remove {
		delete(d.t.containers, st.Instance)
		return nil
	}
	labels := map[string]string{label.Env: st.Env, label.Service: st.Service, label.Instance: st.Instance, label.SpecHash: st.SpecHash, label.Revision: d.revision}
	for _, env := range d.envs {
		if env.Name == st.Env { // the origin, as the Docker driver records it
			labels[label.File] = env.Path
			if len(env.Labels) > 0 {
				b, _ := json.Marshal(env.Labels)
				labels[label.EnvLabels] = string(b)
			}
		}
	}
	d.t.containers[st.Instance] = live.Container{ID: st.Instance + "-" + st.SpecHash[:6], Name: st.Instance, State: "running", Labels: labels}
	return nil
}

func manifestText(env, value string) string {
	return `name: ` + env + `
ships: {s1: {ip: 10.0.0.1}}
services:
  app:
    image: app:1
    env: {VALUE: "` + value + `"}
    instances:
      ` + env + `-1: {ship: s1}
`
}

func newTestDaemon(t *testing.T, src *fakeSource, tgt *fakeTarget) (*Daemon, context.CancelFunc, chan struct{}) {
	t.Helper()
	return startTestDaemon(t, Config{Source: src, Target: tgt, Branch: "main"})
}

// startTestDaemon runs a daemon of cfg, with quick polls and backoff,
// until the end of the test.
func startTestDaemon(t *testing.T, cfg Config) (*Daemon, context.CancelFunc, chan struct{}) {
	t.Helper()
	cfg.Poll, cfg.Resync, cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, time.Hour, 10*time.Millisecond, 40*time.Millisecond
	return runDaemon(t, cfg)
}

// runDaemon runs a daemon of cfg as it is until the end of the test.
func runDaemon(t testing.TB, cfg Config) (*Daemon, context.CancelFunc, chan struct{}) {
	t.Helper()
	d := New(cfg)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return d, cancel, done
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func envState(d *Daemon, name string) EnvStatus {
	for _, e := range d.Status().Environments {
		if e.Name == name {
			return e
		}
	}
	return EnvStatus{}
}

func TestDeploysNewCommitsAndStaysIdle(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	tgt := newFakeTarget()
	d, _, _ := newTestDaemon(t, src, tgt)
	eventually(t, "rev1 applied", func() bool { return envState(d, "a").AppliedRevision == "rev1" })
	if !d.Ready() {
		t.Error("not ready after a reconcile")
	}
	src.set("rev2", map[string]string{"a/manifest.yml": manifestText("a", "2")})
	eventually(t, "rev2 applied", func() bool { return envState(d, "a").AppliedRevision == "rev2" })
	time.Sleep(100 * time.Millisecond) // several polls on an unchanged revision
	tgt.mu.Lock()
	applied := strings.Join(tgt.applied, ",")
	tgt.mu.Unlock()
	if applied != "create a-1,replace a-1" {
		t.Errorf("applied %q, want one create and one replace", applied)
	}
	es := envState(d, "a")
	if es.State != "synced" || len(es.Instances) != 1 || !es.Instances[0].InSync || es.Instances[0].Revision != "rev2" {
		t.Errorf("status %+v", es)
	}
}

func TestInvalidEnvironmentStallsAlone(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1"), "b/manifest.yml": manifestText("b", "1")})
	tgt := newFakeTarget()
	d, _, _ := newTestDaemon(t, src, tgt)
	eventually(t, "both applied", func() bool {
		return envState(d, "a").AppliedRevision == "rev1" && envState(d, "b").AppliedRevision == "rev1"
	})
	broken := strings.Replace(manifestText("a", "2"), "ship: s1", "ship: s9", 1)
	src.set("rev2", map[string]string{"a/manifest.yml": broken, "b/manifest.yml": manifestText("b", "2")})
	eventually(t, "b at rev2", func() bool { return envState(d, "b").AppliedRevision == "rev2" })
	a := envState(d, "a")
	if a.State != "stalled" || len(a.Errors) == 0 || !strings.Contains(a.Errors[0], `unknown ship "s9"`) {
		t.Fatalf("a: %+v", a)
	}
	tgt.mu.Lock()
	aSpec := tgt.containers["a-1"].Labels[label.Revision]
	tgt.mu.Unlock()
	if aSpec != "rev1" {
		t.Errorf("the stalled environment was touched: a-1 at %s", aSpec)
	}
	src.set("rev3", map[string]string{"a/manifest.yml": manifestText("a", "3"), "b/manifest.yml": manifestText("b", "2")})
	eventually(t, "a resumed", func() bool { return envState(d, "a").AppliedRevision == "rev3" })
}

// TestUnchangedEnvironmentIsNotLoadedAgain checks that a new revision
// re-uses the environments whose files did not change.
func TestUnchangedEnvironmentIsNotLoadedAgain(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1"), "b/manifest.yml": manifestText("b", "1")})
	tgt := newFakeTarget()
	d, _, _ := newTestDaemon(t, src, tgt)
	eventually(t, "both applied", func() bool {
		return envState(d, "a").AppliedRevision == "rev1" && envState(d, "b").AppliedRevision == "rev1"
	})
	tgt.mu.Lock()
	a1, b1 := tgt.observed["a"], tgt.observed["b"]
	tgt.mu.Unlock()
	src.set("rev2", map[string]string{"a/manifest.yml": manifestText("a", "1"), "b/manifest.yml": manifestText("b", "2")})
	eventually(t, "b at rev2", func() bool { return envState(d, "b").AppliedRevision == "rev2" })
	tgt.mu.Lock()
	a2, b2 := tgt.observed["a"], tgt.observed["b"]
	applied := strings.Join(tgt.applied, ",")
	tgt.mu.Unlock()
	if a1 == nil || a2 != a1 {
		t.Error("environment a, unchanged, was loaded again")
	}
	if b2 == b1 {
		t.Error("environment b, changed, was not loaded again")
	}
	if applied != "create a-1,create b-1,replace b-1" && applied != "create b-1,create a-1,replace b-1" {
		t.Errorf("applied %q, want a-1 and b-1 created, then b-1 replaced", applied)
	}
}

func TestSourceErrorKeepsLastAppliedRevision(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	d, _, _ := newTestDaemon(t, src, newFakeTarget())
	eventually(t, "rev1", func() bool { return envState(d, "a").AppliedRevision == "rev1" })
	src.mu.Lock()
	src.err = errors.New("dial tcp 127.0.0.1:9: connection refused")
	src.mu.Unlock()
	eventually(t, "source error shown", func() bool { return d.Status().SourceError != "" })
	if envState(d, "a").AppliedRevision != "rev1" || d.Status().LastResult != "source_error" {
		t.Errorf("status after source error: %+v", d.Status())
	}
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	src.set("rev2", map[string]string{"a/manifest.yml": manifestText("a", "2")})
	eventually(t, "caught up", func() bool { return envState(d, "a").AppliedRevision == "rev2" && d.Status().SourceError == "" })
}

func TestFailedStepsAreRetriedWithBackoff(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	tgt := newFakeTarget()
	tgt.fail["a-1"] = errors.New("registry unavailable")
	d, _, _ := newTestDaemon(t, src, tgt)
	eventually(t, "failure reported", func() bool { return envState(d, "a").State == "failed" })
	if !strings.Contains(strings.Join(envState(d, "a").Errors, ";"), "registry unavailable") || d.Status().NextRetry.IsZero() {
		t.Errorf("status: %+v", d.Status())
	}
	tgt.mu.Lock()
	delete(tgt.fail, "a-1")
	tgt.mu.Unlock()
	eventually(t, "retried", func() bool { return envState(d, "a").State == "synced" })
}

func TestTriggersDuringARunCauseOneMoreRun(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	tgt := newFakeTarget()
	tgt.delay = 200 * time.Millisecond
	d := New(Config{Source: src, Target: tgt, Poll: time.Hour, Resync: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // the first run is applying
	src.mu.Lock()
	before := src.calls
	src.mu.Unlock()
	for range 5 {
		d.Trigger("webhook", time.Now())
	}
	eventually(t, "first run done", func() bool { return envState(d, "a").AppliedRevision == "rev1" })
	time.Sleep(300 * time.Millisecond)
	src.mu.Lock()
	after := src.calls
	src.mu.Unlock()
	if after-before != 1 {
		t.Errorf("5 triggers during a run caused %d more runs, want 1", after-before)
	}
}

func TestUnreachableShipIsRetryable(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	tgt := newFakeTarget()
	tgt.down = true
	d, _, _ := newTestDaemon(t, src, tgt)
	eventually(t, "failed", func() bool { return envState(d, "a").State == "failed" })
	if es := envState(d, "a"); !strings.Contains(strings.Join(es.Errors, ";"), "connection refused") || es.Instances[0].State != "unknown" {
		t.Errorf("status: %+v", es)
	}
	tgt.mu.Lock()
	tgt.down = false
	tgt.mu.Unlock()
	eventually(t, "recovered", func() bool { return envState(d, "a").State == "synced" })
}

func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// postTo sends a POST with headers and returns the status and body.
func postTo(t *testing.T, url string, body []byte, headers map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestWebhooksAndAPI(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	d := New(Config{Source: src, Target: newFakeTarget(), Branch: "main"})
	secret := []byte("s3cret")
	srv := httptest.NewServer(d.Handler(HTTPConfig{WebhookSecret: secret, APIToken: []byte("tok"), RateLimit: 1000}))
	defer srv.Close()
	push := []byte(`{"ref":"refs/heads/main"}`)
	other := []byte(`{"ref":"refs/heads/dev"}`)
	post := func(path string, body []byte, headers map[string]string) (int, string) {
		return postTo(t, srv.URL+path, body, headers)
	}
	for _, tc := range []struct {
		name    string
		path    string
		body    []byte
		headers map[string]string
		want    int
	}{
		{"github push", "/hooks/github", push, map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, push), "X-GitHub-Event": "push"}, 202},
		{"github bad signature", "/hooks/github", push, map[string]string{"X-Hub-Signature-256": "sha256=" + sign([]byte("nope"), push), "X-GitHub-Event": "push"}, 401},
		{"github no signature", "/hooks/github", push, map[string]string{"X-GitHub-Event": "push"}, 401},
		{"github ping", "/hooks/github", []byte(`{}`), map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, []byte(`{}`)), "X-GitHub-Event": "ping"}, 200},
		{"github issue event", "/hooks/github", push, map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, push), "X-GitHub-Event": "issues"}, 400},
		{"github other branch", "/hooks/github", other, map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, other), "X-GitHub-Event": "push"}, 422},
		{"gitea push", "/hooks/gitea", push, map[string]string{"X-Gitea-Signature": sign(secret, push), "X-Gitea-Event": "push"}, 202},
		{"gitea bad signature", "/hooks/gitea", push, map[string]string{"X-Gitea-Signature": sign(secret, other), "X-Gitea-Event": "push"}, 401},
		{"gitlab push", "/hooks/gitlab", push, map[string]string{"X-Gitlab-Token": "s3cret", "X-Gitlab-Event": "Push Hook"}, 202},
		{"gitlab wrong token", "/hooks/gitlab", push, map[string]string{"X-Gitlab-Token": "s3cre", "X-Gitlab-Event": "Push Hook"}, 401},
		{"generic", "/hooks/generic", push, map[string]string{"X-Maestro-Signature-256": "sha256=" + sign(secret, push)}, 202},
		{"generic empty body", "/hooks/generic", nil, map[string]string{"X-Maestro-Signature-256": "sha256=" + sign(secret, nil)}, 202},
		{"too large", "/hooks/github", bytes.Repeat([]byte("x"), maxBody+1), map[string]string{"X-GitHub-Event": "push"}, 413},
		{"sync without token", "/api/v1/sync", nil, nil, 401},
		{"sync wrong token", "/api/v1/sync", nil, map[string]string{"Authorization": "Bearer nope"}, 401},
		{"sync", "/api/v1/sync", nil, map[string]string{"Authorization": "Bearer tok"}, 202},
	} {
		if got, body := post(tc.path, tc.body, tc.headers); got != tc.want {
			t.Errorf("%s: status %d (%s), want %d", tc.name, got, strings.TrimSpace(body), tc.want)
		}
	}
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("readyz before any run: %d", resp.StatusCode)
	}
	resp, err = http.Get(srv.URL + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Source != "fake" {
		t.Errorf("status: %+v %v", st, err)
	}
}

func TestRateLimitAndDisabledWebhooks(t *testing.T) {
	d := New(Config{Source: &fakeSource{}, Target: newFakeTarget(), Branch: "main"})
	srv := httptest.NewServer(d.Handler(HTTPConfig{RateLimit: 1}))
	defer srv.Close()
	codes := map[int]int{}
	for range 30 {
		resp, err := http.Post(srv.URL+"/hooks/github", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[403] == 0 || codes[429] == 0 {
		t.Errorf("want 403 (no secret) then 429 (rate limit), got %v", codes)
	}
}

func TestInstanceStatusOfClusterServices(t *testing.T) {
	text := "name: k\nclusters: {prod: {namespace: shop}}\nservices:\n  web: {image: web:1, cluster: prod, replicas: 2}\n  api: {image: api:1, cluster: prod}\n"
	repo := manifest.LoadSources(fstest.MapFS{}, []manifest.Source{{Name: "manifest.yml", Data: []byte(text)}}, manifest.Options{})
	if err := repo.Err(); err != nil {
		t.Fatal(err)
	}
	env := repo.Environments[0]
	web := env.Service("web").Workload
	addr := env.Clusters["prod"].Address()
	state := &live.State{Clusters: map[string]*live.Cluster{addr: {Address: addr, Workloads: []live.Workload{{
		Kind: "Deployment", Name: "web-" + web.SpecHash[:8], Ready: true, Serving: true,
		Labels: map[string]string{label.Env: "k", label.Service: "web", label.SpecHash: web.SpecHash, label.Revision: "rev9"},
	}}}}}
	got := instanceStatus(env, state, map[string]string{"k/api": "rollout failed"})
	want := map[string]InstanceStatus{
		"web": {Name: "web", Service: "web", Ship: "prod", State: "running", Container: "web-" + web.SpecHash[:8], InSync: true, Revision: "rev9"},
		"api": {Name: "api", Service: "api", Ship: "prod", State: "missing", Error: "rollout failed"},
	}
	if len(got) != 2 {
		t.Fatalf("statuses: %+v", got)
	}
	for _, is := range got {
		if is != want[is.Name] {
			t.Errorf("%s: %+v, want %+v", is.Name, is, want[is.Name])
		}
	}
}

// An environment another run holds the lock of is left out, says who holds
// it, and is retried until the lock is free; the others deploy meanwhile.
func TestLockedEnvironmentIsRetried(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1"), "b/manifest.yml": manifestText("b", "1")})
	tgt := newFakeTarget()
	tgt.lockedBy, tgt.lockedEnv = &lock.Holder{Host: "laptop", PID: 42, Run: "r1"}, "a"
	d, _, _ := newTestDaemon(t, src, tgt)
	eventually(t, "b deployed while a is locked", func() bool {
		a := envState(d, "a")
		return envState(d, "b").AppliedRevision == "rev1" && a.State == "failed" &&
			len(a.Errors) > 0 && strings.Contains(a.Errors[0], "locked by laptop pid 42 run r1")
	})
	tgt.mu.Lock()
	for _, s := range tgt.applied {
		if strings.Contains(s, "a-1") {
			t.Errorf("applied while locked: %v", tgt.applied)
		}
	}
	tgt.lockedBy = nil
	tgt.mu.Unlock()
	eventually(t, "rev1 applied once the lock is free", func() bool { return envState(d, "a").AppliedRevision == "rev1" })
}

// An exec check (a committer's command on the deployer) stalls its
// environment when the daemon does not allow them; the others deploy.
func TestExecChecksStallTheirEnvironment(t *testing.T) {
	src := &fakeSource{}
	withExec := strings.Replace(manifestText("a", "1"), "    instances:", "    lifecycle:\n      running: [{type: exec, command: [sh, -c, id]}]\n    instances:", 1)
	src.set("rev1", map[string]string{"a/manifest.yml": withExec, "b/manifest.yml": manifestText("b", "1")})
	tgt := newFakeTarget()
	d := New(Config{Source: src, Target: tgt, Poll: time.Hour, Resync: time.Hour, Manifest: manifest.Options{DenyExecChecks: true}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "b applied", func() bool { return envState(d, "b").AppliedRevision == "rev1" })
	a := envState(d, "a/manifest.yml") // never valid: named by its file
	if a.State != "stalled" || len(a.Errors) == 0 || !strings.Contains(a.Errors[0], "--allow-exec-checks") {
		t.Errorf("a: %+v", a)
	}
	tgt.mu.Lock()
	defer tgt.mu.Unlock()
	if _, ok := tgt.containers["a-1"]; ok {
		t.Error("a was deployed with an exec check")
	}
}

// A flood of unsigned requests uses up only its own bucket: a signed
// webhook and a valid token still get through.
func TestAuthenticatedRequestsOutliveAFlood(t *testing.T) {
	d := New(Config{Source: &fakeSource{}, Target: newFakeTarget(), Branch: "main"})
	secret := []byte("s3cret")
	srv := httptest.NewServer(d.Handler(HTTPConfig{WebhookSecret: secret, APIToken: []byte("tok"), RateLimit: 1}))
	defer srv.Close()
	push := []byte(`{"ref":"refs/heads/main"}`)
	do := func(path string, body []byte, headers map[string]string) int {
		code, _ := postTo(t, srv.URL+path, body, headers)
		return code
	}
	codes := map[int]int{}
	for range 60 {
		codes[do("/hooks/github", push, map[string]string{"X-GitHub-Event": "push"})]++
	}
	if codes[401] == 0 || codes[429] == 0 || codes[401]+codes[429] != 60 {
		t.Errorf("unsigned flood: %v, want 401s then 429s", codes)
	}
	if got := do("/hooks/github", push, map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, push), "X-GitHub-Event": "push"}); got != 202 {
		t.Errorf("signed webhook after the flood: %d, want 202", got)
	}
	for range 30 {
		do("/api/v1/sync", nil, map[string]string{"Authorization": "Bearer wrong"})
	}
	if got := do("/api/v1/sync", nil, map[string]string{"Authorization": "Bearer tok"}); got != 202 {
		t.Errorf("valid token after a flood of wrong ones: %d, want 202", got)
	}
}

func TestReadToken(t *testing.T) {
	d := New(Config{Source: &fakeSource{}, Target: newFakeTarget(), Branch: "main", Metrics: NewMetrics()})
	srv := httptest.NewServer(d.Handler(HTTPConfig{APIToken: []byte("admin"), ReadToken: []byte("reader")}))
	defer srv.Close()
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/api/v1/status", "/metrics"} {
		for token, want := range map[string]int{"": 401, "nope": 401, "reader": 200, "admin": 200} {
			if got := get(path, token); got != want {
				t.Errorf("GET %s with token %q: %d, want %d", path, token, got, want)
			}
		}
	}
	if got := get("/healthz", ""); got != 200 {
		t.Errorf("healthz needs no token: %d", got)
	}
}

// TestRunEndedFollowsEachRun checks that Config.RunEnded is called after
// each run, once the status holds the run's result.
func TestRunEndedFollowsEachRun(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	var started atomic.Pointer[Daemon]
	var mu sync.Mutex
	var results []string
	cfg := Config{Source: src, Target: newFakeTarget(), Branch: "main", RunEnded: func() {
		for started.Load() == nil {
			time.Sleep(time.Millisecond)
		}
		r := started.Load().Status().LastResult
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}}
	d, _, _ := startTestDaemon(t, cfg)
	started.Store(d)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(results) }
	eventually(t, "a run to end", func() bool { return count() >= 1 })
	src.set("rev2", map[string]string{"a/manifest.yml": manifestText("a", "2")})
	eventually(t, "rev2 applied", func() bool { return envState(d, "a").AppliedRevision == "rev2" })
	eventually(t, "its run to end", func() bool { return count() >= 2 })
	mu.Lock()
	defer mu.Unlock()
	for i, r := range results {
		if r != "success" {
			t.Errorf("run %d ended with the status's result %q", i+1, r)
		}
	}
}

// TestTriggerAtTheEndOfARunIsServed: a trigger that comes as a run ends
// (here, from the end-of-run hook, before the loop checks for more) is
// served at once, not at the next poll.
func TestTriggerAtTheEndOfARunIsServed(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	ended := make(chan struct{}, 1)
	d, _, _ := runDaemon(t, Config{Source: src, Target: newFakeTarget(), Branch: "main",
		Poll: time.Hour, Resync: time.Hour, BackoffMin: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond,
		RunEnded: func() { ended <- struct{}{} }})
	<-ended // the first run
	for i := range 2000 {
		d.Trigger("api", time.Now())
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("trigger %d: no run within 10 s (the poll is an hour away)", i+1)
		}
	}
}
