// Package label defines the labels maestro-sync puts on every object it
// manages. They are how maestro-sync recognises its own objects and what
// their desired state was, so they are load-bearing: never rename one.
package label

// Prefix starts every maestro-sync label.
const Prefix = "io.maestro-sync/"

const (
	// Env is the environment name.
	Env = Prefix + "env"
	// Service is the service name.
	Service = Prefix + "service"
	// Instance is the instance name (the container name on a ship).
	Instance = Prefix + "instance"
	// SpecHash is the digest of the spec the object was created from.
	SpecHash = Prefix + "spec-hash"
	// Spec is a JSON summary of that spec, with env values replaced by
	// digests, so that a plan can say what changed.
	Spec = Prefix + "spec"
	// Revision is the source revision (commit) the object was applied from.
	Revision = Prefix + "revision"
	// Owner is the ID of the source (repository and sub-path) that
	// created the object: every decision is scoped by it. Objects without
	// it were made before owners existed; see internal/owner.
	Owner = Prefix + "owner"
	// OwnerName is the owner's readable name (a label on containers, an
	// annotation on Kubernetes objects, whose label values are too short).
	OwnerName = Prefix + "owner-name"
	// File is the path of the manifest an object's environment came from,
	// relative to the owner's sub-path, and EnvLabels that environment's
	// labels (JSON), as they were when the object was created: they say
	// which daemon's shard the environment was in once its file is gone
	// (see internal/shard). Neither is part of the spec hash.
	File      = Prefix + "file"
	EnvLabels = Prefix + "env-labels"
	// Lock marks a deploy lock object (a never-started container on a
	// ship); its value is the lock's key (see internal/lock). LockBeat
	// marks a renewal of it, LockEnv and LockHolder say whose it is, and
	// LockTTL how long it outlives its last renewal, in seconds.
	Lock       = Prefix + "lock"
	LockBeat   = Prefix + "lock-beat"
	LockEnv    = Prefix + "lock-env"
	LockHolder = Prefix + "lock-holder"
	LockTTL    = Prefix + "lock-ttl"
	// Role marks a ship-level object maestro-sync runs for every
	// environment of the ship: "proxy" for the front proxy container and
	// its network. ProxySpec is a digest of the proxy container's
	// settings (image, ports), to tell when it must be upgraded.
	Role      = Prefix + "role"
	ProxySpec = Prefix + "proxy-spec"
	// Upstream is where the front proxy reaches a routed container
	// (alias:port on the proxy network), and Route the route it serves
	// (JSON: key, hosts, path, drain), from which the proxy's routes are
	// rebuilt when the proxy itself is recreated.
	Upstream = Prefix + "upstream"
	Route    = Prefix + "route"
	// Rollback marks an environment's rollback marker (a never-started
	// container on a ship); its value is JSON: environment, the revision
	// rolled back from and to, and when.
	Rollback = Prefix + "rollback"
	// Inventory marks an environment's inventory ConfigMap on a cluster.
	Inventory = Prefix + "inventory"

	// Image, on a container, is the image it was created from, pinned:
	// repository:tag@digest when pulled from a registry, else the image
	// ID.
	Image = Prefix + "image"
	// ContextDigest and ContextIndex, on a built image, are its build
	// context's digest and its file index (see build.Index.Encode).
	ContextDigest = Prefix + "context-digest"
	ContextIndex  = Prefix + "context-index"
	// TemplateDigest, on a Deployment or DaemonSet, is a digest of its pod
	// template as it was right after maestro-sync applied it: another
	// value means it was edited on the cluster since.
	TemplateDigest = Prefix + "template-digest"
)
