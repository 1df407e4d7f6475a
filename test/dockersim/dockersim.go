// Package dockersim simulates Docker Engine API servers ("ships") in
// memory, for benchmarks and scale tests of a fleet one machine cannot
// host: fifty ships of two hundred containers each cost a few megabytes
// and no dockerd. Behaviour tests run against real engines
// (test/dockertest); a simulated ship is only as faithful as the subset
// below.
//
// A Ship serves, on a unix socket, the endpoints of the Engine API that the
// Docker driver calls for containers that do not build, route or exec:
// _ping, version, info, containers (list with filters, inspect, create,
// start, stop, kill, restart, rename, update, remove, logs), images
// (inspect, pull and import through images/create), and the event stream
// with its filters. The JSON is Docker's own API types
// (github.com/docker/docker/api/types). Paths are served with and without
// an API version prefix (/v1.51/containers/json). Anything else answers
// 501, so a driver that starts to need more fails loudly.
//
// Containers start at once: a started container is running, and healthy
// when it has a HEALTHCHECK. Images are pulled at once, whatever their
// name. Each request waits Latency before it is answered (the event stream
// once, when it opens), so that a ship far away can be simulated.
package dockersim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"github.com/docker/docker/api"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/go-connections/nat"
)

// Options configure a ship.
type Options struct {
	// Latency is how long each request waits before it is answered.
	Latency time.Duration
	// Images are present on the ship from the start.
	Images []string
}

// Ship is one simulated Docker engine.
type Ship struct {
	// Socket is the unix socket the ship's API is served on.
	Socket string

	latency  atomic.Int64 // time.Duration
	requests atomic.Int64
	srv      *http.Server
	done     chan struct{}

	mu         sync.Mutex
	containers map[string]*record // by ID
	names      map[string]string  // name → ID
	images     map[string]*image.InspectResponse
	subs       map[*subscriber]struct{}
	nextPort   int
	seq        uint64
}

// record is a container: what inspect answers.
type record struct {
	info container.InspectResponse
}

type subscriber struct {
	filters filters.Args
	ch      chan events.Message
}

// Start serves a new ship on a unix socket in dir until Close.
func Start(dir string, opts Options) (*Ship, error) {
	s := &Ship{
		Socket:     filepath.Join(dir, "docker.sock"),
		containers: map[string]*record{},
		names:      map[string]string{},
		images:     map[string]*image.InspectResponse{},
		subs:       map[*subscriber]struct{}{},
		nextPort:   32768,
		done:       make(chan struct{}),
	}
	s.SetLatency(opts.Latency)
	for _, ref := range opts.Images {
		if err := s.addImage(ref); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", s.Socket)
	if err != nil {
		return nil, err
	}
	s.srv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops serving: open event streams end.
func (s *Ship) Close() error {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	err := s.srv.Close()
	_ = os.Remove(s.Socket)
	return err
}

// SetLatency sets how long each request waits from now on.
func (s *Ship) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }

// Requests counts the requests answered so far, event streams and pings
// left out.
func (s *Ship) Requests() int64 { return s.requests.Load() }

// Containers counts the containers on the ship.
func (s *Ship) Containers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.containers)
}

// versioned matches an API version prefix.
var versioned = regexp.MustCompile(`^/v[0-9]+\.[0-9]+/`)

func (s *Ship) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_ping", s.ping)
	mux.HandleFunc("HEAD /_ping", s.ping)
	mux.HandleFunc("GET /version", s.version)
	mux.HandleFunc("GET /info", s.info)
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("GET /containers/json", s.list)
	mux.HandleFunc("POST /containers/create", s.create)
	mux.HandleFunc("GET /containers/{id}/json", s.inspect)
	mux.HandleFunc("POST /containers/{id}/start", s.start)
	mux.HandleFunc("POST /containers/{id}/stop", s.stop)
	mux.HandleFunc("POST /containers/{id}/kill", s.stop)
	mux.HandleFunc("POST /containers/{id}/restart", s.restart)
	mux.HandleFunc("POST /containers/{id}/rename", s.rename)
	mux.HandleFunc("POST /containers/{id}/update", s.update)
	mux.HandleFunc("GET /containers/{id}/logs", s.logs)
	mux.HandleFunc("DELETE /containers/{id}", s.remove)
	mux.HandleFunc("POST /images/create", s.imageCreate)
	// Image names hold slashes: /images/NAME/json.
	mux.HandleFunc("GET /images/", s.imageInspect)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotImplemented, "dockersim does not simulate %s %s", r.Method, r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if loc := versioned.FindStringIndex(r.URL.Path); loc != nil {
			r.URL.Path = r.URL.Path[loc[1]-1:]
		}
		if !strings.HasSuffix(r.URL.Path, "/_ping") && r.URL.Path != "/events" {
			s.requests.Add(1)
		}
		if d := time.Duration(s.latency.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// fail answers an error as the engine does: a status and a message.
func fail(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": fmt.Sprintf(format, args...)})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Ship) ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("API-Version", api.DefaultVersion)
	w.Header().Set("OSType", "linux")
	w.Header().Set("Cache-Control", "no-cache")
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, "OK")
	}
}

