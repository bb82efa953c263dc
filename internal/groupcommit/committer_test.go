package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mtlsbank/internal/groupcommit"
)

// memStore is a transactional store in memory: a transaction collects writes
// and a commit appends them, all or nothing. Failures are injected.
type memStore struct {
	mu        sync.Mutex
	committed []string
	sizes     []int // requests per committed transaction
	begun     int

	failBegin  atomic.Bool
	failCommit atomic.Bool
	panicRun   atomic.Bool
	// spared is how many transactions, counted from the first, the injected
	// failures spare.
	spared atomic.Int64
	// inCommit, if set, runs between batch and the commit.
	inCommit func(*memTx)
}

type memTx struct{ writes []string }

var (
	errBegin   = errors.New("injected begin failure")
	errCommit  = errors.New("injected commit failure")
	errDisk    = errors.New("injected disk error")
	errRefused = errors.New("injected row refused at the commit")
)

func (m *memStore) run(_ context.Context, batch func(*memTx) error) error {
	m.mu.Lock()
	m.begun++
	inject := int64(m.begun) > m.spared.Load()
	m.mu.Unlock()
	if inject && m.failBegin.Load() {
		return errBegin
	}
	if m.panicRun.Load() {
		panic("injected bug in the transaction function")
	}
	tx := &memTx{}
	if err := batch(tx); err != nil {
		return fmt.Errorf("rolled back: %w", err)
	}
	if m.inCommit != nil {
		m.inCommit(tx)
	}
	// A row the commit refuses (the store sends its writes only then): nothing is
	// written, and no request is to blame.
	for _, w := range tx.writes {
		if strings.HasPrefix(w, "refused") {
			return fmt.Errorf("%w: %w (%s)", groupcommit.ErrSplit, errRefused, w)
		}
	}
	if inject && m.failCommit.Load() {
		return errCommit
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.committed = append(m.committed, tx.writes...)
	m.sizes = append(m.sizes, len(tx.writes))
	return nil
}

func (m *memStore) state() (committed []string, sizes []int, begun int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.committed), slices.Clone(m.sizes), m.begun
}

// write is a request that writes name and answers it.
func write(name string) groupcommit.Request[*memTx, string] {
	return func(_ context.Context, tx *memTx) (string, error) {
		tx.writes = append(tx.writes, name)
		return name, nil
	}
}

// failing writes name, then fails: its write must not survive.
func failing(name string) groupcommit.Request[*memTx, string] {
	return func(_ context.Context, tx *memTx) (string, error) {
		tx.writes = append(tx.writes, name)
		return "", errDisk
	}
}

func panicking(name string) groupcommit.Request[*memTx, string] {
	return func(_ context.Context, tx *memTx) (string, error) {
		tx.writes = append(tx.writes, name)
		panic("injected bug in " + name)
	}
}

