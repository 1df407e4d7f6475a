package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// dialTimeout bounds each tcp check attempt.
const dialTimeout = time.Second

// runTCP connects to the port on the ship, up to MaxWait attempts.
// rampStart is the first pause between http attempts; it doubles up to the
// interval.
const rampStart = 100 * time.Millisecond

func runTCP(ctx context.Context, c manifest.Check, t Target, opt Options) error {
	p, err := port(c, t)
	if err != nil {
		return err
	}
	if t.Host == "" {
		return errors.New("no host address")
	}
	addr := net.JoinHostPort(t.Host, p)
	d := net.Dialer{Timeout: dialTimeout}
	return retry(ctx, attempts(c.MaxWait, opt.Interval), func(ctx context.Context) error {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return &attemptError{msg: "not reachable", err: err}
		}
		conn.Close()
		return nil
	})
}

// Request timeouts of http checks without a requests_options timeout.
const (
	maxRequestTimeout = 5 * time.Second
	minRequestTimeout = time.Second
)

// maxBody is how much of a response body is read for match_regex.
const maxBody = 1 << 20

// runHTTP requests the URL until it answers 200 (or a body matching
// MatchRegex) or MaxWait seconds have passed.
func runHTTP(ctx context.Context, c manifest.Check, t Target, opt Options) error {
	p, err := port(c, t)
	if err != nil {
		return err
	}
	if c.Host == "" && t.Host == "" {
		return errors.New("no host address")
	}
	u := checkURL(c, t, p)
	method := c.Method
	if method == "" {
		method = http.MethodGet
	}
	var re *regexp.Regexp
	if c.MatchRegex != "" {
		// Python's re.DOTALL; searched anywhere in the body.
		if re, err = regexp.Compile("(?s)" + c.MatchRegex); err != nil {
			return fmt.Errorf("bad match_regex %q: %w", c.MatchRegex, err)
		}
	}
	timeout, err := requestTimeout(c.Options)
	if err != nil {
		return err
	}
	tlsConfig, err := tlsConfig(c.Options)
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true // a fresh connection for each attempt
	tr.TLSClientConfig = tlsConfig
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	redact := redactor(t.Env)

	deadline := time.Now().Add(time.Duration(c.MaxWait) * time.Second)
	// max_wait bounds an http check in time, so the first retries can come
	// sooner than the interval without changing how long it may take: a
	// service that is up a moment after its start is seen at once.
	next := func(failed int) (time.Duration, bool) {
		left := time.Until(deadline)
		return min(opt.Interval, rampStart<<min(failed-1, 8), left), left > 0
	}
	return retry(ctx, next, func(ctx context.Context) error {
		d := timeout
		if d == 0 {
			d = min(maxRequestTimeout, max(minRequestTimeout, time.Until(deadline)))
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, u, nil)
		if err != nil {
			return permanent{err}
		}
		resp, err := client.Do(req)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &attemptError{msg: "no response within " + fmtDuration(d)}
			}
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // without the URL, which the error shows already
			}
			return &attemptError{msg: "no response", err: err}
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		shown := clip(strings.TrimSpace(redact.Replace(string(body))), maxOutput)
		if err != nil {
			return &attemptError{msg: fmt.Sprintf("got status %d, then failed reading the body", resp.StatusCode), err: err}
		}
		if re != nil {
			if re.Match(body) {
				return nil
			}
			return &attemptError{msg: fmt.Sprintf("got status %d, body not matching %q", resp.StatusCode, c.MatchRegex), label: "body", out: shown}
		}
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		return &attemptError{msg: fmt.Sprintf("got status %d", resp.StatusCode), label: "body", out: shown}
	})
}

