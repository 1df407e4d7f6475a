// Package web serves the daemon's dashboard: server-rendered pages of the
// environments (state, revisions and commits, instances, rollouts, holds,
// errors), the run history and its runs, with "sync now", pause and resume
// for an operator. It has no logic of its own: it reads the daemon's status
// and history and calls the daemon's operations.
//
// The pages are html/template with embedded assets and work without
// JavaScript; they refresh themselves every few seconds. Reading needs the
// read token when the daemon has one; acting needs the API token. A
// browser gives a token once on /login, kept in an HttpOnly, SameSite=Strict
// cookie; actions also require a same-origin request.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/maestro-sync/maestro-sync/internal/daemon"
	"github.com/maestro-sync/maestro-sync/internal/history"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Daemon is what the dashboard reads and asks of the daemon.
type Daemon interface {
	Status() daemon.Status
	Trigger(reason string, at time.Time)
	Pause(env, reason string) (history.Hold, error)
	Resume(env string) error
	Rollback(ctx context.Context, env, rev, reason string) (history.Hold, error)
	Known(env string) bool
}

// Options configure the dashboard.
type Options struct {
	// History is the run history (nil: the daemon keeps none).
	History *history.Store
	// APIToken allows the actions; ReadToken, when set, is needed to read
	// (the API token reads too).
	APIToken, ReadToken []byte
	// Refresh is how often pages reload themselves (default 5s).
	Refresh time.Duration
	// SecureCookie marks the login cookie Secure even on plain HTTP (the
	// daemon behind a proxy that ends TLS).
	SecureCookie bool
	Logger       *slog.Logger
}

type server struct {
	d    Daemon
	opts Options
	tmpl map[string]*template.Template
	// logins bounds the failed logins (per second, with a burst).
	logins *rate.Limiter
}

// cookieName holds the token a browser gave on /login.
const cookieName = "maestro_sync_token"

// New returns the dashboard's handler.
func New(d Daemon, opts Options) (http.Handler, error) {
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{d: d, opts: opts, tmpl: map[string]*template.Template{}, logins: rate.NewLimiter(1, 5)}
	for _, page := range []string{"index", "env", "run", "login"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/runs.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("web: %s: %w", page, err)
		}
		s.tmpl[page] = t
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET /{$}", s.readable(s.index))
	mux.HandleFunc("GET /environments/{env}", s.readable(s.env))
	mux.HandleFunc("GET /runs/{id}", s.readable(s.run))
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("POST /ui/sync", s.operator(func(w http.ResponseWriter, r *http.Request) {
		s.d.Trigger("api", time.Now())
		s.back(w, r, "/", "sync")
	}))
	mux.HandleFunc("POST /ui/environments/{env}/pause", s.operator(func(w http.ResponseWriter, r *http.Request) {
		env := r.PathValue("env")
		if !s.d.Known(env) {
			http.NotFound(w, r)
			return
		}
		if _, err := s.d.Pause(env, source.Printable(r.FormValue("reason"), 200)); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		s.back(w, r, "/environments/"+url.PathEscape(env), "pause")
	}))
	mux.HandleFunc("POST /ui/environments/{env}/rollback", s.operator(func(w http.ResponseWriter, r *http.Request) {
		env := r.PathValue("env")
		if !s.d.Known(env) {
			http.NotFound(w, r)
			return
		}
		to := strings.TrimSpace(r.FormValue("to"))
		if _, err := s.d.Rollback(r.Context(), env, to, source.Printable(r.FormValue("reason"), 200)); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		s.back(w, r, "/environments/"+url.PathEscape(env), "rollback")
	}))
	mux.HandleFunc("POST /ui/environments/{env}/resume", s.operator(func(w http.ResponseWriter, r *http.Request) {
		env := r.PathValue("env")
		if err := s.d.Resume(env); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		s.back(w, r, "/environments/"+url.PathEscape(env), "resume")
	}))
	return securityHeaders(mux), nil
}

func cacheFor(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(d.Seconds())))
		h.ServeHTTP(w, r)
	})
}

// securityHeaders keeps the pages from being framed, sniffed or made to
// run scripts from elsewhere.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

// token returns what the request authenticates with: a bearer token or
// the login cookie.
func token(r *http.Request) []byte {
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return []byte(got)
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return []byte(c.Value)
	}
	return nil
}

func equal(a, b []byte) bool { return len(b) > 0 && subtle.ConstantTimeCompare(a, b) == 1 }

func (s *server) canRead(r *http.Request) bool {
	t := token(r)
	return len(s.opts.ReadToken) == 0 || equal(t, s.opts.ReadToken) || equal(t, s.opts.APIToken)
}

func (s *server) canOperate(r *http.Request) bool { return equal(token(r), s.opts.APIToken) }

// readable sends a reader without the read token to /login.
func (s *server) readable(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.canRead(r) {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
			return
		}
		next(w, r)
	}
}

// sameOrigin reports whether a state-changing request comes from the
// dashboard's own pages.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// operator guards the actions: the API token, from the same origin.
func (s *server) operator(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case len(s.opts.APIToken) == 0:
			http.Error(w, "actions are disabled: the daemon has no API token", http.StatusForbidden)
		case !s.canOperate(r):
			http.Error(w, "log in with the API token to act", http.StatusUnauthorized)
		case !sameOrigin(r):
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
		default:
			r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
			next(w, r)
		}
	}
}

