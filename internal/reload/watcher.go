package reload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// File is one file of a group as read by a poll: its path and its whole content.
type File struct {
	Path string
	Data []byte

	err error // why the file could not be read; Data is nil then
}

// Func validates the contents of a group's files (in the order given to Add) and, only
// when everything is valid, swaps the new state in. An error means nothing changed.
// It receives the bytes the watcher read, so that what was checked is what is used.
type Func func(files []File) error

// Result is the outcome of one reload attempt of a group.
type Result struct {
	// Group is the name the group was added under ("certificate", "crl", ...).
	Group string
	// Err is nil when the new state was taken, else why the last good state was kept.
	Err error
}

// Option configures New.
type Option func(*Watcher)

// Defaults; New sets them in one place.
const (
	// DefaultInterval is how often Run polls the files.
	DefaultInterval = 2 * time.Second
	// DefaultMaxFileSize bounds what one file may weigh, so that a path pointed at a
	// device or a runaway file cannot exhaust memory.
	DefaultMaxFileSize = 16 << 20
)

// ErrTooLarge means a file is larger than the watcher's size limit.
var ErrTooLarge = errors.New("file too large")

// WithInterval sets how often Run polls the files (default DefaultInterval); zero or
// less disables polling, leaving SIGHUP and Trigger.
func WithInterval(d time.Duration) Option {
	return func(w *Watcher) { w.interval = d }
}

// WithSignal makes Run reload every group, changed or not, whenever c delivers (a
// channel given to signal.Notify for SIGHUP).
func WithSignal(c <-chan os.Signal) Option {
	return func(w *Watcher) { w.signals = c }
}

// WithReport calls fn after every reload attempt, with the group's name and the error
// (nil on success), e.g. to count reloads by group and outcome.
func WithReport(fn func(group string, err error)) Option {
	return func(w *Watcher) { w.report = fn }
}

// WithMaxFileSize bounds the size of one watched file (default DefaultMaxFileSize).
func WithMaxFileSize(n int64) Option {
	return func(w *Watcher) { w.maxSize = n }
}

// Watcher reloads groups of files when their content changes or on demand.
//
// It polls rather than watching inodes because certificate tools and Kubernetes replace
// files by rename (or by swapping a symlink), which a watch on the old inode never sees;
// it compares contents (SHA-256), so an in-place rewrite is seen too, whatever the mtime.
//
// A change is taken only once it has held still for one poll: the first poll that sees
// new content notes it, the next one that sees the same content reloads. A writer that
// rewrites a file in place is thus not caught half-way, even where the half-written file
// would still parse (YAML cut at a line). SIGHUP and Trigger reload at once.
//
// A group that fails keeps its last good state and is not retried until its files change
// again, SIGHUP, or another group reloads successfully (a CRL signed by a new CA can only
// be taken once the certificate or bundle that brings the CA is).
type Watcher struct {
	logger   *slog.Logger
	interval time.Duration
	signals  <-chan os.Signal
	report   func(string, error)
	maxSize  int64
	trigger  chan struct{}

	mu     sync.Mutex // serializes polls; guards groups
	groups []*group
}

type group struct {
	name   string
	paths  []string
	reload Func
	// applied is the content last handed to reload (or seen at Add), per file.
	applied []digest
	// pending is new content seen by the previous poll but not yet taken.
	pending []digest
	failed  bool
}

// digest identifies what a poll saw at a path: the content's hash, or the read error.
type digest struct {
	sum [sha256.Size]byte
	err string
}

// New returns a Watcher logging to logger (nil discards). Add groups, then Run.
func New(logger *slog.Logger, opts ...Option) *Watcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		logger:   logger,
		interval: DefaultInterval,
		maxSize:  DefaultMaxFileSize,
		trigger:  make(chan struct{}, 1),
	}
	for _, opt := range opts {
		opt(w)
	}
	return w
}

