package daemon

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/history"
	"github.com/maestro-sync/maestro-sync/internal/label"
)

// TestHistoryRecordsRuns: the runs that change something or the state of
// an environment are kept, with their steps and the commit; idle polls
// are not; a stalled environment still shows what runs; the API serves
// the history.
func TestHistoryRecordsRuns(t *testing.T) {
	store := openStore(t)
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1")})
	tgt := newFakeTarget()
	d, _, _ := startTestDaemon(t, Config{Source: src, Target: tgt, History: store})

	eventually(t, "rev1 applied", func() bool { return envState(d, "a").AppliedRevision == "rev1" })
	src.set("rev2", map[string]string{"a/manifest.yml": manifestText("a", "2")})
	eventually(t, "rev2 applied", func() bool { return envState(d, "a").AppliedRevision == "rev2" })
	time.Sleep(100 * time.Millisecond) // idle polls
	if envState(d, "a").LastRunID == 0 {
		t.Errorf("idle polls dropped the last run's ID from the status")
	}
	src.set("rev3", map[string]string{"a/manifest.yml": strings.Replace(manifestText("a", "3"), "ship: s1", "ship: s9", 1)})
	eventually(t, "rev3 stalled", func() bool { return envState(d, "a").State == "stalled" })
	if a := envState(d, "a"); a.AppliedRevision != "rev2" || len(a.Instances) != 1 || a.Instances[0].Revision != "rev2" {
		t.Errorf("a stalled environment no longer shows what runs: %+v", a)
	}
	src.set("rev4", map[string]string{"a/manifest.yml": manifestText("a", "4")})
	eventually(t, "rev4 applied", func() bool { return envState(d, "a").AppliedRevision == "rev4" })

	// The run is recorded once its status is.
	var runs []history.Run
	var err error
	eventually(t, "the fourth run recorded", func() bool {
		runs, err = store.List(history.Query{Env: "a"})
		return err == nil && len(runs) >= 4 && envState(d, "a").LastRunID == runs[0].ID
	})
	var got []string
	for _, r := range slices.Backward(runs) {
		var steps []string
		for _, st := range r.Steps {
			steps = append(steps, st.Action+" "+st.Instance+" "+st.Result)
		}
		got = append(got, r.Revision+" "+r.Result+" ["+strings.Join(steps, ",")+"]")
	}
	want := []string{"rev1 success [create a-1 success]", "rev2 success [replace a-1 success]", "rev3 stalled []", "rev4 success [replace a-1 success]"}
	if !slices.Equal(got, want) {
		t.Errorf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if runs[0].ID != envState(d, "a").LastRunID {
		t.Errorf("last run ID %d, newest run %d", envState(d, "a").LastRunID, runs[0].ID)
	}
	if len(runs) == 4 && !strings.Contains(strings.Join(runs[1].Errors, ";"), `unknown ship "s9"`) {
		t.Errorf("the stalled run lacks its error: %+v", runs[1])
	}

	srv := httptest.NewServer(d.Handler(HTTPConfig{}))
	defer srv.Close()
	var body struct{ Runs []history.Run }
	resp, err := http.Get(srv.URL + "/api/v1/history?env=a&limit=2")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if len(body.Runs) != 2 || body.Runs[0].ID != runs[0].ID || body.Runs[1].ID != runs[1].ID {
		t.Errorf("GET /api/v1/history?env=a&limit=2: %+v", body.Runs)
	}
	for path, status := range map[string]int{
		"/api/v1/history/" + strconv.FormatUint(runs[0].ID, 10): http.StatusOK, "/api/v1/history/9999": http.StatusNotFound,
		"/api/v1/history/x": http.StatusBadRequest, "/api/v1/history?limit=-1": http.StatusBadRequest,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, status)
		}
	}
}

// TestPauseAndResume: the API pauses an environment (with the API token
// only); its new revision waits as pending while another environment
// goes on; the pause is in the store; resume deploys what waited.
func TestPauseAndResume(t *testing.T) {
	store := openStore(t)
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": manifestText("a", "1"), "b/manifest.yml": manifestText("b", "1")})
	tgt := newFakeTarget()
	d, _, _ := startTestDaemon(t, Config{Source: src, Target: tgt, History: store})
	eventually(t, "rev1 applied", func() bool {
		return envState(d, "a").AppliedRevision == "rev1" && envState(d, "b").AppliedRevision == "rev1"
	})

	srv := httptest.NewServer(d.Handler(HTTPConfig{APIToken: []byte("tok")}))
	defer srv.Close()
	post := func(path, token string) int {
		code, _ := postTo(t, srv.URL+path, nil, map[string]string{"Authorization": "Bearer " + token})
		return code
	}
	for path, want := range map[string]int{
		"/api/v1/environments/a/pause":    http.StatusUnauthorized,
		"/api/v1/environments/nope/pause": http.StatusNotFound,
	} {
		token := "tok"
		if want == http.StatusUnauthorized {
			token = "wrong"
		}
		if got := post(path, token); got != want {
			t.Errorf("POST %s: %d, want %d", path, got, want)
		}
	}
	if got := post("/api/v1/environments/a/pause?reason=incident", "tok"); got != http.StatusOK {
		t.Fatalf("pause: %d", got)
	}
	if holds, _ := store.Holds(); !holds["a"].Paused || holds["a"].Reason != "incident" {
		t.Errorf("stored holds: %+v", holds)
	}
	src.set("rev2", map[string]string{"a/manifest.yml": manifestText("a", "2"), "b/manifest.yml": manifestText("b", "2")})
	eventually(t, "b at rev2, a paused with a pending change", func() bool {
		a := envState(d, "a")
		return envState(d, "b").AppliedRevision == "rev2" && a.State == "paused" && len(a.Pending) == 1
	})
	if a := envState(d, "a"); !strings.Contains(a.Note, "incident") || !strings.HasPrefix(a.Pending[0], "replace a-1") {
		t.Errorf("paused status: %+v", a)
	}
	tgt.mu.Lock()
	rev := tgt.containers["a-1"].Labels[label.Revision]
	tgt.mu.Unlock()
	if rev != "rev1" {
		t.Errorf("a paused environment was changed: a-1 at %s", rev)
	}
	if got := post("/api/v1/environments/a/resume", "tok"); got != http.StatusOK {
		t.Fatalf("resume: %d", got)
	}
	eventually(t, "a at rev2 after resume", func() bool { return envState(d, "a").AppliedRevision == "rev2" })
	if holds, _ := store.Holds(); len(holds) != 0 {
		t.Errorf("holds after resume: %+v", holds)
	}
}

// openStore opens a history store closed at the end of the test, after
// the daemons of the test stopped.
func openStore(t *testing.T) *history.Store {
	t.Helper()
	store, err := history.Open(t.TempDir(), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}
