package daemon

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/maestro-sync/maestro-sync/internal/history"
	"github.com/maestro-sync/maestro-sync/internal/source"
)

// maxBody bounds webhook bodies.
const maxBody = 1 << 20

// HTTPConfig holds the secrets of the HTTP API. Empty secrets disable what
// they protect: webhooks without a WebhookSecret and POST /api/v1/sync
// without an APIToken answer 403.
type HTTPConfig struct {
	// WebhookSecret signs GitHub, Gitea and generic webhooks (HMAC
	// SHA-256) and is GitLab's token.
	WebhookSecret []byte
	// APIToken is the bearer token of POST /api/v1/sync.
	APIToken []byte
	// ReadToken, when set, is required (as a bearer token; the APIToken
	// works too) to read /api/v1/status and /metrics.
	ReadToken []byte
	// Dashboard, when set, serves everything the API does not: the web
	// dashboard (internal/web), at /.
	Dashboard http.Handler
	// RateLimit bounds authenticated webhook and sync requests per second
	// (default 5; bursts of twice that, at least 10). Requests that fail
	// authentication have a bucket of their own, so that a flood of them
	// never delays a signed webhook or a valid token.
	RateLimit rate.Limit
}

// Handler serves /healthz, /readyz, /metrics, /api/v1/status,
// /api/v1/history, /api/v1/sync, pause and resume under
// /api/v1/environments/ and the webhooks under /hooks/.
func (d *Daemon) Handler(cfg HTTPConfig) http.Handler {
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 5
	}
	limiter := rate.NewLimiter(cfg.RateLimit, max(10, int(2*cfg.RateLimit)))
	rejected := rate.NewLimiter(cfg.RateLimit, max(10, int(2*cfg.RateLimit)))
	// reject answers a request that failed authentication: status, or
	// 429 once such requests come too fast.
	reject := func(w http.ResponseWriter, status int, msg string) {
		if !rejected.Allow() {
			status, msg = http.StatusTooManyRequests, "too many requests"
		}
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="maestro-sync"`)
		}
		http.Error(w, msg, status)
	}
	// readable guards what only readers may see when a read token is set.
	readable := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(cfg.ReadToken) > 0 && !bearer(r, cfg.ReadToken) && !bearer(r, cfg.APIToken) {
				reject(w, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.Ready() {
			http.Error(w, "not ready: no reconcile has completed yet", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", readable(promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{})))
	mux.Handle("GET /api/v1/status", readable(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, d.Status())
	})))
	mux.Handle("GET /api/v1/history", readable(http.HandlerFunc(d.serveHistory)))
	mux.Handle("GET /api/v1/history/{id}", readable(http.HandlerFunc(d.serveRun)))
	// operator guards what changes deployments: the API token, within the
	// rate limit.
	operator := func(what string, next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if len(cfg.APIToken) == 0 {
				reject(w, http.StatusForbidden, what+" is disabled: no API token is configured")
				return
			}
			if !bearer(r, cfg.APIToken) {
				reject(w, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
			if !limiter.Allow() {
				http.Error(w, "too many requests", http.StatusTooManyRequests)
				return
			}
			if err := d.notLeading(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			next(w, r)
		}
	}
	mux.HandleFunc("POST /api/v1/sync", operator("sync", func(w http.ResponseWriter, r *http.Request) {
		d.Trigger("api", time.Now())
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "sync triggered\n")
	}))
	mux.HandleFunc("POST /api/v1/environments/{env}/pause", operator("pause", func(w http.ResponseWriter, r *http.Request) {
		env := r.PathValue("env")
		if !d.Known(env) {
			http.Error(w, "no environment "+strconv.Quote(env), http.StatusNotFound)
			return
		}
		h, err := d.Pause(env, source.Printable(r.URL.Query().Get("reason"), maxReason))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, h)
	}))
	mux.HandleFunc("POST /api/v1/environments/{env}/rollback", operator("rollback", func(w http.ResponseWriter, r *http.Request) {
		env := r.PathValue("env")
		if !d.Known(env) {
			http.Error(w, "no environment "+strconv.Quote(env), http.StatusNotFound)
			return
		}
		to := r.URL.Query().Get("to")
		if to == "" {
			http.Error(w, "give the revision: ?to=COMMIT", http.StatusBadRequest)
			return
		}
		h, err := d.Rollback(r.Context(), env, to, source.Printable(r.URL.Query().Get("reason"), maxReason))
		switch {
		case errors.Is(err, ErrRollback):
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		case err != nil:
			http.Error(w, err.Error(), http.StatusConflict)
		default:
			writeJSON(w, h)
		}
	}))
	mux.HandleFunc("POST /api/v1/environments/{env}/resume", operator("resume", func(w http.ResponseWriter, r *http.Request) {
		env := r.PathValue("env")
		if _, held := d.hold(env); !held && !d.Known(env) {
			http.Error(w, "no environment "+strconv.Quote(env), http.StatusNotFound)
			return
		}
		if err := d.Resume(env); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, map[string]string{"env": env, "state": "resumed"})
	}))
	if cfg.Dashboard != nil {
		mux.Handle("/", cfg.Dashboard)
	}
	for _, kind := range []string{"github", "gitlab", "gitea", "generic"} {
		mux.HandleFunc("POST /hooks/"+kind, func(w http.ResponseWriter, r *http.Request) {
			arrived := time.Now()
			status, msg, authentic := d.webhook(kind, cfg, w, r)
			if !authentic {
				d.log.Info("webhook", "kind", kind, "status", status, "reason", msg)
				reject(w, status, msg)
				return
			}
			if !limiter.Allow() {
				http.Error(w, "too many requests", http.StatusTooManyRequests)
				return
			}
			if err := d.notLeading(); err != nil && status == http.StatusAccepted {
				// The sender sees the delivery fail and can send it
				// again; the leader polls meanwhile.
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			if status == http.StatusAccepted {
				d.Trigger("webhook", arrived)
			}
			d.log.Info("webhook", "kind", kind, "status", status, "reason", msg)
			w.WriteHeader(status)
			io.WriteString(w, msg+"\n")
		})
	}
	return mux
}

// bearer reports whether the request carries the bearer token.
func bearer(r *http.Request, token []byte) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && len(token) > 0 && subtle.ConstantTimeCompare([]byte(got), token) == 1
}

// webhook checks a webhook request and tells whether it is a push to the
// tracked branch; authentic is false when it failed authentication (or
// could not be authenticated at all).
func (d *Daemon) webhook(kind string, cfg HTTPConfig, w http.ResponseWriter, r *http.Request) (status int, msg string, authentic bool) {
	if len(cfg.WebhookSecret) == 0 {
		return http.StatusForbidden, "webhooks are disabled: no secret is configured", false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBody), false
		}
		return http.StatusBadRequest, "cannot read the body", false
	}
	event := ""
	switch kind {
	case "github":
		if !validHMAC(body, cfg.WebhookSecret, strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")) {
			return http.StatusUnauthorized, "missing or wrong X-Hub-Signature-256", false
		}
		event = r.Header.Get("X-GitHub-Event")
		if event == "ping" {
			return http.StatusOK, "pong", true
		}
	case "gitea":
		sig := r.Header.Get("X-Gitea-Signature")
		if sig == "" {
			sig = strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		}
		if !validHMAC(body, cfg.WebhookSecret, sig) {
			return http.StatusUnauthorized, "missing or wrong X-Gitea-Signature", false
		}
		event = r.Header.Get("X-Gitea-Event")
	case "gitlab":
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Gitlab-Token")), cfg.WebhookSecret) != 1 {
			return http.StatusUnauthorized, "missing or wrong X-Gitlab-Token", false
		}
		event = strings.ToLower(strings.TrimSuffix(r.Header.Get("X-Gitlab-Event"), " Hook"))
	case "generic":
		if !validHMAC(body, cfg.WebhookSecret, strings.TrimPrefix(r.Header.Get("X-Maestro-Signature-256"), "sha256=")) {
			return http.StatusUnauthorized, "missing or wrong X-Maestro-Signature-256", false
		}
		event = "push"
	}
	if event != "push" {
		return http.StatusBadRequest, fmt.Sprintf("event %q is not a push", event), true
	}
	var payload struct {
		Ref string `json:"ref"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &payload); err != nil {
			return http.StatusBadRequest, "the body is not JSON", true
		}
	}
	if d.cfg.Branch == "" {
		return http.StatusUnprocessableEntity, "the tracked ref is a tag or a commit: pushes do not change it", true
	}
	if d.cfg.Branch != "*" && (kind != "generic" || payload.Ref != "") {
		if payload.Ref != "refs/heads/"+d.cfg.Branch {
			return http.StatusUnprocessableEntity, fmt.Sprintf("push to %q, tracking refs/heads/%s", payload.Ref, d.cfg.Branch), true
		}
	}
	return http.StatusAccepted, "reconcile triggered", true
}

