// Package notify tells people and systems what the daemon deploys: the
// auditors of MaestroNG's audit section (Slack, HTTP webhooks, a log
// file), commit statuses on GitHub, GitLab and Gitea, and a signed
// generic webhook.
//
// Notifications never block a deploy: Dispatcher queues them (bounded,
// per notifier; the oldest are dropped when a queue is full) and delivers
// them in the background, retrying failures with backoff; a receiver that
// is down delays only its own notifications. They carry names,
// revisions, commit subjects and error messages, never a variable's value
// or a credential.
package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Kind is what an event tells.
type Kind string

const (
	// Started: a deploy of the environment begins (steps were planned).
	Started Kind = "started"
	// Succeeded: every step of it succeeded.
	Succeeded Kind = "succeeded"
	// Failed: a step failed, or the environment's file is invalid.
	Failed Kind = "failed"
)

// Event is one thing to tell about an environment.
type Event struct {
	Kind     Kind      `json:"event"`
	Env      string    `json:"env"`
	Revision string    `json:"revision,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	Author   string    `json:"author,omitempty"`
	Trigger  string    `json:"trigger,omitempty"`
	Action   string    `json:"action"`    // deploy
	Targets  []string  `json:"instances"` // the instances the deploy changes
	Message  string    `json:"message,omitempty"`
	RunID    uint64    `json:"run_id,omitempty"`
	URL      string    `json:"url,omitempty"` // the run's page on the dashboard
	Time     time.Time `json:"time"`
	// Who is the deployer's name in messages.
	Who string `json:"who"`
}

// Notifier delivers events somewhere.
type Notifier interface {
	// Name names the notifier in logs.
	Name() string
	// Notify delivers one event; an error is retried.
	Notify(ctx context.Context, ev Event) error
}

// Permanent marks an error that retrying cannot fix (a 4xx answer).
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// Options tune a Dispatcher.
type Options struct {
	// Queue bounds the events waiting per notifier (default 256).
	Queue int
	// Attempts per event and notifier (default 5), the first retry after
	// Backoff (default 1s), doubling up to a minute.
	Attempts int
	Backoff  time.Duration
	Logger   *slog.Logger
}

type job struct {
	n  Notifier
	ev Event
}

// queue is one notifier's events and the worker that delivers them, so
// that a receiver that is down delays only its own events.
type queue struct {
	jobs    []job
	wake    chan struct{}
	running bool
}

// Dispatcher delivers events in the background, in order per notifier.
type Dispatcher struct {
	opts   Options
	mu     sync.Mutex
	queues map[string]*queue // by notifier name
	ctx    context.Context   // Run's, once it runs
	wg     sync.WaitGroup
}

// NewDispatcher returns a dispatcher; Run delivers what Send queues.
func NewDispatcher(opts Options) *Dispatcher {
	if opts.Queue <= 0 {
		opts.Queue = 256
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{opts: opts, queues: map[string]*queue{}}
}

// Send queues ev for each notifier. It never blocks: when a notifier's
// queue is full its oldest event is dropped (and logged).
func (d *Dispatcher) Send(ev Event, to ...Notifier) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range to {
		q := d.queues[n.Name()]
		if q == nil {
			q = &queue{wake: make(chan struct{}, 1)}
			d.queues[n.Name()] = q
		}
		if len(q.jobs) >= d.opts.Queue {
			dropped := q.jobs[0]
			q.jobs = q.jobs[1:]
			d.opts.Logger.Warn("notification dropped: the queue is full", "notifier", dropped.n.Name(), "env", dropped.ev.Env, "event", string(dropped.ev.Kind))
		}
		q.jobs = append(q.jobs, job{n, ev})
		d.start(q)
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// start runs q's worker when Run runs and it does not run yet (d.mu held).
func (d *Dispatcher) start(q *queue) {
	if d.ctx == nil || q.running || d.ctx.Err() != nil {
		return
	}
	q.running = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.work(d.ctx, q)
	}()
}

// flushTime bounds the delivery of what is left when Run stops.
const flushTime = 5 * time.Second

// Run delivers queued events until ctx ends, then tries what is left once
// each, for at most flushTime in all, and returns.
func (d *Dispatcher) Run(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	for _, q := range d.queues {
		d.start(q)
	}
	d.mu.Unlock()
	<-ctx.Done()
	d.wg.Wait()
}

// work delivers q's events, in order.
func (d *Dispatcher) work(ctx context.Context, q *queue) {
	for ctx.Err() == nil {
		if j, ok := d.next(q); ok {
			d.deliver(ctx, j)
			continue
		}
		select {
		case <-ctx.Done():
		case <-q.wake:
		}
	}
	flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTime)
	defer cancel()
	for flush.Err() == nil {
		j, ok := d.next(q)
		if !ok {
			return
		}
		if err := j.n.Notify(flush, j.ev); err != nil {
			d.opts.Logger.Error("notification failed", "notifier", j.n.Name(), "env", j.ev.Env, "event", string(j.ev.Kind), "err", err.Error())
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(q.jobs) > 0 {
		d.opts.Logger.Warn("notifications dropped at shutdown", "count", len(q.jobs))
	}
}

// next takes q's oldest job.
func (d *Dispatcher) next(q *queue) (job, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(q.jobs) == 0 {
		return job{}, false
	}
	j := q.jobs[0]
	q.jobs = q.jobs[1:]
	return j, true
}

// deliver sends one event with retries.
func (d *Dispatcher) deliver(ctx context.Context, j job) {
	wait := d.opts.Backoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err := j.n.Notify(actx, j.ev)
		cancel()
		if err == nil {
			d.opts.Logger.Debug("notified", "notifier", j.n.Name(), "env", j.ev.Env, "event", string(j.ev.Kind))
			return
		}
		var perm *Permanent
		if errors.As(err, &perm) || attempt >= d.opts.Attempts || ctx.Err() != nil {
			d.opts.Logger.Error("notification failed", "notifier", j.n.Name(), "env", j.ev.Env, "event", string(j.ev.Kind), "attempts", attempt, "err", err.Error())
			return
		}
		jittered := wait/2 + time.Duration(rand.Int64N(int64(wait)))
		select {
		case <-ctx.Done():
		case <-time.After(jittered):
		}
		wait = min(2*wait, time.Minute)
	}
}

// client is the HTTP client of every notifier.
var client = &http.Client{Timeout: 10 * time.Second}

// withoutURL drops the URL from a client error: a Slack webhook's URL,
// or a notifier's with a token in its query, is a credential.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// send makes an HTTP request and classifies its answer: 2xx is success,
// 4xx (but 408 and 429) permanent, the rest retried.
func send(ctx context.Context, method, url string, body io.Reader, header http.Header) error {
	_, err := exchange(ctx, method, url, body, header)
	return err
}

// exchange is send that also returns the answer's body (at most 64 KiB).
func exchange(ctx context.Context, method, url string, body io.Reader, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, &Permanent{err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, withoutURL(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(answer[:min(len(answer), 512)]))
	switch {
	case resp.StatusCode < 300:
		return answer, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
		return nil, &Permanent{fmt.Errorf("%s: %s", resp.Status, msg)}
	}
	return nil, fmt.Errorf("%s: %s", resp.Status, msg)
}
