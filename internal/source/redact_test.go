package source_test

import (
	"testing"

	"github.com/maestro-sync/maestro-sync/internal/source"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"https://example.com/org/repo.git", "https://example.com/org/repo.git"},
		{"https://user:pa55@example.com/r.git", "https://***@example.com/r.git"},
		{"https://ghp_abcdef0123456789@github.com/o/r", "https://***@github.com/o/r"},
		{"http://u:p%40ss@example.com:8080/r", "http://***@example.com:8080/r"},
		{"https://u:p@ss@example.com/r", "https://***@example.com/r"},
		{"HTTPS://u:p@example.com", "HTTPS://***@example.com"},
		{"ssh://git@example.com:2222/r.git", "ssh://git@example.com:2222/r.git"},
		{"ssh://git:secret@example.com/r.git", "ssh://git:***@example.com/r.git"},
		{"git+ssh://git:secret@example.com/r.git", "git+ssh://git:***@example.com/r.git"},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git"},
		{"/srv/git/repo.git", "/srv/git/repo.git"},
		{"file:///srv/git/repo.git", "file:///srv/git/repo.git"},
		{"https://example.com/r.git?private_token=abc&x=1", "https://example.com/r.git?private_token=***&x=1"},
		{"https://example.com/r?access_token=abc#frag", "https://example.com/r?access_token=***#frag"},
		{"https://s3/x?X-Amz-Signature=abc&X-Amz-Credential=def", "https://s3/x?X-Amz-Signature=***&X-Amz-Credential=***"},
		{"https://example.com/r?password=abc;key=k", "https://example.com/r?password=***;key=***"},
		{"https://example.com/r?ref=main", "https://example.com/r?ref=main"},
		// Text holding URLs, as in an error message.
		{`Get "https://u:tok@h/r/info/refs?service=git-upload-pack": dial tcp`, `Get "https://***@h/r/info/refs?service=git-upload-pack": dial tcp`},
		{"clone https://a:b@h/1 and http://c@h/2 failed", "clone https://***@h/1 and http://***@h/2 failed"},
		{"mail user@example.com", "mail user@example.com"},
	} {
		if got := source.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
