package web

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/daemon"
	"github.com/maestro-sync/maestro-sync/internal/history"
)

// fakeDaemon stands for the daemon: a status, and the operations asked.
type fakeDaemon struct {
	mu     sync.Mutex
	status daemon.Status
	asked  []string
}

func (f *fakeDaemon) Status() daemon.Status { f.mu.Lock(); defer f.mu.Unlock(); return f.status }
func (f *fakeDaemon) Trigger(reason string, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, "trigger "+reason)
}
func (f *fakeDaemon) Pause(env, reason string) (history.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, "pause "+env+" "+reason)
	return history.Hold{Env: env, Paused: true}, nil
}
func (f *fakeDaemon) Resume(env string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, "resume "+env)
	return nil
}
func (f *fakeDaemon) Rollback(_ context.Context, env, rev, reason string) (history.Hold, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, "rollback "+env+" "+rev+" "+reason)
	return history.Hold{Env: env, Revision: rev}, nil
}
func (f *fakeDaemon) Known(env string) bool { return env == "shop" || env == "<b>x</b>" }

func (f *fakeDaemon) took() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.asked, "; ")
}

func newServer(t *testing.T, opts Options) (*httptest.Server, *fakeDaemon) {
	t.Helper()
	f := &fakeDaemon{status: daemon.Status{Source: "https://git.example.com/ops.git (ref main)", Revision: "0123456789abcdef",
		RevisionSubject: `bump <script>alert(1)</script>`, Environments: []daemon.EnvStatus{
			{Name: "shop", State: "synced", AppliedRevision: "0123456789abcdef", Instances: []daemon.InstanceStatus{{Name: "web-1", Service: "web", Ship: "vm1", State: "running", InSync: true,
				Image: "registry.example.com/shop/web:ctx-0123456789abcdef@sha256:abcdef0123456789abcdef0123456789"}}},
			{Name: "<b>x</b>", State: "stalled", Errors: []string{"x/manifest.yml:3:5: unknown ship \"s9\""}},
		}, Role: "follower", Leader: "maestro-sync-7d9f",
		Shard: &daemon.ShardStatus{Environments: []string{"apps/eu/**", "apps/<i>"}, Selector: "shard in (a,b)"}}}
	h, err := New(f, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, f
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPagesEscapeAndShowTheStatus: the overview shows every environment
// with its state, errors and instances; what comes from commits and files
// is escaped; there are no controls without the API token.
func TestPagesEscapeAndShowTheStatus(t *testing.T) {
	srv, _ := newServer(t, Options{APIToken: []byte("api")})
	code, body := get(t, srv.Client(), srv.URL+"/")
	if code != 200 {
		t.Fatalf("GET /: %d", code)
	}
	for _, want := range []string{"shop", "synced", "web-1", "stalled", "unknown ship &#34;s9&#34;", "&lt;b&gt;x&lt;/b&gt;",
		"bump &lt;script&gt;alert(1)&lt;/script&gt;", "0123456789ab", "No run recorded yet", `http-equiv="refresh"`} {
		if !strings.Contains(body, want) && !(want == "No run recorded yet" && strings.Contains(body, "keeps no history")) {
			t.Errorf("GET / lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "Sync now") {
		t.Errorf("GET / has a raw script or controls without a token:\n%s", body)
	}
	if !strings.Contains(body, "follower") || !strings.Contains(body, "leader: maestro-sync-7d9f") {
		t.Errorf("GET / does not say the replica follows")
	}
	if !strings.Contains(body, "Shard") || !strings.Contains(body, "apps/eu/**, apps/&lt;i&gt;") || !strings.Contains(body, "shard in (a,b)") {
		t.Errorf("GET / does not show the daemon's shard (its globs, escaped, and selector)")
	}
	if _, body := get(t, srv.Client(), srv.URL+"/environments/shop"); !strings.Contains(body, "registry.example.com/shop/web:ctx-0123456789abcdef@abcdef012345") {
		t.Errorf("the environment page does not show the pinned image:\n%s", body)
	}
	if code, body := get(t, srv.Client(), srv.URL+"/environments/"+url.PathEscape("<b>x</b>")); code != 200 || !strings.Contains(body, "unknown ship") {
		t.Errorf("environment page: %d\n%s", code, body)
	}
	for _, path := range []string{"/environments/nope", "/runs/1", "/runs/x", "/nope"} {
		if code, _ := get(t, srv.Client(), srv.URL+path); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	resp, _ := srv.Client().Get(srv.URL + "/static/style.css")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("style.css: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("no content security policy: %q", csp)
	}
}

// TestLoginAndActions: with a read token, pages send strangers to /login;
// the read token reads but cannot act; the API token acts, from the same
// origin only.
func TestLoginAndActions(t *testing.T) {
	srv, f := newServer(t, Options{APIToken: []byte("api-tok"), ReadToken: []byte("read-tok")})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	code, body := get(t, c, srv.URL+"/environments/shop")
	if code != 200 || !strings.Contains(body, `name="token"`) || !strings.Contains(body, `value="/environments/shop"`) {
		t.Fatalf("a stranger is not sent to /login: %d\n%s", code, body)
	}
	post := func(path string, form url.Values, origin string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/login", url.Values{"token": {"wrong"}}, srv.URL); code != http.StatusUnauthorized {
		t.Errorf("login with a wrong token: %d", code)
	}
	if code := post("/login", url.Values{"token": {"read-tok"}, "next": {"//evil.example/"}}, srv.URL); code != 200 {
		t.Errorf("login with the read token: %d", code)
	}
	if code, body := get(t, c, srv.URL+"/"); code != 200 || !strings.Contains(body, "shop") || strings.Contains(body, "Sync now") {
		t.Errorf("reading with the read token: %d", code)
	}
	if code := post("/ui/sync", nil, srv.URL); code != http.StatusUnauthorized {
		t.Errorf("sync with the read token: %d", code)
	}
	post("/login", url.Values{"token": {"api-tok"}}, srv.URL)
	if _, body := get(t, c, srv.URL+"/environments/shop"); !strings.Contains(body, "Pause") || !strings.Contains(body, "Sync now") {
		t.Errorf("no controls with the API token")
	}
	if code := post("/ui/environments/shop/pause", url.Values{"reason": {"incident\x00 7"}}, "https://evil.example"); code != http.StatusForbidden {
		t.Errorf("cross-origin pause: %d", code)
	}
	for _, p := range []string{"/ui/environments/shop/pause", "/ui/environments/shop/resume", "/ui/sync", "/ui/environments/nope/pause", "/ui/environments/shop/rollback"} {
		post(p, url.Values{"reason": {"incident\x00 7"}, "to": {"0123abcd"}}, srv.URL)
	}
	if got, want := f.took(), "pause shop incident 7; resume shop; trigger api; rollback shop 0123abcd incident 7"; got != want {
		t.Errorf("the daemon was asked %q, want %q", got, want)
	}
}

// TestEnvironmentPageOffersRollback: with the API token, the page of an
// environment offers to roll back to the commit of each successful run.
func TestEnvironmentPageOffersRollback(t *testing.T) {
	store, err := history.Open(t.TempDir(), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rev := "89abcdef0123456789abcdef0123456789abcdef"
	store.Add(history.Run{Env: "shop", Trigger: "poll", Revision: rev, Subject: "web 1.4", Result: "success", Started: time.Now(), Finished: time.Now()})
	store.Add(history.Run{Env: "shop", Trigger: "poll", Revision: "dir:0123", Result: "success", Started: time.Now(), Finished: time.Now()})
	srv, _ := newServer(t, Options{APIToken: []byte("api"), History: store})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/environments/shop", nil)
	req.Header.Set("Authorization", "Bearer api")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := strings.Count(string(body), "Roll back here"); n != 1 || !strings.Contains(string(body), `value="`+rev+`"`) || !strings.Contains(string(body), "web 1.4") {
		t.Errorf("%d rollback buttons (want 1, for the commit):\n%s", n, body)
	}
	if code, body := get(t, srv.Client(), srv.URL+"/environments/shop"); code != 200 || strings.Contains(body, "Roll back") {
		t.Errorf("rollback offered without the token: %d", code)
	}
}

// TestSafeNext: after login, only a path of this site is followed.
func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"/environments/shop": "/environments/shop", "/runs/3?x=1": "/runs/3?x=1", "": "/", "//evil.example/": "/",
		"/\t/evil.example": "/", "/\\evil.example": "/", "https://evil.example/": "/", "evil.example": "/", "/%09/evil": "/%09/evil",
	} {
		if got := safeNext(next); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, want)
		}
	}
}

// TestFlashIsNotFreeText: ?done= shows one of the actions' messages only.
func TestFlashIsNotFreeText(t *testing.T) {
	srv, _ := newServer(t, Options{})
	if _, body := get(t, srv.Client(), srv.URL+"/?done=Your+token+expired,+log+in+at+evil.example"); strings.Contains(body, "evil.example") {
		t.Errorf("a link makes the page say anything")
	}
	if _, body := get(t, srv.Client(), srv.URL+"/?done=pause"); !strings.Contains(body, "Paused.") {
		t.Errorf("the pause message is not shown")
	}
}
