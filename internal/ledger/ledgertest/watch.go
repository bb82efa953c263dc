package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"mtlsbank/internal/ledger"
)

// collector gathers what a Watch delivers and signals each arrival.
type collector struct {
	mu      sync.Mutex
	entries []ledger.Entry
	arrived chan struct{}
	done    chan error
}

func startWatch(tb testing.TB, ctx context.Context, l *ledger.Ledger, after int64) *collector {
	tb.Helper()
	c := &collector{arrived: make(chan struct{}, 1), done: make(chan error, 1)}
	go func() {
		c.done <- l.Watch(ctx, after, func(e ledger.Entry) error {
			c.mu.Lock()
			c.entries = append(c.entries, e)
			c.mu.Unlock()
			select {
			case c.arrived <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	return c
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// waitFor waits until the collector holds n entries, or fails after a
// generous deadline.
func (c *collector) waitFor(tb testing.TB, n int) []ledger.Entry {
	tb.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for c.count() < n {
		select {
		case <-c.arrived:
		case err := <-c.done:
			tb.Fatalf("watch ended with %v after %d of %d entries", err, c.count(), n)
		case <-deadline.C:
			tb.Fatalf("watch delivered %d of %d entries", c.count(), n)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ledger.Entry(nil), c.entries...)
}

// writeSome runs n deposits and transfers concurrently and waits for them.
func writeSome(tb testing.TB, l *ledger.Ledger, a, b ledger.Account, tag string, n int) {
	tb.Helper()
	if err := tryWriteSome(l, a, b, tag, n); err != nil {
		tb.Fatal(err)
	}
}

func tryWriteSome(l *ledger.Ledger, a, b ledger.Account, tag string, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = l.Deposit(context.Background(), ledger.DepositRequest{AccountID: string(a.ID), Amount: eur(100),
					IdempotencyKey: fmt.Sprintf("%s-%d", tag, i), Principal: teller})
			} else {
				_, err = l.Transfer(context.Background(), ledger.TransferRequest{FromAccountID: string(a.ID), ToAccountID: string(b.ID),
					Amount: eur(1), IdempotencyKey: fmt.Sprintf("%s-%d", tag, i), Principal: payments})
			}
			if err != nil && !errors.Is(err, ledger.ErrInsufficientFunds) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (su suite) testWatch(t *testing.T) {
	// A small page makes the watchers page through the backlog.
	l, s := su.newLedger(t, ledger.WithWatchPageSize(7))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")

	early := startWatch(t, ctx, l, 0)
	writeSome(t, l, a, b, "first", 40)
	late := startWatch(t, ctx, l, 0)
	from10 := startWatch(t, ctx, l, 10)
	writeSome(t, l, a, b, "second", 40)

	want := CheckInvariants(t, s).Entries
	if len(want) < 40 {
		t.Fatalf("only %d entries written", len(want))
	}
	for _, w := range []struct {
		name string
		c    *collector
		want []ledger.Entry
	}{
		{name: "started before the writes", c: early, want: want},
		{name: "started after the first writes", c: late, want: want},
		{name: "after sequence 10", c: from10, want: want[10:]},
	} {
		t.Run(w.name, func(t *testing.T) {
			got := w.c.waitFor(t, len(w.want))
			for i := range w.want {
				if got[i] != w.want[i] {
					t.Fatalf("entry %d = %+v, want %+v", i, got[i], w.want[i])
				}
			}
		})
	}

	// A new write (one deposit: two entries) reaches every watcher once.
	writeSome(t, l, a, b, "third", 1)
	for _, w := range []struct {
		c    *collector
		want int
	}{{early, len(want) + 2}, {late, len(want) + 2}, {from10, len(want) - 10 + 2}} {
		got := w.c.waitFor(t, w.want)
		if len(got) != w.want {
			t.Errorf("watcher has %d entries, want %d", len(got), w.want)
		}
		if last := got[len(got)-1]; last.Sequence != int64(len(want)+2) {
			t.Errorf("last entry seen is %d, want %d", last.Sequence, len(want)+2)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Sequence != got[i-1].Sequence+1 {
				t.Fatalf("entries %d then %d: not each once in order", got[i-1].Sequence, got[i].Sequence)
			}
		}
	}

	cancel()
	for _, c := range []*collector{early, late, from10} {
		if err := <-c.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Watch after cancel returned %v, want context.Canceled", err)
		}
	}
}

// testWatchStalledConsumer checks that a watcher that does not read does not
// hold up writers.
func (su suite) testWatchStalledConsumer(t *testing.T) {
	l, s := su.newLedger(t, ledger.WithWatchPageSize(4))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := MustOpen(t, l, alice, "EUR")
	b := MustOpen(t, l, bob, "EUR")
	MustDeposit(t, l, a, 1)

	release := make(chan struct{})
	// Buffered: the watcher's send must not be lost if it comes before the
	// receive below (unbuffered, with the non-blocking send, the test hung).
	blocked := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- l.Watch(ctx, 0, func(ledger.Entry) error {
			select {
			case blocked <- struct{}{}:
			default:
			}
			<-release
			return nil
		})
	}()
	<-blocked // the watcher is stuck in its first entry

	written := make(chan error, 1)
	go func() { written <- tryWriteSome(l, a, b, "stall", 200) }()
	select {
	case err := <-written:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("writes did not complete while a watcher was stalled")
	}
	if n := len(TakeSnapshot(t, s).Entries); n < 200 {
		t.Errorf("%d entries written, want at least 200", n)
	}
	cancel()
	close(release)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("stalled Watch returned %v, want context.Canceled", err)
	}
}

func (su suite) testWatchEnds(t *testing.T) {
	l, _ := su.newLedger(t)
	ctx := context.Background()
	a := MustOpen(t, l, alice, "EUR")
	MustDeposit(t, l, a, 1)

	err := l.Watch(ctx, -1, func(ledger.Entry) error { return nil })
	WantError(t, err, ledger.ErrInvalidSequence, "after_sequence")

	stop := errors.New("stop")
	if err := l.Watch(ctx, 0, func(ledger.Entry) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Watch returned %v, want the callback's error", err)
	}

	c := startWatch(t, ctx, l, 0)
	c.waitFor(t, 2)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-c.done; !errors.Is(err, ledger.ErrClosed) {
		t.Errorf("Watch after Close returned %v, want ErrClosed", err)
	}
}