// flashes are the messages an action's redirect may show (?done=KEY):
// a link cannot make the page say anything else.
var flashes = map[string]string{"sync": "Sync triggered.", "pause": "Paused.", "resume": "Resumed.", "rollback": "Rolling back."}

// back answers an action with a redirect to the page it came from.
func (s *server) back(w http.ResponseWriter, r *http.Request, to, done string) {
	s.opts.Logger.Info("dashboard", "action", done, "path", r.URL.Path)
	http.Redirect(w, r, to+"?done="+done, http.StatusSeeOther)
}

// page is what every page's template gets.
type page struct {
	Title    string
	Status   daemon.Status
	Operator bool
	LoggedIn bool
	Refresh  int
	Done     string
	Now      time.Time
	Data     any
}

func (s *server) render(w http.ResponseWriter, r *http.Request, name, title string, data any) {
	p := page{Title: title, Status: s.d.Status(), Operator: s.canOperate(r), Refresh: int(s.opts.Refresh.Seconds()),
		Done: flashes[r.URL.Query().Get("done")], Now: time.Now(), Data: data}
	_, err := r.Cookie(cookieName)
	p.LoggedIn = err == nil
	if name == "login" {
		p.Refresh = 0
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.tmpl[name].Execute(w, p); err != nil {
		s.opts.Logger.Error("dashboard", "page", name, "err", err.Error())
	}
}

// runList is what the runs template shows.
type runList struct {
	Runs []history.Run
	// History tells whether the daemon keeps one; ShowEnv names each
	// run's environment (all of them are listed); Operator offers
	// rollbacks (on an environment's page).
	History, ShowEnv, Operator bool
}

// runList returns the newest runs, of one environment or (env "") all.
func (s *server) runList(r *http.Request, env string, limit int) runList {
	l := runList{History: s.opts.History != nil, ShowEnv: env == "", Operator: env != "" && s.canOperate(r)}
	if !l.History {
		return l
	}
	runs, err := s.opts.History.List(history.Query{Env: env, Limit: limit})
	if err != nil {
		s.opts.Logger.Error("dashboard", "err", err.Error())
	}
	l.Runs = runs
	return l
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "index", "maestro-sync", s.runList(r, "", 15))
}

func (s *server) env(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("env")
	for _, es := range s.d.Status().Environments {
		if es.Name == name {
			s.render(w, r, "env", name+" · maestro-sync", struct {
				Env daemon.EnvStatus
				runList
			}{es, s.runList(r, name, 30)})
			return
		}
	}
	http.NotFound(w, r)
}

func (s *server) run(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || s.opts.History == nil {
		http.NotFound(w, r)
		return
	}
	run, ok, err := s.opts.History.Get(id)
	if err != nil || !ok {
		http.NotFound(w, r)
		return
	}
	s.render(w, r, "run", fmt.Sprintf("run %d · %s · maestro-sync", run.ID, run.Env), run)
}

func (s *server) loginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login", "log in · maestro-sync", struct{ Next, Error string }{safeNext(r.URL.Query().Get("next")), ""})
}

// safeNext keeps a redirect after login on this site: a path of it,
// with no scheme, host, backslash or control character (browsers drop a
// tab, so "/\t/evil.example" would be "//evil.example").
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(next, "/") ||
		strings.HasPrefix(next, "//") || strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return "/"
	}
	return next
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	t := []byte(strings.TrimSpace(r.FormValue("token")))
	next := safeNext(r.FormValue("next"))
	if !sameOrigin(r) || !(equal(t, s.opts.APIToken) || equal(t, s.opts.ReadToken)) {
		if !s.logins.Allow() {
			http.Error(w, "too many failed logins: wait a moment", http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, r, "login", "log in · maestro-sync", struct{ Next, Error string }{next, "That is not the daemon's read or API token."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: string(t), Path: "/", HttpOnly: true, Secure: r.TLS != nil || s.opts.SecureCookie,
		SameSite: http.SameSiteStrictMode, MaxAge: int((12 * time.Hour).Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, MaxAge: -1, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var funcs = template.FuncMap{
	"short": func(rev string) string { return rev[:min(12, len(rev))] },
	// imageShort shortens a pinned image for a table: its digest to 12
	// hex digits (the whole reference is the title).
	"imageShort": func(ref string) string {
		if name, digest, ok := strings.Cut(ref, "@sha256:"); ok {
			return name + "@" + digest[:min(12, len(digest))]
		}
		if id, ok := strings.CutPrefix(ref, "sha256:"); ok {
			return id[:min(12, len(id))]
		}
		return ref
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := time.Since(t)
		switch {
		case d < time.Minute:
			return fmt.Sprintf("%ds ago", int(d.Seconds()))
		case d < time.Hour:
			return fmt.Sprintf("%dm ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%dh ago", int(d.Hours()))
		}
		return t.UTC().Format("2006-01-02")
	},
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"dur":  func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() },
	"stateClass": func(state string) string {
		switch state {
		case "synced", "success", "running", "resumed", "passed", "healthy":
			return "ok"
		case "progressing", "baking", "paused", "pinned", "rolled back", "starting":
			return "busy"
		case "failed", "stalled", "exited", "missing", "unhealthy", "aborted":
			return "bad"
		}
		return "unknown"
	},
	"path": url.PathEscape,
	"join": strings.Join,
	// commit tells a Git commit from a directory's digest.
	"commit": source.IsCommit,
}
