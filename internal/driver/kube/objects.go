package kube

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	"github.com/maestro-sync/maestro-sync/internal/label"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
	"github.com/maestro-sync/maestro-sync/internal/owner"
	"github.com/maestro-sync/maestro-sync/internal/secret"
)

// FieldManager is the server-side apply field manager of every object
// maestro-sync applies.
const FieldManager = "maestro-sync"

// Object kinds.
const (
	KindDeployment = "Deployment"
	KindDaemonSet  = "DaemonSet"
	KindConfigMap  = "ConfigMap"
	KindSecret     = "Secret"
	KindService    = "Service"
	KindIngress    = "Ingress"
)

// HashLen is how much of the spec hash names a workload and its ConfigMap.
const HashLen = 8

// WorkloadName is the name of the Deployment (or DaemonSet) of a service
// with the given spec hash: <service>-<hash8>.
func WorkloadName(service, specHash string) string {
	return service + "-" + specHash[:min(HashLen, len(specHash))]
}

// ConfigMapName is the name of the immutable ConfigMap holding the env of
// a service's workload: <service>-env-<hash8>.
func ConfigMapName(service, specHash string) string {
	return service + "-env-" + specHash[:min(HashLen, len(specHash))]
}

// SecretName is the name of the immutable Secret holding the sensitive
// env of a service's workload: <service>-secret-<hash8>.
func SecretName(service, specHash string) string {
	return service + "-secret-" + specHash[:min(HashLen, len(specHash))]
}

// sensitive tells the env variables that go into the Secret: names that
// look secret (PASSWORD, TOKEN, KEY, …) and values from env files.
var sensitive = secret.New(nil)

// desired is everything the objects of one cluster service are built from.
type desired struct {
	env, service, revision string
	owner                  owner.Owner
	namespace              string
	cluster                *manifest.Cluster
	w                      *manifest.Workload
	// image is the pods' image: w.Image, pinned by digest when the plan
	// knows the digest of a built one.
	image string
	// progressDeadline is the Deployment's progressDeadlineSeconds.
	progressDeadline time.Duration
}

func (d *desired) hash() string          { return d.w.SpecHash }
func (d *desired) workloadName() string  { return WorkloadName(d.service, d.w.SpecHash) }
func (d *desired) configMapName() string { return ConfigMapName(d.service, d.w.SpecHash) }
func (d *desired) secretName() string    { return SecretName(d.service, d.w.SpecHash) }

// hasSecret reports whether the workload has sensitive env values.
func (d *desired) hasSecret() bool {
	for _, v := range d.w.Env {
		if !v.Unset && sensitive.Var(v) {
			return true
		}
	}
	return false
}

func (d *desired) kind() string {
	if d.w.Mode == manifest.ModeDaemonSet {
		return KindDaemonSet
	}
	return KindDeployment
}

// selector selects the pods of this spec: the Service's selector and the
// workload's.
func (d *desired) selector() map[string]string {
	return map[string]string{label.Env: d.env, label.Service: d.service, label.SpecHash: d.hash()}
}

// labels are the owner labels of every object.
func (d *desired) labels() map[string]string {
	l := d.selector()
	if !d.owner.IsZero() {
		l[label.Owner] = d.owner.ID
	}
	if d.revision != "" && len(validation.IsValidLabelValue(d.revision)) == 0 {
		l[label.Revision] = d.revision
	}
	return l
}

// annotations hold the spec summary (env values as digests), so that a
// plan can say what changed, and the revision when it cannot be a label.
func (d *desired) annotations() map[string]string {
	spec, err := json.Marshal(d.w.Spec().Summary())
	if err != nil {
		panic("kube: marshal spec: " + err.Error()) // plain values only
	}
	a := map[string]string{label.Spec: string(spec)}
	if !d.owner.IsZero() {
		a[label.OwnerName] = d.owner.Name
	}
	if d.revision != "" {
		a[label.Revision] = d.revision
	}
	return a
}

func (d *desired) meta(name string) *metav1ac.ObjectMetaApplyConfiguration {
	return metav1ac.ObjectMeta().WithName(name).WithNamespace(d.namespace).WithLabels(d.labels()).WithAnnotations(d.annotations())
}

// configMap is the immutable ConfigMap with the workload's env. Unset
// variables (YAML null) have no value to give and are left out.
func (d *desired) configMap() *corev1ac.ConfigMapApplyConfiguration {
	data := map[string]string{}
	for _, v := range d.w.Env {
		if !v.Unset && !sensitive.Var(v) {
			data[v.Name] = v.Value
		}
	}
	cm := corev1ac.ConfigMap(d.configMapName(), d.namespace).WithImmutable(true).WithData(data)
	cm.ObjectMetaApplyConfiguration = d.meta(d.configMapName())
	return cm
}

