// Package live describes what runs now: the containers observed on each
// Docker host, with the owner labels and spec hash maestro-sync left on
// them. It holds data only; the drivers in internal/driver fill it.
package live

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/build"
	"github.com/maestro-sync/maestro-sync/internal/label"
)

// State is what was observed on every host, keyed by host address (see
// manifest.Ship.Address).
type State struct {
	Hosts map[string]*Host
	// Clusters are keyed by cluster address.
	Clusters map[string]*Cluster
	// Images are the images of built services, keyed by reference: the
	// ones the manifests name (are they built yet?) and the ones their
	// containers run now (what were they built from?).
	Images map[string]*Image
}

// Image is an image a build makes or made.
type Image struct {
	// Present tells whether the image exists where its instances get it:
	// in its registry when it is pushed, else on its builder.
	Present bool
	// Digest is the registry's digest of a pushed image.
	Digest string
	// Files indexes the context it was built from (nil: unknown).
	Files build.Index
	// Err is set when the registry or builder could not be asked.
	Err error
}

// Image returns the observed image with the reference, or nil.
func (s *State) Image(ref string) *Image {
	if s == nil {
		return nil
	}
	return s.Images[ref]
}

// Host returns the host with the given address, or nil.
func (s *State) Host(address string) *Host {
	if s == nil {
		return nil
	}
	return s.Hosts[address]
}

// Host is one Docker daemon.
type Host struct {
	Address string
	// Err is set when the host could not be observed; Containers is then
	// empty and nothing about it is known.
	Err error
	// Containers lists every container of the host, ours and foreign.
	Containers []Container
}

// Container is one observed container.
type Container struct {
	ID    string
	Name  string
	Image string
	// ImageID is the ID of the image it runs ("sha256:...").
	ImageID string
	// State is Docker's state: created, running, paused, restarting,
	// removing, exited or dead.
	State   string
	Created time.Time
	Labels  map[string]string
	// Ports are the published host bindings, as "ip:port/proto".
	Ports []string
	// Health is the state of the container's own Docker HEALTHCHECK:
	// starting, healthy or unhealthy; "" when it has none.
	Health string
	// Drift names what of a running instance's configuration differs
	// from the spec it was made from (changed by hand, e.g. docker
	// update), one entry per field.
	Drift []string
}

// Owned reports whether maestro-sync manages the container.
func (c *Container) Owned() bool { return c.Labels[label.Env] != "" && c.Labels[label.Instance] != "" }

// Env returns the environment that owns the container.
func (c *Container) Env() string { return c.Labels[label.Env] }

// Owner returns the ID of the source that created the container; "" for a
// container made before owners existed.
func (c *Container) Owner() string { return c.Labels[label.Owner] }

// OwnerName returns the readable name of the container's owner.
func (c *Container) OwnerName() string { return c.Labels[label.OwnerName] }

// Origin is the manifest file and the environment labels a container
// records (label.File, label.EnvLabels); ok is false when it records no
// file (made before objects recorded them) or labels that do not decode.
func (c *Container) Origin() (file string, labels map[string]string, ok bool) {
	return Origin(c.Labels[label.File], c.Labels[label.EnvLabels])
}

// OriginRecord is what an object records of its environment's origin
// (label.File, label.EnvLabels; decoded by Origin): nil when the
// environment has no manifest path, an empty EnvLabels without labels.
func OriginRecord(file string, envLabels map[string]string) map[string]string {
	if file == "" {
		return nil
	}
	out := map[string]string{label.File: file, label.EnvLabels: ""}
	if len(envLabels) > 0 {
		b, _ := json.Marshal(envLabels)
		out[label.EnvLabels] = string(b)
	}
	return out
}

// Origin decodes a recorded manifest file and environment labels.
func Origin(file, envLabels string) (string, map[string]string, bool) {
	if file == "" {
		return "", nil, false
	}
	var labels map[string]string
	if envLabels != "" && json.Unmarshal([]byte(envLabels), &labels) != nil {
		return "", nil, false
	}
	return file, labels, true
}

// Ours reports whether the owner with the given ID may act on the
// container: it carries maestro-sync's labels, that owner's ID (or none,
// when made before owners existed), and the name maestro-sync gives such
// a container (its instance's, or a replacement's temporary name). A
// container started by hand with copied labels and another name is not
// ours.
func (c *Container) Ours(owner string) bool {
	if !c.Owned() || c.Owner() != owner && c.Owner() != "" {
		return false
	}
	return c.Name == c.Instance() || c.Temporary() || c.Kept()
}

// Instance returns the instance the container implements.
func (c *Container) Instance() string { return c.Labels[label.Instance] }

// Service returns the service of the instance.
func (c *Container) Service() string { return c.Labels[label.Service] }

// SpecHash returns the hash of the spec the container was created from.
func (c *Container) SpecHash() string { return c.Labels[label.SpecHash] }

