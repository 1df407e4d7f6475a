package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// fast is the interval the tests use between attempts.
var fast = Options{Interval: 10 * time.Millisecond}

// server starts an HTTP server and returns it with a Target whose port
// "web" is the server's port.
func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, Target) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, targetFor(t, srv.URL)
}

func targetFor(t *testing.T, rawURL string) Target {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return Target{Name: "web-1", Host: u.Hostname(), Ports: map[string]string{"web": u.Port()}}
}

func httpCheck(path string) manifest.Check {
	return manifest.Check{Type: "http", Port: "web", Path: path, Scheme: "http", Method: "GET", MaxWait: 1}
}

// runTimed runs the checks and fails the test if that takes longer than limit.
func runTimed(t *testing.T, limit time.Duration, checks []manifest.Check, tg Target, opt Options) error {
	t.Helper()
	start := time.Now()
	err := Run(t.Context(), checks, tg, opt)
	if d := time.Since(start); d > limit {
		t.Errorf("Run took %s, want at most %s", d, limit)
	}
	return err
}

// wantErr checks that err is not nil and mentions each of the parts.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Run() = nil, want an error mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

func TestHTTP(t *testing.T) {
	t.Parallel()
	body := func(status int, text string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			io.WriteString(w, text)
		}
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(manifest.Check) manifest.Check
		wantErr []string // nil: passes
	}{
		{name: "200", handler: body(200, "ok")},
		{name: "500", handler: body(500, "broken\n"),
			wantErr: []string{"http check http://127.0.0.1:", "/healthz: got status 500 after ", `body: "broken"`}},
		{name: "201 is not 200", handler: body(201, "created"), wantErr: []string{"got status 201"}},
		{name: "regex match", handler: body(200, "blah abce blah"),
			check: func(c manifest.Check) manifest.Check { c.MatchRegex = "abc[^d]"; return c }},
		{name: "regex match ignores status", handler: body(503, "status: abce"),
			check: func(c manifest.Check) manifest.Check { c.MatchRegex = "abc[^d]"; return c }},
		{name: "regex dot matches newline", handler: body(200, "ready\nto serve"),
			check: func(c manifest.Check) manifest.Check { c.MatchRegex = "ready.to"; return c }},
		{name: "regex fail", handler: body(200, "blah abcd blah"),
			check:   func(c manifest.Check) manifest.Check { c.MatchRegex = "abc[^d]"; return c },
			wantErr: []string{`got status 200, body not matching "abc[^d]"`, `body: "blah abcd blah"`}},
		{name: "bad regex fails at once", handler: body(200, "x"),
			check:   func(c manifest.Check) manifest.Check { c.MatchRegex = "(?<=a)b"; c.MaxWait = 300; return c },
			wantErr: []string{"bad match_regex"}},
		{name: "path", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" || r.URL.RawQuery != "deep=1" {
				w.WriteHeader(404)
			}
		}, check: func(c manifest.Check) manifest.Check { c.Path = "healthz?deep=1"; return c }},
		{name: "method", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.Method != "PUT" {
				w.WriteHeader(405)
			}
		}, check: func(c manifest.Check) manifest.Check { c.Method = "PUT"; return c }},
		{name: "unknown port", handler: body(200, "ok"),
			check:   func(c manifest.Check) manifest.Check { c.Port = "admin"; return c },
			wantErr: []string{"port admin is not published by web-1"}},
		{name: "bad timeout option", handler: body(200, "ok"),
			check:   func(c manifest.Check) manifest.Check { c.Options = map[string]string{"timeout": "soon"}; return c },
			wantErr: []string{`requests_options timeout "soon"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, tg := server(t, tt.handler)
			c := httpCheck("/healthz")
			if tt.check != nil {
				c = tt.check(c)
			}
			err := runTimed(t, 3*time.Second, []manifest.Check{c}, tg, fast)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				return
			}
			wantErr(t, err, tt.wantErr...)
			var he *Error
			if !errors.As(err, &he) || he.Check.Type != "http" {
				t.Errorf("error %v is not a *health.Error of the http check", err)
			}
		})
	}
}

func TestHTTPBecomesHealthy(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 5 {
			w.WriteHeader(503)
		}
	})
	c := httpCheck("/")
	c.MaxWait = 10
	if err := runTimed(t, 2*time.Second, []manifest.Check{c}, tg, fast); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if got := n.Load(); got != 5 {
		t.Errorf("server got %d requests, want 5", got)
	}
}

func TestHTTPLiteralPortAndHost(t *testing.T) {
	t.Parallel()
	_, tg := server(t, func(http.ResponseWriter, *http.Request) {})
	c := httpCheck("/")
	c.Port = tg.Ports["web"] // a number, not a port name
	c.Host = tg.Host
	tg.Host = "192.0.2.1" // TEST-NET: unreachable; the check's host wins
	tg.Ports = nil
	if err := runTimed(t, time.Second, []manifest.Check{c}, tg, fast); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
}

func TestHTTPTimeouts(t *testing.T) {
	t.Parallel()
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	})

	t.Run("requests_options timeout", func(t *testing.T) {
		t.Parallel()
		c := httpCheck("/")
		c.Options = map[string]string{"timeout": "0.05"}
		var err error
		start := time.Now()
		err = runTimed(t, 2*time.Second, []manifest.Check{c}, tg, fast)
		wantErr(t, err, "no response within 50ms after ")
		if d := time.Since(start); d < time.Second {
			t.Errorf("Run took %s, want about MaxWait (1s)", d)
		}
	})
	t.Run("default bounded by max_wait", func(t *testing.T) {
		t.Parallel()
		err := runTimed(t, 2500*time.Millisecond, []manifest.Check{httpCheck("/")}, tg, fast)
		wantErr(t, err, "no response within 1s after ")
	})
}

func TestHTTPUnreachable(t *testing.T) {
	t.Parallel()
	tg := Target{Name: "web-1", Host: "127.0.0.1", Ports: map[string]string{"web": closedPort(t)}}
	c := httpCheck("/")
	c.MaxWait = 0 // one attempt
	err := runTimed(t, time.Second, []manifest.Check{c}, tg, fast)
	wantErr(t, err, "no response after ", "(1 attempt): ", "refused")
	if strings.Count(err.Error(), "http://") != 1 {
		t.Errorf("error %q repeats the URL", err)
	}
}

func TestHTTPS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rejected handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tg := targetFor(t, srv.URL)
	c := httpCheck("/")
	c.Scheme = "https"
	c.MaxWait = 0

	err := runTimed(t, time.Second, []manifest.Check{c}, tg, fast)
	wantErr(t, err, "https://", "certificate")

	c.Options = map[string]string{"verify": "false"}
	if err := runTimed(t, time.Second, []manifest.Check{c}, tg, fast); err != nil {
		t.Errorf("with verify false: Run() = %v, want nil", err)
	}
}

func TestHTTPErrorOutput(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-token-value"
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		fmt.Fprintf(w, "token=%s\n%s", secret, strings.Repeat("x", 10000))
	})
	tg.Env = []string{"TOKEN=" + secret}
	c := httpCheck("/")
	c.MaxWait = 0
	err := runTimed(t, time.Second, []manifest.Check{c}, tg, fast)
	wantErr(t, err, `body: "token=***\n`, `x…"`)
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q shows an env value", err)
	}
	if len(err.Error()) > 400 {
		t.Errorf("error is %d bytes long, want the body clipped: %q", len(err.Error()), err)
	}
}

// closedPort returns a local port number nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return p
}

func TestTCP(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	_, open, _ := net.SplitHostPort(l.Addr().String())
	tg := Target{Name: "db-1", Host: "127.0.0.1", Ports: map[string]string{"open": open, "closed": closedPort(t)}}

	if err := runTimed(t, time.Second, []manifest.Check{{Type: "tcp", Port: "open", MaxWait: 3}}, tg, fast); err != nil {
		t.Errorf("listening port: Run() = %v, want nil", err)
	}
	err = runTimed(t, time.Second, []manifest.Check{{Type: "tcp", Port: "closed", MaxWait: 3}}, tg, fast)
	wantErr(t, err, "tcp check 127.0.0.1:"+tg.Ports["closed"]+": not reachable after ", "(3 attempts): dial tcp", "refused")
}

func TestExec(t *testing.T) {
	t.Setenv("HEALTH_TEST_PROCESS", "process")
	t.Setenv("HEALTH_TEST_BOTH", "process")
	env := []string{"FOO=bar baz", "HEALTH_TEST_BOTH=container", "UNSET"}
	sh := func(script string, args ...string) []string {
		return append([]string{"sh", "-c", script, "sh"}, args...)
	}
	tests := []struct {
		name    string
		check   manifest.Check
		wantErr []string
	}{
		{name: "exit 0", check: manifest.Check{Command: sh("exit 0")}},
		{name: "exit 3", check: manifest.Check{Command: sh("echo starting; echo not ready >&2; exit 3"), Attempts: 2},
			wantErr: []string{"exec check sh -c 'echo starting; echo not ready >&2; exit 3' sh: exit status 3 after ", "(2 attempts; output: \"starting\\nnot ready\")"}},
		{name: "env overlays the process env",
			check: manifest.Check{Command: sh(`test "$FOO" = "bar baz" && test "$HEALTH_TEST_PROCESS" = process && test "$HEALTH_TEST_BOTH" = container && test -z "${UNSET+x}"`), Attempts: 1}},
		{name: "envfrom stdin",
			check: manifest.Check{EnvFrom: "stdin", Command: sh(`test "$(cat)" = "$1" && test -z "${FOO+x}" && test "$HEALTH_TEST_BOTH" = process`,
				`{"FOO":"bar baz","HEALTH_TEST_BOTH":"container"}`), Attempts: 1}},
		{name: "not found fails at once", check: manifest.Check{Command: []string{"no-such-command-health-test"}, Attempts: 1000},
			wantErr: []string{`exec check no-such-command-health-test: exec: "no-such-command-health-test": executable file not found`}},
		{name: "bad envfrom", check: manifest.Check{Command: sh("exit 0"), EnvFrom: "file"},
			wantErr: []string{`envfrom must be env or stdin, got "file"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check.Type = "exec"
			err := runTimed(t, 2*time.Second, []manifest.Check{tt.check}, Target{Name: "app-1", Env: env}, fast)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Run() = %v, want nil", err)
				}
				return
			}
			wantErr(t, err, tt.wantErr...)
		})
	}
}