// secret is the immutable Secret with the workload's sensitive env values,
// which never go into the ConfigMap.
func (d *desired) secret() *corev1ac.SecretApplyConfiguration {
	data := map[string]string{}
	for _, v := range d.w.Env {
		if !v.Unset && sensitive.Var(v) {
			data[v.Name] = v.Value
		}
	}
	s := corev1ac.Secret(d.secretName(), d.namespace).WithImmutable(true).WithType(corev1.SecretTypeOpaque).WithStringData(data)
	s.ObjectMetaApplyConfiguration = d.meta(d.secretName())
	return s
}

func (d *desired) podTemplate() (*corev1ac.PodTemplateSpecApplyConfiguration, error) {
	c := corev1ac.Container().WithName(d.service).WithImage(cmp.Or(d.image, d.w.Image)).
		WithEnvFrom(corev1ac.EnvFromSource().WithConfigMapRef(corev1ac.ConfigMapEnvSource().WithName(d.configMapName())))
	if d.hasSecret() {
		c.WithEnvFrom(corev1ac.EnvFromSource().WithSecretRef(corev1ac.SecretEnvSource().WithName(d.secretName())))
	}
	if len(d.w.Command) > 0 {
		// MaestroNG's command is Docker's Cmd: the image's entrypoint
		// stays, as with Kubernetes' args.
		c.WithArgs(d.w.Command...)
	}
	for _, p := range d.w.Ports {
		n, err := strconv.Atoi(p.ExposedPort())
		if err != nil {
			return nil, fmt.Errorf("port %s: %q is not a single port", p.Name, p.ExposedPort())
		}
		c.WithPorts(corev1ac.ContainerPort().WithName(p.Name).WithContainerPort(int32(n)).WithProtocol(protocol(p)))
	}
	if d.w.MemoryBytes > 0 || d.w.CPUMillis > 0 {
		limits := corev1.ResourceList{}
		if d.w.MemoryBytes > 0 {
			limits[corev1.ResourceMemory] = *resource.NewQuantity(d.w.MemoryBytes, resource.BinarySI)
		}
		if d.w.CPUMillis > 0 {
			limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(d.w.CPUMillis, resource.DecimalSI)
		}
		c.WithResources(corev1ac.ResourceRequirements().WithLimits(limits))
	}
	if checks := d.w.Lifecycle["running"]; len(checks) > 0 {
		probe, err := readinessProbe(checks[0])
		if err != nil {
			return nil, err
		}
		c.WithReadinessProbe(probe)
	}
	return corev1ac.PodTemplateSpec().
		WithLabels(d.selector()).
		WithSpec(corev1ac.PodSpec().WithContainers(c)), nil
}

func protocol(p manifest.Port) corev1.Protocol {
	if p.Protocol() == "udp" {
		return corev1.ProtocolUDP
	}
	return corev1.ProtocolTCP
}

// Probe timings. A readiness probe never restarts a pod; the rollout
// deadline bounds how long a pod may stay unready.
const (
	probePeriod    = 5
	probeTimeout   = 2
	probeExecLimit = 10
	probeFailures  = 3
)

// readinessProbe translates a running check: tcp → tcpSocket on the named
// port, http → httpGet (path, scheme, port name or number, host when given,
// requests_options timeout as the probe timeout), exec → exec in the
// container.
func readinessProbe(c manifest.Check) (*corev1ac.ProbeApplyConfiguration, error) {
	p := corev1ac.Probe().WithPeriodSeconds(probePeriod).WithTimeoutSeconds(probeTimeout).
		WithFailureThreshold(probeFailures).WithSuccessThreshold(1)
	switch c.Type {
	case manifest.CheckTCP:
		p.WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.Parse(c.Port)))
	case manifest.CheckHTTP:
		get := corev1ac.HTTPGetAction().WithPort(intstr.Parse(c.Port)).WithPath(c.Path).
			WithScheme(corev1.URIScheme(strings.ToUpper(c.Scheme)))
		if c.Host != "" {
			get.WithHost(c.Host)
		}
		p.WithHTTPGet(get)
		if s, ok := c.Options["timeout"]; ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
				p.WithTimeoutSeconds(int32(math.Ceil(f)))
			}
		}
	case manifest.CheckExec:
		p.WithExec(corev1ac.ExecAction().WithCommand(c.Command...)).WithTimeoutSeconds(probeExecLimit)
	default:
		return nil, fmt.Errorf("a %s check cannot be a readiness probe", c.Type)
	}
	return p, nil
}