func (s *Ship) version(w http.ResponseWriter, _ *http.Request) {
	reply(w, http.StatusOK, types.Version{
		Version: "28.5.2-dockersim", APIVersion: api.DefaultVersion, MinAPIVersion: api.MinSupportedAPIVersion,
		Os: "linux", Arch: "amd64",
	})
}

func (s *Ship) info(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	running, stopped := 0, 0
	for _, c := range s.containers {
		if c.info.State.Running {
			running++
		} else {
			stopped++
		}
	}
	n, imgs := len(s.containers), len(s.images)
	s.mu.Unlock()
	reply(w, http.StatusOK, system.Info{
		ID: "dockersim", Name: "dockersim", Containers: n, ContainersRunning: running, ContainersStopped: stopped,
		Images: imgs, OSType: "linux", Architecture: "x86_64", ServerVersion: "28.5.2-dockersim",
		SystemTime: time.Now().Format(time.RFC3339Nano), Driver: "memory",
	})
}

// ---------------------------------------------------------------- images

// normal is an image reference's canonical form (docker.io/library/x:latest),
// or an image ID as it is.
func normal(ref string) (string, error) {
	if strings.HasPrefix(ref, "sha256:") {
		return ref, nil
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", err
	}
	return reference.TagNameOnly(named).String(), nil
}

func (s *Ship) addImage(ref string) error {
	key, err := normal(ref)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addImageLocked(key, ref)
	return nil
}

func (s *Ship) addImageLocked(key, ref string) *image.InspectResponse {
	if img := s.images[key]; img != nil {
		return img
	}
	sum := sha256.Sum256([]byte(key))
	img := &image.InspectResponse{
		ID: "sha256:" + hex.EncodeToString(sum[:]), RepoTags: []string{ref}, Created: time.Now().UTC().Format(time.RFC3339Nano),
		Os: "linux", Architecture: "amd64",
	}
	s.images[key] = img
	s.images[img.ID] = img
	return img
}

func (s *Ship) image(ref string) *image.InspectResponse {
	key, err := normal(ref)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.images[key]
}

func (s *Ship) imageInspect(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/images/"), "/json")
	if !ok {
		fail(w, http.StatusNotImplemented, "dockersim does not simulate %s %s", r.Method, r.URL.Path)
		return
	}
	img := s.image(name)
	if img == nil {
		fail(w, http.StatusNotFound, "No such image: %s", name)
		return
	}
	reply(w, http.StatusOK, img)
}

// imageCreate pulls (fromImage) or imports (fromSrc) an image at once.
func (s *Ship) imageCreate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ref := q.Get("fromImage")
	if ref == "" {
		ref = q.Get("repo")
		_, _ = io.Copy(io.Discard, r.Body) // the imported archive
	}
	if tag := q.Get("tag"); tag != "" {
		if strings.HasPrefix(tag, "sha256:") {
			ref += "@" + tag
		} else {
			ref += ":" + tag
		}
	}
	key, err := normal(ref)
	if err != nil {
		fail(w, http.StatusBadRequest, "invalid reference format: %s", ref)
		return
	}
	s.mu.Lock()
	img := s.addImageLocked(key, reference.FamiliarString(mustParse(key)))
	s.mu.Unlock()
	reply(w, http.StatusOK, map[string]string{"status": "Status: Image is up to date for " + ref, "id": img.ID})
}

func mustParse(key string) reference.Named {
	n, _ := reference.ParseNormalizedNamed(key)
	return n
}

// ---------------------------------------------------------------- containers

// lookup finds a container by ID, unique ID prefix or name; the caller
// holds s.mu.
func (s *Ship) lookup(ref string) *record {
	if c := s.containers[ref]; c != nil {
		return c
	}
	if id, ok := s.names[strings.TrimPrefix(ref, "/")]; ok {
		return s.containers[id]
	}
	var found *record
	if len(ref) >= 3 {
		for id, c := range s.containers {
			if strings.HasPrefix(id, ref) {
				if found != nil {
					return nil
				}
				found = c
			}
		}
	}
	return found
}

