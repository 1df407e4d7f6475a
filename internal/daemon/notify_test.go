package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/notify"
)

// TestNotifications: an audit: slack entry of the manifest and a GitHub
// commit status receive a deploy's start and its success, then its start
// and its failure (told once, not at every retry), with links to the
// runs; no variable value or credential is in any payload.
func TestNotifications(t *testing.T) {
	var mu sync.Mutex
	var slack, github []string
	recv := func(into *[]string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			*into = append(*into, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" "+string(body))
			mu.Unlock()
			io.WriteString(w, `{"ok": true}`)
		}))
	}
	slackSrv, githubSrv := recv(&slack), recv(&github)
	defer slackSrv.Close()
	defer githubSrv.Close()

	text := func(value string) string {
		return `name: a
ships: {s1: {ip: 10.0.0.1}}
audit:
  - {type: slack, channel: "#ops", token: xoxb-tok}
services:
  app:
    image: app:1
    env: {VALUE: "` + value + `", DB_PASSWORD: "pw-value-9f3"}
    instances:
      a-1: {ship: s1}
`
	}
	store := openStore(t)
	src := &fakeSource{}
	src.set("1111111111111111111111111111111111111111", map[string]string{"a/manifest.yml": text("1")})
	tgt := newFakeTarget()
	dispatch := notify.NewDispatcher(notify.Options{Backoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { dispatch.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() }) // after the daemon stopped
	startTestDaemon(t, Config{Source: src, Target: tgt, History: store, Notify: dispatch, Audit: notify.AuditOptions{SlackAPI: slackSrv.URL},
		Notifiers: []notify.Notifier{&notify.CommitStatus{Forge: notify.GitHub, API: githubSrv.URL, Repo: "ops/deploy", Token: "gh-tok"}},
		PublicURL: "https://deploy.example.com/"})

	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return len(slack), len(github) }
	eventually(t, "the first deploy told", func() bool { s, g := count(); return s == 2 && g == 2 })
	tgt.mu.Lock()
	tgt.fail["a-1"] = errors.New("start: port is already allocated")
	tgt.mu.Unlock()
	src.set("2222222222222222222222222222222222222222", map[string]string{"a/manifest.yml": text("2")})
	eventually(t, "the failed deploy told", func() bool { s, g := count(); return s == 4 && g == 4 })
	time.Sleep(200 * time.Millisecond) // retries with backoff
	if s, g := count(); s != 4 || g != 4 {
		t.Errorf("a retried failure was told again: %d slack, %d github", s, g)
	}

	mu.Lock()
	defer mu.Unlock()
	var texts []string
	for _, m := range slack {
		if !strings.HasPrefix(m, "POST /chat.postMessage Bearer xoxb-tok ") {
			t.Errorf("slack request: %s", m)
		}
		var body struct {
			Channel     string
			Attachments []struct{ Text, Color string }
		}
		json.Unmarshal([]byte(m[strings.Index(m, "{"):]), &body)
		texts = append(texts, body.Channel+" "+body.Attachments[0].Color+" "+body.Attachments[0].Text)
	}
	want := []string{"#ops #1dc7d3 maestro-sync is deploying a-1.", "#ops good Deploy of a-1 succeeded.",
		"#ops #1dc7d3 maestro-sync is deploying a-1.", "#ops danger Failed to deploy a-1! (message: replace a-1 on s1: start: port is already allocated)"}
	if strings.Join(texts, "\n") != strings.Join(want, "\n") {
		t.Errorf("slack messages:\n%s\nwant:\n%s", strings.Join(texts, "\n"), strings.Join(want, "\n"))
	}
	var states []string
	for _, m := range github {
		var body map[string]string
		json.Unmarshal([]byte(m[strings.Index(m, "{"):]), &body)
		fields := strings.Fields(m)
		states = append(states, fields[1][len("/repos/ops/deploy/statuses/"):][:4]+" "+body["state"]+" "+body["context"]+" "+body["target_url"])
		if fields[2] != "Bearer" || fields[3] != "gh-tok" {
			t.Errorf("github request: %s", m)
		}
	}
	if states[0] != "1111 pending maestro-sync/a https://deploy.example.com/environments/a" ||
		!strings.HasPrefix(states[1], "1111 success maestro-sync/a https://deploy.example.com/runs/") ||
		states[2] != "2222 pending maestro-sync/a https://deploy.example.com/environments/a" ||
		!strings.HasPrefix(states[3], "2222 failure maestro-sync/a https://deploy.example.com/runs/") {
		t.Errorf("commit statuses:\n%s", strings.Join(states, "\n"))
	}
	for _, m := range append(slack, github...) {
		body := m[strings.Index(m, "{"):]
		if strings.Contains(body, "pw-value-9f3") || strings.Contains(body, "xoxb-tok") || strings.Contains(body, "gh-tok") {
			t.Errorf("a secret in a payload: %s", m)
		}
	}
}