func (d *desired) deployment() (*appsv1ac.DeploymentApplyConfiguration, error) {
	tpl, err := d.podTemplate()
	if err != nil {
		return nil, err
	}
	deadline := int32(max(1, math.Ceil(d.progressDeadline.Seconds())))
	dep := appsv1ac.Deployment(d.workloadName(), d.namespace).WithSpec(appsv1ac.DeploymentSpec().
		WithReplicas(int32(d.w.Replicas)).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(d.selector())).
		WithProgressDeadlineSeconds(deadline).
		WithTemplate(tpl))
	dep.ObjectMetaApplyConfiguration = d.meta(d.workloadName())
	return dep, nil
}

func (d *desired) daemonSet() (*appsv1ac.DaemonSetApplyConfiguration, error) {
	tpl, err := d.podTemplate()
	if err != nil {
		return nil, err
	}
	ds := appsv1ac.DaemonSet(d.workloadName(), d.namespace).WithSpec(appsv1ac.DaemonSetSpec().
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(d.selector())).
		WithTemplate(tpl))
	ds.ObjectMetaApplyConfiguration = d.meta(d.workloadName())
	return ds, nil
}

// headless reports whether the Service has no port: it is then headless
// (a Service needs a port to get a cluster IP).
func (d *desired) headless() bool { return len(d.w.Ports) == 0 }

// serviceObject is the Service selecting this spec's pods. Each port is exposed
// under its exposed number (or the number expose gives it); a port whose
// external port differs is a node port, and the Service is of type
// NodePort when one is, unless expose sets its type.
func (d *desired) serviceObject() (*corev1ac.ServiceApplyConfiguration, error) {
	spec := corev1ac.ServiceSpec().WithSelector(d.selector()).WithType(corev1.ServiceTypeClusterIP)
	if d.headless() {
		spec.WithClusterIP(corev1.ClusterIPNone)
	}
	x := d.w.Expose
	for _, p := range d.w.Ports {
		n, err := strconv.Atoi(p.ExposedPort())
		if err != nil {
			return nil, fmt.Errorf("port %s: %q is not a single port", p.Name, p.ExposedPort())
		}
		if x != nil && x.Ports[p.Name] > 0 {
			n = x.Ports[p.Name]
		}
		sp := corev1ac.ServicePort().WithName(p.Name).WithPort(int32(n)).WithProtocol(protocol(p)).
			WithTargetPort(intstr.FromString(p.Name))
		if p.External != p.Exposed && p.External != "" {
			np, err := strconv.Atoi(p.ExternalPort())
			if err != nil {
				return nil, fmt.Errorf("port %s: node port %q is not a single port", p.Name, p.ExternalPort())
			}
			sp.WithNodePort(int32(np))
			spec.WithType(corev1.ServiceTypeNodePort)
		}
		spec.WithPorts(sp)
	}
	if x != nil {
		spec.WithType(corev1.ServiceType(x.Type))
	}
	svc := corev1ac.Service(d.service, d.namespace).WithSpec(spec)
	svc.ObjectMetaApplyConfiguration = d.meta(d.service)
	return svc, nil
}

// ingressObject is the service's Ingress: a rule per host (or one for
// every host) sending the path prefix to the stable Service's port, so
// that it follows the blue/green switch with the Service; nil when the
// service has none.
func (d *desired) ingressObject() *networkingv1ac.IngressApplyConfiguration {
	in := d.w.Ingress
	if in == nil {
		return nil
	}
	prefix := networkingv1.PathTypePrefix
	paths := networkingv1ac.HTTPIngressRuleValue().WithPaths(networkingv1ac.HTTPIngressPath().
		WithPath(in.Path).WithPathType(prefix).
		WithBackend(networkingv1ac.IngressBackend().WithService(networkingv1ac.IngressServiceBackend().
			WithName(d.service).WithPort(networkingv1ac.ServiceBackendPort().WithName(in.Port)))))
	spec := networkingv1ac.IngressSpec()
	if len(in.Hosts) == 0 {
		spec.WithRules(networkingv1ac.IngressRule().WithHTTP(paths))
	}
	for _, h := range in.Hosts {
		spec.WithRules(networkingv1ac.IngressRule().WithHost(h).WithHTTP(paths))
	}
	if in.TLSSecret != "" {
		spec.WithTLS(networkingv1ac.IngressTLS().WithHosts(in.Hosts...).WithSecretName(in.TLSSecret))
	}
	if in.Class != "" {
		spec.WithIngressClassName(in.Class)
	}
	ing := networkingv1ac.Ingress(d.service, d.namespace).WithSpec(spec)
	ing.ObjectMetaApplyConfiguration = d.meta(d.service)
	return ing
}

// TemplateDigest is a digest of a pod template: 16 hex digits.
func TemplateDigest(t *corev1.PodTemplateSpec) string {
	data, err := json.Marshal(t)
	if err != nil {
		panic("kube: marshal pod template: " + err.Error()) // plain values only
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}
