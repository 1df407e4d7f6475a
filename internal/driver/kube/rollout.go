package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// deploymentDone reports whether a Deployment's rollout is complete: the
// controller saw the latest spec and every desired pod is updated, ready
// and available, with no other pod left. failed is set once the
// Deployment's progress deadline passed. status describes the progress.
func deploymentDone(d *appsv1.Deployment) (done bool, status string, failed error) {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	if s.ObservedGeneration < d.Generation {
		return false, "waiting for the controller to see the deployment", nil
	}
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return false, "", fmt.Errorf("progress deadline exceeded: %s", c.Message)
		}
	}
	status = fmt.Sprintf("%d of %d pods updated, %d ready, %d available", s.UpdatedReplicas, want, s.ReadyReplicas, s.AvailableReplicas)
	done = s.UpdatedReplicas == want && s.Replicas == want && s.ReadyReplicas == want && s.AvailableReplicas == want
	return done, status, nil
}

// daemonSetDone reports whether a DaemonSet's rollout is complete: the
// controller saw the latest spec and every node that should run a pod runs
// an updated, available one.
func daemonSetDone(d *appsv1.DaemonSet) (done bool, status string, failed error) {
	s := d.Status
	if s.ObservedGeneration < d.Generation {
		return false, "waiting for the controller to see the daemonset", nil
	}
	status = fmt.Sprintf("%d of %d nodes updated, %d available", s.UpdatedNumberScheduled, s.DesiredNumberScheduled, s.NumberAvailable)
	done = s.DesiredNumberScheduled == s.NumberAvailable && s.DesiredNumberScheduled == s.UpdatedNumberScheduled
	return done, status, nil
}

// object is a typed API object with metadata.
type object interface {
	runtime.Object
	GetResourceVersion() string
}

// waitFor waits until check reports the object done, following it with a
// watch (re-read after every interruption). Without watch permission it
// polls every interval. It returns the last status seen.
func waitFor[T object](ctx context.Context, interval time.Duration,
	get func(context.Context) (T, error),
	watchFrom func(ctx context.Context, rv string) (watch.Interface, error),
	check func(T) (bool, string, error),
	progress func(string),
) (string, error) {
	last := ""
	report := func(status string) {
		if status != "" && status != last {
			last = status
			progress(status)
		}
	}
	for {
		obj, err := get(ctx)
		if err != nil {
			if apierrors.IsNotFound(err) {
				return last, errors.New("deleted while waiting for it")
			}
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			return last, err
		}
		done, status, err := check(obj)
		report(status)
		if err != nil || done {
			return last, err
		}
		w, err := watchFrom(ctx, obj.GetResourceVersion())
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			select { // no watch: poll
			case <-ctx.Done():
				return last, ctx.Err()
			case <-time.After(interval):
			}
			continue
		}
		done, err = follow(ctx, w, check, report)
		w.Stop()
		if err != nil || done {
			return last, err
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
	}
}

// follow reads watch events until the object is done, fails, is deleted,
// or the watch ends (done and err both zero: read it again).
func follow[T object](ctx context.Context, w watch.Interface, check func(T) (bool, string, error), report func(string)) (bool, error) {
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return false, nil
			}
			switch ev.Type {
			case watch.Deleted:
				return false, errors.New("deleted while waiting for it")
			case watch.Added, watch.Modified:
				obj, ok := ev.Object.(T)
				if !ok {
					continue
				}
				done, status, err := check(obj)
				report(status)
				if err != nil || done {
					return done, err
				}
			case watch.Error:
				return false, nil // such as a too old resource version: read again
			}
		}
	}
}