// validHMAC compares a hex HMAC-SHA256 signature in constant time.
func validHMAC(body, secret []byte, sigHex string) bool {
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) == 0 {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(sig, mac.Sum(nil))
}

// maxHistoryLimit bounds the runs one history request returns.
const maxHistoryLimit = 500

// serveHistory answers GET /api/v1/history?env=NAME&limit=N&before=ID:
// runs, newest first.
func (d *Daemon) serveHistory(w http.ResponseWriter, r *http.Request) {
	if d.cfg.History == nil {
		http.Error(w, "no history is kept: the daemon runs without --data-dir", http.StatusNotFound)
		return
	}
	q := history.Query{Env: r.URL.Query().Get("env"), Limit: 50}
	if v := r.URL.Query().Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			http.Error(w, "before: not a run ID", http.StatusBadRequest)
			return
		}
		q.Before = n
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			http.Error(w, "limit: not a positive number", http.StatusBadRequest)
			return
		}
		q.Limit = min(n, maxHistoryLimit)
	}
	runs, err := d.cfg.History.List(q)
	if err != nil {
		d.log.Error("history", "err", err.Error())
		http.Error(w, "cannot read the history", http.StatusInternalServerError)
		return
	}
	writeJSON(w, struct {
		Runs []history.Run `json:"runs"`
	}{append([]history.Run{}, runs...)})
}

// serveRun answers GET /api/v1/history/{id}: one run.
func (d *Daemon) serveRun(w http.ResponseWriter, r *http.Request) {
	if d.cfg.History == nil {
		http.Error(w, "no history is kept: the daemon runs without --data-dir", http.StatusNotFound)
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "not a run ID", http.StatusBadRequest)
		return
	}
	run, ok, err := d.cfg.History.Get(id)
	switch {
	case err != nil:
		d.log.Error("history", "err", err.Error())
		http.Error(w, "cannot read the history", http.StatusInternalServerError)
	case !ok:
		http.Error(w, "no such run", http.StatusNotFound)
	default:
		writeJSON(w, run)
	}
}

// writeJSON writes v as indented JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// maxReason bounds the reason given with a pause.
const maxReason = 200