// Add registers a group of files that fn reloads together (a certificate and its key).
// The files' current contents count as applied: call Add right after loading them, so
// that only later changes trigger a reload. Groups reload in the order they were added;
// add the CA bundle before the certificate and the certificate before the CRL.
func (w *Watcher) Add(name string, fn Func, paths ...string) error {
	switch {
	case name == "":
		return errors.New("reload: empty group name")
	case fn == nil:
		return fmt.Errorf("reload: group %s: nil reload func", name)
	case len(paths) == 0:
		return fmt.Errorf("reload: group %s: no files", name)
	case slices.Contains(paths, ""):
		return fmt.Errorf("reload: group %s: empty file path", name)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, g := range w.groups {
		if g.name == name {
			return fmt.Errorf("reload: group %s added twice", name)
		}
	}
	g := &group{name: name, paths: slices.Clone(paths), reload: fn}
	_, g.applied = w.read(g)
	w.groups = append(w.groups, g)
	return nil
}

// Trigger asks Run to reload every group now, as SIGHUP does; it does not wait.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default: // a reload is already due
	}
}

// Run polls every interval and reloads on signal or Trigger until ctx ends; it returns
// ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	var tick <-chan time.Time
	if w.interval > 0 {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			w.CheckNow(ctx)
		case <-w.signals:
			w.ReloadNow(ctx)
		case <-w.trigger:
			w.ReloadNow(ctx)
		}
	}
}

// CheckNow runs one poll synchronously and returns the reload attempts it made (none
// when nothing changed, or when a change was seen for the first time).
func (w *Watcher) CheckNow(ctx context.Context) []Result {
	return w.poll(ctx, false)
}

// ReloadNow reloads every group synchronously, changed or not, and returns the results.
func (w *Watcher) ReloadNow(ctx context.Context) []Result {
	return w.poll(ctx, true)
}

func (w *Watcher) poll(ctx context.Context, force bool) []Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	var (
		results     []Result
		attemptedAt = make(map[*group]int) // index in results
		lastSuccess = -1
	)
	attempt := func(g *group, files []File, seen []digest) {
		err := w.attempt(g, files, seen)
		attemptedAt[g] = len(results)
		if err == nil {
			lastSuccess = len(results)
		}
		results = append(results, Result{Group: g.name, Err: err})
	}
	for _, g := range w.groups {
		if ctx.Err() != nil {
			return results
		}
		files, seen := w.read(g)
		switch {
		case force:
		case slices.Equal(seen, g.applied):
			g.pending = nil
			continue
		case !slices.Equal(seen, g.pending):
			g.pending = seen // new: take it once it has held still for a poll
			continue
		}
		attempt(g, files, seen)
	}
	// Retry the groups still failing that have not been tried since the last success:
	// that success may be what they were missing. Each round needs a new success, so
	// this ends after at most len(groups) rounds.
	for progress := true; progress && lastSuccess >= 0; {
		progress = false
		for _, g := range w.groups {
			if i, ok := attemptedAt[g]; !g.failed || (ok && i > lastSuccess) || ctx.Err() != nil {
				continue
			}
			files, seen := w.read(g)
			if !slices.Equal(seen, g.applied) {
				continue // changed again since it failed: let it settle first
			}
			before := lastSuccess
			attempt(g, files, seen)
			progress = progress || lastSuccess != before
		}
	}
	return results
}

// attempt reloads g from files (whose digests are seen), logs and reports the outcome.
func (w *Watcher) attempt(g *group, files []File, seen []digest) error {
	g.applied, g.pending = seen, nil
	err := readError(files)
	if err == nil {
		err = g.reload(files)
	}
	g.failed = err != nil
	if err != nil {
		w.logger.Warn("reload failed, keeping the last good state", "group", g.name, "files", g.paths, "err", err)
	} else {
		w.logger.Info("reloaded", "group", g.name, "files", g.paths)
	}
	if w.report != nil {
		w.report(g.name, err)
	}
	return err
}

// read reads every file of g; a file that cannot be read has a nil Data and its error
// in its digest.
func (w *Watcher) read(g *group) ([]File, []digest) {
	files := make([]File, len(g.paths))
	seen := make([]digest, len(g.paths))
	for i, p := range g.paths {
		files[i].Path = p
		data, err := readFile(p, w.maxSize)
		if err != nil {
			files[i].err = err
			seen[i].err = err.Error()
			continue
		}
		files[i].Data = data
		seen[i].sum = sha256.Sum256(data)
	}
	return files, seen
}

func readError(files []File) error {
	var errs []error
	for _, f := range files {
		if f.err != nil {
			errs = append(errs, f.err) // *fs.PathError or ErrTooLarge, both naming the path
		}
	}
	return errors.Join(errs...)
}

func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%s: %w (over %d bytes)", path, ErrTooLarge, limit)
	}
	return buf.Bytes(), nil
}