func (s *Ship) create(w http.ResponseWriter, r *http.Request) {
	var req container.CreateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "invalid JSON: %v", err)
		return
	}
	if req.Config == nil {
		fail(w, http.StatusBadRequest, "config cannot be empty")
		return
	}
	if req.HostConfig == nil {
		req.HostConfig = &container.HostConfig{}
	}
	name := r.URL.Query().Get("name")
	img := s.image(req.Config.Image)
	if img == nil {
		fail(w, http.StatusNotFound, "No such image: %s", req.Config.Image)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	sum := sha256.Sum256(fmt.Appendf(nil, "%p/%d/%s", s, s.seq, name))
	id := hex.EncodeToString(sum[:])
	if name == "" {
		name = "sim_" + id[:12]
	}
	if other, taken := s.names[name]; taken {
		fail(w, http.StatusConflict, `Conflict. The container name "/%s" is already in use by container "%s". You have to remove (or rename) that container to be able to reuse that name.`, name, other)
		return
	}
	cfg := *req.Config
	cfg.Labels = cloneMap(cfg.Labels)
	path, args := "", []string(nil)
	if cmd := slices.Concat([]string(cfg.Entrypoint), []string(cfg.Cmd)); len(cmd) > 0 {
		path, args = cmd[0], cmd[1:]
	}
	netMode := req.HostConfig.NetworkMode
	if netMode == "" {
		req.HostConfig.NetworkMode = "bridge"
	}
	c := &record{info: container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: id, Created: time.Now().UTC().Format(time.RFC3339Nano), Path: path, Args: args,
			State: &container.State{Status: container.StateCreated, StartedAt: "0001-01-01T00:00:00Z", FinishedAt: "0001-01-01T00:00:00Z"},
			Image: img.ID, Name: "/" + name, Driver: "memory", Platform: "linux", HostConfig: req.HostConfig,
		},
		Config:          &cfg,
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}},
	}}
	if req.NetworkingConfig != nil {
		for n, es := range req.NetworkingConfig.EndpointsConfig {
			c.info.NetworkSettings.Networks[n] = es
		}
	}
	if len(c.info.NetworkSettings.Networks) == 0 && req.HostConfig.NetworkMode != "none" {
		c.info.NetworkSettings.Networks[string(req.HostConfig.NetworkMode)] = &network.EndpointSettings{}
	}
	s.containers[id] = c
	s.names[name] = id
	s.emit(c, events.ActionCreate, nil)
	reply(w, http.StatusCreated, container.CreateResponse{ID: id, Warnings: []string{}})
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// withContainer runs fn on the container of the path under the lock, or
// answers 404.
func (s *Ship) withContainer(w http.ResponseWriter, r *http.Request, fn func(c *record)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.lookup(r.PathValue("id"))
	if c == nil {
		fail(w, http.StatusNotFound, "No such container: %s", r.PathValue("id"))
		return
	}
	fn(c)
}

func (s *Ship) inspect(w http.ResponseWriter, r *http.Request) {
	var body []byte
	s.withContainer(w, r, func(c *record) {
		body, _ = json.Marshal(c.info)
	})
	if body != nil {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}
}

// run marks a container running; the caller holds s.mu.
func (s *Ship) run(c *record) {
	st := c.info.State
	st.Status, st.Running, st.Paused, st.Restarting, st.Dead = container.StateRunning, true, false, false, false
	st.ExitCode, st.Error = 0, ""
	st.Pid = 1000 + int(s.seq%30000)
	st.StartedAt = time.Now().UTC().Format(time.RFC3339Nano)
	st.Health = nil
	if hc := c.info.Config.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		st.Health = &container.Health{Status: container.Healthy}
	}
	ports := nat.PortMap{}
	for p, binds := range c.info.HostConfig.PortBindings {
		for _, b := range binds {
			if b.HostPort == "" || b.HostPort == "0" {
				b.HostPort = strconv.Itoa(s.nextPort)
				s.nextPort++
			}
			if b.HostIP == "" {
				b.HostIP = "0.0.0.0"
			}
			ports[p] = append(ports[p], b)
		}
	}
	c.info.NetworkSettings.Ports = ports
	s.emit(c, events.ActionStart, nil)
	if st.Health != nil {
		s.emit(c, events.ActionHealthStatusHealthy, nil)
	}
}