// waitRollout waits until the workload's rollout is complete, for at most
// the driver's rollout timeout. first, when not nil, is the workload as
// the driver's last write left it: the wait starts from it instead of
// reading it.
func (d *Driver) waitRollout(ctx context.Context, c kubernetes.Interface, ds *desired, first object, progress func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, d.rolloutTimeout())
	defer cancel()
	name, ns := ds.workloadName(), ds.namespace
	listOpts := func(rv string) metav1.ListOptions {
		timeout := int64(60)
		return metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: rv, TimeoutSeconds: &timeout}
	}
	prefix := strings.ToLower(ds.kind()) + " " + name + ": "
	say := func(s string) { progress(prefix + s) }
	var last, doneAt string
	var err error
	if ds.kind() == KindDaemonSet {
		api := c.AppsV1().DaemonSets(ns)
		last, err = waitFor(ctx, d.pollInterval(),
			func(ctx context.Context) (*appsv1.DaemonSet, error) {
				if o, ok := first.(*appsv1.DaemonSet); ok {
					first = nil
					return o, nil
				}
				return api.Get(ctx, name, metav1.GetOptions{})
			},
			func(ctx context.Context, rv string) (watch.Interface, error) { return api.Watch(ctx, listOpts(rv)) },
			func(o *appsv1.DaemonSet) (bool, string, error) {
				doneAt = o.ResourceVersion
				return daemonSetDone(o)
			}, say)
	} else {
		api := c.AppsV1().Deployments(ns)
		last, err = waitFor(ctx, d.pollInterval(),
			func(ctx context.Context) (*appsv1.Deployment, error) {
				if o, ok := first.(*appsv1.Deployment); ok {
					first = nil
					return o, nil
				}
				return api.Get(ctx, name, metav1.GetOptions{})
			},
			func(ctx context.Context, rv string) (watch.Interface, error) { return api.Watch(ctx, listOpts(rv)) },
			func(o *appsv1.Deployment) (bool, string, error) {
				doneAt = o.ResourceVersion
				return deploymentDone(o)
			}, say)
	}
	if err == nil {
		// The next Observe sees the rollout complete, not an older state
		// its cache may still hold.
		d.pool.expectVersion(ds.cluster.Address(), strings.ToLower(ds.kind())+"s", name, doneAt)
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		err = fmt.Errorf("not complete after %s", d.rolloutTimeout())
	}
	msg := fmt.Sprintf("rollout of %s %s failed: %v", strings.ToLower(ds.kind()), name, err)
	if last != "" {
		msg += " (" + last + ")"
	}
	if why := podTrouble(context.WithoutCancel(ctx), c, ds); why != "" {
		msg += ": " + why
	}
	return errors.New(msg)
}

// podTrouble tells why a pod of the workload is not ready, when the
// driver may read pods (it does not need to: without permission, nothing
// is added to the error).
func podTrouble(ctx context.Context, c kubernetes.Interface, ds *desired) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pods, err := c.CoreV1().Pods(ds.namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(ds.selector()).String(), Limit: 20})
	if err != nil {
		return ""
	}
	if len(pods.Items) == 0 {
		return "no pod was created"
	}
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
				return fmt.Sprintf("pod %s cannot be scheduled: %s", p.Name, cond.Message)
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason != "" {
				return fmt.Sprintf("pod %s: %s: %s", p.Name, w.Reason, w.Message)
			}
			if t := cs.State.Terminated; t != nil {
				return fmt.Sprintf("pod %s: container exited with code %d (%s)", p.Name, t.ExitCode, t.Reason)
			}
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status != corev1.ConditionTrue {
				why := cond.Reason
				if cond.Message != "" {
					why += ": " + cond.Message
				}
				if why == "" {
					why = "not ready"
				}
				if probe := lastProbeFailure(ctx, c, ds.namespace, p.Name); probe != "" {
					why += ": " + probe
				}
				return fmt.Sprintf("pod %s: %s", p.Name, why)
			}
		}
	}
	return ""
}

// lastProbeFailure is the message of the kubelet's latest Unhealthy event of
// the pod (such as "Readiness probe failed: HTTP probe failed with
// statuscode: 503"), when the driver may list events; else "".
func lastProbeFailure(ctx context.Context, c kubernetes.Interface, ns, pod string) string {
	events, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod + ",reason=Unhealthy", Limit: 50})
	if err != nil {
		return ""
	}
	var last *corev1.Event
	for i := range events.Items {
		e := &events.Items[i]
		if last == nil || eventTime(e).After(eventTime(last)) {
			last = e
		}
	}
	if last == nil {
		return ""
	}
	msg := []rune(strings.TrimSpace(last.Message))
	if len(msg) > 300 {
		return string(msg[:300]) + "…"
	}
	return string(msg)
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}
