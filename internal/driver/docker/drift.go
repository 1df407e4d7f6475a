package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-units"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// drift compares a container's observed configuration with the spec it
// was made from (its spec label): what `docker update` or a hand can
// change under a container with unchanged labels — memory, swap, CPU
// shares, restart policy — and what its labels cannot prove — its image,
// environment and user labels. Each difference is named by its field,
// without values of the environment (they may be secrets). A container
// without a readable spec has no drift.
func drift(info container.InspectResponse) []string {
	if info.Config == nil || info.HostConfig == nil {
		return nil
	}
	var spec manifest.Spec
	if json.Unmarshal([]byte(info.Config.Labels[label.Spec]), &spec) != nil || spec.Image == "" {
		return nil
	}
	var out []string
	differ := func(field, live, want string) {
		out = append(out, fmt.Sprintf("%s: %s on the ship, %s in the manifest", field, live, want))
	}
	h := info.HostConfig
	size := func(b int64) string {
		if b <= 0 {
			return "none"
		}
		return units.BytesSize(float64(b))
	}
	if h.Memory != spec.Limits.Memory {
		differ("memory", size(h.Memory), size(spec.Limits.Memory))
	}
	if spec.Limits.Swap != 0 && h.MemorySwap != spec.Limits.Swap {
		differ("swap", size(h.MemorySwap), size(spec.Limits.Swap))
	}
	if h.CPUShares != spec.Limits.CPUShares {
		differ("cpu", fmt.Sprint(h.CPUShares), fmt.Sprint(spec.Limits.CPUShares))
	}
	if got, want := restartText(string(h.RestartPolicy.Name), h.RestartPolicy.MaximumRetryCount), restartText(spec.Restart.Name, spec.Restart.MaxRetries); got != want {
		differ("restart", got, want)
	}
	if info.Config.Image != spec.Image && !strings.HasPrefix(info.Config.Image, spec.Image+"@") { // pinned by digest
		differ("image", info.Config.Image, spec.Image)
	}
	have := map[string]string{}
	for _, kv := range info.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		have[k] = v
	}
	var envs []string
	for _, kv := range spec.Env {
		// The label holds a digest of each NAME=value (Spec.Summary).
		k, v, hasValue := strings.Cut(kv, "=")
		if !hasValue {
			continue // unset: Docker passes the deployer's own value, if any
		}
		got, ok := have[k]
		if hasValue && strings.HasPrefix(v, manifest.EnvDigestPrefix) {
			sum := sha256.Sum256([]byte(k + "=" + got))
			v, got = strings.TrimPrefix(v, manifest.EnvDigestPrefix), hex.EncodeToString(sum[:6])
		}
		if !ok || got != v {
			envs = append(envs, k)
		}
	}
	if len(envs) > 0 {
		slices.Sort(envs)
		out = append(out, "env: "+strings.Join(envs, ", ")+" differ from the manifest")
	}
	for _, k := range sortedKeys(spec.Labels) {
		if info.Config.Labels[k] != spec.Labels[k] {
			out = append(out, "label "+k+": differs from the manifest")
		}
	}
	return out
}

// restartText is a restart policy as the manifest writes it.
func restartText(name string, retries int) string {
	if name == "" {
		name = "no"
	}
	if retries > 0 {
		return fmt.Sprintf("%s:%d", name, retries)
	}
	return name
}
