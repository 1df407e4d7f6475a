package daemon

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/apply"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/plan"
	"github.com/maestro-sync/maestro-sync/internal/shard"
)

// shardTarget is a view of a fakeTarget shared by several daemons that
// records which daemon applied each step.
type shardTarget struct {
	*fakeTarget
	name string
	log  *stepLog
}

type stepLog struct {
	mu    sync.Mutex
	steps []string // "daemon: action instance"
}

func (l *stepLog) of(name string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.steps {
		if who, what, _ := strings.Cut(s, ": "); who == name {
			out = append(out, what)
		}
	}
	return out
}

func (t shardTarget) Driver(envs []*manifest.Environment, revision string) apply.Target {
	return shardDriver{t.fakeTarget.Driver(envs, revision), t}
}

type shardDriver struct {
	apply.Target
	t shardTarget
}

func (d shardDriver) Apply(ctx context.Context, st plan.Step, progress func(string)) error {
	d.t.log.mu.Lock()
	d.t.log.steps = append(d.t.log.steps, d.t.name+": "+string(st.Action)+" "+st.Instance)
	d.t.log.mu.Unlock()
	return d.Target.Apply(ctx, st, progress)
}

func labelled(env, value, shardLabel string) string {
	return "__maestro: {labels: {shard: " + shardLabel + "}}\n" + manifestText(env, value)
}

func mustShard(t *testing.T, globs []string, selector string) *shard.Shard {
	t.Helper()
	sel, err := shard.ParseSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	return shard.New(globs, sel)
}

func names(d *Daemon) []string {
	var out []string
	for _, e := range d.Status().Environments {
		out = append(out, e.Name)
	}
	return out
}

// TestShardsNeverTouchEachOther runs two daemons on one repository and
// one ship, each with its shard, through changes, a deletion, a move
// between shards and broken files: each acts on its own environments
// only, and the deleted one is pruned by its shard alone.
func TestShardsNeverTouchEachOther(t *testing.T) {
	src := &fakeSource{}
	files := map[string]string{
		"a1/manifest.yml": labelled("a1", "1", "a"),
		"a2/manifest.yml": labelled("a2", "1", "a"),
		"b1/manifest.yml": labelled("b1", "1", "b"),
		"b2/manifest.yml": labelled("b2", "1", "b"),
	}
	src.set("rev1", files)
	tgt := newFakeTarget()
	log := &stepLog{}
	start := func(name, selector string) *Daemon {
		d, _, _ := startTestDaemon(t, Config{Source: src, Target: shardTarget{tgt, name, log}, Prune: true, Shard: mustShard(t, nil, selector)})
		return d
	}
	da, db := start("A", "shard=a"), start("B", "shard=b")
	applied := func(d *Daemon, rev string, envs ...string) func() bool {
		return func() bool {
			for _, e := range envs {
				if envState(d, e).AppliedRevision != rev {
					return false
				}
			}
			return slices.Equal(names(d), envs)
		}
	}
	eventually(t, "rev1 on both shards", func() bool { return applied(da, "rev1", "a1", "a2")() && applied(db, "rev1", "b1", "b2")() })
	if st := da.Status().Shard; st == nil || st.Selector != "shard=a" {
		t.Errorf("A's status shard = %+v, want the selector shard=a", st)
	}

	// (a) a change in each shard, (b) a2 deleted.
	files["a1/manifest.yml"] = labelled("a1", "2", "a")
	files["b1/manifest.yml"] = labelled("b1", "2", "b")
	delete(files, "a2/manifest.yml")
	src.set("rev2", files)
	eventually(t, "rev2 on both shards", func() bool { return applied(da, "rev2", "a1")() && applied(db, "rev2", "b1", "b2")() })

	// (c) b2 moves to shard a: nothing is replaced, A now reports it.
	files["b2/manifest.yml"] = labelled("b2", "1", "a")
	src.set("rev3", files)
	eventually(t, "rev3: b2 is A's", func() bool { return applied(da, "rev3", "a1", "b2")() && applied(db, "rev3", "b1")() })

	// A file of shard b breaks; one whose labels cannot be read is
	// perhaps anyone's. Neither stalls the other shard's environments.
	files["b1/manifest.yml"] = strings.Replace(labelled("b1", "3", "b"), "ship: s1", "ship: s9", 1)
	files["a1/manifest.yml"] = labelled("a1", "4", "a")
	src.set("rev4", files)
	eventually(t, "rev4: a1 deployed despite b1", func() bool { return envState(da, "a1").AppliedRevision == "rev4" })
	eventually(t, "rev4: b1 stalled on B", func() bool { return envState(db, "b1").State == "stalled" })
	if st := envState(da, "b1"); st.Name != "" {
		t.Errorf("A reports b1 of shard b: %+v", st)
	}
	if r := da.Status().LastResult; r != "success" {
		t.Errorf("A's last result = %s, want success (b1 is not its)", r)
	}

	wantA := []string{"create a1-1", "create a2-1", "replace a1-1", "remove a2-1", "replace a1-1"}
	wantB := []string{"create b1-1", "create b2-1", "replace b1-1"}
	time.Sleep(100 * time.Millisecond) // more polls: nothing more happens
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if got := log.of("A"); !slices.Equal(sorted(got), sorted(wantA)) {
		t.Errorf("A applied %q, want %q", got, wantA)
	}
	if got := log.of("B"); !slices.Equal(sorted(got), sorted(wantB)) {
		t.Errorf("B applied %q, want %q", got, wantB)
	}
}

// TestShardPrunesOnlyWhatItRecorded: a daemon of a shard leaves alone an
// environment gone from the repository that its objects place in another
// shard, or whose objects record no origin; without a shard it is pruned.
func TestShardPrunesOnlyWhatItRecorded(t *testing.T) {
	src := &fakeSource{}
	src.set("rev1", map[string]string{"a/manifest.yml": labelled("a", "1", "a"), "b/manifest.yml": labelled("b", "1", "b")})
	tgt := newFakeTarget()
	all, cancel, done := startTestDaemon(t, Config{Source: src, Target: tgt, Prune: true})
	eventually(t, "rev1", func() bool {
		return envState(all, "a").AppliedRevision == "rev1" && envState(all, "b").AppliedRevision == "rev1"
	})
	cancel()
	<-done

	src.set("rev2", map[string]string{"a/manifest.yml": labelled("a", "1", "a")})
	da, _, _ := startTestDaemon(t, Config{Source: src, Target: tgt, Prune: true, Shard: mustShard(t, []string{"a"}, "")})
	eventually(t, "rev2 on shard a", func() bool { return da.Ready() && envState(da, "a").DesiredRevision == "rev2" })
	time.Sleep(100 * time.Millisecond)
	tgt.mu.Lock()
	_, kept := tgt.containers["b-1"]
	tgt.mu.Unlock()
	if !kept {
		t.Fatal("the daemon of shard a pruned b-1, whose container records b/manifest.yml")
	}
	db, _, _ := startTestDaemon(t, Config{Source: src, Target: tgt, Prune: true, Shard: mustShard(t, []string{"b/**"}, "")})
	eventually(t, "shard b prunes b-1", func() bool {
		tgt.mu.Lock()
		defer tgt.mu.Unlock()
		_, kept := tgt.containers["b-1"]
		return db.Ready() && !kept
	})
}
