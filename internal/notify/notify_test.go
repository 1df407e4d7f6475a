package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// request is what a receiver got.
type request struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

// receiver records requests and answers with the statuses given, then 200.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	got      []request
	statuses []int
	answer   string
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, answer: `{"ok": true}`}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Clone(), string(body)})
		status := 200
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, r.answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func jsonOf(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

var (
	started = Event{Kind: Started, Env: "shop", Revision: "0123456789abcdef0123456789abcdef01234567", Action: "deploy", Who: "maestro-sync",
		Targets: []string{"web-1", "web-2"}, Time: time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)}
	failed = Event{Kind: Failed, Env: "shop", Revision: started.Revision, Action: "deploy", Who: "maestro-sync",
		Targets: []string{"web-1", "web-2", "web-3", "web-4", "web-5"}, Message: "web-3: health check failed", RunID: 7,
		URL: "https://deploy.example.com/runs/7", Time: started.Time}
)

func TestSlackAuditor(t *testing.T) {
	api := newReceiver(t)
	n, why := FromAudit("shop", manifest.Auditor{Type: "slack", Options: map[string]string{"channel": "#ops", "token": "xoxb-secret", "name": "deployer", "icon": "https://i.example/x.png"}}, AuditOptions{SlackAPI: api.URL})
	if n == nil {
		t.Fatal(why)
	}
	for _, ev := range []Event{started, failed} {
		if err := n.Notify(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	got := api.requests()
	if len(got) != 2 || got[0].Path != "/chat.postMessage" || got[0].Header.Get("Authorization") != "Bearer xoxb-secret" {
		t.Fatalf("requests: %+v", got)
	}
	want := []any{
		map[string]any{"channel": "#ops", "username": "deployer", "icon_url": "https://i.example/x.png", "attachments": []any{map[string]any{
			"fallback": "maestro-sync is deploying web-1, web-2.", "text": "maestro-sync is deploying web-1, web-2.", "color": "#1dc7d3", "fields": []any{}}}},
		map[string]any{"channel": "#ops", "username": "deployer", "icon_url": "https://i.example/x.png", "attachments": []any{map[string]any{
			"fallback": "Failed to deploy 5 containers! (message: web-3: health check failed)", "text": "Failed to deploy 5 containers! (message: web-3: health check failed)",
			"color": "danger", "fields": []any{
				map[string]any{"title": "Error", "value": "web-3: health check failed", "short": true},
				map[string]any{"title": "Targets", "value": "web-1, web-2, web-3, web-4, web-5"}}}}},
	}
	for i := range want {
		if diff := cmp.Diff(want[i], jsonOf(t, got[i].Body)); diff != "" {
			t.Errorf("message %d (-want +got):\n%s", i, diff)
		}
	}
	// Slack answers 200 with ok: false on errors.
	api.answer = `{"ok": false, "error": "channel_not_found"}`
	if err := n.Notify(t.Context(), started); err == nil || !strings.Contains(err.Error(), "channel_not_found") {
		t.Errorf("ok: false: %v", err)
	}

	hook := newReceiver(t)
	n, _ = FromAudit("shop", manifest.Auditor{Type: "slack", Options: map[string]string{"webhook_url": hook.URL + "/services/T/B/X"}}, AuditOptions{})
	if err := n.Notify(t.Context(), Event{Kind: Succeeded, Env: "shop", Action: "deploy", Targets: []string{"web-1"}}); err != nil {
		t.Fatal(err)
	}
	if got := hook.requests(); len(got) != 1 || got[0].Path != "/services/T/B/X" || got[0].Header.Get("Authorization") != "" ||
		!strings.Contains(got[0].Body, `"text":"Deploy of web-1 succeeded."`) || !strings.Contains(got[0].Body, `"color":"good"`) {
		t.Errorf("incoming webhook: %+v", got)
	}
}

func TestHTTPAuditor(t *testing.T) {
	r := newReceiver(t)
	n, why := FromAudit("shop", manifest.Auditor{Type: "http", Options: map[string]string{"endpoint": r.URL + "/hook",
		"payload": `{"text": "{who} {action} {what}", "msg": "{message}", "empty": "", "list": ["{action}", ""], "n": 3, "keep": "{{literal}} {nope}"}`,
		"headers": `{"X-Token": "abc"}`}}, AuditOptions{})
	if n == nil {
		t.Fatal(why)
	}
	for _, ev := range []Event{started, failed} { // MaestroNG's webhook tells the start only
		if err := n.Notify(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	got := r.requests()
	if len(got) != 1 || got[0].Method != "POST" || got[0].Header.Get("X-Token") != "abc" || got[0].Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("requests: %+v", got)
	}
	want := map[string]any{"text": "maestro-sync deploy web-1, web-2", "msg": "maestro-sync is deploying web-1, web-2.", "list": []any{"deploy"}, "n": 3.0, "keep": "{literal} {nope}"}
	if diff := cmp.Diff(want, jsonOf(t, got[0].Body)); diff != "" {
		t.Errorf("payload (-want +got):\n%s", diff)
	}
	if n, why := FromAudit("shop", manifest.Auditor{Type: "http", Options: map[string]string{"endpoint": r.URL, "method": "PUT"}}, AuditOptions{}); n != nil || why == "" {
		t.Errorf("method PUT accepted")
	}
}

func TestLogAuditor(t *testing.T) {
	if n, why := FromAudit("shop", manifest.Auditor{Type: "log", Options: map[string]string{"file": "/var/log/audit.log"}}, AuditOptions{}); n != nil || !strings.Contains(why, "--audit-log-dir") {
		t.Errorf("a log auditor without --audit-log-dir: %v %q", n, why)
	}
	dir := t.TempDir()
	n, _ := FromAudit("shop", manifest.Auditor{Type: "log", Options: map[string]string{"file": "../../etc/audit.log"}}, AuditOptions{LogDir: dir})
	for _, ev := range []Event{started, failed} {
		if err := n.Notify(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " INFO: maestro-sync is deploying web-1, web-2.") ||
		!strings.HasSuffix(lines[1], " ERROR: Failed to deploy web-1, web-2, web-3, web-4, web-5! (message: web-3: health check failed)") {
		t.Errorf("log lines:\n%s", data)
	}
	for _, typ := range []string{"exec", "hipchat"} {
		if n, why := FromAudit("shop", manifest.Auditor{Type: typ}, AuditOptions{}); n != nil || why == "" {
			t.Errorf("auditor %s is run", typ)
		}
	}
}

func TestCommitStatus(t *testing.T) {
	for _, tc := range []struct {
		forge             Forge
		path, auth, authV string
		want              map[string]any
	}{
		{GitHub, "/repos/ops/deploy/statuses/" + failed.Revision, "Authorization", "Bearer tok",
			map[string]any{"state": "failure", "context": "maestro-sync/shop", "description": "deploy failed: web-3: health check failed", "target_url": failed.URL}},
		{Gitea, "/repos/ops/deploy/statuses/" + failed.Revision, "Authorization", "token tok",
			map[string]any{"state": "failure", "context": "maestro-sync/shop", "description": "deploy failed: web-3: health check failed", "target_url": failed.URL}},
		{GitLab, "/projects/ops%2Fdeploy/statuses/" + failed.Revision, "Private-Token", "tok",
			map[string]any{"state": "failed", "name": "maestro-sync/shop", "description": "deploy failed: web-3: health check failed", "target_url": failed.URL}},
	} {
		r := newReceiver(t)
		n := &CommitStatus{Forge: tc.forge, API: r.URL, Repo: "ops/deploy", Token: "tok"}
		if err := n.Notify(t.Context(), failed); err != nil {
			t.Fatal(err)
		}
		if err := n.Notify(t.Context(), Event{Kind: Succeeded, Env: "shop", Revision: "dir:abc"}); err != nil {
			t.Fatal(err)
		}
		got := r.requests()
		if len(got) != 1 {
			t.Fatalf("%s: %d requests (a directory's digest is no commit)", tc.forge, len(got))
		}
		rawPath := got[0].Path
		if tc.forge == GitLab {
			rawPath = strings.Replace(rawPath, "ops/deploy", "ops%2Fdeploy", 1)
		}
		if got[0].Method != "POST" || rawPath != tc.path || got[0].Header.Get(tc.auth) != tc.authV {
			t.Errorf("%s: %s %s %v", tc.forge, got[0].Method, got[0].Path, got[0].Header)
		}
		if diff := cmp.Diff(any(tc.want), jsonOf(t, got[0].Body)); diff != "" {
			t.Errorf("%s body (-want +got):\n%s", tc.forge, diff)
		}
	}
}

func TestWebhookAndDispatcher(t *testing.T) {
	// Two failures, then success: delivered on the third attempt.
	r := newReceiver(t, 503, 500)
	d := NewDispatcher(Options{Backoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	secret := []byte("hook-secret")
	d.Send(failed, &Webhook{URL: r.URL + "/in", Secret: secret})
	deadline := time.Now().Add(5 * time.Second)
	for len(r.requests()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := r.requests()
	if len(got) != 3 {
		t.Fatalf("%d attempts, want 3", len(got))
	}
	last := got[2]
	if last.Header.Get(SignatureHeader) != Sign(secret, []byte(last.Body)) || last.Header.Get("X-Maestro-Sync-Event") != "failed" {
		t.Errorf("signature %q of %s", last.Header.Get(SignatureHeader), last.Body)
	}
	var ev Event
	if err := json.Unmarshal([]byte(last.Body), &ev); err != nil || ev.Env != "shop" || ev.RunID != 7 || ev.Message != failed.Message || len(ev.Targets) != 5 {
		t.Errorf("event: %+v %v", ev, err)
	}

	// A 4xx is not retried; Send never blocks, even with a slow receiver.
	bad := newReceiver(t, 400)
	d.Send(started, &Webhook{URL: bad.URL})
	time.Sleep(200 * time.Millisecond)
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(200 * time.Millisecond) }))
	defer slow.Close()
	start := time.Now()
	for range 1000 {
		d.Send(started, &Webhook{URL: slow.URL})
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Send blocked for %s", took)
	}
	if n := len(bad.requests()); n != 1 {
		t.Errorf("a 400 was tried %d times", n)
	}
}

// funcNotifier is a notifier of a test.
type funcNotifier struct {
	name string
	fn   func(Event) error
}

func (f funcNotifier) Name() string                            { return f.name }
func (f funcNotifier) Notify(_ context.Context, e Event) error { return f.fn(e) }

// TestADeadReceiverDelaysOnlyItself: events for a notifier whose receiver
// fails and is retried do not wait behind it.
func TestADeadReceiverDelaysOnlyItself(t *testing.T) {
	d := NewDispatcher(Options{Backoff: time.Second, Attempts: 5})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	dead := funcNotifier{"dead", func(Event) error { return errors.New("connection refused") }}
	got := make(chan time.Time, 1)
	alive := funcNotifier{"alive", func(Event) error { got <- time.Now(); return nil }}
	start := time.Now()
	d.Send(started, dead)
	d.Send(started, alive)
	select {
	case at := <-got:
		if took := at.Sub(start); took > 500*time.Millisecond {
			t.Errorf("the live notifier waited %s behind the dead one", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the live notifier was never told")
	}
}
