package sourcetest

import (
	"crypto/subtle"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// HTTPServer serves a Repo with `git http-backend` (smart HTTP protocol,
// read-only) on a loopback port (or another address, NewHTTPServerOn), optionally behind basic auth. It can be
// stopped and started again on the same address, to test an unreachable
// server.
type HTTPServer struct {
	// URL is the repository's URL (without credentials).
	URL string

	addr    string
	handler http.Handler
	checks  atomic.Int64
	fetches atomic.Int64

	mu      sync.Mutex // serializes Start and Stop
	srv     *http.Server
	serving chan struct{} // closed when the Serve goroutine returns

	gate     sync.Mutex
	stopping bool           // guarded by gate: refuse new requests
	requests sync.WaitGroup // handlers in flight; Add under gate
}

// ServeHTTP serves repo over HTTP, requiring basic auth when user is not
// empty. It returns the repository's URL and a function that stops the
// server (the test's cleanup stops it too).
func ServeHTTP(t testing.TB, repo *Repo, user, pass string) (url string, stop func()) {
	t.Helper()
	s := NewHTTPServer(t, repo, user, pass)
	return s.URL, s.Stop
}

// NewHTTPServer starts serving repo over HTTP, requiring basic auth when
// user is not empty. The test's cleanup stops it.
func NewHTTPServer(t testing.TB, repo *Repo, user, pass string) *HTTPServer {
	t.Helper()
	return NewHTTPServerOn(t, "127.0.0.1", repo, user, pass)
}

// NewHTTPServerOn is NewHTTPServer listening on another address of this
// host than loopback, such as a bridge that pods or containers reach it by.
func NewHTTPServerOn(t testing.TB, host string, repo *Repo, user, pass string) *HTTPServer {
	t.Helper()
	gitPath := need(t, "git", "git")
	root := filepath.Dir(repo.Bare)
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Dir:  root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"HOME=" + root,
		},
		InheritEnv: []string{"PATH"},
		Stderr:     io.Discard,
	}
	s := &HTTPServer{}
	s.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.gate.Lock()
		if s.stopping {
			s.gate.Unlock()
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		s.requests.Add(1)
		s.gate.Unlock()
		defer s.requests.Done()
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs"):
			s.checks.Add(1)
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.fetches.Add(1)
		}
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 ||
				subtle.ConstantTimeCompare([]byte(p), []byte(pass)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("sourcetest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.URL = "http://" + s.addr + "/" + filepath.Base(repo.Bare)
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

func (s *HTTPServer) serve(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate.Lock()
	s.stopping = false
	s.gate.Unlock()
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln) // returns when Stop closes the server
	}()
	s.srv, s.serving = srv, done
}

// Stop closes the listener and the connections, and waits for the requests
// in flight. Connections are refused until Start. Stopping a stopped server
// does nothing.
func (s *HTTPServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	s.gate.Lock()
	s.stopping = true
	s.gate.Unlock()
	_ = s.srv.Close()
	<-s.serving
	s.requests.Wait()
	s.srv, s.serving = nil, nil
}

// Start serves again, on the same address, after Stop.
func (s *HTTPServer) Start(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	// The port may linger for a moment after Stop.
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("sourcetest: listen again on %s: %v", s.addr, err)
	}
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		ln.Close()
		t.Fatal("sourcetest: Start: the server is running")
	}
	s.serve(ln)
}

// Checks counts the ref advertisements requested (GET .../info/refs): one
// per ls-remote, and one before each fetch.
func (s *HTTPServer) Checks() int { return int(s.checks.Load()) }

// Fetches counts the pack requests (POST .../git-upload-pack): a client
// that only lists refs makes none.
func (s *HTTPServer) Fetches() int { return int(s.fetches.Load()) }
