package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/maestro-sync/maestro-sync/internal/apply"
)

// progress shows what each step is doing. On a terminal every step keeps
// one line, rewritten in place, as long as every line fits on the screen
// (the cursor cannot go above its top); otherwise, and from then on,
// every change is a new plain line.
type progress struct {
	w      io.Writer
	tty    bool
	height int            // the terminal's rows (0: unknown)
	rows   map[string]int // step ID → row
	lines  []string
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, tty: isTerminal(w), rows: map[string]int{}}
	if f, ok := w.(*os.File); ok && p.tty {
		_, p.height, _ = term.GetSize(int(f.Fd()))
	}
	return p
}

// event is the apply.Options.Progress callback.
func (p *progress) event(e apply.Event) {
	state := e.State
	if e.Done {
		state = e.Status.String()
	}
	line := fmt.Sprintf("%-8s %-30s %-10s %-40s %6.1fs", e.Step.Action, e.Step.Env+"/"+e.Step.Instance, e.Step.Ship, state, e.Elapsed.Seconds())
	if p.tty && p.height > 0 && len(p.lines)+2 >= p.height {
		p.tty = false // more steps than the screen holds
	}
	if !p.tty {
		fmt.Fprintln(p.w, strings.TrimRight(line, " "))
		return
	}
	row, ok := p.rows[e.Step.ID]
	if !ok {
		row = len(p.lines)
		p.rows[e.Step.ID] = row
		p.lines = append(p.lines, line)
		fmt.Fprintln(p.w, line)
		return
	}
	p.lines[row] = line
	up := len(p.lines) - row
	fmt.Fprintf(p.w, "\x1b[%dA\r\x1b[2K%s\x1b[%dB\r", up, line, up)
}
