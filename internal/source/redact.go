package source

import (
	"regexp"
	"strings"
)

var (
	// userinfoRE matches "scheme://userinfo@". The userinfo may itself hold
	// a raw '@' (the authority ends at its last '@'), never a '/', '?', '#',
	// a quote or a space.
	userinfoRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#\s"'<>]*)@`)
	// secretParamRE matches the value of a query parameter whose name looks
	// like it holds a credential (access_token=, private_token=, password=,
	// X-Amz-Signature=, key=...).
	secretParamRE = regexp.MustCompile(`(?i)([?&;][^=&#\s"'<>]*(?:token|passw|secret|key|auth|sig|credential)[^=&#\s"'<>]*=)[^&;#\s"'<>]*`)
)

// redacted replaces a secret in RedactURL's output.
const redacted = "***"

// RedactURL hides the credentials of a URL, or of every URL in a text such
// as an error message, so that it can be logged or shown:
//
//   - in ssh:// URLs (and git+ssh://, ssh+git://) the user is kept and a
//     password is replaced: ssh://git:***@host/repo;
//   - in every other scheme the whole userinfo is replaced, since tokens are
//     often passed as the user name: https://***@host/repo;
//   - the values of query parameters named like credentials (token,
//     password, secret, key, auth, sig, credential) are replaced.
//
// scp-like addresses (git@host:path) carry no secret and are unchanged.
func RedactURL(s string) string {
	s = userinfoRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfoRE.FindStringSubmatch(m)
		scheme, info := sub[1], sub[2]
		switch strings.ToLower(scheme) {
		case "ssh", "git+ssh", "ssh+git":
			if user, _, hasPass := strings.Cut(info, ":"); hasPass {
				return scheme + "://" + user + ":" + redacted + "@"
			}
			return m
		}
		return scheme + "://" + redacted + "@"
	})
	return secretParamRE.ReplaceAllString(s, "${1}"+redacted)
}

// minSecretLen is the length from which a known secret (a password read from
// a file, say) is replaced wherever it appears in an error message. Shorter
// values would garble messages; they are still hidden inside URLs.
const minSecretLen = 4

// redactor hides URL credentials and known secrets in error messages.
type redactor struct {
	secrets []string
}

func (r redactor) string(s string) string {
	for _, secret := range r.secrets {
		if len(secret) >= minSecretLen {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	return RedactURL(s)
}

// error returns err with a redacted message. errors.Is and errors.As still
// see the original chain.
func (r redactor) error(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{msg: r.string(err.Error()), err: err}
}

// redactedError is an error whose message had its credentials removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