// Revision returns the source revision the container was applied from.
func (c *Container) Revision() string { return c.Labels[label.Revision] }

// TempSuffix separates an instance name from the spec hash in the name of
// a replacement container that has not been swapped in yet.
const TempSuffix = ".next-"

// TempName is the name a replacement container has until it is swapped in.
func TempName(instance, specHash string) string {
	return instance + TempSuffix + specHash[:min(8, len(specHash))]
}

// Temporary reports whether the container is a replacement that has not
// been swapped in (renamed to the instance name): one still being checked,
// or one left behind by an interrupted apply.
func (c *Container) Temporary() bool {
	return c.Owned() && strings.HasPrefix(c.Name, c.Instance()+TempSuffix)
}

// KeptSuffix separates an instance name from the spec hash in the name of
// a previous container kept stopped for a rollback.
const KeptSuffix = ".prev-"

// KeptName is the name of an instance's previous container of a spec,
// kept stopped after a replacement so that a rollback can swap back to it.
func KeptName(instance, specHash string) string {
	return instance + KeptSuffix + specHash[:min(12, len(specHash))]
}

// Kept reports whether the container is a previous container of its
// instance, kept for a rollback: neither drift nor a leftover.
func (c *Container) Kept() bool {
	return c.Owned() && strings.HasPrefix(c.Name, c.Instance()+KeptSuffix)
}

// Rollback is a rollback marker: the environment was rolled back from a
// revision to another, and is held there until its desired state
// changes.
type Rollback struct {
	Env string `json:"env"`
	// Digest is the environment's desired state rolled back from (see
	// diff.Digest): the hold lasts while the source still desires it.
	Digest string    `json:"digest"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
}

// Rollback returns the rollback the container marks, if it is a marker.
func (c *Container) Rollback() (Rollback, bool) {
	v := c.Labels[label.Rollback]
	if v == "" {
		return Rollback{}, false
	}
	var r Rollback
	if json.Unmarshal([]byte(v), &r) != nil || r.Env == "" {
		return r, false
	}
	return r, true
}

// Running reports whether the container runs.
func (c *Container) Running() bool { return c.State == "running" || c.State == "restarting" }

// Cluster is one Kubernetes cluster namespace (see manifest.Cluster.Address).
type Cluster struct {
	Address string
	// Err is set when the cluster could not be observed.
	Err error
	// Workloads are the Deployments and DaemonSets with maestro-sync's
	// labels in the namespace.
	Workloads []Workload
	// Inventories are the inventories in the namespace: what each owner's
	// environments applied there.
	Inventories []Inventory
}

// Inventory is what one owner's environment applied in a namespace.
type Inventory struct {
	Env, Owner string
	// File and Labels are the environment's manifest and labels as its
	// last apply recorded them (see Container.Origin); HasOrigin is false
	// when it recorded none.
	File      string
	Labels    map[string]string
	HasOrigin bool
	// Services are the services with objects recorded.
	Services []string
}

// Workload is an observed Deployment or DaemonSet.
type Workload struct {
	// Kind is Deployment or DaemonSet.
	Kind        string
	Name        string
	UID         string
	Labels      map[string]string
	Annotations map[string]string
	// Ready is true when the rollout is complete: every desired pod is
	// updated and available.
	Ready bool
	// Serving is true when the service's Service selects this workload.
	Serving bool
	// Replicas is a Deployment's desired number of pods (its
	// spec.replicas); 0 for a DaemonSet.
	Replicas int
	// Drift names what was changed on the cluster since maestro-sync
	// applied it: the pod template edited, its ConfigMap deleted.
	Drift []string
}

// Env returns the environment that owns the workload.
func (w *Workload) Env() string { return w.Labels[label.Env] }

// Owner returns the ID of the source that created the workload; "" for
// one made before owners existed.
func (w *Workload) Owner() string { return w.Labels[label.Owner] }

// Ours reports whether the owner with that ID may act on the workload:
// its own, or one made before owners existed.
func (w *Workload) Ours(owner string) bool {
	return w.Env() != "" && (w.Owner() == owner || w.Owner() == "")
}

// Service returns the service the workload runs.
func (w *Workload) Service() string { return w.Labels[label.Service] }

// SpecHash returns the hash of the spec the workload was created from.
func (w *Workload) SpecHash() string { return w.Labels[label.SpecHash] }

// Change is a change of live state a driver was told of (a Docker event,
// a Kubernetes watch): one of our objects created, changed or removed, or
// a stream followed again after a break (what happened meanwhile is
// unknown).
type Change struct {
	// Object names the object that changed, unique among every ship and
	// cluster ("ship s1: shop/web-1"); it is "" when the change is not
	// about one object.
	Object string
	// What tells what happened, for logs.
	What string
	// At is when it happened.
	At time.Time
}
