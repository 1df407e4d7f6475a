package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/maestro-sync/maestro-sync/internal/manifest"
)

// AuditOptions are the daemon's settings for MaestroNG auditors.
type AuditOptions struct {
	// LogDir is where log auditors may write: their file's base name in
	// this directory. Without it, log auditors are not run (a manifest
	// must not make the daemon write where it likes).
	LogDir string
	// SlackAPI is Slack's Web API base URL (default https://slack.com/api).
	SlackAPI string
}

// FromAudit returns the notifier of one auditor of an environment's audit
// section, as MaestroNG runs it, or nil and the reason it is not run.
func FromAudit(env string, a manifest.Auditor, opts AuditOptions) (Notifier, string) {
	name := fmt.Sprintf("audit %s of %s", a.Type, env)
	switch a.Type {
	case "slack":
		s := &slackAuditor{name: name, channel: a.Options["channel"], token: a.Options["token"], webhook: a.Options["webhook_url"],
			username: cmpOr(a.Options["name"], "maestro-sync"), icon: a.Options["icon"], api: cmpOr(opts.SlackAPI, "https://slack.com/api")}
		return s, ""
	case "http":
		h := &httpAuditor{name: name, endpoint: a.Options["endpoint"], method: strings.ToUpper(cmpOr(a.Options["method"], "POST")), payload: a.Options["payload"]}
		if hs := a.Options["headers"]; hs != "" {
			if err := json.Unmarshal([]byte(hs), &h.headers); err != nil {
				return nil, "its headers are not a mapping of strings"
			}
		}
		if h.method != "GET" && h.method != "POST" {
			return nil, fmt.Sprintf("method %q is neither GET nor POST", h.method)
		}
		return h, ""
	case "log":
		if opts.LogDir == "" {
			return nil, "the daemon writes audit logs only into --audit-log-dir, which is not set"
		}
		base := filepath.Base(a.Options["file"])
		if base == "." || base == "/" || base == ".." {
			return nil, "its file has no name"
		}
		return &logAuditor{name: name, path: filepath.Join(opts.LogDir, base)}, ""
	case "exec":
		return nil, "the daemon runs no script a repository names"
	case "hipchat":
		return nil, "HipChat no longer exists"
	}
	return nil, "unknown type"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// compactLimit is MaestroNG's BaseAuditor.COMPACT_SIZE_LIMIT.
const compactLimit = 5

// what is MaestroNG's _format_what: the names, comma-separated.
func what(ev Event) string { return strings.Join(ev.Targets, ", ") }

// compact is _format_what_compact: the names, or "N containers".
func compact(ev Event) string {
	if len(ev.Targets) < compactLimit {
		return what(ev)
	}
	return fmt.Sprintf("%d containers", len(ev.Targets))
}

// text is the message MaestroNG's auditors send for an event.
func text(ev Event, names string) string {
	switch ev.Kind {
	case Succeeded:
		return fmt.Sprintf("%s of %s succeeded.", title(ev.Action), names)
	case Failed:
		s := fmt.Sprintf("Failed to %s %s!", ev.Action, names)
		if ev.Message != "" {
			s += fmt.Sprintf(" (message: %s)", ev.Message)
		}
		return s
	}
	verb := ev.Action
	if verb == "stop" {
		verb = "stopp"
	}
	return fmt.Sprintf("%s is %sing %s.", ev.Who, verb, names)
}

// title is Python's str.title for one word.
func title(s string) string {
	if s == "" {
		return s
	}
	r := []rune(strings.ToLower(s))
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// slackAuditor posts as MaestroNG's SlackAuditor: an attachment with the
// message, colored by outcome, through Slack's chat.postMessage (token and
// channel) or an incoming webhook (webhook_url, which Mattermost and
// Rocket.Chat accept too).
type slackAuditor struct {
	name, channel, token, webhook, username, icon, api string
}

func (s *slackAuditor) Name() string { return s.name }

func (s *slackAuditor) Notify(ctx context.Context, ev Event) error {
	color := map[Kind]string{Started: "#1dc7d3", Succeeded: "good", Failed: "danger"}[ev.Kind]
	msg := text(ev, compact(ev))
	attachment := map[string]any{"fallback": msg, "text": msg, "color": color, "fields": []map[string]any{}}
	fields := []map[string]any{}
	if ev.Kind == Failed {
		fields = append(fields, map[string]any{"title": "Error", "value": ev.Message, "short": true})
	}
	if len(ev.Targets) >= compactLimit {
		fields = append(fields, map[string]any{"title": "Targets", "value": what(ev)})
	}
	attachment["fields"] = fields
	body := map[string]any{"username": s.username, "attachments": []any{attachment}}
	if s.icon != "" {
		body["icon_url"] = s.icon
	}
	if s.channel != "" {
		body["channel"] = s.channel
	}
	data, _ := json.Marshal(body)
	header := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	if s.webhook != "" {
		return send(ctx, http.MethodPost, s.webhook, bytes.NewReader(data), header)
	}
	header.Set("Authorization", "Bearer "+s.token)
	return slackAPI(ctx, strings.TrimRight(s.api, "/")+"/chat.postMessage", data, header)
}

// slackAPI posts to Slack's Web API, which answers 200 with ok: false on
// errors.
func slackAPI(ctx context.Context, url string, data []byte, header http.Header) error {
	body, err := exchange(ctx, http.MethodPost, url, bytes.NewReader(data), header)
	if err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	var answer struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	if !answer.OK {
		if answer.Error == "ratelimited" {
			return errors.New("slack: rate limited")
		}
		return &Permanent{fmt.Errorf("slack: %s", answer.Error)}
	}
	return nil
}

// httpAuditor calls a webhook as MaestroNG's WebHookAuditor: on the
// start of an action only, with the payload's strings formatted with
// {what}, {action}, {who} and {message}, and empty values left out.
type httpAuditor struct {
	name, endpoint, method, payload string
	headers                         map[string]string
}

func (h *httpAuditor) Name() string { return h.name }

func (h *httpAuditor) Notify(ctx context.Context, ev Event) error {
	if ev.Kind != Started {
		return nil // MaestroNG's WebHookAuditor sends nothing on success or error
	}
	var payload any = map[string]any{}
	if h.payload != "" {
		if err := json.Unmarshal([]byte(h.payload), &payload); err != nil {
			payload = h.payload // a plain string
		}
	}
	vars := map[string]string{"what": what(ev), "action": ev.Action, "who": ev.Who, "message": text(ev, what(ev))}
	out := formatPayload(payload, vars)
	if m, ok := out.(map[string]any); ok && len(m) == 0 {
		out = nil
	}
	data, _ := json.Marshal(out)
	header := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
	for k, v := range h.headers {
		header.Set(k, v)
	}
	return send(ctx, h.method, h.endpoint, bytes.NewReader(data), header)
}

// formatPayload applies Python's str.format with vars to every string of
// v, dropping what formats to an empty value, as MaestroNG does.
func formatPayload(v any, vars map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if f := formatPayload(e, vars); !empty(f) {
				out[k] = f
			}
		}
		return out
	case []any:
		out := []any{}
		for _, e := range x {
			if f := formatPayload(e, vars); !empty(f) {
				out = append(out, f)
			}
		}
		return out
	case string:
		return pyFormat(x, vars)
	}
	return v
}

func empty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case bool:
		return !x
	case float64:
		return x == 0
	}
	return false
}

// pyFormat replaces {name} by vars[name]; {{ and }} are braces. An
// unknown name is kept as written.
func pyFormat(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "{{"), strings.HasPrefix(s[i:], "}}"):
			b.WriteByte(s[i])
			i++
		case s[i] == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			if v, ok := vars[s[i+1:i+end]]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// logAuditor appends MaestroNG's LoggerAuditor lines to a file.
type logAuditor struct {
	name, path string
	mu         sync.Mutex
}

func (l *logAuditor) Name() string { return l.name }

func (l *logAuditor) Notify(_ context.Context, ev Event) error {
	level := "INFO"
	if ev.Kind == Failed {
		level = "ERROR"
	}
	t := ev.Time.Local()
	line := fmt.Sprintf("%s,%03d %s: %s\n", t.Format("2006-01-02 15:04:05"), t.Nanosecond()/int(time.Millisecond), level, text(ev, what(ev)))
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return &Permanent{err}
	}
	_, err = f.WriteString(line)
	return errors.Join(err, f.Close())
}