func TestExecRetries(t *testing.T) {
	t.Parallel()
	count := filepath.Join(t.TempDir(), "count")
	c := manifest.Check{Type: "exec", Attempts: 10, Command: []string{"sh", "-c",
		`n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; test $n -ge 3`, "sh", count}}
	if err := runTimed(t, 2*time.Second, []manifest.Check{c}, Target{}, fast); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
}

func TestExecHidesEnvValues(t *testing.T) {
	t.Parallel()
	const secret = "hunter2hunter2"
	c := manifest.Check{Type: "exec", Attempts: 1, Command: []string{"sh", "-c", `echo "password is $PASSWORD"; exit 1`}}
	err := runTimed(t, time.Second, []manifest.Check{c}, Target{Env: []string{"PASSWORD=" + secret, "SHORT=1"}}, fast)
	wantErr(t, err, `output: "password is ***"`)
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error %q shows an env value", err)
	}
}

// fakeExecer answers rexec calls from a list of results, repeating the last.
type fakeExecer struct {
	mu      sync.Mutex
	results []execResult
	calls   [][]string
}

type execResult struct {
	code int
	out  string
	err  error
}

func (f *fakeExecer) Exec(ctx context.Context, cmd []string) (int, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, cmd)
	r := f.results[0]
	if len(f.results) > 1 {
		f.results = f.results[1:]
	}
	return r.code, r.out, r.err
}

