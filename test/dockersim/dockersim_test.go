package dockersim_test

import (
	"context"
	"slices"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/maestro-sync/maestro-sync/test/dockersim"
)

func connect(t *testing.T, s *dockersim.Ship) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+s.Socket), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func create(t *testing.T, c *client.Client, name string, labels map[string]string) string {
	t.Helper()
	resp, err := c.ContainerCreate(context.Background(), &container.Config{Image: "busybox:1", Cmd: []string{"sleep", "60"}, Labels: labels},
		&container.HostConfig{Resources: container.Resources{Memory: 64 << 20}}, nil, nil, name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return resp.ID
}

func TestListFilterAndInspect(t *testing.T) {
	s := dockersim.Fleet(t, 1, dockersim.Options{Images: []string{"busybox:1"}})[0]
	c := connect(t, s)
	ctx := context.Background()
	a := create(t, c, "a", map[string]string{"app": "web", "tier": "front"})
	create(t, c, "b", map[string]string{"app": "db"})
	if err := c.ContainerStart(ctx, a, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}

	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "app=web"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != a || list[0].Names[0] != "/a" || list[0].State != "running" || list[0].Labels["tier"] != "front" {
		t.Fatalf("list label app=web: %+v", list)
	}
	running, err := c.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(running) != 1 || running[0].ID != a {
		t.Fatalf("list of running containers: %+v", running)
	}
	all, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "app"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Fatalf("list label app: %d containers, want 2", len(all))
	}

	info, err := c.ContainerInspect(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != a || !info.State.Running || info.HostConfig.Memory != 64<<20 || info.Config.Image != "busybox:1" || !slices.Equal(info.Config.Cmd, []string{"sleep", "60"}) {
		t.Fatalf("inspect: %+v %+v", info.ContainerJSONBase, info.Config)
	}
	if _, err := c.ContainerInspect(ctx, "missing"); !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspect of a missing container: %v, want not found", err)
	}
	if _, err := c.ContainerCreate(ctx, &container.Config{Image: "busybox:1"}, nil, nil, nil, "a"); !cerrdefs.IsConflict(err) {
		t.Fatalf("create under a taken name: %v, want a conflict", err)
	}
	if _, err := c.ContainerCreate(ctx, &container.Config{Image: "nowhere:1"}, nil, nil, nil, "c"); !cerrdefs.IsNotFound(err) {
		t.Fatalf("create from a missing image: %v, want not found", err)
	}
}

func TestLifecycleEvents(t *testing.T) {
	s := dockersim.Fleet(t, 1, dockersim.Options{Images: []string{"busybox:1"}})[0]
	c := connect(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, errs := c.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", "container"), filters.Arg("label", "mine=yes"),
		filters.Arg("event", "create"), filters.Arg("event", "start"), filters.Arg("event", "die"),
		filters.Arg("event", "rename"), filters.Arg("event", "destroy"))})
	time.Sleep(100 * time.Millisecond) // subscribed

	create(t, c, "other", nil) // not matched by the label filter
	id := create(t, c, "x", map[string]string{"mine": "yes"})
	steps := []func() error{
		func() error { return c.ContainerStart(ctx, id, container.StartOptions{}) },
		func() error { return c.ContainerRename(ctx, id, "y") },
		func() error { return c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"create x", "start x", "rename y", "die y", "destroy y"}
	var got []string
	timeout := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case m := <-msgs:
			if m.Actor.ID != id {
				t.Fatalf("event of another container: %+v", m)
			}
			got = append(got, string(m.Action)+" "+m.Actor.Attributes["name"])
		case err := <-errs:
			t.Fatalf("event stream: %v", err)
		case <-timeout:
			t.Fatalf("events %q, want %q", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if _, err := c.ContainerInspect(ctx, id); !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspect after remove: %v, want not found", err)
	}
}

func TestLatencyAndImages(t *testing.T) {
	s := dockersim.Fleet(t, 1, dockersim.Options{Latency: 20 * time.Millisecond})[0]
	c := connect(t, s)
	ctx := context.Background()
	if _, err := c.ImageInspect(ctx, "maestro-test/busybox:2"); !cerrdefs.IsNotFound(err) {
		t.Fatalf("inspect of an image not pulled: %v, want not found", err)
	}
	rc, err := c.ImagePull(ctx, "maestro-test/busybox:2", image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	img, err := c.ImageInspect(ctx, "maestro-test/busybox:2")
	if err != nil {
		t.Fatalf("inspect after pull: %v", err)
	}
	start := time.Now()
	if _, err := c.ImageInspect(ctx, img.ID); err != nil {
		t.Fatalf("inspect by ID: %v", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("a request took %s, want at least the latency (20ms)", d)
	}
	before := s.Requests()
	if _, err := c.ServerVersion(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Requests() != before+1 {
		t.Fatalf("requests %d → %d, want one more", before, s.Requests())
	}
}
