package history

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func run(env string, at time.Time) Run {
	return Run{Env: env, Trigger: "poll", Revision: "abc", Subject: "bump web", Author: "Ann <ann@example.com>",
		Started: at, Finished: at.Add(2 * time.Second), Result: "success",
		Steps: []Step{{Action: "replace", Service: "web", Instance: "web-1", Ship: "vm1", Cause: "image", Result: "success", Duration: time.Second}}}
}

func TestAddListGet(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC().Truncate(time.Second)
	var added []Run
	for i, env := range []string{"shop", "blog", "shop", "shop"} {
		r, err := s.Add(run(env, now.Add(time.Duration(i)*time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		if r.ID != uint64(i+1) {
			t.Errorf("run %d got ID %d", i, r.ID)
		}
		added = append(added, r)
	}
	all, err := s.List(Query{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Run{added[3], added[2], added[1], added[0]}, all); diff != "" {
		t.Errorf("all runs, newest first (-want +got):\n%s", diff)
	}
	shop, _ := s.List(Query{Env: "shop", Limit: 2})
	if len(shop) != 2 || shop[0].ID != 4 || shop[1].ID != 3 {
		t.Errorf("shop, limit 2: %+v", shop)
	}
	older, _ := s.List(Query{Env: "shop", Before: 3})
	if len(older) != 1 || older[0].ID != 1 {
		t.Errorf("shop before 3: %+v", older)
	}
	if none, _ := s.List(Query{Env: "nope"}); len(none) != 0 {
		t.Errorf("unknown env: %+v", none)
	}
	got, ok, err := s.Get(2)
	if err != nil || !ok || got.Env != "blog" || got.Duration() != 2*time.Second {
		t.Errorf("Get(2) = %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.Get(99); ok {
		t.Errorf("Get(99) found a run")
	}
}

func TestBounds(t *testing.T) {
	now := time.Now()
	s, err := Open(t.TempDir(), Options{MaxRuns: 3, MaxAge: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Two old runs, then five recent ones: three recent ones are kept.
	for i := range 7 {
		at := now.Add(-time.Duration(7-i) * time.Minute)
		if i < 2 {
			at = now.Add(-2 * time.Hour)
		}
		if _, err := s.Add(run("shop", at)); err != nil {
			t.Fatal(err)
		}
	}
	runs, _ := s.List(Query{Env: "shop", Limit: 100})
	if len(runs) != 3 || runs[0].ID != 7 || runs[2].ID != 5 {
		t.Errorf("kept %d runs: %+v", len(runs), runs)
	}
	// The newest run is kept however old it is.
	s.opts.Now = func() time.Time { return now.Add(48 * time.Hour) }
	if _, err := s.Add(run("blog", now.Add(-3*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if blog, _ := s.List(Query{Env: "blog"}); len(blog) != 1 {
		t.Errorf("blog: %+v", blog)
	}
}

func TestHoldsAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().UTC().Truncate(time.Second)
	pin := Hold{Env: "shop", Revision: "abc", Head: "def", Since: since, Reason: "rollback"}
	if err := s.SetHold(pin); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHold(Hold{Env: "blog", Paused: true, Since: since}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(run("shop", since)); err != nil {
		t.Fatal(err)
	}
	// A second process cannot open the same data directory.
	if _, err := Open(dir, Options{OpenTimeout: 100 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second open: %v", err)
	}
	s.Close()

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	holds, err := s.Holds()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]Hold{"shop": pin, "blog": {Env: "blog", Paused: true, Since: since}}, holds); diff != "" {
		t.Errorf("holds after reopen (-want +got):\n%s", diff)
	}
	if err := s.ClearHold("blog"); err != nil {
		t.Fatal(err)
	}
	if holds, _ := s.Holds(); len(holds) != 1 {
		t.Errorf("holds after resume: %+v", holds)
	}
	if r, _ := s.List(Query{}); len(r) != 1 {
		t.Errorf("runs after reopen: %+v", r)
	}
}

// TestSurvivesKill9: a process that adds runs is killed with SIGKILL; every
// run it was told was stored is there, and the store opens and reads.
func TestSurvivesKill9(t *testing.T) {
	if dir := os.Getenv("HISTORY_WRITER_DIR"); dir != "" {
		s, err := Open(dir, Options{MaxRuns: 100000})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		for i := 0; ; i++ {
			r, err := s.Add(run(fmt.Sprintf("env-%d", i%3), time.Now()))
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println(r.ID)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesKill9$")
	cmd.Env = append(os.Environ(), "HISTORY_WRITER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var acked uint64
	for sc.Scan() {
		id, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("writer: %s", sc.Text())
		}
		acked = id
		if acked == 50 {
			cmd.Process.Kill()
			break
		}
	}
	cmd.Wait()
	if acked < 50 {
		t.Fatalf("the writer stopped after %d runs", acked)
	}
	s, err := Open(dir, Options{MaxRuns: 100000})
	if err != nil {
		t.Fatalf("open after kill -9: %v", err)
	}
	defer s.Close()
	runs, err := s.List(Query{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[uint64]bool{}
	for _, r := range runs {
		ids[r.ID] = true
	}
	for id := uint64(1); id <= acked; id++ {
		if !ids[id] {
			t.Errorf("run %d was acknowledged and is lost", id)
		}
	}
}