func TestRexec(t *testing.T) {
	t.Parallel()
	cmd := []string{"pg_isready", "-h", "localhost"}
	tests := []struct {
		name      string
		results   []execResult
		wantErr   []string
		wantCalls int
	}{
		{name: "exit 0", results: []execResult{{code: 0}}, wantCalls: 1},
		{name: "retried until 0",
			results:   []execResult{{err: errors.New("container is restarting")}, {code: 1, out: "no"}, {code: 0}},
			wantCalls: 3},
		{name: "exit 2",
			results:   []execResult{{code: 2, out: "no response\n"}},
			wantErr:   []string{"rexec check pg_isready -h localhost in db-1: exit status 2 after ", `(3 attempts; output: "no response")`},
			wantCalls: 3},
		{name: "cannot exec",
			results:   []execResult{{err: errors.New("container is not running")}},
			wantErr:   []string{"could not run after ", "(3 attempts): container is not running"},
			wantCalls: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ex := &fakeExecer{results: tt.results}
			c := manifest.Check{Type: "rexec", Command: cmd, Attempts: 3}
			err := runTimed(t, time.Second, []manifest.Check{c}, Target{Name: "db-1", Exec: ex}, fast)
			if tt.wantErr == nil && err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
			if tt.wantErr != nil {
				wantErr(t, err, tt.wantErr...)
			}
			if len(ex.calls) != tt.wantCalls {
				t.Errorf("Exec called %d times, want %d", len(ex.calls), tt.wantCalls)
			}
			for _, got := range ex.calls {
				if diff := cmp.Diff(cmd, got); diff != "" {
					t.Errorf("Exec command (-want +got):\n%s", diff)
				}
			}
		})
	}

	t.Run("no execer", func(t *testing.T) {
		err := Run(t.Context(), []manifest.Check{{Type: "rexec", Command: cmd, Attempts: 3}}, Target{Name: "db-1"}, fast)
		wantErr(t, err, "cannot run commands in the container")
	})
}