func newCommitter(tb testing.TB, m *memStore, opts ...groupcommit.Option) *groupcommit.Committer[*memTx, string] {
	tb.Helper()
	c, err := groupcommit.New[*memTx, string](m.run, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// gate holds the committer inside a request until opened, so that the test can
// queue a whole batch behind it.
type gate struct {
	entered chan struct{}
	opened  chan struct{}
	once    sync.Once
}

func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

func (g *gate) request(name string) groupcommit.Request[*memTx, string] {
	return func(_ context.Context, tx *memTx) (string, error) {
		close(g.entered)
		<-g.opened
		tx.writes = append(tx.writes, name)
		return name, nil
	}
}

// hold makes the committer run a gated request, and returns once it is inside
// it. The gate opens at the end of the test, if the test has not opened it, so
// that a failing test does not leave the committer stuck.
func hold(tb testing.TB, c *groupcommit.Committer[*memTx, string]) *gate {
	tb.Helper()
	g := &gate{entered: make(chan struct{}), opened: make(chan struct{})}
	if err := c.Submit(context.Background(), g.request("gate"), nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(g.open) // runs before the committer's Close (registered earlier)
	<-g.entered
	return g
}

type answer struct {
	r   string
	err error
}

// doAll calls Do for each request in its own goroutine, after the committer is
// held by a gate, then opens the gate once all are queued, and returns the
// answers. The callers named in gone give up once queued, before the batch runs.
func doAll(tb testing.TB, c *groupcommit.Committer[*memTx, string], gone []bool, reqs []groupcommit.Request[*memTx, string]) []answer {
	tb.Helper()
	g := hold(tb, c)
	answers := make([]answer, len(reqs))
	cancels := make([]context.CancelFunc, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		var ctx context.Context
		ctx, cancels[i] = context.WithCancel(context.Background())
		defer cancels[i]()
		wg.Go(func() {
			r, err := c.Do(ctx, req)
			answers[i] = answer{r, err}
		})
	}
	waitFor(tb, "requests queued", func() bool { return groupcommit.Queued(c) == len(reqs) })
	for i, cancel := range cancels {
		if i < len(gone) && gone[i] {
			cancel()
		}
	}
	g.open()
	wg.Wait()
	return answers
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	m := &memStore{}
	tests := []struct {
		name string
		run  groupcommit.Run[*memTx]
		opt  groupcommit.Option
	}{
		{"nil run", nil, groupcommit.WithMaxBatch(1)},
		{"zero batch", m.run, groupcommit.WithMaxBatch(0)},
		{"negative queue", m.run, groupcommit.WithQueueSize(-1)},
		{"negative delay", m.run, groupcommit.WithMaxDelay(-time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := groupcommit.New[*memTx, string](tt.run, tt.opt)
			if err == nil {
				c.Close()
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestDoAnswersAfterCommit(t *testing.T) {
	m := &memStore{}
	var answered sync.Map // names whose Do returned
	var early atomic.Int64
	m.inCommit = func(tx *memTx) {
		for _, name := range tx.writes {
			if _, ok := answered.Load(name); ok {
				early.Add(1)
			}
		}
	}
	c := newCommitter(t, m)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			r, err := c.Do(context.Background(), write(fmt.Sprint(i)))
			if err != nil || r != fmt.Sprint(i) {
				t.Errorf("Do %d = %q, %v", i, r, err)
			}
			committed, _, _ := m.state()
			if !slices.Contains(committed, fmt.Sprint(i)) {
				t.Errorf("Do %d answered before its write committed", i)
			}
			answered.Store(fmt.Sprint(i), true)
		})
	}
	wg.Wait()
	if n := early.Load(); n != 0 {
		t.Fatalf("%d callers were answered while their transaction was still committing", n)
	}
}

func TestBatchFailures(t *testing.T) {
	tests := []struct {
		name string
		reqs []groupcommit.Request[*memTx, string]
		gone []bool
		// failBegin/failCommit inject a failure of the whole transaction.
		failBegin, failCommit bool
		// want is each request's answer: a result, or an error it must wrap.
		want          []any
		wantCommitted []string
	}{
		{
			name:          "all succeed in one transaction",
			reqs:          []groupcommit.Request[*memTx, string]{write("a"), write("b"), write("c")},
			want:          []any{"a", "b", "c"},
			wantCommitted: []string{"a", "b", "c", "gate"},
		},
		{
			name:          "a failing request fails alone and leaves nothing",
			reqs:          []groupcommit.Request[*memTx, string]{write("a"), failing("bad"), write("c"), failing("bad2"), write("e")},
			want:          []any{"a", errDisk, "c", errDisk, "e"},
			wantCommitted: []string{"a", "c", "e", "gate"},
		},
		{
			name:          "a panicking request fails alone",
			reqs:          []groupcommit.Request[*memTx, string]{write("a"), panicking("bug"), write("c")},
			want:          []any{"a", groupcommit.ErrPanic, "c"},
			wantCommitted: []string{"a", "c", "gate"},
		},
		{
			name:          "a caller gone before the batch ran is answered without running",
			reqs:          []groupcommit.Request[*memTx, string]{write("a"), write("gone"), write("c")},
			gone:          []bool{false, true, false},
			want:          []any{"a", context.Canceled, "c"},
			wantCommitted: []string{"a", "c", "gate"},
		},
		{
			name: "a row refused at the commit, nobody to blame (ErrSplit): the batch runs again in halves, its request fails alone",
			reqs: []groupcommit.Request[*memTx, string]{write("a"), write("b"), write("refused-1"), write("c"), write("d"),
				write("e"), write("f"), write("refused-2"), write("g")},
			want:          []any{"a", "b", errRefused, "c", "d", "e", "f", errRefused, "g"},
			wantCommitted: []string{"a", "b", "c", "d", "e", "f", "g", "gate"},
		},
		{
			name:          "a lone request refused at the commit gets the error",
			reqs:          []groupcommit.Request[*memTx, string]{write("refused")},
			want:          []any{errRefused},
			wantCommitted: []string{"gate"},
		},
		{
			name:          "a failed commit fails all",
			reqs:          []groupcommit.Request[*memTx, string]{write("a"), write("b")},
			failCommit:    true,
			want:          []any{errCommit, errCommit},
			wantCommitted: []string{"gate"},
		},
		{
			name:          "a failed begin fails all",
			reqs:          []groupcommit.Request[*memTx, string]{write("a"), failing("bad")},
			failBegin:     true,
			want:          []any{errBegin, errBegin},
			wantCommitted: []string{"gate"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memStore{}
			c := newCommitter(t, m, groupcommit.WithQueueSize(64))
			// The gate's transaction commits; the failures hit the batch after it.
			m.spared.Store(1)
			m.failBegin.Store(tt.failBegin)
			m.failCommit.Store(tt.failCommit)
			answers := doAll(t, c, tt.gone, tt.reqs)
			for i, a := range answers {
				switch w := tt.want[i].(type) {
				case string:
					if a.err != nil || a.r != w {
						t.Errorf("request %d: %q, %v; want %q", i, a.r, a.err, w)
					}
				case error:
					if !errors.Is(a.err, w) {
						t.Errorf("request %d: %q, %v; want %v", i, a.r, a.err, w)
					}
				}
			}
			committed, _, _ := m.state()
			slices.Sort(committed) // the callers queued in any order
			if !slices.Equal(committed, tt.wantCommitted) {
				t.Errorf("committed %v, want %v", committed, tt.wantCommitted)
			}
			// The committer still serves.
			m.failBegin.Store(false)
			m.failCommit.Store(false)
			if r, err := c.Do(context.Background(), write("after")); err != nil || r != "after" {
				t.Fatalf("Do after the failures: %q, %v", r, err)
			}
		})
	}
}

// TestBatching queues 50 requests behind a held transaction: they must run in
// one transaction (the next), not fifty.
func TestBatching(t *testing.T) {
	tests := []struct {
		name      string
		maxBatch  int
		wantSizes []int
	}{
		{"one batch", 64, []int{1, 50}},
		{"capped batches", 20, []int{1, 20, 20, 10}},
		{"grouping off", 1, append([]int{1}, slices.Repeat([]int{1}, 50)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memStore{}
			c := newCommitter(t, m, groupcommit.WithMaxBatch(tt.maxBatch), groupcommit.WithQueueSize(64))
			reqs := make([]groupcommit.Request[*memTx, string], 50)
			for i := range reqs {
				reqs[i] = write(fmt.Sprint(i))
			}
			for i, a := range doAll(t, c, nil, reqs) {
				if a.err != nil || a.r != fmt.Sprint(i) {
					t.Errorf("request %d: %q, %v", i, a.r, a.err)
				}
			}
			_, sizes, _ := m.state()
			if !slices.Equal(sizes, tt.wantSizes) {
				t.Fatalf("requests per transaction %v, want %v", sizes, tt.wantSizes)
			}
		})
	}
}

// TestGatherCallersWokenTogether: callers made runnable by one event (here one
// channel closing; in the services, the commit of the ledger's batch whose callers
// then each hand their audit record over) share one transaction, although the first
// of them finds the committer idle and wakes it. On one processor the woken committer
// would run before the other callers and commit the first request alone. The
// scheduler's order is not a promise (the race detector shuffles it, and it takes
// from its global queue now and then), so the test counts over many trials: most
// callers must share their first transaction.
func TestGatherCallersWokenTogether(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const callers, trials = 16, 20
	first := 0
	for range trials {
		m := &memStore{}
		c := newCommitter(t, m, groupcommit.WithMaxBatch(64))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				if r, err := c.Do(context.Background(), write(fmt.Sprint(i))); err != nil || r != fmt.Sprint(i) {
					t.Errorf("request %d: %q, %v", i, r, err)
				}
			})
		}
		close(start)
		wg.Wait()
		c.Close()
		_, sizes, _ := m.state()
		first += sizes[0]
	}
	t.Logf("callers in the first transaction: %.1f of %d on average", float64(first)/trials, callers)
	if first < trials*callers/2 {
		t.Fatalf("callers woken together: %.1f of %d in the first transaction on average, want at least half",
			float64(first)/trials, callers)
	}
}

func TestPanicInTransactionFunction(t *testing.T) {
	m := &memStore{}
	c := newCommitter(t, m)
	m.panicRun.Store(true)
	if _, err := c.Do(context.Background(), write("a")); !errors.Is(err, groupcommit.ErrPanic) ||
		!strings.Contains(err.Error(), "injected bug in the transaction function") {
		t.Fatalf("Do with a panicking transaction function: %v, want ErrPanic naming it", err)
	}
	m.panicRun.Store(false)
	if _, err := c.Do(context.Background(), write("b")); err != nil {
		t.Fatalf("Do after the panic: %v", err)
	}
	if committed, _, _ := m.state(); !slices.Equal(committed, []string{"b"}) {
		t.Fatalf("committed %v, want [b]", committed)
	}
}

// TestRunContract: a transaction function that never runs the batch fails it; one
// that retries it answers from the last run.
func TestRunContract(t *testing.T) {
	t.Run("never runs the batch", func(t *testing.T) {
		c, err := groupcommit.New[*memTx, string](func(context.Context, func(*memTx) error) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Do(context.Background(), write("a")); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("retries the batch", func(t *testing.T) {
		var runs atomic.Int64
		c, err := groupcommit.New[*memTx, int](func(_ context.Context, batch func(*memTx) error) error {
			for range 3 {
				if err := batch(&memTx{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r, err := c.Do(context.Background(), func(context.Context, *memTx) (int, error) { return int(runs.Add(1)), nil })
		if err != nil || r != 3 {
			t.Fatalf("Do = %d, %v; want the third run's result", r, err)
		}
	})
}

func TestRequestContext(t *testing.T) {
	type key struct{}
	m := &memStore{}
	c := newCommitter(t, m)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	defer cancel()
	r, err := c.Do(ctx, func(ctx context.Context, _ *memTx) (string, error) {
		cancel() // the caller gives up while its request runs
		if ctx.Err() != nil {
			return "", errors.New("the request's context carries the caller's cancellation")
		}
		v, _ := ctx.Value(key{}).(string)
		return v, nil
	})
	// Do itself may see the cancellation first; the request must not have.
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if err == nil && r != "v" {
		t.Fatalf("the request's context lost the caller's values: %q", r)
	}
}

// TestDoCallerGivesUp: a caller whose ctx ends while its batch is stuck gets its
// ctx's error at once; the request still commits.
func TestDoCallerGivesUp(t *testing.T) {
	m := &memStore{}
	c := newCommitter(t, m)
	g := hold(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var ran atomic.Bool
	go func() {
		_, err := c.Do(ctx, func(_ context.Context, tx *memTx) (string, error) {
			ran.Store(true)
			tx.writes = append(tx.writes, "late")
			return "late", nil
		})
		done <- err
	}()
	waitFor(t, "the request queued", func() bool { return groupcommit.Queued(c) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do = %v, want context.Canceled", err)
	}
	g.open()
	// A flush: everything queued before it is decided when it returns.
	if _, err := c.Do(context.Background(), write("flush")); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Fatal("a request whose caller had gone before its batch ran was run")
	}
}

func TestSubmit(t *testing.T) {
	m := &memStore{}
	c := newCommitter(t, m)
	var mu sync.Mutex
	got := map[string]error{}
	done := func(r string, err error) {
		mu.Lock()
		got[r] = err
		mu.Unlock()
	}
	for i := range 10 {
		if err := c.Submit(context.Background(), write(fmt.Sprint(i)), done); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Submit(context.Background(), write("no callback"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), write("flush")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 10 {
		t.Fatalf("%d done calls, want 10: %v", len(got), got)
	}
	committed, _, _ := m.state()
	if len(committed) != 12 {
		t.Fatalf("committed %v, want 12 writes", committed)
	}
}

// TestMaxDelay: submitted requests wait for company up to the delay; a waiting
// caller, a full batch or Close ends the wait.
func TestMaxDelay(t *testing.T) {
	t.Run("a waiting caller takes the lingering ones along", func(t *testing.T) {
		m := &memStore{}
		c := newCommitter(t, m, groupcommit.WithMaxDelay(time.Hour), groupcommit.WithMaxBatch(10))
		for i := range 3 {
			if err := c.Submit(context.Background(), write(fmt.Sprint(i)), nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Do(context.Background(), write("wait")); err != nil {
			t.Fatal(err)
		}
		if _, sizes, _ := m.state(); !slices.Equal(sizes, []int{4}) {
			t.Fatalf("requests per transaction %v, want [4]: one fsync for the lingering ones and the waiting one", sizes)
		}
	})
	t.Run("a full batch runs", func(t *testing.T) {
		m := &memStore{}
		c := newCommitter(t, m, groupcommit.WithMaxDelay(time.Hour), groupcommit.WithMaxBatch(4))
		var done sync.WaitGroup
		done.Add(4)
		for i := range 4 {
			if err := c.Submit(context.Background(), write(fmt.Sprint(i)), func(string, error) { done.Done() }); err != nil {
				t.Fatal(err)
			}
		}
		done.Wait() // an hour otherwise
		if _, sizes, _ := m.state(); !slices.Equal(sizes, []int{4}) {
			t.Fatalf("requests per transaction %v, want [4]", sizes)
		}
	})
	t.Run("the delay passes", func(t *testing.T) {
		m := &memStore{}
		c := newCommitter(t, m, groupcommit.WithMaxDelay(5*time.Millisecond))
		var n atomic.Int64
		for i := range 3 {
			if err := c.Submit(context.Background(), write(fmt.Sprint(i)), func(string, error) { n.Add(1) }); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the lingering batch to commit", func() bool { return n.Load() == 3 })
	})
	t.Run("close flushes", func(t *testing.T) {
		m := &memStore{}
		c, err := groupcommit.New[*memTx, string](m.run, groupcommit.WithMaxDelay(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Submit(context.Background(), write("a"), nil); err != nil {
			t.Fatal(err)
		}
		c.Close() // an hour otherwise
		if committed, _, _ := m.state(); !slices.Equal(committed, []string{"a"}) {
			t.Fatalf("committed %v, want [a]", committed)
		}
	})
}

// TestCloseDrains: Close answers and commits everything queued before it, and
// refuses everything after; writers racing it get one or the other, never
// silence.
func TestCloseDrains(t *testing.T) {
	m := &memStore{}
	c, err := groupcommit.New[*memTx, string](m.run, groupcommit.WithQueueSize(8), groupcommit.WithMaxBatch(4))
	if err != nil {
		t.Fatal(err)
	}
	g := hold(t, c)
	const n = 40
	var acked, refused, answered atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = c.Do(context.Background(), write(fmt.Sprint(i)))
				if err == nil {
					acked.Add(1)
				}
			} else {
				err = c.Submit(context.Background(), write(fmt.Sprint(i)), func(_ string, err error) {
					if err == nil {
						answered.Add(1)
					}
				})
			}
			switch {
			case errors.Is(err, groupcommit.ErrClosed):
				refused.Add(1)
			case err != nil:
				t.Errorf("request %d: %v", i, err)
			}
		})
	}
	waitFor(t, "the queue to fill", func() bool { return groupcommit.Queued(c) == 8 })
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	g.open()
	<-closed
	wg.Wait()
	committed, _, _ := m.state()
	if got := acked.Load() + answered.Load() + 1; got != int64(len(committed)) {
		t.Fatalf("%d acknowledged (gate included), %d committed", got, len(committed))
	}
	if acked.Load()+answered.Load()+refused.Load() != n {
		t.Fatalf("%d acknowledged, %d answered, %d refused of %d", acked.Load(), answered.Load(), refused.Load(), n)
	}
	if _, err := c.Do(context.Background(), write("late")); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("Do after Close = %v, want ErrClosed", err)
	}
	if err := c.Submit(context.Background(), write("late"), nil); !errors.Is(err, groupcommit.ErrClosed) {
		t.Fatalf("Submit after Close = %v, want ErrClosed", err)
	}
	c.Close() // again: returns
}

// TestObserver: every batch that ran is observed once, with the requests it had (a
// failed one and the reruns of its companions included) and a positive duration; a
// batch whose callers all gave up ran nothing and is not observed.
func TestObserver(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	var tooks []time.Duration
	m := &memStore{}
	c := newCommitter(t, m, groupcommit.WithMaxBatch(20), groupcommit.WithQueueSize(64),
		groupcommit.WithObserver(func(n int, took time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			sizes, tooks = append(sizes, n), append(tooks, took)
		}))
	reqs := make([]groupcommit.Request[*memTx, string], 45)
	for i := range reqs {
		reqs[i] = write(fmt.Sprint(i))
	}
	reqs[30] = failing("30") // its batch runs again without it
	doAll(t, c, nil, reqs)
	// Every caller of a gone batch gives up before it runs.
	doAll(t, c, []bool{true, true}, []groupcommit.Request[*memTx, string]{write("a"), write("b")})
	// The observer runs after a batch's answers: Close waits for the committer to stop,
	// so every observation is in.
	c.Close()

	mu.Lock()
	defer mu.Unlock()
	// The gates (1 request each), 20, 20, 5, the second gate; the batch of two whose
	// callers were gone ran nothing. The batch with the failed request (whichever it was
	// queued in) is observed once, whole, and committed without it after the rerun.
	if want := []int{1, 20, 20, 5, 1}; !slices.Equal(sizes, want) {
		t.Fatalf("observed batches of %v requests, want %v", sizes, want)
	}
	for i, took := range tooks {
		if took <= 0 {
			t.Errorf("batch %d observed with duration %v", i, took)
		}
	}
	_, committed, _ := m.state()
	short := 0
	for i := range committed {
		if i < len(sizes) && committed[i] == sizes[i]-1 {
			short++
		} else if i >= len(sizes) || committed[i] != sizes[i] {
			short = -1
			break
		}
	}
	if len(committed) != len(sizes) || short != 1 {
		t.Fatalf("transactions committed %v, want those observed (%v) with one request less in one", committed, sizes)
	}
}
