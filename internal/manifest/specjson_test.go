package manifest

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestSpecJSON checks that the spec's own JSON writer gives the bytes
// encoding/json gives, which spec hashes were computed from.
func TestSpecJSON(t *testing.T) {
	check := func(s Spec) {
		t.Helper()
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := s.appendJSON(nil, nil)
		if !ok {
			return
		}
		if string(got) != string(want) {
			t.Fatalf("spec %+v:\ngot  %s\nwant %s", s, got, want)
		}
	}
	repo, err := Load(genRepo(1, 20), Options{})
	if err != nil || repo.Err() != nil {
		t.Fatal(err, repo.Err())
	}
	for _, in := range repo.Environments[0].Instances() {
		check(in.Spec())
		if in.SpecHash != in.Spec().Hash() {
			t.Errorf("%s: spec hash %s, hash of its spec %s", in.Name, in.SpecHash, in.Spec().Hash())
		}
	}
	bare := &Instance{Name: "bare", Image: "x:1"}
	if SpecHash(bare) != bare.Spec().Hash() {
		t.Error("the spec hash of an instance without env is not the hash of its spec")
	}
	// An environment of every form, written from the variables.
	for _, env := range []Env{{}, {{Name: "A", Value: "1"}, {Name: "B", Unset: true}, {Name: "C", Value: "<&>"}, {Name: "D\u2028", Value: ""}, {Name: "E\"", Unset: true}}} {
		s := Spec{Version: specVersion, Env: env.List()}
		want, _ := s.appendJSON(nil, nil)
		got, _ := s.appendJSON(nil, env)
		if string(got) != string(want) {
			t.Errorf("env %v: got %s, want %s", env, got, want)
		}
	}
	check(Spec{})
	check(Spec{Command: []string{}, Env: []string{}, Ports: PortList{}, Volumes: []Bind{}, Links: map[string]string{}, Ulimits: []Ulimit{}, Labels: map[string]string{}})

	strs := []string{"", "a", "web-1", "é", "<b>&", "\"q\"", "back\\slash", "tab\there", "\u2028", "\x00", "\xff\xfe", "x=y z", "/srv/data"}
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string { return strs[r.IntN(len(strs))] }
	list := func() []string {
		switch r.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+r.IntN(3))
		for i := range out {
			out[i] = str()
		}
		return out
	}
	smap := func() map[string]string {
		switch r.IntN(3) {
		case 0:
			return nil
		case 1:
			return map[string]string{}
		}
		m := map[string]string{}
		for range 1 + r.IntN(4) {
			m[str()] = str()
		}
		return m
	}
	num := func() int64 { return []int64{0, 1, -1, 512, 1 << 40}[r.IntN(5)] }
	for range 2000 {
		s := Spec{Version: specVersion, Image: str(), Command: list(), Env: list(), Hostname: str(),
			VolumesFrom: list(), ContainerVolumes: list(), Links: smap(), User: str(), Privileged: r.IntN(2) == 0,
			CapAdd: list(), CapDrop: list(), ExtraHosts: smap(), Net: str(), Restart: RestartPolicy{Name: str(), MaxRetries: int(num())},
			DNS: list(), StopTimeout: int(num()), Limits: Limits{Memory: num(), Swap: num(), CPUShares: num(), CPUMillis: num()},
			LogDriver: str(), LogOpt: smap(), Workdir: str(), SecurityOpt: list(), Labels: smap()}
		if r.IntN(2) == 0 {
			s.Ports = PortList{{Name: str(), Exposed: str(), External: str(), ExternalIP: str()}}
		}
		if r.IntN(3) > 0 {
			s.Volumes = []Bind{}
			for range r.IntN(3) {
				s.Volumes = append(s.Volumes, Bind{Source: str(), Target: str(), Mode: str()})
			}
		}
		if r.IntN(3) > 0 {
			s.Ulimits = []Ulimit{}
			for range r.IntN(3) {
				s.Ulimits = append(s.Ulimits, Ulimit{Name: str(), Soft: num(), Hard: num()})
			}
		}
		check(s)
	}
	if _, ok := (&Spec{Replicas: 2}).appendJSON(nil, nil); ok {
		t.Error("a workload's spec was written without encoding/json")
	}
}
