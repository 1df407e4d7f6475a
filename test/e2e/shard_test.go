package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/source/sourcetest"
	"github.com/maestro-sync/maestro-sync/test/dockertest"
)

// shardStatus is the status of a sharded daemon: its shard and the names
// of its environments.
func (d *daemonProc) shardStatus() (shard map[string]any, envs []string) {
	var s struct {
		Shard        map[string]any
		Environments []struct{ Name string }
	}
	resp, err := http.Get(d.base + "/api/v1/status")
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&s)
	for _, e := range s.Environments {
		envs = append(envs, e.Name)
	}
	return s.Shard, envs
}

// touched returns the instances the daemon planned or applied a step on,
// read from its JSON log.
func (d *daemonProc) touched() map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(d.log.String(), "\n") {
		var l struct{ Msg, Instance, Action string }
		if json.Unmarshal([]byte(line), &l) != nil || (l.Msg != "step" && l.Msg != "planned") || l.Instance == "" {
			continue
		}
		out[l.Instance] = append(out[l.Instance], l.Msg+" "+l.Action)
	}
	return out
}

// identity is what changes when a container is created, replaced,
// removed, stopped or restarted: its ID and when it last started.
func identity(t *testing.T, ship *dockertest.Ship, name string) string {
	t.Helper()
	out, err := exec.Command("docker", "-H", ship.Host, "inspect", "-f", "{{.Id}} {{.State.StartedAt}} {{.State.Running}}", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func shardManifest(env string, ship *dockertest.Ship, port int, version, shard string) string {
	text := appManifest(env, ship, port, version, httpCheck)
	if shard != "" {
		text = strings.Replace(text, "__maestro: {schema: 2}", "__maestro: {schema: 2, labels: {shard: "+shard+"}}", 1)
	}
	return text
}

// TestShardedDaemonsNeverTouchEachOther runs two daemons on one
// repository with --prune: daemon A deploys the environments under
// apps/a (--environments), daemon B those labelled shard=b
// (--environment-selector), on the same two ships. Through a change in
// each shard, the deletion of one of A's environments and the move of
// one of B's into A's directory, neither creates, replaces, removes,
// stops or plans anything of the other's environments, and the deleted
// environment is pruned by A alone.
func TestShardedDaemonsNeverTouchEachOther(t *testing.T) {
	ships := dockertest.Shared(t, 2)
	s0, s1 := ships[0], ships[1]
	repo := sourcetest.NewRepo(t)
	repo.Commit(t, map[string]string{
		"apps/a/a1/manifest.yml": shardManifest("a1", s0, 18301, "1", ""),
		"apps/a/a2/manifest.yml": shardManifest("a2", s1, 18302, "1", ""),
		"apps/b/b1/manifest.yml": shardManifest("b1", s0, 18303, "1", "b"),
		"apps/b/b2/manifest.yml": shardManifest("b2", s1, 18304, "1", "b"),
	}, "four environments, two shards")
	srv := sourcetest.NewHTTPServer(t, repo, "deploy", "pw-e2e")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("pw-e2e"), 0o600)
	common := []string{"--repo", srv.URL, "--ref", "main", "--git-username", "deploy", "--git-password-file", pwFile,
		"--poll", "1s", "--resync", "3s", "--prune"}
	da := startDaemon(t, t.TempDir(), append(common, "--environments", "apps/a")...)
	db := startDaemon(t, t.TempDir(), append(common, "--environment-selector", "shard=b")...)
	ship := map[string]*dockertest.Ship{"a1": s0, "a2": s1, "b1": s0, "b2": s1}
	version := func(env string) string { return envVersion(t, ship[env], env+"-app") }
	id := func(env string) string { return identity(t, ship[env], env+"-app") }
	envsOf := func(d *daemonProc) []string { _, envs := d.shardStatus(); return envs }
	applied := func(d *daemonProc, rev string, envs ...string) func() bool {
		return func() bool {
			if !slices.Equal(envsOf(d), envs) {
				return false
			}
			for _, e := range envs {
				if _, a, _ := d.env(e); a != rev {
					return false
				}
			}
			return true
		}
	}

	start := time.Now()
	waitFor(t, "first deploy", 90*time.Second, func() bool {
		return version("a1") == "1" && version("a2") == "1" && version("b1") == "1" && version("b2") == "1"
	})
	t.Logf("four environments deployed by two daemons in %s", time.Since(start).Round(time.Millisecond))
	if sh, _ := da.shardStatus(); sh == nil || !slices.Equal(toStrings(sh["environments"]), []string{"apps/a"}) {
		t.Errorf("A's status shard = %v, want environments [apps/a]", sh)
	}
	if sh, _ := db.shardStatus(); sh == nil || sh["selector"] != "shard=b" {
		t.Errorf("B's status shard = %v, want selector shard=b", sh)
	}
	if m := db.metrics(); !strings.Contains(m, `maestro_sync_shard_info{environments="",selector="shard=b"} 1`) {
		t.Errorf("B's metrics lack maestro_sync_shard_info of its selector")
	}
	waitFor(t, "statuses", 20*time.Second, func() bool {
		return slices.Equal(envsOf(da), []string{"a1", "a2"}) && slices.Equal(envsOf(db), []string{"b1", "b2"})
	})

	t.Run("a change in each shard", func(t *testing.T) {
		a2, b2 := id("a2"), id("b2")
		rev := repo.Commit(t, map[string]string{
			"apps/a/a1/manifest.yml": shardManifest("a1", s0, 18301, "2", ""),
			"apps/b/b1/manifest.yml": shardManifest("b1", s0, 18303, "2", "b"),
		}, "a1 and b1 v2")
		waitFor(t, "a1 and b1 v2", 60*time.Second, func() bool { return version("a1") == "2" && version("b1") == "2" })
		waitFor(t, "both daemons at the commit", 20*time.Second, func() bool {
			return applied(da, rev, "a1", "a2")() && applied(db, rev, "b1", "b2")()
		})
		if id("a2") != a2 || id("b2") != b2 {
			t.Errorf("unchanged environments were touched: a2 %q → %q, b2 %q → %q", a2, id("a2"), b2, id("b2"))
		}
	})

	t.Run("an environment of A deleted: A prunes it, B leaves it", func(t *testing.T) {
		a1, b1, b2 := id("a1"), id("b1"), id("b2")
		rev := repo.Commit(t, map[string]string{"apps/a/a2/manifest.yml": sourcetest.Delete}, "a2 deleted")
		waitFor(t, "a2 pruned", 60*time.Second, func() bool { return id("a2") == "" })
		waitFor(t, "both daemons at the commit", 20*time.Second, func() bool {
			return applied(da, rev, "a1")() && applied(db, rev, "b1", "b2")()
		})
		if got := da.touched()["a2-app"]; !slices.Contains(got, "step remove") {
			t.Errorf("A's steps on a2-app: %q, want its removal", got)
		}
		if id("a1") != a1 || id("b1") != b1 || id("b2") != b2 {
			t.Errorf("a deletion touched other environments: a1 %q → %q, b1 %q → %q, b2 %q → %q", a1, id("a1"), b1, id("b1"), b2, id("b2"))
		}
	})

	t.Run("an environment of B moved to A", func(t *testing.T) {
		a1, b1, b2 := id("a1"), id("b1"), id("b2")
		rev := repo.Commit(t, map[string]string{
			"apps/b/b2/manifest.yml": sourcetest.Delete,
			"apps/a/b2/manifest.yml": shardManifest("b2", s1, 18304, "1", ""),
		}, "b2 moves to apps/a, without the label")
		waitFor(t, "A owns b2, B no more", 30*time.Second, func() bool {
			return applied(da, rev, "a1", "b2")() && applied(db, rev, "b1")()
		})
		time.Sleep(4 * time.Second) // a resync of each: still nothing to do
		if id("a1") != a1 || id("b1") != b1 || id("b2") != b2 {
			t.Errorf("a move changed containers: a1 %q → %q, b1 %q → %q, b2 %q → %q", a1, id("a1"), b1, id("b1"), b2, id("b2"))
		}
		if got := da.touched()["b2-app"]; len(got) > 0 {
			t.Errorf("A acted on b2-app after the move: %q (same spec, nothing to do)", got)
		}
	})

	// Over the whole test, neither daemon planned or applied a step on an
	// environment of the other: B only ever had b1 and b2 (b2 until it
	// moved, with nothing to do for A after); A's steps are on a1 and a2.
	for inst, steps := range db.touched() {
		if inst != "b1-app" && inst != "b2-app" {
			t.Errorf("B touched %s: %q", inst, steps)
		}
	}
	for inst, steps := range da.touched() {
		if inst != "a1-app" && inst != "a2-app" {
			t.Errorf("A touched %s: %q", inst, steps)
		}
	}
	if got := db.touched()["b2-app"]; len(got) != 2 { // planned and applied: its creation
		t.Errorf("B's steps on b2-app: %q, want its creation only", got)
	}
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
