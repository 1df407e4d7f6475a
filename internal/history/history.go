// Package history keeps what the daemon did and what it was told to hold,
// in an embedded database under its data directory: the runs of each
// environment (trigger, revision and commit, steps with causes and
// outcomes, errors), bounded in number and age, and the holds an operator
// placed on environments (paused, or pinned to a revision by a rollback).
//
// The store is bbolt: one file, transactions that are durable when they
// return (fsync), and a copy-on-write layout that a kill -9 or a power
// loss cannot leave half-written. It has no server and no schema to
// migrate, which suits a single daemon process.
package history

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Run is one reconcile of one environment that changed something, failed
// or changed the environment's state.
type Run struct {
	// ID orders the runs of the store (1, 2, ...).
	ID  uint64 `json:"id"`
	Env string `json:"env"`
	// Trigger is what started the run: poll, webhook, watch, resync,
	// retry, start, api (sync now), rollback or resume.
	Trigger  string `json:"trigger"`
	Revision string `json:"revision,omitempty"`
	// Subject and Author describe the revision's commit.
	Subject  string    `json:"subject,omitempty"`
	Author   string    `json:"author,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Result is success, failed, stalled or interrupted.
	Result string   `json:"result"`
	Errors []string `json:"errors,omitempty"`
	Steps  []Step   `json:"steps,omitempty"`
}

// Duration is how long the run took.
func (r Run) Duration() time.Duration { return r.Finished.Sub(r.Started) }

// Step is one step of a run that changed something.
type Step struct {
	Action   string `json:"action"`
	Service  string `json:"service,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Ship is the ship or cluster.
	Ship     string        `json:"ship,omitempty"`
	Cause    string        `json:"cause,omitempty"`
	Result   string        `json:"result"` // success, failed, aborted
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Hold is an operator's hold on an environment: paused (observed, not
// changed), or pinned to a revision by a rollback (deployed as of that
// revision until resumed or a new commit arrives).
type Hold struct {
	Env string `json:"env"`
	// Paused environments are observed but never changed.
	Paused bool `json:"paused,omitempty"`
	// Revision, when set, pins the environment to that revision.
	Revision string `json:"revision,omitempty"`
	// Head is the branch's revision when the pin was placed: a newer
	// commit ends the pin.
	Head   string    `json:"head,omitempty"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// Options bound what the store keeps.
type Options struct {
	// MaxRuns is the number of runs kept per environment (default 200).
	MaxRuns int
	// MaxAge drops runs older than this (default 30 days).
	MaxAge time.Duration
	// Now returns the current time (tests).
	Now func() time.Time
	// OpenTimeout bounds the wait for another process to close the
	// database (default 5s).
	OpenTimeout time.Duration
}

// Store is the history database. Its methods are safe for concurrent use.
type Store struct {
	db   *bolt.DB
	opts Options
}

var (
	runsBucket  = []byte("runs")  // env → (id → run)
	holdsBucket = []byte("holds") // env → hold
)

// FileName is the database's name in the data directory.
const FileName = "history.db"

// Open opens (creating it when missing) the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	if opts.MaxRuns <= 0 {
		opts.MaxRuns = 200
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 30 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("history: %s is in use by another process (one daemon per data directory)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("history: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{runsBucket, holdsBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("history: %s: %w", path, err)
	}
	return &Store{db: db, opts: opts}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func key(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// Add records a run, giving it the next ID, and drops the environment's
// runs beyond the bounds. It returns the run as stored.
func (s *Store) Add(r Run) (Run, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(runsBucket)
		id, err := root.NextSequence()
		if err != nil {
			return err
		}
		r.ID = id
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b, err := root.CreateBucketIfNotExists([]byte(r.Env))
		if err != nil {
			return err
		}
		if err := b.Put(key(id), data); err != nil {
			return err
		}
		return s.prune(b)
	})
	if err != nil {
		return Run{}, fmt.Errorf("history: add run of %s: %w", r.Env, err)
	}
	return r, nil
}

// prune drops the oldest runs of an environment's bucket beyond MaxRuns
// and those older than MaxAge (the newest run is always kept).
func (s *Store) prune(b *bolt.Bucket) error {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	cutoff := s.opts.Now().Add(-s.opts.MaxAge)
	var drop [][]byte
	for k, v := c.First(); k != nil && n-len(drop) > 1; k, v = c.Next() {
		if n-len(drop) > s.opts.MaxRuns {
			drop = append(drop, slices.Clone(k))
			continue
		}
		var r Run
		if json.Unmarshal(v, &r) == nil && r.Finished.Before(cutoff) {
			drop = append(drop, slices.Clone(k))
			continue
		}
		break
	}
	for _, k := range drop {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Query selects runs.
type Query struct {
	// Env selects one environment ("" for all).
	Env string
	// Limit is the number of runs returned, newest first (0: 50).
	Limit int
	// Before returns runs with IDs below it (0: from the newest).
	Before uint64
}

// List returns runs, newest first.
func (s *Store) List(q Query) ([]Run, error) {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	var out []Run
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(runsBucket)
		var envs [][]byte
		if q.Env != "" {
			envs = [][]byte{[]byte(q.Env)}
		} else {
			err := root.ForEachBucket(func(k []byte) error {
				envs = append(envs, slices.Clone(k))
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, env := range envs {
			b := root.Bucket(env)
			if b == nil {
				continue
			}
			c := b.Cursor()
			k, v := c.Last()
			if q.Before > 0 {
				k, v = c.Seek(key(q.Before))
				if k == nil {
					k, v = c.Last()
				}
				for k != nil && binary.BigEndian.Uint64(k) >= q.Before {
					k, v = c.Prev()
				}
			}
			for n := 0; k != nil && n < q.Limit; k, v = c.Prev() {
				var r Run
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("run %d of %s: %w", binary.BigEndian.Uint64(k), env, err)
				}
				out = append(out, r)
				n++
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	slices.SortFunc(out, func(a, b Run) int { return -cmpID(a.ID, b.ID) })
	return out[:min(len(out), q.Limit)], nil
}

func cmpID(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Get returns the run with the given ID.
func (s *Store) Get(id uint64) (Run, bool, error) {
	var r Run
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(runsBucket).ForEachBucket(func(env []byte) error {
			v := tx.Bucket(runsBucket).Bucket(env).Get(key(id))
			if v == nil || found {
				return nil
			}
			found = true
			return json.Unmarshal(v, &r)
		})
	})
	if err != nil {
		return Run{}, false, fmt.Errorf("history: run %d: %w", id, err)
	}
	return r, found, nil
}

// SetHold places or replaces the hold on h.Env.
func (s *Store) SetHold(h Hold) error {
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(holdsBucket).Put([]byte(h.Env), data) })
	if err != nil {
		return fmt.Errorf("history: hold %s: %w", h.Env, err)
	}
	return nil
}

// ClearHold removes the hold on env, if any.
func (s *Store) ClearHold(env string) error {
	err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(holdsBucket).Delete([]byte(env)) })
	if err != nil {
		return fmt.Errorf("history: resume %s: %w", env, err)
	}
	return nil
}

// Holds returns the holds, by environment. A record that does not decode
// is left out and named in the error; the others are returned with it.
func (s *Store) Holds() (map[string]Hold, error) {
	out := map[string]Hold{}
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(holdsBucket).ForEach(func(k, v []byte) error {
			var h Hold
			if err := json.Unmarshal(v, &h); err != nil {
				bad = append(bad, fmt.Errorf("hold of %s: %w", k, err))
				return nil
			}
			out[string(k)] = h
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("history: %w", errors.Join(bad...))
	}
	return out, nil
}
