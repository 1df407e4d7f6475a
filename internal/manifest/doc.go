// Package manifest reads MaestroNG environment files (manifest.yml) into
// typed, validated desired state.
//
// A GitOps repository holds one environment per manifest.yml or
// manifest.yaml file. Load renders each file as a Jinja2 template, parses the
// result as YAML 1.2, applies MaestroNG's defaults and parsing rules (ports,
// volumes, sizes, restart policies, env files, image names), injects the
// MaestroNG link environment variables, builds the dependency graph and
// computes a spec hash per instance. It collects every problem of a file as
// an Error carrying the file, line, column and YAML path, so that a person can
// act on all of them at once.
//
// A Cache loads the revisions of a repository one after the other and
// re-uses the environments whose manifest, files read and options did not
// change since the previous load.
//
// The package does no network I/O and does not log: files come from an
// fs.FS and the process environment from Options. The manifests of a
// repository load in parallel, up to GOMAXPROCS at once, and so do the
// services of a manifest (their problems are reported as a load in order
// would), the YAML of a large manifest's services section included (see
// splitParse); they read the fs.FS one call at a time, so that it need not
// be safe for concurrent use.
package manifest
