package manifest

import (
	"errors"
	"strings"
)

// shlexSplit splits a command string as MaestroNG does, with Python's
// shlex.split(s) (POSIX mode, no comments), which differs from a POSIX
// shell in one way that matters: inside double quotes a backslash escapes
// only a double quote or a backslash, and is kept before anything else,
// so "\$HOME" stays \$HOME for the shell the command may run. Outside
// quotes a backslash escapes any character; single quotes escape nothing.
// The errors are Python's.
func shlexSplit(s string) ([]string, error) {
	const (
		space  = ' '
		word   = 'a'
		escape = '\\'
	)
	var (
		words   []string
		token   strings.Builder
		state   rune = space
		escaped rune = space // the state an escape returns to
		quoted  bool         // the token had quotes: it counts even when empty
	)
	emit := func() {
		if token.Len() > 0 || quoted {
			words = append(words, token.String())
		}
		token.Reset()
		quoted = false
	}
	for _, c := range s {
		switch state {
		case space, word:
			switch {
			case c == ' ' || c == '\t' || c == '\r' || c == '\n':
				if state == word {
					emit()
				}
				state = space
			case c == escape:
				escaped, state = word, escape
			case c == '\'' || c == '"':
				state = c
			default:
				token.WriteRune(c)
				state = word
			}
		case '\'', '"':
			quoted = true
			switch {
			case c == state:
				state = word
			case c == escape && state == '"':
				escaped, state = state, escape
			default:
				token.WriteRune(c)
			}
		case escape:
			// Within double quotes only the quote and the backslash
			// itself are escaped; the backslash stays before the rest.
			if escaped == '"' && c != escape && c != escaped {
				token.WriteRune(escape)
			}
			token.WriteRune(c)
			state = escaped
		}
	}
	switch state {
	case '\'', '"':
		return words, errors.New("No closing quotation")
	case escape:
		return words, errors.New("No escaped character")
	}
	emit()
	return words, nil
}