func TestSleep(t *testing.T) {
	t.Parallel()
	if err := runTimed(t, 100*time.Millisecond, []manifest.Check{{Type: "sleep", Wait: 0}}, Target{}, fast); err != nil {
		t.Errorf("sleep 0: Run() = %v, want nil", err)
	}
	start := time.Now()
	if err := Run(t.Context(), []manifest.Check{{Type: "sleep", Wait: 1}}, Target{}, fast); err != nil {
		t.Errorf("sleep 1: Run() = %v, want nil", err)
	}
	if d := time.Since(start); d < time.Second || d > 1500*time.Millisecond {
		t.Errorf("sleep 1 took %s", d)
	}
}

func TestNoChecks(t *testing.T) {
	called := false
	alive := func(context.Context) error { called = true; return errors.New("dead") }
	if err := Run(t.Context(), nil, Target{}, Options{Alive: alive}); err != nil || called {
		t.Errorf("Run(no checks) = %v (Alive called: %v), want nil without calling Alive", err, called)
	}
}

func TestUnknownType(t *testing.T) {
	err := Run(t.Context(), []manifest.Check{{Type: "ping"}}, Target{}, fast)
	wantErr(t, err, `unknown check type "ping"`)
}

// TestCancel checks that every kind of check stops promptly when the
// context is cancelled, and says so.
func TestCancel(t *testing.T) {
	t.Parallel()
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	_, slow := server(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	tg.Ports["closed"] = closedPort(t)
	tg.Ports["slow"] = slow.Ports["web"]
	tg.Exec = &fakeExecer{results: []execResult{{code: 1}}}
	long := httpCheck("/")
	long.MaxWait = 300
	hanging := long
	hanging.Port = "slow"
	checks := map[string]manifest.Check{
		"http":         long,
		"http hanging": hanging,
		"tcp":          {Type: "tcp", Port: "closed", MaxWait: 100000},
		"exec":         {Type: "exec", Command: []string{"sh", "-c", "exit 1"}, Attempts: 100000},
		"exec hanging": {Type: "exec", Command: []string{"sh", "-c", "sleep 60; exit 1"}, Attempts: 1},
		"rexec":        {Type: "rexec", Command: []string{"false"}, Attempts: 100000},
		"sleep":        {Type: "sleep", Wait: 300},
	}
	for name, c := range checks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			var cancelled atomic.Int64
			time.AfterFunc(200*time.Millisecond, func() {
				cancelled.Store(time.Now().UnixNano())
				cancel()
			})
			err := Run(ctx, []manifest.Check{c}, tg, fast)
			if ctx.Err() == nil {
				t.Fatalf("Run() = %v before the context was cancelled", err)
			}
			if d := time.Since(time.Unix(0, cancelled.Load())); d > 100*time.Millisecond {
				t.Errorf("Run returned %s after cancel, want at most 100ms", d)
			}
			wantErr(t, err, c.Type+" check ", "context canceled after ")
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v is not context.Canceled", err)
			}
		})
	}
}

