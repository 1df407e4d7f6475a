// Package health runs the lifecycle checks of a MaestroNG manifest (tcp,
// http, exec, rexec and sleep) that gate each step of a deployment: a new
// container is only swapped in once its running checks pass.
//
// The checks of one lifecycle state run concurrently, as MaestroNG runs
// them, and the state passes when all of them pass. Unlike MaestroNG, the
// first check that fails ends the state at once: the others are stopped and
// not reported.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// Target is what a check needs to know about the container it checks.
type Target struct {
	// Name is the instance (container) name.
	Name string
	// Host is the ship's address, where tcp and http checks connect.
	Host string
	// Ports maps a port name to its external (host) port number, "18080".
	Ports map[string]string
	// Env is the container's environment as KEY=VALUE, given to exec
	// checks. A bare KEY (an unset variable) is left out.
	Env []string
	// Exec runs rexec checks inside the container; may be nil when the
	// checks have no rexec.
	Exec Execer
}

// Execer runs a command inside a container and returns its exit code and
// its (combined) output. It returns an error when the command could not
// be run at all, e.g. because the container is not running.
type Execer interface {
	Exec(ctx context.Context, cmd []string) (exitCode int, output string, err error)
}

// Options tune Run.
type Options struct {
	// Interval is the pause between the attempts of a check and between
	// calls to Alive. Default 1s.
	Interval time.Duration
	// Alive, when not nil, is called once at the start and then every
	// Interval while the checks run. A non-nil error (e.g. "container
	// exited") fails the state at once with that error. Errors returned
	// after ctx is done are ignored.
	Alive func(ctx context.Context) error
}

// Error is a check that did not pass.
type Error struct {
	Check manifest.Check
	// Target is what was checked: an address, a URL or a command.
	Target string
	// Err is why: the last attempt's failure, or the context's error.
	Err error
}

func (e *Error) Error() string { return e.Check.Type + " check " + e.Target + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// errAborted is the cause the checks of a state are cancelled with when
// one of them failed or Alive reported an error; their errors are dropped.
var errAborted = errors.New("aborted")

// Run runs the checks of one lifecycle state concurrently and returns nil
// when all of them pass. Otherwise it returns an error that joins an
// *Error for each failed check, or Alive's error, wrapped. When ctx is
// done, the error of each check still running wraps ctx's error (or
// cause). Run returns only once everything it started has ended.
//
// With no checks Run returns nil at once; waiting for the container to be
// in the required condition is the caller's job.
func Run(ctx context.Context, checks []manifest.Check, t Target, opt Options) error {
	if len(checks) == 0 {
		return nil
	}
	if opt.Interval <= 0 {
		opt.Interval = time.Second
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			if err := run(ctx, c, t, opt); err != nil {
				errs[i] = &Error{Check: c, Target: where(c, t), Err: err}
				cancel(errAborted)
			}
		})
	}

	var aliveErr error
	if opt.Alive != nil {
		done := make(chan struct{})
		var poller sync.WaitGroup
		poller.Go(func() {
			tick := time.NewTicker(opt.Interval)
			defer tick.Stop()
			for {
				if err := opt.Alive(ctx); err != nil && ctx.Err() == nil {
					aliveErr = err
					cancel(errAborted)
					return
				}
				select {
				case <-done:
					return
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
		wg.Wait()
		close(done)
		poller.Wait()
	} else {
		wg.Wait()
	}

	var failed []error
	var pending []string
	if aliveErr != nil {
		failed = append(failed, nil) // room for the Alive error
	}
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, errAborted):
			pending = append(pending, Describe(checks[i], t))
		default:
			failed = append(failed, err)
		}
	}
	if aliveErr != nil {
		if len(pending) > 0 {
			failed[0] = fmt.Errorf("%w (checks stopped: %s)", aliveErr, strings.Join(pending, "; "))
		} else {
			failed[0] = aliveErr
		}
	}
	return errors.Join(failed...)
}

// run runs one check.
func run(ctx context.Context, c manifest.Check, t Target, opt Options) error {
	switch c.Type {
	case manifest.CheckTCP:
		return runTCP(ctx, c, t, opt)
	case manifest.CheckHTTP:
		return runHTTP(ctx, c, t, opt)
	case manifest.CheckExec:
		return runExec(ctx, c, t, opt)
	case manifest.CheckRexec:
		return runRexec(ctx, c, t, opt)
	case manifest.CheckSleep:
		start := time.Now()
		if err := sleep(ctx, time.Duration(c.Wait)*time.Second); err != nil {
			return fmt.Errorf("%w after %s", err, since(start))
		}
		return nil
	}
	return fmt.Errorf("unknown check type %q", c.Type)
}

// Describe says what a check does, for progress display:
// "http GET http://10.0.0.1:18080/healthz", "tcp 10.0.0.1:18080",
// "exec ./check.sh", "rexec in web-1: pg_isready", "sleep 5s".
func Describe(c manifest.Check, t Target) string {
	switch c.Type {
	case manifest.CheckHTTP:
		method := c.Method
		if method == "" {
			method = "GET"
		}
		return "http " + method + " " + where(c, t)
	case manifest.CheckRexec:
		return "rexec in " + t.Name + ": " + clip(shellJoin(c.Command), maxOutput)
	}
	return c.Type + " " + where(c, t)
}

// where is what a check checks: an address, a URL or a command.
func where(c manifest.Check, t Target) string {
	switch c.Type {
	case manifest.CheckTCP:
		return net.JoinHostPort(t.Host, portOrName(c, t))
	case manifest.CheckHTTP:
		return checkURL(c, t, portOrName(c, t))
	case manifest.CheckExec:
		return clip(shellJoin(c.Command), maxOutput)
	case manifest.CheckRexec:
		return clip(shellJoin(c.Command), maxOutput) + " in " + t.Name
	case manifest.CheckSleep:
		return (time.Duration(c.Wait) * time.Second).String()
	}
	return "(" + c.Type + ")"
}

// port returns the external port number a tcp or http check connects to:
// the container's port of that name, or a literal port number.
func port(c manifest.Check, t Target) (string, error) {
	if p, ok := t.Ports[c.Port]; ok && p != "" {
		return p, nil
	}
	if isPortNumber(c.Port) {
		return c.Port, nil
	}
	if c.Port == "" {
		return "", errors.New("no port given")
	}
	return "", fmt.Errorf("port %s is not published by %s", c.Port, t.Name)
}

// portOrName is port for display: the port's name when it has no number.
func portOrName(c manifest.Check, t Target) string {
	if p, err := port(c, t); err == nil {
		return p
	}
	return c.Port
}

func isPortNumber(s string) bool {
	n := 0
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
		n = n*10 + int(r-'0')
		if n > 65535 {
			return false
		}
	}
	return n > 0
}

// checkURL is an http check's URL: <scheme>://<host>:<port><path>.
func checkURL(c manifest.Check, t Target, port string) string {
	scheme := c.Scheme
	if scheme == "" {
		scheme = "http"
	}
	host := c.Host
	if host == "" {
		host = t.Host
	}
	path := c.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return scheme + "://" + net.JoinHostPort(host, port) + path
}

// shellJoin renders a command as a shell would read it.
func shellJoin(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a != "" && !strings.ContainsFunc(a, needsQuote) {
			b.WriteString(a)
			continue
		}
		b.WriteByte('\'')
		b.WriteString(strings.ReplaceAll(a, "'", `'\''`))
		b.WriteByte('\'')
	}
	return b.String()
}

func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("_-+=:,./@%^", r)
}
