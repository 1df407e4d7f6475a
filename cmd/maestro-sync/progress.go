package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/maestro-sync/maestro-sync/internal/apply"
)

// progress shows what each step is doing. On a terminal every step keeps
// one line, rewritten in place; otherwise every change is a new plain line.
type progress struct {
	w     io.Writer
	tty   bool
	rows  map[string]int // step ID → row
	lines []string
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), rows: map[string]int{}}
}

// event is the apply.Options.Progress callback.
func (p *progress) event(e apply.Event) {
	state := e.State
	if e.Done {
		state = e.Status.String()
	}
	line := fmt.Sprintf("%-8s %-30s %-10s %-40s %6.1fs", e.Step.Action, e.Step.Env+"/"+e.Step.Instance, e.Step.Ship, state, e.Elapsed.Seconds())
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