// TestCancelPromptly measures how long Run takes to return after cancel.
func TestCancelPromptly(t *testing.T) {
	t.Parallel()
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	c := httpCheck("/")
	c.MaxWait = 300
	ctx, cancel := context.WithCancel(t.Context())
	var cancelled atomic.Int64
	time.AfterFunc(100*time.Millisecond, func() {
		cancelled.Store(time.Now().UnixNano())
		cancel()
	})
	opt := Options{Interval: time.Second} // cancelled while waiting between attempts
	err := Run(ctx, []manifest.Check{c, {Type: "exec", Command: []string{"sleep", "60"}, Attempts: 1}}, tg, opt)
	if d := time.Since(time.Unix(0, cancelled.Load())); d > 100*time.Millisecond {
		t.Errorf("Run returned %s after cancel, want at most 100ms", d)
	}
	wantErr(t, err, "context canceled after ", "last: got status 500", "exec check sleep 60: context canceled")
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(400 * time.Millisecond) })
	checks := []manifest.Check{
		httpCheck("/"),
		{Type: "exec", Command: []string{"sleep", "0.4"}, Attempts: 1},
		httpCheck("/other"),
	}
	start := time.Now()
	if err := Run(t.Context(), checks, tg, fast); err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	if d := time.Since(start); d > 800*time.Millisecond {
		t.Errorf("three 400ms checks took %s: not run concurrently", d)
	}
}

func TestFirstFailureStopsTheOthers(t *testing.T) {
	t.Parallel()
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	long := httpCheck("/")
	long.MaxWait = 300
	checks := []manifest.Check{
		long,
		{Type: "exec", Command: []string{"sh", "-c", "exit 4"}, Attempts: 2},
		{Type: "sleep", Wait: 300},
	}
	err := runTimed(t, time.Second, checks, tg, fast)
	wantErr(t, err, "exec check sh -c 'exit 4': exit status 4 after ")
	if strings.Contains(err.Error(), "http") || strings.Contains(err.Error(), "sleep") {
		t.Errorf("error %q names checks that were only stopped", err)
	}
}

func TestEachFailureReported(t *testing.T) {
	t.Parallel()
	checks := []manifest.Check{
		{Type: "sleep", Wait: 0},
		{Type: "tcp", Port: "web", MaxWait: 3},
		{Type: "http", Port: "admin", MaxWait: 3},
	}
	err := runTimed(t, time.Second, checks, Target{Name: "web-1", Host: "127.0.0.1"}, fast)
	wantErr(t, err, "tcp check 127.0.0.1:web: port web is not published by web-1\n",
		"http check http://127.0.0.1:admin/: port admin is not published by web-1")
	var got []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var he *Error
		if !errors.As(e, &he) {
			t.Fatalf("%v is not a *health.Error", e)
		}
		got = append(got, he.Check.Type+" "+he.Target)
	}
	want := []string{"tcp 127.0.0.1:web", "http http://127.0.0.1:admin/"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failed checks (-want +got):\n%s", diff)
	}
}

