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
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"
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
	// RateLimit bounds webhook and sync requests per second (default 5;
	// bursts of twice that, at least 10).
	RateLimit rate.Limit
}

// Handler serves /healthz, /readyz, /metrics, /api/v1/status,
// /api/v1/sync and the webhooks under /hooks/.
func (d *Daemon) Handler(cfg HTTPConfig) http.Handler {
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 5
	}
	limiter := rate.NewLimiter(cfg.RateLimit, max(10, int(2*cfg.RateLimit)))
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(d.Status())
	})
	mux.HandleFunc("POST /api/v1/sync", func(w http.ResponseWriter, r *http.Request) {
		if !limiter.Allow() {
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
		if len(cfg.APIToken) == 0 {
			http.Error(w, "sync is disabled: no API token is configured", http.StatusForbidden)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), cfg.APIToken) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="maestro-sync"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		d.Trigger("api", time.Now())
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "sync triggered\n")
	})
	for _, kind := range []string{"github", "gitlab", "gitea", "generic"} {
		mux.HandleFunc("POST /hooks/"+kind, func(w http.ResponseWriter, r *http.Request) {
			arrived := time.Now()
			if !limiter.Allow() {
				http.Error(w, "too many requests", http.StatusTooManyRequests)
				return
			}
			status, msg := d.webhook(kind, cfg, w, r)
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

// webhook checks a webhook request and tells whether it is a push to the
// tracked branch.
func (d *Daemon) webhook(kind string, cfg HTTPConfig, w http.ResponseWriter, r *http.Request) (int, string) {
	if len(cfg.WebhookSecret) == 0 {
		return http.StatusForbidden, "webhooks are disabled: no secret is configured"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBody)
		}
		return http.StatusBadRequest, "cannot read the body"
	}
	event := ""
	switch kind {
	case "github":
		if !validHMAC(body, cfg.WebhookSecret, strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")) {
			return http.StatusUnauthorized, "missing or wrong X-Hub-Signature-256"
		}
		event = r.Header.Get("X-GitHub-Event")
		if event == "ping" {
			return http.StatusOK, "pong"
		}
	case "gitea":
		sig := r.Header.Get("X-Gitea-Signature")
		if sig == "" {
			sig = strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
		}
		if !validHMAC(body, cfg.WebhookSecret, sig) {
			return http.StatusUnauthorized, "missing or wrong X-Gitea-Signature"
		}
		event = r.Header.Get("X-Gitea-Event")
	case "gitlab":
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Gitlab-Token")), cfg.WebhookSecret) != 1 {
			return http.StatusUnauthorized, "missing or wrong X-Gitlab-Token"
		}
		event = strings.ToLower(strings.TrimSuffix(r.Header.Get("X-Gitlab-Event"), " Hook"))
	case "generic":
		if !validHMAC(body, cfg.WebhookSecret, strings.TrimPrefix(r.Header.Get("X-Maestro-Signature-256"), "sha256=")) {
			return http.StatusUnauthorized, "missing or wrong X-Maestro-Signature-256"
		}
		event = "push"
	}
	if event != "push" {
		return http.StatusBadRequest, fmt.Sprintf("event %q is not a push", event)
	}
	var payload struct {
		Ref string `json:"ref"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &payload); err != nil {
			return http.StatusBadRequest, "the body is not JSON"
		}
	}
	if d.cfg.Branch == "" {
		return http.StatusUnprocessableEntity, "the tracked ref is a tag or a commit: pushes do not change it"
	}
	if d.cfg.Branch != "*" && (kind != "generic" || payload.Ref != "") {
		if payload.Ref != "refs/heads/"+d.cfg.Branch {
			return http.StatusUnprocessableEntity, fmt.Sprintf("push to %q, tracking refs/heads/%s", payload.Ref, d.cfg.Branch)
		}
	}
	return http.StatusAccepted, "reconcile triggered"
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
