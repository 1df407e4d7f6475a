package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/maestro-sync/maestro-sync/internal/source"
)

// Forge is a Git host whose commit status API CommitStatus calls.
type Forge string

// The forges.
const (
	GitHub Forge = "github"
	GitLab Forge = "gitlab"
	Gitea  Forge = "gitea"
)

// DefaultAPI returns the forge's public API, "" for Gitea (self-hosted).
func (f Forge) DefaultAPI() string {
	switch f {
	case GitHub:
		return "https://api.github.com"
	case GitLab:
		return "https://gitlab.com/api/v4"
	}
	return ""
}

// CommitStatus sets a status per environment on the deployed commit:
// pending when a deploy starts, then success or failure, linking to the
// run on the dashboard. Its context (GitLab: name) is "maestro-sync/ENV".
type CommitStatus struct {
	Forge Forge
	// API is the forge's API base URL (DefaultAPI when empty).
	API string
	// Repo is the repository: owner/name (GitLab: the project's path).
	Repo  string
	Token string
}

// Name names the notifier.
func (c *CommitStatus) Name() string { return string(c.Forge) + " commit status of " + c.Repo }

// Notify sets the commit's status for the event's environment.
func (c *CommitStatus) Notify(ctx context.Context, ev Event) error {
	if !source.IsCommit(ev.Revision) {
		return nil // not a commit (a directory's digest)
	}
	api := strings.TrimRight(cmpOr(c.API, c.Forge.DefaultAPI()), "/")
	state := map[Kind]string{Started: "pending", Succeeded: "success", Failed: "failure"}[ev.Kind]
	desc := map[Kind]string{Started: "deploying", Succeeded: "deployed", Failed: "deploy failed"}[ev.Kind]
	if ev.Kind == Failed && ev.Message != "" {
		desc += ": " + ev.Message
	}
	desc = cut(desc, 140)
	context := "maestro-sync/" + ev.Env
	header := http.Header{"Content-Type": {"application/json"}}
	var endpoint string
	body := map[string]string{"state": state, "description": desc, "context": context}
	if ev.URL != "" {
		body["target_url"] = ev.URL
	}
	switch c.Forge {
	case GitHub:
		endpoint = fmt.Sprintf("%s/repos/%s/statuses/%s", api, c.Repo, ev.Revision)
		header.Set("Authorization", "Bearer "+c.Token)
		header.Set("Accept", "application/vnd.github+json")
		header.Set("X-GitHub-Api-Version", "2022-11-28")
	case Gitea:
		endpoint = fmt.Sprintf("%s/repos/%s/statuses/%s", api, c.Repo, ev.Revision)
		header.Set("Authorization", "token "+c.Token)
	case GitLab:
		endpoint = fmt.Sprintf("%s/projects/%s/statuses/%s", api, url.PathEscape(c.Repo), ev.Revision)
		header.Set("PRIVATE-TOKEN", c.Token)
		if state == "failure" {
			state = "failed"
		}
		body = map[string]string{"state": state, "description": desc, "name": context}
		if ev.URL != "" {
			body["target_url"] = ev.URL
		}
	default:
		return &Permanent{fmt.Errorf("unknown forge %q", c.Forge)}
	}
	data, _ := json.Marshal(body)
	return send(ctx, http.MethodPost, endpoint, bytes.NewReader(data), header)
}

// cut shortens s to n runes.
func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Webhook posts every event as JSON, signed with HMAC-SHA256 of the body
// in the header X-Maestro-Sync-Signature (sha256=HEX), as GitHub signs
// its webhooks.
type Webhook struct {
	URL    string
	Secret []byte
}

// Name names the notifier (not its URL, which may hold a secret).
func (w *Webhook) Name() string { return "webhook" }

// SignatureHeader is the header of a webhook's signature.
const SignatureHeader = "X-Maestro-Sync-Signature"

// Sign returns the signature of body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Notify posts the event.
func (w *Webhook) Notify(ctx context.Context, ev Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return &Permanent{err}
	}
	header := http.Header{"Content-Type": {"application/json"}, "X-Maestro-Sync-Event": {string(ev.Kind)}}
	if len(w.Secret) > 0 {
		header.Set(SignatureHeader, Sign(w.Secret, data))
	}
	return send(ctx, http.MethodPost, w.URL, bytes.NewReader(data), header)
}