func TestAlive(t *testing.T) {
	t.Parallel()
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	long := httpCheck("/")
	long.MaxWait = 300
	exited := errors.New("container web-1 exited with code 137")

	t.Run("failing aborts", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		opt := fast
		opt.Alive = func(ctx context.Context) error {
			if calls.Add(1) >= 3 {
				return exited
			}
			return nil
		}
		err := runTimed(t, 500*time.Millisecond, []manifest.Check{long}, tg, opt)
		if !errors.Is(err, exited) {
			t.Fatalf("Run() = %v, want %v", err, exited)
		}
		wantErr(t, err, "exited with code 137 (checks stopped: http GET http://")
	})
	t.Run("dead from the start", func(t *testing.T) {
		t.Parallel()
		opt := Options{Interval: time.Second, Alive: func(context.Context) error { return exited }}
		err := runTimed(t, 100*time.Millisecond, []manifest.Check{long, {Type: "sleep", Wait: 10}}, tg, opt)
		if !errors.Is(err, exited) {
			t.Fatalf("Run() = %v, want %v", err, exited)
		}
	})
	t.Run("alive", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		opt := fast
		opt.Alive = func(ctx context.Context) error { calls.Add(1); return nil }
		if err := Run(t.Context(), []manifest.Check{{Type: "exec", Command: []string{"sleep", "0.2"}}}, Target{}, opt); err != nil {
			t.Fatalf("Run() = %v, want nil", err)
		}
		if calls.Load() < 5 {
			t.Errorf("Alive called %d times in 200ms at a 10ms interval", calls.Load())
		}
	})
}

func TestNoGoroutineLeak(t *testing.T) {
	// Not parallel: it counts goroutines.
	_, tg := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	tg.Ports["closed"] = closedPort(t)
	long := httpCheck("/")
	long.MaxWait = 300
	checks := []manifest.Check{
		long,
		{Type: "tcp", Port: "closed", MaxWait: 1000},
		{Type: "exec", Command: []string{"sh", "-c", "echo x; sleep 60"}, Attempts: 1},
		{Type: "sleep", Wait: 300},
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	opt := fast
	opt.Alive = func(context.Context) error { return nil }
	if err := Run(ctx, checks, tg, opt); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run() = %v, want a deadline error", err)
	}
	// The test server's connection goroutines may take a moment to end.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Run, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestDescribe(t *testing.T) {
	tg := Target{Name: "web-1", Host: "10.0.0.1", Ports: map[string]string{"http": "18080", "admin": "19090"}}
	tests := []struct {
		check manifest.Check
		want  string
	}{
		{manifest.Check{Type: "http", Port: "http", Path: "/healthz", Scheme: "http", Method: "GET"}, "http GET http://10.0.0.1:18080/healthz"},
		{manifest.Check{Type: "http", Port: "8443", Host: "example.com", Scheme: "https", Method: "PUT"}, "http PUT https://example.com:8443/"},
		{manifest.Check{Type: "http", Port: "nope"}, "http GET http://10.0.0.1:nope/"},
		{manifest.Check{Type: "tcp", Port: "admin"}, "tcp 10.0.0.1:19090"},
		{manifest.Check{Type: "exec", Command: []string{"sh", "-c", "curl -f it's"}}, `exec sh -c 'curl -f it'\''s'`},
		{manifest.Check{Type: "rexec", Command: []string{"pg_isready", ""}}, "rexec in web-1: pg_isready ''"},
		{manifest.Check{Type: "sleep", Wait: 90}, "sleep 1m30s"},
	}
	var got, want []string
	for _, tt := range tests {
		got = append(got, Describe(tt.check, tg))
		want = append(want, tt.want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
	ipv6 := Describe(manifest.Check{Type: "tcp", Port: "http"}, Target{Host: "::1", Ports: tg.Ports})
	if ipv6 != "tcp [::1]:18080" {
		t.Errorf("Describe with an IPv6 host = %q", ipv6)
	}
}