// halt stops a running container with an exit code; the caller holds
// s.mu.
func (s *Ship) halt(c *record, code int, actions ...events.Action) {
	st := c.info.State
	if !st.Running {
		return
	}
	st.Status, st.Running, st.Pid, st.ExitCode = container.StateExited, false, 0, code
	st.FinishedAt = time.Now().UTC().Format(time.RFC3339Nano)
	st.Health = nil
	c.info.NetworkSettings.Ports = nil
	for _, a := range actions {
		s.emit(c, a, map[string]string{"exitCode": strconv.Itoa(code)})
	}
}

func (s *Ship) start(w http.ResponseWriter, r *http.Request) {
	s.withContainer(w, r, func(c *record) {
		if c.info.State.Running {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		s.run(c)
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Ship) stop(w http.ResponseWriter, r *http.Request) {
	kill := strings.HasSuffix(r.URL.Path, "/kill")
	s.withContainer(w, r, func(c *record) {
		switch {
		case !c.info.State.Running && kill:
			fail(w, http.StatusConflict, "cannot kill container: %s: container %s is not running", r.PathValue("id"), c.info.ID)
		case !c.info.State.Running:
			w.WriteHeader(http.StatusNotModified)
		case kill:
			s.halt(c, 137, events.ActionKill, events.ActionDie)
			w.WriteHeader(http.StatusNoContent)
		default:
			s.halt(c, 0, events.ActionKill, events.ActionDie, events.ActionStop)
			w.WriteHeader(http.StatusNoContent)
		}
	})
}

func (s *Ship) restart(w http.ResponseWriter, r *http.Request) {
	s.withContainer(w, r, func(c *record) {
		s.halt(c, 0, events.ActionDie, events.ActionStop)
		s.run(c)
		s.emit(c, events.ActionRestart, nil)
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Ship) rename(w http.ResponseWriter, r *http.Request) {
	to := strings.TrimPrefix(r.URL.Query().Get("name"), "/")
	s.withContainer(w, r, func(c *record) {
		old := strings.TrimPrefix(c.info.Name, "/")
		if to == "" {
			fail(w, http.StatusBadRequest, "the new name is empty")
			return
		}
		if id, taken := s.names[to]; taken && id != c.info.ID {
			fail(w, http.StatusConflict, `Conflict. The container name "/%s" is already in use by container "%s".`, to, id)
			return
		}
		delete(s.names, old)
		s.names[to] = c.info.ID
		c.info.Name = "/" + to
		s.emit(c, events.ActionRename, map[string]string{"oldName": "/" + old})
		w.WriteHeader(http.StatusNoContent)
	})
}

func (s *Ship) update(w http.ResponseWriter, r *http.Request) {
	var up container.UpdateConfig
	if err := json.NewDecoder(r.Body).Decode(&up); err != nil {
		fail(w, http.StatusBadRequest, "invalid JSON: %v", err)
		return
	}
	s.withContainer(w, r, func(c *record) {
		h := c.info.HostConfig
		if up.Memory != 0 {
			h.Memory = up.Memory
		}
		if up.MemorySwap != 0 {
			h.MemorySwap = up.MemorySwap
		}
		if up.CPUShares != 0 {
			h.CPUShares = up.CPUShares
		}
		if up.RestartPolicy.Name != "" {
			h.RestartPolicy = up.RestartPolicy
		}
		s.emit(c, events.ActionUpdate, nil)
		reply(w, http.StatusOK, container.UpdateResponse{Warnings: []string{}})
	})
}

// logs answers an empty log: simulated containers print nothing.
func (s *Ship) logs(w http.ResponseWriter, r *http.Request) {
	s.withContainer(w, r, func(*record) {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
		w.WriteHeader(http.StatusOK)
	})
}

func (s *Ship) remove(w http.ResponseWriter, r *http.Request) {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	s.withContainer(w, r, func(c *record) {
		if c.info.State.Running {
			if !force {
				fail(w, http.StatusConflict, "cannot remove container %s: container is running: stop the container before removing or force remove", c.info.Name)
				return
			}
			s.halt(c, 137, events.ActionKill, events.ActionDie)
		}
		delete(s.containers, c.info.ID)
		delete(s.names, strings.TrimPrefix(c.info.Name, "/"))
		s.emit(c, events.ActionDestroy, nil)
		w.WriteHeader(http.StatusNoContent)
	})
}

// list answers containers/json: all or only running ones, with the
// engine's filters id, name, label and status.
func (s *Ship) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	all, _ := strconv.ParseBool(q.Get("all"))
	args, err := filters.FromJSON(q.Get("filters"))
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	if err := args.Validate(map[string]bool{"id": true, "name": true, "label": true, "status": true}); err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	now := time.Now()
	s.mu.Lock()
	out := make([]container.Summary, 0, len(s.containers))
	for _, c := range s.containers {
		st := c.info.State
		name := strings.TrimPrefix(c.info.Name, "/")
		switch {
		case !all && !st.Running && !args.Contains("status"):
		case args.Contains("id") && !args.Match("id", c.info.ID):
		case args.Contains("name") && !args.Match("name", name):
		case args.Contains("label") && !args.MatchKVList("label", c.info.Config.Labels):
		case args.Contains("status") && !args.ExactMatch("status", string(st.Status)):
		default:
			out = append(out, summary(c, now))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b container.Summary) int { return int(b.Created - a.Created) })
	reply(w, http.StatusOK, out)
}

// summary is a container as containers/json lists it.
func summary(c *record, now time.Time) container.Summary {
	i := c.info
	created, _ := time.Parse(time.RFC3339Nano, i.Created)
	sum := container.Summary{
		ID: i.ID, Names: []string{i.Name}, Image: i.Config.Image, ImageID: i.Image,
		Command: strings.TrimSpace(i.Path + " " + strings.Join(i.Args, " ")), Created: created.Unix(),
		Labels: cloneMap(i.Config.Labels), State: i.State.Status, Status: status(i.State, now),
		Ports: []container.Port{}, Mounts: []container.MountPoint{},
	}
	sum.HostConfig.NetworkMode = string(i.HostConfig.NetworkMode)
	for p, binds := range i.NetworkSettings.Ports {
		for _, b := range binds {
			public, _ := strconv.Atoi(b.HostPort)
			sum.Ports = append(sum.Ports, container.Port{IP: b.HostIP, PrivatePort: uint16(p.Int()), PublicPort: uint16(public), Type: p.Proto()})
		}
	}
	return sum
}

// status is the human status a list shows ("Up 5 seconds (healthy)").
func status(st *container.State, now time.Time) string {
	since := func(ts string) string {
		t, _ := time.Parse(time.RFC3339Nano, ts)
		d := now.Sub(t).Round(time.Second)
		if d < time.Second {
			return "Less than a second"
		}
		return d.String()
	}
	switch {
	case st.Running && st.Health != nil:
		h := string(st.Health.Status)
		if h == container.Starting {
			h = "health: starting"
		}
		return "Up " + since(st.StartedAt) + " (" + h + ")"
	case st.Running:
		return "Up " + since(st.StartedAt)
	case st.Status == container.StateExited:
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, since(st.FinishedAt))
	}
	return "Created"
}

// ---------------------------------------------------------------- events

// emit sends a container event to the subscribers whose filters match;
// the caller holds s.mu. A subscriber too slow to keep up loses its
// stream, as a real engine's would.
func (s *Ship) emit(c *record, action events.Action, extra map[string]string) {
	if len(s.subs) == 0 {
		return
	}
	attrs := cloneMap(c.info.Config.Labels)
	attrs["name"] = strings.TrimPrefix(c.info.Name, "/")
	attrs["image"] = c.info.Config.Image
	for k, v := range extra {
		attrs[k] = v
	}
	now := time.Now()
	m := events.Message{
		Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: c.info.ID, Attributes: attrs},
		Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano(),
	}
	for sub := range s.subs {
		if !matches(sub.filters, m) {
			continue
		}
		select {
		case sub.ch <- m:
		default:
			close(sub.ch)
			delete(s.subs, sub)
		}
	}
}

// matches applies the event filters the driver uses: type, event,
// container, label.
func matches(f filters.Args, m events.Message) bool {
	action := string(m.Action)
	if base, _, ok := strings.Cut(action, ":"); ok && f.ExactMatch("event", base) {
		action = base // health_status matches every health status
	}
	return f.ExactMatch("type", string(m.Type)) && f.ExactMatch("event", action) &&
		(!f.Contains("container") || f.ExactMatch("container", m.Actor.ID) || f.ExactMatch("container", m.Actor.Attributes["name"])) &&
		f.MatchKVList("label", m.Actor.Attributes)
}

func (s *Ship) events(w http.ResponseWriter, r *http.Request) {
	args, err := filters.FromJSON(r.URL.Query().Get("filters"))
	if err != nil {
		fail(w, http.StatusBadRequest, "%v", err)
		return
	}
	sub := &subscriber{filters: args, ch: make(chan events.Message, 4096)}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case m, ok := <-sub.ch:
			if !ok {
				return
			}
			if enc.Encode(m) != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}