// requestTimeout reads requests_options timeout (seconds); 0 if not set.
func requestTimeout(opts map[string]string) (time.Duration, error) {
	s, ok := opts["timeout"]
	if !ok || s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f <= 0 || f > 1e6 {
		return 0, fmt.Errorf("requests_options timeout %q: want a positive number of seconds", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// tlsConfig reads requests_options verify: false turns off certificate
// verification, true (the default) keeps it, anything else is the path
// of a CA bundle (PEM) to verify with, as in Python requests.
func tlsConfig(opts map[string]string) (*tls.Config, error) {
	v, ok := opts["verify"]
	if !ok || v == "" {
		return nil, nil
	}
	switch strings.ToLower(v) {
	case "false", "no", "off", "0", "f", "n":
		return &tls.Config{InsecureSkipVerify: true}, nil
	case "true", "yes", "on", "1", "t", "y":
		return nil, nil
	}
	pem, err := os.ReadFile(v)
	if err != nil {
		return nil, fmt.Errorf("requests_options verify: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("requests_options verify: no PEM certificates in %s", v)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// execWaitDelay is how long a finished or killed command's leftover
// children may keep its output open.
const execWaitDelay = 500 * time.Millisecond

// maxCapture is how much of a command's output is kept (its end).
const maxCapture = 4096

// runExec runs the command where maestro-sync runs, up to Attempts times,
// until it exits with 0.
func runExec(ctx context.Context, c manifest.Check, t Target, opt Options) error {
	if len(c.Command) == 0 {
		return errors.New("no command")
	}
	var env []string // the container's, without unset variables
	for _, kv := range t.Env {
		if strings.Contains(kv, "=") {
			env = append(env, kv)
		}
	}
	var stdin []byte
	switch c.EnvFrom {
	case "", "env":
	case "stdin":
		m := make(map[string]string, len(env))
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		var err error
		if stdin, err = json.Marshal(m); err != nil {
			return fmt.Errorf("encoding the environment: %w", err)
		}
	default:
		return fmt.Errorf("envfrom must be env or stdin, got %q", c.EnvFrom)
	}
	redact := redactor(env)
	return retry(ctx, attempts(c.Attempts, opt.Interval), func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		} else {
			// The process env overlaid with the container's: for
			// duplicate keys, exec uses the last value.
			cmd.Env = append(os.Environ(), env...)
		}
		out := &tail{max: maxCapture}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.WaitDelay = execWaitDelay
		ownProcessGroup(cmd)
		err := cmd.Run()
		if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
			err = nil // exited 0; a child it left behind kept the output open
		}
		if err == nil {
			return nil
		}
		shown := clipStart(strings.TrimSpace(redact.Replace(string(out.b))), maxOutput)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &attemptError{msg: ee.String(), label: "output", out: shown}
		}
		if errors.Is(err, exec.ErrNotFound) {
			return permanent{err}
		}
		return &attemptError{msg: "could not run", err: err}
	})
}

// tail is an io.Writer that keeps the last max bytes written.
type tail struct {
	b   []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	if drop := len(t.b) + len(p) - t.max; drop > 0 {
		t.b = append(t.b[:0], t.b[drop:]...)
	}
	t.b = append(t.b, p...)
	return n, nil
}

// runRexec runs the command inside the container, up to Attempts times,
// until it exits with 0.
func runRexec(ctx context.Context, c manifest.Check, t Target, opt Options) error {
	if len(c.Command) == 0 {
		return errors.New("no command")
	}
	if t.Exec == nil {
		return errors.New("cannot run commands in the container")
	}
	redact := redactor(t.Env)
	return retry(ctx, attempts(c.Attempts, opt.Interval), func(ctx context.Context) error {
		code, out, err := t.Exec.Exec(ctx, c.Command)
		if err != nil {
			return &attemptError{msg: "could not run", err: err}
		}
		if code == 0 {
			return nil
		}
		shown := clipStart(strings.TrimSpace(redact.Replace(out)), maxOutput)
		return &attemptError{msg: "exit status " + strconv.Itoa(code), label: "output", out: shown}
	})
}
