package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// maxOutput is how much of a body or command output an error shows.
const maxOutput = 200

// attemptError is why one attempt of a check failed.
type attemptError struct {
	msg   string // "got status 500", "exit status 3"
	label string // what out is: "body", "output"
	out   string // redacted and clipped; may be empty
	err   error  // the underlying error, if any
}

func (e *attemptError) Error() string {
	s := e.msg
	if e.out != "" {
		s += fmt.Sprintf(" (%s: %q)", e.label, e.out)
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *attemptError) Unwrap() error { return e.err }

// permanent marks an attempt error that no retry can fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }

// failure is a check that ran out of attempts or was stopped.
type failure struct {
	cause    error // the context's cause when stopped, else nil
	last     *attemptError
	attempts int
	elapsed  time.Duration
}

func (f *failure) Error() string {
	n := fmt.Sprintf("%d attempts", f.attempts)
	if f.attempts == 1 {
		n = "1 attempt"
	}
	if f.cause != nil {
		s := fmt.Sprintf("%v after %s", f.cause, fmtDuration(f.elapsed))
		if f.last != nil {
			s += fmt.Sprintf(" (%s; last: %v)", n, f.last)
		}
		return s
	}
	s := fmt.Sprintf("%s after %s (%s", f.last.msg, fmtDuration(f.elapsed), n)
	if f.last.out != "" {
		s += fmt.Sprintf("; %s: %q", f.last.label, f.last.out)
	}
	s += ")"
	if f.last.err != nil {
		s += ": " + f.last.err.Error()
	}
	return s
}

func (f *failure) Unwrap() []error {
	var errs []error
	if f.cause != nil {
		errs = append(errs, f.cause)
	}
	if f.last != nil {
		errs = append(errs, f.last)
	}
	return errs
}

// retry calls try until it succeeds, returns a permanent error, or next
// says to stop. next gets the number of failed attempts so far and returns
// how long to wait before the next one.
//
// try returns nil, a permanent error, or (usually) an *attemptError.
func retry(ctx context.Context, next func(failed int) (time.Duration, bool), try func(context.Context) error) error {
	start := time.Now()
	var last *attemptError
	for n := 1; ; n++ {
		err := try(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// The attempt was cut short: report the one before.
			return &failure{cause: context.Cause(ctx), last: last, attempts: n - 1, elapsed: time.Since(start)}
		}
		if p, ok := err.(permanent); ok {
			return p.err
		}
		if !errors.As(err, &last) {
			last = &attemptError{msg: "failed", err: err}
		}
		wait, again := next(n)
		if !again {
			return &failure{last: last, attempts: n, elapsed: time.Since(start)}
		}
		if err := sleep(ctx, wait); err != nil {
			return &failure{cause: err, last: last, attempts: n, elapsed: time.Since(start)}
		}
	}
}

// attempts is a next function for retry that allows max attempts (at
// least one), interval apart.
func attempts(max int, interval time.Duration) func(int) (time.Duration, bool) {
	return func(failed int) (time.Duration, bool) { return interval, failed < max }
}

// sleep waits for d or until ctx is done, then returning its cause.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return context.Cause(ctx)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func since(t time.Time) string { return fmtDuration(time.Since(t)) }

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// clip shortens s to about n bytes, cutting at the end.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// clipStart shortens s to about n bytes, cutting at the start: the end of
// a command's output usually says why it failed.
func clipStart(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return "…" + s[i:]
}

// minSecret is the shortest env value hidden in outputs; shorter values
// ("1", "true") are too common to mean anything.
const minSecret = 8

// redactor hides the values of env (KEY=VALUE) in outputs shown in errors.
// Redact hides in text every value of env (NAME=value) long enough to be
// recognised, as check output is hidden: a container's log lines may hold
// its secrets.
func Redact(env []string, text string) string { return redactor(env).Replace(text) }

func redactor(env []string) *strings.Replacer {
	var values []string
	for _, kv := range env {
		if _, v, ok := strings.Cut(kv, "="); ok && len(v) >= minSecret {
			values = append(values, v)
		}
	}
	// Longest first, so that a value containing another is hidden whole.
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(values))
	for _, v := range values {
		pairs = append(pairs, v, "***")
	}
	return strings.NewReplacer(pairs...)
}
